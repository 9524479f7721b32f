/*
 * Completed logins go to the hub as `login` messages through the tunnel; see
 * tunnel.h.  The log line names the session, method, user and certificate,
 * never a password.
 */
#include "agent/login.h"
#include "agent/tunnel.h"
#include "config/cfg.h"

void agent_report_login(const struct agent_login *l)
{
	if (l->cert)
		cfg_log(CFG_LOG_INFO, "login: session %s method %s user %s dn \"%s\" cert serial %s issuer \"%s\" sha256 %s",
			l->session, l->method, l->profile->username, l->profile->dn,
			l->cert->serial, l->cert->issuer, l->cert->sha256);
	else
		cfg_log(CFG_LOG_INFO, "login: session %s method %s user %s dn \"%s\"", l->session,
			l->method, l->profile->username, l->profile->dn);
	agent_tunnel_login(agent_tunnel_current(), l->session, l->method, l->profile,
			   l->cert ? l->cert->serial : NULL, l->cert ? l->cert->issuer : NULL,
			   l->cert ? l->cert->sha256 : NULL);
}

bool agent_hub_connected(void)
{
	return agent_tunnel_connected(agent_tunnel_current());
}
