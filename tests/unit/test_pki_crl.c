/*
 * tls/pki_crl.c and the PKCS#12 formats of tls/pki_issue.c on a real CA
 * directory: every revoked entry of the CRL carries its reasonCode (none for
 * unspecified), the CRL verifies against the CA with GnuTLS for both key
 * types, the two PKCS#12 formats use the ciphers and MACs they promise, and
 * worker handles issue without touching the index.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gnutls/pkcs12.h>

#include "tls/internal.h"

static char tmpdir[64];

static int setup_dir(void **state)
{
	(void)state;
	strcpy(tmpdir, "/tmp/test_pki_crl.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static struct tls_pki *new_ca(const char *name, enum tls_key_type type)
{
	char dir[128], err[512];
	struct tls_pki *p = NULL;

	snprintf(dir, sizeof dir, "%s/%s", tmpdir, name);
	assert_int_equal(tls_pki_init_ca(dir, "unit CA", 30, type, err, sizeof err), 0);
	assert_int_equal(tls_pki_open(dir, true, &p, err, sizeof err), 0);
	return p;
}

static void issue(struct tls_pki *p, const char *user, enum tls_p12_format fmt,
		  struct tls_pki_cert *rec)
{
	unsigned char *p12;
	size_t len;

	assert_int_equal(tls_pki_issue(p, user, 10, "pw", fmt, &p12, &len, rec), 0);
	free(p12);
}

/* The reason byte of the entry for SERIAL_HEX, -1 when the entry has no
 * extension, -2 when the serial is not listed. */
static int entry_reason(asn1_node crl, const char *serial_hex)
{
	unsigned char want[20], got[21];
	size_t wl = strlen(serial_hex) / 2;

	for (size_t i = 0; i < wl; i++)
		sscanf(serial_hex + 2 * i, "%2hhx", &want[i]);
	for (int i = 1;; i++) {
		char path[160];
		int len = (int)sizeof got;

		snprintf(path, sizeof path, "tbsCertList.revokedCertificates.?%d.userCertificate", i);
		if (asn1_read_value(crl, path, got, &len) != ASN1_SUCCESS)
			return -2;
		/* A leading zero byte keeps a serial with its top bit set positive. */
		unsigned char *g = got;
		if (len == (int)wl + 1 && got[0] == 0)
			g++, len--;
		if (len != (int)wl || memcmp(g, want, wl) != 0)
			continue;
		char oid[64], val[16];
		int ol = (int)sizeof oid, vl = (int)sizeof val;

		snprintf(path, sizeof path,
			 "tbsCertList.revokedCertificates.?%d.crlEntryExtensions.?1.extnID", i);
		if (asn1_read_value(crl, path, oid, &ol) != ASN1_SUCCESS)
			return -1;
		assert_string_equal(oid, "2.5.29.21");
		snprintf(path, sizeof path,
			 "tbsCertList.revokedCertificates.?%d.crlEntryExtensions.?1.extnValue", i);
		assert_int_equal(asn1_read_value(crl, path, val, &vl), ASN1_SUCCESS);
		/* DER of ENUMERATED n (n < 128): 0a 01 n. */
		assert_int_equal(vl, 3);
		assert_int_equal((unsigned char)val[0], 0x0a);
		assert_int_equal(val[1], 1);
		/* One extension per entry, no more. */
		snprintf(path, sizeof path,
			 "tbsCertList.revokedCertificates.?%d.crlEntryExtensions.?2.extnID", i);
		ol = (int)sizeof oid;
		assert_int_not_equal(asn1_read_value(crl, path, oid, &ol), ASN1_SUCCESS);
		return val[2];
	}
}

