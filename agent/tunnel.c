/*
 * The tunnel to the identity hub; see tunnel.h and docs/protocol.md.
 *
 * struct agent_tunnel is the one long-lived connection object; its state moves
 * RESOLVING -> CONNECTING -> TLS_HANDSHAKE -> UPGRADING -> OPEN, and from any of
 * them to CLOSING (orderly) or BACKOFF (failure), then RESOLVING again; only
 * tun_set_state() changes it.  Each dial gets a fresh struct link (the TCP
 * handle, the TLS session, wslay) and a new generation number: a directory
 * answer is sent only if its request came in on the link that is still open,
 * so nothing is ever answered on a later link.
 *
 * Bytes flow socket -> link.in[] -> TLS pull -> http-parser or wslay, and wslay
 * -> TLS push -> uv_write.  Bounded: in[] is fixed (reading pauses when full),
 * wslay is not asked to send beyond OUT_HIGH unwritten bytes, a hub message is
 * at most TUNNEL_MAX_MSG, TUNNEL_MAX_INFLIGHT requests at the directory, and a
 * hub that lets TUNNEL_MAX_QUEUED bytes pile up unread is dropped.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wslay/wslay.h>
#include <jansson.h>

#include "agent/tunnel.h"
#include "agent/tunnel_msg.h"
#include "tls/tls.h"

#define IN_CAP		(64u << 10)
#define OUT_HIGH	(1u << 20)
#define RESPONSE_MAX	(16u << 10)
#define CLOSING_MS	3000
#define WS_GUID		"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum tun_state {
	T_RESOLVING,
	T_CONNECTING,
	T_TLS_HANDSHAKE,
	T_UPGRADING,
	T_OPEN,
	T_CLOSING,	/* close frame and close_notify sent; waiting for the socket */
	T_BACKOFF,	/* waiting, with jitter, to dial again */
	T_STOPPED,
};

static const char *const state_names[] = {
	"resolving", "connecting", "tls-handshake", "upgrading", "open", "closing",
	"backoff", "stopped",
};

enum { R_UPGRADE, R_CONNECTION, R_ACCEPT, R_N };
static const char *const resp_headers[R_N] = { "upgrade", "connection", "sec-websocket-accept" };

/* The upgrade response as http-parser delivers it. */
struct response {
	char field[32];
	size_t field_len;
	bool field_long, in_value, done;
	int cur;
	char val[R_N][256];
	size_t val_len[R_N];
	size_t total;
};

/* One dial: freed in its handle's close callback, after the tunnel let go. */
struct link {
	struct agent_tunnel *t;	/* NULL once the tunnel dropped this link */
	uv_tcp_t tcp;
	uv_connect_t connect;
	uv_shutdown_t shut;
	struct tls_sess *tls;
	bool tls_done;
	uint8_t in[IN_CAP];
	size_t in_off, in_len;
	bool eof, read_paused;
	size_t out_pending;
	http_parser parser;
	struct response resp;
	uint8_t *early;		/* frames that arrived with the 101 */
	size_t early_off, early_len;
	wslay_event_context_ptr ws;
	bool in_ws, fatal;
	char why[160];		/* why a callback failed the link */
};

struct agent_tunnel {
	uv_loop_t *loop;
	const struct cfg *cfg;
	struct dir *dir;
	enum tun_state state;
	uv_timer_t timer;	/* handshake deadline, heartbeat, backoff: one at a time */
	uv_getaddrinfo_t gai;
	bool gai_busy, timer_closed;
	struct addrinfo *addrs;	/* while CONNECTING: every address of the host */
	struct addrinfo *next_addr;	/* the one to try when this one fails */
	struct link *link;
	unsigned gen;
	unsigned attempt;
	size_t inflight;
	uint64_t open_ms, ping_ms;
	bool awaiting_pong;
	struct calls calls;	/* our session_check / login requests awaiting a result */
	char host[256], port[8], path[1024];
	char accept[32];	/* the Sec-WebSocket-Accept we expect */
	void (*done)(void *arg);
	void *done_arg;
};

/* The daemon runs one tunnel; login.c reaches it through agent_tunnel_current(). */
static struct agent_tunnel *current;

struct wbuf {
	uv_write_t req;
	struct link *l;
	size_t len;
	char data[];
};

enum req_kind { Q_AUTH, Q_LOOKUP, Q_CHANGE, Q_USERS, Q_GROUPS };

struct treq {
	struct agent_tunnel *t;
	unsigned gen;
	enum req_kind kind;
	char id[129];
	char client_ip[INET6_ADDRSTRLEN];	/* authenticate: the end user's address, or "" */
};

static void tun_set_state(struct agent_tunnel *t, enum tun_state st);
static void tun_pump(struct agent_tunnel *t);
static void tun_flush(struct agent_tunnel *t);

