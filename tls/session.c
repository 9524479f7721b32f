/*
 * TLS sessions (see tls.h): GnuTLS on a non-blocking fd or on push/pull
 * callbacks, never blocking; client verification against one CA file only.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "log/log.h"
#include "tls/internal.h"

enum sess_state {
	SESS_NEW = 0,		/* no transport yet */
	SESS_HANDSHAKE,		/* transport set, handshake not complete */
	SESS_OPEN,		/* handshake complete and verified */
	SESS_FAILED,		/* a fatal error; every call returns it again */
};

struct tls_sess {
	gnutls_session_t gs;
	gnutls_certificate_credentials_t cred;	/* owned, or NULL when shared */
	enum sess_state state;
	int fail;				/* the tls_err kept in SESS_FAILED */
	enum tls_fail why;			/* and why, for metrics */
	bool client;
	bool bye_sent;
	bool blocked;				/* the transport said EAGAIN */
	int fd;					/* -1 unless tls_set_fd() */
	/* Callback transport, when not on an fd. */
	void *tctx;
	tls_push_fn push;
	tls_pull_fn pull;
	tls_post_handshake_fn post;
	void *post_arg;
	void (*release)(void *arg);
	void *release_arg;
	char err[256];
};

static bool initialized;
static gnutls_priority_t prio;

int tls_global_init(void)
{
	const char *pos = NULL;
	int rc;

	if (initialized)
		return 0;
	if (!gnutls_check_version("3.7.9"))
		return TLS_E_CONFIG;
	if (gnutls_global_init() < 0)
		return TLS_E_CONFIG;
	rc = gnutls_priority_init2(&prio, TLS_PRIORITY, &pos, 0);
	if (rc < 0) {
		gnutls_global_deinit();
		return rc == GNUTLS_E_MEMORY_ERROR ? TLS_E_NOMEM : TLS_E_CONFIG;
	}
	initialized = true;
	return 0;
}

gnutls_priority_t tls_priority(void)
{
	return prio;
}

const char *tls_strerror(int err)
{
	switch (err) {
	case TLS_OK: return "success";
	case TLS_E_AGAIN: return "would block";
	case TLS_E_VERIFY: return "peer certificate not trusted";
	case TLS_E_CLOSED: return "connection closed by peer";
	case TLS_E_PROTO: return "TLS protocol failure";
	case TLS_E_CONFIG: return "bad TLS credentials or files";
	case TLS_E_NOMEM: return "out of memory";
	case TLS_E_IO: return "transport failure";
	}
	return "unknown TLS error";
}

void tls_set_error(struct tls_sess *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->err, sizeof s->err, fmt, ap);
	va_end(ap);
}

const char *tls_last_error(const struct tls_sess *s)
{
	if (!s)
		return "no session";
	return s->err;
}

void tls_status_text(unsigned status, char *buf, size_t size)
{
	static const struct {
		unsigned bit;
		const char *text;
	} known[] = {
		{ GNUTLS_CERT_SIGNER_NOT_FOUND, "certificate signer not trusted" },
		{ GNUTLS_CERT_UNEXPECTED_OWNER, "hostname mismatch" },
		{ GNUTLS_CERT_EXPIRED, "certificate expired" },
		{ GNUTLS_CERT_NOT_ACTIVATED, "certificate not yet valid" },
		{ GNUTLS_CERT_REVOKED, "certificate revoked" },
		{ GNUTLS_CERT_SIGNATURE_FAILURE, "certificate signature invalid" },
		{ GNUTLS_CERT_SIGNER_NOT_CA, "certificate signer is not a CA" },
		{ GNUTLS_CERT_INSECURE_ALGORITHM, "insecure certificate algorithm" },
		{ GNUTLS_CERT_PURPOSE_MISMATCH, "certificate not valid for this purpose" },
		{ GNUTLS_CERT_SIGNER_CONSTRAINTS_FAILURE, "certificate signer constraints violated" },
	};
	unsigned rest = status & ~(unsigned)GNUTLS_CERT_INVALID;
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
		if (!(status & known[i].bit))
			continue;
		rest &= ~known[i].bit;
		int n = snprintf(buf + off, size - off, "%s%s", off ? ", " : "", known[i].text);
		if (n < 0 || (size_t)n >= size - off)
			return;
		off += (size_t)n;
	}
	/* Bits without a short phrase get GnuTLS's own wording. */
	if (rest || off == 0) {
		gnutls_datum_t d = { NULL, 0 };

		if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &d, 0) == 0) {
			snprintf(buf + off, size - off, "%s%s", off ? "; " : "", (const char *)d.data);
			gnutls_free(d.data);
		} else if (off == 0) {
			snprintf(buf, size, "certificate not trusted (status 0x%x)", status);
		}
	}
}

