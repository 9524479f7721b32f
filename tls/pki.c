/*
 * Certificate lifecycle for dirbridge-cert (see tls.h): a CA directory with an
 * index of issued certificates, PKCS#12 issuing, CSR signing, revocation and
 * CRLs, all with GnuTLS's x509/pkcs12/crq/crl APIs.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/pkcs12.h>
#include <gnutls/x509.h>
#include <jansson.h>

#include "tls/internal.h"
#include "tls/tls.h"

/* Certificates start a little in the past so a client whose clock lags the
 * CA's by a few minutes does not see them as not yet valid. */
#define BACKDATE 300
#define CRL_DAYS 7
#define DAY 86400

struct tls_pki {
	char *dir;
	int lock_fd;
	bool write;
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

static int pki_fail(struct tls_pki *p, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int pki_fail(struct tls_pki *p, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->err, sizeof p->err, fmt, ap);
	va_end(ap);
	return rc;
}

/* GnuTLS failures in this file: out of memory or a bad key/certificate. */
static int gt_fail(struct tls_pki *p, int grc, const char *what)
{
	return pki_fail(p, grc == GNUTLS_E_MEMORY_ERROR ? TLS_E_NOMEM : TLS_E_CONFIG, "%s: %s",
			what, gnutls_strerror(grc));
}

const char *tls_pki_error(const struct tls_pki *p)
{
	return p ? p->err : "no CA directory";
}

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
	return -1;
}

const char *tls_pki_reason_name(int code)
{
	if (code < 0 || (size_t)code >= sizeof reasons / sizeof reasons[0] || !reasons[code])
		return NULL;
	return reasons[code];
}

int tls_pki_serial_norm(const char *in, char out[TLS_PKI_SERIAL_MAX])
{
	char hex[TLS_PKI_SERIAL_MAX];
	size_t n = 0;
	bool lead = true;

	if (!in)
		return -1;
	for (const char *c = in; *c; c++) {
		if (*c == ':')
			continue;
		if (!isxdigit((unsigned char)*c))
			return -1;
		if (lead && *c == '0')
			continue;
		lead = false;
		if (n + 1 >= sizeof hex)
			return -1;
		hex[n++] = (char)tolower((unsigned char)*c);
	}
	if (n == 0)
		return -1;	/* zero is not a serial number */
	/* Whole bytes, so the text matches the certificate's bytes one to one. */
	size_t off = n % 2;
	if (n + off >= TLS_PKI_SERIAL_MAX)
		return -1;
	if (off)
		out[0] = '0';
	memcpy(out + off, hex, n);
	out[n + off] = '\0';
	return 0;
}

int tls_pki_password(char *buf, size_t len)
{
	/* 54 characters without 0/O, 1/l/I: the password is read off a screen. */
	static const char alphabet[] =
		"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
	const size_t na = sizeof alphabet - 1;
	unsigned char r[64];
	size_t i = 0;

	if (len < 2)
		return TLS_E_CONFIG;
	while (i < len - 1) {
		if (gnutls_rnd(GNUTLS_RND_KEY, r, sizeof r) < 0)
			return TLS_E_NOMEM;
		/* Rejection sampling keeps every character equally likely. */
		for (size_t j = 0; j < sizeof r && i < len - 1; j++)
			if (r[j] < 256 - 256 % na)
				buf[i++] = alphabet[r[j] % na];
	}
	buf[i] = '\0';
	explicit_bzero(r, sizeof r);
	return 0;
}

int tls_pki_write_file(const char *path, const void *data, size_t len, unsigned mode)
{
	char *tmp = NULL, *dcopy = NULL;
	int fd = -1, dfd = -1, rc = TLS_E_IO;
	const unsigned char *d = data;

	if (asprintf(&tmp, "%s.tmp.XXXXXX", path) < 0)
		return TLS_E_NOMEM;
	fd = mkstemp(tmp);
	if (fd < 0)
		goto out;
	if (fchmod(fd, (mode_t)mode) < 0)
		goto out_unlink;
	while (len > 0) {
		ssize_t w = write(fd, d, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			goto out_unlink;
		d += w;
		len -= (size_t)w;
	}
	if (fsync(fd) < 0 || close(fd) < 0) {
		fd = -1;
		goto out_unlink;
	}
	fd = -1;
	if (rename(tmp, path) < 0)
		goto out_unlink;
	/* The rename itself must reach the disk before we report success. */
	dcopy = strdup(path);
	if (dcopy && (dfd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	rc = 0;
	goto out;
out_unlink:
	{
		int e = errno;

		unlink(tmp);
		errno = e;
	}
out:
	if (fd >= 0)
		close(fd);
	free(dcopy);
	free(tmp);
	return rc;
}

/* ---- times and files ----------------------------------------------------- */

static void fmt_time(int64_t t, char buf[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm) || !strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, 32, "%lld", (long long)t);
}

static int parse_time(const char *s, int64_t *out)
{
	struct tm tm = { 0 };
	const char *end = s ? strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm) : NULL;

	if (!end || *end)
		return -1;
	*out = (int64_t)timegm(&tm);
	return 0;
}

static char *path_in(const struct tls_pki *p, const char *dir, const char *name)
{
	char *s = NULL;

	if (asprintf(&s, "%s/%s", p ? p->dir : dir, name) < 0)
		return NULL;
	return s;
}

/* Reads a whole (small) file into a datum; gnutls_free() it. */
static int read_datum(const char *path, gnutls_datum_t *d)
{
	d->data = NULL;
	d->size = 0;
	return gnutls_load_file(path, d) < 0 ? -1 : 0;
}

static int hex_to_bytes(const char *hex, unsigned char *out, size_t *len)
{
	size_t n = strlen(hex);

	if (n % 2 || n / 2 > *len)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;

		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (unsigned char)v;
	}
	*len = n / 2;
	return 0;
}

