/*
 * tls/certname.c: the checks on one client certificate alone, on DER.  Every
 * certificate is made here with GnuTLS under one P-256 CA, each differing from
 * a good one (CN alice, EKU clientAuth, P-256 key, ECDSA-SHA256) in one thing,
 * so a refusal can only come from that thing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "tls/tls.h"

static gnutls_x509_privkey_t ca_key, ec_key, rsa1024_key, rsa2048_key, p521_key;
static gnutls_x509_crt_t ca_crt;
static time_t now;

struct spec {
	const char *cn;			/* NULL: no CN */
	const char *cn2;		/* a second CN */
	const char *email, *upn;	/* subjectAltNames */
	bool ca;			/* basicConstraints cA=TRUE */
	bool no_eku;
	const char *eku;		/* default clientAuth */
	gnutls_x509_privkey_t key;	/* default ec_key */
	gnutls_digest_algorithm_t hash;	/* default SHA-256 */
	time_t not_before, not_after;	/* default now -1 h .. now +1 d */
};

static void make(const struct spec *s, gnutls_datum_t *der)
{
	gnutls_x509_crt_t crt;
	gnutls_x509_privkey_t key = s->key ? s->key : ec_key;
	unsigned char serial[8] = { 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x01 };
	static unsigned char n;

	serial[7] = ++n;
	assert_int_equal(gnutls_x509_crt_init(&crt), 0);
	assert_int_equal(gnutls_x509_crt_set_version(crt, 3), 0);
	assert_int_equal(gnutls_x509_crt_set_serial(crt, serial, sizeof serial), 0);
	assert_int_equal(gnutls_x509_crt_set_key(crt, key), 0);
	if (s->cn)
		assert_int_equal(gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0,
							       s->cn, (unsigned)strlen(s->cn)), 0);
	if (s->cn2)
		assert_int_equal(gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0,
							       s->cn2, (unsigned)strlen(s->cn2)), 0);
	if (!s->cn && !s->cn2)
		assert_int_equal(gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_ORGANIZATION_NAME,
							       0, "nobody", 6), 0);
	if (s->email)
		assert_int_equal(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_RFC822NAME,
								      s->email, (unsigned)strlen(s->email),
								      GNUTLS_FSAN_APPEND), 0);
	if (s->upn) {
		gnutls_datum_t v = { (unsigned char *)(uintptr_t)s->upn, (unsigned)strlen(s->upn) };

		assert_int_equal(gnutls_x509_crt_set_subject_alt_othername(crt, "1.3.6.1.4.1.311.20.2.3",
									   v.data, v.size,
									   GNUTLS_FSAN_APPEND |
									   GNUTLS_FSAN_ENCODE_UTF8_STRING), 0);
	}
	assert_int_equal(gnutls_x509_crt_set_basic_constraints(crt, s->ca ? 1 : 0, -1), 0);
	if (!s->no_eku)
		assert_int_equal(gnutls_x509_crt_set_key_purpose_oid(crt, s->eku ? s->eku :
								     GNUTLS_KP_TLS_WWW_CLIENT, 0), 0);
	assert_int_equal(gnutls_x509_crt_set_activation_time(crt, s->not_before ? s->not_before
									       : now - 3600), 0);
	assert_int_equal(gnutls_x509_crt_set_expiration_time(crt, s->not_after ? s->not_after
									       : now + 86400), 0);
	assert_int_equal(gnutls_x509_crt_sign2(crt, ca_crt, ca_key,
					       s->hash ? s->hash : GNUTLS_DIG_SHA256, 0), 0);
	assert_int_equal(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, der), 0);
	gnutls_x509_crt_deinit(crt);
}

/* Runs the check on S and returns its result; C gets the outcome. */
static int check(const struct spec *s, enum tls_certname how, struct tls_client_cert *c)
{
	gnutls_datum_t der = { NULL, 0 };
	int rc;

	make(s, &der);
	rc = tls_client_cert_check(der.data, der.size, how, (int64_t)now, c);
	gnutls_free(der.data);
	return rc;
}

