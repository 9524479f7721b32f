/*
 * config/ — the agent's INI configuration, loaded once into an immutable typed
 * struct.  Prefix: cfg_.
 *
 * Invariant: a struct cfg returned by cfg_load() has passed every check (types,
 * ranges, required keys, files readable, secret files private, URLs and CIDR
 * ranges well-formed).  Other modules read it and never modify it.  Secrets are
 * never stored in it: it holds the *paths* of secret files, read with
 * cfg_secret_read() when needed and wiped with cfg_secret_free().
 */
#ifndef DIRBRIDGE_CFG_H
#define DIRBRIDGE_CFG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
/* The Windows files of config/ (secret_win.c) include this header too. */
#ifdef _WIN32
#include <winsock2.h>
#else
#include <sys/socket.h>
#endif
#include <sys/types.h>

#include "log/log.h"

enum cfg_dir_type { CFG_DIR_AD, CFG_DIR_OPENLDAP };
enum cfg_groups { CFG_GROUPS_NONE, CFG_GROUPS_DIRECT, CFG_GROUPS_RECURSIVE };
#define CFG_LOCKOUT_AUTO 0xffffffffu	/* [ldap] lockout_guard = auto */
enum cfg_cert_username { CFG_CERTNAME_CN, CFG_CERTNAME_UPN, CFG_CERTNAME_EMAIL };

/* An address range; addr holds 4 (AF_INET) or 16 (AF_INET6) significant bytes,
 * host bits beyond prefix are zero. */
struct cfg_range {
	int family;
	uint8_t addr[16];
	unsigned prefix;
};

/* Which sections a program needs; a missing needed section is an error. */
enum {
	CFG_NEED_LDAP = 1 << 0,
	CFG_NEED_HTTPS = 1 << 1,
	CFG_NEED_HUB = 1 << 2,
	CFG_NEED_ALL = CFG_NEED_LDAP | CFG_NEED_HTTPS | CFG_NEED_HUB,
};

struct cfg {
	char *path;			/* the file it was loaded from */
	struct {
		char *name;
		enum log_level log_level;
		enum log_format log_format;
		char *user;		/* NULL: do not drop privileges */
	} agent;
	struct {
		bool present;
		char **urls;		/* failover order; ldap:// or ldaps:// */
		size_t n_urls;
		char *ca_file;
		bool starttls;
		char *bind_dn;		/* NULL with sasl_mech EXTERNAL/GSSAPI */
		char *bind_password_file;
		char *sasl_mech;	/* NULL: simple bind */
		char *sasl_authzid;	/* optional */
		char *cert_file;	/* client certificate, for SASL EXTERNAL */
		char *key_file;
		char *keytab;		/* for GSSAPI */
		char *base_dn;
		enum cfg_dir_type type;
		char *user_filter;	/* contains {username} exactly once */
		enum cfg_groups groups;
		unsigned timeout_ms;
		unsigned pool_size;	/* service-account connections */
		char **attributes;	/* extra profile attributes */
		size_t n_attributes;
		/* Failed binds per user and window before the agent stops sending
		 * binds for that user; 0 off, CFG_LOCKOUT_AUTO from the directory. */
		unsigned lockout_guard;
		unsigned lockout_guard_window_s;
		bool reveal_account_state;	/* false: locked/disabled/expired look like a wrong password */
	} ldap;
	struct {
		bool present;
		char **listen;		/* "HOST:PORT" or "[V6]:PORT" */
		size_t n_listen;
		struct sockaddr_storage *listen_addrs;	/* listen[i], parsed */
		char *public_url;
		char *cert_file;
		char *key_file;
		char *client_ca_file;
		char *crl_file;		/* NULL: no CRL */
		struct cfg_range *ranges;	/* client_cert_ranges */
		size_t n_ranges;
		struct cfg_range *metrics_ranges;	/* who may read /metrics */
		size_t n_metrics_ranges;
		enum cfg_cert_username cert_username;
		unsigned client_verify_depth;	/* certificates below a client CA, 1..8 */
		unsigned max_failures_per_ip;	/* failed form logins per address per 5 min; 0: off */
		unsigned max_connections;	/* open front connections (the agent may lower it) */
	} https;
	struct {
		bool present;
		char *url;		/* wss://HOST[:PORT]/PATH */
		char *host;		/* parts of url: HOST (no brackets), */
		uint16_t port;		/* PORT (443 when absent) */
		char *path;		/* and /PATH */
		char *token_file;
		char *ca_file;
	} hub;
};

