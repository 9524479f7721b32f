/*
 * ldapdrive: drives the ldap/ module on a libuv loop, for integration tests.
 *
 *   ldapdrive -c agent.ini auth USER          password: first line of stdin
 *   ldapdrive -c agent.ini lookup USER
 *   ldapdrive -c agent.ini passwd USER        old and new password: two stdin lines
 *   ldapdrive -c agent.ini search QUERY LIMIT
 *   ldapdrive -c agent.ini groups LIMIT
 *   ldapdrive -c agent.ini users LIMIT [FILTER]
 *   ldapdrive -c agent.ini many N USER        N concurrent authentications
 *   ldapdrive -c agent.ini loop SECONDS USER  one authentication every 50 ms
 *   ldapdrive -c agent.ini close MS N USER    N authentications, dir_close() after
 *                                             MS ms: every callback must come once,
 *                                             before dir_close()'s own
 *   ldapdrive -c agent.ini seq USER...        one authentication after the other on
 *                                             one struct dir, USER i with stdin line
 *                                             i: one JSON line each (user, code, ms),
 *                                             then the guard's counters and
 *                                             dir_stats(); "@sleep=MS" and
 *                                             "@wait=PATH" between users pause
 *                                             (see seq_pause)
 *   ldapdrive -c agent.ini mix ROUNDS USER...     every USER (stdin line i its
 *                                             password) logs in ROUNDS times, all
 *                                             USERs at once, each next login when
 *                                             its last answered: one JSON line per
 *                                             answer (user, code, dn, groups),
 *                                             then dir_stats()
 *   ldapdrive -c agent.ini bench SECONDS CONC USER  keeps CONC authentications in
 *                                             flight for SECONDS (after a 1 s
 *                                             warm-up): logins/s and the counts
 *
 * Passwords come from stdin only, never argv.  Output is JSON on stdout (one
 * object, or one per line for `loop`); the module's log goes to stderr.
 * Exit status: 0 every request succeeded, 1 a request returned an error code,
 * 2 usage or configuration error.
 */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "config/cfg.h"
#include "ldap/dir.h"
#include "tls/tls.h"

enum cmd { CMD_AUTH, CMD_LOOKUP, CMD_PASSWD, CMD_SEARCH, CMD_GROUPS, CMD_USERS, CMD_MANY, CMD_LOOP, CMD_CLOSE, CMD_SEQ, CMD_BENCH, CMD_MIX };

struct mix_slot {
	struct drive *dr;
	size_t i;		/* index into seq_users */
	unsigned long left;	/* logins still to start */
};

struct drive {
	uv_loop_t loop;
	uv_timer_t timer;
	struct dir *dir;
	enum cmd cmd;
	const char *user;
	char *pw[2];
	size_t pw_len[2];
	int status;		/* exit status so far */
	/* many / loop */
	json_t *counts;		/* code -> count */
	unsigned long total, pending, wanted;
	uint64_t start_ms, end_ms;
	bool timer_open;
	bool closing;
	bool closed;		/* dir_close()'s callback ran */
	unsigned long late;	/* callbacks after it: a contract violation */
	unsigned long close_ms;
	/* seq */
	char **seq_users;
	char **seq_pw;
	size_t *seq_len;
	size_t seq_n, seq_i;
	uint64_t seq_t0, wait_t0;
	/* mix */
	struct mix_slot *slots;
	unsigned long rounds;
	/* bench */
	unsigned long conc;
	uint64_t bench_t0, bench_end;
	unsigned long bench_done, bench_ok;
};

static int usage(void)
{
	fputs("usage: ldapdrive -c agent.ini auth USER | lookup USER | passwd USER |\n"
	      "       search QUERY LIMIT | groups LIMIT | users LIMIT [FILTER] |\n"
	      "       many N USER | loop SECONDS USER | close MS N USER | seq USER... |\n"
	      "       bench SECONDS CONC USER | mix ROUNDS USER...\n"
	      "passwords are read from stdin, one per line\n", stderr);
	return 2;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Reads one line of stdin without its newline; an empty line is an empty
 * password (the module must refuse it), end of input is an error. */
static int read_secret(char **out, size_t *len)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, stdin);

	if (n < 0) {
		free(line);
		return -EINVAL;
	}
	if (n > 0 && line[n - 1] == '\n')
		line[--n] = '\0';
	*out = line;
	*len = (size_t)n;
	return 0;
}

