#!/bin/bash
# The ldap/ module against real OpenLDAP slapd servers: the shared one from run.sh
# (SLAPD_DIR, SLAPD_PORT, SLAPD_SPORT) and a few started here for the untrusted
# certificate, plain-link and failover checks.  Everything is observed through
# build/tests/ldapdrive's JSON and slapd's own log (level stats: one line per
# ACCEPT, BIND, SRCH), so "nothing reached the wire" is checked on the server.
. "$ROOT/tests/lib.sh"
. "$ROOT/tests/ldap_lib.sh"
set -u

BASE="dc=example,dc=test" PW='Passw0rd!'
P="ou=people,$BASE" G="ou=groups,$BASE"
SVC="cn=dirbridge-svc,ou=services,$BASE"
LOG=$SLAPD_DIR/slapd.log
LDAPI="ldapi://$(echo "$SLAPD_DIR/ldapi" | sed 's,/,%2F,g')"
SLAPD=$ROOT/tests/servers/slapd.sh
ldap_prologue "$SLAPD_DIR/tls/ca.crt" || { finish; exit; }

COMMON=(ca_file="$CA" base_dn="$BASE" type=openldap
        "user_filter=(&(objectClass=inetOrgPerson)(uid={username}))" groups=recursive timeout_ms=3000)
SIMPLE=(bind_dn="$SVC" bind_password_file="$T/svc.pw")
conf "$T/ldaps.ini" url="ldaps://127.0.0.1:$SLAPD_SPORT" "${COMMON[@]}" "${SIMPLE[@]}"
conf "$T/starttls.ini" url="ldap://127.0.0.1:$SLAPD_PORT" starttls=true "${COMMON[@]}" "${SIMPLE[@]}"
C=$T/ldaps.ini

# Counts simple binds as DN in the shared slapd log.
binds() { grep -cF "BIND dn=\"$1\" method=128" "$LOG" || true; }

echo "== login, profile, nested groups"
drive "$C" "$PW\n" auth alice
check_eq "alice: ok" "$(code)" ok
check_eq "alice: username" "$(j .profile.username)" alice
check_eq "alice: dn" "$(j .profile.dn)" "uid=alice,$P"
check_eq "alice: display_name" "$(j .profile.display_name)" "Alice Test"
check_eq "alice: email" "$(j .profile.email)" alice@example.test
check_eq "alice: nested groups (engineers -> staff -> all)" "$(j '.profile.groups|join(",")')" "all,engineers,staff"
check_eq "alice: exit status 0" "$RC" 0
drive "$T/starttls.ini" "$PW\n" auth alice
check_eq "alice over StartTLS: ok" "$(code)" ok
check_eq "alice over StartTLS: same groups" "$(j '.profile.groups|join(",")')" "all,engineers,staff"
check_match "StartTLS was negotiated" "$(grep -c 'EXT oid=1.3.6.1.4.1.1466.20037' "$LOG")" '^[1-9]'
drive "$C" "" lookup alice
check_eq "lookup alice: ok, not disabled" "$(j '[.code,.profile.disabled,.profile.dn]|join(" ")')" "ok false uid=alice,$P"
check_eq "lookup alice: groups" "$(j '.profile.groups|join(",")')" "all,engineers,staff"
drive "$C" "$PW\n" auth bob
check_eq "bob: direct and nested groups" "$(j '[.code]+.profile.groups|join(",")')" "ok,all,staff"
drive "$C" "$PW\n" auth eve
check_eq "eve: group cycle a<->b terminates with both" "$(j '[.code]+.profile.groups|join(",")')" "ok,cycle-a,cycle-b"
drive "$C" "$PW\n" auth "o'brien"
check_eq "o'brien (DN with an escaped comma): ok" "$(code)" ok
check_match "o'brien: dn" "$(j .profile.dn)" '^cn=Smith(\\,|\\2[cC]) John,ou=people,dc=example,dc=test$'
check_eq "o'brien: group with a comma in its name" "$(j '.profile.groups|join("|")')" "Ops, Special"
check_eq "o'brien: display_name with quotes" "$(j .profile.display_name)" "John \"O'Brien\" Smith"

