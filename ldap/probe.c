/*
 * Probes for dirbridge-check (see dir.h): one synchronous libldap connection to
 * one configured server, each call bounded by [ldap] timeout_ms.  They block,
 * which the daemon's loop never may: a one-shot program calls them directly,
 * a daemon from a thread of its own.  libldap's own TLS is used here, with the
 * same trust ([ldap] ca_file, certificate required, host name checked), so a
 * probe proves what the agent's connections need without sharing their state.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ldap.h>

#include "ldap/internal.h"
#include "tls/tls.h"

struct dir_probe {
	LDAP *ld;
	const struct cfg *cfg;
	struct timeval tv;
};

/* LDAP result RC (and the server's diagnostic) as a sentence and a dir_err. */
static int probe_fail(struct dir_probe *p, int rc, const char *what, char *err, size_t errlen)
{
	char *diag = NULL;

	if (p->ld)
		ldap_get_option(p->ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
	snprintf(err, errlen, "%s: %s%s%s", what, ldap_err2string(rc),
		 diag && *diag ? " (" : "", diag && *diag ? diag : "");
	if (diag && *diag)
		strncat(err, ")", errlen - strlen(err) - 1);
	ldap_memfree(diag);
	if (rc == LDAP_INVALID_CREDENTIALS)
		return DIR_E_INVALID_CREDENTIALS;
	if (rc == LDAP_NO_SUCH_OBJECT)
		return DIR_E_NOT_FOUND;
	if (rc == LDAP_SERVER_DOWN || rc == LDAP_TIMEOUT || rc == LDAP_CONNECT_ERROR ||
	    rc == LDAP_UNAVAILABLE || rc == LDAP_BUSY)
		return DIR_E_UNAVAILABLE;
	return DIR_E_INTERNAL;
}

int dir_probe_open(const struct cfg *cfg, const char *url, struct dir_probe **out, char *err,
		   size_t errlen)
{
	struct dir_probe *p = calloc(1, sizeof *p);
	int v3 = LDAP_VERSION3, demand = LDAP_OPT_X_TLS_DEMAND, zero = 0, rc;

	*out = NULL;
	if (!p)
		return DIR_E_INTERNAL;
	p->cfg = cfg;
	p->tv.tv_sec = cfg->ldap.timeout_ms / 1000;
	p->tv.tv_usec = (cfg->ldap.timeout_ms % 1000) * 1000;
	if ((rc = ldap_initialize(&p->ld, url)) != LDAP_SUCCESS) {
		rc = probe_fail(p, rc, url, err, errlen);
		goto fail;
	}
	ldap_set_option(p->ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
	ldap_set_option(p->ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
	ldap_set_option(p->ld, LDAP_OPT_NETWORK_TIMEOUT, &p->tv);
	ldap_set_option(p->ld, LDAP_OPT_TIMEOUT, &p->tv);
	ldap_set_option(p->ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand);
	if (cfg->ldap.ca_file)
		ldap_set_option(p->ld, LDAP_OPT_X_TLS_CACERTFILE, cfg->ldap.ca_file);
	if (cfg->ldap.cert_file && cfg->ldap.key_file) {
		ldap_set_option(p->ld, LDAP_OPT_X_TLS_CERTFILE, cfg->ldap.cert_file);
		ldap_set_option(p->ld, LDAP_OPT_X_TLS_KEYFILE, cfg->ldap.key_file);
	}
	/* The options above apply to a new TLS context only. */
	ldap_set_option(p->ld, LDAP_OPT_X_TLS_NEWCTX, &zero);
	if (strncasecmp(url, "ldap://", 7) == 0) {
		rc = ldap_start_tls_s(p->ld, NULL, NULL);
		if (rc != LDAP_SUCCESS) {
			rc = probe_fail(p, rc, "StartTLS", err, errlen);
			goto fail;
		}
	} else if ((rc = ldap_connect(p->ld)) != LDAP_SUCCESS) {
		rc = probe_fail(p, rc, "connect", err, errlen);
		goto fail;
	}
	*out = p;
	return 0;
fail:
	dir_probe_close(p);
	return rc;
}

void dir_probe_close(struct dir_probe *p)
{
	if (!p)
		return;
	if (p->ld)
		ldap_unbind_ext_s(p->ld, NULL, NULL);
	free(p);
}

int dir_probe_bind(struct dir_probe *p, char *err, size_t errlen)
{
	struct berval cred = { 0, NULL };
	char *pw = NULL;
	size_t len = 0;
	int rc;

	if (p->cfg->ldap.sasl_mech) {
		snprintf(err, errlen, "sasl_mech %s is not probed; only simple binds are",
			 p->cfg->ldap.sasl_mech);
		return DIR_E_BAD_REQUEST;
	}
	if (p->cfg->ldap.bind_password_file &&
	    (rc = cfg_secret_read(p->cfg->ldap.bind_password_file, &pw, &len, err, errlen)) < 0)
		return DIR_E_BAD_REQUEST;
	cred.bv_val = pw;
	cred.bv_len = len;
	rc = ldap_sasl_bind_s(p->ld, p->cfg->ldap.bind_dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL,
			      NULL);
	cfg_secret_free(pw, len);
	if (rc != LDAP_SUCCESS)
		return probe_fail(p, rc, "bind", err, errlen);
	return 0;
}

/* One synchronous search; *N the number of entries, *RES for the caller. */
static int search(struct dir_probe *p, const char *base, int scope, const char *filter,
		  char **attrs, size_t sizelimit, LDAPMessage **res, int *n, char *err,
		  size_t errlen)
{
	struct timeval tv = p->tv;
	int rc = ldap_search_ext_s(p->ld, base, scope, filter, attrs, 0, NULL, NULL, &tv,
				   (int)sizelimit, res);

	if (rc != LDAP_SUCCESS && rc != LDAP_SIZELIMIT_EXCEEDED) {
		ldap_msgfree(*res);
		*res = NULL;
		return probe_fail(p, rc, "search", err, errlen);
	}
	*n = ldap_count_entries(p->ld, *res);
	return 0;
}

int dir_probe_base(struct dir_probe *p, char *err, size_t errlen)
{
	char *attrs[] = { "1.1", NULL };
	LDAPMessage *res = NULL;
	int n = 0, rc;

	rc = search(p, p->cfg->ldap.base_dn, LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 1, &res,
		    &n, err, errlen);
	ldap_msgfree(res);
	if (rc == 0 && n != 1) {
		snprintf(err, errlen, "%s is not readable by the service account",
			 p->cfg->ldap.base_dn);
		return DIR_E_NOT_FOUND;
	}
	return rc;
}

int dir_probe_user(struct dir_probe *p, const char *username, char **dn, size_t *n_found,
		   char *err, size_t errlen)
{
	char *attrs[] = { "1.1", NULL }, *esc = NULL, *filter = NULL;
	const char *f = p->cfg->ldap.user_filter, *at = strstr(f, "{username}");
	LDAPMessage *res = NULL;
	int n = 0, rc;

	*dn = NULL;
	*n_found = 0;
	if (!at)
		return DIR_E_BAD_REQUEST;
	if ((rc = dir_filter_escape(username, strlen(username), &esc)) < 0) {
		snprintf(err, errlen, "the name cannot be put in a filter");
		return rc;
	}
	if (asprintf(&filter, "%.*s%s%s", (int)(at - f), f, esc, at + strlen("{username}")) < 0) {
		free(esc);
		return DIR_E_INTERNAL;
	}
	free(esc);
	rc = search(p, p->cfg->ldap.base_dn, LDAP_SCOPE_SUBTREE, filter, attrs, 2, &res, &n, err,
		    errlen);
	if (rc == 0) {
		LDAPMessage *e = ldap_first_entry(p->ld, res);
		char *d = e ? ldap_get_dn(p->ld, e) : NULL;

		*n_found = (size_t)n;
		if (d) {
			*dn = strdup(d);
			ldap_memfree(d);
		}
		if (n == 0) {
			snprintf(err, errlen, "no entry under %s matches %s", p->cfg->ldap.base_dn,
				 filter);
			rc = DIR_E_NOT_FOUND;
		} else if (n > 1) {
			snprintf(err, errlen, "more than one entry matches %s", filter);
			rc = DIR_E_NOT_FOUND;
		}
	}
	ldap_msgfree(res);
	free(filter);
	return rc;
}

int dir_probe_groups(struct dir_probe *p, const char *dn, size_t *n_groups, char *err,
		     size_t errlen)
{
	char *attrs[] = { "1.1", NULL }, *filter = NULL;
	char *const dns[] = { (char *)(uintptr_t)dn };
	LDAPMessage *res = NULL;
	int n = 0, rc;

	/* AD's groups are objectClass group; OpenLDAP's the classes the
	 * directory module's own group walk searches. */
	if (p->cfg->ldap.type == CFG_DIR_AD) {
		char *esc = NULL;

		if ((rc = dir_filter_escape(dn, strlen(dn), &esc)) == 0 &&
		    asprintf(&filter, "(&(objectClass=group)(member=%s))", esc) < 0) {
			filter = NULL;
			rc = DIR_E_INTERNAL;
		}
		free(esc);
	} else {
		rc = dir_group_filter(dns, 1, &filter);
	}
	if (rc < 0) {
		snprintf(err, errlen, "the DN %s cannot be put in a filter", dn);
		return rc;
	}
	rc = search(p, p->cfg->ldap.base_dn, LDAP_SCOPE_SUBTREE, filter, attrs, 0, &res, &n, err,
		    errlen);
	ldap_msgfree(res);
	free(filter);
	*n_groups = rc == 0 ? (size_t)n : 0;
	return rc;
}

/* Generalized time "YYYYMMDDHHMMSS[.f]Z" (RFC 4517) as Unix time. */
int dir_generalized_time(const char *s, int64_t *out)
{
	struct tm tm = { 0 };
	int y, mo, d, h, mi, sec, used = 0;

	if (!s || sscanf(s, "%4d%2d%2d%2d%2d%2d%n", &y, &mo, &d, &h, &mi, &sec, &used) != 6 ||
	    used != 14)
		return DIR_E_BAD_REQUEST;
	s += used;
	if (*s == '.' || *s == ',')
		for (s++; *s >= '0' && *s <= '9'; s++)
			;
	if (strcmp(s, "Z") != 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
	    sec > 60)
		return DIR_E_BAD_REQUEST;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	*out = (int64_t)timegm(&tm);
	return 0;
}

int dir_probe_time(struct dir_probe *p, int64_t *now, char *err, size_t errlen)
{
	char *attrs[] = { "currentTime", NULL };
	LDAPMessage *res = NULL, *e;
	struct berval **v = NULL;
	char buf[64];
	int n = 0, rc;

	rc = search(p, "", LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 1, &res, &n, err, errlen);
	if (rc < 0)
		return rc;
	rc = DIR_E_NOT_FOUND;
	snprintf(err, errlen, "the root DSE has no currentTime");
	if ((e = ldap_first_entry(p->ld, res)) && (v = ldap_get_values_len(p->ld, e, attrs[0])) &&
	    v[0] && v[0]->bv_len < sizeof buf) {
		memcpy(buf, v[0]->bv_val, v[0]->bv_len);
		buf[v[0]->bv_len] = '\0';
		rc = dir_generalized_time(buf, now);
		if (rc < 0)
			snprintf(err, errlen, "currentTime %s is not a generalized time", buf);
	}
	ldap_value_free_len(v);
	ldap_msgfree(res);
	return rc;
}

int dir_probe_peer_not_after(struct dir_probe *p, int64_t *not_after)
{
	struct berval der = { 0, NULL };
	int rc;

	if (ldap_get_option(p->ld, LDAP_OPT_X_TLS_PEERCERT, &der) != LDAP_OPT_SUCCESS ||
	    !der.bv_val)
		return DIR_E_NOT_FOUND;
	rc = tls_der_not_after((const unsigned char *)der.bv_val, der.bv_len, not_after);
	ber_memfree(der.bv_val);
	return rc < 0 ? DIR_E_INTERNAL : 0;
}

int dir_url_parts(const char *url, char *host, size_t hostlen, unsigned *port, bool *ldaps)
{
	LDAPURLDesc *u = NULL;
	int rc = DIR_E_BAD_REQUEST;

	if (ldap_url_parse(url, &u) != LDAP_URL_SUCCESS)
		return rc;
	if (u->lud_host && *u->lud_host && strlen(u->lud_host) < hostlen) {
		*ldaps = strcasecmp(u->lud_scheme, "ldaps") == 0;
		*port = u->lud_port ? (unsigned)u->lud_port : *ldaps ? 636u : 389u;
		strcpy(host, u->lud_host);
		rc = 0;
	}
	ldap_free_urldesc(u);
	return rc;
}
