/*
 * One directory connection on the libuv loop.
 *
 * Sockets are ours: resolved with uv_getaddrinfo, connected non-blocking and
 * watched by a uv_poll handle.  libldap speaks LDAP on them through
 * ldap_init_fd(), and TLS is our tls/ session, spliced under libldap as a
 * Sockbuf_IO layer (LDAPS, or after StartTLS).  A service connection then binds
 * as the service account; a user connection is handed to its request
 * (auth.c), and kept here between logins.  libldap is only ever asked for results with a zero timeout, so
 * nothing here waits on the network.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <lber.h>
#include <ldap.h>
#include <openldap.h>
#include <sasl/sasl.h>

#include "config/cfg.h"
#include "ldap/dir.h"
#include "ldap/internal.h"
#include "tls/tls.h"

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
static const char *const conn_state_name[] = {
	"new", "resolving", "connecting", "starttls", "tls-handshake", "binding", "ready",
	"closing", "dead",
};

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
		dir_pool_fill(d);
		dir_user_conn_next(d);
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

void dir_conn_close(struct conn *c)
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
void dir_conn_fail(struct conn *c, int err, const char *why)
{
	struct dir *d = c->d;
	struct server *sv = &d->srv[c->srv];
	struct req *r, *next;

	if (c->state >= CONN_CLOSING)
		return;
	if (!d->closing) {
		sv->conn_failures++;
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
			dir_server_down(sv, why);
	}
	dir_conn_close(c);
	for (r = d->reqs; r; r = next) {
		next = r->next;
		if (r->conn == c || r->uconn == c)
			dir_req_conn_lost(r, c);
	}
}

static bool conn_is_kept(const struct conn *c)
{
	return c->kind == CONN_USER && c->state == CONN_READY && !c->owner;
}

/* The setup deadline, and for a kept user connection the idle timeout. */
static void on_conn_timeout(uv_timer_t *t)
{
	struct conn *c = t->data;

	if (c->state < CONN_READY) {
		dir_conn_fail(c, DIR_E_UNAVAILABLE, "timed out");
	} else if (conn_is_kept(c)) {
		c->d->stats.user_conns_expired++;
		dir_conn_close(c);
	}
}

void dir_conn_keep(struct conn *c)
{
	c->owner = NULL;
	if (c->timer_open)
		uv_timer_start(&c->timer, on_conn_timeout,
			       dir_user_idle_ms(c->d->cfg->ldap.timeout_ms), 0);
}

/* An idle connection has nothing to read: end of stream, an error or any byte
 * (a notice of disconnection not yet read) all mean it cannot carry a bind.
 * The poll callback finds most of these first; this catches what arrived since
 * the loop last looked. */
static bool conn_still_open(struct conn *c)
{
	char b;
	ssize_t n;

	if (c->fd < 0 || !c->tls || tls_pending(c->tls) > 0)
		return false;
	n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

struct conn *dir_conn_take(struct dir *d, size_t srv)
{
	struct conn *c, *next;

	for (c = d->conns; c; c = next) {
		next = c->next;
		if (!conn_is_kept(c) || c->srv != srv)
			continue;
		if (!conn_still_open(c)) {
			d->stats.user_conns_stale++;
			dir_conn_fail(c, DIR_E_UNAVAILABLE, "kept connection closed by the server");
			continue;
		}
		if (c->timer_open)
			uv_timer_stop(&c->timer);
		return c;
	}
	return NULL;
}

void dir_conn_drop_kept(struct dir *d, size_t lo, size_t hi)
{
	for (struct conn *c = d->conns; c; c = c->next)
		if (conn_is_kept(c) && c->srv >= lo && c->srv < hi)
			dir_conn_close(c);
}

unsigned dir_conn_kept_count(const struct dir *d, size_t srv)
{
	unsigned n = 0;

	for (const struct conn *c = d->conns; c; c = c->next)
		if (conn_is_kept(c) && (srv == SIZE_MAX || c->srv == srv))
			n++;
	return n;
}

static void on_poll(uv_poll_t *h, int status, int events);
static void conn_read(struct conn *c);

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
	dir_conn_fail(c, DIR_E_UNAVAILABLE, "connection refused");
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
		dir_conn_fail(c, DIR_E_UNAVAILABLE, uv_strerror(status));
		return;
	}
	connect_next(c);
}

