/*
 * Fuzzes the hub's agent endpoint up to the WebSocket: the HTTP upgrade
 * request as tools/hub/upgrade.c collects it with http-parser, fed in pieces
 * the way TLS records would split it, then the checks agents.c runs on the
 * collected values with net/ws.c (token lists, Sec-WebSocket-Key, the accept
 * hash).  Every collected string must stay NUL-terminated within its buffer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"
#include "tools/hub/hub.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hub_upgrade *u;
	http_parser p;
	size_t off = 0, step;
	char key[NET_WS_ACCEPT_SIZE];
	uint8_t *copy;

	if (size < 1)
		return 0;
	/* The first byte picks the piece size, the rest is the request. */
	step = (size_t)(data[0] % 64) + 1;
	data++;
	size--;
	u = malloc(sizeof(*u));
	copy = malloc(size ? size : 1);
	if (!u || !copy)
		goto out;
	hub_upgrade_init(u);
	memcpy(copy, data, size);
	http_parser_init(&p, HTTP_REQUEST);
	p.data = u;
	while (off < size && !u->done) {
		size_t n = size - off < step ? size - off : step, used;

		used = http_parser_execute(&p, &hub_upgrade_settings, (const char *)copy + off, n);
		if (HTTP_PARSER_ERRNO(&p) != HPE_OK && !u->done)
			goto out;
		if (used > n)
			abort();
		off += used;
	}
	if (!u->done)
		goto out;
	if (u->url_len >= sizeof(u->url))
		abort();
	for (int i = 0; i < H_N; i++)
		if (u->h.val_len[i] >= sizeof(u->h.val[i]) ||
		    (u->h.seen[i] && u->h.val[i][u->h.val_len[i]]))
			abort();
	(void)net_http_has_token(u->h.val[H_UPGRADE], "websocket");
	(void)net_http_has_token(u->h.val[H_CONNECTION], "upgrade");
	/* The accept hash exists exactly for the keys that are valid. */
	if (net_ws_key_valid(u->h.val[H_KEY], u->h.val_len[H_KEY])) {
		if (net_ws_accept(u->h.val[H_KEY], u->h.val_len[H_KEY], key) != 0 ||
		    strlen(key) != NET_WS_ACCEPT_SIZE - 1)
			abort();
	} else if (net_ws_accept(u->h.val[H_KEY], u->h.val_len[H_KEY], key) != NET_E_INVAL) {
		abort();
	}
out:
	free(copy);
	free(u);
	return 0;
}
