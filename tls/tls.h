/*
 * tls/ — certificates and GnuTLS.  Prefix: tls_.  Nothing outside tls/ includes
 * <gnutls/...> for TLS sessions; callers see opaque sessions whose I/O never
 * blocks: every call returns TLS_E_AGAIN when the transport would block, and the
 * caller retries when its libuv handle reports readiness.
 *
 * Sections of this header are owned by separate source files:
 *   session.c  — sessions (client and server), transports, verification
 *   server.c   — the front-facing server credentials and client-cert checks
 *   certname.c — the checks on one client certificate alone (pure, on DER)
 *   pki.c      — CA, issuing, PKCS#12, CSR, CRL (dirbridge-cert); the CRL is
 *                built with libtasn1 from tls/pkix_crl.asn (pki_crl.c)
 *   pki_user.c — how dirbridge-cert compares user names
 *   hub.c      — the reference hub's agent endpoint (dirbridge-hub)
 *   check.c    — configuration checks on certificate, key, CA and CRL files
 */
#ifndef DIRBRIDGE_TLS_H
#define DIRBRIDGE_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* tls_ codes lie in -1001..-1099: disjoint from -errno (libuv, config) and from
 * every other module's space (dir_ -2001.., net_ -3001..), so a code passed up
 * through several layers still names the module that failed. */
enum tls_err {
	TLS_OK = 0,
	TLS_E_AGAIN = -1001,	/* would block: wait for the transport, call again */
	TLS_E_VERIFY = -1002,	/* peer certificate not trusted / wrong name */
	TLS_E_CLOSED = -1003,	/* peer closed the session */
	TLS_E_PROTO = -1004,	/* TLS protocol failure */
	TLS_E_CONFIG = -1005,	/* bad credentials / files */
	TLS_E_NOMEM = -1006,
	TLS_E_IO = -1007,		/* transport failure */
};
const char *tls_strerror(int err);

/* Must be called once before any other tls_ function (gnutls_global_init). */
int tls_global_init(void);

/* ---- session.c: sessions ---------------------------------------------- */

struct tls_sess;

/* Transport for sessions not on a plain fd.  pull: bytes read, 0 at EOF, or -1
 * with errno EAGAIN when nothing is buffered yet.  push: bytes taken or -1. */
typedef ssize_t (*tls_push_fn)(void *ctx, const void *buf, size_t len);
typedef ssize_t (*tls_pull_fn)(void *ctx, void *buf, size_t len);

struct tls_client_opts {
	const char *ca_file;	/* trust only these; never the system store */
	const char *hostname;	/* checked against the certificate; also SNI */
	const char *cert_file;	/* optional client certificate (SASL EXTERNAL) */
	const char *key_file;
	const char *alpn;	/* optional, e.g. "http/1.1" */
};
int tls_client_new(const struct tls_client_opts *o, struct tls_sess **out);

/* Exactly one of these before tls_handshake(). */
int tls_set_fd(struct tls_sess *s, int fd);	/* non-blocking socket */
void tls_set_transport(struct tls_sess *s, void *ctx, tls_push_fn push, tls_pull_fn pull);

/* 0 when the handshake is complete and, for clients, the server certificate
 * verified (status zero, hostname matched); TLS_E_AGAIN; or a negative error
 * with a reason available from tls_last_error(). */
int tls_handshake(struct tls_sess *s);
/* After TLS_E_AGAIN: whether the session waits to write (else to read). */
bool tls_want_write(const struct tls_sess *s);
/* >0 bytes, 0 at clean close, TLS_E_AGAIN, or a negative error.  After
 * TLS_E_AGAIN from tls_send() call it again with the same buffer and length;
 * it may take fewer bytes than LEN (one record at most). */
ssize_t tls_recv(struct tls_sess *s, void *buf, size_t len);
ssize_t tls_send(struct tls_sess *s, const void *buf, size_t len);
/* Bytes already decrypted and buffered inside the session. */
size_t tls_pending(const struct tls_sess *s);
/* Sends close_notify without waiting for the peer's (best effort, one try);
 * the caller still calls tls_free(). */
void tls_bye(struct tls_sess *s);
void tls_free(struct tls_sess *s);
const char *tls_last_error(const struct tls_sess *s);
/* Negotiated protocol, e.g. "TLS1.3", for logs. */
const char *tls_version(const struct tls_sess *s);
/* Security strength in bits (for SASL's external SSF). */
unsigned tls_strength(const struct tls_sess *s);
/* After a completed handshake: the notAfter (Unix time) of the peer's own
 * certificate; TLS_E_VERIFY when it sent none. */
int tls_peer_not_after(const struct tls_sess *s, int64_t *not_after);

