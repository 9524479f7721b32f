/*
 * The table of the agent's own requests to the hub; see calls.h.  A callback
 * may start a new request or fail the link (it runs https code that answers
 * the browser), so each request is unlinked before its callback runs and
 * batches are detached from the table before any callback runs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/calls.h"

int calls_add(struct calls *t, uint64_t now_ms, agent_answer_cb cb, void *arg, char *id)
{
	struct call *c;

	if (t->n >= CALLS_MAX)
		return -EBUSY;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	/* The prefix keeps the agent's ids apart from the hub's in logs. */
	snprintf(c->id, sizeof(c->id), "a%llu", (unsigned long long)++t->next_id);
	c->deadline_ms = now_ms + CALLS_TIMEOUT_MS;
	c->cb = cb;
	c->arg = arg;
	c->next = t->head;
	t->head = c;
	t->n++;
	memcpy(id, c->id, sizeof(c->id));
	return 0;
}

static struct call *unlink_id(struct calls *t, const char *id)
{
	struct call **pp, *c;

	for (pp = &t->head; (c = *pp); pp = &c->next) {
		if (strcmp(c->id, id) == 0) {
			*pp = c->next;
			t->n--;
			return c;
		}
	}
	return NULL;
}

void calls_forget(struct calls *t, const char *id)
{
	free(unlink_id(t, id));
}

enum agent_answer calls_verdict(json_t *m)
{
	json_t *ok = json_object_get(m, "ok");
	const char *err = json_string_value(json_object_get(m, "error"));

	if (json_is_true(ok))
		return AGENT_ANSWER_OK;
	if (json_is_false(ok) && err && strcmp(err, "unknown_session") == 0)
		return AGENT_ANSWER_UNKNOWN_SESSION;
	return AGENT_ANSWER_UNAVAILABLE;
}

bool calls_answer(struct calls *t, json_t *m)
{
	const char *id = json_string_value(json_object_get(m, "id"));
	struct call *c = id ? unlink_id(t, id) : NULL;

	if (!c)
		return false;
	c->cb(c->arg, calls_verdict(m));
	free(c);
	return true;
}

/* Calls every request on LIST (already detached) with UNAVAILABLE. */
static void fail_list(struct call *list)
{
	struct call *c;

	while ((c = list)) {
		list = c->next;
		c->cb(c->arg, AGENT_ANSWER_UNAVAILABLE);
		free(c);
	}
}

size_t calls_expire(struct calls *t, uint64_t now_ms)
{
	struct call **pp, *c, *due = NULL;
	size_t n = 0;

	for (pp = &t->head; (c = *pp);) {
		if (c->deadline_ms > now_ms) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		t->n--;
		c->next = due;
		due = c;
		n++;
	}
	fail_list(due);
	return n;
}

void calls_fail_all(struct calls *t)
{
	struct call *list = t->head;

	t->head = NULL;
	t->n = 0;
	fail_list(list);
}
