/*
 * lb_hash.h - consistent hashing for `balance hash KEY [maglev|ring]
 * [bound F]`: the same key goes to the same server on every bollard
 * instance with the same server names and weights, and a change of the
 * server set moves only the keys it must. The placement (a Maglev lookup
 * table or a ring of points) is built off the hot path by lb_hash_build()
 * and published with one atomic pointer swap; lb_hash_pick() reads it
 * without a lock and without allocating. doc/balancing.md, "Consistent
 * hashing", tells the whole story.
 */
#ifndef BOLLARD_LB_HASH_H
#define BOLLARD_LB_HASH_H

#include "cfg.h"

/*
 * Build (or rebuild) the placement of be from its servers' names and
 * configured weights (struct server.weight; 0 = no share) with
 * be->hash_algo, and publish it in be->hash_state. Call it once before the
 * first pick and again whenever the server set or a weight changes; worker
 * threads may keep picking during the rebuild. The previous placement is
 * kept (retired, not freed) until lb_hash_free(), because a reader may
 * still be inside it. Server pointers are copied into the placement: a
 * server must not be freed before a placement without it is published and
 * the retired ones are freed. Returns 0, or -1 on allocation failure (the
 * previous placement stays in use).
 */
int lb_hash_build(struct backend *be);

/* Free the current and every retired placement of be and set
 * be->hash_state to NULL. No thread may be picking in be any more. */
void lb_hash_free(struct backend *be);

/*
 * The server for a key of hash keyhash (from lb_hash_key()): its home in
 * the placement if that server is usable (lb_usable()), not in
 * exclude[0..nexclude) and, with a bound, below its cap; otherwise the next
 * candidate of the key's probe sequence (the ring clockwise, Maglev
 * rehashes), so every key has its own fixed order of fallbacks. Backup
 * servers only when no primary can take the key; excluded servers as a
 * last resort, as lb_pick() does. Returns NULL when nothing is usable or
 * before the first lb_hash_build(). No lock, no allocation.
 */
struct server *lb_hash_pick(struct backend *be, uint64_t keyhash,
			    struct server *const *exclude, int nexclude);

/* The home of keyhash among the primaries, whatever their state: where
 * every instance with the same servers places the key when all are up
 * (the shared tables write only the bindings that differ from it). NULL
 * before the first lb_hash_build() or without a primary. No lock. */
struct server *lb_hash_home(struct backend *be, uint64_t keyhash);

/* Does be need a placement (lb_hash_build)? balance hash, or shared tables
 * placing new keyed sessions by hash (persist_init). */
static inline bool lb_hash_placed(const struct backend *be)
{
	return be->balance == LB_HASH || be->hash_persist;
}

/* Bytes held by the current placement of be (lookup table or ring points,
 * server arrays), for diagnostics and tests; 0 before the first build. */
size_t lb_hash_bytes(const struct backend *be);

/* The hash of a key (source address bytes, URI, header/cookie/parameter
 * value): 64-bit XXH3 with a fixed seed, identical on every instance. */
uint64_t lb_hash_key(const void *p, size_t n);

#endif
