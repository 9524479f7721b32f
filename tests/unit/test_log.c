/*
 * config/log.c: level filter, the "dirbridge: " prefix, one line per message
 * with control bytes escaped, and stderr (not the journal) when stderr is not
 * the stream systemd set up.  Each test captures fd 2 in a temporary file.
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_levels_and_prefix),
		cmocka_unit_test(test_hostile_text),
		cmocka_unit_test(test_journal_stream_elsewhere),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
