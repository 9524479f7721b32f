/*
 * Which name a certificate carries.  The directory matches user names
 * case-insensitively (and LDAP also folds Unicode and ignores extra spaces),
 * while the index and revoke --user compare what is recorded.  So with -c the
 * recorded name is the directory's own one, and without -c only names that no
 * directory could match differently from their ASCII-lowercase form are
 * accepted; the index is then compared with ASCII letters folded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cert/cert.h"

bool name_plain(const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)name[i] >= 0x80)
			return false;
		/* LDAP drops leading and trailing spaces and squeezes runs of them
		 * (RFC 4518 insignificant space handling). */
		if (name[i] == ' ' && (i == 0 || i + 1 == len || name[i + 1] == ' '))
			return false;
	}
	return len > 0;
}

static int by_name(const void *a, const void *b)
{
	return tls_pki_user_cmp(*(char *const *)a, *(char *const *)b);
}

int names_distinct(char *const *names, size_t n, const char *what)
{
	const char **v;
	int rc = EXIT_OK;

	if (n < 2)
		return EXIT_OK;
	v = malloc(n * sizeof *v);
	if (!v)
		return die(EXIT_RUNTIME, "out of memory");
	memcpy(v, names, n * sizeof *v);
	qsort(v, n, sizeof *v, by_name);
	for (size_t i = 1; i < n && rc == EXIT_OK; i++)
		if (tls_pki_user_eq(v[i - 1], v[i]))
			rc = die(EXIT_USAGE, "%s: '%.64s' and '%.64s' are the same user", what, v[i - 1],
				 v[i]);
	free(v);
	return rc;
}

int issue_names(const char *config, const char *what, char *const *given, size_t n,
		char ***out)
{
	char **own = NULL;
	int rc;

	*out = NULL;
	if (config) {
		if ((rc = directory_own_names(config, given, n, 0, &own)) != EXIT_OK)
			return rc;
		for (size_t i = 0; i < n; i++)
			if (strcmp(own[i], given[i]) != 0)
				fprintf(stderr, "dirbridge: '%.64s' is '%s' in the directory; issuing to '%s'\n",
					given[i], own[i], own[i]);
	} else {
		for (size_t i = 0; i < n; i++)
			if (!name_plain(given[i]))
				return die(EXIT_USAGE,
					   "%s '%.64s': a name with non-ASCII characters or extra spaces needs "
					   "-c agent.ini, so that the directory's own spelling is used",
					   what, given[i]);
		if (!(own = calloc(n ? n : 1, sizeof *own)))
			return die(EXIT_RUNTIME, "out of memory");
		for (size_t i = 0; i < n; i++)
			if (!(own[i] = strdup(given[i]))) {
				free_users(own, n);
				return die(EXIT_RUNTIME, "out of memory");
			}
	}
	if ((rc = names_distinct(own, n, what)) != EXIT_OK) {
		free_users(own, n);
		return rc;
	}
	*out = own;
	return EXIT_OK;
}

int revoke_user_names(const char *config, const char *user, struct tls_pki *p, int reason,
		      int *count)
{
	struct tls_pki_cert *c = NULL;
	char **ask = NULL, **own = NULL;
	size_t n = 0, k = 0;
	int rc = EXIT_OK, r;

	*count = 0;
	if (config) {
		if (tls_pki_list(p, 0, &c, &n) < 0 || !(ask = calloc(n + 1, sizeof *ask))) {
			rc = die(EXIT_RUNTIME, "out of memory");
			goto out;
		}
		if (!(ask[k++] = strdup(user))) {
			rc = die(EXIT_RUNTIME, "out of memory");
			goto out;
		}
		/* Records written before names came from the directory may carry a
		 * spelling that only the directory relates to USER ("ａlice", "alice ");
		 * only such names can, since plain ones differ from USER in more than
		 * ASCII case. */
		for (size_t i = 0; i < n; i++) {
			bool seen = c[i].status == TLS_CERT_REVOKED || name_plain(c[i].user);

			for (size_t j = 0; j < k && !seen; j++)
				seen = tls_pki_user_eq(ask[j], c[i].user);
			if (!seen)
				ask[k++] = c[i].user;
		}
		rc = directory_own_names(config, ask, k, OWN_KEEP_UNKNOWN | OWN_ALLOW_DISABLED,
					 &own);
		if (rc != EXIT_OK)
			goto out;
	}
	/* The name as given, the directory's own name for it, and every older
	 * spelling that the directory resolves to that same name. */
	r = tls_pki_revoke_user(p, user, reason);
	for (size_t i = 0; r >= 0 && i < k; i++) {
		int m = 0;

		if (i == 0)
			m = tls_pki_revoke_user(p, own[0], reason);
		else if (tls_pki_user_eq(own[i], own[0]))
			m = tls_pki_revoke_user(p, ask[i], reason);
		r = m < 0 ? m : r + m;
	}
	if (r < 0)
		rc = die(r == TLS_E_CONFIG ? EXIT_USAGE : EXIT_RUNTIME, "%s", tls_pki_error(p));
	else
		*count = r;
out:
	free_users(own, k);
	if (ask)
		free(ask[0]);
	free(ask);
	free(c);
	return rc;
}