/* ---- server.c: the front-facing HTTPS server ------------------------------ */

/*
 * A server context holds the current credential set (server certificate and
 * chain, key, client CA set, CRL) and the session-ticket master key.  Sessions
 * hold a reference to the set they started with, so a reload never disturbs
 * open connections; only new handshakes see the new set.
 */
struct tls_server;

struct tls_server_files {
	const char *cert_file;		/* server certificate followed by its chain */
	const char *key_file;
	const char *client_ca_file;	/* the only trust for client certificates */
	const char *crl_file;		/* NULL: no CRL */
	/* Certificates a client chain may have below a CA in client_ca_file
	 * (nginx's ssl_verify_depth): 1 (and 0) means the leaf must be signed by
	 * one of them directly and certificates the client adds are ignored. */
	unsigned client_verify_depth;
};

/* Which certificate field names the directory user. */
enum tls_certname { TLS_CERTNAME_CN, TLS_CERTNAME_UPN, TLS_CERTNAME_EMAIL };

/* On failure ERR gets a one-line reason naming the file. */
int tls_server_new(const struct tls_server_files *f, struct tls_server **out,
		   char *err, size_t errlen);
/* Loads every file anew; on any error keeps the old set and returns the reason. */
int tls_server_reload(struct tls_server *srv, const struct tls_server_files *f,
		      char *err, size_t errlen);
void tls_server_free(struct tls_server *srv);
/* Hex serial of the current server certificate, for logs. */
const char *tls_server_serial(const struct tls_server *srv);

/* A server session on the current set.  REQUEST_CERT is decided by the caller
 * from the TCP peer address before the handshake; without it no
 * CertificateRequest is ever sent.  Use tls_set_transport() next. */
int tls_server_session(struct tls_server *srv, bool request_cert, struct tls_sess **out);

/* The outcome of the client-certificate checks of one handshake. */
struct tls_client_cert {
	bool present;		/* the client sent a certificate */
	char username[257];	/* set only when every check passed */
	char serial[80];	/* hex; set whenever a certificate was parsed */
	char issuer[512];	/* RFC 4514 DN */
	char sha256[65];	/* hex fingerprint of the leaf (DER) */
	char reason[192];	/* why the certificate was refused */
};

/*
 * After a completed handshake: 0 when the peer presented a certificate that
 * passes tls_client_cert_check() and chains to the client CA set within
 * client_verify_depth, every intermediate meeting the same key and signature
 * rules, none revoked by the CRL.  TLS_E_VERIFY with c->reason otherwise
 * (c->present tells whether there was a certificate at all).  Nothing is
 * cached: a resumed session is checked again against the current CRL.  The
 * caller still validates the name against the directory.
 */
int tls_server_client_cert(struct tls_sess *s, enum tls_certname how,
			   struct tls_client_cert *c);

/* ---- certname.c: one client certificate on its own ---------------------- */

/*
 * The checks on a client certificate that need neither session nor chain, on
 * DER (LEN bytes, hostile): fills c->serial, c->issuer and c->sha256 as soon as
 * it parses, then refuses with TLS_E_VERIFY and c->reason a certificate outside
 * its validity at NOW (Unix time), a CA certificate (basicConstraints cA=TRUE),
 * one without EKU clientAuth, a key other than RSA >= 2048 or EC P-256/P-384
 * (the policy dirbridge-cert signs CSRs by), a signature with SHA-1 or weaker,
 * and one that does not name exactly one user by HOW (one CN that is a plain
 * string without NUL, or one UPN / rfc822Name).  On 0, c->username is the name.
 */
int tls_client_cert_check(const unsigned char *der, size_t len, enum tls_certname how,
			  int64_t now, struct tls_client_cert *c);
/* Whether the session was resumed from a ticket. */
bool tls_server_resumed(const struct tls_sess *s);

/* Why a session failed, as a short fixed word for metric labels. */
enum tls_fail {
	TLS_FAIL_OTHER,
	TLS_FAIL_CLOSED,	/* the peer went away mid-handshake */
	TLS_FAIL_IO,		/* the transport failed */
	TLS_FAIL_ALERT,		/* the peer sent a fatal alert */
	TLS_FAIL_NO_SHARED_CIPHER,	/* no cipher suite, group or key exchange in common */
	TLS_FAIL_VERSION,	/* a TLS version we do not speak */
	TLS_FAIL_MALFORMED,	/* a message that does not parse or was not expected */
	TLS_FAIL_VERIFY,	/* a certificate was refused */
	TLS_FAIL_COUNT
};
extern const char *const tls_fail_names[TLS_FAIL_COUNT];
enum tls_fail tls_fail_reason(const struct tls_sess *s);

