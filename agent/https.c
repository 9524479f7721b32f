/*
 * The front-facing HTTPS server (docs/https.md): its listeners, accepting,
 * certificate reloads, the per-address throttle, and stopping.  One
 * connection's life is https_conn.c's, the routes are routes.c's, and the
 * response head and pages are pages.c's; https_internal.h holds what they
 * share.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent/https_internal.h"

static int ip_throttle_set(struct https *h, const struct cfg *cfg);

static void https_set_state(struct https *h, enum https_state st)
{
	h->state = st;
}

void https_guard_metrics(struct https *h)
{
	struct dir_guard_stats g = { 0 };
	struct dir_throttle_stats t = { 0 };

	if (h->dir)
		dir_guard_stats(h->dir, &g);
	if (h->ip_fails)
		dir_throttle_stats(h->ip_fails, &t);
	h->m.guard_refused = g.refused;
	h->m.guard_hidden = g.hidden;
	h->m.ip_keys = t.entries;
}
static void on_connection(uv_stream_t *server, int status)
{
	struct listener *l = server->data;
	struct https *h = l->srv;

	if (status < 0 || h->state == H_STOPPING)
		return;
	conn_accept(h, server);
}

static void files_from_cfg(const struct cfg *cfg, struct tls_server_files *f)
{
	f->cert_file = cfg->https.cert_file;
	f->key_file = cfg->https.key_file;
	f->client_ca_file = cfg->https.client_ca_file;
	f->crl_file = cfg->https.crl_file;
	f->client_verify_depth = cfg->https.client_verify_depth;
}

static void on_listener_closed(uv_handle_t *handle)
{
	struct listener *l = handle->data;

	l->srv->ls_open--;
	srv_maybe_done(l->srv);
}

static void on_stop_timer_closed(uv_handle_t *handle)
{
	struct https *h = handle->data;
	void (*done)(void *) = h->done;
	void *arg = h->done_arg;

	tls_server_free(h->tls);
	dir_throttle_free(h->ip_fails);
	free(h->ls);
	free(h);
	if (done)
		done(arg);
}

void srv_maybe_done(struct https *h)
{
	if (h->state != H_STOPPING || h->n_conns > 0 || h->ls_open > 0 ||
	    uv_is_closing((uv_handle_t *)&h->stop_timer))
		return;
	uv_close((uv_handle_t *)&h->stop_timer, on_stop_timer_closed);
}

int https_start(uv_loop_t *loop, const struct cfg *cfg, struct dir *dir,
		const struct https_hooks *hooks, struct https **out)
{
	struct tls_server_files f;
	struct https *h;
	char err[512];
	size_t i;
	int ret;

	*out = NULL;
	if (csrf_init() < 0)
		return -EIO;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->loop = loop;
	h->cfg = cfg;
	h->dir = dir;
	h->hooks = *hooks;
	h->max_conns = cfg->https.max_connections;
	if (ip_throttle_set(h, cfg) < 0) {
		free(h);
		return -ENOMEM;
	}
	files_from_cfg(cfg, &f);
	ret = tls_server_new(&f, &h->tls, err, sizeof(err));
	if (ret < 0) {
		log_msg(LOGL_ERROR, "https: %s", err);
		free(h);
		return -EINVAL;
	}
	uv_timer_init(loop, &h->stop_timer);
	h->stop_timer.data = h;
	h->ls = calloc(cfg->https.n_listen ? cfg->https.n_listen : 1, sizeof(*h->ls));
	if (!h->ls) {
		ret = -ENOMEM;
		goto fail;
	}
	for (i = 0; i < cfg->https.n_listen; i++) {
		struct listener *l = &h->ls[i];
		const struct sockaddr_storage *ss = &cfg->https.listen_addrs[i];

		uv_tcp_init(loop, &l->tcp);
		l->tcp.data = l;
		l->srv = h;
		h->n_ls++;
		h->ls_open++;
		ret = uv_tcp_bind(&l->tcp, (const struct sockaddr *)ss,
				  ss->ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);
		if (ret == 0)
			ret = uv_listen((uv_stream_t *)&l->tcp, 511, on_connection);
		if (ret < 0) {
			log_msg(LOGL_ERROR, "https: listen %s: %s", cfg->https.listen[i], uv_strerror(ret));
			goto fail;
		}
		log_msg(LOGL_INFO, "https: listening on %s (certificate serial %s)",
			cfg->https.listen[i], tls_server_serial(h->tls));
	}
	https_set_state(h, H_RUNNING);
	*out = h;
	return 0;
fail:
	https_stop(h, NULL, NULL);
	return ret < 0 ? ret : -EINVAL;
}

/* Follows [https] max_failures_per_ip; the counts survive a reload that keeps
 * the same limit, so a reload never hands an attacker a fresh budget. */
static int ip_throttle_set(struct https *h, const struct cfg *cfg)
{
	unsigned limit = cfg->https.max_failures_per_ip;

	if (h->ip_fails && limit == h->ip_limit)
		return 0;
	dir_throttle_free(h->ip_fails);
	h->ip_fails = NULL;
	h->ip_limit = limit;
	if (limit == 0)
		return 0;
	h->ip_fails = dir_throttle_new(IP_KEYS, limit, IP_WINDOW_S);
	return h->ip_fails ? 0 : -ENOMEM;
}

int https_reload(struct https *h, const struct cfg *cfg)
{
	struct tls_server_files f;
	char err[512];
	int ret;

	files_from_cfg(cfg, &f);
	ret = tls_server_reload(h->tls, &f, err, sizeof(err));
	if (ret < 0) {
		log_msg(LOGL_ERROR, "https: reload refused, keeping the current certificates: %s", err);
		return -EINVAL;
	}
	h->cfg = cfg;
	if (ip_throttle_set(h, cfg) < 0)
		log_msg(LOGL_ERROR, "https: out of memory: max_failures_per_ip is off until the next reload");
	log_msg(LOGL_INFO, "https: certificates reloaded (certificate serial %s)",
		tls_server_serial(h->tls));
	return 0;
}

void https_set_dir(struct https *h, struct dir *dir)
{
	h->dir = dir;
}

void https_set_max_conns(struct https *h, size_t max)
{
	/* Lowering the cap closes nothing by itself: until enough connections
	 * end, every new client is treated as arriving at the cap. */
	h->max_conns = max ? max : 1;
}

static void on_stop_timeout(uv_timer_t *t)
{
	struct https *h = t->data;
	struct conn *c, *next;

	for (c = h->head; c; c = next) {
		next = c->next;
		conn_set_state(c, C_CLOSED);
	}
}

void https_stop(struct https *h, void (*done)(void *arg), void *arg)
{
	struct conn *c, *next;
	size_t i;

	https_set_state(h, H_STOPPING);
	h->done = done;
	h->done_arg = arg;
	for (i = 0; i < h->n_ls; i++)
		if (!uv_is_closing((uv_handle_t *)&h->ls[i].tcp))
			uv_close((uv_handle_t *)&h->ls[i].tcp, on_listener_closed);
	/* Idle connections go now; those with a request in flight finish it
	 * (their response carries Connection: close), bounded by STOP_MS. */
	for (c = h->head; c; c = next) {
		next = c->next;
		if (c->state == C_HANDSHAKE || (c->state == C_READ_REQUEST && !c->req.started))
			conn_set_state(c, C_CLOSED);
	}
	uv_timer_start(&h->stop_timer, on_stop_timeout, STOP_MS, 0);
	srv_maybe_done(h);
}
