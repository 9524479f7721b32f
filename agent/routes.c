/*
 * The routes of docs/https.md: GET and POST /login (the hub confirms the
 * session first, then a client certificate or the password form goes to the
 * directory, then the hub must accept the login), /healthz, /metrics and the
 * stylesheet.  Connections, their states and responses are https_conn.c's;
 * page bodies are pages.c's.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "agent/https_internal.h"

static void ip_failed(struct conn *c);

static void respond_page(struct conn *c, unsigned status, struct buf *b)
{
	if (!b->p) {
		respond_text(c, 500, "internal error\n");
		return;
	}
	respond(c, status, "text/html; charset=utf-8", NULL, b->p, b->len);
	buf_wipe(b);
}

/* The password form, always with a fresh CSRF token for SESSION. */
static void respond_form(struct conn *c, unsigned status, const char *session,
			 const char *username, const char *msg)
{
	struct buf b = { 0 };
	char token[128] = "";

	if (session && *session && csrf_make(session, token, sizeof(token)) < 0)
		token[0] = '\0';
	if (page_form(&b, session, token, username, msg) < 0)
		buf_wipe(&b);
	respond_page(c, status, &b);
}

/* ---- routes ----------------------------------------------------------------- */

static const char MSG_BAD_LINK[] =
	"This sign-in link is not valid. Start again from the application.";
static const char MSG_GONE[] =
	"This sign-in link is no longer valid. Start again from the application.";
static const char MSG_FAILED[] = "The username or password is incorrect, or the account cannot sign in.";
static const char MSG_EXPIRED[] = "The sign-in form expired. Please try again.";
static const char MSG_UNAVAILABLE[] = "Sign-in is unavailable right now. Please try again shortly.";
static const char MSG_TOO_MANY[] = "Too many attempts; try again later.";
static const char MSG_CERT[] = "Your certificate could not be used. Sign in with your password.";

/* A page with a message and no form. */
static void respond_notice(struct conn *c, unsigned status, const char *id, const char *title,
			   const char *msg)
{
	struct buf b = { 0 };

	if (page_notice(&b, id, title, msg) < 0)
		buf_wipe(&b);
	respond_page(c, status, &b);
}

/* A session the hub does not hold for us: never a form, never directory work. */
static void respond_gone(struct conn *c)
{
	respond_notice(c, 410, "gone", "Sign-in link expired", MSG_GONE);
}

static void respond_unavailable(struct conn *c)
{
	respond_notice(c, 503, "unavailable", "Sign-in unavailable", MSG_UNAVAILABLE);
}

static void log_cert_refusal(struct conn *c, const char *why)
{
	log_msg(LOGL_WARN, "https: %s: client certificate refused: %s (serial %s, issuer \"%s\", sha256 %s)",
		c->peer, why, c->cert.serial[0] ? c->cert.serial : "?",
		c->cert.issuer[0] ? c->cert.issuer : "?", c->cert.sha256[0] ? c->cert.sha256 : "?");
}

static void login_counted(struct conn *c, bool ok)
{
	struct https_metrics *m = &c->srv->m;
	bool cert = strcmp(c->method, "certificate") == 0;

	if (ok)
		(*(cert ? &m->logins_cert_ok : &m->logins_pw_ok))++;
	else
		(*(cert ? &m->logins_cert_fail : &m->logins_pw_fail))++;
}

static void on_login_reported(void *arg, enum agent_answer answer)
{
	struct conn *c = arg;
	struct buf b = { 0 };

	if (c->state != C_REPORT_LOGIN) {
		conn_unref(c);
		return;
	}
	login_counted(c, answer == AGENT_ANSWER_OK);
	if (answer == AGENT_ANSWER_OK) {
		log_msg(LOGL_INFO, "https: %s: hub accepted the login of %s for session %s",
			c->peer, c->signed_in, c->session);
		if (page_success(&b, c->signed_in, c->method) < 0)
			buf_wipe(&b);
		respond_page(c, 200, &b);
	} else {
		log_msg(LOGL_WARN, "https: %s: hub %s the login of %s for session %s", c->peer,
			answer == AGENT_ANSWER_UNKNOWN_SESSION ? "refused (unknown_session)"
							       : "did not confirm",
			c->signed_in, c->session);
		if (answer == AGENT_ANSWER_UNKNOWN_SESSION)
			respond_gone(c);
		else
			respond_unavailable(c);
	}
	conn_unref(c);
}

/* Reports L to the hub; the browser hears "signed in" only once the hub said
 * ok (on_login_reported). */
