/*
 * dirbridge-cert: the client-certificate lifecycle (docs/certificates.md):
 * init-ca, issue, sign-csr, revoke, crl, list.  The logic lives in tls/pki.c;
 * this file parses arguments, reads and writes the files the user names and
 * turns failures into one-line messages and exit statuses.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "tools/cert/cert.h"

static void usage(FILE *f)
{
	fputs("usage: dirbridge-cert COMMAND --dir DIR [options]\n"
	      "  init-ca  --dir D --cn NAME [--days N] [--key-type ecdsa|rsa]\n"
	      "  issue    --dir D --user NAME [--days N] [--revoke-prior] [--out FILE.p12]\n"
	      "           [--password-file F] [-c agent.ini: issue to the directory's user]\n"
	      "           [--p12-format modern|compat]\n"
	      "  issue    --dir D (--users a,b,c [-c agent.ini] | --from-ldap -c agent.ini\n"
	      "           [--filter F]) --out-dir DIR [--zip FILE] [--days N] [--revoke-prior]\n"
	      "           [--p12-format modern|compat]\n"
	      "  (--p12-format compat: 3DES and a SHA-1 MAC, for macOS before Sonoma and\n"
	      "   older Windows; modern, the default: AES-256 and a SHA-256 MAC)\n"
	      "  sign-csr --dir D --csr FILE --user NAME [--days N] --out FILE.pem [-c agent.ini]\n"
	      "  revoke   --dir D (--serial HEX | --user NAME [-c agent.ini]) [--reason REASON]\n"
	      "  crl      --dir D --out FILE\n"
	      "  list     --dir D [-c agent.ini] [--status unissued|valid|expired|revoked]\n"
	      "           [--user NAME] [--all] [--json]\n"
	      "With -c, issue and sign-csr use the directory's spelling of each user name;\n"
	      "without it, names must be ASCII.  Names match ignoring ASCII case.\n"
	      "Common: -h, --version.  Exit 0 success, 1 failure, 2 usage or configuration.\n",
	      f);
}

static void fmt_time(int64_t t, char buf[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm) || !strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, 32, "%lld", (long long)t);
}

static const char *status_name(enum tls_cert_status s)
{
	return s == TLS_CERT_VALID ? "valid" : s == TLS_CERT_EXPIRED ? "expired" : "revoked";
}

/* Reads a file the user named (bounded); NUL-terminated, *len without it. */
static int read_input(const char *path, size_t max, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n;

	*out = NULL;
	if (!f)
		return -1;
	buf = malloc(max + 1);
	if (!buf) {
		fclose(f);
		return -1;
	}
	n = fread(buf, 1, max + 1, f);
	if (ferror(f) || n > max) {
		int e = ferror(f) ? EIO : EFBIG;

		explicit_bzero(buf, max + 1);
		free(buf);
		fclose(f);
		errno = e;
		return -1;
	}
	fclose(f);
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

/* The first line of a private password file; 1..1024 printable bytes. */
static int read_password(const char *path, char **out)
{
	struct stat st;
	char *buf;
	size_t len;
	int fd;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		if (fd >= 0)
			close(fd);
		return die(EXIT_USAGE, "%s: cannot read password file%s%s", path,
			   errno ? ": " : "", errno ? strerror(errno) : "");
	}
	close(fd);
	if (st.st_mode & 077)
		return die(EXIT_USAGE, "%s: password file is readable by others; chmod 600 it", path);
	if (read_input(path, 4096, &buf, &len) < 0)
		return die(EXIT_USAGE, "%s: cannot read password file: %s", path, strerror(errno));
	len = strcspn(buf, "\r\n");
	buf[len] = '\0';
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
			len = 0;
	}
	if (len == 0 || len > 1024 || memchr(buf, '\0', len)) {
		explicit_bzero(buf, 4096);
		free(buf);
		return die(EXIT_USAGE, "%s: bad password file: want one line of 1..1024 printable characters",
			   path);
	}
	*out = buf;
	return 0;
}

static void free_password(char *pw)
{
	if (pw) {
		explicit_bzero(pw, strlen(pw));
		free(pw);
	}
}

static int open_pki(const struct opts *o, bool write, struct tls_pki **p)
{
	char err[512];

	if (tls_pki_open(o->dir, write, p, err, sizeof err) < 0)
		return die(EXIT_USAGE, "%s", err);
	return 0;
}

