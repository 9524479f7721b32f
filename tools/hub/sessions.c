/*
 * Sign-in sessions: POST /v1/sessions creates one bound to the agent whose
 * front-facing URL it hands out; that agent's `login` message completes it,
 * and only that agent hears "pending" from `session_check` until then.
 * At most HUB_MAX_SESSIONS live at once, each for HUB_SESSION_TTL_S.
 */
#include <stdlib.h>
#include <string.h>

#include "config/cfg.h"
#include "tools/hub/hub.h"

struct hub_session *hub_session_new(struct hub *h, const char *agent)
{
	struct hub_session *s;

	if (h->n_sessions >= HUB_MAX_SESSIONS)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	if (hub_random_hex(s->id) < 0) {
		free(s);
		return NULL;
	}
	snprintf(s->agent, sizeof(s->agent), "%s", agent);
	s->created = time(NULL);
	s->next = h->sessions;
	h->sessions = s;
	h->n_sessions++;
	return s;
}

struct hub_session *hub_session_find(struct hub *h, const char *id)
{
	struct hub_session *s;

	for (s = h->sessions; s; s = s->next)
		if (strcmp(s->id, id) == 0)
			return s;
	return NULL;
}

/* The session ID if it is pending for AGENT: made for that agent, not yet
 * completed, not expired (the sweep runs only once a second). */
static struct hub_session *pending_for(struct hub *h, const char *agent, const char *id)
{
	struct hub_session *s = hub_session_find(h, id);

	if (!s || s->done || strcmp(s->agent, agent) != 0 ||
	    time(NULL) - s->created >= HUB_SESSION_TTL_S)
		return NULL;
	return s;
}

bool hub_session_pending(struct hub *h, const char *agent, const char *id)
{
	return pending_for(h, agent, id) != NULL;
}

const char *hub_session_login(struct hub *h, const char *agent, json_t *msg)
{
	const char *id = json_string_value(json_object_get(msg, "session"));
	const char *method = json_string_value(json_object_get(msg, "method"));
	json_t *profile = json_object_get(msg, "profile");
	json_t *cert = json_object_get(msg, "certificate");
	struct hub_session *s;

	if (!id || !method || !json_is_object(profile) ||
	    (strcmp(method, "certificate") != 0 && strcmp(method, "password") != 0 &&
	     strcmp(method, "kerberos") != 0) ||
	    (cert && !json_is_object(cert) && !json_is_null(cert)))
		return "bad_request";
	/* A session completes once, and only through the agent it was sent to: a
	 * second agent (or a replay) cannot overwrite whose login it was. */
	s = pending_for(h, agent, id);
	if (!s)
		return "unknown_session";
	/* A shallow copy without the agent's request id: that belongs to the
	 * link, not to the session (and the caller still reads it from MSG). */
	s->login = json_copy(msg);
	if (!s->login)
		return "internal";
	json_object_del(s->login, "id");
	s->done = true;
	log_msg(LOGL_INFO, "hub: session %.8s… done (%s) by agent %s", s->id, method, agent);
	return NULL;
}

/* The id of an agent's request (1..128 printable ASCII), or NULL when it has
 * none that can be echoed. */
static const char *request_id(json_t *m)
{
	const char *id = json_string_value(json_object_get(m, "id"));
	size_t n;

	if (!id)
		return NULL;
	for (n = 0; id[n]; n++)
		if (n >= 128 || id[n] < 0x20 || id[n] > 0x7e)
			return NULL;
	return n > 0 ? id : NULL;
}

void hub_session_message(struct hub *h, struct hub_agent *a, const char *type, json_t *m)
{
	const char *agent = hub_agent_name(a);
	const char *id = request_id(m);
	const char *session, *err;

	if (strcmp(type, "login") == 0) {
		err = hub_session_login(h, agent, m);
		if (err)
			log_msg(LOGL_WARN, "hub: agent %s: login refused: %s", agent, err);
		/* A login without an id (older agents) gets no answer. */
		if (id)
			hub_agent_answer(a, id, err);
		return;
	}
	if (!id) {
		log_msg(LOGL_WARN, "hub: agent %s: %s without a valid id ignored", agent, type);
		return;
	}
	session = json_string_value(json_object_get(m, "session"));
	if (!session) {
		hub_agent_answer(a, id, "bad_request");
	} else if (!hub_session_pending(h, agent, session)) {
		log_msg(LOGL_INFO, "hub: agent %s: session_check for no pending session of its own",
			agent);
		hub_agent_answer(a, id, "unknown_session");
	} else {
		hub_agent_answer(a, id, NULL);
	}
}

void hub_sessions_tick(struct hub *h, time_t now)
{
	struct hub_session **pp, *s;

	for (pp = &h->sessions; (s = *pp);) {
		if (now - s->created < HUB_SESSION_TTL_S) {
			pp = &s->next;
			continue;
		}
		*pp = s->next;
		h->n_sessions--;
		json_decref(s->login);
		free(s);
	}
}

void hub_sessions_free(struct hub *h)
{
	struct hub_session *s;

	while ((s = h->sessions)) {
		h->sessions = s->next;
		json_decref(s->login);
		free(s);
	}
	h->n_sessions = 0;
}
