/*
 * tools/hub/apireq.c: the hub API's query string decoding and target split.
 * apireq.c has no I/O, so it is compiled in.  Queries are given in buffers of
 * exactly their length, so under ASan a read past the end fails the test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "tools/hub/apireq.c"

/* hub_query_get on an exact-size copy of TEXT. */
static int get(const char *text, const char *key, char *out, size_t outlen)
{
	size_t len = strlen(text);
	char *q = malloc(len ? len : 1);
	int rc;

	assert_non_null(q);
	memcpy(q, text, len);
	rc = hub_query_get(q, len, key, out, outlen);
	free(q);
	return rc;
}

static void test_query_get(void **state)
{
	char out[16];

	(void)state;
	assert_int_equal(get("q=al%69ce+x&limit=5", "q", out, sizeof(out)), 1);
	assert_string_equal(out, "alice x");
	assert_int_equal(get("limit=5", "q", out, sizeof(out)), 0);
	assert_int_equal(get("q=%41", "q", out, sizeof(out)), 1);
	assert_string_equal(out, "A");
	/* A percent escape cut short by the end of the query, or by the next
	 * pair: the decoder used to read one byte past the query here. */
	assert_int_equal(get("q=%4", "q", out, sizeof(out)), -1);
	assert_int_equal(get("q=%", "q", out, sizeof(out)), -1);
	assert_int_equal(get("q=%4&x=1", "q", out, sizeof(out)), -1);
	assert_int_equal(get("q=%00", "q", out, sizeof(out)), -1);
	assert_int_equal(get("q=0123456789abcdef", "q", out, sizeof(out)), -1);
}

static void test_query_limit(void **state)
{
	json_int_t limit;
	const char *q;

	(void)state;
	q = "limit=5000";
	assert_int_equal(hub_query_limit(q, strlen(q), &limit), 0);
	assert_int_equal(limit, 5000);
	q = "x=1";
	assert_int_equal(hub_query_limit(q, strlen(q), &limit), 0);
	assert_int_equal(limit, 100);
	q = "limit=5001";
	assert_int_equal(hub_query_limit(q, strlen(q), &limit), -1);
	q = "limit=0";
	assert_int_equal(hub_query_limit(q, strlen(q), &limit), -1);
	q = "limit=1%3";
	assert_int_equal(hub_query_limit(q, 9, &limit), -1);
}

static void test_target(void **state)
{
	struct hub_api_req *r = calloc(1, sizeof(*r));
	char path[HUB_API_URL_MAX + 1];
	const char *q;
	size_t qlen;

	(void)state;
	assert_non_null(r);
	strcpy(r->url, "/v1/users?q=a&limit=2");
	r->url_len = strlen(r->url);
	assert_int_equal(hub_api_target(r, path, &q, &qlen), 0);
	assert_string_equal(path, "/v1/users");
	assert_int_equal(qlen, 11);
	assert_memory_equal(q, "q=a&limit=2", 11);
	strcpy(r->url, "no url");
	r->url_len = strlen(r->url);
	assert_int_equal(hub_api_target(r, path, &q, &qlen), -1);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_query_get),
		cmocka_unit_test(test_query_limit),
		cmocka_unit_test(test_target),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
