/*
 * Address ranges in CIDR notation (see cfg.h): [https] client_cert_ranges, and
 * the strict dotted-quad rules the listening addresses share.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "config/internal.h"

/* Dotted-quad octets with a leading zero are refused: some parsers read them as
 * octal, so "010.0.0.1" would mean 8.0.0.1 to one tool and 10.0.0.1 to another. */
static bool octets_plain(const char *s)
{
	const char *p = strrchr(s, ':');

	for (p = p ? p + 1 : s; *p; p++)
		if (*p == '0' && isdigit((unsigned char)p[1]) && (p == s || !isxdigit((unsigned char)p[-1])))
			return false;
	return true;
}

int cfg_range_parse(const char *text, struct cfg_range *out)
{
	char addr[INET6_ADDRSTRLEN];
	const char *slash = strchr(text, '/');
	size_t alen = slash ? (size_t)(slash - text) : strlen(text);
	unsigned max, bits;
	unsigned long prefix;
	bool host_bits = false;

	memset(out, 0, sizeof *out);
	if (alen == 0 || alen >= sizeof addr)
		return -EINVAL;
	memcpy(addr, text, alen);
	addr[alen] = '\0';
	if (strchr(addr, ':')) {
		out->family = AF_INET6;
		max = 128;
	} else {
		out->family = AF_INET;
		max = 32;
	}
	if ((strchr(addr, '.') && !octets_plain(addr)) ||
	    inet_pton(out->family, addr, out->addr) != 1)
		return -EINVAL;
	prefix = max;
	if (slash && !cfg_parse_uint(slash + 1, 3, &prefix))
		return -EINVAL;
	if (prefix > max)
		return -ERANGE;
	out->prefix = (unsigned)prefix;
	for (bits = out->prefix; bits < max; bits++) {
		uint8_t bit = (uint8_t)(0x80u >> (bits % 8));

		if (out->addr[bits / 8] & bit) {
			host_bits = true;
			out->addr[bits / 8] &= (uint8_t)~bit;
		}
	}
	return host_bits ? -EDOM : 0;
}

static bool prefix_match(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
	unsigned full = prefix / 8, rest = prefix % 8;
	uint8_t mask;

	if (memcmp(a, b, full) != 0)
		return false;
	if (rest == 0)
		return true;
	mask = (uint8_t)(0xffu << (8 - rest));
	return ((a[full] ^ b[full]) & mask) == 0;
}

bool cfg_ranges_match(const struct cfg_range *ranges, size_t n, const struct sockaddr *sa)
{
	const uint8_t *v4 = NULL, *v6 = NULL;

	if (!sa)
		return false;
	if (sa->sa_family == AF_INET) {
		v4 = (const uint8_t *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;

		v6 = a->s6_addr;
		/* A dual-stack socket shows IPv4 clients as ::ffff:a.b.c.d; they
		 * are the same clients the IPv4 ranges describe. */
		if (IN6_IS_ADDR_V4MAPPED(a))
			v4 = a->s6_addr + 12;
	}
	for (size_t i = 0; i < n; i++) {
		const struct cfg_range *r = &ranges[i];

		if (r->family == AF_INET && v4 && prefix_match(v4, r->addr, r->prefix))
			return true;
		if (r->family == AF_INET6 && v6 && prefix_match(v6, r->addr, r->prefix))
			return true;
	}
	return false;
}
