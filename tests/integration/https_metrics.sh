#!/bin/bash
# /metrics, read through a real Prometheus text parser (python3-prometheus-client):
# it parses as a whole, histograms are consistent, counts move by exactly the
# logins made (password and certificate, right and wrong), the directory, hub
# link, TLS and expiry series say what happened, and a peer outside
# metrics_ranges gets 403 whatever it claims in X-Forwarded-For.  The agent
# logs JSON lines (log_format = json), each parsed back.
source "$ROOT/tests/lib.sh"
source "$ROOT/tests/https-lib.sh"

# The parser: the first python3 that has it (Debian puts it in /usr/lib/python3).
PROM_PY=
for py in python3 /usr/bin/python3; do
  if "$py" -c 'import prometheus_client.parser' 2>/dev/null; then PROM_PY=$py; break; fi
done
if [ -z "$PROM_PY" ]; then
  fail "python3-prometheus-client is installed (packaging/deps.sh)"; finish; exit
fi

# prom FILE QUERY...: parses FILE (every family, or the parser raises) and checks
# each histogram (cumulative buckets, +Inf equal to _count); prints one line per
# QUERY "name{k=v,...}" with the sample's value, "absent" when there is none.
# Prints "parse error: ..." and nothing else when the text does not parse.
cat >"$T/prom.py" <<'PY'
import math, re, sys
from prometheus_client.parser import text_string_to_metric_families
text = open(sys.argv[1]).read()
try:
    fams = list(text_string_to_metric_families(text))
except Exception as e:
    print("parse error: %s" % e); sys.exit(0)
samples = {}
for f in fams:
    if not f.documentation or f.type == "unknown":
        print("parse error: %s has no HELP or TYPE" % f.name); sys.exit(0)
    for s in f.samples:
        samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    if f.type == "histogram":
        series = {}
        for s in f.samples:
            if s.name.endswith("_bucket"):
                key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
                series.setdefault(key, []).append((float(s.labels["le"]), s.value))
        for key, b in series.items():
            b.sort()
            vals = [v for _, v in b]
            count = samples.get((f.name + "_count", key))
            if vals != sorted(vals) or b[-1][0] != math.inf or count != vals[-1]:
                print("parse error: histogram %s%s is inconsistent" % (f.name, key)); sys.exit(0)
for q in sys.argv[2:]:
    name, _, rest = q.partition("{")
    # Labels split at a comma before the next "name=": a value may hold commas.
    parts = re.split(r",(?=[a-z_]+=)", rest[:-1]) if rest else []
    labels = tuple(sorted(tuple(kv.split("=", 1)) for kv in parts if kv))
    v = samples.get((name, labels))
    print("absent" if v is None else ("%d" % v if v == int(v) else "%.3f" % v))
PY
# scrape FILE [curl args]: GET /metrics into FILE, prints the status.
scrape() { local f=$1; shift; c -o "$f" -w '%{http_code}' "$@" "$U/metrics"; }
# val FILE QUERY: one value.
val() { "$PROM_PY" "$T/prom.py" "$1" "$2"; }
# delta QUERY: its value in $T/m1 minus that in $T/m0.
delta() { echo $(( $(val "$T/m1" "$1") - $(val "$T/m0" "$1") )); }

https_setup || { fail "pki: could not build the test PKI"; finish; exit; }
# The front certificate with a lifetime of its own (45 days), so its gauge is
# told apart from the CAs' and the CRL's (30 days each).
(cd "$PKI" && certtool --generate-privkey --key-type=ecdsa --curve=secp256r1 --outfile front.key \
   >/dev/null 2>&1 &&
 printf 'cn = "localhost"\ndns_name = "localhost"\nip_address = "127.0.0.1"\nip_address = "::1"\ntls_www_server\nsigning_key\nexpiration_days = 45\n' >front.tmpl &&
 certtool --generate-certificate --load-privkey front.key --load-ca-certificate srv-ca.crt \
   --load-ca-privkey srv-ca.key --template front.tmpl --outfile front.crt >/dev/null 2>&1) ||
  { fail "front certificate made"; finish; exit; }
