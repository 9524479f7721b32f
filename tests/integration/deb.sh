#!/bin/bash
# The Debian package (packaging/deb.sh, what `make deb` runs), built into the
# scratch dir from the plain build when there is one: its control fields, a
# Depends that covers every soname the programs need, its file list, modes and
# conffiles, the unit's hardening score, the maintainer scripts, `-n` on the
# shipped configuration, and lintian when it is installed.  Installing it in a
# fresh root is in docs/packaging.md (it needs root and a chroot).
source "$ROOT/tests/lib.sh"

command -v dpkg-deb >/dev/null && command -v dpkg-shlibdeps >/dev/null ||
  { echo "SKIP deb: no dpkg-deb or dpkg-shlibdeps here"; finish; exit; }
# The package is made from the optimized programs; the sanitizer build only
# when that is all there is (then Depends also names the sanitizer runtimes).
B=$ROOT/build; [ -x "$B/dirbridge" ] || B=$BUILD
PROGS=("$B/dirbridge"); for p in "$B"/dirbridge-*; do [ -x "$p" ] && [ -f "$p" ] && PROGS+=("$p"); done
VERSION=$(sed -n 's/^VERSION := //p' "$ROOT/Makefile")-1
ARCH=$(dpkg --print-architecture)
if ! "$ROOT/packaging/deb.sh" "$T/out" "$VERSION" "${PROGS[@]}" >"$T/build.log" 2>&1; then
  fail "packaging/deb.sh: $(tail -3 "$T/build.log" | tr '\n' ' ')"; finish; exit
fi
DEB=$T/out/dirbridge_${VERSION}_${ARCH}.deb
check "the package is OUTDIR/dirbridge_VERSION_ARCH.deb" test -s "$DEB"

field() { dpkg-deb -f "$DEB" "$1"; }
check_eq "Package" "$(field Package)" dirbridge
check_eq "Version" "$(field Version)" "$VERSION"
check_eq "Architecture" "$(field Architecture)" "$ARCH"
DEPS=$(field Depends)
for want in 'adduser' 'libc6 \(>= ' 'libldap-2\.5-0' 'libgnutls30 \(>= 3\.7\.9-2\+deb12u7\)' 'libuv1' \
            'libjansson4' 'libiniparser1' 'libhttp-parser2\.9' 'libwslay1' 'libsystemd0'; do
  check_match "Depends names ${want//\\/}" "$DEPS" "(^|, )$want"