/*
 * Loads and validates PATH.  On success returns 0 and *out.  On failure returns
 * a negative errno-style value and has written every problem found to ERR, one
 * line each, as "dirbridge: FILE:LINE: message" (LINE omitted where unknown).
 */
int cfg_load(const char *path, unsigned need, struct cfg **out, FILE *err);
void cfg_free(struct cfg *cfg);

/* CIDR text ("10.0.0.0/8", "2001:db8::/32", or a bare address meaning /32 or
 * /128).  Strict: no leading zeros in IPv4 octets or the prefix, prefix within
 * the family.  Returns 0; -EINVAL when malformed; -ERANGE when the prefix is too
 * long for the family; -EDOM when bits beyond the prefix are set, in which case
 * OUT holds the range with them cleared (to suggest "did you mean ..."). */
int cfg_range_parse(const char *text, struct cfg_range *out);
/* Whether SA (AF_INET or AF_INET6, IPv4-mapped IPv6 matching IPv4 ranges) lies
 * in any of the N ranges. */
bool cfg_ranges_match(const struct cfg_range *ranges, size_t n, const struct sockaddr *sa);

/*
 * "HOST:PORT" or "[V6]:PORT" with HOST a numeric address (strict dotted quad,
 * no leading zeros; IPv6 only in brackets, without a zone), PORT 1..65535 in
 * plain decimal.  With DEFAULT_PORT nonzero the ":PORT" may be left out ("HOST"
 * or "[V6]"); with 0 it is required.  Returns 0 with OUT set (AF_INET or
 * AF_INET6, every other byte zero, so two results compare with memcmp), or
 * -EINVAL with OUT zeroed.
 */
int cfg_hostport_parse(const char *text, uint16_t default_port, struct sockaddr_storage *out);

/*
 * Reads a secret file (first line, without its newline or a trailing CR) into
 * locked, non-dumpable memory (locking is best effort under RLIMIT_MEMLOCK).
 * Refuses files accessible by group or others, empty first lines, lines over
 * 4096 bytes and NUL bytes; the message in ERRBUF never contains the secret.  Free with cfg_secret_free(),
 * which wipes it.  Returns 0 or a negative errno; ERRBUF gets a message.
 */
int cfg_secret_read(const char *path, char **out, size_t *len, char *errbuf, size_t errlen);
/*
 * systemd credentials (LoadCredential=NAME:PATH): a file value written
 * "credential:NAME" names $CREDENTIALS_DIRECTORY/NAME.  Returns 1 with *PATH
 * set (malloc'd) for such a value, 0 with *PATH NULL for any other value, or a
 * negative errno with ERRBUF saying how to fix it (-ENOENT: the variable is
 * not set; -EINVAL: NAME is not a file name).  cfg_secret_read() and the
 * loader resolve values through it.
 */
#define CFG_CREDENTIAL_PREFIX "credential:"
int cfg_credential_path(const char *value, char **path, char *errbuf, size_t errlen);
/*
 * Whether MODE (from fstat of PATH) keeps a secret private: no group or other
 * bit, except that a file directly in $CREDENTIALS_DIRECTORY, when that
 * directory has no other bits, may show group read: systemd writes credentials
 * 0400 and grants the service's user read access with a POSIX ACL, whose mask
 * stat reports in the group bits (0440) though no group may read the file.
 */
bool cfg_secret_mode_ok(const char *path, mode_t mode);
void cfg_secret_free(char *secret, size_t len);

/* secret.c: malloc and a free that wipes the whole block first (malloc_usable_size),
 * for allocators such as jansson's whose values may hold secrets. */
void *cfg_wipe_alloc(size_t n);
void cfg_wipe_free(void *p);

#endif
