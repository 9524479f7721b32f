/*
 * agent/ — the seam between the daemon and the operating system it runs on.
 * Everything that differs between a POSIX system and Windows is declared here
 * and implemented twice: agent/platform_posix.c (the only one built on Linux)
 * and agent/platform_win.c with agent/service_win.c (built only for Windows;
 * `make windows-check` compiles them with mingw-w64 so they cannot rot).
 *
 * This header is plain C on purpose: the Windows files include it, and they
 * may not include uv.h, GnuTLS or libldap headers, which mingw on Debian does
 * not have.  Prefix: agent_platform_ (agent_win_ for the Windows service).
 *
 * What differs:
 * - stop and reload: POSIX signals watched by libuv (SIGTERM/SIGINT, SIGHUP in
 *   agent.c) versus the Service Control Manager's SERVICE_CONTROL_STOP and
 *   SERVICE_CONTROL_PARAMCHANGE, delivered through agent_platform_set_events();
 * - logs: stderr or journald (log/log.c) versus the Event Log
 *   (log/eventlog_win.c, installed with log_set_sink());
 * - the default configuration path;
 * - who may run the agent: root drops to [agent] user here; a Windows service
 *   runs as the account the SCM gives it;
 * - secret-file permissions: mode bits (config/secret_posix.c) versus an
 *   owner-only DACL (config/secret_win.c), both behind cfg_secret_mode_ok().
 */
#ifndef DIRBRIDGE_AGENT_PLATFORM_H
#define DIRBRIDGE_AGENT_PLATFORM_H

#include <stdbool.h>

/* What the service manager asked for.  AGENT_EVENT_NONE is the zero value. */
enum agent_event { AGENT_EVENT_NONE, AGENT_EVENT_STOP, AGENT_EVENT_RELOAD };

/*
 * Called on whatever thread the service manager delivers a control on (the
 * SCM runs handlers on the dispatcher thread, not the loop's), so it may only
 * record EV and wake the loop: uv_async_send() is the one libuv call that is
 * safe from another thread, and that is what the agent passes here.
 */
typedef void agent_event_fn(void *arg, enum agent_event ev);

/* The configuration file used when -c is not given: /etc/dirbridge/agent.ini,
 * or %ProgramData%\dirbridge\agent.ini on Windows.  Static storage. */
const char *agent_platform_default_config(void);

/*
 * Called before anything is started: root without USER is refused here
 * already (-EPERM, the error logged as below), so a refused agent never
 * opens a connection as root.  Returns 0 otherwise; always 0 on Windows.
 */
int agent_platform_check_user(const char *user);

/*
 * Called once the listeners are bound, which is all the agent needs root
 * for.  Started as root with USER set, drops to that user (supplementary
 * groups, then group, then user) and proves the drop held: every real,
 * effective and saved id is the user's, the groups are the user's, and
 * setuid(0) fails.  Started as root without USER, refuses: returns -EPERM
 * after logging an error that names [agent] user.  Not root: nothing to do.
 * Returns 0 or a negative errno.  On Windows it always returns 0: the SCM
 * starts the service as the account it was installed with.
 */
int agent_platform_drop_privileges(const char *user);

/*
 * Tells the platform whom to call for a stop or reload that does not arrive
 * as a signal (on Windows: the SCM's controls).  FN NULL forgets it again,
 * before the loop it wakes goes away.  On POSIX signals reach libuv directly
 * and this does nothing.
 */
void agent_platform_set_events(agent_event_fn *fn, void *arg);

/* The agent is serving (true) or has begun stopping (false): on Windows the
 * service's status becomes SERVICE_RUNNING or SERVICE_STOP_PENDING; on POSIX
 * systemd is told by agent/service.c, so this does nothing. */
void agent_platform_running(bool running);

#ifdef _WIN32
/*
 * service_win.c.  The agent's body, run as the service (from ServiceMain) or
 * in the console: returns 0 after a clean stop, nonzero otherwise.
 */
typedef int agent_body_fn(void *arg);

/* dirbridge --install-service -c CONFIG: registers the service "dirbridge"
 * (automatic start) to run this executable with -c CONFIG, CONFIG made
 * absolute.  --uninstall-service removes it.  Return 0 or a negative errno
 * (the reason is printed). */
int agent_win_install_service(const char *config);
int agent_win_uninstall_service(void);
/* Hands the process to the SCM, which calls BODY(ARG) on the service thread.
 * Returns 0 after the service stopped, 1 when the process was not started by
 * the SCM (then the caller runs BODY itself, in the console), or a negative
 * errno. */
int agent_win_service_dispatch(agent_body_fn *body, void *arg);
#endif

#endif
