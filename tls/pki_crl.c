/*
 * Revocation and CRLs for a CA directory (see tls.h and pki.c): revoked
 * records live in the index, and every CRL lists them all, signed with the
 * next cRLNumber.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tls/internal.h"

/* ---- pure helpers -------------------------------------------------------- */

static const char *const reasons[] = {
	[0] = "unspecified",	     [1] = "keyCompromise",	   [2] = "cACompromise",
	[3] = "affiliationChanged", [4] = "superseded",	   [5] = "cessationOfOperation",
	[6] = "certificateHold",    [9] = "privilegeWithdrawn", [10] = "aACompromise",
};

int tls_pki_reason_code(const char *name)
{
	for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
		if (reasons[i] && name && strcmp(reasons[i], name) == 0)
			return (int)i;
	return TLS_E_CONFIG;
}

const char *tls_pki_reason_name(int code)
{
	if (code < 0 || (size_t)code >= sizeof reasons / sizeof reasons[0] || !reasons[code])
		return NULL;
	return reasons[code];
}

static int hex_to_bytes(const char *hex, unsigned char *out, size_t *len)
{
	size_t n = strlen(hex);

	if (n % 2 || n / 2 > *len)
		return TLS_E_CONFIG;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;

		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return TLS_E_CONFIG;
		out[i] = (unsigned char)v;
	}
	*len = n / 2;
	return 0;
}

static int crl_export2(void *o, gnutls_x509_crt_fmt_t f, gnutls_datum_t *d)
{
	return gnutls_x509_crl_export2(o, f, d);
}

static int revoke_where(struct tls_pki *p, const char *serial, const char *user, int reason)
{
	int64_t now = (int64_t)time(NULL);
	int n = 0;

	if (!p->write)
		return tls_pki_fail(p, TLS_E_CONFIG, "CA directory opened read-only");
	if (!tls_pki_reason_name(reason))
		return tls_pki_fail(p, TLS_E_CONFIG, "unknown revocation reason %d", reason);
	for (size_t i = 0; i < p->n; i++) {
		struct tls_pki_cert *c = &p->certs[i];

		if (c->status == TLS_CERT_REVOKED)
			continue;
		if ((serial && strcmp(c->serial, serial) != 0) || (user && !tls_pki_user_eq(c->user, user)))
			continue;
		c->status = TLS_CERT_REVOKED;
		c->revoked_at = now;
		c->reason = reason;
		n++;
	}
	if (n) {
		p->dirty = true;
		p->revoked = true;
	}
	return n;
}

int tls_pki_revoke_serial(struct tls_pki *p, const char *serial_hex, int reason)
{
	char s[TLS_PKI_SERIAL_MAX];

	if (tls_pki_serial_norm(serial_hex, s) < 0)
		return tls_pki_fail(p, TLS_E_CONFIG, "not a serial number: %.64s", serial_hex);
	return revoke_where(p, s, NULL, reason);
}

int tls_pki_revoke_user(struct tls_pki *p, const char *user, int reason)
{
	return revoke_where(p, NULL, user, reason);
}

int tls_pki_crl(struct tls_pki *p, char **pem, size_t *len)
{
	gnutls_x509_crl_t crl = NULL;
	gnutls_datum_t out = { NULL, 0 };
	unsigned char num[8], aki[64], serial[20];
	size_t akilen = sizeof aki;
	uint64_t next = p->crl_number + 1;
	time_t now = time(NULL);
	char *path = NULL;
	int rc;

	*pem = NULL;
	*len = 0;
	if (!p->write)
		return tls_pki_fail(p, TLS_E_CONFIG, "CA directory opened read-only");
	for (int i = 7; i >= 0; i--)
		num[7 - i] = (unsigned char)(next >> (8 * i));
	size_t skip = 0;
	while (skip < 7 && num[skip] == 0 && !(num[skip + 1] & 0x80))
		skip++;
	if ((rc = gnutls_x509_crl_init(&crl)) < 0 || (rc = gnutls_x509_crl_set_version(crl, 2)) < 0 ||
	    (rc = gnutls_x509_crl_set_this_update(crl, now)) < 0 ||
	    (rc = gnutls_x509_crl_set_next_update(crl, now + PKI_CRL_DAYS * PKI_DAY)) < 0 ||
	    (rc = gnutls_x509_crl_set_number(crl, num + skip, sizeof num - skip)) < 0 ||
	    (rc = gnutls_x509_crt_get_subject_key_id(p->ca, aki, &akilen, NULL)) < 0 ||
	    (rc = gnutls_x509_crl_set_authority_key_id(crl, aki, akilen)) < 0)
		goto gfail;
	/* GnuTLS writes no per-entry extensions, so the reason code lives in the
	 * index only; relying parties deny a listed serial whatever the reason. */
	for (size_t i = 0; i < p->n; i++) {
		size_t slen = sizeof serial;

		if (p->certs[i].status != TLS_CERT_REVOKED)
			continue;
		if (hex_to_bytes(p->certs[i].serial, serial, &slen) < 0) {
			rc = tls_pki_fail(p, TLS_E_CONFIG, "index: bad serial %s", p->certs[i].serial);
			goto out;
		}
		if ((rc = gnutls_x509_crl_set_crt_serial(crl, serial, slen,
							 (time_t)p->certs[i].revoked_at)) < 0)
			goto gfail;
	}
	if ((rc = gnutls_x509_crl_privkey_sign(crl, p->ca, p->ca_key, GNUTLS_DIG_SHA256, 0)) < 0)
		goto gfail;
	if ((rc = tls_pki_export_pem(p, crl_export2, crl, &out)) < 0)
		goto out;
	/* The counter is saved before the CRL: a crash in between skips a number
	 * but never issues one twice. */
	p->crl_number = next;
	p->dirty = true;
	if ((rc = tls_pki_index_save(p)) < 0)
		goto out;
	path = tls_pki_path(p, NULL, "crl.pem");
	if (!path || tls_pki_write_file(path, out.data, out.size, 0644) < 0) {
		rc = tls_pki_fail(p, TLS_E_IO, "%s: %s", path ? path : "crl.pem", strerror(errno));
		goto out;
	}
	p->revoked = false;
	*pem = malloc(out.size + 1);
	if (!*pem) {
		rc = tls_pki_fail(p, TLS_E_NOMEM, "out of memory");
		goto out;
	}
	memcpy(*pem, out.data, out.size);
	(*pem)[out.size] = '\0';
	*len = out.size;
	rc = 0;
	goto out;
gfail:
	rc = tls_pki_gt_fail(p, rc, "CRL");
out:
	free(path);
	gnutls_free(out.data);
	gnutls_x509_crl_deinit(crl);
	return rc;
}
