/*
 * Password requests: finding the user as the service account, the user's bind
 * on a connection of its own (bounded in number, handed on during a burst and
 * kept for the next login's bind), and the password change.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lber.h>
#include <ldap.h>

#include "config/cfg.h"
#include "ldap/dir.h"
#include "ldap/internal.h"

static void user_bind_result(struct req *r, LDAPMessage *msg);
static void user_conn_start(struct req *r);

int dir_send_user_search(struct req *r)
{
	dir_entry_free(&r->ent);
	r->n_found = 0;
	return ldap_search_ext(r->conn->ld, r->d->cfg->ldap.base_dn, LDAP_SCOPE_SUBTREE,
			       r->filter, (char **)(uintptr_t)r->d->user_attrs, 0, NULL, NULL,
			       NULL, 2, &r->msgid);
}

void dir_user_conn_ready(struct req *r)
{
	struct conn *c = r->uconn;
	struct berval cred = { r->pw_len, r->pw };
	LDAPControl *pp = NULL, *ctrls[2] = { NULL, NULL };
	int rc;

	/* Never a password over anything but verified TLS. */
	if (!c->tls || !c->verified || c->state != CONN_READY || r->pw_len == 0) {
		dir_req_finish(r, DIR_E_INTERNAL);
		return;
	}
	r->conn = c;
	r->on_msg = user_bind_result;
	dir_req_arm(r);
	if (ldap_create_passwordpolicy_control(c->ld, &pp) == LDAP_SUCCESS)
		ctrls[0] = pp;
	/* Always the DN the service search returned (or the decoy's). */
	rc = ldap_sasl_bind(c->ld, r->ent.dn, LDAP_SASL_SIMPLE, &cred, ctrls, NULL, &r->msgid);
	if (pp)
		ldap_control_free(pp);
	if (rc != LDAP_SUCCESS && c->binds > 0 &&
	    (rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR)) {
		/* A kept connection the server closed since it was checked: the
		 * bind never left, so another connection may carry it. */
		r->uconn = NULL;
		r->conn = NULL;
		r->msgid = 0;
		c->owner = NULL;
		r->d->stats.user_conns_stale++;
		dir_conn_fail(c, DIR_E_UNAVAILABLE, "kept connection closed by the server");
		user_conn_start(r);
		return;
	}
	if (rc != LDAP_SUCCESS) {
		dir_req_finish(r, dir_map_err(SRC_LDAP, rc, NULL));
		return;
	}
	c->binds++;
	r->d->stats.user_binds++;
	dir_req_set_uphase(r, UB_BINDING);
	dir_conn_rearm(c);
}

/* Takes a kept connection to the server the user was found on, else opens
 * the request's own, or queues the request while USER_CONNS_MAX user
 * connections are open: a burst of logins then costs the directory a bounded
 * number of TLS handshakes at a time.  Kept connections to other servers give
 * way to it. */
static void user_conn_start(struct req *r)
{
	struct dir *d = r->d;
	struct conn *c = dir_conn_take(d, r->srv);

	if (c) {
		d->stats.user_binds_reused++;
		dir_req_set_uphase(r, UB_OPENING);
		r->uconn = c;
		c->owner = r;
		dir_user_conn_ready(r);
		return;
	}
	if (d->n_user_conns >= USER_CONNS_MAX) {
		dir_req_set_uphase(r, UB_WAITING);
		if (dir_conn_kept_count(d, SIZE_MAX) > 0)
			dir_conn_drop_kept(d, 0, d->n_srv);
		return;
	}
	dir_req_set_uphase(r, UB_OPENING);
	r->uconn = dir_conn_new(d, r->srv, CONN_USER);
	if (!r->uconn) {
		dir_req_finish(r, DIR_E_INTERNAL);
		return;
	}
	r->uconn->owner = r;
}

/* Lets go of the request's user connection.  One that may carry another bind
 * (IDLE: nothing in flight; its bind answered with a result that leaves it
 * usable) goes straight to the oldest request waiting for one to the same
 * server, whose bind replaces the identity, or is kept for the next login
 * while its server keeps fewer than USER_IDLE_MAX and is not down; otherwise
 * it is closed.  A transport or TLS failure or a timeout never gets here with
 * IDLE set: those close the connection.  Never a pool connection: those only
 * ever bind as the service account. */
