/*
 * agent/tunnel_rpc.c: the dispatch of every message kind from the hub, run
 * against a fake directory and a fake link (struct tun_ops), linked from
 * build/libagent.a.  The fake directory keeps each request's callback so the
 * test answers it when it likes: before or after the link changed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "agent/tunnel_internal.h"

/* What the fakes saw. */
static struct {
	json_t *sent;		/* every message the dispatch sent, in order */
	int fails;
	unsigned fail_code;
	int calls;		/* directory calls */
	const char *op;
	char user[64], pw[64], old_pw[64], query[64];
	size_t limit;
	int start_err;		/* what the next directory call returns */
	dir_profile_cb profile_cb;
	dir_users_cb users_cb;
	dir_names_cb names_cb;
	dir_done_cb done_cb;
	void *arg;
} seen;

static void copy(char *dst, const char *src, size_t len)
{
	snprintf(dst, 64, "%.*s", (int)len, src);
}

static int fake_authenticate(struct dir *d, const char *username, const char *password,
			     size_t password_len, dir_profile_cb cb, void *arg)
{
	(void)d;
	seen.calls++;
	seen.op = "authenticate";
	copy(seen.user, username, strlen(username));
	copy(seen.pw, password, password_len);
	seen.profile_cb = cb;
	seen.arg = arg;
	return seen.start_err;
}

static int fake_lookup(struct dir *d, const char *username, dir_profile_cb cb, void *arg)
{
	(void)d;
	seen.calls++;
	seen.op = "lookup";
	copy(seen.user, username, strlen(username));
	seen.profile_cb = cb;
	seen.arg = arg;
	return seen.start_err;
}

static int fake_change_password(struct dir *d, const char *username, const char *old_pw,
				size_t old_len, const char *new_pw, size_t new_len,
				dir_done_cb cb, void *arg)
{
	(void)d;
	seen.calls++;
	seen.op = "change_password";
	copy(seen.user, username, strlen(username));
	copy(seen.old_pw, old_pw, old_len);
	copy(seen.pw, new_pw, new_len);
	seen.done_cb = cb;
	seen.arg = arg;
	return seen.start_err;
}

static int fake_search_users(struct dir *d, const char *query, size_t limit, dir_users_cb cb,
			     void *arg)
{
	(void)d;
	seen.calls++;
	seen.op = "search_users";
	copy(seen.query, query, strlen(query));
	seen.limit = limit;
	seen.users_cb = cb;
	seen.arg = arg;
	return seen.start_err;
}

static int fake_list_groups(struct dir *d, size_t limit, dir_names_cb cb, void *arg)
{
	(void)d;
	seen.calls++;
	seen.op = "list_groups";
	seen.limit = limit;
	seen.names_cb = cb;
	seen.arg = arg;
	return seen.start_err;
}

static int fake_send(struct agent_tunnel *t, json_t *m)
{
	(void)t;
	if (!m)
		return -ENOMEM;
	json_array_append_new(seen.sent, m);
	return 0;
}

static void fake_fail(struct agent_tunnel *t, enum net_ws_close code, const char *why)
{
	(void)t;
	(void)why;
	seen.fails++;
	seen.fail_code = code;
}

static const struct tun_ops fake_ops = {
	.authenticate = fake_authenticate,
	.lookup = fake_lookup,
	.change_password = fake_change_password,
	.search_users = fake_search_users,
	.list_groups = fake_list_groups,
	.send = fake_send,
	.fail = fake_fail,
};

/* The only state a test tunnel needs; the real one is changed only by
 * tun_set_state() in tunnel.c. */
static void fake_set_state(struct agent_tunnel *t, enum tun_state st)
{
	t->state = st;
}

static struct dir *fake_dir = (struct dir *)&seen;

static int setup(void **state)
{
	struct agent_tunnel *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	memset(&seen, 0, sizeof(seen));
	seen.sent = json_array();
	t->ops = &fake_ops;
	t->dir = fake_dir;
	t->loop = uv_default_loop();
	t->gen = 1;
	fake_set_state(t, T_OPEN);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct agent_tunnel *t = *state;

	assert_int_equal(t->inflight, 0);
	calls_fail_all(&t->calls);
	json_decref(seen.sent);
	free(t);
	return 0;
}

