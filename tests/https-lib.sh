# Sourced by tests/integration/https_*.sh after tests/lib.sh: a test PKI, an
# agent configuration against the shared slapd and a real dirbridge-hub, and
# helpers to start the agent and talk to it.  The front only serves sessions
# the hub made for the agent, so every sign-in starts with POST /v1/sessions.
source "$ROOT/tests/https-pki.sh"
source "$ROOT/tests/hub_lib.sh"

PKI=$T/pki
CA=$PKI/srv-ca.crt          # what clients trust for the agent's server certificate

# front_hub_start: a dirbridge-hub for this script (once; its server
# certificate is srv1, which the agents trust through srv-ca), its log
# $T/front-hub.log.  Sets HUB_PORT, API_PORT, API (for hub_lib.sh's api).
FRONT_HUB_PID=
front_hub_start() {
  [ -n "$FRONT_HUB_PID" ] && kill -0 "$FRONT_HUB_PID" 2>/dev/null && return 0
  if [ ! -s "$T/hub.token" ]; then
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/hub.token"; echo >>"$T/hub.token"
    cp "$T/hub.token" "$T/hub.tokens"; chmod 600 "$T/hub.token" "$T/hub.tokens"
  fi
  HUB_PORT=$(free_port); API_PORT=$(free_port); API=http://127.0.0.1:$API_PORT
  "$BUILD/dirbridge-hub" --listen 127.0.0.1:$HUB_PORT --cert "$PKI/srv1.chain.pem" \
    --key "$PKI/srv1.key" --tokens-file "$T/hub.tokens" --api 127.0.0.1:$API_PORT -v \
    >>"$T/front-hub.log" 2>&1 &
  FRONT_HUB_PID=$!; HUB_PID=$FRONT_HUB_PID; bg_track "$FRONT_HUB_PID"
  wait_port 127.0.0.1 $HUB_PORT && wait_port 127.0.0.1 $API_PORT
}

# write_config FILE LISTEN RANGES [CRL [SECTION.KEY=VALUE...]]: an agent.ini
# for the shared slapd and the script's hub, started here when it is not
# running yet; the arguments after CRL override single keys, as write_ini
# does.  Env CERT_USERNAME and USER_ATTR change how certificates map to users,
# AGENT_NAME the agent's name (the hub binds sessions to that name),
# PUBLIC_URL its [https] public_url, VERIFY_DEPTH sets client_verify_depth.
write_config() {
  local f=$1 listen=$2 ranges=$3 crl=${4-$PKI/ca.crl}
  slapd_bind_password
  front_hub_start || { echo "hub did not start:"; tail -5 "$T/front-hub.log"; return 1; }
  write_ini "$f" agent.name="${AGENT_NAME:-https-test}" agent.log_level=debug \
    "${SLAPD_LDAP[@]}" "ldap.user_filter=(&(objectClass=inetOrgPerson)(${USER_ATTR:-uid}={username}))" \
    ldap.groups=direct ldap.timeout_ms=5000 \
    https.listen="$listen" https.public_url="${PUBLIC_URL:-https://localhost/}" \
    https.cert_file="$T/server.pem" https.key_file="$T/server.key" https.client_ca_file="$PKI/ca.crt" \
    https.crl_file?="$crl" https.client_cert_ranges="$ranges" https.cert_username="${CERT_USERNAME:-cn}" \
    https.client_verify_depth?="${VERIFY_DEPTH:-}" \
    hub.url="wss://127.0.0.1:$HUB_PORT/agent/v1" hub.token_file="$T/hub.token" hub.ca_file="$PKI/srv-ca.crt" \
    "${@:5}"
}

# start_agent CONFIG LOG: starts the agent, waits for its first listener and,
# when CONFIG names the script's hub, for its link to the hub.
AGENT_PID=
start_agent() {
  "$BUILD/dirbridge" -c "$1" >"$2" 2>&1 &
  AGENT_PID=$!; bg_track "$AGENT_PID"
  local i want="https: listening"
  grep -q "^url = wss://127.0.0.1:${HUB_PORT:-none}/" "$1" && want="hub: connected to"
  for i in $(seq 150); do
    grep -q "https: listening" "$2" 2>/dev/null && grep -q "$want" "$2" 2>/dev/null && return 0
    kill -0 "$AGENT_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "agent did not start:"; tail -20 "$2"; return 1
}

