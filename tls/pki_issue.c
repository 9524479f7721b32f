/*
 * Issuing certificates from a CA directory (see tls.h and pki.c): the CA's own
 * certificate, client certificates in PKCS#12 bundles with a fresh key, and
 * certificates for a user's CSR, all with GnuTLS's x509/pkcs12/crq APIs.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/pkcs12.h>

#include "tls/internal.h"

static void bytes_to_hex(const unsigned char *b, size_t n, char out[TLS_PKI_SERIAL_MAX])
{
	char raw[TLS_PKI_SERIAL_MAX] = "";

	for (size_t i = 0; i < n && 2 * i + 2 < sizeof raw; i++)
		snprintf(raw + 2 * i, 3, "%02x", b[i]);
	if (tls_pki_serial_norm(raw, out) < 0)
		out[0] = '\0';
}

/* ---- keys and certificates ------------------------------------------------ */

static int new_serial(struct tls_pki *p, unsigned char serial[16])
{
	char hex[TLS_PKI_SERIAL_MAX];

	for (int tries = 0; tries < 16; tries++) {
		bool dup = false;

		if (gnutls_rnd(GNUTLS_RND_NONCE, serial, 16) < 0)
			return tls_pki_fail(p, TLS_E_NOMEM, "random generator failed");
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
	return tls_pki_fail(p, TLS_E_PROTO, "could not draw a fresh serial number");
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
		return tls_pki_gt_fail(p, rc, "certificate");
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
		return tls_pki_gt_fail(p, rc, "key generation");
	}
	return 0;
}

static int crt_export2(void *o, gnutls_x509_crt_fmt_t f, gnutls_datum_t *d)
{
	return gnutls_x509_crt_export2(o, f, d);
}

static int key_export2(void *o, gnutls_x509_crt_fmt_t f, gnutls_datum_t *d)
{
	return gnutls_x509_privkey_export2(o, f, d);
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
	char *lpath = tls_pki_path(p, NULL, ".lock");
	fd = lpath ? open(lpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600) : -1;
	free(lpath);
	if (fd < 0 || flock(fd, LOCK_EX) < 0) {
		rc = tls_pki_fail(p, TLS_E_CONFIG, "%s: cannot lock: %s", dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		goto out;
	}
	p->lock_fd = fd;
	kpath = tls_pki_path(p, NULL, "ca.key");
	cpath = tls_pki_path(p, NULL, "ca.pem");
	ipath = tls_pki_path(p, NULL, "index.json");
	if (!kpath || !cpath || !ipath) {
		rc = tls_pki_fail(p, TLS_E_NOMEM, "out of memory");
		goto out;
	}
	if (access(kpath, F_OK) == 0 || access(cpath, F_OK) == 0 || access(ipath, F_OK) == 0) {
		rc = tls_pki_fail(p, TLS_E_CONFIG, "%s already holds a CA; refusing to overwrite it", dir);
		goto out;
	}
	if ((rc = new_key(p, type, &xkey, &key, &pub)) < 0 || (rc = new_serial(p, serial)) < 0)
		goto out;
	if ((rc = gnutls_x509_crt_init(&crt)) < 0) {
		rc = tls_pki_gt_fail(p, rc, "certificate");
		goto out;
	}
	if ((rc = crt_base(p, crt, pub, cn, now - PKI_BACKDATE, now + (int64_t)days * PKI_DAY, serial)) < 0)
		goto out;
	if ((rc = gnutls_x509_crt_set_basic_constraints(crt, 1, -1)) < 0 ||
	    (rc = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_KEY_CERT_SIGN |
							     GNUTLS_KEY_CRL_SIGN)) < 0 ||
	    (rc = gnutls_x509_crt_privkey_sign(crt, crt, key, GNUTLS_DIG_SHA256, 0)) < 0) {
		rc = tls_pki_gt_fail(p, rc, "CA certificate");
		goto out;
	}
	if ((rc = tls_pki_export_pem(p, crt_export2, crt, &cpem)) < 0 ||
	    (rc = tls_pki_export_pem(p, key_export2, xkey, &kpem)) < 0)
		goto out;
	/* Key first: a directory with ca.pem but no key is never left behind. */
	if (tls_pki_write_file(kpath, kpem.data, kpem.size, 0600) < 0 ||
	    tls_pki_write_file(cpath, cpem.data, cpem.size, 0644) < 0) {
		rc = tls_pki_fail(p, TLS_E_IO, "%s: %s", dir, strerror(errno));
		unlink(kpath);
		goto out;
	}
	p->ca = crt;
	p->ca_key = key;
	p->ca_not_after = now + (int64_t)days * PKI_DAY;
	crt = NULL;
	key = NULL;
	p->write = true;
	p->dirty = true;
	if ((rc = tls_pki_index_save(p)) < 0) {
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
	if (!p->write && !p->worker)
		return tls_pki_fail(p, TLS_E_CONFIG, "CA directory opened read-only");
	if (days == 0 || days > 36500)
		return tls_pki_fail(p, TLS_E_CONFIG, "--days must be 1..36500");
	if (strlen(user) >= TLS_PKI_USER_MAX)
		return tls_pki_fail(p, TLS_E_CONFIG, "user name too long");
	na = now + (int64_t)days * PKI_DAY;
	if (na > p->ca_not_after)
		na = p->ca_not_after;
	if (na <= now)
		return tls_pki_fail(p, TLS_E_CONFIG, "the CA certificate has expired");
	if ((rc = new_serial(p, serial)) < 0)
		return rc;
	if ((rc = gnutls_x509_crt_init(&crt)) < 0)
		return tls_pki_gt_fail(p, rc, "certificate");
	if ((rc = crt_base(p, crt, pub, user, now - PKI_BACKDATE, na, serial)) < 0)
		goto fail;
	if ((rc = gnutls_x509_crt_set_basic_constraints(crt, 0, -1)) < 0 ||
	    (rc = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE)) < 0 ||
	    (rc = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_CLIENT, 0)) < 0 ||
	    (rc = gnutls_x509_crt_get_subject_key_id(p->ca, aki, &akilen, NULL)) < 0 ||
	    (rc = gnutls_x509_crt_set_authority_key_id(crt, aki, akilen)) < 0 ||
	    (rc = gnutls_x509_crt_privkey_sign(crt, p->ca, p->ca_key, GNUTLS_DIG_SHA256, 0)) < 0) {
		rc = tls_pki_gt_fail(p, rc, "signing the certificate");
		goto fail;
	}
	memset(rec, 0, sizeof *rec);
	bytes_to_hex(serial, 16, rec->serial);
	strcpy(rec->user, user);
	rec->not_before = now - PKI_BACKDATE;
	rec->not_after = na;
	rec->status = TLS_CERT_VALID;
	*out = crt;
	return 0;