static void wipe(char *s, size_t len)
{
	if (s) {
		explicit_bzero(s, len);
		free(s);
	}
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

/* Groups are sorted so scripts can compare them as one string. */
static json_t *names_json(char *const *names, size_t n)
{
	json_t *a = json_array();
	char **sorted;

	if (n == 0 || !names)
		return a;
	sorted = calloc(n, sizeof *sorted);
	if (!sorted)
		return a;
	memcpy(sorted, names, n * sizeof *sorted);
	qsort(sorted, n, sizeof *sorted, cmp_str);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, str_or_null(sorted[i]));
	free(sorted);
	return a;
}

static json_t *profile_json(const struct dir_profile *p)
{
	json_t *o = json_object(), *attrs = json_object();

	json_object_set_new(o, "username", str_or_null(p->username));
	json_object_set_new(o, "dn", str_or_null(p->dn));
	json_object_set_new(o, "display_name", str_or_null(p->display_name));
	json_object_set_new(o, "email", str_or_null(p->email));
	json_object_set_new(o, "groups", names_json(p->groups, p->n_groups));
	json_object_set_new(o, "disabled", json_boolean(p->disabled));
	for (size_t i = 0; i < p->n_attrs; i++) {
		json_t *v = json_array();

		for (size_t j = 0; j < p->attrs[i].n_values; j++)
			json_array_append_new(v, str_or_null(p->attrs[i].values[j]));
		json_object_set_new(attrs, p->attrs[i].name ? p->attrs[i].name : "", v);
	}
	json_object_set_new(o, "attrs", attrs);
	return o;
}

static json_t *result_json(int err)
{
	json_t *o = json_object();

	json_object_set_new(o, "ok", json_boolean(err == 0));
	json_object_set_new(o, "code", json_string(err == 0 ? "ok" : dir_code(err)));
	return o;
}

static void emit(json_t *o)
{
	json_dumpf(o, stdout, JSON_COMPACT | JSON_SORT_KEYS);
	fputc('\n', stdout);
	fflush(stdout);
	json_decref(o);
}

static void summary(struct drive *dr);

/* The module's counters (dir_stats), for checks of connection reuse. */
static json_t *stats_json(const struct dir *d)
{
	struct dir_stats st;
	json_t *o = json_object();

	dir_stats(d, &st);
	json_object_set_new(o, "user_conns_opened", json_integer((json_int_t)st.user_conns_opened));
	json_object_set_new(o, "user_binds", json_integer((json_int_t)st.user_binds));
	json_object_set_new(o, "user_binds_reused", json_integer((json_int_t)st.user_binds_reused));
	json_object_set_new(o, "user_conns_expired", json_integer((json_int_t)st.user_conns_expired));
	json_object_set_new(o, "user_conns_stale", json_integer((json_int_t)st.user_conns_stale));
	json_object_set_new(o, "group_searches", json_integer((json_int_t)st.group_searches));
	json_object_set_new(o, "user_conns_idle", json_integer((json_int_t)st.user_conns_idle));
	return o;
}

static void closed(void *arg)
{
	struct drive *dr = arg;

	dr->closed = true;
	if (dr->cmd == CMD_CLOSE) {
		json_t *o = json_object();

		json_object_set_new(o, "summary", json_true());
		json_object_set_new(o, "total", json_integer((json_int_t)dr->total));
		json_object_set_new(o, "pending_at_close", json_integer((json_int_t)dr->pending));
		json_object_set(o, "counts", dr->counts);
		emit(o);
		if (dr->pending || dr->total != dr->wanted)
			dr->status = 1;
	}
}

static void timer_closed(uv_handle_t *h)
{
	(void)h;
}

/* Ends the run: closes the module (which fails anything still pending) and the
 * timer; the loop then runs out of handles. */
static void finish(struct drive *dr)
{
	if (dr->closing)
		return;
	dr->closing = true;
	if (dr->timer_open) {
		uv_timer_stop(&dr->timer);
		uv_close((uv_handle_t *)&dr->timer, timer_closed);
		dr->timer_open = false;
	}
	dir_close(dr->dir, closed, dr);
}

