/*
 * The front-facing HTTPS server: libuv listeners and connections, GnuTLS over
 * push/pull callbacks, HTTP/1.1 with http-parser, the routes of docs/https.md,
 * and the limits that keep hostile clients from
 * starving real ones.
 *
 * Each connection is one struct conn with an explicit state; conn_set_state()
 * is the only place that changes it and applies what each state implies
 * (timer, reading on or off, closing).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>
#include <jansson.h>

#include "agent/http_req.h"
#include "agent/https.h"
#include "agent/login.h"

/* Limits.  A connection cap ([https] max_connections, lowered by the agent to
 * what the open-file limit allows) keeps file descriptors bounded; when it is
 * reached the oldest connection that is only handshaking or reading a request
 * is evicted, so slow clients cannot lock real users out. */
#define HANDSHAKE_MS 10000	/* TCP accept to finished handshake */
#define REQUEST_MS 10000	/* first byte of a request to its last */
#define IDLE_MS 30000		/* keep-alive wait for the next request */
#define WRITE_MS 15000		/* response fully handed to the kernel */
#define LINGER_MS 2000		/* reading what the client still sends after we close */
#define STOP_MS 5000		/* shutdown: in-flight requests get this long */
#define MAX_CIPHERTEXT (64 * 1024)
#define MAX_PENDING_OUT (256 * 1024)	/* ciphertext produced by one call */
#define READ_BUF (64 * 1024)
#define IP_WINDOW_S 300		/* max_failures_per_ip counts within this */
#define IP_KEYS 8192		/* client addresses the throttle remembers */	/* one per server, shared by every read */

enum conn_state {
	C_HANDSHAKE,		/* TLS handshake in progress */
	C_READ_REQUEST,		/* reading (or waiting for) a request */
	C_CHECK_SESSION,	/* asking the hub whether the session is pending here */
	C_WAIT_DIRECTORY,	/* a directory request is in flight */
	C_REPORT_LOGIN,		/* the login is reported; waiting for the hub's ok */
	C_WRITE_RESPONSE,	/* response queued, waiting for the writes */
	C_LINGER,		/* shut down our side, discarding input until EOF */
	C_CLOSED,		/* handles closing; freed when nothing refers to it */
};

struct conn {
	struct https *srv;
	uv_tcp_t tcp;
	uv_timer_t timer;
	enum conn_state state;
	unsigned refs;			/* open handles + directory requests */
	struct tls_sess *tls;
	bool cert_requested;
	bool keep_alive;
	char peer[INET6_ADDRSTRLEN + 8];
	char ip[INET6_ADDRSTRLEN];	/* the peer's address alone: the throttle key */
	struct buf in;			/* ciphertext not yet pulled by GnuTLS */
	size_t in_off;
	bool eof;
	struct buf rest;		/* plaintext after the current request */
	http_parser parser;
	struct req req;
	enum http_route route;
	struct buf out;
	struct buf wout;		/* ciphertext not yet handed to the stream */
	unsigned writes;		/* uv_write requests in flight */
	/* Password path: kept until the directory answers, then wiped. */
	char *username, *password, *session;
	size_t password_len;
	/* A login waiting for the hub's ok: the directory's name for the user. */
	char *signed_in;
	const char *method;
	struct tls_client_cert cert;
	struct conn *prev, *next;
};

struct listener {
	uv_tcp_t tcp;
	struct https *srv;
};

