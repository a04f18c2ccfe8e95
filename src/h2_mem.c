/*
 * h2_mem.c - a per-worker allocator for libnghttp2 (h2_mem.h).
 *
 * nghttp2 allocates about a dozen blocks for every stream (its stream
 * object, the HPACK decoder's and encoder's entries, the frames it
 * queues) and frees them when the stream closes: with malloc that is a
 * dozen allocations per request and a measurable share of the CPU an
 * HTTP/2 request costs. Here a block freed goes onto its size class's free
 * list and is handed out again, so a warm worker no longer calls malloc
 * per stream. The lists are bounded in bytes (H2_MEM_CACHE): beyond, a
 * freed block goes back to malloc, so a burst of connections does not pin
 * its peak memory for ever. Blocks above the largest class go straight to
 * malloc (nghttp2's few big ones are per connection).
 *
 * Each block carries a header with its class (nghttp2's free() gives no
 * size), padded to keep the alignment malloc gives.
 */
#include "h2_mem.h"

#include <nghttp2/nghttp2.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#define BIG UINT32_MAX
#define MIN_SHIFT 6   /* 64 B, the smallest class */

struct hdr {
	alignas(max_align_t) uint32_t cls;   /* size class, or BIG */
};

struct freeblk {
	struct freeblk *next;
};

static size_t class_size(uint32_t c)
{
	return (size_t)1 << (c + MIN_SHIFT);
}

/* The smallest class that holds size bytes, or BIG. */
static uint32_t class_of(size_t size)
{
	for (uint32_t c = 0; c < H2_MEM_CLASSES; c++)
		if (size <= class_size(c))
			return c;
	return BIG;
}

void *h2_mem_malloc(struct h2_mem *m, size_t size)
{
	uint32_t c = class_of(size);
	struct hdr *h;

	if (c != BIG && m->free[c]) {
		struct freeblk *f = m->free[c];
		m->free[c] = f->next;
		m->cached -= class_size(c);
		h = (struct hdr *)f - 1;
		return h + 1;
	}
	if (size > SIZE_MAX - sizeof(*h))
		return NULL;
	h = malloc(sizeof(*h) + (c == BIG ? size : class_size(c)));
	if (!h)
		return NULL;
	m->fresh++;
	h->cls = c;
	return h + 1;
}

void h2_mem_free(struct h2_mem *m, void *p)
{
	if (!p)
		return;
	struct hdr *h = (struct hdr *)p - 1;
	if (h->cls == BIG || m->cached + class_size(h->cls) > H2_MEM_CACHE) {
		free(h);
		return;
	}
	struct freeblk *f = p;
	f->next = m->free[h->cls];
	m->free[h->cls] = f;
	m->cached += class_size(h->cls);
}

void *h2_mem_calloc(struct h2_mem *m, size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size)
		return NULL;
	void *p = h2_mem_malloc(m, n * size);
	if (p)
		memset(p, 0, n * size);
	return p;
}

void *h2_mem_realloc(struct h2_mem *m, void *p, size_t size)
{
	if (!p)
		return h2_mem_malloc(m, size);
	struct hdr *h = (struct hdr *)p - 1;
	if (h->cls == BIG) {
		if (class_of(size) == BIG) {
			if (size > SIZE_MAX - sizeof(*h))
				return NULL;
			struct hdr *n = realloc(h, sizeof(*h) + size);
			return n ? n + 1 : NULL;
		}
	} else if (size <= class_size(h->cls)) {
		return p;
	}
	void *n = h2_mem_malloc(m, size);
	if (!n)
		return NULL;
	/* a class block holds its whole class, a big one at least the new
	 * size's class; copy what both hold */
	size_t old = h->cls == BIG ? size : class_size(h->cls);
	memcpy(n, p, MIN(old, size));
	h2_mem_free(m, p);
	return n;
}

void h2_mem_free_all(struct h2_mem *m)
{
	for (int c = 0; c < H2_MEM_CLASSES; c++)
		while (m->free[c]) {
			struct freeblk *f = m->free[c];
			m->free[c] = f->next;
			free((struct hdr *)f - 1);
		}
	m->cached = 0;
}

static void *cb_malloc(size_t size, void *u) { return h2_mem_malloc(u, size); }
static void cb_free(void *p, void *u) { h2_mem_free(u, p); }
static void *cb_calloc(size_t n, size_t size, void *u) { return h2_mem_calloc(u, n, size); }
static void *cb_realloc(void *p, size_t size, void *u) { return h2_mem_realloc(u, p, size); }

void h2_mem_bind(struct h2_mem *m, void *out)
{
	nghttp2_mem *nm = out;

	nm->mem_user_data = m;
	nm->malloc = cb_malloc;
	nm->free = cb_free;
	nm->calloc = cb_calloc;
	nm->realloc = cb_realloc;
}
