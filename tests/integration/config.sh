#!/bin/bash
# dirbridge -n (configuration check) and the command line, on configs with real
# certtool-made certificates: "configuration ok" and exit 0 for a good one; exit
# 2 with one "dirbridge: FILE:LINE: message" per problem for bad ones; secret
# files that others may read are refused; the bind password never appears in
# any output.  Then the daemon itself: SIGHUP reloads (a bad config is refused
# and the process keeps running), SIGTERM stops it with exit 0.
. "$ROOT/tests/lib.sh"
cd "$T" || exit 1
DB=$BUILD/dirbridge
PW='Bind-Pa55-never-shown'
unset JOURNAL_STREAM

# ---- certificates (certtool) ----
mkdir -p etc; cd etc || exit 1
ct() { certtool "$@" >/dev/null 2>&1 || { fail "certtool $*"; exit 1; }; }
printf 'cn = "config test CA"\nca\ncert_signing_key\ncrl_signing_key\nexpiration_days = 30\n' >ca.tmpl
printf 'cn = "other CA"\nca\ncert_signing_key\ncrl_signing_key\nexpiration_days = 30\n' >oca.tmpl
printf 'cn = "localhost"\ndns_name = "localhost"\nip_address = "127.0.0.1"\ntls_www_server\nsigning_key\nexpiration_days = 30\n' >srv.tmpl
printf 'crl_next_update = 7\ncrl_number = 1\n' >crl.tmpl
ct -p --key-type=ecdsa --outfile ca.key
ct -s --load-privkey ca.key --template ca.tmpl --outfile ca.pem
ct -p --key-type=ecdsa --outfile oca.key
ct -s --load-privkey oca.key --template oca.tmpl --outfile oca.pem
ct -p --key-type=ecdsa --outfile server.key
ct -c --load-privkey server.key --load-ca-certificate ca.pem --load-ca-privkey ca.key \
   --template srv.tmpl --outfile server.pem
