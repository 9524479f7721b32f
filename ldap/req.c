/*
 * Requests: their life (queued, running, done), their timeout, sending a step
 * on a connection, losing a connection, and the one callback each ends with.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lber.h>
#include <ldap.h>

#include "config/cfg.h"
#include "ldap/dir.h"
#include "ldap/internal.h"

/* The only writer of r->state. */
void dir_req_set_state(struct req *r, enum req_state s)
{
	r->state = s;
}

/* The only writer of r->uphase. */
void dir_req_set_uphase(struct req *r, enum ubind_phase p)
{
	r->uphase = p;
}

static void on_req_closed(uv_handle_t *h)
{
	struct req *r = h->data;
	struct dir *d = r->d;

	dir_entry_free(&r->ent);
	dir_strv_free(&r->groups);
	dir_strv_free(&r->seen);
	dir_strv_free(&r->frontier);
	for (size_t i = 0; i < r->n_users; i++)
		dir_profile_clear(&r->users[i]);
	free(r->users);
	free(r->guard_key);
	free(r->base);
	if (r->cookie.bv_val)
		ber_memfree(r->cookie.bv_val);
	free(r->username);
	free(r->filter);
	dir_wipe_free(r->pw, r->pw_len);
	dir_wipe_free(r->newpw, r->newpw_len);
	free(r);
	d->handles--;
	dir_maybe_free(d);
}

void dir_op_done(struct req *r)
{
	if (r->conn) {
		struct conn *c = r->conn;

		r->conn = NULL;
		if (c->kind == CONN_SERVICE && c->n_ops > 0 && --c->n_ops == 0 && c->retiring)
			dir_conn_close(c);
	}
	r->msgid = 0;
}

void dir_req_finish(struct req *r, int err)
{
	/* Empty lists are passed as an empty array, never as NULL. */
	static char *no_names[1];
	static struct dir_profile empty_users[1];
	struct dir *d = r->d;
	char **names = r->groups.v ? r->groups.v : no_names;
	bool uconn_idle;

	if (r->state == RS_DONE)
		return;
	dir_req_set_state(r, RS_DONE);
	/* A user connection with a bind or a change in flight is never handed on. */
	uconn_idle = !(r->uconn && (r->uphase == UB_BINDING || r->uphase == UB_CHANGING));
	if (r->conn && r->msgid > 0 && r->conn->state == CONN_READY)
		ldap_abandon_ext(r->conn->ld, r->msgid, NULL, NULL);
	dir_op_done(r);
	dir_user_conn_done(r, uconn_idle);
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
			dir_kick(d);
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
				.disabled = r->kind == REQ_LOOKUP && dir_entry_state(d, e) != 0,
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
	r->d->stats.timeouts++;
	dir_req_finish(r, DIR_E_UNAVAILABLE);
}

void dir_req_arm(struct req *r)
{
	/* Every send arms the timer first, so this is when the operation left. */
	r->sent_ns = uv_hrtime();
	uv_timer_start(&r->timer, on_req_timeout, r->d->cfg->ldap.timeout_ms, 0);
}

/* Runs step SEND (answers go to ON_MSG) on a service connection, from the loop. */
void dir_req_service(struct req *r, send_fn send, msg_fn on_msg, bool readonly)
{
	dir_op_done(r);
	r->send = send;
	r->on_msg = on_msg;
	r->readonly = readonly;
	dir_req_set_state(r, RS_QUEUED);
	dir_req_arm(r);
	dir_kick(r->d);
}

/* Sends the current step on C; failures to send are failures of C. */
void dir_req_send_on(struct req *r, struct conn *c)
{
	int rc;

	r->conn = c;
	if (c->kind == CONN_SERVICE)
		c->n_ops++;
	dir_req_arm(r);
	rc = r->send(r);
	if (rc == LDAP_SUCCESS) {
		dir_conn_rearm(c);
		return;
	}
	if (rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR) {
		dir_conn_fail(c, DIR_E_UNAVAILABLE, ldap_err2string(rc));
		return;
	}
	/* libldap's own errors are negative too: always map, never pass on. */
	dir_req_finish(r, dir_map_err(SRC_LDAP, rc, NULL));
}

void dir_req_conn_lost(struct req *r, struct conn *c)
{
	if (r->uconn == c) {
		r->uconn = NULL;
		dir_req_set_uphase(r, UB_DONE);
		if (r->conn == c)
			r->conn = NULL;
		dir_req_finish(r, DIR_E_UNAVAILABLE);
		return;
	}
	r->conn = NULL;
	if (r->readonly && r->retries == 0 && !r->d->closing) {
		r->retries++;
		dir_req_set_state(r, RS_QUEUED);
		dir_kick(r->d);
		return;
	}
	dir_req_finish(r, DIR_E_UNAVAILABLE);
}

int dir_req_new(struct dir *d, enum req_kind kind, void *arg, struct req **out)
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
void dir_req_abort(struct req *r)
{
	dir_req_set_state(r, RS_DONE);
	if (r->prev)
		r->prev->next = r->next;
	else
		r->d->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	uv_close((uv_handle_t *)&r->timer, on_req_closed);
}

/* Hands MSG, read on C, to the request waiting for its message id; nobody
 * waits for one of an abandoned operation, and it is dropped. */
void dir_req_dispatch(struct conn *c, LDAPMessage *msg)
{
	int msgid = ldap_msgid(msg);

	for (struct req *r = c->d->reqs; r; r = r->next) {
		if (r->conn == c && r->msgid == msgid) {
			r->on_msg(r, msg);
			return;
		}
	}
	ldap_msgfree(msg);
}

const char *const dir_op_names[DIR_OP_COUNT] = { "search", "bind", "modify" };
const double dir_latency_bounds[DIR_LATENCY_BUCKETS] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
};

/* Counts the answer of type TYPE and result RC against the server it came from. */
static void count_op(struct req *r, int type, int rc)
{
	struct server *sv = &r->d->srv[r->conn->srv];
	enum dir_op op = type == LDAP_RES_BIND ? DIR_OP_BIND :
			 type == LDAP_RES_SEARCH_RESULT ? DIR_OP_SEARCH : DIR_OP_MODIFY;
	struct dir_op_stats *s = &sv->op[op];
	uint64_t us = (uv_hrtime() - r->sent_ns) / 1000u;
	size_t i = 0;

	while (i < DIR_LATENCY_BUCKETS && (double)us > dir_latency_bounds[i] * 1e6)
		i++;
	s->bucket[i]++;
	s->count++;
	s->sum_us += us;
	if (rc != LDAP_SUCCESS && rc != LDAP_SIZELIMIT_EXCEEDED &&
	    !(op == DIR_OP_BIND && rc == LDAP_INVALID_CREDENTIALS))
		s->errors++;
}

/* Parses a final result; returns the LDAP code and, if wanted, the controls. */
int dir_result_code(struct req *r, LDAPMessage *msg, char **diag, LDAPControl ***ctrls)
{
	int rc = LDAP_OTHER, perr, type = ldap_msgtype(msg);

	r->msgid = 0;
	perr = ldap_parse_result(r->conn->ld, msg, &rc, NULL, diag, NULL, ctrls, 1);
	rc = perr == LDAP_SUCCESS ? rc : perr;
	count_op(r, type, rc);
	return rc;
}