conf "$T/direct.ini" url="ldaps://127.0.0.1:$SLAPD_SPORT" "${COMMON[@]/groups=recursive/groups=direct}" "${SIMPLE[@]}"
drive "$T/direct.ini" "$PW\n" auth alice
check_eq "groups = direct: alice only in engineers" "$(j '[.code]+.profile.groups|join(",")')" "ok,engineers"
conf "$T/nogroups.ini" url="ldaps://127.0.0.1:$SLAPD_SPORT" "${COMMON[@]/groups=recursive/groups=none}" "${SIMPLE[@]}"
drive "$T/nogroups.ini" "$PW\n" auth alice
check_eq "groups = none: no groups" "$(j '[.code]+.profile.groups|join(",")')" "ok"
conf "$T/attrs.ini" url="ldaps://127.0.0.1:$SLAPD_SPORT" "${COMMON[@]}" "${SIMPLE[@]}" "attributes=givenName sn"
drive "$T/attrs.ini" "$PW\n" auth alice
check_eq "configured attributes in the profile" "$(j '[.profile.attrs.givenName[0],.profile.attrs.sn[0]]|join(" ")')" "Alice Test"
conf "$T/attrs-pw.ini" url="ldaps://127.0.0.1:$SLAPD_SPORT" "${COMMON[@]}" "${SIMPLE[@]}" "attributes=userPassword"
drive "$T/attrs-pw.ini" "" lookup alice
check_eq "userPassword as an extra attribute: configuration refused (exit 2)" "$RC" 2

echo "== refusals"
drive "$C" "wrong-Passw0rd\n" auth bob
wrong=$(answer); wrong_rc=$RC
drive "$C" "$PW\n" auth nobody-here
unknown=$(answer)
check_eq "wrong password: invalid_credentials" "$(jq -r .code <<<"$wrong")" invalid_credentials
check_eq "wrong password: exit status 1" "$wrong_rc" 1
check_eq "unknown user: the identical answer" "$unknown" "$wrong"
drive "$C" "$(head -c 100000 /dev/zero | tr '\0' a)\n" auth bob
check_eq "100 kB password: invalid_credentials" "$(code)" invalid_credentials
drive "$C" "$PW\n" auth bob   # a good bind clears bob's ppolicy failure count
check_eq "bob still logs in after the failures" "$(code)" ok
drive "$C" "$PW\n" auth carol
check_eq "carol (pwdAccountLockedTime): account_locked" "$(code)" account_locked
drive "$C" "" lookup carol
check_eq "lookup carol: found, disabled" "$(j '[.code,.profile.disabled]|join(" ")')" "ok true"
drive "$C" "$PW\n" auth dave
check_eq "dave (pwdReset): password_must_change" "$(code)" password_must_change
drive "$C" "" lookup nobody-here
check_nomatch "lookup unknown user: not ok" "$(code)" '^ok$'
# A lookup is exact up to ASCII case; slapd's caseIgnoreMatch finds alice for
# all of these, but only the first two are alice's own name.
for u in ALICE Alice; do
  drive "$C" "" lookup "$u"
  check_eq "lookup '$u': alice, the directory's spelling" "$(j '[.code,.profile.username]|join(" ")')" "ok alice"
done
for u in $'\xef\xbd\x81lice' 'alice ' ' alice'; do
  drive "$C" "" lookup "$u"
  check_eq "lookup '$u' (found only by folding): not_found" "$(code)" not_found
done

echo "== empty password and NUL never reach the wire"
m=$(log_mark "$LOG")
drive "$C" "\n" auth eve
check_eq "empty password: invalid_credentials" "$(code)" invalid_credentials
drive "$C" "Passw0rd!\0x\n" auth eve
check_eq "password with NUL: invalid_credentials" "$(code)" invalid_credentials
drive "$C" "\0\n" auth eve
check_eq "password that is one NUL: invalid_credentials" "$(code)" invalid_credentials
sleep 0.2
check_eq "no BIND as eve reached slapd" "$(log_since "$LOG" "$m" | count_re "BIND dn=\"uid=eve,")" 0
check_eq "no anonymous BIND reached slapd" "$(log_since "$LOG" "$m" | count_re 'BIND dn="" method=128')" 0

echo "== hostile usernames"
m=$(log_mark "$LOG")
for u in '*' '*)(uid=*' 'admin)(|(uid=*' 'al*' 'alice)' '(uid=alice)' 'alice\' 'alice,ou=people'; do
  drive "$C" "$PW\n" auth "$u"
  check_match "auth '$u': refused" "$(code)" '^(invalid_credentials|bad_request)$'
  check_eq "auth '$u': no profile" "$(j '.profile.dn // "none"')" none
  drive "$C" "" lookup "$u"
  check_nomatch "lookup '$u': not ok" "$(code)" '^ok$'
done
drive "$C" "$PW\n" auth "$(printf 'x%.0s' $(seq 300))"
check_match "300-byte username: refused" "$(code)" '^(invalid_credentials|bad_request)$'
sleep 0.2
check_eq "no unescaped wildcard in any user search" \
  "$(log_since "$LOG" "$m" | grep 'SRCH' | count_re '\(uid=\*|\(uid=al\*|\(\|\(uid')" 0
