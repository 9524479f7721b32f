# Shared helpers for integration scripts (sourced).  Each check prints one line,
# "PASS name" or "FAIL name: why", which tests/run.sh counts.
# Environment from run.sh: ROOT, BUILD (absolute), T (scratch dir for this script),
# SLAPD_DIR, SLAPD_PORT, SLAPD_SPORT (shared slapd), SAMBA_DIR (shared Samba AD DC).

FAILS=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; FAILS=$((FAILS + 1)); }

# check NAME CMD...: passes when CMD exits 0.
check() { local name=$1; shift; if "$@" >"$T/last.out" 2>&1; then pass "$name"; else fail "$name: $(tail -3 "$T/last.out" | tr '\n' ' ')"; fi; }
# check_eq NAME GOT WANT
check_eq() { if [ "$2" = "$3" ]; then pass "$1"; else fail "$1: got '$2', want '$3'"; fi; }
# check_match NAME TEXT REGEX
check_match() { if grep -Eq -- "$3" <<<"$2"; then pass "$1"; else fail "$1: '$(head -c 300 <<<"$2")' does not match /$3/"; fi; }
check_nomatch() { if grep -Eq -- "$3" <<<"$2"; then fail "$1: '$(head -c 300 <<<"$2")' matches /$3/"; else pass "$1"; fi; }

# Processes a script starts are killed by PID when it exits, also on failure.
BG_PIDS=()
bg_track() { BG_PIDS+=("$1"); }
bg_cleanup() { local p; for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null; done; for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null; done; return 0; }
trap bg_cleanup EXIT

# A free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
# wait_port HOST PORT: up to 10 s.
wait_port() { local i; for i in $(seq 100); do (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

# write_ini and the shared slapd's [ldap] preset.
source "$ROOT/tests/ini.sh"

finish() { return "$((FAILS > 0))"; }
