/*
 * Fuzzes the front-facing server's request path as agent/https.c drives it:
 * bytes arrive in pieces (as TLS records would cut them), go through the
 * header screen and http-parser (agent/http_req.c), a finished request is
 * taken apart the way dispatch() does (URL, query, form body), and what
 * followed it is fed again as the next pipelined request.  Beyond memory
 * errors it checks the screen's promises: a request that got through had
 * CRLF-only header lines without obs-fold, and its URL and body stayed within
 * their limits.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/http_req.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The header section of a request that got through, from its request line
 * (http-parser skips empty lines before it) to the first empty line, holds
 * no bare LF, no NUL and no line starting with white space. */
static void check_header_bytes(const uint8_t *h, size_t len)
{
	size_t s = 0, i;

	while (s < len && (h[s] == '\r' || h[s] == '\n'))
		s++;
	for (i = s; i < len; i++) {
		if (h[i] == '\n' && (i == s || h[i - 1] != '\r'))
			abort();
		if (h[i] == '\0')
			abort();
		if (i > s && h[i - 1] == '\n' && (h[i] == ' ' || h[i] == '\t'))
			abort();
		if (h[i] == '\n' && i + 2 < len && h[i + 1] == '\r' && h[i + 2] == '\n')
			break;
	}
}

static void take_apart(const struct req *r, const http_parser *p)
{
	struct http_parser_url u;
	const char *url = r->url.p ? r->url.p : "";
	char *v = NULL;

	if (r->url.len > MAX_URL || r->body.len > MAX_BODY || r->header_lines > MAX_HEADERS + 1)
		abort();
	(void)http_should_keep_alive(p);
	http_parser_url_init(&u);
	if (url[0] == '/' && http_parser_parse_url(url, r->url.len, 0, &u) == 0 &&
	    (u.field_set & (1 << UF_QUERY))) {
		if (form_get(url + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len,
			     "session", &v, NULL) == 0)
			(void)session_id_valid(v);
		free(v);
	}
	if (r->body.p) {
		const char *names[] = { "username", "password", "csrf", "session" };

		for (size_t i = 0; i < 4; i++) {
			v = NULL;
			(void)form_get(r->body.p, r->body.len, names[i], &v, NULL);
			free(v);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct req r = { 0 };
	http_parser p;
	size_t off = 0, start = 0, step, requests = 0;
	uint8_t *copy;

	if (size < 1)
		return 0;
	step = (size_t)(data[0] % 128) + 1;
	data++;
	size--;
	copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	http_parser_init(&p, HTTP_REQUEST);
	p.data = &r;
	while (off < size && requests < 16) {
		size_t n = size - off < step ? size - off : step;
		ssize_t used = http_req_feed(&r, &p, (const char *)copy + off, n);

		if (used < 0)
			break;
		if ((size_t)used > n)
			abort();
		off += (size_t)used;
		if (!r.complete)
			continue;
		check_header_bytes(copy + start, off - start);
		take_apart(&r, &p);
		requests++;
		if (!http_should_keep_alive(&p))
			break;
		/* The next request on the same connection starts clean. */
		http_req_reset(&r);
		http_parser_init(&p, HTTP_REQUEST);
		p.data = &r;
		start = off;
	}
	http_req_reset(&r);
	free(copy);
	return 0;
}
