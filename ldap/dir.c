/*
 * The directory client: connections, the service-account pool, failover and
 * the requests of ldap/dir.h, all on one libuv loop.
 *
 * Sockets are ours: resolved with uv_getaddrinfo, connected non-blocking and
 * watched by a uv_poll handle.  libldap speaks LDAP on them through
 * ldap_init_fd(), and TLS is our tls/ session, spliced under libldap as a
 * Sockbuf_IO layer.  libldap is only ever asked for results with a zero
 * timeout, so nothing here waits on the network.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <lber.h>
#include <ldap.h>
#include <openldap.h>
#include <sasl/sasl.h>

#include "config/cfg.h"
#include "ldap/dir.h"
#include "ldap/internal.h"
#include "tls/tls.h"

#define PAGE_SIZE 500
#define GROUP_SEARCHES_MAX 128	/* bounds the OpenLDAP membership walk */
#define GROUP_BATCH 64		/* DNs per membership search */
#define USER_CONNS_MAX 32	/* user-bind connections open at once */
#define READY_GRACE_MS 10000u	/* a service connection lost younger marks its server down */
#define GROUPS_MAX 4096
#define BACKOFF_MIN_MS 500u
#define BACKOFF_MAX_MS 30000u

/* AD userAccountControl and msDS-User-Account-Control-Computed bits. */
#define UF_ACCOUNTDISABLE 0x2u
#define UF_LOCKOUT 0x10u

struct dir;
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
};

enum conn_state {
	CONN_RESOLVING,
	CONN_CONNECTING,
	CONN_STARTTLS_SENT,
	CONN_TLS_HANDSHAKE,
	CONN_BINDING,
	CONN_READY,
	CONN_CLOSING,
	CONN_DEAD,
};

static const char *const conn_state_name[] = {
	"resolving", "connecting", "starttls", "tls-handshake", "binding", "ready",
	"closing", "dead",
};

/* A service connection binds as the service account and joins the pool; a user
 * connection is opened for one request, binds as that user and is closed. */
enum conn_kind { CONN_SERVICE, CONN_USER };

struct conn {
	struct dir *d;
	struct conn *next;
	enum conn_state state;	/* written only by conn_set_state() */
	enum conn_kind kind;
	size_t srv;
	bool retiring;		/* on a less preferred server: close when idle */
	struct req *owner;	/* user connections: the request served */
	struct addrinfo *ai, *ai_cur;
	uv_getaddrinfo_t gai;
	bool gai_busy;
	int fd;
	uv_poll_t poll;
	bool poll_open;
	int poll_events;
	uv_timer_t timer;	/* setup deadline */
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
};

enum req_kind { REQ_AUTH, REQ_LOOKUP, REQ_CHPW, REQ_USERS, REQ_GROUPS, REQ_READ };

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
	bool finished, queued, readonly;
	bool want_uconn;	/* waiting for a user-connection slot */
	unsigned retries;
	struct conn *conn;	/* connection of the operation in flight */
	int msgid;
	send_fn send;		/* (re)sends the current step on req->conn */
	msg_fn on_msg;
	struct conn *uconn;	/* the user's own connection */
	size_t srv;		/* server the user was found on */
	uv_timer_t timer;

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
	 * bind is a decoy for an unknown user, waiting for the lockout policy. */
	char *guard_key;
	int bind_err;
	bool decoy, guard_wait, guard_park;
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

static void conn_close(struct conn *c);
static void conn_fail(struct conn *c, int err, const char *why);
static void conn_read(struct conn *c);
static void pool_fill(struct dir *d);
static void req_finish(struct req *r, int err);
static void req_conn_lost(struct req *r, struct conn *c);
static void dir_maybe_free(struct dir *d);
static void kick(struct dir *d);
static void user_conn_ready(struct req *r);
static void user_conn_next(struct dir *d);
static void user_conn_done(struct req *r, bool idle);
static void auth_found(struct req *r);

/* ---- error mapping ------------------------------------------------------- */

enum err_src {
	SRC_LDAP,	/* result of an operation other than the user's bind */
	SRC_USER_BIND,	/* result of binding as the user: AD diagnostics apply */
	SRC_PPOLICY,	/* password policy response control */
	SRC_SASL,
	SRC_TLS,
	SRC_PASSWD,	/* result of a password change */
};

/* The one place where library codes become dir_err values. */
static int map_err(enum err_src src, int code, const char *diag)
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

/* ---- small helpers ------------------------------------------------------- */

static void wipe_free(char *p, size_t len)
{
	if (p) {
		explicit_bzero(p, len);
		free(p);
	}
}

static int strv_add(struct strv *s, const char *v)
{
	char *dup;

	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		char **nv = realloc(s->v, cap * sizeof(*nv));

		if (!nv)
			return DIR_E_INTERNAL;
		s->v = nv;
		s->cap = cap;
	}
	dup = strdup(v);
	if (!dup)
		return DIR_E_INTERNAL;
	s->v[s->n++] = dup;
	return 0;
}

static bool strv_has(const struct strv *s, const char *v)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcasecmp(s->v[i], v) == 0)
			return true;
	return false;
}

