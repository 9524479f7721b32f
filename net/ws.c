/*
 * WebSocket over a net_stream's TLS session: the wslay glue the tunnel (a
 * client) and the hub (a server) share, and the pure parts of the RFC 6455
 * upgrade both sides check (the key, the accept hash, header tokens).
 *
 * Frames flow TLS -> (the early plaintext first) -> wslay -> on_msg, and
 * wslay -> TLS -> the stream, which writes them once net_ws_flush() returns.
 * Sending stops while out_high bytes are unwritten and resumes when the owner
 * calls net_ws_flush() again (from on_drain), so output stays bounded however
 * much the owner queues; the owner bounds what it queues (net_ws_queued()).
 */
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wslay/wslay.h>

#include "net/net.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

struct net_ws {
	struct net_stream *s;
	wslay_event_context_ptr ctx;
	struct net_ws_conf conf;
	uint8_t *early;		/* plaintext that came with the upgrade */
	size_t early_off, early_len;
	bool busy;		/* inside wslay_event_recv/send: do not re-enter */
	char why[160];
};

/* ---- wslay callbacks ------------------------------------------------------ */

static ssize_t ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *ud)
{
	struct net_ws *ws = ud;
	struct tls_sess *tls = net_stream_tls(ws->s);
	ssize_t n;

	(void)flags;
	if (ws->early_off < ws->early_len) {
		n = (ssize_t)(ws->early_len - ws->early_off);
		if ((size_t)n > len)
			n = (ssize_t)len;
		memcpy(buf, ws->early + ws->early_off, (size_t)n);
		ws->early_off += (size_t)n;
		return n;
	}
	n = tls_recv(tls, buf, len);
	if (n > 0)
		return n;
	if (n == 0)
		snprintf(ws->why, sizeof(ws->why), "%s closed the connection", ws->conf.peer_name);
	else if (n != TLS_E_AGAIN)
		snprintf(ws->why, sizeof(ws->why), "TLS: %s", tls_last_error(tls));
	wslay_event_set_error(ctx, n == TLS_E_AGAIN ? WSLAY_ERR_WOULDBLOCK : WSLAY_ERR_CALLBACK_FAILURE);
	return -1;
}

static ssize_t ws_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
		       void *ud)
{
	struct net_ws *ws = ud;
	ssize_t n;

	(void)flags;
	/* Checked before TLS sees the data: a record TLS took must be written
	 * whole, so the bound is enforced here, between records. */
	if (net_stream_out_pending(ws->s) >= ws->conf.out_high) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	n = tls_send(net_stream_tls(ws->s), data, len);
	if (n > 0)
		return n;
	if (n != TLS_E_AGAIN)
		snprintf(ws->why, sizeof(ws->why), "TLS: %s", tls_last_error(net_stream_tls(ws->s)));
	wslay_event_set_error(ctx, n == TLS_E_AGAIN ? WSLAY_ERR_WOULDBLOCK : WSLAY_ERR_CALLBACK_FAILURE);
	return -1;
}

static int ws_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *ud)
{
	(void)ctx;
	(void)ud;
	return gnutls_rnd(GNUTLS_RND_NONCE, buf, len) < 0 ? -1 : 0;
}

static void ws_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *m,
		   void *ud)
{
	struct net_ws *ws = ud;
	struct net_ws_msg msg = {
		.op = (enum net_ws_op)m->opcode,
		.data = m->msg,
		.len = m->msg_length,
		.status = m->status_code,
	};

	(void)ctx;
	if (ws->conf.on_msg)
		ws->conf.on_msg(ws->conf.owner, &msg);
	/* A message may carry passwords; wslay frees it without wiping. */
	if (m->msg_length)
		explicit_bzero((uint8_t *)(uintptr_t)m->msg, m->msg_length);
}

/* ---- the WebSocket ---------------------------------------------------------- */

int net_ws_new(struct net_stream *s, const struct net_ws_conf *conf, const void *early,
	       size_t early_len, struct net_ws **out)
{
	static const struct wslay_event_callbacks cbs = {
		.recv_callback = ws_recv,
		.send_callback = ws_send,
		.genmask_callback = ws_genmask,
		.on_msg_recv_callback = ws_msg,
	};
	struct net_ws *ws = calloc(1, sizeof(*ws));
	int rc;

	if (!ws)
		return NET_E_NOMEM;
	ws->s = s;
	ws->conf = *conf;
	if (!ws->conf.peer_name)
		ws->conf.peer_name = "peer";
	if (early_len) {
		ws->early = malloc(early_len);
		if (!ws->early) {
			free(ws);
			return NET_E_NOMEM;
		}
		memcpy(ws->early, early, early_len);
		ws->early_len = early_len;
	}
	rc = conf->server ? wslay_event_context_server_init(&ws->ctx, &cbs, ws)
			  : wslay_event_context_client_init(&ws->ctx, &cbs, ws);
	if (rc != 0) {
		net_ws_free(ws);
		return NET_E_NOMEM;
	}
	wslay_event_config_set_max_recv_msg_length(ws->ctx, conf->max_msg);
	*out = ws;
	return 0;
}

void net_ws_free(struct net_ws *ws)
{
	if (!ws)
		return;
	if (ws->ctx)
		wslay_event_context_free(ws->ctx);
	if (ws->early) {
		explicit_bzero(ws->early, ws->early_len);
		free(ws->early);
	}
	free(ws);
}

