/*
 * A profile's groups: memberOf as found, AD's transitive matching rule
 * (paged), or a bounded walk of OpenLDAP's member/uniqueMember.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lber.h>
#include <ldap.h>

#include "config/cfg.h"
#include "ldap/dir.h"
#include "ldap/internal.h"

static void groups_walk_next(struct req *r);

static int add_group_dn(struct req *r, const char *dn)
{
	char *cn;
	int rc = 0;

	if (dir_strv_has(&r->seen, dn) || r->seen.n >= GROUPS_MAX)
		return 0;
	if (dir_strv_add(&r->seen, dn) < 0)
		return DIR_E_INTERNAL;
	cn = dir_dn_cn(dn);
	if (cn && !dir_strv_has(&r->groups, cn))
		rc = dir_strv_add(&r->groups, cn);
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
	if (rc == LDAP_SUCCESS)
		r->d->stats.group_searches++;
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

static void group_search_msg(struct req *r, LDAPMessage *msg)
{
	int type = ldap_msgtype(msg), rc;
	LDAPControl **ctrls = NULL;

	if (type == LDAP_RES_SEARCH_ENTRY) {
		char *dn = ldap_get_dn(r->conn->ld, msg);

		ldap_msgfree(msg);
		if (dn) {
			if (r->d->cfg->ldap.type != CFG_DIR_AD && r->seen.n < GROUPS_MAX &&
			    !dir_strv_has(&r->seen, dn) && dir_strv_add(&r->frontier, dn) < 0) {
				ldap_memfree(dn);
				dir_req_finish(r, DIR_E_INTERNAL);
				return;
			}
			rc = add_group_dn(r, dn);
			ldap_memfree(dn);
			if (rc < 0)
				dir_req_finish(r, rc);
		}
		return;
	}
	if (type != LDAP_RES_SEARCH_RESULT) {
		ldap_msgfree(msg);
		return;
	}
	if (dir_page_result(r, msg, &ctrls) < 0)
		return;
	if (r->paged && dir_next_page(r, ctrls) && r->seen.n < GROUPS_MAX) {
		ldap_controls_free(ctrls);
		dir_page_next(r, send_group_search);
		return;
	}
	ldap_controls_free(ctrls);
	dir_op_done(r);
	if (r->d->cfg->ldap.type == CFG_DIR_AD) {
		dir_req_finish(r, 0);
		return;
	}
	groups_walk_next(r);
}

/* OpenLDAP: "which groups list any of these as member", for up to
 * GROUP_BATCH not yet searched DNs at a time, until no new group appears or
 * the search cap is hit.  Every group found at one nesting level is in the
 * frontier before the next search goes out, so a level costs one search (one
 * round trip) however many groups it has, up to GROUP_BATCH.  The visited set
 * (r->seen) ends cycles; the caps bound the work a hostile directory can ask
 * for.  Nothing is cached: every login sees the groups as they are now. */
static void groups_walk_next(struct req *r)
{
	char *f = NULL;
	int rc = DIR_E_NOT_FOUND;

	while (rc == DIR_E_NOT_FOUND) {
		size_t take;

		if (r->frontier.n == 0 || r->depth >= GROUP_SEARCHES_MAX) {
			dir_req_finish(r, 0);
			return;
		}
		take = r->frontier.n < GROUP_BATCH ? r->frontier.n : GROUP_BATCH;
		r->depth++;
		rc = dir_group_filter(r->frontier.v + r->frontier.n - take, take, &f);
		for (size_t i = 0; i < take; i++)
			free(r->frontier.v[--r->frontier.n]);
	}
	if (rc < 0) {
		dir_req_finish(r, rc);
		return;
	}
	free(r->filter);
	r->filter = f;
	r->paged = false;
	dir_req_service(r, send_group_search_first, group_search_msg, true);
}

void dir_groups_start(struct req *r)
{
	const struct cfg *cfg = r->d->cfg;
	struct entry *e = &r->ent;
	char *esc = NULL, *f;

	if (cfg->ldap.groups == CFG_GROUPS_NONE) {
		dir_req_finish(r, 0);
		return;
	}
	if (cfg->ldap.groups == CFG_GROUPS_DIRECT) {
		for (size_t i = 0; i < e->n_memberof; i++) {
			if (add_group_dn(r, e->memberof[i]) < 0) {
				dir_req_finish(r, DIR_E_INTERNAL);
				return;
			}
		}
		dir_req_finish(r, 0);
		return;
	}
	if (dir_filter_escape(e->dn, strlen(e->dn), &esc) < 0) {
		dir_req_finish(r, DIR_E_INTERNAL);
		return;
	}
	if (cfg->ldap.type == CFG_DIR_AD) {
		f = malloc(strlen(esc) + 80);
		if (f)
			sprintf(f, "(&(objectClass=group)(member:1.2.840.113556.1.4.1941:=%s))", esc);
		free(esc);
		if (!f) {
			dir_req_finish(r, DIR_E_INTERNAL);
			return;
		}
		free(r->filter);
		r->filter = f;
		r->paged = true;
		dir_req_service(r, send_group_search_first, group_search_msg, true);
		return;
	}
	free(esc);
	/* OpenLDAP: start the walk from the user's own DN. */
	if (dir_strv_add(&r->seen, e->dn) < 0 || dir_strv_add(&r->frontier, e->dn) < 0) {
		dir_req_finish(r, DIR_E_INTERNAL);
		return;
	}
	groups_walk_next(r);
}