static void dispatch(struct agent_tunnel *t, const char *text)
{
	size_t len = strlen(text);
	uint8_t *msg = malloc(len);

	assert_non_null(msg);
	memcpy(msg, text, len);
	tun_rpc_dispatch(t, msg, len);
	free(msg);
}

/* The Nth message sent; it must be a result for ID. */
static json_t *result(size_t n, const char *id, bool ok)
{
	json_t *m = json_array_get(seen.sent, n);

	assert_non_null(m);
	assert_string_equal(json_string_value(json_object_get(m, "type")), "result");
	assert_string_equal(json_string_value(json_object_get(m, "id")), id);
	assert_int_equal(json_is_true(json_object_get(m, "ok")), ok);
	return m;
}

static const char *error_of(json_t *m)
{
	return json_string_value(json_object_get(m, "error"));
}

static void test_authenticate(void **state)
{
	struct agent_tunnel *t = *state;
	char *groups[] = { "staff", "vpn" };
	struct dir_profile p = {
		.username = "alice", .dn = "uid=alice,dc=example", .groups = groups, .n_groups = 2,
	};
	json_t *m, *prof;

	dispatch(t, "{\"type\":\"authenticate\",\"id\":\"a1\",\"username\":\"alice\","
		    "\"password\":\"s3cret\",\"client_ip\":\"192.0.2.1\"}");
	assert_int_equal(seen.calls, 1);
	assert_string_equal(seen.op, "authenticate");
	assert_string_equal(seen.user, "alice");
	assert_string_equal(seen.pw, "s3cret");
	assert_int_equal(t->inflight, 1);
	assert_int_equal(json_array_size(seen.sent), 0);
	seen.profile_cb(seen.arg, 0, &p);
	assert_int_equal(t->inflight, 0);
	m = result(0, "a1", true);
	prof = json_object_get(m, "profile");
	assert_string_equal(json_string_value(json_object_get(prof, "username")), "alice");
	assert_string_equal(json_string_value(json_object_get(prof, "dn")), "uid=alice,dc=example");
	assert_int_equal(json_array_size(json_object_get(prof, "groups")), 2);

	/* A refusal carries the directory's code. */
	dispatch(t, "{\"type\":\"authenticate\",\"id\":\"a2\",\"username\":\"alice\","
		    "\"password\":\"wrong\"}");
	seen.profile_cb(seen.arg, DIR_E_INVALID_CREDENTIALS, NULL);
	assert_string_equal(error_of(result(1, "a2", false)), dir_code(DIR_E_INVALID_CREDENTIALS));
}

static void test_lookup(void **state)
{
	struct agent_tunnel *t = *state;
	struct dir_profile p = { .username = "bob", .dn = "uid=bob" };

	dispatch(t, "{\"type\":\"lookup\",\"id\":\"l1\",\"username\":\"bob\"}");
	assert_string_equal(seen.op, "lookup");
	assert_string_equal(seen.user, "bob");
	seen.profile_cb(seen.arg, 0, &p);
	assert_string_equal(json_string_value(json_object_get(
		json_object_get(result(0, "l1", true), "profile"), "username")), "bob");

	/* A disabled account is no profile for a lookup. */
	p.disabled = true;
	dispatch(t, "{\"type\":\"lookup\",\"id\":\"l2\",\"username\":\"bob\"}");
	seen.profile_cb(seen.arg, 0, &p);
	assert_string_equal(error_of(result(1, "l2", false)), dir_code(DIR_E_ACCOUNT_DISABLED));
}

static void test_change_password(void **state)
{
	struct agent_tunnel *t = *state;
	json_t *m;

	dispatch(t, "{\"type\":\"change_password\",\"id\":\"c1\",\"username\":\"carol\","
		    "\"old_password\":\"old\",\"new_password\":\"new\"}");
	assert_string_equal(seen.op, "change_password");
	assert_string_equal(seen.old_pw, "old");
	assert_string_equal(seen.pw, "new");
	seen.done_cb(seen.arg, 0);
	m = result(0, "c1", true);
	assert_null(json_object_get(m, "error"));
	assert_null(json_object_get(m, "profile"));

	dispatch(t, "{\"type\":\"change_password\",\"id\":\"c2\",\"username\":\"carol\","
		    "\"old_password\":\"old\",\"new_password\":\"x\"}");
	seen.done_cb(seen.arg, DIR_E_PASSWORD_POLICY);
	assert_string_equal(error_of(result(1, "c2", false)), dir_code(DIR_E_PASSWORD_POLICY));
}

