/*
 * The pure half of the agent endpoint's HTTP upgrade (RFC 6455 section 4.2):
 * http-parser callbacks that collect the request target and the few headers
 * the hub reads, and the checks on their values.  No I/O; agents.c feeds the
 * decrypted bytes and decides what to answer.
 */
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "tools/hub/hub.h"

#define WS_GUID		"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

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

bool hub_has_token(const char *list, const char *token)
{
	char copy[512], *save = NULL, *t;

	snprintf(copy, sizeof(copy), "%s", list);
	for (t = strtok_r(copy, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save))
		if (strcasecmp(t, token) == 0)
			return true;
	return false;
}

int hub_ws_accept(const char *key, char out[32])
{
	char in[64 + sizeof(WS_GUID)];
	uint8_t digest[20];
	gnutls_datum_t d = { digest, sizeof(digest) }, b64 = { NULL, 0 };
	int n;

	n = snprintf(in, sizeof(in), "%s%s", key, WS_GUID);
	if (n < 0 || (size_t)n >= sizeof(in))
		return -EINVAL;
	if (gnutls_hash_fast(GNUTLS_DIG_SHA1, in, (size_t)n, digest) < 0 ||
	    gnutls_base64_encode2(&d, &b64) < 0)
		return -EIO;
	snprintf(out, 32, "%.*s", (int)b64.size, (const char *)b64.data);
	gnutls_free(b64.data);
	return 0;
}

bool hub_ws_key_valid(const char *key, size_t len)
{
	gnutls_datum_t in = { (unsigned char *)(uintptr_t)key, (unsigned)len }, out = { NULL, 0 };
	bool ok;

	if (len != 24 || gnutls_base64_decode2(&in, &out) < 0)
		return false;
	ok = out.size == 16;
	gnutls_free(out.data);
	return ok;
}
