/*
 * Paged listing (RFC 2696) of users and groups, and the plain reads guard.c
 * makes of the lockout policy.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lber.h>
#include <ldap.h>

#include "config/cfg.h"
#include "ldap/dir.h"
#include "ldap/internal.h"

bool dir_next_page(struct req *r, LDAPControl **ctrls)
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

int dir_page_result(struct req *r, LDAPMessage *msg, LDAPControl ***ctrls)
{
	int rc = dir_result_code(r, msg, NULL, ctrls);

	/* A size limit still ends with the entries that did arrive. */
	if (rc != LDAP_SUCCESS && rc != LDAP_SIZELIMIT_EXCEEDED) {
		ldap_controls_free(*ctrls);
		*ctrls = NULL;
		dir_req_finish(r, dir_map_err(SRC_LDAP, rc, NULL));
		return DIR_E_INTERNAL;
	}
	return 0;
}

void dir_page_next(struct req *r, send_fn send)
{
	/* The cookie belongs to the connection that gave it: the next page goes
	 * there too, and a connection that is gone fails every request on it. */
	struct conn *c = r->conn;
	int rc = send(r);

	if (rc == LDAP_SUCCESS)
		return;
	if (rc == LDAP_SERVER_DOWN)
		dir_conn_fail(c, DIR_E_UNAVAILABLE, ldap_err2string(rc));
	else
		dir_req_finish(r, dir_map_err(SRC_LDAP, rc, NULL));
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
	for (size_t i = 0; i < r->n_users; i++)
		dir_profile_clear(&r->users[i]);
	r->n_users = 0;
	dir_strv_free(&r->groups);
	if (r->cookie.bv_val)
		ber_memfree(r->cookie.bv_val);
	r->cookie.bv_val = NULL;
	r->cookie.bv_len = 0;
}

int dir_send_list_first(struct req *r)
{
	list_reset(r);
	return send_list(r);
}

static int list_add_user(struct req *r, LDAPMessage *msg)
{
	struct entry e = { 0 };
	struct dir_profile *p;
	int rc = dir_entry_parse(r->d, r->conn->ld, msg, &e);

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
	p->disabled = dir_entry_state(r->d, &e) != 0 ||
		      (e.has_uac && (e.uac & UF_ACCOUNTDISABLE));
	e.uname = e.dn = e.mail = NULL;
	/* Never a NULL array, even an empty one: callers may memcpy it. */
	p->groups = calloc(e.n_memberof ? e.n_memberof : 1, sizeof(char *));
	if (!p->groups)
		rc = DIR_E_INTERNAL;
	else if (r->d->cfg->ldap.groups != CFG_GROUPS_NONE) {
		for (size_t i = 0; i < e.n_memberof; i++) {
			char *cn = dir_dn_cn(e.memberof[i]);

			if (cn)
				p->groups[p->n_groups++] = cn;
		}
	}
	r->n_users++;
out:
	dir_entry_free(&e);
	return rc;
}

void dir_list_msg(struct req *r, LDAPMessage *msg)
{
	int type = ldap_msgtype(msg), rc;
	LDAPControl **ctrls = NULL;
	size_t have = r->kind == REQ_GROUPS ? r->groups.n : r->n_users;

	if (type == LDAP_RES_SEARCH_ENTRY) {
		rc = 0;
		if (have < r->limit) {
			if (r->kind == REQ_GROUPS) {
				char *dn = ldap_get_dn(r->conn->ld, msg);
				char *cn = dn ? dir_dn_cn(dn) : NULL;

				if (cn)
					rc = dir_strv_add(&r->groups, cn);
				free(cn);
				ldap_memfree(dn);
			} else {
				rc = list_add_user(r, msg);
			}
		}
		ldap_msgfree(msg);
		if (rc < 0)
			dir_req_finish(r, rc);
		return;
	}
	if (type != LDAP_RES_SEARCH_RESULT) {
		ldap_msgfree(msg);
		return;
	}
	if (dir_page_result(r, msg, &ctrls) < 0)
		return;
	if (dir_next_page(r, ctrls) && have < r->limit) {
		ldap_controls_free(ctrls);
		dir_page_next(r, send_list);
		return;
	}
	ldap_controls_free(ctrls);
	dir_req_finish(r, 0);
}

/* ---- reads for guard.c ----------------------------------------------------- */

int dir_send_read(struct req *r)
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

void dir_read_msg(struct req *r, LDAPMessage *msg)
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
			dir_req_finish(r, rc);
		return;
	}
	if (type != LDAP_RES_SEARCH_RESULT) {
		ldap_msgfree(msg);
		return;
	}
	rc = dir_result_code(r, msg, NULL, NULL);
	dir_req_finish(r, rc == LDAP_SUCCESS || rc == LDAP_SIZELIMIT_EXCEEDED ? 0 :
		      dir_map_err(SRC_LDAP, rc, NULL));
}