check_eq "no BIND for any hostile name" "$(log_since "$LOG" "$m" | grep 'method=128' | grep -vcF "$SVC" || true)" 0

echo "== untrusted certificate: refused before any bind"
RP=$(free_port) RSP=$(free_port)
DIR=$T/rogue PORT=$RP SPORT=$RSP BULK=0 "$SLAPD" start >"$T/rogue.start" 2>&1 || cat "$T/rogue.start"
bg_track "$(cat "$T/rogue/slapd.fgpid" 2>/dev/null)"
conf "$T/rogue-ldaps.ini" url="ldaps://127.0.0.1:$RSP" "${COMMON[@]}" "${SIMPLE[@]}"
conf "$T/rogue-starttls.ini" url="ldap://127.0.0.1:$RP" starttls=true "${COMMON[@]}" "${SIMPLE[@]}"
m=$(log_mark "$T/rogue/slapd.log")   # slapd.sh's own readiness probe binds anonymously
drive "$T/rogue-ldaps.ini" "$PW\n" auth alice
check_eq "LDAPS to an untrusted server: directory_unavailable" "$(code)" directory_unavailable
drive "$T/rogue-starttls.ini" "$PW\n" auth alice
check_eq "StartTLS to an untrusted server: directory_unavailable" "$(code)" directory_unavailable
sleep 0.2
check_match "the module did connect to the untrusted server" "$(log_since "$T/rogue/slapd.log" "$m" | count_re 'ACCEPT from')" '^[1-9]'
check_eq "no BIND at all reached the untrusted server" "$(log_since "$T/rogue/slapd.log" "$m" | count_re 'BIND')" 0
DIR=$T/rogue "$SLAPD" stop >/dev/null
# A certificate from the trusted CA, for another name: the name check alone refuses it.
DIR=$T/rogue PORT=$RP SPORT=$RSP BULK=0 CA_FROM=$SLAPD_DIR SRV_DNS=other.example.test SRV_IP= \
  "$SLAPD" start >"$T/rogue.start" 2>&1 || cat "$T/rogue.start"
bg_track "$(cat "$T/rogue/slapd.fgpid" 2>/dev/null)"
m=$(log_mark "$T/rogue/slapd.log")
drive "$T/rogue-ldaps.ini" "$PW\n" auth alice
check_eq "trusted CA but another host name: directory_unavailable" "$(code)" directory_unavailable
sleep 0.2
check_match "the module did connect to the wrong-name server" "$(log_since "$T/rogue/slapd.log" "$m" | count_re 'ACCEPT from')" '^[1-9]'
check_eq "no BIND reached the wrong-name server" "$(log_since "$T/rogue/slapd.log" "$m" | count_re 'BIND')" 0
conf "$T/byname.ini" url="ldaps://localhost:$SLAPD_SPORT" "${COMMON[@]}" "${SIMPLE[@]}"
drive "$T/byname.ini" "$PW\n" auth alice
check_eq "ldaps://localhost (a DNS name in the certificate): ok" "$(code)" ok
DIR=$T/rogue "$SLAPD" stop >/dev/null

echo "== SASL EXTERNAL service bind (client certificate CN=dirbridge-svc)"
conf "$T/external.ini" url="ldaps://127.0.0.1:$SLAPD_SPORT" "${COMMON[@]}" sasl_mech=EXTERNAL \
  cert_file="$SLAPD_DIR/tls/svc.crt" key_file="$SLAPD_DIR/tls/svc.key"
m=$(log_mark "$LOG")
drive "$T/external.ini" "$PW\n" auth alice
check_eq "alice via an EXTERNAL-bound service connection: ok" "$(code)" ok
check_eq "alice via EXTERNAL: groups" "$(j '.profile.groups|join(",")')" "all,engineers,staff"
sleep 0.2
check_match "slapd saw the service bind as EXTERNAL" \
  "$(log_since "$LOG" "$m" | grep -F "dn=\"$SVC\"" | count_re 'mech=EXTERNAL')" '^[1-9]'
check_eq "no simple bind as the service with EXTERNAL configured" \
  "$(log_since "$LOG" "$m" | grep -cF "BIND dn=\"$SVC\" method=128" || true)" 0

