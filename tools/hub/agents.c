/*
 * The hub's agent endpoint: TLS (tls_hub_server_new) over a libuv TCP stream,
 * the HTTP upgrade to WebSocket (http-parser; RFC 6455 section 4.2), then wslay
 * frames carrying one JSON message each (docs/protocol.md).
 *
 * Each connection is one struct hub_agent whose state only agent_set_state()
 * changes.  Bytes flow socket -> in[] -> TLS pull -> http-parser or wslay; and
 * wslay -> TLS push -> uv_write.  Nothing is unbounded: in[] is a fixed buffer
 * (reading pauses when it is full), unsent writes are capped by OUT_HIGH (wslay
 * is not asked to send beyond it), a message is at most HUB_MAX_MSG, and an
 * agent has at most HUB_MAX_PENDING requests in flight.
 */
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wslay/wslay.h>

#include "config/cfg.h"
#include "tools/hub/hub.h"

#define IN_CAP		(64u << 10)
#define OUT_HIGH	(1u << 20)
#define UPGRADE_MAX	(16u << 10)	/* the whole upgrade request */
#define CLOSING_S	5

enum ag_state {
	AG_HANDSHAKE,	/* TLS handshake */
	AG_UPGRADE,	/* reading the HTTP upgrade request */
	AG_OPEN,	/* WebSocket frames; ready once hello arrived */
	AG_CLOSING,	/* flushing what is queued, then shutdown */
	AG_CLOSED,	/* handle closing; freed in the close callback */
};

struct hub_req {
	struct hub_req *next;
	struct hub_agent *agent;
	char id[24];
	uint64_t deadline_ms;
	hub_req_cb cb;		/* NULL once cancelled */
	void *arg;
};

struct hub_agent {
	struct hub_agent *next;
	struct hub *hub;
	enum ag_state state;
	uv_tcp_t tcp;
	uv_shutdown_t shut;
	struct tls_sess *tls;
	bool tls_done;		/* handshake completed: close_notify is due */
	char peer[64];

	uint8_t in[IN_CAP];	/* ciphertext not yet pulled by TLS */
	size_t in_off, in_len;
	bool eof, read_paused;
	size_t out_pending;	/* bytes handed to uv_write, not yet written */

	http_parser parser;
	struct hub_upgrade *up;	/* only while AG_UPGRADE */
	uint8_t *early;		/* plaintext that followed the upgrade request */
	size_t early_off, early_len;

	wslay_event_context_ptr ws;
	bool in_ws;		/* inside wslay_event_recv/send: do not re-enter */
	bool fatal;		/* a callback asked for the connection to drop */

	bool ready;		/* hello received */
	char name[65];
	char *version;
	char *public_url;
	json_t *caps;
	time_t since;
	uint64_t opened_ms, last_rx_ms, last_ping_ms, closing_ms;

	struct hub_req *reqs;
	size_t n_reqs;
	uint64_t served;	/* results received */
};

struct wbuf {
	uv_write_t req;
	struct hub_agent *a;
	size_t len;
	char data[];
};

static void agent_pump(struct hub_agent *a);
static void agent_flush(struct hub_agent *a);

/* ---- state ---------------------------------------------------------------- */

static void on_close(uv_handle_t *h)
{
	struct hub_agent *a = h->data;

	if (a->ws)
		wslay_event_context_free(a->ws);
	if (a->tls)
		tls_free(a->tls);
	free(a->up);
	if (a->early)
		explicit_bzero(a->early, a->early_len);
	free(a->early);
	free(a->version);
	free(a->public_url);
	json_decref(a->caps);
	explicit_bzero(a->in, sizeof(a->in));
	free(a);
}

static void fail_requests(struct hub_agent *a, const char *err)
{
	struct hub_req *r;

	while ((r = a->reqs)) {
		a->reqs = r->next;
		a->n_reqs--;
		if (r->cb)
			r->cb(r->arg, NULL, err);
		free(r);
	}
}

static void unlink_agent(struct hub_agent *a)
{
	struct hub_agent **pp;

	for (pp = &a->hub->agents; *pp; pp = &(*pp)->next) {
		if (*pp == a) {
			*pp = a->next;
			a->hub->n_agents--;
			return;
		}
	}
}

