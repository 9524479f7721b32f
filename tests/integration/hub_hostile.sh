#!/bin/bash
# The agent against a hostile hub (tests/integration/hub_ws.py as a fake hub):
# malformed requests get bad_request, a flood is bounded (busy, never dropped),
# bad JSON / binary / 10 MB frames close the link and the agent reconnects, and
# a hub that stops answering pings is detected as dead.
. "$ROOT/tests/lib.sh"
. "$ROOT/tests/hub_lib.sh"

hub_pki
HUB_PORT=$(free_port)
timeout 300 python3 "$HUB_WS" hub $HUB_PORT "$T/pki/hub.pem" "$T/pki/hub.key" "$(cat "$T/pki/hub.token")" >"$T/fake.out" 2>"$T/fake.err" &
FAKE=$!; bg_track $FAKE
wait_port 127.0.0.1 $HUB_PORT
agent_config "$T/agent.ini" hostile-test
agent_start "$T/agent.ini" "$T/agent.log"
wait $FAKE; rc=$?
out=$(cat "$T/fake.out")
check_eq "fake hub ran every step" "$rc" 0
[ "$rc" = 0 ] || echo "fake hub: $(tail -5 "$T/fake.err")"
check_match "hello from the agent" "$out" '^hello hello hostile-test https://127.0.0.1:'
for i in m1 m2 m3 m4 m5 m6 m7; do
  check_match "malformed request $i: bad_request" "$out" "^result $i bad_request$"
done
check_match "a good request on the same link: ok" "$out" '^result g1 ok$'
check_match "400 requests at once: every one answered" "$out" '^flood answered 400 '
busy=$(sed -n 's/^flood answered 400 ok \([0-9]*\) busy \([0-9]*\)$/\1+\2/p' <<<"$out")
check_eq "flood: each answer is a profile or busy" "$(( ${busy:-0} ))" 400
check_match "bad JSON closes the link (1007)" "$out" '^close bad-json 1007$'
check_match "empty frame closes the link (1007)" "$out" '^close empty 1007$'
check_match "fragmented non-object closes the link (1007)" "$out" '^close fragments 1007$'
check_match "binary frame closes the link (1003)" "$out" '^close binary 1003$'
check_match "10 MB frame closes the link (1009 or reset)" "$out" '^close huge (1009|eof)$'
check_match "agent reconnects after each close" "$(grep -c '^reconnected after' <<<"$out")" '^5$'
d=$(sed -n 's/^silent hub dropped after \([0-9]*\) s$/\1/p' <<<"$out")
check_match "hub that stops answering pings dropped after 15+10 s (+backoff up to 15 s)" "${d:-999}" '^(2[0-9]|3[0-9]|4[0-9])$'
check_match "agent served after the half-open link" "$out" '^result g2 ok$'
check_match "agent logged the missing pong" "$(cat "$T/agent.log")" 'no pong within'
check "agent still running" kill -0 $AGENT_PID
check_nomatch "no password in the agent log" "$(cat "$T/agent.log")" 'Passw0rd'
kill -TERM $AGENT_PID; wait $AGENT_PID; rc=$?
check_eq "agent exits 0 on SIGTERM" "$rc" 0
finish
