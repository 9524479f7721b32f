/*
 * agent/ — the service manager's side of the daemon: the sd_notify(3)
 * messages that tell systemd (Type=notify) where the agent is in its life,
 * and the watchdog that proves the event loop still turns.  Outside systemd
 * (no NOTIFY_SOCKET) every call here does nothing.  Prefix: agent_service_.
 */
#ifndef DIRBRIDGE_AGENT_SERVICE_H
#define DIRBRIDGE_AGENT_SERVICE_H

#include <uv.h>

struct agent_service;

/* READY=1: the listeners, the directory and the first hub dial are set up, or
 * a reload has finished (taken or refused).  STATUS, when not NULL, is what
 * `systemctl status` shows next to the unit. */
void agent_service_ready(const char *status);
/* RELOADING=1 with MONOTONIC_USEC, which Type=notify-reload (systemd 253 and
 * later) needs to match the message to the reload it asked for. */
void agent_service_reloading(void);
/* STOPPING=1: the agent has begun its bounded shutdown.  The watchdog *S (if
 * any) stops and is freed, *S becomes NULL, so the loop can end. */
void agent_service_stopping(struct agent_service **s);

/*
 * Starts a timer on LOOP that sends WATCHDOG=1 at half the interval systemd
 * asked for (WatchdogSec=, seen through WATCHDOG_USEC and WATCHDOG_PID), so a
 * loop that hangs stops the pings and systemd restarts the agent.  *OUT is
 * NULL when no watchdog was asked for.  Returns 0, or a negative libuv error.
 */
int agent_service_watchdog_start(uv_loop_t *loop, struct agent_service **out);

#endif
