/*
 * dirbridge-check's pure parts: the line and JSON formats, exit statuses, days
 * to expiry, clock skew, and the directory's GeneralizedTime.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "tools/check/report.c"
#include "tools/check/checks.c"
#include "tools/check/wire.c"

static void test_lines(void **state)
{
	struct chk_report r = { 0 };
	char buf[2048];

	(void)state;
	assert_int_equal(chk_add(&r, "bind", CHK_OK, NULL, "bound as %s", "x"), 0);
	assert_int_equal(chk_add(&r, "crl", CHK_FAIL, "publish a new CRL", "stale"), 0);
	assert_int_equal(chk_add(&r, "user", CHK_SKIP, "ignored", "no --user given"), 0);
	assert_int_equal(chk_add(&r, "x", CHK_FAIL, NULL, "no fix given"), 0);
	chk_line(&r.items[0], buf, sizeof buf);
	assert_string_equal(buf, "ok   bind: bound as x");
	chk_line(&r.items[1], buf, sizeof buf);
	assert_string_equal(buf, "FAIL crl: stale; fix: publish a new CRL");
	chk_line(&r.items[2], buf, sizeof buf);
	assert_string_equal(buf, "skip user: no --user given");
	assert_string_equal(r.items[2].fix, "");	/* only failures carry a fix */
	assert_true(r.items[3].fix[0] != '\0');		/* never a failure without one */
	assert_int_equal(chk_exit_status(&r), 1);
	r.config_unusable = true;
	assert_int_equal(chk_exit_status(&r), 2);
	chk_report_free(&r);
	assert_int_equal(chk_exit_status(&r), 0);
}

static void test_many(void **state)
{
	struct chk_report r = { 0 };

	(void)state;
	for (int i = 0; i < 100; i++)
		assert_int_equal(chk_add(&r, "tcp", CHK_OK, NULL, "%d", i), 0);
	assert_int_equal(r.n, 100);
	assert_string_equal(r.items[99].detail, "99");
	assert_int_equal(chk_exit_status(&r), 0);
	chk_report_free(&r);
}

static void test_json(void **state)
{
	struct chk_report r = { 0 };
	json_t *j, *c;

	(void)state;
	chk_add(&r, "bind", CHK_OK, NULL, "ok \"quoted\"");
	chk_add(&r, "crl", CHK_FAIL, "fix it", "stale");
	chk_add(&r, "user", CHK_SKIP, NULL, "none");
	j = chk_json(&r);
	assert_non_null(j);
	c = json_object_get(j, "checks");
	assert_int_equal(json_array_size(c), 3);
	assert_string_equal(json_string_value(json_object_get(json_array_get(c, 0), "status")), "ok");
	assert_string_equal(json_string_value(json_object_get(json_array_get(c, 0), "detail")),
			    "ok \"quoted\"");
	assert_string_equal(json_string_value(json_object_get(json_array_get(c, 1), "status")), "fail");
	assert_string_equal(json_string_value(json_object_get(json_array_get(c, 1), "fix")), "fix it");
	assert_string_equal(json_string_value(json_object_get(json_array_get(c, 2), "status")), "skip");
	assert_string_equal(json_string_value(json_object_get(json_array_get(c, 2), "name")), "user");
	json_decref(j);
	chk_report_free(&r);
}

static void test_days(void **state)
{
	(void)state;
	assert_int_equal(chk_days_left(1000, 1000), 0);
	assert_int_equal(chk_days_left(1000 + 86399, 1000), 0);
	assert_int_equal(chk_days_left(1000 + 86400, 1000), 1);
	assert_int_equal(chk_days_left(999, 1000), -1);	/* one second late is expired */
	assert_int_equal(chk_days_left(1000 - 86400, 1000), -1);
	assert_int_equal(chk_days_left(1000 - 86401, 1000), -2);
}

static void test_skew(void **state)
{
	(void)state;
	assert_int_equal(chk_skew(105, 100, 110), 0);	/* inside the window */
	assert_int_equal(chk_skew(100, 100, 110), 0);
	assert_int_equal(chk_skew(40, 100, 110), 60);	/* the directory is behind */
	assert_int_equal(chk_skew(500, 100, 110), 390);	/* ahead, from the later reading */
}

static void test_generalized_time(void **state)
{
	int64_t t = 0;

	(void)state;
	assert_int_equal(dir_generalized_time("19700101000000Z", &t), 0);
	assert_int_equal(t, 0);
	assert_int_equal(dir_generalized_time("20260101120000.0Z", &t), 0);
	assert_int_equal(t, 1767268800);
	assert_int_equal(dir_generalized_time("20260101120000,123Z", &t), 0);
	assert_int_equal(t, 1767268800);
	assert_int_equal(dir_generalized_time("20260101120000", &t), DIR_E_BAD_REQUEST);
	assert_int_equal(dir_generalized_time("20260101120000+0100", &t), DIR_E_BAD_REQUEST);
	assert_int_equal(dir_generalized_time("20261301120000Z", &t), DIR_E_BAD_REQUEST);
	assert_int_equal(dir_generalized_time("2026010112000Z", &t), DIR_E_BAD_REQUEST);
	assert_int_equal(dir_generalized_time("", &t), DIR_E_BAD_REQUEST);
	assert_int_equal(dir_generalized_time(NULL, &t), DIR_E_BAD_REQUEST);
}

/* Each TLS failure reason gets the fix for its cause. */
static void test_tls_fix(void **state)
{
	char fix[FIX_MAX];

	(void)state;
	assert_non_null(strstr(tls_fix_in(fix, "certificate verify: The certificate has expired",
					  "[ldap] ca_file", "[ldap] url"), "renew the server"));
	assert_non_null(strstr(tls_fix_in(fix, "The certificate is not yet activated",
					  "[ldap] ca_file", "[ldap] url"), "clock"));
	assert_non_null(strstr(tls_fix_in(fix, "The certificate's owner does not match hostname",
					  "[hub] ca_file", "[hub] url"), "[hub] url"));
	assert_non_null(strstr(tls_fix_in(fix, "The certificate issuer is unknown",
					  "[ldap] ca_file", "[ldap] url"), "set [ldap] ca_file"));
	assert_non_null(strstr(tls_fix_in(fix, "StartTLS: Timed out", "[ldap] ca_file",
					  "[ldap] url"), "ldaps:// 636"));
	assert_null(strstr(tls_fix_in(fix, "no TLS handshake within 5 ms", "[hub] ca_file",
				      "[hub] url"), "ldaps"));
}

/* A name that resolves locally, and one that cannot. */
static void test_resolve(void **state)
{
	struct sockaddr_storage a[4];
	size_t n = 0;

	(void)state;
	assert_int_equal(chk_resolve("127.0.0.1", 389, a, 4, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(a[0].ss_family, AF_INET);
	assert_int_equal(ntohs(((struct sockaddr_in *)&a[0])->sin_port), 389);
	assert_true(chk_resolve("no-such-host.invalid", 389, a, 4, &n) < 0);
	assert_int_equal(n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines),
		cmocka_unit_test(test_many),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_days),
		cmocka_unit_test(test_skew),
		cmocka_unit_test(test_generalized_time),
		cmocka_unit_test(test_tls_fix),
		cmocka_unit_test(test_resolve),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