static void strv_free(struct strv *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* The cn of the first RDN of DN, parsed as a DN (never split by hand). */
static char *dn_cn(const char *dn)
{
	LDAPDN ldn = NULL;
	char *out = NULL;

	if (ldap_str2dn(dn, &ldn, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS || !ldn || !ldn[0])
		goto out;
	for (int i = 0; ldn[0][i]; i++) {
		LDAPAVA *ava = ldn[0][i];

		if (ava->la_attr.bv_len == 2 && strncasecmp(ava->la_attr.bv_val, "cn", 2) == 0 &&
		    !(ava->la_flags & LDAP_AVA_BINARY) &&
		    dir_utf8_valid(ava->la_value.bv_val, ava->la_value.bv_len)) {
			out = strndup(ava->la_value.bv_val, ava->la_value.bv_len);
			break;
		}
	}
out:
	if (ldn)
		ldap_dnfree(ldn);
	return out;
}

/* Replaces every {username} in the configured filter with VALUE (escaped). */
static char *filter_subst(const char *tmpl, const char *value)
{
	static const char key[] = "{username}";
	size_t klen = sizeof(key) - 1, vlen = strlen(value), n = 0, len;
	const char *p;
	char *out, *o;

	for (p = strstr(tmpl, key); p; p = strstr(p + klen, key))
		n++;
	len = strlen(tmpl) + n * vlen + 1;
	out = malloc(len);
	if (!out)
		return NULL;
	for (o = out; (p = strstr(tmpl, key)); tmpl = p + klen) {
		memcpy(o, tmpl, (size_t)(p - tmpl));
		o += p - tmpl;
		memcpy(o, value, vlen);
		o += vlen;
	}
	strcpy(o, tmpl);
	return out;
}

/* The attribute compared with {username} in user_filter, e.g. sAMAccountName. */
static char *username_attr(const struct cfg *cfg)
{
	const char *f = cfg->ldap.user_filter, *p = f ? strstr(f, "={username}") : NULL;
	const char *s;

	if (p) {
		for (s = p; s > f && s[-1] != '('; s--)
			;
		if (s < p)
			return strndup(s, (size_t)(p - s));
	}
	return strdup(cfg->ldap.type == CFG_DIR_AD ? "sAMAccountName" : "uid");
}

static void entry_free(struct entry *e)
{
	free(e->dn);
	free(e->uname);
	free(e->display);
	free(e->cn);
	free(e->mail);
	for (size_t i = 0; i < e->n_memberof; i++)
		free(e->memberof[i]);
	free(e->memberof);
	for (size_t i = 0; i < e->n_attrs; i++) {
		for (size_t j = 0; j < e->attrs[i].n_values; j++)
			free(e->attrs[i].values[j]);
		free(e->attrs[i].values);
		free(e->attrs[i].name);
	}
	free(e->attrs);
	memset(e, 0, sizeof(*e));
}

static char *bv_str(const struct berval *bv)
{
	if (!bv || !bv->bv_val || !dir_utf8_valid(bv->bv_val, bv->bv_len))
		return NULL;
	return strndup(bv->bv_val, bv->bv_len);
}

static bool is_extra_attr(const struct cfg *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->ldap.n_attributes; i++)
		if (strcasecmp(cfg->ldap.attributes[i], name) == 0)
			return true;
	return false;
}

/* Copies what a profile needs out of a search entry.  Values that are not
 * UTF-8 text (binary attributes) are left out rather than mangled. */
static int entry_parse(struct dir *d, LDAP *ld, LDAPMessage *m, struct entry *e)
{
	BerElement *ber = NULL;
	char *a, *dn;
	int rc = 0;

	dn = ldap_get_dn(ld, m);
	if (!dn)
		return DIR_E_INTERNAL;
	e->dn = strdup(dn);
	ldap_memfree(dn);
	if (!e->dn)
		return DIR_E_INTERNAL;
	for (a = ldap_first_attribute(ld, m, &ber); a && rc == 0;
	     ldap_memfree(a), a = ldap_next_attribute(ld, m, ber)) {
		struct berval **vals = ldap_get_values_len(ld, m, a);
		int n = vals ? ldap_count_values_len(vals) : 0;

		if (n > 0) {
			if (strcasecmp(a, d->uattr) == 0 && !e->uname)
				e->uname = bv_str(vals[0]);
			if (strcasecmp(a, "displayName") == 0 && !e->display)
				e->display = bv_str(vals[0]);
			if (strcasecmp(a, "cn") == 0 && !e->cn)
				e->cn = bv_str(vals[0]);
			if (strcasecmp(a, "mail") == 0 && !e->mail)
				e->mail = bv_str(vals[0]);
			if (strcasecmp(a, "userAccountControl") == 0) {
				e->has_uac = true;
				e->uac = strtoul(vals[0]->bv_val, NULL, 10);
			}
			if (strcasecmp(a, "msDS-User-Account-Control-Computed") == 0) {
				e->has_uacc = true;
				e->uacc = strtoul(vals[0]->bv_val, NULL, 10);
			}
			if (strcasecmp(a, "accountExpires") == 0)
				e->expires = strtoll(vals[0]->bv_val, NULL, 10);
			if (strcasecmp(a, "pwdAccountLockedTime") == 0)
				e->pwd_locked = true;
			if (strcasecmp(a, "memberOf") == 0) {
				e->memberof = calloc((size_t)n, sizeof(char *));
				if (!e->memberof)
					rc = DIR_E_INTERNAL;
				for (int i = 0; rc == 0 && i < n; i++) {
					char *s = bv_str(vals[i]);

					if (s)
						e->memberof[e->n_memberof++] = s;
				}
			}
			if (rc == 0 && is_extra_attr(d->cfg, a)) {
				struct dir_attr *na = realloc(e->attrs, (e->n_attrs + 1) * sizeof(*na));

				if (!na) {
					rc = DIR_E_INTERNAL;
				} else {
					struct dir_attr *at = &na[e->n_attrs];

					e->attrs = na;
					memset(at, 0, sizeof(*at));
					at->name = strdup(a);
					at->values = calloc((size_t)n, sizeof(char *));
					e->n_attrs++;
					if (!at->name || !at->values)
						rc = DIR_E_INTERNAL;
					for (int i = 0; rc == 0 && i < n; i++) {
						char *s = bv_str(vals[i]);

						if (s)
							at->values[at->n_values++] = s;
					}
				}
			}
		}
		ldap_value_free_len(vals);
	}
	if (a)
		ldap_memfree(a);
	ber_free(ber, 0);
	return rc;
}

/* AD accountExpires: 100 ns ticks since 1601; 0 and INT64_MAX mean never. */
static bool ad_expired(long long v)
{
	const long long epoch_diff = 11644473600LL;

	if (v <= 0 || v == INT64_MAX)
		return false;
	return v / 10000000LL - epoch_diff < (long long)time(NULL);
}

/* The account state found by the search (after the password was proven). */
static int entry_state(const struct dir *d, const struct entry *e)
{
	if (d->cfg->ldap.type == CFG_DIR_AD) {
		if (e->has_uac && (e->uac & UF_ACCOUNTDISABLE))
			return DIR_E_ACCOUNT_DISABLED;
		if (ad_expired(e->expires))
			return DIR_E_ACCOUNT_EXPIRED;
		if (e->has_uacc && (e->uacc & UF_LOCKOUT))
			return DIR_E_ACCOUNT_LOCKED;
		return 0;
	}
	return e->pwd_locked ? DIR_E_ACCOUNT_LOCKED : 0;
}

/* ---- the TLS layer under libldap ---------------------------------------- */

static int sb_setup(Sockbuf_IO_Desc *sbiod, void *arg)
{
	sbiod->sbiod_pvt = arg;
	return 0;
}

static int sb_remove(Sockbuf_IO_Desc *sbiod)
{
	sbiod->sbiod_pvt = NULL;
	return 0;
}

static int sb_ctrl(Sockbuf_IO_Desc *sbiod, int opt, void *arg)
{
	struct conn *c = sbiod->sbiod_pvt;

	if (opt == LBER_SB_OPT_DATA_READY)
		return c && c->tls && tls_pending(c->tls) > 0;
	return LBER_SBIOD_CTRL_NEXT(sbiod, opt, arg);
}

static ber_slen_t sb_read(Sockbuf_IO_Desc *sbiod, void *buf, ber_len_t len)
{
	struct conn *c = sbiod->sbiod_pvt;
	ssize_t n;

	if (!c || !c->tls) {
		errno = EIO;
		return -1;
	}
	n = tls_recv(c->tls, buf, len);
	if (n >= 0)
		return n;
	if (n == TLS_E_AGAIN) {
		errno = EWOULDBLOCK;
		return -1;
	}
	if (n == TLS_E_CLOSED)
		return 0;
	errno = ECONNRESET;
	return -1;
}

static ber_slen_t sb_write(Sockbuf_IO_Desc *sbiod, void *buf, ber_len_t len)
{
	struct conn *c = sbiod->sbiod_pvt;
	ssize_t n;

	if (!c || !c->tls) {
		errno = EIO;
		return -1;
	}
	n = tls_send(c->tls, buf, len);
	if (n >= 0)
		return n;
	if (n == TLS_E_AGAIN) {
		/* libldap keeps the request and flushes it from ldap_result()
		 * once the socket is writable, so watch for that. */
		c->write_blocked = true;
		errno = EWOULDBLOCK;
		return -1;
	}
	errno = EPIPE;
	return -1;
}

static int sb_close(Sockbuf_IO_Desc *sbiod)
{
	(void)sbiod;
	return 0;
}

static Sockbuf_IO sb_tls = {
	sb_setup, sb_remove, sb_ctrl, sb_read, sb_write, sb_close,
};

/* ---- connections --------------------------------------------------------- */

/* The only writer of c->state. */
static void conn_set_state(struct conn *c, enum conn_state s)
{
	struct server *sv = &c->d->srv[c->srv];

	if (c->state == s)
		return;
	log_msg(LOGL_DEBUG, "ldap: %s %s connection %s -> %s", sv->name,
		c->kind == CONN_SERVICE ? "service" : "user", conn_state_name[c->state],
		conn_state_name[s]);
	if (s == CONN_READY && c->kind == CONN_SERVICE)
		log_msg(LOGL_INFO, "ldap: connected to %s (%s)", sv->name,
			c->tls ? tls_version(c->tls) : "?");
	c->state = s;
}

static void server_up(struct server *sv)
{
	if (sv->down || sv->fails)
		log_msg(LOGL_INFO, "ldap: %s is up again", sv->name);
	sv->down = false;
	sv->fails = 0;
	uv_timer_stop(&sv->retry);
}

static void on_retry(uv_timer_t *t)
{
	struct server *sv = t->data;

	sv->down = false;
	log_msg(LOGL_DEBUG, "ldap: retrying %s", sv->name);
	pool_fill(sv->d);
}

/* xorshift64: jitter only needs to differ between agents, not be secret. */
static uint64_t jitter(struct dir *d)
{
	uint64_t x = d->rng;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	d->rng = x;
	return x;
}

/* Capped exponential backoff with jitter, so a farm of agents does not hammer
 * a recovering server in lockstep. */
static void server_down(struct server *sv, const char *why)
{
	unsigned shift = sv->fails < 16 ? sv->fails : 16;
	uint64_t delay = (uint64_t)BACKOFF_MIN_MS << shift;

	if (delay > BACKOFF_MAX_MS)
		delay = BACKOFF_MAX_MS;
	delay = delay / 2 + jitter(sv->d) % (delay / 2 + 1);
	sv->fails++;
	if (!sv->down)
		log_msg(LOGL_INFO, "ldap: %s is down (%s), retry in %llu ms", sv->name, why,
			(unsigned long long)delay);
	sv->down = true;
	if (!sv->d->closing)
		uv_timer_start(&sv->retry, on_retry, delay, 0);
}

static void conn_release(struct conn *c)
{
	struct dir *d = c->d;
	struct conn **pp;

	if (c->refs > 0 || c->state < CONN_CLOSING)
		return;
	for (pp = &d->conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	conn_set_state(c, CONN_DEAD);
	if (c->ai)
		uv_freeaddrinfo(c->ai);
	if (c->kind == CONN_USER)
		d->n_user_conns--;
	free(c);
	d->handles--;
	if (!d->closing) {
		pool_fill(d);
		user_conn_next(d);
	}
	dir_maybe_free(d);
}

static void conn_teardown_io(struct conn *c)
{
	/* ldap_unbind_ext() sends an unbind through the TLS layer and closes the
	 * fd, so it runs only once the poll handle no longer watches the fd. */
	if (c->ld) {
		ldap_unbind_ext(c->ld, NULL, NULL);
		c->ld = NULL;
		c->fd = -1;
	}
	if (c->tls) {
		tls_free(c->tls);
		c->tls = NULL;
	}
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
}

static void connect_next(struct conn *c);

static void on_poll_closed(uv_handle_t *h)
{
	struct conn *c = h->data;

	c->poll_open = false;
	c->refs--;
	/* A refused address closes its poll handle and moves to the next one. */
	if (c->state == CONN_CONNECTING) {
		close(c->fd);
		c->fd = -1;
		c->ai_cur = c->ai_cur ? c->ai_cur->ai_next : NULL;
		connect_next(c);
		return;
	}
	conn_teardown_io(c);
	conn_release(c);
}

static void on_timer_closed(uv_handle_t *h)
{
	struct conn *c = h->data;

	c->timer_open = false;
	c->refs--;
	conn_release(c);
}

static void conn_close(struct conn *c)
{
	if (c->state >= CONN_CLOSING)
		return;
	conn_set_state(c, CONN_CLOSING);
	if (c->gai_busy)
		uv_cancel((uv_req_t *)&c->gai);
	if (c->timer_open && !uv_is_closing((uv_handle_t *)&c->timer))
		uv_close((uv_handle_t *)&c->timer, on_timer_closed);
	if (c->poll_open) {
		if (!uv_is_closing((uv_handle_t *)&c->poll)) {
			uv_poll_stop(&c->poll);
			uv_close((uv_handle_t *)&c->poll, on_poll_closed);
		}
	} else {
		conn_teardown_io(c);
	}
	conn_release(c);
}

/* Fails every request using C (retrying read-only searches once elsewhere),
 * marks its server down and closes it.  Never called twice for one conn. */
static void conn_fail(struct conn *c, int err, const char *why)
{
	struct dir *d = c->d;
	struct server *sv = &d->srv[c->srv];
	struct req *r, *next;

	if (c->state >= CONN_CLOSING)
		return;
	if (!d->closing) {
		log_msg(LOGL_INFO, "ldap: %s %s connection lost in state %s: %s", sv->name,
			c->kind == CONN_SERVICE ? "service" : "user", conn_state_name[c->state],
			why);
		/* Server health is the pool's to judge: a user connection that
		 * loses a race under load says little about the server.  Nor
		 * does a long-lived service connection closed by the server
		 * (AD drops idle ones after MaxConnIdleTime): its replacement
		 * will tell.  A young one counts, so a server that drops every
		 * connection right after the bind gets backoff, not a hot loop. */
		if (err == DIR_E_UNAVAILABLE && c->kind == CONN_SERVICE &&
		    (c->state < CONN_READY || uv_now(d->loop) - c->ready_at < READY_GRACE_MS))
			server_down(sv, why);
	}
	conn_close(c);
	for (r = d->reqs; r; r = next) {
		next = r->next;
		if (r->conn == c || r->uconn == c)
			req_conn_lost(r, c);
	}
}

static void on_conn_timeout(uv_timer_t *t)
{
	struct conn *c = t->data;

	if (c->state < CONN_READY)
		conn_fail(c, DIR_E_UNAVAILABLE, "timed out");
}

static void on_poll(uv_poll_t *h, int status, int events);

static void poll_set(struct conn *c, int events)
{
	c->poll_events = events;
	uv_poll_start(&c->poll, events, on_poll);
}

static void poll_want(struct conn *c, int events)
{
	if (c->poll_events == events || !c->poll_open)
		return;
	poll_set(c, events);
}

static void connect_next(struct conn *c)
{
	struct dir *d = c->d;

	for (; c->ai_cur; c->ai_cur = c->ai_cur->ai_next) {
		struct addrinfo *ai = c->ai_cur;
		int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

		if (fd < 0)
			continue;
		/* Without it Nagle's algorithm and the server's delayed ACK meet in
		 * the TLS handshake and a new connection stalls for about 40 ms. */
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
			close(fd);
			continue;
		}
		if (uv_poll_init_socket(d->loop, &c->poll, fd) < 0) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->poll.data = c;
		c->poll_open = true;
		c->refs++;
		poll_set(c, UV_WRITABLE);
		conn_set_state(c, CONN_CONNECTING);
		return;
	}
	conn_fail(c, DIR_E_UNAVAILABLE, "connection refused");
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *res)
{
	struct conn *c = g->data;

	c->gai_busy = false;
	c->refs--;
	c->ai = res;
	c->ai_cur = res;
	if (c->state >= CONN_CLOSING) {
		conn_release(c);
		return;
	}
	if (status < 0) {
		conn_fail(c, DIR_E_UNAVAILABLE, uv_strerror(status));
		return;
	}
	connect_next(c);
}

static int ldap_setup(struct conn *c)
{
	struct server *sv = &c->d->srv[c->srv];
	int v3 = LDAP_VERSION3;

	if (ldap_init_fd(c->fd, LDAP_PROTO_TCP, sv->url, &c->ld) != LDAP_SUCCESS)
		return -1;
	if (ldap_set_option(c->ld, LDAP_OPT_PROTOCOL_VERSION, &v3) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(c->ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(c->ld, LDAP_OPT_KEEPCONN, LDAP_OPT_ON) != LDAP_OPT_SUCCESS ||
	    /* Canonicalising the host would be a blocking reverse lookup. */
	    ldap_set_option(c->ld, LDAP_OPT_X_SASL_NOCANON, LDAP_OPT_ON) != LDAP_OPT_SUCCESS)
		return -1;
	return 0;
}

static int tls_layer_install(struct conn *c)
{
	Sockbuf *sb = NULL;

	if (ldap_get_option(c->ld, LDAP_OPT_SOCKBUF, &sb) != LDAP_OPT_SUCCESS || !sb)
		return -1;
	return ber_sockbuf_add_io(sb, &sb_tls, LBER_SBIOD_LEVEL_TRANSPORT, c) == 0 ? 0 : -1;
}

static int sasl_interact(LDAP *ld, unsigned flags, void *defaults, void *in)
{
	struct conn *c = defaults;
	const struct cfg *cfg = c->d->cfg;
	sasl_interact_t *it;

	(void)ld;
	(void)flags;
	for (it = in; it->id != SASL_CB_LIST_END; it++) {
		const char *v = it->defresult;
		unsigned len;

		switch (it->id) {
		case SASL_CB_AUTHNAME: v = cfg->ldap.bind_dn; break;
		case SASL_CB_USER: v = cfg->ldap.sasl_authzid ? cfg->ldap.sasl_authzid : ""; break;
		case SASL_CB_PASS: v = c->d->bind_pw; break;
		default: break;
		}
		len = v ? (unsigned)strlen(v) : 0;
		it->result = v ? v : "";
		it->len = len;
	}
	return LDAP_SUCCESS;
}

/* Sends (or continues, given the server's last answer) the service bind. */
static int service_bind(struct conn *c, LDAPMessage *msg)
{
	const struct cfg *cfg = c->d->cfg;
	const char *mech = cfg->ldap.sasl_mech;
	int rc;

	/* Never a password or a bind over a link that is not verified TLS. */
	if (!c->tls || !c->verified)
		return DIR_E_INTERNAL;
	if (!mech) {
		struct berval cred = { c->d->bind_pw_len, c->d->bind_pw };

		if (!cfg->ldap.bind_dn || !c->d->bind_pw || c->d->bind_pw_len == 0)
			return DIR_E_INTERNAL;
		rc = ldap_sasl_bind(c->ld, cfg->ldap.bind_dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL,
				    &c->msgid);
	} else if (strcasecmp(mech, "EXTERNAL") == 0) {
		/* Always an initial response (maybe empty): without one the server
		 * answers with an empty challenge and waits. */
		struct berval authz = { 0, (char *)(uintptr_t)"" };

		if (cfg->ldap.sasl_authzid) {
			authz.bv_val = cfg->ldap.sasl_authzid;
			authz.bv_len = strlen(authz.bv_val);
		}
		rc = ldap_sasl_bind(c->ld, NULL, "EXTERNAL", &authz, NULL, NULL, &c->msgid);
	} else {
		ber_len_t ssf = tls_strength(c->tls);

		if (!msg) {
			ldap_set_option(c->ld, LDAP_OPT_X_SASL_SSF_EXTERNAL, &ssf);
			/* TLS already protects the link: no second SASL layer. */
			ldap_set_option(c->ld, LDAP_OPT_X_SASL_SECPROPS, "maxssf=0");
		}
		rc = ldap_sasl_interactive_bind(c->ld, NULL, mech, NULL, NULL, LDAP_SASL_QUIET,
						sasl_interact, c, msg, &c->rmech, &c->msgid);
		if (rc == LDAP_SASL_BIND_IN_PROGRESS)
			return 1;
		return rc == LDAP_SUCCESS && msg ? 0 : map_err(SRC_LDAP, rc, NULL);
	}
	return rc == LDAP_SUCCESS ? 1 : map_err(SRC_LDAP, rc, NULL);
}

static void conn_tls_done(struct conn *c)
{
	if (!c->ld && ldap_setup(c) < 0) {
		conn_fail(c, DIR_E_INTERNAL, "ldap_init_fd failed");
		return;
	}
	if (tls_layer_install(c) < 0) {
		conn_fail(c, DIR_E_INTERNAL, "cannot install the TLS layer");
		return;
	}
	poll_want(c, UV_READABLE);
	if (c->kind == CONN_USER) {
		conn_set_state(c, CONN_READY);
		if (c->timer_open)
			uv_timer_stop(&c->timer);
		if (c->owner)
			user_conn_ready(c->owner);
		return;
	}
	conn_set_state(c, CONN_BINDING);
	if (service_bind(c, NULL) < 0)
		conn_fail(c, DIR_E_UNAVAILABLE, "cannot send the service bind");
}

static void conn_handshake(struct conn *c)
{
	int rc = tls_handshake(c->tls);

	if (rc == TLS_E_AGAIN) {
		poll_want(c, tls_want_write(c->tls) ? UV_WRITABLE : UV_READABLE);
		return;
	}
	if (rc < 0) {
		char why[256];

		snprintf(why, sizeof(why), "TLS: %s", tls_last_error(c->tls));
		conn_fail(c, map_err(SRC_TLS, rc, NULL), why);
		return;
	}
	c->verified = true;
	conn_tls_done(c);
}

static void conn_start_tls(struct conn *c)
{
	const struct cfg *cfg = c->d->cfg;
	struct tls_client_opts o = {
		.ca_file = cfg->ldap.ca_file,
		.hostname = c->d->srv[c->srv].host,
	};

	/* Only service connections present the client certificate (EXTERNAL). */
	if (c->kind == CONN_SERVICE) {
		o.cert_file = cfg->ldap.cert_file;
		o.key_file = cfg->ldap.key_file;
	}
	if (tls_client_new(&o, &c->tls) < 0 || tls_set_fd(c->tls, c->fd) < 0) {
		conn_fail(c, DIR_E_UNAVAILABLE, "cannot create the TLS session");
		return;
	}
	conn_set_state(c, CONN_TLS_HANDSHAKE);
	conn_handshake(c);
}

static void conn_connected(struct conn *c)
{
	struct server *sv = &c->d->srv[c->srv];
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		/* Try the host's next address; on_poll_closed() continues. */
		log_msg(LOGL_DEBUG, "ldap: %s: %s", sv->name, strerror(err));
		uv_poll_stop(&c->poll);
		uv_close((uv_handle_t *)&c->poll, on_poll_closed);
		return;
	}
	if (sv->ldaps) {
		conn_start_tls(c);
		return;
	}
	/* A plain ldap:// URL is only ever used to upgrade with StartTLS; the
	 * configuration refuses anything else and so does this. */
	if (!c->d->cfg->ldap.starttls) {
		conn_fail(c, DIR_E_INTERNAL, "plain ldap:// without starttls refused");
		return;
	}
	if (ldap_setup(c) < 0 ||
	    ldap_extended_operation(c->ld, LDAP_EXOP_START_TLS, NULL, NULL, NULL, &c->msgid) !=
		    LDAP_SUCCESS) {
		conn_fail(c, DIR_E_UNAVAILABLE, "cannot send StartTLS");
		return;
	}
	poll_set(c, UV_READABLE);
	conn_set_state(c, CONN_STARTTLS_SENT);
}

static void conn_setup_msg(struct conn *c, LDAPMessage *msg)
{
	int rc = LDAP_OTHER, perr;
	char *diag = NULL;

	if (ldap_msgid(msg) != c->msgid) {
		ldap_msgfree(msg);
		return;
	}
	if (c->state == CONN_STARTTLS_SENT) {
		perr = ldap_parse_result(c->ld, msg, &rc, NULL, &diag, NULL, NULL, 1);
		if (perr != LDAP_SUCCESS || rc != LDAP_SUCCESS) {
			log_msg(LOGL_WARN, "ldap: %s refused StartTLS: %s",
				c->d->srv[c->srv].name, diag ? diag : ldap_err2string(rc));
			ldap_memfree(diag);
			conn_fail(c, DIR_E_UNAVAILABLE, "StartTLS refused");
			return;
		}
		ldap_memfree(diag);
		conn_start_tls(c);
		return;
	}
	/* CONN_BINDING */
	if (c->d->cfg->ldap.sasl_mech && strcasecmp(c->d->cfg->ldap.sasl_mech, "EXTERNAL") != 0) {
		/* libldap parses the message; freeing it stays ours. */
		int r = service_bind(c, msg);

		ldap_msgfree(msg);
		if (r == 1)
			return;
		rc = r == 0 ? LDAP_SUCCESS : LDAP_INVALID_CREDENTIALS;
	} else {
		perr = ldap_parse_result(c->ld, msg, &rc, NULL, &diag, NULL, NULL, 1);
		if (perr != LDAP_SUCCESS)
			rc = perr;
	}
	if (rc != LDAP_SUCCESS) {
		char why[300];

		snprintf(why, sizeof(why), "service bind failed: %s%s%.200s", ldap_err2string(rc),
			 diag ? ": " : "", diag ? diag : "");
		ldap_memfree(diag);
		conn_fail(c, DIR_E_UNAVAILABLE, why);
		return;
	}
	ldap_memfree(diag);
	if (c->timer_open)
		uv_timer_stop(&c->timer);
	conn_set_state(c, CONN_READY);
	c->ready_at = uv_now(c->d->loop);
	server_up(&c->d->srv[c->srv]);
	c->d->was_up = true;
	/* Back on a preferred server: retire connections to worse ones. */
	for (struct conn *o = c->d->conns; o; o = o->next) {
		if (o->kind == CONN_SERVICE && o->srv > c->srv && o->state < CONN_CLOSING &&
		    !o->retiring) {
			o->retiring = true;
			if (o->n_ops == 0)
				conn_close(o);
		}
	}
	kick(c->d);
}

/* Once libldap speaks on the socket: always readable, writable while a
 * request waits to be flushed. */
static void conn_rearm(struct conn *c)
{
	if (c->state == CONN_STARTTLS_SENT || c->state == CONN_BINDING || c->state == CONN_READY)
		poll_want(c, UV_READABLE | (c->write_blocked ? UV_WRITABLE : 0));
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct conn *c = h->data;

	if (c->state >= CONN_CLOSING)
		return;
	if (status < 0 && c->state != CONN_CONNECTING) {
		/* libuv reports POLLERR (a reset, mostly) as UV_EBADF. */
		conn_fail(c, DIR_E_UNAVAILABLE,
			  status == UV_EBADF ? "connection reset" : uv_strerror(status));
		return;
	}
	if (events & UV_WRITABLE)
		c->write_blocked = false;
	switch (c->state) {
	case CONN_CONNECTING:
		conn_connected(c);
		break;
	case CONN_TLS_HANDSHAKE:
		conn_handshake(c);
		break;
	case CONN_STARTTLS_SENT:
	case CONN_BINDING:
	case CONN_READY:
		conn_read(c);
		conn_rearm(c);
		break;
	default:
		break;
	}
}

static struct req *req_by_msgid(struct conn *c, int msgid)
{
	for (struct req *r = c->d->reqs; r; r = r->next)
		if (r->conn == c && r->msgid == msgid)
			return r;
	return NULL;
}

/* Reads every complete message libldap can give without waiting and hands
 * each to whoever waits for its message id. */
static void conn_read(struct conn *c)
{
	struct timeval zero = { 0, 0 };
	size_t last = SIZE_MAX;

	while (c->state == CONN_STARTTLS_SENT || c->state == CONN_BINDING ||
	       c->state == CONN_READY) {
		LDAPMessage *msg = NULL;
		int rc = ldap_result(c->ld, LDAP_RES_ANY, LDAP_MSG_ONE, &zero, &msg);
		struct req *r;

		if (rc == 0) {
			/* Nothing complete.  Bytes TLS already decrypted do not make
			 * the fd readable again, so keep going while libldap consumes
			 * them, and stop once it makes no progress. */
			size_t pend = c->tls ? tls_pending(c->tls) : 0;

			if (pend == 0 || pend == last)
				break;
			last = pend;
			continue;
		}
		if (rc < 0) {
			int err = LDAP_SERVER_DOWN;

			ldap_get_option(c->ld, LDAP_OPT_RESULT_CODE, &err);
			conn_fail(c, DIR_E_UNAVAILABLE, ldap_err2string(err));
			return;
		}
		if (ldap_msgid(msg) == 0) {
			/* Unsolicited notification: the server is dropping us. */
			ldap_msgfree(msg);
			conn_fail(c, DIR_E_UNAVAILABLE, "notice of disconnection");
			return;
		}
		if (c->state != CONN_READY) {
			conn_setup_msg(c, msg);
			continue;
		}
		r = req_by_msgid(c, ldap_msgid(msg));
		if (!r) {
			ldap_msgfree(msg);
			continue;
		}
		r->on_msg(r, msg);
	}
}

static struct conn *conn_new(struct dir *d, size_t srv, enum conn_kind kind)
{
	struct server *sv = &d->srv[srv];
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct conn *c = calloc(1, sizeof(*c));
	int rc;

	if (!c)
		return NULL;
	c->d = d;
	c->srv = srv;
	c->kind = kind;
	c->fd = -1;
	c->state = CONN_RESOLVING;
	c->next = d->conns;
	d->conns = c;
	d->handles++;
	if (kind == CONN_USER)
		d->n_user_conns++;
	uv_timer_init(d->loop, &c->timer);
	c->timer.data = c;
	c->timer_open = true;
	c->refs++;
	/* Half the request timeout, so a request can outlive one dead server
	 * and still be answered by the next. */
	uv_timer_start(&c->timer, on_conn_timeout,
		       kind == CONN_SERVICE ? d->cfg->ldap.timeout_ms / 2 + 1 : d->cfg->ldap.timeout_ms,
		       0);
	c->gai.data = c;
	rc = uv_getaddrinfo(d->loop, &c->gai, on_resolved, sv->host, sv->port, &hints);
	if (rc < 0) {
		log_msg(LOGL_WARN, "ldap: %s: %s", sv->name, uv_strerror(rc));
		conn_close(c);
		return NULL;
	}
	c->gai_busy = true;
	c->refs++;
	return c;
}

/* Keeps pool_size service connections on the most preferred server that is
 * not down, and probes a preferred server while the pool sits on a worse one. */
static void pool_fill(struct dir *d)
{
	size_t best = d->n_srv, have = 0, worse = 0, on_best = 0;

	if (d->closing)
		return;
	for (size_t i = 0; i < d->n_srv; i++) {
		if (!d->srv[i].down) {
			best = i;
			break;
		}
	}
	if (best == d->n_srv)
		return;
	for (struct conn *c = d->conns; c; c = c->next) {
		if (c->kind != CONN_SERVICE || c->state >= CONN_CLOSING || c->retiring)
			continue;
		have++;
		if (c->srv == best)
			on_best++;
		else if (c->srv > best)
			worse++;
	}
	if (worse && !on_best) {
		log_msg(LOGL_INFO, "ldap: trying preferred server %s", d->srv[best].name);
		conn_new(d, best, CONN_SERVICE);
		return;
	}
	for (; have < d->cfg->ldap.pool_size; have++) {
		if (d->was_up && best > 0 && on_best == 0)
			log_msg(LOGL_INFO, "ldap: failing over to %s", d->srv[best].name);
		if (!conn_new(d, best, CONN_SERVICE))
			break;
		on_best++;
	}
}

/* ---- requests ------------------------------------------------------------ */

static void on_req_closed(uv_handle_t *h)
{
	struct req *r = h->data;
	struct dir *d = r->d;

	entry_free(&r->ent);
	strv_free(&r->groups);
	strv_free(&r->seen);
	strv_free(&r->frontier);
	for (size_t i = 0; i < r->n_users; i++) {
		struct dir_profile *p = &r->users[i];

		free(p->username);
		free(p->dn);
		free(p->display_name);
		free(p->email);
		for (size_t j = 0; j < p->n_groups; j++)
			free(p->groups[j]);
		free(p->groups);
		dir_read_entry_free(p);
	}
	free(r->users);
	free(r->guard_key);
	free(r->base);
	if (r->cookie.bv_val)
		ber_memfree(r->cookie.bv_val);
	free(r->username);
	free(r->filter);
	wipe_free(r->pw, r->pw_len);
	wipe_free(r->newpw, r->newpw_len);
	free(r);
	d->handles--;
	dir_maybe_free(d);
}

static void op_done(struct req *r)
{
	if (r->conn) {
		struct conn *c = r->conn;

		r->conn = NULL;
		if (c->kind == CONN_SERVICE && c->n_ops > 0 && --c->n_ops == 0 && c->retiring)
			conn_close(c);
	}
	r->msgid = 0;
}

static void req_finish(struct req *r, int err)
{
	/* Empty lists are passed as an empty array, never as NULL. */
	static char *no_names[1];
	static struct dir_profile empty_users[1];
	struct dir *d = r->d;
	char **names = r->groups.v ? r->groups.v : no_names;

	bool uconn_idle;

	if (r->finished)
		return;
	r->finished = true;
	uconn_idle = !(r->uconn && r->conn == r->uconn && r->msgid > 0);
	if (r->conn && r->msgid > 0 && r->conn->state == CONN_READY)
		ldap_abandon_ext(r->conn->ld, r->msgid, NULL, NULL);
	op_done(r);
	user_conn_done(r, uconn_idle);
	if (r->prev)
		r->prev->next = r->next;
	else
		d->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->next = r->prev = NULL;
	if (r->kind == REQ_AUTH) {
		err = dir_guard_end(d->guard, r->guard_key, r->username, r->bind_err, err);
		if (r->guard_key)
			kick(d);
	}

	switch (r->kind) {
	case REQ_AUTH:
	case REQ_LOOKUP:
		if (err) {
			r->profile_cb(r->arg, err, NULL);
		} else {
			struct entry *e = &r->ent;
			struct dir_profile p = {
				.username = e->uname ? e->uname : r->username,
				.dn = e->dn,
				.display_name = e->display ? e->display : e->cn,
				.email = e->mail,
				.groups = names,
				.n_groups = r->groups.n,
				.attrs = e->attrs,
				.n_attrs = e->n_attrs,
				.disabled = r->kind == REQ_LOOKUP && entry_state(d, e) != 0,
			};
			if (d->cfg->ldap.type == CFG_DIR_AD && e->has_uac &&
			    (e->uac & UF_ACCOUNTDISABLE))
				p.disabled = true;
			r->profile_cb(r->arg, 0, &p);
		}
		break;
	case REQ_CHPW:
		r->done_cb(r->arg, err);
		break;
	case REQ_USERS:
	case REQ_READ:
		r->users_cb(r->arg, err, err ? NULL : r->users ? r->users : empty_users,
			    err ? 0 : r->n_users);
		break;
	case REQ_GROUPS:
		r->names_cb(r->arg, err, err ? NULL : names, err ? 0 : r->groups.n);
		break;
	}
	/* Secrets go now, not when the timer handle is closed. */
	if (r->pw)
		explicit_bzero(r->pw, r->pw_len);
	if (r->newpw)
		explicit_bzero(r->newpw, r->newpw_len);
	uv_close((uv_handle_t *)&r->timer, on_req_closed);
}

static void on_req_timeout(uv_timer_t *t)
{
	struct req *r = t->data;

	log_msg(LOGL_WARN, "ldap: request timed out");
	req_finish(r, DIR_E_UNAVAILABLE);
}

static void req_arm(struct req *r)
{
	uv_timer_start(&r->timer, on_req_timeout, r->d->cfg->ldap.timeout_ms, 0);
}

/* Runs step SEND (answers go to ON_MSG) on a service connection, from the loop. */
static void req_service(struct req *r, send_fn send, msg_fn on_msg, bool readonly)
{
	op_done(r);
	r->send = send;
	r->on_msg = on_msg;
	r->readonly = readonly;
	r->queued = true;
	req_arm(r);
	kick(r->d);
}

/* Sends the current step on C; failures to send are failures of C. */
static void req_send_on(struct req *r, struct conn *c)
{
	int rc;

	r->conn = c;
	if (c->kind == CONN_SERVICE)
		c->n_ops++;
	req_arm(r);
	rc = r->send(r);
	if (rc == LDAP_SUCCESS) {
		conn_rearm(c);
		return;
	}
	if (rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR) {
		conn_fail(c, DIR_E_UNAVAILABLE, ldap_err2string(rc));
		return;
	}
	/* libldap's own errors are negative too: always map, never pass on. */
	req_finish(r, map_err(SRC_LDAP, rc, NULL));
}

static void req_conn_lost(struct req *r, struct conn *c)
{
	if (r->uconn == c) {
		r->uconn = NULL;
		if (r->conn == c)
			r->conn = NULL;
		req_finish(r, DIR_E_UNAVAILABLE);
		return;
	}
	r->conn = NULL;
	if (r->readonly && r->retries == 0 && !r->d->closing) {
		r->retries++;
		r->queued = true;
		kick(r->d);
		return;
	}
	req_finish(r, DIR_E_UNAVAILABLE);
}

static struct conn *pick_service_conn(struct dir *d)
{
	struct conn *best = NULL;

	for (struct conn *c = d->conns; c; c = c->next) {
		if (c->kind != CONN_SERVICE || c->state != CONN_READY || c->retiring)
			continue;
		if (!best || c->srv < best->srv || (c->srv == best->srv && c->n_ops < best->n_ops))
			best = c;
	}
	return best;
}

static void on_kick(uv_timer_t *t)
{
	struct dir *d = t->data;
	struct req *r, *next;

	for (r = d->reqs; r; r = next) {
		next = r->next;
		/* A login finishing here only ends the walk early: the next
		 * login to end kicks again. */
		if (r->guard_park && !r->finished)
			auth_found(r);
	}
	for (r = d->reqs; r; r = next) {
		struct conn *c;

		next = r->next;
		if (!r->queued || r->finished)
			continue;
		c = pick_service_conn(d);
		if (!c)
			break;
		r->queued = false;
		req_send_on(r, c);
		/* The send may have failed a connection and finished requests. */
		next = d->reqs;
	}
	pool_fill(d);
}

static void kick(struct dir *d)
{
	if (!d->closing)
		uv_timer_start(&d->kick, on_kick, 0, 0);
}

static int req_new(struct dir *d, enum req_kind kind, void *arg, struct req **out)
{
	struct req *r;

	*out = NULL;
	if (d->closing)
		return DIR_E_UNAVAILABLE;
	r = calloc(1, sizeof(*r));
	if (!r)
		return DIR_E_INTERNAL;
	r->d = d;
	r->kind = kind;
	r->arg = arg;
	uv_timer_init(d->loop, &r->timer);
	r->timer.data = r;
	d->handles++;
	r->next = d->reqs;
	if (d->reqs)
		d->reqs->prev = r;
	d->reqs = r;
	*out = r;
	return 0;
}

/* Frees a request that never started: no callback. */
static void req_abort(struct req *r)
{
	r->finished = true;
	if (r->prev)
		r->prev->next = r->next;
	else
		r->d->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	uv_close((uv_handle_t *)&r->timer, on_req_closed);
}

/* Parses a final result; returns the LDAP code and, if wanted, the controls. */
static int result_code(struct req *r, LDAPMessage *msg, char **diag, LDAPControl ***ctrls)
{
	int rc = LDAP_OTHER, perr;

	r->msgid = 0;
	perr = ldap_parse_result(r->conn->ld, msg, &rc, NULL, diag, NULL, ctrls, 1);
	return perr == LDAP_SUCCESS ? rc : perr;
}

/* ---- finding the user ---------------------------------------------------- */

static void groups_start(struct req *r);
static void user_bind_result(struct req *r, LDAPMessage *msg);
static void auth_found(struct req *r);

static int send_user_search(struct req *r)
{
	entry_free(&r->ent);
	r->n_found = 0;
	return ldap_search_ext(r->conn->ld, r->d->cfg->ldap.base_dn, LDAP_SCOPE_SUBTREE,
			       r->filter, (char **)(uintptr_t)r->d->user_attrs, 0, NULL, NULL,
			       NULL, 2, &r->msgid);
}

static void user_conn_ready(struct req *r)
{
	struct conn *c = r->uconn;
	struct berval cred = { r->pw_len, r->pw };
	LDAPControl *pp = NULL, *ctrls[2] = { NULL, NULL };
	int rc;

	/* Never a password over anything but verified TLS. */
	if (!c->tls || !c->verified || c->state != CONN_READY || r->pw_len == 0) {
		req_finish(r, DIR_E_INTERNAL);
		return;
	}
	r->conn = c;
	r->on_msg = user_bind_result;
	req_arm(r);
	if (ldap_create_passwordpolicy_control(c->ld, &pp) == LDAP_SUCCESS)
		ctrls[0] = pp;
	rc = ldap_sasl_bind(c->ld, r->ent.dn, LDAP_SASL_SIMPLE, &cred, ctrls, NULL, &r->msgid);
	if (pp)
		ldap_control_free(pp);
	if (rc != LDAP_SUCCESS)
		req_finish(r, map_err(SRC_LDAP, rc, NULL));
}

/* Opens the request's own connection, or queues the request while
 * USER_CONNS_MAX user connections are open: a burst of logins then costs the
 * directory a bounded number of TLS handshakes at a time. */
static void user_conn_start(struct req *r)
{
	struct dir *d = r->d;

	r->want_uconn = false;
	if (d->n_user_conns >= USER_CONNS_MAX) {
		r->want_uconn = true;
		return;
	}
	r->uconn = conn_new(d, r->srv, CONN_USER);
	if (!r->uconn) {
		req_finish(r, DIR_E_INTERNAL);
		return;
	}
	r->uconn->owner = r;
}

/* Lets go of the request's user connection.  During a burst an idle one
 * goes straight to the oldest request waiting for one to the same server,
 * whose bind replaces the identity; otherwise it is closed.  Never a pool
 * connection: those only ever bind as the service account. */
static void user_conn_done(struct req *r, bool idle)
{
	struct conn *c = r->uconn;
	struct dir *d = r->d;
	struct req *w, *first = NULL;

	if (!c)
		return;
	r->uconn = NULL;
	c->owner = NULL;
	if (idle && c->state == CONN_READY && !d->closing) {
		for (w = d->reqs; w; w = w->next)
			if (w != r && w->want_uconn && !w->finished && w->srv == c->srv)
				first = w;
		if (first) {
			first->want_uconn = false;
			first->uconn = c;
			c->owner = first;
			user_conn_ready(first);
			return;
		}
	}
	conn_close(c);
}

static void user_conn_next(struct dir *d)
{
	struct req *r, *first = NULL;

	/* The list is newest first; the oldest waiter goes first. */
	for (r = d->reqs; r; r = r->next)
		if (r->want_uconn && !r->finished)
			first = r;
	if (first)
		user_conn_start(first);
}

static void user_search_msg(struct req *r, LDAPMessage *msg)
{
	struct conn *c = r->conn;
	int type = ldap_msgtype(msg), rc;

	if (type == LDAP_RES_SEARCH_ENTRY) {
		if (r->n_found++ == 0 && (entry_parse(r->d, c->ld, msg, &r->ent) < 0 ||
		    (r->kind == REQ_LOOKUP && dir_lookup_name(c->ld, msg, r->d->uattr, r->username,
							       r->ent.dn, &r->ent.uname) < 0))) {
			ldap_msgfree(msg);
			req_finish(r, DIR_E_INTERNAL);
			return;
		}
		ldap_msgfree(msg);
		return;
	}
	if (type != LDAP_RES_SEARCH_RESULT) {
		ldap_msgfree(msg);
		return;
	}
	rc = result_code(r, msg, NULL, NULL);
	r->srv = c->srv;
	op_done(r);
	if (rc != LDAP_SUCCESS && rc != LDAP_SIZELIMIT_EXCEEDED) {
		req_finish(r, map_err(SRC_LDAP, rc, NULL));
		return;
	}
	if (r->kind == REQ_AUTH) {
		auth_found(r);
		return;
	}
	/* None, or more than one: the same answer as a wrong password.  A lookup
	 * also needs a value that is the name itself (dir_lookup_name). */
	if (r->n_found != 1 || (r->kind == REQ_LOOKUP && !r->ent.uname)) {
		req_finish(r, r->kind == REQ_LOOKUP ? DIR_E_NOT_FOUND : DIR_E_INVALID_CREDENTIALS);
		return;
	}
	if (r->kind == REQ_LOOKUP) {
		groups_start(r);
		return;
	}
	req_arm(r);
	user_conn_start(r);
}

/* A login's search is done.  An unknown user (no entry, or several) gets a bind
 * as a DN that does not exist, on a user connection like any other, whose
 * answer is ignored: both cost the directory the same round trips, so the
 * time to the answer does not tell whether the user exists.  The guard then
 * decides whether the bind is sent at all. */
static void auth_found(struct req *r)
{
	int rc;

	if (r->n_found != 1) {
		entry_free(&r->ent);
		r->decoy = true;
		if ((rc = dir_decoy_dn(r->d->cfg->ldap.base_dn, &r->ent.dn)) < 0) {
			req_finish(r, rc);
			return;
		}
	}
	r->guard_park = false;
	rc = dir_guard_begin(r->d->guard, r->decoy ? NULL : r->ent.dn, r->username,
			     &r->guard_key);
	if (rc == DIR_GUARD_WAIT) {
		r->guard_park = true;	/* on_kick asks again when a login ends */
		return;
	}
	if (rc < 0) {
		req_finish(r, rc);
		return;
	}
	req_arm(r);
	user_conn_start(r);
}

/* Maps the user's bind: result code, AD diagnostic, ppolicy control. */
static int user_bind_err(struct req *r, LDAPMessage *msg)
{
	LDAPControl **ctrls = NULL, *pc;
	char *diag = NULL;
	int rc, err, pperr = DIR_OK;

	rc = result_code(r, msg, &diag, &ctrls);
	pc = ctrls ? ldap_control_find(LDAP_CONTROL_PASSWORDPOLICYRESPONSE, ctrls, NULL) : NULL;
	if (pc) {
		ber_int_t expire = -1, grace = -1;
		LDAPPasswordPolicyError pe = PP_noError;

		if (ldap_parse_passwordpolicy_control(r->conn->ld, pc, &expire, &grace, &pe) ==
		    LDAP_SUCCESS)
			pperr = map_err(SRC_PPOLICY, (int)pe, NULL);
	}
	err = map_err(SRC_USER_BIND, rc, diag);
	/* A policy answer is only believed for binds the server also refused or,
	 * for changeAfterReset, accepted with a password that must change. */
	if (pperr && (err == DIR_OK || err == DIR_E_INVALID_CREDENTIALS))
		err = pperr;
	if (rc != LDAP_SUCCESS)
		log_msg(LOGL_DEBUG, "ldap: user bind refused: %s (%s)", ldap_err2string(rc),
			diag ? diag : "");
	ldap_memfree(diag);
	ldap_controls_free(ctrls);
	return err;
}

static int send_ad_modify_svc(struct req *r);
static void passwd_result(struct req *r, LDAPMessage *msg);

static int send_passwd_change(struct req *r, struct conn *c)
{
	r->conn = c;
	r->on_msg = passwd_result;
	req_arm(r);
	if (r->d->cfg->ldap.type == CFG_DIR_AD)
		return send_ad_modify_svc(r);
	{
		struct berval user = { strlen(r->ent.dn), r->ent.dn };
		struct berval oldpw = { r->pw_len, r->pw }, newpw = { r->newpw_len, r->newpw };

		return ldap_passwd(c->ld, &user, &oldpw, &newpw, NULL, NULL, &r->msgid);
	}
}

static void user_bind_result(struct req *r, LDAPMessage *msg)
{
	int type = ldap_msgtype(msg), err;

	if (type != LDAP_RES_BIND) {
		ldap_msgfree(msg);
		return;
	}
	err = user_bind_err(r, msg);
	r->msgid = 0;
	if (r->decoy)
		err = DIR_E_INVALID_CREDENTIALS;
	r->bind_err = err;
	if (r->kind == REQ_CHPW) {
		int rc;

		/* AD refuses binds with an expired or must-change password, yet
		 * those answers prove the old password; the change then goes over
		 * the service connection, where AD checks the old value again. */
		if (r->d->cfg->ldap.type == CFG_DIR_AD &&
		    (err == DIR_E_PASSWORD_MUST_CHANGE || err == DIR_E_PASSWORD_EXPIRED)) {
			r->conn = NULL;
			req_service(r, send_ad_modify_svc, passwd_result, false);
			return;
		}
		if (err && err != DIR_E_PASSWORD_MUST_CHANGE && err != DIR_E_PASSWORD_EXPIRED) {
			req_finish(r, err);
			return;
		}
		rc = send_passwd_change(r, r->uconn);
		if (rc != LDAP_SUCCESS)
			req_finish(r, map_err(SRC_LDAP, rc, NULL));
		return;
	}
	if (err == DIR_OK)
		err = entry_state(r->d, &r->ent);
	r->conn = NULL;
	user_conn_done(r, true);
	if (err) {
		req_finish(r, err);
		return;
	}
	groups_start(r);
}

/* ---- groups -------------------------------------------------------------- */

static void groups_walk_next(struct req *r);

static int add_group_dn(struct req *r, const char *dn)
{
	char *cn;
	int rc = 0;

	if (strv_has(&r->seen, dn) || r->seen.n >= GROUPS_MAX)
		return 0;
	if (strv_add(&r->seen, dn) < 0)
		return DIR_E_INTERNAL;
	cn = dn_cn(dn);
	if (cn && !strv_has(&r->groups, cn))
		rc = strv_add(&r->groups, cn);
	free(cn);
	return rc;
}

static int send_group_search(struct req *r)
{
	static const char *const attrs[] = { "1.1", NULL };
	LDAPControl *pc = NULL, *ctrls[2] = { NULL, NULL };
	int rc;

	if (r->paged) {
		rc = ldap_create_page_control(r->conn->ld, PAGE_SIZE, &r->cookie, 0, &pc);
		if (rc != LDAP_SUCCESS)
			return rc;
		ctrls[0] = pc;
	}
	rc = ldap_search_ext(r->conn->ld, r->d->cfg->ldap.base_dn, LDAP_SCOPE_SUBTREE, r->filter,
			     (char **)(uintptr_t)attrs, 0, pc ? ctrls : NULL, NULL, NULL, 0,
			     &r->msgid);
	if (pc)
		ldap_control_free(pc);
	return rc;
}

/* The first page of a read-only search: a retry after a lost connection
 * starts over, since the paging cookie belonged to that connection. */
static int send_group_search_first(struct req *r)
{
	if (r->cookie.bv_val)
		ber_memfree(r->cookie.bv_val);
	r->cookie.bv_val = NULL;
	r->cookie.bv_len = 0;
	return send_group_search(r);
}

static bool next_page(struct req *r, LDAPControl **ctrls)
{
	LDAPControl *pc = ctrls ? ldap_control_find(LDAP_CONTROL_PAGEDRESULTS, ctrls, NULL) : NULL;
	ber_int_t count = 0;

	if (r->cookie.bv_val)
		ber_memfree(r->cookie.bv_val);
	r->cookie.bv_val = NULL;
	r->cookie.bv_len = 0;
	if (!pc || ldap_parse_pageresponse_control(r->conn->ld, pc, &count, &r->cookie) !=
			   LDAP_SUCCESS)
		return false;
	return r->cookie.bv_len > 0;
}

static void group_search_msg(struct req *r, LDAPMessage *msg)
{
	int type = ldap_msgtype(msg), rc;
	LDAPControl **ctrls = NULL;

	if (type == LDAP_RES_SEARCH_ENTRY) {
		char *dn = ldap_get_dn(r->conn->ld, msg);

		ldap_msgfree(msg);
		if (dn) {
			if (r->d->cfg->ldap.type != CFG_DIR_AD && r->seen.n < GROUPS_MAX &&
			    !strv_has(&r->seen, dn) && strv_add(&r->frontier, dn) < 0) {
				ldap_memfree(dn);
				req_finish(r, DIR_E_INTERNAL);
				return;
			}
			rc = add_group_dn(r, dn);
			ldap_memfree(dn);
			if (rc < 0)
				req_finish(r, rc);
		}
		return;
	}
	if (type != LDAP_RES_SEARCH_RESULT) {
		ldap_msgfree(msg);
		return;
	}
	rc = result_code(r, msg, NULL, &ctrls);
	if (rc != LDAP_SUCCESS && rc != LDAP_SIZELIMIT_EXCEEDED) {
		ldap_controls_free(ctrls);
		req_finish(r, map_err(SRC_LDAP, rc, NULL));
		return;
	}
	if (r->paged && next_page(r, ctrls) && r->seen.n < GROUPS_MAX) {
		struct conn *c = r->conn;

		ldap_controls_free(ctrls);
		/* Further pages must go to the same connection as the cookie. */
		rc = send_group_search(r);
		if (rc != LDAP_SUCCESS) {
			if (rc == LDAP_SERVER_DOWN)
				conn_fail(c, DIR_E_UNAVAILABLE, ldap_err2string(rc));
			else
				req_finish(r, map_err(SRC_LDAP, rc, NULL));
		}
		return;
	}
	ldap_controls_free(ctrls);
	op_done(r);
	if (r->d->cfg->ldap.type == CFG_DIR_AD) {
		req_finish(r, 0);
		return;
	}
	groups_walk_next(r);
}

/* OpenLDAP: "which groups list any of these as member", for up to
 * GROUP_BATCH not yet searched DNs at a time, until no new group appears or
 * the search cap is hit.  The visited set (r->seen) ends cycles; the caps
 * bound the work a hostile directory can ask for. */
static void groups_walk_next(struct req *r)
{
	struct strv level = { 0 };
	char *f = NULL, *p;
	size_t len = 64, take;
	const char *oc = "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))";

	if (r->frontier.n == 0 || r->depth >= GROUP_SEARCHES_MAX) {
		req_finish(r, 0);
		return;
	}
	take = r->frontier.n < GROUP_BATCH ? r->frontier.n : GROUP_BATCH;
	level.v = calloc(take, sizeof(char *));
	if (!level.v) {
		req_finish(r, DIR_E_INTERNAL);
		return;
	}
	r->frontier.n -= take;
	memcpy(level.v, r->frontier.v + r->frontier.n, take * sizeof(char *));
	level.n = level.cap = take;
	r->depth++;
	for (size_t i = 0; i < level.n; i++) {
		char *esc = NULL;

		/* A DN that cannot be escaped is dropped, never used raw. */
		if (dir_filter_escape(level.v[i], strlen(level.v[i]), &esc) < 0)
			esc = NULL;
		free(level.v[i]);
		level.v[i] = esc;
		len += esc ? 2 * strlen(esc) + 40 : 0;
	}
	len += strlen(oc);
	f = malloc(len);
	if (!f) {
		strv_free(&level);
		req_finish(r, DIR_E_INTERNAL);
		return;
	}
	p = f + sprintf(f, "(&%s(|", oc);
	for (size_t i = 0; i < level.n; i++)
		if (level.v[i])
			p += sprintf(p, "(member=%s)(uniqueMember=%s)", level.v[i], level.v[i]);
	strcpy(p, "))");
	strv_free(&level);
	free(r->filter);
	r->filter = f;
	r->paged = false;
	req_service(r, send_group_search_first, group_search_msg, true);
}

static void groups_start(struct req *r)
{
	const struct cfg *cfg = r->d->cfg;
	struct entry *e = &r->ent;
	char *esc = NULL, *f;

	if (cfg->ldap.groups == CFG_GROUPS_NONE) {
		req_finish(r, 0);
		return;
	}
	if (cfg->ldap.groups == CFG_GROUPS_DIRECT) {
		for (size_t i = 0; i < e->n_memberof; i++) {
			if (add_group_dn(r, e->memberof[i]) < 0) {
				req_finish(r, DIR_E_INTERNAL);
				return;
			}
		}
		req_finish(r, 0);
		return;
	}
	if (dir_filter_escape(e->dn, strlen(e->dn), &esc) < 0) {
		req_finish(r, DIR_E_INTERNAL);
		return;
	}
	if (cfg->ldap.type == CFG_DIR_AD) {
		f = malloc(strlen(esc) + 80);
		if (f)
			sprintf(f, "(&(objectClass=group)(member:1.2.840.113556.1.4.1941:=%s))", esc);
		free(esc);
		if (!f) {
			req_finish(r, DIR_E_INTERNAL);
			return;
		}
		free(r->filter);
		r->filter = f;
		r->paged = true;
		req_service(r, send_group_search_first, group_search_msg, true);
		return;
	}
	free(esc);
	/* OpenLDAP: start the walk from the user's own DN. */
	if (strv_add(&r->seen, e->dn) < 0 || strv_add(&r->frontier, e->dn) < 0) {
		req_finish(r, DIR_E_INTERNAL);
		return;
	}
	groups_walk_next(r);
}

/* ---- password change ----------------------------------------------------- */

/* AD: delete the old unicodePwd value, add the new one, both quoted UTF-16LE. */
static int send_ad_modify_svc(struct req *r)
{
	unsigned char *o16 = NULL, *n16 = NULL;
	size_t olen = 0, nlen = 0;
	char *oq = NULL, *nq = NULL;
	struct berval ov, nv, *ovals[2] = { &ov, NULL }, *nvals[2] = { &nv, NULL };
	LDAPMod del = { .mod_op = LDAP_MOD_DELETE | LDAP_MOD_BVALUES, .mod_type = "unicodePwd" };
	LDAPMod add = { .mod_op = LDAP_MOD_ADD | LDAP_MOD_BVALUES, .mod_type = "unicodePwd" };
	LDAPMod *mods[3] = { &del, &add, NULL };
	int rc;

	r->on_msg = passwd_result;
	oq = malloc(r->pw_len + 3);
	nq = malloc(r->newpw_len + 3);
	if (!oq || !nq) {
		rc = LDAP_NO_MEMORY;
		goto out;
	}
	oq[0] = nq[0] = '"';
	memcpy(oq + 1, r->pw, r->pw_len);
	memcpy(nq + 1, r->newpw, r->newpw_len);
	oq[r->pw_len + 1] = nq[r->newpw_len + 1] = '"';
	if (dir_utf16le(oq, r->pw_len + 2, &o16, &olen) < 0 ||
	    dir_utf16le(nq, r->newpw_len + 2, &n16, &nlen) < 0) {
		rc = LDAP_PARAM_ERROR;
		goto out;
	}
	ov.bv_val = (char *)o16;
	ov.bv_len = olen;
	nv.bv_val = (char *)n16;
	nv.bv_len = nlen;
	del.mod_bvalues = ovals;
	add.mod_bvalues = nvals;
	rc = ldap_modify_ext(r->conn->ld, r->ent.dn, mods, NULL, NULL, &r->msgid);
out:
	wipe_free(oq, r->pw_len + 3);
	wipe_free(nq, r->newpw_len + 3);
	wipe_free((char *)o16, olen);
	wipe_free((char *)n16, nlen);
	return rc;
}

static void passwd_result(struct req *r, LDAPMessage *msg)
{
	LDAPControl **ctrls = NULL, *pc;
	char *diag = NULL;
	int type = ldap_msgtype(msg), rc, err;

	if (type != LDAP_RES_MODIFY && type != LDAP_RES_EXTENDED) {
		ldap_msgfree(msg);
		return;
	}
	rc = result_code(r, msg, &diag, &ctrls);
	err = map_err(SRC_PASSWD, rc, diag);
	pc = ctrls ? ldap_control_find(LDAP_CONTROL_PASSWORDPOLICYRESPONSE, ctrls, NULL) : NULL;
	if (pc && err) {
		LDAPPasswordPolicyError pe = PP_noError;

		if (ldap_parse_passwordpolicy_control(r->conn->ld, pc, NULL, NULL, &pe) ==
			    LDAP_SUCCESS && map_err(SRC_PPOLICY, (int)pe, NULL))
			err = map_err(SRC_PPOLICY, (int)pe, NULL);
	}
	if (rc != LDAP_SUCCESS)
		log_msg(LOGL_INFO, "ldap: password change refused: %s (%s)",
			ldap_err2string(rc), diag ? diag : "");
	ldap_memfree(diag);
	ldap_controls_free(ctrls);
	req_finish(r, err);
}

/* ---- listing ------------------------------------------------------------- */

static int send_list(struct req *r)
{
	LDAPControl *pc = NULL, *ctrls[2] = { NULL, NULL };
	ber_int_t page = (ber_int_t)(r->limit < PAGE_SIZE ? r->limit : PAGE_SIZE);
	static const char *const gattrs[] = { "cn", NULL };
	int rc;

	rc = ldap_create_page_control(r->conn->ld, page, &r->cookie, 0, &pc);
	if (rc != LDAP_SUCCESS)
		return rc;
	ctrls[0] = pc;
	rc = ldap_search_ext(r->conn->ld, r->d->cfg->ldap.base_dn, LDAP_SCOPE_SUBTREE, r->filter,
			     (char **)(uintptr_t)(r->kind == REQ_GROUPS ? gattrs : r->d->user_attrs),
			     0, ctrls, NULL, NULL, 0, &r->msgid);
	ldap_control_free(pc);
	return rc;
}

static void list_reset(struct req *r)
{
	for (size_t i = 0; i < r->n_users; i++) {
		struct dir_profile *p = &r->users[i];

		free(p->username);
		free(p->dn);
		free(p->display_name);
		free(p->email);
		for (size_t j = 0; j < p->n_groups; j++)
			free(p->groups[j]);
		free(p->groups);
	}
	r->n_users = 0;
	strv_free(&r->groups);
	if (r->cookie.bv_val)
		ber_memfree(r->cookie.bv_val);
	r->cookie.bv_val = NULL;
	r->cookie.bv_len = 0;
}

static int send_list_first(struct req *r)
{
	list_reset(r);
	return send_list(r);
}

static int list_add_user(struct req *r, LDAPMessage *msg)
{
	struct entry e = { 0 };
	struct dir_profile *p;
	int rc = entry_parse(r->d, r->conn->ld, msg, &e);

	if (rc < 0)
		goto out;
	if (r->n_users == r->cap_users) {
		size_t cap = r->cap_users ? r->cap_users * 2 : 16;
		struct dir_profile *nu = realloc(r->users, cap * sizeof(*nu));

		if (!nu) {
			rc = DIR_E_INTERNAL;
			goto out;
		}
		r->users = nu;
		r->cap_users = cap;
	}
	p = &r->users[r->n_users];
	memset(p, 0, sizeof(*p));
	if (!e.uname)
		goto out;	/* not a user we could name */
	p->username = e.uname;
	p->dn = e.dn;
	p->display_name = e.display ? e.display : e.cn;
	if (p->display_name == e.cn)
		e.cn = NULL;
	else
		e.display = NULL;
	p->email = e.mail;
	p->disabled = entry_state(r->d, &e) != 0 ||
		      (e.has_uac && (e.uac & UF_ACCOUNTDISABLE));
	e.uname = e.dn = e.mail = NULL;
	/* Never a NULL array, even an empty one: callers may memcpy it. */
	p->groups = calloc(e.n_memberof ? e.n_memberof : 1, sizeof(char *));
	if (!p->groups)
		rc = DIR_E_INTERNAL;
	else if (r->d->cfg->ldap.groups != CFG_GROUPS_NONE) {
		for (size_t i = 0; i < e.n_memberof; i++) {
			char *cn = dn_cn(e.memberof[i]);

			if (cn)
				p->groups[p->n_groups++] = cn;
		}
	}
	r->n_users++;
out:
	entry_free(&e);
	return rc;
}

static void list_msg(struct req *r, LDAPMessage *msg)
{
	int type = ldap_msgtype(msg), rc;
	LDAPControl **ctrls = NULL;
	size_t have = r->kind == REQ_GROUPS ? r->groups.n : r->n_users;

	if (type == LDAP_RES_SEARCH_ENTRY) {
		rc = 0;
		if (have < r->limit) {
			if (r->kind == REQ_GROUPS) {
				char *dn = ldap_get_dn(r->conn->ld, msg);
				char *cn = dn ? dn_cn(dn) : NULL;

				if (cn)
					rc = strv_add(&r->groups, cn);
				free(cn);
				ldap_memfree(dn);
			} else {
				rc = list_add_user(r, msg);
			}
		}
		ldap_msgfree(msg);
		if (rc < 0)
			req_finish(r, rc);
		return;
	}
	if (type != LDAP_RES_SEARCH_RESULT) {
		ldap_msgfree(msg);
		return;
	}
	rc = result_code(r, msg, NULL, &ctrls);
	if (rc != LDAP_SUCCESS && rc != LDAP_SIZELIMIT_EXCEEDED) {
		ldap_controls_free(ctrls);
		req_finish(r, map_err(SRC_LDAP, rc, NULL));
		return;
	}
	if (next_page(r, ctrls) && have < r->limit) {
		struct conn *c = r->conn;

		ldap_controls_free(ctrls);
		rc = send_list(r);
		if (rc != LDAP_SUCCESS) {
			if (rc == LDAP_SERVER_DOWN)
				conn_fail(c, DIR_E_UNAVAILABLE, ldap_err2string(rc));
			else
				req_finish(r, map_err(SRC_LDAP, rc, NULL));
		}
		return;
	}
	ldap_controls_free(ctrls);
	req_finish(r, 0);
}

/* ---- reads for guard.c ----------------------------------------------------- */

static int send_read(struct req *r)
{
	for (size_t i = 0; i < r->n_users; i++) {
		dir_read_entry_free(&r->users[i]);
		free(r->users[i].dn);
	}
	r->n_users = 0;
	return ldap_search_ext(r->conn->ld, r->base, r->scope, r->filter,
			       (char **)(uintptr_t)r->read_attrs, 0, NULL, NULL, NULL,
			       (int)r->limit, &r->msgid);
}

static void read_msg(struct req *r, LDAPMessage *msg)
{
	int type = ldap_msgtype(msg), rc = 0;

	if (type == LDAP_RES_SEARCH_ENTRY) {
		if (r->n_users < r->limit) {
			if (r->n_users == r->cap_users) {
				struct dir_profile *nu = realloc(r->users, r->limit * sizeof(*nu));

				if (nu) {
					r->users = nu;
					r->cap_users = r->limit;
				}
			}
			rc = r->n_users < r->cap_users ?
			     dir_read_entry(r->conn->ld, msg, &r->users[r->n_users++]) :
			     DIR_E_INTERNAL;
		}
		ldap_msgfree(msg);
		if (rc < 0)
			req_finish(r, rc);
		return;
	}
	if (type != LDAP_RES_SEARCH_RESULT) {
		ldap_msgfree(msg);
		return;
	}
	rc = result_code(r, msg, NULL, NULL);
	req_finish(r, rc == LDAP_SUCCESS || rc == LDAP_SIZELIMIT_EXCEEDED ? 0 :
		      map_err(SRC_LDAP, rc, NULL));
}

int dir_read(struct dir *d, const char *base, int scope, const char *filter,
	     const char *const *attrs, size_t limit, dir_users_cb cb, void *arg)
{
	struct req *r;
	int rc = req_new(d, REQ_READ, arg, &r);

	if (rc < 0)
		return rc;
	r->base = strdup(base);
	r->filter = strdup(filter);
	if (!r->base || !r->filter || limit == 0) {
		req_abort(r);
		return DIR_E_INTERNAL;
	}
	r->scope = scope;
	r->read_attrs = attrs;
	r->limit = limit;
	r->users_cb = cb;
	req_service(r, send_read, read_msg, true);
	return 0;
}

/* ---- public API ---------------------------------------------------------- */

static const char *const ad_attrs[] = {
	"sAMAccountName", "userPrincipalName", "displayName", "cn", "mail", "memberOf",
	"userAccountControl", "msDS-User-Account-Control-Computed", "accountExpires",
};
static const char *const ol_attrs[] = {
	"uid", "displayName", "cn", "mail", "memberOf", "pwdAccountLockedTime",
};

static int build_attrs(struct dir *d)
{
	const struct cfg *cfg = d->cfg;
	const char *const *base = cfg->ldap.type == CFG_DIR_AD ? ad_attrs : ol_attrs;
	size_t nb = cfg->ldap.type == CFG_DIR_AD ? sizeof(ad_attrs) / sizeof(*ad_attrs) :
						   sizeof(ol_attrs) / sizeof(*ol_attrs);
	size_t n = 0;

	d->user_attrs = calloc(nb + cfg->ldap.n_attributes + 2, sizeof(char *));
	if (!d->user_attrs)
		return DIR_E_INTERNAL;
	for (size_t i = 0; i < nb; i++)
		d->user_attrs[n++] = base[i];
	d->user_attrs[n++] = d->uattr;
	for (size_t i = 0; i < cfg->ldap.n_attributes; i++)
		d->user_attrs[n++] = cfg->ldap.attributes[i];
	return 0;
}

static void on_kick_closed(uv_handle_t *h)
{
	struct dir *d = h->data;

	d->handles--;
	dir_maybe_free(d);
}

static void on_retry_closed(uv_handle_t *h)
{
	struct server *sv = h->data;

	sv->d->handles--;
	dir_maybe_free(sv->d);
}

static void dir_free(struct dir *d)
{
	for (size_t i = 0; i < d->n_srv; i++) {
		free(d->srv[i].url);
		free(d->srv[i].host);
	}
	free(d->srv);
	if (d->bind_pw)
		cfg_secret_free(d->bind_pw, d->bind_pw_len);
	free(d->uattr);
	free(d->user_attrs);
	dir_guard_free(d->guard);
	free(d);
}

static void dir_maybe_free(struct dir *d)
{
	void (*done)(void *);
	void *arg;

	if (!d->closing || d->handles > 0)
		return;
	done = d->done;
	arg = d->done_arg;
	dir_free(d);
	if (done)
		done(arg);
}

static int server_parse(struct server *sv, const char *url)
{
	LDAPURLDesc *lud = NULL;
	int port;

	if (ldap_url_parse(url, &lud) != LDAP_URL_SUCCESS)
		return DIR_E_INTERNAL;
	sv->ldaps = strcasecmp(lud->lud_scheme, "ldaps") == 0;
	if (!sv->ldaps && strcasecmp(lud->lud_scheme, "ldap") != 0) {
		ldap_free_urldesc(lud);
		return DIR_E_INTERNAL;
	}
	port = lud->lud_port ? lud->lud_port : sv->ldaps ? 636 : 389;
	snprintf(sv->port, sizeof(sv->port), "%d", port);
	sv->host = strdup(lud->lud_host && *lud->lud_host ? lud->lud_host : "localhost");
	ldap_free_urldesc(lud);
	/* libldap wants scheme://host:port only; the TLS is ours. */
	if (sv->host && asprintf(&sv->url, "ldap://%s%s%s:%d", strchr(sv->host, ':') ? "[" : "",
				 sv->host, strchr(sv->host, ':') ? "]" : "", port) < 0)
		sv->url = NULL;
	return sv->host && sv->url ? 0 : DIR_E_INTERNAL;
}

int dir_open(uv_loop_t *loop, const struct cfg *cfg, struct dir **out)
{
	struct dir *d;
	char errbuf[256];
	int rc = DIR_E_INTERNAL;

	*out = NULL;
	if (!cfg->ldap.present || cfg->ldap.n_urls == 0)
		return DIR_E_INTERNAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return DIR_E_INTERNAL;
	d->loop = loop;
	d->cfg = cfg;
	d->rng = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)d;
	if (d->rng == 0)
		d->rng = 0x9e3779b97f4a7c15ull;
	d->srv = calloc(cfg->ldap.n_urls, sizeof(*d->srv));
	d->uattr = username_attr(cfg);
	if (!d->srv || !d->uattr || build_attrs(d) < 0 ||
	    dir_guard_new(d, loop, cfg, &d->guard) < 0)
		goto fail;
	for (size_t i = 0; i < cfg->ldap.n_urls; i++) {
		struct server *sv = &d->srv[i];

		sv->d = d;
		sv->name = cfg->ldap.urls[i];
		if (server_parse(sv, cfg->ldap.urls[i]) < 0) {
			log_msg(LOGL_ERROR, "ldap: bad url %s", cfg->ldap.urls[i]);
			d->n_srv = i + 1;
			goto fail;
		}
		d->n_srv = i + 1;
		/* Plain ldap:// is only acceptable as a StartTLS upgrade. */
		if (!sv->ldaps && !cfg->ldap.starttls) {
			log_msg(LOGL_ERROR, "ldap: %s is plain ldap:// without starttls",
				cfg->ldap.urls[i]);
			goto fail;
		}
	}
	if (cfg->ldap.bind_password_file) {
		rc = cfg_secret_read(cfg->ldap.bind_password_file, &d->bind_pw, &d->bind_pw_len,
				     errbuf, sizeof(errbuf));
		if (rc < 0) {
			log_msg(LOGL_ERROR, "ldap: %s", errbuf);
			d->bind_pw = NULL;
			rc = DIR_E_INTERNAL;
			goto fail;
		}
	}
	/* libldap writes with write(2); a peer that reset the connection must
	 * cost that connection, not the process. */
	{
		struct sigaction old;

		if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL)
			signal(SIGPIPE, SIG_IGN);
	}
	if (cfg->ldap.keytab)
		setenv("KRB5_CLIENT_KTNAME", cfg->ldap.keytab, 0);
	for (size_t i = 0; i < d->n_srv; i++) {
		uv_timer_init(loop, &d->srv[i].retry);
		d->srv[i].retry.data = &d->srv[i];
		d->handles++;
	}
	uv_timer_init(loop, &d->kick);
	d->kick.data = d;
	d->handles++;
	pool_fill(d);
	dir_guard_start(d->guard);
	*out = d;
	return 0;