ct -p --key-type=rsa --bits=2048 --outfile other.key
ct --generate-crl --load-ca-privkey ca.key --load-ca-certificate ca.pem --template crl.tmpl --outfile client.crl
ct --generate-crl --load-ca-privkey oca.key --load-ca-certificate oca.pem --template crl.tmpl --outfile other.crl
printf '%s\n' "$PW" >bind.password
head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >hub.token; echo >>hub.token
chmod 600 ./*.key bind.password hub.token
cd "$T" || exit 1

# good_ini: a complete config, on stdout, naming files relatively to it.
good_ini() {
  write_ini /dev/stdout agent.name=config-test agent.log_level=debug \
    "ldap.url=ldaps://127.0.0.1:636 ldaps://[::1]:636" ldap.ca_file=ca.pem \
    ldap.bind_dn=CN=svc-dirbridge,CN=Users,DC=example,DC=test ldap.bind_password_file=bind.password \
    ldap.base_dn=DC=example,DC=test ldap.type=ad ldap.groups=recursive \
    "https.listen=127.0.0.1:8443 [::1]:8443" https.public_url=https://localhost:8443 \
    https.cert_file=server.pem https.key_file=server.key https.client_ca_file=ca.pem https.crl_file=client.crl \
    "https.client_cert_ranges=127.0.0.0/8 ::1/128" https.cert_username=cn \
    hub.url=wss://127.0.0.1:9443/agent/v1 hub.token_file=hub.token hub.ca_file=ca.pem
}

ALL_OUT=$T/all-output
# run NAME ARGS...: runs dirbridge; sets OUT (stdout+stderr), RC.
run() {
  local name=$1; shift
  OUT=$(timeout 20 "$DB" "$@" 2>&1); RC=$?
  printf '== %s\n%s\n' "$name" "$OUT" >>"$ALL_OUT"
}

# ---- a good config ----
good_ini >etc/agent.ini
run good -n -c etc/agent.ini
check_eq "good config exits 0" "$RC" 0
check_eq "good config prints only 'configuration ok'" "$OUT" "configuration ok"
# Relative file names resolve against the config's directory, not the cwd.
mkdir -p elsewhere
OUT=$(cd elsewhere && timeout 20 "$DB" -n -c ../etc/agent.ini 2>&1); RC=$?
check_eq "relative paths resolve from another cwd" "$RC:$OUT" "0:configuration ok"
run long-options --check --config etc/agent.ini
check_eq "--check --config" "$RC:$OUT" "0:configuration ok"

# ---- the command line ----
run version --version
check_eq "--version exits 0" "$RC" 0
check_match "--version prints the version" "$OUT" '^dirbridge [0-9]+\.[0-9]+\.[0-9]+$'
run help -h
check_eq "-h exits 0" "$RC" 0
check_match "-h shows usage" "$OUT" 'usage: dirbridge .*-c FILE'
run badflag -x
check_eq "unknown flag exits 2" "$RC" 2
check_match "unknown flag is named" "$OUT" '^dirbridge: unknown option -x'
run badcluster -nx -c etc/agent.ini
check_eq "unknown flag in a cluster exits 2" "$RC" 2
check_match "unknown flag in a cluster is named" "$OUT" '^dirbridge: unknown option -x'
run badlong --frobnicate
check_eq "unknown long option exits 2" "$RC" 2
check_match "unknown long option is named" "$OUT" '^dirbridge: unknown option --frobnicate'

run noarg -c
check_eq "-c without FILE exits 2" "$RC" 2
check_match "-c without FILE says so" "$OUT" 'needs an argument'
run extra -n -c etc/agent.ini stray
check_eq "stray argument exits 2" "$RC" 2
run missing -n -c etc/nonexistent.ini
check_eq "missing config exits 2" "$RC" 2
check_match "missing config is named" "$OUT" '^dirbridge: etc/nonexistent.ini: cannot read'

# ---- bad configs: every error, each as FILE:LINE ----
good_ini | sed -e 's/^log_level = debug/log_level = loud/' \
               -e 's/^timeout_ms.*//; s/^groups = recursive/groups = recursive\ntimeout_ms = 10/' \
               -e 's|^url = ldaps://127.0.0.1:636.*|url = ldap://127.0.0.1:389|' \
               -e 's|^client_cert_ranges = .*|client_cert_ranges = 010.0.0.1 10.1.0.0/8 1.2.3.4/33 0.0.0.0/0|' \
               -e 's|^url = wss://.*|url = https://127.0.0.1/agent/v1|' \
               -e 's/^cert_username = cn/cert_username = cn\nbogus_key = 1/' >etc/bad.ini
printf '[extra]\nx = 1\n' >>etc/bad.ini
run bad -n -c etc/bad.ini
check_eq "bad config exits 2" "$RC" 2
check_nomatch "bad config is not ok" "$OUT" 'configuration ok'
line() { grep -n -- "$1" etc/bad.ini | head -1 | cut -d: -f1; }
check_match "log_level error at its line" "$OUT" "^dirbridge: etc/bad.ini:$(line '^log_level'): \[agent\] log_level: unknown value 'loud'"
check_match "timeout_ms error at its line" "$OUT" "^dirbridge: etc/bad.ini:$(line '^timeout_ms'): \[ldap\] timeout_ms: 10 is out of range"
check_match "plain ldap:// refused at its line" "$OUT" "^dirbridge: etc/bad.ini:$(line '^url = ldap:'): \[ldap\] url: .*plain link"
check_match "leading-zero octet refused" "$OUT" "etc/bad.ini:$(line '^client_cert_ranges'): .*'010.0.0.1' is not an address range"
check_match "host bits get a suggestion" "$OUT" "did you mean 10.0.0.0/8\?"
check_match "/33 refused" "$OUT" "1.2.3.4/33: the prefix length is too long"
check_match "0.0.0.0/0 is a warning" "$OUT" "etc/bad.ini:[0-9]+: warning: .*0.0.0.0/0 matches every IPv4"
check_match "hub url must be wss" "$OUT" "etc/bad.ini:$(line '^url = https'): \[hub\] url: .*must start with wss://"
check_match "unknown key at its line" "$OUT" "etc/bad.ini:$(line '^bogus_key'): \[https\] bogus_key: unknown key"
check_match "unknown section at its line" "$OUT" "etc/bad.ini:$(line '^\[extra\]'): unknown section \[extra\]"
n=$(grep -c '^dirbridge: etc/bad.ini:[0-9]*: ' <<<"$OUT")
check_eq "all 10 problems reported, each FILE:LINE" "$n" 10
check_eq "9 of them are errors, 1 a warning" "$(grep -c ': warning: ' <<<"$OUT")" 1

