#!/bin/bash
# The ldap/ module against a real Active Directory (the Samba AD DC from run.sh,
# SAMBA_DIR): login with nested groups through LDAP_MATCHING_RULE_IN_CHAIN, every
# AD refusal sub-code, paging beyond AD's 1000-entry page size, unicodePwd
# password changes, failover.  Users this script changes are its own (created and
# deleted here), so a shared development Samba stays as it was.
. "$ROOT/tests/lib.sh"
. "$ROOT/tests/ldap_lib.sh"
set -u

ad_prologue || { finish; exit; }

# An instance started by an older samba.sh lacks the service account and bulk
# users; this adds them (and does nothing when they are there).
check "samba fixtures present" env DIR="$SAMBA_DIR" "$ROOT/tests/servers/samba.sh" fixtures

secret "$T/admin.pw" 'Adm1n-Pass!'
COMMON=(ca_file="$CA" base_dn="$BASE" type=ad bind_dn="CN=dirbridge-svc,$U"
        bind_password_file="$T/svc.pw" groups=recursive timeout_ms=5000
        "user_filter=(&(objectClass=user)(sAMAccountName={username}))")
conf "$T/ldaps.ini" url=ldaps://127.0.0.1 "${COMMON[@]}"
conf "$T/starttls.ini" url=ldap://127.0.0.1 starttls=true "${COMMON[@]}"
C=$T/ldaps.ini

# mkuser NAME PASSWORD: an enabled user of this script's own, in CN=Users.
mkuser() {
  ldapdelete "${ADM[@]}" "CN=$1,$U" >/dev/null 2>&1
  ldapadd "${ADM[@]}" >/dev/null <<EOF
dn: CN=$1,$U
objectClass: user
sAMAccountName: $1
userPrincipalName: $1@example.test
displayName: Test $1
mail: $1@example.test
unicodePwd:: $(u16 "$2")
userAccountControl: 512
EOF
}
rmuser() { ldapdelete "${ADM[@]}" "CN=$1,$U" >/dev/null 2>&1; }
TMPUSERS=()
cleanup_users() { local u; for u in "${TMPUSERS[@]}"; do rmuser "$u"; done; }
trap 'cleanup_users; bg_cleanup' EXIT
admin_count() {
  ldapsearch -LLL "${ADM[@]}" -E pr=500/noprompt -b "$BASE" "$1" dn 2>/dev/null | grep -c '^dn:'
}
# Groups other than the primary group, which AD keeps outside member/memberOf.
groups_of() { j '[.profile.groups[] | select(. != "Domain Users")] | join(",")'; }

echo "== login, profile, nested groups"
drive "$C" "$PW\n" auth alice
check_eq "alice: ok" "$(code)" ok
check_eq "alice: username" "$(j .profile.username)" alice
check_match "alice: dn" "$(j .profile.dn)" '^CN=alice,CN=Users,DC=example,DC=test$'
check_eq "alice: email" "$(j .profile.email)" alice@example.test
check_match "alice: display_name" "$(j .profile.display_name)" 'Alice'
check_eq "alice: nested groups via in-chain (engineers -> staff -> all)" "$(groups_of)" "all,engineers,staff"
echo "   alice's groups as returned: $(j '.profile.groups|join(",")')"
drive "$T/starttls.ini" "$PW\n" auth alice
check_eq "alice over StartTLS: ok" "$(code)" ok
check_eq "alice over StartTLS: groups" "$(groups_of)" "all,engineers,staff"
drive "$C" "" lookup alice
check_eq "lookup alice: ok, enabled" "$(j '[.code,.profile.disabled]|join(" ")')" "ok false"
drive "$C" "$PW\n" auth bob
check_eq "bob: groups" "$(groups_of)" "all,staff"

