/*
 * dispatch.h - choosing the server of a request and connecting to it
 * (dispatch.c), for the stream state machine (stream.c).
 */
#ifndef BOLLARD_DISPATCH_H
#define BOLLARD_DISPATCH_H

#include "stream.h"

/* c's request head is rewritten in c->tx.rq: choose its server (persistence,
 * on-server-down, the balancer) and take a pooled connection, start a
 * connect, or queue it behind a full server; or answer it (503). Also the
 * retry after a failed attempt (the servers tried are in c->tx.tried). */
void dispatch_start(struct cconn *c);
/* CS_CONNECT: the connect's outcome, once the socket says. >0 progress
 * (connected, or failed and retried/answered), 0 not yet. */
int dispatch_connect_step(struct cconn *c);
/* The connect to c->srv failed (timeout: it took longer than `timeout
 * connect`): counted toward `fall`, retried within `retries`, else a
 * 502/504. */
void dispatch_connect_failed(struct cconn *c, bool timeout);
/* The balancer's choice for c, persistence aside (shared_loop.c: the
 * server a move or a first binding proposes before Redis agrees). */
struct server *dispatch_balance(struct cconn *c);
/* Take c out of its worker's maxconn queue (CS_QUEUED). */
void dispatch_queue_del(struct cconn *c);

#endif
