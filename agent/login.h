/*
 * agent/ private: where the front-facing server hands completed logins to the
 * tunnel, and asks whether the tunnel is up.  https.c calls these; the tunnel
 * (hub client) implements them in login.c.
 */
#ifndef DIRBRIDGE_AGENT_LOGIN_H
#define DIRBRIDGE_AGENT_LOGIN_H

#include <stdbool.h>

#include "ldap/dir.h"
#include "tls/tls.h"

struct agent_login {
	const char *session;			/* the hub's session id, validated */
	const char *method;			/* "certificate" or "password" */
	const struct dir_profile *profile;
	const struct tls_client_cert *cert;	/* NULL for the password path */
};

/* Reports a completed login (SPEC "login" message).  Called from the loop;
 * pointers are valid only during the call. */
void agent_report_login(const struct agent_login *l);
/* Whether the tunnel to the hub is connected, for /healthz. */
bool agent_hub_connected(void);

#endif
