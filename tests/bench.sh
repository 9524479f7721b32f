#!/bin/bash
# make bench: throughput of the directory layer against a real slapd on loopback.
# Each login is a service-account search, a TLS connection and bind as the user,
# and the recursive group walk.  Prints wall time per batch; compare runs on the
# same machine only.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$ROOT/${1:-build}
B=$(mktemp -d /tmp/dirbridge-bench.XXXXXX)
PORT=${BENCH_PORT:-14389} SPORT=${BENCH_SPORT:-14636}
trap 'DIR=$B/slapd "$ROOT/tests/servers/slapd.sh" stop >/dev/null 2>&1; rm -rf "$B"' EXIT
DIR=$B/slapd PORT=$PORT SPORT=$SPORT "$ROOT/tests/servers/slapd.sh" start >/dev/null
(umask 077; printf 'Svc-Passw0rd!\n' >"$B/svc.password")
cat >"$B/agent.ini" <<INI
[agent]
log_level = error
[ldap]
url = ldaps://127.0.0.1:$SPORT
ca_file = $B/slapd/tls/ca.crt
bind_dn = cn=dirbridge-svc,ou=services,dc=example,dc=test
bind_password_file = $B/svc.password
base_dn = dc=example,dc=test
type = openldap
groups = recursive
timeout_ms = 30000
INI
for n in 1 100 500 1000; do
  t0=$(date +%s%N)
  out=$(printf 'Passw0rd!\n' | "$BUILD/tests/ldapdrive" -c "$B/agent.ini" many "$n" alice)
  t1=$(date +%s%N)
  ms=$(( (t1 - t0) / 1000000 ))
  printf 'authenticate x%-5s %6d ms  %8.1f logins/s  %s\n' "$n" "$ms" \
    "$(echo "$n * 1000 / ($ms + 0.001)" | bc -l)" "$(tr -d '\n' <<<"$out" | head -c 120)"
done
