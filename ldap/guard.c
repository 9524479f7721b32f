/*
 * The password-login guard: stops sending binds for a user before the
 * directory's own lockout would lock the account, hides account states when
 * configured to, and gives unknown users a decoy bind so that they cost what a
 * wrong password costs.
 *
 * Counts are keyed on the directory's identity of the user (the DN the search
 * found, ASCII case-folded), so "Alice" and "alice" share one budget; an unknown
 * name is keyed on the name as typed, ASCII-lowercased, so that the guard trips
 * for it after the same number of attempts and "too_many_attempts" says nothing
 * about whether the user exists.
 *
 * A failure is counted when the bind is about to be sent, not when it fails, so
 * concurrent attempts for one user cannot all pass the check while the first
 * ones are still in flight; an outcome that was no wrong password takes the
 * count back (a success clears it).
 *
 * lockout_guard = auto reads the directory's threshold when the directory is
 * opened (start and every reload):
 *   AD: lockoutThreshold of the domain object (the rootDSE's
 *       defaultNamingContext) and, best effort, msDS-LockoutThreshold of every
 *       fine-grained password policy the service account can read; the
 *       smallest non-zero value applies to everyone, so no user can be locked
 *       by a policy stricter than the guard assumed.
 *   OpenLDAP: pwdMaxFailure of every pwdPolicy entry under base_dn with
 *       pwdLockout TRUE, the smallest again (the default policy's DN sits in
 *       cn=config, which a service account usually cannot read).
 * Logins wait for that answer (bounded by timeout_ms, like any request).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <ldap.h>

#include "config/cfg.h"
#include "ldap/dir.h"
#include "ldap/internal.h"

#define GUARD_CAPACITY 8192	/* users with failures remembered at once */

enum policy_state {
	POLICY_NEW = 0,	/* no read started: the limit is configured or off, or not needed yet */
	POLICY_READING,
	POLICY_RETRY,		/* the directory did not answer: read again on demand */
	POLICY_DONE,
};

enum policy_step { STEP_ROOTDSE, STEP_DOMAIN, STEP_PSO, STEP_PPOLICY };

struct dir_guard {
	struct dir *d;
	uv_loop_t *loop;
	const struct cfg *cfg;
	enum policy_state state;	/* written only by policy_set_state() */
	bool auto_limit;		/* the limit comes from the directory */
	unsigned limit;			/* 0: off */
	unsigned threshold;		/* the directory's, 0: none found */
	char *domain_dn;
	struct dir_throttle *t;
	struct dir_throttle *carried;	/* the previous directory's counts, until armed */
	struct dir_throttle *inflight;	/* binds sent and not answered, per key */
	uint64_t hidden;
};

static const char *const policy_state_name[] = { "none", "reading", "retry", "done" };

static void policy_set_state(struct dir_guard *g, enum policy_state s)
{
	log_msg(LOGL_DEBUG, "ldap: lockout policy %s -> %s", policy_state_name[g->state],
		policy_state_name[s]);
	g->state = s;
}

int dir_guard_new(struct dir *d, uv_loop_t *loop, const struct cfg *cfg, struct dir_guard **out)
{
	struct dir_guard *g = calloc(1, sizeof(*g));

	*out = NULL;
	if (!g)
		return DIR_E_INTERNAL;
	g->d = d;
	g->loop = loop;
	g->cfg = cfg;
	g->auto_limit = cfg->ldap.lockout_guard == CFG_LOCKOUT_AUTO;
	g->limit = g->auto_limit ? 0 : cfg->ldap.lockout_guard;
	*out = g;
	return 0;
}

void dir_guard_free(struct dir_guard *g)
{
	if (!g)
		return;
	dir_throttle_free(g->t);
	dir_throttle_free(g->carried);
	dir_throttle_free(g->inflight);
	free(g->domain_dn);
	free(g);
}