const char *const tls_fail_names[TLS_FAIL_COUNT] = {
	"other", "closed", "io", "alert", "no_shared_cipher", "version", "malformed", "verify",
};

enum tls_fail tls_fail_reason(const struct tls_sess *s)
{
	return s ? s->why : TLS_FAIL_OTHER;
}

/* The metric word for GnuTLS error RC. */
static enum tls_fail fail_word(int rc)
{
	switch (rc) {
	case GNUTLS_E_PREMATURE_TERMINATION:
	case GNUTLS_E_SESSION_EOF:
		return TLS_FAIL_CLOSED;
	case GNUTLS_E_PUSH_ERROR:
	case GNUTLS_E_PULL_ERROR:
		return TLS_FAIL_IO;
	case GNUTLS_E_FATAL_ALERT_RECEIVED:
		return TLS_FAIL_ALERT;
	case GNUTLS_E_NO_CIPHER_SUITES:
	case GNUTLS_E_UNKNOWN_CIPHER_SUITE:
	case GNUTLS_E_INSUFFICIENT_CREDENTIALS:
	case GNUTLS_E_NO_COMMON_KEY_SHARE:
	case GNUTLS_E_NO_PRIORITIES_WERE_SET:
		return TLS_FAIL_NO_SHARED_CIPHER;
	case GNUTLS_E_UNSUPPORTED_VERSION_PACKET:
		return TLS_FAIL_VERSION;
	case GNUTLS_E_UNEXPECTED_PACKET_LENGTH:
	case GNUTLS_E_UNEXPECTED_PACKET:
	case GNUTLS_E_UNEXPECTED_HANDSHAKE_PACKET:
	case GNUTLS_E_RECEIVED_ILLEGAL_PARAMETER:
	case GNUTLS_E_RECORD_OVERFLOW:
	case GNUTLS_E_DECRYPTION_FAILED:
		return TLS_FAIL_MALFORMED;
	case GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR:
	case GNUTLS_E_CERTIFICATE_ERROR:
	case GNUTLS_E_NO_CERTIFICATE_FOUND:
		return TLS_FAIL_VERIFY;
	default:
		return TLS_FAIL_OTHER;
	}
}

int tls_map(struct tls_sess *s, int rc, const char *op)
{
	int err;

	if (rc < 0 && rc != GNUTLS_E_AGAIN && rc != GNUTLS_E_INTERRUPTED)
		s->why = fail_word(rc);

	if (rc >= 0)
		return rc;
	switch (rc) {
	case GNUTLS_E_AGAIN:
	case GNUTLS_E_INTERRUPTED:
		return TLS_E_AGAIN;
	case GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR:
	case GNUTLS_E_CERTIFICATE_ERROR:
	case GNUTLS_E_NO_CERTIFICATE_FOUND: {
		char why[200];

		tls_status_text(gnutls_session_get_verify_cert_status(s->gs), why, sizeof why);
		tls_set_error(s, "%s: %s", op, why);
		return TLS_E_VERIFY;
	}
	case GNUTLS_E_PREMATURE_TERMINATION:
	case GNUTLS_E_SESSION_EOF:
		err = TLS_E_CLOSED;
		break;
	case GNUTLS_E_PUSH_ERROR:
	case GNUTLS_E_PULL_ERROR:
		err = TLS_E_IO;
		break;
	case GNUTLS_E_MEMORY_ERROR:
		err = TLS_E_NOMEM;
		break;
	case GNUTLS_E_FILE_ERROR:
	case GNUTLS_E_BASE64_DECODING_ERROR:
	case GNUTLS_E_CERTIFICATE_KEY_MISMATCH:
		err = TLS_E_CONFIG;
		break;
	case GNUTLS_E_FATAL_ALERT_RECEIVED:
		tls_set_error(s, "%s: peer sent alert: %s", op,
			      gnutls_alert_get_name(gnutls_alert_get(s->gs)));
		return TLS_E_PROTO;
	default:
		err = TLS_E_PROTO;
		break;
	}
	tls_set_error(s, "%s: %s", op, gnutls_strerror(rc));
	return err;
}