static int cmd_init_ca(const struct opts *o)
{
	enum tls_key_type kt = TLS_KEY_ECDSA;
	char err[512];

	if (!o->cn || !*o->cn)
		return die(EXIT_USAGE, "init-ca needs --cn NAME");
	if (o->key_type && strcmp(o->key_type, "rsa") == 0)
		kt = TLS_KEY_RSA;
	else if (o->key_type && strcmp(o->key_type, "ecdsa") != 0)
		return die(EXIT_USAGE, "--key-type must be ecdsa or rsa");
	if (tls_pki_init_ca(o->dir, o->cn, o->days_set ? o->days : 3650, kt, err, sizeof err) < 0)
		return die(EXIT_USAGE, "%s", err);
	printf("CA created in %s\n", o->dir);
	return EXIT_OK;
}

static int cmd_issue_one(const struct opts *o)
{
	struct tls_pki *p = NULL;
	struct tls_pki_cert rec;
	unsigned char *p12 = NULL;
	size_t p12_len = 0;
	char *pw = NULL, gen[PASSWORD_LEN], *out = NULL, na[32];
	int rc;

	if (!username_ok(o->user))
		return die(EXIT_USAGE, "--user: not a valid directory user name");
	if (o->password_file && (rc = read_password(o->password_file, &pw)) != 0)
		return rc;
	if (!pw && tls_pki_password(gen, sizeof gen) < 0) {
		rc = die(EXIT_RUNTIME, "random generator failed");
		goto out;
	}
	if (o->out)
		out = strdup(o->out);
	else if (asprintf(&out, "%s.p12", o->user) < 0)
		out = NULL;
	if (!out) {
		rc = die(EXIT_RUNTIME, "out of memory");
		goto out;
	}
	if ((rc = open_pki(o, true, &p)) != 0)
		goto out;
	if (o->revoke_prior && tls_pki_revoke_user(p, o->user, tls_pki_reason_code("superseded")) < 0) {
		rc = die(EXIT_RUNTIME, "%s", tls_pki_error(p));
		goto out;
	}
	if (tls_pki_issue(p, o->user, o->days_set ? o->days : 365, pw ? pw : gen, o->p12_format,
			  &p12, &p12_len, &rec) < 0) {
		rc = die(EXIT_RUNTIME, "%s", tls_pki_error(p));
		goto out;
	}
	/* The file first, then the index: a failed commit takes the file back,
	 * so a certificate is never recorded without having been delivered. */
	if (tls_pki_write_file(out, p12, p12_len, 0600) < 0) {
		rc = die(EXIT_RUNTIME, "%s: %s", out, strerror(errno));
		goto out;
	}
	if (tls_pki_commit(p) < 0) {
		unlink(out);
		rc = die(EXIT_RUNTIME, "%s", tls_pki_error(p));
		goto out;
	}
	fmt_time(rec.not_after, na);
	printf("user: %s\nserial: %s\nnot_after: %s\nfile: %s\n", rec.user, rec.serial, na, out);
	if (!pw)
		printf("password: %s\n", gen);
	rc = EXIT_OK;
out:
	explicit_bzero(gen, sizeof gen);
	free_password(pw);
	if (p12) {
		explicit_bzero(p12, p12_len);
		free(p12);
	}
	free(out);
	tls_pki_close(p);
	return rc;
}

/* Splits "a,b,c" into names, refusing empty, invalid and repeated ones. */
static int split_users(const char *list, char ***out, size_t *n)
{
	char *copy = strdup(list), *save = NULL, *tok;
	char **v = NULL;
	size_t k = 0;
	int rc = EXIT_OK;

	*out = NULL;
	*n = 0;
	if (!copy)
		return die(EXIT_RUNTIME, "out of memory");
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char **nv;

		if (!username_ok(tok)) {
			rc = die(EXIT_USAGE, "--users: '%.64s' is not a valid directory user name", tok);
			break;
		}
		for (size_t i = 0; i < k; i++)
			if (tls_pki_user_eq(v[i], tok))
				rc = die(EXIT_USAGE, "--users: '%.64s' given twice", tok);
		if (rc)
			break;
		nv = realloc(v, (k + 1) * sizeof *v);
		if (!nv || !(nv[k] = strdup(tok))) {
			v = nv ? nv : v;
			rc = die(EXIT_RUNTIME, "out of memory");
			break;
		}
		v = nv;
		k++;
	}
	free(copy);
	if (rc == EXIT_OK && k == 0)
		rc = die(EXIT_USAGE, "--users: no user names");
	if (rc) {
		free_users(v, k);
		return rc;
	}
	*out = v;
	*n = k;
	return EXIT_OK;
}