struct https {
	uv_loop_t *loop;
	const struct cfg *cfg;
	struct dir *dir;
	struct tls_server *tls;
	struct listener *ls;
	size_t n_ls, ls_open;
	struct conn *head, *tail;	/* oldest first */
	size_t n_conns;			/* allocated, including closing ones */
	size_t n_active;		/* not yet C_CLOSED: what the cap counts */
	size_t max_conns;		/* the cap on n_active */
	/* Failed form logins per client address (max_failures_per_ip in
	 * IP_WINDOW_S); NULL when that limit is off. */
	struct dir_throttle *ip_fails;
	unsigned ip_limit;
	struct https_metrics m;
	bool stopping;
	uv_timer_t stop_timer;
	void (*done)(void *arg);
	void *done_arg;
	/* Every read on the loop lands here: on_read copies what GnuTLS has not
	 * consumed into the connection before libuv reads again, so no idle
	 * connection carries a read buffer of its own. */
	char rbuf[READ_BUF];
};

static void conn_set_state(struct conn *c, enum conn_state st);
static void conn_run(struct conn *c);
static void srv_maybe_done(struct https *h);
static int ip_throttle_set(struct https *h, const struct cfg *cfg);
static void https_guard_metrics(struct https *h);
static void ip_failed(struct conn *c);

/* ---- transport: libuv stream <-> GnuTLS ------------------------------------ */

struct wreq {
	uv_write_t req;
	struct conn *c;
	struct buf data;	/* ciphertext; wiped when written */
};

static void conn_unref(struct conn *c)
{
	struct https *h = c->srv;

	if (--c->refs > 0)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		h->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		h->tail = c->prev;
	h->n_conns--;
	tls_free(c->tls);
	buf_wipe(&c->in);
	buf_wipe(&c->rest);
	buf_wipe(&c->out);
	buf_wipe(&c->wout);
	buf_wipe(&c->req.url);
	buf_wipe(&c->req.body);
	buf_wipe(&c->req.ctype);
	free(c->username);
	free(c->session);
	free(c->signed_in);
	if (c->password) {
		explicit_bzero(c->password, c->password_len);
		free(c->password);
	}
	explicit_bzero(c, sizeof(*c));
	free(c);
	srv_maybe_done(h);
}

static void on_write(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;
	struct conn *c = w->c;

	buf_wipe(&w->data);
	free(w);
	c->writes--;
	if (status < 0 && c->state != C_CLOSED) {
		conn_set_state(c, C_CLOSED);
	} else if (c->writes == 0 && c->state == C_WRITE_RESPONSE) {
		if (c->keep_alive && !c->srv->stopping)
			conn_set_state(c, C_READ_REQUEST);
		else
			conn_set_state(c, C_LINGER);
		conn_run(c);
	}
	conn_unref(c);
}

/* GnuTLS's output: collected in c->wout, one record at a time, and handed to
 * the stream by conn_flush() once the call that produced it returns, so a
 * handshake flight or a response with its records goes out in one write (one
 * system call, one TCP segment where it fits) and a push never blocks. */
static ssize_t tls_push(void *ctx, const void *buf, size_t len)
{
	struct conn *c = ctx;

	if (c->state == C_CLOSED || uv_is_closing((uv_handle_t *)&c->tcp)) {
		errno = EPIPE;
		return -1;
	}
	if (c->wout.len + len > MAX_PENDING_OUT || buf_add(&c->wout, buf, len) < 0) {
		errno = ENOMEM;
		return -1;
	}
	return (ssize_t)len;
}

/* Queues what GnuTLS pushed since the last flush as one uv_write.  Returns 0,
 * or -1 when the stream refused it (the caller closes the connection). */
static int conn_flush(struct conn *c)
{
	struct wreq *w;
	uv_buf_t b;

	if (c->wout.len == 0)
		return 0;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -1;
	w->c = c;
	w->data = c->wout;
	c->wout = (struct buf){ 0 };
	b = uv_buf_init(w->data.p, (unsigned)w->data.len);
	if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write) < 0) {
		buf_wipe(&w->data);
		free(w);
		return -1;
	}
	c->writes++;
	c->refs++;
	return 0;
}

