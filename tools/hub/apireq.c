/*
 * The pure half of the hub's local API: http-parser callbacks that collect one
 * request (URL and body, both bounded), the split of its target into path and
 * query, and the query string decoding.  No I/O; api.c feeds the bytes and
 * routes the result.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/hub/hub.h"

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct hub_api_req *c = p->data;

	if (len > HUB_API_URL_MAX - c->url_len) {
		c->too_long = true;
		return 0;
	}
	memcpy(c->url + c->url_len, at, len);
	c->url_len += len;
	c->url[c->url_len] = '\0';
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct hub_api_req *c = p->data;

	if (c->too_big || len > HUB_MAX_API_BODY - c->body_len) {
		c->too_big = true;
		return 0;
	}
	if (!c->body && !(c->body = malloc(HUB_MAX_API_BODY)))
		return 1;
	memcpy(c->body + c->body_len, at, len);
	c->body_len += len;
	return 0;
}

static int on_complete(http_parser *p)
{
	struct hub_api_req *c = p->data;

	c->done = true;
	http_parser_pause(p, 1);
	return 0;
}

const http_parser_settings hub_api_settings = {
	.on_url = on_url,
	.on_body = on_body,
	.on_message_complete = on_complete,
};

int hub_query_get(const char *q, size_t len, const char *key, char *out, size_t outlen)
{
	size_t klen = strlen(key), i, o;
	const char *p = q, *end = q + len, *amp;

	while (p < end) {
		amp = memchr(p, '&', (size_t)(end - p));
		if (!amp)
			amp = end;
		if ((size_t)(amp - p) > klen && memcmp(p, key, klen) == 0 && p[klen] == '=') {
			for (i = klen + 1, o = 0; p + i < amp; i++) {
				int ch = (unsigned char)p[i];

				if (ch == '%') {
					int hi, lo;

					if (p + i + 2 >= amp || (hi = net_hexval(p[i + 1])) < 0 ||
					    (lo = net_hexval(p[i + 2])) < 0)
						return -1;
					ch = hi * 16 + lo;
					i += 2;
				} else if (ch == '+') {
					ch = ' ';
				}
				if (ch == 0 || o + 1 >= outlen)
					return -1;
				out[o++] = (char)ch;
			}
			out[o] = '\0';
			return 1;
		}
		p = amp + 1;
	}
	return 0;
}

int hub_query_limit(const char *q, size_t len, json_int_t *limit)
{
	char buf[16], *end;
	long v;
	int rc = hub_query_get(q, len, "limit", buf, sizeof(buf));

	*limit = 100;
	if (rc == 0)
		return 0;
	if (rc < 0)
		return -1;
	errno = 0;
	v = strtol(buf, &end, 10);
	if (errno || *end || end == buf || v < 1 || v > HUB_MAX_LIMIT)
		return -1;
	*limit = v;
	return 0;
}

int hub_api_target(const struct hub_api_req *r, char path[HUB_API_URL_MAX + 1], const char **q,
		   size_t *qlen)
{
	struct http_parser_url u;

	*q = "";
	*qlen = 0;
	http_parser_url_init(&u);
	if (http_parser_parse_url(r->url, r->url_len, 0, &u) != 0 || !(u.field_set & (1 << UF_PATH)))
		return -1;
	snprintf(path, HUB_API_URL_MAX + 1, "%.*s", (int)u.field_data[UF_PATH].len,
		 r->url + u.field_data[UF_PATH].off);
	if (u.field_set & (1 << UF_QUERY)) {
		*q = r->url + u.field_data[UF_QUERY].off;
		*qlen = u.field_data[UF_QUERY].len;
	}
	return 0;
}