/* The one place a session changes state.  SESS_FAILED is final: a session that
 * failed never opens again, so a later call cannot send on a broken stream. */
static void sess_set_state(struct tls_sess *s, enum sess_state to)
{
	if (s->state == SESS_FAILED)
		return;
	s->state = to;
}

/* A failure that ends the session: later calls return the same error. */
static int sess_fail(struct tls_sess *s, int err)
{
	if (s->state != SESS_FAILED) {
		s->fail = err;
		if (err == TLS_E_VERIFY)
			s->why = TLS_FAIL_VERIFY;
	}
	sess_set_state(s, SESS_FAILED);
	return s->fail;
}

int tls_sess_wrap(gnutls_session_t gs, gnutls_certificate_credentials_t cred,
		  struct tls_sess **out)
{
	struct tls_sess *s = calloc(1, sizeof *s);

	*out = NULL;
	if (!s) {
		gnutls_deinit(gs);
		if (cred)
			gnutls_certificate_free_credentials(cred);
		return TLS_E_NOMEM;
	}
	s->gs = gs;
	s->cred = cred;
	/* calloc left it SESS_NEW (zero); the setter never goes back to NEW. */
	s->fd = -1;
	gnutls_session_set_ptr(gs, s);
	*out = s;
	return 0;
}

void tls_sess_set_release(struct tls_sess *s, void (*fn)(void *arg), void *arg)
{
	s->release = fn;
	s->release_arg = arg;
}

void *tls_sess_release_arg(const struct tls_sess *s)
{
	return s->release_arg;
}

void tls_sess_set_post_handshake(struct tls_sess *s, tls_post_handshake_fn fn, void *arg)
{
	s->post = fn;
	s->post_arg = arg;
}

gnutls_session_t tls_sess_gnutls(const struct tls_sess *s)
{
	return s->gs;
}

static bool is_ip_literal(const char *host)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* Loads the client credentials; records why it failed in ERR. */
static int client_cred(const struct tls_client_opts *o, gnutls_certificate_credentials_t *out,
		       char *err, size_t errsz)
{
	gnutls_certificate_credentials_t cred = NULL;
	int rc;

	*out = NULL;
	if (gnutls_certificate_allocate_credentials(&cred) < 0)
		return TLS_E_NOMEM;
	rc = gnutls_certificate_set_x509_trust_file(cred, o->ca_file, GNUTLS_X509_FMT_PEM);
	if (rc <= 0) {
		snprintf(err, errsz, "CA file %s: %s", o->ca_file,
			 rc == 0 ? "no certificates" : gnutls_strerror(rc));
		rc = TLS_E_CONFIG;
		goto fail;
	}
	if (o->cert_file || o->key_file) {
		if (!o->cert_file || !o->key_file) {
			snprintf(err, errsz, "client certificate needs both cert_file and key_file");
			rc = TLS_E_CONFIG;
			goto fail;
		}
		rc = gnutls_certificate_set_x509_key_file(cred, o->cert_file, o->key_file,
							  GNUTLS_X509_FMT_PEM);
		if (rc < 0) {
			snprintf(err, errsz, "client certificate %s: %s", o->cert_file,
				 gnutls_strerror(rc));
			rc = TLS_E_CONFIG;
			goto fail;
		}
	}
	*out = cred;
	return 0;
fail:
	gnutls_certificate_free_credentials(cred);
	return rc;
}

