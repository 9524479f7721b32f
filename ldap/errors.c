/*
 * The one place where library codes become dir_err values: LDAP result codes,
 * AD bind diagnostics, password policy errors, SASL and tls_ codes, and the
 * wire names of dir_err (docs/protocol.md).  Nothing else in ldap/ returns a
 * library code to a caller.
 */
#include <stdlib.h>
#include <string.h>

#include <lber.h>
#include <ldap.h>
#include <sasl/sasl.h>

#include "ldap/dir.h"
#include "ldap/internal.h"
#include "tls/tls.h"

/* The user's bind alone reads AD diagnostics; a password change reads AD's
 * modify errors.  libldap's own (negative) client errors are codes like the
 * others: those not listed are DIR_E_INTERNAL. */
int dir_map_err(enum err_src src, int code, const char *diag)
{
	switch (src) {
	case SRC_TLS:
		return code == TLS_OK ? DIR_OK : DIR_E_UNAVAILABLE;
	case SRC_SASL:
		switch (code) {
		case SASL_OK: return DIR_OK;
		case SASL_BADAUTH: case SASL_NOAUTHZ: case SASL_NOUSER:
			return DIR_E_INVALID_CREDENTIALS;
		case SASL_NOMEM: case SASL_BADPARAM: case SASL_NOMECH:
			return DIR_E_INTERNAL;
		default:
			return DIR_E_UNAVAILABLE;
		}
	case SRC_PPOLICY:
		switch (code) {
		case PP_passwordExpired: return DIR_E_PASSWORD_EXPIRED;
		case PP_accountLocked: return DIR_E_ACCOUNT_LOCKED;
		case PP_changeAfterReset: return DIR_E_PASSWORD_MUST_CHANGE;
		case PP_insufficientPasswordQuality: case PP_passwordTooShort:
		case PP_passwordTooYoung: case PP_passwordInHistory:
		case PP_passwordTooLong: case PP_passwordModNotAllowed:
			return DIR_E_PASSWORD_POLICY;
		case PP_mustSupplyOldPassword:
			return DIR_E_INVALID_CREDENTIALS;
		default:
			return DIR_OK;
		}
	case SRC_USER_BIND:
	case SRC_PASSWD:
	case SRC_LDAP:
		break;
	}
	switch (code) {
	case LDAP_SUCCESS:
		return DIR_OK;
	case LDAP_INVALID_CREDENTIALS:
		return src == SRC_USER_BIND ? dir_ad_diag(diag) : DIR_E_INVALID_CREDENTIALS;
	case LDAP_INAPPROPRIATE_AUTH:
	case LDAP_STRONG_AUTH_REQUIRED:
		return src == SRC_LDAP ? DIR_E_INTERNAL : DIR_E_INVALID_CREDENTIALS;
	case LDAP_CONSTRAINT_VIOLATION:
	case LDAP_UNWILLING_TO_PERFORM:
		if (src != SRC_PASSWD)
			return src == SRC_USER_BIND ? DIR_E_INVALID_CREDENTIALS : DIR_E_INTERNAL;
		/* AD: 00000056 is a wrong old password, 0000052D the policy. */
		if (diag && strstr(diag, "00000056"))
			return DIR_E_INVALID_CREDENTIALS;
		return DIR_E_PASSWORD_POLICY;
	case LDAP_INSUFFICIENT_ACCESS:
		return src == SRC_PASSWD ? DIR_E_PASSWORD_POLICY : DIR_E_INTERNAL;
	case LDAP_SERVER_DOWN:
	case LDAP_TIMEOUT:
	case LDAP_CONNECT_ERROR:
	case LDAP_BUSY:
	case LDAP_UNAVAILABLE:
	case LDAP_TIMELIMIT_EXCEEDED:
	case LDAP_ADMINLIMIT_EXCEEDED:
	case LDAP_OTHER:
		return DIR_E_UNAVAILABLE;
	case LDAP_FILTER_ERROR:
	case LDAP_PARAM_ERROR:
	case LDAP_INVALID_DN_SYNTAX:
	case LDAP_PROTOCOL_ERROR:
		return DIR_E_BAD_REQUEST;
	default:
		return DIR_E_INTERNAL;
	}
}

const char *dir_code(int err)
{
	switch (err) {
	case DIR_OK: return "ok";
	case DIR_E_INVALID_CREDENTIALS: return "invalid_credentials";
	case DIR_E_ACCOUNT_DISABLED: return "account_disabled";
	case DIR_E_ACCOUNT_LOCKED: return "account_locked";
	case DIR_E_ACCOUNT_EXPIRED: return "account_expired";
	case DIR_E_PASSWORD_EXPIRED: return "password_expired";
	case DIR_E_PASSWORD_MUST_CHANGE: return "password_must_change";
	case DIR_E_UNAVAILABLE: return "directory_unavailable";
	case DIR_E_BAD_REQUEST: return "bad_request";
	case DIR_E_PASSWORD_POLICY: return "password_policy";
	case DIR_E_NOT_FOUND: return "not_found";
	case DIR_E_TOO_MANY_ATTEMPTS: return "too_many_attempts";
	default: return "internal";
	}
}

/*
 * AD appends "data XXX" (hex) to the diagnostic of a failed bind, e.g.
 * "80090308: LdapErr: DSID-0C09041C, comment: AcceptSecurityContext error,
 * data 775, v4563".  Codes 530 (logon hours) and 531 (workstation) are
 * restrictions an administrator placed on the account, so they map to
 * account_disabled: the user cannot fix them and must not be told to retry.
 */
int dir_ad_diag(const char *diagnostic)
{
	const char *p;
	unsigned long code;
	char *end;

	if (!diagnostic)
		return DIR_E_INVALID_CREDENTIALS;
	for (p = strstr(diagnostic, "data "); p; p = strstr(p + 1, "data ")) {
		code = strtoul(p + 5, &end, 16);
		if (end == p + 5 || (*end != ',' && *end != '\0' && *end != ' '))
			continue;
		switch (code) {
		case 0x52e: case 0x525: return DIR_E_INVALID_CREDENTIALS;
		case 0x530: case 0x531: case 0x533: return DIR_E_ACCOUNT_DISABLED;
		case 0x532: return DIR_E_PASSWORD_EXPIRED;
		case 0x701: return DIR_E_ACCOUNT_EXPIRED;
		case 0x773: return DIR_E_PASSWORD_MUST_CHANGE;
		case 0x775: return DIR_E_ACCOUNT_LOCKED;
		default: return DIR_E_INVALID_CREDENTIALS;
		}
	}
	return DIR_E_INVALID_CREDENTIALS;
}