/* The directory's own name for --user (with -c), or --user itself when plain;
 * *own malloc'd. */
static int user_name(const struct opts *o, char **own)
{
	char **v = NULL, *given;
	int rc;

	*own = NULL;
	if (!username_ok(o->user))
		return die(EXIT_USAGE, "--user: not a valid directory user name");
	if (!(given = strdup(o->user)))
		return die(EXIT_RUNTIME, "out of memory");
	rc = issue_names(o->config, "--user", &given, 1, &v);
	free(given);
	if (rc != EXIT_OK)
		return rc;
	*own = v[0];
	free(v);
	return EXIT_OK;
}

static int cmd_issue(const struct opts *o)
{
	struct opts one = *o;
	char **users = NULL, **own = NULL, *name = NULL;
	size_t n = 0;
	int rc;

	if (o->users || o->from_ldap) {
		if (o->user || o->out)
			return die(EXIT_USAGE, "bulk issue takes --out-dir, not --user/--out");
		if (!o->out_dir)
			return die(EXIT_USAGE, "bulk issue needs --out-dir DIR");
		if (o->users && o->from_ldap)
			return die(EXIT_USAGE, "give either --users or --from-ldap");
		if (o->users) {
			if ((rc = split_users(o->users, &users, &n)) == EXIT_OK &&
			    (rc = issue_names(o->config, "--users", users, n, &own)) == EXIT_OK) {
				free_users(users, n);
				users = own;
			}
		} else if (!o->config) {
			rc = die(EXIT_USAGE, "--from-ldap needs -c agent.ini");
		} else if ((rc = directory_users(o->config, o->filter, &users, &n)) == EXIT_OK) {
			/* Two entries whose names differ only in case would share one
			 * row, one revocation and one NAME.p12 file. */
			if (n == 0)
				rc = die(EXIT_RUNTIME, "no enabled directory user matched%s",
					 o->filter ? " --filter" : "");
			else
				rc = names_distinct(users, n, "--from-ldap");
		}
		if (rc == EXIT_OK)
			rc = cmd_issue_bulk(o, users, n);
		free_users(users, n);
		return rc;
	}
	if (!o->user)
		return die(EXIT_USAGE, "issue needs --user NAME (or --users / --from-ldap)");
	if (o->zip || o->out_dir || o->filter)
		return die(EXIT_USAGE, "--out-dir, --zip and --filter are for bulk issue");
	if ((rc = user_name(o, &name)) != EXIT_OK)
		return rc;
	one.user = name;
	rc = cmd_issue_one(&one);
	free(name);
	return rc;
}

static int cmd_sign_csr(const struct opts *o)
{
	struct tls_pki *p = NULL;
	struct tls_pki_cert rec;
	char *csr = NULL, *pem = NULL, *user = NULL, na[32];
	size_t len;
	int rc;

	if (!o->csr || !o->user || !o->out)
		return die(EXIT_USAGE, "sign-csr needs --csr FILE --user NAME --out FILE.pem");
	if ((rc = user_name(o, &user)) != EXIT_OK)
		return rc;
	if (read_input(o->csr, 1 << 20, &csr, &len) < 0) {
		rc = die(EXIT_USAGE, "%s: cannot read CSR: %s", o->csr, strerror(errno));
		goto out;
	}
	if ((rc = open_pki(o, true, &p)) != 0)
		goto out;
	rc = tls_pki_sign_csr(p, (unsigned char *)csr, len, user, o->days_set ? o->days : 365,
			      &pem, &rec);
	if (rc < 0) {
		/* An unparsable file is bad input; a refused request is a failure. */
		rc = die(rc == TLS_E_CONFIG ? EXIT_USAGE : EXIT_RUNTIME, "%s: %s", o->csr,
			 tls_pki_error(p));
		goto out;
	}
	if (tls_pki_write_file(o->out, pem, strlen(pem), 0644) < 0) {
		rc = die(EXIT_RUNTIME, "%s: %s", o->out, strerror(errno));
		goto out;
	}
	if (tls_pki_commit(p) < 0) {
		unlink(o->out);
		rc = die(EXIT_RUNTIME, "%s", tls_pki_error(p));
		goto out;
	}
	fmt_time(rec.not_after, na);
	printf("user: %s\nserial: %s\nnot_after: %s\nfile: %s\n", rec.user, rec.serial, na, o->out);
	rc = EXIT_OK;
out:
	free(user);
	free(csr);
	free(pem);
	tls_pki_close(p);
	return rc;
}