echo "== paged searches beyond the server's sizelimit (500)"
admin_count() {   # a paged count as the rootdn over ldapi: the truth to compare with
  ldapsearch -LLL -Q -Y EXTERNAL -H "$LDAPI" -E pr=300/noprompt -b "$BASE" "$1" dn 2>/dev/null | grep -c '^dn:'
}
n_bulk=$(admin_count '(|(cn=*Bulk User*)(mail=*Bulk User*)(uid=*Bulk User*)(displayName=*Bulk User*))')
n_users=$(admin_count '(objectClass=inetOrgPerson)')
n_groups=$(admin_count '(objectClass=groupOfNames)')
check "fixture: more bulk users ($n_bulk) than the sizelimit (500)" test "$n_bulk" -gt 500
drive "$C" "" search "Bulk User" 5000
check_eq "search 'Bulk User' limit 5000: all $n_bulk" "$(j .count)/$(j '.users|length')" "$n_bulk/$n_bulk"
check_eq "search results are distinct" "$(j '[.users[].dn]|unique|length')" "$n_bulk"
drive "$C" "" search "Bulk User" 700
check_eq "search limit 700 (above the sizelimit): 700" "$(j .count)" 700
drive "$C" "" search "bulk.example" 50
check_eq "search matches email too, limit 50" "$(j .count)" 50
drive "$C" "" search "Alice Tes" 10
check_eq "search by display name" "$(j '[.users[].username]|join(",")')" alice
drive "$C" "" search "*" 10
check_eq "search '*' is literal: matches nobody" "$(j '[.code,.count]|join(" ")')" "ok 0"
drive "$C" "" search ")(uid=*" 10
check_match "search ')(uid=*' is literal" "$(j '[.code,(.count|tostring)]|join(" ")')" '^(ok 0|bad_request 0)$'
drive "$C" "" search "" 10
check_eq "search '' lists users up to the limit" "$(j '[.code,(.count|tostring)]|join(" ")')" "ok 10"
drive "$C" "" users 10 "((("
check_eq "users with a malformed filter: bad_request" "$(code)" bad_request
drive "$C" "" users 5000
check_eq "users limit 5000: every user object ($n_users)" "$(j .count)" "$n_users"
drive "$C" "" users 600
check_eq "users limit 600: 600" "$(j .count)" 600
drive "$C" "" users 5000 "(uid=u00*)"
check_eq "users with a filter: u0001..u0099" "$(j .count)" 99
drive "$C" "" groups 1000
check_eq "groups: every group ($n_groups)" "$(j .count)" "$n_groups"
check_match "groups: names, including one with a comma" "$(j '.groups|join("|")')" '(^|\|)Ops, Special(\||$)'
check_match "groups: the cycle" "$(j '.groups|join("|")')" 'cycle-a\|cycle-b'
drive "$C" "" groups 2
check_eq "groups limit 2" "$(j .count)" 2

echo "== change password (Password Modify exop as the user)"
drive "$C" "$PW\nN3w-Passw0rd!\n" passwd eve
check_eq "eve changes her password" "$(code)" ok
drive "$C" "N3w-Passw0rd!\n" auth eve
check_eq "eve logs in with the new password" "$(code)" ok
drive "$C" "$PW\n" auth eve
check_eq "the old password no longer works" "$(code)" invalid_credentials
drive "$C" "wrong-old\nOther-Passw0rd!\n" passwd eve
check_eq "change with a wrong old password: invalid_credentials" "$(code)" invalid_credentials
drive "$C" "N3w-Passw0rd!\n\n" passwd eve
check_match "change to an empty password: refused" "$(code)" '^(bad_request|password_policy|invalid_credentials)$'
drive "$C" "N3w-Passw0rd!\n$PW\n" passwd eve
check_eq "eve changes it back" "$(code)" ok
drive "$C" "$PW\n" auth eve
check_eq "eve logs in with the original password" "$(code)" ok
drive "$C" "$PW\nDave-N3w-Pass!\n" passwd dave
check_eq "dave (must change) changes his password" "$(code)" ok
drive "$C" "Dave-N3w-Pass!\n" auth dave
check_eq "dave then logs in" "$(code)" ok
# Restore dave for the next run: old password, pwdReset again.
ldapmodify -Q -Y EXTERNAL -H "$LDAPI" >/dev/null 2>&1 <<EOF
dn: uid=dave,$P
changetype: modify
replace: userPassword
userPassword: $PW
-
replace: pwdReset
pwdReset: TRUE
EOF
drive "$C" "$PW\n" auth dave
check_eq "dave restored to must-change" "$(code)" password_must_change

echo "== kept user-bind connections"
# seq/mix print dir_stats(); slapd's log says which connection each bind came on.
st() { jq -rs "[.[]|select(.summary)][0].stats.$1" <<<"$OUT"; }
bind_conns() {   # bind_conns MARK REGEX: distinct slapd connections of the binds as REGEX since MARK
  log_since "$LOG" "$1" | grep -E "BIND dn=\"$2\" method=128" | grep -o 'conn=[0-9]*' | sort -u | wc -l
}
m=$(log_mark "$LOG")
drive "$C" "$PW\n$PW\n$PW\n" seq alice bob alice
check_eq "three consecutive logins: ok ok ok" "$(jq -rs '[.[]|select(.user)|.code]|join(" ")' <<<"$OUT")" "ok ok ok"
check_eq "three consecutive logins: one user connection opened, two binds on it reused" \
  "$(st user_conns_opened) $(st user_binds) $(st user_binds_reused)" "1 3 2"
