/*
 * Issues client certificates that certtool cannot express, for the HTTPS
 * tests: a subject CN with an embedded NUL byte.
 *
 *   certforge nul-cn CA.crt CA.key KEY OUT.crt NAME SUFFIX
 * writes a certificate whose CN is NAME, a NUL byte, then SUFFIX (EKU
 * clientAuth, valid for a day).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <gnutls/crypto.h>

static int load(const char *path, gnutls_datum_t *d)
{
	int ret = gnutls_load_file(path, d);

	if (ret < 0)
		fprintf(stderr, "certforge: %s: %s\n", path, gnutls_strerror(ret));
	return ret;
}

int main(int argc, char **argv)
{
	gnutls_datum_t cad = { 0 }, cakd = { 0 }, kd = { 0 }, out = { 0 };
	gnutls_x509_crt_t ca = NULL, crt = NULL;
	gnutls_x509_privkey_t cakey = NULL, key = NULL;
	unsigned char serial[16];
	char cn[512];
	size_t nl, sl;
	FILE *f;
	int ret = 1;

	if (argc != 8 || strcmp(argv[1], "nul-cn") != 0) {
		fprintf(stderr, "usage: certforge nul-cn CA.crt CA.key KEY OUT.crt NAME SUFFIX\n");
		return 2;
	}
	nl = strlen(argv[6]);
	sl = strlen(argv[7]);
	if (nl + sl + 1 > sizeof(cn))
		return 2;
	memcpy(cn, argv[6], nl);
	cn[nl] = '\0';
	memcpy(cn + nl + 1, argv[7], sl);
	if (load(argv[2], &cad) < 0 || load(argv[3], &cakd) < 0 || load(argv[4], &kd) < 0)
		goto out;
	if (gnutls_x509_crt_init(&ca) < 0 || gnutls_x509_crt_init(&crt) < 0 ||
	    gnutls_x509_privkey_init(&cakey) < 0 || gnutls_x509_privkey_init(&key) < 0)
		goto out;
	if (gnutls_x509_crt_import(ca, &cad, GNUTLS_X509_FMT_PEM) < 0 ||
	    gnutls_x509_privkey_import(cakey, &cakd, GNUTLS_X509_FMT_PEM) < 0 ||
	    gnutls_x509_privkey_import(key, &kd, GNUTLS_X509_FMT_PEM) < 0) {
		fprintf(stderr, "certforge: cannot parse inputs\n");
		goto out;
	}
	if (gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial)) < 0)
		goto out;
	serial[0] &= 0x7f;
	if ((ret = gnutls_x509_crt_set_version(crt, 3)) < 0 ||
	    (ret = gnutls_x509_crt_set_serial(crt, serial, sizeof(serial))) < 0 ||
	    (ret = gnutls_x509_crt_set_activation_time(crt, time(NULL) - 60)) < 0 ||
	    (ret = gnutls_x509_crt_set_expiration_time(crt, time(NULL) + 86400)) < 0 ||
	    (ret = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
						 (unsigned)(nl + 1 + sl))) < 0 ||
	    (ret = gnutls_x509_crt_set_key(crt, key)) < 0 ||
	    (ret = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_CLIENT, 0)) < 0 ||
	    (ret = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE)) < 0 ||
	    (ret = gnutls_x509_crt_sign2(crt, ca, cakey, GNUTLS_DIG_SHA256, 0)) < 0 ||
	    (ret = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &out)) < 0) {
		fprintf(stderr, "certforge: %s\n", gnutls_strerror(ret));
		ret = 1;
		goto out;
	}
	f = fopen(argv[5], "w");
	if (!f || fwrite(out.data, 1, out.size, f) != out.size || fclose(f) != 0) {
		fprintf(stderr, "certforge: cannot write %s\n", argv[5]);
		ret = 1;
		goto out;
	}
	ret = 0;
out:
	gnutls_free(out.data);
	gnutls_free(cad.data);
	gnutls_free(cakd.data);
	gnutls_free(kd.data);
	gnutls_x509_crt_deinit(ca);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(cakey);
	gnutls_x509_privkey_deinit(key);
	return ret;
}