/* GnuTLS's input: drains what on_read buffered. */
static ssize_t tls_pull(void *ctx, void *buf, size_t len)
{
	struct conn *c = ctx;
	size_t avail = c->in.len - c->in_off;

	if (avail == 0) {
		if (c->eof)
			return 0;
		errno = EAGAIN;
		return -1;
	}
	if (len > avail)
		len = avail;
	memcpy(buf, c->in.p + c->in_off, len);
	c->in_off += len;
	if (c->in_off == c->in.len)
		c->in.len = c->in_off = 0;
	return (ssize_t)len;
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *b)
{
	struct conn *c = handle->data;

	(void)suggested;
	*b = uv_buf_init(c->srv->rbuf, sizeof(c->srv->rbuf));
}

static void on_read(uv_stream_t *stream, ssize_t n, const uv_buf_t *b)
{
	struct conn *c = stream->data;

	if (c->state == C_CLOSED)
		return;
	if (c->state == C_LINGER) {
		if (n < 0)
			conn_set_state(c, C_CLOSED);
		return;
	}
	if (n < 0) {
		c->eof = true;
	} else if (n > 0) {
		/* Compact before growing: the buffer only holds unread ciphertext. */
		if (c->in_off > 0) {
			memmove(c->in.p, c->in.p + c->in_off, c->in.len - c->in_off);
			c->in.len -= c->in_off;
			c->in_off = 0;
		}
		if (c->in.len + (size_t)n > MAX_CIPHERTEXT || buf_add(&c->in, b->base, (size_t)n) < 0) {
			conn_set_state(c, C_CLOSED);
			return;
		}
	}
	conn_run(c);
	/* Ciphertext GnuTLS consumed leaves nothing to keep between reads. */
	if (c->in.len == 0)
		buf_wipe(&c->in);
	if (c->eof && c->state != C_CLOSED && c->state != C_CHECK_SESSION &&
	    c->state != C_WAIT_DIRECTORY && c->state != C_REPORT_LOGIN &&
	    c->state != C_WRITE_RESPONSE)
		conn_set_state(c, C_CLOSED);
}

/* ---- state ------------------------------------------------------------------ */

static void on_handle_closed(uv_handle_t *handle)
{
	conn_unref(handle->data);
}

static void on_timeout(uv_timer_t *t)
{
	struct conn *c = t->data;

	if (c->state == C_LINGER || c->state == C_WRITE_RESPONSE || c->state == C_HANDSHAKE ||
	    c->state == C_READ_REQUEST) {
		if (c->state != C_LINGER)
			c->srv->m.timeouts++;
		conn_set_state(c, C_CLOSED);
	}
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct conn *c = req->data;

	(void)status;
	free(req);
	conn_unref(c);
}

