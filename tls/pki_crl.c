/*
 * Revocation and CRLs for a CA directory (see tls.h and pki.c): revoked
 * records live in the index, and every CRL lists them all, signed with the
 * next cRLNumber.
 */
#include <errno.h>
#include <stdint.h>
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

/* ---- the CertificateList, built with libtasn1 ------------------------------ */

#define OID_CRL_NUMBER "2.5.29.20"
#define OID_CRL_REASON "2.5.29.21"
#define OID_AKI "2.5.29.35"

/* What a libtasn1 failure means to the caller: only allocation is not ours. */
static int asn_fail(struct tls_pki *p, int arc, const char *what)
{
	return tls_pki_fail(p, arc == ASN1_MEM_ALLOC_ERROR ? TLS_E_NOMEM : TLS_E_PROTO,
			    "CRL: %s: %s", what, asn1_strerror(arc));
}

/* Writes NAME = VALUE under the element PREFIX (PREFIX.NAME). */
static int put(asn1_node n, const char *prefix, const char *name, const void *value, int len)
{
	char path[192];
	int w = snprintf(path, sizeof path, "%s%s%s", prefix, *prefix && *name ? "." : "", name);

	if (w < 0 || (size_t)w >= sizeof path)
		return ASN1_ELEMENT_NOT_FOUND;
	return asn1_write_value(n, path, value, len);
}

/* A Time (RFC 5280 5.1.2.4): UTCTime through 2049, GeneralizedTime after. */
static int put_time(asn1_node n, const char *name, int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;
	char text[32], path[192];
	int rc;

	if (!gmtime_r(&tt, &tm))
		return ASN1_VALUE_NOT_VALID;
	bool utc = tm.tm_year >= 50 && tm.tm_year < 150;
	const char *which = utc ? "utcTime" : "generalTime";

	/* UTCTime has two year digits, read as 1950..2049 (RFC 5280 4.1.2.5.1). */
	snprintf(text, sizeof text, "%0*d%02d%02d%02d%02d%02dZ", utc ? 2 : 4,
		 utc ? tm.tm_year % 100 : tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec);
	if ((rc = asn1_write_value(n, name, which, 1)) != ASN1_SUCCESS)
		return rc;
	int w = snprintf(path, sizeof path, "%s.%s", name, which);
	if (w < 0 || (size_t)w >= sizeof path)
		return ASN1_ELEMENT_NOT_FOUND;
	return asn1_write_value(n, path, text, (int)strlen(text));
}

/* An AlgorithmIdentifier for the signature: RSA's carries NULL parameters,
 * ECDSA's none (RFC 4055 2.1 and RFC 5758 3.2). */
static int put_alg(asn1_node n, const char *name, const char *oid, bool rsa)
{
	/* The DER of ASN.1 NULL, the value of an ANY (libtasn1 takes ANY as DER). */
	static const unsigned char null_der[] = { 0x05, 0x00 };
	int rc;

	if ((rc = put(n, name, "algorithm", oid, 1)) != ASN1_SUCCESS)
		return rc;
	return rsa ? put(n, name, "parameters", null_der, (int)sizeof null_der)
		   : put(n, name, "parameters", NULL, 0);
}

/* The DER of one extension value: TYPE from the module with FIELD (or the
 * whole value, "") set to VALUE/LEN as asn1_write_value takes them. */
static int ext_value(asn1_node defs, const char *type, const char *field, const void *value,
		     int len, unsigned char *out, int *outlen)
{
	asn1_node v = NULL;
	int rc;

	if ((rc = asn1_create_element(defs, type, &v)) == ASN1_SUCCESS &&
	    (rc = asn1_write_value(v, field, value, len)) == ASN1_SUCCESS)
		rc = asn1_der_coding(v, "", out, outlen, NULL);
	asn1_delete_structure(&v);
	return rc;
}

