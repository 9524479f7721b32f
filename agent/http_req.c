/*
 * The request-reading half of the front-facing server: the header screen that
 * refuses smuggling shapes, and http-parser's callbacks with their limits.
 * No I/O and no connection state here; https_conn.c feeds it what TLS
 * decrypted.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent/http_req.h"

void http_req_reset(struct req *r)
{
	buf_wipe(&r->url);
	buf_wipe(&r->body);
	buf_wipe(&r->ctype);
	memset(r, 0, sizeof(*r));
}

/* What a callback returns to make http-parser stop; the status to answer
 * with is in r->status by then.  It is -1, http-parser's own convention, and
 * not any positive value: 1 and 2 from on_headers_complete mean "no body". */
#define PARSER_STOP (-1)

static int on_begin(http_parser *p)
{
	struct req *r = p->data;

	r->started = true;
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct req *r = p->data;

	if (r->url.len + len > MAX_URL) {
		r->status = 414;
		return PARSER_STOP;
	}
	return buf_add(&r->url, at, len) < 0 ? PARSER_STOP : 0;
}

static int on_field(http_parser *p, const char *at, size_t len)
{
	struct req *r = p->data;

	if (r->field_done) {
		r->field_done = false;
		r->field_len = 0;
	}
	if (r->field_len + len < sizeof(r->field))
		memcpy(r->field + r->field_len, at, len);
	r->field_len += len;
	return 0;
}

static int on_value(http_parser *p, const char *at, size_t len)
{
	struct req *r = p->data;

	if (!r->field_done) {
		r->field_done = true;
		r->cur = H_NONE;
		if (r->field_len == 12 && strncasecmp(r->field, "content-type", 12) == 0) {
			if (r->ctype.p) {
				r->status = 400;	/* two Content-Types: ambiguous */
				return PARSER_STOP;
			}
			r->cur = H_CONTENT_TYPE;
		}
	}
	if (r->cur == H_CONTENT_TYPE) {
		if (r->ctype.len + len > 256) {
			r->status = 400;
			return PARSER_STOP;
		}
		return buf_add(&r->ctype, at, len) < 0 ? PARSER_STOP : 0;
	}
	return 0;
}

static int on_headers_complete(http_parser *p)
{
	struct req *r = p->data;

	/* http-parser already refuses Transfer-Encoding with Content-Length and
	 * duplicate Content-Length; a body may only come to POST, small. */
	if ((p->flags & F_CONTENTLENGTH) && p->content_length > MAX_BODY) {
		r->status = 413;
		return PARSER_STOP;
	}
	if (!r->ctype.p)
		buf_add(&r->ctype, "", 0);
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct req *r = p->data;

	if (r->body.len + len > MAX_BODY) {
		r->status = 413;
		return PARSER_STOP;
	}
	return buf_add(&r->body, at, len) < 0 ? PARSER_STOP : 0;
}

static int on_complete(http_parser *p)
{
	struct req *r = p->data;

	r->complete = true;
	http_parser_pause(p, 1);
	return 0;
}

const http_parser_settings http_req_settings = {
	.on_message_begin = on_begin,
	.on_url = on_url,
	.on_header_field = on_field,
	.on_header_value = on_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_complete,
};

ssize_t http_req_scan(struct req *r, const char *data, size_t len)
{
	size_t i;

	for (i = 0; i < len && r->scan != SCAN_DONE; i++) {
		char ch = data[i];

		if (++r->header_bytes > MAX_HEADER_BYTES) {
			r->status = 431;
			return -EBADMSG;
		}
		switch (r->scan) {
		case SCAN_NEW:
			if (ch == '\r')
				r->scan = SCAN_NEW_CR;
			else if (ch == '\n' || ch == '\0' || ch == ' ' || ch == '\t')
				goto bad;
			else
				r->scan = SCAN_LINE;
			break;
		case SCAN_NEW_CR:
			if (ch != '\n')
				goto bad;
			r->scan = SCAN_NEW;
			break;
		case SCAN_LINE:
			if (ch == '\r')
				r->scan = SCAN_CR;
			else if (ch == '\n' || ch == '\0')
				goto bad;
			break;
		case SCAN_CR:
			if (ch != '\n')
				goto bad;
			r->scan = SCAN_LINE_START;
			if (++r->header_lines > MAX_HEADERS) {
				r->status = 431;
				return -EBADMSG;
			}
			break;
		case SCAN_LINE_START:
			if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\0')
				goto bad;
			r->scan = ch == '\r' ? SCAN_END_CR : SCAN_LINE;
			break;
		case SCAN_END_CR:
			if (ch != '\n')
				goto bad;
			r->scan = SCAN_DONE;
			break;
		case SCAN_DONE:
			break;
		}
	}
	return (ssize_t)i;
bad:
	r->status = 400;
	return -EBADMSG;
}

ssize_t http_req_feed(struct req *r, http_parser *p, const char *data, size_t len)
{
	size_t n;

	if (len == 0)
		return 0;
	if (r->scan != SCAN_DONE && http_req_scan(r, data, len) < 0)
		return -EBADMSG;
	n = http_parser_execute(p, &http_req_settings, data, len);
	if (HTTP_PARSER_ERRNO(p) == HPE_PAUSED) {
		http_parser_pause(p, 0);
		return (ssize_t)n;
	}
	if (HTTP_PARSER_ERRNO(p) != HPE_OK || n != len)
		return -EBADMSG;
	return (ssize_t)n;
}
