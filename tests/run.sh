#!/bin/bash
# Runs the whole suite: unit tests (cmocka, TAP output) and every
# tests/integration/*.sh against real servers started here on loopback: a shared
# OpenLDAP slapd and a Samba AD DC.  Stops what it started by PID, also on
# failure, and ends with one line "N passed, N failed".
# A second argument, an extended regex, runs only the unit tests and scripts whose
# names match it (tests/run.sh build-asan 'cert|https_cert').
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$ROOT/${1:-build}
ONLY=${2:-}
TMP=$(mktemp -d /tmp/dirbridge-test.XXXXXX)
export ROOT BUILD TMP
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$ROOT/tests/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export SLAPD_DIR=$TMP/slapd SLAPD_PORT=${SLAPD_PORT:-3389} SLAPD_SPORT=${SLAPD_SPORT:-3636}
# Developers running several suites at once may share one Samba (it needs the fixed
# AD ports): REUSE_SAMBA=1 SAMBA_DIR=/path uses a running one and leaves it running.
[ -n "${REUSE_SAMBA:-}" ] || SAMBA_DIR=$TMP/samba
export SAMBA_DIR

passed=0 failed=0
count() {   # count FILE: PASS/FAIL lines and TAP ok/not ok lines
  local p f
  p=$(grep -cE '^(PASS |ok [0-9])' "$1"); f=$(grep -cE '^(FAIL |not ok [0-9])' "$1")
  passed=$((passed + p)); failed=$((failed + f)); last_failed=$f
}

stop_servers() {
  DIR=$SLAPD_DIR "$ROOT/tests/servers/slapd.sh" stop >/dev/null 2>&1
  [ -n "${REUSE_SAMBA:-}" ] || DIR=$SAMBA_DIR "$ROOT/tests/servers/samba.sh" stop >/dev/null 2>&1
}
trap 'stop_servers; [ -n "${KEEP_TMP:-}" ] || rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

echo "== servers"
if DIR=$SLAPD_DIR PORT=$SLAPD_PORT SPORT=$SLAPD_SPORT "$ROOT/tests/servers/slapd.sh" start; then
  echo "PASS slapd started" >"$TMP/servers.log"
else
  echo "FAIL slapd did not start" >"$TMP/servers.log"
fi
if [ -n "${REUSE_SAMBA:-}" ]; then
  echo "PASS samba AD DC reused from $SAMBA_DIR" >>"$TMP/servers.log"
else
  if DIR=$SAMBA_DIR "$ROOT/tests/servers/samba.sh" start; then
    echo "PASS samba AD DC started" >>"$TMP/servers.log"
  else
    echo "FAIL samba AD DC did not start" >>"$TMP/servers.log"
  fi
fi
cat "$TMP/servers.log"; count "$TMP/servers.log"

echo "== unit"
for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  [ -z "$ONLY" ] || grep -Eq -- "$ONLY" <<<"$name" || continue
  CMOCKA_MESSAGE_OUTPUT=TAP timeout 120 "$t" >"$TMP/$name.log" 2>&1; rc=$?
  [ "$rc" = 0 ] || grep -q '^not ok' "$TMP/$name.log" || echo "FAIL $name exited $rc" >>"$TMP/$name.log"
  count "$TMP/$name.log"; f=$last_failed
  echo "$name: $(grep -cE '^ok [0-9]' "$TMP/$name.log") ok, $f failed"
  [ "$f" = 0 ] || grep -E -A3 '^(not ok|FAIL)' "$TMP/$name.log"
done

echo "== integration"
for s in "$ROOT"/tests/integration/*.sh; do
  [ -f "$s" ] || continue
  name=$(basename "$s" .sh)
  [ -z "$ONLY" ] || grep -Eq -- "$ONLY" <<<"$name" || continue
  export T=$TMP/$name; mkdir -p "$T"
  (cd "$T" && timeout 900 bash "$s") >"$TMP/$name.log" 2>&1; rc=$?
  [ "$rc" = 0 ] || grep -q '^FAIL' "$TMP/$name.log" || echo "FAIL $name exited $rc" >>"$TMP/$name.log"
  count "$TMP/$name.log"; f=$last_failed
  echo "$name: $(grep -c '^PASS' "$TMP/$name.log") passed, $f failed"
  [ "$f" = 0 ] || { grep '^FAIL' "$TMP/$name.log"; echo "   (log: tail of $name)"; tail -15 "$TMP/$name.log" | sed 's/^/   | /'; }
done

stop_servers
echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
