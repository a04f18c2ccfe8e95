/*
 * worker.h - the worker threads: one epoll loop each, an SO_REUSEPORT
 * listener per bind per thread, the client and server connections it
 * accepted or opened. Called by main.c and the control loop (control.c).
 */
#ifndef BOLLARD_WORKER_H
#define BOLLARD_WORKER_H

#include "cfg.h"

/* Open the listeners and start cfg->threads workers. Returns 0, or -1 with
 * the error logged (e.g. address in use). */
int workers_start(struct config *cfg);
/* Begin a graceful stop: close listeners, close idle connections, let
 * in-flight requests finish (their connections close after the response). */
void workers_begin_stop(void);
/* True once every worker has no connection left and has exited its loop. */
bool workers_all_done(void);
/* Grace period over: close every remaining connection now. */
void workers_force_stop(void);
/* A new configuration generation is in G.cfg (reload.c): each worker
 * re-points its listeners and balancing state to it at its next loop
 * iteration, and its connections at their next request. */
void workers_reload(struct config *nc);
/* Does every worker serve requests with c now? (any thread: each worker
 * asks as it takes a configuration, worker_apply) */
bool workers_run(const struct config *c);
/* Wait for the worker threads to exit and free them. */
void workers_join(void);

#endif
