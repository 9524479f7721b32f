/*
 * agent/ private: the seam between the front-facing server and the hub.
 * https.c asks here whether a session is pending and reports completed
 * logins; both answers come back through callbacks.  login.c implements them
 * on the tunnel (tunnel.h), whose structs https.c never sees.
 */
#ifndef DIRBRIDGE_AGENT_LOGIN_H
#define DIRBRIDGE_AGENT_LOGIN_H

#include <stdbool.h>

#include "agent/calls.h"
#include "ldap/dir.h"
#include "tls/tls.h"

struct agent_login {
	const char *session;			/* the hub's session id, validated */
	const char *method;			/* "certificate" or "password" */
	const struct dir_profile *profile;
	const struct tls_client_cert *cert;	/* NULL for the password path */
};

/*
 * Both return 0 and later call CB exactly once with the hub's answer (OK,
 * UNKNOWN_SESSION, or UNAVAILABLE when the link dropped or the hub did not
 * answer within CALLS_TIMEOUT_MS), or a negative errno (-ENOTCONN: no hub) and
 * never call CB.  CB may run before the call returns (see calls.h).  Nothing
 * is queued for a later link.
 */
/* Asks the hub whether SESSION is pending and was made for this agent. */
int agent_check_session(const char *session, agent_answer_cb cb, void *arg);
/* Reports a completed login (the `login` message); pointers in L are valid
 * only during the call.  The sign-in counts only once CB got OK. */
int agent_report_login(const struct agent_login *l, agent_answer_cb cb, void *arg);
/* Whether the tunnel to the hub is connected, for /healthz. */
bool agent_hub_connected(void);

#endif
