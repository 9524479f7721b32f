/* Private to ldap/: helpers shared between its source files. */
#ifndef DIRBRIDGE_LDAP_INTERNAL_H
#define DIRBRIDGE_LDAP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lber.h>
#include <ldap.h>
#include <netdb.h>
#include <uv.h>

#include "config/cfg.h"
#include "ldap/dir.h"

/* Length of the well-formed UTF-8 sequence at S, or 0; *CP gets the code point. */
size_t dir_utf8_next(const unsigned char *s, size_t left, uint32_t *cp);
/* Whole buffer is well-formed UTF-8 without NUL. */
bool dir_utf8_valid(const char *s, size_t len);
/* UTF-8 to UTF-16LE (AD unicodePwd); *out is malloc'd and must be wiped. */
int dir_utf16le(const char *in, size_t len, unsigned char **out, size_t *out_len);


/* ---- the password-login guard (guard.c) ---- */
struct dir_guard;
int dir_guard_new(struct dir *d, uv_loop_t *loop, const struct cfg *cfg, struct dir_guard **out);
void dir_guard_free(struct dir_guard *g);
/* Reads the directory's lockout threshold (auto, or to warn about a number). */
void dir_guard_start(struct dir_guard *g);
/* Whether a new login must wait for that read; dir_guard_settled() ends the wait. */
bool dir_guard_waiting(struct dir_guard *g);
/* Before the bind of a login: DN as found, or NULL for an unknown USERNAME.
 * Returns 0 (the attempt is counted; *KEY, malloc'd or NULL, goes to
 * dir_guard_end), DIR_GUARD_WAIT (ask again when another login of this key
 * ends) or DIR_E_TOO_MANY_ATTEMPTS / DIR_E_INTERNAL. */
#define DIR_GUARD_WAIT 1
int dir_guard_begin(struct dir_guard *g, const char *dn, const char *username, char **key);
/* When the login ends: BIND_ERR is the bind's own answer (DIR_GUARD_NO_BIND when
 * none came), ERR the login's.  Returns the answer to give (account states
 * hidden per reveal_account_state). */
#define DIR_GUARD_NO_BIND 1
int dir_guard_end(struct dir_guard *g, const char *key, const char *username, int bind_err,
		  int err);
/* A DN under BASE_DN that names no entry (random), for unknown users' binds. */
int dir_decoy_dn(const char *base_dn, char **out);
/* Every attribute of a search entry, text values only; free with dir_read_entry_free. */
int dir_read_entry(LDAP *ld, LDAPMessage *m, struct dir_profile *out);
void dir_read_entry_free(struct dir_profile *p);
/* Frees everything a listed profile holds (names, groups, attributes) and
 * zeroes it. */
void dir_profile_clear(struct dir_profile *p);

/* ---- provided by dir.c for guard.c ---- */
struct dir_guard *dir_guard_of(const struct dir *d);
/* Logins that waited for the lockout policy go on. */
void dir_guard_settled(struct dir *d);
/* A service-account search (entries: dn and every requested attribute); ATTRS
 * must outlive the request.  The dir.h request contract applies. */
int dir_read(struct dir *d, const char *base, int scope, const char *filter,
	     const char *const *attrs, size_t limit, dir_users_cb cb, void *arg);

/* match.c: exact names for dir_lookup(). */
/* A and B are the same bytes except for the case of ASCII letters A..Z; bytes
 * above 0x7f compare exactly, whatever the locale. */
bool dir_ascii_caseeq(const char *a, size_t alen, const char *b, size_t blen);
/* The index of the value among VALS (N of them; NULL entries skipped) that NAME
 * names: one byte-equal to NAME first, else the first that differs from it only
 * in ASCII letter case; -1 when none does. */
int dir_name_pick(struct berval *const *vals, size_t n, const char *name);
/* For a lookup of NAME that found entry M: replaces *UNAME with the entry's own
 * value of ATTR that NAME names (dir_name_pick), or with NULL, logging a warning
 * with DN, when the directory matched NAME only through its matching rule's
 * folding.  DIR_E_INTERNAL when out of memory. */
int dir_lookup_name(LDAP *ld, LDAPMessage *m, const char *attr, const char *name,
		    const char *dn, char **uname);

/* ==== the directory client (dir.c and the files it was split into) ==== */

#define PAGE_SIZE 500
#define GROUP_SEARCHES_MAX 128	/* bounds the OpenLDAP membership walk */
#define GROUP_BATCH 64		/* DNs per membership search */
#define USER_CONNS_MAX 32	/* user-bind connections open at once */
/* Idle user-bind connections kept per server for the next login's bind.  A
 * login holds its user connection for one round trip of its five or six, yet
 * binds come in bursts: with 16 logins in flight against slapd, 8 kept ones
 * still meant a new TLS handshake every ~170 logins, 16 almost never.  They
 * count against USER_CONNS_MAX, and a login that finds it reached closes kept
 * ones to make room (auth.c: user_conn_start). */
