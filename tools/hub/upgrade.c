/*
 * The pure half of the agent endpoint's HTTP upgrade (RFC 6455 section 4.2):
 * http-parser callbacks that collect the request target and the few headers
 * the hub reads.  No I/O; agents.c feeds the decrypted bytes, checks the
 * values with net/ws.c and decides what to answer.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "tools/hub/hub.h"

static const char *const header_names[H_N] = {
	"upgrade", "connection", "sec-websocket-key", "sec-websocket-version", "authorization",
};

static int up_url(http_parser *p, const char *at, size_t len)
{
	struct hub_upgrade *u = p->data;

	if (len > sizeof(u->url) - 1 - u->url_len)
		return 1;
	memcpy(u->url + u->url_len, at, len);
	u->url_len += len;
	return 0;
}

static int up_field(http_parser *p, const char *at, size_t len)
{
	struct hub_upgrade *u = p->data;

	if (u->in_value) {
		u->in_value = false;
		u->field_len = 0;
		u->field_long = false;
	}
	if (len > sizeof(u->field) - 1 - u->field_len) {
		u->field_long = true;
		return 0;
	}
	memcpy(u->field + u->field_len, at, len);
	u->field_len += len;
	return 0;
}

static int up_value(http_parser *p, const char *at, size_t len)
{
	struct hub_upgrade *u = p->data;
	int i;

	if (!u->in_value) {
		u->in_value = true;
		u->cur = -1;
		u->field[u->field_len] = '\0';
		for (i = 0; i < H_N && !u->field_long; i++) {
			if (strcasecmp(u->field, header_names[i]) == 0) {
				/* A repeated header could smuggle a second token. */
				if (u->seen[i])
					return 1;
				u->seen[i] = true;
				u->cur = i;
			}
		}
	}
	if (u->cur < 0)
		return 0;
	if (len > sizeof(u->val[0]) - 1 - u->val_len[u->cur])
		return 1;
	memcpy(u->val[u->cur] + u->val_len[u->cur], at, len);
	u->val_len[u->cur] += len;
	u->val[u->cur][u->val_len[u->cur]] = '\0';
	return 0;
}

static int up_complete(http_parser *p)
{
	struct hub_upgrade *u = p->data;

	u->done = true;
	http_parser_pause(p, 1);
	return 0;
}

const http_parser_settings hub_upgrade_settings = {
	.on_url = up_url,
	.on_header_field = up_field,
	.on_header_value = up_value,
	.on_message_complete = up_complete,
};
