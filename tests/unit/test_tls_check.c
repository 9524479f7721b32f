/*
 * tls/check.c: the checks `dirbridge -n` runs on certificate, key, CA and CRL
 * files.  Every file is made here with GnuTLS in a scratch directory: a good
 * pair passes, and each kind of wrong file fails with a message that names
 * the file at fault.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "tls/tls.h"

static char dir[64];
static char errbuf[512];

static const char *path(const char *name)
{
	static char buf[4][160];
	static unsigned next;
	char *p = buf[next++ % 4];

	snprintf(p, sizeof buf[0], "%s/%s", dir, name);
	return p;
}

static void write_file(const char *name, const void *data, size_t len)
{
	int fd = open(path(name), O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void append_file(const char *name, const void *data, size_t len)
{
	int fd = open(path(name), O_WRONLY | O_APPEND);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static gnutls_x509_privkey_t new_key(void)
{
	gnutls_x509_privkey_t k;

	assert_int_equal(gnutls_x509_privkey_init(&k), 0);
	assert_int_equal(gnutls_x509_privkey_generate(k, GNUTLS_PK_ECDSA,
		GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0), 0);
	return k;
}

static gnutls_x509_crt_t new_cert(gnutls_x509_privkey_t key, const char *cn, bool ca,
				  gnutls_x509_crt_t issuer, gnutls_x509_privkey_t issuer_key)
{
	static unsigned char serial = 1;
	time_t now = time(NULL);
	unsigned char id[64];
	size_t idlen = sizeof id;
	gnutls_x509_crt_t c;

	assert_int_equal(gnutls_x509_crt_init(&c), 0);
	assert_int_equal(gnutls_x509_crt_set_version(c, 3), 0);
	serial++;
	assert_int_equal(gnutls_x509_crt_set_serial(c, &serial, 1), 0);
	assert_int_equal(gnutls_x509_crt_set_activation_time(c, now - 60), 0);
	assert_int_equal(gnutls_x509_crt_set_expiration_time(c, now + 86400), 0);
	assert_int_equal(gnutls_x509_crt_set_dn_by_oid(c, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
						       (unsigned)strlen(cn)), 0);
	assert_int_equal(gnutls_x509_crt_set_key(c, key), 0);
	assert_int_equal(gnutls_x509_crt_get_key_id(c, GNUTLS_KEYID_USE_SHA1, id, &idlen), 0);
	assert_int_equal(gnutls_x509_crt_set_subject_key_id(c, id, idlen), 0);
	assert_int_equal(gnutls_x509_crt_set_basic_constraints(c, ca, -1), 0);
	assert_int_equal(gnutls_x509_crt_set_key_usage(c, ca ? GNUTLS_KEY_KEY_CERT_SIGN |
		GNUTLS_KEY_CRL_SIGN : GNUTLS_KEY_DIGITAL_SIGNATURE), 0);
	if (issuer) {
		idlen = sizeof id;
		assert_int_equal(gnutls_x509_crt_get_subject_key_id(issuer, id, &idlen, NULL), 0);
		assert_int_equal(gnutls_x509_crt_set_authority_key_id(c, id, idlen), 0);
	}
	assert_int_equal(gnutls_x509_crt_sign2(c, issuer ? issuer : c, issuer ? issuer_key : key,
					       GNUTLS_DIG_SHA256, 0), 0);
	return c;
}

static void save_cert(const char *name, gnutls_x509_crt_t c, gnutls_x509_crt_fmt_t fmt,
		      bool append)
{
	gnutls_datum_t d;

	assert_int_equal(gnutls_x509_crt_export2(c, fmt, &d), 0);
	if (append)
		append_file(name, d.data, d.size);
	else
		write_file(name, d.data, d.size);
	gnutls_free(d.data);
}

static void save_key(const char *name, gnutls_x509_privkey_t k)
{
	gnutls_datum_t d;

	assert_int_equal(gnutls_x509_privkey_export2(k, GNUTLS_X509_FMT_PEM, &d), 0);
	write_file(name, d.data, d.size);
	gnutls_free(d.data);
}

/* A CRL issued at NOW + THIS_OFF, due at NOW + NEXT_OFF. */
static void save_crl_at(const char *name, gnutls_x509_crt_t ca, gnutls_x509_privkey_t ca_key,
			long this_off, long next_off)
{
	time_t now = time(NULL);
	gnutls_x509_crl_t crl;
	gnutls_datum_t d;

	assert_int_equal(gnutls_x509_crl_init(&crl), 0);
	assert_int_equal(gnutls_x509_crl_set_version(crl, 2), 0);
	assert_int_equal(gnutls_x509_crl_set_this_update(crl, now + this_off), 0);
	assert_int_equal(gnutls_x509_crl_set_next_update(crl, now + next_off), 0);
	assert_int_equal(gnutls_x509_crl_sign2(crl, ca, ca_key, GNUTLS_DIG_SHA256, 0), 0);
	assert_int_equal(gnutls_x509_crl_export2(crl, GNUTLS_X509_FMT_PEM, &d), 0);
	write_file(name, d.data, d.size);
	gnutls_free(d.data);
	gnutls_x509_crl_deinit(crl);
}

