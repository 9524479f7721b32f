/*
 * Configuration checks on certificate, key, CA and CRL files; see tls.h.  They
 * parse what the agent will load later, so that `dirbridge -n` finds a wrong or
 * mismatched file before a handshake does.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "tls/tls.h"

/* Reads FILE; key material is wiped by the caller through wipe(). */
static int load(const char *file, gnutls_datum_t *d, char *errbuf, size_t errlen)
{
	int rc = gnutls_load_file(file, d);

	if (rc < 0) {
		snprintf(errbuf, errlen, "%s: cannot read: %s", file, gnutls_strerror(rc));
		return TLS_E_CONFIG;
	}
	return 0;
}

static void wipe(gnutls_datum_t *d)
{
	if (d->data) {
		gnutls_memset(d->data, 0, d->size);
		gnutls_free(d->data);
	}
	d->data = NULL;
	d->size = 0;
}

/* PEM first (what every tool writes), then DER for a single certificate. */
static int import_certs(const gnutls_datum_t *d, unsigned flags, gnutls_x509_crt_t **certs,
			unsigned *n)
{
	int rc = gnutls_x509_crt_list_import2(certs, n, d, GNUTLS_X509_FMT_PEM, flags);

	if (rc < 0 && rc != GNUTLS_E_CERTIFICATE_LIST_UNSORTED)
		if (gnutls_x509_crt_list_import2(certs, n, d, GNUTLS_X509_FMT_DER, flags) >= 0)
			return 0;
	return rc < 0 ? rc : 0;
}

static void free_certs(gnutls_x509_crt_t *certs, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		gnutls_x509_crt_deinit(certs[i]);
	gnutls_free(certs);
}

int tls_check_keypair(const char *cert_file, const char *key_file, char *errbuf, size_t errlen)
{
	gnutls_datum_t cd = { NULL, 0 }, kd = { NULL, 0 };
	gnutls_x509_crt_t *certs = NULL;
	gnutls_x509_privkey_t key = NULL;
	unsigned n = 0;
	unsigned char cid[64], kid[64];
	size_t clen = sizeof cid, klen = sizeof kid;
	int rc, ret = TLS_E_CONFIG;

	if (load(cert_file, &cd, errbuf, errlen) < 0 || load(key_file, &kd, errbuf, errlen) < 0)
		goto out;
	rc = import_certs(&cd, GNUTLS_X509_CRT_LIST_FAIL_IF_UNSORTED, &certs, &n);
	if (rc == GNUTLS_E_CERTIFICATE_LIST_UNSORTED) {
		snprintf(errbuf, errlen, "%s: the certificates are out of order; put the "
			 "certificate first, then each issuer in turn", cert_file);
		goto out;
	}
	if (rc < 0 || n == 0) {
		snprintf(errbuf, errlen, "%s: no certificate could be parsed (%s); give a PEM file "
			 "with the certificate and its chain", cert_file,
			 rc < 0 ? gnutls_strerror(rc) : "empty");
		goto out;
	}
	if ((rc = gnutls_x509_privkey_init(&key)) < 0) {
		snprintf(errbuf, errlen, "%s", gnutls_strerror(rc));
		ret = TLS_E_NOMEM;
		goto out;
	}
	rc = gnutls_x509_privkey_import2(key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0);
	if (rc < 0)
		rc = gnutls_x509_privkey_import2(key, &kd, GNUTLS_X509_FMT_DER, NULL, 0);
	if (rc < 0) {
		snprintf(errbuf, errlen, "%s: cannot parse the private key (%s); give an unencrypted "
			 "PEM key", key_file, gnutls_strerror(rc));
		goto out;
	}
	/* The key fits the certificate when both describe the same public key. */
	if ((rc = gnutls_x509_crt_get_key_id(certs[0], GNUTLS_KEYID_USE_SHA256, cid, &clen)) < 0 ||
	    (rc = gnutls_x509_privkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, kid, &klen)) < 0) {
		snprintf(errbuf, errlen, "%s: cannot compare the key with %s (%s)", key_file,
			 cert_file, gnutls_strerror(rc));
		goto out;
	}
	if (clen != klen || memcmp(cid, kid, clen) != 0) {
		snprintf(errbuf, errlen, "%s does not belong to the certificate in %s; give the key "
			 "the certificate was issued for", key_file, cert_file);
		goto out;
	}
	ret = TLS_OK;
