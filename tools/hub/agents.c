/*
 * The hub's agent endpoint: TLS (tls_hub_server_new) over a net_stream, the
 * HTTP upgrade to WebSocket (http-parser; RFC 6455 section 4.2), then frames
 * through net/ws.c carrying one JSON message each (docs/protocol.md).
 *
 * Each connection is one struct hub_agent whose state only agent_set_state()
 * changes.  Bytes flow socket -> net_stream -> TLS -> http-parser or the
 * WebSocket, and back.  Nothing is unbounded: unread ciphertext is capped by
 * IN_CAP, unsent writes by OUT_HIGH (no frame goes out beyond it), a message
 * is at most HUB_MAX_MSG, and an agent has at most HUB_MAX_PENDING requests
 * in flight.
 */
#include <errno.h>
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/cfg.h"
#include "net/net.h"
#include "tools/hub/hub.h"

#define IN_CAP		(64u << 10)
#define OUT_HIGH	(1u << 20)
/* Above OUT_HIGH by more than one TLS record: a record TLS took is never refused. */
#define OUT_MAX		(OUT_HIGH + (64u << 10))
#define UPGRADE_MAX	(16u << 10)	/* the whole upgrade request */
#define CLOSING_S	5

enum ag_state {
	AG_NEW = 0,	/* accepted, not yet linked or handshaking */
	AG_HANDSHAKE,	/* TLS handshake */
	AG_UPGRADE,	/* reading the HTTP upgrade request */
	AG_OPEN,	/* WebSocket frames; ready once hello arrived */
	AG_CLOSING,	/* flushing what is queued, then shutdown */
	AG_CLOSED,	/* stream closing; freed in its close callback */
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
	struct net_stream *s;
	char peer[NET_ADDR_MAX];

	http_parser parser;
	struct hub_upgrade *up;	/* only while AG_UPGRADE */

	struct net_ws *ws;
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

static void agent_pump(struct hub_agent *a);
static void agent_flush(struct hub_agent *a);

/* ---- state ---------------------------------------------------------------- */

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
	case AG_OPEN:
		free(a->up);
		a->up = NULL;
		break;
	case AG_CLOSING:
	case AG_CLOSED:
		if (a->ready)
			log_msg(LOGL_INFO, "hub: agent %s (%s) disconnected", a->name, a->peer);
		a->ready = false;
		fail_requests(a, "directory_unavailable");
		if (st == AG_CLOSING) {
			/* A closing agent stays listed so that hub_agents_tick() can
			 * cut a peer that never lets the shutdown complete. */
			a->closing_ms = uv_now(a->hub->loop);
			if (old >= AG_UPGRADE)
				tls_bye(net_stream_tls(a->s));
			if (net_stream_shutdown(a->s) < 0)
				agent_set_state(a, AG_CLOSED);
			break;
		}
		unlink_agent(a);
		/* What TLS said last (an alert, a refusal) goes out before the close. */
		(void)net_stream_flush(a->s);
		net_stream_close(a->s, false);
		break;
	default:
		break;
	}
}

/* ---- transport ------------------------------------------------------------ */

static void on_data(void *owner)
{
	struct hub_agent *a = owner;

	if (a->state >= AG_CLOSING) {
		/* Only the shutdown is awaited; what the peer still sends is dropped. */
		net_stream_discard(a->s);
		return;
	}
	if (!net_stream_eof(a->s))
		a->last_rx_ms = uv_now(a->hub->loop);
	agent_pump(a);
}

static void on_drain(void *owner)
{
	agent_flush(owner);
}

static void on_error(void *owner, int err)
{
	struct hub_agent *a = owner;

	log_msg(LOGL_DEBUG, "hub: %s: %s", a->peer, net_strerror(err));
	agent_set_state(a, AG_CLOSED);
}

static void on_shutdown(void *owner, int status)
{
	(void)status;
	agent_set_state(owner, AG_CLOSED);
}

static void on_close(void *owner)
{
	struct hub_agent *a = owner;

	net_ws_free(a->ws);
	free(a->up);
	free(a->version);
	free(a->public_url);
	json_decref(a->caps);
	free(a);
}

static const struct net_stream_cbs stream_cbs = {
	.on_data = on_data,
	.on_drain = on_drain,
	.on_error = on_error,
	.on_close = on_close,
	.on_shutdown = on_shutdown,
};

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
	tls_send(net_stream_tls(a->s), buf, (size_t)n);
	agent_set_state(a, AG_CLOSING);
}

static void ws_msg(void *owner, const struct net_ws_msg *m);

/* EARLY (LEN bytes) is what followed the request in the same records: frames
 * the agent sent before our 101 arrived, which belong to the WebSocket. */