static void conn_set_state(struct conn *c, enum conn_state st)
{
	enum conn_state old = c->state;

	if (old == C_CLOSED)
		return;
	c->state = st;
	switch (st) {
	case C_HANDSHAKE:
		uv_timer_start(&c->timer, on_timeout, HANDSHAKE_MS, 0);
		break;
	case C_READ_REQUEST:
		/* Waiting for the next request is idle time; the request timer
		 * starts with its first byte (see feed). */
		http_req_reset(&c->req);
		free(c->session);
		free(c->username);
		free(c->signed_in);
		c->session = c->username = c->signed_in = NULL;
		c->method = NULL;
		memset(&c->cert, 0, sizeof(c->cert));
		http_parser_init(&c->parser, HTTP_REQUEST);
		c->parser.data = &c->req;
		uv_timer_start(&c->timer, on_timeout, IDLE_MS, 0);
		uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
		break;
	case C_CHECK_SESSION:
	case C_WAIT_DIRECTORY:
	case C_REPORT_LOGIN:
		/* The directory bounds its own requests (timeout_ms), the tunnel
		 * its requests to the hub (CALLS_TIMEOUT_MS, or the link drops). */
		uv_timer_stop(&c->timer);
		uv_read_stop((uv_stream_t *)&c->tcp);
		break;
	case C_WRITE_RESPONSE:
		uv_timer_start(&c->timer, on_timeout, WRITE_MS, 0);
		uv_read_stop((uv_stream_t *)&c->tcp);
		break;
	case C_LINGER: {
		/* Closing at once while the client still sends would reset the
		 * connection and could destroy the response in flight; shut down
		 * our side and discard input for a moment instead. */
		uv_shutdown_t *sd = malloc(sizeof(*sd));

		if (c->tls)
			tls_bye(c->tls);
		if (!sd || conn_flush(c) < 0 || uv_shutdown(sd, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
			free(sd);
			conn_set_state(c, C_CLOSED);
			break;
		}
		sd->data = c;
		c->refs++;
		uv_timer_start(&c->timer, on_timeout, LINGER_MS, 0);
		uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
		break;
	}
	case C_CLOSED:
		c->srv->n_active--;
		c->srv->m.open_conns = c->srv->n_active;
		uv_read_stop((uv_stream_t *)&c->tcp);
		uv_close((uv_handle_t *)&c->timer, on_handle_closed);
		uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
		break;
	}
}

/* ---- responses -------------------------------------------------------------- */

static const char *reason_phrase(unsigned status)
{
	return http_status_str((enum http_status)status);
}

static const char security_headers[] =
	"Cache-Control: no-store\r\n"
	"Strict-Transport-Security: max-age=31536000\r\n"
	"X-Content-Type-Options: nosniff\r\n"
	"X-Frame-Options: DENY\r\n"
	"Referrer-Policy: no-referrer\r\n"
	"Content-Security-Policy: default-src 'none'; style-src 'self'; form-action 'self'; "
	"frame-ancestors 'none'; base-uri 'none'\r\n";

/* Queues a complete response and moves to C_WRITE_RESPONSE. */
static void respond(struct conn *c, unsigned status, const char *ctype, const char *extra,
		    const char *body, size_t len)
{
	struct https *h = c->srv;
	struct buf head = { 0 };
	bool head_only = c->parser.method == HTTP_HEAD;
	size_t off;

	if (status >= 400 && status != 401 && status != 403 && status != 404 && status != 503)
		c->keep_alive = false;
	if (h->stopping)
		c->keep_alive = false;
	h->m.requests[c->route][metrics_status_slot(status)]++;
	if (buf_printf(&head, "HTTP/1.1 %u %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s%s\r\n",
		       status, reason_phrase(status), ctype, len, security_headers,
		       extra ? extra : "", c->keep_alive ? "" : "Connection: close\r\n") < 0 ||
	    (!head_only && buf_add(&head, body, len) < 0)) {
		buf_wipe(&head);
		conn_set_state(c, C_CLOSED);
		return;
	}
	conn_set_state(c, C_WRITE_RESPONSE);
	for (off = 0; off < head.len;) {
		ssize_t n = tls_send(c->tls, head.p + off, head.len - off);

		if (n <= 0) {
			buf_wipe(&head);
			conn_set_state(c, C_CLOSED);
			return;
		}
		off += (size_t)n;
	}
	buf_wipe(&head);
	if (conn_flush(c) < 0) {
		conn_set_state(c, C_CLOSED);
		return;
	}
	if (c->writes == 0) {
		conn_set_state(c, c->keep_alive ? C_READ_REQUEST : C_LINGER);
		conn_run(c);
	}
}

static void respond_text(struct conn *c, unsigned status, const char *text)
{
	respond(c, status, "text/plain; charset=utf-8", NULL, text, strlen(text));
}

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
	c->method = l->method;
	c->signed_in = strdup(l->profile->username);
	c->refs++;
	conn_set_state(c, C_REPORT_LOGIN);
	if (!c->signed_in || agent_report_login(l, on_login_reported, c) < 0) {
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
	c->refs++;
	conn_set_state(c, C_CHECK_SESSION);
	if (agent_check_session(c->session, on_session_checked, c) < 0) {
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
	bool hub = agent_hub_connected();
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

static void route_metrics(struct conn *c)
{
	struct buf b = { 0 };

	https_guard_metrics(c->srv);
	if (metrics_render(&b, &c->srv->m) < 0 || !b.p) {
		buf_wipe(&b);
		respond_text(c, 500, "internal error\n");
		return;
	}
	respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, b.p, b.len);
	buf_wipe(&b);
}

static void dispatch(struct conn *c)
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


/* Feeds plaintext to the parser.  Returns bytes consumed (the rest belongs to
 * a pipelined request), or -1 with an error response already queued. */
static ssize_t feed(struct conn *c, const char *data, size_t len)
{
	ssize_t n;

	if (len == 0)
		return 0;
	if (!c->req.started) {
		c->req.started = true;
		uv_timer_start(&c->timer, on_timeout, REQUEST_MS, 0);
	}
	n = http_req_feed(&c->req, &c->parser, data, len);
	if (n >= 0)
		return n;
	c->srv->m.bad_requests++;
	c->keep_alive = false;
	c->route = ROUTE_OTHER;
	if (c->req.status == 0 && c->parser.upgrade)
		c->req.status = 400;
	log_msg(LOGL_DEBUG, "https: %s: bad request: %s", c->peer,
		c->req.status ? http_status_str((enum http_status)c->req.status)
			      : http_errno_description(HTTP_PARSER_ERRNO(&c->parser)));
	respond_text(c, c->req.status ? c->req.status : 400, "bad request\n");
	return -1;
}

/* Moves plaintext from the session into the parser until a request is
 * complete or the session has nothing more. */
static void read_requests(struct conn *c)
{
	char buf[8192];

	while (c->state == C_READ_REQUEST) {
		const char *data;
		size_t len;
		ssize_t n, used;

		if (c->rest.len > 0) {
			/* A pipelined request left over from the last read. */
			struct buf rest = c->rest;

			c->rest = (struct buf){ 0 };
			used = feed(c, rest.p, rest.len);
			if (used >= 0 && (size_t)used < rest.len)
				buf_add(&c->rest, rest.p + used, rest.len - (size_t)used);
			buf_wipe(&rest);
			if (used < 0)
				return;
		} else {
			n = tls_recv(c->tls, buf, sizeof(buf));
			if (n == TLS_E_AGAIN)
				return;
			if (n <= 0) {
				conn_set_state(c, C_CLOSED);
				return;
			}
			data = buf;
			len = (size_t)n;
			used = feed(c, data, len);
			if (used >= 0 && (size_t)used < len && buf_add(&c->rest, data + used, len - (size_t)used) < 0)
				used = -1;
			explicit_bzero(buf, len);
			if (used < 0)
				return;
		}
		if (c->req.complete) {
			dispatch(c);
			return;
		}
	}
}

static void conn_run(struct conn *c)
{
	struct https *h = c->srv;
	int ret;

	if (c->state == C_HANDSHAKE) {
		ret = tls_handshake(c->tls);
		if (ret < 0 && ret != TLS_E_AGAIN) {
			h->m.handshakes_fail++;
			log_msg(LOGL_DEBUG, "https: %s: handshake failed: %s", c->peer,
				tls_last_error(c->tls));
			/* The alert goes out before the close (uv_write tries at once). */
			(void)conn_flush(c);
			conn_set_state(c, C_CLOSED);
			return;
		}
		if (ret == 0) {
			h->m.handshakes_ok++;
			if (tls_server_resumed(c->tls))
				h->m.handshakes_resumed++;
			conn_set_state(c, C_READ_REQUEST);
		}
	}
	if (c->state == C_READ_REQUEST)
		read_requests(c);
	if (c->state != C_CLOSED && conn_flush(c) < 0)
		conn_set_state(c, C_CLOSED);
}

/* ---- accepting -------------------------------------------------------------- */

/* Makes room for a new connection by closing the oldest one that is only
 * handshaking or waiting for a request; busy ones are left alone. */
static bool evict_one(struct https *h)
{
	struct conn *c;

	for (c = h->head; c; c = c->next) {
		if (c->state == C_HANDSHAKE || c->state == C_READ_REQUEST || c->state == C_LINGER) {
			if (c->state != C_LINGER)
				h->m.evicted++;
			conn_set_state(c, C_CLOSED);
			return true;
		}
	}
	return false;
}

/* Copies the throttles' counters into the metrics before they are shown. */
static void https_guard_metrics(struct https *h)
{
	struct dir_guard_stats g = { 0 };
	struct dir_throttle_stats t = { 0 };

	if (h->dir)
		dir_guard_stats(h->dir, &g);
	if (h->ip_fails)
		dir_throttle_stats(h->ip_fails, &t);
	h->m.guard_refused = g.refused;
	h->m.guard_hidden = g.hidden;
	h->m.ip_keys = t.entries;
}

/* OUT gets "ADDR:PORT" for logs; IP the address alone, an IPv4-mapped IPv6
 * address as plain IPv4, so one client has one key in the per-address throttle
 * whichever listener it came in on. */
static void peer_text(const struct sockaddr_storage *ss, char *out, size_t len, char *ip,
		      size_t iplen)
{
	char a[INET6_ADDRSTRLEN] = "?";

	snprintf(ip, iplen, "?");
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &in->sin_addr, a, sizeof(a));
		snprintf(out, len, "%s:%u", a, ntohs(in->sin_port));
		snprintf(ip, iplen, "%s", a);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &in6->sin6_addr, a, sizeof(a));
		snprintf(out, len, "[%s]:%u", a, ntohs(in6->sin6_port));
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], ip, (socklen_t)iplen);
		else
			snprintf(ip, iplen, "%s", a);
	} else {
		snprintf(out, len, "?");
	}
}

