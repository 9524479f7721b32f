/*
 * Loading and validating the INI configuration; see cfg.h.
 *
 * iniparser does all of the parsing.  It keeps no line numbers, so the file text
 * is scanned a second time only to find the line each section header and key is
 * on; that scan never decides a value, it only annotates messages.
 *
 * Validation never stops at the first problem: every check runs, each problem is
 * one line on ERR, and the struct is handed out only when there were none.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <http_parser.h>
#include <iniparser.h>
#include <ldap.h>

#include "config/cfg.h"
#include "tls/tls.h"

#define LIST_MAX 64		/* entries in any space-separated list */
#define SECRET_MAX 4096		/* bytes in the first line of a secret file */
#define CONFIG_MAX (1 << 20)	/* a config file larger than this is a mistake */

/* Where a section header or a key starts in the file text. */
struct where {
	char *section;		/* lower-case and trimmed, as iniparser stores it */
	char *key;		/* NULL for the section header itself */
	int line;
};

struct loader {
	const char *path;
	char *dir;		/* relative file names are resolved here; NULL: cwd */
	FILE *err;
	dictionary *ini;
	struct where *where;
	size_t n_where;
	unsigned errors;
	bool oom;
	struct cfg *cfg;
};

/* ---- reporting ------------------------------------------------------------ */

__attribute__((format(printf, 4, 5)))
static void report(struct loader *L, int line, bool warning, const char *fmt, ...)
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
__attribute__((format(printf, 5, 6)))
static void key_report(struct loader *L, bool warning, const char *sec, const char *key,
		       const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	report(L, line_of(L, sec, key), warning, "[%s] %s: %s", sec, key, msg);
}

#define key_err(L, sec, key, ...) key_report(L, false, sec, key, __VA_ARGS__)
#define key_warn(L, sec, key, ...) key_report(L, true, sec, key, __VA_ARGS__)

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
			report(L, lineno, false, "[%s] %s is given twice (first on line %d); "
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
		report(ini_loader, line, false, "syntax error: expected `[section]`, "
		       "`key = value` or a comment starting with ; or #");
	else if (strstr(msg, "too long"))
		report(ini_loader, line, false, "line is too long (iniparser reads at "
		       "most 1024 characters per line); shorten it");
	else if (strstr(msg, "cannot open"))
		report(ini_loader, 0, false, "cannot open the file");
	else
		report(ini_loader, line, false, "cannot parse: %.*s", (int)strcspn(msg, "\n"), msg);
	return 0;
}

/* ---- values --------------------------------------------------------------- */

/* The raw value, or NULL when the key is absent or empty. */
static const char *raw(const struct loader *L, const char *sec, const char *key)
{
	char k[128];
	const char *v;

	snprintf(k, sizeof k, "%s:%s", sec, key);
	v = iniparser_getstring(L->ini, k, NULL);
	return v && *v ? v : NULL;
}

static const char *need(struct loader *L, const char *sec, const char *key, const char *example)
{
	const char *v = raw(L, sec, key);

	if (!v)
		report(L, line_of(L, sec, key), false, "[%s] %s is missing or empty; add `%s = %s`",
		       sec, key, key, example);
	return v;
}

static char *keep(struct loader *L, const char *s)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		L->oom = true;
	return d;
}

static void free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Splits a space-separated value; an empty value gives no entries. */
static char **split(struct loader *L, const char *sec, const char *key, const char *s, size_t *n)
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

