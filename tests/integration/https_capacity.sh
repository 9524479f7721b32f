#!/bin/bash
# Front-facing HTTPS capacity: [https] max_connections.  With the default more
# idle TLS connections than the old fixed cap (512) all stay open; at a small
# configured cap the next client evicts the oldest idle one; under a low
# open-file hard limit the agent says so at start and caps connections to what
# the limit allows.
source "$ROOT/tests/lib.sh"
source "$ROOT/tests/https-lib.sh"

# The client holds hundreds of sockets (only the soft limit moves: the agent
# inherits the hard one and raises its own soft limit up to it).
[ "$(ulimit -Sn)" -ge 4096 ] || ulimit -Sn 4096 2>/dev/null || ulimit -Sn "$(ulimit -Hn)"
https_setup || { fail "pki: could not build the test PKI"; finish; exit; }
hold() { timeout 50 python3 "$ROOT/tests/https_hold.py" "$P" "$CA" "$@" 2>"$T/hold.err"; }

# ---- the default: 700 idle connections, none evicted
P=$(free_port)
write_config "$T/agent.ini" "127.0.0.1:$P" "127.0.0.2/32"
start_agent "$T/agent.ini" "$T/agent.log" || { fail "agent starts"; finish; exit; }
out=$(hold 700)
check_match "default cap: 700 idle TLS connections opened" "$out" '^opened 700$'
check_match "default cap: all 700 (and the metrics one) open at once" "$out" '^open 701 evicted 0$'
check_match "default cap: every held connection still answers" "$out" '^answered 700 closed 0 '
check_match "default cap: nothing evicted" "$out" '^evicted 0$'
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -ge 10200 ]; then
  check_nomatch "default cap: the open-file limit was raised without a warning" \
    "$(cat "$T/agent.log")" 'open-file limit is'
fi
stop_agent "$T/agent.log"

# ---- max_connections = 32: the 33rd client evicts the oldest idle connection
P=$(free_port)
write_config "$T/agent32.ini" "127.0.0.1:$P" "127.0.0.2/32"
sed -i '/^\[https\]$/a max_connections = 32' "$T/agent32.ini"
start_agent "$T/agent32.ini" "$T/agent32.log" || { fail "agent starts with max_connections = 32"; finish; exit; }
out=$(hold 32)
check_match "cap 32: 32 idle connections opened" "$out" '^opened 32$'
check_match "cap 32: the 33rd evicted one, 32 open" "$out" '^open 32 evicted 1$'
check_match "cap 32: the oldest was the one evicted, the rest answer" "$out" \
  '^answered 31 closed 1 first_closed 0$'
check_match "cap 32: one eviction in all" "$out" '^evicted 1$'
# A reload applies a new cap to the running server.
sed -i 's/^max_connections = 32$/max_connections = 40/' "$T/agent32.ini"
kill -HUP "$AGENT_PID"
for i in $(seq 100); do grep -q "configuration reloaded" "$T/agent32.log" && break; sleep 0.1; done
check_match "cap 40 after reload: reloaded" "$(cat "$T/agent32.log")" 'configuration reloaded'
out=$(hold 40)
check_match "cap 40 after reload: the 41st evicted one, 40 open" "$out" '^open 40 evicted 2$'
check_match "cap 40 after reload: the oldest was the one evicted" "$out" \
  '^answered 39 closed 1 first_closed 0$'
stop_agent "$T/agent32.log"

# ---- an open-file hard limit of 200: the agent warns and caps below it
P=$(free_port)
write_config "$T/agent-nofile.ini" "127.0.0.1:$P" "127.0.0.2/32"
prlimit --nofile=200:200 "$BUILD/dirbridge" -c "$T/agent-nofile.ini" >"$T/agent-nofile.log" 2>&1 &
AGENT_PID=$!; bg_track "$AGENT_PID"
for i in $(seq 100); do grep -q "https: listening" "$T/agent-nofile.log" && break; sleep 0.1; done
log=$(cat "$T/agent-nofile.log")
check_match "low limit: a warning names the limit and the connections it allows" "$log" \
  'open-file limit is 200 \(hard limit 200\): that allows ([0-9]+) client connections, not max_connections 10000'
allowed=$(sed -n 's/.*that allows \([0-9]*\) client connections.*/\1/p' <<<"$log" | head -1)
if [ -n "$allowed" ] && [ "$allowed" -ge 16 ] && [ "$allowed" -lt 200 ]; then
  out=$(hold "$allowed")
  check_match "low limit: $allowed idle connections opened" "$out" "^opened $allowed\$"
  check_match "low limit: the next client evicts one" "$out" "^open $allowed evicted 1\$"
  check_match "low limit: the oldest was evicted, the rest answer" "$out" \
    "^answered $((allowed - 1)) closed 1 first_closed 0\$"
else
  fail "low limit: allowed connections '$allowed' out of 16..199"
fi
stop_agent "$T/agent-nofile.log"

finish