static void count(struct drive *dr, int err)
{
	if (dr->closed) {
		dr->late++;
		dr->status = 1;
		fprintf(stderr, "ldapdrive: a callback came after dir_close() completed\n");
	}
	const char *code = err == 0 ? "ok" : dir_code(err);
	json_t *c = json_object_get(dr->counts, code);

	json_object_set_new(dr->counts, code, json_integer(c ? json_integer_value(c) + 1 : 1));
	dr->total++;
	/* For close, failures are expected; only the contract decides the status. */
	if (err && dr->cmd != CMD_CLOSE)
		dr->status = 1;
}

static void summary(struct drive *dr)
{
	json_t *o = json_object();

	json_object_set_new(o, "summary", json_true());
	json_object_set_new(o, "total", json_integer((json_int_t)dr->total));
	json_object_set(o, "counts", dr->counts);
	json_object_set_new(o, "elapsed_ms", json_integer((json_int_t)(now_ms() - dr->start_ms)));
	json_object_set_new(o, "stats", stats_json(dr->dir));
	emit(o);
}

static void on_profile(void *arg, int err, const struct dir_profile *p)
{
	struct drive *dr = arg;
	json_t *o = result_json(err);

	if (err == 0 && p)
		json_object_set_new(o, "profile", profile_json(p));
	if (err)
		dr->status = 1;
	emit(o);
	finish(dr);
}

static void on_done(void *arg, int err)
{
	struct drive *dr = arg;

	if (err)
		dr->status = 1;
	emit(result_json(err));
	finish(dr);
}

static void on_users(void *arg, int err, const struct dir_profile *users, size_t n)
{
	struct drive *dr = arg;
	json_t *o = result_json(err), *a = json_array();

	for (size_t i = 0; err == 0 && i < n; i++)
		json_array_append_new(a, profile_json(&users[i]));
	json_object_set_new(o, "count", json_integer((json_int_t)(err ? 0 : n)));
	json_object_set_new(o, "users", a);
	if (err)
		dr->status = 1;
	emit(o);
	finish(dr);
}

static void on_names(void *arg, int err, char *const *names, size_t n)
{
	struct drive *dr = arg;
	json_t *o = result_json(err);

	json_object_set_new(o, "count", json_integer((json_int_t)(err ? 0 : n)));
	json_object_set_new(o, "groups", err ? json_array() : names_json(names, n));
	if (err)
		dr->status = 1;
	emit(o);
	finish(dr);
}

static void on_many(void *arg, int err, const struct dir_profile *p)
{
	struct drive *dr = arg;

	(void)p;
	count(dr, err);
	if (--dr->pending == 0 && dr->cmd == CMD_MANY) {
		summary(dr);
		finish(dr);
	}
}

static void loop_tick(uv_timer_t *t);

static void close_tick(uv_timer_t *t)
{
	finish(t->data);
}

static void on_loop(void *arg, int err, const struct dir_profile *p)
{
	struct drive *dr = arg;
	json_t *o = result_json(err);

	(void)p;
	dr->pending--;
	count(dr, err);
	json_object_set_new(o, "t_ms", json_integer((json_int_t)(now_ms() - dr->start_ms)));
	json_object_set_new(o, "seq", json_integer((json_int_t)dr->total));
	json_object_set_new(o, "up", json_boolean(dir_is_up(dr->dir)));
	emit(o);
	if (dr->closing)
		return;
	if (now_ms() >= dr->end_ms) {
		summary(dr);
		finish(dr);
		return;
	}
	uv_timer_start(&dr->timer, loop_tick, 50, 0);
}

static void loop_tick(uv_timer_t *t)
{
	struct drive *dr = t->data;
	int rc;

	rc = dir_authenticate(dr->dir, dr->user, dr->pw[0], dr->pw_len[0], on_loop, dr);
	if (rc == 0) {
		dr->pending++;
		return;
	}
	/* Refused at once: counted like any other answer, and the loop goes on. */
	dr->pending++;
	on_loop(dr, rc, NULL);
}