static void tun_fail(struct agent_tunnel *t, enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- lifetime ------------------------------------------------------------- */

static void tun_maybe_free(struct agent_tunnel *t)
{
	if (t->state == T_STOPPED && t->timer_closed && !t->gai_busy && t->inflight == 0)
		free(t);
}

static void link_free(uv_handle_t *h)
{
	struct link *l = h->data;

	if (l->ws)
		wslay_event_context_free(l->ws);
	if (l->tls)
		tls_free(l->tls);
	if (l->early)
		explicit_bzero(l->early, l->early_len);
	free(l->early);
	explicit_bzero(l->in, sizeof(l->in));
	free(l);
}

/* Lets go of the current link at once; its callbacks find l->t NULL. */
static void link_drop(struct agent_tunnel *t)
{
	struct link *l = t->link;

	if (!l)
		return;
	t->link = NULL;
	l->t = NULL;
	uv_close((uv_handle_t *)&l->tcp, link_free);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct link *l = req->data;

	(void)status;
	if (l->t && l->t->link == l)
		tun_set_state(l->t, T_BACKOFF);
}

/* ---- transport: libuv <-> TLS ----------------------------------------------- */

static void on_write(uv_write_t *req, int status)
{
	struct wbuf *w = (struct wbuf *)req;
	struct link *l = w->l;

	l->out_pending -= w->len;
	explicit_bzero(w->data, w->len);
	free(w);
	if (!l->t)
		return;
	if (status < 0) {
		tun_fail(l->t, LOGL_WARN, "hub: write failed: %s", uv_strerror(status));
		return;
	}
	tun_flush(l->t);
}

static ssize_t tls_push(void *ctx, const void *buf, size_t len)
{
	struct link *l = ctx;
	struct wbuf *w;
	uv_buf_t b;

	w = malloc(sizeof(*w) + len);
	if (!w) {
		errno = ENOMEM;
		return -1;
	}
	w->l = l;
	w->len = len;
	memcpy(w->data, buf, len);
	b = uv_buf_init(w->data, (unsigned)len);
	if (uv_is_closing((uv_handle_t *)&l->tcp) ||
	    uv_write(&w->req, (uv_stream_t *)&l->tcp, &b, 1, on_write) < 0) {
		free(w);
		errno = EPIPE;
		return -1;
	}
	l->out_pending += len;
	return (ssize_t)len;
}

static ssize_t tls_pull(void *ctx, void *buf, size_t len)
{
	struct link *l = ctx;

	if (l->in_len == 0) {
		if (l->eof)
			return 0;
		errno = EAGAIN;
		return -1;
	}
	if (len > l->in_len)
		len = l->in_len;
	memcpy(buf, l->in + l->in_off, len);
	l->in_off += len;
	l->in_len -= len;
	if (l->in_len == 0)
		l->in_off = 0;
	return (ssize_t)len;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct link *l = h->data;

	(void)hint;
	if (l->in_off && l->in_len)
		memmove(l->in, l->in + l->in_off, l->in_len);
	l->in_off = 0;
	*buf = uv_buf_init((char *)l->in + l->in_len, (unsigned)(IN_CAP - l->in_len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct link *l = s->data;

	(void)buf;
	if (!l->t)
		return;
	if (n == UV_ENOBUFS) {
		uv_read_stop(s);
		l->read_paused = true;
		return;
	}
	if (n < 0) {
		l->eof = true;
		uv_read_stop(s);
	} else {
		l->in_len += (size_t)n;
	}
	tun_pump(l->t);
}

/* ---- state ------------------------------------------------------------------ */

static void tun_fail(struct agent_tunnel *t, enum log_level lvl, const char *fmt, ...)
{
	va_list ap;

	if (t->state == T_STOPPED || t->state == T_BACKOFF)
		return;
	va_start(ap, fmt);
	log_vmsg(lvl, fmt, ap);
	va_end(ap);
	tun_set_state(t, T_BACKOFF);
}

static void on_timer(uv_timer_t *timer);

/* Full jitter: a uniformly random delay in [MIN, min(MAX, MIN * 2^attempt)], so
 * that agents cut off together do not dial back together. */
static uint64_t backoff_ms(struct agent_tunnel *t)
{
	uint64_t cap = TUNNEL_BACKOFF_MIN_MS;
	uint32_t r = 0;
	unsigned i;

	for (i = 0; i < t->attempt && cap < TUNNEL_BACKOFF_MAX_MS; i++)
		cap *= 2;
	if (cap > TUNNEL_BACKOFF_MAX_MS)
		cap = TUNNEL_BACKOFF_MAX_MS;
	if (t->attempt < 32)
		t->attempt++;
	gnutls_rnd(GNUTLS_RND_NONCE, &r, sizeof(r));
	return TUNNEL_BACKOFF_MIN_MS + r % (cap - TUNNEL_BACKOFF_MIN_MS + 1);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res);
static void on_connected(uv_connect_t *req, int status);
static void addrs_free(struct agent_tunnel *t);
static int send_upgrade(struct agent_tunnel *t);
static int send_hello(struct agent_tunnel *t);

/* Splits [hub] url (wss://HOST[:PORT]/PATH, checked by cfg) into t->host,
 * t->port and t->path. */
static int parse_url(struct agent_tunnel *t)
{
	const char *url = t->cfg->hub.url;
	struct http_parser_url u;

	http_parser_url_init(&u);
	if (http_parser_parse_url(url, strlen(url), 0, &u) != 0 || !(u.field_set & (1 << UF_HOST)) ||
	    u.field_data[UF_HOST].len >= sizeof(t->host) ||
	    (u.field_set & (1 << UF_PATH) && u.field_data[UF_PATH].len >= sizeof(t->path)))
		return -EINVAL;
	snprintf(t->host, sizeof(t->host), "%.*s", (int)u.field_data[UF_HOST].len,
		 url + u.field_data[UF_HOST].off);
	snprintf(t->port, sizeof(t->port), "%u", u.port ? u.port : 443);
	if (u.field_set & (1 << UF_PATH))
		snprintf(t->path, sizeof(t->path), "%.*s", (int)u.field_data[UF_PATH].len,
			 url + u.field_data[UF_PATH].off);
	else
		snprintf(t->path, sizeof(t->path), "/");
	return 0;
}

/* The one place the state changes; each state's entry actions are here. */
static void tun_set_state(struct agent_tunnel *t, enum tun_state st)
{
	static const struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	enum tun_state old = t->state;
	struct link *l = t->link;
	uint64_t delay;
	int rc;

	if (old == T_STOPPED)
		return;
	log_msg(LOGL_DEBUG, "hub: tunnel %s -> %s", state_names[old], state_names[st]);
	t->state = st;
	if (old == T_OPEN && st != T_OPEN) {
		uint64_t up = uv_now(t->loop) - t->open_ms;

		log_msg(LOGL_WARN, "hub: disconnected from %s:%s after %llu s", t->host, t->port,
			(unsigned long long)(up / 1000));
		if (up >= TUNNEL_STABLE_S * 1000u)
			t->attempt = 0;
		/* Their answers could only come on this link: the browsers waiting
		 * for them are told now rather than at the timeout. */
		calls_fail_all(&t->calls);
	}
	switch (st) {
	case T_RESOLVING:
		if (parse_url(t) < 0) {
			tun_fail(t, LOGL_ERROR, "hub: url %s cannot be dialled", t->cfg->hub.url);
			return;
		}
		uv_timer_start(&t->timer, on_timer, TUNNEL_HANDSHAKE_S * 1000u, 0);
		rc = uv_getaddrinfo(t->loop, &t->gai, on_resolved, t->host, t->port, &hints);
		if (rc < 0) {
			tun_fail(t, LOGL_WARN, "hub: resolving %s: %s", t->host, uv_strerror(rc));
			return;
		}
		t->gai_busy = true;
		break;
	case T_CONNECTING:
		/* Entered from on_resolved() with the link already made. */
		break;
	case T_TLS_HANDSHAKE: {
		struct tls_client_opts o = {
			.ca_file = t->cfg->hub.ca_file,
			.hostname = t->host,
		};

		addrs_free(t);
		rc = tls_client_new(&o, &l->tls);
		if (rc < 0) {
			tun_fail(t, LOGL_ERROR, "hub: TLS setup: %s", tls_strerror(rc));
			return;
		}
		tls_set_transport(l->tls, l, tls_push, tls_pull);
		uv_tcp_nodelay(&l->tcp, 1);
		uv_read_start((uv_stream_t *)&l->tcp, on_alloc, on_read);
		tun_pump(t);
		break;
	}
	case T_UPGRADING:
		l->tls_done = true;
		if (send_upgrade(t) < 0)
			tun_fail(t, LOGL_ERROR, "hub: cannot send the upgrade request");
		break;
	case T_OPEN:
		t->open_ms = t->ping_ms = uv_now(t->loop);
		t->awaiting_pong = false;
		uv_timer_start(&t->timer, on_timer, 1000, 1000);
		log_msg(LOGL_INFO, "hub: connected to %s:%s (%s)", t->host, t->port,
			tls_version(l->tls));
		if (send_hello(t) < 0)
			tun_fail(t, LOGL_ERROR, "hub: cannot send hello");
		break;
	case T_CLOSING:
		/* The close frames are exchanged (or ours is sent): say close_notify,
		 * let the socket drain, and dial again once it has. */
		if (l->tls_done)
			tls_bye(l->tls);
		l->shut.data = l;
		uv_timer_start(&t->timer, on_timer, CLOSING_MS, 0);
		if (uv_shutdown(&l->shut, (uv_stream_t *)&l->tcp, on_shutdown) < 0)
			tun_set_state(t, T_BACKOFF);
		break;
	case T_BACKOFF:
		link_drop(t);
		addrs_free(t);
		if (t->gai_busy)
			uv_cancel((uv_req_t *)&t->gai);
		delay = backoff_ms(t);
		log_msg(LOGL_INFO, "hub: dialling %s:%s again in %llu ms", t->host, t->port,
			(unsigned long long)delay);
		uv_timer_start(&t->timer, on_timer, delay, 0);
		break;
	case T_STOPPED:
		break;
	}
}

static void on_timer(uv_timer_t *timer)
{
	struct agent_tunnel *t = timer->data;
	uint64_t now = uv_now(t->loop);

	switch (t->state) {
	case T_BACKOFF:
		/* A cancelled lookup still owns t->gai until its callback ran. */
		if (t->gai_busy)
			uv_timer_start(&t->timer, on_timer, 100, 0);
		else
			tun_set_state(t, T_RESOLVING);
		break;
	case T_OPEN:
		calls_expire(&t->calls, now);
		if (t->state != T_OPEN)
			break;
		if (t->awaiting_pong && now - t->ping_ms > TUNNEL_PONG_S * 1000u) {
			tun_fail(t, LOGL_WARN, "hub: no pong within %d s; link is dead", TUNNEL_PONG_S);
		} else if (!t->awaiting_pong && now - t->ping_ms >= TUNNEL_PING_S * 1000u) {
			struct wslay_event_msg ping = { WSLAY_PING, NULL, 0 };

			t->ping_ms = now;
			t->awaiting_pong = true;
			wslay_event_queue_msg(t->link->ws, &ping);
			tun_flush(t);
		}
		break;
	case T_CLOSING:
		tun_set_state(t, T_BACKOFF);
		break;
	case T_STOPPED:
		break;
	default:
		tun_fail(t, LOGL_WARN, "hub: %s:%s: no connection within %d s (%s)", t->host,
			 t->port, TUNNEL_HANDSHAKE_S, state_names[t->state]);
		break;
	}
}

static void addrs_free(struct agent_tunnel *t)
{
	uv_freeaddrinfo(t->addrs);
	t->addrs = t->next_addr = NULL;
}

/* Connects a new link to the next address of the host: a name with IPv6 and
 * IPv4 addresses must not fail for good on the first one that refuses. */
static int dial_next(struct agent_tunnel *t)
{
	struct addrinfo *ai;
	struct link *l;
	int rc = -ECONNREFUSED;

	link_drop(t);
	while ((ai = t->next_addr)) {
		t->next_addr = ai->ai_next;
		l = calloc(1, sizeof(*l));
		if (!l)
			return -ENOMEM;
		l->t = t;
		l->tcp.data = l;
		l->connect.data = l;
		uv_tcp_init(t->loop, &l->tcp);
		t->link = l;
		t->gen++;
		rc = uv_tcp_connect(&l->connect, &l->tcp, ai->ai_addr, on_connected);
		if (rc == 0)
			return 0;
		link_drop(t);
	}
	return rc;
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct agent_tunnel *t = req->data;
	int rc;

	t->gai_busy = false;
	if (t->state != T_RESOLVING) {
		uv_freeaddrinfo(res);
		tun_maybe_free(t);
		return;
	}
	if (status < 0 || !res) {
		uv_freeaddrinfo(res);
		tun_fail(t, LOGL_WARN, "hub: resolving %s: %s", t->host, uv_strerror(status));
		return;
	}
	t->addrs = t->next_addr = res;
	rc = dial_next(t);
	if (rc < 0) {
		tun_fail(t, LOGL_WARN, "hub: connecting to %s:%s: %s", t->host, t->port,
			 uv_strerror(rc));
		return;
	}
	tun_set_state(t, T_CONNECTING);
}

static void on_connected(uv_connect_t *req, int status)
{
	struct link *l = req->data;
	struct agent_tunnel *t = l->t;

	if (!t)
		return;
	if (status < 0) {
		log_msg(LOGL_DEBUG, "hub: connecting to %s:%s: %s", t->host, t->port,
			uv_strerror(status));
		if (!t->next_addr || (status = dial_next(t)) < 0)
			tun_fail(t, LOGL_WARN, "hub: connecting to %s:%s: %s", t->host, t->port,
				 uv_strerror(status));
		return;
	}
	tun_set_state(t, T_TLS_HANDSHAKE);
}

/* ---- the upgrade --------------------------------------------------------------- */

static int send_upgrade(struct agent_tunnel *t)
{
	struct link *l = t->link;
	uint8_t nonce[16], digest[20];
	gnutls_datum_t d = { nonce, sizeof(nonce) }, key = { NULL, 0 }, acc = { NULL, 0 };
	char errbuf[256], cat[64 + sizeof(WS_GUID)], *token = NULL, *req = NULL;
	size_t token_len = 0;
	bool v6 = strchr(t->host, ':') != NULL;	/* an IPv6 literal goes in brackets */
	int n, rc = -EIO;

	if (cfg_secret_read(t->cfg->hub.token_file, &token, &token_len, errbuf, sizeof(errbuf)) < 0) {
		log_msg(LOGL_ERROR, "hub: token_file: %s", errbuf);
		return -EACCES;
	}
	if (gnutls_rnd(GNUTLS_RND_NONCE, nonce, sizeof(nonce)) < 0 ||
	    gnutls_base64_encode2(&d, &key) < 0)
		goto out;
	n = snprintf(cat, sizeof(cat), "%.*s%s", (int)key.size, (const char *)key.data, WS_GUID);
	d.data = digest;
	d.size = sizeof(digest);
	if (gnutls_hash_fast(GNUTLS_DIG_SHA1, cat, (size_t)n, digest) < 0 ||
	    gnutls_base64_encode2(&d, &acc) < 0)
		goto out;
	snprintf(t->accept, sizeof(t->accept), "%.*s", (int)acc.size, (const char *)acc.data);
	n = asprintf(&req,
		     "GET %s HTTP/1.1\r\nHost: %s%s%s:%s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		     "Sec-WebSocket-Key: %.*s\r\nSec-WebSocket-Version: 13\r\n"
		     "Authorization: Bearer %.*s\r\nUser-Agent: dirbridge/%s\r\n\r\n",
		     t->path, v6 ? "[" : "", t->host, v6 ? "]" : "", t->port, (int)key.size, (const char *)key.data,
		     (int)token_len, token, DIRBRIDGE_VERSION);
	if (n < 0) {
		req = NULL;
		goto out;
	}
	memset(&l->resp, 0, sizeof(l->resp));
	http_parser_init(&l->parser, HTTP_RESPONSE);
	l->parser.data = l;
	if (tls_send(l->tls, req, (size_t)n) == n)
		rc = 0;
	explicit_bzero(req, (size_t)n);
out:
	free(req);
	cfg_secret_free(token, token_len);
	gnutls_free(key.data);
	gnutls_free(acc.data);
	return rc;
}

static int resp_field(http_parser *p, const char *at, size_t len)
{
	struct response *r = &((struct link *)p->data)->resp;

	if (r->in_value) {
		r->in_value = false;
		r->field_len = 0;
		r->field_long = false;
	}
	if (len > sizeof(r->field) - 1 - r->field_len) {
		r->field_long = true;
		return 0;
	}
	memcpy(r->field + r->field_len, at, len);
	r->field_len += len;
	return 0;
}

static int resp_value(http_parser *p, const char *at, size_t len)
{
	struct response *r = &((struct link *)p->data)->resp;
	int i;

	if (!r->in_value) {
		r->in_value = true;
		r->cur = -1;
		r->field[r->field_len] = '\0';
		for (i = 0; i < R_N && !r->field_long; i++)
			if (strcasecmp(r->field, resp_headers[i]) == 0)
				r->cur = i;
	}
	if (r->cur < 0)
		return 0;
	if (len > sizeof(r->val[0]) - 1 - r->val_len[r->cur])
		return 1;
	memcpy(r->val[r->cur] + r->val_len[r->cur], at, len);
	r->val_len[r->cur] += len;
	r->val[r->cur][r->val_len[r->cur]] = '\0';
	return 0;
}

static int resp_complete(http_parser *p)
{
	((struct link *)p->data)->resp.done = true;
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings resp_settings = {
	.on_header_field = resp_field,
	.on_header_value = resp_value,
	.on_message_complete = resp_complete,
};

static bool has_token(const char *list, const char *token)
{
	char copy[256], *save = NULL, *tok;

	snprintf(copy, sizeof(copy), "%s", list);
	for (tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save))
		if (strcasecmp(tok, token) == 0)
			return true;
	return false;
}

static ssize_t ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *ud);
static ssize_t ws_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
		       void *ud);
static int ws_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *ud);
static void ws_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *m,
		   void *ud);

