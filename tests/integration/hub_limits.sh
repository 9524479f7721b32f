#!/bin/bash
# The agent against a fake hub (tests/integration/hub_ws.py hub-limits): a 101
# upgrade response over 16 KiB of headers is refused (one within the limit is
# taken); a hub that never answers session_check gets the browser a 503
# "unavailable" page after the agent's own timeout, with no directory work;
# a login the hub refuses gets 410, one it accepts the success page.
. "$ROOT/tests/lib.sh"
. "$ROOT/tests/hub_lib.sh"

hub_pki
HUB_PORT=$(free_port)
timeout 120 python3 "$HUB_WS" hub-limits $HUB_PORT "$T/pki/hub.pem" "$T/pki/hub.key" \
  "$(cat "$T/pki/hub.token")" >"$T/fake.out" 2>"$T/fake.err" &
FAKE=$!; bg_track $FAKE
wait_port 127.0.0.1 $HUB_PORT
HTTPS_PORT=$(free_port)
agent_config "$T/agent.ini" limits-test "$HTTPS_PORT"
agent_start "$T/agent.ini" "$T/agent.log"
for i in $(seq 300); do grep -q '^upgrade 15k' "$T/fake.out" && break; sleep 0.1; done
out=$(cat "$T/fake.out")
check_match "a 20 KiB upgrade response is refused" "$out" '^upgrade 20k refused$'
check_match "the agent says why" "$(cat "$T/agent.log")" 'upgrade response over 16384 bytes'
check_match "a 15 KiB upgrade response is accepted" "$out" '^upgrade 15k accepted$'
for i in $(seq 50); do grep -q 'hub: connected to' "$T/agent.log" && break; sleep 0.1; done

# The hub is connected but never answers: the browser waits for the agent's
# timeout (10 s), then gets 503, and neither a form nor a certificate check.
S=0123456789abcdef0123456789abcdef
r=$(curl -s -m 30 --cacert "$T/pki/ca.pem" -o "$T/page.html" -w '%{http_code} %{time_total}' \
    "https://127.0.0.1:$HTTPS_PORT/login?session=$S")
check_eq "unanswered session_check: 503" "${r%% *}" 503
check "unanswered session_check: after about 10 s" awk -v t="${r#* }" 'BEGIN{exit !(t >= 8 && t < 20)}'
check_match "unanswered session_check: the unavailable page" "$(cat "$T/page.html")" 'id="unavailable"'
check_nomatch "unanswered session_check: no form" "$(cat "$T/page.html")" 'name="password"'
check_match "the fake hub saw the session_check" "$(cat "$T/fake.out")" "^session_check $S unanswered$"
check_nomatch "no directory work for it" "$(cat "$T/agent.log")" "login: session|certificate refused|password login"
# The hub says the session is pending, then refuses the login (it completed
# elsewhere meanwhile): the browser gets 410, never "signed in".
client_cert alice
cert=(--cert "$T/pki/alice.pem" --key "$T/pki/alice.key")
S=bbbb456789abcdef0123456789abcdef
code=$(curl -s -m 30 --cacert "$T/pki/ca.pem" "${cert[@]}" -o "$T/page.html" -w '%{http_code}' \
    "https://127.0.0.1:$HTTPS_PORT/login?session=$S")
check_eq "login refused by the hub: 410" "$code" 410
check_match "login refused by the hub: the no-longer-valid page" "$(cat "$T/page.html")" 'id="gone"'
check_nomatch "login refused by the hub: never signed in" "$(cat "$T/page.html")" 'id="result"'
check_match "the hub saw the login" "$(cat "$T/fake.out")" "^login $S certificate refused$"
check_match "the agent logged the refusal" "$(cat "$T/agent.log")" \
  "hub refused \(unknown_session\) the login of alice for session $S"
# The same flow with the hub's ok: signed in.
S=aaaa456789abcdef0123456789abcdef
page=$(curl -s -m 30 --cacert "$T/pki/ca.pem" "${cert[@]}" "https://127.0.0.1:$HTTPS_PORT/login?session=$S")
check_match "login accepted by the hub: signed in" "$page" 'id="result"'
check_match "the hub saw alice's login" "$(cat "$T/fake.out")" "^login $S certificate alice ok$"

check "agent still running" kill -0 $AGENT_PID
kill -TERM $AGENT_PID; wait $AGENT_PID; rc=$?
check_eq "agent exits 0 on SIGTERM" "$rc" 0
check_nomatch "no sanitizer report in the agent log" "$(cat "$T/agent.log")" 'Sanitizer|runtime error'
finish
