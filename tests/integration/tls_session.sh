#!/bin/bash
# tls/session.c against gnutls-serv: verification (CA, hostname, IP SAN,
# expiry, protocol versions), both transports (non-blocking fd under uv_poll,
# push/pull over a uv_tcp_t stream), data round trip, client certificates, ALPN.
. "$ROOT/tests/lib.sh"
[ -n "${T:-}" ] && cd "$T" || { echo "FAIL T is not set"; exit 1; }
PROBE=$BUILD/tests/tlsprobe

# ---- certificates (certtool) ----
cat >ca.tmpl <<'EOF'
cn = "dirbridge test CA"
ca
cert_signing_key
crl_signing_key
expiration_days = 30
EOF
cat >srv.tmpl <<'EOF'
cn = "localhost"
dns_name = "localhost"
ip_address = "127.0.0.1"
ip_address = "::1"
tls_www_server
signing_key
encryption_key
expiration_days = 30
EOF
cat >exp.tmpl <<'EOF'
cn = "localhost"
dns_name = "localhost"
ip_address = "127.0.0.1"
tls_www_server
signing_key
activation_date = "2020-01-01 00:00:00"
expiration_date = "2020-02-01 00:00:00"
EOF
cat >cli.tmpl <<'EOF'
cn = "alice"
tls_www_client
signing_key
expiration_days = 30
EOF
mk() {
  certtool -p --key-type ecdsa --outfile ca.key &&
  certtool -s --load-privkey ca.key --template ca.tmpl --outfile ca.pem &&
  # Same subject DN as the real CA, another key: must not be accepted.
  certtool -p --key-type ecdsa --outfile ca2.key &&
  certtool -s --load-privkey ca2.key --template ca.tmpl --outfile ca2.pem &&
  certtool -p --key-type ecdsa --outfile srv.key &&
  certtool -c --load-privkey srv.key --load-ca-certificate ca.pem --load-ca-privkey ca.key \
    --template srv.tmpl --outfile srv.pem &&
  certtool -c --load-privkey srv.key --load-ca-certificate ca.pem --load-ca-privkey ca.key \
    --template exp.tmpl --outfile exp.pem &&
  # A server key below 112-bit security, signed by the good CA.
  certtool -p --key-type rsa --bits 1024 --outfile weak.key &&
  certtool -c --load-privkey weak.key --load-ca-certificate ca.pem --load-ca-privkey ca.key \
    --template srv.tmpl --outfile weak.pem &&
  certtool -p --key-type ecdsa --outfile cli.key &&
  certtool -c --load-privkey cli.key --load-ca-certificate ca.pem --load-ca-privkey ca.key \
    --template cli.tmpl --outfile cli.pem
}
check "certificates made with certtool" mk
check_eq "second CA has the same subject" \
  "$(certtool -i --infile ca2.pem | grep -m1 Subject:)" "$(certtool -i --infile ca.pem | grep -m1 Subject:)"

# serve NAME ARGS...: starts gnutls-serv --echo; its port goes into PORT_NAME.
serve() {
  local name=$1 port; shift
  port=$(free_port)
  gnutls-serv --echo -p "$port" "$@" >"serv_$name.log" 2>&1 &
  bg_track $!
  wait_port 127.0.0.1 "$port" || fail "gnutls-serv $name did not start"
  printf -v "PORT_$name" %s "$port"
}
serve good --x509certfile srv.pem --x509keyfile srv.key -a
serve expired --x509certfile exp.pem --x509keyfile srv.key -a
serve tls11 --x509certfile srv.pem --x509keyfile srv.key -a --priority "NORMAL:-VERS-ALL:+VERS-TLS1.1"
serve tls12 --x509certfile srv.pem --x509keyfile srv.key -a --priority "NORMAL:-VERS-ALL:+VERS-TLS1.2"
serve clientcert --x509certfile srv.pem --x509keyfile srv.key --x509cafile ca.pem \
  --require-client-cert --verify-client-cert
serve weak --x509certfile weak.pem --x509keyfile weak.key -a
serve alpn --x509certfile srv.pem --x509keyfile srv.key -a --alpn h2 --alpn-fatal

