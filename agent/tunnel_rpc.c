/*
 * The tunnel's messages (docs/protocol.md): requests from the hub served
 * through the directory, their answers, the profile JSON, and the agent's own
 * calls to the hub (session_check, login).  Everything goes through t->ops, so
 * tests/unit/test_tunnel_rpc.c runs the dispatch against a fake directory and
 * link; tunnel.c owns the link itself.
 *
 * A directory answer is sent only if its request came in on the link that is
 * still open (the generation number), so nothing is ever answered on a later
 * link.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/tunnel_internal.h"
#include "agent/tunnel_msg.h"

enum req_kind { Q_AUTH, Q_LOOKUP, Q_CHANGE, Q_USERS, Q_GROUPS };

/* One request from the hub at the directory. */
struct treq {
	struct agent_tunnel *t;
	unsigned gen;
	enum req_kind kind;
	char id[129];
	char client_ip[INET6_ADDRSTRLEN];	/* authenticate: the end user's address, or "" */
};

static json_t *profile_json(const struct dir_profile *p)
{
	json_t *o, *groups, *attrs, *vals;
	size_t i, j;

	groups = json_array();
	attrs = json_object();
	for (i = 0; i < p->n_groups; i++)
		json_array_append_new(groups, json_string(p->groups[i]));
	for (i = 0; i < p->n_attrs; i++) {
		vals = json_array();
		for (j = 0; j < p->attrs[i].n_values; j++)
			json_array_append_new(vals, json_string(p->attrs[i].values[j]));
		json_object_set_new(attrs, p->attrs[i].name, vals);
	}
	o = json_pack("{s:s?, s:s?, s:s?, s:s?, s:o, s:o}", "username", p->username,
		      "dn", p->dn, "display_name", p->display_name, "email", p->email,
		      "groups", groups, "attributes", attrs);
	return o;
}

static void send_error(struct agent_tunnel *t, const char *id, const char *code)
{
	t->ops->send(t, json_pack("{s:s, s:s, s:b, s:s}", "type", "result", "id", id, "ok", 0,
			       "error", code));
}

/* Whether R's answer may go out: only on the link the request came in on. */
static bool deliverable(struct agent_tunnel *t, const struct treq *r)
{
	return t->state == T_OPEN && t->gen == r->gen;
}

static void req_done(struct treq *r)
{
	struct agent_tunnel *t = r->t;

	t->inflight--;
	free(r);
	tun_maybe_free(t);
}

/*
 * Answers R — with KEY: VALUE when ERR is 0 (KEY NULL for a bare success), else
 * with ERR's code — but only on the link the request came in on; then releases R.
 * Takes VALUE in every case.
 */
static void answer(struct treq *r, int err, const char *key, json_t *value)
{
	struct agent_tunnel *t = r->t;
	json_t *m;

	if (!deliverable(t, r)) {
		log_msg(LOGL_DEBUG, "hub: result for request %s dropped: its link is gone", r->id);
	} else if (err < 0) {
		send_error(t, r->id, dir_code(err));
	} else {
		m = json_pack("{s:s, s:s, s:b}", "type", "result", "id", r->id, "ok", 1);
		if (m && key && json_object_set(m, key, value) < 0) {
			json_decref(m);
			m = NULL;
		}
		t->ops->send(t, m);
	}
	json_decref(value);
	req_done(r);
}

static void on_profile(void *arg, int err, const struct dir_profile *p)
{
	struct treq *r = arg;

	if (err < 0 && r->client_ip[0])
		log_msg(LOGL_INFO, "hub: authenticate %s from client %s refused: %s", r->id,
			r->client_ip, dir_code(err));
	if (err < 0 || !p)
		answer(r, err < 0 ? err : DIR_E_INTERNAL, NULL, NULL);
	else if (r->kind == Q_LOOKUP && p->disabled)
		answer(r, DIR_E_ACCOUNT_DISABLED, NULL, NULL);
	else
		answer(r, 0, "profile", profile_json(p));
}

static void on_users(void *arg, int err, const struct dir_profile *users, size_t n)
{
	json_t *arr = err < 0 ? NULL : json_array();
	size_t i;

	for (i = 0; i < n && arr; i++)
		json_array_append_new(arr, profile_json(&users[i]));
	answer(arg, err < 0 ? err : arr ? 0 : DIR_E_INTERNAL, "users", arr);
}

