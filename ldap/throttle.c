/*
 * A bounded table of failure counters keyed by string (ldap/dir.h,
 * struct dir_throttle).
 *
 * The table never grows past its capacity: a new key when it is full takes the
 * slot of the least recently failed entry, preferring one that is not blocked,
 * so a flood of fresh keys (random user names) costs a blocked key its counter
 * only when every entry in reach is blocked too.  Entries sit in one list
 * ordered by their last failure (newest first, and the caller's clock never goes
 * back), so the oldest and the first to expire are always at the tail.
 *
 * Buckets are chosen by a hash with a per-table random seed, so the keys an
 * attacker types cannot be chosen to land in one chain.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <uv.h>

#include "ldap/dir.h"

#define EVICT_SCAN 64	/* entries looked at from the tail for one that is not blocked */

struct tentry {
	char *key;
	unsigned fails;
	uint64_t last_ms;		/* time of the last failure */
	struct tentry *hnext;		/* hash chain, or the free list */
	struct tentry *newer, *older;	/* age list */
};

struct dir_throttle {
	size_t cap, n, n_buckets;
	unsigned limit;
	uint64_t window_ms;
	uint64_t seed;
	struct tentry *slots;		/* cap entries, never reallocated */
	struct tentry **buckets;
	struct tentry *newest, *oldest;
	struct tentry *free;		/* unused slots */
	struct dir_throttle_stats st;
};

static uint64_t hash(const struct dir_throttle *t, const char *key)
{
	uint64_t h = 0xcbf29ce484222325ull ^ t->seed;

	for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
		h ^= *p;
		h *= 0x100000001b3ull;
	}
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ull;
	return h ^ (h >> 32);
}

struct dir_throttle *dir_throttle_new(size_t capacity, unsigned limit, unsigned window_s)
{
	struct dir_throttle *t;

	if (capacity == 0 || capacity > (1u << 24) || limit == 0 || window_s == 0)
		return NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->cap = capacity;
	t->limit = limit;
	t->window_ms = (uint64_t)window_s * 1000;
	for (t->n_buckets = 16; t->n_buckets < capacity; t->n_buckets *= 2)
		;
	t->slots = calloc(capacity, sizeof(*t->slots));
	t->buckets = calloc(t->n_buckets, sizeof(*t->buckets));
	if (!t->slots || !t->buckets) {
		dir_throttle_free(t);
		return NULL;
	}
	for (size_t i = capacity; i-- > 0;) {
		t->slots[i].hnext = t->free;
		t->free = &t->slots[i];
	}
	/* A weaker seed only makes chains easier to aim at, never wrong answers. */
	if (getrandom(&t->seed, sizeof(t->seed), GRND_NONBLOCK) != (ssize_t)sizeof(t->seed))
		t->seed = uv_hrtime() ^ (uint64_t)(uintptr_t)t;
	return t;
}

void dir_throttle_set_limit(struct dir_throttle *t, unsigned limit, unsigned window_s)
{
	if (!t || limit == 0 || window_s == 0)
		return;
	t->limit = limit;
	t->window_ms = (uint64_t)window_s * 1000u;
}

void dir_throttle_free(struct dir_throttle *t)
{
	if (!t)
		return;
	for (size_t i = 0; t->slots && i < t->cap; i++)
		free(t->slots[i].key);
	free(t->slots);
	free(t->buckets);
	free(t);
}

static struct tentry *find(const struct dir_throttle *t, const char *key)
{
	struct tentry *e = t->buckets[hash(t, key) & (t->n_buckets - 1)];

	while (e && strcmp(e->key, key) != 0)
		e = e->hnext;
	return e;
}

static void list_unlink(struct dir_throttle *t, struct tentry *e)
{
	if (e->newer)
		e->newer->older = e->older;
	else
		t->newest = e->older;
	if (e->older)
		e->older->newer = e->newer;
	else
		t->oldest = e->newer;
	e->newer = e->older = NULL;
}

static void list_push(struct dir_throttle *t, struct tentry *e)
{
	e->older = t->newest;
	e->newer = NULL;
	if (t->newest)
		t->newest->newer = e;
	t->newest = e;
	if (!t->oldest)
		t->oldest = e;
}

static void drop(struct dir_throttle *t, struct tentry *e)
{
	struct tentry **pp = &t->buckets[hash(t, e->key) & (t->n_buckets - 1)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	list_unlink(t, e);
	free(e->key);
	memset(e, 0, sizeof(*e));
	e->hnext = t->free;
	t->free = e;
	t->n--;
}

static bool expired(const struct dir_throttle *t, const struct tentry *e, uint64_t now_ms)
{
	return now_ms >= e->last_ms && now_ms - e->last_ms >= t->window_ms;
}

/* Expired entries are dropped from the tail, where the oldest are. */
static void prune(struct dir_throttle *t, uint64_t now_ms)
{
	while (t->oldest && expired(t, t->oldest, now_ms))
		drop(t, t->oldest);
}

static struct tentry *free_slot(struct dir_throttle *t)
{
	struct tentry *victim = t->oldest;
	size_t i = 0;

	if (t->n == t->cap) {
		for (struct tentry *e = t->oldest; e && i < EVICT_SCAN; e = e->newer, i++)
			if (e->fails < t->limit) {
				victim = e;
				break;
			}
		drop(t, victim);
		t->st.evicted++;
	}
	victim = t->free;
	if (victim)
		t->free = victim->hnext;
	return victim;
}

int dir_throttle_fail(struct dir_throttle *t, const char *key, uint64_t now_ms)
{
	struct tentry *e;
	size_t b;

	prune(t, now_ms);
	e = find(t, key);
	if (e) {
		list_unlink(t, e);
	} else {
		char *k = strdup(key);

		if (!k)
			return DIR_E_INTERNAL;
		e = free_slot(t);
		if (!e) {
			free(k);
			return DIR_E_INTERNAL;
		}
		e->key = k;
		b = hash(t, k) & (t->n_buckets - 1);
		e->hnext = t->buckets[b];
		t->buckets[b] = e;
		t->n++;
	}
	if (e->fails < UINT32_MAX)
		e->fails++;
	e->last_ms = now_ms;
	list_push(t, e);
	return 0;
}

void dir_throttle_undo(struct dir_throttle *t, const char *key)
{
	struct tentry *e = find(t, key);

	if (e && --e->fails == 0)
		drop(t, e);
}

bool dir_throttle_blocked(struct dir_throttle *t, const char *key, uint64_t now_ms)
{
	struct tentry *e;

	prune(t, now_ms);
	e = find(t, key);
	if (!e || e->fails < t->limit)
		return false;
	t->st.refused++;
	return true;
}

unsigned dir_throttle_failures(struct dir_throttle *t, const char *key, uint64_t now_ms)
{
	struct tentry *e;

	prune(t, now_ms);
	e = find(t, key);
	return e ? e->fails : 0;
}

void dir_throttle_reset(struct dir_throttle *t, const char *key)
{
	struct tentry *e = find(t, key);

	if (e)
		drop(t, e);
}

void dir_throttle_stats(const struct dir_throttle *t, struct dir_throttle_stats *out)
{
	*out = t->st;
	out->entries = t->n;
	out->capacity = t->cap;
}