fail:
	gnutls_x509_crt_deinit(crt);
	return rc;
}

/* PKCS#12: an encrypted bag with the certificate and the CA, a shrouded key
 * bag, both named USER and tied by the key id.  MODERN encrypts both with
 * PBES2/AES-256 and MACs with SHA-256; COMPAT uses PKCS#12's own
 * pbeWithSHAAnd3-KeyTripleDES-CBC and a SHA-1 MAC, the form `openssl pkcs12
 * -legacy` writes, for the importers that refuse PBES2 (docs/certificates.md). */
static int make_p12(struct tls_pki *p, const char *user, gnutls_x509_crt_t crt,
		    gnutls_x509_privkey_t key, const char *password, enum tls_p12_format fmt,
		    gnutls_datum_t *out)
{
	gnutls_pkcs12_t p12 = NULL;
	gnutls_pkcs12_bag_t cbag = NULL, kbag = NULL;
	unsigned char id[64];
	size_t idlen = sizeof id;
	gnutls_datum_t kid;
	bool compat = fmt == TLS_P12_COMPAT;
	unsigned enc = compat ? GNUTLS_PKCS_PKCS12_3DES : GNUTLS_PKCS_PBES2_AES_256;
	gnutls_mac_algorithm_t mac = compat ? GNUTLS_MAC_SHA1 : GNUTLS_MAC_SHA256;
	int rc, ci, ki, ai;

	if (fmt != TLS_P12_MODERN && fmt != TLS_P12_COMPAT)
		return tls_pki_fail(p, TLS_E_CONFIG, "unknown PKCS#12 format %d", (int)fmt);
	if ((rc = gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA1, id, &idlen)) < 0 ||
	    (rc = gnutls_pkcs12_bag_init(&cbag)) < 0 || (rc = gnutls_pkcs12_bag_init(&kbag)) < 0 ||
	    (rc = ci = gnutls_pkcs12_bag_set_crt(cbag, crt)) < 0 ||
	    (rc = ai = gnutls_pkcs12_bag_set_crt(cbag, p->ca)) < 0)
		goto gfail;
	kid.data = id;
	kid.size = (unsigned)idlen;
	if ((rc = gnutls_pkcs12_bag_set_friendly_name(cbag, (unsigned)ci, user)) < 0 ||
	    (rc = gnutls_pkcs12_bag_set_key_id(cbag, (unsigned)ci, &kid)) < 0 ||
	    (rc = gnutls_pkcs12_bag_encrypt(cbag, password, enc)) < 0 ||
	    (rc = ki = gnutls_pkcs12_bag_set_privkey(kbag, key, password, enc)) < 0 ||
	    (rc = gnutls_pkcs12_bag_set_friendly_name(kbag, (unsigned)ki, user)) < 0 ||
	    (rc = gnutls_pkcs12_bag_set_key_id(kbag, (unsigned)ki, &kid)) < 0 ||
	    (rc = gnutls_pkcs12_init(&p12)) < 0 || (rc = gnutls_pkcs12_set_bag(p12, cbag)) < 0 ||
	    (rc = gnutls_pkcs12_set_bag(p12, kbag)) < 0 ||
	    (rc = gnutls_pkcs12_generate_mac2(p12, mac, password)) < 0 ||
	    (rc = gnutls_pkcs12_export2(p12, GNUTLS_X509_FMT_DER, out)) < 0)
		goto gfail;
	(void)ai;
	rc = 0;
	goto out;
