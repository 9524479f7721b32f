#!/bin/bash
# make bench: throughput of the directory layer against a real slapd on loopback.
# Each login is a service-account search, a TLS connection and bind as the user,
# and the recursive group walk.  Prints wall time per batch; compare runs on the
# same machine only.
#   tests/bench.sh [BUILD] timing   instead measures the user-existence timing
#   oracle: 30 wrong passwords for an existing user interleaved with 30 attempts
#   for unknown users on one agent (lockout_guard = 0), and prints both medians;
#   they must differ by less than 20 % or 3 ms (exit 1 otherwise).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$ROOT/${1:-build}
MODE=${2:-throughput}
source "$ROOT/tests/ini.sh"
B=$(mktemp -d /tmp/dirbridge-bench.XXXXXX)
PORT=${BENCH_PORT:-14389} SPORT=${BENCH_SPORT:-14636}
trap 'DIR=$B/slapd "$ROOT/tests/servers/slapd.sh" stop >/dev/null 2>&1; rm -rf "$B"' EXIT
DIR=$B/slapd PORT=$PORT SPORT=$SPORT "$ROOT/tests/servers/slapd.sh" start >/dev/null
(umask 077; printf 'Svc-Passw0rd!\n' >"$B/svc.password")
write_ini "$B/agent.ini" agent.log_level=error \
  ldap.url="ldaps://127.0.0.1:$SPORT" ldap.ca_file="$B/slapd/tls/ca.crt" \
  ldap.bind_dn=cn=dirbridge-svc,ou=services,dc=example,dc=test ldap.bind_password_file="$B/svc.password" \
  ldap.base_dn=dc=example,dc=test ldap.type=openldap ldap.groups=recursive ldap.timeout_ms=30000
if [ "$MODE" = timing ]; then
  LDAPI="ldapi://$(echo "$B/slapd/ldapi" | sed 's,/,%2F,g')"
  # A user of its own, under a policy that never locks it, so 30 wrong
  # passwords cost the same bind each time.
  ldapadd -Q -Y EXTERNAL -H "$LDAPI" >/dev/null <<LDIF
dn: cn=nolock,ou=policies,dc=example,dc=test
objectClass: namedPolicy
objectClass: pwdPolicy
cn: nolock
pwdAttribute: userPassword
pwdLockout: FALSE

dn: uid=timing,ou=people,dc=example,dc=test
objectClass: inetOrgPerson
uid: timing
cn: Timing
sn: Timing
userPassword: Passw0rd!
pwdPolicySubentry: cn=nolock,ou=policies,dc=example,dc=test
LDIF
  printf 'lockout_guard = 0\n' >>"$B/agent.ini"
  users=(timing) pws='warm-up\n'
  for i in $(seq 30); do users+=(timing "nobody-$i-$RANDOM"); pws+="wrong-$i\nwrong-$i\n"; done
  printf -- "$pws" | "$BUILD/tests/ldapdrive" -c "$B/agent.ini" seq "${users[@]}" >"$B/timing.out" || true
  python3 - "$B/timing.out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"user"' in l][1:]
known = [r["ms"] for r in rows if r["user"] == "timing"]
unknown = [r["ms"] for r in rows if r["user"] != "timing"]
codes = {r["code"] for r in rows}
mk, mu = statistics.median(known), statistics.median(unknown)
diff = abs(mk - mu)
ok = codes == {"invalid_credentials"} and (diff < 3 or diff < 0.2 * max(mk, mu))
print(f"wrong password, existing user: median {mk:.1f} ms over {len(known)}")
print(f"unknown user:                  median {mu:.1f} ms over {len(unknown)}")
print(f"difference {diff:.1f} ms ({100 * diff / max(mk, mu):.0f} %), answers {sorted(codes)}: "
      + ("ok" if ok else "TOO DIFFERENT"))
sys.exit(0 if ok else 1)
PY
  exit
fi
for n in 1 100 500 1000; do
  t0=$(date +%s%N)
  out=$(printf 'Passw0rd!\n' | "$BUILD/tests/ldapdrive" -c "$B/agent.ini" many "$n" alice)
  t1=$(date +%s%N)
  ms=$(( (t1 - t0) / 1000000 ))
  printf 'authenticate x%-5s %6d ms  %8.1f logins/s  %s\n' "$n" "$ms" \
    "$(echo "$n * 1000 / ($ms + 0.001)" | bc -l)" "$(tr -d '\n' <<<"$out" | head -c 120)"
done
