#!/bin/bash
# Front-facing HTTPS, certificate path: inside client_cert_ranges a certificate
# that passes every check logs the right user in; every other certificate, no
# certificate, a client outside the ranges or on ::1 gets the password form.
source "$ROOT/tests/lib.sh"
source "$ROOT/tests/https-lib.sh"

https_setup || { fail "pki: could not build the test PKI"; finish; exit; }
P4=$(free_port); P6=$(free_port)
write_config "$T/agent.ini" "127.0.0.1:$P4 [::1]:$P6" "127.0.0.1/32"
start_agent "$T/agent.ini" "$T/agent.log" || { fail "agent starts"; finish; exit; }
pass "agent starts with listeners on 127.0.0.1 and ::1"

# A valid certificate logs its user in, and the log names the session and user.
page=$(get_login 127.0.0.1:$P4 alice)
check_eq "valid certificate (alice) -> signed in" "$(page_kind "$page")" success
check_match "success page names the user" "$page" 'id="user">alice<'
sleep 0.2
check_match "login reported for the hub's session as alice by certificate" "$(cat "$T/agent.log")" \
  "login: session $(cat "$T/last_session") method certificate user alice .*serial [0-9a-f]+ .*sha256 [0-9a-f]{64}"
check_eq "the hub has that session done" "$(session_state "$(cat "$T/last_session")")" done
check_eq "valid certificate (bob) -> signed in" "$(page_kind "$(get_login 127.0.0.1:$P4 bob)")" success

# Every refused shape gets the form, never a login.
for c in expired future wrongca evil serveronly noeku revoked nulcn twocn inject nocn carol ghost; do
  : >"$T/before"; cp "$T/agent.log" "$T/before"
  page=$(get_login 127.0.0.1:$P4 $c)
  check_eq "certificate '$c' -> the form" "$(page_kind "$page")" form
  sleep 0.1
  new=$(diff "$T/before" "$T/agent.log" | sed -n 's/^> //p')
  check_nomatch "certificate '$c' -> no login reported" "$new" 'login: session'
  sn=$(cert_serial "$PKI/$c.crt")
  check_match "certificate '$c' -> refusal logged with serial, issuer and sha256" "$new" \
    "client certificate refused: .*\(serial $sn, issuer \"[^\"]+\", sha256 [0-9a-f]{64}\)"
done
grep "client certificate refused" "$T/agent.log" | sed 's/^/   /' | cut -c1-160

# OpenSSL in curl refuses to even load an RSA-1024 or SHA-1 certificate at its
# default security level; this lets curl present them, so the agent decides.
cat >"$T/weak.cnf" <<'CNF'
openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
CipherString = DEFAULT@SECLEVEL=0
CNF
# signs_in HOST:PORT LOG CERT: CERT signs in, and the login line names the
# directory's own value "alice" (not the certificate's spelling).
signs_in() {
  local hp=$1 log=$2 c=$3 page new
  cp "$log" "$T/before"
  page=$(OPENSSL_CONF=$T/weak.cnf get_login "$hp" "$c")
  check_eq "certificate '$c' -> signed in" "$(page_kind "$page")" success
  check_match "certificate '$c' -> the page names alice" "$page" 'id="user">alice<'
  sleep 0.2
  new=$(diff "$T/before" "$log" | sed -n 's/^> //p')
  check_match "certificate '$c' -> login reported as the directory's alice" "$new" \
    'login: session [^ ]+ method certificate user alice dn "uid=alice,'
}
# refused HOST:PORT LOG CERT WHY: CERT gets the form, no login, and a refusal
# line with its serial that says WHY (a regex).
refused() {
  local hp=$1 log=$2 c=$3 why=$4 page   # $new stays set for further checks
  cp "$log" "$T/before"
  page=$(OPENSSL_CONF=$T/weak.cnf get_login "$hp" "$c")
  check_eq "certificate '$c' -> the form" "$(page_kind "$page")" form
  sleep 0.2
  new=$(diff "$T/before" "$log" | sed -n 's/^> //p')
  check_nomatch "certificate '$c' -> no login reported" "$new" 'login: session'
  check_match "certificate '$c' -> refused: $why" "$new" \
    "client certificate refused: .*$why.*\(serial $(cert_serial "$PKI/$c.crt"), "
}