static void bytes_to_hex(const unsigned char *b, size_t n, char out[TLS_PKI_SERIAL_MAX])
{
	char raw[TLS_PKI_SERIAL_MAX] = "";

	for (size_t i = 0; i < n && 2 * i + 2 < sizeof raw; i++)
		snprintf(raw + 2 * i, 3, "%02x", b[i]);
	if (tls_pki_serial_norm(raw, out) < 0)
		out[0] = '\0';
}

/* ---- the index ------------------------------------------------------------ */

static int index_add(struct tls_pki *p, const struct tls_pki_cert *c)
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 16;
		struct tls_pki_cert *nc = reallocarray(p->certs, cap, sizeof *nc);

		if (!nc)
			return pki_fail(p, TLS_E_NOMEM, "out of memory");
		p->certs = nc;
		p->cap = cap;
	}
	p->certs[p->n++] = *c;
	p->dirty = true;
	return 0;
}

static int index_load(struct tls_pki *p)
{
	char *path = path_in(p, NULL, "index.json");
	json_error_t je;
	json_t *root = NULL, *certs, *v;
	json_int_t num;
	size_t i;
	int version = 0;
	int rc = TLS_E_CONFIG;

	if (!path)
		return pki_fail(p, TLS_E_NOMEM, "out of memory");
	root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		rc = pki_fail(p, TLS_E_CONFIG, "%s: %s (line %d)", path,
			      access(path, F_OK) ? "missing; was the CA made with init-ca?"
						 : "corrupt index",
			      je.line);
		goto out;
	}
	if (json_unpack_ex(root, &je, JSON_STRICT, "{s:i, s:I, s:o}", "version", &version,
			   "crl_number", &num, "certs", &certs) < 0 ||
	    version != 1 || num < 0 || !json_is_array(certs)) {
		rc = pki_fail(p, TLS_E_CONFIG, "%s: corrupt index: %s", path, je.text);
		goto out;
	}
	p->crl_number = (uint64_t)num;
	json_array_foreach(certs, i, v) {
		struct tls_pki_cert c = { 0 };
		const char *serial, *user, *nb, *na, *status, *ra = NULL, *reason = NULL;

		if (json_unpack_ex(v, &je, JSON_STRICT, "{s:s, s:s, s:s, s:s, s:s, s?s, s?s}",
				   "serial", &serial, "user", &user, "not_before", &nb,
				   "not_after", &na, "status", &status, "revoked_at", &ra,
				   "reason", &reason) < 0 ||
		    tls_pki_serial_norm(serial, c.serial) < 0 || strcmp(c.serial, serial) != 0 ||
		    strlen(user) >= sizeof c.user || parse_time(nb, &c.not_before) < 0 ||
		    parse_time(na, &c.not_after) < 0) {
			rc = pki_fail(p, TLS_E_CONFIG, "%s: corrupt index: record %zu %s", path,
				      i + 1, je.text);
			goto out;
		}
		strcpy(c.user, user);
		if (strcmp(status, "revoked") == 0) {
			c.state = TLS_CERT_REVOKED;
			if (!ra || !reason || parse_time(ra, &c.revoked_at) < 0 ||
			    (c.reason = tls_pki_reason_code(reason)) < 0) {
				rc = pki_fail(p, TLS_E_CONFIG,
					      "%s: corrupt index: record %zu revoked without time or reason",
					      path, i + 1);
				goto out;
			}
		} else if (strcmp(status, "valid") == 0 && !ra && !reason) {
			c.state = TLS_CERT_VALID;
		} else {
			rc = pki_fail(p, TLS_E_CONFIG, "%s: corrupt index: record %zu status", path,
				      i + 1);
			goto out;
		}
		if ((rc = index_add(p, &c)) < 0)
			goto out;
	}
	p->dirty = false;
	rc = 0;
out:
	json_decref(root);
	free(path);
	return rc;
}

