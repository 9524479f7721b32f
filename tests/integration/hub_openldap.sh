#!/bin/bash
# End to end: dirbridge-hub + the agent + the shared slapd.  Logins through the
# hub API with their protocol error codes, 200 at once, paged searches beyond the
# server's size limit, and a certificate / password sign-in through a session.
. "$ROOT/tests/lib.sh"
. "$ROOT/tests/hub_lib.sh"

hub_pki; client_cert alice
hub_start hub || { fail "hub did not start"; finish; exit; }
AGENT_HTTPS=$(free_port)
agent_config "$T/agent.ini" agent-1 "" "" "" $AGENT_HTTPS
agent_start "$T/agent.ini" "$T/agent.log"
check "agent connects to the hub" wait_agents 1
r=$(api GET /v1/agents)
check_match "hello carries name, version and public_url" "$r" "\"name\":\"agent-1\",\"version\":\"[0-9.]+\".*\"public_url\":\"https://127.0.0.1:$AGENT_HTTPS\""

r=$(api POST /v1/authenticate '{"username":"alice","password":"Passw0rd!"}')
check_match "good password: 200 with profile" "$r" '^200 \{"ok":true,"profile":\{"username":"alice","dn":"uid=alice,ou=people,dc=example,dc=test"'
groups=$(cut -d' ' -f2- <<<"$r" | json '",".join(sorted(j["profile"]["groups"]))')
check_eq "nested groups expanded" "$groups" "all,engineers,staff"
r=$(api POST /v1/authenticate '{"username":"alice","password":"wrong"}')
check_match "wrong password: 401 invalid_credentials" "$r" '^401 \{"ok":false,"error":"invalid_credentials"\}'
r=$(api POST /v1/authenticate '{"username":"nosuchuser","password":"Passw0rd!"}')
check_match "unknown user: the same 401 invalid_credentials" "$r" '^401 \{"ok":false,"error":"invalid_credentials"\}'
r=$(api POST /v1/authenticate '{"username":"carol","password":"Passw0rd!"}')
check_match "locked account: account_locked" "$r" '^401 .*"account_locked"'
r=$(api POST /v1/authenticate '{"username":"dave","password":"Passw0rd!"}')
check_match "must-change account: password_must_change" "$r" '^401 .*"password_must_change"'
r=$(api POST /v1/authenticate '{"username":"alice","password":""}')
check_match "empty password: invalid_credentials, never an anonymous bind" "$r" '^401 .*"invalid_credentials"'
r=$(api POST /v1/authenticate '{"username":"a*)(uid=*","password":"Passw0rd!"}')
check_match "filter metacharacters in the name: refused" "$r" '^(401|400) .*"(invalid_credentials|bad_request)"'
r=$(api POST /v1/lookup '{"username":"alice"}')
check_match "lookup: profile without a password" "$r" '^200 .*"username":"alice"'

r=$(concurrent 200 'alice:Passw0rd!:profile' 'nosuchuser:wrong:invalid_credentials|too_many_attempts' 'dave:Passw0rd!:password_must_change' 'carol:Passw0rd!:account_locked' 'bob:Passw0rd!:profile')
check_eq "200 concurrent authenticate requests all answered correctly" "$r" "ok 200"

n=$(curl -s -m 60 "$API/v1/users?q=Bulk%20User&limit=1100" | json 'len(j["users"])')
check_eq "search_users: 1100 of 1200 bulk users (server size limit 500)" "$n" 1100
n=$(curl -s -m 60 "$API/v1/users?q=bulk.example.test&limit=5000" | json 'len(j["users"])')
check_eq "search_users by email: every match (1200) below the limit" "$n" 1200
n=$(curl -s -m 60 "$API/v1/users?q=Alice%20Test&limit=10" | json '[u["username"] for u in j["users"]]')
check_eq "search_users by display name" "$n" "['alice']"
r=$(api GET '/v1/groups?limit=100')
check_match "list_groups lists nested groups" "$r" '^200 .*"engineers".*"staff".*"all"'
n=$(curl -s -m 30 "$API/v1/groups?limit=2" | json 'len(j["groups"])')
check_eq "list_groups honours limit" "$n" 2

# Certificate sign-in through a session, from inside client_cert_ranges.
r=$(api POST /v1/sessions)
sid=$(cut -d' ' -f2- <<<"$r" | json 'j["session"]'); url=$(cut -d' ' -f2- <<<"$r" | json 'j["login_url"]')
check_match "session login_url on the agent" "$url" "^https://127.0.0.1:$AGENT_HTTPS/login\?session=[0-9a-f]{32}$"
r=$(api GET /v1/sessions/$sid); check_match "session pending before sign-in" "$r" '"state":"pending"'
page=$(curl -s -m 10 --cacert "$T/pki/ca.pem" --cert "$T/pki/alice.pem" --key "$T/pki/alice.key" "$url")
check_match "agent signs alice in with her certificate" "$page" 'id="result"'
ok=
for i in $(seq 50); do r=$(api GET /v1/sessions/$sid); grep -q '"done"' <<<"$r" && { ok=1; break; }; sleep 0.1; done
check_match "hub session done with method certificate and profile" "$r" '"state":"done","method":"certificate","profile":\{"username":"alice".*"groups":\['
fp=$(python3 -c 'import hashlib,ssl,sys; print(hashlib.sha256(ssl.PEM_cert_to_DER_cert(open(sys.argv[1]).read())).hexdigest())' "$T/pki/alice.pem")
check_match "login carries the certificate's SHA-256" "$r" "\"sha256\":\"$fp\""

# Password path: the form posts to the agent, the result reaches the hub.
# form_post SESSION USER PASSWORD: fetches the form (for its CSRF token), posts it.
form_post() {
  local form csrf
  form=$(curl -s -m 10 --cacert "$T/pki/ca.pem" "https://127.0.0.1:$AGENT_HTTPS/login?session=$1")
  csrf=$(grep -o 'name="csrf" value="[^"]*"' <<<"$form" | sed 's/.*value="//; s/"$//')
  curl -s -m 10 --cacert "$T/pki/ca.pem" --data-urlencode "session=$1" --data-urlencode "csrf=$csrf" \
    --data-urlencode "username=$2" --data-urlencode "password=$3" "https://127.0.0.1:$AGENT_HTTPS/login"
}
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

h=$(curl -s -m 5 --cacert "$T/pki/ca.pem" "https://127.0.0.1:$AGENT_HTTPS/healthz")
check_match "agent healthz: hub connected" "$h" '"hub":"connected"'
check_nomatch "no password in the agent log" "$(cat "$T/agent.log")" 'Passw0rd'
check_nomatch "no password in the hub log" "$(cat "$T/hub.log")" 'Passw0rd'

kill -TERM $AGENT_PID; wait $AGENT_PID; rc=$?
check_eq "agent exits 0 on SIGTERM" "$rc" 0
check "hub notices the agent left" wait_agents 0
kill -TERM $HUB_PID; wait $HUB_PID; rc=$?
check_eq "hub exits 0 on SIGTERM" "$rc" 0
finish