static void report_login(struct conn *c, const struct agent_login *l)
{
	const struct https_hooks *k = &c->srv->hooks;

	c->method = l->method;
	c->signed_in = strdup(l->profile->username);
	c->refs++;
	conn_set_state(c, C_REPORT_LOGIN);
	if (!c->signed_in || k->report_login(k->arg, l, on_login_reported, c) < 0) {
		c->refs--;
		login_counted(c, false);
		respond_unavailable(c);
	}
}

static void on_lookup(void *arg, int err, const struct dir_profile *p)
{
	struct conn *c = arg;
	struct https *h = c->srv;

	if (c->state != C_WAIT_DIRECTORY) {
		conn_unref(c);
		return;
	}
	if (err == 0 && p && !p->disabled) {
		struct agent_login l = { c->session, "certificate", p, &c->cert };

		report_login(c, &l);
	} else {
		h->m.logins_cert_fail++;
		log_cert_refusal(c, err == 0 ? "directory user is disabled" :
				 err == DIR_E_NOT_FOUND ? "no single directory user with exactly that name" :
				 dir_code(err));
		respond_form(c, 200, c->session, NULL,
			     err == DIR_E_UNAVAILABLE ? MSG_UNAVAILABLE : MSG_CERT);
	}
	conn_unref(c);
}

static void login_get_checked(struct conn *c);
static void login_post_checked(struct conn *c);

static void on_session_checked(void *arg, enum agent_answer answer)
{
	struct conn *c = arg;

	if (c->state != C_CHECK_SESSION) {
		conn_unref(c);
		return;
	}
	if (answer == AGENT_ANSWER_OK) {
		if (c->parser.method == HTTP_POST)
			login_post_checked(c);
		else
			login_get_checked(c);
	} else if (answer == AGENT_ANSWER_UNKNOWN_SESSION) {
		log_msg(LOGL_INFO, "https: %s: session %s is not pending for this agent; sign-in link refused",
			c->peer, c->session);
		respond_gone(c);
	} else {
		log_msg(LOGL_WARN, "https: %s: hub did not answer about session %s", c->peer,
			c->session);
		respond_unavailable(c);
	}
	conn_unref(c);
}

/* Before anything else (a form, a certificate, the directory) the hub must
 * say c->session is one it made for us and still waits on: otherwise the form
 * would check passwords for anybody who makes up an id. */
static void check_session(struct conn *c)
{
	const struct https_hooks *k = &c->srv->hooks;

	c->refs++;
	conn_set_state(c, C_CHECK_SESSION);
	if (k->check_session(k->arg, c->session, on_session_checked, c) < 0) {
		c->refs--;
		log_msg(LOGL_WARN, "https: %s: hub not connected; sign-in for session %s unavailable",
			c->peer, c->session);
		respond_unavailable(c);
	}
}

static void route_login_get(struct conn *c, const char *session)
{
	if (!session || !session_id_valid(session)) {
		respond_notice(c, 400, "gone", "Sign-in link not valid", MSG_BAD_LINK);
		return;
	}
	c->session = strdup(session);
	if (!c->session) {
		respond_unavailable(c);
		return;
	}
	check_session(c);
}

/* GET /login for a session the hub confirmed: the certificate, else the form. */
static void login_get_checked(struct conn *c)
{
	struct https *h = c->srv;
	int ret;

	if (!c->cert_requested) {
		respond_form(c, 200, c->session, NULL, NULL);
		return;
	}
	ret = tls_server_client_cert(c->tls, (enum tls_certname)h->cfg->https.cert_username, &c->cert);
	if (ret < 0 || !dir_username_valid(c->cert.username, strlen(c->cert.username))) {
		if (c->cert.present) {
			h->m.logins_cert_fail++;
			log_cert_refusal(c, ret < 0 ? c->cert.reason : "name is not a valid username");
		}
		respond_form(c, 200, c->session, NULL, c->cert.present ? MSG_CERT : NULL);
		return;
	}
	if (!h->dir || dir_lookup(h->dir, c->cert.username, on_lookup, c) < 0) {
		h->m.logins_cert_fail++;
		log_cert_refusal(c, "directory request failed");
		respond_form(c, 200, c->session, NULL, MSG_UNAVAILABLE);
		return;
	}
	c->refs++;
	conn_set_state(c, C_WAIT_DIRECTORY);
}

static void wipe_password(struct conn *c)
{
	if (c->password) {
		explicit_bzero(c->password, c->password_len);
		free(c->password);
		c->password = NULL;
	}
	c->password_len = 0;
}

