/*
 * What the front-facing server sends back besides data: the response head
 * with the security headers (CSP and friends) that every response carries,
 * the sign-in pages and their stylesheet.  Every value put into a page is
 * HTML-escaped.  No I/O here; https_conn.c queues what this renders.
 */
#include <errno.h>
#include <string.h>

#include <http_parser.h>

#include "agent/https_internal.h"

/* ---- the response head ------------------------------------------------------ */

static const char security_headers[] =
	"Cache-Control: no-store\r\n"
	"Strict-Transport-Security: max-age=31536000\r\n"
	"X-Content-Type-Options: nosniff\r\n"
	"X-Frame-Options: DENY\r\n"
	"Referrer-Policy: no-referrer\r\n"
	"Content-Security-Policy: default-src 'none'; style-src 'self'; form-action 'self'; "
	"frame-ancestors 'none'; base-uri 'none'\r\n";

int page_response_head(struct buf *b, unsigned status, const char *ctype, size_t len,
		       const char *extra, bool keep_alive)
{
	return buf_printf(b, "HTTP/1.1 %u %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s%s\r\n",
			  status, http_status_str((enum http_status)status), ctype, len,
			  security_headers, extra ? extra : "",
			  keep_alive ? "" : "Connection: close\r\n");
}

/* ---- pages ---------------------------------------------------------------- */

const char page_css[] =
	":root{color-scheme:light dark;--bg:#f3f5f9;--card:#fff;--fg:#1b2230;--mute:#5b6578;"
	"--line:#d5dae3;--accent:#2557d6;--accent-fg:#fff;--bad:#b42318;--bad-bg:#fef3f2;"
	"--good:#067647;--good-bg:#ecfdf3}\n"
	"@media (prefers-color-scheme:dark){:root{--bg:#11151c;--card:#1a202b;--fg:#e7ebf2;"
	"--mute:#9aa4b5;--line:#313a4a;--accent:#6e95ff;--accent-fg:#0b1020;--bad:#ffb4ab;"
	"--bad-bg:#3a1d1b;--good:#7fe0a6;--good-bg:#12301f}}\n"
	"*{box-sizing:border-box}\n"
	"html,body{margin:0;min-height:100%}\n"
	"body{background:var(--bg);color:var(--fg);font:16px/1.5 system-ui,-apple-system,"
	"\"Segoe UI\",Roboto,\"Helvetica Neue\",Arial,sans-serif;display:flex;align-items:center;"
	"justify-content:center;min-height:100vh;padding:24px}\n"
	"main{width:100%;max-width:380px;background:var(--card);border:1px solid var(--line);"
	"border-radius:14px;padding:32px 28px;box-shadow:0 10px 30px rgba(16,24,40,.08)}\n"
	"h1{font-size:1.35rem;margin:0 0 4px;font-weight:650;letter-spacing:-.01em}\n"
	"p.sub{margin:0 0 24px;color:var(--mute);font-size:.95rem}\n"
	"label{display:block;font-weight:560;font-size:.9rem;margin:0 0 6px}\n"
	"input[type=text],input[type=password]{display:block;width:100%;padding:10px 12px;"
	"font:inherit;color:inherit;background:transparent;border:1px solid var(--line);"
	"border-radius:8px;margin:0 0 18px}\n"
	"input:focus-visible,button:focus-visible{outline:3px solid var(--accent);outline-offset:2px}\n"
	"button{width:100%;padding:11px 14px;font:inherit;font-weight:600;border:0;border-radius:8px;"
	"background:var(--accent);color:var(--accent-fg);cursor:pointer}\n"
	"button:hover{filter:brightness(1.08)}\n"
	".msg{border-radius:8px;padding:10px 12px;margin:0 0 20px;font-size:.93rem}\n"
	".msg.bad{background:var(--bad-bg);color:var(--bad)}\n"
	".msg.good{background:var(--good-bg);color:var(--good)}\n"
	".mark{width:44px;height:44px;border-radius:50%;display:grid;place-items:center;"
	"background:var(--good-bg);color:var(--good);font-size:24px;margin:0 0 16px}\n"
	"footer{margin-top:22px;color:var(--mute);font-size:.8rem;text-align:center}\n";
