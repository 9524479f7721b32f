/*
 * net/: the pure parts — peer address text, hex digits, error names, the
 * WebSocket key checks and accept hash (RFC 6455), header token lists — and a
 * stream's lifetime over loopback (connect, accept, peer, EOF, close).  Keys
 * are given in buffers of exactly their length, so under ASan a read past the
 * end fails the test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"

static void addr4(struct sockaddr_storage *ss, const char *ip, unsigned port)
{
	struct sockaddr_in *in = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	in->sin_family = AF_INET;
	in->sin_port = htons((uint16_t)port);
	assert_int_equal(inet_pton(AF_INET, ip, &in->sin_addr), 1);
}

static void addr6(struct sockaddr_storage *ss, const char *ip, unsigned port)
{
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	in6->sin6_family = AF_INET6;
	in6->sin6_port = htons((uint16_t)port);
	assert_int_equal(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1);
}

static void test_addr_text(void **state)
{
	struct sockaddr_storage ss;
	char buf[NET_ADDR_MAX];

	(void)state;
	addr4(&ss, "192.0.2.7", 443);
	assert_int_equal(net_addr_text((struct sockaddr *)&ss, buf, sizeof(buf), true), 0);
	assert_string_equal(buf, "192.0.2.7:443");
	assert_int_equal(net_addr_text((struct sockaddr *)&ss, buf, sizeof(buf), false), 0);
	assert_string_equal(buf, "192.0.2.7");

	addr6(&ss, "::1", 8443);
	assert_int_equal(net_addr_text((struct sockaddr *)&ss, buf, sizeof(buf), true), 0);
	assert_string_equal(buf, "[::1]:8443");
	assert_int_equal(net_addr_text((struct sockaddr *)&ss, buf, sizeof(buf), false), 0);
	assert_string_equal(buf, "::1");

	/* One client, one throttle key: a mapped address is its IPv4 alone. */
	addr6(&ss, "::ffff:192.0.2.7", 1);
	assert_int_equal(net_addr_text((struct sockaddr *)&ss, buf, sizeof(buf), false), 0);
	assert_string_equal(buf, "192.0.2.7");
	assert_int_equal(net_addr_text((struct sockaddr *)&ss, buf, sizeof(buf), true), 0);
	assert_string_equal(buf, "[::ffff:192.0.2.7]:1");

	/* The longest address with the longest port fits NET_ADDR_MAX. */
	addr6(&ss, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
	assert_int_equal(net_addr_text((struct sockaddr *)&ss, buf, sizeof(buf), true), 0);
	assert_string_equal(buf, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	assert_int_equal(net_addr_text((struct sockaddr *)&ss, buf, sizeof(buf), true), NET_E_INVAL);
	assert_string_equal(buf, "?");
	assert_int_equal(net_addr_text(NULL, buf, sizeof(buf), false), NET_E_INVAL);
	assert_string_equal(buf, "?");
}

static void test_hexval(void **state)
{
	const char *hex = "0123456789abcdef", *HEX = "0123456789ABCDEF";
	int c, n = 0;

	(void)state;
	for (c = 0; c < 16; c++) {
		assert_int_equal(net_hexval(hex[c]), c);
		assert_int_equal(net_hexval(HEX[c]), c);
	}
	for (c = -1; c < 256; c++)
		if (net_hexval(c) >= 0)
			n++;
	assert_int_equal(n, 22);
	assert_int_equal(net_hexval('g'), -1);
	assert_int_equal(net_hexval('G'), -1);
	assert_int_equal(net_hexval('/'), -1);
	assert_int_equal(net_hexval(':'), -1);
	assert_int_equal(net_hexval('@'), -1);
	assert_int_equal(net_hexval('`'), -1);
	assert_int_equal(net_hexval(0), -1);
	assert_int_equal(net_hexval(0xe0), -1);
}

/* The key in a buffer of exactly its length. */
static int accept_of(const char *key, char out[NET_WS_ACCEPT_SIZE])
{
	size_t len = strlen(key);
	char *k = malloc(len ? len : 1);
	int rc;

	assert_non_null(k);
	memcpy(k, key, len);
	rc = net_ws_accept(k, len, out);
	free(k);
	return rc;
}

static bool valid(const char *key)
{
	size_t len = strlen(key);
	char *k = malloc(len ? len : 1);
	bool ok;

	assert_non_null(k);
	memcpy(k, key, len);
	ok = net_ws_key_valid(k, len);
	free(k);
	return ok;
}

static void test_ws_accept(void **state)
{
	char out[NET_WS_ACCEPT_SIZE];

	(void)state;
	/* RFC 6455 section 1.3. */
	assert_int_equal(accept_of("dGhlIHNhbXBsZSBub25jZQ==", out), 0);
	assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	/* A different key, a different answer. */
	assert_int_equal(accept_of("AAAAAAAAAAAAAAAAAAAAAA==", out), 0);
	assert_int_equal(strlen(out), NET_WS_ACCEPT_SIZE - 1);
	assert_string_not_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	/* No hash for a key that is not one. */
	assert_int_equal(accept_of("dGhlIHNhbXBsZSBub25jZQ", out), NET_E_INVAL);
	assert_string_equal(out, "");
}

static void test_ws_key_valid(void **state)
{
	char key[NET_WS_KEY_LEN + 1], other[NET_WS_KEY_LEN + 1];

	(void)state;
	assert_true(valid("dGhlIHNhbXBsZSBub25jZQ=="));
	assert_true(valid("AAAAAAAAAAAAAAAAAAAAAA=="));
	assert_false(valid(""));
	assert_false(valid("dGhlIHNhbXBsZSBub25jZQ="));	/* 23 characters */
	assert_false(valid("dGhlIHNhbXBsZSBub25jZQ==="));	/* 25 */
	assert_false(valid("AAAAAAAAAAAAAAAAAAAAAAAA"));	/* 18 bytes */
	assert_false(valid("AAAAAAAAAAAAAAAAAAAAAAA="));	/* 17 bytes */
	assert_false(valid("dGhlIHNhbXBsZSBub25jZQ!="));	/* not base64 */
	assert_false(valid("dGhlIHNhbX Bsb25jZQ==xyz"));
	assert_false(net_ws_key_valid(NULL, 0));

	/* A client's fresh keys are valid and differ. */
	assert_int_equal(net_ws_key_new(key), 0);
	assert_int_equal(net_ws_key_new(other), 0);
	assert_int_equal(strlen(key), NET_WS_KEY_LEN);
	assert_true(net_ws_key_valid(key, strlen(key)));
	assert_true(net_ws_key_valid(other, strlen(other)));
	assert_string_not_equal(key, other);
}

static void test_has_token(void **state)
{
	(void)state;
	assert_true(net_http_has_token("Upgrade", "upgrade"));
	assert_true(net_http_has_token("keep-alive, Upgrade", "upgrade"));
	assert_true(net_http_has_token("keep-alive,upgrade\t", "upgrade"));
	assert_true(net_http_has_token("  WebSocket ", "websocket"));
	assert_false(net_http_has_token("", "upgrade"));
	assert_false(net_http_has_token(", ,", "upgrade"));
	assert_false(net_http_has_token("upgrades", "upgrade"));
	assert_false(net_http_has_token("upgrad", "upgrade"));
	assert_false(net_http_has_token("keep-alive", "upgrade"));
	assert_false(net_http_has_token("x-upgrade", "upgrade"));
}

static void test_strerror(void **state)
{
	static const int codes[] = {
		NET_E_NOMEM, NET_E_IO, NET_E_IN_BOUND, NET_E_OUT_BOUND, NET_E_CLOSED,
		NET_E_INVAL, NET_E_TLS, NET_E_WS,
	};
	size_t i, j;

	(void)state;
	assert_string_equal(net_strerror(NET_OK), "success");
	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		assert_true(codes[i] <= -3001 && codes[i] >= -3099);
		assert_true(strlen(net_strerror(codes[i])) > 0);
		assert_string_not_equal(net_strerror(codes[i]), "unknown error");
		for (j = 0; j < i; j++)
			assert_string_not_equal(net_strerror(codes[i]), net_strerror(codes[j]));
	}
	/* libuv's codes pass through with their own names. */
	assert_string_equal(net_strerror(UV_ECONNREFUSED), uv_strerror(UV_ECONNREFUSED));
	assert_string_equal(net_strerror(-3050), "unknown error");
	assert_string_equal(net_strerror(-3001 - 98), "unknown error");
}

