/*
 * agent/ private: one message from the hub, parsed and checked before anything
 * acts on it (tunnel_msg.c).  No I/O and no state, so the fuzz harness and the
 * unit tests drive exactly what the tunnel runs on every frame it receives.
 */
#ifndef DIRBRIDGE_AGENT_TUNNEL_MSG_H
#define DIRBRIDGE_AGENT_TUNNEL_MSG_H

#include <arpa/inet.h>
#include <stddef.h>

#include <jansson.h>

#define TMSG_ID_MAX 128		/* printable ASCII characters in an id */

enum tmsg_kind {
	TMSG_NONE,		/* not a JSON object with a string type: a protocol error */
	TMSG_NO_ID,		/* no valid id: nothing can be answered */
	TMSG_RESULT,		/* an answer to one of the agent's own requests */
	TMSG_AUTHENTICATE,
	TMSG_LOOKUP,
	TMSG_CHANGE_PASSWORD,
	TMSG_SEARCH_USERS,
	TMSG_LIST_GROUPS,
	TMSG_BAD,		/* a request with an id but a missing or wrong field */
};

/* Pointers point into ROOT and live until tmsg_free(). */
struct tmsg {
	enum tmsg_kind kind;
	json_t *root;
	const char *type, *id;
	const char *username;
	const char *password, *old_password;	/* may hold NUL; lengths below */
	size_t password_len, old_password_len;
	const char *query;
	size_t limit;
	char client_ip[INET6_ADDRSTRLEN];	/* "" when absent */
};

/* Parses LEN bytes of one text frame into M; M->kind says what it is (a frame
 * jansson cannot load, for whatever reason, is TMSG_NONE). */
void tmsg_parse(const void *text, size_t len, struct tmsg *m);
/* Wipes the passwords jansson holds, then frees. */
void tmsg_free(struct tmsg *m);

#endif