void dir_guard_stats(const struct dir *d, struct dir_guard_stats *out)
{
	const struct dir_guard *g = dir_guard_of(d);
	struct dir_throttle_stats ts = { 0 };

	if (g->t)
		dir_throttle_stats(g->t, &ts);
	out->limit = g->limit;
	out->known = g->state != POLICY_READING && g->state != POLICY_RETRY;
	out->refused = ts.refused;
	out->hidden = g->hidden;
}

/* Makes the limit effective (a table only when the guard is on). */
static void guard_arm(struct dir_guard *g)
{
	if (g->limit && !g->t) {
		if (g->carried) {
			g->t = g->carried;
			g->carried = NULL;
			dir_throttle_set_limit(g->t, g->limit, g->cfg->ldap.lockout_guard_window_s);
		} else {
			g->t = dir_throttle_new(GUARD_CAPACITY, g->limit,
						g->cfg->ldap.lockout_guard_window_s);
		}
		/* In-flight counts never expire by time: every one ends with its login. */
		g->inflight = dir_throttle_new(GUARD_CAPACITY, UINT32_MAX, 86400);
		if (!g->t || !g->inflight) {
			dir_throttle_free(g->t);
			g->t = NULL;
		}
		if (!g->t)
			log_msg(LOGL_ERROR, "ldap: out of memory for the lockout guard; it is off");
	}
}

void dir_carry_guard(struct dir *to, struct dir *from)
{
	struct dir_guard *gt = dir_guard_of(to), *gf = dir_guard_of(from);
	struct dir_throttle *t = gf ? gf->t : NULL;

	if (!gt || !t)
		return;
	/* Logins still in flight on FROM find no table and record nothing more;
	 * their failures were counted when their binds were sent. */
	gf->t = NULL;
	if (gt->t) {
		/* Armed at once by a fixed limit: nothing has used it yet, because
		 * the reload runs within one loop callback. */
		dir_throttle_free(gt->t);
		gt->t = t;
		dir_throttle_set_limit(t, gt->limit, gt->cfg->ldap.lockout_guard_window_s);
	} else {
		dir_throttle_free(gt->carried);
		gt->carried = t;
	}
}

/* ---- reading the directory's threshold ------------------------------------ */

static void policy_read(struct dir_guard *g, enum policy_step step);

static unsigned attr_uint(const struct dir_profile *e, const char *name, bool *present)
{
	for (size_t i = 0; i < e->n_attrs; i++) {
		if (strcasecmp(e->attrs[i].name, name) != 0 || e->attrs[i].n_values == 0)
			continue;
		char *end;
		long v = strtol(e->attrs[i].values[0], &end, 10);

		if (*end || end == e->attrs[i].values[0] || v < 0 || v > 1000000)
			return 0;
		*present = true;
		return (unsigned)v;
	}
	return 0;
}

static bool attr_true(const struct dir_profile *e, const char *name)
{
	for (size_t i = 0; i < e->n_attrs; i++)
		if (strcasecmp(e->attrs[i].name, name) == 0 && e->attrs[i].n_values > 0)
			return strcasecmp(e->attrs[i].values[0], "TRUE") == 0;
	return false;
}

static void threshold_min(struct dir_guard *g, unsigned v)
{
	if (v && (!g->threshold || v < g->threshold))
		g->threshold = v;
}