out:
	if (key)
		gnutls_x509_privkey_deinit(key);
	free_certs(certs, n);
	wipe(&kd);
	wipe(&cd);
	return ret;
}

int tls_check_ca_file(const char *ca_file, char *errbuf, size_t errlen)
{
	gnutls_datum_t d = { NULL, 0 };
	gnutls_x509_crt_t *certs = NULL;
	unsigned n = 0;
	int rc, ret = TLS_E_CONFIG;

	if (load(ca_file, &d, errbuf, errlen) < 0)
		goto out;
	rc = import_certs(&d, 0, &certs, &n);
	if (rc < 0 || n == 0) {
		snprintf(errbuf, errlen, "%s: no CA certificate could be parsed (%s); give a PEM "
			 "file with at least one certificate", ca_file,
			 rc < 0 ? gnutls_strerror(rc) : "empty");
		goto out;
	}
	ret = TLS_OK;
out:
	free_certs(certs, n);
	wipe(&d);
	return ret;
}

int tls_check_crl_file(const char *crl_file, const char *ca_file, char *errbuf, size_t errlen)
{
	gnutls_datum_t d = { NULL, 0 }, cad = { NULL, 0 };
	gnutls_x509_crl_t *crls = NULL;
	gnutls_x509_crt_t *cas = NULL;
	unsigned n = 0, n_cas = 0, status;
	int rc, ret = TLS_E_CONFIG;

	if (load(crl_file, &d, errbuf, errlen) < 0)
		goto out;
	rc = gnutls_x509_crl_list_import2(&crls, &n, &d, GNUTLS_X509_FMT_PEM, 0);
	if (rc < 0)
		rc = gnutls_x509_crl_list_import2(&crls, &n, &d, GNUTLS_X509_FMT_DER, 0);
	if (rc < 0 || n == 0) {
		snprintf(errbuf, errlen, "%s: no CRL could be parsed (%s); give a PEM CRL such as "
			 "`dirbridge-cert crl` writes", crl_file, rc < 0 ? gnutls_strerror(rc) : "empty");
		goto out;
	}
	/* A CRL not signed by the client CA set would be ignored at handshake time,
	 * and every revoked certificate would still be accepted. */
	if (ca_file) {
		if (load(ca_file, &cad, errbuf, errlen) < 0)
			goto out;
		rc = import_certs(&cad, 0, &cas, &n_cas);
		if (rc < 0 || n_cas == 0) {
			snprintf(errbuf, errlen, "%s: no CA certificate could be parsed (%s) to check "
				 "the CRL %s against", ca_file, rc < 0 ? gnutls_strerror(rc) : "empty",
				 crl_file);
			goto out;
		}
		for (unsigned i = 0; i < n; i++) {
			rc = gnutls_x509_crl_verify(crls[i], cas, n_cas, 0, &status);
			/* GnuTLS also refuses a CRL past its nextUpdate; that one is
			 * signed, just stale, and needs a different fix. */
			if (rc >= 0 && status == (GNUTLS_CERT_INVALID |
						  GNUTLS_CERT_REVOCATION_DATA_SUPERSEDED)) {
				snprintf(errbuf, errlen, "%s: the CRL is stale (its nextUpdate has "
					 "passed); publish a new CRL (dirbridge-cert crl) to the "
					 "file", crl_file);
				goto out;
			}
			if (rc < 0 || status != 0) {
				snprintf(errbuf, errlen, "%s: the CRL is not signed by a CA in %s; "
					 "give the CRL of the client CA", crl_file, ca_file);
				goto out;
			}
		}
	}
	ret = TLS_OK;
out:
	for (unsigned i = 0; i < n; i++)
		gnutls_x509_crl_deinit(crls[i]);
	gnutls_free(crls);
	free_certs(cas, n_cas);
	wipe(&cad);
	wipe(&d);
	return ret;
}

