/*
 * One front-facing connection: its state machine and timers, its transport
 * (a net_stream: libuv TCP carrying the TLS session, bounded both ways, with
 * coalesced writes and the loop's shared read buffer), reading requests into
 * http_req.c, queueing responses, and eviction at the connection cap.  The
 * routes are in routes.c; the structs and the rules they keep are in
 * https_internal.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent/https_internal.h"

static void conn_run(struct conn *c);

/* ---- transport: the connection's net_stream ---------------------------------- */

/* The stream (net/) carries the TLS session: GnuTLS pulls from the loop's
 * shared read buffer, and what it pushes during one call goes out as one
 * write.  Only what the session left unread stays with the connection, up to
 * MAX_CIPHERTEXT; at most MAX_PENDING_OUT ciphertext waits to be written. */

void conn_unref(struct conn *c)
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
	buf_wipe(&c->rest);
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

/* New ciphertext, or EOF: the state machine runs on it.  What the connection
 * pushed meanwhile is flushed by the stream when this returns. */
static void on_data(void *owner)
{
	struct conn *c = owner;
	bool eof = net_stream_eof(c->ns);

	if (c->state == C_CLOSED)
		return;
	if (c->state == C_LINGER) {
		net_stream_discard(c->ns);
		if (eof)
			conn_set_state(c, C_CLOSED);
		return;
	}
	conn_run(c);
	if (eof && c->state != C_CLOSED && c->state != C_CHECK_SESSION &&
	    c->state != C_WAIT_DIRECTORY && c->state != C_REPORT_LOGIN &&
	    c->state != C_WRITE_RESPONSE)
		conn_set_state(c, C_CLOSED);
}

/* Every write completed: a response is out. */
static void on_drain(void *owner)
{
	struct conn *c = owner;

	if (c->state != C_WRITE_RESPONSE)
		return;
	if (c->keep_alive && c->srv->state != H_STOPPING)
		conn_set_state(c, C_READ_REQUEST);
	else
		conn_set_state(c, C_LINGER);
	conn_run(c);
}

/* A write failed, or more ciphertext than MAX_CIPHERTEXT was left unread. */
static void on_error(void *owner, int err)
{
	struct conn *c = owner;

	(void)err;
	conn_set_state(c, C_CLOSED);
}

/* The stream and its TLS session are gone. */
static void on_close(void *owner)
{
	struct conn *c = owner;

	c->ns = NULL;
	c->tls = NULL;
	conn_unref(c);
}

static const struct net_stream_cbs conn_cbs = {
	.on_data = on_data,
	.on_drain = on_drain,
	.on_error = on_error,
	.on_close = on_close,
};

/* ---- state ------------------------------------------------------------------ */

static void on_timer_closed(uv_handle_t *handle)
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

void conn_set_state(struct conn *c, enum conn_state st)
{
	enum conn_state old = c->state;

	if (old == C_CLOSED)
		return;
	c->state = st;
	switch (st) {
	case C_NEW:
		break;
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
		(void)net_stream_read_start(c->ns);
		break;
	case C_CHECK_SESSION:
	case C_WAIT_DIRECTORY:
	case C_REPORT_LOGIN:
		/* The directory bounds its own requests (timeout_ms), the tunnel
		 * its requests to the hub (CALLS_TIMEOUT_MS, or the link drops). */
		uv_timer_stop(&c->timer);
		net_stream_read_stop(c->ns);
		break;
	case C_WRITE_RESPONSE:
		uv_timer_start(&c->timer, on_timeout, WRITE_MS, 0);
		net_stream_read_stop(c->ns);
		break;
	case C_LINGER:
		/* Closing at once while the client still sends would reset the
		 * connection and could destroy the response in flight; shut down
		 * our side and discard input for a moment instead. */
		if (c->tls)
			tls_bye(c->tls);
		if (net_stream_shutdown(c->ns) < 0) {
			conn_set_state(c, C_CLOSED);
			break;
		}
		uv_timer_start(&c->timer, on_timeout, LINGER_MS, 0);
		(void)net_stream_read_start(c->ns);
		/* A client that already closed its side has nothing more to send. */
		if (net_stream_eof(c->ns))
			conn_set_state(c, C_CLOSED);
		break;
	case C_CLOSED:
		c->srv->n_active--;
		c->srv->m.open_conns = c->srv->n_active;
		uv_close((uv_handle_t *)&c->timer, on_timer_closed);
		net_stream_close(c->ns, false);
		break;
	}
}

