/* dirbridge-cert internals shared by its source files. */
#ifndef DIRBRIDGE_TOOLS_CERT_H
#define DIRBRIDGE_TOOLS_CERT_H

#include <stdbool.h>
#include <stddef.h>

#include "tls/tls.h"

/* Exit statuses, as SPEC.md fixes them. */
enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

#define PASSWORD_LEN 21		/* 20 characters, about 115 bits */

struct opts {
	const char *cmd;
	const char *dir, *cn, *user, *users, *out, *out_dir, *zip, *password_file;
	const char *csr, *serial, *reason, *status, *config, *filter, *key_type;
	unsigned days;
	bool days_set, revoke_prior, from_ldap, json, all;
};

/* Prints "dirbridge: MESSAGE" on stderr and returns CODE. */
int die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Whether NAME may be a directory user name (the directory's rule). */
bool username_ok(const char *name);

/* bulk.c: issue --users / --from-ldap into --out-dir, with --zip. */
int cmd_issue_bulk(const struct opts *o, char **users, size_t n_users);
/* Writes the named files (in DIR) into a new zip archive ZIP, mode 0600. */
int zip_files(const char *zip, const char *dir, char *const *names, size_t n);

/* users.c: directory users through ldap/dir.h; *out and its strings malloc'd. */
int directory_users(const char *config, const char *filter, char ***out, size_t *n);
void free_users(char **users, size_t n);
/* EXIT_OK when USER is one enabled directory user, else prints why. */
int directory_check_user(const char *config, const char *user);

#endif