fail:
	dir_free(d);
	return rc < 0 ? rc : DIR_E_INTERNAL;
}

void dir_close(struct dir *d, void (*done)(void *arg), void *arg)
{
	struct conn *c, *cn;

	if (d->closing)
		return;
	d->closing = true;
	d->done = done;
	d->done_arg = arg;
	while (d->reqs)
		req_finish(d->reqs, DIR_E_UNAVAILABLE);
	for (c = d->conns; c; c = cn) {
		cn = c->next;
		conn_close(c);
	}
	for (size_t i = 0; i < d->n_srv; i++)
		uv_close((uv_handle_t *)&d->srv[i].retry, on_retry_closed);
	uv_close((uv_handle_t *)&d->kick, on_kick_closed);
	/* The bind password is wiped now; dir_free() only releases memory. */
	if (d->bind_pw) {
		cfg_secret_free(d->bind_pw, d->bind_pw_len);
		d->bind_pw = NULL;
	}
}

bool dir_is_up(const struct dir *d)
{
	for (const struct conn *c = d->conns; c; c = c->next)
		if (c->kind == CONN_SERVICE && c->state == CONN_READY)
			return true;
	return false;
}

static int user_filter_for(struct dir *d, const char *username, char **out)
{
	char *esc = NULL;
	int rc;

	*out = NULL;
	if (!username || !dir_username_valid(username, strlen(username)))
		return DIR_E_BAD_REQUEST;
	rc = dir_filter_escape(username, strlen(username), &esc);
	if (rc < 0)
		return rc;
	*out = filter_subst(d->cfg->ldap.user_filter, esc);
	free(esc);
	return *out ? 0 : DIR_E_INTERNAL;
}

