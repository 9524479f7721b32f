/*
 * agent/ — the daemon's private header: one struct agent owns the loop, the
 * current configuration and every long-lived part (signals now; the directory,
 * the HTTPS front and the tunnel as they are added).  Prefix: agent_.
 *
 * Lifecycle: agent_run() starts every part, runs the loop until a stop signal,
 * and returns once every handle is closed.  SIGHUP calls agent_reload(), which
 * swaps in a new struct cfg only when it loaded without a single error.
 */
#ifndef DIRBRIDGE_AGENT_H
#define DIRBRIDGE_AGENT_H

#include <stdatomic.h>

#include <uv.h>

#include "config/cfg.h"
#include "ldap/dir.h"

struct https;
struct agent_tunnel;
struct agent_service;

enum agent_state {
	AGENT_NEW,		/* agent_run() has not begun starting parts */
	AGENT_STARTING,
	AGENT_RUNNING,
	AGENT_STOPPING,		/* handles are closing; the loop ends when they are */
};

struct agent {
	uv_loop_t loop;
	struct cfg *cfg;	/* owned; replaced as a whole on reload */
	enum agent_state state;
	uv_signal_t sig_term, sig_int, sig_hup;
	/* Stop and reload asked for by a service manager on another thread (the
	 * Windows SCM, agent/platform.h): bits 1 << AGENT_EVENT_*, set there,
	 * taken by the loop when WAKE fires. */
	uv_async_t wake;
	atomic_uint events;
	unsigned reloads;	/* successful reloads, for logs and tests */
	struct dir *dir;	/* the directory on the current cfg */
	struct https *https;	/* the front-facing server */
	struct agent_tunnel *tunnel;	/* the link to the hub */
	struct agent_service *service;	/* the systemd watchdog, when asked for */
};

/* Runs the agent on CFG (taking ownership) until SIGTERM or SIGINT.  Returns 0
 * after a clean stop, or, when it could not start (the reason is logged), the
 * code of the part that refused: a TLS_E_* code (-1001..) when GnuTLS cannot
 * be initialized, a DIR_E_* code (-2001..) when the directory cannot be
 * opened, and otherwise a negative errno (libuv's errors are negative errnos
 * too): signals, the HTTPS listeners or certificates (https_start), the
 * tunnel, or dropping privileges (-EPERM also when started as root without
 * [agent] user, refused before anything is opened). */
int agent_run(struct cfg *cfg);
/* dirbridge -n: compares a configured [ldap] lockout_guard number with the
 * directory's lockout threshold and warns (stderr) when it is not below it.
 * Returns 0 (also when the directory did not answer in time: that is a
 * warning), a negative errno when no event loop could be made, a TLS_E_* code
 * when GnuTLS cannot be initialized, or a DIR_E_* code when the directory
 * could not be opened. */
int agent_check_directory(const struct cfg *cfg);

/* fdlimit.c: raises the soft RLIMIT_NOFILE (up to the hard limit) to fit
 * CFG's [https] max_connections next to the listeners, directory connections
 * and a reserve.  Returns the connection cap that limit allows: max_connections,
 * or fewer with a warning logged that names the limit in force. */
size_t agent_fd_budget(const struct cfg *cfg);

#endif
