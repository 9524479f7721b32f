/*
 * agent/ private: the outbound tunnel to the identity hub (docs/protocol.md).
 * One WebSocket over TLS over TCP, dialled from [hub] url, re-dialled with
 * capped exponential backoff and full jitter whenever it drops.  Requests from
 * the hub are served through the directory (ldap/dir.h) with at most
 * TUNNEL_MAX_INFLIGHT in flight; their results go back on the link they came
 * from, or nowhere.  The agent's own requests (calls.h) are answered on the
 * link they went out on, or fail when it drops.
 */
#ifndef DIRBRIDGE_AGENT_TUNNEL_H
#define DIRBRIDGE_AGENT_TUNNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "agent/calls.h"
#include "config/cfg.h"
#include "ldap/dir.h"

#define TUNNEL_MAX_INFLIGHT	256		/* requests at the directory at once */
#define TUNNEL_MAX_MSG		(64u << 10)	/* one message from the hub */
#define TUNNEL_MAX_QUEUED	(32u << 20)	/* unsent bytes before the hub counts as stuck */
#define TUNNEL_MAX_LIMIT	5000		/* search_users / list_groups */
#define TUNNEL_PING_S		15		/* ping the hub this often */
#define TUNNEL_PONG_S		10		/* a ping unanswered this long: link dead */
#define TUNNEL_HANDSHAKE_S	15		/* connect + TLS + upgrade */
#define TUNNEL_BACKOFF_MIN_MS	500
#define TUNNEL_BACKOFF_MAX_MS	15000
#define TUNNEL_STABLE_S		30		/* open this long: backoff starts over */

struct agent_tunnel;

/* Starts dialling the hub of CFG ([hub] must be present).  CFG and DIR must
 * outlive the tunnel or be replaced with agent_tunnel_reconfigure(). */
int agent_tunnel_start(uv_loop_t *loop, const struct cfg *cfg, struct dir *dir,
		       struct agent_tunnel **out);
/* A reloaded configuration.  When [hub] url, ca_file or token_file changed the
 * link is dropped and dialled again with them; otherwise it stays. */
void agent_tunnel_reconfigure(struct agent_tunnel *t, const struct cfg *cfg, struct dir *dir);
/* Closes the link and every handle, then calls DONE.  Directory requests still
 * in flight are discarded when they complete (dir_close() completes them), and
 * the tunnel's memory goes with the last of them. */
void agent_tunnel_stop(struct agent_tunnel *t, void (*done)(void *arg), void *arg);
/* The link's counters since the tunnel started, for /metrics. */
struct agent_tunnel_stats {
	const char *state_name;	/* one of agent_tunnel_state_names */
	uint64_t opens;		/* links that reached open */
	uint64_t reconnects;	/* dials after the first */
	uint64_t busy;		/* hub requests refused with "busy" (TUNNEL_MAX_INFLIGHT) */
	size_t inflight;	/* hub requests at the directory now */
};
void agent_tunnel_stats(const struct agent_tunnel *t, struct agent_tunnel_stats *out);
/* Every state's name, AGENT_TUNNEL_STATES of them. */
#define AGENT_TUNNEL_STATES 9
extern const char *const agent_tunnel_state_names[AGENT_TUNNEL_STATES];
/* Whether the WebSocket is open and hello was sent. */
bool agent_tunnel_connected(const struct agent_tunnel *t);
/* Asks the hub whether SESSION is pending for this agent (`session_check`).
 * CB gets the answer, or UNAVAILABLE when the link drops or no answer came
 * within CALLS_TIMEOUT_MS.  -ENOTCONN (or -EBUSY, -ENOMEM) and CB is never
 * called when the request cannot go out: nothing is queued for a later link. */
int agent_tunnel_session_check(struct agent_tunnel *t, const char *session, agent_answer_cb cb,
			       void *arg);
/* Sends a `login` message and hands the hub's answer to CB, as above.
 * SERIAL, ISSUER and SHA256 are NULL for password logins. */
int agent_tunnel_login(struct agent_tunnel *t, const char *session, const char *method,
		       const struct dir_profile *p, const char *serial, const char *issuer,
		       const char *sha256, agent_answer_cb cb, void *arg);

#endif
