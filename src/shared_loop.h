/*
 * shared_loop.h - the shared tables in a worker's loop (doc/scale-out.md):
 * the worker's Redis link (shared_link.c) plugged into its epoll loop, and
 * the requests that wait for Redis before a server is chosen for them
 * (state CS_SHARED: a local miss asking Redis, a move's compare-and-set, a
 * learn key's first binding), each at most `timeout`.
 *
 * Everything here belongs to the worker thread. Without shared-tables the
 * worker has no struct shared_loop (w->shared NULL) and nothing here runs.
 */
#ifndef BOLLARD_SHARED_LOOP_H
#define BOLLARD_SHARED_LOOP_H

#include "api.h"

struct worker;
struct cconn;
struct config;

/* worker.c, on the worker's thread: open the link of w->cfg's
 * shared-tables (if any) before the loop starts; follow a reload to nc
 * (open, keep, re-open keeping the queued writes, or close); close at the
 * end. */
void shared_loop_start(struct worker *w);
void shared_loop_apply(struct worker *w, const struct config *nc);
void shared_loop_stop(struct worker *w);
/* The loop's side (w->shared not NULL): the epoll wait shortened to the
 * link's timer; readiness of its socket (the epoll object is w->shared);
 * once per iteration after I/O events and timers: the link's due timer
 * (which sends the iteration's writes as one batch). */
int shared_loop_timeout(struct worker *w, int timeout_ms);
void shared_loop_event(void *obj, uint32_t events);
void shared_loop_run(struct worker *w);

/* dispatch.c: before a server is chosen for c, act on what persistence
 * left for the shared tables (c->tx.pr->shared). true: c waits in
 * CS_SHARED, and goes on by itself (dispatch_start) once Redis answered or
 * its deadline passed; false: choose now. */
bool shared_loop_decide(struct cconn *c);
/* stream.c: c closes while it waits (its answer will find nobody); or its
 * safety deadline passed (treated as a timeout). */
void shared_loop_cancel(struct cconn *c);
void shared_loop_expired(struct cconn *c);

#endif
