/*
 * tls/pki.c pure helpers: reason names, serial normalisation, generated
 * passwords, atomic file writes; the index refusing corrupt input; and user
 * names matched ignoring ASCII case only, by comparison and by revocation.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tls/tls.h"

static void test_reasons(void **state)
{
	static const char *const names[] = {
		"unspecified", "keyCompromise", "cACompromise", "affiliationChanged", "superseded",
		"cessationOfOperation", "certificateHold", "privilegeWithdrawn", "aACompromise",
	};
	static const int codes[] = { 0, 1, 2, 3, 4, 5, 6, 9, 10 };

	(void)state;
	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
		assert_int_equal(tls_pki_reason_code(names[i]), codes[i]);
		assert_string_equal(tls_pki_reason_name(codes[i]), names[i]);
	}
	/* 7 is unused in RFC 5280 and 8 (removeFromCRL) is only for delta CRLs. */
	assert_null(tls_pki_reason_name(7));
	assert_null(tls_pki_reason_name(8));
	assert_null(tls_pki_reason_name(-1));
	assert_null(tls_pki_reason_name(11));
	assert_int_equal(tls_pki_reason_code("removeFromCRL"), TLS_E_CONFIG);
	assert_int_equal(tls_pki_reason_code("KeyCompromise"), TLS_E_CONFIG);
	assert_int_equal(tls_pki_reason_code(""), TLS_E_CONFIG);
	assert_int_equal(tls_pki_reason_code(NULL), TLS_E_CONFIG);
}

static void test_serial_norm(void **state)
{
	char out[TLS_PKI_SERIAL_MAX];

	(void)state;
	assert_int_equal(tls_pki_serial_norm("0A:1B:2c", out), 0);
	assert_string_equal(out, "0a1b2c");
	assert_int_equal(tls_pki_serial_norm("00000a1b2c", out), 0);
	assert_string_equal(out, "0a1b2c");
	assert_int_equal(tls_pki_serial_norm("abc", out), 0);
	assert_string_equal(out, "0abc");
	assert_int_equal(tls_pki_serial_norm("7FEEF7BE29185CC86C67D3B3E5C18D94", out), 0);
	assert_string_equal(out, "7feef7be29185cc86c67d3b3e5c18d94");
	/* 20 bytes is the RFC 5280 maximum; 21 is refused. */
	assert_int_equal(tls_pki_serial_norm("7fffffffffffffffffffffffffffffffffffffff", out), 0);
	assert_int_equal(tls_pki_serial_norm("7fffffffffffffffffffffffffffffffffffffffff", out), TLS_E_CONFIG);
	assert_int_equal(tls_pki_serial_norm("", out), TLS_E_CONFIG);
	assert_int_equal(tls_pki_serial_norm("0000", out), TLS_E_CONFIG);
	assert_int_equal(tls_pki_serial_norm("12g4", out), TLS_E_CONFIG);
	assert_int_equal(tls_pki_serial_norm("-12", out), TLS_E_CONFIG);
	assert_int_equal(tls_pki_serial_norm("12 34", out), TLS_E_CONFIG);
	assert_int_equal(tls_pki_serial_norm(NULL, out), TLS_E_CONFIG);
}

static void test_password(void **state)
{
	char a[21], b[21];

	(void)state;
	assert_int_equal(tls_pki_password(a, sizeof a), 0);
	assert_int_equal(tls_pki_password(b, sizeof b), 0);
	assert_int_equal(strlen(a), 20);
	assert_string_not_equal(a, b);
	for (size_t i = 0; i < 20; i++) {
		assert_non_null(strchr("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789", a[i]));
		assert_true(a[i] != '\0');
	}
	assert_int_equal(tls_pki_password(a, 1), TLS_E_CONFIG);
}

static char tmpdir[64];