/* ---- responses -------------------------------------------------------------- */

void respond(struct conn *c, unsigned status, const char *ctype, const char *extra,
	     const char *body, size_t len)
{
	struct https *h = c->srv;
	struct buf head = { 0 };
	bool head_only = c->parser.method == HTTP_HEAD;
	size_t off;

	if (status >= 400 && status != 401 && status != 403 && status != 404 && status != 503)
		c->keep_alive = false;
	if (h->state == H_STOPPING)
		c->keep_alive = false;
	h->m.requests[c->route][metrics_status_slot(status)]++;
	if (page_response_head(&head, status, ctype, len, extra, c->keep_alive) < 0 ||
	    (!head_only && buf_add(&head, body, len) < 0)) {
		buf_wipe(&head);
		conn_set_state(c, C_CLOSED);
		return;
	}
	conn_set_state(c, C_WRITE_RESPONSE);
	if (!c->tls) {
		buf_wipe(&head);
		conn_set_state(c, C_CLOSED);
		return;
	}
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
	if (net_stream_flush(c->ns) < 0) {
		conn_set_state(c, C_CLOSED);
		return;
	}
	if (net_stream_out_pending(c->ns) == 0) {
		conn_set_state(c, c->keep_alive ? C_READ_REQUEST : C_LINGER);
		conn_run(c);
	}
}

void respond_text(struct conn *c, unsigned status, const char *text)
{
	respond(c, status, "text/plain; charset=utf-8", NULL, text, strlen(text));
}

/* ---- requests --------------------------------------------------------------- */

/* Feeds plaintext to the parser.  Returns bytes consumed (the rest belongs to
 * a pipelined request), or -EBADMSG with an error response already queued. */
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
	return -EBADMSG;
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
				used = -ENOMEM;
			explicit_bzero(buf, len);
			if (used < 0)
				return;
		}
		if (c->req.complete) {
			route_dispatch(c);
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
			h->m.handshake_fail_by[tls_fail_reason(c->tls)]++;
			log_msg(LOGL_DEBUG, "https: %s: handshake failed: %s", c->peer,
				tls_last_error(c->tls));
			/* The alert goes out before the close (uv_write tries at once). */
			(void)net_stream_flush(c->ns);
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
	if (c->state != C_CLOSED && net_stream_flush(c->ns) < 0)
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

void conn_accept(struct https *h, uv_stream_t *server)
{
	struct net_stream_conf conf = {
		.cbs = &conn_cbs, .max_in = MAX_CIPHERTEXT, .max_out = MAX_PENDING_OUT,
	};
	struct sockaddr_storage ss;
	struct tls_sess *tls = NULL;
	struct conn *c;
	bool room;

	room = h->n_active < h->max_conns || evict_one(h);
	c = calloc(1, sizeof(*c));
	if (!c)
		return;
	c->srv = h;
	conf.owner = c;
	/* A connection that cannot be accepted leaves nothing to close. */
	if (net_stream_accept(server, &conf, &c->ns) < 0) {
		free(c);
		return;
	}
	c->refs = 1;			/* the stream, until its on_close */
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
	if (!room) {
		conn_set_state(c, C_CLOSED);
		return;
	}
	h->m.open_conns = h->n_active;
	h->m.accepted++;
	/* The decision to ask for a certificate rests on the TCP peer address
	 * alone, made before the handshake; no header can change it.  The
	 * address alone (an IPv4-mapped one as IPv4) is the throttle key. */
	if (net_stream_peer_addr(c->ns, &ss) < 0) {
		conn_set_state(c, C_CLOSED);
		return;
	}
	(void)net_addr_text((const struct sockaddr *)&ss, c->peer, sizeof(c->peer), true);
	(void)net_addr_text((const struct sockaddr *)&ss, c->ip, sizeof(c->ip), false);
	c->cert_requested = cfg_ranges_match(h->cfg->https.ranges, h->cfg->https.n_ranges,
					     (const struct sockaddr *)&ss);
	if (tls_server_session(h->tls, c->cert_requested, &tls) < 0) {
		log_msg(LOGL_ERROR, "https: %s: cannot create a TLS session", c->peer);
		conn_set_state(c, C_CLOSED);
		return;
	}
	/* The stream owns the session from here and frees it with itself. */
	net_stream_set_tls(c->ns, tls);
	c->tls = tls;
	conn_set_state(c, C_HANDSHAKE);
	(void)net_stream_read_start(c->ns);
}