static int dup_secret(const char *in, size_t len, char **out)
{
	*out = malloc(len + 1);
	if (!*out)
		return DIR_E_INTERNAL;
	memcpy(*out, in, len);
	(*out)[len] = '\0';
	return 0;
}

static int start_user_req(struct dir *d, enum req_kind kind, const char *username, void *arg,
			  struct req **out)
{
	struct req *r;
	int rc = req_new(d, kind, arg, &r);

	if (rc < 0)
		return rc;
	rc = user_filter_for(d, username, &r->filter);
	if (rc == 0) {
		r->username = strdup(username);
		if (!r->username)
			rc = DIR_E_INTERNAL;
	}
	if (rc < 0) {
		req_abort(r);
		return rc;
	}
	*out = r;
	return 0;
}

int dir_authenticate(struct dir *d, const char *username, const char *password,
		     size_t password_len, dir_profile_cb cb, void *arg)
{
	struct req *r;
	int rc;

	/* An empty password would be an anonymous bind: refused before anything. */
	if (!password || password_len == 0 || memchr(password, '\0', password_len))
		return DIR_E_INVALID_CREDENTIALS;
	if (!username || !dir_username_valid(username, strlen(username)))
		return DIR_E_INVALID_CREDENTIALS;
	rc = start_user_req(d, REQ_AUTH, username, arg, &r);
	if (rc < 0)
		return rc;
	r->profile_cb = cb;
	if (dup_secret(password, password_len, &r->pw) < 0) {
		req_abort(r);
		return DIR_E_INTERNAL;
	}
	r->pw_len = password_len;
	r->bind_err = DIR_GUARD_NO_BIND;
	if (dir_guard_waiting(d->guard)) {
		r->guard_wait = true;
		req_arm(r);
		return 0;
	}
	req_service(r, send_user_search, user_search_msg, true);
	return 0;
}

