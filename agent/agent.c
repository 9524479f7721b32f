/*
 * The agent's main loop; see agent.h.  Parts are started in agent_start(),
 * reconfigured in agent_apply() and stopped in agent_stop(); each part added
 * later gets one line in each of the three.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/https.h"
#include "agent/login.h"
#include "agent/platform.h"
#include "agent/service.h"
#include "agent/tunnel.h"

static void agent_set_state(struct agent *a, enum agent_state state)
{
	static const char *const names[] = { "new", "starting", "running", "stopping" };

	log_msg(LOGL_DEBUG, "agent %s -> %s", names[a->state], names[state]);
	a->state = state;
}

/* The directory holds a pointer to the config it was opened with, so a
 * replaced config is freed only once its directory has closed. */
static void free_cfg(void *arg)
{
	cfg_free(arg);
}

/*
 * Makes NEXT the configuration every part uses.  Called with a config that
 * passed every check; parts that cannot follow a change at runtime (listen
 * addresses, the user) keep their old setting and say so.  Returns 0, or the
 * code of the part that refused NEXT (-EINVAL: its certificates do not load;
 * a DIR_E_* code: the directory cannot be opened on it): then nothing changed.
 */
static int agent_apply(struct agent *a, struct cfg *next)
{
	struct cfg *prev = a->cfg;
	struct dir *dir = NULL;
	int rc;

	if (prev->agent.user != next->agent.user &&
	    (!prev->agent.user || !next->agent.user || strcmp(prev->agent.user, next->agent.user)))
		log_msg(LOGL_WARN, "[agent] user changes only at restart");
	/* Certificates first: a set that does not load refuses the whole reload,
	 * and the HTTPS server keeps its current one. */
	if ((rc = https_reload(a->https, next)) < 0)
		return rc;
	if ((rc = dir_open(&a->loop, next, &dir)) < 0) {
		log_msg(LOGL_ERROR, "cannot open the directory with the new configuration");
		https_reload(a->https, prev);
		return rc;
	}
	dir_carry_guard(dir, a->dir);
	https_set_dir(a->https, dir);
	if (next->https.max_connections != prev->https.max_connections)
		https_set_max_conns(a->https, agent_fd_budget(next));
	agent_tunnel_reconfigure(a->tunnel, next, dir);
	dir_close(a->dir, free_cfg, prev);
	a->dir = dir;
	log_set_level(next->agent.log_level);
	log_set_format(next->agent.log_format);
	a->cfg = next;
	return 0;
}

static void agent_reload(struct agent *a)
{
	struct cfg *next = NULL;
	char *text = NULL, *line, *save = NULL;
	size_t len = 0;
	FILE *errs = open_memstream(&text, &len);
	int rc;

	agent_service_reloading();
	log_msg(LOGL_INFO, "reloading %s", a->cfg->path);
	rc = cfg_load(a->cfg->path, CFG_NEED_ALL, &next, errs ? errs : stderr);
	if (errs)
		fclose(errs);
	/* Every problem is logged as its own line; cfg_load already prefixed each
	 * with the program name, which the logger adds again. */
	for (line = text ? strtok_r(text, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "dirbridge: ", 11) == 0)
			line += 11;
		log_msg(rc < 0 ? LOGL_ERROR : LOGL_WARN, "%s", line);
	}
	free(text);
	if (rc == 0 && (rc = agent_apply(a, next)) < 0)
		cfg_free(next);
	if (rc < 0) {
		log_msg(LOGL_ERROR, "reload refused; still serving with the previous configuration");
	} else {
		a->reloads++;
		log_msg(LOGL_INFO, "configuration reloaded");
	}
	agent_service_ready(rc < 0 ? "reload refused; serving with the previous configuration"
				   : "running");
}

static void on_close(uv_handle_t *h)
{
	(void)h;
}

static void on_https_stopped(void *arg)
{
	struct agent *a = arg;

	a->https = NULL;
	if (a->dir)
		dir_close(a->dir, NULL, NULL);
	a->dir = NULL;
}

static void agent_stop(struct agent *a)
{
	if (a->state == AGENT_STOPPING)
		return;
	agent_set_state(a, AGENT_STOPPING);
	agent_service_stopping(&a->service);
	agent_platform_running(false);
	/* No control may wake a loop that is about to end. */
	agent_platform_set_events(NULL, NULL);
	if (a->wake.loop)
		uv_close((uv_handle_t *)&a->wake, on_close);
	log_msg(LOGL_INFO, "stopping");
	/* The hub gets no new answers once we stop; requests it sent that are
	 * still at the directory are completed (and discarded) by dir_close(). */
	if (a->tunnel)
		agent_tunnel_stop(a->tunnel, NULL, NULL);
	a->tunnel = NULL;
	/* In-flight requests finish (bounded) before the directory goes. */
	if (a->https)
		https_stop(a->https, on_https_stopped, a);
	else if (a->dir)
		dir_close(a->dir, NULL, NULL);
	/* The loop ends once the last handle has closed. */
	uv_close((uv_handle_t *)&a->sig_term, on_close);
	uv_close((uv_handle_t *)&a->sig_int, on_close);
	uv_close((uv_handle_t *)&a->sig_hup, on_close);
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct agent *a = h->data;

	if (signum == SIGHUP && a->state == AGENT_RUNNING)
		agent_reload(a);
	else if (signum == SIGTERM || signum == SIGINT)
		agent_stop(a);
}