static int index_save(struct tls_pki *p)
{
	json_t *root = NULL, *arr = json_array();
	char *path = path_in(p, NULL, "index.json"), *text = NULL;
	int rc = TLS_E_NOMEM;

	if (!arr || !path)
		goto out;
	for (size_t i = 0; i < p->n; i++) {
		const struct tls_pki_cert *c = &p->certs[i];
		char nb[32], na[32], ra[32];
		json_t *o;

		fmt_time(c->not_before, nb);
		fmt_time(c->not_after, na);
		o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "serial", c->serial, "user", c->user,
			      "not_before", nb, "not_after", na, "status",
			      c->state == TLS_CERT_REVOKED ? "revoked" : "valid");
		if (o && c->state == TLS_CERT_REVOKED) {
			fmt_time(c->revoked_at, ra);
			json_object_set_new(o, "revoked_at", json_string(ra));
			json_object_set_new(o, "reason", json_string(tls_pki_reason_name(c->reason)));
		}
		if (!o || json_array_append_new(arr, o) < 0)
			goto out;
	}
	root = json_pack("{s:i, s:I, s:O}", "version", 1, "crl_number",
			 (json_int_t)p->crl_number, "certs", arr);
	if (!root || !(text = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER)))
		goto out;
	if (tls_pki_write_file(path, text, strlen(text), 0644) < 0) {
		rc = pki_fail(p, TLS_E_IO, "%s: %s", path, strerror(errno));
		goto out;
	}
	p->dirty = false;
	rc = 0;
out:
	if (rc == TLS_E_NOMEM)
		pki_fail(p, rc, "out of memory");
	free(text);
	json_decref(root);
	json_decref(arr);
	free(path);
	return rc;
}

/* ---- keys and certificates ------------------------------------------------ */

static int new_serial(struct tls_pki *p, unsigned char serial[16])
{
	char hex[TLS_PKI_SERIAL_MAX];

	for (int tries = 0; tries < 16; tries++) {
		bool dup = false;

		if (gnutls_rnd(GNUTLS_RND_NONCE, serial, 16) < 0)
			return pki_fail(p, TLS_E_NOMEM, "random generator failed");
		/* Positive (top bit clear) and minimal in DER (first byte nonzero). */
		serial[0] &= 0x7f;
		if (serial[0] == 0)
			continue;
		bytes_to_hex(serial, 16, hex);
		for (size_t i = 0; p && i < p->n && !dup; i++)
			dup = strcmp(p->certs[i].serial, hex) == 0;
		if (!dup)
			return 0;
	}
	return pki_fail(p, TLS_E_PROTO, "could not draw a fresh serial number");
}

/* Sets serial, validity, subject CN and key; and the subject key identifier. */
static int crt_base(struct tls_pki *p, gnutls_x509_crt_t crt, gnutls_pubkey_t pub,
		    const char *cn, int64_t nb, int64_t na, const unsigned char serial[16])
{
	unsigned char id[64];
	size_t idlen = sizeof id;
	int rc;

	if ((rc = gnutls_x509_crt_set_version(crt, 3)) < 0 ||
	    (rc = gnutls_x509_crt_set_serial(crt, serial, 16)) < 0 ||
	    (rc = gnutls_x509_crt_set_activation_time(crt, (time_t)nb)) < 0 ||
	    (rc = gnutls_x509_crt_set_expiration_time(crt, (time_t)na)) < 0 ||
	    (rc = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
						(unsigned)strlen(cn))) < 0 ||
	    (rc = gnutls_x509_crt_set_pubkey(crt, pub)) < 0 ||
	    (rc = gnutls_pubkey_get_key_id(pub, GNUTLS_KEYID_USE_SHA1, id, &idlen)) < 0 ||
	    (rc = gnutls_x509_crt_set_subject_key_id(crt, id, idlen)) < 0)
		return gt_fail(p, rc, "certificate");
	return 0;
}

static int new_key(struct tls_pki *p, enum tls_key_type type, gnutls_x509_privkey_t *xkey,
		   gnutls_privkey_t *key, gnutls_pubkey_t *pub)
{
	int rc;

	*xkey = NULL;
	*key = NULL;
	*pub = NULL;
	if ((rc = gnutls_x509_privkey_init(xkey)) < 0 ||
	    (rc = type == TLS_KEY_RSA
			  ? gnutls_x509_privkey_generate(*xkey, GNUTLS_PK_RSA, 3072, 0)
			  : gnutls_x509_privkey_generate(
				    *xkey, GNUTLS_PK_ECDSA,
				    GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0)) < 0 ||
	    (rc = gnutls_privkey_init(key)) < 0 ||
	    (rc = gnutls_privkey_import_x509(*key, *xkey, 0)) < 0 ||
	    (rc = gnutls_pubkey_init(pub)) < 0 ||
	    (rc = gnutls_pubkey_import_privkey(*pub, *key, 0, 0)) < 0) {
		gnutls_pubkey_deinit(*pub);
		gnutls_privkey_deinit(*key);
		gnutls_x509_privkey_deinit(*xkey);
		*xkey = NULL;
		*key = NULL;
		*pub = NULL;
		return gt_fail(p, rc, "key generation");
	}
	return 0;
}

static int export_pem(struct tls_pki *p, int (*exp)(void *, gnutls_x509_crt_fmt_t, gnutls_datum_t *),
		      void *obj, gnutls_datum_t *out)
{
	int rc = exp(obj, GNUTLS_X509_FMT_PEM, out);

	return rc < 0 ? gt_fail(p, rc, "export") : 0;
}