/* ---- streams over loopback: connect, accept, peer, EOF, close ------------ */

struct side {
	struct net_stream *s;
	int connected;		/* on_connect status + 1, 0 before */
	int data, closed, errors;
	bool eof;
	int read_status;
};

static struct side client, server;
static uv_tcp_t listener;
static int listener_closed;

static void side_connect(void *owner, int status)
{
	struct side *d = owner;

	d->connected = status + 1;
	/* The client hangs up at once: the server must see EOF. */
	if (status == 0)
		net_stream_close(d->s, false);
}

static void side_data(void *owner)
{
	struct side *d = owner;

	d->data++;
	d->eof = net_stream_eof(d->s);
	d->read_status = net_stream_read_status(d->s);
	if (d->eof)
		net_stream_close(d->s, false);
}

static void side_error(void *owner, int err)
{
	(void)err;
	((struct side *)owner)->errors++;
}

static void on_listener_closed(uv_handle_t *h)
{
	(void)h;
	listener_closed++;
}

static void side_close(void *owner)
{
	struct side *d = owner;

	d->closed++;
	if (client.closed && server.closed)
		uv_close((uv_handle_t *)&listener, on_listener_closed);
}

static const struct net_stream_cbs side_cbs = {
	.on_connect = side_connect,
	.on_data = side_data,
	.on_error = side_error,
	.on_close = side_close,
};

