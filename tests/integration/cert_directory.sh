#!/bin/bash
# dirbridge-cert with the directory (the shared slapd): bulk issue --from-ldap,
# list -c with unissued users, the directory check on single issues; and end to
# end with the agent: a certificate it issued signs in until it is revoked and
# the agent, sent SIGHUP, reloads the CRL dirbridge-cert wrote.  Names: with
# -c a certificate carries the directory's own spelling of the user, and no
# spelling (ALICE, fullwidth ａlice) escapes revoke --user alice.
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

# ---- names: the directory's own spelling ----
FW=$'\xef\xbd\x81lice'   # U+FF41 FULLWIDTH LATIN SMALL LETTER A, then "lice"
subject() { certtool -i --infile "$1" | sed -n 's/^[[:space:]]*Subject: //p'; }
p12pem() {   # p12pem OUTFILE P12 NAME: the certificate and key as $PKI/NAME.crt/.key
  local pw; pw=$(sed -n 's/^password: //p' "$T/$1.out")
  openssl pkcs12 -in "$2" -passin "pass:$pw" -clcerts -nokeys -out "$PKI/$3.crt" &&
  openssl pkcs12 -in "$2" -passin "pass:$pw" -nocerts -nodes -out "$PKI/$3.key"
}
run "issue ALICE -c" 0 "$C" issue --dir ca -c agent.ini --user ALICE --out upper.p12
check_match "issue ALICE -c: says it used alice" "$(cat "$T/issue ALICE -c.out")" '^user: alice$'
check_match "issue ALICE -c: tells of the spelling" "$(cat "$T/issue ALICE -c.err")" "'ALICE' is 'alice' in the directory"
check "issue ALICE -c: PKCS#12 to PEM" p12pem "issue ALICE -c" upper.p12 db-upper
check_eq "issue ALICE -c: subject CN=alice" "$(subject "$PKI/db-upper.crt")" "CN=alice"
run "issue fullwidth alice -c" 0 "$C" issue --dir ca -c agent.ini --user "$FW" --out fw.p12
check_match "issue fullwidth alice -c: says it used alice" "$(cat "$T/issue fullwidth alice -c.out")" '^user: alice$'
check "issue fullwidth alice -c: PKCS#12 to PEM" p12pem "issue fullwidth alice -c" fw.p12 db-fw
check_eq "issue fullwidth alice -c: subject CN=alice" "$(subject "$PKI/db-fw.crt")" "CN=alice"
check_eq "index records alice for both" \
  "$(python3 -c 'import json,sys; print(" ".join(c["user"] for c in json.load(open(sys.argv[1]))["certs"][-2:]))' ca/index.json)" \
  "alice alice"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=ALICE \
  -keyout csr.key -out upper.csr 2>/dev/null
run "sign-csr ALICE -c" 0 "$C" sign-csr --dir ca -c agent.ini --csr upper.csr --user ALICE --out csr.pem
check_eq "sign-csr ALICE -c: subject CN=alice" "$(subject csr.pem)" "CN=alice"
run "bulk --users -c" 0 "$C" issue --dir ca -c agent.ini --users BOB,DAVE --out-dir bulk-c
check_eq "bulk --users -c: directory spellings" "$(cut -d' ' -f1 "$T/bulk --users -c.out" | sort | tr '\n' ' ')" "bob dave "
check "bulk --users -c: files under the directory spelling" test -s bulk-c/bob.p12 -a -s bulk-c/dave.password
run "bulk --users -c: two spellings of one user" 2 "$C" issue --dir ca -c agent.ini --users "bob,$FW,alice" --out-dir none
check_match "two spellings: message" "$(cat "$T/bulk --users -c: two spellings of one user.err")" 'are the same user'
run "unknown name -c" 1 "$C" issue --dir ca -c agent.ini --user "ｎosuchuser" --out x.p12
check "unknown name -c: nothing written" test ! -e x.p12

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
check_eq "ALICE's certificate signs in" "$(page_kind "$(get_login 127.0.0.1:$P db-upper)")" success
check_eq "fullwidth alice's certificate signs in" "$(page_kind "$(get_login 127.0.0.1:$P db-fw)")" success
run "revoke alice" 0 "$C" revoke --dir ca --user alice --reason keyCompromise
# The bulk one, ALICE's, fullwidth alice's and the signed CSR.
check_match "revoke alice: every spelling" "$(cat "$T/revoke alice.out")" '^revoked 4 certificates'
check_eq "CRL: the 4 entries carry reasonCode keyCompromise (openssl crl)" \
  "$(openssl crl -in ca/crl.pem -noout -text | grep -c 'Key Compromise')" 4
