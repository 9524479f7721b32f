#!/bin/bash
# Faults around the tunnel, with a slapd of this script's own: the directory
# dies mid-request, the hub dies mid-request and comes back, two agents share
# a hub and one dies, and agents with a wrong hub certificate or token.
. "$ROOT/tests/lib.sh"
. "$ROOT/tests/hub_lib.sh"

LP=$(free_port); LSP=$(free_port)
export DIR=$T/slapd
if ! PORT=$LP SPORT=$LSP BULK=0 "$ROOT/tests/servers/slapd.sh" start >"$T/slapd-start.log" 2>&1; then
  fail "own slapd did not start: $(tail -3 "$T/slapd-start.log")"; finish; exit
fi
SLAPD_PID=$(cat "$DIR/slapd.fgpid"); bg_track $SLAPD_PID
OWN_LDAP=(ldap.url=ldap://127.0.0.1:$LP ldap.ca_file=$DIR/tls/ca.crt)   # its own slapd

hub_pki
hub_start hub || { fail "hub did not start"; finish; exit; }
agent_config "$T/a1.ini" agent-1 "${OWN_LDAP[@]}"
agent_start "$T/a1.ini" "$T/a1.log"; A1=$AGENT_PID
check "agent-1 connects" wait_agents 1
r=$(api POST /v1/authenticate '{"username":"alice","password":"Passw0rd!"}')
check_match "agent-1 serves" "$r" '^200 .*"ok":true'

# The directory dies while requests are in flight: every answer is a profile
# (finished before) or directory_unavailable, never a hang or a wrong code.
concurrent 100 'alice:Passw0rd!:profile|directory_unavailable' >"$T/c1.out" &
cpid=$!; sleep 0.2
kill -9 $SLAPD_PID; wait $SLAPD_PID 2>/dev/null
wait $cpid
check_eq "slapd killed mid-request: profiles or directory_unavailable only" "$(cat "$T/c1.out")" "ok 100"
r=$(api POST /v1/authenticate '{"username":"alice","password":"Passw0rd!"}')
check_match "directory down: 503 directory_unavailable" "$r" '^503 .*"directory_unavailable"'
check "agent stays up without its directory" kill -0 $A1
r=$(api GET /v1/agents); check_match "agent stays connected to the hub" "$r" '"name":"agent-1"'
slapd -d 256 -h "ldap://127.0.0.1:$LP/ ldaps://127.0.0.1:$LSP/" -f "$DIR/slapd.conf" >>"$DIR/slapd.log" 2>&1 &
SLAPD_PID=$!; bg_track $SLAPD_PID; wait_port 127.0.0.1 $LP
ok=; for i in $(seq 60); do
  r=$(api POST /v1/authenticate '{"username":"alice","password":"Passw0rd!"}')
  grep -q '^200 ' <<<"$r" && { ok=1; break; }; sleep 0.5
done
check_eq "directory back: logins succeed again" "$ok" 1

# The hub dies while requests are in flight, and comes back on the same port.
# The directory is held still first, so the requests the hub sends stay in
# flight at the agent (however fast logins are) until its link has gone, and
# their answers arrive only after that.
kill -STOP $SLAPD_PID
concurrent 200 'alice:Passw0rd!:profile' >"$T/c2.out" &
cpid=$!
for i in $(seq 200); do
  p=$(curl -s -m 1 "$API/v1/agents" | json 'j["agents"][0]["pending"]' 2>/dev/null)
  [ "${p:-0}" -gt 0 ] 2>/dev/null && break
done
kill -9 $HUB_PID; wait $HUB_PID 2>/dev/null
sleep 0.3; kill -CONT $SLAPD_PID; wait $cpid
check_match "hub killed with requests pending at the agent" "${p:-0}" '^[1-9]'
check_nomatch "hub killed: no request got a wrong answer" "$(cat "$T/c2.out")" 'got (invalid|account|directory)'
sleep 1
hub_restart hub2
check "agent reconnects when the hub is back" wait_agents 1
r=$(api POST /v1/authenticate '{"username":"alice","password":"Passw0rd!"}')
check_match "served after reconnecting" "$r" '^200 .*"ok":true'
check_nomatch "no result from the old link delivered on the new one" "$(cat "$T/hub2.log")" 'result for unknown id'
check_match "agent dropped the answers of the lost link" "$(cat "$T/a1.log")" 'dropped: its link is gone'
check_match "agent logged the lost link" "$(cat "$T/a1.log")" 'hub: (disconnected|link failed|hub closed)'

# Two agents on one hub: both serve; one dies; the other keeps serving.
agent_config "$T/a2.ini" agent-2 "${OWN_LDAP[@]}"
agent_start "$T/a2.ini" "$T/a2.log"; A2=$AGENT_PID
check "two agents connected" wait_agents 2
r=$(concurrent 40 'alice:Passw0rd!:profile' 'nosuchuser:x:invalid_credentials|too_many_attempts')
check_eq "40 requests over two agents" "$r" "ok 40"
served=$(curl -s "$API/v1/agents" | json '" ".join(str(a["served"] > 0) for a in j["agents"])')
check_eq "round robin: both agents served requests" "$served" "True True"
concurrent 100 'alice:Passw0rd!:profile|directory_unavailable' >"$T/c3.out" &
cpid=$!; sleep 0.1
kill -9 $A1; wait $A1 2>/dev/null; wait $cpid
check_eq "agent-1 killed mid-request: profiles, or directory_unavailable for its own" "$(cat "$T/c3.out")" "ok 100"
check "hub drops the dead agent" wait_agents 1
r=$(concurrent 50 'alice:Passw0rd!:profile' 'dave:Passw0rd!:password_must_change')
check_eq "agent-2 serves everything after agent-1 died" "$r" "ok 50"

# Refusals: an agent that does not trust the hub's certificate, and a wrong token.
agent_config "$T/a3.ini" agent-3 "${OWN_LDAP[@]}" hub.ca_file="$T/pki/other-ca.pem"
agent_start "$T/a3.ini" "$T/a3.log"; A3=$AGENT_PID
printf 'not-the-token\n' >"$T/wrong.token"; chmod 600 "$T/wrong.token"
agent_config "$T/a4.ini" agent-4 "${OWN_LDAP[@]}" hub.token_file="$T/wrong.token"
agent_start "$T/a4.ini" "$T/a4.log"; A4=$AGENT_PID
sleep 3
r=$(curl -s "$API/v1/agents" | json '",".join(sorted(a["name"] for a in j["agents"]))')
check_eq "neither refused agent is connected" "$r" "agent-2"
check_match "agent refuses the hub's certificate" "$(cat "$T/a3.log")" 'hub certificate refused'
check_match "hub refuses the wrong token" "$(cat "$T/hub2.log")" 'upgrade refused: 401'
check_match "agent says its token was refused" "$(cat "$T/a4.log")" 'refused the token'
check_nomatch "the token is never logged" "$(cat "$T"/a*.log "$T"/hub*.log)" "$(cat "$T/pki/hub.token")|not-the-token"
h=$(curl -s -m 5 --cacert "$T/pki/ca.pem" "https://127.0.0.1:$(sed -n 's/^listen = 127.0.0.1://p' "$T/a3.ini")/healthz")
check_match "healthz of an agent without its hub: degraded" "$h" '"hub":"(disconnected|down)"'
check "refused agents keep running" kill -0 $A3 $A4

# SIGHUP with the right CA: agent-3 reloads and connects without a restart.
sed -i "s|^ca_file = $T/pki/other-ca.pem|ca_file = $T/pki/ca.pem|" "$T/a3.ini"
kill -HUP $A3
check "agent-3 connects after SIGHUP with the right hub CA" wait_agents 2

# A hub on IPv6 loopback, dialled by its bracketed literal.
H6=$(free_port); API6=$(free_port)
"$BUILD/dirbridge-hub" --listen "[::1]:$H6" --cert "$T/pki/hub.pem" --key "$T/pki/hub.key" \
  --tokens-file "$T/pki/tokens" --api "[::1]:$API6" -v >"$T/hub6.log" 2>&1 &
bg_track $!
agent_config "$T/a6.ini" agent-6 "${OWN_LDAP[@]}"
sed -i "s|^url = wss://127.0.0.1:$HUB_PORT/|url = wss://[::1]:$H6/|" "$T/a6.ini"
agent_start "$T/a6.ini" "$T/a6.log"; A6=$AGENT_PID
ok=; for i in $(seq 100); do
  curl -s -m 2 "http://[::1]:$API6/v1/agents" | grep -q '"agent-6"' && { ok=1; break; }; sleep 0.2
done
check_eq "agent reaches a hub at wss://[::1]:PORT" "$ok" 1
r=$(curl -s -m 30 -X POST -d '{"username":"alice","password":"Passw0rd!"}' "http://[::1]:$API6/v1/authenticate")
check_match "IPv6 hub serves logins" "$r" '"ok":true'

kill -TERM $A2 $A3 $A4 $A6; wait $A2; rc=$?
check_eq "agent-2 exits 0 on SIGTERM" "$rc" 0
finish