static void on_connection(uv_stream_t *server, int status)
{
	struct listener *l = server->data;
	struct https *h = l->srv;
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	struct conn *c;
	bool room;

	if (status < 0 || h->stopping)
		return;
	room = h->n_active < h->max_conns || evict_one(h);
	c = calloc(1, sizeof(*c));
	if (!c)
		return;
	c->srv = h;
	if (uv_tcp_init(h->loop, &c->tcp) < 0) {
		free(c);
		return;
	}
	c->tcp.data = c;
	c->refs = 1;
	/* Linked before anything can fail so conn_unref() always unlinks. */
	c->prev = h->tail;
	if (h->tail)
		h->tail->next = c;
	else
		h->head = c;
	h->tail = c;
	h->n_conns++;
	h->n_active++;
	uv_timer_init(h->loop, &c->timer);
	c->timer.data = c;
	c->refs++;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
		conn_set_state(c, C_CLOSED);
		return;
	}
	if (!room) {
		conn_set_state(c, C_CLOSED);
		return;
	}
	h->m.open_conns = h->n_active;
	uv_tcp_nodelay(&c->tcp, 1);
	/* The decision to ask for a certificate rests on the TCP peer address
	 * alone, made before the handshake; no header can change it. */
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sslen) < 0) {
		conn_set_state(c, C_CLOSED);
		return;
	}
	peer_text(&ss, c->peer, sizeof(c->peer), c->ip, sizeof(c->ip));
	c->cert_requested = cfg_ranges_match(h->cfg->https.ranges, h->cfg->https.n_ranges,
					     (const struct sockaddr *)&ss);
	if (tls_server_session(h->tls, c->cert_requested, &c->tls) < 0) {
		log_msg(LOGL_ERROR, "https: %s: cannot create a TLS session", c->peer);
		conn_set_state(c, C_CLOSED);
		return;
	}
	tls_set_transport(c->tls, c, tls_push, tls_pull);
	conn_set_state(c, C_HANDSHAKE);
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* "HOST:PORT" or "[V6]:PORT", numeric addresses only. */
static int parse_listen(const char *text, struct sockaddr_storage *ss)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon, *port;
	unsigned long p;
	char *end;
	size_t hl;

	if (text[0] == '[') {
		const char *rb = strchr(text, ']');

		if (!rb || rb[1] != ':')
			return -EINVAL;
		hl = (size_t)(rb - text - 1);
		if (hl >= sizeof(host))
			return -EINVAL;
		memcpy(host, text + 1, hl);
		port = rb + 2;
	} else {
		colon = strrchr(text, ':');
		if (!colon)
			return -EINVAL;
		hl = (size_t)(colon - text);
		if (hl >= sizeof(host))
			return -EINVAL;
		memcpy(host, text, hl);
		port = colon + 1;
	}
	host[hl] = '\0';
	errno = 0;
	p = strtoul(port, &end, 10);
	if (errno || *end || end == port || p == 0 || p > 65535)
		return -EINVAL;
	if (uv_ip4_addr(host, (int)p, (struct sockaddr_in *)ss) == 0)
		return 0;
	if (uv_ip6_addr(host, (int)p, (struct sockaddr_in6 *)ss) == 0)
		return 0;
	return -EINVAL;
}

