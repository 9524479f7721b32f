/*
 * net/ — the transport every connection of dirbridge rides on: one libuv TCP
 * stream carrying one TLS session (stream.c), the WebSocket glue over it that
 * the tunnel (client) and the hub (server) share (ws.c), and peer address text
 * (addr.c).  Prefix: net_.  Below it are only tls/ and log/; it never includes
 * config/, ldap/ or agent/.
 *
 * Sections of this header are owned by separate source files:
 *   stream.c — struct net_stream: libuv TCP <-> TLS push/pull, bounded both ways
 *   ws.c     — wslay over a stream's TLS session; RFC 6455 keys; header tokens
 *   addr.c   — address text, hex digits, errors
 */
#ifndef DIRBRIDGE_NET_H
#define DIRBRIDGE_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "tls/tls.h"

/* net_ codes lie in -3001..-3099, disjoint from tls_ (-1001..), dir_ (-2001..)
 * and -errno.  Where a libuv call failed, its own code (a negative errno) is
 * passed on instead, so the log can name the system error; net_strerror()
 * names both. */
enum net_err {
	NET_OK = 0,
	NET_E_NOMEM = -3001,
	NET_E_IO = -3002,	/* the socket failed (a write, the peer name) */
	NET_E_IN_BOUND = -3003,	/* more unread ciphertext than the stream's max_in */
	NET_E_OUT_BOUND = -3004,	/* more unwritten ciphertext than max_out */
	NET_E_CLOSED = -3005,	/* the stream is closing, or the peer closed it */
	NET_E_INVAL = -3006,	/* a malformed argument (key, address) */
	NET_E_TLS = -3007,	/* the TLS session failed (tls_last_error() says why) */
	NET_E_WS = -3008,	/* the WebSocket failed (net_ws_why() says why) */
};
const char *net_strerror(int err);

/* ---- stream.c: one TCP connection carrying one TLS session --------------- */

/*
 * A stream owns its uv_tcp_t and, once attached, its TLS session; both are
 * freed after on_close returns.  Input: libuv reads into one buffer shared by
 * every stream of the thread; GnuTLS pulls from it during on_data, and only
 * what it left unread is copied into a buffer of the stream's own, which is
 * wiped and freed once drained, so an idle stream holds no read buffer.
 * Output: what GnuTLS pushes is collected and handed to libuv as one write by
 * net_stream_flush() (called by the stream itself after each on_data), so a
 * handshake flight or a whole response is one system call.
 *
 * After net_stream_close() no callback but on_close is called.
 */
struct net_stream;

struct net_stream_cbs {
	/* Outgoing streams: the connect result, 0 or a negative errno.  On
	 * failure the owner still closes the stream. */
	void (*on_connect)(void *owner, int status);
	/* New ciphertext is buffered, or EOF (or a read error) was seen:
	 * net_stream_eof().  The owner drives its TLS/HTTP/WS state from here;
	 * what it pushed is flushed when it returns. */
	void (*on_data)(void *owner);
	/* Every write handed to libuv has completed and nothing is collected. */
	void (*on_drain)(void *owner);
	/* A write failed (negative errno) or more than max_in ciphertext was
	 * left unread (NET_E_IN_BOUND); reading has stopped.  The owner closes. */
	void (*on_error)(void *owner, int err);
	/* The handle is closed; after this returns the stream and its TLS
	 * session are freed.  The owner never touches the stream again. */
	void (*on_close)(void *owner);
	/* Optional: net_stream_shutdown() completed (0 or a negative errno). */
	void (*on_shutdown)(void *owner, int status);
};

struct net_stream_conf {
	const struct net_stream_cbs *cbs;	/* must outlive the stream */
	void *owner;
	size_t max_in;		/* unread ciphertext kept between reads */
	size_t max_out;		/* ciphertext collected or being written */
};