static void test_search_users(void **state)
{
	struct agent_tunnel *t = *state;
	struct dir_profile users[] = { { .username = "dave" }, { .username = "dora" } };
	json_t *arr;

	dispatch(t, "{\"type\":\"search_users\",\"id\":\"s1\",\"query\":\"d\",\"limit\":7}");
	assert_string_equal(seen.op, "search_users");
	assert_string_equal(seen.query, "d");
	assert_int_equal(seen.limit, 7);
	seen.users_cb(seen.arg, 0, users, 2);
	arr = json_object_get(result(0, "s1", true), "users");
	assert_int_equal(json_array_size(arr), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 1), "username")),
			    "dora");
}

static void test_list_groups(void **state)
{
	struct agent_tunnel *t = *state;
	char *names[] = { "admins", "staff", "vpn" };
	json_t *arr;

	dispatch(t, "{\"type\":\"list_groups\",\"id\":\"g1\"}");
	assert_string_equal(seen.op, "list_groups");
	assert_int_equal(seen.limit, 100);
	seen.names_cb(seen.arg, 0, names, 3);
	arr = json_object_get(result(0, "g1", true), "groups");
	assert_int_equal(json_array_size(arr), 3);
	assert_string_equal(json_string_value(json_array_get(arr, 2)), "vpn");

	dispatch(t, "{\"type\":\"list_groups\",\"id\":\"g2\"}");
	seen.names_cb(seen.arg, DIR_E_UNAVAILABLE, NULL, 0);
	assert_string_equal(error_of(result(1, "g2", false)), dir_code(DIR_E_UNAVAILABLE));
}

static void test_malformed(void **state)
{
	struct agent_tunnel *t = *state;

	/* Not a JSON object with a type: the WebSocket fails, nothing is sent. */
	dispatch(t, "[1,2]");
	dispatch(t, "{\"id\":\"x\"}");
	assert_int_equal(seen.fails, 2);
	assert_int_equal(seen.fail_code, NET_WS_BAD_DATA);
	/* Without a valid id there is nobody to answer; the link stays. */
	dispatch(t, "{\"type\":\"lookup\",\"username\":\"bob\"}");
	assert_int_equal(seen.fails, 2);
	assert_int_equal(json_array_size(seen.sent), 0);
	/* A request with a wrong field is answered bad_request, the directory untouched. */
	dispatch(t, "{\"type\":\"lookup\",\"id\":\"b1\"}");
	dispatch(t, "{\"type\":\"frobnicate\",\"id\":\"b2\"}");
	assert_string_equal(error_of(result(0, "b1", false)), dir_code(DIR_E_BAD_REQUEST));
	assert_string_equal(error_of(result(1, "b2", false)), dir_code(DIR_E_BAD_REQUEST));
	assert_int_equal(seen.calls, 0);
}

static void test_refusals(void **state)
{
	struct agent_tunnel *t = *state;

	/* A request the directory cannot start is answered at once. */
	seen.start_err = DIR_E_INTERNAL;
	dispatch(t, "{\"type\":\"lookup\",\"id\":\"r1\",\"username\":\"bob\"}");
	assert_string_equal(error_of(result(0, "r1", false)), dir_code(DIR_E_INTERNAL));
	assert_int_equal(t->inflight, 0);
	seen.start_err = 0;

	/* No directory: unavailable, without a call. */
	t->dir = NULL;
	dispatch(t, "{\"type\":\"lookup\",\"id\":\"r2\",\"username\":\"bob\"}");
	assert_string_equal(error_of(result(1, "r2", false)), dir_code(DIR_E_UNAVAILABLE));
	assert_int_equal(seen.calls, 1);
	t->dir = fake_dir;

	/* At the in-flight limit: busy, and counted for /metrics. */
	struct agent_tunnel_stats st;
	agent_tunnel_stats(t, &st);
	assert_int_equal(st.busy, 0);
	t->inflight = TUNNEL_MAX_INFLIGHT;
	dispatch(t, "{\"type\":\"lookup\",\"id\":\"r3\",\"username\":\"bob\"}");
	assert_string_equal(error_of(result(2, "r3", false)), "busy");
	assert_int_equal(seen.calls, 1);
	agent_tunnel_stats(t, &st);
	assert_int_equal(st.busy, 1);
	assert_int_equal(st.inflight, TUNNEL_MAX_INFLIGHT);
	t->inflight = 0;
}