static void on_conn(uv_stream_t *l, int status)
{
	const struct net_stream_conf conf = {
		.cbs = &side_cbs, .owner = &server, .max_in = 1024, .max_out = 1024,
	};
	char peer[NET_ADDR_MAX], ip[NET_ADDR_MAX];

	assert_int_equal(status, 0);
	assert_int_equal(net_stream_accept(l, &conf, &server.s), 0);
	assert_int_equal(net_stream_peer(server.s, peer, sizeof(peer), true), 0);
	assert_int_equal(net_stream_peer(server.s, ip, sizeof(ip), false), 0);
	assert_string_equal(ip, "127.0.0.1");
	assert_true(strncmp(peer, "127.0.0.1:", 10) == 0 && strlen(peer) > 10);
	assert_int_equal(net_stream_read_start(server.s), 0);
	/* Starting twice is harmless. */
	assert_int_equal(net_stream_read_start(server.s), 0);
}

static void test_stream_loopback(void **state)
{
	const struct net_stream_conf conf = {
		.cbs = &side_cbs, .owner = &client, .max_in = 1024, .max_out = 1024,
	};
	uv_loop_t loop;
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	(void)state;
	memset(&client, 0, sizeof(client));
	memset(&server, 0, sizeof(server));
	listener_closed = 0;
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(uv_tcp_init(&loop, &listener), 0);
	addr4(&ss, "127.0.0.1", 0);
	assert_int_equal(uv_tcp_bind(&listener, (struct sockaddr *)&ss, 0), 0);
	assert_int_equal(uv_listen((uv_stream_t *)&listener, 4, on_conn), 0);
	assert_int_equal(uv_tcp_getsockname(&listener, (struct sockaddr *)&ss, &len), 0);
	assert_int_equal(net_stream_connect(&loop, (struct sockaddr *)&ss, &conf, &client.s), 0);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(client.connected, 1);
	assert_int_equal(server.data, 1);
	assert_true(server.eof);
	assert_int_equal(server.read_status, UV_EOF);
	assert_int_equal(client.closed, 1);
	assert_int_equal(server.closed, 1);
	assert_int_equal(client.errors + server.errors, 0);
	assert_int_equal(listener_closed, 1);
	assert_int_equal(uv_loop_close(&loop), 0);
}

static void refused_connect(void *owner, int status)
{
	struct side *d = owner;

	d->connected = status + 1;
	net_stream_close(d->s, false);
}

static void test_stream_refused(void **state)
{
	static const struct net_stream_cbs cbs = {
		.on_connect = refused_connect,
		.on_close = side_close,
	};
	const struct net_stream_conf conf = { .cbs = &cbs, .owner = &client };
	uv_loop_t loop;
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	(void)state;
	memset(&client, 0, sizeof(client));
	memset(&server, 0, sizeof(server));
	server.closed = 1;	/* no server side: the listener is closed by hand */
	assert_int_equal(uv_loop_init(&loop), 0);
	/* A port that was free a moment ago: bound, never listened on. */
	assert_int_equal(uv_tcp_init(&loop, &listener), 0);
	addr4(&ss, "127.0.0.1", 0);
	assert_int_equal(uv_tcp_bind(&listener, (struct sockaddr *)&ss, 0), 0);
	assert_int_equal(uv_tcp_getsockname(&listener, (struct sockaddr *)&ss, &len), 0);
	assert_int_equal(net_stream_connect(&loop, (struct sockaddr *)&ss, &conf, &client.s), 0);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_true(client.connected - 1 < 0);
	assert_string_not_equal(net_strerror(client.connected - 1), "unknown error");
	assert_int_equal(client.closed, 1);
	assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr_text),
		cmocka_unit_test(test_hexval),
		cmocka_unit_test(test_ws_accept),
		cmocka_unit_test(test_ws_key_valid),
		cmocka_unit_test(test_has_token),
		cmocka_unit_test(test_strerror),
		cmocka_unit_test(test_stream_loopback),
		cmocka_unit_test(test_stream_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
