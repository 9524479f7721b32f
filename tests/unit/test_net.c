/*
 * net/: the pure parts — peer address text, hex digits, error names, the
 * WebSocket key checks and accept hash (RFC 6455), header token lists.  Keys
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr_text),
		cmocka_unit_test(test_hexval),
		cmocka_unit_test(test_ws_accept),
		cmocka_unit_test(test_ws_key_valid),
		cmocka_unit_test(test_has_token),
		cmocka_unit_test(test_strerror),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
