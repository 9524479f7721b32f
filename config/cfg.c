/*
 * Loading the INI configuration; see cfg.h.
 *
 * iniparser does all of the parsing.  It keeps no line numbers, so the file text
 * is scanned a second time only to find the line each section header and key is
 * on; that scan never decides a value, it only annotates messages.
 *
 * Validation never stops at the first problem: every check runs, each problem is
 * one line on ERR, and the struct is handed out only when there were none.  This
 * file reads values and sections; sections.c decides each section's keys,
 * check.c checks files and value syntax, range.c parses address ranges and
 * secret.c reads secret files.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <iniparser.h>

#include "config/internal.h"

#define LIST_MAX 64		/* entries in any space-separated list */
#define CONFIG_MAX (1 << 20)	/* a config file larger than this is a mistake */

/* ---- reporting ------------------------------------------------------------ */

void cfg_report(struct loader *L, int line, bool warning, const char *fmt, ...)
{
	va_list ap;

	if (!warning)
		L->errors++;
	if (!L->err)
		return;
	fprintf(L->err, "dirbridge: %s", L->path);
	if (line > 0)
		fprintf(L->err, ":%d", line);
	fputs(warning ? ": warning: " : ": ", L->err);
	va_start(ap, fmt);
	vfprintf(L->err, fmt, ap);
	va_end(ap);
	fputc('\n', L->err);
}

static const struct where *find_where(const struct loader *L, const char *sec, const char *key)
{
	for (size_t i = 0; i < L->n_where; i++) {
		const struct where *w = &L->where[i];

		if (strcmp(w->section, sec) != 0)
			continue;
		if (key ? (w->key && strcmp(w->key, key) == 0) : !w->key)
			return w;
	}
	return NULL;
}

/* The key's line, else its section's line, else 0 (unknown). */
static int line_of(const struct loader *L, const char *sec, const char *key)
{
	const struct where *w = key ? find_where(L, sec, key) : NULL;

	if (!w)
		w = find_where(L, sec, NULL);
	return w ? w->line : 0;
}

/* An error about one key: "FILE:LINE: [sec] key: message". */
void cfg_key_report(struct loader *L, bool warning, const char *sec, const char *key,
		    const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	cfg_report(L, line_of(L, sec, key), warning, "[%s] %s: %s", sec, key, msg);
}

/* ---- the line scan -------------------------------------------------------- */

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static void lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

static int add_where(struct loader *L, const char *sec, const char *key, int line)
{
	struct where *w = realloc(L->where, (L->n_where + 1) * sizeof *w);

	if (!w)
		return -ENOMEM;
	L->where = w;
	w = &L->where[L->n_where];
	w->section = strdup(sec);
	w->key = key ? strdup(key) : NULL;
	w->line = line;
	if (!w->section || (key && !w->key)) {
		free(w->section);
		free(w->key);
		return -ENOMEM;
	}
	L->n_where++;
	return 0;
}

/*
 * Records the line of every section header and key.  It mirrors iniparser's
 * rules closely enough to find lines (trimmed, lower-cased names; comments;
 * backslash continuations) and reports keys given twice, which iniparser
 * silently collapses into the last one.
 */
static int scan_lines(struct loader *L, FILE *f)
{
	char *line = NULL, section[256] = "";
	size_t cap = 0;
	int lineno = 0, rc = 0;
	bool continued = false;

	while (getline(&line, &cap, f) >= 0) {
		char *s = trim(line), *eq;
		bool was_continued = continued;

		lineno++;
		continued = *s && s[strlen(s) - 1] == '\\';
		if (was_continued || !*s || *s == ';' || *s == '#')
			continue;
		if (*s == '[') {
			char *end = strchr(s, ']');

			if (!end)
				continue;	/* iniparser reports it */
			*end = '\0';
			snprintf(section, sizeof section, "%s", trim(s + 1));
			lower(section);
			if (!find_where(L, section, NULL) && (rc = add_where(L, section, NULL, lineno)))
				break;
			continue;
		}
		eq = strchr(s, '=');
		if (!eq)
			continue;
		*eq = '\0';
		s = trim(s);
		lower(s);
		const struct where *prev = find_where(L, section, s);
		if (prev) {
			cfg_report(L, lineno, false, "[%s] %s is given twice (first on line %d); "
				   "keep only one", section, s, prev->line);
			continue;
		}
		if ((rc = add_where(L, section, s, lineno)))
			break;
	}
	free(line);
	return rc;
}

