/*
 * agent/http.c: form decoding, CSRF tokens, HTML escaping, session ids and the
 * pages.  http.c has no I/O and no global state besides the CSRF key; the test
 * links it from build/libagent.a.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent/https.h"

static void test_form_get(void **state)
{
	const char form[] = "session=abc&username=o%27brien+x&password=p%25w%2Bd&empty=&dup=1&dup=2";
	char *v = NULL;
	size_t n = 0;

	(void)state;
	assert_int_equal(form_get(form, strlen(form), "username", &v, NULL), 0);
	assert_string_equal(v, "o'brien x");
	free(v);
	assert_int_equal(form_get(form, strlen(form), "password", &v, &n), 0);
	assert_string_equal(v, "p%w+d");
	assert_int_equal(n, 5);
	free(v);
	assert_int_equal(form_get(form, strlen(form), "empty", &v, &n), 0);
	assert_int_equal(n, 0);
	free(v);
	assert_int_equal(form_get(form, strlen(form), "dup", &v, NULL), 0);
	assert_string_equal(v, "1");
	free(v);
	assert_int_equal(form_get(form, strlen(form), "sess", &v, NULL), -ENOENT);
	assert_null(v);
	/* A name only matches whole: "ession" is not "session". */
	assert_int_equal(form_get(form, strlen(form), "ession", &v, NULL), -ENOENT);
}

static void test_form_hostile(void **state)
{
	char *v = NULL;

	(void)state;
	assert_int_equal(form_get("a=x%00y", 7, "a", &v, NULL), -EINVAL);	/* NUL */
	assert_int_equal(form_get("a=x%4", 5, "a", &v, NULL), -EINVAL);	/* truncated */
	assert_int_equal(form_get("a=x%", 4, "a", &v, NULL), -EINVAL);
	assert_int_equal(form_get("a=%zz", 5, "a", &v, NULL), -EINVAL);
	/* LEN bounds the input: nothing past it is read. */
	assert_int_equal(form_get("a=12345", 4, "a", &v, NULL), 0);
	assert_string_equal(v, "12");
	free(v);
	assert_int_equal(form_get("", 0, "a", &v, NULL), -ENOENT);
	assert_int_equal(form_get("&&&=&", 5, "a", &v, NULL), -ENOENT);
}

static void test_csrf(void **state)
{
	char tok[128], bad[128];

	(void)state;
	assert_int_equal(csrf_init(), 0);
	assert_int_equal(csrf_make("s1", tok, sizeof tok), 0);
	assert_true(csrf_check("s1", tok));
	assert_false(csrf_check("s2", tok));		/* bound to its session */
	strcpy(bad, tok);
	bad[strlen(bad) - 1] ^= 1;
	assert_false(csrf_check("s1", bad));		/* one bit off */
	/* Another expiry with the same MAC fails, so the time cannot be stretched. */
	strcpy(bad, tok);
	bad[0] = bad[0] == '1' ? '2' : '1';
	assert_false(csrf_check("s1", bad));
	assert_false(csrf_check("s1", ""));
	assert_false(csrf_check("s1", "123"));
	assert_false(csrf_check("s1", "9999999999.00"));
	assert_int_equal(csrf_make("s1", tok, 10), -ENOSPC);
	/* A fresh key (a restarted process) invalidates old tokens. */
	assert_int_equal(csrf_make("s1", tok, sizeof tok), 0);
	assert_int_equal(csrf_init(), 0);
	assert_false(csrf_check("s1", tok));
}

static void test_session_id(void **state)
{
	char longid[130];

	(void)state;
	assert_true(session_id_valid("abc-DEF_123"));
	assert_false(session_id_valid(""));
	assert_false(session_id_valid("a b"));
	assert_false(session_id_valid("a\"b"));
	assert_false(session_id_valid("<script>"));
	memset(longid, 'a', 128);
	longid[128] = '\0';
	assert_true(session_id_valid(longid));
	longid[128] = 'a';
	longid[129] = '\0';
	assert_false(session_id_valid(longid));
}

static void test_escaping(void **state)
{
	struct buf b = { 0 };

	(void)state;
	assert_int_equal(buf_html(&b, "<a href=\"x\" onclick='y'>&</a>"), 0);
	assert_string_equal(b.p, "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;");
	buf_wipe(&b);
	assert_null(b.p);
	/* Every value in the form goes through the escaper. */
	assert_int_equal(page_form(&b, "s\"1", "t<k", "u'><x", "m&<"), 0);
	assert_non_null(strstr(b.p, "value=\"s&quot;1\""));
	assert_non_null(strstr(b.p, "value=\"t&lt;k\""));
	assert_non_null(strstr(b.p, "value=\"u&#39;&gt;&lt;x\""));
	assert_non_null(strstr(b.p, "m&amp;&lt;"));
	assert_null(strstr(b.p, "<x"));
	buf_wipe(&b);
	assert_int_equal(page_success(&b, "<b>", "certificate"), 0);
	assert_non_null(strstr(b.p, "&lt;b&gt;"));
	assert_null(strstr(b.p, "<b>"));
	buf_wipe(&b);
	/* The notice page: escaped, and never a form to type a password into. */
	assert_int_equal(page_notice(&b, "gone\"", "<T>", "m&<"), 0);
	assert_non_null(strstr(b.p, "<h1 id=\"gone&quot;\">&lt;T&gt;</h1>"));
	assert_non_null(strstr(b.p, "<title>&lt;T&gt;</title>"));
	assert_non_null(strstr(b.p, "id=\"message\">m&amp;&lt;</p>"));
	assert_null(strstr(b.p, "<form"));
	assert_null(strstr(b.p, "<input"));
	buf_wipe(&b);
}

static void test_buf_growth(void **state)
{
	struct buf b = { 0 };
	size_t i;

	(void)state;
	for (i = 0; i < 10000; i++)
		assert_int_equal(buf_add(&b, "0123456789", 10), 0);
	assert_int_equal(b.len, 100000);
	assert_int_equal(b.p[b.len], '\0');
	assert_int_equal(buf_printf(&b, "%d", 42), 0);
	assert_string_equal(b.p + 100000, "42");
	buf_wipe(&b);
}

static void test_metrics(void **state)
{
	struct https_metrics m = { 0 };
	struct buf b = { 0 };

	(void)state;
	m.requests[ROUTE_LOGIN][metrics_status_slot(401)] = 3;
	m.requests[ROUTE_OTHER][metrics_status_slot(418)] = 2;
	m.logins_cert_ok = 7;
	m.open_conns = 5;
	assert_int_equal(metrics_render(&b, &m), 0);
	assert_non_null(strstr(b.p, "dirbridge_http_requests_total{route=\"login\",status=\"401\"} 3\n"));
	assert_non_null(strstr(b.p, "dirbridge_http_requests_total{route=\"other\",status=\"other\"} 2\n"));
	assert_non_null(strstr(b.p, "dirbridge_logins_total{method=\"certificate\",result=\"success\"} 7\n"));
	assert_non_null(strstr(b.p, "# TYPE dirbridge_http_open_connections gauge\ndirbridge_http_open_connections 5\n"));
	buf_wipe(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_form_get),
		cmocka_unit_test(test_form_hostile),
		cmocka_unit_test(test_csrf),
		cmocka_unit_test(test_session_id),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_buf_growth),
		cmocka_unit_test(test_metrics),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
