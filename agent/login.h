/*
 * agent/ private: a completed login as the front-facing server reports it to
 * the hub.  https.c reaches the hub only through the hooks it was started with
 * (struct https_hooks); agent.c wires them to the tunnel (tunnel.h), using
 * agent_report_login() for logins, so https.c never sees the tunnel.
 */
#ifndef DIRBRIDGE_AGENT_LOGIN_H
#define DIRBRIDGE_AGENT_LOGIN_H

#include "agent/calls.h"
#include "ldap/dir.h"
#include "tls/tls.h"

struct agent_tunnel;

struct agent_login {
	const char *session;			/* the hub's session id, validated */
	const char *method;			/* "certificate" or "password" */
	const struct dir_profile *profile;
	const struct tls_client_cert *cert;	/* NULL for the password path */
};

/*
 * Logs the completed login L and reports it to the hub on T (the `login`
 * message); pointers in L are valid only during the call, and T may be NULL
 * (no tunnel).  Returns 0 and later calls CB exactly once with the hub's
 * answer (OK, UNKNOWN_SESSION, or UNAVAILABLE when the link dropped or the hub
 * did not answer within CALLS_TIMEOUT_MS), or a negative errno (-ENOTCONN: no
 * hub; -EBUSY, -ENOMEM) and never calls CB.  CB may run before the call
 * returns (see calls.h).  Nothing is queued for a later link.  The sign-in
 * counts only once CB got OK.
 */
int agent_report_login(struct agent_tunnel *t, const struct agent_login *l, agent_answer_cb cb,
		       void *arg);

#endif