# [https] metrics_ranges and [agent] log_format: good values pass, bad ones are
# named at their line.
good_ini | sed -e 's|^cert_username = cn|cert_username = cn\nmetrics_ranges = 10.0.0.0/8 2001:db8::/32|' \
               -e 's/^log_level = debug/log_level = debug\nlog_format = json/' >etc/metrics.ini
run metrics-good -n -c etc/metrics.ini
check_eq "metrics_ranges and log_format = json accepted" "$OUT" "configuration ok"
good_ini | sed -e 's|^cert_username = cn|cert_username = cn\nmetrics_ranges = 127.0.0.1/8 ::1/129|' \
               -e 's/^log_level = debug/log_level = debug\nlog_format = yaml/' >etc/metrics-bad.ini
run metrics-bad -n -c etc/metrics-bad.ini
mline() { grep -n -- "$1" etc/metrics-bad.ini | head -1 | cut -d: -f1; }
check_eq "bad metrics_ranges / log_format exit 2" "$RC" 2
check_match "metrics_ranges host bits named at its line" "$OUT" \
  "^dirbridge: etc/metrics-bad.ini:$(mline '^metrics_ranges'): \[https\] metrics_ranges: 127.0.0.1/8 has host bits set beyond /8; did you mean 127.0.0.0/8\?"
check_match "metrics_ranges /129 refused" "$OUT" "metrics_ranges: ::1/129: the prefix length is too long"
check_match "log_format names its values" "$OUT" \
  "^dirbridge: etc/metrics-bad.ini:$(mline '^log_format'): \[agent\] log_format: unknown value 'yaml'; use one of text \| json"

# Syntax errors carry their line and never echo the text.
printf '[agent]\nname = x\nthis line is wrong\n' >etc/syntax.ini
run syntax -n -c etc/syntax.ini
check_eq "syntax error exits 2" "$RC" 2
check_match "syntax error at line 3" "$OUT" '^dirbridge: etc/syntax.ini:3: syntax error'
check_nomatch "syntax error does not echo the line" "$OUT" 'this line is wrong'

# Missing sections and keys.
printf '[ldap]\nurl = ldaps://h\n' >etc/partial.ini
run partial -n -c etc/partial.ini
check_eq "partial config exits 2" "$RC" 2
check_match "missing sections named" "$OUT" 'section \[https\] is missing'
check_match "missing keys named at the section line" "$OUT" 'etc/partial.ini:1: \[ldap\] base_dn is missing or empty; add `base_dn = '

# Files: the key does not match, the CRL is someone else's, the CA is not a CA file.
good_ini | sed -e 's/^key_file = server.key/key_file = other.key/' \
               -e 's/^crl_file = .*/crl_file = other.crl/' \
               -e 's/^client_ca_file = .*/client_ca_file = nonexistent.pem/' >etc/files.ini
