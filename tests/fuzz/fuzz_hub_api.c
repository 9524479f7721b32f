/*
 * Fuzzes the hub's local API request path: the request as tools/hub/apireq.c
 * collects it with http-parser (URL and body bounded), the split of its target
 * into path and query, the query decoding the routes use, and the JSON body
 * parse.  The query decoder also runs on the raw input in an exact-size
 * buffer, so a read one byte past the query is caught.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tools/hub/hub.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_query(const char *q, size_t len)
{
	char text[1024];
	json_int_t limit;
	int rc = hub_query_get(q, len, "q", text, sizeof(text));

	if (rc == 1 && strlen(text) >= sizeof(text))
		abort();
	if (rc < -1 || rc > 1)
		abort();
	if (hub_query_limit(q, len, &limit) == 0 && (limit < 1 || limit > HUB_MAX_LIMIT))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hub_api_req *r = calloc(1, sizeof(*r));
	char *copy = malloc(size ? size : 1), *path = malloc(HUB_API_URL_MAX + 1);
	const char *q;
	size_t qlen;
	http_parser p;

	if (!r || !copy || !path)
		goto out;
	memcpy(copy, data, size);
	check_query(copy, size);

	http_parser_init(&p, HTTP_REQUEST);
	p.data = r;
	http_parser_execute(&p, &hub_api_settings, copy, size);
	if (!r->done || r->too_long || r->too_big)
		goto out;
	if (r->url_len > HUB_API_URL_MAX || r->body_len > HUB_MAX_API_BODY)
		abort();
	if (hub_api_target(r, path, &q, &qlen) == 0) {
		if (strlen(path) > HUB_API_URL_MAX || q + qlen > r->url + r->url_len)
			abort();
		check_query(q, qlen);
	}
	if (r->body) {
		json_error_t err;
		json_t *j = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &err);

		json_decref(j);
	}
out:
	if (r)
		free(r->body);
	free(r);
	free(copy);
	free(path);
	return 0;
}
