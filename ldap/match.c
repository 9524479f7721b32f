/*
 * Exact names for lookups.  The directory compares {username} in user_filter
 * with the attribute's matching rule, which folds case and, in OpenLDAP and AD,
 * Unicode compatibility forms: "ａlice" (fullwidth a) finds alice.  A lookup
 * has no password to prove who is asking (it serves certificate logins), so the
 * name must be the directory's own value, up to the case of ASCII letters.
 */
#include <stdlib.h>
#include <string.h>

#include <lber.h>
#include <ldap.h>

#include "config/cfg.h"
#include "ldap/internal.h"

/* Only A..Z fold, so no locale (Turkish dotless i, for one) can widen a match. */
static unsigned char ascii_lower(unsigned char ch)
{
	return ch >= 'A' && ch <= 'Z' ? (unsigned char)(ch - 'A' + 'a') : ch;
}

bool dir_ascii_caseeq(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen != blen)
		return false;
	for (size_t i = 0; i < alen; i++)
		if (ascii_lower((unsigned char)a[i]) != ascii_lower((unsigned char)b[i]))
			return false;
	return true;
}

int dir_name_pick(struct berval *const *vals, size_t n, const char *name)
{
	size_t len = strlen(name);
	int loose = -1;

	for (size_t i = 0; i < n && i < INT32_MAX; i++) {
		const struct berval *v = vals[i];

		if (!v || !v->bv_val)
			continue;
		if (v->bv_len == len && memcmp(v->bv_val, name, len) == 0)
			return (int)i;
		if (loose < 0 && dir_ascii_caseeq(v->bv_val, v->bv_len, name, len))
			loose = (int)i;
	}
	return loose;
}

int dir_lookup_name(LDAP *ld, LDAPMessage *m, const char *attr, const char *name,
		    const char *dn, char **uname)
{
	struct berval **vals = ldap_get_values_len(ld, m, attr);
	int n = vals ? ldap_count_values_len(vals) : 0;
	int i = dir_name_pick(vals, n > 0 ? (size_t)n : 0, name);
	int rc = 0;

	free(*uname);
	*uname = NULL;
	if (i < 0) {
		log_msg(LOGL_WARN, "ldap: lookup of \"%s\" refused: no value of %s on \"%s\" "
			"is that name, or differs from it only in ASCII letter case (the "
			"directory matched it by folding)", name, attr, dn ? dn : "?");
	} else {
		*uname = strndup(vals[i]->bv_val, vals[i]->bv_len);
		if (!*uname)
			rc = DIR_E_INTERNAL;
	}
	ldap_value_free_len(vals);
	return rc;
}
