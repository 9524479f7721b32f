/*
 * log/ — the process-wide logger, the bottom of the module stack: every other
 * module may call it and it calls none of them.  Prefix: log_.
 *
 * Messages go to stderr, or straight to journald with their priority when
 * systemd started the process with stderr on the journal.  Each message is
 * written with one call, and control bytes are escaped, so hostile text in a
 * message (a user name, a certificate field) can never forge a second line.
 * With LOG_FORMAT_JSON each message is one JSON object on one line, with the
 * keys ts (RFC 3339 UTC, milliseconds), level, program and msg, so log
 * collectors can query them; journald still gets the priority.
 */
#ifndef DIRBRIDGE_LOG_H
#define DIRBRIDGE_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum log_level { LOGL_ERROR, LOGL_WARN, LOGL_INFO, LOGL_DEBUG };
enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };

void log_init(enum log_level level);
void log_set_level(enum log_level level);
/* Text (the default) or JSON lines, for every later message. */
void log_set_format(enum log_format format);
bool log_enabled(enum log_level level);
/*
 * Where messages go instead of stderr or journald, for a platform that has
 * its own log (the Windows Event Log, log/eventlog_win.c).  SINK gets each
 * message that passes the level, escaped, as one line without the program
 * name or a newline; NULL restores stderr or journald.
 */
typedef void log_sink_fn(enum log_level level, const char *line);
void log_set_sink(log_sink_fn *sink);
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level level, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

#ifdef _WIN32
/* eventlog_win.c: registers the event source "dirbridge" and returns 0, or a
 * negative errno; then log_set_sink(log_eventlog_sink).  log_eventlog_close()
 * deregisters it once the sink is removed. */
int log_eventlog_open(void);
void log_eventlog_sink(enum log_level level, const char *line);
void log_eventlog_close(void);
#endif

#endif
