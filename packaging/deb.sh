#!/bin/bash
# Builds OUTDIR/dirbridge_VERSION_ARCH.deb from already built programs, with
# dpkg-deb alone (no debhelper), in Debian policy layout.  `make deb` runs
#   packaging/deb.sh build VERSION PROGRAM...
# Depends: is what dpkg-shlibdeps finds for the programs' real sonames, plus
# adduser for postinst.  The staging tree is removed afterwards.
set -euo pipefail

OUT=$1 VERSION=$2; shift 2
SRC=$(cd "$(dirname "$0")/.." && pwd)
P=$SRC/packaging
# The build needs this GnuTLS (packaging/deps.sh); so does the running agent,
# whose TLS fixes are in the library, not in our binary.
GNUTLS_MIN=3.7.9-2+deb12u7
ARCH=$(dpkg --print-architecture)
DEB=$OUT/dirbridge_${VERSION}_${ARCH}.deb
W=$(mktemp -d "${TMPDIR:-/tmp}/dirbridge-deb.XXXXXX")
trap 'rm -rf "$W"' EXIT
R=$W/root
DOC=$R/usr/share/doc/dirbridge

for p in "$@"; do [ -x "$p" ] || { echo "deb: $p is not built; run make first" >&2; exit 1; }; done
# Modes are set explicitly, so the package does not depend on the umask.
umask 022
install -d -m 0755 "$R/DEBIAN" "$R/usr/bin" "$R/lib/systemd/system" "$DOC/examples"
install -d -m 0755 "$R/etc/dirbridge"
install -d -m 0700 "$R/var/lib/dirbridge"
for p in "$@"; do
  # Policy 10.1: installed binaries are stripped; the build/ copies keep -g.
  install -m 0755 "$p" "$R/usr/bin/"
  strip --remove-section=.comment --remove-section=.note --strip-unneeded "$R/usr/bin/$(basename "$p")"
done
# A manual page per program (lintian: no-manual-page otherwise).
for p in "$@"; do
  for m in "$P"/man/"$(basename "$p")".[18]; do
    [ -f "$m" ] || continue
    s=${m##*.}; install -d -m 0755 "$R/usr/share/man/man$s"
    sed "s/@VERSION@/$VERSION/" "$m" | gzip -n9 >"$R/usr/share/man/man$s/$(basename "$m").gz"
    chmod 0644 "$R/usr/share/man/man$s/$(basename "$m").gz"
  done
done
install -d -m 0755 "$R/usr/share/lintian/overrides"
install -m 0644 "$P/debian/lintian-overrides" "$R/usr/share/lintian/overrides/dirbridge"
install -m 0644 "$P/agent.ini.example" "$R/etc/dirbridge/agent.ini"
install -m 0644 "$P/agent.ini.example" "$R/etc/dirbridge/agent.ini.example"
install -m 0644 "$P/systemd/dirbridge.service" "$R/lib/systemd/system/dirbridge.service"
install -m 0644 "$P/debian/copyright" "$DOC/copyright"
install -m 0644 "$SRC/README.md" "$DOC/README.md"
for d in config https certificates protocol active-directory packaging; do
  if [ -f "$SRC/docs/$d.md" ]; then install -m 0644 "$SRC/docs/$d.md" "$DOC/$d.md"; fi
done
install -m 0644 "$P/agent.ini.example" "$DOC/examples/agent.ini.example"
sed "s/@VERSION@/$VERSION/" "$P/debian/changelog" | gzip -n9 >"$DOC/changelog.Debian.gz"
chmod 0644 "$DOC/changelog.Debian.gz"
for s in postinst prerm postrm; do install -m 0755 "$P/debian/$s" "$R/DEBIAN/$s"; done
# Every file under /etc is a conffile (policy 10.7.2).
(cd "$R" && find etc -type f | sort | sed 's|^|/|') >"$R/DEBIAN/conffiles"
chmod 0644 "$R/DEBIAN/conffiles"

# dpkg-shlibdeps reads debian/control from its working directory; a minimal
# one is enough to map every NEEDED soname to the package that ships it.
mkdir -p "$W/src/debian"
printf 'Source: dirbridge\n\nPackage: dirbridge\nArchitecture: any\n' >"$W/src/debian/control"
bins=(); for p in "$@"; do bins+=("-e$R/usr/bin/$(basename "$p")"); done
shlibs=$(cd "$W/src" && dpkg-shlibdeps -O "${bins[@]}" 2>"$W/shlibdeps.err") ||
  { cat "$W/shlibdeps.err" >&2; echo "deb: dpkg-shlibdeps failed" >&2; exit 1; }
depends=${shlibs#shlibs:Depends=}
[ -n "$depends" ] && [ "$depends" != "$shlibs" ] || { echo "deb: no Depends from dpkg-shlibdeps: $shlibs" >&2; exit 1; }
depends=$(sed -E "s/libgnutls30( \([^)]*\))?/libgnutls30 (>= $GNUTLS_MIN)/" <<<"$depends")
depends="adduser, $depends"
size=$(du -sk --exclude=DEBIAN "$R" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$size/" \
    -e "s/@DEPENDS@/$depends/" "$P/debian/control.in" >"$R/DEBIAN/control"
(cd "$R" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
   xargs -0 md5sum) >"$R/DEBIAN/md5sums"
chmod 0644 "$R/DEBIAN/control" "$R/DEBIAN/md5sums"

mkdir -p "$OUT"
# One package in OUT, so build/dirbridge_*.deb names the current one.
rm -f "$OUT"/dirbridge_*_"$ARCH".deb
dpkg-deb --root-owner-group -Zxz --build "$R" "$DEB" >/dev/null
echo "deb: $DEB"
echo "deb: Depends: $depends"
