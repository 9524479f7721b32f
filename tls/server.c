/*
 * The front-facing HTTPS server's TLS side: reloadable credential sets,
 * session tickets, and the client-certificate checks.  See tls.h.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <gnutls/x509-ext.h>

#include "tls/internal.h"
#include "tls/tls.h"

/*
 * TLS 1.2 and 1.3 only, AEAD ciphers with forward secrecy, safe renegotiation
 * required (GnuTLS has no TLS compression since 3.6, so nothing to disable).
 */
static const char server_priority[] =
	"SECURE128:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:"
	"-CIPHER-ALL:+AES-256-GCM:+CHACHA20-POLY1305:+AES-128-GCM:"
	"-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:"
	"%SAFE_RENEGOTIATION:%SERVER_PRECEDENCE";

/* GnuTLS derives the ticket encryption keys from the master key and rotates
 * them once per this period, keeping the previous one for decryption. */
#define TICKET_ROTATION_S 3600

#define UPN_OID "1.3.6.1.4.1.311.20.2.3"

/* One immutable credential set.  A session holds a reference for its whole
 * life because gnutls_credentials_set() keeps a pointer, not a copy. */
struct creds {
	atomic_int refs;
	gnutls_certificate_credentials_t cred;
	gnutls_priority_t prio;
	char serial[80];
};

struct tls_server {
	struct creds *cur;
	gnutls_datum_t ticket_key;
};

