/*
 * tlsprobe: connects to a TLS server with tls_client_new() on a libuv loop,
 * sends one line and prints the first line read back.  Two transports:
 *   --mode fd      a non-blocking socket watched by uv_poll (tls_set_fd)
 *   --mode stream  a uv_tcp_t stream under push/pull callbacks (tls_set_transport)
 * Exit: 0 success, 2 certificate verification refused, 3 other TLS failure,
 * 4 transport failure or timeout, 64 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "tls/tls.h"

enum { EXIT_VERIFY = 2, EXIT_TLS = 3, EXIT_IO = 4, EXIT_USAGE = 64 };

enum probe_state { P_CONNECTING, P_HANDSHAKE, P_SENDING, P_READING, P_DONE };

struct probe {
	uv_loop_t *loop;
	enum probe_state state;
	bool stream_mode;
	int fd;
	uv_poll_t poll;
	uv_tcp_t tcp;
	uv_connect_t connect_req;
	uv_timer_t timer;
	struct tls_sess *tls;
	const char *line;
	size_t sent;
	char got[4096];
	size_t got_len;
	/* Stream mode: ciphertext received but not yet pulled by GnuTLS. */
	char *in;
	size_t in_len;
	bool in_eof;
	int open_handles;
	int exit_code;
};

static void on_close(uv_handle_t *h)
{
	struct probe *p = h->data;

	if (--p->open_handles == 0)
		uv_stop(p->loop);
}

static void finish(struct probe *p, int code)
{
	if (p->state == P_DONE)
		return;
	p->state = P_DONE;
	p->exit_code = code;
	if (code == 0)
		tls_bye(p->tls);
	uv_close((uv_handle_t *)&p->timer, on_close);
	if (p->stream_mode)
		uv_close((uv_handle_t *)&p->tcp, on_close);
	else
		uv_close((uv_handle_t *)&p->poll, on_close);
}

static void tls_failed(struct probe *p, const char *what, int rc)
{
	fprintf(stderr, "tlsprobe: %s: %s (%s)\n", what, tls_strerror(rc), tls_last_error(p->tls));
	finish(p, rc == TLS_E_VERIFY ? EXIT_VERIFY : rc == TLS_E_IO ? EXIT_IO : EXIT_TLS);
}

static void wait_for(struct probe *p);

/* The one function that moves the probe through its states. */
static void advance(struct probe *p)
{
	ssize_t n;

	for (;;) {
		switch (p->state) {
		case P_CONNECTING:
		case P_DONE:
			return;
		case P_HANDSHAKE:
			n = tls_handshake(p->tls);
			if (n == TLS_E_AGAIN)
				goto wait;
			if (n < 0)
				return tls_failed(p, "handshake", (int)n);
			printf("handshake ok version=%s strength=%u\n", tls_version(p->tls),
			       tls_strength(p->tls));
			fflush(stdout);
			p->state = P_SENDING;
			break;
		case P_SENDING:
			n = tls_send(p->tls, p->line + p->sent, strlen(p->line) - p->sent);
			if (n == TLS_E_AGAIN)
				goto wait;
			if (n < 0)
				return tls_failed(p, "send", (int)n);
			p->sent += (size_t)n;
			if (p->sent == strlen(p->line))
				p->state = P_READING;
			break;
		case P_READING:
			n = tls_recv(p->tls, p->got + p->got_len, sizeof p->got - 1 - p->got_len);
			if (n == TLS_E_AGAIN)
				goto wait;
			if (n < 0)
				return tls_failed(p, "recv", (int)n);
			if (n == 0) {
				fprintf(stderr, "tlsprobe: closed before a full line\n");
				return finish(p, EXIT_IO);
			}
			p->got_len += (size_t)n;
			p->got[p->got_len] = '\0';
			if (strchr(p->got, '\n') || p->got_len == sizeof p->got - 1) {
				printf("recv: %s", p->got);
				fflush(stdout);
				return finish(p, 0);
			}
			break;
		}
	}
wait:
	wait_for(p);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct probe *p = h->data;

	(void)events;
	if (status < 0) {
		/* libuv reports POLLERR this way, e.g. after the peer's alert and
		 * reset: give the session one chance to read and name the alert. */
		if (p->state != P_CONNECTING)
			advance(p);
		if (p->state != P_DONE) {
			fprintf(stderr, "tlsprobe: poll: %s\n", uv_strerror(status));
			finish(p, EXIT_IO);
		}
		return;
	}
	if (p->state == P_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof err;

		if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
			fprintf(stderr, "tlsprobe: connect: %s\n", strerror(err ? err : errno));
			return finish(p, EXIT_IO);
		}
		p->state = P_HANDSHAKE;
	}
	advance(p);
}

