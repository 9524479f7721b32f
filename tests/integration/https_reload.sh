#!/bin/bash
# Front-facing HTTPS, SIGHUP: a new server certificate, CA set and CRL are
# picked up by new handshakes while an open connection keeps working; a broken
# file keeps the old set and says why.
source "$ROOT/tests/lib.sh"
source "$ROOT/tests/https-lib.sh"

https_agent 127.0.0.1/32 || { finish; exit; }
S1=$(cert_serial "$PKI/srv1.crt"); S2=$(cert_serial "$PKI/srv2.crt")
served_serial() {  # the serial of the leaf certificate a new handshake gets
  echo | timeout 10 gnutls-cli --print-cert --x509cafile "$CA" -p "$P" 127.0.0.1 2>/dev/null |
    awk '/BEGIN CERT/{p=1} p{print} /END CERT/{exit}' >"$T/peer.pem"
  cert_serial "$T/peer.pem"
}
hup_and_wait() {  # hup_and_wait PATTERN: SIGHUP, then wait for PATTERN in a new log line
  local n; n=$(wc -l <"$T/agent.log")
  kill -HUP "$AGENT_PID"
  for i in $(seq 50); do tail -n +"$((n + 1))" "$T/agent.log" | grep -q "$1" && return 0; sleep 0.1; done
  return 1
}
check_eq "serves the first certificate" "$(served_serial)" "$S1"

# A connection opened now stays open across the reload.
python3 - "$P" "$CA" "$T/go" >"$T/old.out" 2>&1 <<'PY' &
import os, re, socket, ssl, sys, time
ctx = ssl.create_default_context(cafile=sys.argv[2])
t = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20), server_hostname="127.0.0.1")
def get():
    t.sendall(b"GET /static/login.css HTTP/1.1\r\nHost: a\r\n\r\n")
    d = b""
    while b"}\n" not in d or b"\r\n\r\n" not in d:
        x = t.recv(65536)
        if not x: return "closed"
        d += x
    return re.match(rb"HTTP/1.1 ([0-9]+)", d).group(1).decode()
print("before", get(), flush=True)
for _ in range(200):
    if os.path.exists(sys.argv[3]): break
    time.sleep(0.1)
print("after", get(), flush=True)
PY
OLD=$!; bg_track $OLD
for i in $(seq 50); do grep -q before "$T/old.out" && break; sleep 0.1; done
check_eq "open connection served before the reload" "$(grep before "$T/old.out")" "before 200"

cp "$PKI/srv2.chain.pem" "$T/server.pem"; cp "$PKI/srv2.key" "$T/server.key"
check "SIGHUP reloads the certificates" hup_and_wait "certificates reloaded"
check_eq "a new handshake sees the new certificate" "$(served_serial)" "$S2"
touch "$T/go"; wait $OLD
check_eq "the connection opened before the reload still works" "$(grep after "$T/old.out")" "after 200"
check_eq "alice still signs in after the reload" "$(page_kind "$(get_login 127.0.0.1:$P alice)")" success

# A broken certificate file: the reload is refused, the current set serves on.
cp "$T/server.pem" "$T/server.pem.good"
echo "not a certificate" >"$T/server.pem"
check "broken certificate: reload refused with a reason" hup_and_wait "refused"
grep -E "\[https\]|reload refused" "$T/agent.log" | tail -2 | sed 's/^/   /'
cp "$T/server.pem.good" "$T/server.pem"
check_eq "after a refused reload the old certificate still serves" "$(served_serial)" "$S2"
check_eq "after a refused reload sign-in still works" "$(page_kind "$(get_login 127.0.0.1:$P alice)")" success

