/*
 * Process-wide logging; see log.h.  Each message is formatted whole and written
 * with one call, so lines from different parts never interleave.  Control bytes
 * are escaped: messages carry user names and other hostile text, and a newline
 * in one must not forge a second log line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include "log/log.h"

#define LINE_MAX_LEN 2048

static enum log_level log_level = LOGL_INFO;
static bool to_journal;

/*
 * systemd sets JOURNAL_STREAM to the device and inode of the stream it
 * connected; only when stderr still is that stream does the journal get the
 * message directly, with its priority (a redirected stderr keeps its text).
 */
static bool stderr_is_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!env || sscanf(env, "%llu:%llu", &dev, &ino) != 2)
		return false;
	return fstat(STDERR_FILENO, &st) == 0 && (unsigned long long)st.st_dev == dev &&
	       (unsigned long long)st.st_ino == ino;
}

void log_init(enum log_level level)
{
	log_level = level;
	to_journal = stderr_is_journal();
}

void log_set_level(enum log_level level)
{
	log_level = level;
}

bool log_enabled(enum log_level level)
{
	return level <= log_level;
}

/* Copies SRC into DST, writing control bytes as \xNN. */
static void sanitize(char *dst, size_t cap, const char *src)
{
	size_t o = 0;

	for (; *src && o + 5 < cap; src++) {
		unsigned char c = (unsigned char)*src;

		if (c < 0x20 || c == 0x7f)
			o += (size_t)snprintf(dst + o, cap - o, "\\x%02x", c);
		else
			dst[o++] = (char)c;
	}
	dst[o] = '\0';
}

void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	static const int priority[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	static const char *const tag[] = { "", "warning: ", "", "debug: " };
	char raw[LINE_MAX_LEN], clean[LINE_MAX_LEN], line[LINE_MAX_LEN + 32];
	int n;

	if (!log_enabled(level) || (unsigned)level > LOGL_DEBUG)
		return;
	vsnprintf(raw, sizeof raw, fmt, ap);
	sanitize(clean, sizeof clean, raw);
	if (to_journal && sd_journal_print(priority[level], "%s%s", tag[level], clean) == 0)
		return;
	n = snprintf(line, sizeof line, "dirbridge: %s%s\n", tag[level], clean);
	if (n > 0) {
		size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;

		if (write(STDERR_FILENO, line, len) < 0) {
			/* Nowhere left to report it. */
		}
	}
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}