static int crt_export2(void *o, gnutls_x509_crt_fmt_t f, gnutls_datum_t *d)
{
	return gnutls_x509_crt_export2(o, f, d);
}

static int key_export2(void *o, gnutls_x509_crt_fmt_t f, gnutls_datum_t *d)
{
	return gnutls_x509_privkey_export2(o, f, d);
}

static int crl_export2(void *o, gnutls_x509_crt_fmt_t f, gnutls_datum_t *d)
{
	return gnutls_x509_crl_export2(o, f, d);
}

int tls_pki_init_ca(const char *dir, const char *cn, unsigned days, enum tls_key_type type,
		    char *err, size_t errsz)
{
	struct tls_pki *p = NULL;
	gnutls_x509_privkey_t xkey = NULL;
	gnutls_privkey_t key = NULL;
	gnutls_pubkey_t pub = NULL;
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t cpem = { NULL, 0 }, kpem = { NULL, 0 };
	unsigned char serial[16];
	char *kpath = NULL, *cpath = NULL, *ipath = NULL;
	int64_t now = (int64_t)time(NULL);
	int rc, fd;

	if (!cn || !*cn || days == 0 || days > 36500) {
		snprintf(err, errsz, "init-ca needs a CA name and 1..36500 days");
		return TLS_E_CONFIG;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errsz, "%s: %s", dir, strerror(errno));
		return TLS_E_CONFIG;
	}
	/* The lock is taken through tls_pki_open's path: an empty handle. */
	p = calloc(1, sizeof *p);
	if (!p || !(p->dir = strdup(dir))) {
		free(p);
		snprintf(err, errsz, "out of memory");
		return TLS_E_NOMEM;
	}
	p->lock_fd = -1;
	char *lpath = path_in(p, NULL, ".lock");
	fd = lpath ? open(lpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600) : -1;
	free(lpath);
	if (fd < 0 || flock(fd, LOCK_EX) < 0) {
		rc = pki_fail(p, TLS_E_CONFIG, "%s: cannot lock: %s", dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		goto out;
	}
	p->lock_fd = fd;
	kpath = path_in(p, NULL, "ca.key");
	cpath = path_in(p, NULL, "ca.pem");
	ipath = path_in(p, NULL, "index.json");
	if (!kpath || !cpath || !ipath) {
		rc = pki_fail(p, TLS_E_NOMEM, "out of memory");
		goto out;
	}
	if (access(kpath, F_OK) == 0 || access(cpath, F_OK) == 0 || access(ipath, F_OK) == 0) {
		rc = pki_fail(p, TLS_E_CONFIG, "%s already holds a CA; refusing to overwrite it", dir);
		goto out;
	}
	if ((rc = new_key(p, type, &xkey, &key, &pub)) < 0 || (rc = new_serial(p, serial)) < 0)
		goto out;
	if ((rc = gnutls_x509_crt_init(&crt)) < 0) {
		rc = gt_fail(p, rc, "certificate");
		goto out;
	}
	if ((rc = crt_base(p, crt, pub, cn, now - BACKDATE, now + (int64_t)days * DAY, serial)) < 0)
		goto out;
	if ((rc = gnutls_x509_crt_set_basic_constraints(crt, 1, -1)) < 0 ||
	    (rc = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_KEY_CERT_SIGN |
							     GNUTLS_KEY_CRL_SIGN)) < 0 ||
	    (rc = gnutls_x509_crt_privkey_sign(crt, crt, key, GNUTLS_DIG_SHA256, 0)) < 0) {
		rc = gt_fail(p, rc, "CA certificate");
		goto out;
	}
	if ((rc = export_pem(p, crt_export2, crt, &cpem)) < 0 ||
	    (rc = export_pem(p, key_export2, xkey, &kpem)) < 0)
		goto out;
	/* Key first: a directory with ca.pem but no key is never left behind. */
	if (tls_pki_write_file(kpath, kpem.data, kpem.size, 0600) < 0 ||
	    tls_pki_write_file(cpath, cpem.data, cpem.size, 0644) < 0) {
		rc = pki_fail(p, TLS_E_IO, "%s: %s", dir, strerror(errno));
		unlink(kpath);
		goto out;
	}
	p->ca = crt;
	p->ca_key = key;
	p->ca_not_after = now + (int64_t)days * DAY;
	crt = NULL;
	key = NULL;
	p->write = true;
	p->dirty = true;
	if ((rc = index_save(p)) < 0) {
		unlink(kpath);
		unlink(cpath);
		goto out;
	}
	/* An empty CRL from the start, so servers can be pointed at crl.pem. */
	char *pem = NULL;
	size_t len;
	if ((rc = tls_pki_crl(p, &pem, &len)) < 0) {
		unlink(ipath);
		unlink(kpath);
		unlink(cpath);
		goto out;
	}
	free(pem);