# Identity is exact.  ALICE and Alice differ from the directory's value only in
# ASCII case: they sign in, as "alice".  A fullwidth a (U+FF41) is something
# the directory only folds to alice: refused, and the directory says why.
signs_in 127.0.0.1:$P4 "$T/agent.log" cnupper
signs_in 127.0.0.1:$P4 "$T/agent.log" cnmixed
refused 127.0.0.1:$P4 "$T/agent.log" cnfold 'no single directory user with exactly that name'
check_match "fullwidth CN: the lookup refusal is logged as a warning" "$new" \
  $'warning: ldap: lookup of "\xef\xbd\x81lice" refused: .*uid=alice,.*folding'
signs_in 127.0.0.1:$P4 "$T/agent.log" alice

# A CA certificate is never a client certificate, even with clientAuth.
refused 127.0.0.1:$P4 "$T/agent.log" caleaf 'CA certificate \(basicConstraints cA=TRUE\)'
# With client_verify_depth 1 (the default) the leaf must be signed by ca.crt
# itself: the intermediate the client sends is not used.
check_nomatch "the intermediate is not in client_ca_file" \
  "$(certtool -i --infile "$PKI/ca.crt" 2>/dev/null)" 'intermediate'
refused 127.0.0.1:$P4 "$T/agent.log" chain 'needs more than client_verify_depth = 1 certificate below'
refused 127.0.0.1:$P4 "$T/agent.log" chainleaf 'not issued by the client CA set'
# Weak keys and signatures, each next to a control that differs only there.
refused 127.0.0.1:$P4 "$T/agent.log" rsa1024 'key is RSA 1024 bits; at least 2048 needed'
signs_in 127.0.0.1:$P4 "$T/agent.log" rsa2048
refused 127.0.0.1:$P4 "$T/agent.log" sha1 'signed with [A-Z-]*SHA1; SHA-1 and weaker are not accepted'
signs_in 127.0.0.1:$P4 "$T/agent.log" sha256

# client_verify_depth = 2: one intermediate the client sends may stand between
# the leaf and ca.crt; without it the leaf still does not chain.
P8=$(free_port)
VERIFY_DEPTH=2 write_config "$T/agent-depth2.ini" "127.0.0.1:$P8" "127.0.0.1/32"
start_agent "$T/agent-depth2.ini" "$T/agent-depth2.log" || fail "agent with client_verify_depth = 2 starts"
signs_in 127.0.0.1:$P8 "$T/agent-depth2.log" chain
refused 127.0.0.1:$P8 "$T/agent-depth2.log" chainleaf 'not issued by the client CA set'
refused 127.0.0.1:$P8 "$T/agent-depth2.log" caleaf 'CA certificate'
signs_in 127.0.0.1:$P8 "$T/agent-depth2.log" alice

# No certificate inside the range: the form.
check_eq "no certificate -> the form" "$(page_kind "$(get_login 127.0.0.1:$P4 none)")" form

# Outside the ranges: the server never asks, so even a valid certificate and a
# spoofed X-Forwarded-For give the form.
page=$(get_login 127.0.0.1:$P4 alice --interface 127.0.0.2 -H "X-Forwarded-For: 127.0.0.1" \
       -H "Forwarded: for=127.0.0.1")
check_eq "outside the ranges (127.0.0.2, spoofed XFF) with alice -> the form" "$(page_kind "$page")" form
page=$(get_login "[::1]:$P6" alice)
check_eq "::1 (outside the IPv4 ranges) with alice -> the form" "$(page_kind "$page")" form

