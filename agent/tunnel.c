/*
 * The tunnel to the identity hub; see tunnel.h and docs/protocol.md.  This
 * file is the link: dialling, TLS, the upgrade, the WebSocket, backoff and the
 * public start/stop/reconfigure; tunnel_rpc.c handles the messages.
 *
 * struct agent_tunnel is the one long-lived connection object; its state moves
 * NEW -> RESOLVING -> CONNECTING -> TLS_HANDSHAKE -> UPGRADING -> OPEN, and from
 * any of them to CLOSING (orderly) or BACKOFF (failure), then RESOLVING again,
 * or to STOPPED; only tun_set_state() changes it.  Each dial gets a fresh
 * struct link (a net_stream carrying the TLS session, then the WebSocket) and a
 * new generation number: a directory answer is sent only if its request came
 * in on the link that is still open, so nothing is ever answered on a later
 * link.
 *
 * Bounded: the stream keeps at most IN_CAP unread ciphertext, no frame goes
 * out while OUT_HIGH bytes are unwritten, a hub message is at most
 * TUNNEL_MAX_MSG, TUNNEL_MAX_INFLIGHT requests at the directory, and a hub
 * that lets TUNNEL_MAX_QUEUED bytes pile up unread is dropped.
 */
#include <errno.h>
#include <gnutls/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent/tunnel_internal.h"
#include "tls/tls.h"

#define IN_CAP		(64u << 10)
#define OUT_HIGH	(1u << 20)
/* Above OUT_HIGH by more than one TLS record: a record TLS took is never refused. */
#define OUT_MAX		(OUT_HIGH + (64u << 10))
#define RESPONSE_MAX	(16u << 10)
#define CLOSING_MS	3000

const char *const agent_tunnel_state_names[AGENT_TUNNEL_STATES] = {
	"new", "resolving", "connecting", "tls-handshake", "upgrading", "open", "closing",
	"backoff", "stopped",
};
_Static_assert(T_STOPPED + 1 == AGENT_TUNNEL_STATES, "a name for every tunnel state");

static const char *const resp_headers[R_N] = { "upgrade", "connection", "sec-websocket-accept" };

static void tun_set_state(struct agent_tunnel *t, enum tun_state st);
static void tun_pump(struct agent_tunnel *t);

