/*
 * The checks on one client certificate that need no session and no chain: what
 * it is (serial, issuer, fingerprint), whether it may be a client certificate
 * at all, and which user it names.  Pure on DER bytes, so unit tests and the
 * fuzzer drive it directly; server.c adds the chain and the CRL.  See tls.h.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <gnutls/x509-ext.h>

#include "tls/internal.h"
#include "tls/tls.h"

#define UPN_OID "1.3.6.1.4.1.311.20.2.3"

/* Far above any real client certificate; keeps hostile input cheap. */
#define CERT_MAX (64 * 1024)

int tls_cert_refuse(struct tls_client_cert *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
	va_end(ap);
	c->username[0] = '\0';
	return TLS_E_VERIFY;
}

void tls_hex(const unsigned char *in, size_t len, char *out, size_t outlen)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	if (outlen == 0)
		return;
	for (i = 0; i < len && 2 * i + 2 < outlen; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * i] = '\0';
}

/* Exactly one CN, no NUL inside it. */
static int name_from_cn(gnutls_x509_crt_t crt, struct tls_client_cert *c)
{
	char buf[sizeof(c->username)];
	size_t len = sizeof(buf);
	int ret;

	ret = gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, buf, &len);
	if (ret == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
		return tls_cert_refuse(c, "%s", "subject has no CN");
	if (ret < 0)
		return tls_cert_refuse(c, "subject CN unreadable or too long: %s", gnutls_strerror(ret));
	/* GnuTLS gives the value in RFC 4514 form: a string it cannot show (one
	 * with a NUL byte, or not a string type) comes back as "#" and hex, and
	 * special characters come back escaped with "\".  Neither is a name. */
	if (memchr(buf, '\0', len) || buf[0] == '#')
		return tls_cert_refuse(c, "%s", "subject CN is not a plain string (NUL byte or binary value)");
	if (memchr(buf, '\\', len))
		return tls_cert_refuse(c, "%s", "subject CN contains characters that need escaping");
	{
		char other[8];
		size_t olen = sizeof(other);

		ret = gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 1, 0, other, &olen);
		if (ret != GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
			return tls_cert_refuse(c, "%s", "subject has more than one CN");
	}
	memcpy(c->username, buf, len);
	c->username[len] = '\0';
	return 0;
}

/* Exactly one subjectAltName of the wanted kind: a UPN otherName or an
 * rfc822Name.  Older GnuTLS versions report a UPN as a raw otherName, which
 * gnutls_x509_othername_to_virtual() decodes. */
