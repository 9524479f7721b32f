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
  printf 'cn = "127.0.0.1"\ndns_name = "localhost"\nip_address = "127.0.0.1"\nip_address = "::1"\ntls_www_server\nsigning_key\nencryption_key\nexpiration_days = 30\n' >"$d/srv.tmpl"
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

# wait_agents N: until /v1/agents lists N agents (30 s: a reconnecting agent
# may be in a backoff of up to 15 s).
wait_agents() {
  local i
  for i in $(seq 300); do
    [ "$(curl -s -m 2 "$API/v1/agents" | json 'len(j["agents"])' 2>/dev/null)" = "$1" ] && return 0
    sleep 0.1
  done
  return 1
}

# agent_config FILE NAME [HTTPS-PORT] [SECTION.KEY=VALUE...]: an agent.ini for
# the shared slapd and the hub started by hub_start, its [https] on HTTPS-PORT
# (a free one when not given); the arguments after it override single keys of
# that, as write_ini does (ldap.url=..., hub.ca_file=..., -ldap.starttls).
agent_config() {
  local f=$1 name=$2 port; shift 2
  if [ $# -gt 0 ] && [[ $1 =~ ^[0-9]*$ ]]; then port=${1:-$(free_port)}; shift; else port=$(free_port); fi
  slapd_bind_password
  write_ini "$f" agent.name="$name" agent.log_level=debug \
    "${SLAPD_LDAP[@]}" ldap.groups=recursive ldap.timeout_ms=10000 \
    https.listen="127.0.0.1:$port" https.public_url="https://127.0.0.1:$port" \
    https.cert_file="$T/pki/hub.pem" https.key_file="$T/pki/hub.key" https.client_ca_file="$T/pki/ca.pem" \
    https.client_cert_ranges=127.0.0.1/32 https.cert_username=cn \
    hub.url="wss://127.0.0.1:$HUB_PORT/agent/v1" hub.token_file="$T/pki/hub.token" hub.ca_file="$T/pki/ca.pem" \
    "$@"
}

# agent_start CONFIG LOG: starts an agent; AGENT_PID is its pid.
agent_start() {
  "$BUILD/dirbridge" -c "$1" >"$2" 2>&1 &
  AGENT_PID=$!; bg_track $AGENT_PID
}

# client_cert NAME: $T/pki/NAME.pem/.key, a client certificate CN=NAME.
client_cert() {
  printf 'cn = "%s"\ntls_www_client\nsigning_key\nexpiration_days = 30\n' "$1" >"$T/pki/$1.tmpl"
  certtool -p --key-type=ecdsa --outfile "$T/pki/$1.key" >/dev/null 2>&1
  certtool -c --load-privkey "$T/pki/$1.key" --load-ca-certificate "$T/pki/ca.pem" \
    --load-ca-privkey "$T/pki/ca.key" --template "$T/pki/$1.tmpl" --outfile "$T/pki/$1.pem" >/dev/null 2>&1
  chmod 600 "$T/pki/$1.key"
}

# concurrent N USER:PASSWORD:WANT...: N authenticate requests at once, cycling
# through the cases; prints "ok N" when every answer is the expected one
# (WANT: "profile" or an error code, or several separated by |), else the first
# mismatches.
concurrent() {
  python3 - "$API" "$@" <<'PY'
import json, sys, threading, urllib.request, urllib.error
api, n, cases = sys.argv[1], int(sys.argv[2]), [c.split(":") for c in sys.argv[3:]]
bad, lock = [], threading.Lock()
def one(i):
    user, pw, want = cases[i % len(cases)]
    req = urllib.request.Request(api + "/v1/authenticate", method="POST",
        data=json.dumps({"username": user, "password": pw}).encode())
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            body = json.loads(r.read())
    except urllib.error.HTTPError as e:
        body = json.loads(e.read() or b"{}")
    except Exception as e:
        body = {"exception": str(e)}
    got = "profile" if body.get("ok") and body.get("profile", {}).get("username") == user \
        else body.get("error", str(body))
    if got not in want.split("|"):
        with lock:
            bad.append("%d %s: got %s want %s" % (i, user, got, want))
ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
for t in ts: t.start()
for t in ts: t.join()
print("ok %d" % n if not bad else "%d wrong: %s" % (len(bad), "; ".join(bad[:5])))
PY
}