conf "$T/direct.ini" url=ldaps://127.0.0.1 "${COMMON[@]/groups=recursive/groups=direct}"
drive "$T/direct.ini" "$PW\n" auth alice
check_eq "groups = direct: alice only in engineers" "$(groups_of)" "engineers"

# A legal but hostile name: a quote in sAMAccountName, a comma in the CN, so the
# DN carries an escape that must itself be escaped inside the in-chain filter.
HOST="o'b$$" HOSTCN="Smith\\, J$$"
TMPUSERS+=("$HOSTCN")
ldapdelete "${ADM[@]}" "CN=$HOSTCN,$U" >/dev/null 2>&1
if ldapadd "${ADM[@]}" >/dev/null <<EOF
dn: CN=$HOSTCN,$U
objectClass: user
sAMAccountName: $HOST
displayName: John Smith
unicodePwd:: $(u16 "$PW")
userAccountControl: 512

dn: CN=staff,$U
changetype: modify
add: member
member: CN=$HOSTCN,$U
EOF
then
  drive "$C" "$PW\n" auth "$HOST"
  check_eq "$HOST (CN with a comma): ok" "$(code)" ok
  check_eq "$HOST: dn keeps the escaped comma" "$(j .profile.dn | sed 's/\\2[cC]/\\,/')" "CN=$HOSTCN,$U"
  check_eq "$HOST: nested groups through a DN with an escape" "$(groups_of)" "all,staff"
else
  fail "could not create $HOST"
fi
ldapdelete "${ADM[@]}" "CN=$HOSTCN,$U" >/dev/null 2>&1

echo "== refusals and AD sub-codes"
drive "$C" "wrong-Passw0rd\n" auth bob
wrong=$(answer)
drive "$C" "$PW\n" auth nobody-here
unknown=$(answer)
drive "$C" "$PW\n" auth bob   # a good logon resets bob's badPwdCount
check_eq "wrong password (data 52e): invalid_credentials" "$(jq -r .code <<<"$wrong")" invalid_credentials
check_eq "unknown user: the identical answer" "$unknown" "$wrong"
drive "$C" "$PW\n" auth carol
check_eq "carol (data 533): account_disabled" "$(code)" account_disabled
drive "$C" "$PW\n" auth dave
check_eq "dave (data 701): account_expired" "$(code)" account_expired
drive "$C" "$PW\n" auth erin
check_eq "erin (data 773): password_must_change" "$(code)" password_must_change
drive "$C" "" lookup carol
check_eq "lookup carol: found, disabled" "$(j '[.code,.profile.disabled]|join(" ")')" "ok true"
drive "$C" "" lookup dave
check_eq "lookup dave: found, disabled (expired)" "$(j '[.code,.profile.disabled]|join(" ")')" "ok true"
drive "$C" "" lookup erin
check_eq "lookup erin (must change): found, not disabled" "$(j '[.code,.profile.disabled]|join(" ")')" "ok false"
drive "$C" "" lookup nobody-here
check_nomatch "lookup unknown user: not ok" "$(code)" '^ok$'

LOCK=dbt-lock-$$; TMPUSERS+=("$LOCK")
if mkuser "$LOCK" "$PW"; then
  drive "$C" "$PW\n" auth "$LOCK"
  check_eq "lockout user: logs in before" "$(code)" ok
  for i in 1 2 3; do drive "$C" "bad-$i\n" auth "$LOCK"; done
  drive "$C" "$PW\n" auth "$LOCK"
  check_eq "after lockoutThreshold (data 775): account_locked" "$(code)" account_locked
  drive "$C" "" lookup "$LOCK"
  check_eq "lookup of a locked-out user: disabled" "$(j '[.code,.profile.disabled]|join(" ")')" "ok true"
else
  fail "could not create $LOCK"
fi
rmuser "$LOCK"