static void agent_set_state(struct hub_agent *a, enum ag_state st);

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct hub_agent *a = req->data;

	(void)status;
	agent_set_state(a, AG_CLOSED);
}

/* The one place the state changes.  CLOSING sends what is queued (with a TLS
 * close_notify) and shuts the socket down; CLOSED drops everything at once.
 * Both fail the agent's pending requests first: a request whose agent left is
 * never answered later. */
static void agent_set_state(struct hub_agent *a, enum ag_state st)
{
	enum ag_state old = a->state;

	if (old == st || old == AG_CLOSED || (old == AG_CLOSING && st != AG_CLOSED))
		return;
	a->state = st;
	switch (st) {
	case AG_UPGRADE:
		a->tls_done = true;
		break;
	case AG_OPEN:
		free(a->up);
		a->up = NULL;
		break;
	case AG_CLOSING:
	case AG_CLOSED:
		if (a->ready)
			log_msg(LOGL_INFO, "hub: agent %s (%s) disconnected", a->name, a->peer);
		a->ready = false;
		/* A closing agent stays listed so that hub_agents_tick() can cut a
		 * peer that never lets the shutdown complete. */
		if (st == AG_CLOSED)
			unlink_agent(a);
		fail_requests(a, "directory_unavailable");
		if (st == AG_CLOSING) {
			a->closing_ms = uv_now(a->hub->loop);
			if (a->tls_done)
				tls_bye(a->tls);
			a->shut.data = a;
			if (uv_shutdown(&a->shut, (uv_stream_t *)&a->tcp, on_shutdown) == 0)
				break;
			a->state = AG_CLOSED;
			unlink_agent(a);
		}
		uv_close((uv_handle_t *)&a->tcp, on_close);
		break;
	default:
		break;
	}
}

/* ---- transport: libuv <-> TLS --------------------------------------------- */

static void on_write(uv_write_t *req, int status)
{
	struct wbuf *w = (struct wbuf *)req;
	struct hub_agent *a = w->a;

	a->out_pending -= w->len;
	free(w);
	if (a->state >= AG_CLOSING)
		return;
	if (status < 0) {
		agent_set_state(a, AG_CLOSED);
		return;
	}
	agent_flush(a);
}

/* TLS push: every record goes straight to uv_write.  Flow control happens one
 * level up: wslay is not asked to send while OUT_HIGH bytes are unwritten. */
static ssize_t tls_push(void *ctx, const void *buf, size_t len)
{
	struct hub_agent *a = ctx;
	struct wbuf *w;
	uv_buf_t b;

	if (a->state == AG_CLOSED) {
		errno = EPIPE;
		return -1;
	}
	w = malloc(sizeof(*w) + len);
	if (!w) {
		errno = ENOMEM;
		return -1;
	}
	w->a = a;
	w->len = len;
	memcpy(w->data, buf, len);
	b = uv_buf_init(w->data, (unsigned)len);
	if (uv_write(&w->req, (uv_stream_t *)&a->tcp, &b, 1, on_write) < 0) {
		free(w);
		errno = EPIPE;
		return -1;
	}
	a->out_pending += len;
	return (ssize_t)len;
}

