/*
 * buf.c - the per-thread buffer pool (see buf.h). A pool belongs to one
 * worker thread and is used only by it, so it takes no lock.
 */
#include "api.h"
#include "buf.h"

void buf_pool_init(struct buf_pool *p, uint32_t size)
{
	memset(p, 0, sizeof(*p));
	p->size = size;
	p->max_free = 4096; /* beyond this many idle buffers, give memory back */
}

void buf_pool_destroy(struct buf_pool *p)
{
	while (p->free_list) {
		void *next = *(void **)p->free_list;
		free(p->free_list);
		p->free_list = next;
	}
	p->nfree = 0;
}

int buf_get(struct buf_pool *p, struct buf *b)
{
	if (b->data)
		return 0;
	if (p->free_list) {
		b->data = p->free_list;
		p->free_list = *(void **)p->free_list;
		p->nfree--;
	} else {
		b->data = malloc(p->size);
		if (!b->data)
			return -1;
		p->nalloc++;
	}
	b->head = b->tail = 0;
	return 0;
}

void buf_put(struct buf_pool *p, struct buf *b)
{
	if (!b->data)
		return;
	if (p->nfree >= p->max_free) {
		free(b->data);
		p->nalloc--;
	} else {
		*(void **)b->data = p->free_list;
		p->free_list = b->data;
		p->nfree++;
	}
	b->data = NULL;
	b->head = b->tail = 0;
}