static void wait_for(struct probe *p)
{
	/* The stream is always read; only the fd transport picks a direction. */
	if (!p->stream_mode)
		uv_poll_start(&p->poll, tls_want_write(p->tls) ? UV_WRITABLE : UV_READABLE, on_poll);
}

static void on_timeout(uv_timer_t *t)
{
	struct probe *p = t->data;

	fprintf(stderr, "tlsprobe: timed out in state %d\n", (int)p->state);
	finish(p, EXIT_IO);
}

/* ---- stream transport --------------------------------------------------- */

struct wreq {
	uv_write_t req;
	char data[];
};

static void on_write(uv_write_t *req, int status)
{
	(void)status;	/* a failed write shows up as a read error or EOF */
	free(req);
}

static ssize_t stream_push(void *ctx, const void *buf, size_t len)
{
	struct probe *p = ctx;
	struct wreq *w = malloc(sizeof *w + len);
	uv_buf_t b;

	if (!w) {
		errno = ENOMEM;
		return -1;
	}
	memcpy(w->data, buf, len);
	b = uv_buf_init(w->data, (unsigned)len);
	if (uv_write(&w->req, (uv_stream_t *)&p->tcp, &b, 1, on_write) < 0) {
		free(w);
		errno = EIO;
		return -1;
	}
	return (ssize_t)len;
}

static ssize_t stream_pull(void *ctx, void *buf, size_t len)
{
	struct probe *p = ctx;

	if (p->in_len == 0) {
		if (p->in_eof)
			return 0;
		errno = EAGAIN;
		return -1;
	}
	if (len > p->in_len)
		len = p->in_len;
	memcpy(buf, p->in, len);
	memmove(p->in, p->in + len, p->in_len - len);
	p->in_len -= len;
	return (ssize_t)len;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	(void)h;
	buf->base = malloc(hint);
	buf->len = buf->base ? hint : 0;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct probe *p = s->data;

	if (n > 0) {
		char *in = realloc(p->in, p->in_len + (size_t)n);

		if (!in) {
			free(buf->base);
			return finish(p, EXIT_IO);
		}
		p->in = in;
		memcpy(p->in + p->in_len, buf->base, (size_t)n);
		p->in_len += (size_t)n;
	} else if (n == UV_EOF) {
		p->in_eof = true;
		uv_read_stop(s);
	} else if (n < 0) {
		fprintf(stderr, "tlsprobe: read: %s\n", uv_strerror((int)n));
		free(buf->base);
		return finish(p, EXIT_IO);
	}
	free(buf->base);
	advance(p);
}

static void on_connect(uv_connect_t *req, int status)
{
	struct probe *p = req->data;

	if (status < 0) {
		if (status != UV_ECANCELED) {
			fprintf(stderr, "tlsprobe: connect: %s\n", uv_strerror(status));
			finish(p, EXIT_IO);
		}
		return;
	}
	if (p->state != P_CONNECTING)
		return;
	uv_read_start((uv_stream_t *)&p->tcp, on_alloc, on_read);
	p->state = P_HANDSHAKE;
	advance(p);
}

