/*
 * ldap/errors.c: the one table where LDAP result codes, AD bind diagnostics,
 * password policy errors, SASL and tls_ codes become dir_err values, and the
 * wire names dir_code() gives them.  Every row is a case the module meets on
 * the wire; a wrong row turns into a wrong answer to a login.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ldap.h>
#include <sasl/sasl.h>
#include <stdio.h>
#include <string.h>

#include "ldap/dir.h"
#include "ldap/internal.h"
#include "tls/tls.h"

struct row {
	enum err_src src;
	int code;
	const char *diag;
	int want;
};

static const char *src_name(enum err_src s)
{
	switch (s) {
	case SRC_LDAP: return "ldap";
	case SRC_USER_BIND: return "user-bind";
	case SRC_PPOLICY: return "ppolicy";
	case SRC_SASL: return "sasl";
	case SRC_TLS: return "tls";
	case SRC_PASSWD: return "passwd";
	}
	return "?";
}

static void check_rows(const struct row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int got = dir_map_err(rows[i].src, rows[i].code, rows[i].diag);

		if (got != rows[i].want)
			fail_msg("%s code %d diag \"%s\": got %s (%d), want %s (%d)",
				 src_name(rows[i].src), rows[i].code,
				 rows[i].diag ? rows[i].diag : "(null)", dir_code(got), got,
				 dir_code(rows[i].want), rows[i].want);
	}
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void test_result_codes(void **state)
{
	static const struct row rows[] = {
		{ SRC_LDAP, LDAP_SUCCESS, NULL, DIR_OK },
		{ SRC_LDAP, LDAP_INVALID_CREDENTIALS, NULL, DIR_E_INVALID_CREDENTIALS },
		/* The service account's own binds and searches: not the user's fault. */
		{ SRC_LDAP, LDAP_INAPPROPRIATE_AUTH, NULL, DIR_E_INTERNAL },
		{ SRC_LDAP, LDAP_STRONG_AUTH_REQUIRED, NULL, DIR_E_INTERNAL },
		{ SRC_LDAP, LDAP_CONSTRAINT_VIOLATION, NULL, DIR_E_INTERNAL },
		{ SRC_LDAP, LDAP_UNWILLING_TO_PERFORM, NULL, DIR_E_INTERNAL },
		{ SRC_LDAP, LDAP_INSUFFICIENT_ACCESS, NULL, DIR_E_INTERNAL },
		{ SRC_LDAP, LDAP_SERVER_DOWN, NULL, DIR_E_UNAVAILABLE },
		{ SRC_LDAP, LDAP_TIMEOUT, NULL, DIR_E_UNAVAILABLE },
		{ SRC_LDAP, LDAP_CONNECT_ERROR, NULL, DIR_E_UNAVAILABLE },
		{ SRC_LDAP, LDAP_BUSY, NULL, DIR_E_UNAVAILABLE },
		{ SRC_LDAP, LDAP_UNAVAILABLE, NULL, DIR_E_UNAVAILABLE },
		{ SRC_LDAP, LDAP_TIMELIMIT_EXCEEDED, NULL, DIR_E_UNAVAILABLE },
		{ SRC_LDAP, LDAP_ADMINLIMIT_EXCEEDED, NULL, DIR_E_UNAVAILABLE },
		{ SRC_LDAP, LDAP_OTHER, NULL, DIR_E_UNAVAILABLE },
		{ SRC_LDAP, LDAP_FILTER_ERROR, NULL, DIR_E_BAD_REQUEST },
		{ SRC_LDAP, LDAP_PARAM_ERROR, NULL, DIR_E_BAD_REQUEST },
		{ SRC_LDAP, LDAP_INVALID_DN_SYNTAX, NULL, DIR_E_BAD_REQUEST },
		{ SRC_LDAP, LDAP_PROTOCOL_ERROR, NULL, DIR_E_BAD_REQUEST },
		{ SRC_LDAP, LDAP_NO_SUCH_OBJECT, NULL, DIR_E_INTERNAL },
		{ SRC_LDAP, LDAP_NO_MEMORY, NULL, DIR_E_INTERNAL },
		{ SRC_LDAP, LDAP_ENCODING_ERROR, NULL, DIR_E_INTERNAL },
		/* The user's bind: a refusal is the user's credentials. */
		{ SRC_USER_BIND, LDAP_SUCCESS, NULL, DIR_OK },
		{ SRC_USER_BIND, LDAP_INVALID_CREDENTIALS, NULL, DIR_E_INVALID_CREDENTIALS },
		{ SRC_USER_BIND, LDAP_INAPPROPRIATE_AUTH, NULL, DIR_E_INVALID_CREDENTIALS },
		{ SRC_USER_BIND, LDAP_STRONG_AUTH_REQUIRED, NULL, DIR_E_INVALID_CREDENTIALS },
		{ SRC_USER_BIND, LDAP_CONSTRAINT_VIOLATION, NULL, DIR_E_INVALID_CREDENTIALS },
		{ SRC_USER_BIND, LDAP_UNWILLING_TO_PERFORM, NULL, DIR_E_INVALID_CREDENTIALS },
		{ SRC_USER_BIND, LDAP_SERVER_DOWN, NULL, DIR_E_UNAVAILABLE },
		{ SRC_USER_BIND, LDAP_BUSY, NULL, DIR_E_UNAVAILABLE },
		/* A password change: refusals are the policy, AD's 00000056 the old
		 * password. */
		{ SRC_PASSWD, LDAP_SUCCESS, NULL, DIR_OK },
		{ SRC_PASSWD, LDAP_CONSTRAINT_VIOLATION,
		  "0000052D: Constraint violation - check_password_restrictions: the password "
		  "does not meet the complexity criteria!", DIR_E_PASSWORD_POLICY },
		{ SRC_PASSWD, LDAP_CONSTRAINT_VIOLATION,
		  "00000056: AtrErr: DSID-03190F80, #1:\n\t0: 00000056: DSID-03190F80, "
		  "problem 1005 (CONSTRAINT_ATT_TYPE), data 0, Att 9005a (unicodePwd)",
		  DIR_E_INVALID_CREDENTIALS },
		{ SRC_PASSWD, LDAP_UNWILLING_TO_PERFORM, NULL, DIR_E_PASSWORD_POLICY },
		{ SRC_PASSWD, LDAP_INSUFFICIENT_ACCESS, NULL, DIR_E_PASSWORD_POLICY },
		{ SRC_PASSWD, LDAP_INVALID_CREDENTIALS, NULL, DIR_E_INVALID_CREDENTIALS },
		{ SRC_PASSWD, LDAP_SERVER_DOWN, NULL, DIR_E_UNAVAILABLE },
		{ SRC_PASSWD, LDAP_INAPPROPRIATE_AUTH, NULL, DIR_E_INVALID_CREDENTIALS },
	};

	(void)state;
	check_rows(rows, N(rows));
}