static void save_crl(const char *name, gnutls_x509_crt_t ca, gnutls_x509_privkey_t ca_key)
{
	save_crl_at(name, ca, ca_key, 0, 86400);
}

/*
 * ca.pem/ca.key and other-ca.pem: two unrelated CAs; inter.pem an intermediate
 * under ca; leaf.pem/leaf.key a leaf under inter, other.key an unrelated key;
 * chain.pem leaf then inter, unsorted.pem inter then leaf; ca.der the CA in
 * DER; crl.pem signed by ca, other.crl signed by other-ca, stale.crl signed
 * by ca with a nextUpdate 10 s ago; empty.pem empty,
 * junk.pem text that is no PEM at all.
 */
static int setup(void **state)
{
	gnutls_x509_privkey_t ca_key, other_ca_key, inter_key, leaf_key, other_key;
	gnutls_x509_crt_t ca, other_ca, inter, leaf;

	(void)state;
	snprintf(dir, sizeof dir, "/tmp/test_tls_check.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	ca_key = new_key();
	other_ca_key = new_key();
	inter_key = new_key();
	leaf_key = new_key();
	other_key = new_key();
	ca = new_cert(ca_key, "Test CA", true, NULL, NULL);
	other_ca = new_cert(other_ca_key, "Other CA", true, NULL, NULL);
	inter = new_cert(inter_key, "Test Intermediate", true, ca, ca_key);
	leaf = new_cert(leaf_key, "agent.example.test", false, inter, inter_key);

	save_cert("ca.pem", ca, GNUTLS_X509_FMT_PEM, false);
	save_cert("ca.der", ca, GNUTLS_X509_FMT_DER, false);
	save_key("ca.key", ca_key);
	save_cert("other-ca.pem", other_ca, GNUTLS_X509_FMT_PEM, false);
	save_cert("leaf.pem", leaf, GNUTLS_X509_FMT_PEM, false);
	save_key("leaf.key", leaf_key);
	save_key("other.key", other_key);
	save_cert("chain.pem", leaf, GNUTLS_X509_FMT_PEM, false);
	save_cert("chain.pem", inter, GNUTLS_X509_FMT_PEM, true);
	save_cert("unsorted.pem", inter, GNUTLS_X509_FMT_PEM, false);
	save_cert("unsorted.pem", leaf, GNUTLS_X509_FMT_PEM, true);
	save_crl("crl.pem", ca, ca_key);
	save_crl("other.crl", other_ca, other_ca_key);
	save_crl_at("stale.crl", ca, ca_key, -50, -10);
	write_file("empty.pem", "", 0);
	write_file("junk.pem", "not a certificate\n", 18);

	gnutls_x509_crt_deinit(leaf);
	gnutls_x509_crt_deinit(inter);
	gnutls_x509_crt_deinit(other_ca);
	gnutls_x509_crt_deinit(ca);
	gnutls_x509_privkey_deinit(other_key);
	gnutls_x509_privkey_deinit(leaf_key);
	gnutls_x509_privkey_deinit(inter_key);
	gnutls_x509_privkey_deinit(other_ca_key);
	gnutls_x509_privkey_deinit(ca_key);
	return 0;
}

static int teardown(void **state)
{
	static const char *const names[] = {
		"ca.pem", "ca.der", "ca.key", "other-ca.pem", "leaf.pem", "leaf.key", "other.key",
		"chain.pem", "unsorted.pem", "crl.pem", "other.crl", "stale.crl", "empty.pem",
		"junk.pem",
	};

	(void)state;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		unlink(path(names[i]));
	rmdir(dir);
	return 0;
}

/* The check failed with TLS_E_CONFIG, and its message names FILE (the whole
 * path) and says WHAT. */
static void refused(int rc, const char *file, const char *what)
{
	assert_int_equal(rc, TLS_E_CONFIG);
	if (!strstr(errbuf, file))
		fail_msg("message does not name %s: %s", file, errbuf);
	if (what && !strstr(errbuf, what))
		fail_msg("message does not say '%s': %s", what, errbuf);
}

static void test_keypair(void **state)
{
	(void)state;
	errbuf[0] = '\0';
	assert_int_equal(tls_check_keypair(path("leaf.pem"), path("leaf.key"), errbuf,
					   sizeof errbuf), TLS_OK);
	/* A chain file is fine when the leaf comes first. */
	assert_int_equal(tls_check_keypair(path("chain.pem"), path("leaf.key"), errbuf,
					   sizeof errbuf), TLS_OK);
	assert_int_equal(tls_check_keypair(path("ca.pem"), path("ca.key"), errbuf,
					   sizeof errbuf), TLS_OK);

	refused(tls_check_keypair(path("leaf.pem"), path("other.key"), errbuf, sizeof errbuf),
		path("other.key"), "does not belong");
	refused(tls_check_keypair(path("chain.pem"), path("ca.key"), errbuf, sizeof errbuf),
		path("ca.key"), "does not belong");
	refused(tls_check_keypair(path("unsorted.pem"), path("leaf.key"), errbuf, sizeof errbuf),
		path("unsorted.pem"), "out of order");
	refused(tls_check_keypair(path("empty.pem"), path("leaf.key"), errbuf, sizeof errbuf),
		path("empty.pem"), NULL);
	/* A key given as the certificate, and a certificate given as the key. */
	refused(tls_check_keypair(path("leaf.key"), path("leaf.key"), errbuf, sizeof errbuf),
		path("leaf.key"), "no certificate");
	refused(tls_check_keypair(path("leaf.pem"), path("leaf.pem"), errbuf, sizeof errbuf),
		path("leaf.pem"), "private key");
	refused(tls_check_keypair(path("missing.pem"), path("leaf.key"), errbuf, sizeof errbuf),
		path("missing.pem"), "cannot read");
	refused(tls_check_keypair(path("leaf.pem"), path("missing.key"), errbuf, sizeof errbuf),
		path("missing.key"), "cannot read");
}

static void test_ca_file(void **state)
{
	(void)state;
	assert_int_equal(tls_check_ca_file(path("ca.pem"), errbuf, sizeof errbuf), TLS_OK);
	assert_int_equal(tls_check_ca_file(path("ca.der"), errbuf, sizeof errbuf), TLS_OK);
	assert_int_equal(tls_check_ca_file(path("chain.pem"), errbuf, sizeof errbuf), TLS_OK);

	refused(tls_check_ca_file(path("empty.pem"), errbuf, sizeof errbuf), path("empty.pem"),
		"no CA certificate");
	refused(tls_check_ca_file(path("junk.pem"), errbuf, sizeof errbuf), path("junk.pem"),
		"no CA certificate");
	refused(tls_check_ca_file(path("ca.key"), errbuf, sizeof errbuf), path("ca.key"),
		"no CA certificate");
	refused(tls_check_ca_file(path("missing.pem"), errbuf, sizeof errbuf),
		path("missing.pem"), "cannot read");
}

static void test_crl_file(void **state)
{
	(void)state;
	assert_int_equal(tls_check_crl_file(path("crl.pem"), NULL, errbuf, sizeof errbuf), TLS_OK);
	assert_int_equal(tls_check_crl_file(path("crl.pem"), path("ca.pem"), errbuf,
					    sizeof errbuf), TLS_OK);
	/* Without a CA file only the syntax is checked. */
	assert_int_equal(tls_check_crl_file(path("other.crl"), NULL, errbuf, sizeof errbuf),
			 TLS_OK);

	refused(tls_check_crl_file(path("other.crl"), path("ca.pem"), errbuf, sizeof errbuf),
		path("other.crl"), "not signed by a CA in");
	assert_non_null(strstr(errbuf, path("ca.pem")));
	refused(tls_check_crl_file(path("crl.pem"), path("other-ca.pem"), errbuf, sizeof errbuf),
		path("crl.pem"), "not signed by a CA in");
	/* A stale CRL of the right CA is named stale, not unsigned. */
	refused(tls_check_crl_file(path("stale.crl"), path("ca.pem"), errbuf, sizeof errbuf),
		path("stale.crl"), "is stale");
	assert_null(strstr(errbuf, "not signed"));
	refused(tls_check_crl_file(path("ca.pem"), NULL, errbuf, sizeof errbuf), path("ca.pem"),
		"no CRL");
	refused(tls_check_crl_file(path("empty.pem"), path("ca.pem"), errbuf, sizeof errbuf),
		path("empty.pem"), "no CRL");
	refused(tls_check_crl_file(path("missing.crl"), NULL, errbuf, sizeof errbuf),
		path("missing.crl"), "cannot read");
	/* A CA file that holds no certificate is named, not silently passed. */
	refused(tls_check_crl_file(path("crl.pem"), path("empty.pem"), errbuf, sizeof errbuf),
		path("empty.pem"), NULL);
	refused(tls_check_crl_file(path("crl.pem"), path("junk.pem"), errbuf, sizeof errbuf),
		path("junk.pem"), "no CA certificate");
}

/* dirbridge-check's dates: certificate notAfter and CRL nextUpdate. */
static void test_dates(void **state)
{
	int64_t leaf = 0, min = 0, next = 0, now = (int64_t)time(NULL);

	(void)state;
	assert_int_equal(tls_cert_file_dates(path("chain.pem"), &leaf, &min, errbuf,
					     sizeof errbuf), TLS_OK);
	assert_true(leaf > now + 86000 && leaf <= now + 86400 + 5);
	assert_true(min <= leaf);
	refused(tls_cert_file_dates(path("junk.pem"), &leaf, &min, errbuf, sizeof errbuf),
		path("junk.pem"), "no certificate");
	assert_int_equal(tls_crl_file_next_update(path("crl.pem"), &next, errbuf, sizeof errbuf),
			 TLS_OK);
	assert_true(next > now + 86000);
	assert_int_equal(tls_crl_file_next_update(path("stale.crl"), &next, errbuf,
						  sizeof errbuf), TLS_OK);
	assert_true(next < now);
	refused(tls_crl_file_next_update(path("ca.pem"), &next, errbuf, sizeof errbuf),
		path("ca.pem"), "no CRL");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keypair),
		cmocka_unit_test(test_ca_file),
		cmocka_unit_test(test_crl_file),
		cmocka_unit_test(test_dates),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
