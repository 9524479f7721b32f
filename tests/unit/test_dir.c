/*
 * Unit tests for the pure helpers of ldap/dir.h: filter and DN escaping, the
 * username check, AD bind diagnostics and the protocol's error code names.
 *
 * Escaping is checked by meaning, not by one spelling: an escaped filter value is
 * decoded again (RFC 4515 allows escaping any byte, in either hex case) and must
 * give back the input and contain no unescaped special character; an escaped DN
 * value is parsed by libldap's own DN parser and must give back the input as the
 * single value of a single RDN.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ldap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ldap/dir.h"
#include "net/net.h"

/*
 * Decodes an RFC 4515 assertion value into BUF; fails the test on any byte that
 * must have been escaped, or on a malformed escape.  Returns the decoded length.
 */
static size_t filter_unescape(const char *esc, char *buf, size_t cap)
{
	size_t n = 0;

	for (const char *p = esc; *p; p++) {
		assert_true(n < cap);
		if (*p == '\\') {
			int hi = net_hexval((unsigned char)p[1]);
			int lo = hi < 0 ? -1 : net_hexval((unsigned char)p[2]);

			if (hi < 0 || lo < 0)
				fail_msg("malformed escape at offset %td of \"%.40s\"", p - esc, esc);
			buf[n++] = (char)(hi << 4 | lo);
			p += 2;
			continue;
		}
		if (*p == '*' || *p == '(' || *p == ')')
			fail_msg("unescaped '%c' at offset %td of \"%.40s\"", *p, p - esc, esc);
		buf[n++] = *p;
	}
	return n;
}

static void filter_roundtrip(const char *in, size_t len)
{
	char *out = NULL;
	char *back = malloc(len + 1);

	assert_non_null(back);
	assert_int_equal(dir_filter_escape(in, len, &out), 0);
	assert_non_null(out);
	assert_int_equal(filter_unescape(out, back, len + 1), len);
	assert_memory_equal(back, in, len);
	free(out);
	free(back);
}

static void test_filter_specials(void **state)
{
	static const char *const cases[] = {
		"alice", "*", "*)(uid=*", "(", ")", "\\", "\\2a", "admin)(|(uid=*",
		"a*b(c)d\\e", "o'brien", "Smith, John", "x=y+z;<>#\"", " lead", "trail ",
	};
	char *out = NULL;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
		filter_roundtrip(cases[i], strlen(cases[i]));

	/* The exact RFC 4515 forms, compared without regard to hex case. */
	assert_int_equal(dir_filter_escape("*)(uid=*", 8, &out), 0);
	assert_true(strcasecmp(out, "\\2a\\29\\28uid=\\2a") == 0);
	free(out);
	out = NULL;
	assert_int_equal(dir_filter_escape("\\", 1, &out), 0);
	assert_true(strcasecmp(out, "\\5c") == 0);
	free(out);
	out = NULL;
	assert_int_equal(dir_filter_escape("alice", 5, &out), 0);
	assert_string_equal(out, "alice");
	free(out);
}

static void test_filter_refuses_nul(void **state)
{
	char *out = NULL;

	(void)state;
	assert_int_equal(dir_filter_escape("ali\0ce", 6, &out), DIR_E_BAD_REQUEST);
	assert_null(out);
	assert_int_equal(dir_filter_escape("\0", 1, &out), DIR_E_BAD_REQUEST);
	assert_null(out);
	assert_int_equal(dir_filter_escape("alice\0", 6, &out), DIR_E_BAD_REQUEST);
	assert_null(out);
}

static void test_filter_utf8(void **state)
{
	static const char *const bad[] = {
		"\xff", "a\xc3", "\xc3(", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80",
		"\xf4\x90\x80\x80", "\xf8\x88\x80\x80\x80", "\x80", "ok\xe2\x82",
	};
	static const char *const good[] = {
		"Zo\xc3\xab", "\xe6\x97\xa5\xe6\x9c\xac", "\xf0\x9f\x94\x91key", "\xc3\xa9*",
	};
	char *out = NULL;

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		if (dir_filter_escape(bad[i], strlen(bad[i]), &out) != DIR_E_BAD_REQUEST)
			fail_msg("invalid UTF-8 case %zu accepted", i);
		assert_null(out);
	}
	for (size_t i = 0; i < sizeof good / sizeof *good; i++)
		filter_roundtrip(good[i], strlen(good[i]));
	/* Multibyte characters are legal in a value and are kept as they are. */
	assert_int_equal(dir_filter_escape("Zo\xc3\xab", 4, &out), 0);
	assert_string_equal(out, "Zo\xc3\xab");
	free(out);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 64 KiB of specials triples exactly; 1 MiB must still be quick (a quadratic
 * escaper takes minutes on it, even without sanitizers). */
