/*
 * agent/tunnel_msg.c: what the tunnel makes of each frame from the hub.  A
 * malformed request must be answerable (bad_request with its id), a frame that
 * is not a message must close the link, and client_ip must be an address.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "agent/tunnel_msg.h"

static enum tmsg_kind kind_of(const char *text)
{
	struct tmsg m;
	enum tmsg_kind k;

	tmsg_parse(text, strlen(text), &m);
	k = m.kind;
	tmsg_free(&m);
	return k;
}

static void test_kinds(void **state)
{
	(void)state;
	assert_int_equal(kind_of("not json"), TMSG_NONE);
	assert_int_equal(kind_of("[1,2]"), TMSG_NONE);
	assert_int_equal(kind_of("{\"id\":\"1\"}"), TMSG_NONE);
	assert_int_equal(kind_of("{\"type\":\"lookup\",\"id\":\"1\",\"type\":\"x\"}"), TMSG_NONE);
	assert_int_equal(kind_of("{\"type\":\"lookup\",\"username\":\"a\"}"), TMSG_NO_ID);
	assert_int_equal(kind_of("{\"type\":\"lookup\",\"id\":\"\",\"username\":\"a\"}"), TMSG_NO_ID);
	assert_int_equal(kind_of("{\"type\":\"lookup\",\"id\":\"a\\nb\",\"username\":\"a\"}"), TMSG_NO_ID);
	assert_int_equal(kind_of("{\"type\":\"lookup\",\"id\":\"1\",\"username\":\"a\"}"), TMSG_LOOKUP);
	assert_int_equal(kind_of("{\"type\":\"lookup\",\"id\":\"1\",\"username\":7}"), TMSG_BAD);
	assert_int_equal(kind_of("{\"type\":\"nope\",\"id\":\"1\"}"), TMSG_BAD);
	assert_int_equal(kind_of("{\"type\":\"result\",\"id\":\"a1\",\"ok\":true}"), TMSG_RESULT);
	assert_int_equal(kind_of("{\"type\":\"list_groups\",\"id\":\"1\"}"), TMSG_LIST_GROUPS);
	assert_int_equal(kind_of("{\"type\":\"list_groups\",\"id\":\"1\",\"limit\":0}"), TMSG_BAD);
	assert_int_equal(kind_of("{\"type\":\"list_groups\",\"id\":\"1\",\"limit\":5001}"), TMSG_BAD);
	assert_int_equal(kind_of("{\"type\":\"search_users\",\"id\":\"1\",\"limit\":5}"), TMSG_BAD);
	assert_int_equal(kind_of("{\"type\":\"change_password\",\"id\":\"1\",\"username\":\"a\","
				 "\"old_password\":\"x\"}"), TMSG_BAD);
}

static void test_authenticate(void **state)
{
	const char ok[] = "{\"type\":\"authenticate\",\"id\":\"17\",\"username\":\"alice\","
			  "\"password\":\"p w\",\"client_ip\":\"2001:db8::7\"}";
	struct tmsg m;

	(void)state;
	tmsg_parse(ok, strlen(ok), &m);
	assert_int_equal(m.kind, TMSG_AUTHENTICATE);
	assert_string_equal(m.id, "17");
	assert_string_equal(m.username, "alice");
	assert_int_equal(m.password_len, 3);
	assert_string_equal(m.client_ip, "2001:db8::7");
	tmsg_free(&m);
	assert_null(m.root);
	assert_int_equal(kind_of("{\"type\":\"authenticate\",\"id\":\"1\",\"username\":\"a\","
				 "\"password\":\"p\",\"client_ip\":null}"), TMSG_AUTHENTICATE);
	assert_int_equal(kind_of("{\"type\":\"authenticate\",\"id\":\"1\",\"username\":\"a\","
				 "\"password\":\"p\",\"client_ip\":\"10.0.0.300\"}"), TMSG_BAD);
	assert_int_equal(kind_of("{\"type\":\"authenticate\",\"id\":\"1\",\"username\":\"a\","
				 "\"password\":\"p\",\"client_ip\":\"10.0.0.1 x\"}"), TMSG_BAD);
	assert_int_equal(kind_of("{\"type\":\"authenticate\",\"id\":\"1\",\"username\":\"a\","
				 "\"password\":\"p\",\"client_ip\":42}"), TMSG_BAD);
	assert_int_equal(kind_of("{\"type\":\"authenticate\",\"id\":\"1\",\"username\":\"a\"}"),
			 TMSG_BAD);
	/* jansson refuses \u0000 without JSON_ALLOW_NUL: not a message at all. */
	assert_int_equal(kind_of("{\"type\":\"authenticate\",\"id\":\"1\",\"username\":\"a\","
				 "\"password\":\"p\\u0000w\"}"), TMSG_NONE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kinds),
		cmocka_unit_test(test_authenticate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
