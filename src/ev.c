/*
 * ev.c - clock and lazy timer heap (see ev.h for why lazy). A binary
 * min-heap of timer pointers; each timer remembers its index so it can be
 * removed in O(log n) when its connection closes.
 */
#include "api.h"
#include "ev.h"
#include <time.h>

uint64_t ev_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t ev_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void ev_timer_init(struct ev_timer *t)
{
	t->magic = EV_TIMER_MAGIC;
	t->when = EV_NO_TIMER;
	t->key = EV_NO_TIMER;
	t->heap_idx = UINT32_MAX;
}

static void heap_swap(struct ev_heap *h, uint32_t a, uint32_t b)
{
	struct ev_timer *t = h->v[a];
	h->v[a] = h->v[b];
	h->v[b] = t;
	h->v[a]->heap_idx = a;
	h->v[b]->heap_idx = b;
}

static void sift_up(struct ev_heap *h, uint32_t i)
{
	while (i > 0) {
		uint32_t p = (i - 1) / 2;
		if (h->v[p]->key <= h->v[i]->key)
			break;
		heap_swap(h, p, i);
		i = p;
	}
}

static void sift_down(struct ev_heap *h, uint32_t i)
{
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < h->n && h->v[l]->key < h->v[m]->key)
			m = l;
		if (r < h->n && h->v[r]->key < h->v[m]->key)
			m = r;
		if (m == i)
			break;
		heap_swap(h, i, m);
		i = m;
	}
}

static void heap_remove(struct ev_heap *h, struct ev_timer *t)
{
	uint32_t i = t->heap_idx;
	BUG_ON(i >= h->n || h->v[i] != t);
	h->n--;
	if (i != h->n) {
		h->v[i] = h->v[h->n];
		h->v[i]->heap_idx = i;
		sift_down(h, i);
		sift_up(h, i);
	}
	t->heap_idx = UINT32_MAX;
}

static int heap_insert(struct ev_heap *h, struct ev_timer *t)
{
	if (h->n == h->cap) {
		uint32_t cap = h->cap ? h->cap * 2 : 256;
		struct ev_timer **v = realloc(h->v, cap * sizeof(*v));
		if (!v)
			return -1;
		h->v = v;
		h->cap = cap;
	}
	t->key = t->when;
	t->heap_idx = h->n;
	h->v[h->n++] = t;
	sift_up(h, t->heap_idx);
	return 0;
}

int ev_timer_set(struct ev_heap *h, struct ev_timer *t, uint64_t when)
{
	BUG_ON(t->magic != EV_TIMER_MAGIC); /* never initialised, or freed */
	t->when = when;
	if (when == EV_NO_TIMER)
		return 0; /* the heap entry, if any, pops later and is dropped */
	if (t->heap_idx == UINT32_MAX)
		return heap_insert(h, t);
	if (when < t->key) {
		t->key = when;
		sift_up(h, t->heap_idx);
	}
	return 0;
}

void ev_timer_del(struct ev_heap *h, struct ev_timer *t)
{
	BUG_ON(t->magic != EV_TIMER_MAGIC);
	if (t->heap_idx != UINT32_MAX)
		heap_remove(h, t);
	t->when = EV_NO_TIMER;
}

struct ev_timer *ev_timer_expired(struct ev_heap *h, uint64_t now)
{
	while (h->n && h->v[0]->key <= now) {
		struct ev_timer *t = h->v[0];
		BUG_ON(t->magic != EV_TIMER_MAGIC); /* its owner was freed while queued */
		heap_remove(h, t);
		if (t->when == EV_NO_TIMER)
			continue;
		if (t->when > now) {
			/* re-armed later since it was queued: requeue with the real key */
			if (heap_insert(h, t) < 0)
				return t; /* cannot requeue: fire early rather than lose it */
			continue;
		}
		t->when = EV_NO_TIMER;
		return t;
	}
	return NULL;
}

int ev_next_timeout(const struct ev_heap *h, uint64_t now, int max_ms)
{
	if (!h->n)
		return max_ms;
	uint64_t k = h->v[0]->key;
	if (k <= now)
		return 0;
	return (k - now) < (uint64_t)max_ms ? (int)(k - now) : max_ms;
}

void ev_heap_free(struct ev_heap *h)
{
	free(h->v);
	h->v = NULL;
	h->n = h->cap = 0;
}