int net_ws_flush(struct net_ws *ws)
{
	int rc;

	if (ws->busy)
		return 0;
	ws->busy = true;
	while (wslay_event_want_write(ws->ctx) &&
	       net_stream_out_pending(ws->s) < ws->conf.out_high) {
		size_t before = net_stream_out_pending(ws->s);

		if (wslay_event_send(ws->ctx) != 0) {
			ws->busy = false;
			if (!ws->why[0])
				snprintf(ws->why, sizeof(ws->why), "send error");
			return NET_E_WS;
		}
		if (net_stream_out_pending(ws->s) == before)
			break;
	}
	ws->busy = false;
	rc = net_stream_flush(ws->s);
	if (rc < 0) {
		snprintf(ws->why, sizeof(ws->why), "write: %s", net_strerror(rc));
		return NET_E_WS;
	}
	return 0;
}

int net_ws_pump(struct net_ws *ws)
{
	if (ws->busy)
		return 0;
	if (wslay_event_want_read(ws->ctx)) {
		ws->busy = true;
		if (wslay_event_recv(ws->ctx) != 0) {
			ws->busy = false;
			if (!ws->why[0])
				snprintf(ws->why, sizeof(ws->why), "receive error");
			return NET_E_WS;
		}
		ws->busy = false;
	}
	return net_ws_flush(ws);
}

int net_ws_send_text(struct net_ws *ws, const char *text, size_t len)
{
	struct wslay_event_msg m = { WSLAY_TEXT_FRAME, (const uint8_t *)text, len };

	return wslay_event_queue_msg(ws->ctx, &m) == 0 ? 0 : NET_E_WS;
}

int net_ws_ping(struct net_ws *ws)
{
	struct wslay_event_msg m = { WSLAY_PING, NULL, 0 };

	return wslay_event_queue_msg(ws->ctx, &m) == 0 ? 0 : NET_E_WS;
}

void net_ws_close(struct net_ws *ws, enum net_ws_close code)
{
	wslay_event_queue_close(ws->ctx, (uint16_t)code, NULL, 0);
}

void net_ws_fail(struct net_ws *ws, enum net_ws_close code, const char *why)
{
	if (why)
		snprintf(ws->why, sizeof(ws->why), "%s", why);
	wslay_event_queue_close(ws->ctx, (uint16_t)code, NULL, 0);
	wslay_event_shutdown_read(ws->ctx);
}

bool net_ws_done(const struct net_ws *ws)
{
	wslay_event_context_ptr ctx = ws->ctx;

	return !wslay_event_want_read(ctx) && !wslay_event_want_write(ctx);
}

size_t net_ws_queued(const struct net_ws *ws)
{
	return wslay_event_get_queued_msg_length(ws->ctx);
}

const char *net_ws_why(const struct net_ws *ws)
{
	return ws->why;
}

/* ---- the upgrade's pure parts ------------------------------------------------ */

bool net_ws_key_valid(const char *key, size_t len)
{
	gnutls_datum_t in = { (unsigned char *)(uintptr_t)key, (unsigned)len }, out = { NULL, 0 };
	bool ok;

	if (!key || len != NET_WS_KEY_LEN || gnutls_base64_decode2(&in, &out) < 0)
		return false;
	ok = out.size == 16;
	gnutls_free(out.data);
	return ok;
}

int net_ws_key_new(char key[NET_WS_KEY_LEN + 1])
{
	uint8_t nonce[16];
	gnutls_datum_t d = { nonce, sizeof(nonce) }, b64 = { NULL, 0 };
	int rc = NET_E_IO;

	if (gnutls_rnd(GNUTLS_RND_NONCE, nonce, sizeof(nonce)) == 0 &&
	    gnutls_base64_encode2(&d, &b64) == 0 && b64.size == NET_WS_KEY_LEN) {
		memcpy(key, b64.data, NET_WS_KEY_LEN);
		key[NET_WS_KEY_LEN] = '\0';
		rc = 0;
	}
	gnutls_free(b64.data);
	return rc;
}

int net_ws_accept(const char *key, size_t len, char out[NET_WS_ACCEPT_SIZE])
{
	char in[NET_WS_KEY_LEN + sizeof(WS_GUID)];
	uint8_t digest[20];
	gnutls_datum_t d = { digest, sizeof(digest) }, b64 = { NULL, 0 };
	int rc = NET_E_IO;

	out[0] = '\0';
	if (!net_ws_key_valid(key, len))
		return NET_E_INVAL;
	memcpy(in, key, NET_WS_KEY_LEN);
	memcpy(in + NET_WS_KEY_LEN, WS_GUID, sizeof(WS_GUID) - 1);
	if (gnutls_hash_fast(GNUTLS_DIG_SHA1, in, NET_WS_KEY_LEN + sizeof(WS_GUID) - 1, digest) == 0 &&
	    gnutls_base64_encode2(&d, &b64) == 0 && b64.size == NET_WS_ACCEPT_SIZE - 1) {
		memcpy(out, b64.data, b64.size);
		out[b64.size] = '\0';
		rc = 0;
	}
	gnutls_free(b64.data);
	return rc;
}

bool net_http_has_token(const char *list, const char *token)
{
	size_t tlen = strlen(token), n;
	const char *p = list;

	while (*p) {
		p += strspn(p, ", \t");
		n = strcspn(p, ", \t");
		if (n && n == tlen && strncasecmp(p, token, n) == 0)
			return true;
		p += n;
	}
	return false;
}