echo "== empty password (AD would take it as an anonymous bind: success)"
drive "$C" "\n" auth alice
check_eq "empty password: invalid_credentials" "$(code)" invalid_credentials
drive "$C" "Passw0rd!\0x\n" auth alice
check_eq "password with NUL: invalid_credentials" "$(code)" invalid_credentials
# (Samba answers a DN with an empty password with 52e, where Windows AD may bind
# anonymously; ldap_openldap.sh proves the refusal on the wire against a slapd
# that binds such a DN anonymously.)

echo "== hostile usernames"
for u in '*' '*)(sAMAccountName=*' 'admin)(|(sAMAccountName=*' 'al*' 'alice)' 'EXAMPLE\alice'; do
  drive "$C" "$PW\n" auth "$u"
  check_match "auth '$u': refused" "$(code)" '^(invalid_credentials|bad_request)$'
  check_eq "auth '$u': no profile" "$(j '.profile.dn // "none"')" none
done

echo "== paged searches beyond AD's MaxPageSize (1000)"
n_bulk=$(admin_count '(displayName=*Bulk User*)')
check "fixture: more than 1000 bulk users ($n_bulk)" test "$n_bulk" -gt 1000
drive "$C" "" search "Bulk User" 5000
check_eq "search 'Bulk User' limit 5000: all $n_bulk" "$(j .count)" "$n_bulk"
check_eq "search results are distinct" "$(j '[.users[].dn]|unique|length')" "$n_bulk"
drive "$C" "" search "Bulk User" 1050
check_eq "search limit 1050: 1050" "$(j .count)" 1050
drive "$C" "" search "alic" 10
check_match "search finds alice" "$(j '[.users[].username]|join(",")')" '(^|,)alice(,|$)'
drive "$C" "" search "*" 10
check_eq "search '*' is literal: matches nobody" "$(j '[.code,.count]|join(" ")')" "ok 0"
drive "$C" "" users 5000
n=$(j .count)
check "users limit 5000: more than 1000 ($n)" test "${n:-0}" -gt 1000
check_match "users include alice and bulk1100" "$(j '[.users[].username]|map(select(.=="alice" or .=="bulk1100"))|sort|join(",")')" '^alice,bulk1100$'
drive "$C" "" groups 5000
check_match "groups include engineers, staff, all" "$(j '.groups|map(select(.=="engineers" or .=="staff" or .=="all"))|sort|join(",")')" '^all,engineers,staff$'
drive "$C" "" groups 3
check_eq "groups limit 3" "$(j .count)" 3

echo "== change password (unicodePwd delete/add as the user)"
PWU=dbt-pw-$$; TMPUSERS+=("$PWU")
if mkuser "$PWU" "$PW"; then
  drive "$C" "$PW\nN3w-Passw0rd!\n" passwd "$PWU"
  check_eq "user changes own password" "$(code)" ok
  drive "$C" "N3w-Passw0rd!\n" auth "$PWU"
  check_eq "logs in with the new password" "$(code)" ok
  # Samba, like Windows for NTLM, still accepts the old password at bind for a
  # while after a change, so the change shows in the next change instead: the
  # old password is no longer the current one.
  drive "$C" "$PW\nAn0ther-Passw0rd!\n" passwd "$PWU"
  check_eq "change from the old password refused: the change took effect" "$(code)" invalid_credentials
  drive "$C" "N3w-Passw0rd!\nshort\n" passwd "$PWU"
  check_eq "weak new password: password_policy" "$(code)" password_policy
  drive "$C" "wrong-old\nAn0ther-Passw0rd!\n" passwd "$PWU"
  check_eq "wrong old password: invalid_credentials" "$(code)" invalid_credentials
  drive "$C" "N3w-Passw0rd!\n" auth "$PWU"
  check_eq "still the new password after the refusals" "$(code)" ok
else
  fail "could not create $PWU"
fi
rmuser "$PWU"