static int cmd_revoke(const struct opts *o)
{
	struct tls_pki *p = NULL;
	int reason = 0, n = 0, rc;

	if (!!o->serial == !!o->user)
		return die(EXIT_USAGE, "revoke needs exactly one of --serial HEX or --user NAME");
	if (o->reason && (reason = tls_pki_reason_code(o->reason)) < 0)
		return die(EXIT_USAGE, "--reason %.64s: not an RFC 5280 reason (unspecified keyCompromise "
				       "cACompromise affiliationChanged superseded cessationOfOperation "
				       "certificateHold privilegeWithdrawn aACompromise)",
			   o->reason);
	if (o->user && !username_ok(o->user))
		return die(EXIT_USAGE, "--user: not a valid directory user name");
	if ((rc = open_pki(o, true, &p)) != 0)
		return rc;
	if (o->user)
		rc = revoke_user_names(o->config, o->user, p, reason, &n);
	else if ((n = tls_pki_revoke_serial(p, o->serial, reason)) < 0)
		rc = die(n == TLS_E_CONFIG ? EXIT_USAGE : EXIT_RUNTIME, "%s", tls_pki_error(p));
	if (rc != EXIT_OK || n < 0)
		goto out;
	if (n == 0)
		rc = die(EXIT_RUNTIME, "no unrevoked certificate %s %.64s%s",
			 o->serial ? "with serial" : "of user", o->serial ? o->serial : o->user,
			 o->user && !o->config && !name_plain(o->user)
				 ? " (names are matched ignoring ASCII case only; give -c agent.ini to "
				   "find the directory's spelling)"
				 : "");
	else if (tls_pki_commit(p) < 0)
		rc = die(EXIT_RUNTIME, "%s", tls_pki_error(p));
	else
		printf("revoked %d certificate%s (%s); CRL rewritten in %s/crl.pem\n", n,
		       n == 1 ? "" : "s", tls_pki_reason_name(reason), o->dir);
out:
	tls_pki_close(p);
	return rc;
}

static int cmd_crl(const struct opts *o)
{
	struct tls_pki *p = NULL;
	char *pem = NULL;
	size_t len;
	int rc;

	if (!o->out)
		return die(EXIT_USAGE, "crl needs --out FILE");
	if ((rc = open_pki(o, true, &p)) != 0)
		return rc;
	if (tls_pki_crl(p, &pem, &len) < 0)
		rc = die(EXIT_RUNTIME, "%s", tls_pki_error(p));
	else if (tls_pki_write_file(o->out, pem, len, 0644) < 0)
		rc = die(EXIT_RUNTIME, "%s: %s", o->out, strerror(errno));
	free(pem);
	tls_pki_close(p);
	return rc;
}

/* One row of list output; SERIAL and NOT_AFTER are NULL for unissued users. */
static void list_row(json_t *arr, const char *user, const char *status, const struct tls_pki_cert *c)
{
	char na[32] = "-", ra[32];

	if (c)
		fmt_time(c->not_after, na);
	if (!arr) {
		printf("%-24s %-9s %-34s %s\n", user, status, c ? c->serial : "-", na);
		return;
	}
	json_t *o = json_pack("{s:s, s:s, s:s?, s:s?}", "user", user, "status", status, "serial",
			      c ? c->serial : NULL, "not_after", c ? na : NULL);
	if (o && c && c->status == TLS_CERT_REVOKED) {
		fmt_time(c->revoked_at, ra);
		json_object_set_new(o, "revoked_at", json_string(ra));
		json_object_set_new(o, "reason", json_string(tls_pki_reason_name(c->reason)));
	}
	if (o)
		json_array_append_new(arr, o);
}

/* qsort_r order of indexes into the certificate array ARG: user, then index.
 * Users are compared as the directory would, ignoring ASCII case, so records
 * from before names were normalised ("ALICE", "alice") form one user. */
static int by_user(const void *a, const void *b, void *arg)
{
	const struct tls_pki_cert *c = arg;
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	int r = tls_pki_user_cmp(c[i].user, c[j].user);

	return r ? r : (i > j) - (i < j);
}

