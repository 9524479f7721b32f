/*
 * Fuzzes config/: cfg_load() on the input as a whole configuration file (an
 * in-memory file named through /proc/self/fd, so runs write nothing to disk),
 * then every input line as a CIDR range for cfg_range_parse() and
 * cfg_ranges_match().  A parsed range must keep its documented invariant (no
 * host bits, prefix within the family) and must match exactly the addresses
 * a plain bit-by-bit comparison says it should, IPv4-mapped IPv6 included.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config/cfg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int bit(const uint8_t *a, unsigned i)
{
	return (a[i / 8] >> (7 - i % 8)) & 1;
}

static int in_range(const struct cfg_range *r, const uint8_t *addr)
{
	for (unsigned i = 0; i < r->prefix; i++)
		if (bit(addr, i) != bit(r->addr, i))
			return 0;
	return 1;
}

/* Checks R against the address ADDR (16 bytes from the input). */
static void check_match(const struct cfg_range *r, const uint8_t *addr)
{
	struct sockaddr_in s4 = { .sin_family = AF_INET };
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6 };
	unsigned max = r->family == AF_INET ? 32 : 128;

	if (r->prefix > max)
		abort();
	for (unsigned i = r->prefix; i < max; i++)
		if (bit(r->addr, i))
			abort();
	if (r->family == AF_INET) {
		memcpy(&s4.sin_addr, r->addr, 4);
		if (!cfg_ranges_match(r, 1, (struct sockaddr *)&s4))
			abort();
		memcpy(&s4.sin_addr, addr, 4);
		if (cfg_ranges_match(r, 1, (struct sockaddr *)&s4) != in_range(r, addr))
			abort();
		/* The same client seen on a dual-stack socket. */
		memset(&s6.sin6_addr, 0, sizeof(s6.sin6_addr));
		s6.sin6_addr.s6_addr[10] = s6.sin6_addr.s6_addr[11] = 0xff;
		memcpy(s6.sin6_addr.s6_addr + 12, addr, 4);
		if (cfg_ranges_match(r, 1, (struct sockaddr *)&s6) != in_range(r, addr))
			abort();
	} else {
		memcpy(&s6.sin6_addr, r->addr, 16);
		if (!cfg_ranges_match(r, 1, (struct sockaddr *)&s6))
			abort();
		memcpy(&s6.sin6_addr, addr, 16);
		if (cfg_ranges_match(r, 1, (struct sockaddr *)&s6) != in_range(r, addr))
			abort();
		memcpy(&s4.sin_addr, addr, 4);
		if (cfg_ranges_match(r, 1, (struct sockaddr *)&s4))
			abort();	/* an IPv6 range never matches a bare IPv4 client */
	}
}

static void check_ranges(const uint8_t *data, size_t size)
{
	uint8_t addr[16] = { 0 };
	char *text = malloc(size + 1), *line, *save = NULL;

	if (!text)
		return;
	memcpy(text, data, size);
	text[size] = '\0';
	memcpy(addr, data, size < 16 ? size : 16);
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		struct cfg_range r;
		int rc = cfg_range_parse(line, &r);

		if (rc == 0 || rc == -EDOM)
			check_match(&r, addr);
		else if (rc != -EINVAL && rc != -ERANGE)
			abort();
	}
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static FILE *devnull;
	static char path[64];
	struct cfg *cfg = NULL;

	if (fd < 0) {
		fd = memfd_create("fuzz-cfg", MFD_CLOEXEC);
		devnull = fopen("/dev/null", "w");
		if (fd < 0 || !devnull)
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	if (cfg_load(path, 0, &cfg, devnull) == 0) {
		if (!cfg)
			abort();
		cfg_free(cfg);
	} else if (cfg) {
		abort();
	}
	check_ranges(data, size);
	return 0;
}
