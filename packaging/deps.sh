#!/bin/bash
# Installs the Debian packages dirbridge needs to build and test, only those that
# are missing, without starting any packaged service (the tests start their own
# slapd and Samba on loopback, and a system slapd would hold port 389).
set -euo pipefail

# Recommended packages are not installed (see below), so the ones the tests need
# are named: samba-ad-provision holds the AD schema that `samba-tool domain
# provision` reads.  lintian and systemd (for systemd-analyze, never started
# here) let tests/integration/deb.sh check the package and the unit's score;
# gcc-mingw-w64-x86-64 lets `make windows-check` compile the Windows files.
PKGS=(build-essential pkg-config
      libldap-dev libgnutls28-dev libuv1-dev libiniparser-dev libsasl2-dev
      libhttp-parser-dev libwslay-dev libjansson-dev libcmocka-dev libzip-dev libsystemd-dev
      libtasn1-6-dev libtasn1-bin
      libsasl2-modules libsasl2-modules-gssapi-mit
      clang libclang-rt-14-dev
      gnutls-bin openssl libnss3-tools curl bc jq python3 python3-prometheus-client faketime
      slapd ldap-utils samba samba-ad-dc samba-ad-provision samba-dsdb-modules krb5-user winbind
      chromium fonts-dejavu-core ca-certificates
      lintian systemd
      gcc-mingw-w64-x86-64)
GNUTLS_MIN=3.7.9-2+deb12u7

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
# The browser tests drive Chromium from Node; any node/npm on PATH will do.
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
have=$(dpkg-query -W -f='${Version}' libgnutls30 2>/dev/null || echo 0)
dpkg --compare-versions "$have" ge "$GNUTLS_MIN" || missing+=(libgnutls30 libgnutls28-dev)

if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all packages present"
  exit 0
fi
echo "deps: installing ${missing[*]}"
SUDO=(); [ "$(id -u)" = 0 ] || SUDO=(sudo -E)
# policy-rc.d exit 101 tells invoke-rc.d not to start the services we install.
prc=/usr/sbin/policy-rc.d own_prc=0
if [ ! -e $prc ]; then
  printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee $prc >/dev/null; "${SUDO[@]}" chmod 755 $prc; own_prc=1
fi
trap 'if [ $own_prc = 1 ]; then "${SUDO[@]}" rm -f $prc; fi' EXIT
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
# Recommended packages are not needed, and one of them (an MTA, exim4) fails to
# configure in a container or chroot without a real host name.
"${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
have=$(dpkg-query -W -f='${Version}' libgnutls30)
dpkg --compare-versions "$have" ge "$GNUTLS_MIN" ||
  { echo "deps: GnuTLS $have is older than $GNUTLS_MIN" >&2; exit 1; }