static void seq_next(struct drive *dr);
static int parse_count(const char *s, unsigned long max, unsigned long *out);

static void seq_tick(uv_timer_t *t)
{
	seq_next(t->data);
}

static void on_seq(void *arg, int err, const struct dir_profile *p)
{
	struct drive *dr = arg;
	json_t *o = result_json(err);
	uint64_t now = uv_hrtime();

	json_object_set_new(o, "user", json_string(dr->seq_users[dr->seq_i]));
	json_object_set_new(o, "ms", json_real((double)(now - dr->seq_t0) / 1e6));
	if (err == 0 && p) {
		json_object_set_new(o, "dn", str_or_null(p->dn));
		json_object_set_new(o, "groups", names_json(p->groups, p->n_groups));
	}
	json_object_set_new(o, "stats", stats_json(dr->dir));
	if (err)
		dr->status = 1;
	emit(o);
	dr->seq_i++;
	uv_timer_start(&dr->timer, seq_tick, 0, 0);
}

/* "@sleep=MS" pauses the sequence; "@wait=PATH" creates PATH.waiting and
 * waits (up to a minute) until PATH exists, so a script can act on the
 * directory between two logins.  Neither takes a stdin line. */
static bool seq_pause(struct drive *dr)
{
	const char *u = dr->seq_users[dr->seq_i];
	unsigned long ms = 0;

	if (!strncmp(u, "@sleep=", 7) && parse_count(u + 7, 600000, &ms) == 0) {
		dr->seq_i++;
		uv_timer_start(&dr->timer, seq_tick, ms, 0);
		return true;
	}
	if (!strncmp(u, "@wait=", 6)) {
		char path[4096];
		FILE *f;

		if (access(u + 6, F_OK) == 0 || (dr->wait_t0 && now_ms() - dr->wait_t0 > 60000)) {
			dr->wait_t0 = 0;
			dr->seq_i++;
			uv_timer_start(&dr->timer, seq_tick, 0, 0);
			return true;
		}
		if (!dr->wait_t0) {
			dr->wait_t0 = now_ms();
			snprintf(path, sizeof(path), "%s.waiting", u + 6);
			if ((f = fopen(path, "w")))
				fclose(f);
		}
		uv_timer_start(&dr->timer, seq_tick, 50, 0);
		return true;
	}
	return false;
}

/* The next attempt starts from the loop, never inside the previous callback. */
static void seq_next(struct drive *dr)
{
	int rc;

	if (dr->seq_i == dr->seq_n) {
		struct dir_guard_stats gs;
		json_t *o = json_object();

		dir_guard_stats(dr->dir, &gs);
		json_object_set_new(o, "summary", json_true());
		json_object_set_new(o, "guard_limit", json_integer(gs.limit));
		json_object_set_new(o, "guard_known", json_boolean(gs.known));
		json_object_set_new(o, "refused", json_integer((json_int_t)gs.refused));
		json_object_set_new(o, "hidden", json_integer((json_int_t)gs.hidden));
		json_object_set_new(o, "stats", stats_json(dr->dir));
		emit(o);
		finish(dr);
		return;
	}
	if (seq_pause(dr))
		return;
	dr->seq_t0 = uv_hrtime();
	rc = dir_authenticate(dr->dir, dr->seq_users[dr->seq_i], dr->seq_pw[dr->seq_i],
			      dr->seq_len[dr->seq_i], on_seq, dr);
	if (rc < 0)
		on_seq(dr, rc, NULL);
}

/* bench: each answer starts the next login at once, so CONC stay in flight.
 * Answers before bench_t0 (the warm-up, which opens the pools) are not counted. */
static void on_bench(void *arg, int err, const struct dir_profile *p);

static void bench_start_one(struct drive *dr)
{
	int rc = dir_authenticate(dr->dir, dr->user, dr->pw[0], dr->pw_len[0], on_bench, dr);

	if (rc == 0)
		dr->pending++;
	else
		count(dr, rc);
}

