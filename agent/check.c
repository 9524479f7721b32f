/*
 * dirbridge -n, the part that needs the directory: a configured lockout_guard
 * number is compared with the directory's own lockout threshold, because a
 * guard at or above it would let the directory lock accounts first.  The
 * directory module reads the threshold and logs the warning itself; this only
 * runs a loop long enough for that, bounded by [ldap] timeout_ms.
 */
#include <stdbool.h>
#include <stdint.h>

#include "agent/agent.h"
#include "tls/tls.h"

struct check {
	struct dir *dir;
	uv_timer_t timer;
	uint64_t deadline;
	bool timed_out;
};

static void on_timer_closed(uv_handle_t *h)
{
	(void)h;
}

static void on_tick(uv_timer_t *t)
{
	struct check *k = t->data;
	struct dir_guard_stats st = { 0 };

	dir_guard_stats(k->dir, &st);
	if (!st.known && uv_now(t->loop) < k->deadline)
		return;
	k->timed_out = !st.known;
	uv_timer_stop(t);
	uv_close((uv_handle_t *)t, on_timer_closed);
	dir_close(k->dir, NULL, NULL);
}

int agent_check_directory(const struct cfg *cfg)
{
	struct check k = { 0 };
	uv_loop_t loop;
	int rc;

	if (cfg->ldap.lockout_guard == 0 || cfg->ldap.lockout_guard == CFG_LOCKOUT_AUTO)
		return 0;
	if ((rc = uv_loop_init(&loop)) < 0)
		return rc;
	if ((rc = tls_global_init()) < 0 || (rc = dir_open(&loop, cfg, &k.dir)) < 0) {
		uv_loop_close(&loop);
		return rc;
	}
	uv_timer_init(&loop, &k.timer);
	k.timer.data = &k;
	k.deadline = uv_now(&loop) + 2u * cfg->ldap.timeout_ms;
	uv_timer_start(&k.timer, on_tick, 20, 20);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	if (k.timed_out)
		log_msg(LOGL_WARN, "ldap: lockout_guard = %u could not be compared with the "
			"directory's lockout threshold: the directory did not answer",
			cfg->ldap.lockout_guard);
	return 0;
}
