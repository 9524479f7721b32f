/*
 * Memory that may hold secrets.  Every JSON value the agent or the hub builds
 * or parses may carry a password, a token or a profile, so jansson's allocator
 * is set (in each program's main) to one that wipes what it frees.
 */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "config/cfg.h"

void *cfg_wipe_alloc(size_t n)
{
	return malloc(n);
}

void cfg_wipe_free(void *p)
{
	if (p)
		explicit_bzero(p, malloc_usable_size(p));
	free(p);
}