sleep 0.2
check_eq "slapd saw alice's and bob's binds on one connection" "$(bind_conns "$m" 'uid=(alice|bob),ou=people,dc=example,dc=test')" 1
check_eq "alice's second login: the right groups on a reused connection" \
  "$(jq -rs '[.[]|select(.user)][2]|[.dn]+.groups|join(",")' <<<"$OUT")" "uid=alice,$P,all,engineers,staff"
check_eq "alice's groups took 4 searches (3 nesting levels and the empty last one)" \
  "$(jq -rs '[.[]|select(.user)][0].stats.group_searches' <<<"$OUT")" 4

m=$(log_mark "$LOG")
drive "$C" "$PW\nwrong-Passw0rd\n$PW\n$PW\n$PW\n$PW\n" seq alice bob eve nobody-kept eve bob
check_eq "right, wrong, right for another user, unknown, right, right: the right answers" \
  "$(jq -rs '[.[]|select(.user)|.code]|join(" ")' <<<"$OUT")" "ok invalid_credentials ok invalid_credentials ok ok"
check_eq "eve after bob's wrong password on the kept connection: eve's own profile" \
  "$(jq -rs '[.[]|select(.user)][2]|[.dn]+.groups|join(",")' <<<"$OUT")" "uid=eve,$P,cycle-a,cycle-b"
check_eq "eve after an unknown user's decoy bind: eve's own profile" \
  "$(jq -rs '[.[]|select(.user)][4]|[.dn]+.groups|join(",")' <<<"$OUT")" "uid=eve,$P,cycle-a,cycle-b"
check_eq "bob's wrong password answered without a profile" "$(jq -rs '[.[]|select(.user)][1].dn // "none"' <<<"$OUT")" none
check_eq "six logins, failed ones included, on one user connection" "$(st user_conns_opened) $(st user_binds_reused)" "1 5"
sleep 0.2
check_eq "slapd: every user bind of the six on one connection" \
  "$(bind_conns "$m" 'uid=(alice|bob|eve),ou=people,dc=example,dc=test')" 1
check_match "slapd: bob's wrong password was refused there (err=49)" \
  "$(log_since "$LOG" "$m" | grep -c 'RESULT tag=97 err=49')" '^[1-9]'

# One nesting level of 70 groups (more than GROUP_BATCH, 64, DNs per search):
# the walk still finds every group, in a handful of searches, not one per group.
{ printf 'dn: uid=wide,%s\nobjectClass: inetOrgPerson\nuid: wide\ncn: Wide\nsn: Wide\nuserPassword: %s\n\n' "$P" "$PW"
  for k in $(seq -w 1 70); do printf 'dn: cn=wide-%s,%s\nobjectClass: groupOfNames\ncn: wide-%s\nmember: uid=wide,%s\n\n' "$k" "$G" "$k" "$P"; done
} | ldapadd -Q -Y EXTERNAL -H "$LDAPI" >/dev/null 2>&1
{ printf 'dn: cn=all,%s\nchangetype: modify\nadd: member\n' "$G"
  for k in $(seq -w 1 70); do printf 'member: cn=wide-%s,%s\n' "$k" "$G"; done; } | ldapmodify -Q -Y EXTERNAL -H "$LDAPI" >/dev/null 2>&1
drive "$C" "$PW\n" seq wide
check_eq "a level of 70 groups: all 70 and their parent" \
  "$(jq -rs '[.[]|select(.user)][0]|[.code,(.groups|length|tostring),(.groups|map(select(. == "all" or . == "wide-01" or . == "wide-70"))|join(","))]|join(" ")' <<<"$OUT")" "ok 71 all,wide-01,wide-70"
check_match "a level of 70 groups: at most 4 searches ($(jq -rs '[.[]|select(.summary)][0].stats.group_searches' <<<"$OUT"))" \
  "$(jq -rs '[.[]|select(.summary)][0].stats.group_searches' <<<"$OUT")" '^[1-4]$'
{ printf 'dn: cn=all,%s\nchangetype: modify\ndelete: member\n' "$G"
  for k in $(seq -w 1 70); do printf 'member: cn=wide-%s,%s\n' "$k" "$G"; done; } | ldapmodify -Q -Y EXTERNAL -H "$LDAPI" >/dev/null 2>&1
