/*
 * Bulk issue: one NAME.p12 and NAME.password per user in --out-dir, a summary
 * line per user, optionally one zip archive of them all.  The bundles are made
 * on every processor (see run_pool).  Either every user is
 * issued and recorded, or nothing is: files are removed again when a later
 * user, the archive or the index commit fails.
 */
#include <errno.h>
#include <pthread.h>
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

/*
 * The slow part of issuing is the PKCS#12 key derivation (hundreds of
 * thousands of iterations per bundle), so keys, certificates and bundles are
 * made by a pool of threads, one per online processor, each with its own copy
 * of the CA (tls_pki_worker).  Users are handed out in order from one counter;
 * the index, the files and the archive are written afterwards by the main
 * thread in user order, so the outcome is the one a single thread would give.
 */
struct job {
	const char *user;
	char pw[PASSWORD_LEN + 1];
	unsigned char *p12;
	size_t len;
	struct tls_pki_cert rec;
	bool ok;
	char err[512];
};

struct pool {
	pthread_mutex_t mu;
	struct job *jobs;
	size_t n, next;
	bool stop;		/* a job failed: hand out no more */
	unsigned days;
	enum tls_p12_format fmt;
};

struct worker {
	struct pool *pool;
	struct tls_pki *ca;
	pthread_t th;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	struct pool *pl = w->pool;

	for (;;) {
		struct job *j;

		pthread_mutex_lock(&pl->mu);
		j = pl->stop || pl->next >= pl->n ? NULL : &pl->jobs[pl->next++];
		pthread_mutex_unlock(&pl->mu);
		if (!j)
			return NULL;
		if (tls_pki_password(j->pw, PASSWORD_LEN) < 0)
			snprintf(j->err, sizeof j->err, "random generator failed");
		else if (tls_pki_make(w->ca, j->user, pl->days, j->pw, pl->fmt, &j->p12, &j->len,
				      &j->rec) < 0)
			snprintf(j->err, sizeof j->err, "%s", tls_pki_error(w->ca));
		else
			j->ok = true;
		if (!j->ok) {
			pthread_mutex_lock(&pl->mu);
			pl->stop = true;
			pthread_mutex_unlock(&pl->mu);
		}
	}
}

/* Runs every job of PL on up to one thread per online processor; with no
 * thread to be had, on this one.  Returns after every job taken is done. */
static int run_pool(struct tls_pki *p, struct pool *pl)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	size_t nw = ncpu < 1 ? 1 : (size_t)ncpu, started = 0;
	struct worker *ws;
	int rc = 0;

	if (nw > pl->n)
		nw = pl->n;
	if (nw > 64)
		nw = 64;
	ws = calloc(nw, sizeof *ws);
	if (!ws)
		return die(EXIT_RUNTIME, "out of memory");
	for (size_t i = 0; i < nw; i++) {
		ws[i].pool = pl;
		if (tls_pki_worker(p, &ws[i].ca) < 0) {
			rc = die(EXIT_RUNTIME, "%s", tls_pki_error(p));
			goto out;
		}
	}
	for (; started < nw; started++)
		if (pthread_create(&ws[started].th, NULL, work, &ws[started]) != 0)
			break;
	if (started == 0)
		work(&ws[0]);
	for (size_t i = 0; i < started; i++)
		pthread_join(ws[i].th, NULL);
out:
	for (size_t i = 0; i < nw; i++)
		tls_pki_close(ws[i].ca);
	free(ws);
	return rc;
}

/* Writes DIR/NAME (mode 0600); NAME is kept in FILES[*NF] for the archive
 * and for taking the files back. */
