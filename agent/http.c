/*
 * The front-facing server's content: buffers, form decoding, CSRF tokens and
 * the metrics text (the pages are pages.c's).  No I/O here; https_conn.c and
 * routes.c drive it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "agent/https.h"
#include "net/net.h"

/* ---- buffers -------------------------------------------------------------- */

static int buf_reserve(struct buf *b, size_t more)
{
	size_t cap;
	char *p;

	if (more <= b->cap - b->len)
		return 0;
	if (more > SIZE_MAX / 2 - b->len)
		return -ENOMEM;
	cap = b->cap ? b->cap : 256;
	while (cap - b->len < more)
		cap *= 2;
	/* No realloc: the old block may hold a password and must be wiped. */
	p = malloc(cap);
	if (!p)
		return -ENOMEM;
	if (b->p) {
		memcpy(p, b->p, b->len);
		explicit_bzero(b->p, b->cap);
		free(b->p);
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

int buf_add(struct buf *b, const void *data, size_t len)
{
	if (buf_reserve(b, len + 1) < 0)
		return -ENOMEM;
	memcpy(b->p + b->len, data, len);
	b->len += len;
	b->p[b->len] = '\0';
	return 0;
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || buf_reserve(b, (size_t)n + 1) < 0)
		return -ENOMEM;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

int buf_html(struct buf *b, const char *text)
{
	const char *p;
	int ret = 0;

	for (p = text; *p && ret == 0; p++) {
		switch (*p) {
		case '&': ret = buf_add(b, "&amp;", 5); break;
		case '<': ret = buf_add(b, "&lt;", 4); break;
		case '>': ret = buf_add(b, "&gt;", 4); break;
		case '"': ret = buf_add(b, "&quot;", 6); break;
		case '\'': ret = buf_add(b, "&#39;", 5); break;
		default: ret = buf_add(b, p, 1); break;
		}
	}
	return ret;
}

void buf_wipe(struct buf *b)
{
	if (b->p) {
		explicit_bzero(b->p, b->cap);
		free(b->p);
	}
	b->p = NULL;
	b->len = b->cap = 0;
}

/* ---- forms ---------------------------------------------------------------- */

/* Decodes one urlencoded component into a new string; NUL is refused. */
static int urldecode(const char *in, size_t len, char **out, size_t *outlen)
{
	char *o = malloc(len + 1);
	size_t i, n = 0;

	if (!o)
		return -ENOMEM;
	for (i = 0; i < len; i++) {
		char c = in[i];

		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			int hi, lo;

			if (i + 2 >= len)
				goto bad;
			hi = net_hexval(in[i + 1]);
			lo = net_hexval(in[i + 2]);
			if (hi < 0 || lo < 0)
				goto bad;
			c = (char)(hi << 4 | lo);
			i += 2;
		}
		if (c == '\0')
			goto bad;
		o[n++] = c;
	}
	o[n] = '\0';
	*out = o;
	if (outlen)
		*outlen = n;
	return 0;
bad:
	explicit_bzero(o, len + 1);
	free(o);
	return -EINVAL;
}

int form_get(const char *form, size_t len, const char *name, char **out, size_t *outlen)
{
	size_t nlen = strlen(name), i = 0;

	*out = NULL;
	while (i < len) {
		const char *pair = form + i;
		const char *end = memchr(pair, '&', len - i);
		size_t plen = end ? (size_t)(end - pair) : len - i;
		const char *eq = memchr(pair, '=', plen);

		if (eq && (size_t)(eq - pair) == nlen && memcmp(pair, name, nlen) == 0)
			return urldecode(eq + 1, plen - nlen - 1, out, outlen);
		i += plen + 1;
	}
	return -ENOENT;
}

bool session_id_valid(const char *id)
{
	size_t n = 0;

	for (; id[n]; n++) {
		char c = id[n];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return false;
	}
	return n >= 1 && n <= 128;
}

/* ---- CSRF tokens ---------------------------------------------------------- */

/* A form is good for this long; a user who leaves it open longer gets the
 * form again with a notice, never a login. */
#define CSRF_TTL_S (20 * 60)

static unsigned char csrf_key[32];

int csrf_init(void)
{
	return gnutls_rnd(GNUTLS_RND_KEY, csrf_key, sizeof(csrf_key)) < 0 ? -EIO : 0;
}

static int csrf_mac(const char *session, long long expiry, char hexout[65])
{
	unsigned char mac[32];
	char msg[160];
	int n, i;

	n = snprintf(msg, sizeof(msg), "%s\n%lld", session, expiry);
	if (n < 0 || (size_t)n >= sizeof(msg))
		return -EINVAL;
	if (gnutls_hmac_fast(GNUTLS_MAC_SHA256, csrf_key, sizeof(csrf_key), msg, (size_t)n, mac) < 0)
		return -EIO;
	for (i = 0; i < 32; i++)
		snprintf(hexout + 2 * i, 3, "%02x", mac[i]);
	return 0;
}

int csrf_make(const char *session, char *out, size_t outlen)
{
	long long expiry = (long long)time(NULL) + CSRF_TTL_S;
	char mac[65];
	int n;

	if (csrf_mac(session, expiry, mac) < 0)
		return -EINVAL;
	n = snprintf(out, outlen, "%lld.%s", expiry, mac);
	return n < 0 || (size_t)n >= outlen ? -ENOSPC : 0;
}

bool csrf_check(const char *session, const char *token)
{
	char mac[65], *end;
	long long expiry;
	unsigned diff = 0;
	size_t i;

	errno = 0;
	expiry = strtoll(token, &end, 10);
	if (errno || end == token || *end != '.' || strlen(end + 1) != 64)
		return false;
	if (expiry < (long long)time(NULL) || expiry > (long long)time(NULL) + CSRF_TTL_S)
		return false;
	if (csrf_mac(session, expiry, mac) < 0)
		return false;
	for (i = 0; i < 64; i++)
		diff |= (unsigned char)(mac[i] ^ end[1 + i]);
	return diff == 0;
}

/* ---- metrics -------------------------------------------------------------- */

const char *const route_names[ROUTE_OTHER + 1] = { "login", "healthz", "metrics", "static", "other" };

static const unsigned status_codes[M_STATUS_MAX - 1] = { 200, 400, 401, 403, 404, 405, 503 };

unsigned metrics_status_slot(unsigned status)
{
	unsigned i;

	for (i = 0; i < M_STATUS_MAX - 1; i++)
		if (status_codes[i] == status)
			return i;
	return M_STATUS_MAX - 1;
}

static int render_front(struct buf *b, const struct https_metrics *m)
{
	unsigned r, s;
	int ret;

	ret = buf_printf(b, "# HELP dirbridge_http_requests_total HTTP requests by route and status.\n"
			 "# TYPE dirbridge_http_requests_total counter\n");
	for (r = 0; r <= ROUTE_OTHER && ret == 0; r++)
		for (s = 0; s < M_STATUS_MAX && ret == 0; s++) {
			char code[8];

			if (s < M_STATUS_MAX - 1)
				snprintf(code, sizeof(code), "%u", status_codes[s]);
			else
				snprintf(code, sizeof(code), "other");
			ret = buf_printf(b, "dirbridge_http_requests_total{route=\"%s\",status=\"%s\"} %llu\n",
					 route_names[r], code, (unsigned long long)m->requests[r][s]);
		}
	if (ret == 0)
		ret = buf_printf(b,
			"# HELP dirbridge_logins_total Login attempts by method and result.\n"
			"# TYPE dirbridge_logins_total counter\n"
			"dirbridge_logins_total{method=\"certificate\",result=\"success\"} %llu\n"
			"dirbridge_logins_total{method=\"certificate\",result=\"failure\"} %llu\n"
			"dirbridge_logins_total{method=\"password\",result=\"success\"} %llu\n"
			"dirbridge_logins_total{method=\"password\",result=\"failure\"} %llu\n"
			"# HELP dirbridge_tls_handshakes_total TLS handshakes by result.\n"
			"# TYPE dirbridge_tls_handshakes_total counter\n"
			"dirbridge_tls_handshakes_total{result=\"success\"} %llu\n"
			"dirbridge_tls_handshakes_total{result=\"failure\"} %llu\n"
			"dirbridge_tls_handshakes_total{result=\"resumed\"} %llu\n"
			"# HELP dirbridge_http_connections_closed_total Connections closed by the server early.\n"
			"# TYPE dirbridge_http_connections_closed_total counter\n"
			"dirbridge_http_connections_closed_total{reason=\"evicted\"} %llu\n"
			"dirbridge_http_connections_closed_total{reason=\"timeout\"} %llu\n"
			"dirbridge_http_connections_closed_total{reason=\"bad_request\"} %llu\n"
			"# HELP dirbridge_http_open_connections Open front-facing connections.\n"
			"# TYPE dirbridge_http_open_connections gauge\n"
			"dirbridge_http_open_connections %llu\n"
			"# HELP dirbridge_login_refusals_total Logins refused before any directory bind.\n"
			"# TYPE dirbridge_login_refusals_total counter\n"
			"dirbridge_login_refusals_total{reason=\"max_failures_per_ip\"} %llu\n"
			"dirbridge_login_refusals_total{reason=\"lockout_guard\"} %llu\n"
			"# HELP dirbridge_login_account_state_hidden_total Account states answered as invalid_credentials.\n"
			"# TYPE dirbridge_login_account_state_hidden_total counter\n"
			"dirbridge_login_account_state_hidden_total %llu\n"
			"# HELP dirbridge_throttle_addresses Client addresses with failed logins on record.\n"
			"# TYPE dirbridge_throttle_addresses gauge\n"
			"dirbridge_throttle_addresses %llu\n",
			(unsigned long long)m->logins_cert_ok, (unsigned long long)m->logins_cert_fail,
			(unsigned long long)m->logins_pw_ok, (unsigned long long)m->logins_pw_fail,
			(unsigned long long)m->handshakes_ok, (unsigned long long)m->handshakes_fail,
			(unsigned long long)m->handshakes_resumed, (unsigned long long)m->evicted,
			(unsigned long long)m->timeouts, (unsigned long long)m->bad_requests,
			(unsigned long long)m->open_conns, (unsigned long long)m->logins_pw_throttled,
			(unsigned long long)m->guard_refused, (unsigned long long)m->guard_hidden,
			(unsigned long long)m->ip_keys);
	return ret;
}

int buf_label(struct buf *b, const char *text)
{
	int ret = 0;

	for (; *text && ret == 0; text++) {
		switch (*text) {
		case '\\':
			ret = buf_add(b, "\\\\", 2);
			break;
		case '"':
			ret = buf_add(b, "\\\"", 2);
			break;
		case '\n':
			ret = buf_add(b, "\\n", 2);
			break;
		default:
			ret = buf_add(b, text, 1);
			break;
		}
	}
	return ret;
}

static int head(struct buf *b, const char *name, const char *type, const char *help)
{
	return buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* NAME{server="URL"[,operation="OP"]} with the URL escaped: it is config input. */
static int server_series(struct buf *b, const char *name, const char *server, const char *op)
{
	int ret = buf_printf(b, "%s{server=\"", name);

	if (ret == 0)
		ret = buf_label(b, server);
	if (ret == 0 && op)
		ret = buf_printf(b, "\",operation=\"%s", op);
	return ret == 0 ? buf_add(b, "\"}", 2) : ret;
}

static int render_tls(struct buf *b, const struct https_metrics *m)
{
	int ret = head(b, "dirbridge_tls_handshake_failures_total", "counter",
		       "Failed TLS handshakes on the front by reason.");

	for (unsigned i = 0; i < TLS_FAIL_COUNT && ret == 0; i++)
		ret = buf_printf(b, "dirbridge_tls_handshake_failures_total{reason=\"%s\"} %llu\n",
				 tls_fail_names[i], (unsigned long long)m->handshake_fail_by[i]);
	if (ret == 0)
		ret = buf_printf(b, "# HELP dirbridge_http_connections_accepted_total Front connections accepted.\n"
				 "# TYPE dirbridge_http_connections_accepted_total counter\n"
				 "dirbridge_http_connections_accepted_total %llu\n",
				 (unsigned long long)m->accepted);
	return ret;
}

static int render_histogram(struct buf *b, const struct dir_server_stats *sv, size_t n)
{
	static const char name[] = "dirbridge_directory_operation_duration_seconds";
	int ret = head(b, name, "histogram", "Directory operations by server and kind, "
		       "from sending to the final answer.");

	for (size_t i = 0; i < n && ret == 0; i++)
		for (unsigned op = 0; op < DIR_OP_COUNT && ret == 0; op++) {
			const struct dir_op_stats *o = &sv[i].op[op];
			uint64_t cum = 0;

			for (unsigned k = 0; k <= DIR_LATENCY_BUCKETS && ret == 0; k++) {
				cum += o->bucket[k];
				ret = buf_printf(b, "%s_bucket{server=\"", name);
				if (ret == 0)
					ret = buf_label(b, sv[i].name);
				if (ret == 0 && k < DIR_LATENCY_BUCKETS)
					ret = buf_printf(b, "\",operation=\"%s\",le=\"%g\"} %llu\n",
							 dir_op_names[op], dir_latency_bounds[k],
							 (unsigned long long)cum);
				else if (ret == 0)
					ret = buf_printf(b, "\",operation=\"%s\",le=\"+Inf\"} %llu\n",
							 dir_op_names[op], (unsigned long long)cum);
			}
			if (ret == 0)
				ret = server_series(b, "dirbridge_directory_operation_duration_seconds_sum",
						    sv[i].name, dir_op_names[op]);
			if (ret == 0)
				ret = buf_printf(b, " %.6f\n", (double)o->sum_us / 1e6);
			if (ret == 0)
				ret = server_series(b, "dirbridge_directory_operation_duration_seconds_count",
						    sv[i].name, dir_op_names[op]);
			if (ret == 0)
				ret = buf_printf(b, " %llu\n", (unsigned long long)o->count);
		}
	return ret;
}

static int render_dir(struct buf *b, const struct metrics_view *v)
{
	const struct dir_server_stats *sv = v->servers;
	int ret = render_histogram(b, sv, v->n_servers);

	if (ret == 0)
		ret = head(b, "dirbridge_directory_errors_total", "counter",
			   "Directory answers other than success (a refused user password is not one).");
	for (size_t i = 0; i < v->n_servers && ret == 0; i++)
		for (unsigned op = 0; op < DIR_OP_COUNT && ret == 0; op++) {
			ret = server_series(b, "dirbridge_directory_errors_total", sv[i].name,
					    dir_op_names[op]);
			if (ret == 0)
				ret = buf_printf(b, " %llu\n", (unsigned long long)sv[i].op[op].errors);
		}
	if (ret == 0)
		ret = head(b, "dirbridge_directory_connection_failures_total", "counter",
			   "Directory connections lost or refused, by server.");
	for (size_t i = 0; i < v->n_servers && ret == 0; i++) {
		ret = server_series(b, "dirbridge_directory_connection_failures_total", sv[i].name, NULL);
		if (ret == 0)
			ret = buf_printf(b, " %llu\n", (unsigned long long)sv[i].conn_failures);
	}
	if (ret == 0)
		ret = head(b, "dirbridge_directory_server_in_use", "gauge",
			   "1 for the server the service connections use, else 0.");
	for (size_t i = 0; i < v->n_servers && ret == 0; i++) {
		ret = server_series(b, "dirbridge_directory_server_in_use", sv[i].name, NULL);
		if (ret == 0)
			ret = buf_printf(b, " %d\n", sv[i].in_use ? 1 : 0);
	}
	if (ret == 0)
		ret = head(b, "dirbridge_directory_server_up", "gauge",
			   "0 while a server is marked down (waiting to be retried), else 1.");
	for (size_t i = 0; i < v->n_servers && ret == 0; i++) {
		ret = server_series(b, "dirbridge_directory_server_up", sv[i].name, NULL);
		if (ret == 0)
			ret = buf_printf(b, " %d\n", sv[i].down ? 0 : 1);
	}
	if (ret == 0 && v->dir)
		ret = buf_printf(b,
			"# HELP dirbridge_directory_failovers_total Moves of the service pool to a less preferred server.\n"
			"# TYPE dirbridge_directory_failovers_total counter\n"
			"dirbridge_directory_failovers_total %llu\n"
			"# HELP dirbridge_directory_timeouts_total Directory requests that ran out of timeout_ms.\n"
			"# TYPE dirbridge_directory_timeouts_total counter\n"
			"dirbridge_directory_timeouts_total %llu\n"
			"# HELP dirbridge_directory_user_binds_total User binds sent, and those on a kept connection.\n"
			"# TYPE dirbridge_directory_user_binds_total counter\n"
			"dirbridge_directory_user_binds_total{connection=\"any\"} %llu\n"
			"dirbridge_directory_user_binds_total{connection=\"kept\"} %llu\n",
			(unsigned long long)v->dir->failovers, (unsigned long long)v->dir->timeouts,
			(unsigned long long)v->dir->user_binds,
			(unsigned long long)v->dir->user_binds_reused);
	return ret;
}

static int render_hub(struct buf *b, const struct agent_tunnel_stats *t)
{
	int ret = head(b, "dirbridge_hub_link_state", "gauge",
		       "1 for the state the link to the hub is in, else 0.");

	for (unsigned i = 0; i < AGENT_TUNNEL_STATES && ret == 0; i++)
		ret = buf_printf(b, "dirbridge_hub_link_state{state=\"%s\"} %d\n",
				 agent_tunnel_state_names[i],
				 strcmp(agent_tunnel_state_names[i], t->state_name) == 0 ? 1 : 0);
	if (ret == 0)
		ret = buf_printf(b,
			"# HELP dirbridge_hub_link_opens_total Links to the hub that opened.\n"
			"# TYPE dirbridge_hub_link_opens_total counter\n"
			"dirbridge_hub_link_opens_total %llu\n"
			"# HELP dirbridge_hub_reconnects_total Dials to the hub after the first.\n"
			"# TYPE dirbridge_hub_reconnects_total counter\n"
			"dirbridge_hub_reconnects_total %llu\n"
			"# HELP dirbridge_hub_requests_in_flight Hub requests at the directory now.\n"
			"# TYPE dirbridge_hub_requests_in_flight gauge\n"
			"dirbridge_hub_requests_in_flight %llu\n"
			"# HELP dirbridge_hub_busy_refusals_total Hub requests refused as busy (too many in flight).\n"
			"# TYPE dirbridge_hub_busy_refusals_total counter\n"
			"dirbridge_hub_busy_refusals_total %llu\n",
			(unsigned long long)t->opens, (unsigned long long)t->reconnects,
			(unsigned long long)t->inflight, (unsigned long long)t->busy);
	return ret;
}

static double days_left(int64_t when, int64_t now)
{
	return (double)(when - now) / 86400.0;
}

static int render_expiry(struct buf *b, const struct tls_server_expiry *e, int64_t now)
{
	int ret = buf_printf(b,
		"# HELP dirbridge_front_certificate_expiry_days Days until the front certificate expires (negative: expired).\n"
		"# TYPE dirbridge_front_certificate_expiry_days gauge\n"
		"dirbridge_front_certificate_expiry_days %.3f\n",
		days_left(e->cert_not_after, now));

	if (ret == 0)
		ret = head(b, "dirbridge_client_ca_expiry_days", "gauge",
			   "Days until each client CA certificate expires, by subject.");
	for (size_t i = 0; i < e->n_cas && ret == 0; i++) {
		ret = buf_add(b, "dirbridge_client_ca_expiry_days{subject=\"", 41);
		if (ret == 0)
			ret = buf_label(b, e->cas[i].subject);
		if (ret == 0)
			ret = buf_printf(b, "\"} %.3f\n", days_left(e->cas[i].not_after, now));
	}
	if (ret == 0 && e->crl_next_update)
		ret = buf_printf(b,
			"# HELP dirbridge_crl_next_update_days Days until the CRL's nextUpdate (negative: stale).\n"
			"# TYPE dirbridge_crl_next_update_days gauge\n"
			"dirbridge_crl_next_update_days %.3f\n",
			days_left(e->crl_next_update, now));
	return ret;
}

int metrics_render(struct buf *b, const struct metrics_view *v)
{
	int ret = render_front(b, v->m);

	if (ret == 0)
		ret = render_tls(b, v->m);
	if (ret == 0)
		ret = render_dir(b, v);
	if (ret == 0 && v->hub)
		ret = render_hub(b, v->hub);
	if (ret == 0 && v->expiry)
		ret = render_expiry(b, v->expiry, v->now);
	return ret;
}