static void files_from_cfg(const struct cfg *cfg, struct tls_server_files *f)
{
	f->cert_file = cfg->https.cert_file;
	f->key_file = cfg->https.key_file;
	f->client_ca_file = cfg->https.client_ca_file;
	f->crl_file = cfg->https.crl_file;
	f->client_verify_depth = cfg->https.client_verify_depth;
}

static void on_listener_closed(uv_handle_t *handle)
{
	struct listener *l = handle->data;

	l->srv->ls_open--;
	srv_maybe_done(l->srv);
}

static void on_stop_timer_closed(uv_handle_t *handle)
{
	struct https *h = handle->data;
	void (*done)(void *) = h->done;
	void *arg = h->done_arg;

	tls_server_free(h->tls);
	dir_throttle_free(h->ip_fails);
	free(h->ls);
	free(h);
	if (done)
		done(arg);
}

static void srv_maybe_done(struct https *h)
{
	if (!h->stopping || h->n_conns > 0 || h->ls_open > 0 ||
	    uv_is_closing((uv_handle_t *)&h->stop_timer))
		return;
	uv_close((uv_handle_t *)&h->stop_timer, on_stop_timer_closed);
}

int https_start(uv_loop_t *loop, const struct cfg *cfg, struct dir *dir, struct https **out)
{
	struct tls_server_files f;
	struct https *h;
	char err[512];
	size_t i;
	int ret;

	*out = NULL;
	if (csrf_init() < 0)
		return -EIO;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->loop = loop;
	h->cfg = cfg;
	h->dir = dir;
	h->max_conns = cfg->https.max_connections;
	if (ip_throttle_set(h, cfg) < 0) {
		free(h);
		return -ENOMEM;
	}
	files_from_cfg(cfg, &f);
	ret = tls_server_new(&f, &h->tls, err, sizeof(err));
	if (ret < 0) {
		log_msg(LOGL_ERROR, "https: %s", err);
		free(h);
		return -EINVAL;
	}
	uv_timer_init(loop, &h->stop_timer);
	h->stop_timer.data = h;
	h->ls = calloc(cfg->https.n_listen ? cfg->https.n_listen : 1, sizeof(*h->ls));
	if (!h->ls) {
		ret = -ENOMEM;
		goto fail;
	}
	for (i = 0; i < cfg->https.n_listen; i++) {
		struct listener *l = &h->ls[i];
		struct sockaddr_storage ss;

		if (parse_listen(cfg->https.listen[i], &ss) < 0) {
			log_msg(LOGL_ERROR, "https: listen %s: not a numeric HOST:PORT",
				cfg->https.listen[i]);
			ret = -EINVAL;
			goto fail;
		}
		uv_tcp_init(loop, &l->tcp);
		l->tcp.data = l;
		l->srv = h;
		h->n_ls++;
		h->ls_open++;
		ret = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss,
				  ss.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);
		if (ret == 0)
			ret = uv_listen((uv_stream_t *)&l->tcp, 511, on_connection);
		if (ret < 0) {
			log_msg(LOGL_ERROR, "https: listen %s: %s", cfg->https.listen[i], uv_strerror(ret));
			goto fail;
		}
		log_msg(LOGL_INFO, "https: listening on %s (certificate serial %s)",
			cfg->https.listen[i], tls_server_serial(h->tls));
	}
	*out = h;
	return 0;
