/*
 * agent/platform_posix.c: the default configuration path, and that root
 * without [agent] user is refused (with the key named) unless
 * DIRBRIDGE_ALLOW_ROOT=1.  The drop itself changes the test process for
 * good, so tests/integration/privdrop.sh proves it on a real agent.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/platform.h"
#include "log/log.h"

static char seen[512];

static void sink(enum log_level level, const char *line)
{
	(void)level;
	snprintf(seen, sizeof seen, "%s", line);
}

static void test_default_config(void **state)
{
	(void)state;
	assert_string_equal(agent_platform_default_config(), "/etc/dirbridge/agent.ini");
}

static void test_root_without_user(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	log_init(LOGL_INFO);
	log_set_sink(sink);
	unsetenv("DIRBRIDGE_ALLOW_ROOT");
	seen[0] = '\0';
	assert_int_equal(agent_platform_check_user(NULL), -EPERM);
	assert_non_null(strstr(seen, "[agent] user"));
	seen[0] = '\0';
	assert_int_equal(agent_platform_drop_privileges(NULL), -EPERM);
	assert_non_null(strstr(seen, "[agent] user"));
	/* With a user named, starting is fine: the drop comes after binding. */
	assert_int_equal(agent_platform_check_user("nobody"), 0);
	/* Anything but exactly "1" is no permission. */
	setenv("DIRBRIDGE_ALLOW_ROOT", "yes", 1);
	assert_int_equal(agent_platform_drop_privileges(NULL), -EPERM);
	setenv("DIRBRIDGE_ALLOW_ROOT", "1", 1);
	assert_int_equal(agent_platform_check_user(NULL), 0);
	assert_int_equal(agent_platform_drop_privileges(NULL), 0);
	assert_int_equal(geteuid(), 0);
	log_set_sink(NULL);
}

/* Not root: nothing to drop, whatever the user.  Run as root, the check runs
 * in a child that gave up root first, so the test process keeps it. */
static int not_root_child(void)
{
	if (geteuid() == 0 && (setgid(65534) < 0 || setuid(65534) < 0))
		return 2;
	unsetenv("DIRBRIDGE_ALLOW_ROOT");
	return agent_platform_check_user(NULL) == 0 &&
	       agent_platform_drop_privileges(NULL) == 0 &&
	       agent_platform_drop_privileges("nobody") == 0 ? 0 : 1;
}

static void test_not_root(void **state)
{
	int status;
	pid_t pid;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(not_root_child());
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default_config),
		cmocka_unit_test(test_root_without_user),
		cmocka_unit_test(test_not_root),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
