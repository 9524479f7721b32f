/*
 * ldap/: the bounded failure-counter table (struct dir_throttle) behind the
 * password-login guard, and the decoy DN given to unknown users.  Time is a
 * parameter here, so window expiry is tested without waiting.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ldap/dir.h"
#include "ldap/internal.h"

static void test_limit_and_reset(void **state)
{
	struct dir_throttle *t = dir_throttle_new(16, 3, 60);
	struct dir_throttle_stats st;

	(void)state;
	assert_non_null(t);
	assert_false(dir_throttle_blocked(t, "alice", 0));
	for (int i = 0; i < 2; i++)
		assert_int_equal(dir_throttle_fail(t, "alice", 1000 + (uint64_t)i), 0);
	assert_false(dir_throttle_blocked(t, "alice", 2000));
	assert_int_equal(dir_throttle_fail(t, "alice", 2000), 0);
	assert_true(dir_throttle_blocked(t, "alice", 2001));
	assert_int_equal(dir_throttle_failures(t, "alice", 2001), 3);
	/* Keys are exact: the caller folds case where it means to. */
	assert_false(dir_throttle_blocked(t, "Alice", 2001));
	assert_false(dir_throttle_blocked(t, "bob", 2001));
	dir_throttle_stats(t, &st);
	assert_int_equal(st.refused, 1);
	assert_int_equal(st.entries, 1);
	assert_int_equal(st.capacity, 16);
	/* A success forgets the key. */
	dir_throttle_reset(t, "alice");
	assert_false(dir_throttle_blocked(t, "alice", 2002));
	assert_int_equal(dir_throttle_failures(t, "alice", 2002), 0);
	dir_throttle_stats(t, &st);
	assert_int_equal(st.entries, 0);
	dir_throttle_reset(t, "never-seen");
	dir_throttle_free(t);
}

/* A reload gives the kept counts a new limit; the counts themselves stay. */
static void test_set_limit(void **state)
{
	struct dir_throttle *t = dir_throttle_new(16, 5, 60);

	(void)state;
	assert_non_null(t);
	for (int i = 0; i < 3; i++)
		assert_int_equal(dir_throttle_fail(t, "alice", 1000 + (uint64_t)i), 0);
	assert_false(dir_throttle_blocked(t, "alice", 1010));
	dir_throttle_set_limit(t, 3, 60);
	assert_true(dir_throttle_blocked(t, "alice", 1010));
	dir_throttle_set_limit(t, 0, 60);	/* ignored */
	assert_true(dir_throttle_blocked(t, "alice", 1011));
	dir_throttle_set_limit(t, 4, 60);
	assert_false(dir_throttle_blocked(t, "alice", 1012));
	assert_int_equal(dir_throttle_failures(t, "alice", 1012), 3);
	dir_throttle_free(t);
}

static void test_undo(void **state)
{
	struct dir_throttle *t = dir_throttle_new(4, 2, 60);

	(void)state;
	assert_int_equal(dir_throttle_fail(t, "k", 0), 0);
	assert_int_equal(dir_throttle_fail(t, "k", 1), 0);
	assert_true(dir_throttle_blocked(t, "k", 2));
	dir_throttle_undo(t, "k");
	assert_false(dir_throttle_blocked(t, "k", 3));
	assert_int_equal(dir_throttle_failures(t, "k", 3), 1);
	dir_throttle_undo(t, "k");
	assert_int_equal(dir_throttle_failures(t, "k", 3), 0);
	dir_throttle_undo(t, "k");	/* nothing left: no underflow */
	assert_int_equal(dir_throttle_failures(t, "k", 3), 0);
	dir_throttle_free(t);
}

static void test_window_expiry(void **state)
{
	struct dir_throttle *t = dir_throttle_new(8, 2, 900);
	struct dir_throttle_stats st;

	(void)state;
	assert_int_equal(dir_throttle_fail(t, "u", 0), 0);
	assert_int_equal(dir_throttle_fail(t, "u", 899000), 0);
	/* Each failure within the window of the one before keeps the count. */
	assert_true(dir_throttle_blocked(t, "u", 899001));
	assert_true(dir_throttle_blocked(t, "u", 899000 + 899999));
	/* A whole quiet window clears it. */
	assert_false(dir_throttle_blocked(t, "u", 899000 + 900000));
	assert_int_equal(dir_throttle_failures(t, "u", 899000 + 900000), 0);
	dir_throttle_stats(t, &st);
	assert_int_equal(st.entries, 0);
	/* A failure after a quiet window starts again from one. */
	assert_int_equal(dir_throttle_fail(t, "v", 0), 0);
	assert_int_equal(dir_throttle_fail(t, "v", 900000), 0);
	assert_false(dir_throttle_blocked(t, "v", 900001));
	assert_int_equal(dir_throttle_failures(t, "v", 900001), 1);
	dir_throttle_free(t);
}