# A new CRL that revokes alice takes effect for new handshakes, also for a
# session resumed from a ticket issued before the reload.
python3 - "$P" "$CA" "$PKI/alice.crt" "$PKI/alice.key" "$T/go2" "$(new_session)" "$(new_session)" >"$T/resume.out" 2>&1 <<'PY' &
import os, socket, ssl, sys, time
ctx = ssl.create_default_context(cafile=sys.argv[2])
ctx.load_cert_chain(sys.argv[3], sys.argv[4])
def get(sid, session=None):
    t = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10),
                        server_hostname="127.0.0.1", session=session)
    t.sendall(b"GET /login?session=" + sid.encode() + b" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    d = b""
    while True:
        x = t.recv(65536)
        if not x: break
        d += x
    kind = "success" if b'id="result"' in d else "form" if b'name="password"' in d else "other"
    return t, kind
t, kind = get(sys.argv[6])
print("first", kind, flush=True)
for _ in range(200):
    if os.path.exists(sys.argv[5]): break
    time.sleep(0.1)
t2, kind = get(sys.argv[7], t.session)
print("resumed" if t2.session_reused else "full", kind, flush=True)
PY
RES=$!; bg_track $RES
for i in $(seq 50); do grep -q first "$T/resume.out" && break; sleep 0.1; done
check_eq "before the new CRL alice signs in (and gets a ticket)" "$(grep first "$T/resume.out")" "first success"
( cd "$PKI" && printf 'crl_next_update = 30\ncrl_number = 2\n' >crl2.tmpl &&
  cat revoked.crt alice.crt >both.crt &&
  certtool --generate-crl --load-ca-privkey ca.key --load-ca-certificate ca.crt \
    --load-certificate both.crt --template crl2.tmpl --outfile ca.crl >/dev/null 2>&1 )
check "new CRL: reload accepted" hup_and_wait "certificates reloaded"
touch "$T/go2"; wait $RES
check_eq "a session resumed after the new CRL: resumed, and the form" "$(tail -1 "$T/resume.out")" "resumed form"
check_eq "alice revoked by the new CRL: the form" "$(page_kind "$(get_login 127.0.0.1:$P alice)")" form
check_match "refusal says revoked" "$(tail -5 "$T/agent.log")" 'refused: certificate revoked'
check_eq "bob is not on the CRL: still signs in" "$(page_kind "$(get_login 127.0.0.1:$P bob)")" success

# A CRL signed by another CA is refused as a whole.
( cd "$PKI" && certtool --generate-crl --load-ca-privkey other-ca.key --load-ca-certificate other-ca.crt \
    --template crl2.tmpl --outfile ca.crl >/dev/null 2>&1 )
check "foreign CRL: reload refused" hup_and_wait "refused"
check_eq "foreign CRL refused: alice stays revoked" "$(page_kind "$(get_login 127.0.0.1:$P alice)")" form
stop_agent "$T/agent.log"

# Below the config checks: tls_server_reload() itself loads everything first
# and keeps the old set on any error.
( cd "$PKI" && certtool --generate-crl --load-ca-privkey ca.key --load-ca-certificate ca.crt \
    --load-certificate revoked.crt --template crl2.tmpl --outfile good.crl >/dev/null 2>&1 )
K=$PKI
"$BUILD/tests/tlsreload" $K/srv1.chain.pem $K/srv1.key $K/ca.crt $K/good.crl \
  -- $K/srv2.chain.pem $K/srv1.key $K/ca.crt \
  -- $K/srv2.chain.pem $K/srv2.key $K/missing.crt \
  -- $K/srv2.chain.pem $K/srv2.key $K/ca.crt $K/ca.crl \
  -- $K/srv2.chain.pem $K/srv2.key $K/ca.crt $K/good.crl >"$T/tlsreload.out" 2>&1
mapfile -t R <"$T/tlsreload.out"
check_eq "tls_server_new: first set loads" "${R[0]}" "ok $S1"
check_match "reload with a key that does not match: refused, old serial kept" "${R[1]}" "^refused $S1: .*do not match"
check_match "reload with a missing CA file: refused, old serial kept" "${R[2]}" "^refused $S1: .*missing.crt"
check_match "reload with a CRL from another CA: refused, old serial kept" "${R[3]}" "^refused $S1: .*not signed by a CA"
check_eq "reload with a good set: new serial" "${R[4]}" "ok $S2"
finish
