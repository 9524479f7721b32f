#!/bin/bash
# tests/hub_backend.sh BACKEND: end to end through dirbridge-hub and the agent
# against one directory, BACKEND "openldap" (the shared slapd) or "ad" (the
# Samba AD DC at $SAMBA_DIR); run by tests/integration/hub_openldap.sh and
# hub_ad.sh.  Logins through the hub API with their protocol error codes, the
# directory's account states, nested groups, many logins at once, and searches
# beyond the server's page or size limit.  Each backend adds its own checks:
# with slapd, lookups, a certificate and a password sign-in through a session,
# client_ip and a clean exit; with AD, frank is locked out on purpose and
# unlocked again.
. "$ROOT/tests/lib.sh"
. "$ROOT/tests/hub_lib.sh"
BACKEND=${1:?usage: hub_backend.sh ad|openldap}

# Per backend: N prefixes every check name; ALICE_DN; GROUPS_OF, a python
# condition on g choosing which of alice's groups must be exactly "all,
# engineers, staff"; WRONG_USER, whose failed-password count may grow; STATES,
# "label|user|error" per account state; CONCURRENT, the count and cases of
# concurrent(); BULK_LIMIT and BULK_ALL, a search limit above the directory's
# page or size limit and the number of bulk users; and the hooks
# after_connect, after_states, after_search and at_end.
case $BACKEND in
openldap)
  N= ALICE_DN=uid=alice,ou=people,dc=example,dc=test GROUPS_OF=True WRONG_USER=alice
  STATES=("locked account|carol|account_locked" "must-change account|dave|password_must_change")
  CONCURRENT=(200 'alice:Passw0rd!:profile' 'nosuchuser:wrong:invalid_credentials|too_many_attempts'
              'dave:Passw0rd!:password_must_change' 'carol:Passw0rd!:account_locked' 'bob:Passw0rd!:profile')
  BULK_LIMIT=1100 BULK_ALL=1200 BULK_WHY="server size limit 500"
  ;;
ad)
  [ -f "$SAMBA_DIR/tls/ca.crt" ] || { fail "no Samba AD DC at SAMBA_DIR=$SAMBA_DIR"; finish; exit; }
  N="AD: " ALICE_DN=CN=alice,CN=Users,DC=example,DC=test GROUPS_OF='g in ("engineers","staff","all")'
  # Wrong passwords only for frank, who is unlocked at the end: a shared AD
  # must not see other users' bad-password counts grow.
  WRONG_USER=frank
  STATES=("disabled|carol|account_disabled" "expired|dave|account_expired" "must change|erin|password_must_change")
  CONCURRENT=(60 'alice:Passw0rd!:profile' 'carol:Passw0rd!:account_disabled' 'nobody:x:invalid_credentials')
  BULK_LIMIT=1050 BULK_ALL=1100 BULK_WHY="beyond MaxPageSize 1000"
  # frank is locked by the directory on purpose: the agent's guard stays out
  # of it (lockout_guard = 0).
  AD_LDAP=(ldap.url=ldaps://127.0.0.1 -ldap.starttls "ldap.ca_file=$SAMBA_DIR/tls/ca.crt"
           ldap.bind_dn=CN=dirbridge-svc,CN=Users,DC=example,DC=test ldap.base_dn=DC=example,DC=test
           ldap.type=ad "ldap.user_filter=(&(objectClass=user)(sAMAccountName={username}))"
           ldap.lockout_guard=0)
  unlock_frank() {
    LDAPTLS_CACERT=$SAMBA_DIR/tls/ca.crt ldapmodify -x -H ldaps://127.0.0.1 \
      -D "CN=Administrator,CN=Users,DC=example,DC=test" -w 'Adm1n-Pass!' >/dev/null 2>&1 <<LDIF
dn: CN=frank,CN=Users,DC=example,DC=test
changetype: modify
replace: lockoutTime
lockoutTime: 0
LDIF
  }
  ;;
*) fail "hub_backend.sh: unknown backend '$BACKEND'"; finish; exit ;;
esac

