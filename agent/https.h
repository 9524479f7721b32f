/*
 * agent/ private: the front-facing HTTPS server (docs/https.md).
 * https.c owns listeners and the server's life, https_conn.c connections, TLS
 * and limits, routes.c the routes; pages.c renders pages and response heads,
 * http.c buffers, forms, CSRF tokens and metrics text.  Only agent/ files
 * (and tests) include this.
 */
#ifndef DIRBRIDGE_AGENT_HTTPS_H
#define DIRBRIDGE_AGENT_HTTPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "agent/calls.h"
#include "agent/login.h"
#include "agent/tunnel.h"
#include "config/cfg.h"
#include "ldap/dir.h"
#include "tls/tls.h"

struct https;

/*
 * What the server needs from the hub, supplied by whoever starts it (agent.c
 * wires them to the tunnel).  Each gets ARG first.  check_session and
 * report_login return 0 and later call CB exactly once with the hub's answer
 * (CB may run before they return), or a negative errno and never call CB;
 * hub_connected says whether the hub can be asked at all, for /healthz;
 * hub_stats fills OUT for /metrics and returns false when there is no tunnel
 * (it may be NULL).
 */
struct https_hooks {
	int (*check_session)(void *arg, const char *session, agent_answer_cb cb, void *cb_arg);
	int (*report_login)(void *arg, const struct agent_login *l, agent_answer_cb cb,
			    void *cb_arg);
	bool (*hub_connected)(void *arg);
	bool (*hub_stats)(void *arg, struct agent_tunnel_stats *out);
	void *arg;
};

/* Binds every [https] listen address (cfg->https.listen_addrs) and starts
 * serving.  CFG and DIR must outlive the server (or be replaced with
 * https_reload() and https_set_dir()); HOOKS is copied, its ARG must outlive
 * the server.  Returns 0; -EIO when no CSRF key could be drawn, -ENOMEM,
 * -EINVAL when the certificate set does not load (the reason is logged), or
 * a libuv error (a negative errno) when a listener cannot be bound. */
int https_start(uv_loop_t *loop, const struct cfg *cfg, struct dir *dir,
		const struct https_hooks *hooks, struct https **out);
/* SIGHUP: reloads certificate, key, CA set and CRL from CFG (the new config
 * or the old one).  On failure the old set keeps serving, and the reason is
 * logged and -EINVAL returned.  Open connections are never dropped. */
int https_reload(struct https *h, const struct cfg *cfg);
/* Points at a new config (after a successful config reload) and directory. */
void https_set_dir(struct https *h, struct dir *dir);
/* Caps open client connections at MAX (at least 1); a client arriving at the
 * cap evicts the oldest connection still handshaking or waiting for a
 * request.  Until called, the cap is the config's max_connections. */
void https_set_max_conns(struct https *h, size_t max);
/* Stops accepting, lets in-flight requests finish (bounded), closes every
 * handle, then calls DONE. */
void https_stop(struct https *h, void (*done)(void *arg), void *arg);

/* ---- http.c: buffers, forms, CSRF tokens ----------------------------------- */

/* A growable byte buffer; wiped on free because bodies may hold passwords. */
struct buf {
	char *p;
	size_t len, cap;
};
int buf_add(struct buf *b, const void *data, size_t len);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends TEXT escaped for HTML text and attribute values. */
int buf_html(struct buf *b, const char *text);
void buf_wipe(struct buf *b);

/* The request as far as the routes need it. */
enum http_route { ROUTE_LOGIN, ROUTE_HEALTHZ, ROUTE_METRICS, ROUTE_STATIC, ROUTE_OTHER };

/* Counters for /metrics; one instance per server. */
enum { M_STATUS_MAX = 8 };
struct https_metrics {
	uint64_t requests[ROUTE_OTHER + 1][M_STATUS_MAX];	/* by status class below */
	uint64_t logins_cert_ok, logins_cert_fail, logins_pw_ok, logins_pw_fail;
	uint64_t handshakes_ok, handshakes_fail, handshakes_resumed;
	uint64_t handshake_fail_by[TLS_FAIL_COUNT];	/* handshakes_fail by reason */
	uint64_t accepted;		/* connections accepted */
	uint64_t evicted, timeouts, bad_requests;
	uint64_t logins_pw_throttled;	/* form logins refused by max_failures_per_ip */
	uint64_t guard_refused, guard_hidden;	/* the directory's lockout guard */
	uint64_t ip_keys;		/* client addresses with failures on record */
	uint64_t open_conns;
};

/* application/x-www-form-urlencoded: the first value of NAME in FORM (LEN
 * bytes), percent- and plus-decoded into a malloc'd string with its length.
 * Returns 0, -ENOENT when absent, -EINVAL on bad encoding or a NUL byte. */
int form_get(const char *form, size_t len, const char *name, char **out, size_t *outlen);

/* CSRF: a token bound to SESSION, valid for a limited time, keyed by a
 * per-process random key. */
int csrf_init(void);
int csrf_make(const char *session, char *out, size_t outlen);
bool csrf_check(const char *session, const char *token);

/* Whether ID looks like a hub session id: 1..128 of [A-Za-z0-9_-]. */
bool session_id_valid(const char *id);

/* ---- pages.c: page bodies ----------------------------------------------- */

/* MSG may be NULL.  Every value is HTML-escaped.  Each returns 0 or -ENOMEM. */
int page_form(struct buf *b, const char *session, const char *csrf, const char *username,
	      const char *msg);
int page_success(struct buf *b, const char *username, const char *method);
/* A page with a heading (element id ID) and a message, and no form: for
 * sign-in links that cannot be used. */
int page_notice(struct buf *b, const char *id, const char *title, const char *msg);
/* The stylesheet served at /static/login.css. */
extern const char page_css[];
extern const size_t page_css_len;

/* ---- http.c: metrics text ------------------------------------------------- */

/* Everything /metrics shows, gathered when it is asked for; the optional
 * parts are NULL (or 0 servers) when the agent runs without them. */
struct metrics_view {
	const struct https_metrics *m;
	const struct dir_stats *dir;
	const struct dir_server_stats *servers;
	size_t n_servers;
	const struct agent_tunnel_stats *hub;
	const struct tls_server_expiry *expiry;
	int64_t now;		/* seconds since the epoch, for the expiry gauges */
};
/* Prometheus text exposition format 0.0.4.  Returns 0 or -ENOMEM. */
int metrics_render(struct buf *b, const struct metrics_view *v);
/* Appends TEXT as a label value: backslash, double quote and newline escaped. */
int buf_label(struct buf *b, const char *text);
extern const char *const route_names[ROUTE_OTHER + 1];
/* Index into requests[][] for an HTTP status. */
unsigned metrics_status_slot(unsigned status);

#endif
