/*
 * dirbridge-hub private header: the reference identity hub.  agents.c owns the
 * agent endpoint (WebSocket over TLS) and the routing of requests to agents,
 * api.c the local JSON API, sessions.c the sign-in sessions, main.c the
 * command line and the loop.
 */
#ifndef DIRBRIDGE_HUB_H
#define DIRBRIDGE_HUB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <http_parser.h>
#include <uv.h>

#include "net/net.h"
#include "tls/tls.h"

/* Limits.  Every queue and buffer the hub keeps is bounded by one of these. */
#define HUB_MAX_AGENTS		64
#define HUB_MAX_PENDING		1024	/* requests in flight per agent */
#define HUB_MAX_API_CONNS	1024
#define HUB_MAX_SESSIONS	10000
#define HUB_SESSION_TTL_S	600
#define HUB_REQUEST_TIMEOUT_S	30
#define HUB_MAX_MSG		(8u << 20)	/* one WebSocket message from an agent */
#define HUB_MAX_API_BODY	(64u << 10)
#define HUB_API_URL_MAX		4096
#define HUB_MAX_LIMIT		5000	/* search_users / list_groups limit */
#define HUB_PING_INTERVAL_S	15
#define HUB_DEAD_AFTER_S	45	/* nothing received for this long: drop */
#define HUB_HANDSHAKE_S		10	/* TLS + upgrade + hello */

struct hub_agent;
struct hub_req;
struct api_conn;

/* Called exactly once per request: with the agent's `result` message (borrowed,
 * valid during the call) or with RESULT NULL and an error code (no_agent,
 * directory_unavailable when the agent dropped, timeout). */
typedef void (*hub_req_cb)(void *arg, json_t *result, const char *err);

struct hub_session {
	struct hub_session *next;
	char id[33];
	char agent[65];		/* the agent whose public_url it was given */
	time_t created;
	bool done;
	json_t *login;		/* the agent's `login` message once done */
};

struct hub {
	uv_loop_t *loop;
	struct tls_hub_creds *creds;
	uint8_t (*tokens)[32];	/* SHA-256 of every accepted token */
	size_t n_tokens;
	uv_tcp_t agent_listener;
	uv_tcp_t api_listener;
	uv_timer_t sweep;	/* request timeouts, session expiry, heartbeats */
	uv_signal_t sigint, sigterm;
	struct hub_agent *agents;	/* every connection, in any state */
	size_t n_agents;
	unsigned rr;		/* round-robin cursor over ready agents */
	uint64_t next_req;
	struct api_conn *api;
	size_t n_api;
	struct hub_session *sessions;
	size_t n_sessions;
	bool stopping;
};

/* agents.c */
int hub_agents_listen(struct hub *h, const char *hostport);
/* Sends MSG (which gets an `id`) to a ready agent, round robin.  0, or a
 * negative errno (-ENOENT: no agent; -EBUSY: every agent at its limit) and CB is
 * never called.  *OUT lets the caller cancel. */
int hub_request(struct hub *h, json_t *msg, hub_req_cb cb, void *arg, struct hub_req **out);
/* The caller lost interest: CB will not be called. */
void hub_request_cancel(struct hub_req *r);
/* A ready agent with a public_url, round robin; NULL when none. */
const struct hub_agent *hub_pick_front(struct hub *h);
const char *hub_agent_name(const struct hub_agent *a);
const char *hub_agent_public_url(const struct hub_agent *a);
/* Answers agent A's own request ID with a `result`: ok when ERR is NULL, else
 * ok false with ERR. */
void hub_agent_answer(struct hub_agent *a, const char *id, const char *err);
json_t *hub_agents_json(const struct hub *h);
/* Once a second: request deadlines, heartbeats, stalled handshakes. */
void hub_agents_tick(struct hub *h, uint64_t now_ms);
void hub_agents_close_all(struct hub *h);

/* api.c */
int hub_api_listen(struct hub *h, const char *hostport);
/* Once a second: closes connections that take too long to send a request. */
void hub_api_tick(struct hub *h, uint64_t now_ms);
void hub_api_close_all(struct hub *h);

/* upgrade.c: the agent endpoint's HTTP upgrade request, collected by
 * http-parser with hub_upgrade_settings (parser->data is the struct). */
enum { H_UPGRADE, H_CONNECTION, H_KEY, H_VERSION, H_AUTH, H_N };
struct hub_upgrade {
	struct net_hdrs h;	/* h.val[H_KEY] etc.; a repeated one is refused */
	char url[128];
	size_t url_len;
	size_t total;
	bool done;
};
/* Empties U and names the headers it keeps. */
void hub_upgrade_init(struct hub_upgrade *u);
extern const http_parser_settings hub_upgrade_settings;

/* apireq.c: one request to the local API, collected by http-parser with
 * hub_api_settings (parser->data is the struct). */
struct hub_api_req {
	char url[HUB_API_URL_MAX + 1];
	size_t url_len;
	char *body;		/* HUB_MAX_API_BODY bytes once a body arrives */
	size_t body_len;
	bool too_long, too_big, done;
};
extern const http_parser_settings hub_api_settings;
/* Splits the request target into PATH (NUL-terminated) and the query Q (QLEN
 * bytes inside R, "" when none).  0, or -1 when it is no URL with a path. */
int hub_api_target(const struct hub_api_req *r, char path[HUB_API_URL_MAX + 1], const char **q,
		   size_t *qlen);
/* The value of KEY in the query string Q (LEN bytes), percent-decoded into OUT;
 * 1 when found, 0 when absent, -1 when malformed or too long. */
int hub_query_get(const char *q, size_t len, const char *key, char *out, size_t outlen);
/* LIMIT from the query: default 100, 1..HUB_MAX_LIMIT.  0, or -1 when bad. */
int hub_query_limit(const char *q, size_t len, json_int_t *limit);

/* sessions.c */
/* A new pending session bound to agent NAME; NULL when full. */
struct hub_session *hub_session_new(struct hub *h, const char *agent);
struct hub_session *hub_session_find(struct hub *h, const char *id);
/* Whether session ID is pending for agent AGENT: made for it, not completed,
 * not expired (`session_check`). */
bool hub_session_pending(struct hub *h, const char *agent, const char *id);
/* Handles an agent's `login` message: NULL when it completed the session, else
 * the error code for the agent (`bad_request`, or `unknown_session` when it
 * names no session pending for that agent). */
const char *hub_session_login(struct hub *h, const char *agent, json_t *msg);
/* An agent's `session_check` or `login` (TYPE) message M from agent A. */
void hub_session_message(struct hub *h, struct hub_agent *a, const char *type, json_t *m);
void hub_sessions_tick(struct hub *h, time_t now);
void hub_sessions_free(struct hub *h);

/* main.c helpers shared by both endpoints (addresses are read with
 * cfg_hostport_parse, as the agent reads its own). */
/* Binds L to HOSTPORT and listens with CB (L->data is H); on failure says so
 * on stderr, naming the command-line OPTION.  0 or a negative errno. */
int hub_listen(struct hub *h, uv_tcp_t *l, const char *hostport, int backlog,
	       uv_connection_cb cb, const char *option);
/* 128 random bits as 32 lowercase hex digits. */
int hub_random_hex(char out[33]);
/* Whether TOKEN (LEN bytes) is one of --tokens-file, in constant time. */
bool hub_token_ok(const struct hub *h, const char *token, size_t len);

#endif
