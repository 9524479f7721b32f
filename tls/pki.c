/*
 * Certificate lifecycle for dirbridge-cert (see tls.h), the CA directory
 * itself: opening and locking it, the index of issued certificates, committing
 * changes, and the helpers that need no CA.  pki_issue.c makes certificates
 * (the CA, PKCS#12 bundles, signed CSRs); pki_crl.c revokes and signs CRLs.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <jansson.h>

#include "tls/internal.h"

int tls_pki_fail(struct tls_pki *p, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->err, sizeof p->err, fmt, ap);
	va_end(ap);
	return rc;
}

int tls_pki_gt_fail(struct tls_pki *p, int grc, const char *what)
{
	return tls_pki_fail(p, grc == GNUTLS_E_MEMORY_ERROR ? TLS_E_NOMEM : TLS_E_CONFIG, "%s: %s",
			    what, gnutls_strerror(grc));
}

const char *tls_pki_error(const struct tls_pki *p)
{
	return p ? p->err : "no CA directory";
}

/* ---- pure helpers -------------------------------------------------------- */

int tls_pki_serial_norm(const char *in, char out[TLS_PKI_SERIAL_MAX])
{
	char hex[TLS_PKI_SERIAL_MAX];
	size_t n = 0;
	bool lead = true;

	if (!in)
		return TLS_E_CONFIG;
	for (const char *c = in; *c; c++) {
		if (*c == ':')
			continue;
		if (!isxdigit((unsigned char)*c))
			return TLS_E_CONFIG;
		if (lead && *c == '0')
			continue;
		lead = false;
		if (n + 1 >= sizeof hex)
			return TLS_E_CONFIG;
		hex[n++] = (char)tolower((unsigned char)*c);
	}
	if (n == 0)
		return TLS_E_CONFIG;	/* zero is not a serial number */
	/* Whole bytes, so the text matches the certificate's bytes one to one. */
	size_t off = n % 2;
	if (n + off >= TLS_PKI_SERIAL_MAX)
		return TLS_E_CONFIG;
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
		return TLS_E_CONFIG;
	*out = (int64_t)timegm(&tm);
	return 0;
}

char *tls_pki_path(const struct tls_pki *p, const char *dir, const char *name)
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
	return gnutls_load_file(path, d) < 0 ? TLS_E_CONFIG : 0;
}

/* ---- the index ------------------------------------------------------------ */

int tls_pki_index_add(struct tls_pki *p, const struct tls_pki_cert *c)
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 16;
		struct tls_pki_cert *nc = reallocarray(p->certs, cap, sizeof *nc);

		if (!nc)
			return tls_pki_fail(p, TLS_E_NOMEM, "out of memory");
		p->certs = nc;
		p->cap = cap;
	}
	p->certs[p->n++] = *c;
	p->dirty = true;
	return 0;
}

static int index_load(struct tls_pki *p)
{
	char *path = tls_pki_path(p, NULL, "index.json");
	json_error_t je;
	json_t *root = NULL, *certs, *v;
	json_int_t num;
	size_t i;
	int version = 0;
	int rc = TLS_E_CONFIG;

	if (!path)
		return tls_pki_fail(p, TLS_E_NOMEM, "out of memory");
	root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		rc = tls_pki_fail(p, TLS_E_CONFIG, "%s: %s (line %d)", path,
				  access(path, F_OK) ? "missing; was the CA made with init-ca?"
						 : "corrupt index",
			      je.line);
		goto out;
	}
	if (json_unpack_ex(root, &je, JSON_STRICT, "{s:i, s:I, s:o}", "version", &version,
			   "crl_number", &num, "certs", &certs) < 0 ||
	    version != 1 || num < 0 || !json_is_array(certs)) {
		rc = tls_pki_fail(p, TLS_E_CONFIG, "%s: corrupt index: %s", path, je.text);
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
			rc = tls_pki_fail(p, TLS_E_CONFIG, "%s: corrupt index: record %zu %s", path,
					  i + 1, je.text);
			goto out;
		}
		strcpy(c.user, user);
		if (strcmp(status, "revoked") == 0) {
			c.status = TLS_CERT_REVOKED;
			if (!ra || !reason || parse_time(ra, &c.revoked_at) < 0 ||
			    (c.reason = tls_pki_reason_code(reason)) < 0) {
				rc = tls_pki_fail(p, TLS_E_CONFIG,
						  "%s: corrupt index: record %zu revoked without time or reason",
						  path, i + 1);
				goto out;
			}
		} else if (strcmp(status, "valid") == 0 && !ra && !reason) {
			c.status = TLS_CERT_VALID;
		} else {
			rc = tls_pki_fail(p, TLS_E_CONFIG, "%s: corrupt index: record %zu status", path,
					  i + 1);
			goto out;
		}
		if ((rc = tls_pki_index_add(p, &c)) < 0)
			goto out;
	}
	p->dirty = false;
	rc = 0;
