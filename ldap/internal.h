/* Private to ldap/: helpers shared between its source files. */
#ifndef DIRBRIDGE_LDAP_INTERNAL_H
#define DIRBRIDGE_LDAP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length of the well-formed UTF-8 sequence at S, or 0; *CP gets the code point. */
size_t dir_utf8_next(const unsigned char *s, size_t left, uint32_t *cp);
/* Whole buffer is well-formed UTF-8 without NUL. */
bool dir_utf8_valid(const char *s, size_t len);
/* UTF-8 to UTF-16LE (AD unicodePwd); *out is malloc'd and must be wiped. */
int dir_utf16le(const char *in, size_t len, unsigned char **out, size_t *out_len);

#endif
