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

/* One immutable credential set.  A session holds a reference for its whole
 * life because gnutls_credentials_set() keeps a pointer, not a copy. */
struct creds {
	atomic_int refs;
	gnutls_certificate_credentials_t cred;
	gnutls_priority_t prio;
	unsigned depth;		/* client_verify_depth, at least 1 */
	char serial[80];
	struct tls_server_expiry expiry;
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

/* The serial of the first certificate in a PEM file, for the reload log. */
static int cert_serial_file(const char *path, char *out, size_t outlen, int64_t *not_after,
			    char *err, size_t errlen)
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
		tls_hex(serial, slen, out, outlen);
	*not_after = (int64_t)gnutls_x509_crt_get_expiration_time(crts[0]);
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
 * file must verify against the client CA set.  CRL_FILE may be NULL: then only
 * the CAs' expiry times are read into E (as the CRLs' nextUpdate otherwise).
 */
static int crl_check(const char *crl_file, const char *ca_file, struct tls_server_expiry *e,
		     char *err, size_t errlen)
{
	gnutls_datum_t crl_pem = { NULL, 0 }, ca_pem = { NULL, 0 };
	gnutls_x509_crl_t *crls = NULL;
	gnutls_x509_crt_t *cas = NULL;
	unsigned n_crls = 0, n_cas = 0, i, status;
	int ret;

	ret = crl_file ? gnutls_load_file(crl_file, &crl_pem) : 0;
	if (ret >= 0)
		ret = gnutls_load_file(ca_file, &ca_pem);
	if (ret < 0) {
		snprintf(err, errlen, "%s: cannot read: %s", ca_pem.data || !crl_file ? ca_file : crl_file,
			 gnutls_strerror(ret));
		goto out;
	}
	if (crl_file)
		ret = gnutls_x509_crl_list_import2(&crls, &n_crls, &crl_pem, GNUTLS_X509_FMT_PEM, 0);
	if (crl_file && (ret < 0 || n_crls == 0)) {
		snprintf(err, errlen, "%s: no CRL: %s", crl_file, ret < 0 ? gnutls_strerror(ret) : "empty");
		ret = TLS_E_CONFIG;
		goto out;
	}
	ret = gnutls_x509_crt_list_import2(&cas, &n_cas, &ca_pem, GNUTLS_X509_FMT_PEM, 0);
	if (ret < 0 && !crl_file) {
		/* Only the expiry gauges needed the list; GnuTLS's own trust
		 * file loading is what judges the CA file. */
		ret = 0;
		goto out;
	}
	if (ret < 0) {
		snprintf(err, errlen, "%s: %s", ca_file, gnutls_strerror(ret));
		goto out;
	}
	for (i = 0; i < n_cas; i++) {
		/* Kept for /metrics, which counts the days each CA has left. */
		gnutls_datum_t dn = { NULL, 0 };

		if (e->n_cas == TLS_EXPIRY_CAS_MAX)
			break;
		e->cas[e->n_cas].not_after = (int64_t)gnutls_x509_crt_get_expiration_time(cas[i]);
		if (gnutls_x509_crt_get_dn3(cas[i], &dn, 0) >= 0 && dn.data)
			snprintf(e->cas[e->n_cas].subject, sizeof e->cas[0].subject, "%s",
				 (const char *)dn.data);
		gnutls_free(dn.data);
		e->n_cas++;
	}
	if (!crl_file) {
		ret = 0;
		goto out;
	}
	for (i = 0; i < n_crls; i++) {
		time_t next = gnutls_x509_crl_get_next_update(crls[i]);

		if (next != (time_t)-1 && (e->crl_next_update == 0 || next < e->crl_next_update))
			e->crl_next_update = (int64_t)next;
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
	c->depth = f->client_verify_depth ? f->client_verify_depth : 1;
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
		/* GnuTLS codes stop here: callers see a tls_err only. */
		ret = ret == GNUTLS_E_MEMORY_ERROR ? TLS_E_NOMEM : TLS_E_CONFIG;
		goto fail;
	}
	ret = cert_serial_file(f->cert_file, c->serial, sizeof(c->serial),
			       &c->expiry.cert_not_after, err, errlen);
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
	if (crl_check(f->crl_file, f->client_ca_file, &c->expiry, err, errlen) < 0)
		goto fail_config;
	if (f->crl_file) {
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

void tls_server_expiry(const struct tls_server *srv, struct tls_server_expiry *out)
{
	*out = srv->cur->expiry;
}

bool tls_server_resumed(const struct tls_sess *s)
{
	return gnutls_session_is_resumed(tls_sess_gnutls(s)) != 0;
}


/* ---- client certificate checks ------------------------------------------ */

/* More certificates than this in one Certificate message is not a client. */
#define PEER_MAX 16

/* The most telling reason for a verification STATUS that is not zero. */
static int refuse_status(struct tls_client_cert *c, unsigned status)
{
	gnutls_datum_t txt = { NULL, 0 };
	int ret;

	if (status & GNUTLS_CERT_REVOKED)
		return tls_cert_refuse(c, "%s", "certificate revoked (CRL)");
	if (status & GNUTLS_CERT_EXPIRED)
		return tls_cert_refuse(c, "%s", "certificate expired");
	if (status & GNUTLS_CERT_NOT_ACTIVATED)
		return tls_cert_refuse(c, "%s", "certificate not yet valid");
	if (status & GNUTLS_CERT_PURPOSE_MISMATCH)
		return tls_cert_refuse(c, "%s", "certificate not for TLS client authentication");
	if (status & (GNUTLS_CERT_SIGNER_NOT_FOUND | GNUTLS_CERT_SIGNATURE_FAILURE))
		return tls_cert_refuse(c, "%s", "not issued by the client CA set");
	if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &txt, 0) < 0)
		return tls_cert_refuse(c, "%s", "untrusted");
	ret = tls_cert_refuse(c, "untrusted: %s", (const char *)txt.data);
	gnutls_free(txt.data);
	return ret;
}

