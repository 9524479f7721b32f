/*
 * dirbridge-hub — the reference identity hub: the other end of the agent's
 * tunnel (agents.c) and a local JSON API for tests and demos (api.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>

#include "config/cfg.h"
#include "tools/hub/hub.h"

#define MAX_TOKENS 1024

static const char usage[] =
	"usage: dirbridge-hub --listen HOST:PORT --cert FILE --key FILE\n"
	"                     --tokens-file FILE --api HOST:PORT [--ca FILE] [-v]\n"
	"  --listen       agent endpoint, wss://HOST:PORT/agent/v1 (TLS)\n"
	"  --cert, --key  the endpoint's certificate chain and key (PEM)\n"
	"  --ca           CA certificate appended to the chain sent to agents\n"
	"  --tokens-file  accepted agent tokens, one per line, # comments (mode 0600)\n"
	"  --api          local JSON API, plain HTTP on a loopback address\n"
	"  -v             debug logging\n";

int hub_listen(struct hub *h, uv_tcp_t *l, const char *hostport, int backlog,
	       uv_connection_cb cb, const char *option)
{
	struct sockaddr_storage ss;
	int rc;

	uv_tcp_init(h->loop, l);
	l->data = h;
	if (cfg_hostport_parse(hostport, 0, &ss) < 0)
		return -EINVAL;
	rc = uv_tcp_bind(l, (struct sockaddr *)&ss, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)l, backlog, cb);
	if (rc < 0)
		fprintf(stderr, "dirbridge: %s %s: %s\n", option, hostport, uv_strerror(rc));
	return rc;
}

int hub_random_hex(char out[33])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t r[16];
	size_t i;

	if (gnutls_rnd(GNUTLS_RND_RANDOM, r, sizeof(r)) < 0)
		return -EIO;
	for (i = 0; i < sizeof(r); i++) {
		out[2 * i] = hex[r[i] >> 4];
		out[2 * i + 1] = hex[r[i] & 15];
	}
	out[32] = '\0';
	return 0;
}

bool hub_token_ok(const struct hub *h, const char *token, size_t len)
{
	uint8_t d[32];
	unsigned diff, all = 1;
	size_t i, j;

	/* Comparing digests of fixed length, over every token without an early
	 * exit, keeps the time independent of where (or whether) a token matches. */
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, token, len, d) < 0)
		return false;
	for (i = 0; i < h->n_tokens; i++) {
		diff = 0;
		for (j = 0; j < sizeof(d); j++)
			diff |= d[j] ^ h->tokens[i][j];
		all &= (diff != 0);
	}
	gnutls_memset(d, 0, sizeof(d));
	return all == 0;
}

