/*
 * ev.h - the pieces of an event loop that are not epoll itself: a clock read
 * once per loop iteration and a timer heap.
 *
 * Timers are lazy: re-arming a timer to a later deadline only updates a field
 * (O(1), done on every read or write of a connection); the heap entry keeps
 * its older, earlier key, and when it pops, the timer is put back with its
 * real deadline. Only an earlier deadline moves the entry up the heap.
 */
#ifndef BOLLARD_EV_H
#define BOLLARD_EV_H

#include "api.h"

#define EV_NO_TIMER UINT64_MAX

#define EV_TIMER_MAGIC 0x54494d52u /* "TIMR": set by ev_timer_init() */

struct ev_timer {
	uint32_t magic;    /* EV_TIMER_MAGIC: checked wherever the heap hands one back */
	uint64_t when;     /* deadline in ms (monotonic), EV_NO_TIMER if disarmed */
	uint64_t key;      /* deadline the heap entry is sorted by (<= when) */
	uint32_t heap_idx; /* position in the heap, UINT32_MAX when not in it */
};

struct ev_heap {
	struct ev_timer **v;
	uint32_t n, cap;
};

uint64_t ev_now_ms(void);   /* CLOCK_MONOTONIC in ms */
uint64_t ev_now_us(void);   /* CLOCK_MONOTONIC in µs */

void ev_timer_init(struct ev_timer *t);
/* Arm t at deadline `when` (ms). Returns 0, or -1 if the heap cannot grow. */
int ev_timer_set(struct ev_heap *h, struct ev_timer *t, uint64_t when);
void ev_timer_del(struct ev_heap *h, struct ev_timer *t);
/* Pop one timer whose deadline has passed at `now`, or NULL. */
struct ev_timer *ev_timer_expired(struct ev_heap *h, uint64_t now);
/* ms until the next heap key, capped at max_ms; 0 if one is due. */
int ev_next_timeout(const struct ev_heap *h, uint64_t now, int max_ms);
void ev_heap_free(struct ev_heap *h);

#endif