fail:
	https_stop(h, NULL, NULL);
	return ret < 0 ? ret : -EINVAL;
}

/* Follows [https] max_failures_per_ip; the counts survive a reload that keeps
 * the same limit, so a reload never hands an attacker a fresh budget. */
static int ip_throttle_set(struct https *h, const struct cfg *cfg)
{
	unsigned limit = cfg->https.max_failures_per_ip;

	if (h->ip_fails && limit == h->ip_limit)
		return 0;
	dir_throttle_free(h->ip_fails);
	h->ip_fails = NULL;
	h->ip_limit = limit;
	if (limit == 0)
		return 0;
	h->ip_fails = dir_throttle_new(IP_KEYS, limit, IP_WINDOW_S);
	return h->ip_fails ? 0 : -ENOMEM;
}

int https_reload(struct https *h, const struct cfg *cfg)
{
	struct tls_server_files f;
	char err[512];
	int ret;

	files_from_cfg(cfg, &f);
	ret = tls_server_reload(h->tls, &f, err, sizeof(err));
	if (ret < 0) {
		log_msg(LOGL_ERROR, "https: reload refused, keeping the current certificates: %s", err);
		return -EINVAL;
	}
	h->cfg = cfg;
	if (ip_throttle_set(h, cfg) < 0)
		log_msg(LOGL_ERROR, "https: out of memory: max_failures_per_ip is off until the next reload");
	log_msg(LOGL_INFO, "https: certificates reloaded (certificate serial %s)",
		tls_server_serial(h->tls));
	return 0;
}

