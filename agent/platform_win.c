/*
 * agent/platform.h on Windows: the default configuration path, and no
 * privilege drop (the SCM starts the service as the account it was installed
 * with).  Stop, reload and the service status are in service_win.c.
 */
#include <windows.h>
#include <knownfolders.h>
#include <shlobj.h>

#include <stdio.h>

#include "agent/platform.h"

/* %ProgramData% is usually C:\ProgramData, but an administrator may move it,
 * so it is asked for rather than assumed. */
const char *agent_platform_default_config(void)
{
	static char path[MAX_PATH * 3];
	PWSTR base = NULL;
	char utf8[MAX_PATH * 3];

	if (path[0])
		return path;
	if (SHGetKnownFolderPath(&FOLDERID_ProgramData, 0, NULL, &base) == S_OK &&
	    WideCharToMultiByte(CP_UTF8, 0, base, -1, utf8, (int)sizeof utf8, NULL, NULL) > 0)
		snprintf(path, sizeof path, "%s\\dirbridge\\agent.ini", utf8);
	else
		snprintf(path, sizeof path, "C:\\ProgramData\\dirbridge\\agent.ini");
	CoTaskMemFree(base);
	return path;
}

int agent_platform_drop_privileges(const char *user)
{
	/* [agent] user has no meaning here; the loader still accepts it so one
	 * file can describe both kinds of install. */
	(void)user;
	return 0;
}

int agent_platform_check_user(const char *user)
{
	(void)user;
	return 0;
}
