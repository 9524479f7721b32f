#!/bin/bash
# The password-login guard of ldap/ against Active Directory (the Samba AD DC,
# SAMBA_DIR): lockout_guard = auto reads the domain's lockoutThreshold and stops
# one below it, so a user created here is never locked by the agent's attempts;
# unknown users get a decoy bind and the same budget.  The user is deleted at
# the end; nothing of the shared users changes.
. "$ROOT/tests/lib.sh"
. "$ROOT/tests/ldap_lib.sh"
set -u

ad_prologue || { finish; exit; }

COMMON=(url=ldaps://127.0.0.1 ca_file="$CA" base_dn="$BASE" type=ad bind_dn="CN=dirbridge-svc,$U"
        bind_password_file="$T/svc.pw" groups=none timeout_ms=5000
        "user_filter=(&(objectClass=user)(sAMAccountName={username}))")
conf "$T/auto.ini" "${COMMON[@]}"
conf "$T/ou.ini" "${COMMON[@]/#base_dn=*/base_dn=$U}"

LOCK=dbt-guard-$$
ldapadd "${ADM[@]}" >/dev/null 2>"$T/add.err" <<EOF
dn: CN=$LOCK,$U
objectClass: user
sAMAccountName: $LOCK
userPrincipalName: $LOCK@example.test
unicodePwd:: $(u16 "$PW")
userAccountControl: 512
EOF
[ $? = 0 ] || fail "could not create $LOCK: $(cat "$T/add.err")"
trap 'ldapdelete "${ADM[@]}" "CN=$LOCK,$U" >/dev/null 2>&1; bg_cleanup' EXIT
seq_codes() { local conf=$1 in=$2; shift 2; drive "$conf" "$in" seq "$@"; CODES=$(jq -rs '[.[]|select(.user)|.code]|join(" ")' <<<"$OUT"); }
rep() { local i s=""; for i in $(seq "$2"); do s+="$1 "; done; echo "${s% }"; }

TH=$(ldapsearch -LLL "${ADM[@]}" -s base -b "$BASE" lockoutThreshold 2>/dev/null | sed -n 's/^lockoutThreshold: //p')
echo "   the domain's lockoutThreshold: ${TH:-unreadable}"
check_match "premise: lockoutThreshold readable" "$TH" '^[0-9]+$'
if [ "${TH:-0}" -gt 1 ]; then
  N=$((TH - 1))
  pws=""; for i in $(seq "$N"); do pws+="bad-$i\n"; done
  seq_codes "$T/auto.ini" "${pws}$PW\n" $(rep "$LOCK" "$TH")
  check_eq "auto: $N wrong passwords, then refused before AD's lockout" "$CODES" \
    "$(rep invalid_credentials "$N") too_many_attempts"
  check_eq "auto: the guard settled at lockoutThreshold - 1" "$(jq -rs '.[-1].guard_limit' <<<"$OUT")" "$N"
  # Samba has no whoami extended operation: a bind and a rootDSE read say the same.
  check "auto: the account is not locked (a bind with the right password, straight to AD)" \
    ldapsearch -x -H ldaps://127.0.0.1 -D "$LOCK@example.test" -w "$PW" -s base -b "" dn
  seq_codes "$T/auto.ini" "${pws}x\n" $(rep "nobody-$$" "$TH")
  check_eq "auto: an unknown user is refused after $N too" "$CODES" \
    "$(rep invalid_credentials "$N") too_many_attempts"
  drive "$T/ou.ini" "$PW\n" seq "$LOCK"
  check_eq "auto with base_dn an OU: the domain object is found through the rootDSE" \
    "$(jq -rs '.[-1].guard_limit' <<<"$OUT")" "$N"
elif [ "${TH:-x}" = 0 ]; then
  seq_codes "$T/auto.ini" "bad-1\nbad-2\nbad-3\n" "$LOCK" "$LOCK" "$LOCK"
  check_eq "lockoutThreshold 0: auto means off" "$(jq -rs '.[-1].guard_limit' <<<"$OUT")" 0
fi
conf "$T/two.ini" "${COMMON[@]}" lockout_guard=5
seq_codes "$T/two.ini" "x\n" "nobody-$$"
check_match "a number at or above lockoutThreshold: warned at start" "$(cat "$T/drive.log")" \
  "lockout_guard = 5 is at or above the directory's lockout threshold"
check_eq "no sanitizer report from any ldapdrive run" "$(count_re 'Sanitizer|runtime error:' <"$T/drive.log")" 0
finish