static void crl_reasons(enum tls_key_type type, const char *name)
{
	static const int reasons[] = { 1, 0, 4, 9, -1 };	/* -1: not revoked */
	struct tls_pki_cert rec[5];
	struct tls_pki *p = new_ca(name, type);
	char users[5][8], *pem, path[160], err[200];
	size_t len;
	gnutls_datum_t in, der = { NULL, 0 };
	gnutls_x509_crl_t gcrl;
	gnutls_x509_crt_t ca;
	unsigned status = 1;
	asn1_node defs = NULL, crl = NULL;

	for (int i = 0; i < 5; i++) {
		snprintf(users[i], sizeof users[i], "u%d", i);
		issue(p, users[i], TLS_P12_COMPAT, &rec[i]);
		if (reasons[i] >= 0)
			assert_int_equal(tls_pki_revoke_serial(p, rec[i].serial, reasons[i]), 1);
	}
	assert_int_equal(tls_pki_crl(p, &pem, &len), 0);
	in.data = (unsigned char *)pem;
	in.size = (unsigned)len;

	/* GnuTLS, which the agent enforces the CRL with, reads and verifies it. */
	assert_int_equal(gnutls_x509_crl_init(&gcrl), 0);
	assert_int_equal(gnutls_x509_crl_import(gcrl, &in, GNUTLS_X509_FMT_PEM), 0);
	assert_int_equal(gnutls_x509_crl_get_version(gcrl), 2);
	assert_int_equal(gnutls_x509_crl_get_crt_count(gcrl), 4);
	snprintf(path, sizeof path, "%s/%s/ca.pem", tmpdir, name);
	gnutls_datum_t cad;
	assert_int_equal(gnutls_load_file(path, &cad), 0);
	assert_int_equal(gnutls_x509_crt_init(&ca), 0);
	assert_int_equal(gnutls_x509_crt_import(ca, &cad, GNUTLS_X509_FMT_PEM), 0);
	assert_int_equal(gnutls_x509_crl_verify(gcrl, &ca, 1, 0, &status), 0);
	assert_int_equal(status, 0);
	assert_int_equal(gnutls_x509_crl_get_signature_algorithm(gcrl),
			 type == TLS_KEY_RSA ? GNUTLS_SIGN_RSA_SHA256 : GNUTLS_SIGN_ECDSA_SHA256);
	unsigned char num[16];
	size_t numlen = sizeof num;
	unsigned crit = 1;
	/* init-ca signed number 1, so this is 2. */
	assert_int_equal(gnutls_x509_crl_get_number(gcrl, num, &numlen, &crit), 0);
	assert_int_equal(numlen, 1);
	assert_int_equal(num[0], 2);
	assert_int_equal(crit, 0);
	gnutls_free(cad.data);
	gnutls_x509_crt_deinit(ca);
	gnutls_x509_crl_deinit(gcrl);

	/* The entry extensions, read back through the ASN.1 module. */
	assert_int_equal(gnutls_pem_base64_decode2("X509 CRL", &in, &der), 0);
	assert_int_equal(asn1_array2tree(pkix_crl_asn1_tab, &defs, NULL), ASN1_SUCCESS);
	assert_int_equal(asn1_create_element(defs, "PKIX-CRL.CertificateList", &crl), ASN1_SUCCESS);
	assert_int_equal(asn1_der_decoding(&crl, der.data, (int)der.size, err), ASN1_SUCCESS);
	for (int i = 0; i < 5; i++) {
		int want = reasons[i] < 0 ? -2 : reasons[i] == 0 ? -1 : reasons[i];

		assert_int_equal(entry_reason(crl, rec[i].serial), want);
	}
	asn1_delete_structure(&crl);
	asn1_delete_structure(&defs);
	gnutls_free(der.data);
	free(pem);
	tls_pki_close(p);
}

static void test_crl_reasons_ecdsa(void **state)
{
	(void)state;
	crl_reasons(TLS_KEY_ECDSA, "ec");
}

static void test_crl_reasons_rsa(void **state)
{
	(void)state;
	crl_reasons(TLS_KEY_RSA, "rsa");
}

/* An empty CRL leaves revokedCertificates out and still verifies. */
static void test_crl_empty(void **state)
{
	struct tls_pki *p;
	char *pem;
	size_t len;
	gnutls_datum_t in;
	gnutls_x509_crl_t c;

	(void)state;
	p = new_ca("empty", TLS_KEY_ECDSA);
	assert_int_equal(tls_pki_crl(p, &pem, &len), 0);
	in.data = (unsigned char *)pem;
	in.size = (unsigned)len;
	assert_int_equal(gnutls_x509_crl_init(&c), 0);
	assert_int_equal(gnutls_x509_crl_import(c, &in, GNUTLS_X509_FMT_PEM), 0);
	assert_int_equal(gnutls_x509_crl_get_crt_count(c), 0);
	assert_true(gnutls_x509_crl_get_next_update(c) > gnutls_x509_crl_get_this_update(c));
	gnutls_x509_crl_deinit(c);
	free(pem);
	tls_pki_close(p);
}

