/*
 * The hub's local JSON API (plain HTTP/1.1 on loopback, one request per
 * connection).  Routes and status codes are listed in docs/protocol.md.
 *
 * Each connection is one struct api_conn whose state only api_set_state()
 * changes: NEW -> READ (parsing the request) -> WAIT (a request is with an agent) ->
 * WRITE (the response is being written, then the socket is shut down) ->
 * CLOSED.  The request line and headers are bounded by http-parser, the URL by
 * HUB_API_URL_MAX and the body by HUB_MAX_API_BODY (apireq.c).
 */
#include <errno.h>
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/cfg.h"
#include "tools/hub/hub.h"

#define API_READ_S	30	/* to send a whole request */

enum api_state { API_NEW = 0, API_READ, API_WAIT, API_WRITE, API_CLOSED };
enum api_kind { K_AUTH, K_LOOKUP, K_CHANGE, K_USERS, K_GROUPS };

struct api_conn {
	struct api_conn *next, **pprev;	/* hub->api */
	struct hub *hub;
	enum api_state state;
	uv_tcp_t tcp;
	uv_write_t wr;
	uv_shutdown_t shut;
	http_parser parser;
	struct hub_api_req rq;
	enum api_kind kind;
	struct hub_req *req;
	uint64_t started_ms;
	char *out;
	size_t out_len;
	char rbuf[16384];
};

static void api_set_state(struct api_conn *c, enum api_state st);

static void on_close(uv_handle_t *h)
{
	struct api_conn *c = h->data;

	c->hub->n_api--;
	if (c->pprev) {
		*c->pprev = c->next;
		if (c->next)
			c->next->pprev = c->pprev;
	}
	if (c->rq.body)
		explicit_bzero(c->rq.body, c->rq.body_len);
	free(c->rq.body);
	free(c->out);
	explicit_bzero(c->rbuf, sizeof(c->rbuf));
	free(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct api_conn *c = req->data;

	(void)status;
	api_set_state(c, API_CLOSED);
}

static void on_written(uv_write_t *req, int status)
{
	struct api_conn *c = req->data;

	if (c->state != API_WRITE)
		return;
	if (status < 0 || uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown) < 0)
		api_set_state(c, API_CLOSED);
}

static void api_set_state(struct api_conn *c, enum api_state st)
{
	uv_buf_t b;

	if (c->state == API_CLOSED || c->state == st)
		return;
	if (c->req && st != API_WAIT) {
		hub_request_cancel(c->req);
		c->req = NULL;
	}
	c->state = st;
	switch (st) {
	case API_WRITE:
		c->wr.data = c->shut.data = c;
		b = uv_buf_init(c->out, (unsigned)c->out_len);
		if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0)
			api_set_state(c, API_CLOSED);
		break;
	case API_CLOSED:
		uv_close((uv_handle_t *)&c->tcp, on_close);
		break;
	default:
		break;
	}
}

static const char *reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 413: return "Payload Too Large";
	case 414: return "URI Too Long";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Error";
	}
}

/* Sends STATUS with BODY (stolen) and closes. */
static void respond(struct api_conn *c, int status, json_t *body)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	int n;

	json_decref(body);
	if (c->state >= API_WRITE) {
		free(text);
		return;
	}
	if (!text) {
		text = strdup("{\"ok\":false,\"error\":\"internal\"}");
		status = 500;
		if (!text) {
			api_set_state(c, API_CLOSED);
			return;
		}
	}
	n = asprintf(&c->out, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
		     "Content-Length: %zu\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n%s\n",
		     status, reason(status), strlen(text) + 1, text);
	free(text);
	if (n < 0) {
		c->out = NULL;
		api_set_state(c, API_CLOSED);
		return;
	}
	c->out_len = (size_t)n;
	api_set_state(c, API_WRITE);
}

static void respond_error(struct api_conn *c, int status, const char *code)
{
	respond(c, status, json_pack("{s:b, s:s}", "ok", 0, "error", code));
}

/* HTTP status for a protocol error code (docs/protocol.md) from the agent (or the hub's own). */
static int error_status(const char *code)
{
	static const char *const unauthorized[] = {
		"invalid_credentials", "account_disabled", "account_locked", "account_expired",
		"password_expired", "password_must_change",
	};
	size_t i;

	for (i = 0; i < sizeof(unauthorized) / sizeof(unauthorized[0]); i++)
		if (strcmp(code, unauthorized[i]) == 0)
			return 401;
	if (strcmp(code, "bad_request") == 0 || strcmp(code, "password_policy") == 0)
		return 400;
	if (strcmp(code, "not_found") == 0)
		return 404;
	if (strcmp(code, "too_many_attempts") == 0)
		return 429;
	if (strcmp(code, "directory_unavailable") == 0 || strcmp(code, "no_agent") == 0 ||
	    strcmp(code, "busy") == 0)
		return 503;
	if (strcmp(code, "timeout") == 0)
		return 504;
	return 500;
}