static void creds_unref(void *arg)
{
	struct creds *c = arg;

	if (!c || atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	gnutls_certificate_free_credentials(c->cred);
	gnutls_priority_deinit(c->prio);
	free(c);
}

static void hex(const unsigned char *in, size_t len, char *out, size_t outlen)
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

/* The serial of the first certificate in a PEM file, for the reload log. */
static int cert_serial_file(const char *path, char *out, size_t outlen, char *err, size_t errlen)
{
	gnutls_datum_t pem = { NULL, 0 };
	gnutls_x509_crt_t *crts = NULL;
	unsigned n = 0, i;
	unsigned char serial[64];
	size_t slen = sizeof(serial);
	int ret;

	ret = gnutls_load_file(path, &pem);
	if (ret < 0) {
		snprintf(err, errlen, "%s: cannot read: %s", path, gnutls_strerror(ret));
		return TLS_E_CONFIG;
	}
	ret = gnutls_x509_crt_list_import2(&crts, &n, &pem, GNUTLS_X509_FMT_PEM, 0);
	gnutls_free(pem.data);
	if (ret < 0 || n == 0) {
		snprintf(err, errlen, "%s: no certificate: %s", path,
			 ret < 0 ? gnutls_strerror(ret) : "empty");
		return TLS_E_CONFIG;
	}
	ret = gnutls_x509_crt_get_serial(crts[0], serial, &slen);
	if (ret == 0)
		hex(serial, slen, out, outlen);
	for (i = 0; i < n; i++)
		gnutls_x509_crt_deinit(crts[i]);
	gnutls_free(crts);
	if (ret < 0) {
		snprintf(err, errlen, "%s: bad serial: %s", path, gnutls_strerror(ret));
		return TLS_E_CONFIG;
	}
	return 0;
}

/*
 * GnuTLS accepts a CRL from any issuer and simply never applies it, so a CRL
 * swapped for a foreign one would silently stop revocation.  Every CRL in the
 * file must verify against the client CA set.
 */
static int crl_check(const char *crl_file, const char *ca_file, char *err, size_t errlen)
{
	gnutls_datum_t crl_pem = { NULL, 0 }, ca_pem = { NULL, 0 };
	gnutls_x509_crl_t *crls = NULL;
	gnutls_x509_crt_t *cas = NULL;
	unsigned n_crls = 0, n_cas = 0, i, status;
	int ret;

	ret = gnutls_load_file(crl_file, &crl_pem);
	if (ret >= 0)
		ret = gnutls_load_file(ca_file, &ca_pem);
	if (ret < 0) {
		snprintf(err, errlen, "%s: cannot read: %s", ca_pem.data ? ca_file : crl_file,
			 gnutls_strerror(ret));
		goto out;
	}
	ret = gnutls_x509_crl_list_import2(&crls, &n_crls, &crl_pem, GNUTLS_X509_FMT_PEM, 0);
	if (ret < 0 || n_crls == 0) {
		snprintf(err, errlen, "%s: no CRL: %s", crl_file, ret < 0 ? gnutls_strerror(ret) : "empty");
		ret = TLS_E_CONFIG;
		goto out;
	}
	ret = gnutls_x509_crt_list_import2(&cas, &n_cas, &ca_pem, GNUTLS_X509_FMT_PEM, 0);
	if (ret < 0) {
		snprintf(err, errlen, "%s: %s", ca_file, gnutls_strerror(ret));
		goto out;
	}
	for (i = 0; i < n_crls; i++) {
		status = 0;
		ret = gnutls_x509_crl_verify(crls[i], cas, n_cas, 0, &status);
		if (ret < 0 || status != 0) {
			snprintf(err, errlen, "%s: CRL #%u is not signed by a CA in %s", crl_file, i + 1,
				 ca_file);
			ret = TLS_E_CONFIG;
			goto out;
		}
	}
	ret = 0;
out:
	for (i = 0; i < n_crls; i++)
		gnutls_x509_crl_deinit(crls[i]);
	for (i = 0; i < n_cas; i++)
		gnutls_x509_crt_deinit(cas[i]);
	gnutls_free(crls);
	gnutls_free(cas);
	gnutls_free(crl_pem.data);
	gnutls_free(ca_pem.data);
	return ret < 0 ? TLS_E_CONFIG : 0;
}

static int creds_load(const struct tls_server_files *f, struct creds **out, char *err, size_t errlen)
{
	struct creds *c;
	const char *where = NULL;
	int ret;

	c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return TLS_E_NOMEM;
	}
	atomic_init(&c->refs, 1);
	ret = gnutls_certificate_allocate_credentials(&c->cred);
	if (ret < 0) {
		free(c);
		snprintf(err, errlen, "%s", gnutls_strerror(ret));
		return TLS_E_NOMEM;
	}
	ret = gnutls_priority_init2(&c->prio, server_priority, &where, 0);
	if (ret < 0) {
		snprintf(err, errlen, "priority string at '%s': %s", where ? where : "?",
			 gnutls_strerror(ret));
		goto fail;
	}
	ret = cert_serial_file(f->cert_file, c->serial, sizeof(c->serial), err, errlen);
	if (ret < 0)
		goto fail_config;
	ret = gnutls_certificate_set_x509_key_file2(c->cred, f->cert_file, f->key_file,
						    GNUTLS_X509_FMT_PEM, NULL, 0);
	if (ret < 0) {
		/* GNUTLS_E_CERTIFICATE_KEY_MISMATCH names the usual mistake. */
		snprintf(err, errlen, "%s / %s: %s", f->cert_file, f->key_file, gnutls_strerror(ret));
		goto fail_config;
	}
	/* The client CA file is the only trust anchor: the system store is never
	 * added, so no public CA can vouch for a user. */
	ret = gnutls_certificate_set_x509_trust_file(c->cred, f->client_ca_file, GNUTLS_X509_FMT_PEM);
	if (ret <= 0) {
		snprintf(err, errlen, "%s: %s", f->client_ca_file,
			 ret == 0 ? "no CA certificate in file" : gnutls_strerror(ret));
		goto fail_config;
	}
	if (f->crl_file) {
		if (crl_check(f->crl_file, f->client_ca_file, err, errlen) < 0)
			goto fail_config;
		ret = gnutls_certificate_set_x509_crl_file(c->cred, f->crl_file, GNUTLS_X509_FMT_PEM);
		if (ret < 0) {
			snprintf(err, errlen, "%s: %s", f->crl_file, gnutls_strerror(ret));
			goto fail_config;
		}
	}
	*out = c;
	return 0;
fail_config:
	ret = TLS_E_CONFIG;
fail:
	creds_unref(c);
	return ret < 0 ? ret : TLS_E_CONFIG;
}

int tls_server_new(const struct tls_server_files *f, struct tls_server **out, char *err, size_t errlen)
{
	struct tls_server *srv;
	int ret;

	srv = calloc(1, sizeof(*srv));
	if (!srv) {
		snprintf(err, errlen, "out of memory");
		return TLS_E_NOMEM;
	}
	ret = creds_load(f, &srv->cur, err, errlen);
	if (ret < 0) {
		free(srv);
		return ret;
	}
	ret = gnutls_session_ticket_key_generate(&srv->ticket_key);
	if (ret < 0) {
		snprintf(err, errlen, "session ticket key: %s", gnutls_strerror(ret));
		creds_unref(srv->cur);
		free(srv);
		return TLS_E_NOMEM;
	}
	*out = srv;
	return 0;
}

int tls_server_reload(struct tls_server *srv, const struct tls_server_files *f, char *err, size_t errlen)
{
	struct creds *c;
	int ret;

	ret = creds_load(f, &c, err, errlen);
	if (ret < 0)
		return ret;
	creds_unref(srv->cur);
	srv->cur = c;
	return 0;
}

