#!/bin/bash
# dirbridge-check against the real servers: the shared slapd, the Samba AD DC
# and a dirbridge-hub.  A good config passes every check; then each case breaks
# one thing and the FAIL line must name that check and a fix.
. "$ROOT/tests/lib.sh"
. "$ROOT/tests/ldap_lib.sh"
. "$ROOT/tests/https-lib.sh"
set -u

CHK=$BUILD/dirbridge-check
https_setup || { fail "pki: could not build the test PKI"; finish; exit; }
P=$(free_port)
GOOD=(ldap.groups=direct)
write_config "$T/good.ini" "127.0.0.1:$P" 127.0.0.1/32 "$PKI/ca.crl" "${GOOD[@]}" ||
  { fail "hub starts"; finish; exit; }

# run NAME CONFIG [ARGS...]: runs the check; OUT its stdout, RC its status.  A
# crash or a sanitizer report is a FAIL of its own.
run() {
  local name=$1 conf=$2; shift 2
  # libfaketime is preloaded ahead of the ASan runtime, which ASan refuses
  # unless told that the order is intended.
  OUT=$(ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
        timeout 120 "${PRE[@]}" "$CHK" -c "$conf" "$@" 2>"$T/$name.err"); RC=$?
  if [ "$RC" -gt 2 ] || grep -Eq 'Sanitizer|ASan|runtime error:' "$T/$name.err"; then
    fail "$name: dirbridge-check ran cleanly: exit $RC, $(head -c 300 "$T/$name.err")"
  fi
}
PRE=()
# broken NAME CONFIG CHECK FIX-REGEX [ARGS...]: exit 1, and the FAIL line of CHECK names the fix.
broken() {
  local name=$1 conf=$2 chk=$3 fix=$4; shift 4
  run "$name" "$conf" "$@"
  check_eq "$name: exit 1" "$RC" 1
  check_match "$name: FAIL $chk names the fix" "$OUT" "^FAIL $chk[^ ]*: .*; fix: .*$fix"
}

# A good config: every check ok (clock: OpenLDAP has no clock to compare).
run good "$T/good.ini" --user alice
check_eq "good config: exit 0" "$RC" 0
check_nomatch "good config: no FAIL" "$OUT" '^FAIL'
for c in config files 'dns\[' 'tcp\[' 'tls\[' bind base_dn user groups front_cert client_ca crl hub_dns hub_tcp hub_tls hub_upgrade; do
  check_match "good config: ok $c" "$OUT" "^ok   $c"
done
check_match "good config: checks in order" "$(grep -Eo '^(ok  |FAIL|skip) [a-z_]+' <<<"$OUT" | awk '{print $2}' | uniq | tr '\n' ' ')" \
  '^config files dns tcp tls bind base_dn user groups clock front_cert client_ca crl hub_dns hub_tcp hub_tls hub_upgrade $'

# --json parses and says what the text says.
run json "$T/good.ini" --user alice --json
TEXT=$(timeout 120 "$CHK" -c "$T/good.ini" --user alice 2>/dev/null)
check_eq "json: exit 0" "$RC" 0
check_eq "json: statuses match the text" \
  "$(python3 -c 'import json,sys; print(" ".join(c["name"]+"="+c["status"] for c in json.loads(sys.stdin.read())["checks"]))' <<<"$OUT" 2>&1)" \
  "$(awk '{s=$1=="FAIL"?"fail":$1; n=$2; sub(/:$/,"",n); printf "%s%s=%s", (NR>1?" ":""), n, s}' <<<"$TEXT")"

# Wrong bind password.
secret "$T/wrong.pw" 'not-the-password'
write_config "$T/pw.ini" "127.0.0.1:$P" 127.0.0.1/32 "$PKI/ca.crl" "${GOOD[@]}" ldap.bind_password_file="$T/wrong.pw"
broken "wrong bind password" "$T/pw.ini" bind 'bind_password_file'
check_match "wrong bind password: later directory checks skip" "$OUT" '^skip base_dn: '

# An untrusted directory certificate: ca_file is another CA.
write_config "$T/ca.ini" "127.0.0.1:$P" 127.0.0.1/32 "$PKI/ca.crl" "${GOOD[@]}" ldap.ca_file="$PKI/other-ca.crt"
broken "untrusted directory certificate" "$T/ca.ini" 'tls\[' 'ca_file'

# An expired directory certificate, seen from ten years ahead (faketime also
# moves GnuTLS's clock, which is what verification reads).
# (No CRL here: ten years on, the client CA that signed it has expired too.)
write_config "$T/ldaps.ini" "127.0.0.1:$P" 127.0.0.1/32 "" "${GOOD[@]}" \
  ldap.url="ldaps://127.0.0.1:$SLAPD_SPORT" ldap.starttls=false