static ssize_t tls_pull(void *ctx, void *buf, size_t len)
{
	struct hub_agent *a = ctx;

	if (a->in_len == 0) {
		if (a->eof)
			return 0;
		errno = EAGAIN;
		return -1;
	}
	if (len > a->in_len)
		len = a->in_len;
	memcpy(buf, a->in + a->in_off, len);
	a->in_off += len;
	a->in_len -= len;
	if (a->in_len == 0)
		a->in_off = 0;
	return (ssize_t)len;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct hub_agent *a = h->data;

	(void)hint;
	if (a->in_off && a->in_len)
		memmove(a->in, a->in + a->in_off, a->in_len);
	a->in_off = 0;
	*buf = uv_buf_init((char *)a->in + a->in_len, (unsigned)(IN_CAP - a->in_len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct hub_agent *a = s->data;

	(void)buf;
	if (a->state >= AG_CLOSING)
		return;
	if (n == UV_ENOBUFS) {
		/* in[] is full: TLS has not consumed it yet.  Resume in agent_pump. */
		uv_read_stop(s);
		a->read_paused = true;
		return;
	}
	if (n < 0) {
		a->eof = true;
		uv_read_stop(s);
	} else {
		a->in_len += (size_t)n;
		a->last_rx_ms = uv_now(a->hub->loop);
	}
	agent_pump(a);
}

/* ---- the upgrade ------------------------------------------------------------ */


/* Sends a short HTTP error and closes. */
static void up_refuse(struct hub_agent *a, const char *status, const char *extra)
{
	char buf[512];
	int n;

	n = snprintf(buf, sizeof(buf),
		     "HTTP/1.1 %s\r\nContent-Length: 0\r\nConnection: close\r\n%s\r\n",
		     status, extra ? extra : "");
	log_msg(LOGL_WARN, "hub: %s: upgrade refused: %s", a->peer, status);
	tls_send(a->tls, buf, (size_t)n);
	agent_set_state(a, AG_CLOSING);
}


static ssize_t ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
		       void *ud);
static ssize_t ws_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
		       int flags, void *ud);
static void ws_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *m,
		   void *ud);

static void up_accept(struct hub_agent *a)
{
	static const struct wslay_event_callbacks cbs = {
		.recv_callback = ws_recv,
		.send_callback = ws_send,
		.on_msg_recv_callback = ws_msg,
	};
	struct hub_upgrade *u = a->up;
	const char *auth = u->val[H_AUTH];
	char key[32], buf[256];
	int n;

	u->url[u->url_len] = '\0';
	if (a->parser.method != HTTP_GET || strcmp(u->url, "/agent/v1") != 0) {
		up_refuse(a, "404 Not Found", NULL);
		return;
	}
	if (strncasecmp(auth, "Bearer ", 7) != 0 || u->val_len[H_AUTH] <= 7 ||
	    !hub_token_ok(a->hub, auth + 7, u->val_len[H_AUTH] - 7)) {
		explicit_bzero(u->val[H_AUTH], sizeof(u->val[H_AUTH]));
		up_refuse(a, "401 Unauthorized", "WWW-Authenticate: Bearer\r\n");
		return;
	}
	explicit_bzero(u->val[H_AUTH], sizeof(u->val[H_AUTH]));
	if (strcmp(u->val[H_VERSION], "13") != 0) {
		up_refuse(a, "426 Upgrade Required", "Sec-WebSocket-Version: 13\r\n");
		return;
	}
	if (!hub_has_token(u->val[H_UPGRADE], "websocket") ||
	    !hub_has_token(u->val[H_CONNECTION], "upgrade") ||
	    !hub_ws_key_valid(u->val[H_KEY], u->val_len[H_KEY]) ||
	    hub_ws_accept(u->val[H_KEY], key) < 0) {
		up_refuse(a, "400 Bad Request", NULL);
		return;
	}
	if (wslay_event_context_server_init(&a->ws, &cbs, a) != 0) {
		agent_set_state(a, AG_CLOSED);
		return;
	}
	wslay_event_config_set_max_recv_msg_length(a->ws, HUB_MAX_MSG);
	n = snprintf(buf, sizeof(buf),
		     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
		     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", key);
	if (tls_send(a->tls, buf, (size_t)n) != n) {
		agent_set_state(a, AG_CLOSED);
		return;
	}
	agent_set_state(a, AG_OPEN);
}

/* Feeds decrypted bytes to http-parser until the request is complete. */
static void up_read(struct hub_agent *a)
{
	char buf[4096];
	ssize_t n;
	size_t used;

	while (a->state == AG_UPGRADE) {
		n = tls_recv(a->tls, buf, sizeof(buf));
		if (n == TLS_E_AGAIN)
			return;
		if (n <= 0) {
			agent_set_state(a, AG_CLOSED);
			return;
		}
		a->up->total += (size_t)n;
		used = http_parser_execute(&a->parser, &hub_upgrade_settings, buf, (size_t)n);
		if (a->up->done) {
			/* Frames sent before our 101 arrived belong to wslay. */
			if (used < (size_t)n) {
				a->early_len = (size_t)n - used;
				a->early = malloc(a->early_len);
				if (!a->early) {
					agent_set_state(a, AG_CLOSED);
					return;
				}
				memcpy(a->early, buf + used, a->early_len);
			}
			up_accept(a);
			return;
		}
		if (HTTP_PARSER_ERRNO(&a->parser) != HPE_OK || a->up->total > UPGRADE_MAX) {
			up_refuse(a, "400 Bad Request", NULL);
			return;
		}
	}
}

/* ---- WebSocket and messages ------------------------------------------------ */

static ssize_t ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
		       void *ud)
{
	struct hub_agent *a = ud;
	ssize_t n;

	(void)flags;
	if (a->early_off < a->early_len) {
		n = (ssize_t)(a->early_len - a->early_off);
		if ((size_t)n > len)
			n = (ssize_t)len;
		memcpy(buf, a->early + a->early_off, (size_t)n);
		a->early_off += (size_t)n;
		return n;
	}
	n = tls_recv(a->tls, buf, len);
	if (n > 0)
		return n;
	wslay_event_set_error(ctx, n == TLS_E_AGAIN ? WSLAY_ERR_WOULDBLOCK : WSLAY_ERR_CALLBACK_FAILURE);
	return -1;
}

