/*
 * lb.c - choosing a server for a request that persistence did not place.
 *
 * lb_pick() is asked only when no persistence method had an answer (a new
 * session, or a session whose server is gone). It decides *which servers may
 * be chosen* and leaves *which one of them* to the backend's algorithm:
 *
 *   1. usable primaries not already tried for this request (exclude[]);
 *   2. usable backup servers not already tried: a backup takes over when
 *      every primary is unusable or has already failed this request (a
 *      connect failure is retried on another server, SPEC 3.2); backups
 *      are balanced among themselves with the same algorithm;
 *   3. and 4. the same, allowing servers already tried: retrying the only
 *      server that can take the request beats failing it;
 *   otherwise NULL, and the caller answers 503.
 *
 * The algorithms: smooth weighted round robin (lb_rr.c), least connections
 * relative to weight (lb_leastconn.c), and here weighted random and power of
 * two choices (p2c: draw two servers by weight, keep the less loaded one;
 * Mitzenmacher, "The Power of Two Choices in Randomized Load Balancing",
 * 2001). Every algorithm honours the weights; weight 0 is never picked.
 *
 * Each worker thread owns a struct lb_thread: for every backend, the smooth
 * round robin current weights and a random generator. No lock, no
 * allocation per pick, at most a few linear scans of the backend's servers.
 * The state grows lazily when a server or backend is added at runtime: the
 * only reallocation happens on the first pick after the growth.
 */
#include "api.h"
#include "lb.h"
#include "lb_algo.h"

struct lb_thread {
	uint64_t seed;
	int nbe;                   /* entries of be[] */
	struct lb_be_state *be;    /* by backend index */
	struct lb_be_state spare;  /* used when growing be[] failed: no cw, just a generator */
};

/* Seed of backend idx: distinct, reproducible streams per backend, so a
 * test's sequence on one backend does not depend on traffic to another. */
static uint64_t be_seed(uint64_t seed, int idx)
{
	uint64_t s = seed ^ ((uint64_t)(idx + 1) * 0xd1b54a32d192ed03ULL);

	return lb_rand(&s);
}

/* Grow st->cw to n entries (new ones start at 0). Returns 0, or -1 when out
 * of memory (st unchanged). */
static int be_state_grow(struct lb_be_state *st, int n)
{
	if (n <= st->ncw)
		return 0;
	int64_t *cw = realloc(st->cw, (size_t)n * sizeof(*cw));

	if (!cw)
		return -1;
	memset(cw + st->ncw, 0, (size_t)(n - st->ncw) * sizeof(*cw));
	st->cw = cw;
	st->ncw = n;
	return 0;
}

/* Grow t->be[] to n backends. Returns 0 or -1 when out of memory. */
static int thread_grow(struct lb_thread *t, int n)
{
	if (n <= t->nbe)
		return 0;
	struct lb_be_state *be = realloc(t->be, (size_t)n * sizeof(*be));

	if (!be)
		return -1;
	for (int i = t->nbe; i < n; i++)
		be[i] = (struct lb_be_state){ .cw = NULL, .ncw = 0, .rng = be_seed(t->seed, i) };
	t->be = be;
	t->nbe = n;
	return 0;
}

/*
 * Per-thread balancing state for every backend of cfg (cfg may be NULL:
 * everything is then created on first use). seed makes the random choices
 * reproducible. Returns NULL on allocation failure; the caller owns the
 * result and frees it with lb_thread_free().
 */
struct lb_thread *lb_thread_new(const struct config *cfg, uint64_t seed)
{
	struct lb_thread *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->seed = seed;
	t->spare.rng = be_seed(seed, -1);
	if (!cfg)
		return t;
	if (thread_grow(t, cfg->nbackends) < 0)
		goto fail;
	for (int i = 0; i < cfg->nbackends; i++) {
		if (be_state_grow(&t->be[i], cfg->backends[i]->nservers) < 0)
			goto fail;
	}
	return t;
fail:
	lb_thread_free(t);
	return NULL;
}

/* Free t and everything it holds; NULL is accepted. */
void lb_thread_free(struct lb_thread *t)
{
	if (!t)
		return;
	for (int i = 0; i < t->nbe; i++)
		free(t->be[i].cw);
	free(t->be);
	free(t);
}

/* May s take a new assignment now? 1 when its state is ready, its effective
 * weight is above 0 and it is below its maxconn (0 = unlimited), else 0. */
bool lb_usable(const struct server *s)
{
	if (atomic_load_explicit(&s->state, memory_order_relaxed) != SRV_READY)
		return false;
	if (atomic_load_explicit(&s->cur_weight, memory_order_relaxed) == 0)
		return false;
	if (s->maxconn == 0)
		return true;
	return atomic_load_explicit(&s->conns, memory_order_relaxed) < (int64_t)s->maxconn;
}

/*
 * Draw a candidate of f with probability weight / total, where total is the
 * sum of the candidates' weights seen by the caller's scan and last is the
 * last candidate of that scan. *w receives the weight of the drawn server.
 * The weights may have changed since that scan; if the draw falls past the
 * end, last (a candidate a moment ago) is the answer.
 */