#define USER_IDLE_MAX 16
#define READY_GRACE_MS 10000u	/* a service connection lost younger marks its server down */
#define GROUPS_MAX 4096
#define BACKOFF_MIN_MS 500u
#define BACKOFF_MAX_MS 30000u

/* AD userAccountControl and msDS-User-Account-Control-Computed bits. */
#define UF_ACCOUNTDISABLE 0x2u
#define UF_LOCKOUT 0x10u

struct req;

struct server {
	struct dir *d;
	const char *name;	/* the configured URL, for logs */
	char *url;		/* what libldap is given: ldap://host:port */
	char *host;		/* checked against the certificate */
	char port[8];
	bool ldaps;
	bool down;
	unsigned fails;
	uv_timer_t retry;	/* when a down server may be tried again */
	uint64_t conn_failures;
	struct dir_op_stats op[DIR_OP_COUNT];
};

/* Ordered: code compares with < CONN_READY and >= CONN_CLOSING. */
enum conn_state {
	CONN_NEW = 0,
	CONN_RESOLVING,
	CONN_CONNECTING,
	CONN_STARTTLS_SENT,
	CONN_TLS_HANDSHAKE,
	CONN_BINDING,
	CONN_READY,
	CONN_CLOSING,
	CONN_DEAD,
};

/* A service connection binds as the service account and joins the pool; a user
 * connection carries nothing but user binds (and, for a password change, the
 * change after its own bind): opened for one request, it is then kept for the
 * next login's bind, which replaces the identity, or closed. */
enum conn_kind { CONN_SERVICE, CONN_USER };

struct conn {
	struct dir *d;
	struct conn *next;
	enum conn_state state;	/* written only by conn_set_state() */
	enum conn_kind kind;
	size_t srv;
	bool retiring;		/* on a less preferred server: close when idle */
	/* User connections: the request served.  A ready user connection without
	 * one is kept for a later login's bind (dir_conn_keep, dir_conn_take);
	 * nothing is in flight on it. */
	struct req *owner;
	struct addrinfo *ai, *ai_cur;
	uv_getaddrinfo_t gai;
	bool gai_busy;
	int fd;
	uv_poll_t poll;
	bool poll_open;
	int poll_events;
	uv_timer_t timer;	/* setup deadline; a kept user connection's idle timeout */
	bool timer_open;
	unsigned refs;		/* handles and lookups not yet called back */
	struct tls_sess *tls;
	bool verified;		/* handshake done, server certificate verified */
	bool write_blocked;	/* libldap holds a request the socket would not take */
	uint64_t ready_at;	/* loop time it became ready */
	LDAP *ld;
	int msgid;		/* StartTLS or bind in flight */
	const char *rmech;	/* SASL interactive bind state */
	unsigned n_ops;		/* requests with an operation in flight here */
	unsigned binds;		/* user binds sent on it */
};

enum req_kind { REQ_AUTH, REQ_LOOKUP, REQ_CHPW, REQ_USERS, REQ_GROUPS, REQ_READ };

/* Where a request is in its life.  Only RS_QUEUED requests are sent by the
 * kick; a request that is not waiting for anything is RS_RUNNING (an operation
 * in flight, or its user connection on the way). */
enum req_state {
	RS_NEW = 0,
	RS_POLICY_WAIT,	/* a login waiting for the lockout policy to be read */
	RS_QUEUED,	/* its next step waits for a service connection */
	RS_RUNNING,
	RS_PARKED,	/* a login waiting for another login of its guard key to end */
	RS_DONE,	/* its callback has run (or it was aborted): nothing more */
};

/* A password request's own connection, bound as the user. */
enum ubind_phase {
	UB_NEW = 0,	/* none wanted yet */
	UB_WAITING,	/* USER_CONNS_MAX are open: waiting for a slot */
	UB_OPENING,	/* it has a connection (new, handed on or kept), bind not yet sent */
	UB_BINDING,	/* the user's bind is in flight on it */
	UB_BOUND,	/* bound as the user, nothing in flight on it */
	UB_CHANGING,	/* a password change is in flight on it */
	UB_DONE,	/* let go: handed on, kept or closed */
};

struct entry {
	char *dn, *uname, *display, *cn, *mail;
	char **memberof;
	size_t n_memberof;
	struct dir_attr *attrs;
	size_t n_attrs;
	bool has_uac, has_uacc;
	unsigned long uac, uacc;
	long long expires;
	bool pwd_locked;
};