gfail:
	rc = tls_pki_gt_fail(p, rc, "PKCS#12");
out:
	gnutls_pkcs12_bag_deinit(cbag);
	gnutls_pkcs12_bag_deinit(kbag);
	gnutls_pkcs12_deinit(p12);
	return rc;
}

int tls_pki_make(struct tls_pki *p, const char *user, unsigned days, const char *password,
		 enum tls_p12_format fmt, unsigned char **p12, size_t *p12_len,
		 struct tls_pki_cert *out)
{
	gnutls_x509_privkey_t xkey = NULL;
	gnutls_privkey_t key = NULL;
	gnutls_pubkey_t pub = NULL;
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t der = { NULL, 0 };
	int rc;

	*p12 = NULL;
	*p12_len = 0;
	if (!password || !*password)
		return tls_pki_fail(p, TLS_E_CONFIG, "empty PKCS#12 password");
	if ((rc = new_key(p, TLS_KEY_ECDSA, &xkey, &key, &pub)) < 0)
		return rc;
	if ((rc = user_cert(p, user, days, pub, &crt, out)) < 0 ||
	    (rc = make_p12(p, user, crt, xkey, password, fmt, &der)) < 0)
		goto out;
	/* Copied into malloc'd memory so the caller frees it like everything else. */
	*p12 = malloc(der.size);
	if (!*p12) {
		rc = tls_pki_fail(p, TLS_E_NOMEM, "out of memory");
		goto out;
	}
	memcpy(*p12, der.data, der.size);
	*p12_len = der.size;
out:
	if (der.data) {
		explicit_bzero(der.data, der.size);
		gnutls_free(der.data);
	}
	gnutls_x509_crt_deinit(crt);
	gnutls_pubkey_deinit(pub);
	gnutls_privkey_deinit(key);
	gnutls_x509_privkey_deinit(xkey);
	return rc;
}

int tls_pki_record(struct tls_pki *p, const struct tls_pki_cert *rec)
{
	if (!p->write)
		return tls_pki_fail(p, TLS_E_CONFIG, "CA directory opened read-only");
	/* A worker drew the serial without seeing the index; 128 random bits
	 * make a repeat all but impossible, but it must still never be recorded. */
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->certs[i].serial, rec->serial) == 0)
			return tls_pki_fail(p, TLS_E_PROTO, "serial %s drawn twice; issue again",
					    rec->serial);
	return tls_pki_index_add(p, rec);
}

int tls_pki_issue(struct tls_pki *p, const char *user, unsigned days, const char *password,
		  enum tls_p12_format fmt, unsigned char **p12, size_t *p12_len,
		  struct tls_pki_cert *out)
{
	struct tls_pki_cert rec;
	int rc;

	if ((rc = tls_pki_make(p, user, days, password, fmt, p12, p12_len, &rec)) < 0)
		return rc;
	if ((rc = tls_pki_index_add(p, &rec)) < 0) {
		explicit_bzero(*p12, *p12_len);
		free(*p12);
		*p12 = NULL;
		*p12_len = 0;
		return rc;
	}
	if (out)
		*out = rec;
	return 0;
}

