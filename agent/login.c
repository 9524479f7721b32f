/*
 * Completed logins go to the hub through the tunnel; see tunnel.h.  The log
 * line names the session, method, user and certificate, never a password.
 */
#include "agent/login.h"
#include "agent/tunnel.h"
#include "config/cfg.h"

int agent_report_login(struct agent_tunnel *t, const struct agent_login *l, agent_answer_cb cb,
		       void *arg)
{
	if (l->cert)
		log_msg(LOGL_INFO, "login: session %s method %s user %s dn \"%s\" cert serial %s issuer \"%s\" sha256 %s",
			l->session, l->method, l->profile->username, l->profile->dn,
			l->cert->serial, l->cert->issuer, l->cert->sha256);
	else
		log_msg(LOGL_INFO, "login: session %s method %s user %s dn \"%s\"", l->session,
			l->method, l->profile->username, l->profile->dn);
	return agent_tunnel_login(t, l->session, l->method, l->profile,
				  l->cert ? l->cert->serial : NULL, l->cert ? l->cert->issuer : NULL,
				  l->cert ? l->cert->sha256 : NULL, cb, arg);
}
