# Helpers for the LDAP integration scripts (sourced after tests/lib.sh).
# drive CONF INPUT CMD...: runs build/tests/ldapdrive with INPUT (a printf format:
# passwords, one per line) on stdin; sets OUT (stdout, JSON) and RC.  A crash, a
# hang or any sanitizer report is a FAIL of its own, named after the command.

drive() {
  local conf=$1 input=$2; shift 2
  local err=$T/drive.$$.err
  OUT=$(timeout 120 "$BUILD/tests/ldapdrive" -c "$conf" "$@" < <(printf -- "$input") 2>"$err"); RC=$?
  cat "$err" >>"$T/drive.log"
  if [ "$RC" -gt 2 ] || grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error:' "$err"; then
    fail "ldapdrive $* ran cleanly: exit $RC, $(grep -Em2 'Sanitizer|runtime error:|ldapdrive:' "$err" | tr '\n' ' ')"
  fi
  rm -f "$err"
}
# j FILTER: a field of the last OUT (jq -r syntax)
j() { jq -r "$1" <<<"$OUT" 2>/dev/null; }
code() { j '.code'; }
# The exact JSON answer without fields that may differ between two calls.
answer() { jq -cS 'del(.elapsed_ms, .t_ms)' <<<"$OUT" 2>/dev/null; }

# secret FILE TEXT: writes a private secret file.
secret() { (umask 077; printf '%s\n' "$2" >"$1"); chmod 600 "$1"; }

# conf FILE KEY=VALUE...: an agent.ini with only [agent] and [ldap]; every key of
# [ldap] comes from the arguments, so each test says exactly what it configures.
conf() {
  local f=$1; shift
  { printf '[agent]\nname = ldaptest\nlog_level = %s\n\n[ldap]\n' "${LOG_LEVEL:-info}"
    local kv; for kv in "$@"; do printf '%s = %s\n' "${kv%%=*}" "${kv#*=}"; done; } >"$f"
}

# log_mark LOG: the current length of a slapd log, for log_since.
log_mark() { wc -l <"$1" 2>/dev/null || echo 0; }
# log_since LOG MARK: the lines written after MARK.
log_since() { tail -n +"$(($2 + 1))" "$1"; }
# count_re REGEX: how many lines of stdin match.
count_re() { grep -Ec -- "$1" || true; }