static void test_filter_long(void **state)
{
	size_t big = (size_t)1 << 20, len = (size_t)64 << 10;
	char *in = malloc(big);
	char *out = NULL;
	double t0, dt;

	(void)state;
	assert_non_null(in);
	memset(in, '*', len);
	assert_int_equal(dir_filter_escape(in, len, &out), 0);
	assert_int_equal(strlen(out), 3 * len);
	free(out);
	out = NULL;

	memset(in, 'a', len);
	assert_int_equal(dir_filter_escape(in, len, &out), 0);
	assert_int_equal(strlen(out), len);
	free(out);
	out = NULL;

	for (size_t i = 0; i < big; i++)
		in[i] = "a*(\\)"[i % 5];
	t0 = now();
	assert_int_equal(dir_filter_escape(in, big, &out), 0);
	dt = now() - t0;
	assert_int_equal(strlen(out), 3 * big - 2 * ((big + 4) / 5));
	if (dt > 1.0)
		fail_msg("escaping 1 MiB took %.2f s", dt);
	free(out);
	free(in);
}

/* Parses "cn=" ESC with libldap and returns the single AVA value. */
static void dn_roundtrip(const char *in, size_t len)
{
	char *out = NULL, *dn;
	LDAPDN parsed = NULL;
	struct berval bv;

	assert_int_equal(dir_dn_escape(in, len, &out), 0);
	assert_non_null(out);
	assert_int_not_equal(asprintf(&dn, "cn=%s", out), -1);
	bv.bv_val = dn;
	bv.bv_len = strlen(dn);
	if (ldap_bv2dn(&bv, &parsed, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS)
		fail_msg("escaped \"%s\" -> \"%s\" is not a valid DN value", in, out);
	assert_non_null(parsed[0]);
	assert_null(parsed[1]);		/* one RDN: no unescaped ',' or ';' */
	assert_non_null(parsed[0][0]);
	assert_null(parsed[0][1]);	/* one AVA: no unescaped '+' */
	assert_int_equal(parsed[0][0]->la_value.bv_len, len);
	assert_memory_equal(parsed[0][0]->la_value.bv_val, in, len);
	ldap_dnfree(parsed);
	free(dn);
	free(out);
}

static void test_dn_escape(void **state)
{
	static const char *const cases[] = {
		"alice", " lead", "#hash", "trail ", "  both  ", "a,b", "a+b", "a\"b",
		"a\\b", "a<b>", "a;b", "a=b", ",+\"\\<>;=", "#", " ", "Smith, John",
		"o'brien", "mid # and space", "Zo\xc3\xab", "*)(uid=*",
	};
	char *out = NULL;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
		dn_roundtrip(cases[i], strlen(cases[i]));

	/* The characters RFC 4514 requires escaped never appear bare. */
	assert_int_equal(dir_dn_escape(",+\"\\<>;", 7, &out), 0);
	for (const char *p = out; *p; p++) {
		assert_int_equal(*p, '\\');
		p++;
		assert_true(*p && (strchr(",+\"\\<>;", *p) || net_hexval((unsigned char)*p) >= 0));
		if (net_hexval((unsigned char)*p) >= 0)
			p++;
	}
	free(out);
	out = NULL;
	assert_int_equal(dir_dn_escape("#x", 2, &out), 0);
	assert_int_equal(out[0], '\\');
	free(out);
	out = NULL;
	assert_int_equal(dir_dn_escape("x ", 2, &out), 0);
	assert_true(strcmp(out, "x\\ ") == 0 || strcasecmp(out, "x\\20") == 0);
	free(out);
	out = NULL;
	assert_int_equal(dir_dn_escape("plain", 5, &out), 0);
	assert_string_equal(out, "plain");
	free(out);
}

static void test_username_valid(void **state)
{
	static const char *const ok[] = {
		"alice", "o'brien", "jean.dupont", "j-d_x", "alice@example.test", "Zo\xc3\xab",
		"John Smith", "u0001", "$svc", "\xe6\x97\xa5\xe6\x9c\xac",
	};
	static const char *const bad[] = {
		"\"", "/", "\\", "[", "]", ":", ";", "|", "=", ",", "+", "*", "?", "<", ">",
		"(", ")", "*)(uid=*", "admin)(|(uid=*", "a\tb", "a\nb", "a\rb", "\x01", "\x1f",
		"\x7f", "\xff", "a\xc3", "\xc0\xaf", "\xed\xa0\x80", "domain\\user",
	};
	char name[300];

	(void)state;
	for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
		if (!dir_username_valid(ok[i], strlen(ok[i])))
			fail_msg("\"%s\" refused", ok[i]);
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		if (dir_username_valid(bad[i], strlen(bad[i])))
			fail_msg("bad case %zu (\"%s\") accepted", i, bad[i]);
	assert_false(dir_username_valid("", 0));
	assert_false(dir_username_valid("ali\0ce", 6));
	assert_false(dir_username_valid("alice\0", 6));
	/* Only LEN bytes count. */
	assert_true(dir_username_valid("alice*", 5));
	memset(name, 'a', sizeof name);
	assert_true(dir_username_valid(name, 256));
	assert_false(dir_username_valid(name, 257));
}

static void test_ad_diag(void **state)
{
	static const struct {
		const char *code;
		int want;
	} map[] = {
		{ "52e", DIR_E_INVALID_CREDENTIALS },
		{ "525", DIR_E_INVALID_CREDENTIALS },
		{ "530", DIR_E_ACCOUNT_DISABLED },	/* not permitted at this time */
		{ "531", DIR_E_ACCOUNT_DISABLED },	/* not permitted from this workstation */
		{ "532", DIR_E_PASSWORD_EXPIRED },
		{ "533", DIR_E_ACCOUNT_DISABLED },
		{ "701", DIR_E_ACCOUNT_EXPIRED },
		{ "773", DIR_E_PASSWORD_MUST_CHANGE },
		{ "775", DIR_E_ACCOUNT_LOCKED },
	};
	static const char *const garbage[] = {
		"", "data", "data ", "data zzz", "data 53", "80090308: LdapErr: no data here",
		"\xff\xfe garbage", "data 999, v1",
	};
	char diag[200];

	(void)state;
	for (size_t i = 0; i < sizeof map / sizeof *map; i++) {
		/* Windows and Samba spellings. */
		snprintf(diag, sizeof diag, "80090308: LdapErr: DSID-0C09044E, comment: "
			 "AcceptSecurityContext error, data %s, v4563", map[i].code);
		if (dir_ad_diag(diag) != map[i].want)
			fail_msg("data %s -> %s, want %s", map[i].code,
				 dir_code(dir_ad_diag(diag)), dir_code(map[i].want));
		snprintf(diag, sizeof diag, "80090308: LdapErr: DSID-0C0904DC, comment: "
			 "AcceptSecurityContext error, data %s, v1db1", map[i].code);
		assert_int_equal(dir_ad_diag(diag), map[i].want);
	}
	/* Unknown or missing sub-codes are a plain failed bind. */
	for (size_t i = 0; i < sizeof garbage / sizeof *garbage; i++)
		if (dir_ad_diag(garbage[i]) != DIR_E_INVALID_CREDENTIALS)
			fail_msg("garbage \"%s\" -> %s", garbage[i], dir_code(dir_ad_diag(garbage[i])));
	assert_int_equal(dir_ad_diag(NULL), DIR_E_INVALID_CREDENTIALS);
}

static void test_codes(void **state)
{
	static const struct {
		int err;
		const char *name;
	} names[] = {
		{ DIR_E_INVALID_CREDENTIALS, "invalid_credentials" },
		{ DIR_E_ACCOUNT_DISABLED, "account_disabled" },
		{ DIR_E_ACCOUNT_LOCKED, "account_locked" },
		{ DIR_E_ACCOUNT_EXPIRED, "account_expired" },
		{ DIR_E_PASSWORD_EXPIRED, "password_expired" },
		{ DIR_E_PASSWORD_MUST_CHANGE, "password_must_change" },
		{ DIR_E_UNAVAILABLE, "directory_unavailable" },
		{ DIR_E_BAD_REQUEST, "bad_request" },
		{ DIR_E_INTERNAL, "internal" },
		{ DIR_E_PASSWORD_POLICY, "password_policy" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof names / sizeof *names; i++)
		assert_string_equal(dir_code(names[i].err), names[i].name);
	/* Codes outside the table still name something a client can show. */
	assert_non_null(dir_code(DIR_E_NOT_FOUND));
	assert_non_null(dir_code(-1000));
	assert_non_null(dir_code(12345));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_filter_specials),
		cmocka_unit_test(test_filter_refuses_nul),
		cmocka_unit_test(test_filter_utf8),
		cmocka_unit_test(test_filter_long),
		cmocka_unit_test(test_dn_escape),
		cmocka_unit_test(test_username_valid),
		cmocka_unit_test(test_ad_diag),
		cmocka_unit_test(test_codes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