/* Appends a non-critical extension to the Extensions at SEQ. */
static int add_ext(asn1_node n, const char *seq, const char *oid, const unsigned char *val,
		   int len)
{
	char last[128];
	int rc, w = snprintf(last, sizeof last, "%s.?LAST", seq);

	if (w < 0 || (size_t)w >= sizeof last)
		return ASN1_ELEMENT_NOT_FOUND;
	if ((rc = asn1_write_value(n, seq, "NEW", 1)) != ASN1_SUCCESS ||
	    (rc = put(n, last, "extnID", oid, 1)) != ASN1_SUCCESS ||
	    (rc = put(n, last, "critical", "FALSE", 1)) != ASN1_SUCCESS)
		return rc;
	return put(n, last, "extnValue", val, len);
}

/* An INTEGER's content for libtasn1 (two's complement, big-endian): leading
 * zero bytes dropped, one kept where the next byte's top bit would make it
 * negative. */
static int int_bytes(const unsigned char *in, size_t len, unsigned char *out, size_t outsz)
{
	size_t skip = 0, o = 0;

	while (skip + 1 < len && in[skip] == 0 && !(in[skip + 1] & 0x80))
		skip++;
	if (len == 0 || len - skip + 1 > outsz)
		return -1;
	if (in[skip] & 0x80)
		out[o++] = 0;
	memcpy(out + o, in + skip, len - skip);
	return (int)(o + len - skip);
}

/* One revokedCertificates entry; reason unspecified (0) is left out, as
 * RFC 5280 5.3.1 asks. */
static int add_entry(struct tls_pki *p, asn1_node defs, asn1_node n, const struct tls_pki_cert *c)
{
	const char *seq = "tbsCertList.revokedCertificates";
	const char *last = "tbsCertList.revokedCertificates.?LAST";
	unsigned char serial[20], num[21], ext[16];
	size_t slen = sizeof serial;
	int nlen, elen = (int)sizeof ext, rc;
	const char *what = "revoked entry";

	if (hex_to_bytes(c->serial, serial, &slen) < 0 ||
	    (nlen = int_bytes(serial, slen, num, sizeof num)) < 0)
		return tls_pki_fail(p, TLS_E_CONFIG, "index: bad serial %s", c->serial);
	if ((rc = asn1_write_value(n, seq, "NEW", 1)) != ASN1_SUCCESS ||
	    (rc = put(n, last, "userCertificate", num, nlen)) != ASN1_SUCCESS ||
	    (rc = put_time(n, "tbsCertList.revokedCertificates.?LAST.revocationDate",
			   c->revoked_at)) != ASN1_SUCCESS)
		return asn_fail(p, rc, what);
	if (c->reason == 0 || !tls_pki_reason_name(c->reason)) {
		rc = put(n, last, "crlEntryExtensions", NULL, 0);
	} else {
		what = "reasonCode";
		rc = ext_value(defs, "PKIX-CRL.CRLReason", "", tls_pki_reason_name(c->reason), 0,
			       ext, &elen);
		if (rc == ASN1_SUCCESS)
			rc = add_ext(n, "tbsCertList.revokedCertificates.?LAST.crlEntryExtensions",
				     OID_CRL_REASON, ext, elen);
	}
	return rc == ASN1_SUCCESS ? 0 : asn_fail(p, rc, what);
}

/* The crlExtensions: cRLNumber NUMBER and the CA's authorityKeyIdentifier. */
static int add_crl_exts(struct tls_pki *p, asn1_node defs, asn1_node n, uint64_t number)
{
	const char *seq = "tbsCertList.crlExtensions";
	unsigned char be[8], num[9], aki[64], ext[96];
	size_t akilen = sizeof aki;
	int nlen, elen = (int)sizeof ext, rc;

	for (int i = 0; i < 8; i++)
		be[i] = (unsigned char)(number >> (8 * (7 - i)));
	nlen = int_bytes(be, sizeof be, num, sizeof num);
	if ((rc = gnutls_x509_crt_get_subject_key_id(p->ca, aki, &akilen, NULL)) < 0)
		return tls_pki_gt_fail(p, rc, "CA subject key identifier");
	rc = ext_value(defs, "PKIX-CRL.CRLNumber", "", num, nlen, ext, &elen);
	if (rc == ASN1_SUCCESS)
		rc = add_ext(n, seq, OID_CRL_NUMBER, ext, elen);
	if (rc != ASN1_SUCCESS)
		return asn_fail(p, rc, "cRLNumber");
	elen = (int)sizeof ext;
	rc = ext_value(defs, "PKIX-CRL.AuthorityKeyIdentifier", "keyIdentifier", aki,
		       (int)akilen, ext, &elen);
	if (rc == ASN1_SUCCESS)
		rc = add_ext(n, seq, OID_AKI, ext, elen);
	return rc == ASN1_SUCCESS ? 0 : asn_fail(p, rc, "authorityKeyIdentifier");
}