static void test_answer_on_its_link_only(void **state)
{
	struct agent_tunnel *t = *state;
	struct dir_profile p = { .username = "erin" };

	dispatch(t, "{\"type\":\"lookup\",\"id\":\"k1\",\"username\":\"erin\"}");
	assert_int_equal(t->inflight, 1);
	/* The link dropped and a new one opened: the answer goes nowhere. */
	t->gen++;
	seen.profile_cb(seen.arg, 0, &p);
	assert_int_equal(json_array_size(seen.sent), 0);
	assert_int_equal(t->inflight, 0);

	/* Nor while no link is open. */
	dispatch(t, "{\"type\":\"lookup\",\"id\":\"k2\",\"username\":\"erin\"}");
	fake_set_state(t, T_BACKOFF);
	seen.profile_cb(seen.arg, 0, &p);
	assert_int_equal(json_array_size(seen.sent), 0);
	fake_set_state(t, T_OPEN);
}

static int answers;
static enum agent_answer last_answer;

static void on_answer(void *arg, enum agent_answer a)
{
	(void)arg;
	answers++;
	last_answer = a;
}

static void test_results_and_calls(void **state)
{
	struct agent_tunnel *t = *state;
	const char *id;
	char buf[128];

	/* A result nobody waits for is dropped quietly. */
	dispatch(t, "{\"type\":\"result\",\"id\":\"99\",\"ok\":true}");
	assert_int_equal(json_array_size(seen.sent), 0);
	assert_int_equal(seen.fails, 0);

	/* Our own call goes out with a fresh id; its result reaches the callback. */
	assert_int_equal(agent_tunnel_session_check(t, "sess-1", on_answer, NULL), 0);
	assert_int_equal(json_array_size(seen.sent), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(seen.sent, 0), "type")),
			    "session_check");
	id = json_string_value(json_object_get(json_array_get(seen.sent, 0), "id"));
	assert_non_null(id);
	snprintf(buf, sizeof(buf), "{\"type\":\"result\",\"id\":\"%s\",\"ok\":true}", id);
	dispatch(t, buf);
	assert_int_equal(answers, 1);
	assert_int_equal(last_answer, AGENT_ANSWER_OK);
	/* A second result for the same id finds nobody. */
	dispatch(t, buf);
	assert_int_equal(answers, 1);

	/* Not connected: refused, the callback never called. */
	fake_set_state(t, T_BACKOFF);
	assert_int_equal(agent_tunnel_session_check(t, "sess-2", on_answer, NULL), -ENOTCONN);
	assert_int_equal(answers, 1);
	fake_set_state(t, T_OPEN);
}

static void test_hello(void **state)
{
	struct agent_tunnel *t = *state;
	struct cfg cfg;
	json_t *m;

	memset(&cfg, 0, sizeof(cfg));
	cfg.agent.name = "agent-1";
	t->cfg = &cfg;
	assert_int_equal(tun_rpc_hello(t), 0);
	m = json_array_get(seen.sent, 0);
	assert_string_equal(json_string_value(json_object_get(m, "type")), "hello");
	assert_string_equal(json_string_value(json_object_get(m, "agent")), "agent-1");
	assert_int_equal(json_array_size(json_object_get(m, "capabilities")), 6);
	assert_true(json_is_null(json_object_get(m, "public_url")));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_authenticate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lookup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_change_password, setup, teardown),
		cmocka_unit_test_setup_teardown(test_search_users, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_groups, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_answer_on_its_link_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_results_and_calls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hello, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