cat "$PKI/front.crt" "$PKI/srv-ca.crt" >"$T/server.pem"; cp "$PKI/front.key" "$T/server.key"
chmod 600 "$T/server.key"

P=$(free_port); U=https://127.0.0.1:$P
write_config "$T/agent.ini" "127.0.0.1:$P" "127.0.0.1/32" "$PKI/ca.crl" \
  agent.log_format=json https.metrics_ranges=127.0.0.1/32
start_agent "$T/agent.ini" "$T/agent.log" || { fail "agent starts"; finish; exit; }

# ---- who may read it
check_eq "/metrics from 127.0.0.1 (inside metrics_ranges): 200" "$(scrape "$T/m0")" 200
check_match "content type is the text format 0.0.4" \
  "$(c -o /dev/null -w '%{content_type}' "$U/metrics")" '^text/plain; version=0\.0\.4'
check_eq "/metrics from 127.0.0.2 (outside): 403" "$(scrape "$T/out" --interface 127.0.0.2)" 403
check_nomatch "the 403 carries no metrics" "$(cat "$T/out")" 'dirbridge_'
check_eq "/metrics from 127.0.0.2 claiming X-Forwarded-For 127.0.0.1: still 403" \
  "$(scrape "$T/out" --interface 127.0.0.2 -H 'X-Forwarded-For: 127.0.0.1' -H 'Forwarded: for=127.0.0.1')" 403
check_match "the refusal is logged" "$(cat "$T/agent.log")" '/metrics refused: the address is outside metrics_ranges'
check_eq "and 127.0.0.1 keeps being answered" "$(scrape "$T/m0")" 200

# ---- the logins: 2 right passwords, 1 wrong, 1 certificate, 1 refused certificate
post() { c -o "$T/post.html" -w '%{http_code}' --data-urlencode "session=$1" --data-urlencode "csrf=$2" \
         --data-urlencode "username=$3" --data-urlencode "password=$4" "$U/login"; }
