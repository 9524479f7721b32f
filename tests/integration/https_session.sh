#!/bin/bash
# Front-facing HTTPS and the hub's sessions: the agent serves only a session
# the hub made for it and still waits on.  A made-up, replayed or another
# agent's session gets 410 (no form, no certificate check, no directory
# search); a sign-in counts only once the hub said ok; with the hub down the
# browser gets 503 and the directory is left alone.
source "$ROOT/tests/lib.sh"
source "$ROOT/tests/https-lib.sh"

https_agent 127.0.0.1/32 || { finish; exit; }
AGENT1_PID=$AGENT_PID
alice=(--cert "$PKI/alice.crt" --key "$PKI/alice.key")
form_csrf() { c "$U/login?session=$1" | sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p'; }
post() {  # post URL SESSION CSRF USERNAME: status; the page in $T/post.html
  c -o "$T/post.html" -w '%{http_code}' --data-urlencode "session=$2" --data-urlencode "csrf=$3" \
    --data-urlencode "username=$4" --data-urlencode "password=Passw0rd!" "$1/login"
}
# new_lines LOG: what LOG gained since mark LOG.
mark() { cp "$1" "$T/mark"; }
new_lines() { sleep 0.3; diff "$T/mark" "$1" | sed -n 's/^> //p'; }
uniq_name() { echo "nosuch$(date +%s%N)"; }

# ---- a session the hub never issued
FAKE=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
mark "$T/agent.log"
code=$(c "${alice[@]}" -o "$T/fake.html" -w '%{http_code}' "$U/login?session=$FAKE")
new=$(new_lines "$T/agent.log")
check_eq "made-up session with a valid certificate: 410" "$code" 410
check_eq "made-up session: the no-longer-valid page" "$(page_kind "$(cat "$T/fake.html")")" gone
check_match "the page says the link is no longer valid" "$(cat "$T/fake.html")" 'no longer valid'
check_nomatch "made-up session: no form, no CSRF token" "$(cat "$T/fake.html")" 'name="(password|csrf)"'
check_nomatch "made-up session: no certificate check, no login" "$new" 'login: session|certificate refused'
check_match "made-up session: logged as not pending" "$new" "session $FAKE is not pending for this agent"
check_eq "made-up session: the hub has none" "$(session_state "$FAKE")" 404

# A password for a made-up session never reaches the directory.  The control
# first: with a real session the same kind of name shows up in slapd's log.
S=$(new_session); csrf=$(form_csrf "$S"); name=$(uniq_name)
check_eq "control: unknown user on a real session: 401" "$(post "$U" "$S" "$csrf" "$name")" 401
sleep 0.3
check_match "control: slapd saw that search" "$(grep -c "$name" "$SLOG")" '^[1-9]'
csrf=$(form_csrf "$FAKE"); name=$(uniq_name)
check_eq "made-up session: no CSRF token to be had" "$csrf" ""
check_eq "POST for a made-up session: 410" "$(post "$U" "$FAKE" "$csrf" "$name")" 410
check_eq "POST for a made-up session: no form" "$(page_kind "$(cat "$T/post.html")")" gone
sleep 0.3
check_eq "POST for a made-up session: no directory search" "$(grep -c "$name" "$SLOG")" 0

# ---- success only after the hub's ok, and only once
page=$(get_login 127.0.0.1:$P alice); S=$(cat "$T/last_session")
check_eq "certificate sign-in: success" "$(page_kind "$page")" success
check_eq "the hub has the session done when the page is shown" "$(session_state "$S")" done
check_match "the agent logged the hub's ok before answering" "$(cat "$T/agent.log")" \
  "hub accepted the login of alice for session $S"
code=$(SESSION=$S get_login 127.0.0.1:$P alice -o "$T/replay.html" -w '%{http_code}')
check_eq "replayed certificate sign-in: 410" "$code" 410
check_eq "replayed certificate sign-in: the no-longer-valid page" "$(page_kind "$(cat "$T/replay.html")")" gone
check_eq "replayed certificate sign-in: still one login" "$(grep -c "login: session $S method" "$T/agent.log")" 1

# Several browsers on one session at once: one signs in, the others get 410
# (from session_check, or from the hub refusing the second login).
S=$(new_session); pids=()
for i in 1 2 3 4; do
  (SESSION=$S get_login 127.0.0.1:$P alice >"$T/race.$i") & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
kinds=$(for i in 1 2 3 4; do page_kind "$(cat "$T/race.$i")"; done | sort | tr '\n' ' ')
check_eq "four sign-ins on one session: one success, three gone" "$kinds" "gone gone gone success "
grep -E "hub refused|is not pending" "$T/agent.log" | grep -F "$S" | sed 's/^/   /' | cut -c1-150

# ---- two agents on one hub: each serves only its own sessions
P2=$(free_port)
AGENT_NAME=https-other PUBLIC_URL=https://127.0.0.1:$P2/ write_config "$T/agent2.ini" "127.0.0.1:$P2" "127.0.0.1/32"
start_agent "$T/agent2.ini" "$T/agent2.log" || fail "second agent starts"
AGENT2_PID=$AGENT_PID
MINE= OTHER=
for i in $(seq 8); do
  r=$(curl -s -m 10 -X POST "$API/v1/sessions")
  id=$(json 'j["session"]' <<<"$r"); url=$(json 'j["login_url"]' <<<"$r")
  case $url in https://127.0.0.1:$P2/*) OTHER=${OTHER:-$id} ;; *) MINE=${MINE:-$id} ;; esac
  [ -n "$MINE" ] && [ -n "$OTHER" ] && break
done
check_match "the hub made sessions for both agents" "$MINE $OTHER" "^$SESSION_RE $SESSION_RE\$"
mark "$T/agent.log"
code=$(SESSION=$OTHER get_login 127.0.0.1:$P alice -o "$T/other.html" -w '%{http_code}')
check_eq "another agent's session: 410" "$code" 410
check_eq "another agent's session: no form" "$(page_kind "$(cat "$T/other.html")")" gone
check_nomatch "another agent's session: no certificate check, no login" "$(new_lines "$T/agent.log")" \
  'login: session|certificate refused'
code=$(SESSION=$MINE get_login 127.0.0.1:$P2 alice -o "$T/other2.html" -w '%{http_code}')
check_eq "the first agent's session at the second agent: 410" "$code" 410
check_eq "that session is still pending" "$(session_state "$OTHER")" pending
check_eq "the second agent signs its own session in" \
  "$(page_kind "$(SESSION=$OTHER get_login 127.0.0.1:$P2 alice)")" success
check_match "the hub recorded the second agent's login" "$(api GET "/v1/sessions/$OTHER")" '"state": ?"done"'

# ---- the hub down: 503, no form, no directory work
S=$(new_session); csrf=$(form_csrf "$S")
kill "$FRONT_HUB_PID"; wait "$FRONT_HUB_PID" 2>/dev/null
for i in $(seq 50); do grep -q 'hub: disconnected' "$T/agent.log" && break; sleep 0.1; done
mark "$T/agent.log"
code=$(c "${alice[@]}" -o "$T/down.html" -w '%{http_code}' "$U/login?session=$S")
check_eq "hub down, certificate sign-in: 503" "$code" 503
check_eq "hub down: the unavailable page" "$(page_kind "$(cat "$T/down.html")")" unavailable
check_nomatch "hub down: no certificate check, no login" "$(new_lines "$T/agent.log")" \
  'login: session|certificate refused'
name=$(uniq_name)
check_eq "hub down, password sign-in: 503" "$(post "$U" "$S" "$csrf" "$name")" 503
check_eq "hub down, password sign-in: no form" "$(page_kind "$(cat "$T/post.html")")" unavailable
sleep 0.3
check_eq "hub down: no directory search" "$(grep -c "$name" "$SLOG")" 0

AGENT_PID=$AGENT2_PID; stop_agent "$T/agent2.log"
AGENT_PID=$AGENT1_PID; stop_agent "$T/agent.log"
finish