/* ---- iniparser's own errors ---------------------------------------------- */

/* iniparser reports through a process-wide callback without a context pointer. */
static struct loader *ini_loader;

static int ini_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int ini_error(const char *fmt, ...)
{
	char msg[512];
	const char *p;
	int line = 0;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (!ini_loader)
		return 0;
	/* Its messages read "... in FILE (LINE):\n-> TEXT".  The offending text is
	 * never repeated: a secret pasted into the config must not reach a log. */
	p = strstr(msg, " (");
	while (p && strstr(p + 2, " ("))
		p = strstr(p + 2, " (");
	if (p)
		line = atoi(p + 2);
	if (strstr(msg, "syntax error"))
		cfg_report(ini_loader, line, false, "syntax error: expected `[section]`, "
			   "`key = value` or a comment starting with ; or #");
	else if (strstr(msg, "too long"))
		cfg_report(ini_loader, line, false, "line is too long (iniparser reads at "
			   "most 1024 characters per line); shorten it");
	else if (strstr(msg, "cannot open"))
		cfg_report(ini_loader, 0, false, "cannot open the file");
	else
		cfg_report(ini_loader, line, false, "cannot parse: %.*s", (int)strcspn(msg, "\n"), msg);
	return 0;
}

/* ---- values --------------------------------------------------------------- */

/* The raw value, or NULL when the key is absent or empty. */
const char *cfg_raw(const struct loader *L, const char *sec, const char *key)
{
	char k[128];
	const char *v;

	snprintf(k, sizeof k, "%s:%s", sec, key);
	v = iniparser_getstring(L->ini, k, NULL);
	return v && *v ? v : NULL;
}

const char *cfg_need(struct loader *L, const char *sec, const char *key, const char *example)
{
	const char *v = cfg_raw(L, sec, key);

	if (!v)
		cfg_report(L, line_of(L, sec, key), false, "[%s] %s is missing or empty; add `%s = %s`",
			   sec, key, key, example);
	return v;
}

char *cfg_keep(struct loader *L, const char *s)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		L->oom = true;
	return d;
}

void cfg_free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Splits a space-separated value; an empty value gives no entries. */
char **cfg_split(struct loader *L, const char *sec, const char *key, const char *s, size_t *n)
{
	char **v = NULL;
	size_t count = 0;

	*n = 0;
	while (s && *s) {
		size_t len;

		s += strspn(s, " \t");
		len = strcspn(s, " \t");
		if (!len)
			break;
		if (count == LIST_MAX) {
			key_err(L, sec, key, "more than %d entries; use fewer", LIST_MAX);
			break;
		}
		char **nv = realloc(v, (count + 1) * sizeof *v);
		if (!nv || !(nv[count] = strndup(s, len))) {
			v = nv ? nv : v;
			L->oom = true;
			break;
		}
		v = nv;
		count++;
		s += len;
	}
	*n = count;
	return v;
}

int cfg_get_enum(struct loader *L, const char *sec, const char *key,
		 const char *const *names, int def)
{
	const char *v = cfg_raw(L, sec, key);
	char choices[256] = "";

	if (!v)
		return def;
	for (int i = 0; names[i]; i++)
		if (strcasecmp(v, names[i]) == 0)
			return i;
	for (int i = 0; names[i]; i++) {
		strncat(choices, i ? " | " : "", sizeof choices - strlen(choices) - 1);
		strncat(choices, names[i], sizeof choices - strlen(choices) - 1);
	}
	key_err(L, sec, key, "unknown value '%.64s'; use one of %s", v, choices);
	return def;
}

bool cfg_get_bool(struct loader *L, const char *sec, const char *key, bool def)
{
	static const char *const yes[] = { "true", "yes", "1" }, *const no[] = { "false", "no", "0" };
	const char *v = cfg_raw(L, sec, key);

	if (!v)
		return def;
	for (size_t i = 0; i < 3; i++) {
		if (strcasecmp(v, yes[i]) == 0)
			return true;
		if (strcasecmp(v, no[i]) == 0)
			return false;
	}
	key_err(L, sec, key, "'%.64s' is not a boolean; use true or false", v);
	return def;
}

/* Strict decimal: digits only, no sign, no leading zero, no overflow. */
bool cfg_parse_uint(const char *s, size_t maxdigits, unsigned long *out)
{
	size_t n = strspn(s, "0123456789");

	if (n == 0 || n != strlen(s) || n > maxdigits || (s[0] == '0' && n > 1))
		return false;
	*out = strtoul(s, NULL, 10);
	return true;
}