struct user_key {
	const char *user;
	const struct tls_pki_cert *certs;
};

static int user_cmp(const void *k, const void *e)
{
	const struct user_key *key = k;

	return tls_pki_user_cmp(key->user, key->certs[*(const size_t *)e].user);
}

/* Whether ORDER (sorted by by_user) holds a certificate of KEY->user. */
static bool has_cert(const struct user_key *key, const size_t *order, size_t n)
{
	return n && bsearch(key, order, n, sizeof *order, user_cmp) != NULL;
}

static int cmd_list(const struct opts *o)
{
	static const char *const statuses[] = { "unissued", "valid", "expired", "revoked" };
	struct tls_pki *p = NULL;
	struct tls_pki_cert *c = NULL;
	char **dusers = NULL;
	size_t n = 0, nd = 0, *order = NULL;
	json_t *arr = NULL;
	bool known = !o->status;
	int rc;

	for (size_t i = 0; o->status && i < 4; i++)
		known |= strcmp(o->status, statuses[i]) == 0;
	if (!known)
		return die(EXIT_USAGE, "--status must be unissued, valid, expired or revoked");
	if (o->status && strcmp(o->status, "unissued") == 0 && !o->config)
		return die(EXIT_USAGE, "--status unissued needs the directory: -c agent.ini");
	if (o->user && !username_ok(o->user))
		return die(EXIT_USAGE, "--user: not a valid directory user name");
	if (o->config && (rc = directory_users(o->config, o->filter, &dusers, &nd)) != EXIT_OK)
		return rc;
	if ((rc = open_pki(o, false, &p)) != 0)
		goto out;
	if (tls_pki_list(p, (int64_t)time(NULL), &c, &n) < 0) {
		rc = die(EXIT_RUNTIME, "out of memory");
		goto out;
	}
	if (o->json && !(arr = json_array())) {
		rc = die(EXIT_RUNTIME, "out of memory");
		goto out;
	}
	/* Sorted by user, then issue order, so each user's certificates are
	 * together and lookups are binary searches even for large directories. */
	if (n && !(order = malloc(n * sizeof *order))) {
		rc = die(EXIT_RUNTIME, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	if (n)
		qsort_r(order, n, sizeof *order, by_user, c);
	/* Rows only, no header: one line per user is what scripts count.
	 * Without --all a user's row is their newest certificate: the one that
	 * decides whether they hold a working certificate now. */
	for (size_t k = 0; k < n; k++) {
		const struct tls_pki_cert *e = &c[order[k]];

		if (!o->all && k + 1 < n && tls_pki_user_eq(c[order[k + 1]].user, e->user))
			continue;
		if (o->user && !tls_pki_user_eq(o->user, e->user))
			continue;
		if (o->status && strcmp(o->status, status_name(e->status)) != 0)
			continue;
		list_row(arr, e->user, status_name(e->status), e);
	}
	for (size_t i = 0; i < nd; i++) {
		struct user_key key = { dusers[i], c };

		if (has_cert(&key, order, n) || (o->user && !tls_pki_user_eq(o->user, dusers[i])))
			continue;
		if (!o->status || strcmp(o->status, "unissued") == 0)
			list_row(arr, dusers[i], "unissued", NULL);
	}
	if (arr) {
		char *s = json_dumps(arr, JSON_INDENT(1));

		if (!s) {
			rc = die(EXIT_RUNTIME, "out of memory");
			goto out;
		}
		puts(s);
		free(s);
	}
	rc = EXIT_OK;
out:
	json_decref(arr);
	free(order);
	free(c);
	free_users(dusers, nd);
	tls_pki_close(p);
	return rc;
}

int main(int argc, char **argv)
{
	enum {
		O_DIR = 256, O_CN, O_DAYS, O_KEYTYPE, O_USER, O_USERS, O_OUT, O_OUTDIR, O_ZIP,
		O_PWFILE, O_CSR, O_SERIAL, O_REASON, O_STATUS, O_FILTER, O_REVOKE_PRIOR,
		O_FROM_LDAP, O_JSON, O_ALL, O_VERSION, O_P12FMT,
	};
	static const struct option lopts[] = {
		{ "dir", required_argument, NULL, O_DIR },
		{ "cn", required_argument, NULL, O_CN },
		{ "days", required_argument, NULL, O_DAYS },
		{ "key-type", required_argument, NULL, O_KEYTYPE },
		{ "p12-format", required_argument, NULL, O_P12FMT },
		{ "user", required_argument, NULL, O_USER },
		{ "users", required_argument, NULL, O_USERS },
		{ "out", required_argument, NULL, O_OUT },
		{ "out-dir", required_argument, NULL, O_OUTDIR },
		{ "zip", required_argument, NULL, O_ZIP },
		{ "password-file", required_argument, NULL, O_PWFILE },
		{ "csr", required_argument, NULL, O_CSR },
		{ "serial", required_argument, NULL, O_SERIAL },
		{ "reason", required_argument, NULL, O_REASON },
		{ "status", required_argument, NULL, O_STATUS },
		{ "filter", required_argument, NULL, O_FILTER },
		{ "revoke-prior", no_argument, NULL, O_REVOKE_PRIOR },
		{ "from-ldap", no_argument, NULL, O_FROM_LDAP },
		{ "json", no_argument, NULL, O_JSON },
		{ "all", no_argument, NULL, O_ALL },
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, O_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { 0 };
	int c;

	/* Keys, passwords and archives are private unless made public on purpose. */
	umask(077);
	/* Process-wide: a directory server that resets the connection (--from-ldap,
	 * -c) must be an error code, not the end of the process. */
	signal(SIGPIPE, SIG_IGN);
	while ((c = getopt_long(argc, argv, "+c:h", lopts, NULL)) != -1 || optind < argc) {
		if (c == -1) {
			/* The command word; options may come before or after it. */
			if (o.cmd)
				return die(EXIT_USAGE, "unexpected argument '%.64s'; see -h", argv[optind]);
			o.cmd = argv[optind++];
			continue;
		}
		switch (c) {
		case O_DIR: o.dir = optarg; break;
		case O_CN: o.cn = optarg; break;
		case O_DAYS: {
			char *end;
			unsigned long v;

			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || *end || end == optarg || optarg[0] == '-' || v == 0 || v > 36500)
				return die(EXIT_USAGE, "--days must be a number of days, 1..36500");
			o.days = (unsigned)v;
			o.days_set = true;
			break;
		}
		case O_KEYTYPE: o.key_type = optarg; break;
		case O_P12FMT:
			if (strcmp(optarg, "modern") == 0)
				o.p12_format = TLS_P12_MODERN;
			else if (strcmp(optarg, "compat") == 0)
				o.p12_format = TLS_P12_COMPAT;
			else
				return die(EXIT_USAGE, "--p12-format must be modern or compat");
			break;
		case O_USER: o.user = optarg; break;
		case O_USERS: o.users = optarg; break;
		case O_OUT: o.out = optarg; break;
		case O_OUTDIR: o.out_dir = optarg; break;
		case O_ZIP: o.zip = optarg; break;
		case O_PWFILE: o.password_file = optarg; break;
		case O_CSR: o.csr = optarg; break;
		case O_SERIAL: o.serial = optarg; break;
		case O_REASON: o.reason = optarg; break;
		case O_STATUS: o.status = optarg; break;
		case O_FILTER: o.filter = optarg; break;
		case O_REVOKE_PRIOR: o.revoke_prior = true; break;
		case O_FROM_LDAP: o.from_ldap = true; break;
		case O_JSON: o.json = true; break;
		case O_ALL: o.all = true; break;
		case 'c': o.config = optarg; break;
		case 'h': usage(stdout); return EXIT_OK;
		case O_VERSION: printf("dirbridge-cert %s\n", DIRBRIDGE_VERSION); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (!o.cmd) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!o.dir)
		return die(EXIT_USAGE, "%s needs --dir DIR (the CA directory)", o.cmd);
	if (tls_global_init() < 0)
		return die(EXIT_RUNTIME, "GnuTLS initialisation failed");
	if (strcmp(o.cmd, "init-ca") == 0)
		return cmd_init_ca(&o);
	if (strcmp(o.cmd, "issue") == 0)
		return cmd_issue(&o);
	if (strcmp(o.cmd, "sign-csr") == 0)
		return cmd_sign_csr(&o);
	if (strcmp(o.cmd, "revoke") == 0)
		return cmd_revoke(&o);
	if (strcmp(o.cmd, "crl") == 0)
		return cmd_crl(&o);
	if (strcmp(o.cmd, "list") == 0)
		return cmd_list(&o);
	return die(EXIT_USAGE, "unknown command '%.64s'; see -h", o.cmd);
}
