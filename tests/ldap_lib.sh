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

# ldap_prologue CA: what every LDAP script starts with.  The ldap tools trust
# CA only; $T/svc.pw holds the service account's password.  Returns 1 after a
# FAIL when ldapdrive is not built.
ldap_prologue() {
  CA=$1
  export LDAPTLS_CACERT=$CA LDAPTLS_REQCERT=demand
  if [ ! -x "$BUILD/tests/ldapdrive" ]; then
    fail "build/tests/ldapdrive is missing (is the ldap/ module built?)"
    return 1
  fi
  secret "$T/svc.pw" 'Svc-Passw0rd!'
}

# ad_prologue: ldap_prologue for the Samba AD DC at $SAMBA_DIR, and its names:
# BASE, U (CN=Users), PW (the test users' password), ADM (the ldap tools'
# arguments to bind as the domain administrator).
ad_prologue() {
  BASE="DC=example,DC=test" U="CN=Users,DC=example,DC=test" PW='Passw0rd!'
  ldap_prologue "$SAMBA_DIR/tls/ca.crt" || return 1
  printf '%s' 'Adm1n-Pass!' >"$T/admin.y"; chmod 600 "$T/admin.y"   # ldap tools' -y: no newline
  ADM=(-x -H ldaps://127.0.0.1 -D "Administrator@EXAMPLE.TEST" -y "$T/admin.y")
}
# u16 TEXT: AD's unicodePwd value for password TEXT (quoted, UTF-16LE, base64).
u16() { printf '"%s"' "$1" | iconv -f utf-8 -t utf-16le | base64 -w0; }

# conf FILE KEY=VALUE...: an agent.ini with only [agent] and [ldap]; every key of
# [ldap] comes from the arguments, so each test says exactly what it configures.
conf() {
  local f=$1; shift
  write_ini "$f" agent.name=ldaptest agent.log_level="${LOG_LEVEL:-info}" "${@/#/ldap.}"
}

# log_mark LOG: the current length of a slapd log, for log_since.
log_mark() { wc -l <"$1" 2>/dev/null || echo 0; }
# log_since LOG MARK: the lines written after MARK.
log_since() { tail -n +"$(($2 + 1))" "$1"; }
# count_re REGEX: how many lines of stdin match.
count_re() { grep -Ec -- "$1" || true; }
