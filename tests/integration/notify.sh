#!/bin/bash
# The systemd protocol without systemd: the agent is started the way a
# Type=notify unit with WatchdogSec= starts it (NOTIFY_SOCKET, WATCHDOG_USEC,
# WATCHDOG_PID = its own pid), against a fake listener that records every
# datagram.  READY=1 must come once the front is listening, RELOADING=1 (with
# MONOTONIC_USEC) then READY=1 around each SIGHUP, taken or refused, WATCHDOG=1
# at half the interval, and STOPPING=1 on SIGTERM.  The second run takes its
# secrets as systemd credentials ($CREDENTIALS_DIRECTORY, credential:NAME).
source "$ROOT/tests/lib.sh"
source "$ROOT/tests/https-lib.sh"

https_setup || { fail "pki: could not build the test PKI"; finish; exit; }
P=$(free_port)
write_config "$T/agent.ini" "127.0.0.1:$P" "127.0.0.1/32" ||
  { fail "config: the hub did not start"; finish; exit; }

# One line per datagram: the listener's CLOCK_MONOTONIC in microseconds, a tab,
# and the message with its newlines shown as '|'.
SOCK=$T/notify.sock NLOG=$T/notify.log
python3 - "$SOCK" "$NLOG" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a") as out:
    while True:
        m = s.recv(4096).decode("utf-8", "replace")
        out.write("%d\t%s\n" % (time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000, m.replace("\n", "|")))
        out.flush()
PY
bg_track $!
for i in $(seq 50); do [ -S "$SOCK" ] && break; sleep 0.1; done
[ -S "$SOCK" ] || { fail "the fake notify listener did not start"; finish; exit; }
: >"$NLOG"

# WATCHDOG_PID must be the agent's own pid, known before it starts: a shell
# exports its pid and then becomes the agent.  1 s: a ping every 500 ms, which
# leaves a loaded test machine half a second of slack before a gap is too long.
WD_USEC=1000000
NOTIFY_SOCKET=$SOCK WATCHDOG_USEC=$WD_USEC \
  bash -c 'export WATCHDOG_PID=$$; exec "$0" -c "$1"' "$BUILD/dirbridge" "$T/agent.ini" \
  >"$T/agent.log" 2>&1 &
AGENT_PID=$!; bg_track "$AGENT_PID"

msgs() { cut -f2 "$NLOG"; }
wait_msg() {  # wait_msg REGEX [AFTER_LINE]: up to 15 s for a message matching REGEX
  local i; for i in $(seq 150); do
    tail -n +"$(( ${2:-0} + 1 ))" "$NLOG" | cut -f2 | grep -Eq -- "$1" && return 0; sleep 0.1; done
  return 1
}
if wait_msg '^READY=1'; then
  # READY=1 means the front accepts connections now, not eventually.
  if (exec 3<>"/dev/tcp/127.0.0.1/$P") 2>/dev/null; then pass "READY=1: the front is listening when it comes"
  else fail "READY=1 came before the front accepted connections"; fi
else
  fail "no READY=1 within 15 s: $(msgs | head -3 | tr '\n' ' '); agent: $(tail -3 "$T/agent.log" | tr '\n' ' ')"
  finish; exit
fi
check_match "READY=1 is the first message and carries a STATUS" "$(msgs | head -1)" '^READY=1\|STATUS=running$'

sleep 3
n=$(msgs | grep -c '^WATCHDOG=1$')
# 500 ms pings for at least 3 s: about 7; fewer than 4 means no timer at half
# the interval, more than 14 a timer far too fast.
if [ "$n" -ge 4 ] && [ "$n" -le 14 ]; then pass "WATCHDOG=1 repeats at half of WATCHDOG_USEC ($n in 3 s)"
else fail "WATCHDOG=1 count in 3 s at WATCHDOG_USEC=$WD_USEC: $n, want 4..14"; fi
gap=$(grep -P '\tWATCHDOG=1$' "$NLOG" | awk -F'\t' 'NR>1 && $1-p>m {m=$1-p} {p=$1} END {print m+0}')
if [ "$gap" -lt "$WD_USEC" ]; then pass "no gap between pings reaches the interval (max ${gap} us)"
else fail "a gap of ${gap} us between pings reached WATCHDOG_USEC=$WD_USEC"; fi

# reload_msgs FROM: the messages after line FROM, without the pings.
reload_msgs() { tail -n +"$(($1 + 1))" "$NLOG" | cut -f2 | grep -v '^WATCHDOG=1$'; }
hup() {  # hup LOGPATTERN: SIGHUP, wait for PATTERN in the agent log and READY=1
  local n l; n=$(wc -l <"$NLOG"); l=$(wc -l <"$T/agent.log")
  kill -HUP "$AGENT_PID"
  for i in $(seq 100); do tail -n +"$((l + 1))" "$T/agent.log" | grep -q "$1" && break; sleep 0.1; done
  wait_msg '^READY=1' "$n"
  echo "$n"
}
from=$(hup "configuration reloaded")
got=$(reload_msgs "$from" | tr '\n' ' ')
check_match "SIGHUP: RELOADING=1 with MONOTONIC_USEC, then READY=1" "$got" '^RELOADING=1\|MONOTONIC_USEC=[0-9]+ READY=1\|STATUS=running $'
# MONOTONIC_USEC is the agent's CLOCK_MONOTONIC: within a second of the
# listener's own clock when it arrived.
line=$(tail -n +"$((from + 1))" "$NLOG" | grep -P '\tRELOADING=1' | head -1)
skew=$(awk -F'\t' '{split($2, a, "MONOTONIC_USEC="); d = $1 - a[2]; print (d < 0 ? -d : d)}' <<<"$line")
if [ -n "$skew" ] && [ "$skew" -lt 1000000 ]; then pass "MONOTONIC_USEC is CLOCK_MONOTONIC (${skew} us off)"
else fail "MONOTONIC_USEC is not the monotonic clock: '$line'"; fi

