/*
 * The chosen headers of one HTTP message, collected from http-parser's
 * field/value callbacks into fixed buffers: the upgrade request the hub reads
 * and the upgrade response the tunnel reads.  Pure; no I/O.
 */
#include <string.h>
#include <strings.h>

#include "net/net.h"

void net_hdrs_init(struct net_hdrs *h, const char *const *names, size_t n_names, bool no_repeat)
{
	memset(h, 0, sizeof(*h));
	h->names = names;
	h->n_names = n_names < NET_HDR_MAX ? n_names : NET_HDR_MAX;
	h->no_repeat = no_repeat;
	h->cur = -1;
}

int net_hdrs_field(struct net_hdrs *h, const char *at, size_t len)
{
	if (h->in_value) {
		h->in_value = false;
		h->field_len = 0;
		h->field_long = false;
	}
	if (len > sizeof(h->field) - 1 - h->field_len) {
		h->field_long = true;
		return 0;
	}
	memcpy(h->field + h->field_len, at, len);
	h->field_len += len;
	return 0;
}

int net_hdrs_value(struct net_hdrs *h, const char *at, size_t len)
{
	size_t i;

	if (!h->in_value) {
		h->in_value = true;
		h->cur = -1;
		h->field[h->field_len] = '\0';
		for (i = 0; i < h->n_names && !h->field_long; i++) {
			if (strcasecmp(h->field, h->names[i]) == 0) {
				if (h->seen[i] && h->no_repeat)
					return 1;
				h->seen[i] = true;
				h->cur = (int)i;
			}
		}
	}
	if (h->cur < 0)
		return 0;
	if (len > sizeof(h->val[0]) - 1 - h->val_len[h->cur])
		return 1;
	memcpy(h->val[h->cur] + h->val_len[h->cur], at, len);
	h->val_len[h->cur] += len;
	h->val[h->cur][h->val_len[h->cur]] = '\0';
	return 0;
}
