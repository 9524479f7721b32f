/*
 * struct net_stream: one libuv TCP handle carrying one TLS session through
 * push/pull callbacks, bounded in both directions (see net.h).
 *
 * Bytes flow socket -> the thread's shared read buffer -> TLS pull (during
 * on_data) -> the owner; what TLS left unread is copied into s->in before
 * libuv reads again.  The other way, TLS push -> s->out -> one uv_write per
 * net_stream_flush().  The stream's own state moves NEW -> CONNECTING -> OPEN
 * -> CLOSING, perhaps through FAILED (accepted streams skip CONNECTING); only
 * ns_set_state() changes it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"

#define NET_READ_BUF (64 * 1024)

enum ns_state {
	NS_NEW = 0,
	NS_CONNECTING,	/* uv_tcp_connect in flight */
	NS_OPEN,
	NS_FAILED,	/* a write failed or a bound was hit: only closing is left */
	NS_CLOSING,	/* uv_close called; freed in its callback */
};

/* A growable byte buffer; wiped before it is freed (it holds ciphertext of
 * passwords, and plaintext never, but a key schedule bug should not show). */
struct nbuf {
	char *p;
	size_t len, cap;
};

struct net_stream {
	uv_tcp_t tcp;
	uv_connect_t connect;
	uv_shutdown_t shut;
	const struct net_stream_cbs *cbs;
	void *owner;
	size_t max_in, max_out;
	struct tls_sess *tls;
	enum ns_state state;
	bool silent;		/* never returned to an owner: no callbacks */
	bool reading, eof;
	/* Input: while on_data runs with nothing kept from earlier reads, TLS
	 * pulls straight from the shared buffer (chunk); otherwise from in. */
	const char *chunk;
	size_t chunk_len;
	struct nbuf in;
	size_t in_off;
	/* Output: collected since the last flush, and handed to libuv. */
	struct nbuf out;
	size_t inflight;
	unsigned writes;
};

struct wreq {
	uv_write_t req;
	struct net_stream *s;
	struct nbuf data;
};

/* Every read of the thread lands here; on_read() copies what TLS did not
 * consume into the stream before libuv reads again, so no idle stream carries
 * a read buffer of its own.  Loops never nest callbacks, so one per thread is
 * enough for any number of streams and loops. */
static _Thread_local char shared_rbuf[NET_READ_BUF];

static void nbuf_wipe(struct nbuf *b)
{
	if (b->p) {
		explicit_bzero(b->p, b->cap);
		free(b->p);
	}
	*b = (struct nbuf){ 0 };
}