void dir_user_conn_done(struct req *r, bool idle)
{
	struct conn *c = r->uconn;
	struct dir *d = r->d;
	struct req *w, *first = NULL;

	if (!c)
		return;
	r->uconn = NULL;
	c->owner = NULL;
	dir_req_set_uphase(r, UB_DONE);
	if (idle && r->ubind_reusable && c->state == CONN_READY && !d->closing) {
		for (w = d->reqs; w; w = w->next)
			if (w != r && w->uphase == UB_WAITING && w->state != RS_DONE &&
			    w->srv == c->srv)
				first = w;
		if (first) {
			dir_req_set_uphase(first, UB_OPENING);
			first->uconn = c;
			c->owner = first;
			dir_user_conn_ready(first);
			return;
		}
		if (!d->srv[c->srv].down && dir_conn_kept_count(d, c->srv) < USER_IDLE_MAX) {
			dir_conn_keep(c);
			return;
		}
	}
	dir_conn_close(c);
}

void dir_user_conn_next(struct dir *d)
{
	struct req *r, *first = NULL;

	/* The list is newest first; the oldest waiter goes first. */
	for (r = d->reqs; r; r = r->next)
		if (r->uphase == UB_WAITING && r->state != RS_DONE)
			first = r;
	if (first)
		user_conn_start(first);
}

void dir_user_search_msg(struct req *r, LDAPMessage *msg)
{
	struct conn *c = r->conn;
	int type = ldap_msgtype(msg), rc;

	if (type == LDAP_RES_SEARCH_ENTRY) {
		if (r->n_found++ == 0 && (dir_entry_parse(r->d, c->ld, msg, &r->ent) < 0 ||
		    (r->kind == REQ_LOOKUP && dir_lookup_name(c->ld, msg, r->d->uattr, r->username,
							       r->ent.dn, &r->ent.uname) < 0))) {
			ldap_msgfree(msg);
			dir_req_finish(r, DIR_E_INTERNAL);
			return;
		}
		ldap_msgfree(msg);
		return;
	}
	if (type != LDAP_RES_SEARCH_RESULT) {
		ldap_msgfree(msg);
		return;
	}
	rc = dir_result_code(r, msg, NULL, NULL);
	r->srv = c->srv;
	dir_op_done(r);
	if (rc != LDAP_SUCCESS && rc != LDAP_SIZELIMIT_EXCEEDED) {
		dir_req_finish(r, dir_map_err(SRC_LDAP, rc, NULL));
		return;
	}
	if (r->kind == REQ_AUTH) {
		dir_auth_found(r);
		return;
	}
	/* None, or more than one: the same answer as a wrong password.  A lookup
	 * also needs a value that is the name itself (dir_lookup_name). */
	if (r->n_found != 1 || (r->kind == REQ_LOOKUP && !r->ent.uname)) {
		dir_req_finish(r, r->kind == REQ_LOOKUP ? DIR_E_NOT_FOUND : DIR_E_INVALID_CREDENTIALS);
		return;
	}
	if (r->kind == REQ_LOOKUP) {
		dir_groups_start(r);
		return;
	}
	dir_req_arm(r);
	user_conn_start(r);
}

/* A login's search is done.  An unknown user (no entry, or several) gets a bind
 * as a DN that does not exist, on a user connection like any other, whose
 * answer is ignored: both cost the directory the same round trips, so the
 * time to the answer does not tell whether the user exists.  The guard then
 * decides whether the bind is sent at all. */
void dir_auth_found(struct req *r)
{
	int rc;

	if (r->n_found != 1) {
		dir_entry_free(&r->ent);
		r->decoy = true;
		if ((rc = dir_decoy_dn(r->d->cfg->ldap.base_dn, &r->ent.dn)) < 0) {
			dir_req_finish(r, rc);
			return;
		}
	}
	dir_req_set_state(r, RS_RUNNING);
	rc = dir_guard_begin(r->d->guard, r->decoy ? NULL : r->ent.dn, r->username,
			     &r->guard_key);
	if (rc == DIR_GUARD_WAIT) {
		dir_req_set_state(r, RS_PARKED);	/* on_kick asks again when a login ends */
		return;
	}
	if (rc < 0) {
		dir_req_finish(r, rc);
		return;
	}
	dir_req_arm(r);
	user_conn_start(r);
}

