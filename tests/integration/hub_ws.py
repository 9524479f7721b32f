#!/usr/bin/env python3
"""Test-only WebSocket peer for the hub tests: a fake agent (client) or a fake
hub (server), both over TLS, with just enough RFC 6455 framing to send hostile
frames on purpose.  Standard library only.  Every operation has a timeout.

  hub_ws.py agent HOST PORT CA TOKEN SCENARIO   (fake agent against dirbridge-hub)
  hub_ws.py hub PORT CERT KEY TOKEN             (fake hub for a real agent)
  hub_ws.py hub-limits PORT CERT KEY TOKEN      (oversized upgrade response, then
                                                 scripted session_check / login answers)

Prints one line per observation; the shell script decides PASS/FAIL.
"""
import base64, hashlib, json, os, socket, ssl, struct, sys, time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class WS:
    def __init__(self, sock, client):
        self.s, self.client, self.buf = sock, client, b""

    def _read(self, n):
        while len(self.buf) < n:
            d = self.s.recv(65536)
            if not d:
                raise EOFError("connection closed")
            self.buf += d
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send_frame(self, opcode, payload, fin=True, length=None):
        n = len(payload) if length is None else length
        hdr = bytes([(0x80 if fin else 0) | opcode])
        mask = 0x80 if self.client else 0
        if n < 126:
            hdr += bytes([mask | n])
        elif n < 65536:
            hdr += bytes([mask | 126]) + struct.pack("!H", n)
        else:
            hdr += bytes([mask | 127]) + struct.pack("!Q", n)
        if self.client:
            key = os.urandom(4)
            hdr += key
            payload = _mask(payload, key)
        self.s.sendall(hdr + payload)

    def send_json(self, obj):
        self.send_frame(1, json.dumps(obj).encode())

    def recv_frame(self):
        b0, b1 = self._read(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read(8))[0]
        key = self._read(4) if b1 & 0x80 else None
        data = self._read(n)
        if key:
            data = _mask(data, key)
        return b0 & 0x80, b0 & 0x0F, data

    def recv_msg(self):
        """Next data message (opcode, bytes); answers pings, returns close as (8, payload)."""
        parts, op = [], None
        while True:
            fin, opcode, data = self.recv_frame()
            if opcode == 9:
                self.send_frame(10, data)
                continue
            if opcode == 10:
                continue
            if opcode == 8:
                return 8, data
            if opcode != 0:
                op = opcode
            parts.append(data)
            if fin:
                return op, b"".join(parts)


def _mask(payload, key):
    if not payload:
        return payload
    whole = (key * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(whole, "big")).to_bytes(len(payload), "big")