run ldaps "$T/ldaps.ini" --user alice
check_match "ldaps: ok tls with days to expiry" "$OUT" '^ok   tls\[ldaps://127.0.0.1:[0-9]+\]: TLS with a certificate trusted .*expires in [0-9]+ day'
PRE=(faketime '+3650 days')
run expired-dir "$T/ldaps.ini"
PRE=()
check_match "expired directory certificate: FAIL tls names the fix" "$OUT" '^FAIL tls\[ldaps://[^]]*\]: .*expired.*; fix: renew the server'"'"'s certificate'

# A filter that finds nobody.
broken "user not found" "$T/good.ini" user 'user_filter' --user nosuchuser
check_match "user not found: groups skip" "$OUT" '^skip groups: '

# A dead second DC: a closed port after the good URL.
DEAD=$(free_port)
write_config "$T/dead.ini" "127.0.0.1:$P" 127.0.0.1/32 "$PKI/ca.crl" "${GOOD[@]}" \
  ldap.url="ldap://127.0.0.1:$SLAPD_PORT ldap://127.0.0.1:$DEAD"
broken "dead second DC" "$T/dead.ini" "tcp\\[ldap://127.0.0.1:$DEAD\\]" 'remove the URL from \[ldap\] url'
check_match "dead second DC: the first still binds" "$OUT" '^ok   bind: '
check_match "dead second DC: its tls skips" "$OUT" "^skip tls\\[ldap://127.0.0.1:$DEAD\\]"

# An expired front certificate (certtool with dates in the past).
printf 'cn = "localhost"\ndns_name = "localhost"\ntls_www_server\nsigning_key\nactivation_date = "2020-01-01 00:00:00"\nexpiration_date = "2021-01-01 00:00:00"\n' >"$T/old.tmpl"
certtool --generate-certificate --load-privkey "$T/server.key" --load-ca-certificate "$PKI/srv-ca.crt" \
  --load-ca-privkey "$PKI/srv-ca.key" --template "$T/old.tmpl" --outfile "$T/old.pem" >/dev/null 2>&1
write_config "$T/front.ini" "127.0.0.1:$P" 127.0.0.1/32 "$PKI/ca.crl" "${GOOD[@]}" https.cert_file="$T/old.pem"
broken "expired front certificate" "$T/front.ini" front_cert 'renew the certificate in \[https\] cert_file'

# A stale CRL: made 10 days ago with a nextUpdate of one day, by a client CA
# made 20 days ago (a CRL is only valid from a CA valid at its time).
printf 'cn = "old client CA"\nca\ncert_signing_key\ncrl_signing_key\nexpiration_days = 60\n' >"$T/oldca.tmpl"
certtool --generate-privkey --key-type=ecdsa --outfile "$T/oldca.key" >/dev/null 2>&1
faketime '-20 days' certtool --generate-self-signed --load-privkey "$T/oldca.key" --template "$T/oldca.tmpl" \
  --outfile "$T/oldca.crt" >/dev/null 2>&1
printf 'crl_next_update = 1\ncrl_number = 2\n' >"$T/crl.tmpl"
faketime '-10 days' certtool --generate-crl --load-ca-privkey "$T/oldca.key" --load-ca-certificate "$T/oldca.crt" \
  --template "$T/crl.tmpl" --outfile "$T/stale.crl" >/dev/null 2>&1
write_config "$T/crl.ini" "127.0.0.1:$P" 127.0.0.1/32 "$T/stale.crl" "${GOOD[@]}" https.client_ca_file="$T/oldca.crt"
# `dirbridge -n` refuses a stale CRL too, so the config check reports it
# (exit 2: the agent would not start) with the fix in its message.
run "stale CRL" "$T/crl.ini"
check_eq "stale CRL: exit 2" "$RC" 2
check_match "stale CRL: FAIL names the fix" "$OUT" '^FAIL (config|crl): .*stale.*publish a new CRL'

# A hub that does not know the token.
secret "$T/bad.token" 0123456789abcdef0123456789abcdef
write_config "$T/tok.ini" "127.0.0.1:$P" 127.0.0.1/32 "$PKI/ca.crl" "${GOOD[@]}" hub.token_file="$T/bad.token"
broken "wrong hub token" "$T/tok.ini" hub_upgrade 'token_file'
check_match "wrong hub token: TLS to the hub still ok" "$OUT" '^ok   hub_tls: '

# The hub's certificate from a CA that [hub] ca_file does not hold.
write_config "$T/hubca.ini" "127.0.0.1:$P" 127.0.0.1/32 "$PKI/ca.crl" "${GOOD[@]}" hub.ca_file="$PKI/other-ca.crt"
broken "untrusted hub certificate" "$T/hubca.ini" hub_tls '\[hub\] ca_file'