/* Maps the user's bind: result code (also in *CODE), AD diagnostic, ppolicy
 * control. */
static int user_bind_err(struct req *r, LDAPMessage *msg, int *code)
{
	LDAPControl **ctrls = NULL, *pc;
	char *diag = NULL;
	int rc, err, pperr = DIR_OK;

	rc = dir_result_code(r, msg, &diag, &ctrls);
	*code = rc;
	pc = ctrls ? ldap_control_find(LDAP_CONTROL_PASSWORDPOLICYRESPONSE, ctrls, NULL) : NULL;
	if (pc) {
		ber_int_t expire = -1, grace = -1;
		LDAPPasswordPolicyError pe = PP_noError;

		if (ldap_parse_passwordpolicy_control(r->conn->ld, pc, &expire, &grace, &pe) ==
		    LDAP_SUCCESS)
			pperr = dir_map_err(SRC_PPOLICY, (int)pe, NULL);
	}
	err = dir_map_err(SRC_USER_BIND, rc, diag);
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
	dir_req_arm(r);
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
	int type = ldap_msgtype(msg), err, rc;

	if (type != LDAP_RES_BIND) {
		ldap_msgfree(msg);
		return;
	}
	err = user_bind_err(r, msg, &rc);
	/* Only a login's connection is kept: after a password change it is
	 * simply closed. */
	r->ubind_reusable = r->kind == REQ_AUTH && dir_ubind_keep(rc);
	r->msgid = 0;
	dir_req_set_uphase(r, UB_BOUND);
	if (r->decoy)
		err = DIR_E_INVALID_CREDENTIALS;
	r->bind_err = err;
	if (r->kind == REQ_CHPW) {
		/* AD refuses binds with an expired or must-change password, yet
		 * those answers prove the old password; the change then goes over
		 * the service connection, where AD checks the old value again. */
		if (r->d->cfg->ldap.type == CFG_DIR_AD &&
		    (err == DIR_E_PASSWORD_MUST_CHANGE || err == DIR_E_PASSWORD_EXPIRED)) {
			r->conn = NULL;
			dir_req_service(r, send_ad_modify_svc, passwd_result, false);
			return;
		}
		if (err && err != DIR_E_PASSWORD_MUST_CHANGE && err != DIR_E_PASSWORD_EXPIRED) {
			dir_req_finish(r, err);
			return;
		}
		rc = send_passwd_change(r, r->uconn);
		if (rc != LDAP_SUCCESS) {
			dir_req_finish(r, dir_map_err(SRC_LDAP, rc, NULL));
			return;
		}
		dir_req_set_uphase(r, UB_CHANGING);
		return;
	}
	if (err == DIR_OK)
		err = dir_entry_state(r->d, &r->ent);
	r->conn = NULL;
	dir_user_conn_done(r, true);
	if (err) {
		dir_req_finish(r, err);
		return;
	}
	dir_groups_start(r);
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
	dir_wipe_free(oq, r->pw_len + 3);
	dir_wipe_free(nq, r->newpw_len + 3);
	dir_wipe_free((char *)o16, olen);
	dir_wipe_free((char *)n16, nlen);
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
	rc = dir_result_code(r, msg, &diag, &ctrls);
	if (r->uconn && r->conn == r->uconn)
		dir_req_set_uphase(r, UB_BOUND);
	err = dir_map_err(SRC_PASSWD, rc, diag);
	pc = ctrls ? ldap_control_find(LDAP_CONTROL_PASSWORDPOLICYRESPONSE, ctrls, NULL) : NULL;
	if (pc && err) {
		LDAPPasswordPolicyError pe = PP_noError;

		if (ldap_parse_passwordpolicy_control(r->conn->ld, pc, NULL, NULL, &pe) ==
			    LDAP_SUCCESS && dir_map_err(SRC_PPOLICY, (int)pe, NULL))
			err = dir_map_err(SRC_PPOLICY, (int)pe, NULL);
	}
	if (rc != LDAP_SUCCESS)
		log_msg(LOGL_INFO, "ldap: password change refused: %s (%s)",
			ldap_err2string(rc), diag ? diag : "");
	ldap_memfree(diag);
	ldap_controls_free(ctrls);
	dir_req_finish(r, err);
}