static void upgrade_done(struct agent_tunnel *t)
{
	static const struct wslay_event_callbacks cbs = {
		.recv_callback = ws_recv,
		.send_callback = ws_send,
		.genmask_callback = ws_genmask,
		.on_msg_recv_callback = ws_msg,
	};
	struct link *l = t->link;
	struct response *r = &l->resp;
	unsigned status = l->parser.status_code;

	if (status == 401 || status == 403) {
		tun_fail(t, LOGL_ERROR, "hub: %s:%s refused the token (HTTP %u); check [hub] token_file",
			 t->host, t->port, status);
		return;
	}
	if (status != 101 || !has_token(r->val[R_UPGRADE], "websocket") ||
	    !has_token(r->val[R_CONNECTION], "upgrade")) {
		tun_fail(t, LOGL_ERROR, "hub: %s:%s%s answered HTTP %u, not a WebSocket upgrade",
			 t->host, t->port, t->path, status);
		return;
	}
	if (strcmp(r->val[R_ACCEPT], t->accept) != 0) {
		tun_fail(t, LOGL_ERROR, "hub: wrong Sec-WebSocket-Accept; not a WebSocket server");
		return;
	}
	if (wslay_event_context_client_init(&l->ws, &cbs, l) != 0) {
		tun_fail(t, LOGL_ERROR, "hub: out of memory");
		return;
	}
	wslay_event_config_set_max_recv_msg_length(l->ws, TUNNEL_MAX_MSG);
	tun_set_state(t, T_OPEN);
}