void dir_guard_settled(struct dir *d)
{
	for (struct req *r = d->reqs; r; r = r->next)
		if (r->guard_wait && !r->finished) {
			r->guard_wait = false;
			req_service(r, send_user_search, user_search_msg, true);
		}
}

struct dir_guard *dir_guard_of(const struct dir *d)
{
	return d->guard;
}

int dir_lookup(struct dir *d, const char *username, dir_profile_cb cb, void *arg)
{
	struct req *r;
	int rc;

	if (!username || !dir_username_valid(username, strlen(username)))
		return DIR_E_NOT_FOUND;
	rc = start_user_req(d, REQ_LOOKUP, username, arg, &r);
	if (rc < 0)
		return rc;
	r->profile_cb = cb;
	req_service(r, send_user_search, user_search_msg, true);
	return 0;
}

int dir_change_password(struct dir *d, const char *username, const char *old_pw,
			size_t old_len, const char *new_pw, size_t new_len,
			dir_done_cb cb, void *arg)
{
	struct req *r;
	int rc;

	if (!old_pw || old_len == 0 || memchr(old_pw, '\0', old_len))
		return DIR_E_INVALID_CREDENTIALS;
	if (!new_pw || new_len == 0 || !dir_utf8_valid(new_pw, new_len) ||
	    !dir_utf8_valid(old_pw, old_len))
		return DIR_E_BAD_REQUEST;
	if (!username || !dir_username_valid(username, strlen(username)))
		return DIR_E_INVALID_CREDENTIALS;
	rc = start_user_req(d, REQ_CHPW, username, arg, &r);
	if (rc < 0)
		return rc;
	r->done_cb = cb;
	if (dup_secret(old_pw, old_len, &r->pw) < 0 ||
	    dup_secret(new_pw, new_len, &r->newpw) < 0) {
		req_abort(r);
		return DIR_E_INTERNAL;
	}
	r->pw_len = old_len;
	r->newpw_len = new_len;
	req_service(r, send_user_search, user_search_msg, true);
	return 0;
}