static void tun_fail(struct agent_tunnel *t, enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- lifetime ------------------------------------------------------------- */

void tun_maybe_free(struct agent_tunnel *t)
{
	if (t->state == T_STOPPED && t->timer_closed && !t->gai_busy && t->inflight == 0)
		free(t);
}

/* Lets go of the current link at once; its callbacks find l->t NULL.  BYE
 * sends TLS close_notify first (best effort). */
static void link_drop(struct agent_tunnel *t, bool bye)
{
	struct link *l = t->link;

	if (!l)
		return;
	t->link = NULL;
	l->t = NULL;
	net_stream_close(l->s, bye);
}

/* Why the link failed: what the tunnel saw itself, else what the WebSocket
 * saw, else DFLT. */
static const char *link_why(const struct link *l, const char *dflt)
{
	if (l->why[0])
		return l->why;
	if (l->ws && net_ws_why(l->ws)[0])
		return net_ws_why(l->ws);
	return dflt;
}

/* ---- transport: the stream's callbacks ------------------------------------- */

static void on_connected(void *owner, int status);

static void on_data(void *owner)
{
	struct link *l = owner;

	if (l->t)
		tun_pump(l->t);
}

static void on_drain(void *owner)
{
	struct link *l = owner;

	if (l->t)
		tun_flush(l->t);
}

static void on_error(void *owner, int err)
{
	struct link *l = owner;

	if (l->t)
		tun_fail(l->t, LOGL_WARN, "hub: link failed: %s", net_strerror(err));
}

static void on_shutdown(void *owner, int status)
{
	struct link *l = owner;

	(void)status;
	if (l->t && l->t->link == l)
		tun_set_state(l->t, T_BACKOFF);
}

static void on_link_closed(void *owner)
{
	struct link *l = owner;

	net_ws_free(l->ws);
	explicit_bzero(l, sizeof(*l));
	free(l);
}

static const struct net_stream_cbs link_cbs = {
	.on_connect = on_connected,
	.on_data = on_data,
	.on_drain = on_drain,
	.on_error = on_error,
	.on_close = on_link_closed,
	.on_shutdown = on_shutdown,
};

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
static void addrs_free(struct agent_tunnel *t);
static int send_upgrade(struct agent_tunnel *t);
static void on_timer_closed(uv_handle_t *h);

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
	log_msg(LOGL_DEBUG, "hub: tunnel %s -> %s", agent_tunnel_state_names[old],
		agent_tunnel_state_names[st]);
	t->state = st;
	if (old == T_OPEN && st != T_OPEN && st != T_STOPPED) {
		uint64_t up = uv_now(t->loop) - t->open_ms;

		log_msg(LOGL_WARN, "hub: disconnected from %s:%s after %llu s", t->host, t->port,
			(unsigned long long)(up / 1000));
		if (up >= TUNNEL_STABLE_S * 1000u)
			t->attempt = 0;
		/* Their answers could only come on this link: the browsers waiting
		 * for them are told now rather than at the timeout. */
		calls_fail_all(&t->calls);
	}
	if (st == T_RESOLVING)
		t->dials++;
	else if (st == T_OPEN)
		t->opens++;
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
		struct tls_sess *tls = NULL;

		addrs_free(t);
		rc = tls_client_new(&o, &tls);
		if (rc < 0) {
			tun_fail(t, LOGL_ERROR, "hub: TLS setup: %s", tls_strerror(rc));
			return;
		}
		net_stream_set_tls(l->s, tls);
		rc = net_stream_read_start(l->s);
		if (rc < 0) {
			tun_fail(t, LOGL_WARN, "hub: reading: %s", net_strerror(rc));
			return;
		}
		tun_pump(t);
		break;
	}
	case T_UPGRADING:
		if (send_upgrade(t) < 0)
			tun_fail(t, LOGL_ERROR, "hub: cannot send the upgrade request");
		break;
	case T_OPEN:
		t->open_ms = t->ping_ms = uv_now(t->loop);
		t->awaiting_pong = false;
		uv_timer_start(&t->timer, on_timer, 1000, 1000);
		log_msg(LOGL_INFO, "hub: connected to %s:%s (%s)", t->host, t->port,
			tls_version(net_stream_tls(l->s)));
		if (tun_rpc_hello(t) < 0)
			tun_fail(t, LOGL_ERROR, "hub: cannot send hello");
		break;
	case T_CLOSING:
		/* The close frames are exchanged (or ours is sent): say close_notify,
		 * let the socket drain, and dial again once it has. */
		tls_bye(net_stream_tls(l->s));
		uv_timer_start(&t->timer, on_timer, CLOSING_MS, 0);
		if (net_stream_shutdown(l->s) < 0)
			tun_set_state(t, T_BACKOFF);
		break;
	case T_BACKOFF:
		link_drop(t, false);
		addrs_free(t);
		if (t->gai_busy)
			uv_cancel((uv_req_t *)&t->gai);
		delay = backoff_ms(t);
		log_msg(LOGL_INFO, "hub: dialling %s:%s again in %llu ms", t->host, t->port,
			(unsigned long long)delay);
		uv_timer_start(&t->timer, on_timer, delay, 0);
		break;
	case T_STOPPED:
		if (old == T_OPEN && l) {
			/* A courtesy close frame; the socket goes right after. */
			net_ws_close(l->ws, NET_WS_GOING_AWAY);
			(void)net_ws_flush(l->ws);
		}
		calls_fail_all(&t->calls);
		link_drop(t, old == T_OPEN);
		addrs_free(t);
		if (t->gai_busy)
			uv_cancel((uv_req_t *)&t->gai);
		uv_close((uv_handle_t *)&t->timer, on_timer_closed);
		break;
	case T_NEW:
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
			t->ping_ms = now;
			t->awaiting_pong = true;
			net_ws_ping(t->link->ws);
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
			 t->port, TUNNEL_HANDSHAKE_S, agent_tunnel_state_names[t->state]);
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
	struct net_stream_conf conf = {
		.cbs = &link_cbs,
		.max_in = IN_CAP,
		.max_out = OUT_MAX,
	};
	struct addrinfo *ai;
	struct link *l;
	int rc = -ECONNREFUSED;

	link_drop(t, false);
	while ((ai = t->next_addr)) {
		t->next_addr = ai->ai_next;
		l = calloc(1, sizeof(*l));
		if (!l)
			return -ENOMEM;
		l->t = t;
		conf.owner = l;
		t->gen++;
		rc = net_stream_connect(t->loop, ai->ai_addr, &conf, &l->s);
		if (rc == 0) {
			t->link = l;
			return 0;
		}
		/* No stream was made: nothing else refers to L. */
		free(l);
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

static void on_connected(void *owner, int status)
{
	struct link *l = owner;
	struct agent_tunnel *t = l->t;

	if (!t)
		return;
	if (status < 0) {
		log_msg(LOGL_DEBUG, "hub: connecting to %s:%s: %s", t->host, t->port,
			net_strerror(status));
		if (!t->next_addr || (status = dial_next(t)) < 0)
			tun_fail(t, LOGL_WARN, "hub: connecting to %s:%s: %s", t->host, t->port,
				 net_strerror(status));
		return;
	}
	tun_set_state(t, T_TLS_HANDSHAKE);
}

/* ---- the upgrade --------------------------------------------------------------- */

static int send_upgrade(struct agent_tunnel *t)
{
	struct link *l = t->link;
	char errbuf[256], key[NET_WS_KEY_LEN + 1], *token = NULL, *req = NULL;
	size_t token_len = 0;
	bool v6 = strchr(t->host, ':') != NULL;	/* an IPv6 literal goes in brackets */
	int n, rc = -EIO;

	if (cfg_secret_read(t->cfg->hub.token_file, &token, &token_len, errbuf, sizeof(errbuf)) < 0) {
		log_msg(LOGL_ERROR, "hub: token_file: %s", errbuf);
		return -EACCES;
	}
	if (net_ws_key_new(key) < 0 || net_ws_accept(key, NET_WS_KEY_LEN, t->accept) < 0)
		goto out;
	n = asprintf(&req,
		     "GET %s HTTP/1.1\r\nHost: %s%s%s:%s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
		     "Authorization: Bearer %.*s\r\nUser-Agent: dirbridge/%s\r\n\r\n",
		     t->path, v6 ? "[" : "", t->host, v6 ? "]" : "", t->port, key,
		     (int)token_len, token, DIRBRIDGE_VERSION);
	if (n < 0) {
		req = NULL;
		goto out;
	}
	memset(&l->resp, 0, sizeof(l->resp));
	net_hdrs_init(&l->resp.h, resp_headers, R_N, false);
	http_parser_init(&l->parser, HTTP_RESPONSE);
	l->parser.data = l;
	if (tls_send(net_stream_tls(l->s), req, (size_t)n) == n)
		rc = 0;
	explicit_bzero(req, (size_t)n);
out:
	free(req);
	cfg_secret_free(token, token_len);
	return rc;
}

static int resp_field(http_parser *p, const char *at, size_t len)
{
	return net_hdrs_field(&((struct link *)p->data)->resp.h, at, len);
}

static int resp_value(http_parser *p, const char *at, size_t len)
{
	return net_hdrs_value(&((struct link *)p->data)->resp.h, at, len);
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

/* EARLY (LEN bytes) came with the 101 in the same records: frames, not the
 * response, however they are split into records. */
static void upgrade_done(struct agent_tunnel *t, const char *early, size_t early_len)
{
	struct link *l = t->link;
	const struct net_ws_conf conf = {
		.server = false,
		.max_msg = TUNNEL_MAX_MSG,
		.out_high = OUT_HIGH,
		.peer_name = "hub",
		.on_msg = tun_rpc_on_msg,
		.owner = l,
	};
	struct response *r = &l->resp;
	unsigned status = l->parser.status_code;

	if (status == 401 || status == 403) {
		tun_fail(t, LOGL_ERROR, "hub: %s:%s refused the token (HTTP %u); check [hub] token_file",
			 t->host, t->port, status);
		return;
	}
	if (status != 101 || !net_http_has_token(r->h.val[R_UPGRADE], "websocket") ||
	    !net_http_has_token(r->h.val[R_CONNECTION], "upgrade")) {
		tun_fail(t, LOGL_ERROR, "hub: %s:%s%s answered HTTP %u, not a WebSocket upgrade",
			 t->host, t->port, t->path, status);
		return;
	}
	if (strcmp(r->h.val[R_ACCEPT], t->accept) != 0) {
		tun_fail(t, LOGL_ERROR, "hub: wrong Sec-WebSocket-Accept; not a WebSocket server");
		return;
	}
	if (net_ws_new(l->s, &conf, early, early_len, &l->ws) < 0) {
		tun_fail(t, LOGL_ERROR, "hub: out of memory");
		return;
	}
	tun_set_state(t, T_OPEN);
}

static void upgrade_read(struct agent_tunnel *t)
{
	struct link *l = t->link;
	char buf[4096];
	size_t used;
	ssize_t n;

	while (t->state == T_UPGRADING) {
		n = tls_recv(net_stream_tls(l->s), buf, sizeof(buf));
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
			upgrade_done(t, buf + used, (size_t)n - used);
			explicit_bzero(buf, (size_t)n);
			return;
		}
		if (HTTP_PARSER_ERRNO(&l->parser) != HPE_OK) {
			tun_fail(t, LOGL_ERROR, "hub: malformed upgrade response");
			return;
		}
	}
}

/* ---- WebSocket ------------------------------------------------------------------ */

/* Sends what is queued, within the output bound; a WebSocket whose closing
 * handshake is over moves on to CLOSING. */
void tun_flush(struct agent_tunnel *t)
{
	struct link *l = t->link;

	if (t->state != T_OPEN || !l || net_ws_busy(l->ws))
		return;
	if (l->fatal || net_ws_flush(l->ws) < 0)
		tun_fail(t, LOGL_WARN, "hub: link failed: %s", link_why(l, "send error"));
	else if (net_ws_done(l->ws))
		tun_set_state(t, T_CLOSING);
}

static void tun_pump(struct agent_tunnel *t)
{
	struct link *l = t->link;
	struct tls_sess *tls;
	int rc;

	if (!l)
		return;
	tls = net_stream_tls(l->s);
	if (t->state == T_TLS_HANDSHAKE) {
		rc = tls_handshake(tls);
		if (rc == TLS_E_AGAIN)
			goto io;
		if (rc < 0) {
			tun_fail(t, LOGL_ERROR, "hub: TLS with %s:%s failed%s: %s", t->host, t->port,
				 rc == TLS_E_VERIFY ? " (hub certificate refused)" : "",
				 tls_last_error(tls));
			return;
		}
		tun_set_state(t, T_UPGRADING);
	}
	if (t->state == T_UPGRADING)
		upgrade_read(t);
	if (t->state == T_OPEN && !net_ws_busy(l->ws)) {
		if (net_ws_pump(l->ws) < 0 || l->fatal) {
			tun_fail(t, LOGL_WARN, "hub: link failed: %s", link_why(l, "receive error"));
			return;
		}
		tun_flush(t);
	}
	if (t->state == T_CLOSING && t->link == l) {
		if (net_stream_eof(l->s))
			tun_set_state(t, T_BACKOFF);
		else
			net_stream_discard(l->s);
		return;
	}
io:
	if (t->link != l || t->state > T_OPEN)
		return;
	if (net_stream_eof(l->s) && t->state != T_OPEN) {
		tun_fail(t, LOGL_WARN, "hub: %s:%s closed the connection during %s", t->host,
			 t->port, agent_tunnel_state_names[t->state]);
		return;
	}
	/* What TLS said outside a read callback (the ClientHello) goes out now. */
	rc = net_stream_flush(l->s);
	if (rc < 0)
		tun_fail(t, LOGL_WARN, "hub: link failed: %s", net_strerror(rc));
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
	t->ops = &tun_ops_live;
	t->gai.data = t;
	t->timer.data = t;
	uv_timer_init(loop, &t->timer);
	tun_set_state(t, T_RESOLVING);
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
	if (t->state == T_STOPPED)
		return;
	t->done = done;
	t->done_arg = arg;
	tun_set_state(t, T_STOPPED);
}

void agent_tunnel_stats(const struct agent_tunnel *t, struct agent_tunnel_stats *out)
{
	out->state_name = agent_tunnel_state_names[t->state];
	out->opens = t->opens;
	out->reconnects = t->dials > 1 ? t->dials - 1 : 0;
	out->busy = t->busy;
	out->inflight = t->inflight;
}

bool agent_tunnel_connected(const struct agent_tunnel *t)
{
	return t && t->state == T_OPEN;
}