/* AD's "data XXX" in a failed bind's diagnostic names the account state. */
static void test_ad_diagnostics(void **state)
{
	static const struct {
		const char *data;
		int want;
	} map[] = {
		{ "52e", DIR_E_INVALID_CREDENTIALS },
		{ "525", DIR_E_INVALID_CREDENTIALS },
		{ "530", DIR_E_ACCOUNT_DISABLED },
		{ "531", DIR_E_ACCOUNT_DISABLED },
		{ "533", DIR_E_ACCOUNT_DISABLED },
		{ "532", DIR_E_PASSWORD_EXPIRED },
		{ "701", DIR_E_ACCOUNT_EXPIRED },
		{ "773", DIR_E_PASSWORD_MUST_CHANGE },
		{ "775", DIR_E_ACCOUNT_LOCKED },
		{ "52f", DIR_E_INVALID_CREDENTIALS },
	};
	char diag[200];

	(void)state;
	for (size_t i = 0; i < N(map); i++) {
		int got;

		snprintf(diag, sizeof(diag), "80090308: LdapErr: DSID-0C09041C, comment: "
			 "AcceptSecurityContext error, data %s, v4563", map[i].data);
		got = dir_map_err(SRC_USER_BIND, LDAP_INVALID_CREDENTIALS, diag);
		if (got != map[i].want)
			fail_msg("data %s: got %s, want %s", map[i].data, dir_code(got),
				 dir_code(map[i].want));
		/* The same table whether reached through the bind or directly. */
		assert_int_equal(dir_ad_diag(diag), map[i].want);
		/* Only the user's bind reads diagnostics: the service account's
		 * locked-out bind is never reported as the user's account state. */
		assert_int_equal(dir_map_err(SRC_LDAP, LDAP_INVALID_CREDENTIALS, diag),
				 DIR_E_INVALID_CREDENTIALS);
	}
	/* Samba words it differently but ends the same way. */
	assert_int_equal(dir_map_err(SRC_USER_BIND, LDAP_INVALID_CREDENTIALS,
				     "80090308: LdapErr: DSID-0C0903A9, comment: "
				     "AcceptSecurityContext error, data 775"),
			 DIR_E_ACCOUNT_LOCKED);
	/* A "data" that is no code, or none at all: just wrong credentials. */
	assert_int_equal(dir_map_err(SRC_USER_BIND, LDAP_INVALID_CREDENTIALS, "data 77zz, v1"),
			 DIR_E_INVALID_CREDENTIALS);
	assert_int_equal(dir_map_err(SRC_USER_BIND, LDAP_INVALID_CREDENTIALS, ""),
			 DIR_E_INVALID_CREDENTIALS);
	assert_int_equal(dir_map_err(SRC_USER_BIND, LDAP_INVALID_CREDENTIALS, NULL),
			 DIR_E_INVALID_CREDENTIALS);
}