static void bench_summary(struct drive *dr)
{
	json_t *o = json_object();
	double s = (double)(now_ms() - dr->bench_t0) / 1000.0;

	json_object_set_new(o, "summary", json_true());
	json_object_set_new(o, "concurrency", json_integer((json_int_t)dr->conc));
	json_object_set_new(o, "logins", json_integer((json_int_t)dr->bench_done));
	json_object_set_new(o, "ok", json_integer((json_int_t)dr->bench_ok));
	json_object_set_new(o, "seconds", json_real(s));
	json_object_set_new(o, "logins_per_s", json_real(s > 0 ? (double)dr->bench_done / s : 0));
	json_object_set(o, "counts", dr->counts);
	json_object_set_new(o, "stats", stats_json(dr->dir));
	emit(o);
}

static void on_bench(void *arg, int err, const struct dir_profile *p)
{
	struct drive *dr = arg;
	uint64_t now = now_ms();

	(void)p;
	dr->pending--;
	count(dr, err);
	if (now >= dr->bench_t0 && dr->bench_t0) {
		dr->bench_done++;
		if (err == 0)
			dr->bench_ok++;
	}
	if (dr->closing)
		return;
	if (now >= dr->bench_end) {
		if (dr->pending == 0) {
			bench_summary(dr);
			finish(dr);
		}
		return;
	}
	bench_start_one(dr);
}

/* mix: concurrent logins of several users on one struct dir, each answer
 * checked by the script against the user it was for. */
static void on_mix(void *arg, int err, const struct dir_profile *p);

static void mix_start(struct mix_slot *sl)
{
	struct drive *dr = sl->dr;
	int rc;

	sl->left--;
	dr->pending++;
	rc = dir_authenticate(dr->dir, dr->seq_users[sl->i], dr->seq_pw[sl->i], dr->seq_len[sl->i],
			      on_mix, sl);
	if (rc < 0)
		on_mix(sl, rc, NULL);
}

static void on_mix(void *arg, int err, const struct dir_profile *p)
{
	struct mix_slot *sl = arg;
	struct drive *dr = sl->dr;
	json_t *o = result_json(err);

	json_object_set_new(o, "user", json_string(dr->seq_users[sl->i]));
	if (err == 0 && p) {
		json_object_set_new(o, "dn", str_or_null(p->dn));
		json_object_set_new(o, "username", str_or_null(p->username));
		json_object_set_new(o, "groups", names_json(p->groups, p->n_groups));
	}
	emit(o);
	count(dr, err);
	dr->pending--;
	if (sl->left > 0 && !dr->closing) {
		mix_start(sl);
		return;
	}
	if (dr->pending == 0) {
		json_t *s = json_object();

		json_object_set_new(s, "summary", json_true());
		json_object_set_new(s, "total", json_integer((json_int_t)dr->total));
		json_object_set(s, "counts", dr->counts);
		json_object_set_new(s, "stats", stats_json(dr->dir));
		emit(s);
		finish(dr);
	}
}

static int parse_count(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v > max || s[0] == '-')
		return -EINVAL;
	*out = v;
	return 0;
}

