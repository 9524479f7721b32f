/*
 * tlsprobe: connects to a TLS server with tls_client_new() on a libuv loop,
 * sends one line and prints the first line read back.  Two transports:
 *   --mode fd      a non-blocking socket watched by uv_poll (tls_set_fd)
 *   --mode stream  a net_stream (net/net.h): libuv TCP under TLS push/pull
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

#include "net/net.h"
#include "tls/tls.h"

enum { EXIT_VERIFY = 2, EXIT_TLS = 3, EXIT_IO = 4, EXIT_USAGE = 64 };

enum probe_state { P_NEW = 0, P_CONNECTING, P_HANDSHAKE, P_SENDING, P_READING, P_DONE };

struct probe {
	uv_loop_t *loop;
	enum probe_state state;
	bool stream_mode;
	int fd;
	uv_poll_t poll;
	struct net_stream *s;	/* stream mode; it owns the TLS session */
	uv_timer_t timer;
	struct tls_sess *tls;
	const char *line;
	size_t sent;
	char got[4096];
	size_t got_len;
	int open_handles;
	int exit_code;
};

static void handle_closed(struct probe *p)
{
	if (--p->open_handles == 0)
		uv_stop(p->loop);
}

static void on_close(uv_handle_t *h)
{
	handle_closed(h->data);
}

static void on_stream_closed(void *owner)
{
	handle_closed(owner);
}

/* The one function that changes the probe's state. */
static void probe_set_state(struct probe *p, enum probe_state st)
{
	p->state = st;
}

static void finish(struct probe *p, int code)
{
	if (p->state == P_DONE)
		return;
	probe_set_state(p, P_DONE);
	p->exit_code = code;
	uv_close((uv_handle_t *)&p->timer, on_close);
	if (p->stream_mode) {
		net_stream_close(p->s, code == 0);
		return;
	}
	if (code == 0)
		tls_bye(p->tls);
	uv_close((uv_handle_t *)&p->poll, on_close);
}

static void tls_failed(struct probe *p, const char *what, int rc)
{
	fprintf(stderr, "tlsprobe: %s: %s (%s)\n", what, tls_strerror(rc), tls_last_error(p->tls));
	finish(p, rc == TLS_E_VERIFY ? EXIT_VERIFY : rc == TLS_E_IO ? EXIT_IO : EXIT_TLS);
}

static void wait_for(struct probe *p);

/* Moves the probe through its states as far as the transport allows. */
static void advance(struct probe *p)
{
	ssize_t n;

	for (;;) {
		switch (p->state) {
		case P_NEW:
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
			probe_set_state(p, P_SENDING);
			break;
		case P_SENDING:
			n = tls_send(p->tls, p->line + p->sent, strlen(p->line) - p->sent);
			if (n == TLS_E_AGAIN)
				goto wait;
			if (n < 0)
				return tls_failed(p, "send", (int)n);
			p->sent += (size_t)n;
			if (p->sent == strlen(p->line))
				probe_set_state(p, P_READING);
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
		probe_set_state(p, P_HANDSHAKE);
	}
	advance(p);
}

static void wait_for(struct probe *p)
{
	/* The stream is always read and only needs what TLS said written;
	 * the fd transport picks a direction. */
	if (p->stream_mode) {
		int rc = net_stream_flush(p->s);

		if (rc < 0) {
			fprintf(stderr, "tlsprobe: write: %s\n", net_strerror(rc));
			finish(p, EXIT_IO);
		}
		return;
	}
	uv_poll_start(&p->poll, tls_want_write(p->tls) ? UV_WRITABLE : UV_READABLE, on_poll);
}

static void on_timeout(uv_timer_t *t)
{
	struct probe *p = t->data;

	fprintf(stderr, "tlsprobe: timed out in state %d\n", (int)p->state);
	finish(p, EXIT_IO);
}

/* ---- stream transport --------------------------------------------------- */

static void on_data(void *owner)
{
	struct probe *p = owner;
	int st = net_stream_read_status(p->s);

	if (p->state == P_DONE)
		return;
	if (st < 0 && st != UV_EOF) {
		fprintf(stderr, "tlsprobe: read: %s\n", uv_strerror(st));
		finish(p, EXIT_IO);
		return;
	}
	advance(p);
}

static void on_error(void *owner, int err)
{
	struct probe *p = owner;

	fprintf(stderr, "tlsprobe: stream: %s\n", net_strerror(err));
	finish(p, EXIT_IO);
}

static void on_connect(void *owner, int status)
{
	struct probe *p = owner;
	int rc;

	if (status < 0) {
		if (status != UV_ECANCELED) {
			fprintf(stderr, "tlsprobe: connect: %s\n", uv_strerror(status));
			finish(p, EXIT_IO);
		}
		return;
	}
	if (p->state != P_CONNECTING)
		return;
	rc = net_stream_read_start(p->s);
	if (rc < 0) {
		fprintf(stderr, "tlsprobe: read: %s\n", net_strerror(rc));
		finish(p, EXIT_IO);
		return;
	}
	probe_set_state(p, P_HANDSHAKE);
	advance(p);
}

static const struct net_stream_cbs stream_cbs = {
	.on_connect = on_connect,
	.on_data = on_data,
	.on_error = on_error,
	.on_close = on_stream_closed,
};

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
	probe_set_state(&p, P_CONNECTING);
	if (p.stream_mode) {
		/* Bounds far above what one line and a handshake need. */
		const struct net_stream_conf conf = {
			.cbs = &stream_cbs, .owner = &p, .max_in = 1u << 20, .max_out = 1u << 20,
		};

		rc = net_stream_connect(p.loop, (struct sockaddr *)&ss, &conf, &p.s);
		if (rc < 0) {
			fprintf(stderr, "tlsprobe: connect: %s\n", net_strerror(rc));
			/* No stream was made: only the timer is left to close. */
			p.open_handles = 1;
			tls_free(p.tls);
			p.tls = NULL;
			probe_set_state(&p, P_DONE);
			p.exit_code = EXIT_IO;
			uv_close((uv_handle_t *)&p.timer, on_close);
		} else {
			net_stream_set_tls(p.s, p.tls);
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
	/* In stream mode the stream freed the session with itself. */
	if (!p.stream_mode)
		tls_free(p.tls);
	if (p.fd >= 0)
		close(p.fd);
	uv_loop_close(p.loop);
	free(line);
	return p.exit_code;
}