/* The configured user objects: user_filter with {username} as a wildcard. */
static char *all_users_filter(struct dir *d)
{
	return filter_subst(d->cfg->ldap.user_filter, "*");
}

int dir_search_users(struct dir *d, const char *query, size_t limit, dir_users_cb cb, void *arg)
{
	struct req *r;
	char *esc = NULL, *all = NULL;
	int rc;

	if (!query || limit == 0)
		return DIR_E_BAD_REQUEST;
	rc = dir_filter_escape(query, strlen(query), &esc);
	if (rc < 0)
		return rc;
	all = all_users_filter(d);
	rc = req_new(d, REQ_USERS, arg, &r);
	if (rc < 0 || !all) {
		if (rc == 0)
			req_abort(r);
		free(esc);
		free(all);
		return rc < 0 ? rc : DIR_E_INTERNAL;
	}
	r->users_cb = cb;
	r->limit = limit;
	/* An empty query lists every user ("**" is no valid substring filter). */
	if (*esc == '\0') {
		r->filter = all;
		all = NULL;
	} else if (asprintf(&r->filter, "(&%s(|(%s=*%s*)(displayName=*%s*)(cn=*%s*)(mail=*%s*)))",
			    all, d->uattr, esc, esc, esc, esc) < 0) {
		r->filter = NULL;
		req_abort(r);
		free(esc);
		free(all);
		return DIR_E_INTERNAL;
	}
	free(esc);
	free(all);
	req_service(r, send_list_first, list_msg, true);
	return 0;
}

