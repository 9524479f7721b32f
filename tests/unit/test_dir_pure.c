/*
 * ldap/: the helpers private to the module (UTF-8 walking, the UTF-16LE
 * encoding of AD's unicodePwd) and the linear-time promise of the public
 * escaping functions on 64 KiB of hostile input.  The public helpers' full
 * behaviour is tested in test_dir.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ldap/dir.h"
#include "ldap/internal.h"

static void test_utf8_next(void **state)
{
	uint32_t cp = 0;

	(void)state;
	assert_int_equal(dir_utf8_next((const unsigned char *)"a", 1, &cp), 1);
	assert_int_equal(cp, 'a');
	assert_int_equal(dir_utf8_next((const unsigned char *)"\xc3\xa4", 2, &cp), 2);
	assert_int_equal(cp, 0xe4);
	assert_int_equal(dir_utf8_next((const unsigned char *)"\xe2\x82\xac", 3, &cp), 3);
	assert_int_equal(cp, 0x20ac);
	assert_int_equal(dir_utf8_next((const unsigned char *)"\xf0\x9f\x98\x80", 4, &cp), 4);
	assert_int_equal(cp, 0x1f600);
	/* Truncated, overlong, surrogate, beyond U+10FFFF, stray continuation. */
	assert_int_equal(dir_utf8_next((const unsigned char *)"\xc3", 1, &cp), 0);
	assert_int_equal(dir_utf8_next((const unsigned char *)"\xc0\xaf", 2, &cp), 0);
	assert_int_equal(dir_utf8_next((const unsigned char *)"\xe0\x80\xaf", 3, &cp), 0);
	assert_int_equal(dir_utf8_next((const unsigned char *)"\xed\xa0\x80", 3, &cp), 0);
	assert_int_equal(dir_utf8_next((const unsigned char *)"\xf4\x90\x80\x80", 4, &cp), 0);
	assert_int_equal(dir_utf8_next((const unsigned char *)"\x80", 1, &cp), 0);
	assert_int_equal(dir_utf8_next((const unsigned char *)"\xff", 1, &cp), 0);
	assert_true(dir_utf8_valid("gr\xc3\xbc\xc3\x9f", 6));
	assert_false(dir_utf8_valid("a\0b", 3));
	assert_true(dir_utf8_valid("", 0));
}

