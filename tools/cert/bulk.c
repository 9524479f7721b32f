/*
 * Bulk issue: one NAME.p12 and NAME.password per user in --out-dir, a summary
 * line per user, optionally one zip archive of them all.  Either every user is
 * issued and recorded, or nothing is: files are removed again when a later
 * user, the archive or the index commit fails.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zip.h>

#include "tools/cert/cert.h"

int zip_files(const char *zip, const char *dir, char *const *names, size_t n)
{
	zip_t *z;
	int err = 0;

	/* libzip writes a temporary file and renames it over ZIP on close. */
	z = zip_open(zip, ZIP_CREATE | ZIP_TRUNCATE, &err);
	if (!z) {
		zip_error_t ze;

		zip_error_init_with_code(&ze, err);
		die(EXIT_RUNTIME, "%s: %s", zip, zip_error_strerror(&ze));
		zip_error_fini(&ze);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		char *path = NULL;
		zip_source_t *src;

		if (asprintf(&path, "%s/%s", dir, names[i]) < 0)
			goto fail;
		src = zip_source_file(z, path, 0, -1);
		free(path);
		if (!src)
			goto fail;
		if (zip_file_add(z, names[i], src, ZIP_FL_ENC_UTF_8) < 0) {
			zip_source_free(src);
			goto fail;
		}
	}
	if (zip_close(z) < 0) {
		die(EXIT_RUNTIME, "%s: %s", zip, zip_strerror(z));
		zip_discard(z);
		return -1;
	}
	if (chmod(zip, 0600) < 0) {
		die(EXIT_RUNTIME, "%s: %s", zip, strerror(errno));
		return -1;
	}
	return 0;
fail:
	die(EXIT_RUNTIME, "%s: %s", zip, zip_strerror(z));
	zip_discard(z);
	return -1;
}

static void fmt_time(int64_t t, char buf[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm) || !strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, 32, "%lld", (long long)t);
}

int cmd_issue_bulk(const struct opts *o, char **users, size_t n)
{
	struct tls_pki *p = NULL;
	struct tls_pki_cert *recs = NULL;
	char **files = NULL, err[512];
	size_t nf = 0;
	int rc = EXIT_RUNTIME;

	if (o->password_file)
		return die(EXIT_USAGE, "bulk issue generates one password per user; drop --password-file");
	if (mkdir(o->out_dir, 0700) < 0 && errno != EEXIST)
		return die(EXIT_USAGE, "%s: %s", o->out_dir, strerror(errno));
	recs = calloc(n, sizeof *recs);
	files = calloc(2 * n, sizeof *files);
	if (!recs || !files) {
		die(EXIT_RUNTIME, "out of memory");
		goto out;
	}
	if (tls_pki_open(o->dir, true, &p, err, sizeof err) < 0) {
		rc = die(EXIT_USAGE, "%s", err);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		char pw[PASSWORD_LEN + 1], *path = NULL;
		unsigned char *p12 = NULL;
		size_t len = 0;
		int w;

		if (o->revoke_prior &&
		    tls_pki_revoke_user(p, users[i], tls_pki_reason_code("superseded")) < 0) {
			die(EXIT_RUNTIME, "%s: %s", users[i], tls_pki_error(p));
			goto undo;
		}
		if (tls_pki_password(pw, PASSWORD_LEN) < 0 ||
		    tls_pki_issue(p, users[i], o->days_set ? o->days : 365, pw, o->p12_format, &p12, &len,
				  &recs[i]) < 0) {
			explicit_bzero(pw, sizeof pw);
			die(EXIT_RUNTIME, "%s: %s", users[i], tls_pki_error(p));
			goto undo;
		}
		w = asprintf(&files[nf], "%s.p12", users[i]);
		if (w >= 0 && asprintf(&path, "%s/%s", o->out_dir, files[nf]) >= 0)
			w = tls_pki_write_file(path, p12, len, 0600);
		else
			w = -1;
		explicit_bzero(p12, len);
		free(p12);
		free(path);
		path = NULL;
		if (w < 0) {
			explicit_bzero(pw, sizeof pw);
			die(EXIT_RUNTIME, "%s/%s.p12: %s", o->out_dir, users[i], strerror(errno));
			goto undo;
		}
		nf++;
		/* The password file ends in a newline, like every text file. */
		size_t pl = strlen(pw);
		pw[pl] = '\n';
		w = asprintf(&files[nf], "%s.password", users[i]);
		if (w >= 0 && asprintf(&path, "%s/%s", o->out_dir, files[nf]) >= 0)
			w = tls_pki_write_file(path, pw, pl + 1, 0600);
		else
			w = -1;
		explicit_bzero(pw, sizeof pw);
		free(path);
		if (w < 0) {
			die(EXIT_RUNTIME, "%s/%s.password: %s", o->out_dir, users[i], strerror(errno));
			goto undo;
		}
		nf++;
	}
	if (o->zip && zip_files(o->zip, o->out_dir, files, nf) < 0)
		goto undo;
	if (tls_pki_commit(p) < 0) {
		die(EXIT_RUNTIME, "%s", tls_pki_error(p));
		if (o->zip)
			unlink(o->zip);
		goto undo;
	}
	for (size_t i = 0; i < n; i++) {
		char na[32];

		fmt_time(recs[i].not_after, na);
		printf("%s %s %s %s/%s.p12\n", recs[i].user, recs[i].serial, na, o->out_dir,
		       recs[i].user);
	}
	if (o->zip)
		printf("zip: %s\n", o->zip);
	rc = EXIT_OK;
	goto out;
undo:
	for (size_t i = 0; i < nf; i++) {
		char *path = NULL;

		if (asprintf(&path, "%s/%s", o->out_dir, files[i]) >= 0)
			unlink(path);
		free(path);
	}
out:
	for (size_t i = 0; files && i < 2 * n; i++)
		free(files[i]);
	free(files);
	free(recs);
	tls_pki_close(p);
	return rc;
}
