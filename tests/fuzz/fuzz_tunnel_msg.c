/*
 * Fuzzes the tunnel's handling of one text frame from the hub
 * (agent/tunnel_msg.c, what on_text acts on).  Besides the sanitizers it checks
 * what the tunnel relies on: a request has a valid id and every field its kind
 * needs, a limit within bounds, a client_ip that is an address, and
 * tmsg_free() leaves nothing behind.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/tunnel.h"
#include "agent/tunnel_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_id(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > TMSG_ID_MAX)
		abort();
	for (size_t i = 0; i < n; i++)
		if (id[i] < 0x20 || id[i] > 0x7e)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char a[sizeof(struct in6_addr)];
	struct tmsg m;

	tmsg_parse(data, size, &m);
	switch (m.kind) {
	case TMSG_NONE:
	case TMSG_NO_ID:
		break;
	case TMSG_RESULT:
	case TMSG_BAD:
		check_id(m.id);
		break;
	case TMSG_AUTHENTICATE:
		check_id(m.id);
		if (!m.username || !m.password)
			abort();
		if (m.client_ip[0] && inet_pton(AF_INET, m.client_ip, a) != 1 &&
		    inet_pton(AF_INET6, m.client_ip, a) != 1)
			abort();
		break;
	case TMSG_LOOKUP:
		check_id(m.id);
		if (!m.username)
			abort();
		break;
	case TMSG_CHANGE_PASSWORD:
		check_id(m.id);
		if (!m.username || !m.password || !m.old_password)
			abort();
		break;
	case TMSG_SEARCH_USERS:
	case TMSG_LIST_GROUPS:
		check_id(m.id);
		if (m.limit < 1 || m.limit > TUNNEL_MAX_LIMIT ||
		    (m.kind == TMSG_SEARCH_USERS && !m.query))
			abort();
		break;
	default:
		abort();
	}
	tmsg_free(&m);
	if (m.root || m.id || m.kind != TMSG_NONE)
		abort();
	return 0;
}
