/*
 * Fuzzes the pure helpers of ldap/ that stand between user input and LDAP:
 * filter escaping (RFC 4515), DN value escaping (RFC 4514), the username
 * screen and the AD diagnostic parser.  The escapers are checked as
 * properties, so a wrong escape is a finding, not only a memory error: the
 * output must carry no special character unescaped, and unescaping it must
 * give back exactly the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ldap/dir.h"
#include "net/net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* RFC 4515: in the output only \XX escapes; no ( ) * or NUL; decodes back. */
static void check_filter(const char *in, size_t len)
{
	char *out = NULL;
	size_t i, o = 0;

	if (dir_filter_escape(in, len, &out) != 0) {
		if (out)
			abort();
		return;
	}
	for (i = 0; out[i]; i++) {
		char c = out[i];

		if (c == '(' || c == ')' || c == '*')
			abort();
		if (c == '\\') {
			int hi = net_hexval(out[i + 1]), lo = hi < 0 ? -1 : net_hexval(out[i + 2]);

			if (hi < 0 || lo < 0)
				abort();
			c = (char)(hi << 4 | lo);
			i += 2;
		}
		if (o >= len || in[o++] != c)
			abort();
	}
	if (o != len)
		abort();
	free(out);
}

/* RFC 4514 2.4: , + " \ < > ; escaped everywhere, a leading space or #, a
 * trailing space, NUL as \00; decodes back. */
static void check_dn(const char *in, size_t len)
{
	char *out = NULL;
	size_t i, o = 0, n;

	if (dir_dn_escape(in, len, &out) != 0) {
		if (out)
			abort();
		return;
	}
	n = strlen(out);
	for (i = 0; i < n; i++) {
		char c = out[i];

		if (c == '\\') {
			int hi = net_hexval(out[i + 1]), lo = hi < 0 ? -1 : net_hexval(out[i + 2]);

			if (hi >= 0 && lo >= 0) {
				c = (char)(hi << 4 | lo);
				i += 2;
			} else if (out[i + 1] && strchr(",+\"\\<>;= #", out[i + 1])) {
				c = out[++i];
			} else {
				abort();	/* a backslash that escapes nothing */
			}
		} else if (strchr(",+\"<>;", c) || (i == 0 && (c == ' ' || c == '#')) ||
			   (i == n - 1 && c == ' ')) {
			abort();
		}
		if (o >= len || in[o++] != c)
			abort();
	}
	if (o != len)
		abort();
	free(out);
}

static void check_username(const char *in, size_t len)
{
	char *out = NULL;

	if (!dir_username_valid(in, len))
		return;
	/* A valid username has nothing a filter must escape. */
	if (dir_filter_escape(in, len, &out) != 0 || strlen(out) != len || memcmp(out, in, len))
		abort();
	free(out);
}

static void check_diag(const char *in, size_t len)
{
	char *s = malloc(len + 1);
	int rc;

	if (!s)
		return;
	memcpy(s, in, len);
	s[len] = '\0';
	rc = dir_ad_diag(s);
	if (rc != DIR_E_INVALID_CREDENTIALS && rc != DIR_E_ACCOUNT_DISABLED &&
	    rc != DIR_E_PASSWORD_EXPIRED && rc != DIR_E_ACCOUNT_EXPIRED &&
	    rc != DIR_E_PASSWORD_MUST_CHANGE && rc != DIR_E_ACCOUNT_LOCKED)
		abort();
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy, so a read past the end is caught. */
	char *in = malloc(size ? size : 1);

	if (!in)
		return 0;
	memcpy(in, data, size);
	check_filter(in, size);
	check_dn(in, size);
	check_username(in, size);
	check_diag(in, size);
	free(in);
	return 0;
}
