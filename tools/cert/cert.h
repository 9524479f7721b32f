/* dirbridge-cert internals shared by its source files. */
#ifndef DIRBRIDGE_TOOLS_CERT_H
#define DIRBRIDGE_TOOLS_CERT_H

#include <stdbool.h>
#include <stddef.h>

#include "tls/tls.h"

/* Exit statuses: 0 success, 1 runtime failure, 2 usage or configuration error. */
enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

#define PASSWORD_LEN 21		/* 20 characters, about 115 bits */

struct opts {
	const char *cmd;
	const char *dir, *cn, *user, *users, *out, *out_dir, *zip, *password_file;
	const char *csr, *serial, *reason, *status, *config, *filter, *key_type;
	unsigned days;
	enum tls_p12_format p12_format;	/* --p12-format, default modern */
	bool days_set, revoke_prior, from_ldap, json, all;
};

/* util.c: prints "dirbridge: MESSAGE" on stderr and returns CODE. */
int die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* util.c: frees a list of N malloc'd user names (USERS may be NULL). */
void free_users(char **users, size_t n);

/* users.c: whether NAME may be a directory user name (the directory's rule). */
bool username_ok(const char *name);

/* bulk.c: issue --users / --from-ldap into --out-dir, with --zip. */
int cmd_issue_bulk(const struct opts *o, char **users, size_t n_users);
/* Writes the named files (in DIR) into a new zip archive ZIP, mode 0600. */
int zip_files(const char *zip, const char *dir, char *const *names, size_t n);

/* users.c: directory users through ldap/dir.h; *out and its strings malloc'd
 * (free_users()). */
int directory_users(const char *config, const char *filter, char ***out, size_t *n);
/* The directory's own user name for each of NAMES (*out: N malloc'd names),
 * found with the agent's user_filter.  Without FLAGS every name must be one
 * enabled directory account; else an exit status, with the message printed. */
enum {
	OWN_KEEP_UNKNOWN = 1,	/* a name not matching exactly one entry stays as given */
	OWN_ALLOW_DISABLED = 2,	/* a disabled, locked or expired account is fine */
};
int directory_own_names(const char *config, char *const *names, size_t n, unsigned flags,
			char ***out);

/* names.c */
/* Whether NAME is ASCII without leading, trailing or doubled spaces: a name
 * every directory matches the same as its ASCII-case-folded form. */
bool name_plain(const char *name);
/* EXIT_USAGE, naming WHAT, when two of NAMES are equal by tls_pki_user_eq. */
int names_distinct(char *const *names, size_t n, const char *what);
/* The names to issue to for GIVEN (the option WHAT): the directory's own ones
 * with CONFIG, else GIVEN itself, which must then be plain; all distinct. */
int issue_names(const char *config, const char *what, char *const *given, size_t n,
		char ***out);
/* revoke --user USER: revokes every certificate of USER (tls_pki_revoke_user)
 * and, with CONFIG, those recorded under the directory's own name for USER or
 * under any other spelling the directory resolves to that name; *count is how
 * many.  An exit status, with the message printed. */
int revoke_user_names(const char *config, const char *user, struct tls_pki *p, int reason,
		      int *count);

#endif