static bool code_valid(const char *s)
{
	size_t n;

	for (n = 0; s[n]; n++)
		if (n >= 64 || !((s[n] >= 'a' && s[n] <= 'z') || s[n] == '_'))
			return false;
	return n > 0;
}

static void on_result(void *arg, json_t *m, const char *err)
{
	static const char *const field[] = {
		[K_AUTH] = "profile", [K_LOOKUP] = "profile", [K_CHANGE] = NULL,
		[K_USERS] = "users", [K_GROUPS] = "groups",
	};
	struct api_conn *c = arg;
	const char *code;
	json_t *v, *body;

	c->req = NULL;
	if (!m) {
		respond_error(c, error_status(err), err);
		return;
	}
	if (!json_is_true(json_object_get(m, "ok"))) {
		code = json_string_value(json_object_get(m, "error"));
		if (!code || !code_valid(code))
			code = "internal";
		respond_error(c, error_status(code), code);
		return;
	}
	body = json_pack("{s:b}", "ok", 1);
	if (field[c->kind]) {
		v = json_object_get(m, field[c->kind]);
		if (!v || (c->kind <= K_LOOKUP ? !json_is_object(v) : !json_is_array(v))) {
			json_decref(body);
			respond_error(c, 502, "internal");
			return;
		}
		json_object_set(body, field[c->kind], v);
	}
	respond(c, 200, body);
}

/* Sends MSG (stolen) to an agent; the answer arrives in on_result(). */
static void forward(struct api_conn *c, enum api_kind kind, json_t *msg)
{
	int rc;

	if (!msg) {
		respond_error(c, 500, "internal");
		return;
	}
	c->kind = kind;
	rc = hub_request(c->hub, msg, on_result, c, &c->req);
	json_decref(msg);
	if (rc == -ENOENT)
		respond_error(c, 503, "no_agent");
	else if (rc == -EBUSY)
		respond_error(c, 503, "busy");
	else if (rc < 0)
		respond_error(c, 500, "internal");
	else if (c->state == API_READ)
		/* Not when the agent failed while the request was being sent: then
		 * on_result() has already answered. */
		api_set_state(c, API_WAIT);
}

/* The request body as a JSON object of string fields; NULL after responding. */
static json_t *body_json(struct api_conn *c)
{
	json_error_t jerr;
	json_t *j = NULL;

	if (c->rq.body)
		j = json_loadb(c->rq.body, c->rq.body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(j)) {
		json_decref(j);
		respond_error(c, 400, "bad_request");
		return NULL;
	}
	return j;
}

static const char *str_field(json_t *j, const char *name)
{
	return json_string_value(json_object_get(j, name));
}

static void route_post(struct api_conn *c, const char *path)
{
	const struct hub_agent *a;
	struct hub_session *s;
	json_t *j;

	if (strcmp(path, "/v1/sessions") == 0) {
		a = hub_pick_front(c->hub);
		if (!a) {
			respond_error(c, 503, "no_agent");
			return;
		}
		s = hub_session_new(c->hub, hub_agent_name(a));
		if (!s) {
			respond_error(c, 503, "busy");
			return;
		}
		{
			const char *url = hub_agent_public_url(a);
			size_t n = strlen(url);
			char *login;

			while (n && url[n - 1] == '/')
				n--;
			if (asprintf(&login, "%.*s/login?session=%s", (int)n, url, s->id) < 0) {
				respond_error(c, 500, "internal");
				return;
			}
			respond(c, 200, json_pack("{s:s, s:s%}", "session", s->id, "login_url",
						  login, strlen(login)));
			free(login);
		}
		return;
	}
	if (strcmp(path, "/v1/authenticate") == 0) {
		if (!(j = body_json(c)))
			return;
		if (!str_field(j, "username") || !str_field(j, "password"))
			respond_error(c, 400, "bad_request");
		else
			/* client_ip, when the API caller gives it, goes to the agent
			 * as is: the agent checks that it is an address. */
			forward(c, K_AUTH, json_pack("{s:s, s:O, s:O, s:O*}", "type", "authenticate",
				"username", json_object_get(j, "username"),
				"password", json_object_get(j, "password"),
				"client_ip", json_object_get(j, "client_ip")));
		json_decref(j);
		return;
	}
	if (strcmp(path, "/v1/lookup") == 0) {
		if (!(j = body_json(c)))
			return;
		if (!str_field(j, "username"))
			respond_error(c, 400, "bad_request");
		else
			forward(c, K_LOOKUP, json_pack("{s:s, s:O}", "type", "lookup",
				"username", json_object_get(j, "username")));
		json_decref(j);
		return;
	}
	if (strcmp(path, "/v1/change_password") == 0) {
		if (!(j = body_json(c)))
			return;
		if (!str_field(j, "username") || !str_field(j, "old_password") ||
		    !str_field(j, "new_password"))
			respond_error(c, 400, "bad_request");
		else
			forward(c, K_CHANGE, json_pack("{s:s, s:O, s:O, s:O}", "type",
				"change_password", "username", json_object_get(j, "username"),
				"old_password", json_object_get(j, "old_password"),
				"new_password", json_object_get(j, "new_password")));
		json_decref(j);
		return;
	}
	respond_error(c, 404, "not_found");
}

