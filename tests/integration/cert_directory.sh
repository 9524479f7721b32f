#!/bin/bash
# dirbridge-cert with the directory (the shared slapd): bulk issue --from-ldap,
# list -c with unissued users, the directory check on single issues; and end to
# end with the agent: a certificate it issued signs in until it is revoked and
# the agent, sent SIGHUP, reloads the CRL dirbridge-cert wrote.
source "$ROOT/tests/lib.sh"
source "$ROOT/tests/https-lib.sh"
[ -n "${T:-}" ] && cd "$T" || { echo "FAIL T is not set"; exit 1; }
C=$BUILD/dirbridge-cert

run() {   # run NAME WANT_RC CMD...
  local name=$1 want=$2 rc; shift 2
  "$@" >"$T/$name.out" 2>"$T/$name.err"; rc=$?
  check_eq "$name (exit $want)" "$rc" "$want"
}
users() { awk '{print $1 ":" $2}' "$T/$1.out" | sort | tr '\n' ' '; }

https_setup || { fail "pki: could not build the test PKI"; finish; exit; }
P=$(free_port)
write_config "$T/agent.ini" "127.0.0.1:$P" "127.0.0.1/32" "$T/ca/crl.pem"
# The agent trusts the CA that dirbridge-cert makes, and its CRL.
sed -i "s|^client_ca_file = .*|client_ca_file = $T/ca/ca.pem|" "$T/agent.ini"
run init-ca 0 "$C" init-ca --dir ca --cn "dirbridge-cert e2e CA"

# ---- the directory ----
F='(|(uid=alice)(uid=bob)(uid=carol)(uid=dave))'
run "list -c before any issue" 0 "$C" list --dir ca -c agent.ini --filter "$F"
# carol is locked in the test slapd: she cannot sign in, so is not listed.
check_eq "every enabled user unissued" "$(users "list -c before any issue")" "alice:unissued bob:unissued dave:unissued "
run "issue --from-ldap" 0 "$C" issue --dir ca --from-ldap -c agent.ini --filter '(|(uid=alice)(uid=bob))' --out-dir bulk --zip bulk.zip
check_eq "from-ldap: one line per directory user" "$(cut -d' ' -f1 "$T/issue --from-ldap.out" | grep -v zip: | sort | tr '\n' ' ')" "alice bob "
check "from-ldap: alice.p12 opens with alice.password" \
  certtool --p12-info --inder --infile bulk/alice.p12 --password "$(cat bulk/alice.password)"
check_eq "from-ldap: zip of both" \
  "$(python3 -c 'import zipfile,sys; print(" ".join(sorted(zipfile.ZipFile(sys.argv[1]).namelist())))' bulk.zip)" \
  "alice.p12 alice.password bob.p12 bob.password"
run "list -c after" 0 "$C" list --dir ca -c agent.ini --filter "$F"
check_eq "issued users valid, the rest unissued" "$(users "list -c after")" "alice:valid bob:valid dave:unissued "
run "list --status unissued" 0 "$C" list --dir ca -c agent.ini --filter "$F" --status unissued
check_eq "--status unissued" "$(users "list --status unissued")" "dave:unissued "
run "unknown directory user refused" 1 "$C" issue --dir ca -c agent.ini --user nosuchuser --out x.p12
check_match "unknown user: message" "$(cat "$T/unknown directory user refused.err")" 'nosuchuser: no such user in the directory'
run "locked directory user refused" 1 "$C" issue --dir ca -c agent.ini --user carol --out x.p12
check "nothing written for refused users" test ! -e x.p12
run "from-ldap matching nobody" 1 "$C" issue --dir ca --from-ldap -c agent.ini --filter '(uid=nosuchuser)' --out-dir none
run "from-ldap without -c" 2 "$C" issue --dir ca --from-ldap --out-dir none
run "issue -c for a directory user" 0 "$C" issue --dir ca -c agent.ini --user dave --out dave.p12

# ---- end to end: the agent honours the CRL ----
pem() {   # pem USER: the user's PKCS#12 as $PKI/db-USER.crt/.key for curl
  local pw; pw=$(cat "bulk/$1.password")
  openssl pkcs12 -in "bulk/$1.p12" -passin "pass:$pw" -clcerts -nokeys -out "$PKI/db-$1.crt" &&
  openssl pkcs12 -in "bulk/$1.p12" -passin "pass:$pw" -nocerts -nodes -out "$PKI/db-$1.key"
}
check "alice's PKCS#12 to PEM" pem alice
check "bob's PKCS#12 to PEM" pem bob
start_agent "$T/agent.ini" "$T/agent.log" || { fail "agent starts"; finish; exit; }
check_eq "alice's issued certificate signs in" "$(page_kind "$(get_login 127.0.0.1:$P db-alice)")" success
check_eq "bob's issued certificate signs in" "$(page_kind "$(get_login 127.0.0.1:$P db-bob)")" success
run "revoke alice" 0 "$C" revoke --dir ca --user alice --reason keyCompromise
n=$(wc -l <"$T/agent.log")
kill -HUP "$AGENT_PID"
reloaded() { tail -n +"$((n + 1))" "$T/agent.log" | grep -q "certificates reloaded"; }
for i in $(seq 50); do reloaded && break; sleep 0.1; done
check "agent reloaded the CRL on SIGHUP" reloaded
check_eq "revoked alice gets the password form" "$(page_kind "$(get_login 127.0.0.1:$P db-alice)")" form
check_eq "bob still signs in" "$(page_kind "$(get_login 127.0.0.1:$P db-bob)")" success
stop_agent "$T/agent.log"

finish