static void upgrade_read(struct agent_tunnel *t)
{
	struct link *l = t->link;
	char buf[4096];
	size_t used;
	ssize_t n;

	while (t->state == T_UPGRADING) {
		n = tls_recv(l->tls, buf, sizeof(buf));
		if (n == TLS_E_AGAIN)
			return;
		if (n <= 0) {
			tun_fail(t, LOGL_WARN, "hub: connection closed during the upgrade");
			return;
		}
		used = http_parser_execute(&l->parser, &resp_settings, buf, (size_t)n);
		/* Only what the parser consumed is the response; frames that came
		 * with it are not, however they are split into records. */
		l->resp.total += used;
		if (l->resp.total > RESPONSE_MAX) {
			tun_fail(t, LOGL_ERROR, "hub: upgrade response over %u bytes", RESPONSE_MAX);
			return;
		}
		if (l->resp.done) {
			if (used < (size_t)n) {
				l->early_len = (size_t)n - used;
				l->early = malloc(l->early_len);
				if (!l->early) {
					tun_fail(t, LOGL_ERROR, "hub: out of memory");
					return;
				}
				memcpy(l->early, buf + used, l->early_len);
			}
			upgrade_done(t);
			return;
		}
		if (HTTP_PARSER_ERRNO(&l->parser) != HPE_OK) {
			tun_fail(t, LOGL_ERROR, "hub: malformed upgrade response");
			return;
		}
	}
}

