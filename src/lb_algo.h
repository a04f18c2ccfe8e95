/*
 * lb_algo.h - what the balancing algorithms (lb.c, lb_rr.c,
 * lb_leastconn.c) share and nothing else includes: the per-thread state of
 * one backend, the candidate filter that lb_pick() narrows in passes
 * (primaries then backups, excluded servers skipped then allowed), and the
 * random generator. Each algorithm is one or two linear scans over
 * be->servers with no allocation and no lock; the only shared inputs are the
 * servers' atomics, each read once per scan.
 */
#ifndef BOLLARD_LB_ALGO_H
#define BOLLARD_LB_ALGO_H

#include "lb.h"

/* Balancing state of one backend, private to one worker thread. */
struct lb_be_state {
	int64_t *cw;   /* smooth WRR current weight, by server index (NULL when ncw == 0) */
	int ncw;       /* servers seen: length of cw; grown when be->nservers grows */
	uint64_t rng;  /* splitmix64 state */
};

/* Keep the current weights far from int64 overflow. In a stable set of
 * candidates they stay within a few times the total weight; only a long
 * churn of servers entering and leaving the set could make them drift, and
 * then starting over from zero costs one slightly uneven cycle. */
#define LB_RR_LIMIT ((int64_t)1 << 60)

/* Which servers a pass of lb_pick() may return. */
struct lb_filter {
	struct server *const *exclude;
	int nexclude;
	bool backup;   /* consider backup servers (true) or primaries (false) */
	bool strict;   /* skip the servers in exclude[] (see lb_excluded) */
};

/*
 * If s is usable and in the tier of this pass (primary or backup), its
 * effective weight (> 0), else 0; exclusion is checked by lb_excluded().
 * Every atomic is read once so that one scan sees one consistent value per
 * server even while the runtime API or the health checker changes it.
 * *conns receives the active connection count (never negative).
 */
static inline uint32_t lb_candidate(const struct server *s, const struct lb_filter *f,
				    int64_t *conns)
{
	if (s->backup != f->backup)
		return 0;
	if (atomic_load_explicit(&s->state, memory_order_relaxed) != SRV_READY)
		return 0;
	uint32_t w = atomic_load_explicit(&s->cur_weight, memory_order_relaxed);
	if (w == 0)
		return 0;
	int64_t c = atomic_load_explicit(&s->conns, memory_order_relaxed);
	if (c < 0)
		c = 0; /* a decrement raced ahead of its increment: count as idle */
	if (s->maxconn != 0 && c >= (int64_t)s->maxconn)
		return 0;
	*conns = c;
	return w;
}

/* Was s already tried for this request, and does this pass skip it? 0/1.
 * Kept apart from lb_candidate() because round robin still credits an
 * excluded server its weight (it resumes its place after the retry). */
static inline bool lb_excluded(const struct server *s, const struct lb_filter *f)
{
	if (!f->strict)
		return false;
	for (int i = 0; i < f->nexclude; i++)
		if (f->exclude[i] == s)
			return true;
	return false;
}

/* The candidate's weight if this pass may return s, else 0: usable, in the
 * right tier, and not excluded. */
static inline uint32_t lb_eligible(const struct server *s, const struct lb_filter *f,
				   int64_t *conns)
{
	uint32_t w = lb_candidate(s, f, conns);

	return w != 0 && !lb_excluded(s, f) ? w : 0;
}

/*
 * Is load a (conns_a / w_a) strictly below load b (conns_b / w_b)? Compared
 * by cross-multiplication in 128 bits: exact, no division, no overflow for
 * any 63-bit count and 32-bit weight.
 */
static inline bool lb_load_less(int64_t conns_a, uint32_t w_a, int64_t conns_b, uint32_t w_b)
{
	return (unsigned __int128)(uint64_t)conns_a * w_b <
	       (unsigned __int128)(uint64_t)conns_b * w_a;
}

/* splitmix64 (Steele, Lea, Flood, "Fast splittable pseudorandom number
 * generators", OOPSLA 2014): one add and two multiply-xorshift rounds, full
 * 2^64 period, good enough to spread requests and trivially seeded. */
static inline uint64_t lb_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* A uniform integer in [0, bound) without a division: the high half of the
 * 128-bit product (Lemire's multiply-shift; the bias is below bound/2^64). */
static inline uint64_t lb_rand_below(uint64_t *state, uint64_t bound)
{
	return (uint64_t)(((unsigned __int128)lb_rand(state) * bound) >> 64);
}

/*
 * The algorithms. Each takes the thread's state of the backend, the servers
 * array and how many of its entries to consider (n <= st->ncw for the ones
 * that use cw), and the filter of this pass. Each returns a usable server
 * of the pass's tier, not excluded unless every usable one of the tier is,
 * or NULL when the tier has no usable server. Nothing is allocated.
 */
struct server *lb_rr_pick(struct lb_be_state *st, struct server *const *servers, int n,
			  const struct lb_filter *f);
struct server *lb_leastconn_pick(struct lb_be_state *st, struct server *const *servers, int n,
				 const struct lb_filter *f);

#endif
