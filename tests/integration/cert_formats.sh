#!/bin/bash
# dirbridge-cert: PKCS#12 formats (--p12-format modern|compat) read back by
# OpenSSL 3 with and without -legacy, NSS pk12util and certtool; revocation
# reasons in the CRL entries as OpenSSL and certtool show them, for ECDSA and
# RSA CAs; bulk issue on several threads giving every user once, in order.
. "$ROOT/tests/lib.sh"
[ -n "${T:-}" ] && cd "$T" || { echo "FAIL T is not set"; exit 1; }
C=$BUILD/dirbridge-cert

run() {
  local name=$1 want=$2 rc; shift 2
  "$@" >"$T/$name.out" 2>"$T/$name.err"; rc=$?
  check_eq "$name (exit $want)" "$rc" "$want"
}
field() { sed -n "s/^$1: //p" "$T/$2.out"; }

run init-ca 0 "$C" init-ca --dir ca --cn "formats CA"
PW=Format-test-pw1
printf '%s\n' "$PW" >pw && chmod 600 pw
mkdir nss && certutil -N -d sql:nss --empty-password

# ---- PKCS#12 formats ----
run "issue default" 0 "$C" issue --dir ca --user dflt --password-file pw --out dflt.p12
run "issue modern" 0 "$C" issue --dir ca --user mod --password-file pw --out mod.p12 --p12-format modern
run "issue compat" 0 "$C" issue --dir ca --user cmp --password-file pw --out cmp.p12 --p12-format compat
run "unknown --p12-format refused" 2 "$C" issue --dir ca --user x --password-file pw --out x.p12 --p12-format legacy
check "unknown --p12-format: nothing written" test ! -e x.p12
check_match "unknown --p12-format: message" "$(cat "$T/unknown --p12-format refused.err")" 'modern or compat'

for f in dflt mod cmp; do
  # OpenSSL 3 keeps 3DES in its default provider, so it reads compat files
  # without -legacy too (-legacy matters for RC2 and single DES).
  info=$(openssl pkcs12 -info -noout -in $f.p12 -passin "pass:$PW" 2>&1); rc=$?
  check_eq "$f: openssl pkcs12 -info (no -legacy) reads it" "$rc" 0
  linfo=$(openssl pkcs12 -legacy -info -noout -in $f.p12 -passin "pass:$PW" 2>&1); rc=$?
  check_eq "$f: openssl pkcs12 -legacy -info reads it" "$rc" 0
  check "$f: openssl refuses a wrong password" bash -c "! openssl pkcs12 -info -noout -in $f.p12 -passin pass:wrong 2>/dev/null"
  case $f in
    cmp)
      check_match "$f: openssl sees a SHA-1 MAC" "$info" '^MAC: sha1,'
      check_eq "$f: openssl sees 3DES bags, key and certificates" \
        "$(grep -c 'pbeWithSHA1And3-KeyTripleDES-CBC' <<<"$info")" 2
      check_nomatch "$f: no PBES2" "$info" 'PBES2' ;;
    *)
      check_match "$f: openssl sees a SHA-256 MAC" "$info" '^MAC: sha256,'
      check_eq "$f: openssl sees PBES2/AES-256 bags" "$(grep -c 'PBES2, PBKDF2, AES-256-CBC' <<<"$info")" 2
      check_nomatch "$f: no 3DES" "$info" 'TripleDES' ;;
  esac
  check "$f: pk12util -l lists it" pk12util -l $f.p12 -d sql:nss -W "$PW"
  check_match "$f: pk12util shows the key" "$(pk12util -l $f.p12 -d sql:nss -W "$PW" 2>&1)" "Friendly Name: $f"
  check "$f: pk12util -l refuses a wrong password" bash -c "! pk12util -l $f.p12 -d sql:nss -W wrong >/dev/null 2>&1"
  ct=$(certtool --p12-info --inder --infile $f.p12 --password "$PW" 2>&1); rc=$?
  check_eq "$f: certtool --p12-info reads it" "$rc" 0
  case $f in
    cmp) check_match "$f: certtool: SHA-1 MAC" "$ct" 'MAC: SHA1'
         check_eq "$f: certtool: PKCS12-3DES-SHA1 bags" "$(grep -c 'Schema: PKCS12-3DES-SHA1' <<<"$ct")" 2 ;;
    *)   check_match "$f: certtool: SHA-256 MAC" "$ct" 'MAC: SHA256'
         check_eq "$f: certtool: PBES2-AES256-CBC bags" "$(grep -c 'Schema: PBES2-AES256-CBC' <<<"$ct")" 2 ;;
  esac
  check "$f: pk12util imports it" pk12util -i $f.p12 -d sql:nss -W "$PW"
done
check_eq "NSS holds all three keys" "$(certutil -K -d sql:nss 2>/dev/null | awk '/^</{print $NF}' | sort | paste -sd,)" cmp,dflt,mod

