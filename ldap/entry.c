/*
 * Search entries: what a profile needs, copied out of libldap's messages, the
 * account state they show, and the small string helpers the requests share.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <lber.h>
#include <ldap.h>

#include "config/cfg.h"
#include "ldap/dir.h"
#include "ldap/internal.h"

void dir_wipe_free(char *p, size_t len)
{
	if (p) {
		explicit_bzero(p, len);
		free(p);
	}
}

int dir_strv_add(struct strv *s, const char *v)
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

bool dir_strv_has(const struct strv *s, const char *v)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcasecmp(s->v[i], v) == 0)
			return true;
	return false;
}

void dir_strv_free(struct strv *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* The cn of the first RDN of DN, parsed as a DN (never split by hand). */
char *dir_dn_cn(const char *dn)
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

void dir_entry_free(struct entry *e)
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
int dir_entry_parse(struct dir *d, LDAP *ld, LDAPMessage *m, struct entry *e)
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
int dir_entry_state(const struct dir *d, const struct entry *e)
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