/* ---- WebSocket ------------------------------------------------------------------ */

static ssize_t ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *ud)
{
	struct link *l = ud;
	ssize_t n;

	(void)flags;
	if (l->early_off < l->early_len) {
		n = (ssize_t)(l->early_len - l->early_off);
		if ((size_t)n > len)
			n = (ssize_t)len;
		memcpy(buf, l->early + l->early_off, (size_t)n);
		l->early_off += (size_t)n;
		return n;
	}
	n = tls_recv(l->tls, buf, len);
	if (n > 0)
		return n;
	if (n == 0)
		snprintf(l->why, sizeof(l->why), "hub closed the connection");
	else if (n != TLS_E_AGAIN)
		snprintf(l->why, sizeof(l->why), "TLS: %s", tls_last_error(l->tls));
	wslay_event_set_error(ctx, n == TLS_E_AGAIN ? WSLAY_ERR_WOULDBLOCK : WSLAY_ERR_CALLBACK_FAILURE);
	return -1;
}

static ssize_t ws_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
		       void *ud)
{
	struct link *l = ud;
	ssize_t n;

	(void)flags;
	n = tls_send(l->tls, data, len);
	if (n > 0)
		return n;
	wslay_event_set_error(ctx, n == TLS_E_AGAIN ? WSLAY_ERR_WOULDBLOCK : WSLAY_ERR_CALLBACK_FAILURE);
	return -1;
}

static int ws_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *ud)
{
	(void)ctx;
	(void)ud;
	return gnutls_rnd(GNUTLS_RND_NONCE, buf, len) < 0 ? -1 : 0;
}

/* Fails the WebSocket: the close frame goes out, nothing more is read; the
 * link ends once it is sent, and the tunnel dials again. */
