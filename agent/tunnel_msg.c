/*
 * Messages from the hub (docs/protocol.md): every field a request needs is
 * checked here, once, so the tunnel acts only on well-formed requests and
 * answers everything else with bad_request (or closes the link when the frame
 * is not a message at all).
 */
#include <string.h>
#include <stdint.h>

#include "agent/tunnel.h"
#include "agent/tunnel_msg.h"

/* A string field, with its length.  jansson loads no string with NUL (no
 * JSON_ALLOW_NUL), and the directory would refuse one anyway. */
static const char *field(json_t *m, const char *name, size_t *len)
{
	json_t *v = json_object_get(m, name);

	if (!json_is_string(v))
		return NULL;
	if (len)
		*len = json_string_length(v);
	return json_string_value(v);
}

static int id_valid(const char *id)
{
	size_t n;

	for (n = 0; id[n]; n++)
		if (n >= TMSG_ID_MAX || id[n] < 0x20 || id[n] > 0x7e)
			return 0;
	return n > 0;
}

/* LIMIT: absent means 100; otherwise an integer in 1..TUNNEL_MAX_LIMIT. */
static int field_limit(json_t *m, size_t *limit)
{
	json_t *v = json_object_get(m, "limit");

	*limit = 100;
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 1 ||
	    json_integer_value(v) > TUNNEL_MAX_LIMIT)
		return -1;
	*limit = (size_t)json_integer_value(v);
	return 0;
}

/* The optional client_ip of an authenticate: absent or null, or an IPv4 or
 * IPv6 literal. */
static int client_ip(json_t *m, char *out, size_t outlen)
{
	json_t *v = json_object_get(m, "client_ip");
	unsigned char a[sizeof(struct in6_addr)];
	const char *s;

	out[0] = '\0';
	if (!v || json_is_null(v))
		return 0;
	s = json_string_value(v);
	if (!s || json_string_length(v) >= outlen || strlen(s) != json_string_length(v) ||
	    (inet_pton(AF_INET, s, a) != 1 && inet_pton(AF_INET6, s, a) != 1))
		return -1;
	memcpy(out, s, json_string_length(v) + 1);
	return 0;
}

static enum tmsg_kind request(struct tmsg *m)
{
	json_t *j = m->root;
	const char *t = m->type;

	m->username = field(j, "username", NULL);
	if (strcmp(t, "authenticate") == 0) {
		m->password = field(j, "password", &m->password_len);
		if (!m->username || !m->password ||
		    client_ip(j, m->client_ip, sizeof(m->client_ip)) < 0)
			return TMSG_BAD;
		return TMSG_AUTHENTICATE;
	}
	if (strcmp(t, "lookup") == 0)
		return m->username ? TMSG_LOOKUP : TMSG_BAD;
	if (strcmp(t, "change_password") == 0) {
		m->old_password = field(j, "old_password", &m->old_password_len);
		m->password = field(j, "new_password", &m->password_len);
		return m->username && m->old_password && m->password ? TMSG_CHANGE_PASSWORD
								     : TMSG_BAD;
	}
	if (strcmp(t, "search_users") == 0) {
		m->query = field(j, "query", NULL);
		return m->query && field_limit(j, &m->limit) == 0 ? TMSG_SEARCH_USERS : TMSG_BAD;
	}
	if (strcmp(t, "list_groups") == 0)
		return field_limit(j, &m->limit) == 0 ? TMSG_LIST_GROUPS : TMSG_BAD;
	return TMSG_BAD;
}

void tmsg_parse(const void *text, size_t len, struct tmsg *m)
{
	json_error_t jerr;

	memset(m, 0, sizeof(*m));
	m->root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	m->type = field(m->root, "type", NULL);
	if (!json_is_object(m->root) || !m->type)
		return;
	m->id = field(m->root, "id", NULL);
	if (!m->id || !id_valid(m->id)) {
		m->kind = TMSG_NO_ID;
		return;
	}
	m->kind = strcmp(m->type, "result") == 0 ? TMSG_RESULT : request(m);
}

/* Wipes a secret jansson still holds (its own copy of a string value). */
static void wipe_field(json_t *m, const char *name)
{
	json_t *v = json_object_get(m, name);

	if (json_is_string(v))
		explicit_bzero((char *)(uintptr_t)json_string_value(v), json_string_length(v));
}

void tmsg_free(struct tmsg *m)
{
	if (m->root) {
		wipe_field(m->root, "password");
		wipe_field(m->root, "old_password");
		wipe_field(m->root, "new_password");
		json_decref(m->root);
	}
	memset(m, 0, sizeof(*m));
}
