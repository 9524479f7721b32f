/*
 * sd_notify(3) messages and the watchdog timer; see service.h.  Every message
 * is best-effort: a service manager that cannot be told is no reason to stop
 * serving, so errors from sd_notify() are only logged at debug level.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "agent/service.h"
#include "log/log.h"

struct agent_service {
	uv_timer_t watchdog;
};

static void notify(const char *msg)
{
	int rc = sd_notify(0, msg);

	if (rc < 0)
		log_msg(LOGL_DEBUG, "sd_notify: %s", strerror(-rc));
}

void agent_service_ready(const char *status)
{
	char msg[256];

	if (!status) {
		notify("READY=1");
		return;
	}
	snprintf(msg, sizeof msg, "READY=1\nSTATUS=%s", status);
	notify(msg);
}

void agent_service_reloading(void)
{
	struct timespec ts;
	char msg[64];

	/* systemd (Type=notify-reload) matches this timestamp against the time
	 * it sent SIGHUP, so it must be the same clock, CLOCK_MONOTONIC. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%" PRIu64,
		 (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u);
	notify(msg);
}

static void on_watchdog_closed(uv_handle_t *h)
{
	free(h->data);
}

void agent_service_stopping(struct agent_service **s)
{
	notify("STOPPING=1");
	/* systemd does not watch a stopping service; the bound on the shutdown
	 * is TimeoutStopSec. */
	if (*s) {
		uv_timer_stop(&(*s)->watchdog);
		uv_close((uv_handle_t *)&(*s)->watchdog, on_watchdog_closed);
		*s = NULL;
	}
}

static void on_watchdog(uv_timer_t *t)
{
	(void)t;
	notify("WATCHDOG=1");
}

int agent_service_watchdog_start(uv_loop_t *loop, struct agent_service **out)
{
	struct agent_service *s;
	uint64_t usec = 0, every_ms;
	int rc;

	*out = NULL;
	/* Zero: no watchdog, or one meant for another process (WATCHDOG_PID). */
	rc = sd_watchdog_enabled(0, &usec);
	if (rc < 0)
		log_msg(LOGL_WARN, "systemd watchdog settings unreadable: %s", strerror(-rc));
	if (rc <= 0 || usec == 0)
		return 0;
	if (!(s = calloc(1, sizeof *s)))
		return UV_ENOMEM;
	/* Half the interval, as sd_watchdog_enabled(3) advises, so one late turn
	 * of a busy loop does not get the agent killed; never below 1 ms. */
	every_ms = usec / 2000u;
	if (every_ms == 0)
		every_ms = 1;
	if ((rc = uv_timer_init(loop, &s->watchdog)) < 0) {
		free(s);
		return rc;
	}
	s->watchdog.data = s;
	/* The timer alone must never keep a stopping agent's loop alive. */
	uv_unref((uv_handle_t *)&s->watchdog);
	(void)uv_timer_start(&s->watchdog, on_watchdog, 0, every_ms);
	log_msg(LOGL_DEBUG, "systemd watchdog: pinging every %" PRIu64 " ms", every_ms);
	*out = s;
	return 0;
}