static void ws_fail(struct link *l, uint16_t code, const char *why)
{
	log_msg(LOGL_WARN, "hub: %s; closing the link", why);
	snprintf(l->why, sizeof(l->why), "%s", why);
	wslay_event_queue_close(l->ws, code, NULL, 0);
	wslay_event_shutdown_read(l->ws);
}

/* Queues M (taken) on the current link. */
static int send_json(struct agent_tunnel *t, json_t *m)
{
	struct wslay_event_msg wm = { WSLAY_TEXT_FRAME, NULL, 0 };
	struct link *l = t->link;
	char *text;
	int rc;

	if (!m)
		return -ENOMEM;
	text = json_dumps(m, JSON_COMPACT);
	json_decref(m);
	if (!text)
		return -ENOMEM;
	wm.msg = (const uint8_t *)text;
	wm.msg_length = strlen(text);
	rc = wslay_event_queue_msg(l->ws, &wm);
	explicit_bzero(text, wm.msg_length);
	free(text);
	if (rc != 0)
		return -EPIPE;
	if (wslay_event_get_queued_msg_length(l->ws) > TUNNEL_MAX_QUEUED) {
		l->fatal = true;
		snprintf(l->why, sizeof(l->why), "hub does not read: %u MB unsent",
			 TUNNEL_MAX_QUEUED >> 20);
	}
	tun_flush(t);
	return 0;
}

static int send_hello(struct agent_tunnel *t)
{
	const char *url = t->cfg->https.present ? t->cfg->https.public_url : NULL;

	return send_json(t, json_pack("{s:s, s:s, s:s, s:[s,s,s,s,s,s], s:s?}",
		"type", "hello", "agent", t->cfg->agent.name, "version", DIRBRIDGE_VERSION,
		"capabilities", "authenticate", "lookup", "change_password", "search_users",
		"list_groups", "login", "public_url", url));
}

static json_t *profile_json(const struct dir_profile *p)
{
	json_t *o, *groups, *attrs, *vals;
	size_t i, j;

	groups = json_array();
	attrs = json_object();
	for (i = 0; i < p->n_groups; i++)
		json_array_append_new(groups, json_string(p->groups[i]));
	for (i = 0; i < p->n_attrs; i++) {
		vals = json_array();
		for (j = 0; j < p->attrs[i].n_values; j++)
			json_array_append_new(vals, json_string(p->attrs[i].values[j]));
		json_object_set_new(attrs, p->attrs[i].name, vals);
	}
	o = json_pack("{s:s?, s:s?, s:s?, s:s?, s:o, s:o}", "username", p->username,
		      "dn", p->dn, "display_name", p->display_name, "email", p->email,
		      "groups", groups, "attributes", attrs);
	return o;
}

static void send_error(struct agent_tunnel *t, const char *id, const char *code)
{
	send_json(t, json_pack("{s:s, s:s, s:b, s:s}", "type", "result", "id", id, "ok", 0,
			       "error", code));
}

/* Whether R's answer may go out: only on the link the request came in on. */
static bool deliverable(struct agent_tunnel *t, const struct treq *r)
{
	return t->state == T_OPEN && t->link && t->gen == r->gen;
}

static void req_done(struct treq *r)
{
	struct agent_tunnel *t = r->t;

	t->inflight--;
	free(r);
	tun_maybe_free(t);
}

/*
 * Answers R — with KEY: VALUE when ERR is 0 (KEY NULL for a bare success), else
 * with ERR's code — but only on the link the request came in on; then releases R.
 * Takes VALUE in every case.
 */
static void answer(struct treq *r, int err, const char *key, json_t *value)
{
	struct agent_tunnel *t = r->t;
	json_t *m;

	if (!deliverable(t, r)) {
		log_msg(LOGL_DEBUG, "hub: result for request %s dropped: its link is gone", r->id);
	} else if (err < 0) {
		send_error(t, r->id, dir_code(err));
	} else {
		m = json_pack("{s:s, s:s, s:b}", "type", "result", "id", r->id, "ok", 1);
		if (m && key && json_object_set(m, key, value) < 0) {
			json_decref(m);
			m = NULL;
		}
		send_json(t, m);
	}
	json_decref(value);
	req_done(r);
}

static void on_profile(void *arg, int err, const struct dir_profile *p)
{
	struct treq *r = arg;

	if (err < 0 && r->client_ip[0])
		log_msg(LOGL_INFO, "hub: authenticate %s from client %s refused: %s", r->id,
			r->client_ip, dir_code(err));
	if (err < 0 || !p)
		answer(r, err < 0 ? err : DIR_E_INTERNAL, NULL, NULL);
	else if (r->kind == Q_LOOKUP && p->disabled)
		answer(r, DIR_E_ACCOUNT_DISABLED, NULL, NULL);
	else
		answer(r, 0, "profile", profile_json(p));
}

static void on_users(void *arg, int err, const struct dir_profile *users, size_t n)
{
	json_t *arr = err < 0 ? NULL : json_array();
	size_t i;

	for (i = 0; i < n && arr; i++)
		json_array_append_new(arr, profile_json(&users[i]));
	answer(arg, err < 0 ? err : arr ? 0 : DIR_E_INTERNAL, "users", arr);
}

static void on_names(void *arg, int err, char *const *names, size_t n)
{
	json_t *arr = err < 0 ? NULL : json_array();
	size_t i;

	for (i = 0; i < n && arr; i++)
		json_array_append_new(arr, json_string(names[i]));
	answer(arg, err < 0 ? err : arr ? 0 : DIR_E_INTERNAL, "groups", arr);
}