static int setup_dir(void **state)
{
	(void)state;
	strcpy(tmpdir, "/tmp/test_pki.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static size_t count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	while (d && (e = readdir(d)))
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

static void test_write_file(void **state)
{
	char path[128], buf[64] = "";
	struct stat st;
	FILE *f;

	(void)state;
	snprintf(path, sizeof path, "%s/secret", tmpdir);
	assert_int_equal(tls_pki_write_file(path, "first", 5, 0600), 0);
	assert_int_equal(tls_pki_write_file(path, "second", 6, 0640), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_int_equal(fread(buf, 1, sizeof buf - 1, f), 6);
	fclose(f);
	assert_string_equal(buf, "second");
	/* Replaced in place: no temporary file stays behind. */
	assert_int_equal(count_entries(tmpdir), 1);
	snprintf(path, sizeof path, "%s/nodir/x", tmpdir);
	assert_int_equal(tls_pki_write_file(path, "x", 1, 0600), TLS_E_IO);
}

/* A CA made here, then its index damaged in ways a crash or a hand edit could. */
static void test_corrupt_index(void **state)
{
	static const char *const bad[] = {
		"",
		"{",
		"[]",
		"{\"version\":2,\"crl_number\":1,\"certs\":[]}",
		"{\"version\":1,\"crl_number\":-1,\"certs\":[]}",
		"{\"version\":1,\"crl_number\":1,\"certs\":{}}",
		"{\"version\":1,\"crl_number\":1,\"certs\":[],\"extra\":1}",
		"{\"version\":1,\"crl_number\":1,\"certs\":[{\"serial\":\"0a\"}]}",
		"{\"version\":1,\"crl_number\":1,\"certs\":[{\"serial\":\"0A\",\"user\":\"a\","
		"\"not_before\":\"2020-01-01T00:00:00Z\",\"not_after\":\"2021-01-01T00:00:00Z\","
		"\"status\":\"valid\"}]}",
		"{\"version\":1,\"crl_number\":1,\"certs\":[{\"serial\":\"0a\",\"user\":\"a\","
		"\"not_before\":\"2020-01-01\",\"not_after\":\"2021-01-01T00:00:00Z\","
		"\"status\":\"valid\"}]}",
		"{\"version\":1,\"crl_number\":1,\"certs\":[{\"serial\":\"0a\",\"user\":\"a\","
		"\"not_before\":\"2020-01-01T00:00:00Z\",\"not_after\":\"2021-01-01T00:00:00Z\","
		"\"status\":\"revoked\"}]}",
		"{\"version\":1,\"crl_number\":1,\"certs\":[{\"serial\":\"0a\",\"user\":\"a\","
		"\"not_before\":\"2020-01-01T00:00:00Z\",\"not_after\":\"2021-01-01T00:00:00Z\","
		"\"status\":\"revoked\",\"revoked_at\":\"2020-06-01T00:00:00Z\",\"reason\":\"bogus\"}]}",
	};
	static const char good[] =
		"{\"version\":1,\"crl_number\":3,\"certs\":[{\"serial\":\"0a\",\"user\":\"a\","
		"\"not_before\":\"2020-01-01T00:00:00Z\",\"not_after\":\"2021-01-01T00:00:00Z\","
		"\"status\":\"revoked\",\"revoked_at\":\"2020-06-01T00:00:00Z\",\"reason\":\"superseded\"}]}";
	char dir[128], index[160], err[512];
	struct tls_pki *p;
	struct tls_pki_cert *certs;
	size_t n;

	(void)state;
	snprintf(dir, sizeof dir, "%s/ca", tmpdir);
	snprintf(index, sizeof index, "%s/index.json", dir);
	assert_int_equal(tls_pki_init_ca(dir, "unit CA", 30, TLS_KEY_ECDSA, err, sizeof err), 0);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(tls_pki_write_file(index, bad[i], strlen(bad[i]), 0644), 0);
		assert_int_equal(tls_pki_open(dir, false, &p, err, sizeof err), TLS_E_CONFIG);
		assert_null(p);
		assert_non_null(strstr(err, "index"));
	}
	assert_int_equal(tls_pki_write_file(index, good, strlen(good), 0644), 0);
	assert_int_equal(tls_pki_open(dir, false, &p, err, sizeof err), 0);
	assert_int_equal(tls_pki_list(p, 0, &certs, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(certs[0].serial, "0a");
	assert_int_equal(certs[0].status, TLS_CERT_REVOKED);
	assert_int_equal(certs[0].reason, 4);
	assert_int_equal(certs[0].revoked_at, 1590969600);
	free(certs);
	tls_pki_close(p);
}

static void test_user_cmp(void **state)
{
	(void)state;
	assert_true(tls_pki_user_eq("alice", "ALICE"));
	assert_true(tls_pki_user_eq("Alice", "aLiCe"));
	assert_true(tls_pki_user_eq("a.b-c_9", "A.B-C_9"));
	assert_int_equal(tls_pki_user_cmp("ALICE", "alice"), 0);
	/* Only ASCII letters fold: fullwidth a (U+FF41), dotted capital I
	 * (U+0130) and accented capitals stay distinct. */
	assert_false(tls_pki_user_eq("\xef\xbd\x81lice", "alice"));
	assert_false(tls_pki_user_eq("AL\xc4\xb0" "CE", "alice"));
	assert_false(tls_pki_user_eq("jos\xc3\x89", "jos\xc3\xa9"));
	assert_true(tls_pki_user_eq("JOS\xc3\xa9", "jos\xc3\xa9"));
	/* Letters fold, nothing else: '@' and '`' neighbour 'A'..'Z' and 'a'..'z'. */
	assert_false(tls_pki_user_eq("@", "`"));
	assert_false(tls_pki_user_eq("[", "{"));
	assert_false(tls_pki_user_eq("alice", "alice "));
	assert_false(tls_pki_user_eq("alice", "alic"));
	assert_false(tls_pki_user_eq(NULL, "alice"));
	/* A total order that agrees with equality, for sorting and bsearch. */
	assert_true(tls_pki_user_cmp("ALICE", "bob") < 0);
	assert_true(tls_pki_user_cmp("alice", "BOB") < 0);
	assert_true(tls_pki_user_cmp("bob", "ALICE") > 0);
	assert_true(tls_pki_user_cmp("alic", "ALICE") < 0);
	assert_true(tls_pki_user_cmp("zed", "\xef\xbd\x81lice") < 0);
}

/* Revoking a user finds every record whose name differs only in ASCII case,
 * and nothing else: the index of a CA directory from before names were taken
 * from the directory holds such records. */
static void test_revoke_user_case(void **state)
{
	static const char *const users[] = {
		"ALICE", "alice", "Alice", "\xef\xbd\x81lice", "alice2", "bob",
	};
	char dir[128], err[512];
	struct tls_pki *p;
	struct tls_pki_cert *certs, rec;
	unsigned char *p12;
	size_t n, len;

	(void)state;
	snprintf(dir, sizeof dir, "%s/ca", tmpdir);
	assert_int_equal(tls_pki_init_ca(dir, "unit CA", 30, TLS_KEY_ECDSA, err, sizeof err), 0);
	assert_int_equal(tls_pki_open(dir, true, &p, err, sizeof err), 0);
	for (size_t i = 0; i < sizeof users / sizeof users[0]; i++) {
		assert_int_equal(tls_pki_issue(p, users[i], 10, "pw", TLS_P12_MODERN, &p12, &len, &rec), 0);
		assert_string_equal(rec.user, users[i]);
		free(p12);
	}
	assert_int_equal(tls_pki_revoke_user(p, "aLIce", 1), 3);
	assert_int_equal(tls_pki_revoke_user(p, "alice", 1), 0);
	assert_int_equal(tls_pki_commit(p), 0);
	tls_pki_close(p);
	assert_int_equal(tls_pki_open(dir, false, &p, err, sizeof err), 0);
	assert_int_equal(tls_pki_list(p, 0, &certs, &n), 0);
	assert_int_equal(n, 6);
	for (size_t i = 0; i < n; i++) {
		/* The index keeps each name as it was recorded. */
		assert_string_equal(certs[i].user, users[i]);
		assert_int_equal(certs[i].status, i < 3 ? TLS_CERT_REVOKED : TLS_CERT_VALID);
	}
	free(certs);
	tls_pki_close(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reasons),
		cmocka_unit_test(test_serial_norm),
		cmocka_unit_test(test_password),
		cmocka_unit_test_setup_teardown(test_write_file, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_corrupt_index, setup_dir, teardown_dir),
		cmocka_unit_test(test_user_cmp),
		cmocka_unit_test_setup_teardown(test_revoke_user_case, setup_dir, teardown_dir),
	};

	if (tls_global_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