void https_set_dir(struct https *h, struct dir *dir)
{
	h->dir = dir;
}

void https_set_max_conns(struct https *h, size_t max)
{
	/* Lowering the cap closes nothing by itself: until enough connections
	 * end, every new client is treated as arriving at the cap. */
	h->max_conns = max ? max : 1;
}

static void on_stop_timeout(uv_timer_t *t)
{
	struct https *h = t->data;
	struct conn *c, *next;

	for (c = h->head; c; c = next) {
		next = c->next;
		conn_set_state(c, C_CLOSED);
	}
}

void https_stop(struct https *h, void (*done)(void *arg), void *arg)
{
	struct conn *c, *next;
	size_t i;

	h->stopping = true;
	h->done = done;
	h->done_arg = arg;
	for (i = 0; i < h->n_ls; i++)
		if (!uv_is_closing((uv_handle_t *)&h->ls[i].tcp))
			uv_close((uv_handle_t *)&h->ls[i].tcp, on_listener_closed);
	/* Idle connections go now; those with a request in flight finish it
	 * (their response carries Connection: close), bounded by STOP_MS. */
	for (c = h->head; c; c = next) {
		next = c->next;
		if (c->state == C_HANDSHAKE || (c->state == C_READ_REQUEST && !c->req.started))
			conn_set_state(c, C_CLOSED);
	}
	uv_timer_start(&h->stop_timer, on_stop_timeout, STOP_MS, 0);
	srv_maybe_done(h);
}
