/*
 * ldap/ — the directory (Active Directory or OpenLDAP), asynchronously on a libuv
 * loop.  Prefix: dir_ (libldap owns ldap_).
 *
 * Every request function either fails at once (returns a negative dir_err and
 * never calls the callback) or returns 0 and later calls its callback exactly
 * once, from the loop, never from inside the request function.  Pointers passed
 * to a callback are valid only during the callback.  dir_close() completes every
 * pending request with DIR_E_UNAVAILABLE before its own callback runs.
 */
#ifndef DIRBRIDGE_DIR_H
#define DIRBRIDGE_DIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config/cfg.h"

/* The protocol's error codes (docs/protocol.md), as negative values; dir_code() gives the wire name. */
/* dir_ codes lie in -2001..-2099, disjoint from -errno and from the tls_ and
 * net_ spaces. */
enum dir_err {
	DIR_OK = 0,
	DIR_E_INVALID_CREDENTIALS = -2001,
	DIR_E_ACCOUNT_DISABLED = -2002,
	DIR_E_ACCOUNT_LOCKED = -2003,
	DIR_E_ACCOUNT_EXPIRED = -2004,
	DIR_E_PASSWORD_EXPIRED = -2005,
	DIR_E_PASSWORD_MUST_CHANGE = -2006,
	DIR_E_UNAVAILABLE = -2007,		/* directory_unavailable */
	DIR_E_BAD_REQUEST = -2008,
	DIR_E_INTERNAL = -2009,
	DIR_E_PASSWORD_POLICY = -2010,	/* password_policy: new password refused */
	DIR_E_NOT_FOUND = -2011,		/* lookup only: no such (enabled) user */
	DIR_E_TOO_MANY_ATTEMPTS = -2012,	/* too_many_attempts: refused before any bind */
};
const char *dir_code(int err);

struct dir_attr {
	char *name;
	char **values;
	size_t n_values;
};

struct dir_profile {
	char *username;
	char *dn;
	char *display_name;	/* may be NULL */
	char *email;		/* may be NULL */
	char **groups;		/* group names (cn), expanded per [ldap] groups */
	size_t n_groups;
	struct dir_attr *attrs;	/* configured extra attributes present on the entry */
	size_t n_attrs;
	bool disabled;		/* lookup: account disabled/locked/expired */
};

struct dir;

typedef void (*dir_profile_cb)(void *arg, int err, const struct dir_profile *p);
typedef void (*dir_users_cb)(void *arg, int err, const struct dir_profile *users, size_t n);
typedef void (*dir_names_cb)(void *arg, int err, char *const *names, size_t n);
typedef void (*dir_done_cb)(void *arg, int err);

/* Starts connecting the service-account pool; requests made before it is up wait
 * (bounded by timeout_ms).  CFG must outlive the struct dir. */
int dir_open(uv_loop_t *loop, const struct cfg *cfg, struct dir **out);
/* Stops, fails pending requests, closes every handle, then calls DONE. */
void dir_close(struct dir *d, void (*done)(void *arg), void *arg);
/* True while at least one service connection is bound. */
bool dir_is_up(const struct dir *d);

/* Password login: search as the service account, bind as the entry's DN on a
 * separate connection.  Empty passwords and passwords with NUL are refused with
 * DIR_E_INVALID_CREDENTIALS before anything reaches the wire.  An unknown user
 * gets a bind as a DN that does not exist, answered DIR_E_INVALID_CREDENTIALS.
 * [ldap] lockout_guard may answer DIR_E_TOO_MANY_ATTEMPTS with no bind sent;
 * reveal_account_state = false answers account states as invalid credentials. */
int dir_authenticate(struct dir *d, const char *username, const char *password,
		     size_t password_len, dir_profile_cb cb, void *arg);
/* Profile without a password (certificate login).  DIR_E_NOT_FOUND when no entry
 * or more than one matches; p->disabled is set for disabled/locked/expired.
 * The name is exact: USERNAME must equal a value of the username attribute (the
 * one compared with {username} in user_filter; every value when it has several)
 * or differ from it only in the case of ASCII letters.  An entry the directory
 * matched only by its own folding (case of non-ASCII letters, Unicode
 * compatibility forms such as fullwidth letters, spaces) is DIR_E_NOT_FOUND, with
 * a warning in the log.  p->username is that directory value, never USERNAME. */