/* DER of element NAME of N into *OUT (malloc'd). */
static int der_of(asn1_node n, const char *name, unsigned char **out, int *len)
{
	int rc;

	*out = NULL;
	*len = 0;
	rc = asn1_der_coding(n, name, NULL, len, NULL);
	if (rc != ASN1_MEM_ERROR)
		return rc == ASN1_SUCCESS ? ASN1_GENERIC_ERROR : rc;
	if (!(*out = malloc((size_t)*len)))
		return ASN1_MEM_ALLOC_ERROR;
	if ((rc = asn1_der_coding(n, name, *out, len, NULL)) != ASN1_SUCCESS) {
		free(*out);
		*out = NULL;
	}
	return rc;
}

/*
 * The signed CRL (DER, malloc'd) with cRLNumber NUMBER and every revoked
 * record of the index.  The tbsCertList is filled inside the CertificateList,
 * encoded on its own and signed with the CA key; the signature and its
 * algorithm then complete the CertificateList.
 */
static int crl_der(struct tls_pki *p, uint64_t number, int64_t now, unsigned char **der, int *dlen)
{
	asn1_node defs = NULL, n = NULL;
	gnutls_datum_t dn = { NULL, 0 }, tbs = { NULL, 0 }, sig = { NULL, 0 };
	unsigned char *tbsder = NULL;
	int tlen = 0, rc, arc, pk;
	bool any = false;
	const char *oid, *what = "tbsCertList";

	*der = NULL;
	*dlen = 0;
	pk = gnutls_privkey_get_pk_algorithm(p->ca_key, NULL);
	oid = gnutls_sign_get_oid(gnutls_pk_to_sign((gnutls_pk_algorithm_t)pk, GNUTLS_DIG_SHA256));
	if (!oid || (pk != GNUTLS_PK_RSA && pk != GNUTLS_PK_ECDSA))
		return tls_pki_fail(p, TLS_E_CONFIG, "CRL: the CA key is neither RSA nor ECDSA");
	if ((rc = gnutls_x509_crt_get_raw_dn(p->ca, &dn)) < 0)
		return tls_pki_gt_fail(p, rc, "CA subject");
	if ((arc = asn1_array2tree(pkix_crl_asn1_tab, &defs, NULL)) != ASN1_SUCCESS ||
	    (arc = asn1_create_element(defs, "PKIX-CRL.CertificateList", &n)) != ASN1_SUCCESS)
		goto afail;
	/* v2 (INTEGER 1): needed for the extensions. */
	if ((arc = put(n, "tbsCertList", "version", "1", 0)) != ASN1_SUCCESS ||
	    (arc = put_alg(n, "tbsCertList.signature", oid, pk == GNUTLS_PK_RSA)) != ASN1_SUCCESS ||
	    (arc = put(n, "tbsCertList", "issuer", dn.data, (int)dn.size)) != ASN1_SUCCESS ||
	    (arc = put_time(n, "tbsCertList.thisUpdate", now)) != ASN1_SUCCESS ||
	    (arc = put_time(n, "tbsCertList.nextUpdate", now + PKI_CRL_DAYS * PKI_DAY)) != ASN1_SUCCESS)
		goto afail;
	for (size_t i = 0; i < p->n; i++) {
		if (p->certs[i].status != TLS_CERT_REVOKED)
			continue;
		if ((rc = add_entry(p, defs, n, &p->certs[i])) < 0)
			goto out;
		any = true;
	}
	/* An empty list is left out, not written as an empty SEQUENCE (5.1.2.6). */
	if (!any && (arc = put(n, "tbsCertList", "revokedCertificates", NULL, 0)) != ASN1_SUCCESS)
		goto afail;
	if ((rc = add_crl_exts(p, defs, n, number)) < 0)
		goto out;
	if ((arc = der_of(n, "tbsCertList", &tbsder, &tlen)) != ASN1_SUCCESS)
		goto afail;
	tbs.data = tbsder;
	tbs.size = (unsigned)tlen;
	if ((rc = gnutls_privkey_sign_data(p->ca_key, GNUTLS_DIG_SHA256, 0, &tbs, &sig)) < 0) {
		rc = tls_pki_gt_fail(p, rc, "signing the CRL");
		goto out;
	}
	what = "CertificateList";
	if ((arc = put_alg(n, "signatureAlgorithm", oid, pk == GNUTLS_PK_RSA)) != ASN1_SUCCESS ||
	    (arc = put(n, "", "signature", sig.data, (int)sig.size * 8)) != ASN1_SUCCESS ||
	    (arc = der_of(n, "", der, dlen)) != ASN1_SUCCESS)
		goto afail;
	rc = 0;
	goto out;
afail:
	rc = asn_fail(p, arc, what);
out:
	free(tbsder);
	gnutls_free(sig.data);
	gnutls_free(dn.data);
	asn1_delete_structure(&n);
	asn1_delete_structure(&defs);
	return rc;
}

