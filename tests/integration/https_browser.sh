#!/bin/bash
# Front-facing HTTPS in a real browser: headless Chromium (playwright-core)
# signs in with a directory user's password, and by certificate (from an NSS
# db, auto-selected) without one.  Screenshots are kept in $T.
source "$ROOT/tests/lib.sh"
source "$ROOT/tests/https-lib.sh"

command -v chromium >/dev/null && command -v node >/dev/null && command -v pk12util >/dev/null ||
  { fail "chromium, node and pk12util are needed (packaging/deps.sh)"; finish; exit; }
if [ ! -d "$ROOT/tests/node_modules/playwright-core" ]; then
  (cd "$ROOT/tests" && timeout 300 npm ci --no-audit --no-fund) >"$T/npm.log" 2>&1 ||
    { fail "npm ci in tests/: $(tail -2 "$T/npm.log" | tr '\n' ' ')"; finish; exit; }
fi
https_agent 127.0.0.1/32 || { finish; exit; }

# Two browser homes: both trust the server CA; one also holds alice's key.
mknss() {
  mkdir -p "$1/.pki/nssdb"
  certutil -d "sql:$1/.pki/nssdb" -N --empty-password &&
  certutil -d "sql:$1/.pki/nssdb" -A -n dirbridge-test-server-ca -t "C,," -i "$CA" &&
  { [ -z "${2:-}" ] || pk12util -i "$PKI/$2.p12" -d "sql:$1/.pki/nssdb" -W p12pass >/dev/null; }
}
check "NSS db without a certificate" mknss "$T/home-plain"
check "NSS db with alice's certificate" mknss "$T/home-alice" alice
browse() {  # browse HOME MODE URL SHOT ARGS...
  local home=$1; shift
  HOME=$home UDD=$T/udd NODE_PATH=$ROOT/tests/node_modules timeout 90 \
    node "$ROOT/tests/browser_signin.js" "$@" 2>&1
}

B1=$(new_session); B2=$(new_session); B3=$(new_session)
out=$(browse "$T/home-plain" password "https://127.0.0.1:$P/login?session=$B1" "$T/password.png" alice 'Passw0rd!')
check_match "password sign-in in Chromium shows the success page" "$out" '^RESULT You are signed in USER alice$'
sleep 0.2
check_match "password login reported for the session" "$(cat "$T/agent.log")" "login: session $B1 method password user alice"
out=$(browse "$T/home-plain" password "https://127.0.0.1:$P/login?session=$B3" "$T/wrong.png" alice 'nope')
check_match "wrong password in Chromium: the form with a message" "$out" '^RESULT The username or password is incorrect'

out=$(browse "$T/home-alice" certificate "https://127.0.0.1:$P/login?session=$B2" "$T/certificate.png" \
      "dirbridge test client CA")
check_match "certificate sign-in in Chromium without a password" "$out" '^RESULT You are signed in USER alice$'
sleep 0.2
check_match "certificate login reported for the session" "$(cat "$T/agent.log")" \
  "login: session $B2 method certificate user alice"
for s in password-form password wrong certificate; do
  check "screenshot $s.png written" test -s "$T/$s.png"
done
stop_agent "$T/agent.log"
finish
