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
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <systemd/sd-journal.h>

#include "log/log.h"

#define LINE_MAX_LEN 2048

static enum log_level log_level = LOGL_INFO;
static enum log_format log_format = LOG_FORMAT_TEXT;
static bool to_journal;
static log_sink_fn *log_sink;

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

void log_set_format(enum log_format format)
{
	log_format = format;
}

void log_set_sink(log_sink_fn *sink)
{
	log_sink = sink;
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

/* Copies SRC into DST with every byte that is not printable ASCII as \xNN: for
 * a JSON message that is not valid UTF-8, which jansson refuses. */
static void ascii_only(char *dst, size_t cap, const char *src)
{
	size_t o = 0;

	for (; *src && o + 5 < cap; src++) {
		unsigned char c = (unsigned char)*src;

		if (c < 0x20 || c >= 0x7f)
			o += (size_t)snprintf(dst + o, cap - o, "\\x%02x", c);
		else
			dst[o++] = (char)c;
	}
	dst[o] = '\0';
}

/*
 * One JSON object for MSG, newline-terminated, malloc'd; NULL when out of
 * memory.  jansson escapes control bytes and quotes itself, so the line is
 * one line whatever MSG holds.
 */
static char *json_line(enum log_level level, const char *msg, size_t *len)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	char ts[32], safe[LINE_MAX_LEN * 2];
	struct timespec now;
	struct tm tm;
	json_t *o, *m;
	json_free_t jfree;
	char *s, *line = NULL;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	if (strftime(ts, sizeof ts - 6, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		ts[0] = '\0';
	snprintf(ts + strlen(ts), 6, ".%03uZ", (unsigned)(now.tv_nsec / 1000000) % 1000);
	if (!(m = json_string(msg))) {
		ascii_only(safe, sizeof safe, msg);
		m = json_string(safe);
	}
	o = json_pack("{s:s, s:s, s:s, s:o*}", "ts", ts, "level", names[level], "program",
		      "dirbridge", "msg", m);
	s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(o);
	if (s) {
		*len = strlen(s);
		if ((line = malloc(*len + 2))) {
			memcpy(line, s, *len);
			line[(*len)++] = '\n';
			line[*len] = '\0';
		}
		/* json_dumps() allocates with jansson's allocator, whichever main() set. */
		json_get_alloc_funcs(NULL, &jfree);
		jfree(s);
	}
	return line;
}

static void write_all(const char *p, size_t len)
{
	if (write(STDERR_FILENO, p, len) < 0) {
		/* Nowhere left to report it. */
	}
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
	/* A platform log keeps its own time and level, so it gets the text. */
	if (log_sink) {
		sanitize(clean, sizeof clean, raw);
		log_sink(level, clean);
		return;
	}
	if (log_format == LOG_FORMAT_JSON) {
		size_t len;
		char *j = json_line(level, raw, &len);

		if (j) {
			bool sent = to_journal &&
				    sd_journal_print(priority[level], "%.*s", (int)(len - 1), j) == 0;

			if (!sent)
				write_all(j, len);
			free(j);
			return;
		}
		/* Out of memory: the text line below still says what happened. */
	}
	sanitize(clean, sizeof clean, raw);
	if (to_journal && sd_journal_print(priority[level], "%s%s", tag[level], clean) == 0)
		return;
	n = snprintf(line, sizeof line, "dirbridge: %s%s\n", tag[level], clean);
	if (n > 0)
		write_all(line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}