out:
	if (rc < 0)
		snprintf(err, errsz, "%s", p->err);
	if (kpem.data) {
		explicit_bzero(kpem.data, kpem.size);
		gnutls_free(kpem.data);
	}
	gnutls_free(cpem.data);
	gnutls_x509_crt_deinit(crt);
	gnutls_pubkey_deinit(pub);
	gnutls_privkey_deinit(key);
	gnutls_x509_privkey_deinit(xkey);
	free(kpath);
	free(cpath);
	free(ipath);
	tls_pki_close(p);
	return rc;
}

int tls_pki_open(const char *dir, bool write, struct tls_pki **out, char *err, size_t errsz)
{
	struct tls_pki *p = calloc(1, sizeof *p);
	gnutls_datum_t d = { NULL, 0 };
	struct stat st;
	char *path = NULL;
	int rc;

	*out = NULL;
	if (!p || !(p->dir = strdup(dir))) {
		free(p);
		snprintf(err, errsz, "out of memory");
		return TLS_E_NOMEM;
	}
	p->lock_fd = -1;
	p->write = write;
	if (stat(dir, &st) < 0) {
		rc = pki_fail(p, TLS_E_CONFIG, "%s: not a CA directory (%s)", dir, strerror(errno));
		goto fail;
	}
	if (!S_ISDIR(st.st_mode)) {
		rc = pki_fail(p, TLS_E_CONFIG, "%s: not a CA directory (not a directory)", dir);
		goto fail;
	}
	path = path_in(p, NULL, "ca.key");
	if (!path || access(path, F_OK) < 0) {
		rc = pki_fail(p, TLS_E_CONFIG, "%s has no CA; create one with: dirbridge-cert init-ca --dir %s --cn NAME",
			      dir, dir);
		goto fail;
	}
	free(path);
	path = path_in(p, NULL, ".lock");
	/* Readers take a shared lock, writers an exclusive one, so a reader never
	 * sees the index between a writer's changes. */
	p->lock_fd = path ? open(path, (write ? O_RDWR | O_CREAT : O_RDONLY) | O_CLOEXEC, 0600) : -1;
	if (p->lock_fd < 0 || flock(p->lock_fd, write ? LOCK_EX : LOCK_SH) < 0) {
		rc = pki_fail(p, TLS_E_CONFIG, "%s: cannot lock: %s", dir, strerror(errno));
		goto fail;
	}
	free(path);
	path = path_in(p, NULL, "ca.pem");
	if (!path || read_datum(path, &d) < 0 || gnutls_x509_crt_init(&p->ca) < 0 ||
	    gnutls_x509_crt_import(p->ca, &d, GNUTLS_X509_FMT_PEM) < 0) {
		rc = pki_fail(p, TLS_E_CONFIG, "%s: missing or not a PEM certificate", path);
		goto fail;
	}
	gnutls_free(d.data);
	d.data = NULL;
	free(path);
	path = path_in(p, NULL, "ca.key");
	if (!path || read_datum(path, &d) < 0 || gnutls_x509_privkey_init(&p->ca_xkey) < 0 ||
	    gnutls_x509_privkey_import(p->ca_xkey, &d, GNUTLS_X509_FMT_PEM) < 0 ||
	    gnutls_privkey_init(&p->ca_key) < 0 ||
	    gnutls_privkey_import_x509(p->ca_key, p->ca_xkey, 0) < 0) {
		rc = pki_fail(p, TLS_E_CONFIG, "%s: missing or not a PEM private key", path);
		goto fail;
	}
	p->ca_not_after = (int64_t)gnutls_x509_crt_get_expiration_time(p->ca);
	if ((rc = index_load(p)) < 0)
		goto fail;
	if (d.data) {
		explicit_bzero(d.data, d.size);
		gnutls_free(d.data);
	}
	free(path);
	*out = p;
	return 0;
fail:
	if (d.data) {
		explicit_bzero(d.data, d.size);
		gnutls_free(d.data);
	}
	free(path);
	snprintf(err, errsz, "%s", p->err);
	tls_pki_close(p);
	return rc;
}

void tls_pki_close(struct tls_pki *p)
{
	if (!p)
		return;
	if (p->lock_fd >= 0)
		close(p->lock_fd);	/* releases the flock */
	gnutls_privkey_deinit(p->ca_key);
	gnutls_x509_privkey_deinit(p->ca_xkey);
	gnutls_x509_crt_deinit(p->ca);
	free(p->certs);
	free(p->dir);
	free(p);
}

