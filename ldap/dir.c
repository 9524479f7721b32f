/*
 * The directory client's entry points (ldap/dir.h): open, close, and one
 * function per request kind, all on one libuv loop.  The work is in conn.c
 * (one connection), pool.c (the service pool and failover), req.c (requests),
 * auth.c (logins and password changes), groups.c, list.c, entry.c and
 * errors.c.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <lber.h>
#include <ldap.h>

#include "config/cfg.h"
#include "ldap/dir.h"
#include "ldap/internal.h"

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

int dir_read(struct dir *d, const char *base, int scope, const char *filter,
	     const char *const *attrs, size_t limit, dir_users_cb cb, void *arg)
{
	struct req *r;
	int rc = dir_req_new(d, REQ_READ, arg, &r);

	if (rc < 0)
		return rc;
	r->base = strdup(base);
	r->filter = strdup(filter);
	if (!r->base || !r->filter || limit == 0) {
		dir_req_abort(r);
		return DIR_E_INTERNAL;
	}
	r->scope = scope;
	r->read_attrs = attrs;
	r->limit = limit;
	r->users_cb = cb;
	dir_req_service(r, dir_send_read, dir_read_msg, true);
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

void dir_maybe_free(struct dir *d)
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

/* A configured URL (the config checked it), as libldap reads it: the port is
 * the scheme's default unless given.  libldap is handed the same URL as
 * ldap://host:port, written by libldap too: the TLS is ours, and libldap only
 * needs the host (SASL names the service after it). */
static int server_parse(struct server *sv, const char *url)
{
	LDAPURLDesc *lud = NULL;
	char *s = NULL;
	int rc = DIR_E_INTERNAL;

	if (ldap_url_parse(url, &lud) != LDAP_URL_SUCCESS)
		return DIR_E_INTERNAL;
	sv->ldaps = strcasecmp(lud->lud_scheme, "ldaps") == 0;
	if ((!sv->ldaps && strcasecmp(lud->lud_scheme, "ldap") != 0) || !lud->lud_host ||
	    !*lud->lud_host || lud->lud_port <= 0 || lud->lud_port > 65535)
		goto out;
	snprintf(sv->port, sizeof(sv->port), "%d", lud->lud_port);
	sv->host = strdup(lud->lud_host);
	ldap_memfree(lud->lud_scheme);
	lud->lud_scheme = ber_strdup("ldap");
	ldap_memfree(lud->lud_dn);
	lud->lud_dn = NULL;
	lud->lud_scope = LDAP_SCOPE_DEFAULT;
	s = lud->lud_scheme ? ldap_url_desc2str(lud) : NULL;
	sv->url = s ? strdup(s) : NULL;
	ldap_memfree(s);
	if (sv->host && sv->url)
		rc = 0;
out:
	ldap_free_urldesc(lud);
	return rc;
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
	for (size_t i = 0; i < d->n_srv; i++) {
		uv_timer_init(loop, &d->srv[i].retry);
		d->srv[i].retry.data = &d->srv[i];
		d->handles++;
	}
	uv_timer_init(loop, &d->kick);
	d->kick.data = d;
	d->handles++;
	dir_pool_fill(d);
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
		dir_req_finish(d->reqs, DIR_E_UNAVAILABLE);
	for (c = d->conns; c; c = cn) {
		cn = c->next;
		dir_conn_close(c);
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

void dir_stats(const struct dir *d, struct dir_stats *out)
{
	*out = d->stats;
	out->user_conns_idle = dir_conn_kept_count(d, SIZE_MAX);
}

size_t dir_server_count(const struct dir *d)
{
	return d->n_srv;
}

void dir_server_stats(const struct dir *d, size_t i, struct dir_server_stats *out)
{
	const struct server *sv = &d->srv[i];

	memset(out, 0, sizeof *out);
	out->name = sv->name;
	out->down = sv->down;
	out->conn_failures = sv->conn_failures;
	memcpy(out->op, sv->op, sizeof out->op);
	for (const struct conn *c = d->conns; c; c = c->next)
		if (c->kind == CONN_SERVICE && c->state == CONN_READY && !c->retiring && c->srv == i)
			out->in_use = true;
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
	int rc = dir_req_new(d, kind, arg, &r);

	if (rc < 0)
		return rc;
	rc = user_filter_for(d, username, &r->filter);
	if (rc == 0) {
		r->username = strdup(username);
		if (!r->username)
			rc = DIR_E_INTERNAL;
	}
	if (rc < 0) {
		dir_req_abort(r);
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
		dir_req_abort(r);
		return DIR_E_INTERNAL;
	}
	r->pw_len = password_len;
	r->bind_err = DIR_GUARD_NO_BIND;
	if (dir_guard_waiting(d->guard)) {
		dir_req_set_state(r, RS_POLICY_WAIT);
		dir_req_arm(r);
		return 0;
	}
	dir_req_service(r, dir_send_user_search, dir_user_search_msg, true);
	return 0;
}

void dir_guard_settled(struct dir *d)
{
	for (struct req *r = d->reqs; r; r = r->next)
		if (r->state == RS_POLICY_WAIT)
			dir_req_service(r, dir_send_user_search, dir_user_search_msg, true);
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
	dir_req_service(r, dir_send_user_search, dir_user_search_msg, true);
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
		dir_req_abort(r);
		return DIR_E_INTERNAL;
	}
	r->pw_len = old_len;
	r->newpw_len = new_len;
	dir_req_service(r, dir_send_user_search, dir_user_search_msg, true);
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
	rc = dir_req_new(d, REQ_USERS, arg, &r);
	if (rc < 0 || !all) {
		if (rc == 0)
			dir_req_abort(r);
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
		dir_req_abort(r);
		free(esc);
		free(all);
		return DIR_E_INTERNAL;
	}
	free(esc);
	free(all);
	dir_req_service(r, dir_send_list_first, dir_list_msg, true);
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
	rc = dir_req_new(d, REQ_USERS, arg, &r);
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
			dir_req_abort(r);
			return DIR_E_INTERNAL;
		}
	}
	dir_req_service(r, dir_send_list_first, dir_list_msg, true);
	return 0;
}

int dir_list_groups(struct dir *d, size_t limit, dir_names_cb cb, void *arg)
{
	struct req *r;
	int rc;

	if (limit == 0)
		return DIR_E_BAD_REQUEST;
	rc = dir_req_new(d, REQ_GROUPS, arg, &r);
	if (rc < 0)
		return rc;
	r->names_cb = cb;
	r->limit = limit;
	r->filter = strdup(d->cfg->ldap.type == CFG_DIR_AD ?
				   "(objectClass=group)" :
				   "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)"
				   "(objectClass=posixGroup))");
	if (!r->filter) {
		dir_req_abort(r);
		return DIR_E_INTERNAL;
	}
	dir_req_service(r, dir_send_list_first, dir_list_msg, true);
	return 0;
}
