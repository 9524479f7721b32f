/*
 * agent/calls.c: the table of the agent's own requests to the hub.  It does
 * no I/O, so it is compiled into this test directly and driven with a fake
 * clock.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent/calls.c"

/* What the callbacks saw. */
struct seen {
	int n;
	enum agent_answer last;
	struct calls *table;	/* for the re-entrant callback */
	char added[24];
};

static void on_answer(void *arg, enum agent_answer a)
{
	struct seen *s = arg;

	s->n++;
	s->last = a;
}

static json_t *result(const char *id, bool ok, const char *err)
{
	return err ? json_pack("{s:s, s:s, s:b, s:s}", "type", "result", "id", id, "ok", ok, "error", err)
		   : json_pack("{s:s, s:s, s:b}", "type", "result", "id", id, "ok", ok);
}

static void answer_with(struct calls *t, const char *id, json_t *m, bool want_found)
{
	assert_int_equal(calls_answer(t, m), want_found);
	json_decref(m);
	(void)id;
}

static void test_answers(void **state)
{
	struct calls t = { 0 };
	struct seen a = { 0 }, b = { 0 }, c = { 0 };
	char ia[24], ib[24], ic[24];

	(void)state;
	assert_int_equal(calls_add(&t, 1000, on_answer, &a, ia), 0);
	assert_int_equal(calls_add(&t, 1000, on_answer, &b, ib), 0);
	assert_int_equal(calls_add(&t, 1000, on_answer, &c, ic), 0);
	assert_string_not_equal(ia, ib);
	assert_string_not_equal(ib, ic);
	assert_int_equal(t.n, 3);
	/* Answers in any order, each to its own request, once. */
	answer_with(&t, ib, result(ib, false, "unknown_session"), true);
	assert_int_equal(b.n, 1);
	assert_int_equal(b.last, AGENT_ANSWER_UNKNOWN_SESSION);
	answer_with(&t, ib, result(ib, true, NULL), false);
	assert_int_equal(b.n, 1);
	answer_with(&t, ia, result(ia, true, NULL), true);
	assert_int_equal(a.last, AGENT_ANSWER_OK);
	/* Any other error, or a malformed result, is "unavailable", never ok. */
	answer_with(&t, ic, json_pack("{s:s, s:s, s:s}", "type", "result", "id", ic, "ok", "yes"), true);
	assert_int_equal(c.last, AGENT_ANSWER_UNAVAILABLE);
	assert_int_equal(t.n, 0);
	/* Unknown ids and results without one find nobody. */
	answer_with(&t, "a99", result("a99", true, NULL), false);
	answer_with(&t, NULL, json_pack("{s:s, s:b}", "type", "result", "ok", 1), false);
	assert_int_equal(a.n + b.n + c.n, 3);
}

static void test_verdict(void **state)
{
	json_t *m;

	(void)state;
	m = result("x", false, "busy");
	assert_int_equal(calls_verdict(m), AGENT_ANSWER_UNAVAILABLE);
	json_decref(m);
	/* ok:true wins over a stray error field; ok must be a real boolean. */
	m = result("x", true, "unknown_session");
	assert_int_equal(calls_verdict(m), AGENT_ANSWER_OK);
	json_decref(m);
	m = json_pack("{s:i, s:s}", "ok", 1, "error", "unknown_session");
	assert_int_equal(calls_verdict(m), AGENT_ANSWER_UNAVAILABLE);
	json_decref(m);
	assert_int_equal(calls_verdict(NULL), AGENT_ANSWER_UNAVAILABLE);
}

static void test_bounded_and_forget(void **state)
{
	struct calls t = { 0 };
	struct seen s = { 0 };
	char id[24], first[24];
	int i;

	(void)state;
	for (i = 0; i < CALLS_MAX; i++)
		assert_int_equal(calls_add(&t, 0, on_answer, &s, i ? id : first), 0);
	assert_int_equal(calls_add(&t, 0, on_answer, &s, id), -EBUSY);
	assert_int_equal(t.n, CALLS_MAX);
	/* A request that could not be sent is forgotten without a callback. */
	calls_forget(&t, first);
	assert_int_equal(t.n, CALLS_MAX - 1);
	assert_int_equal(s.n, 0);
	assert_int_equal(calls_add(&t, 0, on_answer, &s, id), 0);
	calls_fail_all(&t);
	assert_int_equal(s.n, CALLS_MAX);
	assert_int_equal(s.last, AGENT_ANSWER_UNAVAILABLE);
	assert_int_equal(t.n, 0);
	assert_null(t.head);
}

static void test_expire(void **state)
{
	struct calls t = { 0 };
	struct seen early = { 0 }, late = { 0 };
	char ie[24], il[24];

	(void)state;
	assert_int_equal(calls_add(&t, 1000, on_answer, &early, ie), 0);
	assert_int_equal(calls_add(&t, 5000, on_answer, &late, il), 0);
	assert_int_equal(calls_expire(&t, 1000 + CALLS_TIMEOUT_MS - 1), 0);
	assert_int_equal(early.n, 0);
	assert_int_equal(calls_expire(&t, 1000 + CALLS_TIMEOUT_MS), 1);
	assert_int_equal(early.n, 1);
	assert_int_equal(early.last, AGENT_ANSWER_UNAVAILABLE);
	assert_int_equal(late.n, 0);
	/* The hub's answer after the timeout finds nobody. */
	answer_with(&t, ie, result(ie, true, NULL), false);
	assert_int_equal(early.n, 1);
	answer_with(&t, il, result(il, true, NULL), true);
	assert_int_equal(late.last, AGENT_ANSWER_OK);
}

/* A callback that starts a new request (the browser's next request on a
 * kept-alive connection): the sweep that failed the old ones leaves it be. */
static void on_answer_readd(void *arg, enum agent_answer a)
{
	struct seen *s = arg;

	on_answer(arg, a);
	if (s->n == 1)
		assert_int_equal(calls_add(s->table, 0, on_answer, s, s->added), 0);
}

static void test_reentrant(void **state)
{
	struct calls t = { 0 };
	struct seen s = { 0 };
	char id[24];

	(void)state;
	s.table = &t;
	assert_int_equal(calls_add(&t, 0, on_answer_readd, &s, id), 0);
	calls_fail_all(&t);
	assert_int_equal(s.n, 1);
	assert_int_equal(t.n, 1);
	answer_with(&t, s.added, result(s.added, true, NULL), true);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.last, AGENT_ANSWER_OK);
	assert_int_equal(calls_add(&t, 0, on_answer_readd, &s, id), 0);
	assert_int_equal(calls_expire(&t, CALLS_TIMEOUT_MS), 1);
	assert_int_equal(t.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_answers),
		cmocka_unit_test(test_verdict),
		cmocka_unit_test(test_bounded_and_forget),
		cmocka_unit_test(test_expire),
		cmocka_unit_test(test_reentrant),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
