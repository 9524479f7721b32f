/*
 * The open-file budget: every front connection is one descriptor, so
 * [https] max_connections only holds if RLIMIT_NOFILE leaves room for it next
 * to everything else the agent keeps open.  See agent.h.
 */
#include <errno.h>
#include <string.h>
#include <sys/resource.h>

#include "agent/agent.h"

/* Directory connections beyond the service pool: the directory opens up to
 * 32 user-bind connections at once and one probe of a preferred server. */
#define DIR_EXTRA_CONNS 33
/* Everything else: stdio, the loop's epoll and wakeup descriptors, signal
 * pipes, the hub tunnel, the journal socket, files read on reload, GnuTLS's
 * random device, and connections whose close has not completed yet. */
#define RESERVE_FDS 64
/* Below this the front is useless anyway; serving a few beats serving none. */
#define MIN_CONNS 16

static rlim_t overhead(const struct cfg *cfg)
{
	return (rlim_t)cfg->https.n_listen + cfg->ldap.pool_size + DIR_EXTRA_CONNS + RESERVE_FDS;
}

size_t agent_fd_budget(const struct cfg *cfg)
{
	rlim_t want = (rlim_t)cfg->https.max_connections + overhead(cfg);
	struct rlimit rl;
	rlim_t allowed;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		log_msg(LOGL_WARN, "cannot read the open-file limit (%s); assuming it fits "
			"max_connections %u", strerror(errno), cfg->https.max_connections);
		return cfg->https.max_connections;
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
		struct rlimit raised = rl;

		/* Only the soft limit moves: raising the hard one is an
		 * administrator's decision (systemd LimitNOFILE=, limits.conf). */
		raised.rlim_cur = rl.rlim_max > want ? want : rl.rlim_max;
		if (raised.rlim_cur > rl.rlim_cur) {
			if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
				rl.rlim_cur = raised.rlim_cur;
			else
				log_msg(LOGL_WARN, "cannot raise the open-file limit from %llu to %llu: %s",
					(unsigned long long)rl.rlim_cur,
					(unsigned long long)raised.rlim_cur, strerror(errno));
		}
	}
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want) {
		log_msg(LOGL_DEBUG, "open-file limit %llu fits max_connections %u",
			(unsigned long long)rl.rlim_cur, cfg->https.max_connections);
		return cfg->https.max_connections;
	}
	allowed = rl.rlim_cur > overhead(cfg) + MIN_CONNS ? rl.rlim_cur - overhead(cfg) : MIN_CONNS;
	log_msg(LOGL_WARN, "open-file limit is %llu (hard limit %llu): that allows %llu "
		"client connections, not max_connections %u; raise the limit (systemd "
		"LimitNOFILE=) to hold more", (unsigned long long)rl.rlim_cur,
		(unsigned long long)rl.rlim_max, (unsigned long long)allowed,
		cfg->https.max_connections);
	return (size_t)allowed;
}
