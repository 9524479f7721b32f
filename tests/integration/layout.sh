#!/bin/bash
# The tree's layout rules (docs/HACKING.md, Conventions), checked by
# tests/layout_check.py: no source file outside tests/ over 900 lines, state
# written only in its *_set_state() function, module includes only down the
# arrows, every state enum starting at a zero NEW state.  The checker is first
# run on made-up trees, each breaking one rule, so that every rule is seen to
# fail where it should and to pass where it should; then on $ROOT, one FAIL
# per place that breaks a rule.
. "$ROOT/tests/lib.sh"
CHECK=$ROOT/tests/layout_check.py

# tree DIR FILE=TEXT...: a made-up tree of C files (TEXT is printf format).
tree() {
  local d=$1 kv; shift
  rm -rf "$d"; mkdir -p "$d"
  for kv in "$@"; do mkdir -p "$d/$(dirname "${kv%%=*}")"; printf -- "${kv#*=}" >"$d/${kv%%=*}"; done
}
# expect NAME DIR REGEX: the checker on DIR prints a FAIL line matching REGEX.
expect() { check_match "layout checker: $1" "$(python3 "$CHECK" "$2" 2>&1)" "^FAIL layout: $3"; }
# expect_clean NAME DIR: the checker on DIR prints no FAIL line, and a PASS per rule.
expect_clean() {
  local out; out=$(python3 "$CHECK" "$2" 2>&1)
  check_nomatch "layout checker: $1: no FAIL" "$out" '^FAIL|Traceback'
  check_eq "layout checker: $1: every rule passes" "$(grep -c '^PASS layout:' <<<"$out")" 4
}

M=$T/made-up
GOOD=(
  'log/log.h=enum log_state { LOG_NEW = 0, LOG_OPEN };\n'
  'log/log.c=#include "log/log.h"\n'
  'tls/tls.h=#include "log/log.h"\n'
  'net/net.h=#include "tls/tls.h"\n#include "log/log.h"\n'
  'config/cfg.h=#include "tls/tls.h"\n'
  'ldap/internal.h=#include "ldap/dir.h"\n'
  'ldap/dir.c=#include "ldap/internal.h"\n#include "net/net.h"\n#include "config/cfg.h"\n'
  'agent/agent.c=#include "ldap/dir.h"\n#include "config/cfg.h"\n#include "agent/agent.h"\n'
  'tools/hub/main.c=#include "tools/hub/hub.h"\n#include "ldap/dir.h"\n'
  'tests/unit/test_x.c=#include "ldap/internal.h"\n#include "agent/agent.h"\nenum t_state { T_A };\n'
  "agent/conn.c=enum conn_phase {\n\t/* a comment */ C_NEW,\n\tC_OPEN\n};\nstatic void conn_set_state(struct conn *c, enum conn_state st)\n{\n\tc->state = st;\n\tif (c->state == C_OPEN)\n\t\treturn;\n}\n\nint\nconn_open(struct conn *c)\n{\n\tif (c->state == C_NEW) /* c->state = here is a comment */\n\t\tconn_set_state(c, C_OPEN);\n\tlog(\"c.state = x\");\n\treturn 0;\n}\n"
)
tree "$M/good" "${GOOD[@]}"
seq 900 | sed 's/^/\/\/ line /' >"$M/good/log/long.c"
seq 1000 | sed 's/^/\/\/ line /' >"$M/good/tests/unit/long_test.c"
expect_clean "a tree that keeps every rule" "$M/good"

tree "$M/size" "${GOOD[@]}"; seq 901 | sed 's/^/\/\/ line /' >"$M/size/ldap/big.c"
expect "a file over 900 lines" "$M/size" 'ldap/big\.c has 901 lines'
tree "$M/state" "${GOOD[@]}" \
  'ldap/c.c=static void conn_set_state(struct c *c, int s)\n{\n\tc->state = s;\n}\nstatic int conn_new(void)\n{\n\tstruct c x = { .state = 1 };\n\tx.state= 2;\n\treturn 0;\n}\n'