int dir_list_users(struct dir *d, const char *filter, size_t limit, dir_users_cb cb, void *arg)
{
	struct req *r;
	char *all;
	int rc;

	if (limit == 0 || (filter && (!*filter || !dir_utf8_valid(filter, strlen(filter)))))
		return DIR_E_BAD_REQUEST;
	all = all_users_filter(d);
	if (!all)
		return DIR_E_INTERNAL;
	rc = req_new(d, REQ_USERS, arg, &r);
	if (rc < 0) {
		free(all);
		return rc;
	}
	r->users_cb = cb;
	r->limit = limit;
	if (!filter) {
		r->filter = all;
	} else {
		/* Only users, and a bare "uid=x" is accepted as "(uid=x)". */
		if (asprintf(&r->filter, filter[0] == '(' ? "(&%s%s)" : "(&%s(%s))", all, filter) < 0)
			r->filter = NULL;
		free(all);
		if (!r->filter) {
			req_abort(r);
			return DIR_E_INTERNAL;
		}
	}
	req_service(r, send_list_first, list_msg, true);
	return 0;
}

int dir_list_groups(struct dir *d, size_t limit, dir_names_cb cb, void *arg)
{
	struct req *r;
	int rc;

	if (limit == 0)
		return DIR_E_BAD_REQUEST;
	rc = req_new(d, REQ_GROUPS, arg, &r);
	if (rc < 0)
		return rc;
	r->names_cb = cb;
	r->limit = limit;
	r->filter = strdup(d->cfg->ldap.type == CFG_DIR_AD ?
				   "(objectClass=group)" :
				   "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)"
				   "(objectClass=posixGroup))");
	if (!r->filter) {
		req_abort(r);
		return DIR_E_INTERNAL;
	}
	req_service(r, send_list_first, list_msg, true);
	return 0;
}