static ssize_t ws_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
		       int flags, void *ud)
{
	struct hub_agent *a = ud;
	ssize_t n;

	(void)flags;
	n = tls_send(a->tls, data, len);
	if (n > 0)
		return n;
	wslay_event_set_error(ctx, n == TLS_E_AGAIN ? WSLAY_ERR_WOULDBLOCK : WSLAY_ERR_CALLBACK_FAILURE);
	return -1;
}

/* Fails the WebSocket with CODE: the close frame goes out, nothing more is read. */
static void ws_fail(struct hub_agent *a, uint16_t code, const char *why)
{
	log_msg(LOGL_WARN, "hub: agent %s (%s): %s; closing", a->ready ? a->name : "-",
		a->peer, why);
	wslay_event_queue_close(a->ws, code, NULL, 0);
	wslay_event_shutdown_read(a->ws);
}

/* Printable ASCII of 1..MAX bytes: names and versions end up in logs and JSON. */
static bool printable(const char *s, size_t max)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (n >= max || s[n] < 0x20 || s[n] > 0x7e)
			return false;
	return n > 0;
}

static void on_hello(struct hub_agent *a, json_t *m)
{
	const char *name = json_string_value(json_object_get(m, "agent"));
	const char *version = json_string_value(json_object_get(m, "version"));
	json_t *caps = json_object_get(m, "capabilities");
	json_t *url = json_object_get(m, "public_url");

	if (a->ready) {
		ws_fail(a, 1008, "second hello");
		return;
	}
	if (!name || !printable(name, 64) || !version || !printable(version, 64) ||
	    !json_is_array(caps) || json_array_size(caps) > 64 ||
	    (url && !json_is_null(url) &&
	     (!json_is_string(url) || !printable(json_string_value(url), 512) ||
	      strncmp(json_string_value(url), "https://", 8) != 0))) {
		ws_fail(a, 1008, "malformed hello");
		return;
	}
	snprintf(a->name, sizeof(a->name), "%s", name);
	a->version = strdup(version);
	a->public_url = json_is_string(url) ? strdup(json_string_value(url)) : NULL;
	a->caps = json_incref(caps);
	if (!a->version || (json_is_string(url) && !a->public_url)) {
		a->fatal = true;
		return;
	}
	a->ready = true;
	a->since = time(NULL);
	log_msg(LOGL_INFO, "hub: agent %s %s connected from %s", a->name, a->version, a->peer);
}

static void on_result(struct hub_agent *a, json_t *m)
{
	const char *id = json_string_value(json_object_get(m, "id"));
	struct hub_req **pp, *r;

	if (!id || !json_is_boolean(json_object_get(m, "ok"))) {
		ws_fail(a, 1008, "malformed result");
		return;
	}
	for (pp = &a->reqs; (r = *pp); pp = &r->next) {
		if (strcmp(r->id, id) == 0) {
			*pp = r->next;
			a->n_reqs--;
			a->served++;
			if (r->cb)
				r->cb(r->arg, m, NULL);
			free(r);
			return;
		}
	}
	/* Late (timed out) or unknown: there is nobody to give it to. */
	log_msg(LOGL_DEBUG, "hub: agent %s: result for unknown id dropped", a->name);
}