unsigned cfg_get_uint(struct loader *L, const char *sec, const char *key,
		      unsigned min, unsigned max, unsigned def)
{
	const char *v = cfg_raw(L, sec, key);
	unsigned long n;

	if (!v)
		return def;
	if (!cfg_parse_uint(v, 9, &n)) {
		key_err(L, sec, key, "'%.64s' is not a whole number; use a value from %u to %u",
			v, min, max);
		return def;
	}
	if (n < min || n > max) {
		key_err(L, sec, key, "%lu is out of range; use a value from %u to %u", n, min, max);
		return def;
	}
	return (unsigned)n;
}

/* Levenshtein distance, bounded: enough to suggest a key for a typo. */
static unsigned distance(const char *a, const char *b)
{
	unsigned row[65], la = (unsigned)strlen(a), lb = (unsigned)strlen(b);

	if (la > 64 || lb > 64)
		return UINT_MAX;
	for (unsigned j = 0; j <= lb; j++)
		row[j] = j;
	for (unsigned i = 1; i <= la; i++) {
		unsigned diag = row[0];

		row[0] = i;
		for (unsigned j = 1; j <= lb; j++) {
			unsigned up = row[j], best = diag + (a[i - 1] != b[j - 1]);

			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

/* ---- sections and keys ---------------------------------------------------- */

static const char *const agent_keys[] = { "name", "log_level", "log_format", "user", NULL };
static const char *const ldap_keys[] = {
	"url", "ca_file", "starttls", "bind_dn", "bind_password_file", "sasl_mech",
	"sasl_authzid", "cert_file", "key_file", "keytab", "base_dn", "type", "user_filter",
	"groups", "timeout_ms", "pool_size", "attributes", "lockout_guard",
	"lockout_guard_window_s", "reveal_account_state", NULL
};
static const char *const https_keys[] = {
	"listen", "public_url", "cert_file", "key_file", "client_ca_file", "crl_file",
	"client_cert_ranges", "cert_username", "client_verify_depth", "max_connections",
	"max_failures_per_ip", "metrics_ranges", NULL
};
static const char *const hub_keys[] = { "url", "token_file", "ca_file", NULL };

static const struct {
	const char *name;
	const char *const *keys;
} sections[] = {
	{ "agent", agent_keys },
	{ "ldap", ldap_keys },
	{ "https", https_keys },
	{ "hub", hub_keys },
};
#define N_SECTIONS (sizeof sections / sizeof sections[0])

static void check_names(struct loader *L)
{
	for (int i = 0; i < L->ini->size; i++) {
		const char *k = L->ini->key[i], *colon;
		size_t s;

		if (!k)
			continue;
		colon = strchr(k, ':');
		if (!colon) {
			for (s = 0; s < N_SECTIONS && strcmp(k, sections[s].name) != 0; s++)
				;
			if (s == N_SECTIONS)
				cfg_report(L, line_of(L, k, NULL), false, "unknown section [%.64s]; the "
					   "sections are [agent], [ldap], [https] and [hub]", k);
			continue;
		}
		if (colon == k) {
			cfg_report(L, line_of(L, "", k + 1), false, "%.64s is outside any section; "
				   "move it below its [section] header", k + 1);
			continue;
		}
		for (s = 0; s < N_SECTIONS; s++) {
			size_t n = strlen(sections[s].name);

			if (strncmp(k, sections[s].name, n) == 0 && k[n] == ':')
				break;
		}
		if (s == N_SECTIONS)
			continue;	/* in an unknown section, reported above */
		const char *key = k + strlen(sections[s].name) + 1, *best = NULL;
		unsigned best_d = 3;
		size_t j;
		for (j = 0; sections[s].keys[j] && strcmp(key, sections[s].keys[j]) != 0; j++) {
			unsigned d = distance(key, sections[s].keys[j]);

			if (d < best_d) {
				best_d = d;
				best = sections[s].keys[j];
			}
		}
		if (sections[s].keys[j])
			continue;
		if (best)
			key_err(L, sections[s].name, key, "unknown key; did you mean %s?", best);
		else
			key_err(L, sections[s].name, key, "unknown key; see docs/config.md for "
				"the keys of [%s]", sections[s].name);
	}
}

static bool has_section(const struct loader *L, const char *name)
{
	return iniparser_find_entry(L->ini, name) == 1;
}
static void check_need(struct loader *L, unsigned need)
{
	static const struct {
		unsigned flag;
		const char *name;
	} needed[] = {
		{ CFG_NEED_LDAP, "ldap" }, { CFG_NEED_HTTPS, "https" }, { CFG_NEED_HUB, "hub" },
	};

	for (size_t i = 0; i < sizeof needed / sizeof needed[0]; i++)
		if ((need & needed[i].flag) && !has_section(L, needed[i].name))
			cfg_report(L, 0, false, "section [%s] is missing; add it (see docs/config.md)",
				   needed[i].name);
}

/* ---- the entry point ------------------------------------------------------ */

int cfg_load(const char *path, unsigned need, struct cfg **out, FILE *err)
{
	struct loader L = { .path = path, .err = err };
	const char *slash = strrchr(path, '/');
	struct stat st;
	FILE *f = NULL;
	int fd, rc = 0;

	*out = NULL;
	if (slash && !(L.dir = strndup(path, (size_t)(slash - path) + (slash == path))))
		return -ENOMEM;
	/* Non-blocking, so that a FIFO named by mistake is refused, not waited on. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 || !(f = fdopen(fd, "r"))) {
		rc = -errno;
		cfg_report(&L, 0, false, "cannot read the configuration: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		goto out;
	}
	if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > CONFIG_MAX) {
		rc = -EINVAL;
		cfg_report(&L, 0, false, "the configuration must be a regular file under 1 MiB");
		goto out;
	}
	if ((rc = scan_lines(&L, f)) < 0)
		goto out;

	ini_loader = &L;
	iniparser_set_error_callback(ini_error);
	L.ini = iniparser_load(path);
	iniparser_set_error_callback(NULL);
	ini_loader = NULL;
	if (!L.ini) {
		if (!L.errors)
			cfg_report(&L, 0, false, "cannot parse the configuration");
		rc = -EINVAL;
		goto out;
	}

	if (!(L.cfg = calloc(1, sizeof *L.cfg)) || !(L.cfg->path = strdup(path))) {
		rc = -ENOMEM;
		goto out;
	}
	check_names(&L);
	check_need(&L, need);
	cfg_load_agent(&L);
	if (has_section(&L, "ldap"))
		cfg_load_ldap(&L);
	if (has_section(&L, "https"))
		cfg_load_https(&L);
	if (has_section(&L, "hub"))
		cfg_load_hub(&L);

	if (L.oom)
		rc = -ENOMEM;
	else if (L.errors)
		rc = -EINVAL;
out:
	if (rc == 0 && L.errors)
		rc = -EINVAL;
	if (rc == -ENOMEM)
		cfg_report(&L, 0, false, "out of memory");
	if (rc == 0) {
		*out = L.cfg;
		L.cfg = NULL;
	}
	cfg_free(L.cfg);
	if (L.ini)
		iniparser_freedict(L.ini);
	if (f)
		fclose(f);
	for (size_t i = 0; i < L.n_where; i++) {
		free(L.where[i].section);
		free(L.where[i].key);
	}
	free(L.where);
	free(L.dir);
	return rc;
}

void cfg_free(struct cfg *c)
{
	if (!c)
		return;
	free(c->path);
	free(c->agent.name);
	free(c->agent.user);
	cfg_free_list(c->ldap.urls, c->ldap.n_urls);
	free(c->ldap.ca_file);
	free(c->ldap.bind_dn);
	free(c->ldap.bind_password_file);
	free(c->ldap.sasl_mech);
	free(c->ldap.sasl_authzid);
	free(c->ldap.cert_file);
	free(c->ldap.key_file);
	free(c->ldap.keytab);
	free(c->ldap.base_dn);
	free(c->ldap.user_filter);
	cfg_free_list(c->ldap.attributes, c->ldap.n_attributes);
	cfg_free_list(c->https.listen, c->https.n_listen);
	free(c->https.listen_addrs);
	free(c->https.public_url);
	free(c->https.cert_file);
	free(c->https.key_file);
	free(c->https.client_ca_file);
	free(c->https.crl_file);
	free(c->https.ranges);
	free(c->https.metrics_ranges);
	free(c->hub.url);
	free(c->hub.host);
	free(c->hub.path);
	free(c->hub.token_file);
	free(c->hub.ca_file);
	free(c);
}
