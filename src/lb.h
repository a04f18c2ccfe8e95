/*
 * lb.h - choosing a server for a request that persistence did not place.
 * Each worker thread keeps its own balancing state (smooth weighted round
 * robin positions, random generator), so picking takes no lock; the only
 * shared inputs are the servers' atomic state, weight and connection count.
 */
#ifndef BOLLARD_LB_H
#define BOLLARD_LB_H

#include "cfg.h"

struct lb_thread;

/* Per-thread balancing state for every backend of cfg; seed makes random
 * choices reproducible in tests. Returns NULL on allocation failure. */
struct lb_thread *lb_thread_new(const struct config *cfg, uint64_t seed);
void lb_thread_free(struct lb_thread *t);

/*
 * Pick a server of be for a new assignment with be->balance. Servers in
 * exclude[0..nexclude) (already tried for this request) are skipped while
 * another usable one exists. Backup servers are chosen only when no
 * non-backup server is usable. Returns NULL when nothing is usable.
 */
struct server *lb_pick(struct lb_thread *t, struct backend *be,
		       struct server *const *exclude, int nexclude);

/* May s take a new assignment now? (state ready, weight > 0, below maxconn) */
bool lb_usable(const struct server *s);

#endif
