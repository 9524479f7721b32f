#!/bin/bash
# dirbridge-cert: CA, PKCS#12 issue read back by certtool, openssl and NSS
# pk12util, profile checks, CSR signing, revocation and CRLs, list statuses,
# bulk issue with a zip, concurrent runs, and the errors for bad input.
. "$ROOT/tests/lib.sh"
[ -n "${T:-}" ] && cd "$T" || { echo "FAIL T is not set"; exit 1; }
C=$BUILD/dirbridge-cert

# run NAME WANT_RC CMD...: runs CMD with output in NAME.out/NAME.err, checks rc.
run() {
  local name=$1 want=$2 rc; shift 2
  "$@" >"$T/$name.out" 2>"$T/$name.err"; rc=$?
  check_eq "$name (exit $want)" "$rc" "$want"
}
field() { sed -n "s/^$1: //p" "$T/$2.out"; }
mode() { stat -c %a "$1"; }

# ---- init-ca ----
run init-ca 0 "$C" init-ca --dir ca --cn "dirbridge test CA" --days 3650
check_eq "ca.key is 0600" "$(mode ca/ca.key)" 600
cainfo=$(certtool -i --infile ca/ca.pem)
check_match "CA: basicConstraints CA critical" "$cainfo" 'Basic Constraints \(critical\):'
check_match "CA: is a CA" "$cainfo" 'Certificate Authority \(CA\): TRUE'
check_match "CA: keyCertSign" "$cainfo" 'Certificate signing'
check_match "CA: cRLSign" "$cainfo" 'CRL signing'
check_match "CA: subject key id" "$cainfo" 'Subject Key Identifier'
check_match "CA: ECDSA P-256 by default" "$cainfo" 'Curve:[[:space:]]+SECP256R1'
run "init-ca refuses to overwrite" 2 "$C" init-ca --dir ca --cn other
check "CA unchanged after refused init" certtool --verify --load-ca-certificate ca/ca.pem --infile ca/ca.pem
run "init-ca rsa" 0 "$C" init-ca --dir rsaca --cn "rsa CA" --key-type rsa --days 30
check_match "CA: RSA 3072 with --key-type rsa" "$(certtool -i --infile rsaca/ca.pem)" 'Algorithm Security Level: High \(3072 bits\)'

# ---- issue ----
run issue-alice 0 "$C" issue --dir ca --user alice --out alice.p12
PW=$(field password issue-alice); SERIAL=$(field serial issue-alice)
check_match "a strong password was printed" "$PW" '^[A-Za-z0-9]{20}$'
check_eq "PKCS#12 is 0600" "$(mode alice.p12)" 600
p12info=$(certtool --p12-info --inder --infile alice.p12 --password "$PW" 2>&1)
check_match "certtool reads the PKCS#12" "$p12info" 'Type: PKCS #8 Encrypted key'
check_match "PKCS#12 MAC is SHA-256" "$p12info" 'MAC: SHA256'
check_match "PKCS#12 uses PBES2 AES-256" "$p12info" 'PBES2-AES256-CBC'
check_match "PKCS#12 friendly name" "$p12info" 'Friendly name: alice'
check_eq "PKCS#12 carries the CA" "$(grep -c 'BEGIN CERTIFICATE' <<<"$p12info")" 2
check "certtool refuses a wrong password" bash -c "! certtool --p12-info --inder --infile alice.p12 --password wrong-password"
check "openssl pkcs12 reads it" openssl pkcs12 -in alice.p12 -passin "pass:$PW" -nodes -out alice.all.pem
check "openssl extracts the client certificate" openssl pkcs12 -in alice.p12 -passin "pass:$PW" -clcerts -nokeys -out alice.pem
check "openssl: key matches certificate" bash -c \
  "[ \"\$(openssl pkey -in alice.all.pem -pubout)\" = \"\$(openssl x509 -in alice.pem -noout -pubkey)\" ]"
mkdir nss && certutil -N -d sql:nss --empty-password
printf '%s\n' "$PW" >pw.txt
check "pk12util imports it" pk12util -i alice.p12 -d sql:nss -w pw.txt
check_match "NSS has alice's key" "$(certutil -K -d sql:nss 2>&1)" 'alice'
check "certtool --verify against the CA" bash -c \
  "certtool --verify --load-ca-certificate ca/ca.pem --infile alice.pem | grep -q 'Verified'"
