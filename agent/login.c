/*
 * Completed logins.  Until the tunnel exists they are only logged: the log line
 * names the session, method, user and certificate, never a password.
 */
#include "agent/login.h"
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
}

bool agent_hub_connected(void)
{
	return false;
}
