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
	assert_int_equal(metrics_render(&b, &(struct metrics_view){ .m = &m }), 0);
	assert_non_null(strstr(b.p, "dirbridge_http_requests_total{route=\"login\",status=\"401\"} 3\n"));
	assert_non_null(strstr(b.p, "dirbridge_http_requests_total{route=\"other\",status=\"other\"} 2\n"));
	assert_non_null(strstr(b.p, "dirbridge_logins_total{method=\"certificate\",result=\"success\"} 7\n"));
	assert_non_null(strstr(b.p, "# TYPE dirbridge_http_open_connections gauge\ndirbridge_http_open_connections 5\n"));
	buf_wipe(&b);
}

/* Every part of the view: server URLs are config input and are escaped as
 * label values, histograms are cumulative and end with +Inf, _sum and _count. */
static void test_metrics_full(void **state)
{
	struct https_metrics m = { 0 };
	struct dir_stats ds = { .failovers = 2, .timeouts = 1, .user_binds = 9 };
	struct dir_server_stats sv[2] = {
		{ .name = "ldaps://dc1\\x\"y\nz", .in_use = true },
		{ .name = "ldaps://dc2", .down = true, .conn_failures = 4 },
	};
	struct agent_tunnel_stats hub = { .state_name = "open", .opens = 3, .reconnects = 2,
					  .busy = 5, .inflight = 1 };
	struct tls_server_expiry e = { .cert_not_after = 1000000 + 30 * 86400, .n_cas = 1,
				       .crl_next_update = 1000000 - 86400 / 2 };
	struct metrics_view v = { .m = &m, .dir = &ds, .servers = sv, .n_servers = 2, .hub = &hub,
				  .expiry = &e, .now = 1000000 };
	struct buf b = { 0 };

	(void)state;
	snprintf(e.cas[0].subject, sizeof e.cas[0].subject, "CN=Users CA,O=\"Ex\"");
	e.cas[0].not_after = 1000000 + 365 * 86400;
	sv[0].op[DIR_OP_BIND].bucket[0] = 2;
	sv[0].op[DIR_OP_BIND].bucket[3] = 1;
	sv[0].op[DIR_OP_BIND].bucket[DIR_LATENCY_BUCKETS] = 1;
	sv[0].op[DIR_OP_BIND].count = 4;
	sv[0].op[DIR_OP_BIND].sum_us = 12500000;
	sv[0].op[DIR_OP_SEARCH].errors = 6;
	m.handshake_fail_by[TLS_FAIL_NO_SHARED_CIPHER] = 8;
	m.accepted = 11;
	assert_int_equal(metrics_render(&b, &v), 0);
#define HAS(text) assert_non_null(strstr(b.p, text))
	HAS("# TYPE dirbridge_directory_operation_duration_seconds histogram\n");
	HAS("dirbridge_directory_operation_duration_seconds_bucket{server=\"ldaps://dc1\\\\x\\\"y\\nz\","
	    "operation=\"bind\",le=\"0.005\"} 2\n");
	HAS("dirbridge_directory_operation_duration_seconds_bucket{server=\"ldaps://dc1\\\\x\\\"y\\nz\","
	    "operation=\"bind\",le=\"0.05\"} 3\n");
	HAS("dirbridge_directory_operation_duration_seconds_bucket{server=\"ldaps://dc1\\\\x\\\"y\\nz\","
	    "operation=\"bind\",le=\"10\"} 3\n");
	HAS("dirbridge_directory_operation_duration_seconds_bucket{server=\"ldaps://dc1\\\\x\\\"y\\nz\","
	    "operation=\"bind\",le=\"+Inf\"} 4\n");
	HAS("dirbridge_directory_operation_duration_seconds_sum{server=\"ldaps://dc1\\\\x\\\"y\\nz\","
	    "operation=\"bind\"} 12.500000\n");
	HAS("dirbridge_directory_operation_duration_seconds_count{server=\"ldaps://dc2\",operation=\"modify\"} 0\n");
	HAS("dirbridge_directory_errors_total{server=\"ldaps://dc1\\\\x\\\"y\\nz\",operation=\"search\"} 6\n");
	HAS("dirbridge_directory_connection_failures_total{server=\"ldaps://dc2\"} 4\n");
	HAS("dirbridge_directory_server_in_use{server=\"ldaps://dc1\\\\x\\\"y\\nz\"} 1\n");
	HAS("dirbridge_directory_server_in_use{server=\"ldaps://dc2\"} 0\n");
	HAS("dirbridge_directory_server_up{server=\"ldaps://dc2\"} 0\n");
	HAS("dirbridge_directory_failovers_total 2\n");
	HAS("dirbridge_directory_timeouts_total 1\n");
	HAS("dirbridge_hub_link_state{state=\"open\"} 1\n");
	HAS("dirbridge_hub_link_state{state=\"backoff\"} 0\n");
	HAS("dirbridge_hub_reconnects_total 2\n");
	HAS("dirbridge_hub_requests_in_flight 1\n");
	HAS("dirbridge_hub_busy_refusals_total 5\n");
	HAS("dirbridge_tls_handshake_failures_total{reason=\"no_shared_cipher\"} 8\n");
	HAS("dirbridge_http_connections_accepted_total 11\n");
	HAS("dirbridge_front_certificate_expiry_days 30.000\n");
	HAS("dirbridge_client_ca_expiry_days{subject=\"CN=Users CA,O=\\\"Ex\\\"\"} 365.000\n");
	HAS("dirbridge_crl_next_update_days -0.500\n");
#undef HAS
	/* No raw newline inside any series: every line is HELP, TYPE or a sample. */
	for (char *line = b.p; *line;) {
		char *nl = strchr(line, '\n');

		assert_non_null(nl);
		assert_true(strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0 ||
			    strncmp(line, "dirbridge_", 10) == 0);
		line = nl + 1;
	}
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
		cmocka_unit_test(test_metrics_full),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