struct strv {
	char **v;
	size_t n, cap;
};

typedef int (*send_fn)(struct req *r);
typedef void (*msg_fn)(struct req *r, LDAPMessage *msg);

struct req {
	struct dir *d;
	struct req *next, *prev;
	enum req_kind kind;
	enum req_state state;		/* written only by dir_req_set_state() */
	enum ubind_phase uphase;	/* written only by dir_req_set_uphase() */
	bool readonly;
	unsigned retries;
	struct conn *conn;	/* connection of the operation in flight */
	int msgid;
	send_fn send;		/* (re)sends the current step on req->conn */
	msg_fn on_msg;
	struct conn *uconn;	/* the user's own connection */
	size_t srv;		/* server the user was found on */
	uv_timer_t timer;
	uint64_t sent_ns;	/* uv_hrtime() when the operation in flight was sent */

	char *username;
	char *filter;
	char *pw, *newpw;
	size_t pw_len, newpw_len;
	size_t limit;
	bool paged;
	struct berval cookie;

	size_t n_found;
	struct entry ent;
	struct strv groups, seen, frontier;
	unsigned depth;
	struct dir_profile *users;
	size_t n_users, cap_users;

	/* Password logins: the guard's key, the bind's own answer, whether the
	 * bind is a decoy for an unknown user. */
	char *guard_key;
	int bind_err;
	bool decoy;
	/* The user connection may serve another login's bind once this one lets
	 * go of it (dir_ubind_keep() of the bind's result). */
	bool ubind_reusable;
	/* REQ_READ (guard.c's policy reads) */
	char *base;
	int scope;
	const char *const *read_attrs;

	dir_profile_cb profile_cb;
	dir_users_cb users_cb;
	dir_names_cb names_cb;
	dir_done_cb done_cb;
	void *arg;
};

struct dir {
	uv_loop_t *loop;
	const struct cfg *cfg;
	struct server *srv;
	size_t n_srv;
	struct conn *conns;
	struct req *reqs;
	unsigned n_user_conns;
	struct dir_stats stats;	/* counters; user_conns_idle is counted on demand */
	uv_timer_t kick;	/* runs queued work from the loop, never inline */
	unsigned handles;	/* open handles and lookups; freed at zero */
	char *bind_pw;
	size_t bind_pw_len;
	struct dir_guard *guard;
	char *uattr;		/* attribute holding the username */
	const char **user_attrs;
	bool closing;
	bool was_up;
	uint64_t rng;
	void (*done)(void *arg);
	void *done_arg;
};

/* ---- errors.c: the one place where library codes become dir_err values ---- */
enum err_src {
	SRC_LDAP,	/* result of an operation other than the user's bind */
	SRC_USER_BIND,	/* result of binding as the user: AD diagnostics apply */
	SRC_PPOLICY,	/* password policy response control */
	SRC_SASL,
	SRC_TLS,
	SRC_PASSWD,	/* result of a password change */
};
/* CODE is an LDAP result code, a ppolicy error, a SASL or a tls_ code per SRC;
 * DIAG the server's diagnostic message (may be NULL). */
int dir_map_err(enum err_src src, int code, const char *diag);

/* ---- entry.c: search entries and small helpers ---- */
void dir_wipe_free(char *p, size_t len);
int dir_strv_add(struct strv *s, const char *v);
/* Case-insensitive (DNs and group names). */
bool dir_strv_has(const struct strv *s, const char *v);
void dir_strv_free(struct strv *s);
/* The cn of the first RDN of DN, or NULL; malloc'd. */
char *dir_dn_cn(const char *dn);
void dir_entry_free(struct entry *e);
int dir_entry_parse(struct dir *d, LDAP *ld, LDAPMessage *m, struct entry *e);
/* The account state found by the search: 0 or a DIR_E_ACCOUNT_* code. */
int dir_entry_state(const struct dir *d, const struct entry *e);

/* ---- pure.c: decisions about kept user-bind connections ---- */
/* Whether a connection whose user bind ended with LDAP result code RC may carry
 * another user's bind: a refused bind leaves an LDAP connection anonymous and
 * usable (RFC 4513 section 5.1.1), so success and the credential refusals keep
 * it; any other code may mean the server is unhappy with the connection. */
bool dir_ubind_keep(int rc);
/* How long a kept user connection may stay idle: twice the request timeout,
 * within 1 s..60 s, well below directories' own idle limits (AD's
 * MaxConnIdleTime is 900 s), so the server rarely closes one under us. */