/* Whether GnuTLS, which reads the CRL wherever the agent enforces it, parses
 * DER and finds it signed by the CA: a CRL that fails here is never saved.
 * The CA is checked as a relying party holds it, imported from its DER: a
 * certificate GnuTLS has just generated (init-ca) has no raw subject for the
 * issuer comparison yet. */
static int crl_self_check(struct tls_pki *p, const unsigned char *der, int len)
{
	gnutls_x509_crl_t crl = NULL;
	gnutls_x509_crt_t ca = NULL;
	gnutls_datum_t in = { (unsigned char *)(uintptr_t)der, (unsigned)len }, cad = { NULL, 0 };
	unsigned status = 0;
	int rc;

	if ((rc = gnutls_x509_crt_export2(p->ca, GNUTLS_X509_FMT_DER, &cad)) < 0 ||
	    (rc = gnutls_x509_crt_init(&ca)) < 0 ||
	    (rc = gnutls_x509_crt_import(ca, &cad, GNUTLS_X509_FMT_DER)) < 0 ||
	    (rc = gnutls_x509_crl_init(&crl)) < 0 ||
	    (rc = gnutls_x509_crl_import(crl, &in, GNUTLS_X509_FMT_DER)) < 0 ||
	    (rc = gnutls_x509_crl_verify(crl, &ca, 1, 0, &status)) < 0)
		rc = tls_pki_gt_fail(p, rc, "the new CRL");
	else if (status)
		rc = tls_pki_fail(p, TLS_E_PROTO, "the new CRL does not verify against the CA");
	gnutls_x509_crl_deinit(crl);
	gnutls_x509_crt_deinit(ca);
	gnutls_free(cad.data);
	return rc < 0 ? rc : 0;
}

int tls_pki_crl(struct tls_pki *p, char **pem, size_t *len)
{
	gnutls_datum_t out = { NULL, 0 }, in;
	unsigned char *der = NULL;
	int dlen = 0;
	uint64_t next = p->crl_number + 1;
	char *path = NULL;
	int rc;

	*pem = NULL;
	*len = 0;
	if (!p->write)
		return tls_pki_fail(p, TLS_E_CONFIG, "CA directory opened read-only");
	if ((rc = crl_der(p, next, (int64_t)time(NULL), &der, &dlen)) < 0 ||
	    (rc = crl_self_check(p, der, dlen)) < 0)
		goto out;
	in.data = der;
	in.size = (unsigned)dlen;
	if ((rc = gnutls_pem_base64_encode2("X509 CRL", &in, &out)) < 0) {
		rc = tls_pki_gt_fail(p, rc, "CRL");
		goto out;
	}
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
out:
	free(path);
	free(der);
	gnutls_free(out.data);
	return rc;
}