/* On the service manager's thread: record EV and wake the loop, the one thing
 * libuv allows from another thread. */
static void post_event(void *arg, enum agent_event ev)
{
	struct agent *a = arg;

	atomic_fetch_or(&a->events, 1u << ev);
	uv_async_send(&a->wake);
}

/* A stop asked for with a reload still pending wins: reloading first would
 * only delay it. */
static void on_wake(uv_async_t *h)
{
	struct agent *a = h->data;
	unsigned ev = atomic_exchange(&a->events, 0);

	if (ev & (1u << AGENT_EVENT_STOP))
		agent_stop(a);
	else if ((ev & (1u << AGENT_EVENT_RELOAD)) && a->state == AGENT_RUNNING)
		agent_reload(a);
}

static int start_signal(struct agent *a, uv_signal_t *h, int signum)
{
	int rc = uv_signal_init(&a->loop, h);

	h->data = a;
	if (rc == 0)
		rc = uv_signal_start(h, on_signal, signum);
	return rc;
}

/* The HTTPS front reaches the hub through these; the tunnel they name is
 * whichever one the agent holds at the time (none while stopping). */
static int hook_check_session(void *arg, const char *session, agent_answer_cb cb, void *cb_arg)
{
	struct agent *a = arg;

	return agent_tunnel_session_check(a->tunnel, session, cb, cb_arg);
}

static int hook_report_login(void *arg, const struct agent_login *l, agent_answer_cb cb,
			     void *cb_arg)
{
	struct agent *a = arg;

	return agent_report_login(a->tunnel, l, cb, cb_arg);
}

static bool hook_hub_connected(void *arg)
{
	struct agent *a = arg;

	return agent_tunnel_connected(a->tunnel);
}

static bool hook_hub_stats(void *arg, struct agent_tunnel_stats *out)
{
	struct agent *a = arg;

	if (!a->tunnel)
		return false;
	agent_tunnel_stats(a->tunnel, out);
	return true;
}

static int agent_start(struct agent *a)
{
	const struct https_hooks hooks = {
		.check_session = hook_check_session,
		.report_login = hook_report_login,
		.hub_connected = hook_hub_connected,
		.hub_stats = hook_hub_stats,
		.arg = a,
	};
	size_t max_conns;
	int rc;

	if ((rc = start_signal(a, &a->sig_term, SIGTERM)) < 0 ||
	    (rc = start_signal(a, &a->sig_int, SIGINT)) < 0 ||
	    (rc = start_signal(a, &a->sig_hup, SIGHUP)) < 0) {
		log_msg(LOGL_ERROR, "cannot watch signals: %s", uv_strerror(rc));
		return rc;
	}
	if ((rc = uv_async_init(&a->loop, &a->wake, on_wake)) < 0) {
		log_msg(LOGL_ERROR, "cannot create the wake-up handle: %s", uv_strerror(rc));
		return rc;
	}
	a->wake.data = a;
	agent_platform_set_events(post_event, a);
	if ((rc = tls_global_init()) < 0) {
		log_msg(LOGL_ERROR, "cannot initialize GnuTLS: %s", tls_strerror(rc));
		return rc;
	}
	/* The open-file limit is settled before any descriptor is opened. */
	max_conns = agent_fd_budget(a->cfg);
	if ((rc = dir_open(&a->loop, a->cfg, &a->dir)) < 0) {
		log_msg(LOGL_ERROR, "cannot open the directory: %s", dir_code(rc));
		return rc;
	}
	/* Listeners are bound before privileges are dropped. */
	if ((rc = https_start(&a->loop, a->cfg, a->dir, &hooks, &a->https)) < 0)
		return rc;
	https_set_max_conns(a->https, max_conns);
	if ((rc = agent_tunnel_start(&a->loop, a->cfg, a->dir, &a->tunnel)) < 0) {
		log_msg(LOGL_ERROR, "cannot start the hub tunnel: %s", strerror(-rc));
		return rc;
	}
	if ((rc = agent_service_watchdog_start(&a->loop, &a->service)) < 0)
		log_msg(LOGL_WARN, "cannot start the systemd watchdog timer: %s", uv_strerror(rc));
	/* Files read after this (a reload's) must be readable by [agent] user,
	 * which is how a packaged install lays them out anyway. */
	if ((rc = agent_platform_drop_privileges(a->cfg->agent.user)) < 0)
		return rc;
	agent_set_state(a, AGENT_RUNNING);
	agent_service_ready("running");
	agent_platform_running(true);
	log_msg(LOGL_INFO, "agent %s running (dirbridge %s)", a->cfg->agent.name,
		DIRBRIDGE_VERSION);
	return 0;
}

int agent_run(struct cfg *cfg)
{
	struct agent a = { .cfg = cfg };
	int rc;

	/* Refused before anything is opened, so no connection is made as root. */
	if ((rc = agent_platform_check_user(cfg->agent.user)) < 0) {
		cfg_free(cfg);
		return rc;
	}
	if ((rc = uv_loop_init(&a.loop)) < 0) {
		log_msg(LOGL_ERROR, "cannot create the event loop: %s", uv_strerror(rc));
		cfg_free(cfg);
		return rc;
	}
	agent_set_state(&a, AGENT_STARTING);
	rc = agent_start(&a);
	if (rc < 0)
		agent_stop(&a);
	uv_run(&a.loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&a.loop) != 0)
		log_msg(LOGL_ERROR, "handles left open at exit");
	cfg_free(a.cfg);
	return rc;
}