int tls_client_new(const struct tls_client_opts *o, struct tls_sess **out)
{
	gnutls_certificate_credentials_t cred = NULL;
	gnutls_session_t gs = NULL;
	struct tls_sess *s;
	char err[256] = "out of memory";
	int rc;

	*out = NULL;
	if (!initialized)
		return TLS_E_CONFIG;
	/* Verification needs both: there is no session that trusts "anything". */
	if (!o || !o->ca_file || !*o->ca_file || !o->hostname || !*o->hostname)
		return TLS_E_CONFIG;
	rc = client_cred(o, &cred, err, sizeof err);
	if (rc < 0) {
		/* No session exists yet to carry the reason, so it goes to the log. */
		log_msg(LOGL_ERROR, "tls: %s", err);
		return rc;
	}
	if (gnutls_init(&gs, GNUTLS_CLIENT | GNUTLS_NONBLOCK) < 0) {
		gnutls_certificate_free_credentials(cred);
		return TLS_E_NOMEM;
	}
	rc = tls_sess_wrap(gs, cred, &s);
	if (rc < 0)
		return rc;
	s->client = true;
	rc = gnutls_priority_set(gs, prio);
	if (rc >= 0)
		rc = gnutls_credentials_set(gs, GNUTLS_CRD_CERTIFICATE, cred);
	/* RFC 6066 forbids IP literals in SNI. */
	if (rc >= 0 && !is_ip_literal(o->hostname))
		rc = gnutls_server_name_set(gs, GNUTLS_NAME_DNS, o->hostname, strlen(o->hostname));
	if (rc >= 0 && o->alpn && *o->alpn) {
		gnutls_datum_t p = { (unsigned char *)(uintptr_t)o->alpn, (unsigned)strlen(o->alpn) };

		rc = gnutls_alpn_set_protocols(gs, &p, 1, 0);
	}
	if (rc < 0) {
		rc = tls_map(s, rc, "client setup");
		tls_free(s);
		return rc == TLS_E_AGAIN ? TLS_E_PROTO : rc;
	}
	/* The handshake fails unless the chain verifies and the name (DNS or IP
	 * SAN) matches; tls_handshake() checks the status once more afterwards. */
	gnutls_session_set_verify_cert(gs, o->hostname, 0);
	*out = s;
	return 0;
}

/*
 * Both transports go through these callbacks so the session knows whether the
 * transport itself would block.  GnuTLS also returns GNUTLS_E_AGAIN after it
 * consumed a post-handshake message (a TLS 1.3 session ticket) while more
 * records may already sit in its buffers or in the caller's; waiting for the
 * transport then would hang, so again() repeats the call unless the transport
 * said EAGAIN.  A failure is -1 with the errno handed to GnuTLS, as its
 * push/pull contract asks; it never leaves the module as a return value.
 */
static ssize_t io_result(struct tls_sess *s, ssize_t n)
{
	if (n >= 0)
		return n;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
		s->blocked = true;
		gnutls_transport_set_errno(s->gs, EAGAIN);
	} else {
		gnutls_transport_set_errno(s->gs, errno ? errno : EIO);
	}
	return -1;
}

static ssize_t cb_push(gnutls_transport_ptr_t p, const void *buf, size_t len)
{
	struct tls_sess *s = p;

	errno = 0;
	if (s->fd >= 0)
		return io_result(s, send(s->fd, buf, len, MSG_NOSIGNAL));
	return io_result(s, s->push(s->tctx, buf, len));
}

static ssize_t cb_pull(gnutls_transport_ptr_t p, void *buf, size_t len)
{
	struct tls_sess *s = p;

	errno = 0;
	if (s->fd >= 0)
		return io_result(s, recv(s->fd, buf, len, 0));
	return io_result(s, s->pull(s->tctx, buf, len));
}