# new_session: a fresh session from the hub (POST /v1/sessions), printed; it
# is also left in $T/last_session.  Empty when the hub made none.
new_session() {
  local s
  s=$(curl -s -m 10 -X POST "$API/v1/sessions" | json 'j["session"]' 2>/dev/null)
  printf '%s' "$s" >"$T/last_session"
  printf '%s\n' "$s"
}
# session_state ID: the hub's state of session ID ("pending", "done", or the
# HTTP status when it has none).
session_state() {
  local r
  r=$(api GET "/v1/sessions/$1")
  case $r in 200\ *) json 'j["state"]' <<<"${r#200 }" ;; *) echo "${r%% *}" ;; esac
}

# https_setup: PKI and the first server certificate in place.
https_setup() {
  https_pki "$PKI" || return 1
  cp "$PKI/srv1.chain.pem" "$T/server.pem"; cp "$PKI/srv1.key" "$T/server.key"
  chmod 600 "$T/server.key"
}

# https_agent RANGES: what most https scripts start with: the PKI, an agent
# on a free port P of 127.0.0.1 ($T/agent.ini, its log $T/agent.log) with
# client_cert_ranges RANGES, and U, its URL.  Returns 1 after a FAIL.
https_agent() {
  https_setup || { fail "pki: could not build the test PKI"; return 1; }
  P=$(free_port); U=https://127.0.0.1:$P
  write_config "$T/agent.ini" "127.0.0.1:$P" "$1"
  start_agent "$T/agent.ini" "$T/agent.log" || { fail "agent starts"; return 1; }
}
# c CURL-ARGS...: curl trusting the agent's server certificate.
c() { curl -s --max-time 15 --cacert "$CA" "$@"; }
# SLOG: the shared slapd's log, to see whether the agent reached the directory.
SLOG=$SLAPD_DIR/slapd.log

# get_login HOST:PORT CERT [curl args...]: the page for GET /login?session=ID
# for a fresh session ID from the hub (new_session; in $T/last_session after
# the call), presenting certificate CERT (a name in $PKI, or "none").  HOST is
# an address ("127.0.0.1", "[::1]"): the server certificate names both.  With
# SESSION set, that session is used instead of a fresh one.
get_login() {
  local hp=$1 cert=$2; shift 2
  local a=() s=${SESSION:-$(new_session)}
  [ -n "$SESSION" ] && printf '%s' "$s" >"$T/last_session"
  [ "$cert" = none ] || a=(--cert "$PKI/$cert.crt" --key "$PKI/$cert.key")
  curl -s --max-time 15 --cacert "$CA" "${a[@]}" "$@" "https://$hp/login?session=$s"
}
# page_kind: "success" for the signed-in page, "form" for the password form,
# "gone" for the sign-in-link-no-longer-valid page, "unavailable" for the
# hub-unavailable page.
page_kind() {
  if grep -q 'id="result"' <<<"$1"; then echo success
  elif grep -q 'name="password"' <<<"$1"; then echo form
  elif grep -q 'id="gone"' <<<"$1"; then echo gone
  elif grep -q 'id="unavailable"' <<<"$1"; then echo unavailable
  else echo "other:$(head -c 80 <<<"$1")"; fi
}
# SESSION_RE: what a hub session id looks like in the agent's log.
SESSION_RE='[0-9a-f]{32}'

# stop_agent LOG: SIGTERM, then the agent must exit 0 within 10 s with no
# sanitizer report in its log.
stop_agent() {
  kill -TERM "$AGENT_PID" 2>/dev/null
  local i rc=timeout
  for i in $(seq 100); do kill -0 "$AGENT_PID" 2>/dev/null || break; sleep 0.1; done
  if ! kill -0 "$AGENT_PID" 2>/dev/null; then wait "$AGENT_PID"; rc=$?; fi
  check_eq "agent exits 0 on SIGTERM" "$rc" 0
  check_nomatch "no sanitizer report in the agent log" "$(cat "$1")" 'Sanitizer|runtime error'
}