static int name_from_san(gnutls_x509_crt_t crt, enum tls_certname how, struct tls_client_cert *c)
{
	unsigned found = 0, i;
	int ret;

	for (i = 0;; i++) {
		unsigned char buf[sizeof(c->username)];
		size_t len = sizeof(buf);
		unsigned crit = 0;

		ret = gnutls_x509_crt_get_subject_alt_name(crt, i, buf, &len, &crit);
		if (ret == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
			break;
		if (ret == GNUTLS_E_SHORT_MEMORY_BUFFER) {
			if (how == TLS_CERTNAME_EMAIL)
				return tls_cert_refuse(c, "%s", "subjectAltName too long");
			continue;	/* not a name we map; size only matters for ours */
		}
		if (ret < 0)
			return tls_cert_refuse(c, "subjectAltName unreadable: %s", gnutls_strerror(ret));
		if ((how == TLS_CERTNAME_EMAIL && ret == GNUTLS_SAN_RFC822NAME) ||
		    (how == TLS_CERTNAME_UPN && ret == GNUTLS_SAN_OTHERNAME_MSUSERPRINCIPAL)) {
			/* GnuTLS hands the UPN over already decoded from its
			 * UTF8String, as it does an rfc822Name. */
			if (++found > 1)
				return tls_cert_refuse(c, "more than one %s", how == TLS_CERTNAME_UPN ?
					      "userPrincipalName" : "rfc822Name");
			if (memchr(buf, '\0', len) || len >= sizeof(c->username))
				return tls_cert_refuse(c, "%s", "subjectAltName name contains a NUL byte");
			memcpy(c->username, buf, len);
			c->username[len] = '\0';
		} else if (how == TLS_CERTNAME_UPN && ret == GNUTLS_SAN_OTHERNAME) {
			char oid[64];
			size_t olen = sizeof(oid);
			gnutls_datum_t raw = { buf, (unsigned)len }, val = { NULL, 0 };
			unsigned vtype;

			if (gnutls_x509_crt_get_subject_alt_othername_oid(crt, i, oid, &olen) < 0 ||
			    strcmp(oid, UPN_OID) != 0)
				continue;
			if (++found > 1)
				return tls_cert_refuse(c, "%s", "more than one userPrincipalName");
			ret = gnutls_x509_othername_to_virtual(oid, &raw, &vtype, &val);
			if (ret < 0)
				return tls_cert_refuse(c, "userPrincipalName undecodable: %s", gnutls_strerror(ret));
			if (val.size >= sizeof(c->username) || memchr(val.data, '\0', val.size)) {
				gnutls_free(val.data);
				return tls_cert_refuse(c, "%s", "userPrincipalName too long or contains NUL");
			}
			memcpy(c->username, val.data, val.size);
			c->username[val.size] = '\0';
			gnutls_free(val.data);
		}
	}
	if (found == 0)
		return tls_cert_refuse(c, "%s", how == TLS_CERTNAME_UPN ?
				       "no userPrincipalName in subjectAltName" :
				       "no rfc822Name in subjectAltName");
	return 0;
}

static bool has_client_auth(gnutls_x509_crt_t crt)
{
	unsigned i;

	for (i = 0;; i++) {
		char oid[128];
		size_t len = sizeof(oid);
		int ret = gnutls_x509_crt_get_key_purpose_oid(crt, i, oid, &len, NULL);

		if (ret == GNUTLS_E_SHORT_MEMORY_BUFFER)
			continue;
		if (ret < 0)
			return false;
		if (strcmp(oid, GNUTLS_KP_TLS_WWW_CLIENT) == 0)
			return true;
	}
}

/* A CA certificate (basicConstraints cA=TRUE) signs certificates; it never
 * signs a user in, even when it also carries EKU clientAuth. */
static int refuse_ca(gnutls_x509_crt_t crt, struct tls_client_cert *c)
{
	unsigned critical = 0, ca = 0;
	int pathlen = -1;
	int ret = gnutls_x509_crt_get_basic_constraints(crt, &critical, &ca, &pathlen);

	if (ret == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
		return 0;
	if (ret < 0)
		return tls_cert_refuse(c, "basicConstraints unreadable: %s", gnutls_strerror(ret));
	if (ca)
		return tls_cert_refuse(c, "%s", "a CA certificate (basicConstraints cA=TRUE) is not a "
				       "client certificate");
	return 0;
}

int tls_client_cert_check(const unsigned char *der, size_t len, enum tls_certname how,
			  int64_t now, struct tls_client_cert *c)
{
	gnutls_datum_t d = { (unsigned char *)(uintptr_t)der, (unsigned)len };
	gnutls_x509_crt_t crt = NULL;
	unsigned char buf[64];
	char why[160];
	size_t blen;
	int ret;

	memset(c, 0, sizeof(*c));
	c->present = true;
	if (!der || len == 0 || len > CERT_MAX)
		return tls_cert_refuse(c, "%s", "certificate empty or too large");
	if (gnutls_x509_crt_init(&crt) < 0)
		return tls_cert_refuse(c, "%s", "out of memory");
	ret = gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER);
	if (ret < 0) {
		ret = tls_cert_refuse(c, "unparsable certificate: %s", gnutls_strerror(ret));
		goto out;
	}
	/* Identify it first so that every refusal can be logged with it. */
	blen = sizeof(buf);
	if (gnutls_x509_crt_get_serial(crt, buf, &blen) == 0)
		tls_hex(buf, blen, c->serial, sizeof(c->serial));
	blen = sizeof(c->issuer);
	if (gnutls_x509_crt_get_issuer_dn(crt, c->issuer, &blen) < 0)
		snprintf(c->issuer, sizeof(c->issuer), "(unreadable)");
	blen = 32;
	if (gnutls_fingerprint(GNUTLS_DIG_SHA256, &d, buf, &blen) == 0)
		tls_hex(buf, blen, c->sha256, sizeof(c->sha256));

	/* Chain verification checks the dates too; a wrong flag there must
	 * still not turn into a login. */
	if (gnutls_x509_crt_get_activation_time(crt) == (time_t)-1 ||
	    gnutls_x509_crt_get_expiration_time(crt) == (time_t)-1) {
		ret = tls_cert_refuse(c, "%s", "validity dates unreadable");
		goto out;
	}
	if (gnutls_x509_crt_get_activation_time(crt) > (time_t)now) {
		ret = tls_cert_refuse(c, "%s", "certificate not yet valid");
		goto out;
	}
	if (gnutls_x509_crt_get_expiration_time(crt) < (time_t)now) {
		ret = tls_cert_refuse(c, "%s", "certificate expired");
		goto out;
	}
	if ((ret = refuse_ca(crt, c)) < 0)
		goto out;
	/* GnuTLS treats a certificate without EKU as good for any purpose; we
	 * require clientAuth to be stated. */
	if (!has_client_auth(crt)) {
		ret = tls_cert_refuse(c, "%s", "certificate lacks EKU clientAuth");
		goto out;
	}
	if (tls_crt_policy(crt, why, sizeof why) < 0) {
		ret = tls_cert_refuse(c, "%s", why);
		goto out;
	}
	ret = how == TLS_CERTNAME_CN ? name_from_cn(crt, c) : name_from_san(crt, how, c);
	if (ret == 0 && c->username[0] == '\0')
		ret = tls_cert_refuse(c, "%s", "the name is empty");
out:
	gnutls_x509_crt_deinit(crt);
	return ret;
}