static void up_accept(struct hub_agent *a, const char *early, size_t early_len)
{
	const struct net_ws_conf conf = {
		.server = true,
		.max_msg = HUB_MAX_MSG,
		.out_high = OUT_HIGH,
		.peer_name = "agent",
		.on_msg = ws_msg,
		.owner = a,
	};
	struct hub_upgrade *u = a->up;
	const char *auth = u->h.val[H_AUTH];
	char key[NET_WS_ACCEPT_SIZE], buf[256];
	int n;

	u->url[u->url_len] = '\0';
	if (a->parser.method != HTTP_GET || strcmp(u->url, "/agent/v1") != 0) {
		up_refuse(a, "404 Not Found", NULL);
		return;
	}
	if (strncasecmp(auth, "Bearer ", 7) != 0 || u->h.val_len[H_AUTH] <= 7 ||
	    !hub_token_ok(a->hub, auth + 7, u->h.val_len[H_AUTH] - 7)) {
		explicit_bzero(u->h.val[H_AUTH], sizeof(u->h.val[H_AUTH]));
		up_refuse(a, "401 Unauthorized", "WWW-Authenticate: Bearer\r\n");
		return;
	}
	explicit_bzero(u->h.val[H_AUTH], sizeof(u->h.val[H_AUTH]));
	if (strcmp(u->h.val[H_VERSION], "13") != 0) {
		up_refuse(a, "426 Upgrade Required", "Sec-WebSocket-Version: 13\r\n");
		return;
	}
	if (!net_http_has_token(u->h.val[H_UPGRADE], "websocket") ||
	    !net_http_has_token(u->h.val[H_CONNECTION], "upgrade") ||
	    net_ws_accept(u->h.val[H_KEY], u->h.val_len[H_KEY], key) < 0) {
		up_refuse(a, "400 Bad Request", NULL);
		return;
	}
	if (net_ws_new(a->s, &conf, early, early_len, &a->ws) < 0) {
		agent_set_state(a, AG_CLOSED);
		return;
	}
	n = snprintf(buf, sizeof(buf),
		     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
		     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", key);
	if (tls_send(net_stream_tls(a->s), buf, (size_t)n) != n) {
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
		n = tls_recv(net_stream_tls(a->s), buf, sizeof(buf));
		if (n == TLS_E_AGAIN)
			return;
		if (n <= 0) {
			agent_set_state(a, AG_CLOSED);
			return;
		}
		a->up->total += (size_t)n;
		used = http_parser_execute(&a->parser, &hub_upgrade_settings, buf, (size_t)n);
		if (a->up->done) {
			up_accept(a, buf + used, (size_t)n - used);
			explicit_bzero(buf, (size_t)n);
			return;
		}
		explicit_bzero(buf, (size_t)n);
		if (HTTP_PARSER_ERRNO(&a->parser) != HPE_OK || a->up->total > UPGRADE_MAX) {
			up_refuse(a, "400 Bad Request", NULL);
			return;
		}
	}
}

/* ---- WebSocket and messages ------------------------------------------------ */

/* Fails the WebSocket with CODE: the close frame goes out, nothing more is read. */
static void ws_fail(struct hub_agent *a, enum net_ws_close code, const char *why)
{
	log_msg(LOGL_WARN, "hub: agent %s (%s): %s; closing", a->ready ? a->name : "-",
		a->peer, why);
	net_ws_fail(a->ws, code, why);
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
		ws_fail(a, NET_WS_POLICY, "second hello");
		return;
	}
	if (!name || !printable(name, 64) || !version || !printable(version, 64) ||
	    !json_is_array(caps) || json_array_size(caps) > 64 ||
	    (url && !json_is_null(url) &&
	     (!json_is_string(url) || !printable(json_string_value(url), 512) ||
	      strncmp(json_string_value(url), "https://", 8) != 0))) {
		ws_fail(a, NET_WS_POLICY, "malformed hello");
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
		ws_fail(a, NET_WS_POLICY, "malformed result");
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

/* Queues M (borrowed) for agent A as one text message; send with agent_flush(). */
static int agent_queue(struct hub_agent *a, const json_t *m)
{
	char *text = json_dumps(m, JSON_COMPACT);
	size_t len;
	int rc;

	if (!text)
		return -ENOMEM;
	len = strlen(text);
	rc = net_ws_send_text(a->ws, text, len);
	/* The message may hold a password: the WebSocket has its own copy now. */
	explicit_bzero(text, len);
	free(text);
	return rc < 0 ? -EPIPE : 0;
}

/* Sends M (taken) to agent A.  Used for answers to the agent's own requests;
 * hub_request() sends the hub's. */
static int agent_send(struct hub_agent *a, json_t *m)
{
	int rc = m ? agent_queue(a, m) : -ENOMEM;

	json_decref(m);
	if (rc == 0)
		agent_flush(a);
	return rc;
}

void hub_agent_answer(struct hub_agent *a, const char *id, const char *err)
{
	if (err)
		agent_send(a, json_pack("{s:s, s:s, s:b, s:s}", "type", "result", "id", id, "ok", 0,
					"error", err));
	else
		agent_send(a, json_pack("{s:s, s:s, s:b}", "type", "result", "id", id, "ok", 1));
}

static void ws_msg(void *owner, const struct net_ws_msg *m)
{
	struct hub_agent *a = owner;
	json_error_t jerr;
	const char *type;
	json_t *j;

	if (m->op == NET_WS_BINARY) {
		ws_fail(a, NET_WS_UNSUPPORTED, "binary frame");
		return;
	}
	if (m->op != NET_WS_TEXT)
		return;
	j = json_loadb((const char *)m->data, m->len, JSON_REJECT_DUPLICATES, &jerr);
	type = json_string_value(json_object_get(j, "type"));
	if (!json_is_object(j) || !type) {
		ws_fail(a, NET_WS_BAD_DATA, "message is not a JSON object with a type");
	} else if (strcmp(type, "hello") == 0) {
		on_hello(a, j);
	} else if (!a->ready) {
		ws_fail(a, NET_WS_POLICY, "message before hello");
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

/* Sends what is queued, within the output bound; a WebSocket whose closing
 * handshake is over moves on to the TCP shutdown. */
static void agent_flush(struct hub_agent *a)
{
	if (a->state != AG_OPEN || net_ws_busy(a->ws))
		return;
	if (a->fatal || net_ws_flush(a->ws) < 0)
		agent_set_state(a, AG_CLOSED);
	else if (net_ws_done(a->ws))
		agent_set_state(a, AG_CLOSING);
}

static void agent_pump(struct hub_agent *a)
{
	struct tls_sess *tls = net_stream_tls(a->s);
	int rc;

	if (a->state == AG_HANDSHAKE) {
		rc = tls_handshake(tls);
		if (rc == TLS_E_AGAIN)
			goto io;
		if (rc < 0) {
			log_msg(LOGL_WARN, "hub: %s: TLS handshake failed: %s", a->peer,
				tls_last_error(tls));
			agent_set_state(a, AG_CLOSED);
			return;
		}
		agent_set_state(a, AG_UPGRADE);
	}
	if (a->state == AG_UPGRADE)
		up_read(a);
	if (a->state == AG_OPEN) {
		if (net_ws_pump(a->ws) < 0 || a->fatal) {
			agent_set_state(a, AG_CLOSED);
			return;
		}
		agent_flush(a);
	}
io:
	if (a->state < AG_CLOSING && net_stream_eof(a->s) && a->state != AG_OPEN)
		agent_set_state(a, AG_CLOSED);
}

/* ---- accepting --------------------------------------------------------------- */

static void on_connection(uv_stream_t *server, int status)
{
	const struct net_stream_conf conf = {
		.cbs = &stream_cbs,
		.max_in = IN_CAP,
		.max_out = OUT_MAX,
	};
	struct hub *h = server->data;
	struct net_stream_conf c = conf;
	struct hub_agent *a;
	struct tls_sess *tls = NULL;

	if (status < 0)
		return;
	a = calloc(1, sizeof(*a));
	if (!a)
		return;
	a->hub = h;
	c.owner = a;
	if (net_stream_accept(server, &c, &a->s) < 0) {
		free(a);
		return;
	}
	/* From here the stream owns A: it is freed in on_close. */
	net_stream_peer(a->s, a->peer, sizeof(a->peer), true);
	a->up = malloc(sizeof(*a->up));
	if (a->up)
		hub_upgrade_init(a->up);
	if (h->n_agents >= HUB_MAX_AGENTS || !a->up || tls_hub_server_new(h->creds, &tls) < 0) {
		agent_set_state(a, AG_CLOSED);
		return;
	}
	net_stream_set_tls(a->s, tls);
	http_parser_init(&a->parser, HTTP_REQUEST);
	a->parser.data = a->up;
	a->opened_ms = a->last_rx_ms = a->last_ping_ms = uv_now(h->loop);
	a->next = h->agents;
	h->agents = a;
	h->n_agents++;
	agent_set_state(a, AG_HANDSHAKE);
	if (net_stream_read_start(a->s) < 0)
		agent_set_state(a, AG_CLOSED);
}

int hub_agents_listen(struct hub *h, const char *hostport)
{
	return hub_listen(h, &h->agent_listener, hostport, 128, on_connection, "--listen");
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
	struct hub_agent *a;
	struct hub_req *r;
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
	if (json_object_set_new(msg, "id", json_string(r->id)) < 0) {
		free(r);
		return -ENOMEM;
	}
	rc = agent_queue(a, msg);
	if (rc < 0) {
		free(r);
		return rc;
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
			a->last_ping_ms = now;
			net_ws_ping(a->ws);
			agent_flush(a);
		}
	}
}

void hub_agents_close_all(struct hub *h)
{
	while (h->agents)
		agent_set_state(h->agents, AG_CLOSED);
}