for k in $(seq -w 1 70); do echo "cn=wide-$k,$G"; done | ldapdelete -Q -Y EXTERNAL -H "$LDAPI" >/dev/null 2>&1
ldapdelete -Q -Y EXTERNAL -H "$LDAPI" "uid=wide,$P" >/dev/null 2>&1
check_eq "the wide groups are gone again" "$(ldapsearch -LLL -Q -Y EXTERNAL -H "$LDAPI" -b "$G" '(cn=wide-*)' dn 2>/dev/null | grep -c '^dn:')" 0

conf "$T/short.ini" url="ldaps://127.0.0.1:$SLAPD_SPORT" "${COMMON[@]/timeout_ms=3000/timeout_ms=1000}" "${SIMPLE[@]}"
m=$(log_mark "$LOG")
drive "$T/short.ini" "$PW\n$PW\n" seq alice @sleep=3000 bob
check_eq "idle timeout (2 x timeout_ms = 2 s) then a login: ok ok" "$(jq -rs '[.[]|select(.user)|.code]|join(" ")' <<<"$OUT")" "ok ok"
check_eq "idle timeout: the kept connection was closed, not handed out" \
  "$(st user_conns_expired) $(st user_conns_opened) $(st user_binds_reused)" "1 2 0"
sleep 0.2
check_eq "idle timeout: slapd saw alice and bob bind on two connections" \
  "$(bind_conns "$m" 'uid=(alice|bob),ou=people,dc=example,dc=test')" 2

KP=$(free_port) KSP=$(free_port)
DIR=$T/k PORT=$KP SPORT=$KSP CA_FROM=$SLAPD_DIR BULK=0 "$SLAPD" start >"$T/k.start" 2>&1 || cat "$T/k.start"
bg_track "$(cat "$T/k/slapd.fgpid" 2>/dev/null)"
conf "$T/k.ini" url="ldaps://127.0.0.1:$KSP" "${COMMON[@]}" "${SIMPLE[@]}"
rm -f "$T/k.go" "$T/k.go.waiting"
( printf '%s\n%s\n' "$PW" "$PW" | timeout 60 "$BUILD/tests/ldapdrive" -c "$T/k.ini" seq alice "@wait=$T/k.go" bob \
    >"$T/k.out" 2>"$T/k.err" ) &
KDP=$!; bg_track $KDP
for i in $(seq 100); do [ -e "$T/k.go.waiting" ] && break; sleep 0.1; done
check "slapd restart: the first login is done and its connection kept" test -e "$T/k.go.waiting"
DIR=$T/k "$SLAPD" stop >/dev/null
DIR=$T/k PORT=$KP SPORT=$KSP CA_FROM=$SLAPD_DIR BULK=0 "$SLAPD" start >"$T/k.start" 2>&1 || cat "$T/k.start"
bg_track "$(cat "$T/k/slapd.fgpid" 2>/dev/null)"
touch "$T/k.go"
wait $KDP
OUT=$(cat "$T/k.out")
check_eq "slapd restarted under a kept connection: the next login is ok" \
  "$(jq -rs '[.[]|select(.user)|.code]|join(" ")' <<<"$OUT")" "ok ok"
check_eq "slapd restarted: the broken connection was not handed out (opened 2, reused 0)" \
  "$(st user_conns_opened) $(st user_binds_reused)" "2 0"
check_eq "slapd restarted: bob's profile" "$(jq -rs '[.[]|select(.user)][1]|[.dn]+.groups|join(",")' <<<"$OUT")" "uid=bob,$P,all,staff"
check_eq "no sanitizer report across the restart" "$(count_re 'Sanitizer|runtime error:' <"$T/k.err")" 0
DIR=$T/k "$SLAPD" stop >/dev/null