/* The issue profile: CN=USER, clientAuth only, digitalSignature, CA's AKI. */
static int user_cert(struct tls_pki *p, const char *user, unsigned days, gnutls_pubkey_t pub,
		     gnutls_x509_crt_t *out, struct tls_pki_cert *rec)
{
	gnutls_x509_crt_t crt = NULL;
	unsigned char serial[16], aki[64];
	size_t akilen = sizeof aki;
	int64_t now = (int64_t)time(NULL), na;
	int rc;

	*out = NULL;
	if (!p->write)
		return pki_fail(p, TLS_E_CONFIG, "CA directory opened read-only");
	if (days == 0 || days > 36500)
		return pki_fail(p, TLS_E_CONFIG, "--days must be 1..36500");
	if (strlen(user) >= TLS_PKI_USER_MAX)
		return pki_fail(p, TLS_E_CONFIG, "user name too long");
	na = now + (int64_t)days * DAY;
	if (na > p->ca_not_after)
		na = p->ca_not_after;
	if (na <= now)
		return pki_fail(p, TLS_E_CONFIG, "the CA certificate has expired");
	if ((rc = new_serial(p, serial)) < 0)
		return rc;
	if ((rc = gnutls_x509_crt_init(&crt)) < 0)
		return gt_fail(p, rc, "certificate");
	if ((rc = crt_base(p, crt, pub, user, now - BACKDATE, na, serial)) < 0)
		goto fail;
	if ((rc = gnutls_x509_crt_set_basic_constraints(crt, 0, -1)) < 0 ||
	    (rc = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE)) < 0 ||
	    (rc = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_CLIENT, 0)) < 0 ||
	    (rc = gnutls_x509_crt_get_subject_key_id(p->ca, aki, &akilen, NULL)) < 0 ||
	    (rc = gnutls_x509_crt_set_authority_key_id(crt, aki, akilen)) < 0 ||
	    (rc = gnutls_x509_crt_privkey_sign(crt, p->ca, p->ca_key, GNUTLS_DIG_SHA256, 0)) < 0) {
		rc = gt_fail(p, rc, "signing the certificate");
		goto fail;
	}
	memset(rec, 0, sizeof *rec);
	bytes_to_hex(serial, 16, rec->serial);
	strcpy(rec->user, user);
	rec->not_before = now - BACKDATE;
	rec->not_after = na;
	rec->state = TLS_CERT_VALID;
	*out = crt;
	return 0;
fail:
	gnutls_x509_crt_deinit(crt);
	return rc;
}

/* PKCS#12: a PBES2/AES-256 encrypted bag with the certificate and the CA, a
 * shrouded key bag, both named USER and tied by the key id; SHA-256 MAC. */
static int make_p12(struct tls_pki *p, const char *user, gnutls_x509_crt_t crt,
		    gnutls_x509_privkey_t key, const char *password, gnutls_datum_t *out)
{
	gnutls_pkcs12_t p12 = NULL;
	gnutls_pkcs12_bag_t cbag = NULL, kbag = NULL;
	unsigned char id[64];
	size_t idlen = sizeof id;
	gnutls_datum_t kid;
	int rc, ci, ki, ai;

	if ((rc = gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA1, id, &idlen)) < 0 ||
	    (rc = gnutls_pkcs12_bag_init(&cbag)) < 0 || (rc = gnutls_pkcs12_bag_init(&kbag)) < 0 ||
	    (rc = ci = gnutls_pkcs12_bag_set_crt(cbag, crt)) < 0 ||
	    (rc = ai = gnutls_pkcs12_bag_set_crt(cbag, p->ca)) < 0)
		goto gfail;
	kid.data = id;
	kid.size = (unsigned)idlen;
	if ((rc = gnutls_pkcs12_bag_set_friendly_name(cbag, (unsigned)ci, user)) < 0 ||
	    (rc = gnutls_pkcs12_bag_set_key_id(cbag, (unsigned)ci, &kid)) < 0 ||
	    (rc = gnutls_pkcs12_bag_encrypt(cbag, password, GNUTLS_PKCS_PBES2_AES_256)) < 0 ||
	    (rc = ki = gnutls_pkcs12_bag_set_privkey(kbag, key, password,
						     GNUTLS_PKCS_PBES2_AES_256)) < 0 ||
	    (rc = gnutls_pkcs12_bag_set_friendly_name(kbag, (unsigned)ki, user)) < 0 ||
	    (rc = gnutls_pkcs12_bag_set_key_id(kbag, (unsigned)ki, &kid)) < 0 ||
	    (rc = gnutls_pkcs12_init(&p12)) < 0 || (rc = gnutls_pkcs12_set_bag(p12, cbag)) < 0 ||
	    (rc = gnutls_pkcs12_set_bag(p12, kbag)) < 0 ||
	    (rc = gnutls_pkcs12_generate_mac2(p12, GNUTLS_MAC_SHA256, password)) < 0 ||
	    (rc = gnutls_pkcs12_export2(p12, GNUTLS_X509_FMT_DER, out)) < 0)
		goto gfail;
	(void)ai;
	rc = 0;
	goto out;
gfail:
	rc = gt_fail(p, rc, "PKCS#12");
out:
	gnutls_pkcs12_bag_deinit(cbag);
	gnutls_pkcs12_bag_deinit(kbag);
	gnutls_pkcs12_deinit(p12);
	return rc;
}