static void on_authenticate(void *arg, int err, const struct dir_profile *p)
{
	struct conn *c = arg;
	struct https *h = c->srv;

	wipe_password(c);
	if (c->state != C_WAIT_DIRECTORY) {
		conn_unref(c);
		return;
	}
	if (err == 0 && p) {
		struct agent_login l = { c->session, "password", p, NULL };

		report_login(c, &l);
	} else {
		h->m.logins_pw_fail++;
		if (err != DIR_E_UNAVAILABLE && err != DIR_E_INTERNAL)
			ip_failed(c);
		log_msg(LOGL_INFO, "https: %s: password login for \"%s\" refused: %s", c->peer,
			c->username, dir_code(err));
		if (err == DIR_E_UNAVAILABLE || err == DIR_E_INTERNAL)
			respond_form(c, 503, c->session, c->username, MSG_UNAVAILABLE);
		else if (err == DIR_E_TOO_MANY_ATTEMPTS)
			respond_form(c, 429, c->session, c->username, MSG_TOO_MANY);
		else
			respond_form(c, 401, c->session, c->username, MSG_FAILED);
	}
	conn_unref(c);
}

/* A failed form login counts against the client's address.  Successes do not
 * clear it: one valid account must not buy an attacker more guesses. */
static void ip_failed(struct conn *c)
{
	if (c->srv->ip_fails)
		(void)dir_throttle_fail(c->srv->ip_fails, c->ip, uv_now(c->srv->loop));
}

/* The body of a POST /login may hold a password. */
static void wipe_body(struct conn *c)
{
	if (c->req.body.p)
		explicit_bzero(c->req.body.p, c->req.body.cap);
}

/* POST /login: the session first (check_session), then login_post_checked. */
static void route_login_post(struct conn *c)
{
	const char *body = c->req.body.p ? c->req.body.p : "";
	size_t blen = c->req.body.len;

	if (!c->req.ctype.p ||
	    strncasecmp(c->req.ctype.p, "application/x-www-form-urlencoded", 33) != 0 ||
	    (c->req.ctype.p[33] != '\0' && c->req.ctype.p[33] != ';') ||
	    form_get(body, blen, "session", &c->session, NULL) < 0 || !session_id_valid(c->session)) {
		wipe_body(c);
		respond_notice(c, 400, "gone", "Sign-in link not valid", MSG_BAD_LINK);
		return;
	}
	check_session(c);
}

/* The password form of a session the hub confirmed. */
static void login_post_checked(struct conn *c)
{
	struct https *h = c->srv;
	const char *body = c->req.body.p ? c->req.body.p : "";
	size_t blen = c->req.body.len;
	char *csrf = NULL;
	int ret;

	if (form_get(body, blen, "csrf", &csrf, NULL) < 0 || !csrf_check(c->session, csrf)) {
		free(csrf);
		wipe_body(c);
		respond_form(c, 403, c->session, NULL, MSG_EXPIRED);
		return;
	}
	free(csrf);
	/* An address over its limit gets no directory work at all. */
	if (h->ip_fails && dir_throttle_blocked(h->ip_fails, c->ip, uv_now(h->loop))) {
		wipe_body(c);
		h->m.logins_pw_throttled++;
		log_msg(LOGL_WARN, "https: %s: password login refused: more than %u failures "
			"from this address in %u s (max_failures_per_ip)", c->peer, h->ip_limit,
			IP_WINDOW_S);
		respond_form(c, 429, c->session, NULL, MSG_TOO_MANY);
		return;
	}
	ret = form_get(body, blen, "username", &c->username, NULL);
	if (ret == 0)
		ret = form_get(body, blen, "password", &c->password, &c->password_len);
	wipe_body(c);
	if (ret < 0 || !dir_username_valid(c->username, strlen(c->username)) || c->password_len == 0) {
		wipe_password(c);
		h->m.logins_pw_fail++;
		ip_failed(c);
		respond_form(c, 401, c->session, c->username && dir_username_valid(c->username,
			     strlen(c->username)) ? c->username : NULL, MSG_FAILED);
		return;
	}
	if (!h->dir || dir_authenticate(h->dir, c->username, c->password, c->password_len,
					on_authenticate, c) < 0) {
		wipe_password(c);
		h->m.logins_pw_fail++;
		respond_form(c, 503, c->session, c->username, MSG_UNAVAILABLE);
		return;
	}
	c->refs++;
	conn_set_state(c, C_WAIT_DIRECTORY);
}

static void route_healthz(struct conn *c)
{
	bool ldap = c->srv->dir && dir_is_up(c->srv->dir);
	bool hub = c->srv->hooks.hub_connected(c->srv->hooks.arg);
	json_t *j = json_pack("{s:s,s:s,s:s}", "status", ldap && hub ? "ok" : "degraded",
			      "ldap", ldap ? "up" : "down", "hub", hub ? "connected" : "disconnected");
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	if (!s) {
		respond_text(c, 500, "internal error\n");
		return;
	}
	respond(c, ldap && hub ? 200 : 503, "application/json", NULL, s, strlen(s));
	free(s);
}

/* The directory's, the hub link's and the certificates' numbers as they are
 * now, rendered into B. */