# Whether a CertificateRequest is sent at all, seen from a real client.
req() { echo | timeout 10 gnutls-cli --verbose --x509cafile "$CA" -p "$2" "$1" 2>&1 | grep -c "Server has requested a certificate"; }
check_eq "inside the range the server requests a certificate" "$(req 127.0.0.1 $P4)" 1
check_eq "on ::1 (outside) no CertificateRequest is sent" "$(req ::1 $P6)" 0
python3 - "$P4" "$CA" "$(new_session)" >"$T/py.out" 2>&1 <<'PY'
import socket, ssl, sys
# TLS 1.2 so that a CertificateRequest would be visible before Finished: with
# the client certificate loaded, the server would receive it only if asked.
ctx = ssl.create_default_context(cafile=sys.argv[2]); ctx.maximum_version = ssl.TLSVersion.TLSv1_2
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), source_address=("127.0.0.2", 0))
t = ctx.wrap_socket(s, server_hostname="127.0.0.1")
t.sendall(b"GET /login?session=" + sys.argv[3].encode() + b" HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 127.0.0.1\r\nConnection: close\r\n\r\n")
d = b""
while True:
    x = t.recv(65536)
    if not x: break
    d += x
print("form" if b'name="password"' in d else "other")
PY
check_eq "python client from 127.0.0.2 gets the form" "$(tail -1 "$T/py.out")" form

# A second listener config: the range holds 127.0.0.2 only, so 127.0.0.1 is
# outside; gnutls-cli from 127.0.0.1 must see no CertificateRequest.
P5=$(free_port)
write_config "$T/agent2.ini" "127.0.0.1:$P5" "127.0.0.2/32"
start_agent "$T/agent2.ini" "$T/agent2.log" || fail "second agent starts"
check_eq "127.0.0.1 outside 127.0.0.2/32: no CertificateRequest" "$(req 127.0.0.1 $P5)" 0
check_eq "127.0.0.2 inside: alice signs in" "$(page_kind "$(get_login 127.0.0.1:$P5 alice --interface 127.0.0.2)")" success

# cert_username = email / upn: the subjectAltName names the user (looked up
# by mail), never the CN (bob).
for mode in email upn; do
  P7=$(free_port)
  CERT_USERNAME=$mode USER_ATTR=mail write_config "$T/agent-$mode.ini" "127.0.0.1:$P7" "127.0.0.1/32"
  start_agent "$T/agent-$mode.ini" "$T/agent-$mode.log" || fail "agent with cert_username=$mode starts"
  check_eq "cert_username=$mode: the $mode certificate signs in" \
    "$(page_kind "$(get_login 127.0.0.1:$P7 $mode)")" success
  sleep 0.2
  check_match "cert_username=$mode: logged in as alice's entry, not the CN" "$(cat "$T/agent-$mode.log")" \
    "login: session $SESSION_RE method certificate user alice@example.test dn \"uid=alice,"
  check_eq "cert_username=$mode: a certificate without that name gets the form" \
    "$(page_kind "$(get_login 127.0.0.1:$P7 alice)")" form
done
P7=$(free_port); CERT_USERNAME=email USER_ATTR=mail write_config "$T/agent-email2.ini" "127.0.0.1:$P7" "127.0.0.1/32"
start_agent "$T/agent-email2.ini" "$T/agent-email2.log"
check_eq "cert_username=email: two rfc822Names get the form" \
  "$(page_kind "$(get_login 127.0.0.1:$P7 twoemail)")" form
check_match "two rfc822Names: refusal logged" "$(cat "$T/agent-email2.log")" 'refused: more than one rfc822Name'

# A resumed session (gnutls-cli sends the request on the resumed connection
# only) is checked again and still logs in; nothing was cached from the first.
S=$(new_session)
out=$(echo -e "GET /login?session=$S HTTP/1.0\r\n\r\n" | timeout 15 gnutls-cli --resume --x509cafile "$CA" \
      --x509certfile "$PKI/alice.crt" --x509keyfile "$PKI/alice.key" -p "$P4" 127.0.0.1 2>&1)
check_match "gnutls-cli resumes the session" "$out" "This is a resumed session"
sleep 0.2
n1=$(grep -c "login: session $S method certificate user alice" "$T/agent.log")
check_eq "the resumed session completed a login for alice" "$n1" 1
check_match "metrics count the resumed handshake" \
  "$(curl -s --cacert "$CA" https://127.0.0.1:$P4/metrics)" 'dirbridge_tls_handshakes_total\{result="resumed"\} [1-9]'
stop_agent "$T/agent.log"

finish