/* Queues M (taken) for agent A.  Used for answers to the agent's own requests;
 * hub_request() sends the hub's. */
static int agent_send(struct hub_agent *a, json_t *m)
{
	struct wslay_event_msg wm = { WSLAY_TEXT_FRAME, NULL, 0 };
	char *text = m ? json_dumps(m, JSON_COMPACT) : NULL;
	int rc;

	json_decref(m);
	if (!text)
		return -ENOMEM;
	wm.msg = (const uint8_t *)text;
	wm.msg_length = strlen(text);
	rc = wslay_event_queue_msg(a->ws, &wm);
	free(text);
	if (rc != 0)
		return -EPIPE;
	agent_flush(a);
	return 0;
}

void hub_agent_answer(struct hub_agent *a, const char *id, const char *err)
{
	if (err)
		agent_send(a, json_pack("{s:s, s:s, s:b, s:s}", "type", "result", "id", id, "ok", 0,
					"error", err));
	else
		agent_send(a, json_pack("{s:s, s:s, s:b}", "type", "result", "id", id, "ok", 1));
}

static void ws_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *m,
		   void *ud)
{
	struct hub_agent *a = ud;
	json_error_t jerr;
	const char *type;
	json_t *j;

	(void)ctx;
	if (m->opcode == WSLAY_BINARY_FRAME) {
		ws_fail(a, 1003, "binary frame");
		return;
	}
	if (m->opcode != WSLAY_TEXT_FRAME)
		return;
	j = json_loadb((const char *)m->msg, m->msg_length, JSON_REJECT_DUPLICATES, &jerr);
	type = json_string_value(json_object_get(j, "type"));
	if (!json_is_object(j) || !type) {
		ws_fail(a, 1007, "message is not a JSON object with a type");
	} else if (strcmp(type, "hello") == 0) {
		on_hello(a, j);
	} else if (!a->ready) {
		ws_fail(a, 1008, "message before hello");
	} else if (strcmp(type, "result") == 0) {
		on_result(a, j);
	} else if (strcmp(type, "session_check") == 0 || strcmp(type, "login") == 0) {
		hub_session_message(a->hub, a, type, j);
	} else {
		/* Newer agents may send more; ignoring unknown types keeps them working. */
		log_msg(LOGL_DEBUG, "hub: agent %s: unknown message type ignored", a->name);
	}
	json_decref(j);
}

/* Sends what wslay has queued, within the output bound. */
static void agent_flush(struct hub_agent *a)
{
	if (a->state != AG_OPEN || a->in_ws)
		return;
	a->in_ws = true;
	while (wslay_event_want_write(a->ws) && a->out_pending < OUT_HIGH && !a->fatal) {
		size_t before = a->out_pending;

		if (wslay_event_send(a->ws) != 0) {
			a->fatal = true;
			break;
		}
		if (a->out_pending == before)
			break;
	}
	a->in_ws = false;
	if (a->fatal)
		agent_set_state(a, AG_CLOSED);
	else if (!wslay_event_want_read(a->ws) && !wslay_event_want_write(a->ws))
		agent_set_state(a, AG_CLOSING);
}

static void agent_pump(struct hub_agent *a)
{
	int rc;

	if (a->state == AG_HANDSHAKE) {
		rc = tls_handshake(a->tls);
		if (rc == TLS_E_AGAIN)
			goto io;
		if (rc < 0) {
			log_msg(LOGL_WARN, "hub: %s: TLS handshake failed: %s", a->peer,
				tls_last_error(a->tls));
			agent_set_state(a, AG_CLOSED);
			return;
		}
		agent_set_state(a, AG_UPGRADE);
	}
	if (a->state == AG_UPGRADE)
		up_read(a);
	if (a->state == AG_OPEN && !a->in_ws) {
		a->in_ws = true;
		if (wslay_event_want_read(a->ws) && wslay_event_recv(a->ws) != 0)
			a->fatal = true;
		a->in_ws = false;
		if (a->fatal) {
			agent_set_state(a, AG_CLOSED);
			return;
		}
		agent_flush(a);
	}
io:
	if (a->state >= AG_CLOSING)
		return;
	if (a->eof && a->state != AG_OPEN) {
		agent_set_state(a, AG_CLOSED);
		return;
	}
	if (a->read_paused && a->in_len < IN_CAP) {
		a->read_paused = false;
		uv_read_start((uv_stream_t *)&a->tcp, on_alloc, on_read);
	}
}