/* The cipher schema of every encrypted bag and the MAC of a bundle. */
static void p12_check(const unsigned char *der, size_t len, unsigned schema,
		      gnutls_mac_algorithm_t mac)
{
	gnutls_pkcs12_t p12;
	gnutls_datum_t in = { (unsigned char *)(uintptr_t)der, (unsigned)len };
	unsigned mac_alg = 0, iter = 0, sch = 0, cipher = 0, salt_size = 32, kiter = 0;
	unsigned char salt[32];
	char *oid = NULL;
	int encrypted = 0;

	assert_int_equal(gnutls_pkcs12_init(&p12), 0);
	assert_int_equal(gnutls_pkcs12_import(p12, &in, GNUTLS_X509_FMT_DER, 0), 0);
	assert_int_equal(gnutls_pkcs12_verify_mac(p12, "pw"), 0);
	assert_int_equal(gnutls_pkcs12_mac_info(p12, &mac_alg, salt, &salt_size, &iter, &oid), 0);
	gnutls_free(oid);
	assert_int_equal(mac_alg, mac);
	for (int i = 0;; i++) {
		gnutls_pkcs12_bag_t bag;

		assert_int_equal(gnutls_pkcs12_bag_init(&bag), 0);
		if (gnutls_pkcs12_get_bag(p12, i, bag) < 0) {
			gnutls_pkcs12_bag_deinit(bag);
			break;
		}
		if (gnutls_pkcs12_bag_get_type(bag, 0) == GNUTLS_BAG_ENCRYPTED) {
			salt_size = sizeof salt;
			oid = NULL;
			assert_int_equal(gnutls_pkcs12_bag_enc_info(bag, &sch, &cipher, salt,
								    &salt_size, &kiter, &oid), 0);
			gnutls_free(oid);
			assert_int_equal(sch, schema);
			encrypted++;
			assert_int_equal(gnutls_pkcs12_bag_decrypt(bag, "pw"), 0);
		}
		/* The key bag is shrouded with the same schema. */
		if (gnutls_pkcs12_bag_get_type(bag, 0) == GNUTLS_BAG_PKCS8_ENCRYPTED_KEY) {
			gnutls_datum_t k;

			assert_int_equal(gnutls_pkcs12_bag_get_data(bag, 0, &k), 0);
			salt_size = sizeof salt;
			oid = NULL;
			assert_int_equal(gnutls_pkcs8_info(&k, GNUTLS_X509_FMT_DER, &sch, &cipher,
							   salt, &salt_size, &kiter, &oid), 0);
			gnutls_free(oid);
			assert_int_equal(sch, schema);
			encrypted++;
		}
		gnutls_pkcs12_bag_deinit(bag);
	}
	assert_int_equal(encrypted, 2);
	gnutls_pkcs12_deinit(p12);
}

static void test_p12_formats(void **state)
{
	struct tls_pki *p;
	struct tls_pki_cert rec;
	unsigned char *p12;
	size_t len;

	(void)state;
	p = new_ca("p12", TLS_KEY_ECDSA);
	assert_int_equal(tls_pki_issue(p, "m", 10, "pw", TLS_P12_MODERN, &p12, &len, &rec), 0);
	p12_check(p12, len, GNUTLS_PKCS_PBES2_AES_256, GNUTLS_MAC_SHA256);
	free(p12);
	assert_int_equal(tls_pki_issue(p, "c", 10, "pw", TLS_P12_COMPAT, &p12, &len, &rec), 0);
	p12_check(p12, len, GNUTLS_PKCS_PKCS12_3DES, GNUTLS_MAC_SHA1);
	free(p12);
	assert_int_equal(tls_pki_issue(p, "x", 10, "pw", (enum tls_p12_format)7, &p12, &len, &rec),
			 TLS_E_CONFIG);
	assert_null(p12);
	tls_pki_close(p);
}

/* A worker handle makes certificates that only the owning handle records,
 * and it can change nothing in the directory itself. */
static void test_worker(void **state)
{
	struct tls_pki *p, *w, *ro;
	struct tls_pki_cert rec, *certs;
	unsigned char *p12;
	size_t len, n;
	char dir[128], err[512], *pem;

	(void)state;
	p = new_ca("w", TLS_KEY_ECDSA);
	assert_int_equal(tls_pki_worker(p, &w), 0);
	assert_int_equal(tls_pki_make(w, "wuser", 10, "pw", TLS_P12_COMPAT, &p12, &len, &rec), 0);
	free(p12);
	assert_string_equal(rec.user, "wuser");
	assert_int_equal(tls_pki_list(p, 0, &certs, &n), 0);
	free(certs);
	assert_int_equal(n, 0);
	assert_int_equal(tls_pki_commit(w), TLS_E_CONFIG);
	assert_int_equal(tls_pki_crl(w, &pem, &len), TLS_E_CONFIG);
	assert_int_equal(tls_pki_revoke_user(w, "wuser", 1), TLS_E_CONFIG);
	assert_int_equal(tls_pki_record(p, &rec), 0);
	/* The same serial twice is refused. */
	assert_int_equal(tls_pki_record(p, &rec), TLS_E_PROTO);
	assert_int_equal(tls_pki_commit(p), 0);
	tls_pki_close(w);
	tls_pki_close(p);
	snprintf(dir, sizeof dir, "%s/w", tmpdir);
	assert_int_equal(tls_pki_open(dir, false, &ro, err, sizeof err), 0);
	assert_int_equal(tls_pki_list(ro, 0, &certs, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(certs[0].serial, rec.serial);
	free(certs);
	/* A read-only handle gives no workers and records nothing. */
	assert_int_equal(tls_pki_worker(ro, &w), TLS_E_CONFIG);
	assert_int_equal(tls_pki_record(ro, &rec), TLS_E_CONFIG);
	tls_pki_close(ro);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_crl_reasons_ecdsa, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_crl_reasons_rsa, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_crl_empty, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_p12_formats, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_worker, setup_dir, teardown_dir),
	};

	if (tls_global_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
