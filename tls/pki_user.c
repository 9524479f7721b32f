/*
 * How dirbridge-cert compares user names (see tls.h).  Directories compare
 * user names case-insensitively, so a certificate recorded as "ALICE" belongs
 * to the same person as one recorded as "alice", and a revocation or a list
 * row must find both.  Only ASCII letters are folded: Unicode case folding
 * depends on the directory's own matching rules, which a CA directory cannot
 * know, so names outside ASCII come from the directory itself (-c) instead.
 */
#include "tls/tls.h"

static unsigned char ascii_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

int tls_pki_user_cmp(const char *a, const char *b)
{
	const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;

	while (*x && ascii_lower(*x) == ascii_lower(*y)) {
		x++;
		y++;
	}
	return (int)ascii_lower(*x) - (int)ascii_lower(*y);
}

bool tls_pki_user_eq(const char *a, const char *b)
{
	return a && b && tls_pki_user_cmp(a, b) == 0;
}