/* Without this GnuTLS would poll() the transport pointer as if it were an fd.
 * Claiming data may be ready makes it call cb_pull, which answers EAGAIN. */
static int cb_pull_timeout(gnutls_transport_ptr_t p, unsigned ms)
{
	(void)p;
	(void)ms;
	return 1;
}

/* On an fd, one sendmsg per flight instead of one send per record. */
static ssize_t cb_vec_push(gnutls_transport_ptr_t p, const giovec_t *iov, int iovcnt)
{
	struct tls_sess *s = p;
	struct msghdr m = { .msg_iov = (struct iovec *)(uintptr_t)iov, .msg_iovlen = (size_t)iovcnt };

	errno = 0;
	return io_result(s, sendmsg(s->fd, &m, MSG_NOSIGNAL));
}

static void set_callbacks(struct tls_sess *s)
{
	gnutls_transport_set_ptr(s->gs, s);
	gnutls_transport_set_push_function(s->gs, cb_push);
	gnutls_transport_set_pull_function(s->gs, cb_pull);
	gnutls_transport_set_pull_timeout_function(s->gs, cb_pull_timeout);
	sess_set_state(s, SESS_HANDSHAKE);
}

int tls_set_fd(struct tls_sess *s, int fd)
{
	if (s->state != SESS_NEW || fd < 0)
		return TLS_E_CONFIG;
	s->fd = fd;
	set_callbacks(s);
	gnutls_transport_set_vec_push_function(s->gs, cb_vec_push);
	return 0;
}

void tls_set_transport(struct tls_sess *s, void *ctx, tls_push_fn push, tls_pull_fn pull)
{
	if (s->state != SESS_NEW || !push || !pull)
		return;
	s->tctx = ctx;
	s->push = push;
	s->pull = pull;
	set_callbacks(s);
}

/* Whether to repeat a GnuTLS call that returned R: it would block although the
 * transport did not (see above), bounded so a confused peer cannot spin us. */
static bool again(struct tls_sess *s, ssize_t r, unsigned *spins)
{
	if (r != GNUTLS_E_AGAIN && r != GNUTLS_E_INTERRUPTED)
		return false;
	return !s->blocked && ++*spins < 1000;
}

/* The client's second look at the peer: the status itself, not only the
 * handshake's return code, and a certificate actually presented. */
static int client_verified(struct tls_sess *s)
{
	unsigned status = gnutls_session_get_verify_cert_status(s->gs);
	unsigned n = 0;

	if (gnutls_certificate_type_get(s->gs) != GNUTLS_CRT_X509 ||
	    !gnutls_certificate_get_peers(s->gs, &n) || n == 0) {
		tls_set_error(s, "handshake: server presented no certificate");
		return TLS_E_VERIFY;
	}
	if (status != 0) {
		char why[200];

		tls_status_text(status, why, sizeof why);
		tls_set_error(s, "handshake: %s", why);
		return TLS_E_VERIFY;
	}
	return 0;
}

int tls_handshake(struct tls_sess *s)
{
	unsigned spins = 0;
	int rc;

	switch (s->state) {
	case SESS_OPEN:
		return 0;
	case SESS_FAILED:
		return s->fail;
	case SESS_NEW:
		tls_set_error(s, "handshake: no transport set");
		return TLS_E_CONFIG;
	case SESS_HANDSHAKE:
		break;
	}
	do {
		s->blocked = false;
		rc = gnutls_handshake(s->gs);
	} while (again(s, rc, &spins) ||
		 (rc < 0 && !gnutls_error_is_fatal(rc) && rc != GNUTLS_E_AGAIN &&
		  rc != GNUTLS_E_INTERRUPTED));
	if (rc < 0) {
		rc = tls_map(s, rc, "handshake");
		return rc == TLS_E_AGAIN ? rc : sess_fail(s, rc);
	}
	if (s->client && (rc = client_verified(s)) < 0)
		return sess_fail(s, rc);
	if (s->post && (rc = s->post(s, s->post_arg)) < 0)
		return sess_fail(s, rc < TLS_E_IO || rc >= 0 ? TLS_E_PROTO : rc);
	sess_set_state(s, SESS_OPEN);
	return 0;
}