form_csrf() { c "$U/login?session=$1" | sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p'; }
for i in 1 2; do
  S=$(new_session); csrf=$(form_csrf "$S")
  check_eq "password login $i (alice): 200" "$(post "$S" "$csrf" alice 'Passw0rd!')" 200
done
S=$(new_session); csrf=$(form_csrf "$S")
check_eq "wrong password (bob): 401" "$(post "$S" "$csrf" bob 'wrong')" 401
check_eq "certificate login (alice)" "$(page_kind "$(get_login 127.0.0.1:$P alice)")" success
check_eq "expired certificate: the form" "$(page_kind "$(get_login 127.0.0.1:$P expired)")" form
# Two handshakes that fail: plain HTTP on the TLS port, and no cipher in common.
printf 'GET / HTTP/1.0\r\n\r\n' | timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$P; cat >&3; cat <&3" >/dev/null 2>&1
curl -s --max-time 5 --cacert "$CA" --tls-max 1.2 --ciphers ECDHE-ECDSA-AES128-SHA -o /dev/null "$U/healthz"
sleep 0.3
check_eq "/metrics again: 200" "$(scrape "$T/m1")" 200

parsed=$(val "$T/m1" 'dirbridge_logins_total{method=password,result=success}')
check_match "the text parses (prometheus_client), HELP and TYPE for every family, histograms consistent" \
  "$parsed" '^[0-9]+$'
check_eq "password successes: +2" "$(delta 'dirbridge_logins_total{method=password,result=success}')" 2
check_eq "password failures: +1" "$(delta 'dirbridge_logins_total{method=password,result=failure}')" 1
check_eq "certificate successes: +1" "$(delta 'dirbridge_logins_total{method=certificate,result=success}')" 1
check_eq "certificate failures: +1 (the expired one)" \
  "$(delta 'dirbridge_logins_total{method=certificate,result=failure}')" 1
check_eq "requests to /metrics answered 403: +0 between the scrapes, 2 in all" \
  "$(val "$T/m1" 'dirbridge_http_requests_total{route=metrics,status=403}')" 2

# ---- directory
SRV="ldap://127.0.0.1:$SLAPD_PORT"
check_eq "user binds against slapd: +3 (two right, one wrong)" \
  "$(delta "dirbridge_directory_operation_duration_seconds_count{server=$SRV,operation=bind}")" 3
n=$(delta "dirbridge_directory_operation_duration_seconds_count{server=$SRV,operation=search}")
check_match "searches against slapd: at least one per login" "$n" '^([4-9]|[1-9][0-9]+)$'
check_eq "a wrong password is not a directory error" \
  "$(delta "dirbridge_directory_errors_total{server=$SRV,operation=bind}")" 0
check_eq "slapd is the server in use" "$(val "$T/m1" "dirbridge_directory_server_in_use{server=$SRV}")" 1
check_eq "slapd is up" "$(val "$T/m1" "dirbridge_directory_server_up{server=$SRV}")" 1
check_eq "no failover" "$(val "$T/m1" 'dirbridge_directory_failovers_total')" 0
check_eq "every bind within the +Inf bucket" \
  "$(val "$T/m1" "dirbridge_directory_operation_duration_seconds_bucket{server=$SRV,operation=bind,le=+Inf}")" \
  "$(val "$T/m1" "dirbridge_directory_operation_duration_seconds_count{server=$SRV,operation=bind}")"

# ---- hub link
check_eq "hub link open" "$(val "$T/m1" 'dirbridge_hub_link_state{state=open}')" 1
check_eq "hub link not in backoff" "$(val "$T/m1" 'dirbridge_hub_link_state{state=backoff}')" 0
check_eq "no reconnects" "$(val "$T/m1" 'dirbridge_hub_reconnects_total')" 0
check_eq "no hub requests in flight" "$(val "$T/m1" 'dirbridge_hub_requests_in_flight')" 0
check_eq "no busy refusals" "$(val "$T/m1" 'dirbridge_hub_busy_refusals_total')" 0

# ---- TLS and connections
fails=$(delta 'dirbridge_tls_handshakes_total{result=failure}')
check_eq "two failed handshakes" "$fails" 2
by=0
for r in other closed io alert no_shared_cipher version malformed verify; do
  by=$((by + $(delta "dirbridge_tls_handshake_failures_total{reason=$r}")))
done
check_eq "the failures by reason add up to the failures" "$by" "$fails"
check_eq "the cipher mismatch is no_shared_cipher" \
  "$(delta 'dirbridge_tls_handshake_failures_total{reason=no_shared_cipher}')" 1
acc=$(delta 'dirbridge_http_connections_accepted_total')
check_match "accepted connections moved with the requests" "$acc" '^([8-9]|[1-9][0-9]+)$'
check_match "open connections gauge" "$(val "$T/m1" 'dirbridge_http_open_connections')" '^[0-9]+$'
check_eq "throttle refusals: none" "$(val "$T/m1" 'dirbridge_login_refusals_total{reason=max_failures_per_ip}')" 0
check_eq "lockout guard refusals: none" "$(val "$T/m1" 'dirbridge_login_refusals_total{reason=lockout_guard}')" 0

# ---- days left (certtool dates the certificates now; 0.05 days is over an hour)
in_range() { awk -v v="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(v >= lo && v <= hi) }'; }
d=$(val "$T/m1" 'dirbridge_front_certificate_expiry_days')
check "front certificate: about 45 days left (got $d)" in_range "$d" 44.95 45.01
d=$(val "$T/m1" 'dirbridge_client_ca_expiry_days{subject=CN=dirbridge test client CA,O=dirbridge tests}')
check "client CA: about 30 days left (got $d)" in_range "$d" 29.95 30.01
d=$(val "$T/m1" 'dirbridge_crl_next_update_days')
check "CRL nextUpdate: about 30 days away (got $d)" in_range "$d" 29.95 30.01

# ---- the log: JSON lines
check_eq "every log line is one JSON object with ts, level, program and msg" "$("$PROM_PY" - "$T/agent.log" <<'PY'
import json, re, sys
bad = 0
n = 0
for line in open(sys.argv[1], encoding="utf-8"):
    n += 1
    try:
        o = json.loads(line)
        ok = (sorted(o) == ["level", "msg", "program", "ts"] and o["program"] == "dirbridge"
              and o["level"] in ("error", "warn", "info", "debug")
              and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", o["ts"]))
    except ValueError:
        ok = False
    if not ok:
        bad += 1
        print("bad line: %r" % line[:200], file=sys.stderr)
print("ok" if n > 10 and bad == 0 else "%d of %d lines bad" % (bad, n))
PY
)" ok
check_match "the listening line is in the JSON log" "$(cat "$T/agent.log")" '"level":"info","program":"dirbridge","msg":"https: listening'

# ---- a reload brings the new certificate's days (srv1 has 30)
cp "$PKI/srv1.chain.pem" "$T/server.pem"; cp "$PKI/srv1.key" "$T/server.key"
kill -HUP "$AGENT_PID"
for i in $(seq 50); do grep -q 'https: certificates reloaded' "$T/agent.log" && break; sleep 0.1; done
scrape "$T/m2" >/dev/null
d=$(val "$T/m2" 'dirbridge_front_certificate_expiry_days')
check "after a reload to a 30-day certificate: about 30 days left (got $d)" in_range "$d" 29.95 30.01
stop_agent "$T/agent.log"

# ---- failover: the first server is a TCP relay to slapd that is then killed
cat >"$T/relay.py" <<'PY'
import socket, sys, threading
lsn = socket.socket(); lsn.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lsn.bind(("127.0.0.1", 0)); lsn.listen(16)
print(lsn.getsockname()[1], flush=True)
def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    for s in (a, b):
        try: s.shutdown(socket.SHUT_RDWR)
        except OSError: pass
while True:
    c, _ = lsn.accept()
    u = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    threading.Thread(target=pipe, args=(c, u), daemon=True).start()
    threading.Thread(target=pipe, args=(u, c), daemon=True).start()
PY
python3 -u "$T/relay.py" "$SLAPD_PORT" >"$T/relay.port" 2>"$T/relay.log" &
RELAY_PID=$!; bg_track $RELAY_PID
for i in $(seq 50); do [ -s "$T/relay.port" ] && break; sleep 0.1; done
RP=$(head -1 "$T/relay.port"); RELAY="ldap://127.0.0.1:$RP"
P=$(free_port); U=https://127.0.0.1:$P
write_config "$T/agent2.ini" "127.0.0.1:$P" "127.0.0.1/32" "$PKI/ca.crl" \
  "ldap.url=$RELAY $SRV" https.metrics_ranges=127.0.0.1/32
start_agent "$T/agent2.ini" "$T/agent2.log" || { fail "second agent starts"; finish; exit; }
for i in $(seq 50); do grep -q 'service connection .* -> ready' "$T/agent2.log" && break; sleep 0.1; done
scrape "$T/f0" >/dev/null
check_eq "first server (the relay) in use" "$(val "$T/f0" "dirbridge_directory_server_in_use{server=$RELAY}")" 1
check_eq "second server (slapd) not in use" "$(val "$T/f0" "dirbridge_directory_server_in_use{server=$SRV}")" 0
kill "$RELAY_PID"; wait "$RELAY_PID" 2>/dev/null
for i in $(seq 100); do grep -q 'failing over to' "$T/agent2.log" && break; sleep 0.1; done
S=$(new_session); csrf=$(form_csrf "$S")
check_eq "a password login after the failover: 200" "$(post "$S" "$csrf" alice 'Passw0rd!')" 200
scrape "$T/f1" >/dev/null
check_eq "one failover" "$(val "$T/f1" 'dirbridge_directory_failovers_total')" 1
check_eq "the relay no longer in use" "$(val "$T/f1" "dirbridge_directory_server_in_use{server=$RELAY}")" 0
check_eq "slapd in use" "$(val "$T/f1" "dirbridge_directory_server_in_use{server=$SRV}")" 1
check_match "the relay's lost connections counted" \
  "$(val "$T/f1" "dirbridge_directory_connection_failures_total{server=$RELAY}")" '^[1-9][0-9]*$'
check_eq "the login's bind went to slapd" \
  "$(val "$T/f1" "dirbridge_directory_operation_duration_seconds_count{server=$SRV,operation=bind}")" 1
check_eq "text logs by default" "$(head -1 "$T/agent2.log" | cut -c1-11)" "dirbridge: "
stop_agent "$T/agent2.log"
finish
