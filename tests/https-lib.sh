# Sourced by tests/integration/https_*.sh after tests/lib.sh: a test PKI, an
# agent configuration against the shared slapd, and helpers to start the agent
# and talk to it.
source "$ROOT/tests/https-pki.sh"

PKI=$T/pki
CA=$PKI/srv-ca.crt          # what clients trust for the agent's server certificate

# write_config FILE LISTEN RANGES [CRL]: an agent.ini for the shared slapd
# (env CERT_USERNAME and USER_ATTR change how certificates map to users,
# VERIFY_DEPTH sets client_verify_depth).
write_config() {
  local f=$1 listen=$2 ranges=$3 crl=${4-$PKI/ca.crl}
  printf '%s\n' 'Svc-Passw0rd!' >"$T/bind.password"; chmod 600 "$T/bind.password"
  printf 'token-not-used\n' >"$T/hub.token"; chmod 600 "$T/hub.token"
  cat >"$f" <<INI
[agent]
name = https-test
log_level = debug

[ldap]
url = ldap://127.0.0.1:$SLAPD_PORT
starttls = true
ca_file = $SLAPD_DIR/tls/ca.crt
bind_dn = cn=dirbridge-svc,ou=services,dc=example,dc=test
bind_password_file = $T/bind.password
base_dn = dc=example,dc=test
type = openldap
user_filter = (&(objectClass=inetOrgPerson)(${USER_ATTR:-uid}={username}))
groups = direct
timeout_ms = 5000

[https]
listen = $listen
public_url = https://localhost/
cert_file = $T/server.pem
key_file = $T/server.key
client_ca_file = $PKI/ca.crt
${crl:+crl_file = $crl}
client_cert_ranges = $ranges
cert_username = ${CERT_USERNAME:-cn}
${VERIFY_DEPTH:+client_verify_depth = $VERIFY_DEPTH}

[hub]
url = wss://127.0.0.1:9/agent/v1
token_file = $T/hub.token
ca_file = $PKI/srv-ca.crt
INI
}

# start_agent CONFIG LOG: starts the agent, waits for its first listener.
AGENT_PID=
start_agent() {
  "$BUILD/dirbridge" -c "$1" >"$2" 2>&1 &
  AGENT_PID=$!; bg_track "$AGENT_PID"
  local i
  for i in $(seq 100); do
    grep -q "https: listening" "$2" 2>/dev/null && return 0
    kill -0 "$AGENT_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "agent did not start:"; tail -20 "$2"; return 1
}

# https_setup: PKI and the first server certificate in place.
https_setup() {
  https_pki "$PKI" || return 1
  cp "$PKI/srv1.chain.pem" "$T/server.pem"; cp "$PKI/srv1.key" "$T/server.key"
  chmod 600 "$T/server.key"
}

# get_login HOST:PORT CERT [curl args...]: the page for GET /login?session=s1
# presenting certificate CERT (a name in $PKI, or "none").  HOST is an address
# ("127.0.0.1", "[::1]"): the server certificate names both.
get_login() {
  local hp=$1 cert=$2; shift 2
  local a=()
  [ "$cert" = none ] || a=(--cert "$PKI/$cert.crt" --key "$PKI/$cert.key")
  curl -s --max-time 10 --cacert "$CA" "${a[@]}" "$@" "https://$hp/login?session=s1"
}
# page_kind: "success" for the signed-in page, "form" for the password form.
page_kind() {
  if grep -q 'id="result"' <<<"$1"; then echo success
  elif grep -q 'name="password"' <<<"$1"; then echo form
  else echo "other:$(head -c 80 <<<"$1")"; fi
}

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