info=$(certtool -i --infile alice.pem)
check_match "subject CN=alice" "$info" 'Subject: CN=alice$'
check_match "EKU clientAuth" "$info" 'TLS WWW Client'
check_eq "EKU clientAuth only" "$(grep -A3 'Key Purpose' <<<"$info" | grep -c -E 'TLS WWW|Code signing|Email|OCSP|Time stamping|\.[0-9]+\.')" 1
check_match "keyUsage critical digitalSignature" "$(grep -A1 'Key Usage (critical)' <<<"$info")" 'Digital signature'
check_match "authority key id" "$info" 'Authority Key Identifier'
hexserial=$(openssl x509 -in alice.pem -noout -serial | cut -d= -f2 | tr A-F a-f)
check_eq "printed serial is the certificate's" "$hexserial" "$SERIAL"
check_match "serial is 128 bits, positive" "$SERIAL" '^[0-7][0-9a-f]{31}$'
na=$(date -ud "$(openssl x509 -in alice.pem -noout -enddate | cut -d= -f2)" +%s)
check "365 days by default" test $(( (na - $(date +%s)) / 86400 )) -ge 364 -a $(( (na - $(date +%s)) / 86400 )) -le 365
run "issue --days capped by the CA" 0 "$C" issue --dir rsaca --user alice --days 1000 --out capped.p12
check_eq "notAfter never beyond the CA's" "$(field not_after "issue --days capped by the CA")" \
  "$(date -ud "$(openssl x509 -in rsaca/ca.pem -noout -enddate | cut -d= -f2)" +%Y-%m-%dT%H:%M:%SZ)"

# password files
printf 'S3cret-from-file\n' >pwfile; chmod 600 pwfile
run "issue --password-file" 0 "$C" issue --dir ca --user erin --password-file pwfile --out erin.p12
check_nomatch "no password printed with --password-file" "$(cat "$T/issue --password-file.out")" 'password'
check "PKCS#12 opens with the file's password" openssl pkcs12 -in erin.p12 -passin pass:S3cret-from-file -nokeys -noout
cp pwfile pwopen; chmod 644 pwopen
run "world-readable password file refused" 2 "$C" issue --dir ca --user erin --password-file pwopen --out x.p12
: >pwempty; chmod 600 pwempty
run "empty password file refused" 2 "$C" issue --dir ca --user erin --password-file pwempty --out x.p12
run "missing password file refused" 2 "$C" issue --dir ca --user erin --password-file nonexistent --out x.p12
run "invalid user name refused" 2 "$C" issue --dir ca --user 'a,b=c' --out x.p12
check "nothing written for refused issues" test ! -e x.p12
check_eq "refused issues left the index alone" "$(grep -c '"serial"' ca/index.json)" 2