done
# Every soname a program needs is shipped by a package that Depends names:
# found here from the libraries themselves, not from dpkg-shlibdeps.
missing=
for p in "${PROGS[@]}"; do
  for so in $(readelf -d "$p" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    path=$(ldconfig -p | awk -v s="$so" '$1 == s {print $NF; exit}')
    # dpkg knows a library by the path its package ships, which after the
    # /usr merge may be the link (/lib/...) or its target (/usr/lib/...).
    pkg=; for f in "$path" "$(readlink -f "$path")"; do
      [ -n "$pkg" ] || pkg=$(dpkg-query -S "$f" 2>/dev/null | head -1 | cut -d: -f1)
    done
    [ -n "$pkg" ] && grep -Eq "(^|, )$pkg( |,|$)" <<<"$DEPS" || missing+=" $so($pkg)"
  done
done
check_eq "Depends covers every NEEDED soname" "${missing:-none}" none
check_match "Installed-Size is a number of KiB" "$(field Installed-Size)" '^[1-9][0-9]*$'

dpkg-deb -c "$DEB" | awk '{print $1, $2, $6}' >"$T/list"
has() {  # has MODE PATH: the package ships PATH with MODE, owned by root
  if grep -qxF -- "$1 root/root $2" "$T/list"; then pass "ships $2 ($1)"
  else fail "ships $2 ($1): got '$(grep -F -- " $2" "$T/list" | head -1)'"; fi
}
for p in "${PROGS[@]}"; do has -rwxr-xr-x "./usr/bin/$(basename "$p")"; done
has -rw-r--r-- ./lib/systemd/system/dirbridge.service
has -rw-r--r-- ./etc/dirbridge/agent.ini
has -rw-r--r-- ./etc/dirbridge/agent.ini.example
has drwx------ ./var/lib/dirbridge/
has -rw-r--r-- ./usr/share/doc/dirbridge/copyright
has -rw-r--r-- ./usr/share/doc/dirbridge/changelog.Debian.gz
has -rw-r--r-- ./usr/share/man/man8/dirbridge.8.gz
check_eq "nothing outside /etc /lib /usr /var" \
  "$(awk '{print $3}' "$T/list" | grep -Ev '^\./((etc|lib|usr|var)(/.*)?)?$' | tr '\n' ' ')" ""
check_nomatch "nothing in /usr/local" "$(awk '{print $3}' "$T/list")" '^\./usr/local'
check_nomatch "no file is writable by group or others" "$(awk '{print $1}' "$T/list")" '^.....w|^........w'

mkdir -p "$T/ctl" "$T/root"
dpkg-deb -e "$DEB" "$T/ctl"; dpkg-deb -x "$DEB" "$T/root"
check_eq "conffiles: every file under /etc" "$(sort "$T/ctl/conffiles" | tr '\n' ' ')" \
  "/etc/dirbridge/agent.ini /etc/dirbridge/agent.ini.example "
check "md5sums cover every shipped file" bash -c "cd '$T/root' && md5sum --quiet -c '$T/ctl/md5sums'"
check_eq "md5sums lists every regular file" "$(wc -l <"$T/ctl/md5sums")" "$(find "$T/root" -type f | wc -l)"
check_nomatch "programs are stripped" "$(for p in "$T"/root/usr/bin/*; do readelf -S "$p"; done)" '\.symtab|\.debug_'
check_eq "the unit is packaging/systemd/dirbridge.service" \
  "$(md5sum <"$T/root/lib/systemd/system/dirbridge.service")" "$(md5sum <"$ROOT/packaging/systemd/dirbridge.service")"

for s in postinst prerm postrm; do check "$s is valid sh" sh -n "$T/ctl/$s"; done
check_match "postinst makes the system user" "$(cat "$T/ctl/postinst")" 'adduser --system --group'
check_match "postinst makes /var/lib/dirbridge dirbridge's, 0700" "$(cat "$T/ctl/postinst")" \
  'statoverride --update --add dirbridge dirbridge 0700 /var/lib/dirbridge'
purge=$(sed -n '/^purge)/,/;;/p' "$T/ctl/postrm")
check_match "purge removes /var/lib/dirbridge" "$purge" 'rm -rf /var/lib/dirbridge'
check_match "purge removes the user" "$purge" 'deluser --system'

# The shipped configuration is a template: -n names what to fill in (exit 2).
out=$("$T/root/usr/bin/dirbridge" -n -c "$T/root/etc/dirbridge/agent.ini" 2>&1); rc=$?
check_eq "dirbridge -n on the shipped agent.ini exits 2" "$rc" 2
check_match "dirbridge -n names the files to provide" "$out" "cannot read /etc/dirbridge/(ldap-ca\.pem|bind\.password)"
check_match "the packaged dirbridge runs" "$("$T/root/usr/bin/dirbridge" --version)" "^dirbridge ${VERSION%-*}$"

if command -v systemd-analyze >/dev/null; then
  score=$(systemd-analyze security --offline=true "$T/root/lib/systemd/system/dirbridge.service" 2>/dev/null |
          sed -n 's/.*Overall exposure level for dirbridge.service: \([0-9.]*\).*/\1/p')
  if [ -n "$score" ] && awk -v s="$score" 'BEGIN {exit !(s <= 2.0)}'; then
    pass "systemd-analyze security --offline rates the unit $score (at most 2.0)"
  else fail "systemd-analyze security rates the unit '${score:-no score}', want at most 2.0"; fi
  check_match "the unit is Type=notify with a watchdog" "$(cat "$T/root/lib/systemd/system/dirbridge.service")" \
    '^WatchdogSec=[1-9]'
else
  echo "SKIP unit score: no systemd-analyze (apt-get install systemd)"
fi
if command -v lintian >/dev/null; then
  lintian "$DEB" >"$T/lintian.log" 2>&1; rc=$?
  check_eq "lintian: no errors or warnings" "$rc:$(grep -cE '^[EW]:' "$T/lintian.log")" "0:0"
  grep -E '^[EW]:' "$T/lintian.log" | head -5 | sed 's/^/   /'
else
  echo "SKIP lintian: not installed (apt-get install lintian)"
fi
finish