expect "a designated initializer of .state" "$M/state" 'ldap/c\.c:7 writes a state in conn_new\(\)'
expect "a .state= assignment" "$M/state" 'ldap/c\.c:8 writes a state in conn_new\(\)'
check_nomatch "layout checker: a write inside conn_set_state is allowed" "$(python3 "$CHECK" "$M/state")" 'ldap/c\.c:3 '
tree "$M/fold" "${GOOD[@]}" \
  'tls/s.c=static int\nsess_fail(struct s *s)\n{\n\ts->state = 3;\n\treturn 0;\n}\n'
expect "a write in a function whose return type stands on its own line" "$M/fold" 'tls/s\.c:4 writes a state in sess_fail\(\)'
tree "$M/cycle" "${GOOD[@]}" \
  'tls/bad.c=#include "ldap/dir.h"\n' 'log/bad.c=\n#include "tls/tls.h"\n' \
  'net/bad.c=#include "ldap/dir.h"\n' 'ldap/bad.c=#include "agent/agent.h"\n' \
  'config/bad.c=#include "ldap/dir.h"\n' 'tools/cert/bad.c=#include "tools/hub/hub.h"\n' \
  'agent/bad.c=#include "tools/hub/hub.h"\n' 'agent/priv.c=#include "ldap/internal.h"\n'
expect "tls including ldap" "$M/cycle" 'tls/bad\.c:1 includes "ldap/dir\.h": tls may not include ldap'
expect "log including tls" "$M/cycle" 'log/bad\.c:2 includes "tls/tls\.h": log may not include tls'
expect "net including ldap" "$M/cycle" 'net/bad\.c:1 includes "ldap/dir\.h"'
expect "ldap including agent" "$M/cycle" 'ldap/bad\.c:1 includes "agent/agent\.h"'
expect "config including ldap" "$M/cycle" 'config/bad\.c:1 includes "ldap/dir\.h"'
expect "one tool including another" "$M/cycle" 'tools/cert/bad\.c:1 includes "tools/hub/hub\.h"'
expect "agent including a tool" "$M/cycle" 'agent/bad\.c:1 includes "tools/hub/hub\.h"'
expect "another module's internal.h" "$M/cycle" 'agent/priv\.c:1 includes "ldap/internal\.h": a private header'
n=$(python3 "$CHECK" "$M/cycle" | grep -c 'includes "')
check_eq "layout checker: one FAIL per forbidden include, no more" "$n" 8
tree "$M/enum" "${GOOD[@]}" \
  'agent/e.h=enum a_state { A_START, A_NEW };\nenum b_state {\n\tB_NEW = 1,\n};\nenum c_phase\n{ C_X };\nenum d_state { D_NEW_ONE = 0, D_B };\nenum e_state { NEWISH = 0 };\n'
expect "a state enum starting elsewhere" "$M/enum" 'agent/e\.h:1 enum a_state starts with A_START'
expect "a NEW state that is not zero" "$M/enum" 'agent/e\.h:2 enum b_state starts with B_NEW = 1'
check_nomatch "layout checker: NAME = 0 containing NEW is a zero NEW state" "$(python3 "$CHECK" "$M/enum")" 'd_state|e_state'
tree "$M/enum2" "${GOOD[@]}" 'tools/hub/x.c=enum ag_phase {\n\tAG_HANDSHAKE,\n};\n'
expect "a phase enum starting elsewhere" "$M/enum2" 'tools/hub/x\.c:1 enum ag_phase starts with AG_HANDSHAKE'

# ---- the tree itself ----
while IFS= read -r line; do
  case $line in
    "PASS "*) pass "${line#PASS }" ;;
    "FAIL "*) fail "${line#FAIL }" ;;
    *) fail "layout: the checker said: $line" ;;
  esac
done < <(python3 "$CHECK" "$ROOT" 2>&1)
finish