bool tls_want_write(const struct tls_sess *s)
{
	return gnutls_record_get_direction(s->gs) == 1;
}

ssize_t tls_recv(struct tls_sess *s, void *buf, size_t len)
{
	unsigned spins = 0;
	ssize_t n;

	if (s->state == SESS_FAILED)
		return s->fail;
	if (s->state != SESS_OPEN) {
		tls_set_error(s, "recv: handshake not complete");
		return TLS_E_PROTO;
	}
	/* A TLS 1.2 server asking to renegotiate is ignored (the request is only
	 * a warning), as are warning alerts; keep reading application data. */
	do {
		s->blocked = false;
		n = gnutls_record_recv(s->gs, buf, len);
	} while (again(s, n, &spins) || n == GNUTLS_E_REHANDSHAKE ||
		 n == GNUTLS_E_WARNING_ALERT_RECEIVED);
	if (n >= 0)
		return n;
	n = tls_map(s, (int)n, "recv");
	return n == TLS_E_AGAIN ? n : sess_fail(s, (int)n);
}

ssize_t tls_send(struct tls_sess *s, const void *buf, size_t len)
{
	unsigned spins = 0;
	ssize_t n;

	if (s->state == SESS_FAILED)
		return s->fail;
	if (s->state != SESS_OPEN) {
		tls_set_error(s, "send: handshake not complete");
		return TLS_E_PROTO;
	}
	do {
		s->blocked = false;
		n = gnutls_record_send(s->gs, buf, len);
	} while (again(s, n, &spins));
	if (n >= 0)
		return n;
	n = tls_map(s, (int)n, "send");
	return n == TLS_E_AGAIN ? n : sess_fail(s, (int)n);
}

size_t tls_pending(const struct tls_sess *s)
{
	return s->state == SESS_OPEN ? gnutls_record_check_pending(s->gs) : 0;
}

void tls_bye(struct tls_sess *s)
{
	if (!s || s->state != SESS_OPEN || s->bye_sent)
		return;
	s->bye_sent = true;
	/* One attempt: on EAGAIN the alert is dropped, which the peer sees as a
	 * truncated session; waiting for the transport is not worth blocking. */
	(void)gnutls_bye(s->gs, GNUTLS_SHUT_WR);
}

void tls_free(struct tls_sess *s)
{
	if (!s)
		return;
	gnutls_deinit(s->gs);
	if (s->cred)
		gnutls_certificate_free_credentials(s->cred);
	if (s->release)
		s->release(s->release_arg);
	explicit_bzero(s, sizeof *s);
	free(s);
}

const char *tls_version(const struct tls_sess *s)
{
	const char *v = NULL;

	if (s && s->state == SESS_OPEN)
		v = gnutls_protocol_get_name(gnutls_protocol_get_version(s->gs));
	return v ? v : "none";
}

unsigned tls_strength(const struct tls_sess *s)
{
	if (!s || s->state != SESS_OPEN)
		return 0;
	return (unsigned)gnutls_cipher_get_key_size(gnutls_cipher_get(s->gs)) * 8;
}

int tls_peer_not_after(const struct tls_sess *s, int64_t *not_after)
{
	gnutls_session_t gs = tls_sess_gnutls(s);
	const gnutls_datum_t *list;
	unsigned n = 0;
	gnutls_x509_crt_t crt;
	int rc;

	list = gnutls_certificate_get_peers(gs, &n);
	if (!list || n == 0)
		return TLS_E_VERIFY;
	if (gnutls_x509_crt_init(&crt) < 0)
		return TLS_E_NOMEM;
	rc = gnutls_x509_crt_import(crt, &list[0], GNUTLS_X509_FMT_DER);
	if (rc >= 0)
		*not_after = (int64_t)gnutls_x509_crt_get_expiration_time(crt);
	gnutls_x509_crt_deinit(crt);
	return rc < 0 ? TLS_E_PROTO : TLS_OK;
}
