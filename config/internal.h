/*
 * config/ private header: only files under config/ include it.  The loader's
 * state and the helpers its files share (cfg.c reads values and reports,
 * check.c checks files and syntax, sections.c loads each section).
 */
#ifndef DIRBRIDGE_CFG_INTERNAL_H
#define DIRBRIDGE_CFG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <iniparser.h>

#include "config/cfg.h"

struct http_parser_url;

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

/* ---- cfg.c: reporting ---- */
/* One line on ERR: "dirbridge: FILE[:LINE]: [warning: ]message"; an error (not a
 * warning) makes cfg_load() fail. */
void cfg_report(struct loader *L, int line, bool warning, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* An error about one key: "FILE:LINE: [sec] key: message". */
void cfg_key_report(struct loader *L, bool warning, const char *sec, const char *key,
		    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
#define key_err(L, sec, key, ...) cfg_key_report(L, false, sec, key, __VA_ARGS__)
#define key_warn(L, sec, key, ...) cfg_key_report(L, true, sec, key, __VA_ARGS__)

/* ---- cfg.c: values ---- */
/* The raw value, or NULL when the key is absent or empty. */
const char *cfg_raw(const struct loader *L, const char *sec, const char *key);
/* The raw value; reports it missing (suggesting `key = EXAMPLE`) when absent. */
const char *cfg_need(struct loader *L, const char *sec, const char *key, const char *example);
/* A copy of S (NULL stays NULL); out of memory is recorded in L->oom. */
char *cfg_keep(struct loader *L, const char *s);
void cfg_free_list(char **v, size_t n);
/* Splits a space-separated value; an empty value gives no entries. */
char **cfg_split(struct loader *L, const char *sec, const char *key, const char *s, size_t *n);
/* The index of the value in the NULL-terminated NAMES (case-insensitive), or DEF. */
int cfg_get_enum(struct loader *L, const char *sec, const char *key,
		 const char *const *names, int def);
bool cfg_get_bool(struct loader *L, const char *sec, const char *key, bool def);
/* Strict decimal: digits only, no sign, no leading zero, no overflow. */
bool cfg_parse_uint(const char *s, size_t maxdigits, unsigned long *out);
unsigned cfg_get_uint(struct loader *L, const char *sec, const char *key,
		      unsigned min, unsigned max, unsigned def);

/* ---- check.c ---- */
/* Reads the value of a file-naming key, resolved against the config's directory,
 * and checks the file.  *OK tells whether the file may be parsed further. */
char *cfg_get_file(struct loader *L, const char *sec, const char *key, bool required,
		   bool secret, bool *ok);
/* Reads a secret only to check its content (TOKEN: fit for an HTTP header). */
void cfg_check_secret(struct loader *L, const char *sec, const char *key, const char *path,
		      bool token);
bool cfg_check_ca(struct loader *L, const char *sec, const char *key, const char *path);
void cfg_check_keypair(struct loader *L, const char *sec, const char *cert, const char *key);
bool cfg_valid_dn(const char *s);
/* RFC 4512 attributedescription: (descr | numericoid) *(";" option). */
bool cfg_valid_attr(const char *s);
/* DNS name or IP literal, as far as a URL host goes. */
bool cfg_valid_host(const char *h, size_t len);
/* A URL of SCHEME with a host and no user info, query or fragment; U gets its parts. */
bool cfg_check_url(struct loader *L, const char *sec, const char *key, const char *v,
		   const char *scheme, bool need_path, struct http_parser_url *u);

/* ---- sections.c ---- */
void cfg_load_agent(struct loader *L);
void cfg_load_ldap(struct loader *L);
void cfg_load_https(struct loader *L);
void cfg_load_hub(struct loader *L);

#endif