# ---- revocation reasons in the CRL ----
# entry FILE SERIAL: OpenSSL's text of one revoked entry, up to the next one.
entry() { openssl crl -in "$1" -noout -text | awk -v s="${2^^}" '/Serial Number:/{p=($3==s)} /Signature Algorithm/{p=0} p'; }
reasons=(keyCompromise cACompromise affiliationChanged superseded cessationOfOperation certificateHold privilegeWithdrawn)
shown=("Key Compromise" "CA Compromise" "Affiliation Changed" "Superseded" "Cessation Of Operation" "Certificate Hold" "Privilege Withdrawn")
for ca in ca rsaca; do
  [ $ca = rsaca ] && run "init-ca rsa" 0 "$C" init-ca --dir rsaca --cn "formats RSA CA" --key-type rsa
  serials=()
  for i in "${!reasons[@]}" u; do
    run "$ca issue r$i" 0 "$C" issue --dir $ca --user "r$i" --password-file pw --out "$ca-r$i.p12" --p12-format compat
    serials+=("$(field serial "$ca issue r$i")")
  done
  for i in "${!reasons[@]}"; do
    run "$ca revoke r$i ${reasons[$i]}" 0 "$C" revoke --dir $ca --user "r$i" --reason "${reasons[$i]}"
  done
  run "$ca revoke ru (no reason)" 0 "$C" revoke --dir $ca --user ru
  run "$ca crl" 0 "$C" crl --dir $ca --out $ca.crl
  check "$ca: openssl verifies the CRL against the CA" bash -c "openssl crl -in $ca.crl -noout -CAfile $ca/ca.pem 2>&1 | grep -q 'verify OK'"
  check "$ca: certtool verifies the CRL" bash -c "certtool --verify-crl --load-ca-certificate $ca/ca.pem --infile $ca.crl | grep -q 'Verified'"
  ci=$(certtool --crl-info --infile $ca.crl)
  check_match "$ca: certtool lists 8 entries" "$ci" 'Revoked certificates \(8\)'
  check_match "$ca: certtool: version 2" "$ci" 'Version: 2'
  check_match "$ca: certtool: authority key identifier" "$ci" 'Authority Key Identifier'
  check_match "$ca: certtool: CRL number" "$ci" 'CRL Number'
  for i in "${!reasons[@]}"; do
    e=$(entry $ca.crl "${serials[$i]}")
    check_match "$ca: entry of r$i listed" "$e" 'Revocation Date'
    check_match "$ca: entry of r$i carries ${reasons[$i]}" "$(grep -A1 'CRL Reason Code' <<<"$e")" "${shown[$i]}"
  done
  e=$(entry $ca.crl "${serials[7]}")
  check_match "$ca: entry revoked without a reason is listed" "$e" 'Revocation Date'
  check_nomatch "$ca: reason unspecified is left out (RFC 5280 5.3.1)" "$e" 'CRL entry extensions'
  check_eq "$ca: ca/crl.pem is the same CRL kind" "$(openssl crl -in $ca/crl.pem -noout -text | grep -c 'CRL Reason Code')" 7
done
check_match "RSA CA signs with sha256WithRSAEncryption" "$(openssl crl -in rsaca.crl -noout -text)" 'sha256WithRSAEncryption'
check_match "ECDSA CA signs with ecdsa-with-SHA256" "$(openssl crl -in ca.crl -noout -text)" 'ecdsa-with-SHA256'

# ---- bulk issue on every processor ----
users=$(seq -f 'b%02g' 1 9 | paste -sd,)
run bulk 0 "$C" issue --dir ca --users "$users" --out-dir bulk --zip bulk.zip --p12-format compat
check_eq "bulk: summary lines in user order" "$(awk '{print $1}' "$T/bulk.out" | grep '^b' | paste -sd,)" "$users"
check_eq "bulk: index records every user once, in order" \
  "$(python3 -c 'import json; print(",".join(c["user"] for c in json.load(open("ca/index.json"))["certs"] if c["user"].startswith("b")))')" "$users"
check_eq "bulk: serials unique" "$(python3 -c 'import json; s=[c["serial"] for c in json.load(open("ca/index.json"))["certs"]]; print(len(s)-len(set(s)))')" 0
ok=0
for u in ${users//,/ }; do
  s=$(awk -v u=$u '$1==u{print $2}' "$T/bulk.out")
  got=$(openssl pkcs12 -in bulk/$u.p12 -passin "file:bulk/$u.password" -nokeys -clcerts 2>/dev/null |
        openssl x509 -noout -subject -serial 2>/dev/null | tr '\n' ' ')
  [[ "$got" == "subject=CN = $u serial=${s^^} " ]] && grep -q TripleDES <(openssl pkcs12 -info -noout -in bulk/$u.p12 -passin "file:bulk/$u.password" 2>&1) && ok=$((ok + 1))
done
check_eq "bulk: each bundle opens with its password and holds its user's certificate, compat" "$ok" 9
check_eq "bulk: zip holds 18 files" "$(python3 -c 'import zipfile,sys; print(len(zipfile.ZipFile(sys.argv[1]).namelist()))' bulk.zip)" 18
before=$(grep -c '"serial"' ca/index.json)
run "bulk: a user already issued in this run refused" 2 "$C" issue --dir ca --users c1,c2,C1 --out-dir bulk2
check_eq "bulk refused: index unchanged" "$(grep -c '"serial"' ca/index.json)" "$before"
check "bulk refused: nothing written" test ! -e bulk2/c1.p12

finish