echo "== kept user-bind connections"
st() { jq -rs "[.[]|select(.summary)][0].stats.$1" <<<"$OUT"; }
seqf() { jq -rs "[.[]|select(.user)]$1" <<<"$OUT"; }
# AD refusals (data 533, 773, 52e) leave the connection usable: every bind of
# the sequence goes over the one kept connection, each answered for its user.
drive "$C" "$PW\n$PW\n$PW\nwrong-Passw0rd\n$PW\n$PW\n" seq alice carol erin bob bob alice
check_eq "ok, disabled, must change, wrong, right, right: the right answers" \
  "$(seqf '|map(.code)|join(" ")')" "ok account_disabled password_must_change invalid_credentials ok ok"
check_eq "six AD logins on one user connection (opened 1, 5 binds reused)" \
  "$(st user_conns_opened) $(st user_binds) $(st user_binds_reused)" "1 6 5"
check_eq "bob after his wrong password on the kept connection: bob's own profile" \
  "$(seqf '[4]|[.dn]+(.groups|map(select(. != "Domain Users")))|join(",")')" "CN=bob,$U,all,staff"
check_eq "alice last, after four other identities on the connection: her nested groups" \
  "$(seqf '[5]|[.dn]+(.groups|map(select(. != "Domain Users")))|join(",")')" "CN=alice,$U,all,engineers,staff"
check_eq "AD's in-chain rule: one group search per login" "$(seqf '[0].stats.group_searches')" 1
conf "$T/mix.ini" url=ldaps://127.0.0.1 "${COMMON[@]}" lockout_guard=0
drive "$T/mix.ini" "$PW\n$PW\n$PW\n$PW\n$PW\n$PW\n$PW\n$PW\n" mix 5 alice bob nobody-mix alice bob nobody-mix alice bob
check_eq "mix on AD: 40 answers" "$(seqf '|length')" 40
expect='{"alice":"ok|CN=alice,'"$U"'|all,engineers,staff","bob":"ok|CN=bob,'"$U"'|all,staff","nobody-mix":"invalid_credentials||"}'
check_eq "mix on AD: 8 in flight, every answer its own user's" \
  "$(jq -rs --argjson e "$expect" '[.[]|select(.user)|select(([.code,(.dn // ""),((.groups // [])|map(select(. != "Domain Users"))|join(","))]|join("|")) != $e[.user])]|length' <<<"$OUT")" 0
check_match "mix on AD: user connections reused ($(st user_binds_reused) of $(st user_binds))" \
  "$(( $(st user_binds_reused) * 2 >= $(st user_binds) ))" '^1$'

echo "== concurrency and failover"
drive "$C" "$PW\n" many 100 alice
check_eq "100 concurrent logins: all ok" "$(j '.counts.ok')/$(j .total)" "100/100"
echo "   100 concurrent AD logins in $(j .elapsed_ms) ms"
DEAD=$(free_port)
conf "$T/dead-first.ini" url="ldaps://127.0.0.1:$DEAD ldaps://127.0.0.1" "${COMMON[@]}"
drive "$T/dead-first.ini" "$PW\n" auth alice
check_eq "dead first URL: the second answers" "$(code)" ok
conf "$T/wrong-ca.ini" url=ldaps://127.0.0.1 "${COMMON[@]/#ca_file=*/ca_file=$T/other-ca.crt}"
certtool -p --key-type=ecdsa --outfile "$T/other-ca.key" 2>/dev/null
printf 'cn = "Other CA"\nca\ncert_signing_key\nexpiration_days = 30\n' >"$T/other-ca.tmpl"
certtool -s --load-privkey "$T/other-ca.key" --template "$T/other-ca.tmpl" --outfile "$T/other-ca.crt" 2>/dev/null
drive "$T/wrong-ca.ini" "$PW\n" auth alice
check_eq "AD with a certificate from another CA: directory_unavailable" "$(code)" directory_unavailable

check_eq "no sanitizer report from any ldapdrive run" "$(count_re 'Sanitizer|runtime error:' <"$T/drive.log")" 0
finish
