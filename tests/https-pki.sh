# Sourced by tests/integration/https_*.sh: builds the test PKI in $1 with
# certtool (and build/tests/certforge for what certtool cannot express).
#   srv-ca      signs the server certificates (srv1, srv2: localhost, 127.0.0.1, ::1)
#   ca          the client CA set the agent trusts; ca.crl revokes "revoked"
#   other-ca    an unrelated CA; evil-ca has ca's exact subject DN and its own key
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
  issue() {  # issue NAME CA TEMPLATE-LINES
    key "$1"; printf '%b\n' "$3" >"$1.tmpl"
    ct --generate-certificate --load-privkey "$1.key" --load-ca-certificate "$2.crt" \
       --load-ca-privkey "$2.key" --template "$1.tmpl" --outfile "$1.crt"
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
