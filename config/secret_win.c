/*
 * Whether a secret file is private, on Windows: its DACL may allow access only
 * to the file's owner, SYSTEM and the Administrators group (deny entries are
 * fine).  A NULL DACL allows everyone and is refused.  The POSIX side is
 * config/secret_posix.c; both implement cfg_secret_mode_ok() (config/cfg.h).
 */
/* config/cfg.h brings in winsock2.h, which must come before windows.h. */
#include "config/cfg.h"

#include <windows.h>
#include <aclapi.h>
#include <sddl.h>

/* Whether SID may be allowed access to a secret owned by OWNER. */
static bool trusted(PSID sid, PSID owner, PSID system, PSID admins)
{
	return EqualSid(sid, owner) || EqualSid(sid, system) || EqualSid(sid, admins);
}

static bool dacl_private(PACL dacl, PSID owner)
{
	BYTE system_buf[SECURITY_MAX_SID_SIZE], admins_buf[SECURITY_MAX_SID_SIZE];
	PSID system = system_buf, admins = admins_buf;
	DWORD size = sizeof system_buf;
	ACL_SIZE_INFORMATION info;

	if (!dacl || !CreateWellKnownSid(WinLocalSystemSid, NULL, system, &size))
		return false;
	size = sizeof admins_buf;
	if (!CreateWellKnownSid(WinBuiltinAdministratorsSid, NULL, admins, &size) ||
	    !GetAclInformation(dacl, &info, sizeof info, AclSizeInformation))
		return false;
	for (DWORD i = 0; i < info.AceCount; i++) {
		ACE_HEADER *h;

		if (!GetAce(dacl, i, (LPVOID *)&h))
			return false;
		/* An entry only inherited by children does not apply to the file. */
		if (h->AceFlags & INHERIT_ONLY_ACE)
			continue;
		if (h->AceType == ACCESS_DENIED_ACE_TYPE)
			continue;
		/* Object and callback entries are not what icacls writes; whatever
		 * they allow is not provably private, so they are refused. */
		if (h->AceType != ACCESS_ALLOWED_ACE_TYPE)
			return false;
		if (!trusted((PSID)&((ACCESS_ALLOWED_ACE *)h)->SidStart, owner, system, admins))
			return false;
	}
	return true;
}

bool cfg_secret_mode_ok(const char *path, mode_t mode)
{
	wchar_t wide[MAX_PATH * 2];
	PSECURITY_DESCRIPTOR sd = NULL;
	PSID owner = NULL;
	PACL dacl = NULL;
	bool ok;

	/* The mode bits Windows' stat reports say nothing about who may read. */
	(void)mode;
	if (MultiByteToWideChar(CP_UTF8, 0, path, -1, wide, MAX_PATH * 2) == 0)
		return false;
	if (GetNamedSecurityInfoW(wide, SE_FILE_OBJECT,
				  OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION, &owner,
				  NULL, &dacl, NULL, &sd) != ERROR_SUCCESS)
		return false;
	ok = owner && dacl_private(dacl, owner);
	LocalFree(sd);
	return ok;
}