int dir_lookup(struct dir *d, const char *username, dir_profile_cb cb, void *arg);
int dir_change_password(struct dir *d, const char *username, const char *old_pw,
			size_t old_len, const char *new_pw, size_t new_len,
			dir_done_cb cb, void *arg);
/* Users whose name, display name or email contains QUERY; paged (RFC 2696). */
int dir_search_users(struct dir *d, const char *query, size_t limit, dir_users_cb cb, void *arg);
int dir_list_groups(struct dir *d, size_t limit, dir_names_cb cb, void *arg);
/* Every user matching FILTER (NULL: the configured user objects); paged. */
int dir_list_users(struct dir *d, const char *filter, size_t limit, dir_users_cb cb, void *arg);

/* What the password-login guard has done since dir_open(), for /metrics. */
struct dir_guard_stats {
	unsigned limit;		/* failed binds per user before refusals; 0: off */
	bool known;		/* limit is settled (auto: the directory has answered) */
	uint64_t refused;	/* logins answered too_many_attempts */
	uint64_t hidden;	/* account states answered as invalid_credentials */
};
void dir_guard_stats(const struct dir *d, struct dir_guard_stats *out);
/* A reload opens a new struct dir: TO takes over FROM's failure counts, so a
 * reload never gives an attacker a fresh budget below the directory's lockout.
 * Call right after dir_open(TO), before any login reaches it. */
void dir_carry_guard(struct dir *to, struct dir *from);

/* The directory client's counters since dir_open(), for /metrics and tests. */
struct dir_stats {
	uint64_t user_conns_opened;	/* user-bind connections opened */
	uint64_t user_binds;		/* user binds sent (decoys included) */
	uint64_t user_binds_reused;	/* of those, on a kept connection */
	uint64_t user_conns_expired;	/* kept connections closed as idle too long */
	uint64_t user_conns_stale;	/* kept connections found closed when wanted */
	uint64_t group_searches;	/* membership searches sent (pages count) */
	uint64_t failovers;		/* the pool moved to a less preferred server */
	uint64_t timeouts;		/* requests that ran out of timeout_ms */
	unsigned user_conns_idle;	/* kept connections now */
};
void dir_stats(const struct dir *d, struct dir_stats *out);

/* Operations by kind, for the per-server latency histograms. */
enum dir_op { DIR_OP_SEARCH, DIR_OP_BIND, DIR_OP_MODIFY, DIR_OP_COUNT };
extern const char *const dir_op_names[DIR_OP_COUNT];	/* "search", "bind", "modify" */
/* Upper bounds in seconds of the latency buckets, ascending. */
#define DIR_LATENCY_BUCKETS 11
extern const double dir_latency_bounds[DIR_LATENCY_BUCKETS];
struct dir_op_stats {
	/* Operations per bucket (not cumulative): bucket[i] took at most
	 * dir_latency_bounds[i] and more than the bound before it; the last
	 * took longer than every bound. */
	uint64_t bucket[DIR_LATENCY_BUCKETS + 1];
	uint64_t count;		/* operations answered */
	uint64_t sum_us;	/* their total latency, microseconds */
	/* Answers other than success; a user bind refused for its credentials
	 * is a login's failure, not the directory's, and is not counted. */
	uint64_t errors;
};
struct dir_server_stats {
	const char *name;	/* the configured URL; valid while D is */
	bool in_use;		/* the service pool has a ready connection to it */
	bool down;
	uint64_t conn_failures;	/* connections lost or refused */
	struct dir_op_stats op[DIR_OP_COUNT];
};
/* The number of configured servers, and server I's counters since dir_open(). */
size_t dir_server_count(const struct dir *d);
void dir_server_stats(const struct dir *d, size_t i, struct dir_server_stats *out);

/*
 * A bounded table of failure counters keyed by string, for throttles: KEY is
 * blocked once it has LIMIT failures, each less than WINDOW_S seconds after the
 * one before (a quiet window clears the count).  At most CAPACITY keys are kept;
 * a new key when full evicts the least recently failed one, preferring keys that
 * are not blocked, so a flood of new keys cannot grow it.  Times are
 * milliseconds from a clock that never goes back (uv_now()).
 */
