#!/bin/bash
# By hand, in a fresh Debian 12 root (never on a machine you care about: it
# installs and purges packages as root):
#   /path/to/fresh-machine.sh tests/deb-install.sh
# Builds the package with only the build dependencies installed, removes them
# again, then checks that `apt-get install ./dirbridge_*.deb` pulls in the
# runtime libraries, makes the user and directories, that `dirbridge -n` on the
# shipped configuration names what to fill in, and that purge leaves nothing
# behind (files, user, group, statoverrides).  Prints PASS/FAIL lines.
set -uo pipefail
export DEBIAN_FRONTEND=noninteractive
FAILS=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; FAILS=$((FAILS + 1)); }
BUILD_PKGS=(build-essential pkg-config libldap-dev libgnutls28-dev libuv1-dev libiniparser-dev
            libsasl2-dev libhttp-parser-dev libwslay-dev libjansson-dev libzip-dev libsystemd-dev
            libtasn1-6-dev)
# What a package may leave without it being ours: apt's and dpkg's own
# records and logs, caches, scratch space, and the backups (/etc/passwd- ...)
# that the shadow tools write on every user change; the account files
# themselves are compared by content.
snapshot() {
  find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp -o \
    -path /root -o -path /var/lib/apt -o -path /var/lib/dpkg -o -path /var/log -o \
    -path /var/cache -o -path /etc/ld.so.cache -o -path /etc/passwd- -o -path /etc/group- -o \
    -path /etc/shadow- -o -path /etc/gshadow- \) -prune -o -printf '%p %M %u:%g\n' | sort
  md5sum /etc/passwd /etc/group /etc/shadow /etc/gshadow
}

# A real machine's / is 0755; a root unpacked from a tarball of a mktemp -d
# directory is 0700, where no system user could load a library.
if [ "$(stat -c %a /)" != 755 ]; then
  echo "note: / is mode $(stat -c %a /) in this root; made 0755 as on a real machine"
  chmod 755 /
fi
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${BUILD_PKGS[@]}" >/tmp/build-deps.log 2>&1 ||
  { tail -5 /tmp/build-deps.log; fail "build dependencies install"; exit 1; }
make -j2 deb >/tmp/make-deb.log 2>&1 || { tail -20 /tmp/make-deb.log; fail "make deb"; exit 1; }
pass "make deb: $(ls build/dirbridge_*.deb)"
cp build/dirbridge_*.deb /tmp/
apt-get purge -y -q --autoremove "${BUILD_PKGS[@]}" >/tmp/purge-deps.log 2>&1
if dpkg-query -W -f='${Status}' libuv1 2>/dev/null | grep -q 'ok installed'; then
  echo "note: libuv1 is still installed after removing the build dependencies"
fi

before=$(snapshot)
if apt-get install -y -q /tmp/dirbridge_*.deb >/tmp/install.log 2>&1; then
  pass "apt-get install ./dirbridge_*.deb"
else
  tail -20 /tmp/install.log; fail "apt-get install ./dirbridge_*.deb"; exit 1
fi
for p in libuv1 libldap-2.5-0 libgnutls30 libjansson4 libiniparser1 libwslay1 libhttp-parser2.9; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' &&
    pass "dependency $p installed" || fail "dependency $p not installed"
done
id dirbridge >/dev/null 2>&1 && pass "user dirbridge: $(id dirbridge)" || fail "no user dirbridge"
[ "$(stat -c '%a %U:%G' /var/lib/dirbridge)" = "700 dirbridge:dirbridge" ] &&
  pass "/var/lib/dirbridge 0700 dirbridge" || fail "/var/lib/dirbridge: $(stat -c '%a %U:%G' /var/lib/dirbridge)"
[ "$(stat -c '%a %U:%G' /etc/dirbridge)" = "750 root:dirbridge" ] &&
  pass "/etc/dirbridge 0750 root:dirbridge" || fail "/etc/dirbridge: $(stat -c '%a %U:%G' /etc/dirbridge)"
# From / with an absolute path: the agent's user may not enter this checkout.
out=$(cd / && setpriv --reuid=dirbridge --regid=dirbridge --init-groups \
      /usr/bin/dirbridge -n -c /etc/dirbridge/agent.ini 2>&1); rc=$?
echo "$out" | sed 's/^/   | /'
[ "$rc" = 2 ] && grep -q 'cannot read /etc/dirbridge/' <<<"$out" &&
  pass "dirbridge -n (as dirbridge) names the files to fill in, exit 2" || fail "dirbridge -n: exit $rc"
man -w dirbridge >/dev/null 2>&1 || [ -f /usr/share/man/man8/dirbridge.8.gz ] && pass "manual page"

apt-get purge -y -q --autoremove dirbridge >/tmp/purge.log 2>&1 && pass "apt-get purge dirbridge" ||
  { tail -10 /tmp/purge.log; fail "apt-get purge dirbridge"; }
after=$(snapshot)
left=$(diff <(echo "$before") <(echo "$after"))
[ -z "$left" ] && pass "purge leaves nothing behind" || { fail "purge left:"; echo "$left" | head -30; }
getent passwd dirbridge >/dev/null && fail "user dirbridge still there" || pass "user dirbridge removed"
getent group dirbridge >/dev/null && fail "group dirbridge still there" || pass "group dirbridge removed"
[ -z "$(dpkg-statoverride --list | grep dirbridge)" ] && pass "no statoverride left" || fail "statoverride left"
echo "$FAILS failed"
exit $((FAILS > 0))
