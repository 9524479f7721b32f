/*
 * Whether a secret file's permissions keep it private, on POSIX systems: mode
 * bits, and the one ACL systemd's LoadCredential= leaves.  The Windows side,
 * an owner-only DACL, is config/secret_win.c; both implement
 * cfg_secret_mode_ok() (config/cfg.h).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config/cfg.h"

bool cfg_secret_mode_ok(const char *path, mode_t mode)
{
	const char *dir = getenv("CREDENTIALS_DIRECTORY"), *name;
	size_t n;
	struct stat st;

	if (!(mode & 077))
		return true;
	/* Beyond that only the ACL mask of a credential: group read, nothing else. */
	if ((mode & 077) != 040 || !dir || dir[0] != '/')
		return false;
	n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		n--;
	/* Directly inside the directory: its name followed by '/', so a sibling
	 * whose name merely starts the same (/run/credentials/a.serviceX) is not. */
	if (strncmp(path, dir, n) != 0 || path[n] != '/')
		return false;
	name = path + n + 1;
	if (!*name || strchr(name, '/'))
		return false;
	/* systemd keeps the directory closed to others; one that is not was not
	 * made by systemd, and then the group bit means what it says. */
	return stat(dir, &st) == 0 && S_ISDIR(st.st_mode) && !(st.st_mode & 007);
}
