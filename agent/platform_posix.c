/*
 * agent/platform.h on POSIX systems.  Stop and reload are signals, which
 * libuv watches in agent.c; logs go to stderr or journald (log/log.c).  What
 * is left is the path and giving up root.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/platform.h"
#include "log/log.h"

/* Enough for any account Debian makes; more is refused, not truncated. */
#define MAX_GROUPS 256

const char *agent_platform_default_config(void)
{
	return "/etc/dirbridge/agent.ini";
}

/* Whether the process's supplementary groups are exactly WANT[0..N). */
static bool groups_are(const gid_t *want, int n)
{
	gid_t have[MAX_GROUPS];
	int got = getgroups(MAX_GROUPS, have);

	if (got != n)
		return false;
	for (int i = 0; i < n; i++) {
		bool found = false;

		for (int j = 0; j < got && !found; j++)
			found = have[j] == want[i];
		if (!found)
			return false;
	}
	return true;
}

/* Proves that the drop to PW cannot be undone: a process that kept any root
 * id (real, effective or saved) or group could take root back. */
static bool drop_held(const struct passwd *pw, const gid_t *groups, int ngroups)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0)
		return false;
	if (ru != pw->pw_uid || eu != pw->pw_uid || su != pw->pw_uid ||
	    rg != pw->pw_gid || eg != pw->pw_gid || sg != pw->pw_gid)
		return false;
	if (!groups_are(groups, ngroups))
		return false;
	/* Regaining root must be impossible, not merely unattempted. */
	return pw->pw_uid == 0 || setuid(0) < 0;
}

/* DIRBRIDGE_ALLOW_ROOT=1 is for test harnesses and throwaway containers that
 * run everything as root on purpose; it only keeps root, never gains
 * anything. */
static bool root_allowed(void)
{
	const char *allow = getenv("DIRBRIDGE_ALLOW_ROOT");

	return allow && strcmp(allow, "1") == 0;
}

int agent_platform_check_user(const char *user)
{
	if (geteuid() != 0 || user)
		return 0;
	if (root_allowed()) {
		log_msg(LOGL_WARN, "running as root: DIRBRIDGE_ALLOW_ROOT=1 and no [agent] user");
		return 0;
	}
	log_msg(LOGL_ERROR, "refusing to run as root: set [agent] user to the account "
		"the agent should run as (it drops to it once its ports are bound)");
	return -EPERM;
}

int agent_platform_drop_privileges(const char *user)
{
	const struct passwd *pw;
	gid_t groups[MAX_GROUPS];
	int ngroups = MAX_GROUPS;

	if (geteuid() != 0)
		return 0;
	if (!user)
		return root_allowed() ? 0 : agent_platform_check_user(user);
	errno = 0;
	pw = getpwnam(user);
	if (!pw) {
		log_msg(LOGL_ERROR, "cannot drop privileges: no user %s ([agent] user)", user);
		return errno ? -errno : -ENOENT;
	}
	if (getgrouplist(pw->pw_name, pw->pw_gid, groups, &ngroups) < 0) {
		log_msg(LOGL_ERROR, "cannot drop privileges to %s: more than %d groups", user,
			MAX_GROUPS);
		return -E2BIG;
	}
	/* Groups first, then the group, then the user: once the uid is gone the
	 * process may no longer change its groups, so an earlier failure would
	 * leave root's groups behind. */
	if (setgroups((size_t)ngroups, groups) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0) {
		int e = errno;

		log_msg(LOGL_ERROR, "cannot drop privileges to %s: %s", user, strerror(e));
		return -e;
	}
	if (!drop_held(pw, groups, ngroups)) {
		log_msg(LOGL_ERROR, "dropping privileges to %s did not stick", user);
		return -EPERM;
	}
	log_msg(LOGL_INFO, "running as user %s", user);
	return 0;
}

void agent_platform_set_events(agent_event_fn *fn, void *arg)
{
	(void)fn;
	(void)arg;
}

void agent_platform_running(bool running)
{
	(void)running;
}
