#!/bin/bash
# dirbridge-hub on its own: the agent endpoint against a test-only fake agent
# (tests/integration/hub_ws.py) and the local JSON API; hostile frames, wrong
# tokens and malformed API requests must close or 4xx, and the hub keeps serving.
. "$ROOT/tests/lib.sh"
. "$ROOT/tests/hub_lib.sh"

hub_pki
out=$("$BUILD/dirbridge-hub" --version); check_match "hub --version" "$out" '^dirbridge-hub [0-9]'
"$BUILD/dirbridge-hub" --listen 127.0.0.1:1 >/dev/null 2>&1; check_eq "hub usage error exits 2" $? 2
chmod 644 "$T/pki/tokens"
"$BUILD/dirbridge-hub" --listen 127.0.0.1:1 --cert "$T/pki/hub.pem" --key "$T/pki/hub.key" \
  --tokens-file "$T/pki/tokens" --api 127.0.0.1:2 2>"$T/err"; rc=$?
check_eq "world-readable tokens file refused (exit 2)" "$rc" 2
chmod 600 "$T/pki/tokens"
"$BUILD/dirbridge-hub" --listen 127.0.0.1:1 --cert "$T/pki/hub.pem" --key "$T/pki/hub.key" \
  --tokens-file "$T/pki/tokens" --api 0.0.0.0:2 2>"$T/err"; rc=$?
check_eq "non-loopback --api refused (exit 2)" "$rc" 2

hub_start hub
TOKEN=$(cat "$T/pki/hub.token")
# A client that never finishes its request: the hub closes it after 30 s.
timeout 60 python3 -c '
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /v1/agents HTTP/1.1\r\nHost: x\r\n")
t = time.time(); s.settimeout(55)
print("closed after %d s" % (time.time() - t) if s.recv(100) == b"" else "answered")
' $API_PORT >"$T/slow.out" 2>&1 &
SLOW=$!
r=$(api POST /v1/authenticate '{"username":"alice","password":"good"}')
check_match "no agent: 503 no_agent" "$r" '^503 .*"no_agent"'

timeout 120 python3 "$HUB_WS" agent 127.0.0.1 $HUB_PORT "$T/pki/ca.pem" "$TOKEN" serve >"$T/fake.log" 2>&1 &
bg_track $!
check "fake agent listed" wait_agents 1
r=$(api GET /v1/agents); check_match "agents show name and connected_since" "$r" '"name":"fake-serve".*"connected_since":"20'
r=$(api POST /v1/authenticate '{"username":"alice","password":"good"}')
check_match "authenticate routed: 200 profile" "$r" '^200 .*"ok":true.*"username":"alice"'
r=$(api POST /v1/authenticate '{"username":"alice","password":"bad"}')
check_match "agent error code passed through: 401" "$r" '^401 .*"invalid_credentials"'
r=$(api POST /v1/sessions)
check_match "session login_url on the agent's public_url" "$r" '^200 .*"login_url":"https://127.0.0.1:1/login\?session=[0-9a-f]{32}"'
sid=$(cut -d' ' -f2- <<<"$r" | json 'j["session"]')
r=$(api GET /v1/sessions/$sid); check_match "new session pending" "$r" '^200 .*"pending"'
r=$(api GET /v1/sessions/00000000000000000000000000000000); check_match "unknown session 404" "$r" '^404 '
out=$(timeout 30 python3 "$HUB_WS" agent 127.0.0.1 $HUB_PORT "$T/pki/ca.pem" "$TOKEN" sessions "$sid" 2>&1)
check_match "session_check without a session: bad_request" "$out" '^result c1 bad_request$'
check_match "session_check for a session never issued: unknown_session" "$out" '^result c2 unknown_session$'
check_match "session_check for another agent's session: unknown_session" "$out" '^result c3 unknown_session$'
check_match "login for another agent's session: unknown_session" "$out" '^result l1 unknown_session$'
check_match "login with an unknown method: bad_request" "$out" '^result l2 bad_request$'
r=$(api GET /v1/sessions/$sid); check_match "another agent's login leaves the session pending" "$r" '^200 .*"pending"'

for s in before-hello empty bad-json binary huge missing-fields wrong-types no-type bad-result; do
  out=$(timeout 60 python3 "$HUB_WS" agent 127.0.0.1 $HUB_PORT "$T/pki/ca.pem" "$TOKEN" $s 2>&1)
  check_match "hostile agent ($s) disconnected" "$out" '^closed'
done
out=$(timeout 20 python3 "$HUB_WS" agent 127.0.0.1 $HUB_PORT "$T/pki/ca.pem" wrong-token serve 2>&1)
check_match "wrong token refused with 401" "$out" '401 Unauthorized'
out=$(printf 'GET /agent/v1 HTTP/1.1\r\nHost: x\r\n\r\n' | timeout 10 gnutls-cli --no-ca-verification --logfile=/dev/null -p $HUB_PORT 127.0.0.1 2>&1)
check_match "plain GET without upgrade refused" "$out" 'HTTP/1.1 (401|400)'

r=$(api POST /v1/authenticate '{"username":"alice"')
check_match "API: bad JSON 400" "$r" '^400 '
r=$(api POST /v1/authenticate '{"username":"alice"}')
check_match "API: missing password 400" "$r" '^400 '
r=$(api GET '/v1/users?limit=0'); check_match "API: limit 0 refused" "$r" '^400 '
r=$(api GET '/v1/users?q=%zz'); check_match "API: bad escape refused" "$r" '^400 '
r=$(api GET /v1/nope); check_match "API: unknown route 404" "$r" '^404 '
r=$(head -c 100000 /dev/zero | curl -s -m 10 -X POST --data-binary @- -w '%{http_code}' "$API/v1/authenticate")
check_match "API: 100 kB body refused 413" "$r" '413$'
r=$(api POST /v1/authenticate '{"username":"alice","password":"good"}')
check_match "still serving after hostile input" "$r" '^200 .*"ok":true'
wait $SLOW
check_match "a request never finished is closed after 30 s" "$(cat "$T/slow.out")" '^closed after (2[89]|3[0-2]) s$'
check "hub still running" kill -0 $HUB_PID
kill -TERM $HUB_PID; wait $HUB_PID; rc=$?
check_eq "hub exits 0 on SIGTERM (no leaks under ASan)" "$rc" 0
finish