static void refused(const struct spec *s, enum tls_certname how, const char *why)
{
	struct tls_client_cert c;

	assert_int_equal(check(s, how, &c), TLS_E_VERIFY);
	assert_true(c.present);
	assert_string_equal(c.username, "");
	if (!strstr(c.reason, why))
		fail_msg("reason '%s' lacks '%s'", c.reason, why);
	/* Identified anyway, for the log. */
	assert_int_equal(strlen(c.sha256), 64);
	assert_true(c.serial[0] != '\0');
}

static int setup(void **state)
{
	gnutls_x509_privkey_t *keys[] = { &ca_key, &ec_key, &rsa1024_key, &rsa2048_key, &p521_key };

	(void)state;
	now = time(NULL);
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		assert_int_equal(gnutls_x509_privkey_init(keys[i]), 0);
	assert_int_equal(gnutls_x509_privkey_generate(ca_key, GNUTLS_PK_ECDSA,
						      GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0), 0);
	assert_int_equal(gnutls_x509_privkey_generate(ec_key, GNUTLS_PK_ECDSA,
						      GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0), 0);
	assert_int_equal(gnutls_x509_privkey_generate(p521_key, GNUTLS_PK_ECDSA,
						      GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP521R1), 0), 0);
	assert_int_equal(gnutls_x509_privkey_generate(rsa1024_key, GNUTLS_PK_RSA, 1024, 0), 0);
	assert_int_equal(gnutls_x509_privkey_generate(rsa2048_key, GNUTLS_PK_RSA, 2048, 0), 0);
	assert_int_equal(gnutls_x509_crt_init(&ca_crt), 0);
	assert_int_equal(gnutls_x509_crt_set_version(ca_crt, 3), 0);
	assert_int_equal(gnutls_x509_crt_set_serial(ca_crt, "\x01", 1), 0);
	assert_int_equal(gnutls_x509_crt_set_key(ca_crt, ca_key), 0);
	assert_int_equal(gnutls_x509_crt_set_dn_by_oid(ca_crt, GNUTLS_OID_X520_COMMON_NAME, 0,
						       "unit CA", 7), 0);
	assert_int_equal(gnutls_x509_crt_set_basic_constraints(ca_crt, 1, -1), 0);
	assert_int_equal(gnutls_x509_crt_set_key_usage(ca_crt, GNUTLS_KEY_KEY_CERT_SIGN), 0);
	assert_int_equal(gnutls_x509_crt_set_activation_time(ca_crt, now - 7200), 0);
	assert_int_equal(gnutls_x509_crt_set_expiration_time(ca_crt, now + 7 * 86400), 0);
	assert_int_equal(gnutls_x509_crt_sign2(ca_crt, ca_crt, ca_key, GNUTLS_DIG_SHA256, 0), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	gnutls_x509_crt_deinit(ca_crt);
	gnutls_x509_privkey_deinit(ca_key);
	gnutls_x509_privkey_deinit(ec_key);
	gnutls_x509_privkey_deinit(rsa1024_key);
	gnutls_x509_privkey_deinit(rsa2048_key);
	gnutls_x509_privkey_deinit(p521_key);
	return 0;
}

static void test_good(void **state)
{
	struct tls_client_cert c;
	struct spec rsa = { .cn = "alice", .key = rsa2048_key };
	struct spec sha384 = { .cn = "alice", .hash = GNUTLS_DIG_SHA384 };

	(void)state;
	assert_int_equal(check(&(struct spec){ .cn = "alice" }, TLS_CERTNAME_CN, &c), 0);
	assert_string_equal(c.username, "alice");
	assert_true(c.present);
	assert_string_equal(c.serial, "1122334455667701");
	assert_non_null(strstr(c.issuer, "CN=unit CA"));
	assert_int_equal(strlen(c.sha256), 64);
	assert_int_equal(check(&rsa, TLS_CERTNAME_CN, &c), 0);
	assert_int_equal(check(&sha384, TLS_CERTNAME_CN, &c), 0);
	/* The spelling is the certificate's own: matching it to the directory's
	 * value is the directory's job, not this function's. */
	assert_int_equal(check(&(struct spec){ .cn = "ALICE" }, TLS_CERTNAME_CN, &c), 0);
	assert_string_equal(c.username, "ALICE");
	assert_int_equal(check(&(struct spec){ .cn = "\xef\xbd\x81lice" }, TLS_CERTNAME_CN, &c), 0);
	assert_string_equal(c.username, "\xef\xbd\x81lice");
}