static void on_changed(void *arg, int err)
{
	answer(arg, err, NULL, NULL);
}

/* Starts the directory request for M; a dir_err when it cannot start. */
static int dispatch(struct agent_tunnel *t, const struct tmsg *m, struct treq *r)
{
	switch (m->kind) {
	case TMSG_AUTHENTICATE:
		r->kind = Q_AUTH;
		memcpy(r->client_ip, m->client_ip, sizeof(r->client_ip));
		return dir_authenticate(t->dir, m->username, m->password, m->password_len,
					on_profile, r);
	case TMSG_LOOKUP:
		r->kind = Q_LOOKUP;
		return dir_lookup(t->dir, m->username, on_profile, r);
	case TMSG_CHANGE_PASSWORD:
		r->kind = Q_CHANGE;
		return dir_change_password(t->dir, m->username, m->old_password,
					   m->old_password_len, m->password, m->password_len,
					   on_changed, r);
	case TMSG_SEARCH_USERS:
		r->kind = Q_USERS;
		return dir_search_users(t->dir, m->query, m->limit, on_users, r);
	case TMSG_LIST_GROUPS:
		r->kind = Q_GROUPS;
		return dir_list_groups(t->dir, m->limit, on_names, r);
	default:
		return DIR_E_BAD_REQUEST;
	}
}

static void on_text(struct agent_tunnel *t, const uint8_t *msg, size_t len)
{
	struct link *l = t->link;
	struct tmsg m;
	struct treq *r;
	int rc;

	tmsg_parse(msg, len, &m);
	switch (m.kind) {
	case TMSG_NONE:
		ws_fail(l, 1007, "hub sent a message that is not a JSON object with a type");
		goto out;
	case TMSG_NO_ID:
		/* Without an id there is no way to answer; the link itself is fine. */
		log_msg(LOGL_WARN, "hub: a request without a valid id ignored");
		goto out;
	case TMSG_RESULT:
		/* An answer to one of our own requests; a late one (after its
		 * timeout) finds nobody waiting. */
		if (!calls_answer(&t->calls, m.root))
			log_msg(LOGL_DEBUG, "hub: result for no pending request %s dropped", m.id);
		goto out;
	default:
		break;
	}
	if (t->inflight >= TUNNEL_MAX_INFLIGHT) {
		send_error(t, m.id, "busy");
		goto out;
	}
	if (!t->dir) {
		send_error(t, m.id, dir_code(DIR_E_UNAVAILABLE));
		goto out;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		send_error(t, m.id, dir_code(DIR_E_INTERNAL));
		goto out;
	}
	r->t = t;
	r->gen = t->gen;
	snprintf(r->id, sizeof(r->id), "%s", m.id);
	t->inflight++;
	rc = dispatch(t, &m, r);
	if (rc < 0) {
		send_error(t, m.id, dir_code(rc));
		req_done(r);
	}
out:
	tmsg_free(&m);
}

static void ws_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *m,
		   void *ud)
{
	struct link *l = ud;

	(void)ctx;
	if (!l->t)
		return;
	switch (m->opcode) {
	case WSLAY_TEXT_FRAME:
		on_text(l->t, m->msg, m->msg_length);
		/* The message may carry passwords; wslay frees it without wiping. */
		if (m->msg_length)
			explicit_bzero((uint8_t *)(uintptr_t)m->msg, m->msg_length);
		break;
	case WSLAY_BINARY_FRAME:
		ws_fail(l, 1003, "hub sent a binary frame");
		break;
	case WSLAY_PONG:
		l->t->awaiting_pong = false;
		break;
	case WSLAY_CONNECTION_CLOSE:
		log_msg(LOGL_INFO, "hub: hub closed the link (code %u)", m->status_code);
		snprintf(l->why, sizeof(l->why), "hub closed the link");
		break;
	default:
		break;
	}
}

/* Sends what wslay has queued, within the output bound. */
static void tun_flush(struct agent_tunnel *t)
{
	struct link *l = t->link;

	if (t->state != T_OPEN || !l || l->in_ws)
		return;
	l->in_ws = true;
	while (wslay_event_want_write(l->ws) && l->out_pending < OUT_HIGH && !l->fatal) {
		size_t before = l->out_pending;

		if (wslay_event_send(l->ws) != 0) {
			l->fatal = true;
			break;
		}
		if (l->out_pending == before)
			break;
	}
	l->in_ws = false;
	if (l->fatal)
		tun_fail(t, LOGL_WARN, "hub: link failed: %s", l->why[0] ? l->why : "send error");
	else if (!wslay_event_want_read(l->ws) && !wslay_event_want_write(l->ws))
		tun_set_state(t, T_CLOSING);
}

static void tun_pump(struct agent_tunnel *t)
{
	struct link *l = t->link;
	int rc;

	if (!l)
		return;
	if (t->state == T_TLS_HANDSHAKE) {
		rc = tls_handshake(l->tls);
		if (rc == TLS_E_AGAIN)
			goto io;
		if (rc < 0) {
			tun_fail(t, LOGL_ERROR, "hub: TLS with %s:%s failed%s: %s", t->host, t->port,
				 rc == TLS_E_VERIFY ? " (hub certificate refused)" : "",
				 tls_last_error(l->tls));
			return;
		}
		tun_set_state(t, T_UPGRADING);
	}
	if (t->state == T_UPGRADING)
		upgrade_read(t);
	if (t->state == T_OPEN && !l->in_ws) {
		l->in_ws = true;
		if (wslay_event_want_read(l->ws) && wslay_event_recv(l->ws) != 0)
			l->fatal = true;
		l->in_ws = false;
		if (l->fatal) {
			tun_fail(t, LOGL_WARN, "hub: link failed: %s", l->why[0] ? l->why : "receive error");
			return;
		}
		tun_flush(t);
	}
	if (t->state == T_CLOSING && l->eof) {
		tun_set_state(t, T_BACKOFF);
		return;
	}
io:
	if (t->link != l || t->state > T_OPEN)
		return;
	if (l->eof && t->state != T_OPEN) {
		tun_fail(t, LOGL_WARN, "hub: %s:%s closed the connection during %s", t->host,
			 t->port, state_names[t->state]);
		return;
	}
	if (l->read_paused && l->in_len < IN_CAP) {
		l->read_paused = false;
		uv_read_start((uv_stream_t *)&l->tcp, on_alloc, on_read);
	}
}

