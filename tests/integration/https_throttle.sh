#!/bin/bash
# Failed form logins per client address (max_failures_per_ip, default 20 in 5
# minutes): past the limit the form answers 429 with no directory work; other
# addresses are unaffected; the refusals are logged and counted in /metrics.
source "$ROOT/tests/lib.sh"
source "$ROOT/tests/https-lib.sh"

https_agent 127.0.0.3/32 || { finish; exit; }
S=$(new_session)
form_csrf() { c "$@" "$U/login?session=$S" | sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p'; }
csrf=$(form_csrf)
post() {  # post USERNAME PASSWORD [curl args]: the status
  local u=$1 pw=$2; shift 2
  c -o "$T/post.html" -w '%{http_code}' "$@" --data-urlencode "session=$S" --data-urlencode "csrf=$csrf" \
    --data-urlencode "username=$u" --data-urlencode "password=$pw" "$U/login"
}

# 40 wrong passwords from one address, each for another name so that only the
# per-address limit can stop them (the per-user guard counts per name).
codes=()
for i in $(seq 40); do codes+=("$(post "nosuch$i-$$" wrong)"); done
n401=$(printf '%s\n' "${codes[@]:0:20}" | grep -c '^401$')
n429=$(printf '%s\n' "${codes[@]:20}" | grep -c '^429$')
check_eq "the first 20 failures from one address: 401" "$n401" 20
check_eq "failures 21..40 from that address: 429" "$n429" 20
check_match "the 429 page says to try later" "$(cat "$T/post.html")" 'Too many attempts'
sleep 0.3
check_eq "no directory search for names past the limit" \
  "$(grep -c "nosuch2[1-9]-$$\|nosuch3[0-9]-$$\|nosuch40-$$" "$SLOG")" 0
check_match "the directory was searched for the names before it" "$(grep -c "nosuch20-$$" "$SLOG")" '^[1-9]'
check_eq "even the right password from that address: 429" "$(post alice 'Passw0rd!')" 429
check_match "the refusal is logged" "$(cat "$T/agent.log")" 'password login refused: more than 20 failures from this address'

# Another address has its own budget.
csrf=$(form_csrf --interface 127.0.0.2)
check_eq "another address: wrong password still 401" "$(post nosuch-other-$$ wrong --interface 127.0.0.2)" 401
check_eq "another address: alice signs in" "$(post alice 'Passw0rd!' --interface 127.0.0.2)" 200

m=$(c "$U/metrics")
check_match "metrics count the refusals" "$m" 'dirbridge_login_refusals_total\{reason="max_failures_per_ip"\} 21'
check_match "metrics show the addresses on record" "$m" 'dirbridge_throttle_addresses [1-9]'

# A reload with the same limit keeps the counts: no fresh budget.
kill -HUP "$AGENT_PID"
for i in $(seq 50); do grep -q 'configuration reloaded' "$T/agent.log" && break; sleep 0.1; done
S=$(new_session); csrf=$(form_csrf)
check_eq "after a reload the address is still refused" "$(post nosuch-after-$$ wrong)" 429

# The per-user guard (auto: one below slapd's pwdMaxFailure 5, so 4) keeps its
# counts across a reload too.  Another address, so the per-address limit above
# plays no part.
IF=(--interface 127.0.0.4)
S=$(new_session); csrf=$(form_csrf "${IF[@]}")
for i in 1 2 3; do post "ghost-$$" wrong "${IF[@]}" >/dev/null; done
n=$(grep -c 'configuration reloaded' "$T/agent.log")
kill -HUP "$AGENT_PID"
for i in $(seq 50); do [ "$(grep -c 'configuration reloaded' "$T/agent.log")" -gt "$n" ] && break; sleep 0.1; done
S=$(new_session); csrf=$(form_csrf "${IF[@]}")
check_eq "4th failure for one name, after a reload: still a bind (401)" "$(post "ghost-$$" wrong "${IF[@]}")" 401
check_eq "5th attempt for that name: the guard kept its count over the reload (429)" \
  "$(post "ghost-$$" wrong "${IF[@]}")" 429
check_match "the guard's refusal is in /metrics" "$(c "$U/metrics")" \
  'dirbridge_login_refusals_total\{reason="lockout_guard"\} [1-9]'

stop_agent "$T/agent.log"

# dirbridge -n compares a configured guard with the directory's threshold
# (slapd's pwdMaxFailure is 5): at or above it, a warning; below it, none.
for n in 5 3; do
  sed "/^\[ldap\]\$/a lockout_guard = $n" "$T/agent.ini" >"$T/agent-guard$n.ini"
  out=$("$BUILD/dirbridge" -c "$T/agent-guard$n.ini" -n 2>&1); rc=$?
  check_eq "dirbridge -n with lockout_guard = $n: exit 0" "$rc" 0
  check_match "dirbridge -n with lockout_guard = $n: configuration ok" "$out" 'configuration ok'
  if [ $n = 5 ]; then
    check_match "dirbridge -n warns that lockout_guard = 5 is not below the directory's 5" "$out" \
      'lockout_guard = 5 is at or above the directory.s lockout threshold \(5\)'
  else
    check_nomatch "dirbridge -n does not warn for lockout_guard = 3" "$out" 'at or above'
  fi
done
finish