out:
	json_decref(root);
	free(path);
	return rc;
}

int tls_pki_index_save(struct tls_pki *p)
{
	json_t *root = NULL, *arr = json_array();
	char *path = tls_pki_path(p, NULL, "index.json"), *text = NULL;
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
			      c->status == TLS_CERT_REVOKED ? "revoked" : "valid");
		if (o && c->status == TLS_CERT_REVOKED) {
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
		rc = tls_pki_fail(p, TLS_E_IO, "%s: %s", path, strerror(errno));
		goto out;
	}
	p->dirty = false;
	rc = 0;
out:
	if (rc == TLS_E_NOMEM)
		tls_pki_fail(p, rc, "out of memory");
	free(text);
	json_decref(root);
	json_decref(arr);
	free(path);
	return rc;
}

int tls_pki_export_pem(struct tls_pki *p, int (*exp)(void *, gnutls_x509_crt_fmt_t, gnutls_datum_t *),
		       void *obj, gnutls_datum_t *out)
{
	int rc = exp(obj, GNUTLS_X509_FMT_PEM, out);

	return rc < 0 ? tls_pki_gt_fail(p, rc, "export") : 0;
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
		rc = tls_pki_fail(p, TLS_E_CONFIG, "%s: not a CA directory (%s)", dir, strerror(errno));
		goto fail;
	}
	if (!S_ISDIR(st.st_mode)) {
		rc = tls_pki_fail(p, TLS_E_CONFIG, "%s: not a CA directory (not a directory)", dir);
		goto fail;
	}
	path = tls_pki_path(p, NULL, "ca.key");
	if (!path || access(path, F_OK) < 0) {
		rc = tls_pki_fail(p, TLS_E_CONFIG, "%s has no CA; create one with: dirbridge-cert init-ca --dir %s --cn NAME",
				  dir, dir);
		goto fail;
	}
	free(path);
	path = tls_pki_path(p, NULL, ".lock");
	/* Readers take a shared lock, writers an exclusive one, so a reader never
	 * sees the index between a writer's changes. */
	p->lock_fd = path ? open(path, (write ? O_RDWR | O_CREAT : O_RDONLY) | O_CLOEXEC, 0600) : -1;
	if (p->lock_fd < 0 || flock(p->lock_fd, write ? LOCK_EX : LOCK_SH) < 0) {
		rc = tls_pki_fail(p, TLS_E_CONFIG, "%s: cannot lock: %s", dir, strerror(errno));
		goto fail;
	}
	free(path);
	path = tls_pki_path(p, NULL, "ca.pem");
	if (!path || read_datum(path, &d) < 0 || gnutls_x509_crt_init(&p->ca) < 0 ||
	    gnutls_x509_crt_import(p->ca, &d, GNUTLS_X509_FMT_PEM) < 0) {
		rc = tls_pki_fail(p, TLS_E_CONFIG, "%s: missing or not a PEM certificate", path);
		goto fail;
	}
	gnutls_free(d.data);
	d.data = NULL;
	free(path);
	path = tls_pki_path(p, NULL, "ca.key");
	if (!path || read_datum(path, &d) < 0 || gnutls_x509_privkey_init(&p->ca_xkey) < 0 ||
	    gnutls_x509_privkey_import(p->ca_xkey, &d, GNUTLS_X509_FMT_PEM) < 0 ||
	    gnutls_privkey_init(&p->ca_key) < 0 ||
	    gnutls_privkey_import_x509(p->ca_key, p->ca_xkey, 0) < 0) {
		rc = tls_pki_fail(p, TLS_E_CONFIG, "%s: missing or not a PEM private key", path);
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

int tls_pki_commit(struct tls_pki *p)
{
	int rc;

	if (!p->write)
		return tls_pki_fail(p, TLS_E_CONFIG, "CA directory opened read-only");
	if (p->dirty && (rc = tls_pki_index_save(p)) < 0)
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
		if ((*out)[i].status == TLS_CERT_VALID && (*out)[i].not_after <= now)
			(*out)[i].status = TLS_CERT_EXPIRED;
	}
	*n = p->n;
	return 0;
}