/* ---- accepting --------------------------------------------------------------- */

static void on_connection(uv_stream_t *server, int status)
{
	struct hub *h = server->data;
	struct hub_agent *a;
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	if (status < 0)
		return;
	a = calloc(1, sizeof(*a));
	if (!a)
		return;
	a->hub = h;
	a->tcp.data = a;
	uv_tcp_init(h->loop, &a->tcp);
	if (uv_accept(server, (uv_stream_t *)&a->tcp) < 0 || h->n_agents >= HUB_MAX_AGENTS ||
	    tls_hub_server_new(h->creds, &a->tls) < 0) {
		a->state = AG_CLOSED;
		uv_close((uv_handle_t *)&a->tcp, on_close);
		return;
	}
	if (uv_tcp_getpeername(&a->tcp, (struct sockaddr *)&ss, &len) == 0) {
		char ip[INET6_ADDRSTRLEN] = "?";
		int port = 0;

		if (ss.ss_family == AF_INET) {
			uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip));
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof(ip));
			port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		}
		snprintf(a->peer, sizeof(a->peer), "%s:%d", ip, port);
	}
	a->up = calloc(1, sizeof(*a->up));
	if (!a->up) {
		a->state = AG_CLOSED;
		uv_close((uv_handle_t *)&a->tcp, on_close);
		return;
	}
	http_parser_init(&a->parser, HTTP_REQUEST);
	a->parser.data = a->up;
	tls_set_transport(a->tls, a, tls_push, tls_pull);
	uv_tcp_nodelay(&a->tcp, 1);
	a->opened_ms = a->last_rx_ms = a->last_ping_ms = uv_now(h->loop);
	a->next = h->agents;
	h->agents = a;
	h->n_agents++;
	uv_read_start((uv_stream_t *)&a->tcp, on_alloc, on_read);
}

int hub_agents_listen(struct hub *h, const char *hostport)
{
	struct sockaddr_storage ss;
	int rc;

	uv_tcp_init(h->loop, &h->agent_listener);
	h->agent_listener.data = h;
	if (hub_parse_hostport(hostport, &ss) < 0)
		return -EINVAL;
	rc = uv_tcp_bind(&h->agent_listener, (struct sockaddr *)&ss, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&h->agent_listener, 128, on_connection);
	if (rc < 0)
		fprintf(stderr, "dirbridge: --listen %s: %s\n", hostport, uv_strerror(rc));
	return rc;
}

/* ---- requests ------------------------------------------------------------------ */

static struct hub_agent *pick(struct hub *h, bool need_url, bool need_room)
{
	struct hub_agent *a, *cand[HUB_MAX_AGENTS];
	size_t n = 0, i, start;

	for (a = h->agents; a && n < HUB_MAX_AGENTS; a = a->next)
		if (a->ready && a->state == AG_OPEN && (!need_url || a->public_url))
			cand[n++] = a;
	if (n == 0)
		return NULL;
	start = h->rr++ % n;
	for (i = 0; i < n; i++) {
		a = cand[(start + i) % n];
		if (!need_room || a->n_reqs < HUB_MAX_PENDING)
			return a;
	}
	return NULL;
}