# A refused reload still ends the reload for systemd, and says so.
cp "$T/agent.ini" "$T/agent.ini.good"
printf '[bogus]\nkey = 1\n' >>"$T/agent.ini"
from=$(hup "reload refused")
got=$(reload_msgs "$from" | tr '\n' ' ')
check_match "refused reload: RELOADING=1, then READY=1 with the refusal as STATUS" "$got" \
  '^RELOADING=1\|MONOTONIC_USEC=[0-9]+ READY=1\|STATUS=reload refused'
cp "$T/agent.ini.good" "$T/agent.ini"

n=$(wc -l <"$NLOG"); sleep 2
check_match "the watchdog keeps pinging after reloads" \
  "$(tail -n +"$((n + 1))" "$NLOG" | cut -f2 | grep -c '^WATCHDOG=1$')" '^([2-9])$'

n=$(wc -l <"$NLOG")
stop_agent "$T/agent.log"
after=$(tail -n +"$((n + 1))" "$NLOG" | cut -f2)
check_match "SIGTERM: STOPPING=1" "$after" '^STOPPING=1$'
check_nomatch "no ping after STOPPING=1" "$(sed -n '/^STOPPING=1$/,$p' <<<"$after" | tail -n +2)" 'WATCHDOG'
check_nomatch "nothing but pings before STOPPING=1" "$(sed '/^STOPPING=1$/,$d' <<<"$after")" '^[^W]'

# The second run also takes its secrets the way LoadCredential= hands them
# over: read-only copies in $CREDENTIALS_DIRECTORY, named credential:NAME.
# systemd makes them 0400 and owned by the service's user where the file
# system has no ACLs, else 0400 root's with a read ACL for the user, which
# stat shows as 0440: the token gets that mode.
CRED=$T/credentials; mkdir -p "$CRED"
cp "$T/bind.password" "$T/hub.token" "$T/server.key" "$CRED/"; chmod 0400 "$CRED"/*
chmod 0440 "$CRED/hub.token"; chmod 0500 "$CRED"
sed -e 's|^bind_password_file = .*|bind_password_file = credential:bind.password|' \
    -e 's|^token_file = .*|token_file = credential:hub.token|' \
    -e 's|^key_file = .*|key_file = credential:server.key|' "$T/agent.ini" >"$T/agent-cred.ini"
out=$("$BUILD/dirbridge" -n -c "$T/agent-cred.ini" 2>&1); rc=$?
check_eq "credential:NAME without \$CREDENTIALS_DIRECTORY: -n exits 2" "$rc" 2
check_match "... and names the LoadCredential= line to add" "$out" 'LoadCredential=hub\.token:'
check_match "credentials: -n accepts the 0400 and 0440 copies" \
  "$(CREDENTIALS_DIRECTORY=$CRED "$BUILD/dirbridge" -n -c "$T/agent-cred.ini" 2>&1)" 'configuration ok'

# A watchdog meant for another process (WATCHDOG_PID not ours) is not pinged.
: >"$NLOG"
NOTIFY_SOCKET=$SOCK WATCHDOG_USEC=$WD_USEC WATCHDOG_PID=1 CREDENTIALS_DIRECTORY=$CRED \
  "$BUILD/dirbridge" -c "$T/agent-cred.ini" >"$T/agent2.log" 2>&1 &
AGENT_PID=$!; bg_track "$AGENT_PID"
if wait_msg '^READY=1'; then
  sleep 1.5
  check_eq "WATCHDOG_PID of another process: no WATCHDOG=1" "$(msgs | grep -c '^WATCHDOG=1$')" 0
  # The hub accepted the credential token, the front serves the credential
  # key, and the directory bind used the credential password.
  for i in $(seq 100); do grep -q 'hub: connected to' "$T/agent2.log" && break; sleep 0.1; done
  check_match "credentials: the hub accepts the token" "$(grep 'hub: connected to' "$T/agent2.log")" 'connected'
  check "credentials: the front serves with the key" bash -c "echo | timeout 10 gnutls-cli --x509cafile '$CA' -p $P 127.0.0.1 >/dev/null 2>&1"
  r=$(api POST /v1/authenticate '{"username":"alice","password":"Passw0rd!"}')
  check_match "credentials: the service account binds (alice signs in through the hub)" "$r" '^200 .*"ok": *true'
else
  fail "second agent: no READY=1: $(tail -3 "$T/agent2.log" | tr '\n' ' ')"
fi
stop_agent "$T/agent2.log"
finish
