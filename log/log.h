/*
 * log/ — the process-wide logger, the bottom of the module stack: every other
 * module may call it and it calls none of them.  Prefix: log_.
 *
 * Messages go to stderr, or straight to journald with their priority when
 * systemd started the process with stderr on the journal.  Each message is
 * written with one call, and control bytes are escaped, so hostile text in a
 * message (a user name, a certificate field) can never forge a second line.
 */
#ifndef DIRBRIDGE_LOG_H
#define DIRBRIDGE_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum log_level { LOGL_ERROR, LOGL_WARN, LOGL_INFO, LOGL_DEBUG };

void log_init(enum log_level level);
void log_set_level(enum log_level level);
bool log_enabled(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level level, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

#endif
