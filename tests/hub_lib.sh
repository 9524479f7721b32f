# Helpers for tests/integration/hub_*.sh (sourced after tests/lib.sh): test PKI
# made with certtool, a dirbridge-hub, agent configs and API calls.
HUB_WS=$ROOT/tests/integration/hub_ws.py

# hub_pki: $T/pki with a CA, a hub/server certificate for 127.0.0.1, a second
# unrelated CA (for "wrong certificate" checks) and an agent token.
hub_pki() {
  local d=$T/pki ct
  mkdir -p "$d"
  ct() { certtool "$@" >/dev/null 2>&1; }
  printf 'cn = "hub test CA"\nca\ncert_signing_key\nexpiration_days = 30\n' >"$d/ca.tmpl"
  printf 'cn = "127.0.0.1"\ndns_name = "localhost"\nip_address = "127.0.0.1"\ntls_www_server\nsigning_key\nencryption_key\nexpiration_days = 30\n' >"$d/srv.tmpl"
  for ca in ca other-ca; do
    ct -p --key-type=ecdsa --outfile "$d/$ca.key"
    ct -s --load-privkey "$d/$ca.key" --template "$d/ca.tmpl" --outfile "$d/$ca.pem"
  done
  ct -p --key-type=ecdsa --outfile "$d/hub.key"
  ct -c --load-privkey "$d/hub.key" --load-ca-certificate "$d/ca.pem" --load-ca-privkey "$d/ca.key" \
     --template "$d/srv.tmpl" --outfile "$d/hub.pem"
  head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$d/hub.token"; echo >>"$d/hub.token"
  printf '# test agents\n%s\n' "$(cat "$d/hub.token")" >"$d/tokens"
  chmod 600 "$d"/*.key "$d/hub.token" "$d/tokens"
}

# hub_start NAME: starts a hub on fresh ports; sets HUB_PORT, API_PORT, API.
hub_start() {
  HUB_PORT=$(free_port); API_PORT=$(free_port)
  API=http://127.0.0.1:$API_PORT
  "$BUILD/dirbridge-hub" --listen 127.0.0.1:$HUB_PORT --cert "$T/pki/hub.pem" --key "$T/pki/hub.key" \
    --tokens-file "$T/pki/tokens" --api 127.0.0.1:$API_PORT -v >"$T/${1:-hub}.log" 2>&1 &
  HUB_PID=$!; bg_track $HUB_PID
  wait_port 127.0.0.1 $HUB_PORT && wait_port 127.0.0.1 $API_PORT
}

# hub_restart: the same ports again (after the hub was killed).
hub_restart() {
  "$BUILD/dirbridge-hub" --listen 127.0.0.1:$HUB_PORT --cert "$T/pki/hub.pem" --key "$T/pki/hub.key" \
    --tokens-file "$T/pki/tokens" --api 127.0.0.1:$API_PORT -v >>"$T/${1:-hub}.log" 2>&1 &
  HUB_PID=$!; bg_track $HUB_PID
  wait_port 127.0.0.1 $HUB_PORT && wait_port 127.0.0.1 $API_PORT
}

# api METHOD PATH [BODY]: prints "STATUS BODY".
api() {
  local out
  out=$(curl -s -m 40 -X "$1" ${3:+-d "$3"} -w '\n%{http_code}' "$API$2")
  echo "$(tail -1 <<<"$out") $(head -n -1 <<<"$out")"
}

# json FIELD-EXPR: reads JSON on stdin, prints python expression of it (j).
json() { python3 -c "import json,sys; j=json.loads(sys.stdin.read() or 'null'); print($1)"; }

# wait_agents N: until /v1/agents lists N agents (15 s).
wait_agents() {
  local i
  for i in $(seq 150); do
    [ "$(curl -s -m 2 "$API/v1/agents" | json 'len(j["agents"])' 2>/dev/null)" = "$1" ] && return 0
    sleep 0.1
  done
  return 1
}