/* ---- dates, for dirbridge-check ------------------------------------------ */

int tls_cert_file_dates(const char *file, int64_t *leaf_not_after, int64_t *min_not_after,
			char *errbuf, size_t errlen)
{
	gnutls_datum_t d = { NULL, 0 };
	gnutls_x509_crt_t *certs = NULL;
	unsigned n = 0;
	int rc, ret = TLS_E_CONFIG;

	if (load(file, &d, errbuf, errlen) < 0)
		goto out;
	rc = import_certs(&d, 0, &certs, &n);
	if (rc < 0 || n == 0) {
		snprintf(errbuf, errlen, "%s: no certificate could be parsed (%s)", file,
			 rc < 0 ? gnutls_strerror(rc) : "empty");
		goto out;
	}
	*leaf_not_after = (int64_t)gnutls_x509_crt_get_expiration_time(certs[0]);
	*min_not_after = *leaf_not_after;
	for (unsigned i = 1; i < n; i++) {
		int64_t t = (int64_t)gnutls_x509_crt_get_expiration_time(certs[i]);

		if (t < *min_not_after)
			*min_not_after = t;
	}
	ret = TLS_OK;
out:
	free_certs(certs, n);
	wipe(&d);
	return ret;
}

int tls_crl_file_next_update(const char *file, int64_t *next_update, char *errbuf,
			     size_t errlen)
{
	gnutls_datum_t d = { NULL, 0 };
	gnutls_x509_crl_t *crls = NULL;
	unsigned n = 0;
	int rc, ret = TLS_E_CONFIG;

	if (load(file, &d, errbuf, errlen) < 0)
		goto out;
	rc = gnutls_x509_crl_list_import2(&crls, &n, &d, GNUTLS_X509_FMT_PEM, 0);
	if (rc < 0)
		rc = gnutls_x509_crl_list_import2(&crls, &n, &d, GNUTLS_X509_FMT_DER, 0);
	if (rc < 0 || n == 0) {
		snprintf(errbuf, errlen, "%s: no CRL could be parsed (%s)", file,
			 rc < 0 ? gnutls_strerror(rc) : "empty");
		goto out;
	}
	/* The soonest nextUpdate is the one that goes stale first; a CRL without
	 * one (-1 from GnuTLS) never says when it is due and counts as stale. */
	*next_update = INT64_MAX;
	for (unsigned i = 0; i < n; i++) {
		int64_t t = (int64_t)gnutls_x509_crl_get_next_update(crls[i]);

		if (t < *next_update)
			*next_update = t;
	}
	ret = TLS_OK;
out:
	for (unsigned i = 0; i < n; i++)
		gnutls_x509_crl_deinit(crls[i]);
	gnutls_free(crls);
	wipe(&d);
	return ret;
}

int tls_der_not_after(const unsigned char *der, size_t len, int64_t *not_after)
{
	gnutls_datum_t d = { (unsigned char *)(uintptr_t)der, (unsigned)len };
	gnutls_x509_crt_t crt;
	int rc;

	if (len > UINT32_MAX || gnutls_x509_crt_init(&crt) < 0)
		return TLS_E_NOMEM;
	rc = gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER);
	if (rc >= 0)
		*not_after = (int64_t)gnutls_x509_crt_get_expiration_time(crt);
	gnutls_x509_crt_deinit(crt);
	return rc < 0 ? TLS_E_CONFIG : TLS_OK;
}