/* Accepts one connection from LISTENER (a uv_tcp_t listening), with TCP_NODELAY.
 * 0, or a negative errno / NET_E_NOMEM with nothing left for the owner (no
 * callback is ever called for a stream that was not returned). */
int net_stream_accept(uv_stream_t *listener, const struct net_stream_conf *conf,
		      struct net_stream **out);
/* Starts connecting to ADDR; on_connect follows (TCP_NODELAY set on success). */
int net_stream_connect(uv_loop_t *loop, const struct sockaddr *addr,
		       const struct net_stream_conf *conf, struct net_stream **out);
/* Attaches TLS (taken: freed with the stream) with push/pull over this stream. */
void net_stream_set_tls(struct net_stream *s, struct tls_sess *tls);
struct tls_sess *net_stream_tls(const struct net_stream *s);
uv_loop_t *net_stream_loop(const struct net_stream *s);

/* Reading is off until started; both are idempotent.  0 or a negative errno. */
int net_stream_read_start(struct net_stream *s);
void net_stream_read_stop(struct net_stream *s);
/* Whether EOF or a read error was seen (what was buffered before it still
 * reaches TLS first: its pull reports EOF only when nothing is left). */
bool net_stream_eof(const struct net_stream *s);
/* Ciphertext buffered and not yet pulled by TLS. */
size_t net_stream_in_pending(const struct net_stream *s);
/* Drops (wipes) what is buffered: for lingering closes that ignore input. */
void net_stream_discard(struct net_stream *s);

/* Hands what TLS pushed since the last flush to libuv as one write.  0, or a
 * negative errno / NET_E_CLOSED (the caller closes the stream). */
int net_stream_flush(struct net_stream *s);
/* Ciphertext collected or in writes not yet completed: wslay users stop
 * sending above their high-water mark and resume on on_drain. */
size_t net_stream_out_pending(const struct net_stream *s);

/* Shuts the TCP write side down once pending writes are done (flushes first);
 * reading goes on.  on_shutdown follows.  0 or a negative errno. */
int net_stream_shutdown(struct net_stream *s);
/* Closes the stream; with BYE a best-effort TLS close_notify goes out first
 * (only use it once the handshake completed).  Idempotent. */
void net_stream_close(struct net_stream *s, bool bye);
bool net_stream_closing(const struct net_stream *s);

/* The peer's address as net_addr_text() writes it; 0, or NET_E_IO with "?". */
int net_stream_peer(const struct net_stream *s, char *buf, size_t len, bool with_port);
/* The peer's address itself (for address ranges); 0 or NET_E_IO. */
int net_stream_peer_addr(const struct net_stream *s, struct sockaddr_storage *ss);

/* ---- ws.c: WebSocket (RFC 6455) over a stream's TLS session ------------- */

/* Close codes (RFC 6455 section 7.4.1). */
enum net_ws_close {
	NET_WS_NORMAL = 1000,
	NET_WS_GOING_AWAY = 1001,
	NET_WS_PROTOCOL = 1002,
	NET_WS_UNSUPPORTED = 1003,	/* a frame type we do not take (binary) */
	NET_WS_BAD_DATA = 1007,		/* not the payload the protocol promises */
	NET_WS_POLICY = 1008,
	NET_WS_TOO_BIG = 1009,
};

/* Opcodes of received messages (the same numbers as RFC 6455 and wslay). */
enum net_ws_op {
	NET_WS_TEXT = 1,
	NET_WS_BINARY = 2,
	NET_WS_CLOSE = 8,
	NET_WS_PING = 9,
	NET_WS_PONG = 10,
};

struct net_ws_msg {
	enum net_ws_op op;
	const uint8_t *data;	/* wiped by net/ after the callback: it may hold passwords */
	size_t len;
	uint16_t status;	/* NET_WS_CLOSE: the peer's close code */
};

