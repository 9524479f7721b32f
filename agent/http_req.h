/*
 * agent/ private: one HTTP request as the front-facing server reads it.
 * http_req.c screens the header bytes and runs http-parser with bounded
 * callbacks; it does no I/O, so https_conn.c drives it per connection and the fuzz
 * harness drives it on raw bytes.  Only agent/ files and tests include this.
 */
#ifndef DIRBRIDGE_AGENT_HTTP_REQ_H
#define DIRBRIDGE_AGENT_HTTP_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <http_parser.h>

#include "agent/https.h"

#define MAX_HEADER_BYTES 8192
#define MAX_HEADERS 64
#define MAX_URL 2048
#define MAX_BODY 4096		/* the login form is small */

/* The header scanner's state: http-parser tolerates bare LF and obs-fold,
 * which are request smuggling shapes, so header bytes are checked first.
 * SCAN_NEW (the zero value) is before the request line: http-parser skips
 * empty lines there, so the scanner must skip them too rather than take the
 * first CRLF CRLF for the end of the headers. */
enum scan_state {
	SCAN_NEW, SCAN_NEW_CR, SCAN_LINE, SCAN_CR, SCAN_LINE_START, SCAN_END_CR, SCAN_DONE
};

enum hdr { H_NONE, H_CONTENT_TYPE };

struct req {
	struct buf url;
	struct buf body;
	struct buf ctype;
	enum hdr cur;			/* the header whose value is arriving */
	bool field_done;		/* last callback was a value */
	char field[32];
	size_t field_len;
	bool complete;
	bool started;
	unsigned status;		/* error status chosen while parsing */
	enum scan_state scan;
	size_t header_bytes;
	unsigned header_lines;
};

/* The callbacks find the request through parser->data, which must point at
 * the struct req being filled. */
extern const http_parser_settings http_req_settings;

/* Wipes and frees what R holds and zeroes it for the next request. */
void http_req_reset(struct req *r);

/* Checks the header section byte by byte before http-parser sees it: CRLF
 * line ends only, no obs-fold, bounded size and count.  Returns how many bytes
 * were header bytes, or -EBADMSG with r->status set. */
ssize_t http_req_scan(struct req *r, const char *data, size_t len);

/* Feeds LEN bytes of plaintext to P (whose data is R).  Returns bytes consumed
 * (after a complete request the rest belongs to a pipelined one), or -EBADMSG
 * when the request is bad; r->status then holds the status to answer with, or
 * 0 when http-parser's own error applies. */
ssize_t http_req_feed(struct req *r, http_parser *p, const char *data, size_t len);

#endif