static void test_ppolicy(void **state)
{
	static const struct row rows[] = {
		{ SRC_PPOLICY, PP_passwordExpired, NULL, DIR_E_PASSWORD_EXPIRED },
		{ SRC_PPOLICY, PP_accountLocked, NULL, DIR_E_ACCOUNT_LOCKED },
		{ SRC_PPOLICY, PP_changeAfterReset, NULL, DIR_E_PASSWORD_MUST_CHANGE },
		{ SRC_PPOLICY, PP_passwordModNotAllowed, NULL, DIR_E_PASSWORD_POLICY },
		{ SRC_PPOLICY, PP_mustSupplyOldPassword, NULL, DIR_E_INVALID_CREDENTIALS },
		{ SRC_PPOLICY, PP_insufficientPasswordQuality, NULL, DIR_E_PASSWORD_POLICY },
		{ SRC_PPOLICY, PP_passwordTooShort, NULL, DIR_E_PASSWORD_POLICY },
		{ SRC_PPOLICY, PP_passwordTooYoung, NULL, DIR_E_PASSWORD_POLICY },
		{ SRC_PPOLICY, PP_passwordInHistory, NULL, DIR_E_PASSWORD_POLICY },
		{ SRC_PPOLICY, PP_passwordTooLong, NULL, DIR_E_PASSWORD_POLICY },
		/* No error in the control: the result code decides. */
		{ SRC_PPOLICY, PP_noError, NULL, DIR_OK },
		{ SRC_PPOLICY, 12345, NULL, DIR_OK },
	};

	(void)state;
	check_rows(rows, N(rows));
}

static void test_sasl_and_tls(void **state)
{
	static const struct row rows[] = {
		{ SRC_SASL, SASL_OK, NULL, DIR_OK },
		{ SRC_SASL, SASL_BADAUTH, NULL, DIR_E_INVALID_CREDENTIALS },
		{ SRC_SASL, SASL_NOAUTHZ, NULL, DIR_E_INVALID_CREDENTIALS },
		{ SRC_SASL, SASL_NOUSER, NULL, DIR_E_INVALID_CREDENTIALS },
		{ SRC_SASL, SASL_NOMEM, NULL, DIR_E_INTERNAL },
		{ SRC_SASL, SASL_BADPARAM, NULL, DIR_E_INTERNAL },
		{ SRC_SASL, SASL_NOMECH, NULL, DIR_E_INTERNAL },
		{ SRC_SASL, SASL_FAIL, NULL, DIR_E_UNAVAILABLE },
		{ SRC_SASL, SASL_TRYAGAIN, NULL, DIR_E_UNAVAILABLE },
		{ SRC_TLS, TLS_OK, NULL, DIR_OK },
		{ SRC_TLS, TLS_E_VERIFY, NULL, DIR_E_UNAVAILABLE },
		{ SRC_TLS, TLS_E_CLOSED, NULL, DIR_E_UNAVAILABLE },
		{ SRC_TLS, TLS_E_AGAIN, NULL, DIR_E_UNAVAILABLE },
	};

	(void)state;
	check_rows(rows, N(rows));
}

/* Every code the table gives lies in the dir_ space and has its own wire name. */
static void test_space_and_names(void **state)
{
	static const struct {
		int err;
		const char *name;
	} names[] = {
		{ DIR_OK, "ok" },
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
		{ DIR_E_NOT_FOUND, "not_found" },
		{ DIR_E_TOO_MANY_ATTEMPTS, "too_many_attempts" },
	};
	static const enum err_src srcs[] = { SRC_LDAP, SRC_USER_BIND, SRC_PPOLICY, SRC_SASL,
					     SRC_TLS, SRC_PASSWD };

	(void)state;
	for (size_t i = 0; i < N(names); i++) {
		assert_string_equal(dir_code(names[i].err), names[i].name);
		if (names[i].err != DIR_OK)
			assert_true(names[i].err <= -2001 && names[i].err >= -2099);
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(names[i].name, names[j].name);
	}
	/* Codes from other spaces are no dir_err: never a name a client trusts. */
	assert_string_equal(dir_code(-1), "internal");
	assert_string_equal(dir_code(TLS_E_VERIFY), "internal");
	assert_string_equal(dir_code(LDAP_INVALID_CREDENTIALS), "internal");
	/* Whatever a library answers (negative libldap client codes too), the
	 * table never lets it through unmapped. */
	for (size_t s = 0; s < N(srcs); s++)
		for (int code = -20; code <= 130; code++) {
			int got = dir_map_err(srcs[s], code, "data 775");

			if (got != DIR_OK && (got > -2001 || got < -2099))
				fail_msg("%s code %d gave %d, outside the dir_ space",
					 src_name(srcs[s]), code, got);
		}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_result_codes),
		cmocka_unit_test(test_ad_diagnostics),
		cmocka_unit_test(test_ppolicy),
		cmocka_unit_test(test_sasl_and_tls),
		cmocka_unit_test(test_space_and_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