struct net_ws_conf {
	bool server;		/* a server does not mask; a client masks (gnutls_rnd) */
	size_t max_msg;		/* a longer message fails the WebSocket (1009) */
	size_t out_high;	/* no frames sent while this much is unwritten */
	const char *peer_name;	/* "hub", "agent": net_ws_why() texts */
	void (*on_msg)(void *owner, const struct net_ws_msg *m);
	void *owner;
};

struct net_ws;

/* A WebSocket on S (whose TLS session is established).  EARLY (LEN bytes,
 * copied) is plaintext that followed the HTTP upgrade in the same records: it
 * is read before anything from TLS.  0 or NET_E_NOMEM. */
int net_ws_new(struct net_stream *s, const struct net_ws_conf *conf, const void *early,
	       size_t early_len, struct net_ws **out);
void net_ws_free(struct net_ws *ws);
/* Reads every frame TLS has for us (on_msg per message), then flushes.
 * 0, or NET_E_WS with the reason in net_ws_why(): the owner drops the link. */
int net_ws_pump(struct net_ws *ws);
/* Sends what is queued while under out_high, then flushes the stream.  Inside
 * on_msg it does nothing (net_ws_pump flushes afterwards).  0 or NET_E_WS. */
int net_ws_flush(struct net_ws *ws);
/* Queues one text message (copied); send with net_ws_flush(). 0 or NET_E_WS. */
int net_ws_send_text(struct net_ws *ws, const char *text, size_t len);
int net_ws_ping(struct net_ws *ws);
/* Queues a close frame with CODE; net_ws_fail() also stops reading. */
void net_ws_close(struct net_ws *ws, enum net_ws_close code);
void net_ws_fail(struct net_ws *ws, enum net_ws_close code, const char *why);
/* Whether the closing handshake is over: nothing left to read or send. */
bool net_ws_done(const struct net_ws *ws);
/* Bytes of messages queued and not yet sent. */
size_t net_ws_queued(const struct net_ws *ws);
/* Why the WebSocket failed, "" when it did not. */
const char *net_ws_why(const struct net_ws *ws);

/* Sec-WebSocket-Key: the base64 of 16 bytes, 24 characters. */
#define NET_WS_KEY_LEN 24
/* Sec-WebSocket-Accept: the base64 of a SHA-1, 28 characters and NUL. */
#define NET_WS_ACCEPT_SIZE 29
/* Whether KEY (LEN bytes) is a valid Sec-WebSocket-Key. */
bool net_ws_key_valid(const char *key, size_t len);
/* A fresh random key for a client's upgrade request, NUL-terminated. */
int net_ws_key_new(char key[NET_WS_KEY_LEN + 1]);
/* RFC 6455 section 4.2.2: base64(SHA-1(KEY + GUID)) for a valid KEY (LEN
 * bytes).  0, NET_E_INVAL for an invalid key, NET_E_IO when hashing failed. */
int net_ws_accept(const char *key, size_t len, char out[NET_WS_ACCEPT_SIZE]);
/* Whether the comma/space separated header value LIST holds TOKEN, compared
 * case-insensitively ("Connection: keep-alive, Upgrade"). */
bool net_http_has_token(const char *list, const char *token);

/* ---- addr.c: address text and small pure helpers ------------------------ */

/* Long enough for "[IPv6]:65535" and NUL. */
#define NET_ADDR_MAX 56
/*
 * SA as text: with WITH_PORT "1.2.3.4:443" or "[::1]:443" (for logs); without
 * it the address alone, an IPv4-mapped IPv6 address written as plain IPv4, so
 * one client has one key in a per-address throttle whichever listener it came
 * in on.  "?" for another family.  0, or NET_E_INVAL with "?".
 */
int net_addr_text(const struct sockaddr *sa, char *buf, size_t len, bool with_port);
/* The value of a hex digit, 0..15, or -1 for any other character. */
int net_hexval(int c);
/* Sets TCP_NODELAY on a socket libuv does not own as a uv_tcp_t (the
 * directory's).  0 or a negative errno. */
int net_tcp_nodelay(int fd);

#endif
