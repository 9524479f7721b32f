#!/bin/bash
# Without systemd: started as root with [agent] user, the agent binds its port,
# then drops to that user (groups, group, user) for good and keeps serving;
# started as root without it, the agent refuses to run and names the key.
source "$ROOT/tests/lib.sh"
source "$ROOT/tests/https-lib.sh"

if [ "$(id -u)" != 0 ]; then echo "SKIP privdrop: needs root"; finish; exit; fi
command -v useradd >/dev/null || { echo "SKIP privdrop: no useradd"; finish; exit; }
# A root directory closed to other users (a minimal root unpacked from an archive
# that kept / at 0700; a real system has 0755) keeps every user but root from
# every file, so a dropped agent could read nothing there.
case $(stat -c %A /) in
  d????????x) ;;
  *) echo "SKIP privdrop: / is $(stat -c %a /), closed to other users"; finish; exit;;
esac

# A system user of its own with one supplementary group, so the Groups line
# can tell the user's groups from root's; removed when the script ends.
U_NAME=dbpriv$$ G_EXTRA=dbprivx$$
cleanup_users() {
  bg_cleanup
  [ -n "${RD:-}" ] && rm -rf "$RD"
  userdel "$U_NAME" 2>/dev/null; groupdel "$U_NAME" 2>/dev/null; groupdel "$G_EXTRA" 2>/dev/null
  return 0
}
trap cleanup_users EXIT
groupadd --system "$G_EXTRA" &&
  useradd --system --user-group --no-create-home --shell /usr/sbin/nologin -G "$G_EXTRA" "$U_NAME" ||
  { fail "privdrop: cannot create user $U_NAME"; finish; exit; }
WANT_UID=$(id -u "$U_NAME") WANT_GID=$(id -g "$U_NAME")
WANT_GROUPS=$(id -G "$U_NAME" | tr ' ' '\n' | sort -n | tr '\n' ' ')

https_setup || { fail "pki: could not build the test PKI"; finish; exit; }
# What the agent reads after the drop must be readable by its user: the CA
# files on every connection to the directory and the hub, the hub token on
# every dial.  $T and the shared slapd's directory are root's alone, so those
# three go into a directory the user can reach (the token its own, 0600).
RD=$(mktemp -d /tmp/dirbridge-privdrop.XXXXXX); chmod 755 "$RD"
front_hub_start || { fail "privdrop: hub starts"; finish; exit; }
cp "$SLAPD_DIR/tls/ca.crt" "$RD/ldap-ca.crt"; cp "$PKI/srv-ca.crt" "$RD/hub-ca.crt"
cp "$T/hub.token" "$RD/hub.token"; chown "$U_NAME" "$RD/hub.token"; chmod 600 "$RD/hub.token"
chmod 644 "$RD/ldap-ca.crt" "$RD/hub-ca.crt"
P=$(free_port); U=https://127.0.0.1:$P
write_config "$T/agent.ini" "127.0.0.1:$P" 127.0.0.1/32 "$PKI/ca.crl" agent.user="$U_NAME" \
  ldap.ca_file="$RD/ldap-ca.crt" hub.ca_file="$RD/hub-ca.crt" hub.token_file="$RD/hub.token"
# LeakSanitizer cannot stop a process that gave up root (it is no longer
# dumpable), so leak checking is off for this one agent.
export -n DIRBRIDGE_ALLOW_ROOT
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 start_agent "$T/agent.ini" "$T/agent.log" ||
  { fail "privdrop: agent starts as root with [agent] user"; finish; exit; }

st=/proc/$AGENT_PID/status
check_eq "privdrop: real, effective, saved and fs uid are the user's" \
  "$(awk '/^Uid:/{print $2, $3, $4, $5}' "$st")" "$WANT_UID $WANT_UID $WANT_UID $WANT_UID"
check_eq "privdrop: real, effective, saved and fs gid are the user's" \
  "$(awk '/^Gid:/{print $2, $3, $4, $5}' "$st")" "$WANT_GID $WANT_GID $WANT_GID $WANT_GID"
check_eq "privdrop: supplementary groups are the user's, not root's" \
  "$(awk '/^Groups:/{for (i = 2; i <= NF; i++) print $i}' "$st" | sort -n | tr '\n' ' ')" "$WANT_GROUPS"
check_match "privdrop: the drop is logged" "$(cat "$T/agent.log")" "running as user $U_NAME"
check_eq "privdrop: still serves /healthz on its port" \
  "$(c -o /dev/null -w '%{http_code}' "$U/healthz")" 200
kill "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null

# As root without [agent] user: refused, status 1, the key named.
P2=$(free_port)
write_config "$T/root.ini" "127.0.0.1:$P2" 127.0.0.1/32 "$PKI/ca.crl"
timeout 30 "$BUILD/dirbridge" -c "$T/root.ini" >"$T/root.log" 2>&1; rc=$?
check_eq "privdrop: root without [agent] user exits 1" "$rc" 1
check_match "privdrop: the refusal names [agent] user" "$(cat "$T/root.log")" \
  'refusing to run as root: set \[agent\] user'
check_nomatch "privdrop: refused before anything is opened as root" "$(cat "$T/root.log")" \
  'https: listening|service connection'
finish