/* The threshold is known (or known to be unreadable): set the limit. */
static void policy_done(struct dir_guard *g, bool readable)
{
	unsigned lg = g->cfg->ldap.lockout_guard;

	policy_set_state(g, POLICY_DONE);
	if (g->auto_limit) {
		if (!readable)
			log_msg(LOGL_WARN, "ldap: lockout_guard = auto: the directory's lockout "
				"threshold could not be read; the guard is off (set a number to "
				"turn it on)");
		else if (!g->threshold)
			log_msg(LOGL_INFO, "ldap: lockout_guard = auto: the directory does not "
				"lock accounts; the guard is off");
		/* A threshold of 1 locks on the first wrong password: the guard cannot
		 * prevent that without refusing everyone, so it allows one. */
		g->limit = g->threshold > 2 ? g->threshold - 1 : g->threshold ? 1 : 0;
		if (g->limit)
			log_msg(LOGL_INFO, "ldap: lockout_guard = auto: the directory locks after "
				"%u failed binds; the agent stops at %u per user", g->threshold,
				g->limit);
		guard_arm(g);
	} else if (g->threshold && lg >= g->threshold) {
		log_msg(LOGL_WARN, "ldap: lockout_guard = %u is at or above the directory's "
			"lockout threshold (%u): the directory locks the account first; set it "
			"below %u or to auto", lg, g->threshold, g->threshold);
	}
	dir_guard_settled(g->d);
}

static void on_policy(struct dir_guard *g, enum policy_step step, int err,
		      const struct dir_profile *e, size_t n)
{
	bool present = false;

	if (err == DIR_E_UNAVAILABLE && step != STEP_PSO) {
		log_msg(LOGL_WARN, "ldap: the directory did not answer the lockout policy "
			"read; logins retry it");
		/* Logins waiting now time out as they would have without the
		 * directory; the next one asks again. */
		policy_set_state(g, POLICY_RETRY);
		return;
	}
	switch (step) {
	case STEP_ROOTDSE:
		for (size_t i = 0; !err && n && i < e[0].n_attrs; i++)
			if (strcasecmp(e[0].attrs[i].name, "defaultNamingContext") == 0 &&
			    e[0].attrs[i].n_values > 0) {
				free(g->domain_dn);
				g->domain_dn = strdup(e[0].attrs[i].values[0]);
			}
		if (!g->domain_dn) {
			policy_done(g, false);
			return;
		}
		policy_read(g, STEP_DOMAIN);
		return;
	case STEP_DOMAIN:
		if (!err && n)
			threshold_min(g, attr_uint(&e[0], "lockoutThreshold", &present));
		if (!present) {
			policy_done(g, false);
			return;
		}
		policy_read(g, STEP_PSO);
		return;
	case STEP_PSO:
		/* Best effort: password settings objects are often unreadable. */
		for (size_t i = 0; !err && i < n; i++)
			threshold_min(g, attr_uint(&e[i], "msDS-LockoutThreshold", &present));
		policy_done(g, true);
		return;
	case STEP_PPOLICY:
		for (size_t i = 0; !err && i < n; i++) {
			bool has = false;
			unsigned v = attr_uint(&e[i], "pwdMaxFailure", &has);

			if (attr_true(&e[i], "pwdLockout"))
				threshold_min(g, v);
		}
		policy_done(g, !err);
		return;
	}
}

static void on_rootdse(void *arg, int err, const struct dir_profile *e, size_t n)
{
	on_policy(arg, STEP_ROOTDSE, err, e, n);
}

static void on_domain(void *arg, int err, const struct dir_profile *e, size_t n)
{
	on_policy(arg, STEP_DOMAIN, err, e, n);
}

static void on_pso(void *arg, int err, const struct dir_profile *e, size_t n)
{
	on_policy(arg, STEP_PSO, err, e, n);
}

static void on_ppolicy(void *arg, int err, const struct dir_profile *e, size_t n)
{
	on_policy(arg, STEP_PPOLICY, err, e, n);
}