static void test_bounded_flood(void **state)
{
	struct dir_throttle *t = dir_throttle_new(64, 3, 900);
	struct dir_throttle_stats st;
	char key[32];

	(void)state;
	/* A victim pushed to the limit, then 100000 random names, one failure each. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(dir_throttle_fail(t, "dn:uid=victim", (uint64_t)i), 0);
	for (int i = 0; i < 100000; i++) {
		snprintf(key, sizeof key, "name:r%d", i);
		assert_int_equal(dir_throttle_fail(t, key, 10 + (uint64_t)i), 0);
	}
	dir_throttle_stats(t, &st);
	assert_int_equal(st.entries, 64);
	assert_int_equal(st.evicted, 100000 - 63);
	/* The blocked victim was passed over while unblocked keys could go. */
	assert_true(dir_throttle_blocked(t, "dn:uid=victim", 100010));
	/* The newest keys are there, the oldest random ones evicted. */
	assert_int_equal(dir_throttle_failures(t, "name:r99999", 100010), 1);
	assert_int_equal(dir_throttle_failures(t, "name:r0", 100010), 0);
	dir_throttle_free(t);
}

static void test_eviction_order(void **state)
{
	struct dir_throttle *t = dir_throttle_new(3, 5, 900);

	(void)state;
	assert_int_equal(dir_throttle_fail(t, "a", 1), 0);
	assert_int_equal(dir_throttle_fail(t, "b", 2), 0);
	assert_int_equal(dir_throttle_fail(t, "c", 3), 0);
	/* "a" fails again: "b" is now the least recently failed. */
	assert_int_equal(dir_throttle_fail(t, "a", 4), 0);
	assert_int_equal(dir_throttle_fail(t, "d", 5), 0);
	assert_int_equal(dir_throttle_failures(t, "b", 6), 0);
	assert_int_equal(dir_throttle_failures(t, "a", 6), 2);
	assert_int_equal(dir_throttle_failures(t, "c", 6), 1);
	assert_int_equal(dir_throttle_failures(t, "d", 6), 1);
	/* Expired entries go first, without evicting live ones. */
	assert_int_equal(dir_throttle_fail(t, "e", 900000 + 3), 0);
	assert_int_equal(dir_throttle_failures(t, "a", 900000 + 3), 2);
	assert_int_equal(dir_throttle_failures(t, "d", 900000 + 3), 1);
	assert_int_equal(dir_throttle_failures(t, "c", 900000 + 3), 0);
	dir_throttle_free(t);
}

static void test_all_blocked_still_bounded(void **state)
{
	struct dir_throttle *t = dir_throttle_new(2, 1, 900);
	struct dir_throttle_stats st;

	(void)state;
	assert_int_equal(dir_throttle_fail(t, "a", 1), 0);
	assert_int_equal(dir_throttle_fail(t, "b", 2), 0);
	assert_int_equal(dir_throttle_fail(t, "c", 3), 0);
	dir_throttle_stats(t, &st);
	assert_int_equal(st.entries, 2);
	assert_false(dir_throttle_blocked(t, "a", 4));	/* the oldest went */
	assert_true(dir_throttle_blocked(t, "b", 4));
	assert_true(dir_throttle_blocked(t, "c", 4));
	dir_throttle_free(t);
}

static void test_bad_arguments(void **state)
{
	(void)state;
	assert_null(dir_throttle_new(0, 3, 60));
	assert_null(dir_throttle_new(16, 0, 60));
	assert_null(dir_throttle_new(16, 3, 0));
	dir_throttle_free(NULL);
}

static void test_decoy_dn(void **state)
{
	char *a = NULL, *b = NULL;

	(void)state;
	assert_int_equal(dir_decoy_dn("dc=example,dc=test", &a), 0);
	assert_int_equal(dir_decoy_dn("dc=example,dc=test", &b), 0);
	assert_int_equal(strlen(a), strlen("cn=,dc=example,dc=test") + 32);
	assert_int_equal(strncmp(a, "cn=", 3), 0);
	assert_string_equal(a + 35, ",dc=example,dc=test");
	assert_int_equal(strspn(a + 3, "0123456789abcdef"), 32);
	assert_string_not_equal(a, b);
	free(a);
	free(b);
	assert_string_equal(dir_code(DIR_E_TOO_MANY_ATTEMPTS), "too_many_attempts");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_limit_and_reset),
		cmocka_unit_test(test_undo),
		cmocka_unit_test(test_set_limit),
		cmocka_unit_test(test_window_expiry),
		cmocka_unit_test(test_bounded_flood),
		cmocka_unit_test(test_eviction_order),
		cmocka_unit_test(test_all_blocked_still_bounded),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_decoy_dn),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