static void test_ca_refused(void **state)
{
	(void)state;
	refused(&(struct spec){ .cn = "alice", .ca = true }, TLS_CERTNAME_CN,
		"basicConstraints cA=TRUE");
}

static void test_weak_keys_and_hashes(void **state)
{
	(void)state;
	refused(&(struct spec){ .cn = "alice", .key = rsa1024_key }, TLS_CERTNAME_CN,
		"key is RSA 1024 bits; at least 2048 needed");
	/* The same curves dirbridge-cert signs CSRs for, no others. */
	refused(&(struct spec){ .cn = "alice", .key = p521_key }, TLS_CERTNAME_CN,
		"use RSA >= 2048 or EC P-256/P-384");
	refused(&(struct spec){ .cn = "alice", .hash = GNUTLS_DIG_SHA1 }, TLS_CERTNAME_CN,
		"SHA-1 and weaker are not accepted");
}

static void test_dates_and_purpose(void **state)
{
	(void)state;
	refused(&(struct spec){ .cn = "alice", .not_before = now - 7200, .not_after = now - 60 },
		TLS_CERTNAME_CN, "certificate expired");
	refused(&(struct spec){ .cn = "alice", .not_before = now + 3600, .not_after = now + 7200 },
		TLS_CERTNAME_CN, "not yet valid");
	refused(&(struct spec){ .cn = "alice", .no_eku = true }, TLS_CERTNAME_CN, "lacks EKU clientAuth");
	refused(&(struct spec){ .cn = "alice", .eku = GNUTLS_KP_TLS_WWW_SERVER }, TLS_CERTNAME_CN,
		"lacks EKU clientAuth");
}

static void test_names(void **state)
{
	struct tls_client_cert c;

	(void)state;
	refused(&(struct spec){ .cn = NULL }, TLS_CERTNAME_CN, "subject has no CN");
	refused(&(struct spec){ .cn = "alice", .cn2 = "bob" }, TLS_CERTNAME_CN, "more than one CN");
	refused(&(struct spec){ .cn = "a,b" }, TLS_CERTNAME_CN, "need escaping");
	assert_int_equal(check(&(struct spec){ .cn = "bob", .email = "alice@example.test" },
			       TLS_CERTNAME_EMAIL, &c), 0);
	assert_string_equal(c.username, "alice@example.test");
	assert_int_equal(check(&(struct spec){ .cn = "bob", .upn = "alice@corp.test" },
			       TLS_CERTNAME_UPN, &c), 0);
	assert_string_equal(c.username, "alice@corp.test");
	refused(&(struct spec){ .cn = "alice" }, TLS_CERTNAME_EMAIL, "no rfc822Name");
	refused(&(struct spec){ .cn = "alice", .email = "alice@example.test" }, TLS_CERTNAME_UPN,
		"no userPrincipalName");
}

static void test_hostile_bytes(void **state)
{
	struct tls_client_cert c;
	gnutls_datum_t der = { NULL, 0 };
	unsigned char junk[64];

	(void)state;
	memset(junk, 0x30, sizeof junk);
	assert_int_equal(tls_client_cert_check(NULL, 0, TLS_CERTNAME_CN, now, &c), TLS_E_VERIFY);
	assert_int_equal(tls_client_cert_check(junk, sizeof junk, TLS_CERTNAME_CN, now, &c),
			 TLS_E_VERIFY);
	assert_non_null(strstr(c.reason, "unparsable"));
	/* Every truncation of a good certificate is refused, never read past. */
	make(&(struct spec){ .cn = "alice" }, &der);
	for (unsigned len = 0; len < der.size; len += 7) {
		unsigned char *copy = malloc(len ? len : 1);

		assert_non_null(copy);
		memcpy(copy, der.data, len);
		assert_int_equal(tls_client_cert_check(copy, len, TLS_CERTNAME_CN, now, &c),
				 TLS_E_VERIFY);
		assert_string_equal(c.username, "");
		free(copy);
	}
	assert_int_equal(tls_client_cert_check(der.data, der.size, TLS_CERTNAME_CN, now, &c), 0);
	gnutls_free(der.data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_ca_refused),
		cmocka_unit_test(test_weak_keys_and_hashes),
		cmocka_unit_test(test_dates_and_purpose),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_hostile_bytes),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
