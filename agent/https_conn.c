/*
 * One front-facing connection: its state machine and timers, the transport
 * between the libuv stream and GnuTLS (push/pull callbacks, coalesced writes,
 * the server's shared read buffer, bounded input), reading requests into
 * http_req.c, queueing responses, and eviction at the connection cap.  The
 * routes are in routes.c; the structs and the rules they keep are in
 * https_internal.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent/https_internal.h"

static void conn_run(struct conn *c);

/* ---- transport: libuv stream <-> GnuTLS ------------------------------------ */

struct wreq {
	uv_write_t req;
	struct conn *c;
	struct buf data;	/* ciphertext; wiped when written */
};

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
		if (c->keep_alive && c->srv->state != H_STOPPING)
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
 * -ENOMEM, or libuv's error when the stream refused it (the caller closes the
 * connection). */
static int conn_flush(struct conn *c)
{
	struct wreq *w;
	uv_buf_t b;
	int rc;

	if (c->wout.len == 0)
		return 0;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->c = c;
	w->data = c->wout;
	c->wout = (struct buf){ 0 };
	b = uv_buf_init(w->data.p, (unsigned)w->data.len);
	if ((rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write)) < 0) {
		buf_wipe(&w->data);
		free(w);
		return rc;
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

void conn_accept(struct https *h, uv_stream_t *server)
{
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	struct conn *c;
	bool room;

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

