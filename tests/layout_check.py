#!/usr/bin/env python3
"""tests/layout_check.py ROOT: the tree's layout rules (docs/HACKING.md,
Conventions), checked on every *.c and *.h below ROOT outside tests/ and the
build directories.  Prints "PASS name" for a rule the tree keeps and one
"FAIL why" per place that breaks one; tests/integration/layout.sh turns the
lines into its checks and also runs this on made-up trees, so that each rule
is seen to fail.  The C is parsed roughly, by lines, as the rules are written:
a function starts at a column-0 line "name(" followed by a column-0 "{"."""
import os
import re
import sys

MAX_LINES = 900

# What each module may include besides itself: the arrows point down only,
# agent and tools/* > ldap > net > tls > log, and config > tls, log; config
# may be used by ldap, agent and the tools.
BELOW = {
    "log": set(),
    "tls": {"log"},
    "net": {"tls", "log"},
    "config": {"tls", "log"},
    "ldap": {"net", "tls", "log", "config"},
    "agent": {"ldap", "net", "tls", "log", "config"},
    "tools": {"ldap", "net", "tls", "log", "config"},
}
ARROWS = "agent, tools/* > ldap > net > tls > log; config > tls, log; ldap, agent, tools may use config"

FUNC_START = re.compile(r"^[a-z].*\(")
FUNC_NAME = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(")
STATE_WRITE = re.compile(r"(->|\.)state\s*=(?!=)")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
STATE_ENUM = re.compile(r"\benum\s+([A-Za-z0-9_]*_(?:state|phase))\s*\{")


def sources(root):
    skip = {"tests", ".git", "node_modules"}
    for d, dirs, files in os.walk(root):
        if d == root:
            dirs[:] = [x for x in dirs if x not in skip and not x.startswith("build")]
        dirs[:] = [x for x in dirs if x not in (".git", "node_modules")]
        dirs.sort()
        for f in sorted(files):
            if f.endswith((".c", ".h")):
                p = os.path.join(d, f)
                yield os.path.relpath(p, root), p


def module_of(rel):
    """The module a path belongs to: its top directory, tools/NAME for tools."""
    parts = rel.split("/")
    if len(parts) < 2:
        return None
    if parts[0] == "tools":
        return "tools/" + parts[1] if len(parts) > 2 else None
    return parts[0] if parts[0] in BELOW else None


def kind(mod):
    return "tools" if mod and mod.startswith("tools/") else mod


def strip_comments(text):
    """Blanks comments and string literals, keeping the line breaks."""
    def blank(m):
        return re.sub(r"[^\n]", " ", m.group(0))
    return re.sub(r'/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])+\'', blank, text,
                  flags=re.S)


def check_size(rel, lines, fails):
    if len(lines) > MAX_LINES:
        fails.append(f"{rel} has {len(lines)} lines, more than the limit of {MAX_LINES}: split it")


def check_state_writes(rel, code_lines, fails):
    func = None          # the function whose body we are in
    candidate = None     # a column-0 "name(" line not yet followed by "{"
    for n, line in enumerate(code_lines, 1):
        if FUNC_START.match(line) and not line.rstrip().endswith(";"):
            m = FUNC_NAME.search(line)
            candidate = m.group(1) if m else None
            continue
        if line.rstrip().endswith(";"):
            candidate = None
        if line.startswith("{"):
            func, candidate = candidate, None
            continue
        if line.startswith("}"):
            func = None
            continue
        if STATE_WRITE.search(line) and not (func or "").endswith("_set_state"):
            where = f"in {func}()" if func else "outside any function"
            fails.append(f"{rel}:{n} writes a state {where}: state is written only in its *_set_state() "
                         f"function: {line.strip()}")


def check_includes(rel, lines, fails):
    mod = module_of(rel)
    if mod is None:
        return
    for n, line in enumerate(lines, 1):
        m = INCLUDE.match(line)
        if not m:
            continue
        target = module_of(m.group(1))
        if target is None or target == mod:
            continue
        if kind(target) not in BELOW[kind(mod)] or kind(target) == "tools":
            fails.append(f"{rel}:{n} includes \"{m.group(1)}\": {mod} may not include {target} "
                         f"(the arrows: {ARROWS})")
        elif m.group(1).endswith("/internal.h"):
            fails.append(f"{rel}:{n} includes \"{m.group(1)}\": a private header is for its own "
                         f"module ({target}) only")


def check_enums(rel, code, fails):
    for m in STATE_ENUM.finditer(code):
        body = code[m.end():]
        first = re.split(r"[,}]", body, maxsplit=1)[0].strip()
        name, _, value = (x.strip() for x in first.partition("="))
        zero = value in ("", "0")
        named = name.endswith("_NEW") or (value == "0" and "NEW" in name)
        if not (zero and named):
            n = code.count("\n", 0, m.start()) + 1
            fails.append(f"{rel}:{n} enum {m.group(1)} starts with {first or 'nothing'}: a state enum "
                         f"starts with its zero NEW state (e.g. X_NEW = 0)")


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".")
    rules = {
        "no source file longer than %d lines" % MAX_LINES: [],
        "state written only in *_set_state functions": [],
        "module includes follow the arrows": [],
        "every state enum starts at a zero NEW state": [],
    }
    size, state, inc, enum = rules.values()
    for rel, path in sources(root):
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        code = strip_comments(text)
        check_size(rel, lines, size)
        check_state_writes(rel, code.split("\n"), state)
        check_includes(rel, lines, inc)
        check_enums(rel, code, enum)
    for name, fails in rules.items():
        if fails:
            for why in fails:
                print(f"FAIL layout: {why}")
        else:
            print(f"PASS layout: {name}")


if __name__ == "__main__":
    main()