/* ---- public --------------------------------------------------------------------- */

int agent_tunnel_start(uv_loop_t *loop, const struct cfg *cfg, struct dir *dir,
		       struct agent_tunnel **out)
{
	struct agent_tunnel *t;

	if (!cfg->hub.present)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->loop = loop;
	t->cfg = cfg;
	t->dir = dir;
	t->gai.data = t;
	t->timer.data = t;
	uv_timer_init(loop, &t->timer);
	t->state = T_BACKOFF;
	tun_set_state(t, T_RESOLVING);
	current = t;
	*out = t;
	return 0;
}

static bool same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

void agent_tunnel_reconfigure(struct agent_tunnel *t, const struct cfg *cfg, struct dir *dir)
{
	bool moved = !same(t->cfg->hub.url, cfg->hub.url) ||
		     !same(t->cfg->hub.ca_file, cfg->hub.ca_file) ||
		     !same(t->cfg->hub.token_file, cfg->hub.token_file);

	t->cfg = cfg;
	t->dir = dir;
	/* A link to the old hub, or one trusted with the old CA, must not outlive
	 * the reload that replaced them; the new settings are dialled at once. */
	if (moved && t->state != T_STOPPED && t->state != T_BACKOFF) {
		t->attempt = 0;
		tun_fail(t, LOGL_INFO, "hub: [hub] settings changed; dialling again");
	}
}

static void on_timer_closed(uv_handle_t *h)
{
	struct agent_tunnel *t = h->data;
	void (*done)(void *) = t->done;
	void *arg = t->done_arg;

	t->timer_closed = true;
	tun_maybe_free(t);
	if (done)
		done(arg);
}

void agent_tunnel_stop(struct agent_tunnel *t, void (*done)(void *arg), void *arg)
{
	struct link *l = t->link;

	if (t->state == T_STOPPED)
		return;
	if (current == t)
		current = NULL;
	if (t->state == T_OPEN && l) {
		/* A courtesy close frame; the socket goes right after. */
		wslay_event_queue_close(l->ws, 1001, NULL, 0);
		l->in_ws = false;
		wslay_event_send(l->ws);
		tls_bye(l->tls);
	}
	t->state = T_STOPPED;
	calls_fail_all(&t->calls);
	t->done = done;
	t->done_arg = arg;
	link_drop(t);
	addrs_free(t);
	if (t->gai_busy)
		uv_cancel((uv_req_t *)&t->gai);
	uv_close((uv_handle_t *)&t->timer, on_timer_closed);
}

struct agent_tunnel *agent_tunnel_current(void)
{
	return current;
}

bool agent_tunnel_connected(const struct agent_tunnel *t)
{
	return t && t->state == T_OPEN;
}

/* Sends M (taken) as a request of our own, with a fresh id, whose answer goes
 * to CB.  CB is not called when this fails. */
static int call_start(struct agent_tunnel *t, json_t *m, agent_answer_cb cb, void *arg)
{
	char id[sizeof(((struct call *)0)->id)];
	int rc;

	if (!m)
		return -ENOMEM;
	rc = calls_add(&t->calls, uv_now(t->loop), cb, arg, id);
	if (rc < 0) {
		if (rc == -EBUSY)
			log_msg(LOGL_WARN, "hub: %u requests to the hub unanswered; refusing more",
				CALLS_MAX);
		json_decref(m);
		return rc;
	}
	if (json_object_set_new(m, "id", json_string(id)) < 0) {
		calls_forget(&t->calls, id);
		json_decref(m);
		return -ENOMEM;
	}
	rc = send_json(t, m);
	if (rc < 0)
		calls_forget(&t->calls, id);
	return rc;
}

int agent_tunnel_session_check(struct agent_tunnel *t, const char *session, agent_answer_cb cb,
			       void *arg)
{
	if (!agent_tunnel_connected(t))
		return -ENOTCONN;
	return call_start(t, json_pack("{s:s, s:s}", "type", "session_check", "session", session),
			  cb, arg);
}

int agent_tunnel_login(struct agent_tunnel *t, const char *session, const char *method,
		       const struct dir_profile *p, const char *serial, const char *issuer,
		       const char *sha256, agent_answer_cb cb, void *arg)
{
	json_t *cert = NULL;

	if (!agent_tunnel_connected(t)) {
		log_msg(LOGL_WARN, "hub: not connected; login for session %s not delivered",
			session);
		return -ENOTCONN;
	}
	if (!p)
		return -EINVAL;
	if (serial)
		cert = json_pack("{s:s, s:s?, s:s?}", "serial", serial, "issuer", issuer,
				 "sha256", sha256);
	return call_start(t, json_pack("{s:s, s:s, s:s, s:o, s:o?}", "type", "login",
		"session", session, "method", method, "profile", profile_json(p),
		"certificate", cert), cb, arg);
}