static void route_get(struct api_conn *c, const char *path, const char *q, size_t qlen)
{
	char text[1024];
	json_int_t limit;
	struct hub_session *s;
	int rc;

	if (strcmp(path, "/v1/agents") == 0) {
		respond(c, 200, json_pack("{s:b, s:o}", "ok", 1, "agents", hub_agents_json(c->hub)));
		return;
	}
	if (strcmp(path, "/v1/users") == 0) {
		rc = hub_query_get(q, qlen, "q", text, sizeof(text));
		if (rc < 0 || hub_query_limit(q, qlen, &limit) < 0) {
			respond_error(c, 400, "bad_request");
			return;
		}
		forward(c, K_USERS, json_pack("{s:s, s:s, s:I}", "type", "search_users",
					      "query", rc ? text : "", "limit", limit));
		return;
	}
	if (strcmp(path, "/v1/groups") == 0) {
		if (hub_query_limit(q, qlen, &limit) < 0) {
			respond_error(c, 400, "bad_request");
			return;
		}
		forward(c, K_GROUPS, json_pack("{s:s, s:I}", "type", "list_groups", "limit", limit));
		return;
	}
	if (strncmp(path, "/v1/sessions/", 13) == 0) {
		s = strlen(path + 13) == 32 ? hub_session_find(c->hub, path + 13) : NULL;
		if (!s) {
			respond_error(c, 404, "not_found");
		} else if (!s->done) {
			respond(c, 200, json_pack("{s:s}", "state", "pending"));
		} else {
			json_t *cert = json_object_get(s->login, "certificate");

			respond(c, 200, json_pack("{s:s, s:O, s:O, s:O*}", "state", "done",
				"method", json_object_get(s->login, "method"),
				"profile", json_object_get(s->login, "profile"),
				"certificate", json_is_object(cert) ? cert : NULL));
		}
		return;
	}
	respond_error(c, 404, "not_found");
}

static void route(struct api_conn *c)
{
	char path[HUB_API_URL_MAX + 1];
	const char *q;
	size_t qlen;

	if (c->rq.too_long) {
		respond_error(c, 414, "bad_request");
		return;
	}
	if (c->rq.too_big) {
		respond_error(c, 413, "bad_request");
		return;
	}
	if (hub_api_target(&c->rq, path, &q, &qlen) < 0) {
		respond_error(c, 400, "bad_request");
		return;
	}
	if (c->parser.method == HTTP_POST)
		route_post(c, path);
	else if (c->parser.method == HTTP_GET)
		route_get(c, path, q, qlen);
	else
		respond_error(c, 405, "bad_request");
	if (c->rq.body)
		explicit_bzero(c->rq.body, c->rq.body_len);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct api_conn *c = h->data;

	(void)hint;
	*buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct api_conn *c = s->data;

	if (n < 0) {
		/* The client left: an answer still on its way is dropped. */
		uv_read_stop(s);
		if (c->state == API_READ || c->state == API_WAIT)
			api_set_state(c, API_CLOSED);
		return;
	}
	if (c->state != API_READ || n == 0)
		return;
	http_parser_execute(&c->parser, &hub_api_settings, buf->base, (size_t)n);
	if (c->rq.done) {
		route(c);
		return;
	}
	if (HTTP_PARSER_ERRNO(&c->parser) != HPE_OK)
		respond_error(c, 400, "bad_request");
}

static void on_connection(uv_stream_t *server, int status)
{
	struct hub *h = server->data;
	struct api_conn *c;

	if (status < 0)
		return;
	c = calloc(1, sizeof(*c));
	if (!c)
		return;
	c->hub = h;
	c->tcp.data = c;
	h->n_api++;
	uv_tcp_init(h->loop, &c->tcp);
	if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0 || h->n_api > HUB_MAX_API_CONNS ||
	    h->stopping) {
		api_set_state(c, API_CLOSED);
		return;
	}
	c->started_ms = uv_now(h->loop);
	c->next = h->api;
	c->pprev = &h->api;
	if (h->api)
		h->api->pprev = &c->next;
	h->api = c;
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = &c->rq;
	api_set_state(c, API_READ);
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

void hub_api_tick(struct hub *h, uint64_t now)
{
	struct api_conn *c;

	/* A client that does not finish its request in time loses its slot; one
	 * waiting for an agent is bounded by HUB_REQUEST_TIMEOUT_S instead. */
	for (c = h->api; c; c = c->next)
		if (c->state == API_READ && now - c->started_ms > API_READ_S * 1000u)
			api_set_state(c, API_CLOSED);
}

void hub_api_close_all(struct hub *h)
{
	struct api_conn *c;

	for (c = h->api; c; c = c->next)
		api_set_state(c, API_CLOSED);
}

int hub_api_listen(struct hub *h, const char *hostport)
{
	return hub_listen(h, &h->api_listener, hostport, 256, on_connection, "--api");
}