def connect_agent(host, port, ca, token, timeout=10):
    ctx = ssl.create_default_context(cafile=ca)
    raw = socket.create_connection((host, port), timeout=timeout)
    s = ctx.wrap_socket(raw, server_hostname=host)
    key = base64.b64encode(os.urandom(16)).decode()
    req = ("GET /agent/v1 HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer %s\r\n\r\n"
           % (host, port, key, token))
    s.sendall(req.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        d = s.recv(4096)
        if not d:
            break
        head += d
    status = head.split(b"\r\n", 1)[0].decode(errors="replace")
    ws = WS(s, True)
    ws.buf = head.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in head else b""
    if " 101 " in status:
        want = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        if ("Sec-WebSocket-Accept: %s" % want).lower() not in head.decode().lower():
            status = "bad accept"
    return status, ws


def closed_or_close(ws):
    """True when the peer closes (close frame or EOF) within the timeout."""
    try:
        while True:
            op, _ = ws.recv_msg()
            if op == 8:
                return True
    except (EOFError, ConnectionError, ssl.SSLError):
        return True
    except socket.timeout:
        return False


def fake_agent(host, port, ca, token, scenario):
    status, ws = connect_agent(host, port, ca, token)
    print("status", status)
    if " 101 " not in status:
        return
    hello = {"type": "hello", "agent": "fake-" + scenario, "version": "0",
             "capabilities": ["authenticate"], "public_url": "https://127.0.0.1:1"}
    if scenario == "serve":
        # Answers every request: ok for password "good", else invalid_credentials.
        ws.send_json(hello)
        ws.s.settimeout(120)
        while True:
            op, data = ws.recv_msg()
            if op == 8:
                print("closed")
                return
            m = json.loads(data)
            if m.get("type") == "authenticate":
                if m.get("password") == "good":
                    ws.send_json({"type": "result", "id": m["id"], "ok": True,
                                  "profile": {"username": m["username"], "groups": []}})
                else:
                    ws.send_json({"type": "result", "id": m["id"], "ok": False,
                                  "error": "invalid_credentials"})
            elif m.get("type") == "list_groups" and "silent" in sys.argv:
                pass
            else:
                ws.send_json({"type": "result", "id": m.get("id", ""), "ok": False,
                              "error": "bad_request"})
        return
    if scenario == "sessions":
        # session_check and login from an agent the session SID was not made for.
        sid = sys.argv[7]
        ws.send_json(hello)
        msgs = [{"type": "session_check", "id": "c1"},
                {"type": "session_check", "id": "c2", "session": "nope"},
                {"type": "session_check", "session": sid},
                {"type": "session_check", "id": "c3", "session": sid},
                {"type": "login", "id": "l1", "session": sid, "method": "password",
                 "profile": {"username": "x"}},
                {"type": "login", "id": "l2", "session": sid, "method": "magic", "profile": {}}]
        for m in msgs:
            ws.send_json(m)
        got = FakeHub.results(ws, ["c1", "c2", "c3", "l1", "l2"], timeout=10)
        for i in ("c1", "c2", "c3", "l1", "l2"):
            m = got.get(i)
            print("result", i, "missing" if m is None else "ok" if m.get("ok") else m.get("error"))
        return
    if scenario == "before-hello":
        ws.send_json({"type": "result", "id": "1", "ok": True})
    elif scenario == "empty":
        ws.send_json(hello)
        ws.send_frame(1, b"")
    elif scenario == "bad-json":
        ws.send_json(hello)
        ws.send_frame(1, b"{not json")
    elif scenario == "binary":
        ws.send_json(hello)
        ws.send_frame(2, b"\x00\x01\x02")
    elif scenario == "huge":
        ws.send_json(hello)
        try:
            ws.send_frame(1, b"x" * (10 << 20))
        except (ConnectionError, ssl.SSLError):
            pass
    elif scenario == "missing-fields":
        ws.send_json({"type": "hello"})
    elif scenario == "wrong-types":
        ws.send_json(dict(hello, agent=5))
    elif scenario == "no-type":
        ws.send_json(hello)
        ws.send_json({"id": "1", "ok": True})
    elif scenario == "bad-result":
        ws.send_json(hello)
        ws.send_json({"type": "result", "ok": "yes"})
    ws.s.settimeout(10)
    print("closed" if closed_or_close(ws) else "still-open")


class FakeHub:
    def __init__(self, port, cert, key, token):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", port))
        self.srv.listen(8)
        self.token = token

    def accept(self, timeout=40, pad=0):
        """The next agent that presents the right token, after its hello.  PAD
        bytes of extra headers go into the 101; None when the agent closed the
        connection instead of sending hello."""
        self.srv.settimeout(timeout)
        while True:
            raw, _ = self.srv.accept()
            try:
                s = self.ctx.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError):
                continue
            s.settimeout(20)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 16384:
                d = s.recv(4096)
                if not d:
                    break
                head += d
            lines = head.split(b"\r\n\r\n")[0].decode(errors="replace").split("\r\n")
            hdrs = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip()
                    for l in lines[1:] if ":" in l}
            if hdrs.get("authorization") != "Bearer " + self.token:
                s.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
                s.close()
                print("refused-token", flush=True)
                continue
            acc = base64.b64encode(hashlib.sha1(hdrs["sec-websocket-key"].encode() + GUID).digest())
            extra = b"".join(b"X-Pad-%04d: %s\r\n" % (i, b"p" * 100) for i in range(pad // 114))
            s.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + acc + b"\r\n" +
                      extra + b"\r\n")
            ws = WS(s, False)
            ws.buf = head.split(b"\r\n\r\n", 1)[1]
            try:
                op, data = ws.recv_msg()
            except (EOFError, ConnectionError, ssl.SSLError, OSError):
                if pad:
                    return None
                raise
            hello = json.loads(data)
            print("hello", hello.get("type"), hello.get("agent"), hello.get("public_url"), flush=True)
            return ws

    @staticmethod
    def results(ws, ids, timeout=60):
        """Collects results for IDS (any order): id -> message."""
        got, end = {}, time.time() + timeout
        ws.s.settimeout(timeout)
        while set(ids) - set(got) and time.time() < end:
            op, data = ws.recv_msg()
            if op == 8:
                break
            m = json.loads(data)
            if m.get("type") == "result":
                got[m.get("id")] = m
        return got

    @staticmethod
    def close_code(ws, timeout=20):
        """The close code the agent sends (or 'eof'), or 'open' after TIMEOUT."""
        ws.s.settimeout(timeout)
        try:
            while True:
                op, data = ws.recv_msg()
                if op == 8:
                    return str(struct.unpack("!H", data[:2])[0]) if len(data) >= 2 else "none"
        except (EOFError, ConnectionError, ssl.SSLError, OSError) as e:
            return "timeout" if isinstance(e, socket.timeout) else "eof"


def fake_hub(port, cert, key, token):
    hub = FakeHub(port, cert, key, token)
    ws = hub.accept()
    bad = [
        ("m1", {"type": "authenticate", "id": "m1"}),
        ("m2", {"type": "authenticate", "id": "m2", "username": 5, "password": "x"}),
        ("m3", {"type": "frobnicate", "id": "m3"}),
        ("m4", {"type": "search_users", "id": "m4", "query": "a", "limit": 0}),
        ("m5", {"type": "list_groups", "id": "m5", "limit": "10"}),
        ("m6", {"type": "change_password", "id": "m6", "username": "alice"}),
        ("m7", {"type": "lookup", "id": "m7", "username": None}),
    ]
    for _, m in bad:
        ws.send_json(m)
    ws.send_json({"type": "authenticate", "username": "alice", "password": "Passw0rd!"})
    ws.send_json({"type": "authenticate", "id": "g1", "username": "alice", "password": "Passw0rd!"})
    got = hub.results(ws, [i for i, _ in bad] + ["g1"])
    for i, _ in bad:
        print("result", i, got.get(i, {}).get("error", "missing"), flush=True)
    print("result g1", "ok" if got.get("g1", {}).get("ok") else got.get("g1"), flush=True)
    ids = ["f%d" % i for i in range(400)]
    for i in ids:
        ws.send_json({"type": "lookup", "id": i, "username": "alice"})
    got = hub.results(ws, ids, timeout=120)
    busy = sum(1 for m in got.values() if m.get("error") == "busy")
    ok = sum(1 for m in got.values() if m.get("ok"))
    print("flood answered %d ok %d busy %d" % (len(got), ok, busy), flush=True)
    for name, send in (("bad-json", lambda w: w.send_frame(1, b"{not json")),
                       ("empty", lambda w: w.send_frame(1, b"")),
                       ("fragments", lambda w: (w.send_frame(1, b"[1,", fin=False),
                                                w.send_frame(0, b"2]"))),
                       ("binary", lambda w: w.send_frame(2, b"\x00\x01")),
                       ("huge", lambda w: w.send_frame(1, b"[" + b"1," * (5 << 20) + b"1]"))):
        try:
            send(ws)
        except (ConnectionError, ssl.SSLError, OSError):
            pass
        print("close", name, hub.close_code(ws), flush=True)
        t0 = time.time()
        ws = hub.accept()
        print("reconnected after", name, "%.1f" % (time.time() - t0), flush=True)
    # Half-open: stop reading (no pongs); the agent must give up on the link.
    t0 = time.time()
    ws.s.settimeout(60)
    ws2 = hub.accept(timeout=60)
    print("silent hub dropped after %.0f s" % (time.time() - t0), flush=True)
    ws2.send_json({"type": "authenticate", "id": "g2", "username": "alice", "password": "Passw0rd!"})
    got = hub.results(ws2, ["g2"])
    print("result g2", "ok" if got.get("g2", {}).get("ok") else got.get("g2"), flush=True)


def fake_hub_limits(port, cert, key, token):
    hub = FakeHub(port, cert, key, token)
    # A 101 with 20 KiB of headers: over the agent's 16 KiB limit.
    ws = hub.accept(pad=20 << 10)
    print("upgrade 20k", "refused" if ws is None else "accepted", flush=True)
    # Within the limit (15 KiB) the agent goes on as usual.
    ws = hub.accept(pad=15 << 10)
    print("upgrade 15k", "refused" if ws is None else "accepted", flush=True)
    if ws is None:
        return
    # Sessions starting "0" never get an answer to session_check (the agent
    # must give up on its own); others are pending, and their login is
    # accepted when they start "a", refused as unknown_session otherwise.
    ws.s.settimeout(60)
    try:
        while True:
            op, data = ws.recv_msg()
            if op == 8:
                break
            m = json.loads(data)
            sid = str(m.get("session"))
            if m.get("type") == "session_check" and sid.startswith("0"):
                print("session_check", sid, "unanswered", flush=True)
            elif m.get("type") == "session_check":
                print("session_check", sid, "ok", flush=True)
                ws.send_json({"type": "result", "id": m.get("id"), "ok": True})
            elif m.get("type") == "login" and sid.startswith("a"):
                print("login", sid, m.get("method"), m.get("profile", {}).get("username"), "ok", flush=True)
                ws.send_json({"type": "result", "id": m.get("id"), "ok": True})
            elif m.get("type") == "login":
                print("login", sid, m.get("method"), "refused", flush=True)
                ws.send_json({"type": "result", "id": m.get("id"), "ok": False,
                              "error": "unknown_session"})
    except (EOFError, ConnectionError, ssl.SSLError, OSError):
        pass


def main():
    mode = sys.argv[1]
    if mode == "agent":
        fake_agent(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6])
    elif mode == "hub":
        fake_hub(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
    elif mode == "hub-limits":
        fake_hub_limits(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
    else:
        sys.exit("unknown mode")


if __name__ == "__main__":
    main()