int tls_pki_worker(struct tls_pki *p, struct tls_pki **out)
{
	struct tls_pki *w;
	gnutls_datum_t der = { NULL, 0 };
	int rc;

	*out = NULL;
	if (!p->write)
		return tls_pki_fail(p, TLS_E_CONFIG, "CA directory opened read-only");
	w = calloc(1, sizeof *w);
	if (!w)
		return tls_pki_fail(p, TLS_E_NOMEM, "out of memory");
	w->lock_fd = -1;
	w->worker = true;
	w->ca_not_after = p->ca_not_after;
	/* Copies through DER and gnutls_x509_privkey_cpy: GnuTLS objects may be
	 * used from several threads only when each thread has its own. */
	if ((rc = gnutls_x509_crt_export2(p->ca, GNUTLS_X509_FMT_DER, &der)) < 0 ||
	    (rc = gnutls_x509_crt_init(&w->ca)) < 0 ||
	    (rc = gnutls_x509_crt_import(w->ca, &der, GNUTLS_X509_FMT_DER)) < 0 ||
	    (rc = gnutls_x509_privkey_init(&w->ca_xkey)) < 0 ||
	    (rc = gnutls_x509_privkey_cpy(w->ca_xkey, p->ca_xkey)) < 0 ||
	    (rc = gnutls_privkey_init(&w->ca_key)) < 0 ||
	    (rc = gnutls_privkey_import_x509(w->ca_key, w->ca_xkey, 0)) < 0) {
		gnutls_free(der.data);
		tls_pki_close(w);
		return tls_pki_gt_fail(p, rc, "CA copy for a worker");
	}
	gnutls_free(der.data);
	*out = w;
	return 0;
}

/* Whether a CSR's key is one we sign: the policy client certificates are held
 * to when they sign in (tls_key_policy). */
static int csr_key_ok(struct tls_pki *p, gnutls_pubkey_t pub)
{
	char why[128];

	if (tls_key_policy(pub, why, sizeof why) < 0)
		return tls_pki_fail(p, TLS_E_VERIFY, "CSR key %s", why);
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
		return tls_pki_fail(p, TLS_E_CONFIG, "CSR too large");
	if ((rc = gnutls_x509_crq_init(&crq)) < 0)
		return tls_pki_gt_fail(p, rc, "CSR");
	if (gnutls_x509_crq_import(crq, &in, GNUTLS_X509_FMT_PEM) < 0 &&
	    gnutls_x509_crq_import(crq, &in, GNUTLS_X509_FMT_DER) < 0) {
		rc = tls_pki_fail(p, TLS_E_CONFIG, "not a PKCS#10 certificate request (PEM or DER)");
		goto out;
	}
	if (gnutls_x509_crq_verify(crq, 0) < 0) {
		rc = tls_pki_fail(p, TLS_E_VERIFY, "CSR self-signature does not verify");
		goto out;
	}
	rc = gnutls_x509_crq_get_dn_by_oid(crq, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &cnlen);
	if (rc < 0 || strlen(cn) != cnlen) {
		rc = tls_pki_fail(p, TLS_E_VERIFY, "CSR subject has no usable CN");
		goto out;
	}
	/* A second CN could name another user to a lax relying party. */
	if (gnutls_x509_crq_get_dn_by_oid(crq, GNUTLS_OID_X520_COMMON_NAME, 1, 0, NULL, &extra) !=
	    GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE) {
		rc = tls_pki_fail(p, TLS_E_VERIFY, "CSR subject has more than one CN");
		goto out;
	}
	if (!tls_pki_user_eq(cn, user)) {
		rc = tls_pki_fail(p, TLS_E_VERIFY, "CSR is for CN=%.64s, not for %.64s", cn, user);
		goto out;
	}
	if ((rc = gnutls_pubkey_init(&pub)) < 0 || (rc = gnutls_pubkey_import_x509_crq(pub, crq, 0)) < 0) {
		rc = tls_pki_gt_fail(p, rc, "CSR key");
		goto out;
	}
	if ((rc = csr_key_ok(p, pub)) < 0 || (rc = user_cert(p, user, days, pub, &crt, &rec)) < 0 ||
	    (rc = tls_pki_export_pem(p, crt_export2, crt, &cp)) < 0)
		goto out;
	*pem = malloc(cp.size + 1);
	if (!*pem) {
		rc = tls_pki_fail(p, TLS_E_NOMEM, "out of memory");
		goto out;
	}
	memcpy(*pem, cp.data, cp.size);
	(*pem)[cp.size] = '\0';
	if ((rc = tls_pki_index_add(p, &rec)) < 0) {
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
