/*
 * The troubleshooter's report: items in check order, rendered as one line each
 * or as JSON.  Pure, so the unit tests pin the formats the documentation and
 * scripts rely on.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "tools/check/check.h"

const char *chk_status_name(enum chk_status st)
{
	return st == CHK_OK ? "ok" : st == CHK_FAIL ? "fail" : "skip";
}

int chk_add(struct chk_report *r, const char *name, enum chk_status st, const char *fix,
	    const char *fmt, ...)
{
	struct chk_item *it;
	va_list ap;

	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 32;
		struct chk_item *n = realloc(r->items, cap * sizeof *n);

		if (!n)
			return -ENOMEM;
		r->items = n;
		r->cap = cap;
	}
	it = &r->items[r->n++];
	memset(it, 0, sizeof *it);
	snprintf(it->name, sizeof it->name, "%s", name);
	it->status = st;
	va_start(ap, fmt);
	vsnprintf(it->detail, sizeof it->detail, fmt, ap);
	va_end(ap);
	/* A failure without a fix would leave the administrator guessing. */
	if (st == CHK_FAIL)
		snprintf(it->fix, sizeof it->fix, "%s", fix && *fix ? fix : "see docs/check.md");
	return 0;
}

void chk_report_free(struct chk_report *r)
{
	free(r->items);
	memset(r, 0, sizeof *r);
}

int chk_line(const struct chk_item *it, char *buf, size_t len)
{
	switch (it->status) {
	case CHK_OK:
		return snprintf(buf, len, "ok   %s: %s", it->name, it->detail);
	case CHK_FAIL:
		return snprintf(buf, len, "FAIL %s: %s; fix: %s", it->name, it->detail, it->fix);
	default:
		return snprintf(buf, len, "skip %s: %s", it->name, it->detail);
	}
}

void chk_print_text(const struct chk_report *r, FILE *out)
{
	char line[sizeof r->items->name + sizeof r->items->detail + sizeof r->items->fix + 32];

	for (size_t i = 0; i < r->n; i++) {
		chk_line(&r->items[i], line, sizeof line);
		fprintf(out, "%s\n", line);
	}
}

json_t *chk_json(const struct chk_report *r)
{
	json_t *arr = json_array(), *root = json_object();

	if (!arr || !root)
		goto fail;
	for (size_t i = 0; i < r->n; i++) {
		const struct chk_item *it = &r->items[i];
		json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "name", it->name, "status",
				      chk_status_name(it->status), "detail", it->detail, "fix",
				      it->fix);

		if (!o || json_array_append_new(arr, o) < 0)
			goto fail;
	}
	if (json_object_set_new(root, "checks", arr) < 0) {
		arr = NULL;
		goto fail;
	}
	return root;
fail:
	json_decref(arr);
	json_decref(root);
	return NULL;
}

int chk_exit_status(const struct chk_report *r)
{
	if (r->config_unusable)
		return 2;
	for (size_t i = 0; i < r->n; i++)
		if (r->items[i].status == CHK_FAIL)
			return 1;
	return 0;
}

long chk_days_left(int64_t t, int64_t now)
{
	int64_t d = t - now;

	/* Floor division: one second past notAfter is day -1, not day 0. */
	return (long)(d >= 0 ? d / 86400 : -((-d + 86399) / 86400));
}

int64_t chk_skew(int64_t theirs, int64_t before, int64_t after)
{
	if (theirs < before)
		return before - theirs;
	if (theirs > after)
		return theirs - after;
	return 0;
}
