#!/bin/bash
# Front-facing HTTPS, HTTP side: password sign-in against slapd, CSRF, headers,
# /healthz and /metrics, hostile requests (smuggling shapes, oversized
# headers and bodies) answered 400-class and closed, and slowloris connections
# that do not starve a real client.
source "$ROOT/tests/lib.sh"
source "$ROOT/tests/https-lib.sh"

https_setup || { fail "pki: could not build the test PKI"; finish; exit; }
P=$(free_port)
write_config "$T/agent.ini" "127.0.0.1:$P" "127.0.0.2/32"
# A cap below the slowloris count at the end, so the cap has to evict.
sed -i '/^\[https\]$/a max_connections = 256' "$T/agent.ini"
start_agent "$T/agent.ini" "$T/agent.log" || { fail "agent starts"; finish; exit; }
U=https://127.0.0.1:$P
c() { curl -s --max-time 10 --cacert "$CA" "$@"; }

# form_csrf SESSION: the CSRF token in SESSION's form.
form_csrf() { c "$U/login?session=$1" | sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p'; }

# ---- the form and its headers (for a session the hub made)
S1=$(new_session)
check_match "the hub made a session" "$S1" "^$SESSION_RE\$"
hdr=$(c -D - -o "$T/form.html" "$U/login?session=$S1")
form=$(cat "$T/form.html")
check_match "form: 200" "$hdr" '^HTTP/1.1 200'
for h in 'Content-Security-Policy: default-src .none.' 'Strict-Transport-Security: max-age=' \
         'X-Frame-Options: DENY' 'Cache-Control: no-store' 'X-Content-Type-Options: nosniff'; do
  check_match "form header $h" "$hdr" "$h"
done
check_match "form has labelled username with autocomplete" "$form" '<label for="username">.*autocomplete="username"'
check_match "form has password with autocomplete current-password" "$form" 'autocomplete="current-password"'
check_nomatch "form loads nothing external" "$form" '(src|href)="(https?:)?//'
check_match "stylesheet served" "$(c -D - "$U/static/login.css")" 'Content-Type: text/css'
csrf=$(sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' <<<"$form")
check_match "form carries a CSRF token" "$csrf" '^[0-9]+\.[0-9a-f]{64}$'
check_match "no session in the link: 400" "$(c -D - -o "$T/none.html" "$U/login")" '^HTTP/1.1 400'
check_eq "no session in the link: the invalid-link page, no form" "$(page_kind "$(cat "$T/none.html")")" gone
page=$(c "$U/login?session=%3Cscript%3E")
check_nomatch "a hostile session id is not echoed" "$page" '<script'
check_eq "a hostile session id: no form" "$(page_kind "$page")" gone

# ---- password path against the real directory
post() { c -o "$T/post.html" -w '%{http_code}' --data-urlencode "session=$1" --data-urlencode "csrf=$2" \
         --data-urlencode "username=$3" --data-urlencode "password=$4" "$U/login"; }
check_eq "alice with the right password: 200" "$(post $S1 "$csrf" alice 'Passw0rd!')" 200
check_eq "alice with the right password: success page" "$(page_kind "$(cat "$T/post.html")")" success
check_eq "the hub has the session done when the success page is shown" "$(session_state $S1)" done
check_match "password login reported for the session" "$(cat "$T/agent.log")" "login: session $S1 method password user alice"
check_nomatch "the password never reaches the log" "$(cat "$T/agent.log")" 'Passw0rd'

# ---- a session signed in once is gone: no second login, no form
check_eq "replayed POST: 410" "$(post $S1 "$csrf" alice 'Passw0rd!')" 410
check_eq "replayed POST: the no-longer-valid page" "$(page_kind "$(cat "$T/post.html")")" gone
check_match "replayed GET: 410" "$(c -D - -o "$T/replay.html" "$U/login?session=$S1")" '^HTTP/1.1 410'
check_eq "replayed GET: no form" "$(page_kind "$(cat "$T/replay.html")")" gone
check_eq "one login reported for the session, not two" \
  "$(grep -c "login: session $S1 method" "$T/agent.log")" 1

# ---- failures keep the session pending
S1=$(new_session); csrf=$(form_csrf $S1)
check_match "a second session's form carries a CSRF token" "$csrf" '^[0-9]+\.[0-9a-f]{64}$'
check_eq "wrong password: 401" "$(post $S1 "$csrf" alice 'wrong')" 401
check_eq "wrong password: the form again" "$(page_kind "$(cat "$T/post.html")")" form
check_match "wrong password: generic message" "$(cat "$T/post.html")" 'role="alert"'
check_eq "unknown user: 401" "$(post $S1 "$csrf" nobody 'Passw0rd!')" 401
check_eq "locked user (carol): 401" "$(post $S1 "$csrf" carol 'Passw0rd!')" 401
check_eq "empty password: 401" "$(post $S1 "$csrf" alice '')" 401
check_eq "filter injection as username: 401" "$(post $S1 "$csrf" '*)(uid=*' 'Passw0rd!')" 401
check_eq "CSRF token of another session: 403" "$(post "$(new_session)" "$csrf" alice 'Passw0rd!')" 403
check_eq "CSRF token of another session: the form" "$(page_kind "$(cat "$T/post.html")")" form
check_eq "no CSRF token: 403" "$(post $S1 '' alice 'Passw0rd!')" 403
check_eq "forged CSRF token: 403" "$(post $S1 "9999999999.$(printf '%064d' 0)" alice 'Passw0rd!')" 403
post $S1 "$csrf" 'a&b<x' 'x' >/dev/null
check_nomatch "no raw markup from the username is echoed" "$(cat "$T/post.html")" '<x'
code=$(post $S1 "$csrf" 'o&rsquo' 'x'); page=$(cat "$T/post.html")
check_match "a username echoed into the form is escaped" "$page" 'value="o&amp;rsquo"'
check_eq "GET /login with X-Forwarded-For from outside: form" "$(page_kind "$(c -H 'X-Forwarded-For: 127.0.0.2' \
  --cert "$PKI/alice.crt" --key "$PKI/alice.key" "$U/login?session=$S1")")" form

# ---- health and metrics
hz=$(c -w ' %{http_code}' "$U/healthz")
check_match "healthz: JSON with status, ldap up, hub state" "$hz" '^\{"status":"(ok|degraded)","ldap":"up","hub":"(connected|disconnected)"\} (200|503)$'
check_match "healthz: 503 exactly when degraded" "$hz" '("ok".* 200|"degraded".* 503)$'
m=$(c "$U/metrics")
check_match "metrics: password logins counted" "$m" 'dirbridge_logins_total\{method="password",result="success"\} 1'
check_match "metrics: failed password logins counted" "$m" 'dirbridge_logins_total\{method="password",result="failure"\} [4-9]'
check_match "metrics: requests by route and status" "$m" 'dirbridge_http_requests_total\{route="login",status="401"\} [1-9]'
check_match "metrics: open connections gauge" "$m" '^dirbridge_http_open_connections [0-9]+'
check_match "metrics: TLS handshakes" "$m" 'dirbridge_tls_handshakes_total\{result="success"\} [1-9]'
check_match "PUT /login: 405" "$(c -X PUT -D - -o /dev/null "$U/login")" '^HTTP/1.1 405'
check_match "unknown path: 404" "$(c -D - -o /dev/null "$U/nope")" '^HTTP/1.1 404'

# ---- hostile HTTP: every shape gets its 4xx and a closed connection
raw() { printf '%s' "$1" | python3 "$ROOT/tests/https_raw.py" send "$P" "$CA" | tr '\n' ' '; }
check_eq "keep-alive: two pipelined requests answered" \
  "$(raw 'GET /static/login.css HTTP/1.1\r\nHost: a\r\n\r\nGET /static/login.css HTTP/1.1\r\nHost: a\r\n\r\n')" \
  "HTTP/1.1 200 OK HTTP/1.1 200 OK open "
bad() { check_eq "$1 -> $2 and close" "$(raw "$3")" "HTTP/1.1 $2 closed "; }
bad "Transfer-Encoding with Content-Length" "400 Bad Request" \
  'POST /login HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'
bad "duplicate Content-Length" "400 Bad Request" \
  'POST /login HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd'
bad "bare LF" "400 Bad Request" 'GET /healthz HTTP/1.1\nHost: a\r\n\r\n'
bad "bare CR" "400 Bad Request" 'GET /healthz HTTP/1.1\rHost: a\r\n\r\n'
bad "obs-fold" "400 Bad Request" 'GET /healthz HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n'
bad "invalid chunk size" "400 Bad Request" \
  'POST /login HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n'
bad "Transfer-Encoding list ending in chunked with Content-Length" "400 Bad Request" \
  'POST /login HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\nabc'
bad "oversized header" "431 Request Header Fields Too Large" \
  "GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: $(head -c 9000 /dev/zero | tr '\0' a)\r\n\r\n"
bad "too many headers" "431 Request Header Fields Too Large" \
  "GET /healthz HTTP/1.1\r\n$(for i in $(seq 80); do printf 'X-%d: a\\r\\n' "$i"; done)\r\n"
bad "oversized body" "413 Payload Too Large" 'POST /login HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n'
bad "garbage request line" "400 Bad Request" 'HELLO\r\n\r\n'
check_match "after all that the server still serves" "$(c -D - -o /dev/null "$U/login?session=$S1")" '^HTTP/1.1 200'

# ---- slowloris: 700 connections (more than max_connections) held open, half of them
# TLS with a request that never ends; real clients keep being served.
python3 "$ROOT/tests/https_raw.py" slowloris "$P" "$CA" 700 12 >"$T/slow.out" 2>&1 &
bg_track $!
for i in $(seq 50); do grep -q opened "$T/slow.out" && break; sleep 0.2; done
check_match "slowloris connections opened" "$(cat "$T/slow.out")" 'opened [0-9]{3}'
ok=0; slow=0
for i in $(seq 10); do
  r=$(c -o /dev/null -w '%{http_code} %{time_total}' --max-time 5 "$U/login?session=$S1")
  [ "${r%% *}" = 200 ] && ok=$((ok + 1))
  awk -v t="${r#* }" 'BEGIN{exit !(t > 2)}' && slow=$((slow + 1))
  sleep 0.3
done
check_eq "real client served 10/10 during slowloris" "$ok" 10
check_eq "none of them took over 2 s" "$slow" 0
check_match "metrics: slow connections were evicted" "$(c "$U/metrics")" \
  'dirbridge_http_connections_closed_total\{reason="evicted"\} [1-9]'
check "agent still running" kill -0 "$AGENT_PID"
stop_agent "$T/agent.log"

finish
