/*
 * buf.h - fixed-size byte buffers and the per-thread pool they come from.
 *
 * Every buffer of a worker has the same capacity (tune.bufsize). Buffers are
 * taken when a connection has bytes to hold and given back as soon as it is
 * empty, so an idle keep-alive connection holds none. The pool keeps freed
 * buffers for reuse: after warm-up no request allocates.
 */
#ifndef BOLLARD_BUF_H
#define BOLLARD_BUF_H

#include "api.h"

struct buf {
	char *data;    /* NULL while the buffer is not attached */
	uint32_t head; /* first unread byte */
	uint32_t tail; /* one past the last byte written */
};

struct buf_pool {
	uint32_t size;   /* capacity of every buffer */
	void *free_list; /* singly linked through the first bytes of each */
	uint32_t nfree;
	uint32_t nalloc; /* buffers allocated in total (for stats and tests) */
	uint32_t max_free;
};

void buf_pool_init(struct buf_pool *p, uint32_t size);
void buf_pool_destroy(struct buf_pool *p);

/* Attach memory to b if it has none. Returns 0, or -1 when out of memory. */
int buf_get(struct buf_pool *p, struct buf *b);
/* Give b's memory back to the pool (b must be empty or its bytes dropped). */
void buf_put(struct buf_pool *p, struct buf *b);

static inline uint32_t buf_len(const struct buf *b) { return b->tail - b->head; }
static inline bool buf_empty(const struct buf *b) { return b->tail == b->head; }
static inline char *buf_rptr(const struct buf *b) { return b->data + b->head; }
static inline char *buf_wptr(const struct buf *b) { return b->data + b->tail; }

/* Room left at the end; moves unread bytes to the front first when that
 * makes room (cheap: only when the buffer has a consumed prefix). */
static inline uint32_t buf_room(struct buf *b, uint32_t size)
{
	if (b->head && b->tail == size) {
		uint32_t n = b->tail - b->head;
		memmove(b->data, b->data + b->head, n);
		b->head = 0;
		b->tail = n;
	}
	return size - b->tail;
}

static inline void buf_consume(struct buf *b, uint32_t n)
{
	BUG_ON(n > buf_len(b));
	b->head += n;
	if (b->head == b->tail)
		b->head = b->tail = 0;
}

#endif