# 16 logins in flight, 20 rounds each: known users, an unknown one (a decoy
# bind) and o'brien, all sharing the kept connections; every answer must be
# the one for its own user.
conf "$T/mix.ini" url="ldaps://127.0.0.1:$SLAPD_SPORT" "${COMMON[@]}" "${SIMPLE[@]}" lockout_guard=0
users=() pws=""
for k in 1 2 3 4; do users+=(alice bob eve "o'brien"); pws+="$PW\n$PW\n$PW\n$PW\n"; done
users[3]=nobody-mix users[7]=nobody-mix
drive "$T/mix.ini" "$pws" mix 20 "${users[@]}"
check_eq "mix: 320 answers" "$(jq -rs '[.[]|select(.user)]|length' <<<"$OUT")" 320
expect='{"alice":"ok|uid=alice,'"$P"'|all,engineers,staff","bob":"ok|uid=bob,'"$P"'|all,staff","eve":"ok|uid=eve,'"$P"'|cycle-a,cycle-b","nobody-mix":"invalid_credentials||"}'
wrong=$(jq -rs --argjson e "$expect" '[.[]|select(.user)|select(.user != "o'"'"'brien")
  |select(([.code,(.dn // ""),((.groups // [])|join(","))]|join("|")) != $e[.user])]|length' <<<"$OUT")
check_eq "mix: every answer is its own user's (code, dn, groups)" "$wrong" 0
check_eq "mix: o'brien always gets his own group" \
  "$(jq -rs '[.[]|select(.user == "o'"'"'brien")|[.code]+.groups|join("|")]|unique|join(" ")' <<<"$OUT")" "ok|Ops, Special"
check_match "mix: user connections were reused ($(st user_binds_reused) of $(st user_binds) binds)" \
  "$(( $(st user_binds_reused) * 10 >= $(st user_binds) * 9 ))" '^1$'
check_match "mix: at most USER_CONNS_MAX (32) user connections opened ($(st user_conns_opened))" "$(st user_conns_opened)" '^([1-9]|[1-2][0-9]|3[0-2])$'

echo "== concurrency, and closing with requests in flight"
drive "$C" "$PW\n" many 200 alice
check_eq "200 concurrent logins: all ok" "$(j '.counts.ok')/$(j .total)" "200/200"
echo "   200 concurrent logins in $(j .elapsed_ms) ms"
for ms in 0 30 300; do
  drive "$C" "$PW\n" close $ms 100 alice
  check_eq "dir_close after $ms ms with 100 logins in flight: each completed once, before close" \
    "$RC $(j '[.total,.pending_at_close]|map(tostring)|join(" ")')" "0 100 0"
  check_eq "dir_close after $ms ms: only ok or directory_unavailable" \
    "$(j '.counts|keys|map(select(. != "ok" and . != "directory_unavailable"))|length')" 0
done

echo "== failover: the first URL is a closed port"
DEAD=$(free_port)
conf "$T/dead-first.ini" url="ldaps://127.0.0.1:$DEAD ldaps://127.0.0.1:$SLAPD_SPORT" "${COMMON[@]}" "${SIMPLE[@]}"
t0=$(date +%s%N)
drive "$T/dead-first.ini" "$PW\n" auth alice
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check_eq "dead first URL: the second answers" "$(code)" ok
check_match "dead first URL: answered within the timeout (${ms} ms)" "$ms" '^([0-9]{1,3}|[0-2][0-9]{3})$'
conf "$T/all-dead.ini" url="ldaps://127.0.0.1:$DEAD" "${COMMON[@]}" "${SIMPLE[@]}"
drive "$T/all-dead.ini" "$PW\n" auth alice
check_eq "every URL dead: directory_unavailable" "$(code)" directory_unavailable

echo "== failover: a plain ldap:// link never carries a password"
AP=$(free_port) ASP=$(free_port) BP=$(free_port) BSP=$(free_port)
# A binds a DN with an empty password anonymously, as AD may: there an empty
# password that reached the wire would be a successful login.
ALLOW_ANON_DN=1 DIR=$T/a PORT=$AP SPORT=$ASP CA_FROM=$SLAPD_DIR BULK=0 "$SLAPD" start >"$T/a.start" 2>&1 || cat "$T/a.start"
bg_track "$(cat "$T/a/slapd.fgpid" 2>/dev/null)"
DIR=$T/b PORT=$BP SPORT=$BSP CA_FROM=$SLAPD_DIR BULK=0 "$SLAPD" start >"$T/b.start" 2>&1 || cat "$T/b.start"
bg_track "$(cat "$T/b/slapd.fgpid" 2>/dev/null)"
conf "$T/plain.ini" url="ldap://127.0.0.1:$AP" starttls=false "${COMMON[@]}" "${SIMPLE[@]}"
drive "$T/plain.ini" "$PW\n" auth alice
if [ "$RC" = 2 ]; then
  pass "plain ldap:// without StartTLS: refused by the configuration"
else
  check_nomatch "plain ldap:// without StartTLS: no login" "$(code)" '^ok$'
fi
sleep 0.2
# A simple bind with a DN on a connection that never did StartTLS carries a password in clear.
clear=$(awk '/EXT oid=1.3.6.1.4.1.1466.20037/ { match($0, /conn=[0-9]+/); tls[substr($0, RSTART, RLENGTH)] = 1 }
  /BIND dn="[^"]+" method=128/ { match($0, /conn=[0-9]+/); if (!tls[substr($0, RSTART, RLENGTH)]) n++ }
  END { print n + 0 }' "$T/a/slapd.log")
check_eq "plain ldap://: no password sent in clear" "$clear" 0

conf "$T/pair.ini" url="ldaps://127.0.0.1:$ASP ldaps://127.0.0.1:$BSP" "${COMMON[@]}" "${SIMPLE[@]}"
check "premise: this server binds alice's DN with an empty password" \
  ldapwhoami -x -H "ldaps://127.0.0.1:$ASP" -D "uid=alice,$P" -w ''
m=$(log_mark "$T/a/slapd.log")
drive "$T/pair.ini" "\n" auth alice
check_eq "empty password against an anonymous-DN server: invalid_credentials" "$(code)" invalid_credentials
sleep 0.2
check_eq "no BIND as alice reached it" "$(log_since "$T/a/slapd.log" "$m" | count_re 'BIND dn="uid=alice,')" 0

echo "== failover: kill the first server mid-run, then restart it"
abinds() { grep -cF "BIND dn=\"uid=alice,$P\" method=128" "$1" 2>/dev/null || true; }
timeout 60 "$BUILD/tests/ldapdrive" -c "$T/pair.ini" loop 16 alice < <(printf '%s\n' "$PW") \
  >"$T/loop.out" 2>"$T/loop.err" &
LP=$!; bg_track $LP
sleep 3
a1=$(abinds "$T/a/slapd.log") b1=$(abinds "$T/b/slapd.log")
check_match "before the kill: the first server answers" "$a1" '^[1-9]'
check_eq "before the kill: the second server is idle" "$b1" 0
kill -KILL "$(cat "$T/a/slapd.fgpid")"
sleep 3
b2=$(abinds "$T/b/slapd.log")
check_match "after the kill: the second server answers" "$b2" '^[1-9]'
DIR=$T/a PORT=$AP SPORT=$ASP CA_FROM=$SLAPD_DIR BULK=0 "$SLAPD" start >"$T/a.start" 2>&1 || cat "$T/a.start"
bg_track "$(cat "$T/a/slapd.fgpid" 2>/dev/null)"
wait $LP; lrc=$?
check_match "the loop ended normally (exit $lrc)" "$lrc" '^[01]$'
check_eq "no sanitizer report in the loop" "$(count_re 'Sanitizer|runtime error:' <"$T/loop.err")" 0
total=$(grep -c '"seq"' "$T/loop.out" || true)
bad=$(grep '"seq"' "$T/loop.out" | grep -vc '"code":"ok"' || true)
unexpected=$(grep '"seq"' "$T/loop.out" | grep -v '"code":"ok"' | grep -vc '"code":"directory_unavailable"' || true)
check_match "the loop kept answering ($total results in 16 s)" "$total" '^([5-9][0-9]|[0-9]{3,})$'
check_eq "only ok or directory_unavailable during failover" "$unexpected" 0
check_match "at most one request failed across the kill (got $bad)" "$bad" '^[01]$'
a3=$(abinds "$T/a/slapd.log")
check_match "traffic returned to the restarted first server ($a3 logins there)" "$a3" '^[1-9]'
grep '"seq"' "$T/loop.out" | grep -v '"code":"ok"' | head -5

echo "== failover: the first server hangs (accepts TCP, never answers)"
APID=$(cat "$T/a/slapd.fgpid")
kill -STOP "$APID"
t0=$(date +%s%N)
drive "$T/pair.ini" "$PW\n" auth alice
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check_match "hung first server: an answer within twice timeout_ms (${ms} ms, $(code))" "$ms" '^([0-9]{1,3}|[0-6][0-9]{3})$'
check_match "hung first server: ok or directory_unavailable" "$(code)" '^(ok|directory_unavailable)$'
timeout 60 "$BUILD/tests/ldapdrive" -c "$T/pair.ini" loop 10 alice < <(printf '%s\n' "$PW") >"$T/hang.out" 2>"$T/hang.err"
check_eq "hung first server: the last requests are served by the second" \
  "$(grep '"seq"' "$T/hang.out" | tail -3 | grep -c '"code":"ok"')" 3
echo "   hung first server, 10 s loop: $(grep -c '"code":"ok"' "$T/hang.out") ok, $(grep '"seq"' "$T/hang.out" | grep -vc '"code":"ok"') failed"
conf "$T/hung-only.ini" url="ldaps://127.0.0.1:$ASP" "${COMMON[@]/timeout_ms=3000/timeout_ms=20000}" "${SIMPLE[@]}"
drive "$T/hung-only.ini" "$PW\n" close 1000 20 alice
check_eq "dir_close with 20 requests waiting on a hung server: each completed once, before close" \
  "$RC $(j '[.total,.pending_at_close,.counts.directory_unavailable]|map(tostring)|join(" ")')" "0 20 0 20"
kill -CONT "$APID"
DIR=$T/a "$SLAPD" stop >/dev/null; DIR=$T/b "$SLAPD" stop >/dev/null

check_eq "no sanitizer report from any ldapdrive run" "$(count_re 'Sanitizer|runtime error:' <"$T/drive.log")" 0
finish