static void policy_read(struct dir_guard *g, enum policy_step step)
{
	static const char *const rootdse_attrs[] = { "defaultNamingContext", NULL };
	static const char *const domain_attrs[] = { "lockoutThreshold", NULL };
	static const char *const pso_attrs[] = { "msDS-LockoutThreshold", NULL };
	static const char *const pp_attrs[] = { "pwdMaxFailure", "pwdLockout", NULL };
	char *base = NULL;
	int rc = DIR_E_INTERNAL;

	switch (step) {
	case STEP_ROOTDSE:
		rc = dir_read(g->d, "", LDAP_SCOPE_BASE, "(objectClass=*)", rootdse_attrs, 1,
			      on_rootdse, g);
		break;
	case STEP_DOMAIN:
		rc = dir_read(g->d, g->domain_dn, LDAP_SCOPE_BASE, "(objectClass=*)", domain_attrs,
			      1, on_domain, g);
		break;
	case STEP_PSO:
		if (asprintf(&base, "CN=Password Settings Container,CN=System,%s", g->domain_dn) < 0)
			base = NULL;
		rc = base ? dir_read(g->d, base, LDAP_SCOPE_ONELEVEL,
				     "(objectClass=msDS-PasswordSettings)", pso_attrs, 100, on_pso, g)
			  : DIR_E_INTERNAL;
		free(base);
		break;
	case STEP_PPOLICY:
		rc = dir_read(g->d, g->cfg->ldap.base_dn, LDAP_SCOPE_SUBTREE,
			      "(objectClass=pwdPolicy)", pp_attrs, 100, on_ppolicy, g);
		break;
	}
	if (rc < 0)
		policy_done(g, step == STEP_PSO);
}

void dir_guard_start(struct dir_guard *g)
{
	guard_arm(g);
	/* A configured number is read against the directory only to warn. */
	if (g->cfg->ldap.lockout_guard == 0)
		return;
	policy_set_state(g, POLICY_READING);
	g->threshold = 0;
	policy_read(g, g->cfg->ldap.type == CFG_DIR_AD ? STEP_ROOTDSE : STEP_PPOLICY);
}

bool dir_guard_waiting(struct dir_guard *g)
{
	if (!g->auto_limit)
		return false;
	if (g->state == POLICY_RETRY)
		dir_guard_start(g);
	return g->state == POLICY_READING;
}

/* ---- one login ------------------------------------------------------------- */

static char *make_key(const char *prefix, const char *s)
{
	size_t pl = strlen(prefix), len = strlen(s);
	char *k = malloc(pl + len + 1);

	if (!k)
		return NULL;
	memcpy(k, prefix, pl);
	for (size_t i = 0; i <= len; i++)
		k[pl + i] = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
	return k;
}

int dir_guard_begin(struct dir_guard *g, const char *dn, const char *username, char **key)
{
	uint64_t now = uv_now(g->loop);

	*key = NULL;
	if (!g->t)
		return 0;
	*key = dn ? make_key("dn:", dn) : make_key("name:", username);
	if (!*key)
		return DIR_E_INTERNAL;
	/* Over the limit only because of binds still in flight: one of them may
	 * be the right password, so the login waits for them rather than fail. */
	if (dir_throttle_failures(g->t, *key, now) >= g->limit &&
	    dir_throttle_failures(g->inflight, *key, now) > 0) {
		free(*key);
		*key = NULL;
		return DIR_GUARD_WAIT;
	}
	if (dir_throttle_blocked(g->t, *key, now)) {
		log_msg(LOGL_WARN, "ldap: password login for \"%s\" refused before any bind: "
			"%u failed binds within %u s (lockout_guard)", username,
			dir_throttle_failures(g->t, *key, now), g->cfg->ldap.lockout_guard_window_s);
		free(*key);
		*key = NULL;
		return DIR_E_TOO_MANY_ATTEMPTS;
	}
	if (dir_throttle_fail(g->t, *key, now) < 0 ||
	    dir_throttle_fail(g->inflight, *key, now) < 0) {
		free(*key);
		*key = NULL;
		return DIR_E_INTERNAL;
	}
	return 0;
}

