/*
 * h2_mem.h - the allocator libnghttp2 is given, one per worker: size
 * classes with free lists, so that the stream objects and HPACK entries
 * nghttp2 allocates for every stream are reused instead of going back to
 * malloc (no heap allocation per request once a worker is warm).
 *
 * Not thread-safe: every session of a worker allocates through that
 * worker's allocator only, on that worker's thread.
 */
#ifndef BOLLARD_H2_MEM_H
#define BOLLARD_H2_MEM_H

#include "api.h"

#define H2_MEM_CLASSES 9           /* 64 B .. 16 KB, powers of two */
#define H2_MEM_CACHE (4u << 20)    /* bytes kept on the free lists at most */

struct h2_mem {
	void *free[H2_MEM_CLASSES];
	size_t cached;                 /* bytes on the free lists */
	uint64_t fresh;                /* blocks taken from malloc (tests, metrics) */
};

/* Fill *out (an nghttp2_mem) with m's functions. */
void h2_mem_bind(struct h2_mem *m, void *out);
/* Give every cached block back to malloc. */
void h2_mem_free_all(struct h2_mem *m);

void *h2_mem_malloc(struct h2_mem *m, size_t size);
void *h2_mem_calloc(struct h2_mem *m, size_t n, size_t size);
void *h2_mem_realloc(struct h2_mem *m, void *p, size_t size);
void h2_mem_free(struct h2_mem *m, void *p);

#endif