static void test_utf16le(void **state)
{
	unsigned char *out = NULL;
	size_t len = 0;

	(void)state;
	/* The quoted form AD wants: "ab" -> 22 00 61 00 62 00 22 00. */
	assert_int_equal(dir_utf16le("\"ab\"", 4, &out, &len), 0);
	assert_int_equal(len, 8);
	assert_memory_equal(out, "\x22\x00\x61\x00\x62\x00\x22\x00", 8);
	free(out);
	/* U+00E4 and U+20AC stay one unit; U+1F600 becomes a surrogate pair. */
	assert_int_equal(dir_utf16le("\xc3\xa4\xe2\x82\xac\xf0\x9f\x98\x80", 9, &out, &len), 0);
	assert_int_equal(len, 8);
	assert_memory_equal(out, "\xe4\x00\xac\x20\x3d\xd8\x00\xde", 8);
	free(out);
	/* Invalid UTF-8 and NUL are refused, never passed on byte by byte. */
	assert_int_equal(dir_utf16le("\xff", 1, &out, &len), DIR_E_BAD_REQUEST);
	assert_null(out);
	assert_int_equal(dir_utf16le("a\0b", 3, &out, &len), DIR_E_BAD_REQUEST);
	assert_int_equal(dir_utf16le("\xed\xa0\x80", 3, &out, &len), DIR_E_BAD_REQUEST);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 64 KiB of the worst characters must be handled in linear time: under ASan a
 * quadratic walk over 64 KiB takes seconds, a linear one milliseconds. */
static void test_64k_linear(void **state)
{
	const size_t n = 64 * 1024;
	char *in = malloc(n + 1), *out = NULL;
	size_t want = 0;
	double t0;

	(void)state;
	assert_non_null(in);
	for (size_t i = 0; i < n; i++) {
		in[i] = "*()\\,+\"<>;="[i % 11];
		want += strchr("*()\\", in[i]) ? 3 : 1;
	}
	in[n] = '\0';
	t0 = now();
	for (int k = 0; k < 20; k++) {
		assert_int_equal(dir_filter_escape(in, n, &out), 0);
		assert_int_equal(strlen(out), want);
		free(out);
		assert_int_equal(dir_dn_escape(in, n, &out), 0);
		free(out);
		assert_false(dir_username_valid(in, n));
		assert_int_equal(dir_ad_diag(in), DIR_E_INVALID_CREDENTIALS);
	}
	assert_true(now() - t0 < 2.0);
	/* A 64 KiB name of letters is still too long to be a username. */
	memset(in, 'a', n);
	assert_false(dir_username_valid(in, n));
	assert_true(dir_username_valid(in, 256));
	assert_false(dir_username_valid(in, 257));
	free(in);
}

static void test_ascii_caseeq(void **state)
{
	(void)state;
	assert_true(dir_ascii_caseeq("alice", 5, "ALICE", 5));
	assert_true(dir_ascii_caseeq("Alice-1_x", 9, "aLICE-1_X", 9));
	assert_false(dir_ascii_caseeq("alice", 5, "alic", 4));
	assert_false(dir_ascii_caseeq("alice", 5, "alicf", 5));
	/* Only A..Z fold: '@' and '`' sit next to them, 0x40 and 0x60. */
	assert_false(dir_ascii_caseeq("@", 1, "`", 1));
	assert_false(dir_ascii_caseeq("[", 1, "{", 1));
	/* Non-ASCII letters compare as bytes: no Unicode or locale folding. */
	assert_false(dir_ascii_caseeq("\xc3\xa4", 2, "\xc3\x84", 2));	/* ä, Ä */
	assert_false(dir_ascii_caseeq("\xef\xbd\x81lice", 7, "alice", 5));
	assert_false(dir_ascii_caseeq("i", 1, "\xc4\xb0", 2));		/* i, İ */
	assert_true(dir_ascii_caseeq("\xc3\xa4X", 3, "\xc3\xa4x", 3));
}

static void test_name_pick(void **state)
{
	struct berval a = { 5, (char *)"alice" }, up = { 5, (char *)"ALICE" },
		      fw = { 7, (char *)"\xef\xbd\x81lice" }, sp = { 6, (char *)"alice " },
		      other = { 6, (char *)"asmith" }, nul = { 6, (char *)"alice\0" };
	struct berval *one[] = { &a }, *folded[] = { &fw, &sp, &nul },
		      *multi[] = { &other, &up, &a }, *gaps[] = { NULL, &other, &up };

	(void)state;
	assert_int_equal(dir_name_pick(one, 1, "alice"), 0);
	assert_int_equal(dir_name_pick(one, 1, "Alice"), 0);
	assert_int_equal(dir_name_pick(one, 1, "ALICE"), 0);
	/* What only the directory's matching rule equates is no match. */
	assert_int_equal(dir_name_pick(one, 1, "\xef\xbd\x81lice"), -1);
	assert_int_equal(dir_name_pick(one, 1, "alice "), -1);
	assert_int_equal(dir_name_pick(one, 1, "al ice"), -1);
	assert_int_equal(dir_name_pick(folded, 3, "alice"), -1);
	assert_int_equal(dir_name_pick(one, 0, "alice"), -1);
	assert_int_equal(dir_name_pick(NULL, 0, "alice"), -1);
	/* Every value counts; the byte-equal one wins over a case variant. */
	assert_int_equal(dir_name_pick(multi, 3, "alice"), 2);
	assert_int_equal(dir_name_pick(multi, 3, "Alice"), 1);
	assert_int_equal(dir_name_pick(multi, 3, "ASMITH"), 0);
	assert_int_equal(dir_name_pick(gaps, 3, "alice"), 2);
}

/* Only results that leave the connection usable for another bind keep it. */
static void test_ubind_keep(void **state)
{
	(void)state;
	assert_true(dir_ubind_keep(LDAP_SUCCESS));
	assert_true(dir_ubind_keep(LDAP_INVALID_CREDENTIALS));
	assert_true(dir_ubind_keep(LDAP_INAPPROPRIATE_AUTH));
	assert_false(dir_ubind_keep(LDAP_UNAVAILABLE));
	assert_false(dir_ubind_keep(LDAP_BUSY));
	assert_false(dir_ubind_keep(LDAP_PROTOCOL_ERROR));
	assert_false(dir_ubind_keep(LDAP_OPERATIONS_ERROR));
	assert_false(dir_ubind_keep(LDAP_OTHER));
	assert_false(dir_ubind_keep(LDAP_UNWILLING_TO_PERFORM));
	assert_false(dir_ubind_keep(LDAP_SASL_BIND_IN_PROGRESS));
	/* libldap's own (negative) codes: the transport failed. */
	assert_false(dir_ubind_keep(LDAP_SERVER_DOWN));
	assert_false(dir_ubind_keep(LDAP_TIMEOUT));
	assert_false(dir_ubind_keep(LDAP_DECODING_ERROR));
}

static void test_user_idle_ms(void **state)
{
	(void)state;
	assert_int_equal(dir_user_idle_ms(0), 1000);
	assert_int_equal(dir_user_idle_ms(300), 1000);
	assert_int_equal(dir_user_idle_ms(1000), 2000);
	assert_int_equal(dir_user_idle_ms(5000), 10000);
	assert_int_equal(dir_user_idle_ms(30000), 60000);
	assert_int_equal(dir_user_idle_ms(4000000000u), 60000);
}

static void test_group_filter(void **state)
{
	char *dns[] = { "cn=a,dc=x", NULL, "cn=b*)(uid=*,dc=x", "cn=\\c(1),dc=x" };
	char invalid[] = "cn=?,dc=x";	/* made invalid UTF-8 below */
	char *bad[] = { invalid };
	char *f = NULL;

	(void)state;
	assert_int_equal(dir_group_filter(dns, 4, &f), 0);
	assert_string_equal(f,
		"(&(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))(|"
		"(member=cn=a,dc=x)(uniqueMember=cn=a,dc=x)"
		"(member=cn=b\\2a\\29\\28uid=\\2a,dc=x)(uniqueMember=cn=b\\2a\\29\\28uid=\\2a,dc=x)"
		"(member=cn=\\5cc\\281\\29,dc=x)(uniqueMember=cn=\\5cc\\281\\29,dc=x)))");
	free(f);
	f = NULL;
	/* Nothing left to ask for: no filter, never an empty OR. */
	assert_int_equal(dir_group_filter(dns + 1, 1, &f), DIR_E_NOT_FOUND);
	assert_null(f);
	assert_int_equal(dir_group_filter(dns, 0, &f), DIR_E_NOT_FOUND);
	invalid[3] = (char)0xff;
	assert_int_equal(dir_group_filter(bad, 1, &f), DIR_E_NOT_FOUND);
	assert_null(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_utf8_next),
		cmocka_unit_test(test_utf16le),
		cmocka_unit_test(test_64k_linear),
		cmocka_unit_test(test_ascii_caseeq),
		cmocka_unit_test(test_name_pick),
		cmocka_unit_test(test_ubind_keep),
		cmocka_unit_test(test_user_idle_ms),
		cmocka_unit_test(test_group_filter),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