static int get_enum(struct loader *L, const char *sec, const char *key,
		    const char *const *names, int def)
{
	const char *v = raw(L, sec, key);
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

static bool get_bool(struct loader *L, const char *sec, const char *key, bool def)
{
	static const char *const yes[] = { "true", "yes", "1" }, *const no[] = { "false", "no", "0" };
	const char *v = raw(L, sec, key);

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
static bool parse_uint(const char *s, size_t maxdigits, unsigned long *out)
{
	size_t n = strspn(s, "0123456789");

	if (n == 0 || n != strlen(s) || n > maxdigits || (s[0] == '0' && n > 1))
		return false;
	*out = strtoul(s, NULL, 10);
	return true;
}

static unsigned get_uint(struct loader *L, const char *sec, const char *key,
			 unsigned min, unsigned max, unsigned def)
{
	const char *v = raw(L, sec, key);
	unsigned long n;

	if (!v)
		return def;
	if (!parse_uint(v, 9, &n)) {
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

/* ---- files ----------------------------------------------------------------- */

/*
 * Checks that PATH is a readable regular file (and, for secrets, private to its
 * owner).  Returns whether it is usable for the checks that read it next.
 */
static bool file_ok(struct loader *L, const char *sec, const char *key, const char *path,
		    bool secret)
{
	struct stat st;
	bool ok = true;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	if (fd < 0) {
		key_err(L, sec, key, "cannot read %s: %s; check the path and that the agent's "
			"user may read it", path, strerror(errno));
		return false;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		key_err(L, sec, key, "%s is not a regular file; name a file", path);
		ok = false;
	} else if (secret && (st.st_mode & 077)) {
		key_err(L, sec, key, "%s holds a secret but is accessible by group or others "
			"(mode %04o); run chmod 600 %s", path, (unsigned)(st.st_mode & 07777), path);
		ok = false;
	} else if (st.st_size == 0) {
		key_err(L, sec, key, "%s is empty", path);
		ok = false;
	}
	close(fd);
	return ok;
}

/* Reads the value of a file-naming key, resolved against the config's directory,
 * and checks the file.  *OK tells whether the file may be parsed further. */
static char *get_file(struct loader *L, const char *sec, const char *key, bool required,
		      bool secret, bool *ok)
{
	const char *v = required ? need(L, sec, key, "/path/to/file") : raw(L, sec, key);
	char *path;

	*ok = false;
	if (!v)
		return NULL;
	if (v[0] != '/' && L->dir) {
		if (asprintf(&path, "%s/%s", L->dir, v) < 0) {
			L->oom = true;
			return NULL;
		}
	} else if (!(path = keep(L, v))) {
		return NULL;
	}
	*ok = file_ok(L, sec, key, path, secret);
	return path;
}

/* Reads a secret only to check its content; the value is wiped at once. */
static void check_secret(struct loader *L, const char *sec, const char *key, const char *path,
			 bool token)
{
	char errbuf[512], *s;
	size_t len;

	if (cfg_secret_read(path, &s, &len, errbuf, sizeof errbuf) < 0) {
		key_err(L, sec, key, "%s", errbuf);
		return;
	}
	/* The token goes into an HTTP header: a space or control byte there would
	 * split the header or be rejected by the hub with a confusing error. */
	for (size_t i = 0; token && i < len; i++) {
		if (s[i] <= 0x20 || s[i] >= 0x7f) {
			key_err(L, sec, key, "%s: the token contains a space or a control or "
				"non-ASCII byte; put only the token on the first line", path);
			break;
		}
	}
	cfg_secret_free(s, len);
}

static bool check_ca(struct loader *L, const char *sec, const char *key, const char *path)
{
	char errbuf[512];

	if (tls_check_ca_file(path, errbuf, sizeof errbuf) < 0) {
		key_err(L, sec, key, "%s", errbuf);
		return false;
	}
	return true;
}

static void check_keypair(struct loader *L, const char *sec, const char *cert, const char *key)
{
	char errbuf[512];

	if (tls_check_keypair(cert, key, errbuf, sizeof errbuf) < 0)
		key_err(L, sec, "cert_file", "%s", errbuf);
}

/* ---- syntax helpers -------------------------------------------------------- */

static bool valid_dn(const char *s)
{
	LDAPDN dn = NULL;
	int rc = ldap_str2dn(s, &dn, LDAP_DN_FORMAT_LDAPV3);

	if (dn)
		ldap_dnfree(dn);
	return rc == LDAP_SUCCESS && dn != NULL;
}

/* RFC 4512 attributedescription: (descr | numericoid) *(";" option). */
static bool valid_attr(const char *s)
{
	size_t n;

	if (isalpha((unsigned char)*s)) {
		n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-");
	} else {
		/* numericoid = number 1*( DOT number ), no leading zeros */
		n = 0;
		for (;;) {
			size_t d = strspn(s + n, "0123456789");

			if (d == 0 || (s[n] == '0' && d > 1))
				return false;
			n += d;
			if (s[n] != '.')
				break;
			n++;
		}
		if (!strchr(s, '.') || strchr(s, '.') > s + n)
			return false;
	}
	if (n == 0 || n > 128)
		return false;
	s += n;
	while (*s == ';') {
		n = strspn(s + 1, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-");
		if (n == 0)
			return false;
		s += 1 + n;
	}
	return *s == '\0';
}

/* DNS name or IP literal, as far as a URL host goes. */
static bool valid_host(const char *h, size_t len)
{
	char buf[256];
	struct in6_addr a6;

	if (len == 0 || len >= sizeof buf)
		return false;
	memcpy(buf, h, len);
	buf[len] = '\0';
	if (strchr(buf, ':'))
		return inet_pton(AF_INET6, buf, &a6) == 1;
	return strspn(buf, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") == len
	       && buf[0] != '-' && buf[0] != '.';
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

static const char *const agent_keys[] = { "name", "log_level", "user", NULL };
static const char *const ldap_keys[] = {
	"url", "ca_file", "starttls", "bind_dn", "bind_password_file", "sasl_mech",
	"sasl_authzid", "cert_file", "key_file", "keytab", "base_dn", "type", "user_filter",
	"groups", "timeout_ms", "pool_size", "attributes", "lockout_guard",
	"lockout_guard_window_s", "reveal_account_state", NULL
};
static const char *const https_keys[] = {
	"listen", "public_url", "cert_file", "key_file", "client_ca_file", "crl_file",
	"client_cert_ranges", "cert_username", "client_verify_depth", "max_connections",
	"max_failures_per_ip", NULL
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
				report(L, line_of(L, k, NULL), false, "unknown section [%.64s]; the "
				       "sections are [agent], [ldap], [https] and [hub]", k);
			continue;
		}
		if (colon == k) {
			report(L, line_of(L, "", k + 1), false, "%.64s is outside any section; "
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

static void load_agent(struct loader *L)
{
	static const char *const levels[] = { "error", "warn", "info", "debug", NULL };
	struct cfg *c = L->cfg;
	const char *v = raw(L, "agent", "name");
	char host[256];

	if (!v) {
		/* The hub lists agents by name; the host name is what an operator
		 * would look for first. */
		if (gethostname(host, sizeof host) < 0 || !*host)
			snprintf(host, sizeof host, "dirbridge");
		host[sizeof host - 1] = '\0';
		v = host;
	}
	if (strlen(v) > 64 || strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				     "0123456789._-") != strlen(v))
		key_err(L, "agent", "name", "'%.64s' is not a valid name; use up to 64 letters, "
			"digits, dots, dashes or underscores", v);
	c->agent.name = keep(L, v);
	c->agent.log_level = (enum log_level)get_enum(L, "agent", "log_level", levels,
							   LOGL_INFO);
	if ((v = raw(L, "agent", "user"))) {
		if (!getpwnam(v))
			key_err(L, "agent", "user", "no such user '%.64s'; create it or remove the "
				"key", v);
		c->agent.user = keep(L, v);
	}
}

static void load_ldap_urls(struct loader *L, const char *v)
{
	struct cfg *c = L->cfg;

	c->ldap.urls = split(L, "ldap", "url", v, &c->ldap.n_urls);
	for (size_t i = 0; i < c->ldap.n_urls; i++) {
		const char *u = c->ldap.urls[i], *rest;
		LDAPURLDesc *lud = NULL;

		if (ldap_url_parse(u, &lud) != LDAP_URL_SUCCESS) {
			key_err(L, "ldap", "url", "'%.128s' is not an LDAP URL; use "
				"ldaps://HOST[:PORT] or ldap://HOST[:PORT] with starttls = true", u);
			continue;
		}
		rest = strstr(u, "://");
		rest = rest ? rest + 3 : u;
		if (strcasecmp(lud->lud_scheme, "ldap") != 0 && strcasecmp(lud->lud_scheme, "ldaps") != 0)
			key_err(L, "ldap", "url", "'%.128s': scheme %s is not supported; use ldaps:// "
				"or ldap:// with starttls = true", u, lud->lud_scheme);
		else if (!lud->lud_host || !valid_host(lud->lud_host, strlen(lud->lud_host)))
			key_err(L, "ldap", "url", "'%.128s' names no valid host; use ldaps://HOST[:PORT]", u);
		else if (lud->lud_port < 0 || lud->lud_port > 65535)
			key_err(L, "ldap", "url", "'%.128s': port %d is out of range 1..65535", u,
				lud->lud_port);
		else if (rest[strcspn(rest, "/?")] && strcmp(rest + strcspn(rest, "/?"), "/") != 0)
			key_err(L, "ldap", "url", "'%.128s' carries a DN, attributes or a filter; give "
				"only ldaps://HOST[:PORT] (the base is base_dn)", u);
		else if (strcasecmp(lud->lud_scheme, "ldap") == 0 && !c->ldap.starttls)
			key_err(L, "ldap", "url", "'%.128s' is a plain link and passwords are never sent "
				"over one; use ldaps:// or set starttls = true", u);
		else if (strcasecmp(lud->lud_scheme, "ldaps") == 0 && c->ldap.starttls)
			key_err(L, "ldap", "url", "'%.128s' is already TLS, so starttls = true conflicts "
				"with it; use ldap:// with StartTLS or set starttls = false", u);
		ldap_free_urldesc(lud);
	}
}

/* Secret attributes are never copied into a profile, whatever the config says. */
static bool secret_attr(const char *a)
{
	static const char *const secret[] = {
		"userPassword", "unicodePwd", "dBCSPwd", "ntPwdHistory", "lmPwdHistory",
		"supplementalCredentials", "msDS-ManagedPassword", "ms-Mcs-AdmPwd",
		"msLAPS-Password", "msLAPS-EncryptedPassword", "sambaNTPassword",
		"sambaLMPassword", "authPassword", NULL
	};
	size_t n = strcspn(a, ";");

	for (size_t i = 0; secret[i]; i++)
		if (strlen(secret[i]) == n && strncasecmp(a, secret[i], n) == 0)
			return true;
	return false;
}

static void load_ldap_bind(struct loader *L)
{
	static const char *const mechs[] = { "EXTERNAL", "GSSAPI", "DIGEST-MD5", NULL };
	struct cfg *c = L->cfg;
	const char *mech = raw(L, "ldap", "sasl_mech");
	bool ok, cert_ok = false, key_ok = false;
	int m = -1;

	if (mech) {
		for (m = 0; mechs[m] && strcasecmp(mech, mechs[m]) != 0; m++)
			;
		if (!mechs[m]) {
			key_err(L, "ldap", "sasl_mech", "unknown mechanism '%.64s'; use EXTERNAL, "
				"GSSAPI, DIGEST-MD5, or leave it empty for a simple bind", mech);
			return;
		}
		c->ldap.sasl_mech = keep(L, mechs[m]);
	}
	c->ldap.cert_file = get_file(L, "ldap", "cert_file", m == 0, false, &cert_ok);
	c->ldap.key_file = get_file(L, "ldap", "key_file", m == 0, true, &key_ok);
	if (!c->ldap.cert_file != !c->ldap.key_file && m != 0)
		key_err(L, "ldap", c->ldap.cert_file ? "key_file" : "cert_file",
			"cert_file and key_file go together; set both or neither");
	if (cert_ok && key_ok)
		check_keypair(L, "ldap", c->ldap.cert_file, c->ldap.key_file);

	c->ldap.keytab = get_file(L, "ldap", "keytab", false, true, &ok);
	if (c->ldap.keytab && m != 1)
		key_err(L, "ldap", "keytab", "a keytab is only used with sasl_mech = GSSAPI; "
			"remove it or set the mechanism");
	if ((c->ldap.sasl_authzid = keep(L, raw(L, "ldap", "sasl_authzid"))) && m < 0)
		key_err(L, "ldap", "sasl_authzid", "only used with a SASL mechanism; remove it "
			"or set sasl_mech");

	switch (m) {
	case -1:	/* simple bind */
	case 2:		/* DIGEST-MD5: bind_dn is the SASL authentication id */
		if ((c->ldap.bind_dn = keep(L, need(L, "ldap", "bind_dn", m < 0 ?
				"CN=svc-dirbridge,CN=Users,DC=example,DC=test" : "svc-dirbridge")))
		    && m < 0 && !valid_dn(c->ldap.bind_dn))
			key_err(L, "ldap", "bind_dn", "'%.128s' is not a valid DN; write it as "
				"CN=svc,CN=Users,DC=example,DC=test", c->ldap.bind_dn);
		c->ldap.bind_password_file = get_file(L, "ldap", "bind_password_file", true, true, &ok);
		if (ok)
			check_secret(L, "ldap", "bind_password_file", c->ldap.bind_password_file, false);
		break;
	default:	/* EXTERNAL and GSSAPI take the identity from the certificate or ticket */
		if (raw(L, "ldap", "bind_dn"))
			key_err(L, "ldap", "bind_dn", "not used with sasl_mech = %s (the identity "
				"comes from the %s); remove it or use sasl_authzid", mechs[m],
				m == 0 ? "client certificate" : "Kerberos ticket");
		if (raw(L, "ldap", "bind_password_file"))
			key_err(L, "ldap", "bind_password_file", "not used with sasl_mech = %s; "
				"remove it", mechs[m]);
		break;
	}
}

static void load_ldap(struct loader *L)
{
	static const char *const types[] = { "ad", "openldap", NULL };
	static const char *const groups[] = { "none", "direct", "recursive", NULL };
	static const char *const filters[] = {
		"(&(objectClass=user)(sAMAccountName={username}))",
		"(&(objectClass=inetOrgPerson)(uid={username}))",
	};
	struct cfg *c = L->cfg;
	const char *v;
	bool ok;

	c->ldap.present = true;
	c->ldap.starttls = get_bool(L, "ldap", "starttls", false);
	if ((v = need(L, "ldap", "url", "ldaps://dc1.example.test")))
		load_ldap_urls(L, v);
	c->ldap.ca_file = get_file(L, "ldap", "ca_file", true, false, &ok);
	if (ok)
		check_ca(L, "ldap", "ca_file", c->ldap.ca_file);
	load_ldap_bind(L);

	if ((c->ldap.base_dn = keep(L, need(L, "ldap", "base_dn", "DC=example,DC=test")))
	    && !valid_dn(c->ldap.base_dn))
		key_err(L, "ldap", "base_dn", "'%.128s' is not a valid DN; write it as "
			"DC=example,DC=test", c->ldap.base_dn);
	c->ldap.type = (enum cfg_dir_type)get_enum(L, "ldap", "type", types, CFG_DIR_AD);

	v = raw(L, "ldap", "user_filter");
	c->ldap.user_filter = keep(L, v ? v : filters[c->ldap.type]);
	if (v) {
		const char *hit = strstr(v, "{username}");
		size_t len = strlen(v);
		int depth = 0;
		bool balanced = true;

		for (size_t i = 0; i < len && balanced; i++) {
			depth += v[i] == '(' ? 1 : v[i] == ')' ? -1 : 0;
			balanced = depth > 0 || (depth == 0 && i == len - 1);
		}
		if (v[0] != '(' || v[len - 1] != ')' || !balanced || depth != 0)
			key_err(L, "ldap", "user_filter", "'%.128s' is not a parenthesised filter "
				"with balanced parentheses; write it like %s (quote it if it "
				"contains ; or #)", v, filters[c->ldap.type]);
		if (!hit || strstr(hit + 1, "{username}"))
			key_err(L, "ldap", "user_filter", "must contain {username} exactly once, "
				"where the escaped user name goes");
	}
	c->ldap.groups = (enum cfg_groups)get_enum(L, "ldap", "groups", groups, CFG_GROUPS_DIRECT);
	c->ldap.timeout_ms = get_uint(L, "ldap", "timeout_ms", 100, 600000, 5000);
	c->ldap.pool_size = get_uint(L, "ldap", "pool_size", 1, 32, 2);
	/* auto (CFG_LOCKOUT_AUTO) is resolved against the directory at start. */
	c->ldap.lockout_guard = CFG_LOCKOUT_AUTO;
	if ((v = raw(L, "ldap", "lockout_guard")) && strcasecmp(v, "auto") != 0) {
		unsigned long n;

		if (!parse_uint(v, 9, &n) || n > 1000)
			key_err(L, "ldap", "lockout_guard", "'%.64s' is neither auto nor a number "
				"from 0 (off) to 1000", v);
		else
			c->ldap.lockout_guard = (unsigned)n;
	}
	c->ldap.lockout_guard_window_s = get_uint(L, "ldap", "lockout_guard_window_s", 1, 86400, 900);
	c->ldap.reveal_account_state = get_bool(L, "ldap", "reveal_account_state", true);

	c->ldap.attributes = split(L, "ldap", "attributes", raw(L, "ldap", "attributes"),
				   &c->ldap.n_attributes);
	for (size_t i = 0; i < c->ldap.n_attributes; i++) {
		const char *a = c->ldap.attributes[i];

		if (!valid_attr(a))
			key_err(L, "ldap", "attributes", "'%.64s' is not an attribute name; use names "
				"like telephoneNumber, separated by spaces", a);
		else if (secret_attr(a))
			key_err(L, "ldap", "attributes", "%.64s holds password material and is never "
				"returned; remove it", a);
	}
}

/* "HOST:PORT" or "[V6]:PORT" with an IP literal HOST. */
static int parse_listen(const char *s, struct sockaddr_storage *ss)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon, *h = s;
	size_t hlen;
	unsigned long port;

	memset(ss, 0, sizeof *ss);
	if (*s == '[') {
		const char *end = strchr(s, ']');

		if (!end || end[1] != ':')
			return -EINVAL;
		h = s + 1;
		hlen = (size_t)(end - h);
		colon = end + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || memchr(s, ':', (size_t)(colon - s)))
			return -EINVAL;
		hlen = (size_t)(colon - s);
	}
	if (hlen == 0 || hlen >= sizeof host || memchr(h, '/', hlen) ||
	    !parse_uint(colon + 1, 5, &port) || port < 1 || port > 65535)
		return -EINVAL;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (*s == '[') {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		return inet_pton(AF_INET6, host, &a->sin6_addr) == 1 ? 0 : -EINVAL;
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;
		struct cfg_range r;

		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		/* cfg_range_parse applies the strict dotted-quad rules. */
		if (cfg_range_parse(host, &r) < 0 || r.family != AF_INET)
			return -EINVAL;
		memcpy(&a->sin_addr, r.addr, 4);
		return 0;
	}
}

/* A URL of SCHEME with a host and no user info, query or fragment. */
static bool check_url(struct loader *L, const char *sec, const char *key, const char *v,
		      const char *scheme, bool need_path, struct http_parser_url *u)
{
	http_parser_url_init(u);
	if (http_parser_parse_url(v, strlen(v), 0, u) != 0 ||
	    !(u->field_set & (1 << UF_SCHEMA)) || !(u->field_set & (1 << UF_HOST))) {
		key_err(L, sec, key, "'%.128s' is not a URL; write it like %s://HOST[:PORT]%s", v,
			scheme, need_path ? "/agent/v1" : "");
		return false;
	}
	if (u->field_data[UF_SCHEMA].len != strlen(scheme) ||
	    strncasecmp(v + u->field_data[UF_SCHEMA].off, scheme, strlen(scheme)) != 0) {
		key_err(L, sec, key, "'%.128s' must start with %s://", v, scheme);
		return false;
	}
	if (u->field_set & ((1 << UF_USERINFO) | (1 << UF_QUERY) | (1 << UF_FRAGMENT))) {
		key_err(L, sec, key, "'%.128s' must not carry user info, a query or a fragment", v);
		return false;
	}
	if ((u->field_set & (1 << UF_PORT)) && u->port == 0) {
		key_err(L, sec, key, "'%.128s': port 0 is not a port; use 1..65535", v);
		return false;
	}
	if (!valid_host(v + u->field_data[UF_HOST].off, u->field_data[UF_HOST].len)) {
		key_err(L, sec, key, "'%.128s' names no valid host", v);
		return false;
	}
	if (need_path && !(u->field_set & (1 << UF_PATH))) {
		key_err(L, sec, key, "'%.128s' has no path; write it like %s://HOST[:PORT]/agent/v1",
			v, scheme);
		return false;
	}
	return true;
}

static void load_https(struct loader *L)
{
	static const char *const names[] = { "cn", "upn", "email", NULL };
	struct cfg *c = L->cfg;
	struct http_parser_url u;
	const char *v;
	bool cert_ok, key_ok, ca_ok, ok;

	c->https.present = true;
	c->https.listen = split(L, "https", "listen", need(L, "https", "listen", "0.0.0.0:8443"),
				&c->https.n_listen);
	if (c->https.n_listen &&
	    !(c->https.listen_addrs = calloc(c->https.n_listen, sizeof *c->https.listen_addrs)))
		L->oom = true;
	for (size_t i = 0; c->https.listen_addrs && i < c->https.n_listen; i++) {
		if (parse_listen(c->https.listen[i], &c->https.listen_addrs[i]) < 0) {
			key_err(L, "https", "listen", "'%.64s' is not an address to listen on; use "
				"IP:PORT or [IPv6]:PORT, e.g. 0.0.0.0:8443 or [::]:8443",
				c->https.listen[i]);
			continue;
		}
		for (size_t j = 0; j < i; j++)
			if (!memcmp(&c->https.listen_addrs[i], &c->https.listen_addrs[j],
				    sizeof c->https.listen_addrs[i]))
				key_err(L, "https", "listen", "%.64s is listed twice; remove one",
					c->https.listen[i]);
	}

	if ((v = need(L, "https", "public_url", "https://agent.example.test:8443")) &&
	    check_url(L, "https", "public_url", v, "https", false, &u))
		c->https.public_url = keep(L, v);

	c->https.cert_file = get_file(L, "https", "cert_file", true, false, &cert_ok);
	c->https.key_file = get_file(L, "https", "key_file", true, true, &key_ok);
	if (cert_ok && key_ok)
		check_keypair(L, "https", c->https.cert_file, c->https.key_file);
	c->https.client_ca_file = get_file(L, "https", "client_ca_file", true, false, &ca_ok);
	ca_ok = ca_ok && check_ca(L, "https", "client_ca_file", c->https.client_ca_file);
	c->https.crl_file = get_file(L, "https", "crl_file", false, false, &ok);
	if (ok) {
		char errbuf[512];

		if (tls_check_crl_file(c->https.crl_file, ca_ok ? c->https.client_ca_file : NULL,
				       errbuf, sizeof errbuf) < 0)
			key_err(L, "https", "crl_file", "%s", errbuf);
	}

	size_t n;
	char **ranges = split(L, "https", "client_cert_ranges", raw(L, "https", "client_cert_ranges"), &n);
	if (n && !(c->https.ranges = calloc(n, sizeof *c->https.ranges)))
		L->oom = true;
	for (size_t i = 0; c->https.ranges && i < n; i++) {
		struct cfg_range *r = &c->https.ranges[c->https.n_ranges];
		char text[INET6_ADDRSTRLEN];
		int rc = cfg_range_parse(ranges[i], r);

		if (rc == -EDOM) {
			inet_ntop(r->family, r->addr, text, sizeof text);
			key_err(L, "https", "client_cert_ranges", "%.64s has host bits set beyond "
				"/%u; did you mean %s/%u?", ranges[i], r->prefix, text, r->prefix);
		} else if (rc == -ERANGE) {
			key_err(L, "https", "client_cert_ranges", "%.64s: the prefix length is too "
				"long; IPv4 allows /0../32, IPv6 /0../128", ranges[i]);
		} else if (rc < 0) {
			key_err(L, "https", "client_cert_ranges", "'%.64s' is not an address range; "
				"write it like 10.0.0.0/8 or 2001:db8::/32", ranges[i]);
		} else {
			if (r->prefix == 0)
				key_warn(L, "https", "client_cert_ranges", "%.64s matches every %s "
					 "client, so every such client is asked for a certificate",
					 ranges[i], r->family == AF_INET ? "IPv4" : "IPv6");
			c->https.n_ranges++;
		}
	}
	free_list(ranges, n);
	c->https.cert_username = (enum cfg_cert_username)get_enum(L, "https", "cert_username",
								   names, CFG_CERTNAME_CN);
	/* As nginx's ssl_verify_depth: 1 means the leaf must be signed by a
	 * configured CA itself, so a chain the client sends is never used. */
	c->https.client_verify_depth = get_uint(L, "https", "client_verify_depth", 1, 8, 1);
	c->https.max_connections = get_uint(L, "https", "max_connections", 16, 1000000, 10000);
	c->https.max_failures_per_ip = get_uint(L, "https", "max_failures_per_ip", 0, 1000000, 20);
}

static void load_hub(struct loader *L)
{
	struct cfg *c = L->cfg;
	struct http_parser_url u;
	const char *v;
	bool ok;

	c->hub.present = true;
	if ((v = need(L, "hub", "url", "wss://hub.example.test/agent/v1")) &&
	    check_url(L, "hub", "url", v, "wss", true, &u)) {
		c->hub.url = keep(L, v);
		c->hub.host = strndup(v + u.field_data[UF_HOST].off, u.field_data[UF_HOST].len);
		c->hub.path = strndup(v + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
		c->hub.port = (u.field_set & (1 << UF_PORT)) ? u.port : 443;
		if (!c->hub.host || !c->hub.path)
			L->oom = true;
	}
	c->hub.token_file = get_file(L, "hub", "token_file", true, true, &ok);
	if (ok)
		check_secret(L, "hub", "token_file", c->hub.token_file, true);
	c->hub.ca_file = get_file(L, "hub", "ca_file", true, false, &ok);
	if (ok)
		check_ca(L, "hub", "ca_file", c->hub.ca_file);
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
			report(L, 0, false, "section [%s] is missing; add it (see docs/config.md)",
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
		report(&L, 0, false, "cannot read the configuration: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		goto out;
	}
	if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > CONFIG_MAX) {
		rc = -EINVAL;
		report(&L, 0, false, "the configuration must be a regular file under 1 MiB");
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
			report(&L, 0, false, "cannot parse the configuration");
		rc = -EINVAL;
		goto out;
	}

	if (!(L.cfg = calloc(1, sizeof *L.cfg)) || !(L.cfg->path = strdup(path))) {
		rc = -ENOMEM;
		goto out;
	}
	check_names(&L);
	check_need(&L, need);
	load_agent(&L);
	if (has_section(&L, "ldap"))
		load_ldap(&L);
	if (has_section(&L, "https"))
		load_https(&L);
	if (has_section(&L, "hub"))
		load_hub(&L);

	if (L.oom)
		rc = -ENOMEM;
	else if (L.errors)
		rc = -EINVAL;
out:
	if (rc == 0 && L.errors)
		rc = -EINVAL;
	if (rc == -ENOMEM)
		report(&L, 0, false, "out of memory");
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
	free_list(c->ldap.urls, c->ldap.n_urls);
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
	free_list(c->ldap.attributes, c->ldap.n_attributes);
	free_list(c->https.listen, c->https.n_listen);
	free(c->https.listen_addrs);
	free(c->https.public_url);
	free(c->https.cert_file);
	free(c->https.key_file);
	free(c->https.client_ca_file);
	free(c->https.crl_file);
	free(c->https.ranges);
	free(c->hub.url);
	free(c->hub.host);
	free(c->hub.path);
	free(c->hub.token_file);
	free(c->hub.ca_file);
	free(c);
}

/* ---- address ranges ------------------------------------------------------- */

/* Dotted-quad octets with a leading zero are refused: some parsers read them as
 * octal, so "010.0.0.1" would mean 8.0.0.1 to one tool and 10.0.0.1 to another. */
static bool octets_plain(const char *s)
{
	const char *p = strrchr(s, ':');

	for (p = p ? p + 1 : s; *p; p++)
		if (*p == '0' && isdigit((unsigned char)p[1]) && (p == s || !isxdigit((unsigned char)p[-1])))
			return false;
	return true;
}

int cfg_range_parse(const char *text, struct cfg_range *out)
{
	char addr[INET6_ADDRSTRLEN];
	const char *slash = strchr(text, '/');
	size_t alen = slash ? (size_t)(slash - text) : strlen(text);
	unsigned max, bits;
	unsigned long prefix;
	bool host_bits = false;

	memset(out, 0, sizeof *out);
	if (alen == 0 || alen >= sizeof addr)
		return -EINVAL;
	memcpy(addr, text, alen);
	addr[alen] = '\0';
	if (strchr(addr, ':')) {
		out->family = AF_INET6;
		max = 128;
	} else {
		out->family = AF_INET;
		max = 32;
	}
	if ((strchr(addr, '.') && !octets_plain(addr)) ||
	    inet_pton(out->family, addr, out->addr) != 1)
		return -EINVAL;
	prefix = max;
	if (slash && !parse_uint(slash + 1, 3, &prefix))
		return -EINVAL;
	if (prefix > max)
		return -ERANGE;
	out->prefix = (unsigned)prefix;
	for (bits = out->prefix; bits < max; bits++) {
		uint8_t bit = (uint8_t)(0x80u >> (bits % 8));

		if (out->addr[bits / 8] & bit) {
			host_bits = true;
			out->addr[bits / 8] &= (uint8_t)~bit;
		}
	}
	return host_bits ? -EDOM : 0;
}

static bool prefix_match(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
	unsigned full = prefix / 8, rest = prefix % 8;
	uint8_t mask;

	if (memcmp(a, b, full) != 0)
		return false;
	if (rest == 0)
		return true;
	mask = (uint8_t)(0xffu << (8 - rest));
	return ((a[full] ^ b[full]) & mask) == 0;
}

bool cfg_ranges_match(const struct cfg_range *ranges, size_t n, const struct sockaddr *sa)
{
	const uint8_t *v4 = NULL, *v6 = NULL;

	if (!sa)
		return false;
	if (sa->sa_family == AF_INET) {
		v4 = (const uint8_t *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;

		v6 = a->s6_addr;
		/* A dual-stack socket shows IPv4 clients as ::ffff:a.b.c.d; they
		 * are the same clients the IPv4 ranges describe. */
		if (IN6_IS_ADDR_V4MAPPED(a))
			v4 = a->s6_addr + 12;
	}
	for (size_t i = 0; i < n; i++) {
		const struct cfg_range *r = &ranges[i];

		if (r->family == AF_INET && v4 && prefix_match(v4, r->addr, r->prefix))
			return true;
		if (r->family == AF_INET6 && v6 && prefix_match(v6, r->addr, r->prefix))
			return true;
	}
	return false;
}

/* ---- secrets ---------------------------------------------------------------- */

/* Secrets live in their own locked, non-dumpable mapping of a fixed size, so
 * cfg_secret_free() knows what to wipe without trusting a length. */
static size_t secret_map_size(void)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	return (SECRET_MAX + 1 + page - 1) / page * page;
}

int cfg_secret_read(const char *path, char **out, size_t *len, char *errbuf, size_t errlen)
{
	size_t size = secret_map_size(), got = 0, n;
	struct stat st;
	char *buf, *nl = NULL;
	int fd, rc = 0;

	*out = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		rc = -errno;
		snprintf(errbuf, errlen, "cannot read %s: %s", path, strerror(errno));
		return rc;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(errbuf, errlen, "%s is not a regular file", path);
		close(fd);
		return -EINVAL;
	}
	if (st.st_mode & 077) {
		snprintf(errbuf, errlen, "%s holds a secret but is accessible by group or others "
			 "(mode %04o); run chmod 600 %s", path, (unsigned)(st.st_mode & 07777), path);
		close(fd);
		return -EPERM;
	}
	buf = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED) {
		snprintf(errbuf, errlen, "cannot allocate memory for %s", path);
		close(fd);
		return -ENOMEM;
	}
	/* Locking may exceed RLIMIT_MEMLOCK for an unprivileged user; the secret
	 * is still wiped on free, so that is not worth refusing to start. */
	(void)mlock(buf, size);
	(void)madvise(buf, size, MADV_DONTDUMP);

	while (got <= SECRET_MAX && !(nl = memchr(buf, '\n', got))) {
		ssize_t r = read(fd, buf + got, SECRET_MAX + 1 - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			snprintf(errbuf, errlen, "cannot read %s: %s", path, strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	nl = memchr(buf, '\n', got);
	n = nl ? (size_t)(nl - buf) : got;
	if (n > SECRET_MAX) {
		snprintf(errbuf, errlen, "%s: the first line is longer than %d bytes", path, SECRET_MAX);
		rc = -EINVAL;
		goto fail;
	}
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	if (n == 0) {
		snprintf(errbuf, errlen, "%s: the first line is empty; put the secret on it", path);
		rc = -EINVAL;
		goto fail;
	}
	if (memchr(buf, '\0', n)) {
		snprintf(errbuf, errlen, "%s: the secret contains a NUL byte", path);
		rc = -EINVAL;
		goto fail;
	}
	/* Whatever followed the first line is not ours to keep. */
	explicit_bzero(buf + n, size - n);
	close(fd);
	*out = buf;
	*len = n;
	return 0;
fail:
	explicit_bzero(buf, size);
	munlock(buf, size);
	munmap(buf, size);
	close(fd);
	return rc;
}

void cfg_secret_free(char *secret, size_t len)
{
	size_t size = secret_map_size();

	(void)len;
	if (!secret)
		return;
	explicit_bzero(secret, size);
	munlock(secret, size);
	munmap(secret, size);
}