# No hub listening on [hub] url's port.
write_config "$T/hubdown.ini" "127.0.0.1:$P" 127.0.0.1/32 "$PKI/ca.crl" "${GOOD[@]}" hub.url="wss://127.0.0.1:$DEAD/agent/v1"
broken "hub down" "$T/hubdown.ini" hub_tcp 'the port in \[hub\] url'
check_match "hub down: hub_tls skips" "$OUT" '^skip hub_tls: '

# A server that takes the connection and never answers: the TLS check ends
# within timeout_ms (1 s here), for StartTLS and for ldaps://.
python3 -c 'import socket,sys,time; s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(8); print(s.getsockname()[1], flush=True); time.sleep(120)' >"$T/mute.port" &
bg_track $!
for i in $(seq 50); do [ -s "$T/mute.port" ] && break; sleep 0.1; done
MUTE=$(cat "$T/mute.port")
write_config "$T/mute.ini" "127.0.0.1:$P" 127.0.0.1/32 "$PKI/ca.crl" "${GOOD[@]}" ldap.timeout_ms=1000 \
  ldap.url="ldap://127.0.0.1:$MUTE" hub.url="wss://127.0.0.1:$MUTE/agent/v1"
S0=$(date +%s%N)
broken "mute server (StartTLS)" "$T/mute.ini" 'tls\[' 'did not speak TLS in time'
check_match "mute server: the hub's TLS check times out too" "$OUT" '^FAIL hub_tls: no TLS handshake within 1000 ms'
write_config "$T/mute2.ini" "127.0.0.1:$P" 127.0.0.1/32 "$PKI/ca.crl" "${GOOD[@]}" ldap.timeout_ms=1000 \
  ldap.url="ldaps://127.0.0.1:$MUTE" ldap.starttls=false
broken "mute server (ldaps)" "$T/mute2.ini" 'tls\[' 'did not speak TLS in time'
MS=$((($(date +%s%N) - S0) / 1000000))
if [ "$MS" -lt 15000 ]; then pass "mute servers: bounded ($MS ms)"; else fail "mute servers: took $MS ms"; fi

# The agent needs [https] and [hub]; so does the config check, as -n does.
write_ini "$T/nohub.ini" agent.name=x "${SLAPD_LDAP[@]}"
run "no hub section" "$T/nohub.ini"
check_eq "no hub section: exit 2" "$RC" 2
check_match "no hub section: FAIL config names it" "$OUT" '^FAIL config: .*\[hub\].*; fix: '

# An unusable config: exit 2, everything after it skipped.
write_ini "$T/bad.ini" agent.name=x ldap.url=nonsense
run "bad config" "$T/bad.ini"
check_eq "bad config: exit 2" "$RC" 2
check_match "bad config: FAIL config" "$OUT" '^FAIL config: .*; fix: '
check_match "bad config: the rest skip" "$OUT" '^skip bind: the config did not load'
run usage /dev/null --nonsense
check_eq "usage: exit 2" "$RC" 2

# Active Directory: ldaps, groups, and the clock compared with currentTime.
if [ -s "$SAMBA_DIR/tls/ca.crt" ]; then
  secret "$T/svc.pw" 'Svc-Passw0rd!'
  write_config "$T/ad.ini" "127.0.0.1:$P" 127.0.0.1/32 "$PKI/ca.crl" ldap.url=ldaps://127.0.0.1 \
    ldap.starttls=false ldap.ca_file="$SAMBA_DIR/tls/ca.crt" ldap.base_dn=DC=example,DC=test ldap.type=ad \
    ldap.bind_dn=CN=dirbridge-svc,CN=Users,DC=example,DC=test ldap.bind_password_file="$T/svc.pw" \
    ldap.groups=direct "ldap.user_filter=(&(objectClass=user)(sAMAccountName={username}))"
  run ad "$T/ad.ini" --user Administrator
  check_eq "ad: exit 0" "$RC" 0
  check_match "ad: ok clock" "$OUT" '^ok   clock: within [0-9]+ s'
  check_match "ad: ok groups" "$OUT" '^ok   groups: [1-9][0-9]* group'
  # Skewed time: this host ten minutes ahead of the DC.
  PRE=(faketime '+10 minutes')
  broken "clock skew" "$T/ad.ini" clock 'synchronise this host'"'"'s clock'
  PRE=()
  check_match "clock skew: about 600 s" "$OUT" '^FAIL clock: (59[0-9]|60[0-9]) s ahead'
else
  fail "ad: no Samba AD DC at $SAMBA_DIR (tests/run.sh starts one)"
fi

finish