# ---- the hooks of each backend ----
if [ "$BACKEND" = openldap ]; then
after_connect() {
  r=$(api GET /v1/agents)
  check_match "hello carries name, version and public_url" "$r" "\"name\":\"agent-1\",\"version\":\"[0-9.]+\".*\"public_url\":\"https://127.0.0.1:$AGENT_HTTPS\""
}
after_states() {
  r=$(api POST /v1/authenticate '{"username":"alice","password":""}')
  check_match "empty password: invalid_credentials, never an anonymous bind" "$r" '^401 .*"invalid_credentials"'
  r=$(api POST /v1/authenticate '{"username":"a*)(uid=*","password":"Passw0rd!"}')
  check_match "filter metacharacters in the name: refused" "$r" '^(401|400) .*"(invalid_credentials|bad_request)"'
  r=$(api POST /v1/lookup '{"username":"alice"}')
  check_match "lookup: profile without a password" "$r" '^200 .*"username":"alice"'
}
after_search() {
  n=$(curl -s -m 60 "$API/v1/users?q=Alice%20Test&limit=10" | json '[u["username"] for u in j["users"]]')
  check_eq "search_users by display name" "$n" "['alice']"
  r=$(api GET '/v1/groups?limit=100')
  check_match "list_groups lists nested groups" "$r" '^200 .*"engineers".*"staff".*"all"'
  n=$(curl -s -m 30 "$API/v1/groups?limit=2" | json 'len(j["groups"])')
  check_eq "list_groups honours limit" "$n" 2
  session_checks
}
at_end() {
  check_nomatch "no password in the hub log" "$(cat "$T/hub.log")" 'Passw0rd'
  kill -TERM $AGENT_PID; wait $AGENT_PID; rc=$?
  check_eq "agent exits 0 on SIGTERM" "$rc" 0
  check "hub notices the agent left" wait_agents 0
  kill -TERM $HUB_PID; wait $HUB_PID; rc=$?
  check_eq "hub exits 0 on SIGTERM" "$rc" 0
}
# form_post SESSION USER PASSWORD: fetches the form (for its CSRF token), posts it.
form_post() {
  local form csrf
  form=$(curl -s -m 10 --cacert "$T/pki/ca.pem" "https://127.0.0.1:$AGENT_HTTPS/login?session=$1")
  csrf=$(grep -o 'name="csrf" value="[^"]*"' <<<"$form" | sed 's/.*value="//; s/"$//')
  curl -s -m 10 --cacert "$T/pki/ca.pem" --data-urlencode "session=$1" --data-urlencode "csrf=$csrf" \
    --data-urlencode "username=$2" --data-urlencode "password=$3" "https://127.0.0.1:$AGENT_HTTPS/login"
}
# session_checks: sign-ins through a hub session, client_ip, the agent's healthz.
session_checks() {
  local r sid sid2 url page fp i
  # Certificate sign-in through a session, from inside client_cert_ranges.
  r=$(api POST /v1/sessions)
  sid=$(cut -d' ' -f2- <<<"$r" | json 'j["session"]'); url=$(cut -d' ' -f2- <<<"$r" | json 'j["login_url"]')
  check_match "session login_url on the agent" "$url" "^https://127.0.0.1:$AGENT_HTTPS/login\?session=[0-9a-f]{32}$"
  r=$(api GET /v1/sessions/$sid); check_match "session pending before sign-in" "$r" '"state":"pending"'
  page=$(curl -s -m 10 --cacert "$T/pki/ca.pem" --cert "$T/pki/alice.pem" --key "$T/pki/alice.key" "$url")
  check_match "agent signs alice in with her certificate" "$page" 'id="result"'
  for i in $(seq 50); do r=$(api GET /v1/sessions/$sid); grep -q '"done"' <<<"$r" && break; sleep 0.1; done
  check_match "hub session done with method certificate and profile" "$r" '"state":"done","method":"certificate","profile":\{"username":"alice".*"groups":\['
  fp=$(python3 -c 'import hashlib,ssl,sys; print(hashlib.sha256(ssl.PEM_cert_to_DER_cert(open(sys.argv[1]).read())).hexdigest())' "$T/pki/alice.pem")
  check_match "login carries the certificate's SHA-256" "$r" "\"sha256\":\"$fp\""

  # Password path: the form posts to the agent, the result reaches the hub.
  r=$(api POST /v1/sessions); sid=$(cut -d' ' -f2- <<<"$r" | json 'j["session"]')
  page=$(form_post $sid bob 'Passw0rd!')
  check_match "password form signs bob in" "$page" 'id="result"'
  for i in $(seq 50); do r=$(api GET /v1/sessions/$sid); grep -q '"done"' <<<"$r" && break; sleep 0.1; done
  check_match "hub session done with method password" "$r" '"state":"done","method":"password","profile":\{"username":"bob"'
  r=$(api POST /v1/sessions); sid2=$(cut -d' ' -f2- <<<"$r" | json 'j["session"]')
  form_post $sid2 bob nope >/dev/null
  sleep 0.5; r=$(api GET /v1/sessions/$sid2)
  check_match "a failed password sign-in leaves the session pending" "$r" '"state":"pending"'

  # client_ip: an address is logged with a refusal; anything else is a bad request.
  r=$(api POST /v1/authenticate '{"username":"bob","password":"wrong","client_ip":"192.0.2.7"}')
  check_match "authenticate with client_ip: still invalid_credentials" "$r" '^401 .*invalid_credentials'
  sleep 0.2
  check_match "the refusal names the client address" "$(cat "$T/agent.log")" 'from client 192\.0\.2\.7 refused: invalid_credentials'
  r=$(api POST /v1/authenticate '{"username":"bob","password":"wrong","client_ip":"not-an-address"}')
  check_match "a client_ip that is not an address: bad_request" "$r" 'bad_request'
  r=$(api POST /v1/authenticate '{"username":"bob","password":"Passw0rd!","client_ip":"2001:db8::7"}')
  check_match "authenticate with an IPv6 client_ip signs in" "$r" '^200 .*"username":"bob"'

  r=$(curl -s -m 5 --cacert "$T/pki/ca.pem" "https://127.0.0.1:$AGENT_HTTPS/healthz")
  check_match "agent healthz: hub connected" "$r" '"hub":"connected"'
}
else
after_connect() { :; }
after_states() {
  for i in 1 2; do api POST /v1/authenticate '{"username":"frank","password":"bad"}' >/dev/null; done
  r=$(api POST /v1/authenticate '{"username":"frank","password":"Passw0rd!"}')
  check_match "AD: locked out: account_locked" "$r" '^401 .*"account_locked"'
  unlock_frank
  r=$(api POST /v1/authenticate '{"username":"frank","password":"Passw0rd!"}')
  check_match "AD: frank unlocked again" "$r" '^200 '
}
after_search() {
  r=$(api GET '/v1/users?q=alice&limit=10')
  check_match "AD: search_users by name" "$r" '"username":"alice"'
  r=$(api GET '/v1/groups?limit=1000')
  check_match "AD: list_groups has the test groups" "$r" '"engineers"'
  n=$(cut -d' ' -f2- <<<"$r" | json 'len(set(j["groups"]) & {"engineers","staff","all"})')
  check_eq "AD: list_groups has all three nested groups" "$n" 3
}
at_end() { :; }
fi