static int load_tokens(struct hub *h, const char *path)
{
	char line[1024];
	struct stat st;
	FILE *f;
	int rc = 0;

	f = fopen(path, "re");
	if (!f) {
		fprintf(stderr, "dirbridge: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077)) {
		fprintf(stderr, "dirbridge: %s: readable by group or others; chmod 600 it\n", path);
		fclose(f);
		return -EPERM;
	}
	h->tokens = calloc(MAX_TOKENS, sizeof(*h->tokens));
	if (!h->tokens) {
		fclose(f);
		return -ENOMEM;
	}
	while (fgets(line, sizeof(line), f)) {
		char *s = line, *e;

		if (!strchr(line, '\n') && !feof(f)) {
			fprintf(stderr, "dirbridge: %s: line too long\n", path);
			rc = -EINVAL;
			break;
		}
		while (*s == ' ' || *s == '\t')
			s++;
		e = s + strcspn(s, "#\r\n");
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (e == s)
			continue;
		if (h->n_tokens == MAX_TOKENS) {
			fprintf(stderr, "dirbridge: %s: more than %d tokens\n", path, MAX_TOKENS);
			rc = -EINVAL;
			break;
		}
		gnutls_hash_fast(GNUTLS_DIG_SHA256, s, (size_t)(e - s), h->tokens[h->n_tokens++]);
	}
	explicit_bzero(line, sizeof(line));
	fclose(f);
	if (rc == 0 && h->n_tokens == 0) {
		fprintf(stderr, "dirbridge: %s: no tokens; add one per line\n", path);
		rc = -EINVAL;
	}
	return rc;
}

static void on_signal(uv_signal_t *s, int signum)
{
	struct hub *h = s->data;

	(void)signum;
	if (h->stopping)
		return;
	log_msg(LOGL_INFO, "hub: stopping");
	h->stopping = true;
	uv_close((uv_handle_t *)&h->agent_listener, NULL);
	uv_close((uv_handle_t *)&h->api_listener, NULL);
	uv_close((uv_handle_t *)&h->sweep, NULL);
	uv_close((uv_handle_t *)&h->sigint, NULL);
	uv_close((uv_handle_t *)&h->sigterm, NULL);
	hub_agents_close_all(h);
	hub_api_close_all(h);
}

static void on_sweep(uv_timer_t *t)
{
	struct hub *h = t->data;

	hub_agents_tick(h, uv_now(h->loop));
	hub_api_tick(h, uv_now(h->loop));
	hub_sessions_tick(h, time(NULL));
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "cert", required_argument, NULL, 'c' },
		{ "key", required_argument, NULL, 'k' },
		{ "tokens-file", required_argument, NULL, 't' },
		{ "api", required_argument, NULL, 'a' },
		{ "ca", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *listen = NULL, *cert = NULL, *key = NULL, *tokens = NULL;
	const char *api = NULL, *ca = NULL;
	struct sockaddr_storage ss;
	struct hub h;
	char err[512];
	int c, rc;

	/* Process-wide: a closed peer is an error code, and JSON memory is wiped. */
	signal(SIGPIPE, SIG_IGN);
	json_set_alloc_funcs(cfg_wipe_alloc, cfg_wipe_free);

	log_init(LOGL_INFO);
	while ((c = getopt_long(argc, argv, "hv", opts, NULL)) != -1) {
		switch (c) {
		case 'l': listen = optarg; break;
		case 'c': cert = optarg; break;
		case 'k': key = optarg; break;
		case 't': tokens = optarg; break;
		case 'a': api = optarg; break;
		case 'C': ca = optarg; break;
		case 'v': log_set_level(LOGL_DEBUG); break;
		case 'h': fputs(usage, stdout); return 0;
		case 'V': printf("dirbridge-hub %s\n", DIRBRIDGE_VERSION); return 0;
		default: fputs(usage, stderr); return 2;
		}
	}
	if (optind != argc || !listen || !cert || !key || !tokens || !api) {
		fprintf(stderr, "dirbridge: --listen, --cert, --key, --tokens-file and --api are required\n");
		fputs(usage, stderr);
		return 2;
	}
	if (cfg_hostport_parse(listen, 0, &ss) < 0) {
		fprintf(stderr, "dirbridge: --listen %s: want HOST:PORT or [V6]:PORT with a numeric address\n", listen);
		return 2;
	}
	if (cfg_hostport_parse(api, 0, &ss) < 0) {
		fprintf(stderr, "dirbridge: --api %s: want HOST:PORT or [V6]:PORT with a numeric address\n", api);
		return 2;
	}
	/* The API has no authentication of its own: it must never leave the host. */
	if (!(ss.ss_family == AF_INET &&
	      (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127) &&
	    !(ss.ss_family == AF_INET6 &&
	      IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&ss)->sin6_addr))) {
		fprintf(stderr, "dirbridge: --api %s: must be a loopback address (127.0.0.0/8 or ::1)\n", api);
		return 2;
	}

	memset(&h, 0, sizeof(h));
	if (tls_global_init() < 0) {
		fprintf(stderr, "dirbridge: TLS library failed to initialise\n");
		return 1;
	}
	if (load_tokens(&h, tokens) < 0) {
		free(h.tokens);
		return 2;
	}
	rc = tls_hub_creds_load(cert, key, ca, &h.creds, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "dirbridge: %s\n", rc == TLS_E_CONFIG ? err : tls_strerror(rc));
		free(h.tokens);
		return 2;
	}

	h.loop = uv_default_loop();
	rc = hub_agents_listen(&h, listen);
	if (rc == 0)
		rc = hub_api_listen(&h, api);
	if (rc < 0) {
		/* The listeners are loop handles; closing them needs the loop. */
		h.stopping = true;
		if (h.agent_listener.loop)
			uv_close((uv_handle_t *)&h.agent_listener, NULL);
		if (h.api_listener.loop)
			uv_close((uv_handle_t *)&h.api_listener, NULL);
		uv_run(h.loop, UV_RUN_DEFAULT);
		goto out;
	}
	uv_timer_init(h.loop, &h.sweep);
	h.sweep.data = &h;
	uv_timer_start(&h.sweep, on_sweep, 1000, 1000);
	uv_signal_init(h.loop, &h.sigint);
	uv_signal_init(h.loop, &h.sigterm);
	h.sigint.data = h.sigterm.data = &h;
	uv_signal_start(&h.sigint, on_signal, SIGINT);
	uv_signal_start(&h.sigterm, on_signal, SIGTERM);
	log_msg(LOGL_INFO, "hub: agents on wss://%s/agent/v1, API on http://%s", listen, api);
	uv_run(h.loop, UV_RUN_DEFAULT);
	rc = 0;
out:
	hub_sessions_free(&h);
	uv_loop_close(h.loop);
	tls_hub_creds_free(h.creds);
	free(h.tokens);
	return rc < 0 ? 1 : 0;
}