run files -n -c etc/files.ini
check_eq "bad files exit 2" "$RC" 2
check_match "key mismatch named" "$OUT" "etc/files.ini:$(grep -n '^cert_file' etc/files.ini | cut -d: -f1): \[https\] cert_file: .*other.key does not belong to the certificate"
check_match "missing CA file named" "$OUT" "\[https\] client_ca_file: cannot read .*nonexistent.pem: No such file"
good_ini | sed -e 's/^crl_file = .*/crl_file = other.crl/' >etc/crl.ini
run crl -n -c etc/crl.ini
check_match "CRL of another CA refused" "$OUT" "\[https\] crl_file: .*not signed by a CA"
good_ini | sed -e 's/^cert_file = .*/cert_file = server.key/' >etc/notcert.ini
run notcert -n -c etc/notcert.ini
check_match "a key given as certificate refused" "$OUT" "\[https\] cert_file: .*no certificate could be parsed"

# Secret files others may read are refused, with the fix; the password never shows.
chmod 644 etc/bind.password
run worldpw -n -c etc/agent.ini
check_eq "world-readable password file exits 2" "$RC" 2
check_match "world-readable password file: chmod 600 hint" "$OUT" "\[ldap\] bind_password_file: .*bind.password .*mode 0644.*chmod 600"
chmod 640 etc/bind.password
run grouppw -n -c etc/agent.ini
check_match "group-readable password file refused" "$OUT" "mode 0640.*chmod 600"
chmod 600 etc/bind.password
chmod 604 etc/hub.token etc/server.key
run worldtoken -n -c etc/agent.ini
check_match "world-readable token refused" "$OUT" "\[hub\] token_file: .*chmod 600"
check_match "world-readable TLS key refused" "$OUT" "\[https\] key_file: .*chmod 600"
chmod 600 etc/hub.token etc/server.key
: >etc/empty.password; chmod 600 etc/empty.password
good_ini | sed -e 's/^bind_password_file = .*/bind_password_file = empty.password/' >etc/emptypw.ini
run emptypw -n -c etc/emptypw.ini
check_match "empty password file refused" "$OUT" "bind_password_file: .*empty"

# ---- the daemon: reload and stop ----
LOG=$T/daemon.log
"$DB" -c etc/agent.ini >"$LOG" 2>&1 &
PID=$!; bg_track $PID
wait_log() { local i; for i in $(seq 100); do grep -q -- "$1" "$LOG" && return 0; sleep 0.1; done; return 1; }
check "daemon starts" wait_log 'agent config-test running'
kill -HUP $PID
check "SIGHUP reloads a good config" wait_log 'configuration reloaded'
cp etc/agent.ini etc/agent.ini.good
sed -i 's/^timeout_ms.*//; s/^groups = recursive/groups = sometimes/' etc/agent.ini
kill -HUP $PID
check "SIGHUP with a bad config is refused" wait_log 'reload refused; still serving'
check_match "the refused reload names the problem with FILE:LINE" "$(cat "$LOG")" \
  "^dirbridge: etc/agent.ini:[0-9]+: \[ldap\] groups: unknown value 'sometimes'"
check "daemon still running after a refused reload" kill -0 $PID
check_nomatch "bind password not in the daemon's argv or environment" \
  "$(tr '\0' '\n' </proc/$PID/cmdline; tr '\0' '\n' </proc/$PID/environ)" "$PW"
cp etc/agent.ini.good etc/agent.ini
kill -TERM $PID
if timeout 10 tail --pid=$PID -f /dev/null; then wait $PID; rc=$?; else rc="still running"; fi
check_eq "SIGTERM exits 0" "$rc" 0
cat "$LOG" >>"$ALL_OUT"
: >"$LOG"
"$DB" -c etc/agent.ini >"$LOG" 2>&1 &
PID=$!; bg_track $PID
wait_log 'agent config-test running'
kill -INT $PID
if timeout 10 tail --pid=$PID -f /dev/null; then wait $PID; rc=$?; else rc="still running"; fi
check_eq "SIGINT exits 0" "$rc" 0
cat "$LOG" >>"$ALL_OUT"

# ---- the password never appears in any output ----
check_nomatch "bind password never in any output" "$(cat "$ALL_OUT")" "$PW"

finish
