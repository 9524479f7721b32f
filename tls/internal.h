/*
 * tls/ private header: only files under tls/ include it.  It lets server.c build
 * server sessions that share session.c's I/O, transports and error mapping.
 */
#ifndef DIRBRIDGE_TLS_INTERNAL_H
#define DIRBRIDGE_TLS_INTERNAL_H

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <libtasn1.h>

#include "tls/tls.h"

/* TLS 1.2 and 1.3 only, with RFC 5746 secure renegotiation required; the
 * medium verification profile refuses peer certificates below 112-bit
 * security (RSA < 2048) or signed with SHA-1. */
#define TLS_PRIORITY \
	"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:%SAFE_RENEGOTIATION:%PROFILE_MEDIUM"

/* The priority cache built from TLS_PRIORITY by tls_global_init(). */
gnutls_priority_t tls_priority(void);

/* Called once when the handshake completes, before tls_handshake() returns 0;
 * a negative return (a tls_err) fails the handshake.  Servers use it to check a
 * client certificate; set the reason with tls_set_error(). */
typedef int (*tls_post_handshake_fn)(struct tls_sess *s, void *arg);

/*
 * Wraps a configured session (credentials, priority, flags set; transport not
 * yet) into a struct tls_sess, which owns GS from then on, also on failure.
 * CRED, when not NULL, is freed by tls_free(); pass NULL for credentials shared
 * between sessions.  Init GS with GNUTLS_NONBLOCK.
 */
int tls_sess_wrap(gnutls_session_t gs, gnutls_certificate_credentials_t cred,
		  struct tls_sess **out);
/* FN(ARG) runs in tls_free() after the GnuTLS session is gone: server.c drops
 * its reference on a shared, refcounted credential set there. */
void tls_sess_set_release(struct tls_sess *s, void (*fn)(void *arg), void *arg);
/* The ARG given to tls_sess_set_release(), or NULL. */
void *tls_sess_release_arg(const struct tls_sess *s);
void tls_sess_set_post_handshake(struct tls_sess *s, tls_post_handshake_fn fn, void *arg);
gnutls_session_t tls_sess_gnutls(const struct tls_sess *s);

/* The one place GnuTLS codes become tls_err: RC >= 0 passes through; a failure
 * records "OP: reason" as the session's last error. */
int tls_map(struct tls_sess *s, int rc, const char *op);
/* Records the reason for the last failure, shown by tls_last_error(). */
void tls_set_error(struct tls_sess *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The verification status as text, e.g. "certificate signer not trusted". */
void tls_status_text(unsigned status, char *buf, size_t size);

/* ---- policy.c: keys and signatures of certificates that name users ---- */
/* Each returns 0, or TLS_E_VERIFY with WHY completing a sentence (e.g. "is RSA
 * 1024 bits; at least 2048 needed").  Keys: RSA >= 2048 or EC P-256/P-384. */
int tls_key_policy(gnutls_pubkey_t pub, char *why, size_t len);
/* Signatures: SHA-2/SHA-3 hashes or EdDSA; SHA-1, MD5 and unknown refused. */
int tls_sig_policy(gnutls_x509_crt_t crt, char *why, size_t len);
/* Both on CRT; WHY is a whole phrase ("key is RSA 1024 bits; ..."). */
int tls_crt_policy(gnutls_x509_crt_t crt, char *why, size_t len);

/* ---- certname.c ---- */
/* Lowercase hex of IN into OUT, truncated to fit OUTLEN with its NUL. */
void tls_hex(const unsigned char *in, size_t len, char *out, size_t outlen);
/* Sets C->reason from FMT, clears C->username and returns TLS_E_VERIFY. */
int tls_cert_refuse(struct tls_client_cert *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* ---- pki.c: the CA directory, shared by pki_issue.c and pki_crl.c ---- */
/* Certificates start a little in the past so a client whose clock lags the
 * CA's by a few minutes does not see them as not yet valid. */
#define PKI_BACKDATE 300
#define PKI_CRL_DAYS 7
#define PKI_DAY 86400		/* seconds */

struct tls_pki {
	char *dir;
	int lock_fd;
	bool write;
	/* A worker's handle (tls_pki_worker): own CA copies, no index, no lock;
	 * it only makes certificates, which the owning handle records. */
	bool worker;
	gnutls_x509_crt_t ca;
	gnutls_x509_privkey_t ca_xkey;
	gnutls_privkey_t ca_key;
	int64_t ca_not_after;
	uint64_t crl_number;		/* the last one issued */
	struct tls_pki_cert *certs;
	size_t n, cap;
	bool dirty, revoked;
	char err[512];
};

/* Records the reason in P (for tls_pki_error()) and returns RC. */
int tls_pki_fail(struct tls_pki *p, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* GnuTLS failures: out of memory or a bad key/certificate ("WHAT: reason"). */
int tls_pki_gt_fail(struct tls_pki *p, int grc, const char *what);
/* "DIR/NAME" for P's directory (or DIR when P is NULL), malloc'd; NULL when out of memory. */
char *tls_pki_path(const struct tls_pki *p, const char *dir, const char *name);
/* Appends C to the index in memory (P->dirty set). */
int tls_pki_index_add(struct tls_pki *p, const struct tls_pki_cert *c);
/* Writes index.json atomically. */
int tls_pki_index_save(struct tls_pki *p);
/* EXP(OBJ) in PEM into OUT (gnutls_free it); EXP is a gnutls_*_export2 wrapper. */
int tls_pki_export_pem(struct tls_pki *p, int (*exp)(void *, gnutls_x509_crt_fmt_t, gnutls_datum_t *),
		       void *obj, gnutls_datum_t *out);

/* ---- pki_crl.c: the CRL is built with libtasn1 from tls/pkix_crl.asn ---- */
/* The module compiled by asn1Parser (tls/pkix_crl_asn1.c, generated). */
extern const asn1_static_node pkix_crl_asn1_tab[];

#endif
