/*
 * The troubleshooter's network steps.  A one-shot program may block, so each
 * step is a plain system call sequence on a non-blocking socket with poll()
 * bounding it by the configured timeout: resolving (getaddrinfo), connecting,
 * the TLS handshake (tls/), and the hub's WebSocket upgrade, whose answer
 * http-parser reads.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <http_parser.h>

#include "tools/check/check.h"

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Waits for FD to be readable (or writable); 0, or -ETIMEDOUT at DEADLINE. */
static int wait_fd(int fd, bool write, uint64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = write ? POLLOUT : POLLIN };
	uint64_t now;
	int rc;

	for (;;) {
		now = now_ms();
		if (now >= deadline)
			return -ETIMEDOUT;
		rc = poll(&p, 1, (int)(deadline - now));
		if (rc > 0)
			return 0;
		if (rc == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

int chk_resolve(const char *host, unsigned port, struct sockaddr_storage *out, size_t max,
		size_t *n)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL, *ai;
	char ps[8];
	int rc;

	*n = 0;
	snprintf(ps, sizeof ps, "%u", port);
	if ((rc = getaddrinfo(host, ps, &hints, &res)) != 0)
		return rc < 0 ? rc : -rc;
	for (ai = res; ai && *n < max; ai = ai->ai_next)
		if (ai->ai_addrlen <= sizeof *out)
			memcpy(&out[(*n)++], ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}

int chk_connect(const struct sockaddr_storage *addrs, size_t n, unsigned timeout_ms,
		size_t *addr_used)
{
	int err = -EHOSTUNREACH;

	for (size_t i = 0; i < n; i++) {
		socklen_t sl = addrs[i].ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
							       : sizeof(struct sockaddr_in);
		int fd = socket(addrs[i].ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		int soerr = 0;
		socklen_t el = sizeof soerr;

		if (fd < 0)
			return -errno;
		if (connect(fd, (const struct sockaddr *)&addrs[i], sl) == 0) {
			*addr_used = i;
			return fd;
		}
		err = -errno;
		if (err == -EINPROGRESS) {
			err = wait_fd(fd, true, now_ms() + timeout_ms);
			if (err == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &el) == 0)
				err = -soerr;
			if (err == 0) {
				*addr_used = i;
				return fd;
			}
		}
		close(fd);
	}
	return err;
}

int chk_tls(int fd, const struct tls_client_opts *o, unsigned timeout_ms,
	    struct tls_sess **sess, char *why, size_t whylen)
{
	uint64_t deadline = now_ms() + timeout_ms;
	struct tls_sess *s = NULL;
	bool timed_out = false;
	int rc;

	*sess = NULL;
	if ((rc = tls_client_new(o, &s)) < 0) {
		snprintf(why, whylen, "%s", tls_strerror(rc));
		return rc;
	}
	tls_set_fd(s, fd);
	while ((rc = tls_handshake(s)) == TLS_E_AGAIN) {
		if (wait_fd(fd, tls_want_write(s), deadline) < 0) {
			timed_out = true;
			rc = TLS_E_IO;
			break;
		}
	}
	if (rc < 0) {
		if (timed_out)
			snprintf(why, whylen, "no TLS handshake within %u ms", timeout_ms);
		else
			snprintf(why, whylen, "%s", *tls_last_error(s) ? tls_last_error(s)
								: tls_strerror(rc));
		tls_free(s);
		return rc;
	}
	*sess = s;
	return 0;
}

/* ---- the upgrade ----------------------------------------------------------- */

enum { H_UPGRADE, H_CONNECTION, H_ACCEPT, H_N };
static const char *const resp_headers[H_N] = { "Upgrade", "Connection", "Sec-WebSocket-Accept" };

struct resp {
	struct net_hdrs h;
	bool done;
};

static int on_field(http_parser *p, const char *at, size_t len)
{
	return net_hdrs_field(&((struct resp *)p->data)->h, at, len);
}

static int on_value(http_parser *p, const char *at, size_t len)
{
	return net_hdrs_value(&((struct resp *)p->data)->h, at, len);
}

/* The response ends at its headers: what follows a 101 is WebSocket frames. */
static int on_headers(http_parser *p)
{
	((struct resp *)p->data)->done = true;
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings settings = {
	.on_header_field = on_field,
	.on_header_value = on_value,
	.on_headers_complete = on_headers,
};

static int send_all(int fd, struct tls_sess *s, const char *buf, size_t len, uint64_t deadline)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = tls_send(s, buf + off, len - off);

		if (n == TLS_E_AGAIN) {
			if (wait_fd(fd, tls_want_write(s), deadline) < 0)
				return -ETIMEDOUT;
			continue;
		}
		if (n <= 0)
			return -EIO;
		off += (size_t)n;
	}
	return 0;
}

int chk_ws_upgrade(int fd, struct tls_sess *s, const char *host, unsigned port,
		   const char *path, const char *token, size_t token_len, unsigned timeout_ms,
		   char *why, size_t whylen)
{
	uint64_t deadline = now_ms() + timeout_ms;
	char key[NET_WS_KEY_LEN + 1], accept[NET_WS_ACCEPT_SIZE], buf[4096], *req = NULL;
	bool v6 = strchr(host, ':') != NULL;
	struct resp r;
	http_parser p;
	size_t total = 0;
	int n, rc;

	if (net_ws_key_new(key) < 0 || net_ws_accept(key, NET_WS_KEY_LEN, accept) < 0)
		return -EIO;
	n = asprintf(&req,
		     "GET %s HTTP/1.1\r\nHost: %s%s%s:%u\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
		     "Authorization: Bearer %.*s\r\nUser-Agent: dirbridge-check/%s\r\n\r\n",
		     path, v6 ? "[" : "", host, v6 ? "]" : "", port, key, (int)token_len, token,
		     DIRBRIDGE_VERSION);
	if (n < 0)
		return -ENOMEM;
	rc = send_all(fd, s, req, (size_t)n, deadline);
	explicit_bzero(req, (size_t)n);
	free(req);
	if (rc < 0) {
		snprintf(why, whylen, "the upgrade request could not be sent");
		return rc;
	}
	memset(&r, 0, sizeof r);
	net_hdrs_init(&r.h, resp_headers, H_N, false);
	http_parser_init(&p, HTTP_RESPONSE);
	p.data = &r;
	while (!r.done) {
		ssize_t got = tls_recv(s, buf, sizeof buf);

		if (got == TLS_E_AGAIN) {
			if (wait_fd(fd, tls_want_write(s), deadline) < 0) {
				snprintf(why, whylen, "no answer to the upgrade within %u ms",
					 timeout_ms);
				return -ETIMEDOUT;
			}
			continue;
		}
		if (got <= 0) {
			snprintf(why, whylen, "the hub closed the connection during the upgrade");
			return -ECONNRESET;
		}
		http_parser_execute(&p, &settings, buf, (size_t)got);
		total += (size_t)got;
		if (!r.done && (HTTP_PARSER_ERRNO(&p) != HPE_OK || total > 16384)) {
			snprintf(why, whylen, "the answer is not HTTP");
			return -EPROTO;
		}
	}
	if (p.status_code == 401 || p.status_code == 403) {
		snprintf(why, whylen, "the hub refused the token (HTTP %u)", p.status_code);
		return -EACCES;
	}
	if (p.status_code != 101 || !net_http_has_token(r.h.val[H_UPGRADE], "websocket") ||
	    !net_http_has_token(r.h.val[H_CONNECTION], "upgrade")) {
		snprintf(why, whylen, "HTTP %u, not a WebSocket upgrade", p.status_code);
		return -EPROTO;
	}
	if (strcmp(r.h.val[H_ACCEPT], accept) != 0) {
		snprintf(why, whylen, "wrong Sec-WebSocket-Accept: not a WebSocket server");
		return -EPROTO;
	}
	snprintf(why, whylen, "HTTP 101, WebSocket accepted");
	return 0;
}
