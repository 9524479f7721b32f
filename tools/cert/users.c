/*
 * Users from the directory (ldap/dir.h) for `issue --from-ldap` and `list -c`,
 * read once on a short-lived libuv loop.
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

struct fetch {
	struct dir *dir;
	const char *filter;	/* list: the --filter, or NULL */
	const char *user;	/* lookup: the user */
	int err;
	bool done;
	bool disabled;		/* lookup: the account cannot sign in */
	char **names;
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

static void on_profile(void *arg, int err, const struct dir_profile *p)
{
	struct fetch *f = arg;

	f->done = true;
	f->err = err;
	f->disabled = err == 0 && p->disabled;
	dir_close(f->dir, on_closed, f);
}

/* Runs one directory request on a private loop: a list when F->user is NULL,
 * else a lookup of F->user.  Returns an exit status, with the message printed. */
static int run_request(const char *config, struct fetch *f)
{
	struct cfg *cfg = NULL;
	uv_loop_t loop;
	int rc;

	if (cfg_load(config, CFG_NEED_LDAP, &cfg, stderr) < 0)
		return EXIT_USAGE;
	/* The agent's progress lines are noise in a tool's output; problems still show. */
	cfg_log_set_level(CFG_LOG_WARN);
	if (uv_loop_init(&loop) < 0) {
		cfg_free(cfg);
		return die(EXIT_RUNTIME, "cannot create an event loop");
	}
	rc = dir_open(&loop, cfg, &f->dir);
	if (rc < 0) {
		rc = die(EXIT_RUNTIME, "%s: cannot open the directory: %s", config, dir_code(rc));
		goto out;
	}
	rc = f->user ? dir_lookup(f->dir, f->user, on_profile, f)
		     : dir_list_users(f->dir, f->filter, MAX_USERS, on_users, f);
	if (rc < 0) {
		dir_close(f->dir, on_closed, f);
		uv_run(&loop, UV_RUN_DEFAULT);
		rc = die(rc == DIR_E_BAD_REQUEST ? EXIT_USAGE : EXIT_RUNTIME, "directory request: %s%s",
			 dir_code(rc), rc == DIR_E_BAD_REQUEST && f->filter ? " (check --filter)" : "");
		goto out;
	}
	/* The callback closes the directory; the loop ends once every handle has. */
	uv_run(&loop, UV_RUN_DEFAULT);
	if (!f->done) {
		rc = die(EXIT_RUNTIME, "directory request: %s", dir_code(DIR_E_UNAVAILABLE));
		goto out;
	}
	rc = EXIT_OK;
out:
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

int directory_check_user(const char *config, const char *user)
{
	struct fetch f = { .user = user };
	int rc = run_request(config, &f);

	if (rc != EXIT_OK)
		return rc;
	if (f.err == DIR_E_NOT_FOUND)
		return die(EXIT_RUNTIME, "%s: no such user in the directory (or more than one)", user);
	if (f.err < 0)
		return die(EXIT_RUNTIME, "looking up %s: %s", user, dir_code(f.err));
	if (f.disabled)
		return die(EXIT_RUNTIME, "%s: the directory account is disabled, locked or expired", user);
	return EXIT_OK;
}