int tls_pki_issue(struct tls_pki *p, const char *user, unsigned days, const char *password,
		  unsigned char **p12, size_t *p12_len, struct tls_pki_cert *out)
{
	gnutls_x509_privkey_t xkey = NULL;
	gnutls_privkey_t key = NULL;
	gnutls_pubkey_t pub = NULL;
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t der = { NULL, 0 };
	struct tls_pki_cert rec;
	int rc;

	*p12 = NULL;
	*p12_len = 0;
	if (!password || !*password)
		return pki_fail(p, TLS_E_CONFIG, "empty PKCS#12 password");
	if ((rc = new_key(p, TLS_KEY_ECDSA, &xkey, &key, &pub)) < 0)
		return rc;
	if ((rc = user_cert(p, user, days, pub, &crt, &rec)) < 0 ||
	    (rc = make_p12(p, user, crt, xkey, password, &der)) < 0 ||
	    (rc = index_add(p, &rec)) < 0)
		goto out;
	/* Copied into malloc'd memory so the caller frees it like everything else. */
	*p12 = malloc(der.size);
	if (!*p12) {
		p->n--;
		rc = pki_fail(p, TLS_E_NOMEM, "out of memory");
		goto out;
	}
	memcpy(*p12, der.data, der.size);
	*p12_len = der.size;
	if (out)
		*out = rec;
out:
	gnutls_free(der.data);
	gnutls_x509_crt_deinit(crt);
	gnutls_pubkey_deinit(pub);
	gnutls_privkey_deinit(key);
	gnutls_x509_privkey_deinit(xkey);
	return rc;
}

/* Whether a CSR's key is one we sign: the policy client certificates are held
 * to when they sign in (tls_key_policy). */
static int csr_key_ok(struct tls_pki *p, gnutls_pubkey_t pub)
{
	char why[128];

	if (tls_key_policy(pub, why, sizeof why) < 0)
		return pki_fail(p, TLS_E_VERIFY, "CSR key %s", why);
	return 0;
}

int tls_pki_sign_csr(struct tls_pki *p, const unsigned char *csr, size_t csr_len,
		     const char *user, unsigned days, char **pem, struct tls_pki_cert *out)
{
	gnutls_x509_crq_t crq = NULL;
	gnutls_pubkey_t pub = NULL;
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t in = { (unsigned char *)(uintptr_t)csr, (unsigned)csr_len }, cp = { NULL, 0 };
	struct tls_pki_cert rec;
	char cn[TLS_PKI_USER_MAX + 1];
	size_t cnlen = sizeof cn, extra = 0;
	int rc;

	*pem = NULL;
	if (csr_len > 1 << 20)
		return pki_fail(p, TLS_E_CONFIG, "CSR too large");
	if ((rc = gnutls_x509_crq_init(&crq)) < 0)
		return gt_fail(p, rc, "CSR");
	if (gnutls_x509_crq_import(crq, &in, GNUTLS_X509_FMT_PEM) < 0 &&
	    gnutls_x509_crq_import(crq, &in, GNUTLS_X509_FMT_DER) < 0) {
		rc = pki_fail(p, TLS_E_CONFIG, "not a PKCS#10 certificate request (PEM or DER)");
		goto out;
	}
	if (gnutls_x509_crq_verify(crq, 0) < 0) {
		rc = pki_fail(p, TLS_E_VERIFY, "CSR self-signature does not verify");
		goto out;
	}
	rc = gnutls_x509_crq_get_dn_by_oid(crq, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &cnlen);
	if (rc < 0 || strlen(cn) != cnlen) {
		rc = pki_fail(p, TLS_E_VERIFY, "CSR subject has no usable CN");
		goto out;
	}
	/* A second CN could name another user to a lax relying party. */
	if (gnutls_x509_crq_get_dn_by_oid(crq, GNUTLS_OID_X520_COMMON_NAME, 1, 0, NULL, &extra) !=
	    GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE) {
		rc = pki_fail(p, TLS_E_VERIFY, "CSR subject has more than one CN");
		goto out;
	}
	if (!tls_pki_user_eq(cn, user)) {
		rc = pki_fail(p, TLS_E_VERIFY, "CSR is for CN=%.64s, not for %.64s", cn, user);
		goto out;
	}
	if ((rc = gnutls_pubkey_init(&pub)) < 0 || (rc = gnutls_pubkey_import_x509_crq(pub, crq, 0)) < 0) {
		rc = gt_fail(p, rc, "CSR key");
		goto out;
	}
	if ((rc = csr_key_ok(p, pub)) < 0 || (rc = user_cert(p, user, days, pub, &crt, &rec)) < 0 ||
	    (rc = export_pem(p, crt_export2, crt, &cp)) < 0)
		goto out;
	*pem = malloc(cp.size + 1);
	if (!*pem) {
		rc = pki_fail(p, TLS_E_NOMEM, "out of memory");
		goto out;
	}
	memcpy(*pem, cp.data, cp.size);
	(*pem)[cp.size] = '\0';
	if ((rc = index_add(p, &rec)) < 0) {
		free(*pem);
		*pem = NULL;
		goto out;
	}
	if (out)
		*out = rec;
out:
	gnutls_free(cp.data);
	gnutls_x509_crt_deinit(crt);
	gnutls_pubkey_deinit(pub);
	gnutls_x509_crq_deinit(crq);
	return rc;
}

