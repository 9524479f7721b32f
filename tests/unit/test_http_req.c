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

#include <stdio.h>
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

/* Feeds LEN bytes of TEXT in pieces of STEP bytes; returns the total consumed
 * or -1. */
static ssize_t feed_n(struct rq *q, const char *text, size_t len, size_t step)
{
	size_t off = 0;

	while (off < len && !q->r.complete) {
		size_t n = len - off < step ? len - off : step;
		ssize_t used = http_req_feed(&q->r, &q->p, text + off, n);

		if (used < 0)
			return -1;
		off += (size_t)used;
	}
	return (ssize_t)off;
}

static ssize_t feed_all(struct rq *q, const char *text, size_t step)
{
	return feed_n(q, text, strlen(text), step);
}

/* Runs the screen alone over LEN bytes in pieces of STEP bytes, as https.c
 * would see them arrive; returns the header bytes it counted, or -1. */
static ssize_t scan_n(struct req *r, const char *text, size_t len, size_t step)
{
	size_t off = 0, total = 0;

	while (off < len) {
		size_t n = len - off < step ? len - off : step;
		ssize_t used = http_req_scan(r, text + off, n);

		if (used < 0)
			return -1;
		total += (size_t)used;
		off += n;
	}
	return (ssize_t)total;
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

/* The screen's answer may not depend on how the bytes arrive: a CR at the
 * end of one read and its LF (or not) at the start of the next. */
static void refused_in_every_split(const char *text, size_t len, unsigned status)
{
	for (size_t step = 1; step <= len; step++) {
		struct req r;

		memset(&r, 0, sizeof(r));
		assert_int_equal(scan_n(&r, text, len, step), -1);
		assert_int_equal(r.status, status);
		http_req_reset(&r);
	}
}

/* CRLF line ends only, everywhere in the header section: a bare CR or a bare
 * LF in the request line, a header line or the final empty line. */
static void test_bare_cr_lf(void **state)
{
	static const char *const bad[] = {
		"GET /\r HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\rHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n\rX\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n\n",
		"GET / HTTP/1.1\r\nHost: a\n\r\n",
		"GET / HTTP\n/1.1\r\nHost: a\r\n\r\n",
		"\rGET / HTTP/1.1\r\n\r\n",
		"\r\n\nGET / HTTP/1.1\r\n\r\n",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		refused_in_every_split(bad[i], strlen(bad[i]), 400);
}

/* obs-fold (a line starting with SP or HTAB continues the previous one) in
 * any position, also right after the request line. */
static void test_obs_fold(void **state)
{
	static const char *const bad[] = {
		"GET / HTTP/1.1\r\n Host: a\r\n\r\n",
		"GET / HTTP/1.1\r\n\tHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n  c\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n \r\n\r\n",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		refused_in_every_split(bad[i], strlen(bad[i]), 400);
}

/* A NUL byte anywhere in the header section is refused, also where a C
 * string would have ended it. */
static void test_nul(void **state)
{
	static const char req[] = "GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n\r\n";
	const size_t len = sizeof(req) - 1;
	char copy[sizeof(req)];

	(void)state;
	for (size_t at = 0; at < len; at++) {
		memcpy(copy, req, sizeof(req));
		copy[at] = '\0';
		/* A NUL in place of the last LF leaves "\r\n\r" plus NUL. */
		refused_in_every_split(copy, len, 400);
	}
	/* The same bytes without the NUL pass, so it is the NUL that is refused. */
	{
		struct req r;

		memset(&r, 0, sizeof(r));
		assert_int_equal(scan_n(&r, req, len, 5), len);
		http_req_reset(&r);
	}
}

/* The screen counts header bytes only: it stops at the end of the header
 * section, so a body or a pipelined request is not screened as a header. */
static void test_scan_counts_header_bytes(void **state)
{
	static const char text[] = "POST /login HTTP/1.1\r\nContent-Length: 4\r\n\r\n\n\r\0 ";
	const size_t head = strlen("POST /login HTTP/1.1\r\nContent-Length: 4\r\n\r\n");

	(void)state;
	for (size_t step = 1; step <= sizeof(text) - 1; step++) {
		struct req r;

		memset(&r, 0, sizeof(r));
		assert_int_equal(scan_n(&r, text, sizeof(text) - 1, step), head);
		assert_int_equal(r.status, 0);
		/* After the end, more bytes are not header bytes. */
		assert_int_equal(http_req_scan(&r, "\n", 1), 0);
		http_req_reset(&r);
	}
}

/* Builds "GET / HTTP/1.1\r\nX: aaa...\r\n\r\n" of exactly LEN bytes. */
static char *request_of_size(size_t len)
{
	static const char pre[] = "GET / HTTP/1.1\r\nX: ", post[] = "\r\n\r\n";
	char *p = malloc(len + 1);

	assert_non_null(p);
	assert_true(len > sizeof(pre) + sizeof(post));
	memcpy(p, pre, sizeof(pre) - 1);
	memset(p + sizeof(pre) - 1, 'a', len - (sizeof(pre) - 1) - (sizeof(post) - 1));
	memcpy(p + len - (sizeof(post) - 1), post, sizeof(post));
	assert_int_equal(strlen(p), len);
	return p;
}

/* MAX_HEADER_BYTES bytes of header section pass; one more is 431. */
static void test_header_bytes_limit(void **state)
{
	char *ok = request_of_size(MAX_HEADER_BYTES), *big = request_of_size(MAX_HEADER_BYTES + 1);
	struct rq q;

	(void)state;
	for (size_t step = 1000; step <= MAX_HEADER_BYTES + 1000; step += 1000) {
		rq_init(&q);
		assert_int_equal(feed_all(&q, ok, step), MAX_HEADER_BYTES);
		assert_true(q.r.complete);
		http_req_reset(&q.r);

		rq_init(&q);
		assert_int_equal(feed_all(&q, big, step), -1);
		assert_int_equal(q.r.status, 431);
		assert_false(q.r.complete);
		http_req_reset(&q.r);
	}
	free(ok);
	free(big);
}

/* Empty lines before the request line count toward the size limit, so an
 * endless run of them ends in 431 rather than being read forever. */
static void test_leading_empty_lines_bounded(void **state)
{
	size_t len = 2 * (MAX_HEADER_BYTES / 2 + 1);
	char *crlf = malloc(len);
	struct req r;

	(void)state;
	assert_non_null(crlf);
	for (size_t i = 0; i < len; i += 2)
		memcpy(crlf + i, "\r\n", 2);
	memset(&r, 0, sizeof(r));
	assert_int_equal(scan_n(&r, crlf, len, 100), -1);
	assert_int_equal(r.status, 431);
	http_req_reset(&r);
	free(crlf);
}

/* Builds a request with N header fields "Xi: v". */
static char *request_with_fields(unsigned n)
{
	size_t cap = 32 + (size_t)n * 16, len;
	char *p = malloc(cap);

	assert_non_null(p);
	len = (size_t)snprintf(p, cap, "GET / HTTP/1.1\r\n");
	for (unsigned i = 0; i < n; i++)
		len += (size_t)snprintf(p + len, cap - len, "X%u: v\r\n", i);
	snprintf(p + len, cap - len, "\r\n");
	return p;
}

/* The header count is bounded: fewer than MAX_HEADERS fields pass, more than
 * MAX_HEADERS are 431 whatever their size. */
static void test_header_count_limit(void **state)
{
	char *ok = request_with_fields(MAX_HEADERS - 1), *many = request_with_fields(MAX_HEADERS + 1);
	struct rq q;

	(void)state;
	assert_true(strlen(many) < MAX_HEADER_BYTES);
	for (size_t step = 1; step <= 4096; step *= 8) {
		rq_init(&q);
		assert_int_equal(feed_all(&q, ok, step), strlen(ok));
		assert_true(q.r.complete);
		http_req_reset(&q.r);

		rq_init(&q);
		assert_int_equal(feed_all(&q, many, step), -1);
		assert_int_equal(q.r.status, 431);
		http_req_reset(&q.r);
	}
	free(ok);
	free(many);
}

/* What http_req.c leaves to http-parser and its callbacks, as the comment in
 * on_headers_complete says: two Content-Lengths, Transfer-Encoding with
 * Content-Length, a body or URL above the limits, two Content-Types. */
static void test_framing(void **state)
{
	static const struct {
		const char *text;
		unsigned status;	/* 0: http-parser's own error */
	} bad[] = {
		{ "POST /login HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd", 0 },
		{ "POST /login HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", 0 },
		{ "POST /login HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
		  "4\r\nabcd\r\n0\r\n\r\n", 0 },
		{ "POST /login HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
		  "4\r\nabcd\r\n0\r\n\r\n", 0 },
		{ "POST /login HTTP/1.1\r\nContent-Length: 4097\r\n\r\n", 413 },
		{ "POST /login HTTP/1.1\r\nContent-Type: a\r\nContent-Type: b\r\n\r\n", 400 },
	};
	struct rq q;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		for (size_t step = 1; step <= 64; step *= 4) {
			rq_init(&q);
			assert_int_equal(feed_all(&q, bad[i].text, step), -1);
			assert_false(q.r.complete);
			assert_int_equal(q.r.status, bad[i].status);
			http_req_reset(&q.r);
		}
	}
	/* One Content-Length with its body is a complete request. */
	rq_init(&q);
	assert_true(feed_all(&q, "POST /login HTTP/1.1\r\nContent-Type: x\r\nContent-Length: 4\r\n\r\nabcd", 3) > 0);
	assert_true(q.r.complete);
	assert_int_equal(q.r.body.len, 4);
	assert_string_equal(q.r.ctype.p, "x");
	http_req_reset(&q.r);
}

/* A URL above MAX_URL is 414, one of MAX_URL bytes passes. */
static void test_url_limit(void **state)
{
	size_t cap = MAX_URL + 64;
	char *text = malloc(cap);
	struct rq q;

	(void)state;
	assert_non_null(text);
	for (size_t url = MAX_URL; url <= MAX_URL + 1; url++) {
		int n = snprintf(text, cap, "GET /");

		memset(text + n, 'a', url - 1);
		snprintf(text + n + url - 1, cap - (size_t)n - url + 1, " HTTP/1.1\r\n\r\n");
		rq_init(&q);
		if (url == MAX_URL) {
			assert_int_equal(feed_all(&q, text, 256), strlen(text));
			assert_int_equal(q.r.url.len, MAX_URL);
		} else {
			assert_int_equal(feed_all(&q, text, 256), -1);
			assert_int_equal(q.r.status, 414);
		}
		http_req_reset(&q.r);
	}
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_request),
		cmocka_unit_test(test_leading_empty_lines),
		cmocka_unit_test(test_screen),
		cmocka_unit_test(test_pipelined),
		cmocka_unit_test(test_bare_cr_lf),
		cmocka_unit_test(test_obs_fold),
		cmocka_unit_test(test_nul),
		cmocka_unit_test(test_scan_counts_header_bytes),
		cmocka_unit_test(test_header_bytes_limit),
		cmocka_unit_test(test_leading_empty_lines_bounded),
		cmocka_unit_test(test_header_count_limit),
		cmocka_unit_test(test_framing),
		cmocka_unit_test(test_url_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
