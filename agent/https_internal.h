/*
 * agent/ private to the HTTPS front: what https.c (listeners, the server's
 * life), https_conn.c (one connection: state, timers, transport, eviction),
 * routes.c (the routes of docs/https.md) and pages.c (the response head and
 * the pages) share.  Only those four files include this.
 *
 * Each connection is one struct conn with an explicit state; conn_set_state()
 * is the only place that changes it and applies what each state implies
 * (timer, reading on or off, closing).  The server's own phase changes only in
 * https_set_state().
 */
#ifndef DIRBRIDGE_AGENT_HTTPS_INTERNAL_H
#define DIRBRIDGE_AGENT_HTTPS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <http_parser.h>

#include "agent/http_req.h"
#include "agent/https.h"
#include "net/net.h"

/* Limits.  A connection cap ([https] max_connections, lowered by the agent to
 * what the open-file limit allows) keeps file descriptors bounded; when it is
 * reached the oldest connection that is only handshaking or reading a request
 * is evicted, so slow clients cannot lock real users out. */
#define HANDSHAKE_MS 10000	/* TCP accept to finished handshake */
#define REQUEST_MS 10000	/* first byte of a request to its last */
#define IDLE_MS 30000		/* keep-alive wait for the next request */
#define WRITE_MS 15000		/* response fully handed to the kernel */
#define LINGER_MS 2000		/* reading what the client still sends after we close */
#define STOP_MS 5000		/* shutdown: in-flight requests get this long */
#define MAX_CIPHERTEXT (64 * 1024)	/* left unread by TLS between reads */
#define MAX_PENDING_OUT (256 * 1024)	/* ciphertext not yet written */
#define IP_WINDOW_S 300		/* max_failures_per_ip counts within this */
#define IP_KEYS 8192		/* client addresses the throttle remembers */

enum conn_state {
	C_NEW,			/* allocated and accepted; the handshake has not started */
	C_HANDSHAKE,		/* TLS handshake in progress */
	C_READ_REQUEST,		/* reading (or waiting for) a request */
	C_CHECK_SESSION,	/* asking the hub whether the session is pending here */
	C_WAIT_DIRECTORY,	/* a directory request is in flight */
	C_REPORT_LOGIN,		/* the login is reported; waiting for the hub's ok */
	C_WRITE_RESPONSE,	/* response queued, waiting for the writes */
	C_LINGER,		/* shut down our side, discarding input until EOF */
	C_CLOSED,		/* handles closing; freed when nothing refers to it */
};

struct conn {
	struct https *srv;
	struct net_stream *ns;		/* NULL once its on_close ran */
	uv_timer_t timer;
	enum conn_state state;
	unsigned refs;			/* the stream, the timer, directory and hub requests */
	struct tls_sess *tls;		/* the stream's; NULL with it */
	bool cert_requested;
	bool keep_alive;
	char peer[NET_ADDR_MAX];
	char ip[NET_ADDR_MAX];		/* the peer's address alone: the throttle key */
	struct buf rest;		/* plaintext after the current request */
	http_parser parser;
	struct req req;
	enum http_route route;
	/* Password path: kept until the directory answers, then wiped. */
	char *username, *password, *session;
	size_t password_len;
	/* A login waiting for the hub's ok: the directory's name for the user. */
	char *signed_in;
	const char *method;
	struct tls_client_cert cert;
	struct conn *prev, *next;
};

struct listener {
	uv_tcp_t tcp;
	struct https *srv;
};

enum https_state {
	H_NEW,			/* being set up by https_start() */
	H_RUNNING,		/* listening */
	H_STOPPING,		/* https_stop(): no new connections, handles closing */
};

struct https {
	uv_loop_t *loop;
	const struct cfg *cfg;
	struct dir *dir;
	struct https_hooks hooks;
	enum https_state state;
	struct tls_server *tls;
	struct listener *ls;
	size_t n_ls, ls_open;
	struct conn *head, *tail;	/* oldest first */
	size_t n_conns;			/* allocated, including closing ones */
	size_t n_active;		/* not yet C_CLOSED: what the cap counts */
	size_t max_conns;		/* the cap on n_active */
	/* Failed form logins per client address (max_failures_per_ip in
	 * IP_WINDOW_S); NULL when that limit is off. */
	struct dir_throttle *ip_fails;
	unsigned ip_limit;
	struct https_metrics m;
	uv_timer_t stop_timer;
	void (*done)(void *arg);
	void *done_arg;
};

/* ---- https.c ---------------------------------------------------------------- */

/* Frees the server once it is stopping and its last connection and listener
 * are gone; called whenever one of those goes. */
void srv_maybe_done(struct https *h);
/* Copies the throttles' counters into the metrics before they are shown. */
void https_guard_metrics(struct https *h);

/* ---- https_conn.c ----------------------------------------------------------- */

/* Accepts one connection from SERVER (a listener of H) and starts its
 * handshake; a connection that cannot be set up is closed again. */
void conn_accept(struct https *h, uv_stream_t *server);
void conn_set_state(struct conn *c, enum conn_state st);
/* Drops one reference (a handle, a directory or hub request); the last one
 * frees C. */
void conn_unref(struct conn *c);
/* Queues a complete response and moves to C_WRITE_RESPONSE. */
void respond(struct conn *c, unsigned status, const char *ctype, const char *extra,
	     const char *body, size_t len);
void respond_text(struct conn *c, unsigned status, const char *text);

/* ---- routes.c --------------------------------------------------------------- */

/* Answers the complete request in C (its route, or an error). */
void route_dispatch(struct conn *c);

/* ---- pages.c ---------------------------------------------------------------- */

/* Appends an HTTP/1.1 response head with the security headers every response
 * carries, EXTRA header lines (or NULL) and, unless KEEP_ALIVE, Connection:
 * close.  Returns 0 or -ENOMEM. */
int page_response_head(struct buf *b, unsigned status, const char *ctype, size_t len,
		       const char *extra, bool keep_alive);

#endif