/* When the current credential set's certificates run out, in seconds since
 * the epoch: the front certificate, each client CA (its subject DN), and the
 * earliest nextUpdate of the CRLs (0 without a CRL or when none is set). */
#define TLS_EXPIRY_CAS_MAX 32
struct tls_server_expiry {
	int64_t cert_not_after;
	size_t n_cas;		/* at most TLS_EXPIRY_CAS_MAX are listed */
	struct {
		char subject[256];
		int64_t not_after;
	} cas[TLS_EXPIRY_CAS_MAX];
	int64_t crl_next_update;
};
void tls_server_expiry(const struct tls_server *srv, struct tls_server_expiry *out);

/* ---- check.c: configuration checks ---------------------------------------- */

/* Each returns 0 or TLS_E_CONFIG with one sentence in ERRBUF naming the file,
 * what is wrong and how to fix it.  Key material read is wiped. */
/* The chain in CERT_FILE parses (leaf first, each issuer after it), the key in
 * KEY_FILE parses unencrypted, and it is the key of the leaf certificate. */
int tls_check_keypair(const char *cert_file, const char *key_file, char *errbuf, size_t errlen);
/* CA_FILE holds at least one certificate (PEM, or one DER certificate). */
int tls_check_ca_file(const char *ca_file, char *errbuf, size_t errlen);
/* CRL_FILE holds at least one CRL; with CA_FILE, each is signed by one of its CAs. */
int tls_check_crl_file(const char *crl_file, const char *ca_file, char *errbuf, size_t errlen);
/* dirbridge-check: the notAfter (Unix time) of the first certificate in FILE
 * and the earliest notAfter of all of them (the chain, or a CA set). */
int tls_cert_file_dates(const char *file, int64_t *leaf_not_after, int64_t *min_not_after,
			char *errbuf, size_t errlen);
/* The notAfter of one DER certificate (LEN bytes); TLS_E_CONFIG when it
 * does not parse. */
int tls_der_not_after(const unsigned char *der, size_t len, int64_t *not_after);
/* The earliest nextUpdate of the CRLs in FILE (-1 when one has none). */
int tls_crl_file_next_update(const char *file, int64_t *next_update, char *errbuf,
			     size_t errlen);

/* ---- pki.c: certificate lifecycle --------------------------------------- */

/*
 * A CA directory (dirbridge-cert --dir): ca.pem, ca.key (0600), index.json (one
 * record per issued certificate, plus the cRLNumber counter), crl.pem and a
 * lock file.  Changes are made in memory and saved by tls_pki_commit(), which
 * replaces index.json atomically (temp file, fsync, rename) and rewrites
 * crl.pem when a revocation happened.  Functions return 0 or a tls_err, the
 * reason being in tls_pki_error() (or ERR for the two without a handle).
 */
enum tls_key_type { TLS_KEY_ECDSA, TLS_KEY_RSA };
/* A record's status as index.json stores it (EXPIRED is computed by
 * tls_pki_list()): data about a certificate, not a state machine. */
enum tls_cert_status { TLS_CERT_VALID, TLS_CERT_EXPIRED, TLS_CERT_REVOKED };

#define TLS_PKI_SERIAL_MAX 41	/* hex digits of a 20-byte serial, and NUL */
#define TLS_PKI_USER_MAX 257

struct tls_pki_cert {
	char serial[TLS_PKI_SERIAL_MAX];	/* lowercase hex, no separators */
	char user[TLS_PKI_USER_MAX];
	int64_t not_before, not_after;		/* Unix time */
	int64_t revoked_at;			/* 0 unless revoked */
	int reason;				/* RFC 5280 CRLReason, when revoked */
	enum tls_cert_status status;		/* expired derived from not_after */
};

struct tls_pki;

/* Creates DIR (0700) if needed and a new CA in it; refuses to overwrite one. */
int tls_pki_init_ca(const char *dir, const char *cn, unsigned days, enum tls_key_type type,
		    char *err, size_t errsz);
/* Opens DIR and holds its lock (exclusive when WRITE) until tls_pki_close(). */
int tls_pki_open(const char *dir, bool write, struct tls_pki **out, char *err, size_t errsz);
void tls_pki_close(struct tls_pki *p);
const char *tls_pki_error(const struct tls_pki *p);

/* How a PKCS#12 bundle is protected.  MODERN: PBES2/AES-256 bags and a
 * SHA-256 MAC.  COMPAT: pbeWithSHAAnd3-KeyTripleDES-CBC bags and a SHA-1 MAC,
 * as `openssl pkcs12 -legacy` writes them, for macOS before Sonoma and older
 * Windows, which are reported to refuse MODERN. */
enum tls_p12_format { TLS_P12_MODERN = 0, TLS_P12_COMPAT };

