#!/usr/bin/env python3
"""Many idle TLS connections to the front-facing server, for the capacity tests.

  https_hold.py PORT CA N [HOLD]

Opens N TLS connections one after the other (each handshake completed, no
request sent) and prints "opened K".  Then, on one more connection, reads
/metrics and prints "open G evicted E" (the open-connections gauge and the
evicted counter, this connection included).  With HOLD it then only holds
everything for HOLD seconds (for memory measurements).  Otherwise it sends
GET /healthz on every held connection, oldest first, and prints
"answered A closed C first_closed F" (F: the index of the first connection
the server had closed, or -1), and finally "evicted E" read again on the
metrics connection.
"""
import re, socket, ssl, sys, time


def connect(port, ctx):
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    return ctx.wrap_socket(s, server_hostname="127.0.0.1")


def request(t, path):
    """One keep-alive request; the response, or None when the server had closed."""
    try:
        t.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: a\r\n\r\n")
        buf = b""
        while b"\r\n\r\n" not in buf:
            x = t.recv(65536)
            if not x:
                return None
            buf += x
        head, _, body = buf.partition(b"\r\n\r\n")
        m = re.search(rb"\r\nContent-Length: *([0-9]+)", head, re.I)
        want = int(m.group(1)) if m else 0
        while len(body) < want:
            x = t.recv(65536)
            if not x:
                return None
            body += x
        return head + b"\r\n\r\n" + body
    except (OSError, ssl.SSLError):
        return None


def metric(text, name):
    m = re.search(rb"^" + re.escape(name) + rb" ([0-9]+)$", text or b"", re.M)
    return m.group(1).decode() if m else "?"


def main():
    port, ca, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    hold = float(sys.argv[4]) if len(sys.argv) > 4 else None
    ctx = ssl.create_default_context(cafile=ca)
    held = []
    for _ in range(n):
        try:
            held.append(connect(port, ctx))
        except (OSError, ssl.SSLError) as e:
            print("connect failed:", e, file=sys.stderr)
    print("opened", len(held), flush=True)
    mc = connect(port, ctx)
    m = request(mc, b"/metrics")
    evicted = b'dirbridge_http_connections_closed_total{reason="evicted"}'
    print("open", metric(m, b"dirbridge_http_open_connections"), "evicted", metric(m, evicted),
          flush=True)
    if hold is not None:
        time.sleep(hold)
        return
    answered = closed = 0
    first = -1
    for i, t in enumerate(held):
        r = request(t, b"/healthz")
        if r is not None and r.startswith(b"HTTP/1.1 "):
            answered += 1
        else:
            closed += 1
            first = i if first < 0 else first
    print("answered", answered, "closed", closed, "first_closed", first, flush=True)
    print("evicted", metric(request(mc, b"/metrics"), evicted), flush=True)


main()
