/*
 * config/log.c: level filter, the "dirbridge: " prefix, one line per message
 * with control bytes escaped, and stderr (not the journal) when stderr is not
 * the stream systemd set up; JSON lines parsed back with jansson.  Each test
 * captures fd 2 in a temporary file.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "config/cfg.h"

static int saved_stderr = -1;
static char capture_path[64];

static void capture_start(void)
{
	int fd;

	snprintf(capture_path, sizeof capture_path, "/tmp/test_log.XXXXXX");
	fd = mkstemp(capture_path);
	assert_true(fd >= 0);
	saved_stderr = dup(STDERR_FILENO);
	assert_true(saved_stderr >= 0);
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	close(fd);
}

/* Restores stderr and returns what was written to it (caller frees). */
static char *capture_end(void)
{
	char *text = calloc(1, 65536);
	FILE *f;

	assert_non_null(text);
	fflush(stderr);
	assert_int_equal(dup2(saved_stderr, STDERR_FILENO), STDERR_FILENO);
	close(saved_stderr);
	f = fopen(capture_path, "r");
	assert_non_null(f);
	size_t n = fread(text, 1, 65535, f);
	text[n] = '\0';
	fclose(f);
	unlink(capture_path);
	return text;
}

static void test_levels_and_prefix(void **state)
{
	char *out;

	(void)state;
	unsetenv("JOURNAL_STREAM");
	capture_start();
	log_init(LOGL_WARN);
	log_msg(LOGL_ERROR, "first %d", 1);
	log_msg(LOGL_WARN, "second");
	log_msg(LOGL_INFO, "hidden info");
	log_msg(LOGL_DEBUG, "hidden debug");
	log_set_level(LOGL_DEBUG);
	log_msg(LOGL_DEBUG, "now shown");
	out = capture_end();
	assert_string_equal(out, "dirbridge: first 1\n"
				 "dirbridge: warning: second\n"
				 "dirbridge: debug: now shown\n");
	free(out);

	log_set_level(LOGL_ERROR);
	assert_true(log_enabled(LOGL_ERROR));
	assert_false(log_enabled(LOGL_WARN));
	log_set_level(LOGL_INFO);
	assert_true(log_enabled(LOGL_INFO));
	assert_false(log_enabled(LOGL_DEBUG));
}