n=$(wc -l <"$T/agent.log")
kill -HUP "$AGENT_PID"
reloaded() { tail -n +"$((n + 1))" "$T/agent.log" | grep -q "certificates reloaded"; }
for i in $(seq 50); do reloaded && break; sleep 0.1; done
check "agent reloaded the CRL on SIGHUP" reloaded
check_eq "revoked alice gets the password form" "$(page_kind "$(get_login 127.0.0.1:$P db-alice)")" form
check_eq "revoked ALICE gets the password form" "$(page_kind "$(get_login 127.0.0.1:$P db-upper)")" form
check_eq "revoked fullwidth alice gets the password form" "$(page_kind "$(get_login 127.0.0.1:$P db-fw)")" form
check_eq "bob still signs in" "$(page_kind "$(get_login 127.0.0.1:$P db-bob)")" success
stop_agent "$T/agent.log"

# ---- names without the directory ----
run "fullwidth alice without -c refused" 2 "$C" issue --dir ca --user "$FW" --out x.p12
check_match "fullwidth without -c: message" "$(cat "$T/fullwidth alice without -c refused.err")" 'needs -c agent.ini'
run "extra spaces without -c refused" 2 "$C" issue --dir ca --user 'alice ' --out x.p12
run "bulk non-ASCII without -c refused" 2 "$C" issue --dir ca --users "bob,$FW" --out-dir none
run "bulk ALICE,alice refused" 2 "$C" issue --dir ca --users ALICE,alice --out-dir none
check "refused names: nothing written" test ! -e x.p12 -a ! -e none
run "ALICE without -c" 0 "$C" issue --dir ca --user ALICE --out nc.p12
check_match "ALICE without -c: as given" "$(cat "$T/ALICE without -c.out")" '^user: ALICE$'
run "list --user alice" 0 "$C" list --dir ca --user alice
check_eq "list --user alice: ALICE's newest certificate" "$(users "list --user alice")" "ALICE:valid "
run "list --all --user alice" 0 "$C" list --dir ca --all --user alice
check_eq "list --all --user alice: five certificates" "$(wc -l <"$T/list --all --user alice.out")" 5
run "list: one row per user" 0 "$C" list --dir ca
check_eq "list: rows per user" "$(users "list: one row per user")" "ALICE:valid bob:valid dave:valid "
run "list -c --status unissued" 0 "$C" list --dir ca -c agent.ini --filter "$F" --status unissued
check_eq "list -c: alice is not unissued" "$(users "list -c --status unissued")" ""
run "list --json --status valid --user Alice" 0 "$C" list --dir ca --json --status valid --user Alice
check_eq "list --json --user Alice" \
  "$(python3 -c 'import json,sys; print(" ".join(r["user"] for r in json.load(open(sys.argv[1]))))' "$T/list --json --status valid --user Alice.out")" "ALICE"
run "revoke --user alice: ALICE's" 0 "$C" revoke --dir ca --user alice
check_match "revoke --user alice: one" "$(cat "$T/revoke --user alice: ALICE's.out")" '^revoked 1 certificate '
run "issue --revoke-prior" 0 "$C" issue --dir ca --user Bob --revoke-prior --out bob2.p12
run "list --all --user bob" 0 "$C" list --dir ca --all --user BOB
check_eq "--revoke-prior revoked bob's under another spelling" \
  "$(awk '{print $2}' "$T/list --all --user bob.out" | sort | tr '\n' ' ')" "revoked revoked valid "

# A CA directory from an older version may hold a variant spelling: revoke -c
# asks the directory which spellings are alice.
run "issue alice for the old-index case" 0 "$C" issue --dir ca --user alice --out old.p12
python3 - ca/index.json "$FW" <<'PY'
import json, sys
p, fw = sys.argv[1], sys.argv[2]
d = json.load(open(p)); d["certs"][-1]["user"] = fw; json.dump(d, open(p, "w"))
PY
run "revoke old spelling without -c" 1 "$C" revoke --dir ca --user alice
run "revoke old spelling with -c" 0 "$C" revoke --dir ca -c agent.ini --user alice
check_match "revoke -c: the old spelling too" "$(cat "$T/revoke old spelling with -c.out")" '^revoked 1 certificate '

finish
