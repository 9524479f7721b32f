/*
 * dirbridge-check: the troubleshooter (docs/check.md).  The checks build a
 * report (report.c) that main.c prints as text or JSON; the engine (checks.c,
 * wire.c) takes a config path and gives a report, so an admin page can run the
 * same code.  Every check is bounded by [ldap] timeout_ms.
 */
#ifndef DIRBRIDGE_TOOLS_CHECK_H
#define DIRBRIDGE_TOOLS_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include <jansson.h>

#include "config/cfg.h"
#include "ldap/dir.h"
#include "net/net.h"
#include "tls/tls.h"

/* A result, not a state: each item is written once. */
enum chk_status { CHK_OK, CHK_FAIL, CHK_SKIP };

struct chk_item {
	char name[128];
	enum chk_status status;
	char detail[768];
	char fix[384];		/* set for CHK_FAIL only */
};

struct chk_report {
	struct chk_item *items;
	size_t n, cap;
	bool config_unusable;	/* the config could not be loaded: exit 2 */
};

/* ---- report.c: the report and its two renderings (pure) ---------------- */
/* Adds one item; FIX may be NULL (not for CHK_FAIL).  0 or -ENOMEM. */
int chk_add(struct chk_report *r, const char *name, enum chk_status st, const char *fix,
	    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void chk_report_free(struct chk_report *r);
/* "ok   NAME: detail", "FAIL NAME: detail; fix: FIX", "skip NAME: detail". */
int chk_line(const struct chk_item *it, char *buf, size_t len);
void chk_print_text(const struct chk_report *r, FILE *out);
/* {"checks":[{"name","status","detail","fix"}]}; NULL when out of memory. */
json_t *chk_json(const struct chk_report *r);
/* 0 when nothing failed, 1 when a check failed, 2 when the config is unusable. */
int chk_exit_status(const struct chk_report *r);
const char *chk_status_name(enum chk_status st);
/* Whole days from NOW to T, rounded down (negative once T has passed). */
long chk_days_left(int64_t t, int64_t now);
/* Seconds between the directory's clock and ours, from a reading THEIRS taken
 * between our readings BEFORE and AFTER: the distance to the nearest edge of
 * that window (0 inside it), so a slow answer never looks like skew. */
int64_t chk_skew(int64_t theirs, int64_t before, int64_t after);

/* ---- wire.c: blocking network steps, each bounded by TIMEOUT_MS ------------ */
/* getaddrinfo(HOST, PORT) for TCP; *N addresses into OUT[MAX].  0 or a
 * negative EAI_* code (gai_strerror). */
int chk_resolve(const char *host, unsigned port, struct sockaddr_storage *out, size_t max,
		size_t *n);
/* A connected, non-blocking TCP socket to one of ADDRS (tried in order), or a
 * negative errno; *ADDR_USED is its index. */
int chk_connect(const struct sockaddr_storage *addrs, size_t n, unsigned timeout_ms,
		size_t *addr_used);
/* A TLS client handshake on FD with O; 0 with *SESS, or a tls_err with the
 * reason in WHY.  FD stays the caller's. */
int chk_tls(int fd, const struct tls_client_opts *o, unsigned timeout_ms,
	    struct tls_sess **sess, char *why, size_t whylen);
/* The WebSocket upgrade on S to HOST:PORT/PATH with TOKEN; 0, or -EACCES
 * (the hub refused the token, 401/403), -EPROTO (not an upgrade) or another
 * negative errno, with WHY. */
int chk_ws_upgrade(int fd, struct tls_sess *s, const char *host, unsigned port,
		   const char *path, const char *token, size_t token_len, unsigned timeout_ms,
		   char *why, size_t whylen);

/* ---- checks.c: the checks, in the documented order ------------------------- */
/* Runs every check of the config at PATH (USER: the name user_filter must
 * find, or NULL) and appends one item each to R.  0 or -ENOMEM. */
int chk_run(const char *path, const char *user, struct chk_report *r);
/* The checks after `config` on a loaded CFG (a daemon's own), the same way.
 * Nothing here keeps state between calls or touches process-wide settings,
 * so a daemon may run it from a thread of its own (it blocks). */
int chk_run_cfg(const struct cfg *cfg, const char *user, struct chk_report *r);

#endif
