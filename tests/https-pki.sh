# Sourced by tests/integration/https_*.sh: builds the test PKI in $1 with
# certtool (and build/tests/certforge for what certtool cannot express).
#   srv-ca      signs the server certificates (srv1, srv2: localhost, 127.0.0.1, ::1)
#   ca          the client CA set the agent trusts; ca.crl revokes "revoked"
#   other-ca    an unrelated CA; evil-ca has ca's exact subject DN and its own key
#   inter       an intermediate CA under ca, not in ca.crt (chain.crt = leaf + inter)
# Client certificates NAME.crt/NAME.key (NAME.p12, password "p12pass", for the
# users a browser presents).
https_pki() {
  local D=$1 t
  mkdir -p "$D"; (
  cd "$D" || exit 1
  ct() { certtool "$@" >/dev/null 2>&1 || { echo "certtool $* failed" >&2; exit 1; }; }
  key() { ct --generate-privkey --key-type=ecdsa --curve=secp256r1 --outfile "$1.key"; }
  ca() {  # ca NAME CN
    key "$1"
    printf 'cn = "%s"\norganization = "dirbridge tests"\nca\ncert_signing_key\ncrl_signing_key\nexpiration_days = 30\n' "$2" >"$1.tmpl"
    ct --generate-self-signed --load-privkey "$1.key" --template "$1.tmpl" --outfile "$1.crt"
  }
  sign() {  # sign NAME CA TEMPLATE-LINES [certtool args]: a certificate for NAME.key
    local n=$1 c=$2; printf '%b\n' "$3" >"$n.tmpl"; shift 3
    ct --generate-certificate --load-privkey "$n.key" --load-ca-certificate "$c.crt" \
       --load-ca-privkey "$c.key" --template "$n.tmpl" --outfile "$n.crt" "$@"
  }
  issue() {  # issue NAME CA TEMPLATE-LINES
    key "$1"; sign "$@"
  }
  ca srv-ca "dirbridge test server CA"
  ca ca "dirbridge test client CA"
  ca other-ca "somebody else's CA"
  ca evil-ca "dirbridge test client CA"
  for t in srv1 srv2; do
    issue $t srv-ca 'cn = "localhost"\ndns_name = "localhost"\nip_address = "127.0.0.1"\nip_address = "::1"\ntls_www_server\nsigning_key\nexpiration_days = 30'
    cat $t.crt srv-ca.crt >$t.chain.pem
  done
  local cli='tls_www_client\nsigning_key\nexpiration_days = 30'
  for t in alice bob carol; do issue $t ca "cn = \"$t\"\n$cli"; done
  issue revoked ca "cn = \"alice\"\n$cli"
  issue expired ca 'cn = "alice"\ntls_www_client\nsigning_key\nactivation_date = "2020-01-01 00:00:00"\nexpiration_date = "2021-01-01 00:00:00"'
  issue future ca 'cn = "alice"\ntls_www_client\nsigning_key\nactivation_date = "2035-01-01 00:00:00"\nexpiration_date = "2036-01-01 00:00:00"'
  issue serveronly ca 'cn = "alice"\ntls_www_server\nsigning_key\nexpiration_days = 30'
  issue noeku ca 'cn = "alice"\nsigning_key\nexpiration_days = 30'
  issue twocn ca "dn = \"CN=alice,CN=bob\"\n$cli"
  issue inject ca "cn = \"*)(uid=*\"\n$cli"
  issue nocn ca "organization = \"nobody\"\n$cli"
  issue wrongca other-ca "cn = \"alice\"\n$cli"
  issue evil evil-ca "cn = \"alice\"\n$cli"
  issue ghost ca "cn = \"nosuchuser\"\n$cli"
  issue upn ca "cn = \"bob\"\nother_name_utf8 = \"1.3.6.1.4.1.311.20.2.3 alice@example.test\"\n$cli"
  issue email ca "cn = \"bob\"\nemail = \"alice@example.test\"\n$cli"
  issue twoemail ca "cn = \"bob\"\nemail = \"alice@example.test\"\nemail = \"bob@example.test\"\n$cli"
  # Names a folding directory finds alice by: other ASCII case (accepted, the
  # login names the directory's "alice") and a fullwidth a, U+FF41 (refused).
  issue cnupper ca "cn = \"ALICE\"\n$cli"
  issue cnmixed ca "cn = \"Alice\"\n$cli"
  issue cnfold ca "cn = \"\xef\xbd\x81lice\"\n$cli"
  # A CA certificate that also claims clientAuth, signed by the client CA.
  issue caleaf ca "cn = \"alice\"\nca\ncert_signing_key\n$cli"
  # An intermediate CA under ca that is NOT in ca.crt, and alice's certificate
  # from it: chain.crt also holds the intermediate, which curl then sends;
  # chainleaf.crt is the leaf alone.
  issue inter ca 'cn = "dirbridge test intermediate CA"\nca\ncert_signing_key\ncrl_signing_key\nexpiration_days = 30'
  issue chainleaf inter "cn = \"alice\"\n$cli"
  cat chainleaf.crt inter.crt >chain.crt; cp chainleaf.key chain.key
  # Weak keys and signatures, each with a control that differs only there.
  ct --generate-privkey --key-type=rsa --bits=1024 --outfile rsa1024.key
  sign rsa1024 ca "cn = \"alice\"\n$cli"
  ct --generate-privkey --key-type=rsa --bits=2048 --outfile rsa2048.key
  sign rsa2048 ca "cn = \"alice\"\n$cli"
  key sha1; sign sha1 ca "cn = \"alice\"\n$cli" --hash SHA1
  key sha256; sign sha256 ca "cn = \"alice\"\n$cli" --hash SHA256
  key nulcn
  "$BUILD/tests/certforge" nul-cn ca.crt ca.key nulcn.key nulcn.crt alice evil || exit 1
  printf 'crl_next_update = 30\ncrl_number = 1\n' >crl.tmpl
  ct --generate-crl --load-ca-privkey ca.key --load-ca-certificate ca.crt \
     --load-certificate revoked.crt --template crl.tmpl --outfile ca.crl
  for t in alice carol; do
    ct --to-p12 --load-privkey $t.key --load-certificate $t.crt --load-ca-certificate ca.crt \
       --p12-name $t --password p12pass --outder --outfile $t.p12
  done
  chmod 600 ./*.key
  )
}
# The hex serial of a PEM certificate, lower case without colons.
cert_serial() { certtool -i --infile "$1" 2>/dev/null | awk '/Serial Number \(hex\)/{print tolower($4); exit}'; }
