/* Private to ldap/: helpers shared between its source files. */
#ifndef DIRBRIDGE_LDAP_INTERNAL_H
#define DIRBRIDGE_LDAP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lber.h>
#include <ldap.h>
#include <uv.h>

#include "config/cfg.h"
#include "ldap/dir.h"

/* Length of the well-formed UTF-8 sequence at S, or 0; *CP gets the code point. */
size_t dir_utf8_next(const unsigned char *s, size_t left, uint32_t *cp);
/* Whole buffer is well-formed UTF-8 without NUL. */
bool dir_utf8_valid(const char *s, size_t len);
/* UTF-8 to UTF-16LE (AD unicodePwd); *out is malloc'd and must be wiped. */
int dir_utf16le(const char *in, size_t len, unsigned char **out, size_t *out_len);


/* ---- the password-login guard (guard.c) ---- */
struct dir_guard;
int dir_guard_new(struct dir *d, uv_loop_t *loop, const struct cfg *cfg, struct dir_guard **out);
void dir_guard_free(struct dir_guard *g);
/* Reads the directory's lockout threshold (auto, or to warn about a number). */
void dir_guard_start(struct dir_guard *g);
/* Whether a new login must wait for that read; dir_guard_settled() ends the wait. */
bool dir_guard_waiting(struct dir_guard *g);
/* Before the bind of a login: DN as found, or NULL for an unknown USERNAME.
 * Returns 0 (the attempt is counted; *KEY, malloc'd or NULL, goes to
 * dir_guard_end), DIR_GUARD_WAIT (ask again when another login of this key
 * ends) or DIR_E_TOO_MANY_ATTEMPTS / DIR_E_INTERNAL. */
#define DIR_GUARD_WAIT 1
int dir_guard_begin(struct dir_guard *g, const char *dn, const char *username, char **key);
/* When the login ends: BIND_ERR is the bind's own answer (DIR_GUARD_NO_BIND when
 * none came), ERR the login's.  Returns the answer to give (account states
 * hidden per reveal_account_state). */
#define DIR_GUARD_NO_BIND 1
int dir_guard_end(struct dir_guard *g, const char *key, const char *username, int bind_err,
		  int err);
/* A DN under BASE_DN that names no entry (random), for unknown users' binds. */
int dir_decoy_dn(const char *base_dn, char **out);
/* Every attribute of a search entry, text values only; free with dir_read_entry_free. */
int dir_read_entry(LDAP *ld, LDAPMessage *m, struct dir_profile *out);
void dir_read_entry_free(struct dir_profile *p);

/* ---- provided by dir.c for guard.c ---- */
struct dir_guard *dir_guard_of(const struct dir *d);
/* Logins that waited for the lockout policy go on. */
void dir_guard_settled(struct dir *d);
/* A service-account search (entries: dn and every requested attribute); ATTRS
 * must outlive the request.  The dir.h request contract applies. */
int dir_read(struct dir *d, const char *base, int scope, const char *filter,
	     const char *const *attrs, size_t limit, dir_users_cb cb, void *arg);

/* match.c: exact names for dir_lookup(). */
/* A and B are the same bytes except for the case of ASCII letters A..Z; bytes
 * above 0x7f compare exactly, whatever the locale. */
bool dir_ascii_caseeq(const char *a, size_t alen, const char *b, size_t blen);
/* The index of the value among VALS (N of them; NULL entries skipped) that NAME
 * names: one byte-equal to NAME first, else the first that differs from it only
 * in ASCII letter case; -1 when none does. */
int dir_name_pick(struct berval *const *vals, size_t n, const char *name);
/* For a lookup of NAME that found entry M: replaces *UNAME with the entry's own
 * value of ATTR that NAME names (dir_name_pick), or with NULL, logging a warning
 * with DN, when the directory matched NAME only through its matching rule's
 * folding.  -1 when out of memory. */
int dir_lookup_name(LDAP *ld, LDAPMessage *m, const char *attr, const char *name,
		    const char *dn, char **uname);

#endif
