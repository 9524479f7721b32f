/*
 * Fuzzes the sign-in form's input handling in agent/http.c: urlencoded form and
 * query decoding (form_get), session id screening, CSRF tokens and HTML
 * escaping.  Besides the sanitizers, it checks properties a bug would break:
 * a decoded value is never longer than its encoding and holds no NUL, a token
 * made for a session is accepted for it and for no other, and escaped HTML has
 * no markup character left.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/https.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const names[] = { "session", "username", "password", "csrf", "" };

static void check_form(const char *form, size_t len)
{
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char *v = NULL;
		size_t n = 0;
		int rc = form_get(form, len, names[i], &v, &n);

		if (rc == 0) {
			if (!v || n > len || strlen(v) != n)
				abort();
			free(v);
		} else if (v) {
			abort();	/* an error must leave nothing behind */
		}
	}
}

static void check_csrf(const char *session, const char *token)
{
	char made[128], other[200];

	if (csrf_make(session, made, sizeof(made)) != 0)
		return;
	if (!csrf_check(session, made))
		abort();
	snprintf(other, sizeof(other), "%sx", session);
	if (csrf_check(other, made))
		abort();
	/* Without the key, an input can only pass if it is the token itself (or
	 * the same expiry written differently, which strtoll allows). */
	if (csrf_check(session, token) && strcmp(strchr(token, '.'), strchr(made, '.')) != 0)
		abort();
}

static void check_html(const char *text)
{
	struct buf b = { 0 };

	if (buf_html(&b, text) != 0)
		abort();
	if (b.p && strpbrk(b.p, "<>\"'"))
		abort();
	buf_wipe(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	char *copy, *text, *nl;

	if (!ready) {
		if (csrf_init() != 0)
			abort();
		ready = 1;
	}
	/* An exact-size copy, so a read past the end is caught. */
	copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	check_form(copy, size);
	free(copy);

	/* As strings: the first line is a session id, the rest a token. */
	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	nl = strchr(text, '\n');
	if (nl)
		*nl = '\0';
	(void)session_id_valid(text);
	check_csrf(text, nl ? nl + 1 : "");
	check_html(text);
	free(text);
	return 0;
}