static int nbuf_add(struct nbuf *b, const void *data, size_t len)
{
	if (len > b->cap - b->len) {
		size_t cap = b->cap ? b->cap : 4096;
		char *p;

		while (cap - b->len < len) {
			if (cap > SIZE_MAX / 2)
				return NET_E_NOMEM;
			cap *= 2;
		}
		/* Not realloc: the old copy would be freed without wiping. */
		p = malloc(cap);
		if (!p)
			return NET_E_NOMEM;
		if (b->len)
			memcpy(p, b->p, b->len);
		if (b->p) {
			explicit_bzero(b->p, b->cap);
			free(b->p);
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, len);
	b->len += len;
	return 0;
}

static void ns_set_state(struct net_stream *s, enum ns_state st)
{
	s->state = st;
}

static bool ns_quiet(const struct net_stream *s)
{
	return s->state == NS_CLOSING || s->silent;
}

/* ---- lifetime ------------------------------------------------------------ */

static void on_closed(uv_handle_t *h)
{
	struct net_stream *s = h->data;

	/* libuv has completed (cancelled) every write and the shutdown by now. */
	if (!s->silent && s->cbs->on_close)
		s->cbs->on_close(s->owner);
	if (s->tls)
		tls_free(s->tls);
	nbuf_wipe(&s->in);
	nbuf_wipe(&s->out);
	explicit_bzero(s, sizeof(*s));
	free(s);
}

void net_stream_close(struct net_stream *s, bool bye)
{
	if (s->state == NS_CLOSING)
		return;
	if (bye && s->tls && s->state != NS_FAILED) {
		tls_bye(s->tls);
		/* uv_write tries at once: the alert goes out before the close. */
		(void)net_stream_flush(s);
	}
	ns_set_state(s, NS_CLOSING);
	if (s->reading)
		uv_read_stop((uv_stream_t *)&s->tcp);
	s->reading = false;
	uv_close((uv_handle_t *)&s->tcp, on_closed);
}

bool net_stream_closing(const struct net_stream *s)
{
	return s->state == NS_CLOSING;
}

/* A stream that never reached its owner goes without a callback. */
static void close_silently(struct net_stream *s)
{
	s->silent = true;
	net_stream_close(s, false);
}

static struct net_stream *stream_new(uv_loop_t *loop, const struct net_stream_conf *conf)
{
	struct net_stream *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	if (uv_tcp_init(loop, &s->tcp) < 0) {
		free(s);
		return NULL;
	}
	s->tcp.data = s;
	s->connect.data = s;
	s->shut.data = s;
	s->cbs = conf->cbs;
	s->owner = conf->owner;
	s->max_in = conf->max_in;
	s->max_out = conf->max_out;
	return s;
}

int net_stream_accept(uv_stream_t *listener, const struct net_stream_conf *conf,
		      struct net_stream **out)
{
	struct net_stream *s = stream_new(listener->loop, conf);
	int rc;

	if (!s)
		return NET_E_NOMEM;
	rc = uv_accept(listener, (uv_stream_t *)&s->tcp);
	if (rc < 0) {
		close_silently(s);
		return rc;
	}
	uv_tcp_nodelay(&s->tcp, 1);
	ns_set_state(s, NS_OPEN);
	*out = s;
	return 0;
}

static void on_connected(uv_connect_t *req, int status)
{
	struct net_stream *s = req->data;

	if (ns_quiet(s))
		return;
	if (status == 0) {
		uv_tcp_nodelay(&s->tcp, 1);
		ns_set_state(s, NS_OPEN);
	}
	if (s->cbs->on_connect)
		s->cbs->on_connect(s->owner, status);
}

int net_stream_connect(uv_loop_t *loop, const struct sockaddr *addr,
		       const struct net_stream_conf *conf, struct net_stream **out)
{
	struct net_stream *s = stream_new(loop, conf);
	int rc;

	if (!s)
		return NET_E_NOMEM;
	ns_set_state(s, NS_CONNECTING);
	rc = uv_tcp_connect(&s->connect, &s->tcp, addr, on_connected);
	if (rc < 0) {
		close_silently(s);
		return rc;
	}
	*out = s;
	return 0;
}

uv_loop_t *net_stream_loop(const struct net_stream *s)
{
	return s->tcp.loop;
}

/* ---- output -------------------------------------------------------------- */

static void on_write(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;
	struct net_stream *s = w->s;

	s->inflight -= w->data.len;
	s->writes--;
	nbuf_wipe(&w->data);
	free(w);
	if (ns_quiet(s) || s->state == NS_FAILED)
		return;
	if (status < 0) {
		ns_set_state(s, NS_FAILED);
		net_stream_read_stop(s);
		if (s->cbs->on_error)
			s->cbs->on_error(s->owner, status);
		return;
	}
	if (s->writes == 0 && s->out.len == 0 && s->cbs->on_drain)
		s->cbs->on_drain(s->owner);
}

/* GnuTLS's output: collected in s->out, one record at a time, until the
 * owner's call returns and net_stream_flush() writes it; a push never blocks. */
static ssize_t stream_push(void *ctx, const void *buf, size_t len)
{
	struct net_stream *s = ctx;

	if (s->state == NS_CLOSING || s->state == NS_FAILED) {
		errno = EPIPE;
		return -1;
	}
	if (len > s->max_out || s->out.len + s->inflight > s->max_out - len ||
	    nbuf_add(&s->out, buf, len) < 0) {
		errno = ENOMEM;
		return -1;
	}
	return (ssize_t)len;
}

int net_stream_flush(struct net_stream *s)
{
	struct wreq *w;
	uv_buf_t b;
	int rc;

	if (s->out.len == 0)
		return 0;
	if (s->state == NS_CLOSING || s->state == NS_FAILED) {
		nbuf_wipe(&s->out);
		return NET_E_CLOSED;
	}
	w = calloc(1, sizeof(*w));
	if (!w)
		return NET_E_NOMEM;
	w->s = s;
	w->data = s->out;
	s->out = (struct nbuf){ 0 };
	b = uv_buf_init(w->data.p, (unsigned)w->data.len);
	rc = uv_write(&w->req, (uv_stream_t *)&s->tcp, &b, 1, on_write);
	if (rc < 0) {
		nbuf_wipe(&w->data);
		free(w);
		return rc;
	}
	s->inflight += w->data.len;
	s->writes++;
	return 0;
}

size_t net_stream_out_pending(const struct net_stream *s)
{
	return s->out.len + s->inflight;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct net_stream *s = req->data;

	if (ns_quiet(s))
		return;
	if (s->cbs->on_shutdown)
		s->cbs->on_shutdown(s->owner, status);
}

int net_stream_shutdown(struct net_stream *s)
{
	int rc;

	if (s->state == NS_CLOSING)
		return NET_E_CLOSED;
	rc = net_stream_flush(s);
	if (rc < 0)
		return rc;
	return uv_shutdown(&s->shut, (uv_stream_t *)&s->tcp, on_shutdown);
}

/* ---- input --------------------------------------------------------------- */

size_t net_stream_in_pending(const struct net_stream *s)
{
	return s->chunk_len + (s->in.len - s->in_off);
}

void net_stream_discard(struct net_stream *s)
{
	s->chunk_len = 0;
	s->in_off = 0;
	nbuf_wipe(&s->in);
}

bool net_stream_eof(const struct net_stream *s)
{
	return s->eof;
}

/* GnuTLS's input: the current read while on_data runs, else what was kept. */
static ssize_t stream_pull(void *ctx, void *buf, size_t len)
{
	struct net_stream *s = ctx;
	size_t avail;

	if (s->chunk_len) {
		if (len > s->chunk_len)
			len = s->chunk_len;
		memcpy(buf, s->chunk, len);
		s->chunk += len;
		s->chunk_len -= len;
		return (ssize_t)len;
	}
	avail = s->in.len - s->in_off;
	if (avail == 0) {
		if (s->eof)
			return 0;
		errno = EAGAIN;
		return -1;
	}
	if (len > avail)
		len = avail;
	memcpy(buf, s->in.p + s->in_off, len);
	s->in_off += len;
	/* Consumed ciphertext leaves nothing to keep between reads. */
	if (s->in_off == s->in.len) {
		s->in_off = 0;
		nbuf_wipe(&s->in);
	}
	return (ssize_t)len;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	(void)h;
	(void)suggested;
	*b = uv_buf_init(shared_rbuf, sizeof(shared_rbuf));
}

static void stream_fail(struct net_stream *s, int err)
{
	ns_set_state(s, NS_FAILED);
	net_stream_read_stop(s);
	if (s->cbs->on_error)
		s->cbs->on_error(s->owner, err);
}

static void on_read(uv_stream_t *h, ssize_t n, const uv_buf_t *b)
{
	struct net_stream *s = h->data;
	bool lost = false;
	int rc;

	if (ns_quiet(s) || s->state == NS_FAILED || n == 0)
		return;
	if (n < 0) {
		s->eof = true;
		net_stream_read_stop(s);
	} else if (s->in.len > s->in_off) {
		/* Older bytes come first: the new ones queue behind them. */
		if (nbuf_add(&s->in, b->base, (size_t)n) < 0) {
			explicit_bzero(b->base, (size_t)n);
			stream_fail(s, NET_E_NOMEM);
			return;
		}
	} else {
		s->chunk = b->base;
		s->chunk_len = (size_t)n;
	}
	if (s->cbs->on_data)
		s->cbs->on_data(s->owner);
	if (s->chunk_len && s->state != NS_CLOSING) {
		s->in_off = 0;
		nbuf_wipe(&s->in);
		lost = nbuf_add(&s->in, s->chunk, s->chunk_len) < 0;
	}
	s->chunk = NULL;
	s->chunk_len = 0;
	if (n > 0)
		explicit_bzero(b->base, (size_t)n);
	if (ns_quiet(s) || s->state == NS_FAILED)
		return;
	if (lost) {
		stream_fail(s, NET_E_NOMEM);
		return;
	}
	if (s->in.len - s->in_off > s->max_in) {
		stream_fail(s, NET_E_IN_BOUND);
		return;
	}
	rc = net_stream_flush(s);
	if (rc < 0 && !ns_quiet(s))
		stream_fail(s, rc);
}

int net_stream_read_start(struct net_stream *s)
{
	int rc;

	if (s->state != NS_OPEN)
		return NET_E_CLOSED;
	if (s->reading || s->eof)
		return 0;
	rc = uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
	if (rc == 0)
		s->reading = true;
	return rc;
}

void net_stream_read_stop(struct net_stream *s)
{
	if (!s->reading)
		return;
	uv_read_stop((uv_stream_t *)&s->tcp);
	s->reading = false;
}

/* ---- TLS and the peer ------------------------------------------------------ */

void net_stream_set_tls(struct net_stream *s, struct tls_sess *tls)
{
	s->tls = tls;
	tls_set_transport(tls, s, stream_push, stream_pull);
}

struct tls_sess *net_stream_tls(const struct net_stream *s)
{
	return s->tls;
}

int net_stream_peer_addr(const struct net_stream *s, struct sockaddr_storage *ss)
{
	int len = sizeof(*ss);

	memset(ss, 0, sizeof(*ss));
	if (uv_tcp_getpeername(&s->tcp, (struct sockaddr *)ss, &len) < 0)
		return NET_E_IO;
	return 0;
}

int net_stream_peer(const struct net_stream *s, char *buf, size_t len, bool with_port)
{
	struct sockaddr_storage ss;

	if (net_stream_peer_addr(s, &ss) < 0) {
		if (len)
			buf[0] = '\0';
		net_addr_text(NULL, buf, len, with_port);
		return NET_E_IO;
	}
	if (net_addr_text((const struct sockaddr *)&ss, buf, len, with_port) < 0)
		return NET_E_IO;
	return 0;
}
