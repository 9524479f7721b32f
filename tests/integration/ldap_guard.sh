#!/bin/bash
# The password-login guard of ldap/ against the shared slapd: unknown users cost a
# bind like a wrong password, lockout_guard stops before slapd's ppolicy
# (pwdMaxFailure 5) locks an account, and reveal_account_state = false hides
# account states.  Users are created here (as the slapd admin) and deleted at
# the end; every check is observed through ldapdrive's JSON, slapd's own log
# (level stats) and ldapwhoami straight against slapd.
. "$ROOT/tests/lib.sh"
. "$ROOT/tests/ldap_lib.sh"
set -u

BASE="dc=example,dc=test" PW='Passw0rd!'
P="ou=people,$BASE"
SVC="cn=dirbridge-svc,ou=services,$BASE"
LOG=$SLAPD_DIR/slapd.log
S="ldaps://127.0.0.1:$SLAPD_SPORT"
ldap_prologue "$SLAPD_DIR/tls/ca.crt" || { finish; exit; }

(umask 077; printf '%s' adminpw >"$T/admin.pw")   # -y takes the whole file: no newline
admin() { "$@" -x -H "$S" -D "cn=admin,$BASE" -y "$T/admin.pw"; }
COMMON=(url="$S" ca_file="$CA" base_dn="$BASE" type=openldap bind_dn="$SVC"
        bind_password_file="$T/svc.pw" "user_filter=(&(objectClass=inetOrgPerson)(uid={username}))"
        groups=none timeout_ms=5000)

# Users of this script only, so ppolicy failure counts never touch the shared ones.
TAG=g$$
USERS=()
mkuser() {
  USERS+=("$1")
  admin ldapadd >/dev/null 2>"$T/ldapadd.err" <<EOF
dn: uid=$1,$P
objectClass: inetOrgPerson
uid: $1
cn: Guard $1
sn: Guard
userPassword: $PW
EOF
}
rmusers() { local u; for u in "${USERS[@]}"; do admin ldapdelete "uid=$u,$P" >/dev/null 2>&1; done; }
trap 'rmusers; bg_cleanup' EXIT
whoami_ok() { ldapwhoami -x -H "$S" -D "uid=$1,$P" -w "$PW" >/dev/null 2>&1; }
user_binds() { count_re "BIND dn=\"uid=$1,$P\" method=128"; }
# seq CONF "PW1\nPW2..." USER...: sets OUT to the codes, space-separated.
seq_codes() { local conf=$1 in=$2; shift 2; drive "$conf" "$in" seq "$@"; CODES=$(jq -rs '[.[]|select(.user)|.code]|join(" ")' <<<"$OUT"); }

conf "$T/auto.ini" "${COMMON[@]}"
conf "$T/off.ini" "${COMMON[@]}" lockout_guard=0
conf "$T/two.ini" "${COMMON[@]}" lockout_guard=2
conf "$T/three.ini" "${COMMON[@]}" lockout_guard=3
conf "$T/window.ini" "${COMMON[@]}" lockout_guard=1 lockout_guard_window_s=1
conf "$T/hide.ini" "${COMMON[@]}" reveal_account_state=false

echo "== an unknown user costs the same directory work as a wrong password"
mkuser "$TAG-t" || fail "could not create $TAG-t: $(cat "$T/ldapadd.err")"
m=$(log_mark "$LOG")
drive "$T/off.ini" "wrong-1\n" auth "$TAG-t"
wrong=$(answer); sleep 0.3
w_log=$(log_since "$LOG" "$m")
m=$(log_mark "$LOG")
drive "$T/off.ini" "wrong-1\n" auth "nobody-$TAG"
unknown=$(answer); sleep 0.3
u_log=$(log_since "$LOG" "$m")
check_eq "unknown user: the identical answer" "$unknown" "$wrong"
nosvc() { grep -vF "dn=\"$SVC\"" | grep -v 'dn=""'; }
check_eq "wrong password: one user BIND" "$(nosvc <<<"$w_log" | count_re 'BIND dn=.* method=128')" 1
check_eq "unknown user: one BIND too" "$(nosvc <<<"$u_log" | count_re 'BIND dn=.* method=128')" 1
check_match "unknown user: the BIND names a DN under base_dn that does not exist" \
  "$(nosvc <<<"$u_log" | grep 'method=128' | head -1)" "BIND dn=\"cn=[0-9a-f]{32},$BASE\" method=128"
check_eq "unknown user: the BIND was refused (err=49)" \
  "$(grep -A3 "BIND dn=\"cn=[0-9a-f]\{32\},$BASE\"" <<<"$u_log" | count_re 'RESULT tag=97 err=49')" 1
check_eq "both: the same number of connections (ACCEPT)" \
  "$(count_re 'ACCEPT from' <<<"$u_log")" "$(count_re 'ACCEPT from' <<<"$w_log")"