# ---- the checks both backends make ----
hub_pki; [ "$BACKEND" = openldap ] && client_cert alice
hub_start hub || { fail "hub did not start"; finish; exit; }
AGENT_HTTPS=$(free_port)
if [ "$BACKEND" = ad ]; then
  agent_config "$T/agent.ini" ad-agent "$AGENT_HTTPS" "${AD_LDAP[@]}"
else
  agent_config "$T/agent.ini" agent-1 "$AGENT_HTTPS"
fi
agent_start "$T/agent.ini" "$T/agent.log"
check "agent connects to the hub" wait_agents 1
[ "$BACKEND" = ad ] && trap 'unlock_frank; bg_cleanup' EXIT
after_connect

r=$(api POST /v1/authenticate '{"username":"alice","password":"Passw0rd!"}')
check_match "${N}good password: 200 with profile" "$r" "^200 \\{\"ok\":true,\"profile\":\\{\"username\":\"alice\",\"dn\":\"$ALICE_DN\""
groups=$(cut -d' ' -f2- <<<"$r" | json "\",\".join(sorted(g for g in j[\"profile\"][\"groups\"] if $GROUPS_OF))")
check_eq "${N}nested groups expanded" "$groups" "all,engineers,staff"
[ "$BACKEND" = ad ] && unlock_frank
r=$(api POST /v1/authenticate "{\"username\":\"$WRONG_USER\",\"password\":\"wrong\"}")
check_match "${N}wrong password: 401 invalid_credentials" "$r" '^401 \{"ok":false,"error":"invalid_credentials"\}'
r=$(api POST /v1/authenticate '{"username":"nosuchuser","password":"Passw0rd!"}')
check_match "${N}unknown user: the same 401 invalid_credentials" "$r" '^401 \{"ok":false,"error":"invalid_credentials"\}'
for s in "${STATES[@]}"; do
  IFS='|' read -r label user err <<<"$s"
  r=$(api POST /v1/authenticate "{\"username\":\"$user\",\"password\":\"Passw0rd!\"}")
  check_match "$N$label: $err" "$r" "^401 .*\"$err\""
done
after_states

r=$(concurrent "${CONCURRENT[@]}")
check_eq "$N${CONCURRENT[0]} concurrent authenticate requests all answered correctly" "$r" "ok ${CONCURRENT[0]}"
n=$(curl -s -m 120 "$API/v1/users?q=Bulk%20User&limit=$BULK_LIMIT" | json 'len(j["users"])')
check_eq "${N}search_users: $BULK_LIMIT of $BULK_ALL bulk users ($BULK_WHY)" "$n" "$BULK_LIMIT"
n=$(curl -s -m 120 "$API/v1/users?q=bulk.example.test&limit=5000" | json 'len(j["users"])')
check_eq "${N}search_users by email: every match ($BULK_ALL) below the limit" "$n" "$BULK_ALL"
after_search

check_nomatch "${N}no password in the agent log" "$(cat "$T/agent.log")" 'Passw0rd'
at_end
finish