static void test_hostile_text(void **state)
{
	char *out, big[8192];

	(void)state;
	unsetenv("JOURNAL_STREAM");
	capture_start();
	log_init(LOGL_INFO);
	/* A user name carrying a newline must not forge a second log line. */
	log_msg(LOGL_INFO, "login failed for %s", "eve\ndirbridge: login ok for admin\r\x1b[2J");
	memset(big, 'A', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	log_msg(LOGL_INFO, "%s", big);
	out = capture_end();
	assert_int_equal(strncmp(out, "dirbridge: login failed for eve\\x0adirbridge: login ok for "
				 "admin\\x0d\\x1b[2J\n", 76), 0);
	/* Exactly two lines: the escaped one and the truncated long one. */
	size_t lines = 0;
	for (const char *p = out; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, 2);
	assert_true(strlen(out) < 4200);
	assert_int_equal(out[strlen(out) - 1], '\n');
	free(out);
}

static void test_journal_stream_elsewhere(void **state)
{
	char *out;

	(void)state;
	/* JOURNAL_STREAM names another stream (stderr was redirected after systemd
	 * started us): the message stays on stderr. */
	setenv("JOURNAL_STREAM", "1:1", 1);
	capture_start();
	log_init(LOGL_INFO);
	log_msg(LOGL_ERROR, "still on stderr");
	out = capture_end();
	assert_string_equal(out, "dirbridge: still on stderr\n");
	free(out);
	unsetenv("JOURNAL_STREAM");
	log_init(LOGL_INFO);
}

/* Parses LINE (up to its newline) as one JSON object and checks its keys. */
static json_t *parse_line(const char *line, const char *level)
{
	const char *nl = strchr(line, '\n');
	json_error_t err;
	json_t *o, *ts;

	assert_non_null(nl);
	o = json_loadb(line, (size_t)(nl - line), 0, &err);
	assert_non_null(o);
	assert_true(json_is_object(o));
	assert_int_equal(json_object_size(o), 4);
	assert_string_equal(json_string_value(json_object_get(o, "level")), level);
	assert_string_equal(json_string_value(json_object_get(o, "program")), "dirbridge");
	assert_true(json_is_string(json_object_get(o, "msg")));
	/* RFC 3339 in UTC with milliseconds: 2026-12-08T02:10:40.123Z */
	ts = json_object_get(o, "ts");
	assert_true(json_is_string(ts));
	const char *t = json_string_value(ts);
	assert_int_equal(strlen(t), 24);
	int y, mo, d, h, mi, se, ms;
	char z;
	assert_int_equal(sscanf(t, "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c", &y, &mo, &d, &h, &mi, &se, &ms, &z), 8);
	assert_int_equal(z, 'Z');
	assert_true(y >= 2024 && mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h < 24 && mi < 60 && se <= 60);
	return o;
}

static void test_json_lines(void **state)
{
	char *out, big[8192];
	const char *p;
	json_t *o;
	size_t lines = 0;

	(void)state;
	unsetenv("JOURNAL_STREAM");
	capture_start();
	log_init(LOGL_INFO);
	log_set_format(LOG_FORMAT_JSON);
	log_msg(LOGL_WARN, "login failed for %s", "eve\n{\"level\":\"info\"}\r\x1b\"\\");
	log_msg(LOGL_INFO, "caf\xc3\xa9 and a bad byte \xff here");
	log_msg(LOGL_DEBUG, "hidden");
	log_msg(LOGL_ERROR, "plain");
	memset(big, 'A', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	log_msg(LOGL_INFO, "%s", big);
	log_set_format(LOG_FORMAT_TEXT);
	log_msg(LOGL_INFO, "text again");
	out = capture_end();
	for (p = out; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, 5);

	p = out;
	o = parse_line(p, "warn");
	/* The hostile text comes back exactly: no forged line, nothing lost. */
	assert_string_equal(json_string_value(json_object_get(o, "msg")),
			    "login failed for eve\n{\"level\":\"info\"}\r\x1b\"\\");
	json_decref(o);
	p = strchr(p, '\n') + 1;
	o = parse_line(p, "info");
	/* Not UTF-8: the bytes outside ASCII are spelled out, the line still parses. */
	assert_string_equal(json_string_value(json_object_get(o, "msg")),
			    "caf\\xc3\\xa9 and a bad byte \\xff here");
	json_decref(o);
	p = strchr(p, '\n') + 1;
	o = parse_line(p, "error");
	assert_string_equal(json_string_value(json_object_get(o, "msg")), "plain");
	json_decref(o);
	p = strchr(p, '\n') + 1;
	o = parse_line(p, "info");
	assert_true(strlen(json_string_value(json_object_get(o, "msg"))) < 2048);
	json_decref(o);
	p = strchr(p, '\n') + 1;
	assert_string_equal(p, "dirbridge: text again\n");
	free(out);
}

/* The platform sink (the Windows Event Log) gets each message that passes
 * the level, escaped, without the prefix; stderr gets nothing meanwhile, and
 * again everything once the sink is removed. */
static char sink_text[256];
static int sink_calls;
static enum log_level sink_level;

static void sink(enum log_level level, const char *line)
{
	sink_calls++;
	sink_level = level;
	snprintf(sink_text, sizeof sink_text, "%s", line);
}

static void test_sink(void **state)
{
	char *out;

	(void)state;
	unsetenv("JOURNAL_STREAM");
	log_init(LOGL_INFO);
	log_set_format(LOG_FORMAT_TEXT);
	capture_start();
	log_set_sink(sink);
	log_msg(LOGL_DEBUG, "filtered");
	log_msg(LOGL_WARN, "to the sink\nforged");
	log_set_sink(NULL);
	log_msg(LOGL_INFO, "back on stderr");
	out = capture_end();
	assert_int_equal(sink_calls, 1);
	assert_int_equal(sink_level, LOGL_WARN);
	assert_string_equal(sink_text, "to the sink\\x0aforged");
	assert_string_equal(out, "dirbridge: back on stderr\n");
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_levels_and_prefix),
		cmocka_unit_test(test_hostile_text),
		cmocka_unit_test(test_journal_stream_elsewhere),
		cmocka_unit_test(test_json_lines),
		cmocka_unit_test(test_sink),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
