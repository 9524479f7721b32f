#!/bin/bash
# make demo: a demo directory (slapd) on loopback, a local hub and the agent, all
# in the foreground; prints how to sign in.  Ctrl-C stops everything.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$ROOT/${1:-build}
D=${DEMO_DIR:-/tmp/dirbridge-demo}
source "$ROOT/tests/ini.sh"
LDAP_PORT=${DEMO_LDAP_PORT:-13389} LDAPS_PORT=${DEMO_LDAPS_PORT:-13636}
HTTPS_PORT=${DEMO_HTTPS_PORT:-8443} HUB_PORT=${DEMO_HUB_PORT:-8444} API_PORT=${DEMO_API_PORT:-8480}

PIDS=()
stop() {
  trap - EXIT INT TERM
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  DIR=$D/slapd "$ROOT/tests/servers/slapd.sh" stop >/dev/null 2>&1 || true
  echo; echo "demo stopped"
}
trap stop EXIT
trap 'exit 0' INT TERM

rm -rf "$D"; mkdir -p "$D/pki"; chmod 700 "$D"
echo "== directory (OpenLDAP slapd on 127.0.0.1:$LDAPS_PORT)"
DIR=$D/slapd PORT=$LDAP_PORT SPORT=$LDAPS_PORT "$ROOT/tests/servers/slapd.sh" start

echo "== certificates"
cd "$D/pki"
ct() { certtool "$@" >/dev/null 2>&1; }
printf 'cn = "dirbridge demo server CA"\nca\ncert_signing_key\nexpiration_days = 30\n' > ca.tmpl
printf 'cn = "localhost"\ndns_name = "localhost"\nip_address = "127.0.0.1"\ntls_www_server\nsigning_key\nexpiration_days = 30\n' > srv.tmpl
ct -p --key-type=ecdsa --outfile server-ca.key
ct -s --load-privkey server-ca.key --template ca.tmpl --outfile server-ca.pem
for s in server hub; do
  ct -p --key-type=ecdsa --outfile $s.key
  ct -c --load-privkey $s.key --load-ca-certificate server-ca.pem --load-ca-privkey server-ca.key \
     --template srv.tmpl --outfile $s.pem
done
chmod 600 ./*.key
"$BUILD/dirbridge-cert" init-ca --dir "$D/clientca" --cn "dirbridge demo client CA" >/dev/null
printf 'demo-p12-pass\n' > alice.p12.password; chmod 600 alice.p12.password
"$BUILD/dirbridge-cert" issue --dir "$D/clientca" --user alice --days 30 \
  --out "$D/alice.p12" --password-file alice.p12.password >/dev/null
"$BUILD/dirbridge-cert" crl --dir "$D/clientca" --out "$D/pki/client.crl" >/dev/null
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > hub.token; echo >> hub.token; chmod 600 hub.token
printf '%s\n' "$(grep -o '^[^#]*' hub.token)" > tokens; chmod 600 tokens
printf 'adminpw\n' > bind.password; chmod 600 bind.password

write_ini "$D/agent.ini" agent.name=demo-agent agent.log_level=info \
  ldap.url="ldaps://127.0.0.1:$LDAPS_PORT" ldap.ca_file="$D/slapd/tls/ca.crt" \
  ldap.bind_dn=cn=admin,dc=example,dc=test ldap.bind_password_file="$D/pki/bind.password" \
  ldap.base_dn=dc=example,dc=test ldap.type=openldap \
  "ldap.user_filter=(&(objectClass=inetOrgPerson)(uid={username}))" ldap.groups=recursive \
  https.listen="127.0.0.1:$HTTPS_PORT" https.public_url="https://127.0.0.1:$HTTPS_PORT" \
  https.cert_file="$D/pki/server.pem" https.key_file="$D/pki/server.key" \
  https.client_ca_file="$D/clientca/ca.pem" https.crl_file="$D/pki/client.crl" \
  https.client_cert_ranges=127.0.0.1/32 https.cert_username=cn \
  hub.url="wss://127.0.0.1:$HUB_PORT/agent/v1" hub.token_file="$D/pki/hub.token" hub.ca_file="$D/pki/server-ca.pem"

echo "== hub (agents on 127.0.0.1:$HUB_PORT, API on 127.0.0.1:$API_PORT)"
"$BUILD/dirbridge-hub" --listen 127.0.0.1:$HUB_PORT --cert hub.pem --key hub.key \
  --tokens-file tokens --api 127.0.0.1:$API_PORT > "$D/hub.log" 2>&1 &
PIDS+=($!)
echo "== agent"
"$BUILD/dirbridge" -n -c "$D/agent.ini"
"$BUILD/dirbridge" -c "$D/agent.ini" 2>&1 | sed -u 's/^/[agent] /' &
PIDS+=($!)

for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$API_PORT/v1/agents" | grep -q demo-agent && break; sleep 0.1
done
login_url=$(curl -sf -X POST "http://127.0.0.1:$API_PORT/v1/sessions" | python3 -c 'import json,sys;print(json.load(sys.stdin)["login_url"])')
cat <<MSG

  dirbridge demo is running.  Ctrl-C stops everything.

  Sign in:      $login_url
                (the server certificate is signed by $D/pki/server-ca.pem)
                A link signs in once, within 10 minutes; after that the agent
                answers 410 "no longer valid".  A new one:
                curl -s -X POST http://127.0.0.1:$API_PORT/v1/sessions
  Demo user:    alice   password: Passw0rd!
  Client cert:  $D/alice.p12   (PKCS#12 password: demo-p12-pass)
                curl --cacert $D/pki/server-ca.pem --cert-type P12 \\
                     --cert $D/alice.p12:demo-p12-pass '$login_url'
  Hub API:      curl -s -X POST http://127.0.0.1:$API_PORT/v1/authenticate \\
                     -d '{"username":"alice","password":"Passw0rd!"}'
                curl -s http://127.0.0.1:$API_PORT/v1/sessions/<ID>

MSG
wait