const size_t page_css_len = sizeof(page_css) - 1;

static int page_head(struct buf *b, const char *title)
{
	int ret = buf_printf(b, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
			 "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
			 "<meta name=\"referrer\" content=\"no-referrer\"><title>");
	if (ret == 0)
		ret = buf_html(b, title);
	if (ret == 0)
		ret = buf_printf(b, "</title><link rel=\"stylesheet\" href=\"/static/login.css\">"
				 "</head><body><main>");
	return ret;
}

int page_form(struct buf *b, const char *session, const char *csrf, const char *username,
	      const char *msg)
{
	int ret = page_head(b, "Sign in");

	if (ret == 0)
		ret = buf_printf(b, "<h1>Sign in</h1><p class=\"sub\">Use your organization account.</p>");
	if (ret == 0 && msg) {
		ret = buf_printf(b, "<p class=\"msg bad\" role=\"alert\" id=\"message\">");
		if (ret == 0)
			ret = buf_html(b, msg);
		if (ret == 0)
			ret = buf_printf(b, "</p>");
	}
	if (ret == 0)
		ret = buf_printf(b, "<form method=\"post\" action=\"/login\" autocomplete=\"on\">"
				 "<input type=\"hidden\" name=\"session\" value=\"");
	if (ret == 0)
		ret = buf_html(b, session ? session : "");
	if (ret == 0)
		ret = buf_printf(b, "\"><input type=\"hidden\" name=\"csrf\" value=\"");
	if (ret == 0)
		ret = buf_html(b, csrf ? csrf : "");
	if (ret == 0)
		ret = buf_printf(b, "\"><label for=\"username\">Username</label>"
				 "<input type=\"text\" id=\"username\" name=\"username\" required "
				 "autocomplete=\"username\" autocapitalize=\"none\" spellcheck=\"false\" "
				 "maxlength=\"256\" value=\"");
	if (ret == 0)
		ret = buf_html(b, username ? username : "");
	if (ret == 0)
		ret = buf_printf(b, "\"%s><label for=\"password\">Password</label>"
				 "<input type=\"password\" id=\"password\" name=\"password\" required "
				 "autocomplete=\"current-password\" maxlength=\"1024\"%s>"
				 "<button type=\"submit\" id=\"submit\">Sign in</button></form>"
				 "<footer>dirbridge</footer></main></body></html>\n",
				 username && *username ? "" : " autofocus",
				 username && *username ? " autofocus" : "");
	return ret;
}

int page_notice(struct buf *b, const char *id, const char *title, const char *msg)
{
	int ret = page_head(b, title);

	if (ret == 0)
		ret = buf_printf(b, "<h1 id=\"");
	if (ret == 0)
		ret = buf_html(b, id);
	if (ret == 0)
		ret = buf_printf(b, "\">");
	if (ret == 0)
		ret = buf_html(b, title);
	if (ret == 0)
		ret = buf_printf(b, "</h1><p class=\"msg bad\" role=\"alert\" id=\"message\">");
	if (ret == 0)
		ret = buf_html(b, msg);
	if (ret == 0)
		ret = buf_printf(b, "</p><footer>dirbridge</footer></main></body></html>\n");
	return ret;
}

int page_success(struct buf *b, const char *username, const char *method)
{
	int ret = page_head(b, "Signed in");

	if (ret == 0)
		ret = buf_printf(b, "<div class=\"mark\" aria-hidden=\"true\">&#10003;</div>"
				 "<h1 id=\"result\">You are signed in</h1><p class=\"sub\">Signed in as <strong id=\"user\">");
	if (ret == 0)
		ret = buf_html(b, username);
	if (ret == 0)
		ret = buf_printf(b, "</strong> %s. You can close this window and return to the "
				 "application.</p><footer>dirbridge</footer></main></body></html>\n",
				 strcmp(method, "certificate") == 0 ? "with your certificate"
								     : "with your password");
	return ret;
}

