#!/bin/bash
# End to end against Active Directory (the Samba AD DC at $SAMBA_DIR): the hub
# API through the agent; AD's account states map to their protocol error codes, nested
# groups are expanded, and searches see all 1100 bulk users past AD's
# MaxPageSize of 1000.  frank is locked out on purpose and unlocked again.
. "$ROOT/tests/lib.sh"
. "$ROOT/tests/hub_lib.sh"

[ -f "$SAMBA_DIR/tls/ca.crt" ] || { fail "no Samba AD DC at SAMBA_DIR=$SAMBA_DIR"; finish; exit; }
hub_pki
hub_start hub || { fail "hub did not start"; finish; exit; }
printf '%s\n' 'Svc-Passw0rd!' >"$T/bind.password"; chmod 600 "$T/bind.password"
HP=$(free_port)
cat >"$T/agent.ini" <<INI
[agent]
name = ad-agent
log_level = debug

[ldap]
url = ldaps://127.0.0.1
ca_file = $SAMBA_DIR/tls/ca.crt
bind_dn = CN=dirbridge-svc,CN=Users,DC=example,DC=test
bind_password_file = $T/bind.password
base_dn = DC=example,DC=test
type = ad
user_filter = (&(objectClass=user)(sAMAccountName={username}))
groups = recursive
timeout_ms = 10000
; frank is locked by the directory on purpose: the agent's guard stays out of it
lockout_guard = 0

[https]
listen = 127.0.0.1:$HP
public_url = https://127.0.0.1:$HP
cert_file = $T/pki/hub.pem
key_file = $T/pki/hub.key
client_ca_file = $T/pki/ca.pem
client_cert_ranges = 127.0.0.1/32
cert_username = cn

[hub]
url = wss://127.0.0.1:$HUB_PORT/agent/v1
token_file = $T/pki/hub.token
ca_file = $T/pki/ca.pem
INI
agent_start "$T/agent.ini" "$T/agent.log"
check "agent connects to the hub" wait_agents 1

unlock_frank() {
  LDAPTLS_CACERT=$SAMBA_DIR/tls/ca.crt ldapmodify -x -H ldaps://127.0.0.1 \
    -D "CN=Administrator,CN=Users,DC=example,DC=test" -w 'Adm1n-Pass!' >/dev/null 2>&1 <<LDIF
dn: CN=frank,CN=Users,DC=example,DC=test
changetype: modify
replace: lockoutTime
lockoutTime: 0
LDIF
}
trap 'unlock_frank; bg_cleanup' EXIT

r=$(api POST /v1/authenticate '{"username":"alice","password":"Passw0rd!"}')
check_match "AD: good password, profile" "$r" '^200 \{"ok":true,"profile":\{"username":"alice","dn":"CN=alice,CN=Users,DC=example,DC=test"'
groups=$(cut -d' ' -f2- <<<"$r" | json '",".join(sorted(g for g in j["profile"]["groups"] if g in ("engineers","staff","all")))')
check_eq "AD: nested groups expanded" "$groups" "all,engineers,staff"
# Wrong passwords only for frank, who is unlocked at the end: a shared AD must
# not see other users' bad-password counts grow.
unlock_frank
r=$(api POST /v1/authenticate '{"username":"frank","password":"wrong"}')
check_match "AD: wrong password: invalid_credentials" "$r" '^401 .*"invalid_credentials"'
r=$(api POST /v1/authenticate '{"username":"nobody","password":"Passw0rd!"}')
check_match "AD: unknown user: invalid_credentials" "$r" '^401 .*"invalid_credentials"'
r=$(api POST /v1/authenticate '{"username":"carol","password":"Passw0rd!"}')
check_match "AD: disabled: account_disabled" "$r" '^401 .*"account_disabled"'
r=$(api POST /v1/authenticate '{"username":"dave","password":"Passw0rd!"}')
check_match "AD: expired: account_expired" "$r" '^401 .*"account_expired"'
r=$(api POST /v1/authenticate '{"username":"erin","password":"Passw0rd!"}')
check_match "AD: must change: password_must_change" "$r" '^401 .*"password_must_change"'
for i in 1 2; do api POST /v1/authenticate '{"username":"frank","password":"bad"}' >/dev/null; done
r=$(api POST /v1/authenticate '{"username":"frank","password":"Passw0rd!"}')
check_match "AD: locked out: account_locked" "$r" '^401 .*"account_locked"'
unlock_frank
r=$(api POST /v1/authenticate '{"username":"frank","password":"Passw0rd!"}')
check_match "AD: frank unlocked again" "$r" '^200 '

r=$(concurrent 60 'alice:Passw0rd!:profile' 'carol:Passw0rd!:account_disabled' 'nobody:x:invalid_credentials')
check_eq "AD: 60 concurrent logins" "$r" "ok 60"
n=$(curl -s -m 120 "$API/v1/users?q=Bulk%20User&limit=1050" | json 'len(j["users"])')
check_eq "AD: search_users returns 1050 of 1100 (beyond MaxPageSize 1000)" "$n" 1050
n=$(curl -s -m 120 "$API/v1/users?q=bulk.example.test&limit=5000" | json 'len(j["users"])')
check_eq "AD: search_users by email returns all 1100" "$n" 1100
r=$(api GET '/v1/users?q=alice&limit=10')
check_match "AD: search_users by name" "$r" '"username":"alice"'
r=$(api GET '/v1/groups?limit=1000')
check_match "AD: list_groups has the test groups" "$r" '"engineers"'
n=$(cut -d' ' -f2- <<<"$r" | json 'len(set(j["groups"]) & {"engineers","staff","all"})')
check_eq "AD: list_groups has all three nested groups" "$n" 3
check_nomatch "AD: no password in the agent log" "$(cat "$T/agent.log")" 'Passw0rd'
finish