static void on_names(void *arg, int err, char *const *names, size_t n)
{
	json_t *arr = err < 0 ? NULL : json_array();
	size_t i;

	for (i = 0; i < n && arr; i++)
		json_array_append_new(arr, json_string(names[i]));
	answer(arg, err < 0 ? err : arr ? 0 : DIR_E_INTERNAL, "groups", arr);
}

static void on_changed(void *arg, int err)
{
	answer(arg, err, NULL, NULL);
}

/* Starts the directory request for M; a dir_err when it cannot start. */
static int start_request(struct agent_tunnel *t, const struct tmsg *m, struct treq *r)
{
	switch (m->kind) {
	case TMSG_AUTHENTICATE:
		r->kind = Q_AUTH;
		memcpy(r->client_ip, m->client_ip, sizeof(r->client_ip));
		return t->ops->authenticate(t->dir, m->username, m->password, m->password_len,
					on_profile, r);
	case TMSG_LOOKUP:
		r->kind = Q_LOOKUP;
		return t->ops->lookup(t->dir, m->username, on_profile, r);
	case TMSG_CHANGE_PASSWORD:
		r->kind = Q_CHANGE;
		return t->ops->change_password(t->dir, m->username, m->old_password,
					   m->old_password_len, m->password, m->password_len,
					   on_changed, r);
	case TMSG_SEARCH_USERS:
		r->kind = Q_USERS;
		return t->ops->search_users(t->dir, m->query, m->limit, on_users, r);
	case TMSG_LIST_GROUPS:
		r->kind = Q_GROUPS;
		return t->ops->list_groups(t->dir, m->limit, on_names, r);
	default:
		return DIR_E_BAD_REQUEST;
	}
}

void tun_rpc_dispatch(struct agent_tunnel *t, const uint8_t *msg, size_t len)
{
	struct tmsg m;
	struct treq *r;
	int rc;

	tmsg_parse(msg, len, &m);
	switch (m.kind) {
	case TMSG_NONE:
		t->ops->fail(t, NET_WS_BAD_DATA,
			     "hub sent a message that is not a JSON object with a type");
		goto out;
	case TMSG_NO_ID:
		/* Without an id there is no way to answer; the link itself is fine. */
		log_msg(LOGL_WARN, "hub: a request without a valid id ignored");
		goto out;
	case TMSG_RESULT:
		/* An answer to one of our own requests; a late one (after its
		 * timeout) finds nobody waiting. */
		if (!calls_answer(&t->calls, m.root))
			log_msg(LOGL_DEBUG, "hub: result for no pending request %s dropped", m.id);
		goto out;
	default:
		break;
	}
	if (t->inflight >= TUNNEL_MAX_INFLIGHT) {
		t->busy++;
		send_error(t, m.id, "busy");
		goto out;
	}
	if (!t->dir) {
		send_error(t, m.id, dir_code(DIR_E_UNAVAILABLE));
		goto out;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		send_error(t, m.id, dir_code(DIR_E_INTERNAL));
		goto out;
	}
	r->t = t;
	r->gen = t->gen;
	snprintf(r->id, sizeof(r->id), "%s", m.id);
	t->inflight++;
	rc = start_request(t, &m, r);
	if (rc < 0) {
		send_error(t, m.id, dir_code(rc));
		req_done(r);
	}
out:
	tmsg_free(&m);
}

int tun_rpc_hello(struct agent_tunnel *t)
{
	const char *url = t->cfg->https.present ? t->cfg->https.public_url : NULL;

	return t->ops->send(t, json_pack("{s:s, s:s, s:s, s:[s,s,s,s,s,s], s:s?}",
		"type", "hello", "agent", t->cfg->agent.name, "version", DIRBRIDGE_VERSION,
		"capabilities", "authenticate", "lookup", "change_password", "search_users",
		"list_groups", "login", "public_url", url));
}

/* Sends M (taken) as a request of our own, with a fresh id, whose answer goes
 * to CB.  CB is not called when this fails. */