/*
 * Builds in CHAIN the certificates that are verified: the leaf, then, while
 * DEPTH allows, the certificate the client sent that issued the one before,
 * stopping at the first whose issuer is a configured CA.  A self-signed
 * certificate from the client is never taken (anchors come from client_ca_file
 * only), and anything else it sent is ignored, so with depth 1 the leaf alone
 * is checked against the configured CAs.  *DEEPER tells that the client sent
 * an issuer the depth did not allow, for the refusal reason.
 */
static unsigned build_chain(gnutls_x509_trust_list_t tl, unsigned depth, gnutls_x509_crt_t *crts,
			    unsigned n, gnutls_x509_crt_t *chain, bool *deeper)
{
	bool used[PEER_MAX] = { false };
	unsigned len = 1, i;

	chain[0] = crts[0];
	*deeper = false;
	for (;;) {
		gnutls_x509_crt_t prev = chain[len - 1], anchor = NULL;

		if (gnutls_x509_trust_list_get_issuer(tl, prev, &anchor, 0) >= 0)
			break;
		for (i = 1; i < n; i++)
			if (!used[i] && gnutls_x509_crt_check_issuer(prev, crts[i]) == 1 &&
			    gnutls_x509_crt_check_issuer(crts[i], crts[i]) != 1)
				break;
		if (i == n)
			break;
		if (len >= depth) {
			*deeper = true;
			break;
		}
		used[i] = true;
		chain[len++] = crts[i];
	}
	return len;
}

int tls_server_client_cert(struct tls_sess *s, enum tls_certname how, struct tls_client_cert *c)
{
	gnutls_session_t gs = tls_sess_gnutls(s);
	struct creds *cr = tls_sess_release_arg(s);
	const gnutls_datum_t *peers;
	gnutls_x509_crt_t crts[PEER_MAX], chain[PEER_MAX];
	gnutls_x509_trust_list_t tl = NULL;
	unsigned n = 0, m = 0, len, i, status = 0;
	bool deeper;
	char why[160];
	int ret;
	gnutls_typed_vdata_st vdata[] = {
		{ .type = GNUTLS_DT_KEY_PURPOSE_OID, .data = (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT },
	};

	memset(c, 0, sizeof(*c));
	peers = gnutls_certificate_get_peers(gs, &n);
	if (!peers || n == 0)
		return tls_cert_refuse(c, "%s", "no client certificate");
	/* The leaf on its own: identity for the log, then every rule that needs
	 * no issuer. */
	ret = tls_client_cert_check(peers[0].data, peers[0].size, how, (int64_t)time(NULL), c);
	if (ret < 0)
		return ret;
	if (!cr)
		return tls_cert_refuse(c, "%s", "no client CA set");
	if (n > PEER_MAX)
		return tls_cert_refuse(c, "client sent %u certificates; at most %u are read", n,
				       PEER_MAX);
	for (m = 0; m < n; m++) {
		if (gnutls_x509_crt_init(&crts[m]) < 0) {
			ret = tls_cert_refuse(c, "%s", "out of memory");
			goto out;
		}
		ret = gnutls_x509_crt_import(crts[m], &peers[m], GNUTLS_X509_FMT_DER);
		if (ret < 0) {
			m++;
			ret = tls_cert_refuse(c, "certificate #%u from the client unparsable: %s", m,
					      gnutls_strerror(ret));
			goto out;
		}
	}
	gnutls_certificate_get_trust_list(cr->cred, &tl);
	len = build_chain(tl, cr->depth, crts, n, chain, &deeper);
	/* Intermediates sign users in as much as the leaf does. */
	for (i = 1; i < len; i++) {
		if (tls_crt_policy(chain[i], why, sizeof why) < 0) {
			ret = tls_cert_refuse(c, "intermediate CA #%u: %s", i, why);
			goto out;
		}
	}
	/* The chain against the client CA set and its CRL, validity and purpose,
	 * with the medium profile (no RSA < 2048, no SHA-1) as a second net under
	 * the rules above; the STATUS is what says whether it verified. */
	ret = gnutls_x509_trust_list_verify_crt2(tl, chain, len, vdata, 1,
						 GNUTLS_PROFILE_TO_VFLAGS(GNUTLS_PROFILE_MEDIUM),
						 &status, NULL);
	if (ret < 0) {
		ret = tls_cert_refuse(c, "verification failed: %s", gnutls_strerror(ret));
		goto out;
	}
	if (status != 0) {
		if (deeper && (status & GNUTLS_CERT_SIGNER_NOT_FOUND))
			ret = tls_cert_refuse(c, "the chain needs more than client_verify_depth = %u "
					      "certificate%s below the client CA set", cr->depth,
					      cr->depth == 1 ? "" : "s");
		else
			ret = refuse_status(c, status);
		goto out;
	}
	ret = 0;
out:
	for (i = 0; i < m; i++)
		gnutls_x509_crt_deinit(crts[i]);
	return ret;
}
