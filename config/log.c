/* Process-wide logging; see cfg.h. */
#include <stdio.h>

#include "config/cfg.h"

static enum cfg_log_level log_level = CFG_LOG_INFO;

void cfg_log_init(enum cfg_log_level level)
{
	log_level = level;
}

void cfg_log_set_level(enum cfg_log_level level)
{
	log_level = level;
}

bool cfg_log_enabled(enum cfg_log_level level)
{
	return level <= log_level;
}

void cfg_vlog(enum cfg_log_level level, const char *fmt, va_list ap)
{
	if (!cfg_log_enabled(level))
		return;
	fputs("dirbridge: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void cfg_log(enum cfg_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cfg_vlog(level, fmt, ap);
	va_end(ap);
}