static int ldap_setup(struct conn *c)
{
	struct server *sv = &c->d->srv[c->srv];
	int v3 = LDAP_VERSION3;

	if (ldap_init_fd(c->fd, LDAP_PROTO_TCP, sv->url, &c->ld) != LDAP_SUCCESS)
		return DIR_E_INTERNAL;
	if (ldap_set_option(c->ld, LDAP_OPT_PROTOCOL_VERSION, &v3) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(c->ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(c->ld, LDAP_OPT_KEEPCONN, LDAP_OPT_ON) != LDAP_OPT_SUCCESS ||
	    /* Canonicalising the host would be a blocking reverse lookup. */
	    ldap_set_option(c->ld, LDAP_OPT_X_SASL_NOCANON, LDAP_OPT_ON) != LDAP_OPT_SUCCESS)
		return DIR_E_INTERNAL;
	return 0;
}

static int tls_layer_install(struct conn *c)
{
	Sockbuf *sb = NULL;

	if (ldap_get_option(c->ld, LDAP_OPT_SOCKBUF, &sb) != LDAP_OPT_SUCCESS || !sb)
		return DIR_E_INTERNAL;
	return ber_sockbuf_add_io(sb, &sb_tls, LBER_SBIOD_LEVEL_TRANSPORT, c) == 0 ? 0 : DIR_E_INTERNAL;
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
		return rc == LDAP_SUCCESS && msg ? 0 : dir_map_err(SRC_LDAP, rc, NULL);
	}
	return rc == LDAP_SUCCESS ? 1 : dir_map_err(SRC_LDAP, rc, NULL);
}

static void conn_tls_done(struct conn *c)
{
	if (!c->ld && ldap_setup(c) < 0) {
		dir_conn_fail(c, DIR_E_INTERNAL, "ldap_init_fd failed");
		return;
	}
	if (tls_layer_install(c) < 0) {
		dir_conn_fail(c, DIR_E_INTERNAL, "cannot install the TLS layer");
		return;
	}
	poll_want(c, UV_READABLE);
	if (c->kind == CONN_USER) {
		conn_set_state(c, CONN_READY);
		if (c->timer_open)
			uv_timer_stop(&c->timer);
		/* Without an owner it was let go while opening, and closed. */
		if (c->owner)
			dir_user_conn_ready(c->owner);
		return;
	}
	conn_set_state(c, CONN_BINDING);
	if (service_bind(c, NULL) < 0)
		dir_conn_fail(c, DIR_E_UNAVAILABLE, "cannot send the service bind");
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
		dir_conn_fail(c, dir_map_err(SRC_TLS, rc, NULL), why);
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
		dir_conn_fail(c, DIR_E_UNAVAILABLE, "cannot create the TLS session");
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
		dir_conn_fail(c, DIR_E_INTERNAL, "plain ldap:// without starttls refused");
		return;
	}
	if (ldap_setup(c) < 0 ||
	    ldap_extended_operation(c->ld, LDAP_EXOP_START_TLS, NULL, NULL, NULL, &c->msgid) !=
		    LDAP_SUCCESS) {
		dir_conn_fail(c, DIR_E_UNAVAILABLE, "cannot send StartTLS");
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
			dir_conn_fail(c, DIR_E_UNAVAILABLE, "StartTLS refused");
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
		dir_conn_fail(c, DIR_E_UNAVAILABLE, why);
		return;
	}
	ldap_memfree(diag);
	if (c->timer_open)
		uv_timer_stop(&c->timer);
	conn_set_state(c, CONN_READY);
	c->ready_at = uv_now(c->d->loop);
	dir_pool_ready(c);
}

/* Once libldap speaks on the socket: always readable, writable while a
 * request waits to be flushed. */
void dir_conn_rearm(struct conn *c)
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
		dir_conn_fail(c, DIR_E_UNAVAILABLE,
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
		dir_conn_rearm(c);
		break;
	default:
		break;
	}
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
			dir_conn_fail(c, DIR_E_UNAVAILABLE, ldap_err2string(err));
			return;
		}
		if (ldap_msgid(msg) == 0) {
			/* Unsolicited notification: the server is dropping us. */
			ldap_msgfree(msg);
			dir_conn_fail(c, DIR_E_UNAVAILABLE, "notice of disconnection");
			return;
		}
		if (c->state != CONN_READY) {
			conn_setup_msg(c, msg);
			continue;
		}
		dir_req_dispatch(c, msg);
	}
}

struct conn *dir_conn_new(struct dir *d, size_t srv, enum conn_kind kind)
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
	conn_set_state(c, CONN_RESOLVING);
	c->next = d->conns;
	d->conns = c;
	d->handles++;
	if (kind == CONN_USER) {
		d->n_user_conns++;
		d->stats.user_conns_opened++;
	}
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
		dir_conn_close(c);
		return NULL;
	}
	c->gai_busy = true;
	c->refs++;
	return c;
}
