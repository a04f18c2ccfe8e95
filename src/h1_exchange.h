/*
 * h1_exchange.h - HTTP/1.1 transactions on a client connection
 * (h1_exchange.c), for the stream state machine (stream.c).
 */
#ifndef BOLLARD_H1_EXCHANGE_H
#define BOLLARD_H1_EXCHANGE_H

#include "stream.h"

/* CS_HEAD: read, then parse, the next request head; start its
 * transaction (routing, persistence, the head rewritten, dispatch). >0
 * progress, 0 none (c may be closed after). */
int h1_exchange_head(struct cconn *c);
/* CS_FORWARD: both directions of c's transaction; at the end of the
 * response, the next request or closing. >0 progress, 0 none. */
int h1_exchange_forward(struct cconn *c);
/* CS_FORWARD: the earliest deadline of the exchange; *client says whether
 * it is the client's (the one to blame) or the server's. */
uint64_t h1_exchange_deadline(const struct cconn *c, bool *client);
/* a reload happened: c takes the new generation's frontend of its name
 * (false: there is none, c must close) */
bool stream_switch_generation(struct cconn *c);

#endif
