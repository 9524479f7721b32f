/*
 * The service-account pool and failover: pool_size connections on the most
 * preferred server that is up, backoff for servers that are down, and the
 * kick that hands queued requests to ready connections from the loop.
 */
#include <stdint.h>
#include <stdlib.h>

#include <lber.h>
#include <ldap.h>

#include "config/cfg.h"
#include "ldap/dir.h"
#include "ldap/internal.h"

static void server_up(struct server *sv)
{
	if (sv->down || sv->fails)
		log_msg(LOGL_INFO, "ldap: %s is up again", sv->name);
	sv->down = false;
	sv->fails = 0;
	uv_timer_stop(&sv->retry);
}

static void on_retry(uv_timer_t *t)
{
	struct server *sv = t->data;

	sv->down = false;
	log_msg(LOGL_DEBUG, "ldap: retrying %s", sv->name);
	dir_pool_fill(sv->d);
}

/* xorshift64: jitter only needs to differ between agents, not be secret. */
static uint64_t jitter(struct dir *d)
{
	uint64_t x = d->rng;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	d->rng = x;
	return x;
}

/* Capped exponential backoff with jitter, so a farm of agents does not hammer
 * a recovering server in lockstep. */
void dir_server_down(struct server *sv, const char *why)
{
	unsigned shift = sv->fails < 16 ? sv->fails : 16;
	uint64_t delay = (uint64_t)BACKOFF_MIN_MS << shift;

	if (delay > BACKOFF_MAX_MS)
		delay = BACKOFF_MAX_MS;
	delay = delay / 2 + jitter(sv->d) % (delay / 2 + 1);
	sv->fails++;
	if (!sv->down)
		log_msg(LOGL_INFO, "ldap: %s is down (%s), retry in %llu ms", sv->name, why,
			(unsigned long long)delay);
	sv->down = true;
	/* Its kept user connections would only fail the next logins' binds. */
	dir_conn_drop_kept(sv->d, (size_t)(sv - sv->d->srv), (size_t)(sv - sv->d->srv) + 1);
	if (!sv->d->closing)
		uv_timer_start(&sv->retry, on_retry, delay, 0);
}

/* Keeps pool_size service connections on the most preferred server that is
 * not down, and probes a preferred server while the pool sits on a worse one. */
void dir_pool_fill(struct dir *d)
{
	size_t best = d->n_srv, have = 0, worse = 0, on_best = 0;

	if (d->closing)
		return;
	for (size_t i = 0; i < d->n_srv; i++) {
		if (!d->srv[i].down) {
			best = i;
			break;
		}
	}
	if (best == d->n_srv)
		return;
	for (struct conn *c = d->conns; c; c = c->next) {
		if (c->kind != CONN_SERVICE || c->state >= CONN_CLOSING || c->retiring)
			continue;
		have++;
		if (c->srv == best)
			on_best++;
		else if (c->srv > best)
			worse++;
	}
	if (worse && !on_best) {
		log_msg(LOGL_INFO, "ldap: trying preferred server %s", d->srv[best].name);
		dir_conn_new(d, best, CONN_SERVICE);
		return;
	}
	for (; have < d->cfg->ldap.pool_size; have++) {
		if (d->was_up && best > 0 && on_best == 0) {
			log_msg(LOGL_INFO, "ldap: failing over to %s", d->srv[best].name);
			d->stats.failovers++;
		}
		if (!dir_conn_new(d, best, CONN_SERVICE))
			break;
		on_best++;
	}
}

static struct conn *pick_service_conn(struct dir *d)
{
	struct conn *best = NULL;

	for (struct conn *c = d->conns; c; c = c->next) {
		if (c->kind != CONN_SERVICE || c->state != CONN_READY || c->retiring)
			continue;
		if (!best || c->srv < best->srv || (c->srv == best->srv && c->n_ops < best->n_ops))
			best = c;
	}
	return best;
}

static void on_kick(uv_timer_t *t)
{
	struct dir *d = t->data;
	struct req *r, *next;

	for (r = d->reqs; r; r = next) {
		next = r->next;
		/* A login finishing here only ends the walk early: the next
		 * login to end kicks again. */
		if (r->state == RS_PARKED)
			dir_auth_found(r);
	}
	for (r = d->reqs; r; r = next) {
		struct conn *c;

		next = r->next;
		if (r->state != RS_QUEUED)
			continue;
		c = pick_service_conn(d);
		if (!c)
			break;
		dir_req_set_state(r, RS_RUNNING);
		dir_req_send_on(r, c);
		/* The send may have failed a connection and finished requests. */
		next = d->reqs;
	}
	dir_pool_fill(d);
}

void dir_kick(struct dir *d)
{
	if (!d->closing)
		uv_timer_start(&d->kick, on_kick, 0, 0);
}

void dir_pool_ready(struct conn *c)
{
	server_up(&c->d->srv[c->srv]);
	c->d->was_up = true;
	/* Back on a preferred server: retire connections to worse ones, and
	 * let go of the user connections kept there. */
	dir_conn_drop_kept(c->d, c->srv + 1, c->d->n_srv);
	for (struct conn *o = c->d->conns; o; o = o->next) {
		if (o->kind == CONN_SERVICE && o->srv > c->srv && o->state < CONN_CLOSING &&
		    !o->retiring) {
			o->retiring = true;
			if (o->n_ops == 0)
				dir_conn_close(o);
		}
	}
	dir_kick(c->d);
}