struct dir_throttle;
struct dir_throttle_stats {
	uint64_t refused;	/* dir_throttle_blocked() answers "blocked" */
	uint64_t evicted;	/* keys dropped to make room */
	size_t entries, capacity;
};
/* NULL when out of memory or an argument is 0 (or CAPACITY is absurd). */
struct dir_throttle *dir_throttle_new(size_t capacity, unsigned limit, unsigned window_s);
void dir_throttle_free(struct dir_throttle *t);
/* New LIMIT and WINDOW_S for the counts already kept (0 for either: no change). */
void dir_throttle_set_limit(struct dir_throttle *t, unsigned limit, unsigned window_s);
/* Counts one failure of KEY; 0 or DIR_E_INTERNAL (out of memory). */
int dir_throttle_fail(struct dir_throttle *t, const char *key, uint64_t now_ms);
/* Takes back one failure counted ahead of an outcome that was not one. */
void dir_throttle_undo(struct dir_throttle *t, const char *key);
/* Whether KEY is blocked now; every "true" is counted as a refusal. */
bool dir_throttle_blocked(struct dir_throttle *t, const char *key, uint64_t now_ms);
unsigned dir_throttle_failures(struct dir_throttle *t, const char *key, uint64_t now_ms);
/* Forgets KEY (a success). */
void dir_throttle_reset(struct dir_throttle *t, const char *key);
void dir_throttle_stats(const struct dir_throttle *t, struct dir_throttle_stats *out);

/*
 * probe.c: dirbridge-check's view of one server, synchronously.  Each call
 * blocks for at most [ldap] timeout_ms (a daemon runs them off its loop) and
 * on failure returns a dir_err with one sentence in ERR (the server's own
 * diagnostic included).  dir_probe_open() connects to URL and secures it as
 * the agent would (ldaps://, or StartTLS on ldap://), trusting [ldap] ca_file.
 */
struct dir_probe;
int dir_probe_open(const struct cfg *cfg, const char *url, struct dir_probe **out, char *err,
		   size_t errlen);
void dir_probe_close(struct dir_probe *p);
/* The service account's simple bind (bind_dn, bind_password_file). */
int dir_probe_bind(struct dir_probe *p, char *err, size_t errlen);
/* base_dn can be read (a base-scope search returns it). */
int dir_probe_base(struct dir_probe *p, char *err, size_t errlen);
/* user_filter with USERNAME finds exactly one entry: *DN (malloc'd) is the
 * first one found, *N_FOUND how many (0, 1, or 2 for "more than one"). */
int dir_probe_user(struct dir_probe *p, const char *username, char **dn, size_t *n_found,
		   char *err, size_t errlen);
/* How many groups list DN as member or uniqueMember. */
int dir_probe_groups(struct dir_probe *p, const char *dn, size_t *n_groups, char *err,
		     size_t errlen);
/* The directory's clock: the root DSE's currentTime (AD has it; OpenLDAP
 * does not, DIR_E_NOT_FOUND). */
int dir_probe_time(struct dir_probe *p, int64_t *now, char *err, size_t errlen);
/* The notAfter (Unix time) of the certificate the server presented. */
int dir_probe_peer_not_after(struct dir_probe *p, int64_t *not_after);
/* The host (no brackets), port (default 389/636) and scheme of an LDAP URL,
 * parsed by libldap; DIR_E_BAD_REQUEST when it has no host. */
int dir_url_parts(const char *url, char *host, size_t hostlen, unsigned *port, bool *ldaps);

/* Pure helpers, exposed for the tools and unit tests. */
/* RFC 4517 GeneralizedTime in UTC ("20260101120000.0Z") as Unix time;
 * DIR_E_BAD_REQUEST for anything else (local times, offsets). */
int dir_generalized_time(const char *s, int64_t *out);
/* RFC 4515 escaping of an assertion value; *out is malloc'd.  Refuses NUL and
 * invalid UTF-8 with DIR_E_BAD_REQUEST. */
int dir_filter_escape(const char *in, size_t len, char **out);
/* RFC 4514 escaping of an attribute value for use in a DN. */
int dir_dn_escape(const char *in, size_t len, char **out);
/* Whether NAME may be a directory username: 1..256 bytes of valid UTF-8 with no
 * control characters and none of  " / \ [ ] : ; | = , + * ? < > ( )  NUL. */
bool dir_username_valid(const char *name, size_t len);
/* Maps an AD bind diagnostic ("... data 775, ...") to a dir_err. */
int dir_ad_diag(const char *diagnostic);

#endif