static int call_start(struct agent_tunnel *t, json_t *m, agent_answer_cb cb, void *arg)
{
	char id[sizeof(((struct call *)0)->id)];
	int rc;

	if (!m)
		return -ENOMEM;
	rc = calls_add(&t->calls, uv_now(t->loop), cb, arg, id);
	if (rc < 0) {
		if (rc == -EBUSY)
			log_msg(LOGL_WARN, "hub: %u requests to the hub unanswered; refusing more",
				CALLS_MAX);
		json_decref(m);
		return rc;
	}
	if (json_object_set_new(m, "id", json_string(id)) < 0) {
		calls_forget(&t->calls, id);
		json_decref(m);
		return -ENOMEM;
	}
	rc = t->ops->send(t, m);
	if (rc < 0)
		calls_forget(&t->calls, id);
	return rc;
}

int agent_tunnel_session_check(struct agent_tunnel *t, const char *session, agent_answer_cb cb,
			       void *arg)
{
	if (!agent_tunnel_connected(t))
		return -ENOTCONN;
	return call_start(t, json_pack("{s:s, s:s}", "type", "session_check", "session", session),
			  cb, arg);
}

int agent_tunnel_login(struct agent_tunnel *t, const char *session, const char *method,
		       const struct dir_profile *p, const char *serial, const char *issuer,
		       const char *sha256, agent_answer_cb cb, void *arg)
{
	json_t *cert = NULL;

	if (!agent_tunnel_connected(t)) {
		log_msg(LOGL_WARN, "hub: not connected; login for session %s not delivered",
			session);
		return -ENOTCONN;
	}
	if (!p)
		return -EINVAL;
	if (serial)
		cert = json_pack("{s:s, s:s?, s:s?}", "serial", serial, "issuer", issuer,
				 "sha256", sha256);
	return call_start(t, json_pack("{s:s, s:s, s:s, s:o, s:o?}", "type", "login",
		"session", session, "method", method, "profile", profile_json(p),
		"certificate", cert), cb, arg);
}

/* ---- the link's side: frames in, messages out ----------------------------- */

/* Fails the WebSocket: the close frame goes out, nothing more is read; the
 * link ends once it is sent, and the tunnel dials again. */
static void ws_fail(struct agent_tunnel *t, enum net_ws_close code, const char *why)
{
	struct link *l = t->link;

	log_msg(LOGL_WARN, "hub: %s; closing the link", why);
	if (l && l->ws)
		net_ws_fail(l->ws, code, why);
}

/* Queues M (taken) on the current link. */
static int send_json(struct agent_tunnel *t, json_t *m)
{
	struct link *l = t->link;
	char *text;
	size_t len;
	int rc;

	if (!m)
		return -ENOMEM;
	text = json_dumps(m, JSON_COMPACT);
	json_decref(m);
	if (!text)
		return -ENOMEM;
	len = strlen(text);
	rc = l && l->ws ? net_ws_send_text(l->ws, text, len) : NET_E_CLOSED;
	explicit_bzero(text, len);
	free(text);
	if (rc < 0)
		return -EPIPE;
	if (net_ws_queued(l->ws) > TUNNEL_MAX_QUEUED) {
		l->fatal = true;
		snprintf(l->why, sizeof(l->why), "hub does not read: %u MB unsent",
			 TUNNEL_MAX_QUEUED >> 20);
	}
	tun_flush(t);
	return 0;
}

const struct tun_ops tun_ops_live = {
	.authenticate = dir_authenticate,
	.lookup = dir_lookup,
	.change_password = dir_change_password,
	.search_users = dir_search_users,
	.list_groups = dir_list_groups,
	.send = send_json,
	.fail = ws_fail,
};

void tun_rpc_on_msg(void *owner, const struct net_ws_msg *m)
{
	struct link *l = owner;

	if (!l->t)
		return;
	switch (m->op) {
	case NET_WS_TEXT:
		tun_rpc_dispatch(l->t, m->data, m->len);
		break;
	case NET_WS_BINARY:
		ws_fail(l->t, NET_WS_UNSUPPORTED, "hub sent a binary frame");
		break;
	case NET_WS_PONG:
		l->t->awaiting_pong = false;
		break;
	case NET_WS_CLOSE:
		log_msg(LOGL_INFO, "hub: hub closed the link (code %u)", m->status);
		snprintf(l->why, sizeof(l->why), "hub closed the link");
		break;
	default:
		break;
	}
}
