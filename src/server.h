/*
 * server.h - a server's state as the rest of bollard sees it. The operator
 * (runtime API: ready, drain, maint) and the health checks (up, down) each
 * own one input; the effective state combines them so that readers (the
 * balancer, persistence) look at one atomic.
 */
#ifndef BOLLARD_SERVER_H
#define BOLLARD_SERVER_H

#include "cfg.h"

/* Recompute s->state from s->admin_state and s->health:
 * maint wins, then down (health), then the operator's ready or drain.
 * Returns the new state. Callers: control thread (API, checks). */
int server_update_state(struct server *s);
const char *server_health_name(int health); /* "unchecked" "up" "down" */

#endif