static struct server *draw(uint64_t *rng, struct server *const *servers, int n,
			   const struct lb_filter *f, uint64_t total, int last, uint32_t *w)
{
	uint64_t r = lb_rand_below(rng, total);

	for (int i = 0; i < n; i++) {
		int64_t conns;
		uint32_t wi = lb_eligible(servers[i], f, &conns);

		if (wi == 0)
			continue;
		if (r < wi) {
			*w = wi;
			return servers[i];
		}
		r -= wi;
	}
	/* the weight only serves p2c's load comparison; a weight of 0 would make
	 * any load compare as the lowest, so count it as 1 */
	*w = atomic_load_explicit(&servers[last]->cur_weight, memory_order_relaxed);
	if (*w == 0)
		*w = 1;
	return servers[last];
}

/* Sum of the candidates' weights; *last gets the index of the last one
 * (-1 when there is none). */
static uint64_t total_weight(struct server *const *servers, int n, const struct lb_filter *f,
			     int *last)
{
	uint64_t total = 0;

	*last = -1;
	for (int i = 0; i < n; i++) {
		int64_t conns;
		uint32_t w = lb_eligible(servers[i], f, &conns);

		if (w == 0)
			continue;
		total += w;
		*last = i;
	}
	return total;
}

/* Weighted random: each candidate with probability weight / total. */
static struct server *random_pick(struct lb_be_state *st, struct server *const *servers, int n,
				  const struct lb_filter *f)
{
	int last;
	uint64_t total = total_weight(servers, n, f, &last);
	uint32_t w;

	if (total == 0)
		return NULL;
	return draw(&st->rng, servers, n, f, total, last, &w);
}

/*
 * Power of two choices: two weighted draws, keep the one with the smaller
 * conns / weight; on a tie (idle servers) the first draw, so that at rest
 * the choice is plain weighted random and the weights are honoured in
 * expectation. Drawing by weight, not uniformly, is what makes a heavy
 * server both drawn more often and allowed more connections.
 */
static struct server *p2c_pick(struct lb_be_state *st, struct server *const *servers, int n,
			       const struct lb_filter *f)
{
	int last;
	uint64_t total = total_weight(servers, n, f, &last);
	uint32_t wa, wb;

	if (total == 0)
		return NULL;
	struct server *a = draw(&st->rng, servers, n, f, total, last, &wa);
	struct server *b = draw(&st->rng, servers, n, f, total, last, &wb);

	if (a == b)
		return a;
	int64_t ca = atomic_load_explicit(&a->conns, memory_order_relaxed);
	int64_t cb = atomic_load_explicit(&b->conns, memory_order_relaxed);

	ca = MAX(ca, 0);
	cb = MAX(cb, 0);
	return lb_load_less(cb, wb, ca, wa) ? b : a;
}

/* One pass of lb_pick() with the backend's algorithm. */
static struct server *pick_pass(struct lb_be_state *st, enum lb_kind kind,
				struct server *const *servers, int n, const struct lb_filter *f)
{
	/* The algorithms that keep current weights need one per server; if
	 * growing the array failed, weighted random needs none. */
	if (n > st->ncw && (kind == LB_ROUNDROBIN || kind == LB_LEASTCONN))
		kind = LB_RANDOM;
	switch (kind) {
	case LB_ROUNDROBIN:
		return lb_rr_pick(st, servers, n, f);
	case LB_LEASTCONN:
		return lb_leastconn_pick(st, servers, n, f);
	case LB_P2C:
		return p2c_pick(st, servers, n, f);
	case LB_RANDOM:
	default:
		return random_pick(st, servers, n, f);
	}
}

/*
 * Pick a server of be for a new assignment with be->balance, as described
 * at the top of this file. exclude[0..nexclude) are the servers already
 * tried for this request (may be NULL when nexclude is 0). Returns a server
 * of be (owned by the configuration) or NULL when none is usable.
 */
struct server *lb_pick(struct lb_thread *t, struct backend *be,
		       struct server *const *exclude, int nexclude)
{
	/* A server added at runtime is published by storing the (possibly
	 * new) array and then the count, with release semantics; read them
	 * once, in the opposite order, and use only these two values. */
	int n = __atomic_load_n(&be->nservers, __ATOMIC_ACQUIRE);
	struct server *const *servers = __atomic_load_n(&be->servers, __ATOMIC_ACQUIRE);
	struct lb_be_state *st = &t->spare;

	BUG_ON(be->idx < 0);
	if (likely(be->idx < t->nbe) || thread_grow(t, be->idx + 1) == 0) {
		st = &t->be[be->idx];
		if (unlikely(n > st->ncw))
			(void)be_state_grow(st, n); /* on failure pick_pass() copes */
	}

	struct lb_filter f = { .exclude = exclude, .nexclude = nexclude };

	for (int pass = 0; pass < 4; pass++) {
		f.backup = (pass & 1) != 0;
		f.strict = pass < 2;
		if (f.strict == false && nexclude == 0)
			continue; /* the lenient pass would see the same servers */
		struct server *s = pick_pass(st, be->balance, servers, n, &f);

		if (s)
			return s;
	}
	return NULL;
}
