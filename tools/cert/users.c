/*
 * Users from the directory (ldap/dir.h) for `issue --from-ldap`, `list -c` and
 * the directory's own spelling of names given on the command line, read on a
 * short-lived libuv loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "config/cfg.h"
#include "ldap/dir.h"
#include "tools/cert/cert.h"

/* Far above any department; the directory pages the search (RFC 2696). */
#define MAX_USERS 100000

bool username_ok(const char *name)
{
	return name && dir_username_valid(name, strlen(name));
}

/* What the directory said about one name given on the command line. */
struct match {
	int err;
	size_t entries;		/* named entries found, at most 2 */
	bool disabled;
	char *own;		/* the entry's own username, when exactly one */
};

struct fetch {
	struct dir *dir;
	const struct cfg *cfg;
	const char *filter;	/* list: the --filter, or NULL */
	char *const *given;	/* own names: the names to look up */
	size_t n_given, next;	/* own names: the one being looked up */
	struct match *found;	/* own names: one per given name */
	int err;
	bool done;
	char **names;		/* list: the usable enabled users */
	size_t n;
};

static void on_closed(void *arg)
{
	(void)arg;
}

static void on_users(void *arg, int err, const struct dir_profile *users, size_t n)
{
	struct fetch *f = arg;

	f->done = true;
	f->err = err;
	if (err == 0 && n > 0) {
		f->names = calloc(n, sizeof *f->names);
		if (!f->names)
			f->err = DIR_E_INTERNAL;
	}
	for (size_t i = 0; f->err == 0 && i < n; i++) {
		/* Accounts that cannot sign in get no certificate and are not
		 * reported as missing one. */
		if (users[i].disabled)
			continue;
		if (!username_ok(users[i].username)) {
			fprintf(stderr, "dirbridge: skipping directory entry %s: user name not usable\n",
				users[i].dn ? users[i].dn : "?");
			continue;
		}
		if (!(f->names[f->n] = strdup(users[i].username)))
			f->err = DIR_E_INTERNAL;
		else
			f->n++;
	}
	dir_close(f->dir, on_closed, f);
}

/*
 * The search that finds the entry behind NAME: user_filter with {username}
 * replaced by the escaped name, exactly what the agent searches at sign-in,
 * so the entry found is the one a certificate for NAME would sign in as.
 * A search rather than dir_lookup() because it tells "no entry" from "two".
 */
static int user_search_filter(const struct cfg *cfg, const char *name, char **out)
{
	const char *tmpl = cfg->ldap.user_filter, *at = tmpl ? strstr(tmpl, "{username}") : NULL;
	char *esc = NULL;
	int rc;

	*out = NULL;
	if (!at)
		return DIR_E_BAD_REQUEST;
	if ((rc = dir_filter_escape(name, strlen(name), &esc)) < 0)
		return rc;
	if (asprintf(out, "%.*s%s%s", (int)(at - tmpl), tmpl, esc, at + strlen("{username}")) < 0) {
		*out = NULL;
		rc = DIR_E_INTERNAL;
	}
	free(esc);
	return rc;
}

static void on_match(void *arg, int err, const struct dir_profile *users, size_t n);

/* Looks up the next given name; closes the directory after the last one, or
 * at the first that fails, since the names after it would fail the same way
 * (each after the directory's timeout). */
static void lookup_next(struct fetch *f)
{
	if (f->next < f->n_given) {
		struct match *m = &f->found[f->next];
		char *filter = NULL;

		m->err = user_search_filter(f->cfg, f->given[f->next], &filter);
		/* Two entries are enough to know the name is ambiguous. */
		if (m->err == 0)
			m->err = dir_list_users(f->dir, filter, 2, on_match, f);
		free(filter);
		if (m->err == 0)
			return;
	}
	f->done = true;
	dir_close(f->dir, on_closed, f);
}

static void on_match(void *arg, int err, const struct dir_profile *users, size_t n)
{
	struct fetch *f = arg;
	struct match *m = &f->found[f->next];

	m->err = err;
	m->entries = err ? 0 : n;
	if (err == 0 && n == 1) {
		m->disabled = users[0].disabled;
		if (!(m->own = strdup(users[0].username)))
			m->err = DIR_E_INTERNAL;
	}
	if (m->err == 0)
		f->next++;
	else
		f->next = f->n_given;	/* own_name() reports this one and stops */
	lookup_next(f);
}

/* Runs the directory requests of F on a private loop: own names when
 * F->given is set, else a list.  Returns an exit status, with the message
 * printed; per-request errors are left in F for the caller. */