static int put_file(const char *dir, const char *name, const void *data, size_t len,
		    char **files, size_t *nf)
{
	char *path = NULL;
	int w;

	if (!(files[*nf] = strdup(name)) || asprintf(&path, "%s/%s", dir, name) < 0) {
		free(path);
		return die(EXIT_RUNTIME, "out of memory");
	}
	w = tls_pki_write_file(path, data, len, 0600);
	free(path);
	(*nf)++;
	if (w < 0)
		return die(EXIT_RUNTIME, "%s/%s: %s", dir, name, strerror(errno));
	return 0;
}

int cmd_issue_bulk(const struct opts *o, char **users, size_t n)
{
	struct tls_pki *p = NULL;
	struct pool pl = { .n = n, .days = o->days_set ? o->days : 365, .fmt = o->p12_format };
	char **files = NULL, err[512];
	size_t nf = 0;
	int rc = EXIT_RUNTIME;

	if (o->password_file)
		return die(EXIT_USAGE, "bulk issue generates one password per user; drop --password-file");
	if (mkdir(o->out_dir, 0700) < 0 && errno != EEXIST)
		return die(EXIT_USAGE, "%s: %s", o->out_dir, strerror(errno));
	if (pthread_mutex_init(&pl.mu, NULL) != 0)
		return die(EXIT_RUNTIME, "out of memory");
	pl.jobs = calloc(n, sizeof *pl.jobs);
	files = calloc(2 * n, sizeof *files);
	if (!pl.jobs || !files) {
		die(EXIT_RUNTIME, "out of memory");
		goto out;
	}
	if (tls_pki_open(o->dir, true, &p, err, sizeof err) < 0) {
		rc = die(EXIT_USAGE, "%s", err);
		goto out;
	}
	/* Revocations touch only the index, and only earlier certificates of
	 * each (distinct) user, so making them all first changes nothing. */
	for (size_t i = 0; i < n; i++) {
		pl.jobs[i].user = users[i];
		if (o->revoke_prior &&
		    tls_pki_revoke_user(p, users[i], tls_pki_reason_code("superseded")) < 0) {
			die(EXIT_RUNTIME, "%s: %s", users[i], tls_pki_error(p));
			goto out;
		}
	}
	if (run_pool(p, &pl) != 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		struct job *j = &pl.jobs[i];
		char *name = NULL;

		if (!j->ok) {
			die(EXIT_RUNTIME, "%s: %s", users[i], j->err[0] ? j->err : "not issued");
			goto undo;
		}
		if (tls_pki_record(p, &j->rec) < 0) {
			die(EXIT_RUNTIME, "%s: %s", users[i], tls_pki_error(p));
			goto undo;
		}
		if (asprintf(&name, "%s.p12", users[i]) < 0) {
			die(EXIT_RUNTIME, "out of memory");
			goto undo;
		}
		int w = put_file(o->out_dir, name, j->p12, j->len, files, &nf);
		free(name);
		if (w != 0)
			goto undo;
		/* The password file ends in a newline, like every text file. */
		size_t pl_len = strlen(j->pw);
		j->pw[pl_len] = '\n';
		if (asprintf(&name, "%s.password", users[i]) < 0) {
			die(EXIT_RUNTIME, "out of memory");
			goto undo;
		}
		w = put_file(o->out_dir, name, j->pw, pl_len + 1, files, &nf);
		free(name);
		if (w != 0)
			goto undo;
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
		const struct tls_pki_cert *r = &pl.jobs[i].rec;
		char na[32];

		fmt_time(r->not_after, na);
		printf("%s %s %s %s/%s.p12\n", r->user, r->serial, na, o->out_dir, r->user);
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
	for (size_t i = 0; pl.jobs && i < n; i++) {
		explicit_bzero(pl.jobs[i].pw, sizeof pl.jobs[i].pw);
		if (pl.jobs[i].p12) {
			explicit_bzero(pl.jobs[i].p12, pl.jobs[i].len);
			free(pl.jobs[i].p12);
		}
	}
	free(pl.jobs);
	pthread_mutex_destroy(&pl.mu);
	tls_pki_close(p);
	return rc;
}
