#!/usr/bin/env python3
"""Raw HTTPS clients for the front-facing server tests.

  https_raw.py send PORT CA           request bytes on stdin (Python escapes
                                      allowed, e.g. \\r\\n); prints every
                                      response status line, then "closed" or
                                      "open" (the server kept the connection)
  https_raw.py slowloris PORT CA N S  N connections (half only TCP, half TLS
                                      with a partial request), held S seconds
"""
import re, socket, ssl, sys, time


def tls(port, ca):
    ctx = ssl.create_default_context(cafile=ca)
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx.wrap_socket(s, server_hostname="127.0.0.1")


def send(port, ca):
    data = sys.stdin.read().encode("latin-1").decode("unicode_escape").encode("latin-1")
    t = tls(port, ca)
    t.sendall(data)
    buf = b""
    state = "open"
    t.settimeout(3)
    try:
        while True:
            x = t.recv(65536)
            if not x:
                state = "closed"
                break
            buf += x
    except (socket.timeout, TimeoutError):
        pass
    except (ConnectionResetError, ssl.SSLError):
        state = "closed"
    for m in re.finditer(rb"HTTP/1\.1 [0-9]{3} [^\r]*", buf):
        print(m.group(0).decode())
    print(state)


def slowloris(port, ca, n, secs):
    socks = []
    for i in range(n):
        try:
            if i % 2:
                t = tls(port, ca)
                t.sendall(b"GET /login?session=x HTTP/1.1\r\nHost: a\r\n")
                socks.append(t)
            else:
                socks.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        except OSError:
            pass
    print("opened", len(socks), flush=True)
    end = time.time() + secs
    while time.time() < end:
        for t in socks:
            try:
                if isinstance(t, ssl.SSLSocket):
                    t.sendall(b"X-a: b\r\n")
            except OSError:
                pass
        time.sleep(1)


if sys.argv[1] == "send":
    send(int(sys.argv[2]), sys.argv[3])
else:
    slowloris(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