# ---- revoke, --revoke-prior, CRL ----
crlnum() { certtool --crl-info --infile "$1" | sed -n '/CRL Number/s/.*: *//p'; }
n0=$(crlnum ca/crl.pem)
run revoke-alice 0 "$C" revoke --dir ca --serial "${SERIAL^^}" --reason keyCompromise
crl=$(certtool --crl-info --infile ca/crl.pem)
check_match "revoked serial in the CRL" "$crl" "Serial Number \(hex\): $SERIAL"
n1=$(crlnum ca/crl.pem)
check "cRLNumber increased on revoke" test $((16#$n1)) -gt $((16#$n0))
check "CRL verifies against the CA" bash -c "certtool --verify-crl --load-ca-certificate ca/ca.pem --infile ca/crl.pem | grep -q 'Verified'"
check_match "index keeps the reason" "$(cat ca/index.json)" '"reason": "keyCompromise"'
run "revoking again finds nothing" 1 "$C" revoke --dir ca --serial "$SERIAL"
run "unknown reason refused" 2 "$C" revoke --dir ca --user erin --reason bogus
run "revoke needs serial or user" 2 "$C" revoke --dir ca
run issue-bob1 0 "$C" issue --dir ca --user bob --out bob1.p12
run issue-bob2 0 "$C" issue --dir ca --user bob --revoke-prior --out bob2.p12
B1=$(field serial issue-bob1); B2=$(field serial issue-bob2)
crl=$(certtool --crl-info --infile ca/crl.pem)
check_match "--revoke-prior puts the old serial in the CRL" "$crl" "$B1"
check_nomatch "--revoke-prior keeps the new certificate valid" "$crl" "$B2"
# reason SERIAL: the revocation reason that list --all --json reports.
reason() { "$C" list --dir ca --all --json | python3 -c 'import json,sys; print([c.get("reason") for c in json.load(sys.stdin) if c["serial"]==sys.argv[1]][0])' "$1"; }
check_eq "--revoke-prior reason superseded" "$(reason "$B1")" superseded
n2=$(crlnum ca/crl.pem)
run crl 0 "$C" crl --dir ca --out out.crl
n3=$(crlnum out.crl)
check "cRLNumber increases with every CRL" test $((16#$n3)) -gt $((16#$n2)) -a $((16#$n2)) -gt $((16#$n1))
check_match "CRL has nextUpdate" "$(certtool --crl-info --infile out.crl)" 'Next at:'
check "crl --out verifies" bash -c "certtool --verify-crl --load-ca-certificate ca/ca.pem --infile out.crl | grep -q 'Verified'"

# ---- list ----
list=$("$C" list --dir ca)
check_match "list: alice revoked" "$list" "^alice +revoked +$SERIAL"
check_match "list: bob valid with the newest serial" "$list" "^bob +valid +$B2"
check_eq "list: one row per user" "$(grep -c '^bob ' <<<"$list")" 1
check_eq "list: exactly the users, no header" "$(awk '{print $1}' <<<"$list" | sort | tr '\n' ' ')" "alice bob erin "
check_eq "list --status valid" "$("$C" list --dir ca --status valid | awk '{print $1}' | sort | tr '\n' ' ')" "bob erin "
check_eq "list --status revoked" "$("$C" list --dir ca --status revoked | awk '{print $1}' | tr '\n' ' ')" "alice "
# A clock two years ahead: everything not revoked has expired.
later=$(ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 faketime -f '+730d' "$C" list --dir ca --status expired 2>&1)
check_eq "list --status expired (faketime +730d)" "$(awk '{print $1}' <<<"$later" | sort | tr '\n' ' ')" "bob erin "
check_eq "no expired certificates today" "$("$C" list --dir ca --status expired | wc -l)" 0
run "list --status unissued needs -c" 2 "$C" list --dir ca --status unissued
run "list --status bogus" 2 "$C" list --dir ca --status bogus
check "list --json is JSON" python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d)==3' /dev/stdin <<<"$("$C" list --dir ca --json)"

# ---- sign-csr ----
printf 'cn = "carol"\n' >carol.tmpl; printf 'cn = "mallory"\n' >mallory.tmpl
certtool -p --key-type ecdsa --outfile carol.key 2>/dev/null
certtool -q --load-privkey carol.key --template carol.tmpl --outfile carol.csr 2>/dev/null
certtool -q --load-privkey carol.key --template mallory.tmpl --outfile mallory.csr 2>/dev/null
certtool -p --key-type rsa --bits 1024 --outfile weak.key 2>/dev/null
certtool -q --load-privkey weak.key --template carol.tmpl --outfile weak.csr 2>/dev/null
certtool -p --key-type rsa --bits 2048 --outfile rsa.key 2>/dev/null
certtool -q --load-privkey rsa.key --template carol.tmpl --outfile rsa.csr 2>/dev/null
run sign-csr 0 "$C" sign-csr --dir ca --csr carol.csr --user carol --out carol.pem
check "signed CSR verifies against the CA" bash -c "certtool --verify --load-ca-certificate ca/ca.pem --infile carol.pem | grep -q Verified"
check_match "signed CSR has clientAuth" "$(certtool -i --infile carol.pem)" 'TLS WWW Client'
check_eq "signed CSR keeps the requester's key" "$(openssl x509 -in carol.pem -noout -pubkey)" "$(openssl pkey -in carol.key -pubout)"
run "sign-csr RSA 2048" 0 "$C" sign-csr --dir ca --csr rsa.csr --user carol --out carol-rsa.pem
run "CSR for another user refused" 1 "$C" sign-csr --dir ca --csr mallory.csr --user carol --out x.pem
check_match "CSR for another user: message" "$(cat "$T/CSR for another user refused.err")" 'CN=mallory, not for carol'
run "RSA 1024 CSR refused" 1 "$C" sign-csr --dir ca --csr weak.csr --user carol --out x.pem
# A flipped bit in the signature must fail the self-signature check.
openssl req -in carol.csr -outform DER -out carol.der
python3 -c 'import sys; b=bytearray(open(sys.argv[1],"rb").read()); b[-3]^=1; open(sys.argv[2],"wb").write(b)' carol.der tampered.der
run "tampered CSR refused" 1 "$C" sign-csr --dir ca --csr tampered.der --user carol --out x.pem
echo garbage >garbage.csr
run "garbage CSR refused" 2 "$C" sign-csr --dir ca --csr garbage.csr --user carol --out x.pem
run "unreadable CSR refused" 2 "$C" sign-csr --dir ca --csr nonexistent.csr --user carol --out x.pem
check "nothing written for refused CSRs" test ! -e x.pem

# ---- bulk and zip ----
run bulk 0 "$C" issue --dir ca --users u1,u2,u3 --out-dir bulk --zip bulk.zip
check_eq "bulk: one summary line per user" "$(grep -cE '^u[123] [0-9a-f]{32} ' "$T/bulk.out")" 3
for u in u1 u2 u3; do
  check_eq "bulk: $u files are 0600" "$(mode bulk/$u.p12) $(mode bulk/$u.password)" "600 600"
  check "bulk: $u.p12 opens with $u.password" \
    certtool --p12-info --inder --infile "bulk/$u.p12" --password "$(cat "bulk/$u.password")"
done
check_eq "zip holds every file" \
  "$(python3 -c 'import zipfile,sys; print(" ".join(sorted(zipfile.ZipFile(sys.argv[1]).namelist())))' bulk.zip)" \
  "u1.p12 u1.password u2.p12 u2.password u3.p12 u3.password"
check "zip content equals the files" python3 -c '
import zipfile, sys
z = zipfile.ZipFile("bulk.zip")
assert all(z.read(n) == open("bulk/" + n, "rb").read() for n in z.namelist())'
check_eq "zip is 0600" "$(mode bulk.zip)" 600
before=$(grep -c '"serial"' ca/index.json)
run "bulk with a bad name refused" 2 "$C" issue --dir ca --users v1,bad/name --out-dir bulk2
check "bulk refused: nothing written" test ! -e bulk2/v1.p12
check_eq "bulk refused: index unchanged" "$(grep -c '"serial"' ca/index.json)" "$before"

# ---- concurrency ----
for i in 1 2 3 4 5 6 7 8; do
  "$C" issue --dir ca --user "par$i" --out "par$i.p12" >"par$i.out" 2>&1 &
  pids+=($!)
done
ok=0; for p in "${pids[@]}"; do wait "$p" && ok=$((ok + 1)); done
check_eq "8 concurrent issues succeed" "$ok" 8
check_eq "index holds all 8" "$(python3 -c 'import json; print(sum(c["user"].startswith("par") for c in json.load(open("ca/index.json"))["certs"]))')" 8
check_eq "serials unique" "$(python3 -c 'import json; s=[c["serial"] for c in json.load(open("ca/index.json"))["certs"]]; print(len(s)-len(set(s)))')" 0
check_eq "no temp files left" "$(ls -a ca | grep -c tmp)" 0

# ---- bad state and usage ----
run "wrong --dir" 2 "$C" list --dir nonexistent
check_match "wrong --dir: message" "$(cat "$T/wrong --dir.err")" '^dirbridge: nonexistent'
mkdir empty
run "missing CA" 2 "$C" issue --dir empty --user alice --out x.p12
check_match "missing CA: message" "$(cat "$T/missing CA.err")" 'has no CA.*init-ca'
cp -r ca corrupt && echo '{"version":1,"crl_number":1,"certs":[{"serial":"zz"}]}' >corrupt/index.json
run "corrupt index" 2 "$C" list --dir corrupt
check_match "corrupt index: message" "$(cat "$T/corrupt index.err")" 'corrupt index'
run "-h" 0 "$C" -h
run "--version" 0 "$C" --version
check_match "--version prints it" "$(cat "$T/--version.out")" '^dirbridge-cert [0-9]'
run "unknown command" 2 "$C" frobnicate --dir ca
run "missing --dir" 2 "$C" list

finish