/* Issues a client certificate for USER with a new ECDSA P-256 key and returns
 * it as PKCS#12 (DER, malloc'd) protected by PASSWORD in format FMT.  DAYS is
 * capped at the CA's own notAfter. */
int tls_pki_issue(struct tls_pki *p, const char *user, unsigned days, const char *password,
		  enum tls_p12_format fmt, unsigned char **p12, size_t *p12_len,
		  struct tls_pki_cert *out);
/*
 * Issuing from several threads (bulk issue).  tls_pki_worker() (on the thread
 * that owns P, which must be open for writing) makes a handle holding its own
 * copies of the CA certificate and key, with no index and no lock; one thread
 * at a time may use it, with tls_pki_make() and tls_pki_error() only, and
 * tls_pki_close() frees it.  tls_pki_make() is tls_pki_issue() without
 * recording: the owning thread records *OUT with tls_pki_record(), which
 * refuses a serial already in the index.  tls_pki_make() works on P too.
 */
int tls_pki_worker(struct tls_pki *p, struct tls_pki **out);
int tls_pki_make(struct tls_pki *p, const char *user, unsigned days, const char *password,
		 enum tls_p12_format fmt, unsigned char **p12, size_t *p12_len,
		 struct tls_pki_cert *out);
int tls_pki_record(struct tls_pki *p, const struct tls_pki_cert *rec);
/* Checks a CSR (PEM or DER): self-signature, exactly one CN equal to USER by
 * tls_pki_user_eq, an RSA >= 2048 or EC P-256/P-384 key; issues with the issue
 * profile and CN=USER; *pem is malloc'd and NUL-terminated. */
int tls_pki_sign_csr(struct tls_pki *p, const unsigned char *csr, size_t csr_len,
		     const char *user, unsigned days, char **pem, struct tls_pki_cert *out);
/* Revoke what is not revoked yet: one serial, or every certificate of a user
 * (every record whose name equals USER by tls_pki_user_eq).  Return how many
 * were revoked (0: none matched) or a tls_err. */
int tls_pki_revoke_serial(struct tls_pki *p, const char *serial_hex, int reason);
int tls_pki_revoke_user(struct tls_pki *p, const char *user, int reason);
/* Saves the index and, after revocations, crl.pem. */
int tls_pki_commit(struct tls_pki *p);
/* Signs a CRL with the next cRLNumber, nextUpdate now + 7 days; saves it as
 * crl.pem and the counter in the index; *pem is malloc'd.  Each entry carries
 * its reasonCode extension, except reason unspecified (RFC 5280 5.3.1). */
int tls_pki_crl(struct tls_pki *p, char **pem, size_t *len);
/* A copy of the index in issue order, statuses computed for NOW; free(*out). */
int tls_pki_list(const struct tls_pki *p, int64_t now, struct tls_pki_cert **out, size_t *n);

/* Pure helpers, exposed for the tool and unit tests. */
/* RFC 5280 reason name ("keyCompromise") to its code, or TLS_E_CONFIG. */
int tls_pki_reason_code(const char *name);
const char *tls_pki_reason_name(int code);
/* Normalises a serial given as hex (any case, optional ':' separators, leading
 * zeros) into lowercase hex without leading zeros; TLS_E_CONFIG when not a
 * serial. */
int tls_pki_serial_norm(const char *in, char out[TLS_PKI_SERIAL_MAX]);
/* pki_user.c: user names compare with ASCII letters folded to lower case and
 * every other byte as it is (no Unicode folding); a total order for sorting. */
int tls_pki_user_cmp(const char *a, const char *b);
bool tls_pki_user_eq(const char *a, const char *b);
/* A random password of LEN-1 characters (no look-alike characters) and NUL. */
int tls_pki_password(char *buf, size_t len);
/* Writes a file atomically: temp file in the same directory with MODE, fsync,
 * rename over PATH, fsync of the directory. */
int tls_pki_write_file(const char *path, const void *data, size_t len, unsigned mode);

/* ---- hub.c: the reference hub's agent endpoint --------------------------- */

/* Server credentials for dirbridge-hub: a certificate chain and key (PEM), no
 * client certificates (agents authenticate with a bearer token).  CA_FILE, when
 * not NULL, is appended to the chain sent to agents.  ERR gets a one-line reason
 * on failure. */
struct tls_hub_creds;
int tls_hub_creds_load(const char *cert_file, const char *key_file, const char *ca_file,
		       struct tls_hub_creds **out, char *err, size_t errlen);
void tls_hub_creds_free(struct tls_hub_creds *c);
/* A server session on C (which must outlive it); set a transport next. */
int tls_hub_server_new(struct tls_hub_creds *c, struct tls_sess **out);

#endif