# probe NAME WANT_RC ARGS...: runs tlsprobe (bounded) and checks its exit code.
probe() {
  local name=$1 want=$2 rc; shift 2
  timeout 20 "$PROBE" "$@" >"$name.out" 2>"$name.err"; rc=$?
  check_eq "$name (exit code)" "$rc" "$want"
}

# probe_refused NAME ARGS...: the server refuses us after our handshake ends
# (TLS 1.3): its alert (3) or, when its reset overtakes the alert, a
# transport error (4); never success or a verification failure.
probe_refused() {
  local name=$1 rc; shift
  timeout 20 "$PROBE" "$@" >"$name.out" 2>"$name.err"; rc=$?
  case $rc in 3|4) pass "$name (exit $rc)" ;; *) fail "$name: exit $rc, want 3 or 4" ;; esac
}

for mode in fd stream; do
  tok="line-$mode-$RANDOM$RANDOM"
  probe "$mode: good CA, DNS name" 0 --mode $mode --ca ca.pem --port "$PORT_good" --name localhost --send "$tok"
  check_eq "$mode: data round trip" "$(grep '^recv:' "$mode: good CA, DNS name.out")" "recv: $tok"
  check_match "$mode: TLS 1.3 negotiated with strength" "$(cat "$mode: good CA, DNS name.out")" \
    'version=TLS1\.3 strength=(128|256)'
  probe "$mode: good CA, IPv4 SAN" 0 --mode $mode --ca ca.pem --port "$PORT_good" --connect 127.0.0.1
  probe "$mode: wrong CA with the same DN" 2 --mode $mode --ca ca2.pem --port "$PORT_good" --name localhost
  check_match "$mode: wrong CA reason" "$(cat "$mode: wrong CA with the same DN.err")" 'signer not trusted'
  probe "$mode: hostname mismatch" 2 --mode $mode --ca ca.pem --port "$PORT_good" --name www.example.com
  check_match "$mode: mismatch reason" "$(cat "$mode: hostname mismatch.err")" 'hostname mismatch'
  probe "$mode: IP not in SAN" 2 --mode $mode --ca ca.pem --port "$PORT_good" --name 127.0.0.2
  probe "$mode: expired server certificate" 2 --mode $mode --ca ca.pem --port "$PORT_expired" --name localhost
  check_match "$mode: expired reason" "$(cat "$mode: expired server certificate.err")" 'expired'
  probe "$mode: RSA 1024 server certificate refused" 2 --mode $mode --ca ca.pem --port "$PORT_weak" --name localhost
  check_match "$mode: weak key reason" "$(cat "$mode: RSA 1024 server certificate refused.err")" 'insecure'
  probe "$mode: TLS 1.1-only server refused" 3 --mode $mode --ca ca.pem --port "$PORT_tls11" --name localhost
  probe "$mode: TLS 1.2 server" 0 --mode $mode --ca ca.pem --port "$PORT_tls12" --name localhost
  check_match "$mode: TLS 1.2 negotiated" "$(cat "$mode: TLS 1.2 server.out")" 'version=TLS1\.2'
  probe "$mode: client cert presented" 0 --mode $mode --ca ca.pem --port "$PORT_clientcert" \
    --name localhost --cert cli.pem --key cli.key
  probe_refused "$mode: required client cert missing" --mode $mode --ca ca.pem --port "$PORT_clientcert" --name localhost
  probe "$mode: ALPN accepted" 0 --mode $mode --ca ca.pem --port "$PORT_alpn" --name localhost --alpn h2
  probe "$mode: ALPN refused" 3 --mode $mode --ca ca.pem --port "$PORT_alpn" --name localhost --alpn http/1.1
done

if python3 -c 'import socket;s=socket.socket(socket.AF_INET6);s.bind(("::1",0))' 2>/dev/null; then
  probe "IPv6 SAN" 0 --ca ca.pem --port "$PORT_good" --connect ::1
else
  pass "IPv6 SAN (skipped: no ::1)"
fi
check_match "server saw the client certificate" "$(cat serv_clientcert.log)" 'Subject: CN=alice'
check_match "SNI sent for a DNS name" "$(cat serv_good.log)" 'server name.*: localhost'
probe "missing CA file refused" 3 --ca nonexistent.pem --port "$PORT_good" --name localhost
: >empty.pem
probe "empty CA file refused" 3 --ca empty.pem --port "$PORT_good" --name localhost

finish