int hub_request(struct hub *h, json_t *msg, hub_req_cb cb, void *arg, struct hub_req **out)
{
	struct wslay_event_msg wm;
	struct hub_agent *a;
	struct hub_req *r;
	char *text;
	int rc;

	a = pick(h, false, false);
	if (!a)
		return -ENOENT;
	if (a->n_reqs >= HUB_MAX_PENDING && !(a = pick(h, false, true)))
		return -EBUSY;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	snprintf(r->id, sizeof(r->id), "%llu", (unsigned long long)++h->next_req);
	if (json_object_set_new(msg, "id", json_string(r->id)) < 0 ||
	    !(text = json_dumps(msg, JSON_COMPACT))) {
		free(r);
		return -ENOMEM;
	}
	wm.opcode = WSLAY_TEXT_FRAME;
	wm.msg = (const uint8_t *)text;
	wm.msg_length = strlen(text);
	rc = wslay_event_queue_msg(a->ws, &wm);
	/* The request may hold a password: wslay has its own copy now. */
	explicit_bzero(text, wm.msg_length);
	free(text);
	if (rc != 0) {
		free(r);
		return -EPIPE;
	}
	r->agent = a;
	r->cb = cb;
	r->arg = arg;
	r->deadline_ms = uv_now(h->loop) + HUB_REQUEST_TIMEOUT_S * 1000u;
	r->next = a->reqs;
	a->reqs = r;
	a->n_reqs++;
	*out = r;
	agent_flush(a);
	return 0;
}

void hub_request_cancel(struct hub_req *r)
{
	r->cb = NULL;
}

const struct hub_agent *hub_pick_front(struct hub *h)
{
	return pick(h, true, false);
}

const char *hub_agent_name(const struct hub_agent *a)
{
	return a->name;
}

const char *hub_agent_public_url(const struct hub_agent *a)
{
	return a->public_url;
}

json_t *hub_agents_json(const struct hub *h)
{
	const struct hub_agent *a;
	json_t *arr = json_array();
	char since[32];
	struct tm tm;

	for (a = h->agents; a && arr; a = a->next) {
		if (!a->ready)
			continue;
		gmtime_r(&a->since, &tm);
		strftime(since, sizeof(since), "%Y-%m-%dT%H:%M:%SZ", &tm);
		json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s?, s:O, s:s, s:I, s:I}",
			"name", a->name, "version", a->version, "connected_since", since,
			"public_url", a->public_url, "capabilities", a->caps, "peer", a->peer,
			"pending", (json_int_t)a->n_reqs, "served", (json_int_t)a->served));
	}
	return arr;
}

void hub_agents_tick(struct hub *h, uint64_t now)
{
	struct hub_agent *a, *next;
	struct hub_req **pp, *r;

	for (a = h->agents; a; a = next) {
		next = a->next;
		if (a->state < AG_OPEN || (a->state == AG_OPEN && !a->ready)) {
			/* Covers slow TLS, a dribbled upgrade request and a missing hello. */
			if (now - a->opened_ms > HUB_HANDSHAKE_S * 1000u) {
				log_msg(LOGL_WARN, "hub: %s: no hello within %d s; closing", a->peer,
					HUB_HANDSHAKE_S);
				agent_set_state(a, AG_CLOSED);
			}
			continue;
		}
		if (a->state == AG_CLOSING) {
			if (now - a->closing_ms > CLOSING_S * 1000u)
				agent_set_state(a, AG_CLOSED);
			continue;
		}
		/* Half-open links: an agent that sent nothing, not even a pong, for
		 * this long is gone, and its requests must fail now, not at timeout. */
		if (now - a->last_rx_ms > HUB_DEAD_AFTER_S * 1000u) {
			log_msg(LOGL_WARN, "hub: agent %s: silent for %d s; dropping", a->name,
				HUB_DEAD_AFTER_S);
			agent_set_state(a, AG_CLOSED);
			continue;
		}
		for (pp = &a->reqs; (r = *pp);) {
			if (now < r->deadline_ms) {
				pp = &r->next;
				continue;
			}
			*pp = r->next;
			a->n_reqs--;
			if (r->cb)
				r->cb(r->arg, NULL, "timeout");
			free(r);
		}
		if (now - a->last_ping_ms >= HUB_PING_INTERVAL_S * 1000u) {
			struct wslay_event_msg ping = { WSLAY_PING, NULL, 0 };

			a->last_ping_ms = now;
			wslay_event_queue_msg(a->ws, &ping);
			agent_flush(a);
		}
	}
}

void hub_agents_close_all(struct hub *h)
{
	while (h->agents)
		agent_set_state(h->agents, AG_CLOSED);
}
