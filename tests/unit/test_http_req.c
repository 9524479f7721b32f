/*
 * agent/http_req.c: the header screen and http-parser callbacks of the
 * front-facing server, driven on raw bytes as https.c drives them.  Both
 * http_req.c and http.c (buffers) have no I/O, so they are compiled in.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "agent/http.c"
#include "agent/http_req.c"

struct rq {
	struct req r;
	http_parser p;
};

static void rq_init(struct rq *q)
{
	memset(q, 0, sizeof(*q));
	http_parser_init(&q->p, HTTP_REQUEST);
	q->p.data = &q->r;
}

/* Feeds TEXT in pieces of STEP bytes; returns the total consumed or -1. */
static ssize_t feed_all(struct rq *q, const char *text, size_t step)
{
	size_t len = strlen(text), off = 0;

	while (off < len && !q->r.complete) {
		size_t n = len - off < step ? len - off : step;
		ssize_t used = http_req_feed(&q->r, &q->p, text + off, n);

		if (used < 0)
			return -1;
		off += (size_t)used;
	}
	return (ssize_t)off;
}

static void test_good_request(void **state)
{
	const char text[] = "GET /login?session=abc HTTP/1.1\r\nHost: a\r\n\r\n";
	struct rq q;

	(void)state;
	for (size_t step = 1; step <= sizeof(text); step++) {
		rq_init(&q);
		assert_int_equal(feed_all(&q, text, step), strlen(text));
		assert_true(q.r.complete);
		assert_string_equal(q.r.url.p, "/login?session=abc");
		http_req_reset(&q.r);
	}
}

/* http-parser skips empty lines before the request line; the screen used to
 * take them for the end of the headers and let a bare-LF request through. */
static void test_leading_empty_lines(void **state)
{
	struct rq q;

	(void)state;
	for (size_t step = 1; step <= 64; step *= 4) {
		rq_init(&q);
		assert_int_equal(feed_all(&q, "\r\n\r\nGET / HTTP/1.1\nHost: a\n\n", step), -1);
		assert_int_equal(q.r.status, 400);
		assert_false(q.r.complete);
		http_req_reset(&q.r);

		rq_init(&q);
		assert_int_equal(feed_all(&q, "\r\n\r\nGET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", step), -1);
		assert_int_equal(q.r.status, 400);
		http_req_reset(&q.r);

		/* An empty line before a well-formed request is still tolerated. */
		rq_init(&q);
		assert_true(feed_all(&q, "\r\nGET /healthz HTTP/1.1\r\nHost: a\r\n\r\n", step) > 0);
		assert_true(q.r.complete);
		assert_string_equal(q.r.url.p, "/healthz");
		http_req_reset(&q.r);
	}
	/* A request line may not start with white space or a bare LF. */
	rq_init(&q);
	assert_int_equal(feed_all(&q, " GET / HTTP/1.1\r\n\r\n", 64), -1);
	http_req_reset(&q.r);
	rq_init(&q);
	assert_int_equal(feed_all(&q, "\nGET / HTTP/1.1\r\n\r\n", 64), -1);
	http_req_reset(&q.r);
}

static void test_screen(void **state)
{
	static const char *const bad[] = {
		"GET / HTTP/1.1\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n\tfolded\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n\r\r\n",
	};
	struct rq q;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		rq_init(&q);
		assert_int_equal(feed_all(&q, bad[i], 7), -1);
		assert_int_equal(q.r.status, 400);
		http_req_reset(&q.r);
	}
}

static void test_pipelined(void **state)
{
	const char text[] = "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\nGET /metrics HTTP/1.1\r\n\r\n";
	struct rq q;
	ssize_t used;

	(void)state;
	rq_init(&q);
	used = http_req_feed(&q.r, &q.p, text, strlen(text));
	assert_int_equal(used, strlen("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"));
	assert_true(q.r.complete);
	http_req_reset(&q.r);
	rq_init(&q);
	assert_int_equal(http_req_feed(&q.r, &q.p, text + used, strlen(text) - (size_t)used),
			 strlen(text) - (size_t)used);
	assert_true(q.r.complete);
	assert_string_equal(q.r.url.p, "/metrics");
	http_req_reset(&q.r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_request),
		cmocka_unit_test(test_leading_empty_lines),
		cmocka_unit_test(test_screen),
		cmocka_unit_test(test_pipelined),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