check_eq "both: the same number of searches" "$(count_re ' SRCH base=' <<<"$u_log")" "$(count_re ' SRCH base=' <<<"$w_log")"
m=$(log_mark "$LOG")
drive "$T/off.ini" "$PW\n" many 6 "nobody-$TAG"
sleep 0.3
check_eq "6 concurrent unknown-user logins: 6 answers, all invalid_credentials" "$(j .counts.invalid_credentials)" 6
check_eq "6 concurrent unknown-user logins: 6 decoy BINDs" \
  "$(log_since "$LOG" "$m" | count_re "BIND dn=\"cn=[0-9a-f]{32},$BASE\" method=128")" 6
drive "$T/off.ini" "$PW\n" auth "$TAG-t"
check_eq "the user still logs in" "$(code)" ok

echo "== lockout_guard = auto: one below slapd's pwdMaxFailure (5)"
U=$TAG-a; mkuser "$U" || fail "could not create $U"
m=$(log_mark "$LOG")
seq_codes "$T/auto.ini" "w1\nw2\nw3\nw4\n$PW\n" "$U" "$U" "$U" "$U" "$U"
check_eq "auto: 4 wrong passwords, then the 5th attempt is refused" "$CODES" \
  "invalid_credentials invalid_credentials invalid_credentials invalid_credentials too_many_attempts"
check_eq "auto: the guard settled at 4" "$(jq -rs '.[-1].guard_limit' <<<"$OUT")" 4
check_eq "auto: one refusal counted" "$(jq -rs '.[-1].refused' <<<"$OUT")" 1
sleep 0.3
check_eq "auto: slapd saw 4 binds, none for the refused attempt" "$(log_since "$LOG" "$m" | user_binds "$U")" 4
check "auto: the account is not locked (ldapwhoami with the right password)" whoami_ok "$U"
check_match "auto: the refusal is logged with the user name" "$(cat "$T/drive.log")" \
  "warning: ldap: password login for \"$U\" refused before any bind"
check_nomatch "auto: no password in the log" "$(cat "$T/drive.log")" 'w4|Passw0rd'
seq_codes "$T/auto.ini" "w1\nw2\nw3\nw4\nw5\nw6\n" "$U" "${U^^}" "$U" "$U" "$U" "${U^^}"
check_eq "auto: spellings of one name share one budget (the DN's)" "$CODES" \
  "invalid_credentials invalid_credentials invalid_credentials invalid_credentials too_many_attempts too_many_attempts"
check "auto: still not locked" whoami_ok "$U"

echo "== lockout_guard = 0: slapd locks the account"
U=$TAG-o; mkuser "$U" || fail "could not create $U"
seq_codes "$T/off.ini" "w1\nw2\nw3\nw4\nw5\nw6\n" "$U" "$U" "$U" "$U" "$U" "$U"
check_nomatch "off: no attempt refused by the agent" "$CODES" too_many_attempts
check "off: premise: slapd locked the account after 5 failures" bash -c "! ldapwhoami -x -H '$S' -D 'uid=$U,$P' -w '$PW'"

echo "== lockout_guard = 2, unknown users, reset by a success"
U=$TAG-n; mkuser "$U" || fail "could not create $U"
seq_codes "$T/two.ini" "w1\nw2\n$PW\n" "$U" "$U" "$U"
check_eq "2: the 3rd attempt is refused, even with the right password" "$CODES" \
  "invalid_credentials invalid_credentials too_many_attempts"
check "2: not locked" whoami_ok "$U"
seq_codes "$T/two.ini" "w1\nw2\nw3\nw4\n" "ghost-$TAG" "GHOST-$TAG" "ghost-$TAG" "Ghost-$TAG"
check_eq "2: an unknown user is refused after 2 too, in any ASCII case" "$CODES" \
  "invalid_credentials invalid_credentials too_many_attempts too_many_attempts"
U=$TAG-r; mkuser "$U" || fail "could not create $U"
seq_codes "$T/three.ini" "w1\nw2\n$PW\nw3\nw4\n$PW\n" "$U" "$U" "$U" "$U" "$U" "$U"
check_eq "3: a success clears the count" "$CODES" \
  "invalid_credentials invalid_credentials ok invalid_credentials invalid_credentials ok"
seq_codes "$T/window.ini" "w1\nw2\n" "late-$TAG" "late-$TAG"
check_eq "window 1 s: refused at once" "$CODES" "invalid_credentials too_many_attempts"

echo "== reveal_account_state = false"
drive "$T/hide.ini" "$PW\n" auth carol
check_eq "carol (locked): invalid_credentials" "$(code)" invalid_credentials
check_match "carol: the log keeps the real reason" "$(tail -5 "$T/drive.log")" \
  'password login for "carol" refused: account_locked'
drive "$T/auto.ini" "$PW\n" auth carol
check_eq "default (true): carol is account_locked" "$(code)" account_locked

check_eq "no sanitizer report from any ldapdrive run" "$(count_re 'Sanitizer|runtime error:' <"$T/drive.log")" 0
finish