static int metrics_gather(struct https *h, struct buf *b)
{
	struct metrics_view v = { .m = &h->m, .now = (int64_t)time(NULL) };
	struct dir_server_stats *servers = NULL;
	struct agent_tunnel_stats hub;
	struct tls_server_expiry *expiry = malloc(sizeof *expiry);
	struct dir_stats ds;
	int ret;

	if (h->dir) {
		size_t n = dir_server_count(h->dir);

		if (n && !(servers = calloc(n, sizeof *servers))) {
			free(expiry);
			return -ENOMEM;
		}
		for (size_t i = 0; i < n; i++)
			dir_server_stats(h->dir, i, &servers[i]);
		dir_stats(h->dir, &ds);
		v.dir = &ds;
		v.servers = servers;
		v.n_servers = n;
	}
	if (h->hooks.hub_stats && h->hooks.hub_stats(h->hooks.arg, &hub))
		v.hub = &hub;
	if (expiry && h->tls) {
		tls_server_expiry(h->tls, expiry);
		v.expiry = expiry;
	}
	ret = metrics_render(b, &v);
	free(servers);
	free(expiry);
	return ret;
}

/* /metrics says how many logins fail and which directory server is in use, so
 * only peers in metrics_ranges may read it: by their TCP address, as for the
 * certificate ranges, never by a forwarding header. */
static void route_metrics(struct conn *c)
{
	const struct cfg *cfg = c->srv->cfg;
	struct sockaddr_storage ss;
	struct buf b = { 0 };

	if (net_stream_peer_addr(c->ns, &ss) < 0 ||
	    !cfg_ranges_match(cfg->https.metrics_ranges, cfg->https.n_metrics_ranges,
			      (const struct sockaddr *)&ss)) {
		log_msg(LOGL_INFO, "https: %s: /metrics refused: the address is outside "
			"metrics_ranges", c->peer);
		respond_text(c, 403, "forbidden\n");
		return;
	}
	https_guard_metrics(c->srv);
	if (metrics_gather(c->srv, &b) < 0 || !b.p) {
		buf_wipe(&b);
		respond_text(c, 500, "internal error\n");
		return;
	}
	respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, b.p, b.len);
	buf_wipe(&b);
}

void route_dispatch(struct conn *c)
{
	struct http_parser_url u;
	const char *url = c->req.url.p ? c->req.url.p : "";
	char path[256], *query = NULL, *session = NULL;
	unsigned method = c->parser.method;
	size_t plen;

	c->keep_alive = http_should_keep_alive(&c->parser) != 0;
	c->route = ROUTE_OTHER;
	http_parser_url_init(&u);
	if (url[0] != '/' || http_parser_parse_url(url, c->req.url.len, 0, &u) != 0 ||
	    !(u.field_set & (1 << UF_PATH))) {
		respond_text(c, 400, "bad request\n");
		return;
	}
	plen = u.field_data[UF_PATH].len;
	if (plen >= sizeof(path)) {
		respond_text(c, 404, "not found\n");
		return;
	}
	memcpy(path, url + u.field_data[UF_PATH].off, plen);
	path[plen] = '\0';
	if (strcmp(path, "/login") == 0)
		c->route = ROUTE_LOGIN;
	else if (strcmp(path, "/healthz") == 0)
		c->route = ROUTE_HEALTHZ;
	else if (strcmp(path, "/metrics") == 0)
		c->route = ROUTE_METRICS;
	else if (strcmp(path, "/static/login.css") == 0)
		c->route = ROUTE_STATIC;
	if (c->route == ROUTE_OTHER) {
		respond_text(c, 404, "not found\n");
		return;
	}
	if (c->route == ROUTE_LOGIN && method == HTTP_POST) {
		route_login_post(c);
		return;
	}
	if (method != HTTP_GET && method != HTTP_HEAD) {
		respond(c, 405, "text/plain; charset=utf-8",
			c->route == ROUTE_LOGIN ? "Allow: GET, HEAD, POST\r\n" : "Allow: GET, HEAD\r\n",
			"method not allowed\n", 19);
		return;
	}
	switch (c->route) {
	case ROUTE_LOGIN:
		if (u.field_set & (1 << UF_QUERY)) {
			query = strndup(url + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
			if (query)
				(void)form_get(query, strlen(query), "session", &session, NULL);
		}
		route_login_get(c, session);
		free(query);
		free(session);
		break;
	case ROUTE_HEALTHZ:
		route_healthz(c);
		break;
	case ROUTE_METRICS:
		route_metrics(c);
		break;
	case ROUTE_STATIC:
		respond(c, 200, "text/css; charset=utf-8", NULL, page_css, page_css_len);
		break;
	default:
		break;
	}
}
