/*
 * agent/ private to tunnel.c and tunnel_rpc.c (and their unit test): the
 * tunnel's structs.  tunnel.c owns the link (dialling, TLS, the upgrade, the
 * WebSocket, backoff) and the public start/stop/reconfigure; tunnel_rpc.c the
 * messages: the hub's requests served through the directory, their answers,
 * and the agent's own calls to the hub.  The two meet in struct tun_ops, so
 * the dispatch of messages runs against a fake directory and link in tests.
 */
#ifndef DIRBRIDGE_AGENT_TUNNEL_INTERNAL_H
#define DIRBRIDGE_AGENT_TUNNEL_INTERNAL_H

#include <http_parser.h>
#include <jansson.h>
#include <netdb.h>

#include "agent/tunnel.h"
#include "net/net.h"

enum tun_state {
	T_NEW = 0,	/* allocated, not yet dialling */
	T_RESOLVING,
	T_CONNECTING,
	T_TLS_HANDSHAKE,
	T_UPGRADING,
	T_OPEN,
	T_CLOSING,	/* close frame and close_notify sent; waiting for the socket */
	T_BACKOFF,	/* waiting, with jitter, to dial again */
	T_STOPPED,
};

enum { R_UPGRADE, R_CONNECTION, R_ACCEPT, R_N };

/* The upgrade response as http-parser delivers it. */
struct response {
	struct net_hdrs h;	/* h.val[R_ACCEPT] etc. */
	size_t total;
	bool done;
};

/* One dial: freed when its stream has closed, after the tunnel let go. */
struct link {
	struct agent_tunnel *t;	/* NULL once the tunnel dropped this link */
	struct net_stream *s;
	http_parser parser;
	struct response resp;
	struct net_ws *ws;	/* from the 101 on */
	bool fatal;		/* a callback asked for the link to drop */
	char why[160];		/* why, when the WebSocket itself did not fail */
};

/* What the messages need from the directory and the link.  The tunnel runs
 * on tun_ops_live (the dir_ functions and the current link); tests on a fake. */
struct tun_ops {
	int (*authenticate)(struct dir *d, const char *username, const char *password,
			    size_t password_len, dir_profile_cb cb, void *arg);
	int (*lookup)(struct dir *d, const char *username, dir_profile_cb cb, void *arg);
	int (*change_password)(struct dir *d, const char *username, const char *old_pw,
			       size_t old_len, const char *new_pw, size_t new_len,
			       dir_done_cb cb, void *arg);
	int (*search_users)(struct dir *d, const char *query, size_t limit, dir_users_cb cb,
			    void *arg);
	int (*list_groups)(struct dir *d, size_t limit, dir_names_cb cb, void *arg);
	/* Queues M (taken) as one text message on the current link. */
	int (*send)(struct agent_tunnel *t, json_t *m);
	/* Fails the WebSocket with CODE: the hub broke the protocol. */
	void (*fail)(struct agent_tunnel *t, enum net_ws_close code, const char *why);
};
extern const struct tun_ops tun_ops_live;

struct agent_tunnel {
	uv_loop_t *loop;
	const struct cfg *cfg;
	struct dir *dir;
	const struct tun_ops *ops;
	enum tun_state state;
	uv_timer_t timer;	/* handshake deadline, heartbeat, backoff: one at a time */
	uv_getaddrinfo_t gai;
	bool gai_busy, timer_closed;
	struct addrinfo *addrs;	/* while CONNECTING: every address of the host */
	struct addrinfo *next_addr;	/* the one to try when this one fails */
	struct link *link;
	unsigned gen;
	unsigned attempt;
	uint64_t dials, opens, busy;	/* for agent_tunnel_stats() */
	size_t inflight;
	uint64_t open_ms, ping_ms;
	bool awaiting_pong;
	struct calls calls;	/* our session_check / login requests awaiting a result */
	char host[256], port[8], path[1024];
	char accept[NET_WS_ACCEPT_SIZE];	/* the Sec-WebSocket-Accept we expect */
	void (*done)(void *arg);
	void *done_arg;
};

/* tunnel.c */
/* Frees T once it is stopped and nothing refers to it any more. */
void tun_maybe_free(struct agent_tunnel *t);
/* Sends what the WebSocket has queued, within the output bound; moves on to
 * CLOSING once the closing handshake is over, drops a failed link. */
void tun_flush(struct agent_tunnel *t);

/* tunnel_rpc.c */
/* One text message from the hub (LEN bytes): a request is started at the
 * directory (at most TUNNEL_MAX_INFLIGHT), a result goes to the call waiting
 * for it, anything malformed is refused; answers go out through t->ops. */
void tun_rpc_dispatch(struct agent_tunnel *t, const uint8_t *msg, size_t len);
/* The first message on a new link. */
int tun_rpc_hello(struct agent_tunnel *t);
/* The WebSocket's on_msg: OWNER is the struct link. */
void tun_rpc_on_msg(void *owner, const struct net_ws_msg *m);

#endif