void tls_server_free(struct tls_server *srv)
{
	if (!srv)
		return;
	creds_unref(srv->cur);
	if (srv->ticket_key.data) {
		gnutls_memset(srv->ticket_key.data, 0, srv->ticket_key.size);
		gnutls_free(srv->ticket_key.data);
	}
	free(srv);
}

const char *tls_server_serial(const struct tls_server *srv)
{
	return srv->cur->serial;
}

int tls_server_session(struct tls_server *srv, bool request_cert, struct tls_sess **out)
{
	struct creds *c = srv->cur;
	gnutls_session_t gs;
	int ret;

	ret = gnutls_init(&gs, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
	if (ret < 0)
		return TLS_E_NOMEM;
	ret = gnutls_priority_set(gs, c->prio);
	if (ret >= 0)
		ret = gnutls_credentials_set(gs, GNUTLS_CRD_CERTIFICATE, c->cred);
	if (ret >= 0)
		ret = gnutls_session_ticket_enable_server(gs, &srv->ticket_key);
	if (ret < 0) {
		gnutls_deinit(gs);
		return TLS_E_CONFIG;
	}
	gnutls_db_set_cache_expiration(gs, TICKET_ROTATION_S);
	/* Outside the ranges no CertificateRequest is sent at all, so a browser
	 * never shows a certificate picker there. */
	gnutls_certificate_server_set_request(gs, request_cert ? GNUTLS_CERT_REQUEST
							      : GNUTLS_CERT_IGNORE);
	/* tls_sess_wrap() owns GS from here on, also when it fails. */
	ret = tls_sess_wrap(gs, NULL, out);
	if (ret < 0)
		return ret;
	atomic_fetch_add(&c->refs, 1);
	tls_sess_set_release(*out, creds_unref, c);
	return 0;
}

bool tls_server_resumed(const struct tls_sess *s)
{
	return gnutls_session_is_resumed(tls_sess_gnutls(s)) != 0;
}

/* ---- client certificate checks ------------------------------------------ */

static int refuse(struct tls_client_cert *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int refuse(struct tls_client_cert *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
	va_end(ap);
	c->username[0] = '\0';
	return TLS_E_VERIFY;
}

/* Exactly one CN, no NUL inside it. */
static int name_from_cn(gnutls_x509_crt_t crt, struct tls_client_cert *c)
{
	char buf[sizeof(c->username)];
	size_t len = sizeof(buf);
	int ret;

	ret = gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, buf, &len);
	if (ret == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
		return refuse(c, "%s", "subject has no CN");
	if (ret < 0)
		return refuse(c, "subject CN unreadable or too long: %s", gnutls_strerror(ret));
	/* GnuTLS gives the value in RFC 4514 form: a string it cannot show (one
	 * with a NUL byte, or not a string type) comes back as "#" and hex, and
	 * special characters come back escaped with "\".  Neither is a name. */
	if (memchr(buf, '\0', len) || buf[0] == '#')
		return refuse(c, "%s", "subject CN is not a plain string (NUL byte or binary value)");
	if (memchr(buf, '\\', len))
		return refuse(c, "%s", "subject CN contains characters that need escaping");
	{
		char other[8];
		size_t olen = sizeof(other);

		ret = gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 1, 0, other, &olen);
		if (ret != GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
			return refuse(c, "%s", "subject has more than one CN");
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
				return refuse(c, "%s", "subjectAltName too long");
			continue;	/* not a name we map; size only matters for ours */
		}
		if (ret < 0)
			return refuse(c, "subjectAltName unreadable: %s", gnutls_strerror(ret));
		if ((how == TLS_CERTNAME_EMAIL && ret == GNUTLS_SAN_RFC822NAME) ||
		    (how == TLS_CERTNAME_UPN && ret == GNUTLS_SAN_OTHERNAME_MSUSERPRINCIPAL)) {
			/* GnuTLS hands the UPN over already decoded from its
			 * UTF8String, as it does an rfc822Name. */
			if (++found > 1)
				return refuse(c, "more than one %s", how == TLS_CERTNAME_UPN ?
					      "userPrincipalName" : "rfc822Name");
			if (memchr(buf, '\0', len) || len >= sizeof(c->username))
				return refuse(c, "%s", "subjectAltName name contains a NUL byte");
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
				return refuse(c, "%s", "more than one userPrincipalName");
			ret = gnutls_x509_othername_to_virtual(oid, &raw, &vtype, &val);
			if (ret < 0)
				return refuse(c, "userPrincipalName undecodable: %s", gnutls_strerror(ret));
			if (val.size >= sizeof(c->username) || memchr(val.data, '\0', val.size)) {
				gnutls_free(val.data);
				return refuse(c, "%s", "userPrincipalName too long or contains NUL");
			}
			memcpy(c->username, val.data, val.size);
			c->username[val.size] = '\0';
			gnutls_free(val.data);
		}
	}
	if (found == 0)
		return refuse(c, "%s", how == TLS_CERTNAME_UPN ? "no userPrincipalName in subjectAltName"
							   : "no rfc822Name in subjectAltName");
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

int tls_server_client_cert(struct tls_sess *s, enum tls_certname how, struct tls_client_cert *c)
{
	gnutls_session_t gs = tls_sess_gnutls(s);
	const gnutls_datum_t *chain;
	unsigned n = 0, status = 0;
	gnutls_x509_crt_t crt = NULL;
	unsigned char buf[64];
	size_t len;
	time_t now = time(NULL);
	int ret;
	gnutls_typed_vdata_st vdata[] = {
		{ .type = GNUTLS_DT_KEY_PURPOSE_OID, .data = (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT },
	};

	memset(c, 0, sizeof(*c));
	chain = gnutls_certificate_get_peers(gs, &n);
	if (!chain || n == 0)
		return refuse(c, "%s", "no client certificate");
	c->present = true;

	/* Identify the leaf first so that every refusal can be logged with it. */
	if (gnutls_x509_crt_init(&crt) < 0)
		return refuse(c, "%s", "out of memory");
	ret = gnutls_x509_crt_import(crt, &chain[0], GNUTLS_X509_FMT_DER);
	if (ret < 0) {
		ret = refuse(c, "unparsable certificate: %s", gnutls_strerror(ret));
		goto out;
	}
	len = sizeof(buf);
	if (gnutls_x509_crt_get_serial(crt, buf, &len) == 0)
		hex(buf, len, c->serial, sizeof(c->serial));
	len = sizeof(c->issuer);
	if (gnutls_x509_crt_get_issuer_dn(crt, c->issuer, &len) < 0)
		snprintf(c->issuer, sizeof(c->issuer), "(unreadable)");
	len = 32;
	if (gnutls_fingerprint(GNUTLS_DIG_SHA256, &chain[0], buf, &len) == 0)
		hex(buf, len, c->sha256, sizeof(c->sha256));

	/* The chain against the client CA set and its CRL, validity and purpose;
	 * the STATUS is what says whether it verified. */
	ret = gnutls_certificate_verify_peers(gs, vdata, 1, &status);
	if (ret < 0) {
		ret = refuse(c, "verification failed: %s", gnutls_strerror(ret));
		goto out;
	}
	if (status != 0) {
		gnutls_datum_t txt = { NULL, 0 };

		if (status & GNUTLS_CERT_REVOKED)
			ret = refuse(c, "%s", "certificate revoked (CRL)");
		else if (status & GNUTLS_CERT_EXPIRED)
			ret = refuse(c, "%s", "certificate expired");
		else if (status & GNUTLS_CERT_NOT_ACTIVATED)
			ret = refuse(c, "%s", "certificate not yet valid");
		else if (status & GNUTLS_CERT_PURPOSE_MISMATCH)
			ret = refuse(c, "%s", "certificate not for TLS client authentication");
		else if (status & (GNUTLS_CERT_SIGNER_NOT_FOUND | GNUTLS_CERT_SIGNATURE_FAILURE))
			ret = refuse(c, "%s", "not issued by the client CA set");
		else if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &txt, 0) == 0) {
			ret = refuse(c, "untrusted: %s", (const char *)txt.data);
			gnutls_free(txt.data);
		} else
			ret = refuse(c, "%s", "untrusted");
		goto out;
	}
	/* Belt and braces: verification already checked these, but a wrong
	 * flag somewhere must not turn into a login. */
	if (gnutls_x509_crt_get_activation_time(crt) > now) {
		ret = refuse(c, "%s", "certificate not yet valid");
		goto out;
	}
	if (gnutls_x509_crt_get_expiration_time(crt) < now) {
		ret = refuse(c, "%s", "certificate expired");
		goto out;
	}
	/* GnuTLS treats a certificate without EKU as good for any purpose; we
	 * require clientAuth to be stated. */
	if (!has_client_auth(crt)) {
		ret = refuse(c, "%s", "certificate lacks EKU clientAuth");
		goto out;
	}
	ret = how == TLS_CERTNAME_CN ? name_from_cn(crt, c) : name_from_san(crt, how, c);
out:
	gnutls_x509_crt_deinit(crt);
	return ret;
}
