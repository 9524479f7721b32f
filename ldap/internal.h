/* Private to ldap/: helpers shared between its source files. */
#ifndef DIRBRIDGE_LDAP_INTERNAL_H
#define DIRBRIDGE_LDAP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lber.h>
#include <ldap.h>

/* Length of the well-formed UTF-8 sequence at S, or 0; *CP gets the code point. */
size_t dir_utf8_next(const unsigned char *s, size_t left, uint32_t *cp);
/* Whole buffer is well-formed UTF-8 without NUL. */
bool dir_utf8_valid(const char *s, size_t len);
/* UTF-8 to UTF-16LE (AD unicodePwd); *out is malloc'd and must be wiped. */
int dir_utf16le(const char *in, size_t len, unsigned char **out, size_t *out_len);

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