uint64_t dir_user_idle_ms(unsigned timeout_ms);
/* The OR filter for the groups that list any of DNS[0..N) as member or
 * uniqueMember, each DN RFC 4515-escaped; NULL entries are skipped, and a DN
 * that cannot be escaped is dropped, never used raw.  *OUT is malloc'd;
 * DIR_E_NOT_FOUND when no DN is left. */
int dir_group_filter(char *const *dns, size_t n, char **out);

/* ---- conn.c: one connection ---- */
struct conn *dir_conn_new(struct dir *d, size_t srv, enum conn_kind kind);
void dir_conn_close(struct conn *c);
/* Fails every request using C (retrying read-only searches once elsewhere),
 * marks its server down and closes it. */
void dir_conn_fail(struct conn *c, int err, const char *why);
/* Watches C for what libldap needs next (after a request was sent). */
void dir_conn_rearm(struct conn *c);
/* Keeps ready user connection C, without owner, for a later bind, until the
 * idle timeout closes it. */
void dir_conn_keep(struct conn *c);
/* A kept user connection to server SRV that is still open (checked on the
 * socket), no longer kept; NULL when none.  Dead ones found are closed. */
struct conn *dir_conn_take(struct dir *d, size_t srv);
/* Closes the kept user connections to servers LO..HI-1 (failover). */
void dir_conn_drop_kept(struct dir *d, size_t lo, size_t hi);
/* Kept user connections to server SRV (SIZE_MAX: to any server). */
unsigned dir_conn_kept_count(const struct dir *d, size_t srv);

/* ---- pool.c: the service pool, servers and failover ---- */
void dir_server_down(struct server *sv, const char *why);
void dir_pool_fill(struct dir *d);
/* Service connection C just became ready: retire those on worse servers. */
void dir_pool_ready(struct conn *c);
/* Runs queued requests from the loop, never inline. */
void dir_kick(struct dir *d);

/* ---- req.c: requests, timeouts, results ---- */
void dir_req_set_state(struct req *r, enum req_state s);
void dir_req_set_uphase(struct req *r, enum ubind_phase p);
int dir_req_new(struct dir *d, enum req_kind kind, void *arg, struct req **out);
/* Frees a request that never started: no callback. */
void dir_req_abort(struct req *r);
/* Calls the request's callback once with ERR (or its results) and frees it. */
void dir_req_finish(struct req *r, int err);
void dir_req_arm(struct req *r);
/* Runs step SEND (answers go to ON_MSG) on a service connection, from the loop. */
void dir_req_service(struct req *r, send_fn send, msg_fn on_msg, bool readonly);
void dir_req_send_on(struct req *r, struct conn *c);
void dir_req_conn_lost(struct req *r, struct conn *c);
/* Hands a message read on a ready connection to its request (or drops it). */
void dir_req_dispatch(struct conn *c, LDAPMessage *msg);
/* The operation on r->conn is over. */
void dir_op_done(struct req *r);
/* Parses a final result; returns the LDAP code and, if wanted, the controls. */
int dir_result_code(struct req *r, LDAPMessage *msg, char **diag, LDAPControl ***ctrls);

/* ---- auth.c: finding the user, the user's bind, password change ---- */
int dir_send_user_search(struct req *r);
void dir_user_search_msg(struct req *r, LDAPMessage *msg);
void dir_auth_found(struct req *r);
/* The request's user connection is ready: send the user's bind on it. */
void dir_user_conn_ready(struct req *r);
/* A user-connection slot is free: the oldest waiter opens one. */
void dir_user_conn_next(struct dir *d);
/* Lets go of the request's user connection; IDLE: nothing in flight on it. */
void dir_user_conn_done(struct req *r, bool idle);

/* ---- groups.c ---- */
void dir_groups_start(struct req *r);

/* ---- list.c: paged listing and guard.c's reads ---- */
/* Takes the paging cookie from a result's controls; true when a page follows. */
bool dir_next_page(struct req *r, LDAPControl **ctrls);
/* The result of one page: 0 when it succeeded or hit the size limit, with *CTRLS
 * for the caller to read and free; otherwise the request is finished with the
 * mapped error and DIR_E_INTERNAL is returned (the caller only returns). */
int dir_page_result(struct req *r, LDAPMessage *msg, LDAPControl ***ctrls);
/* Sends the next page with SEND on the request's connection; a send that fails
 * finishes the request, or fails the connection when it is gone. */
void dir_page_next(struct req *r, send_fn send);
int dir_send_list_first(struct req *r);
void dir_list_msg(struct req *r, LDAPMessage *msg);
int dir_send_read(struct req *r);
void dir_read_msg(struct req *r, LDAPMessage *msg);

/* ---- dir.c ---- */
/* Frees D once it is closing and its last handle has closed. */
void dir_maybe_free(struct dir *d);

#endif
