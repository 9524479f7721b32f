/*
 * The pure half of the agent endpoint's HTTP upgrade (RFC 6455 section 4.2):
 * http-parser callbacks that collect the request target and the few headers
 * the hub reads.  No I/O; agents.c feeds the decrypted bytes, checks the
 * values with net/ws.c and decides what to answer.
 */
#include <string.h>

#include "tools/hub/hub.h"

static const char *const header_names[H_N] = {
	"upgrade", "connection", "sec-websocket-key", "sec-websocket-version", "authorization",
};

void hub_upgrade_init(struct hub_upgrade *u)
{
	memset(u, 0, sizeof(*u));
	net_hdrs_init(&u->h, header_names, H_N, true);
}

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
	return net_hdrs_field(&((struct hub_upgrade *)p->data)->h, at, len);
}

static int up_value(http_parser *p, const char *at, size_t len)
{
	return net_hdrs_value(&((struct hub_upgrade *)p->data)->h, at, len);
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
