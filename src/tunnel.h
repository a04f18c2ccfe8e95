/*
 * tunnel.h - the byte relay between a client and a server connection
 * (tunnel.c), for the stream state machine (stream.c).
 */
#ifndef BOLLARD_TUNNEL_H
#define BOLLARD_TUNNEL_H

#include "stream.h"

/* CS_TUNNEL: flush the 101 head, then move what each side sent to the
 * other. >0 progress, 0 none (c may be closed after). */
int tunnel_step(struct cconn *c);

#endif
