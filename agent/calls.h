/*
 * agent/ private: requests the agent itself sends to the hub (`session_check`,
 * `login`) and the table of those still waiting for their `result`.  The
 * table does no I/O: tunnel.c sends the messages and feeds it the answers, the
 * clock and link drops, so every path here is testable on its own.
 */
#ifndef DIRBRIDGE_AGENT_CALLS_H
#define DIRBRIDGE_AGENT_CALLS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CALLS_MAX	256	/* requests to the hub awaiting an answer */
#define CALLS_TIMEOUT_MS 10000	/* an unanswered request fails after this long */

/* What the hub said.  UNAVAILABLE covers no link, a dropped link, no answer
 * in time, a full table and any answer other than ok / unknown_session. */
enum agent_answer {
	AGENT_ANSWER_OK,
	AGENT_ANSWER_UNKNOWN_SESSION,
	AGENT_ANSWER_UNAVAILABLE,
};

/* Called exactly once per request that was started.  Usually from a later
 * loop turn; but a link that fails while the request is being sent fails it
 * at once, so a caller must be ready for the callback before the starting
 * call returns. */
typedef void (*agent_answer_cb)(void *arg, enum agent_answer answer);

struct call {
	struct call *next;
	char id[24];
	uint64_t deadline_ms;
	agent_answer_cb cb;
	void *arg;
};

struct calls {
	struct call *head;
	size_t n;
	uint64_t next_id;
};

/* A new pending request with a fresh id (copied into ID, at least 24 bytes)
 * due by NOW + CALLS_TIMEOUT_MS.  -EBUSY when CALLS_MAX are pending, -ENOMEM. */
int calls_add(struct calls *t, uint64_t now_ms, agent_answer_cb cb, void *arg, char *id);
/* Forgets the request ID without calling its callback (it could not be sent). */
void calls_forget(struct calls *t, const char *id);
/* A `result` M from the hub: calls the matching request's callback and
 * forgets it.  False when no pending request has M's id. */
bool calls_answer(struct calls *t, json_t *m);
/* Fails every request due at NOW or earlier; returns how many. */
size_t calls_expire(struct calls *t, uint64_t now_ms);
/* Fails every pending request (the link they went out on is gone). */
void calls_fail_all(struct calls *t);
/* The answer a `result` message stands for. */
enum agent_answer calls_verdict(json_t *m);

#endif