int dir_guard_end(struct dir_guard *g, const char *key, const char *username, int bind_err,
		  int err)
{
	if (key && g->t) {
		dir_throttle_undo(g->inflight, key);
		if (bind_err == DIR_OK || bind_err == DIR_E_PASSWORD_EXPIRED ||
		    bind_err == DIR_E_PASSWORD_MUST_CHANGE)
			dir_throttle_reset(g->t, key);
		else if (bind_err != DIR_E_INVALID_CREDENTIALS)
			dir_throttle_undo(g->t, key);
	}
	if (!g->cfg->ldap.reveal_account_state &&
	    (err == DIR_E_ACCOUNT_LOCKED || err == DIR_E_ACCOUNT_DISABLED ||
	     err == DIR_E_ACCOUNT_EXPIRED)) {
		g->hidden++;
		log_msg(LOGL_INFO, "ldap: password login for \"%s\" refused: %s (answered as "
			"invalid_credentials: reveal_account_state = false)", username, dir_code(err));
		return DIR_E_INVALID_CREDENTIALS;
	}
	return err;
}

int dir_decoy_dn(const char *base_dn, char **out)
{
	unsigned char raw[16];
	char hex[sizeof(raw) * 2 + 1], *esc = NULL;
	int rc;

	*out = NULL;
	/* The DN must never name a real entry: 128 random bits. */
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return DIR_E_INTERNAL;
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(hex + 2 * i, 3, "%02x", raw[i]);
	rc = dir_dn_escape(hex, strlen(hex), &esc);
	if (rc < 0)
		return rc;
	if (asprintf(out, "cn=%s,%s", esc, base_dn) < 0)
		*out = NULL;
	free(esc);
	return *out ? 0 : DIR_E_INTERNAL;
}

/* ---- entries of a policy read -------------------------------------------- */

int dir_read_entry(LDAP *ld, LDAPMessage *m, struct dir_profile *out)
{
	BerElement *ber = NULL;
	char *a, *dn;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	dn = ldap_get_dn(ld, m);
	out->dn = dn ? strdup(dn) : NULL;
	ldap_memfree(dn);
	if (!out->dn)
		return DIR_E_INTERNAL;
	for (a = ldap_first_attribute(ld, m, &ber); a && rc == 0;
	     ldap_memfree(a), a = ldap_next_attribute(ld, m, ber)) {
		struct berval **vals = ldap_get_values_len(ld, m, a);
		int n = vals ? ldap_count_values_len(vals) : 0;
		struct dir_attr *na = realloc(out->attrs, (out->n_attrs + 1) * sizeof(*na));

		if (!na) {
			rc = DIR_E_INTERNAL;
		} else {
			struct dir_attr *at = &na[out->n_attrs++];

			out->attrs = na;
			memset(at, 0, sizeof(*at));
			at->name = strdup(a);
			at->values = calloc((size_t)n + 1, sizeof(char *));
			if (!at->name || !at->values)
				rc = DIR_E_INTERNAL;
			for (int i = 0; rc == 0 && i < n; i++) {
				/* Only text values: every attribute read here is a number
				 * or a DN. */
				if (!vals[i]->bv_val || !dir_utf8_valid(vals[i]->bv_val, vals[i]->bv_len))
					continue;
				at->values[at->n_values] = strndup(vals[i]->bv_val, vals[i]->bv_len);
				if (!at->values[at->n_values++])
					rc = DIR_E_INTERNAL;
			}
		}
		ldap_value_free_len(vals);
	}
	if (a)
		ldap_memfree(a);
	ber_free(ber, 0);
	return rc;
}

void dir_profile_clear(struct dir_profile *p)
{
	free(p->username);
	free(p->dn);
	free(p->display_name);
	free(p->email);
	for (size_t j = 0; j < p->n_groups; j++)
		free(p->groups[j]);
	free(p->groups);
	dir_read_entry_free(p);
	*p = (struct dir_profile){ 0 };
}

void dir_read_entry_free(struct dir_profile *p)
{
	for (size_t i = 0; i < p->n_attrs; i++) {
		for (size_t j = 0; j < p->attrs[i].n_values; j++)
			free(p->attrs[i].values[j]);
		free(p->attrs[i].values);
		free(p->attrs[i].name);
	}
	free(p->attrs);
	p->attrs = NULL;
	p->n_attrs = 0;
}
