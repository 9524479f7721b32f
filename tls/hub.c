/* The reference hub's TLS server side; see tls.h.  Only the credentials and the
 * session setup live here: I/O, transports and errors are session.c's. */
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls/internal.h"

struct tls_hub_creds {
	gnutls_certificate_credentials_t cred;
};

/* The certificate file followed by the CA file, as one PEM chain. */
static int load_chain(const char *cert_file, const char *ca_file, gnutls_datum_t *out,
		      char *err, size_t errlen)
{
	gnutls_datum_t cert = { NULL, 0 }, ca = { NULL, 0 };
	int rc;

	rc = gnutls_load_file(cert_file, &cert);
	if (rc < 0) {
		snprintf(err, errlen, "%s: %s", cert_file, gnutls_strerror(rc));
		return TLS_E_CONFIG;
	}
	if (ca_file) {
		rc = gnutls_load_file(ca_file, &ca);
		if (rc < 0) {
			snprintf(err, errlen, "%s: %s", ca_file, gnutls_strerror(rc));
			gnutls_free(cert.data);
			return TLS_E_CONFIG;
		}
	}
	out->data = gnutls_malloc((size_t)cert.size + ca.size + 2);
	if (!out->data) {
		gnutls_free(cert.data);
		gnutls_free(ca.data);
		return TLS_E_NOMEM;
	}
	memcpy(out->data, cert.data, cert.size);
	out->size = cert.size;
	out->data[out->size++] = '\n';
	if (ca.size)
		memcpy(out->data + out->size, ca.data, ca.size);
	out->size += ca.size;
	gnutls_free(cert.data);
	gnutls_free(ca.data);
	return 0;
}

int tls_hub_creds_load(const char *cert_file, const char *key_file, const char *ca_file,
		       struct tls_hub_creds **out, char *err, size_t errlen)
{
	gnutls_datum_t chain = { NULL, 0 }, key = { NULL, 0 };
	struct tls_hub_creds *c;
	int rc;

	rc = load_chain(cert_file, ca_file, &chain, err, errlen);
	if (rc < 0)
		return rc;
	rc = gnutls_load_file(key_file, &key);
	if (rc < 0) {
		snprintf(err, errlen, "%s: %s", key_file, gnutls_strerror(rc));
		gnutls_free(chain.data);
		return TLS_E_CONFIG;
	}
	rc = TLS_E_NOMEM;
	c = calloc(1, sizeof(*c));
	if (!c || gnutls_certificate_allocate_credentials(&c->cred) < 0) {
		free(c);
		goto out;
	}
	rc = gnutls_certificate_set_x509_key_mem(c->cred, &chain, &key, GNUTLS_X509_FMT_PEM);
	if (rc < 0) {
		snprintf(err, errlen, "%s / %s: %s", cert_file, key_file, gnutls_strerror(rc));
		tls_hub_creds_free(c);
		rc = TLS_E_CONFIG;
		goto out;
	}
	*out = c;
	rc = 0;
out:
	gnutls_memset(key.data, 0, key.size);
	gnutls_free(key.data);
	gnutls_free(chain.data);
	return rc;
}

void tls_hub_creds_free(struct tls_hub_creds *c)
{
	if (!c)
		return;
	gnutls_certificate_free_credentials(c->cred);
	free(c);
}

int tls_hub_server_new(struct tls_hub_creds *c, struct tls_sess **out)
{
	gnutls_session_t gs;
	int rc;

	rc = gnutls_init(&gs, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
	if (rc < 0)
		return TLS_E_NOMEM;
	rc = gnutls_priority_set(gs, tls_priority());
	if (rc >= 0)
		rc = gnutls_credentials_set(gs, GNUTLS_CRD_CERTIFICATE, c->cred);
	if (rc < 0) {
		gnutls_deinit(gs);
		return TLS_E_CONFIG;
	}
	/* Agents prove themselves with a bearer token, never a certificate. */
	gnutls_certificate_server_set_request(gs, GNUTLS_CERT_IGNORE);
	return tls_sess_wrap(gs, NULL, out);
}
