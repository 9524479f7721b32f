/*
 * Sign-in sessions: POST /v1/sessions creates one bound to the agent whose
 * front-facing URL it hands out; that agent's `login` message completes it.
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

bool hub_session_login(struct hub *h, const char *agent, json_t *msg)
{
	const char *id = json_string_value(json_object_get(msg, "session"));
	const char *method = json_string_value(json_object_get(msg, "method"));
	json_t *profile = json_object_get(msg, "profile");
	json_t *cert = json_object_get(msg, "certificate");
	struct hub_session *s;

	if (!id || !method || !json_is_object(profile) ||
	    (strcmp(method, "certificate") != 0 && strcmp(method, "password") != 0) ||
	    (cert && !json_is_object(cert) && !json_is_null(cert)))
		return false;
	s = hub_session_find(h, id);
	/* A session completes once, and only through the agent it was sent to: a
	 * second agent (or a replay) cannot overwrite whose login it was. */
	if (!s || s->done || strcmp(s->agent, agent) != 0)
		return false;
	s->done = true;
	s->login = json_incref(msg);
	cfg_log(CFG_LOG_INFO, "hub: session %.8s… done (%s) by agent %s", s->id, method, agent);
	return true;
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
