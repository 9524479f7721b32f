/* Pure helpers of ldap/: UTF-8, escaping, name checks, and the small decisions
 * of the user-bind connections and the group walk. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ldap/dir.h"
#include "ldap/internal.h"

/*
 * Length of the well-formed UTF-8 sequence at S (at most LEFT bytes), or 0 when
 * it is not one: overlong forms, surrogates and code points above U+10FFFF are
 * refused, as RFC 3629 requires.  *CP receives the code point.
 */
size_t dir_utf8_next(const unsigned char *s, size_t left, uint32_t *cp)
{
	uint32_t c = s[0], min;
	size_t n, i;

	if (c < 0x80) {
		*cp = c;
		return 1;
	} else if ((c & 0xe0) == 0xc0) {
		n = 2; c &= 0x1f; min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		n = 3; c &= 0x0f; min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		n = 4; c &= 0x07; min = 0x10000;
	} else {
		return 0;
	}
	if (left < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

bool dir_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, n;
	uint32_t cp;

	while (i < len) {
		n = dir_utf8_next(p + i, len - i, &cp);
		if (n == 0 || cp == 0)
			return false;
		i += n;
	}
	return true;
}

static const char hexdig[] = "0123456789abcdef";

int dir_filter_escape(const char *in, size_t len, char **out)
{
	size_t i, o = 0;
	char *buf;

	*out = NULL;
	if (!in || !dir_utf8_valid(in, len))
		return DIR_E_BAD_REQUEST;
	/* Every byte grows to at most three, so one allocation suffices. */
	if (len > (SIZE_MAX - 1) / 3)
		return DIR_E_BAD_REQUEST;
	buf = malloc(len * 3 + 1);
	if (!buf)
		return DIR_E_INTERNAL;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == '*' || c == '(' || c == ')' || c == '\\') {
			buf[o++] = '\\';
			buf[o++] = hexdig[c >> 4];
			buf[o++] = hexdig[c & 15];
		} else {
			buf[o++] = (char)c;
		}
	}
	buf[o] = '\0';
	*out = buf;
	return 0;
}

int dir_dn_escape(const char *in, size_t len, char **out)
{
	size_t i, o = 0;
	char *buf;

	*out = NULL;
	if (!in || len > (SIZE_MAX - 1) / 3)
		return DIR_E_BAD_REQUEST;
	/* NUL is legal in a DN value when escaped, so only UTF-8 form is checked
	 * here; dir_utf8_valid() also refuses NUL, hence the explicit walk. */
	for (i = 0; i < len;) {
		uint32_t cp;
		size_t n = dir_utf8_next((const unsigned char *)in + i, len - i, &cp);

		if (n == 0)
			return DIR_E_BAD_REQUEST;
		i += n;
	}
	buf = malloc(len * 3 + 1);
	if (!buf)
		return DIR_E_INTERNAL;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == 0) {
			memcpy(buf + o, "\\00", 3);
			o += 3;
		} else if (c == ',' || c == '+' || c == '"' || c == '\\' || c == '<' ||
			   c == '>' || c == ';' || c == '=' ||
			   (i == 0 && (c == ' ' || c == '#')) ||
			   (i == len - 1 && c == ' ')) {
			buf[o++] = '\\';
			buf[o++] = (char)c;
		} else {
			buf[o++] = (char)c;
		}
	}
	buf[o] = '\0';
	*out = buf;
	return 0;
}

bool dir_username_valid(const char *name, size_t len)
{
	const unsigned char *p = (const unsigned char *)name;
	size_t i = 0, n;
	uint32_t cp;

	if (!name || len == 0 || len > 256)
		return false;
	while (i < len) {
		n = dir_utf8_next(p + i, len - i, &cp);
		if (n == 0 || cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
			return false;
		if (cp < 0x80 && strchr("\"/\\[]:;|=,+*?<>()", (int)cp))
			return false;
		i += n;
	}
	return true;
}

/* UTF-8 to UTF-16LE for AD's unicodePwd; refuses invalid UTF-8 and NUL. */
int dir_utf16le(const char *in, size_t len, unsigned char **out, size_t *out_len)
{
	const unsigned char *p = (const unsigned char *)in;
	unsigned char *buf;
	size_t i = 0, o = 0, n;
	uint32_t cp;

	*out = NULL;
	*out_len = 0;
	if (len > SIZE_MAX / 4)
		return DIR_E_BAD_REQUEST;
	buf = malloc(len * 4 + 4);
	if (!buf)
		return DIR_E_INTERNAL;
	while (i < len) {
		n = dir_utf8_next(p + i, len - i, &cp);
		if (n == 0 || cp == 0) {
			explicit_bzero(buf, len * 4 + 4);
			free(buf);
			return DIR_E_BAD_REQUEST;
		}
		i += n;
		if (cp >= 0x10000) {
			uint32_t v = cp - 0x10000, hi = 0xd800 | (v >> 10), lo = 0xdc00 | (v & 0x3ff);

			buf[o++] = (unsigned char)(hi & 0xff);
			buf[o++] = (unsigned char)(hi >> 8);
			buf[o++] = (unsigned char)(lo & 0xff);
			buf[o++] = (unsigned char)(lo >> 8);
		} else {
			buf[o++] = (unsigned char)(cp & 0xff);
			buf[o++] = (unsigned char)(cp >> 8);
		}
	}
	*out = buf;
	*out_len = o;
	return 0;
}

bool dir_ubind_keep(int rc)
{
	/* inappropriateAuthentication is how some servers refuse a bind for
	 * the account's sake (an entry without a password); the link is fine. */
	return rc == LDAP_SUCCESS || rc == LDAP_INVALID_CREDENTIALS ||
	       rc == LDAP_INAPPROPRIATE_AUTH;
}

uint64_t dir_user_idle_ms(unsigned timeout_ms)
{
	uint64_t ms = (uint64_t)timeout_ms * 2;

	return ms < 1000 ? 1000 : ms > 60000 ? 60000 : ms;
}

int dir_group_filter(char *const *dns, size_t n, char **out)
{
	static const char head[] =
		"(&(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))(|";
	char **esc;
	size_t len = sizeof(head) + 2, used = 0;
	char *f, *p;

	*out = NULL;
	esc = calloc(n ? n : 1, sizeof(*esc));
	if (!esc)
		return DIR_E_INTERNAL;
	for (size_t i = 0; i < n; i++) {
		if (!dns[i] || dir_filter_escape(dns[i], strlen(dns[i]), &esc[i]) < 0) {
			esc[i] = NULL;
			continue;
		}
		len += 2 * strlen(esc[i]) + sizeof("(member=)(uniqueMember=)");
		used++;
	}
	f = used ? malloc(len) : NULL;
	if (f) {
		p = f + sprintf(f, "%s", head);
		for (size_t i = 0; i < n; i++)
			if (esc[i])
				p += sprintf(p, "(member=%s)(uniqueMember=%s)", esc[i], esc[i]);
		strcpy(p, "))");
	}
	for (size_t i = 0; i < n; i++)
		free(esc[i]);
	free(esc);
	if (!used)
		return DIR_E_NOT_FOUND;
	if (!f)
		return DIR_E_INTERNAL;
	*out = f;
	return 0;
}