static int run_request(const char *config, struct fetch *f)
{
	struct cfg *cfg = NULL;
	uv_loop_t loop;
	int rc;

	if (cfg_load(config, CFG_NEED_LDAP, &cfg, stderr) < 0)
		return EXIT_USAGE;
	/* The agent's progress lines are noise in a tool's output; problems still show. */
	log_set_level(LOGL_WARN);
	if (uv_loop_init(&loop) < 0) {
		cfg_free(cfg);
		return die(EXIT_RUNTIME, "cannot create an event loop");
	}
	rc = dir_open(&loop, cfg, &f->dir);
	if (rc < 0) {
		rc = die(EXIT_RUNTIME, "%s: cannot open the directory: %s", config, dir_code(rc));
		goto out;
	}
	f->cfg = cfg;
	if (f->given) {
		lookup_next(f);
		rc = 0;
	} else {
		rc = dir_list_users(f->dir, f->filter, MAX_USERS, on_users, f);
	}
	if (rc < 0) {
		dir_close(f->dir, on_closed, f);
		uv_run(&loop, UV_RUN_DEFAULT);
		rc = die(rc == DIR_E_BAD_REQUEST ? EXIT_USAGE : EXIT_RUNTIME, "directory request: %s%s",
			 dir_code(rc), rc == DIR_E_BAD_REQUEST && f->filter ? " (check --filter)" : "");
		goto out;
	}
	/* The callbacks close the directory; the loop ends once every handle has. */
	uv_run(&loop, UV_RUN_DEFAULT);
	if (!f->done) {
		rc = die(EXIT_RUNTIME, "directory request: %s", dir_code(DIR_E_UNAVAILABLE));
		goto out;
	}
	rc = EXIT_OK;
out:
	f->cfg = NULL;
	if (uv_loop_close(&loop) < 0)
		fprintf(stderr, "dirbridge: event loop still had handles at exit\n");
	cfg_free(cfg);
	return rc;
}

int directory_users(const char *config, const char *filter, char ***out, size_t *n)
{
	struct fetch f = { .filter = filter };
	int rc;

	*out = NULL;
	*n = 0;
	rc = run_request(config, &f);
	if (rc == EXIT_OK && f.err < 0)
		rc = die(EXIT_RUNTIME, "listing directory users: %s%s", dir_code(f.err),
			 filter ? " (check --filter)" : "");
	if (rc != EXIT_OK) {
		free_users(f.names, f.n);
		return rc;
	}
	*out = f.names;
	*n = f.n;
	return EXIT_OK;
}

/* Turns what the directory said about NAME into its own name (*own, taken
 * from M) or an exit status with the message printed. */
static int own_name(const char *name, struct match *m, unsigned flags, char **own)
{
	*own = NULL;
	if (m->err < 0)
		return die(m->err == DIR_E_BAD_REQUEST ? EXIT_USAGE : EXIT_RUNTIME, "looking up %.64s: %s",
			   name, dir_code(m->err));
	if (m->entries == 0) {
		if (flags & OWN_KEEP_UNKNOWN)
			return (*own = strdup(name)) ? EXIT_OK : die(EXIT_RUNTIME, "out of memory");
		return die(EXIT_RUNTIME, "%.64s: no such user in the directory", name);
	}
	if (m->entries > 1)
		return die(EXIT_RUNTIME,
			   "%.64s: more than one directory entry has this name; give the exact name "
			   "or narrow [ldap] user_filter",
			   name);
	if (!username_ok(m->own))
		return die(EXIT_RUNTIME, "%.64s: the directory's user name for it is not usable", name);
	if (m->disabled && !(flags & OWN_ALLOW_DISABLED))
		return die(EXIT_RUNTIME, "%.64s: the directory account is disabled, locked or expired",
			   name);
	*own = m->own;
	m->own = NULL;
	return EXIT_OK;
}

int directory_own_names(const char *config, char *const *names, size_t n, unsigned flags,
			char ***out)
{
	struct fetch f = { .given = names, .n_given = n };
	char **own = NULL;
	int rc;

	*out = NULL;
	f.found = calloc(n ? n : 1, sizeof *f.found);
	own = calloc(n ? n : 1, sizeof *own);
	if (!f.found || !own) {
		rc = die(EXIT_RUNTIME, "out of memory");
		goto out;
	}
	rc = run_request(config, &f);
	for (size_t i = 0; rc == EXIT_OK && i < n; i++)
		rc = own_name(names[i], &f.found[i], flags, &own[i]);
	if (rc == EXIT_OK) {
		*out = own;
		own = NULL;
	}
out:
	for (size_t i = 0; f.found && i < n; i++)
		free(f.found[i].own);
	free(f.found);
	free_users(own, n);
	return rc;
}