static int revoke_where(struct tls_pki *p, const char *serial, const char *user, int reason)
{
	int64_t now = (int64_t)time(NULL);
	int n = 0;

	if (!p->write)
		return pki_fail(p, TLS_E_CONFIG, "CA directory opened read-only");
	if (!tls_pki_reason_name(reason))
		return pki_fail(p, TLS_E_CONFIG, "unknown revocation reason %d", reason);
	for (size_t i = 0; i < p->n; i++) {
		struct tls_pki_cert *c = &p->certs[i];

		if (c->state == TLS_CERT_REVOKED)
			continue;
		if ((serial && strcmp(c->serial, serial) != 0) || (user && !tls_pki_user_eq(c->user, user)))
			continue;
		c->state = TLS_CERT_REVOKED;
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
		return pki_fail(p, TLS_E_CONFIG, "not a serial number: %.64s", serial_hex);
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
		return pki_fail(p, TLS_E_CONFIG, "CA directory opened read-only");
	for (int i = 7; i >= 0; i--)
		num[7 - i] = (unsigned char)(next >> (8 * i));
	size_t skip = 0;
	while (skip < 7 && num[skip] == 0 && !(num[skip + 1] & 0x80))
		skip++;
	if ((rc = gnutls_x509_crl_init(&crl)) < 0 || (rc = gnutls_x509_crl_set_version(crl, 2)) < 0 ||
	    (rc = gnutls_x509_crl_set_this_update(crl, now)) < 0 ||
	    (rc = gnutls_x509_crl_set_next_update(crl, now + CRL_DAYS * DAY)) < 0 ||
	    (rc = gnutls_x509_crl_set_number(crl, num + skip, sizeof num - skip)) < 0 ||
	    (rc = gnutls_x509_crt_get_subject_key_id(p->ca, aki, &akilen, NULL)) < 0 ||
	    (rc = gnutls_x509_crl_set_authority_key_id(crl, aki, akilen)) < 0)
		goto gfail;
	/* GnuTLS writes no per-entry extensions, so the reason code lives in the
	 * index only; relying parties deny a listed serial whatever the reason. */
	for (size_t i = 0; i < p->n; i++) {
		size_t slen = sizeof serial;

		if (p->certs[i].state != TLS_CERT_REVOKED)
			continue;
		if (hex_to_bytes(p->certs[i].serial, serial, &slen) < 0) {
			rc = pki_fail(p, TLS_E_CONFIG, "index: bad serial %s", p->certs[i].serial);
			goto out;
		}
		if ((rc = gnutls_x509_crl_set_crt_serial(crl, serial, slen,
							 (time_t)p->certs[i].revoked_at)) < 0)
			goto gfail;
	}
	if ((rc = gnutls_x509_crl_privkey_sign(crl, p->ca, p->ca_key, GNUTLS_DIG_SHA256, 0)) < 0)
		goto gfail;
	if ((rc = export_pem(p, crl_export2, crl, &out)) < 0)
		goto out;
	/* The counter is saved before the CRL: a crash in between skips a number
	 * but never issues one twice. */
	p->crl_number = next;
	p->dirty = true;
	if ((rc = index_save(p)) < 0)
		goto out;
	path = path_in(p, NULL, "crl.pem");
	if (!path || tls_pki_write_file(path, out.data, out.size, 0644) < 0) {
		rc = pki_fail(p, TLS_E_IO, "%s: %s", path ? path : "crl.pem", strerror(errno));
		goto out;
	}
	p->revoked = false;
	*pem = malloc(out.size + 1);
	if (!*pem) {
		rc = pki_fail(p, TLS_E_NOMEM, "out of memory");
		goto out;
	}
	memcpy(*pem, out.data, out.size);
	(*pem)[out.size] = '\0';
	*len = out.size;
	rc = 0;
	goto out;
gfail:
	rc = gt_fail(p, rc, "CRL");
out:
	free(path);
	gnutls_free(out.data);
	gnutls_x509_crl_deinit(crl);
	return rc;
}

int tls_pki_commit(struct tls_pki *p)
{
	int rc;

	if (!p->write)
		return pki_fail(p, TLS_E_CONFIG, "CA directory opened read-only");
	if (p->dirty && (rc = index_save(p)) < 0)
		return rc;
	if (p->revoked) {
		char *pem;
		size_t len;

		if ((rc = tls_pki_crl(p, &pem, &len)) < 0)
			return rc;
		free(pem);
	}
	return 0;
}

int tls_pki_list(const struct tls_pki *p, int64_t now, struct tls_pki_cert **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (p->n == 0)
		return 0;
	*out = calloc(p->n, sizeof **out);
	if (!*out)
		return TLS_E_NOMEM;
	for (size_t i = 0; i < p->n; i++) {
		(*out)[i] = p->certs[i];
		if ((*out)[i].state == TLS_CERT_VALID && (*out)[i].not_after <= now)
			(*out)[i].state = TLS_CERT_EXPIRED;
	}
	*n = p->n;
	return 0;
}