static void usage(void)
{
	fprintf(stderr, "usage: tlsprobe --ca FILE --port N [--connect IP] [--name HOST] "
		"[--mode fd|stream] [--cert FILE --key FILE] [--alpn P] [--send LINE]\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "ca", required_argument, NULL, 'a' },	{ "port", required_argument, NULL, 'p' },
		{ "connect", required_argument, NULL, 'c' }, { "name", required_argument, NULL, 'n' },
		{ "mode", required_argument, NULL, 'm' }, { "cert", required_argument, NULL, 'C' },
		{ "key", required_argument, NULL, 'K' }, { "alpn", required_argument, NULL, 'A' },
		{ "send", required_argument, NULL, 's' }, { NULL, 0, NULL, 0 },
	};
	struct tls_client_opts o = { 0 };
	struct probe p = { .line = "hello dirbridge\n", .fd = -1 };
	const char *connect_to = "127.0.0.1", *mode = "fd";
	struct sockaddr_storage ss;
	char *line = NULL;
	int port = 0, c, rc;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'a': o.ca_file = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 'c': connect_to = optarg; break;
		case 'n': o.hostname = optarg; break;
		case 'm': mode = optarg; break;
		case 'C': o.cert_file = optarg; break;
		case 'K': o.key_file = optarg; break;
		case 'A': o.alpn = optarg; break;
		case 's':
			free(line);
			if (asprintf(&line, "%s\n", optarg) < 0)
				return EXIT_IO;
			p.line = line;
			break;
		default: usage(); return EXIT_USAGE;
		}
	}
	if (!o.ca_file || port <= 0 || port > 65535 ||
	    (strcmp(mode, "fd") != 0 && strcmp(mode, "stream") != 0)) {
		usage();
		return EXIT_USAGE;
	}
	if (!o.hostname)
		o.hostname = connect_to;
	/* libuv writes streams with write(2): a peer's reset must be an error
	 * code, not a signal that kills the probe. */
	signal(SIGPIPE, SIG_IGN);
	p.stream_mode = strcmp(mode, "stream") == 0;
	if (uv_ip4_addr(connect_to, port, (struct sockaddr_in *)&ss) != 0 &&
	    uv_ip6_addr(connect_to, port, (struct sockaddr_in6 *)&ss) != 0) {
		fprintf(stderr, "tlsprobe: --connect wants an IP address\n");
		return EXIT_USAGE;
	}
	if ((rc = tls_global_init()) < 0 || (rc = tls_client_new(&o, &p.tls)) < 0) {
		fprintf(stderr, "tlsprobe: setup: %s\n", tls_strerror(rc));
		free(line);
		return EXIT_TLS;
	}
	p.loop = uv_default_loop();
	uv_timer_init(p.loop, &p.timer);
	p.timer.data = &p;
	p.open_handles = 2;
	uv_timer_start(&p.timer, on_timeout, 10000, 0);
	if (p.stream_mode) {
		uv_tcp_init(p.loop, &p.tcp);
		p.tcp.data = &p;
		p.connect_req.data = &p;
		tls_set_transport(p.tls, &p, stream_push, stream_pull);
		rc = uv_tcp_connect(&p.connect_req, &p.tcp, (struct sockaddr *)&ss, on_connect);
		if (rc < 0) {
			fprintf(stderr, "tlsprobe: connect: %s\n", uv_strerror(rc));
			finish(&p, EXIT_IO);
		}
	} else {
		p.fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (p.fd < 0 || (connect(p.fd, (struct sockaddr *)&ss,
					 ss.ss_family == AF_INET ? sizeof(struct sockaddr_in)
								 : sizeof(struct sockaddr_in6)) < 0 &&
				 errno != EINPROGRESS)) {
			perror("tlsprobe: connect");
			return EXIT_IO;
		}
		tls_set_fd(p.tls, p.fd);
		uv_poll_init_socket(p.loop, &p.poll, p.fd);
		p.poll.data = &p;
		uv_poll_start(&p.poll, UV_WRITABLE, on_poll);
	}
	uv_run(p.loop, UV_RUN_DEFAULT);
	/* Close callbacks of write requests still queued on the stream. */
	uv_run(p.loop, UV_RUN_DEFAULT);
	tls_free(p.tls);
	if (p.fd >= 0)
		close(p.fd);
	uv_loop_close(p.loop);
	free(p.in);
	free(line);
	return p.exit_code;
}