static int start(struct drive *dr, int argc, char **argv)
{
	const char *c = argv[0];
	unsigned long n = 0;
	int rc = 0;

	if (!strcmp(c, "auth") && argc == 2) {
		dr->cmd = CMD_AUTH;
	} else if (!strcmp(c, "lookup") && argc == 2) {
		dr->cmd = CMD_LOOKUP;
	} else if (!strcmp(c, "passwd") && argc == 2) {
		dr->cmd = CMD_PASSWD;
	} else if (!strcmp(c, "search") && argc == 3 && parse_count(argv[2], 1000000, &n) == 0) {
		dr->cmd = CMD_SEARCH;
	} else if (!strcmp(c, "groups") && argc == 2 && parse_count(argv[1], 1000000, &n) == 0) {
		dr->cmd = CMD_GROUPS;
	} else if (!strcmp(c, "users") && (argc == 2 || argc == 3) &&
		   parse_count(argv[1], 1000000, &n) == 0) {
		dr->cmd = CMD_USERS;
	} else if (!strcmp(c, "many") && argc == 3 && parse_count(argv[1], 100000, &n) == 0 && n) {
		dr->cmd = CMD_MANY;
	} else if (!strcmp(c, "loop") && argc == 3 && parse_count(argv[1], 3600, &n) == 0) {
		dr->cmd = CMD_LOOP;
	} else if (!strcmp(c, "seq") && argc >= 2 && argc <= 1001) {
		dr->cmd = CMD_SEQ;
	} else if (!strcmp(c, "mix") && argc >= 3 && argc <= 1002 &&
		   parse_count(argv[1], 100000, &dr->rounds) == 0 && dr->rounds) {
		dr->cmd = CMD_MIX;
	} else if (!strcmp(c, "bench") && argc == 4 && parse_count(argv[1], 3600, &n) == 0 && n &&
		   parse_count(argv[2], 10000, &dr->conc) == 0 && dr->conc) {
		dr->cmd = CMD_BENCH;
	} else if (!strcmp(c, "close") && argc == 4 && parse_count(argv[1], 600000, &dr->close_ms) == 0 &&
		   parse_count(argv[2], 100000, &n) == 0 && n) {
		dr->cmd = CMD_CLOSE;
	} else {
		return -EINVAL;
	}

	if (dr->cmd == CMD_AUTH || dr->cmd == CMD_MANY || dr->cmd == CMD_LOOP ||
	    dr->cmd == CMD_PASSWD || dr->cmd == CMD_CLOSE || dr->cmd == CMD_BENCH)
		if (read_secret(&dr->pw[0], &dr->pw_len[0]) < 0) {
			fputs("ldapdrive: no password on stdin\n", stderr);
			return -EINVAL;
		}
	if (dr->cmd == CMD_PASSWD && read_secret(&dr->pw[1], &dr->pw_len[1]) < 0) {
		fputs("ldapdrive: no new password on stdin (second line)\n", stderr);
		return -EINVAL;
	}

	if (dr->cmd == CMD_SEQ || dr->cmd == CMD_MIX) {
		int skip = dr->cmd == CMD_MIX ? 2 : 1;

		dr->seq_n = (size_t)(argc - skip);
		dr->seq_users = argv + skip;
		dr->seq_pw = calloc(dr->seq_n, sizeof(char *));
		dr->seq_len = calloc(dr->seq_n, sizeof(size_t));
		if (!dr->seq_pw || !dr->seq_len)
			return -ENOMEM;
		for (size_t i = 0; i < dr->seq_n; i++)
			if (dr->seq_users[i][0] != '@' &&
			    read_secret(&dr->seq_pw[i], &dr->seq_len[i]) < 0) {
				fprintf(stderr, "ldapdrive: no password for attempt %zu on stdin\n", i + 1);
				return -EINVAL;
			}
	}

	dr->start_ms = now_ms();
	switch (dr->cmd) {
	case CMD_AUTH:
		dr->user = argv[1];
		rc = dir_authenticate(dr->dir, argv[1], dr->pw[0], dr->pw_len[0], on_profile, dr);
		break;
	case CMD_LOOKUP:
		rc = dir_lookup(dr->dir, argv[1], on_profile, dr);
		break;
	case CMD_PASSWD:
		rc = dir_change_password(dr->dir, argv[1], dr->pw[0], dr->pw_len[0], dr->pw[1],
					 dr->pw_len[1], on_done, dr);
		break;
	case CMD_SEARCH:
		rc = dir_search_users(dr->dir, argv[1], n, on_users, dr);
		break;
	case CMD_GROUPS:
		rc = dir_list_groups(dr->dir, n, on_names, dr);
		break;
	case CMD_USERS:
		rc = dir_list_users(dr->dir, argc == 3 ? argv[2] : NULL, n, on_users, dr);
		break;
	case CMD_MANY:
		dr->user = argv[2];
		dr->wanted = n;
		rc = 0;
		for (unsigned long i = 0; i < n; i++) {
			int r = dir_authenticate(dr->dir, argv[2], dr->pw[0], dr->pw_len[0], on_many, dr);

			if (r == 0)
				dr->pending++;
			else
				count(dr, r);
		}
		if (dr->pending == 0) {
			summary(dr);
			finish(dr);
		}
		return 0;
	case CMD_CLOSE:
		dr->user = argv[3];
		dr->wanted = n;
		for (unsigned long i = 0; i < n; i++) {
			int r = dir_authenticate(dr->dir, argv[3], dr->pw[0], dr->pw_len[0], on_many, dr);

			if (r == 0)
				dr->pending++;
			else
				count(dr, r);
		}
		uv_timer_init(&dr->loop, &dr->timer);
		dr->timer.data = dr;
		dr->timer_open = true;
		uv_timer_start(&dr->timer, close_tick, dr->close_ms, 0);
		return 0;
	case CMD_BENCH:
		dr->user = argv[3];
		dr->bench_t0 = dr->start_ms + 1000;
		dr->bench_end = dr->bench_t0 + n * 1000;
		for (unsigned long k = 0; k < dr->conc; k++)
			bench_start_one(dr);
		if (dr->pending == 0)
			finish(dr);
		return 0;
	case CMD_MIX:
		dr->slots = calloc(dr->seq_n, sizeof(*dr->slots));
		if (!dr->slots)
			return -ENOMEM;
		for (size_t k = 0; k < dr->seq_n; k++)
			dr->slots[k] = (struct mix_slot){ .dr = dr, .i = k, .left = dr->rounds };
		for (size_t k = 0; k < dr->seq_n && !dr->closing; k++)
			mix_start(&dr->slots[k]);
		return 0;
	case CMD_SEQ:
		uv_timer_init(&dr->loop, &dr->timer);
		dr->timer.data = dr;
		dr->timer_open = true;
		uv_timer_start(&dr->timer, seq_tick, 0, 0);
		return 0;
	case CMD_LOOP:
		dr->user = argv[2];
		dr->end_ms = dr->start_ms + n * 1000;
		uv_timer_init(&dr->loop, &dr->timer);
		dr->timer.data = dr;
		dr->timer_open = true;
		uv_timer_start(&dr->timer, loop_tick, 0, 0);
		return 0;
	}
	if (rc < 0) {
		/* Refused at once (the contract: no callback follows). */
		json_t *o = result_json(rc);

		json_object_set_new(o, "immediate", json_true());
		emit(o);
		dr->status = 1;
		finish(dr);
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct drive dr = { .status = 0 };
	struct cfg *cfg = NULL;
	const char *path = NULL;
	int i = 1, rc;

	if (argc > 1 && !strcmp(argv[1], "-h"))
		return usage(), 0;
	if (argc >= 3 && !strcmp(argv[1], "-c")) {
		path = argv[2];
		i = 3;
	}
	if (!path || i >= argc)
		return usage();
	if (cfg_load(path, CFG_NEED_LDAP, &cfg, stderr) < 0)
		return 2;
	log_init(cfg->agent.log_level);
	/* As in agent/main.c: a directory that resets a connection costs that
	 * connection (libldap writes with write(2)), not the process. */
	signal(SIGPIPE, SIG_IGN);
	/* The ldap/ module's TLS sessions come from tls/, which needs this once. */
	if (tls_global_init() < 0) {
		fputs("ldapdrive: cannot initialise GnuTLS\n", stderr);
		cfg_free(cfg);
		return 1;
	}
	dr.counts = json_object();
	uv_loop_init(&dr.loop);
	rc = dir_open(&dr.loop, cfg, &dr.dir);
	if (rc < 0) {
		fprintf(stderr, "ldapdrive: dir_open: %s\n", dir_code(rc));
		dr.status = 1;
		goto out;
	}
	if (start(&dr, argc - i, argv + i) < 0) {
		dr.status = usage();
		finish(&dr);
	}
	uv_run(&dr.loop, UV_RUN_DEFAULT);
out:
	if (uv_loop_close(&dr.loop) != 0) {
		fputs("ldapdrive: handles left open on the loop after dir_close\n", stderr);
		if (dr.status == 0)
			dr.status = 1;
	}
	wipe(dr.pw[0], dr.pw_len[0]);
	wipe(dr.pw[1], dr.pw_len[1]);
	for (size_t k = 0; dr.seq_pw && k < dr.seq_n; k++)
		wipe(dr.seq_pw[k], dr.seq_len[k]);
	free(dr.seq_pw);
	free(dr.seq_len);
	free(dr.slots);
	json_decref(dr.counts);
	cfg_free(cfg);
	return dr.status;
}
