/*
 * lb_hash.c - consistent hashing with bounded loads, for `balance hash`.
 *
 * The problem: requests carrying the same key (client address, URI, a
 * header, a cookie, a query parameter) should reach the same server, on
 * every bollard instance in front of the same pool, and a change of the pool
 * should move as few keys as possible. Plain `hash % N` moves almost every
 * key when N changes; consistent hashing moves only the keys of the server
 * that left (about 1/N of them) or the share the newcomer takes.
 *
 * Two placements, chosen by `balance hash KEY maglev|ring`:
 *
 * - Maglev (Eisenbud et al., "Maglev: A Fast and Reliable Software Network
 *   Load Balancer", NSDI 2016, section 3.4): a lookup table of prime size M.
 *   Each server derives from two hashes of its name an offset and a skip,
 *   which define its own permutation of the M slots (offset, offset + skip,
 *   offset + 2 skip, ... mod M: a full permutation because M is prime and
 *   0 < skip < M). Servers take turns claiming the next free slot of their
 *   permutation until the table is full. A key's server is
 *   table[key mod M]: one memory access. Turns are weighted: each round a
 *   server earns its weight in credit and claims one slot per w_max of
 *   credit, so shares follow the weights.
 *
 * - Ring (Karger et al. 1997): every server puts weight x 4 points on a
 *   64-bit circle (scaled down by a power of two when the weights are large:
 *   at most 1024 points a server on average), point j at XXH3(name, seed +
 *   j); a key's server owns the first point at or after the key's hash,
 *   clockwise. A binary search per lookup; removing a server moves exactly
 *   its own keys and no other.
 *
 * Placement depends only on the servers' names and configured weights: the
 * servers are sorted by name before anything is derived from them, so two
 * instances (or two backends) listing the same servers in any order agree
 * on every key. Addresses play no part: renumbering moves nobody.
 *
 * Servers that cannot take a key now (not usable: drain, maint, down, full,
 * effective weight 0; already tried by this request; over the bound) are
 * skipped along the key's own probe sequence: clockwise on the ring, and
 * for Maglev successive rehashes of the key, each a fresh slot of the same
 * table. Every key thus has a fixed order of fallbacks, so while its home
 * is away it sticks to the same substitute, and it goes home when home
 * comes back. After MAGLEV_PROBES misses (almost every server unusable) a
 * scan of the servers from a key-dependent position settles it.
 *
 * Bounded loads (Mirrokni, Thorup, Zadimoghaddam, "Consistent Hashing with
 * Bounded Loads", SODA 2018): with `bound F` a server whose active
 * connections would exceed ceil(F x (L + 1) x w / W) is skipped too, where L
 * is the total of active connections of the tier's usable servers, W their
 * total weight and w the server's (with equal weights: ceil(F x (L + 1) / n),
 * the paper's capacity). Since the caps add up to at least F x (L + 1) > L,
 * some server is always below its cap, and no server holds more than F times
 * its share of the new assignments. The cost is one scan of the servers per
 * pick to sum the loads; without a bound a pick reads no other server.
 *
 * Concurrency: a placement is immutable once built. lb_hash_build() makes a
 * new one and publishes it in be->hash_state with a compare-and-swap
 * (release); lb_hash_pick() loads the pointer once (acquire) and uses only
 * that placement. The replaced placement cannot be freed at once, since a
 * worker may still be reading it, and bollard has no grace-period
 * machinery: it is chained to the new one (`retired`) and freed by
 * lb_hash_free() with the backend. Rebuilds follow operator actions (add,
 * del, weight), so the list stays short; its cost is one table per rebuild
 * (256 KB for Maglev with up to 655 servers, 16 bytes a ring point: at most
 * 16 KB a server, whatever the weights).
 */
#include "api.h"
#include "lb_hash.h"
#include "lb.h"
#include "lb_algo.h"

#include <xxhash.h>

/* Fixed seed of every hash here ("bollard!"): instances must agree, so it
 * is never random and never configurable. */
#define LB_HASH_SEED 0x626f6c6c61726421ULL
/* Second seed, for the Maglev skip: independent of the offset. */
#define LB_HASH_SEED2 0x736b69702d736b70ULL
/* Ring points per unit of weight: 400 points for the default weight 100
 * keep each server's share within a few percent of its weight. */
#define RING_POINTS_PER_WEIGHT 4
/* At most this many points per server on average: weights up to 256 (and
 * any mix averaging 256) keep 4 points per unit, larger ones (up to
 * SRV_WEIGHT_MAX, 4 million points a server unscaled) are scaled down by a
 * power of two, so that the ring stays a few kilobytes a server. */
#define RING_POINTS_PER_SERVER 1024
/* Maglev rehashes tried before scanning the servers. */
#define MAGLEV_PROBES 32
/* Marks a free Maglev slot while the table fills. */
#define SLOT_FREE UINT32_MAX

struct ring_point {
	uint64_t hash;
	uint32_t srv;                 /* index in place->srv */
};

/* The placement of one tier (primaries or backups). */
struct hash_place {
	struct server **srv;          /* servers of the tier with weight > 0, by name */
	uint32_t nsrv;
	struct ring_point *pts;       /* ring: sorted by hash, then server */
	uint32_t npts;
	uint32_t *lookup;             /* maglev: slot -> index in srv */
	uint32_t m;                   /* maglev: table size (prime) */
};

struct hash_table {
	enum lb_hash_algo algo;
	struct hash_place tier[2];    /* [0] primaries, [1] backups */
	struct hash_table *retired;   /* placements this one replaced */
};

/* The splitmix64 finalizer: spreads key + k x golden ratio into the k-th
 * rehash of a key (Maglev probes beyond the first). */
static inline uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* h scaled to [0, m) by the high half of h x m: no division, and it uses
 * the best-mixed bits of the hash. */
static inline uint32_t scale(uint64_t h, uint32_t m)
{
	return (uint32_t)(((unsigned __int128)h * m) >> 64);
}

/* The hash of a key: XXH3 64 bits (stable output since xxHash 0.8.0) with
 * the fixed seed. p may be NULL when n is 0. */
uint64_t lb_hash_key(const void *p, size_t n)
{
	return XXH3_64bits_withSeed(n ? p : "", n, LB_HASH_SEED);
}

/* ---- building --------------------------------------------------------- */

static int cmp_name(const void *a, const void *b)
{
	const struct server *sa = *(struct server *const *)a;
	const struct server *sb = *(struct server *const *)b;

	return strcmp(sa->name, sb->name);
}

/* Points with equal hashes (a 2^-64 event per pair) are ordered by server,
 * i.e. by name, so that even then the order does not depend on the file. */
static int cmp_point(const void *a, const void *b)
{
	const struct ring_point *pa = a, *pb = b;

	if (pa->hash != pb->hash)
		return pa->hash < pb->hash ? -1 : 1;
	return pa->srv < pb->srv ? -1 : pa->srv > pb->srv;
}

/* Points of a server of weight w when weights are divided by 2^shift:
 * its share rounded up, at least one (a server with a weight is reachable
 * for its own keys). */
static uint64_t ring_points(uint32_t w, unsigned shift)
{
	uint64_t np = ((uint64_t)w * RING_POINTS_PER_WEIGHT + ((1ull << shift) - 1)) >> shift;

	return np ? np : 1;
}

/*
 * The ring: weight x 4 points a server, divided by the smallest power of
 * two that keeps the total within RING_POINTS_PER_SERVER a server. Shares
 * stay proportional to the weights (within a point each), the table stays
 * bounded whatever the weights (no giant allocation, no 32-bit overflow of
 * the count), and since point j of a server depends only on (name, j) a
 * weight change adds or removes that server's last points and moves
 * nothing else, as long as the divisor stays the same.
 */
static int ring_build(struct hash_place *pl)
{
	uint64_t total, budget = (uint64_t)pl->nsrv * RING_POINTS_PER_SERVER;
	unsigned shift = 0;

	/* weights are at most 2^20: 2^22 points a server, so 22 halvings
	 * reach one point each, within any budget */
	for (;; shift++) {
		total = 0;
		for (uint32_t i = 0; i < pl->nsrv; i++)
			total += ring_points(pl->srv[i]->weight, shift);
		if (total <= budget || shift >= 40)
			break;
	}
	if (total > UINT32_MAX)
		return -1;
	pl->pts = malloc((size_t)total * sizeof(*pl->pts));
	if (!pl->pts)
		return -1;
	uint32_t k = 0;

	for (uint32_t i = 0; i < pl->nsrv; i++) {
		const char *name = pl->srv[i]->name;
		size_t len = strlen(name);
		uint64_t np = ring_points(pl->srv[i]->weight, shift);

		/* point j depends on (name, j) only: a weight change adds or
		 * removes this server's last points and moves nothing else */
		for (uint64_t j = 0; j < np; j++)
			pl->pts[k++] = (struct ring_point){
				.hash = XXH3_64bits_withSeed(name, len, LB_HASH_SEED + j),
				.srv = i,
			};
	}
	qsort(pl->pts, (size_t)total, sizeof(*pl->pts), cmp_point);
	pl->npts = (uint32_t)total;
	return 0;
}

/* The Maglev table size for n servers: a prime at least 100 n, so that
 * shares stay within about 1% of the weights (the paper's advice), chosen
 * from a fixed list so that it changes only when the pool crosses 655 or
 * 6553 servers. A change of M reshuffles the table (documented). */
static uint32_t maglev_size(uint32_t n)
{
	if (n <= 655)
		return 65537;
	if (n <= 6553)
		return 655373;
	return 6553621;
}

static int maglev_build(struct hash_place *pl)
{
	uint32_t n = pl->nsrv, m = maglev_size(n);
	uint64_t *pos = calloc(n, sizeof(*pos));
	uint64_t *skip = calloc(n, sizeof(*skip));
	uint64_t *credit = calloc(n, sizeof(*credit));
	uint32_t wmax = 0;
	int rc = -1;

	pl->lookup = malloc((size_t)m * sizeof(*pl->lookup));
	if (!pos || !skip || !credit || !pl->lookup)
		goto out;
	for (uint32_t i = 0; i < m; i++)
		pl->lookup[i] = SLOT_FREE;
	for (uint32_t i = 0; i < n; i++) {
		const char *name = pl->srv[i]->name;
		size_t len = strlen(name);

		/* Maglev 3.4: offset = h1(name) mod M, skip = h2(name) mod (M-1) + 1 */
		pos[i] = XXH3_64bits_withSeed(name, len, LB_HASH_SEED) % m;
		skip[i] = XXH3_64bits_withSeed(name, len, LB_HASH_SEED2) % (m - 1) + 1;
		wmax = MAX(wmax, pl->srv[i]->weight);
	}
	/* Rounds in name order; in each, a server earns its weight and claims
	 * one slot per wmax of credit: the heaviest server claims one slot a
	 * round, a server of half its weight one every other round. Every
	 * permutation covers all M slots, so the inner search ends. */
	uint32_t filled = 0;

	while (filled < m) {
		for (uint32_t i = 0; i < n && filled < m; i++) {
			credit[i] += pl->srv[i]->weight;
			while (credit[i] >= wmax && filled < m) {
				credit[i] -= wmax;
				while (pl->lookup[pos[i]] != SLOT_FREE)
					pos[i] = (pos[i] + skip[i]) % m;
				pl->lookup[pos[i]] = i;
				pos[i] = (pos[i] + skip[i]) % m;
				filled++;
			}
		}
	}
	pl->m = m;
	rc = 0;
out:
	free(pos);
	free(skip);
	free(credit);
	return rc;
}

static void place_free(struct hash_place *pl)
{
	free(pl->srv);
	free(pl->pts);
	free(pl->lookup);
}

static void table_free(struct hash_table *t)
{
	while (t) {
		struct hash_table *next = t->retired;

		place_free(&t->tier[0]);
		place_free(&t->tier[1]);
		free(t);
		t = next;
	}
}

/* The placement of the servers of one tier (backup or not) with a
 * configured weight above 0. 0, or -1 when out of memory. */
static int place_build(struct hash_place *pl, enum lb_hash_algo algo,
		       struct server *const *servers, int n, bool backup)
{
	pl->srv = calloc((size_t)MAX(n, 1), sizeof(*pl->srv));
	if (!pl->srv)
		return -1;
	for (int i = 0; i < n; i++)
		if (servers[i]->backup == backup && servers[i]->weight > 0)
			pl->srv[pl->nsrv++] = servers[i];
	if (pl->nsrv == 0)
		return 0;
	/* the order of the file must not matter: everything below is
	 * derived from this name order */
	qsort(pl->srv, pl->nsrv, sizeof(*pl->srv), cmp_name);
	return algo == HASH_RING ? ring_build(pl) : maglev_build(pl);
}

/*
 * Build the placement of be's current servers with be->hash_algo and
 * publish it (see lb_hash.h). Several builders may run at once: the
 * compare-and-swap chains every replaced placement, none is lost.
 */
int lb_hash_build(struct backend *be)
{
	int n = __atomic_load_n(&be->nservers, __ATOMIC_ACQUIRE);
	struct server *const *servers = __atomic_load_n(&be->servers, __ATOMIC_ACQUIRE);
	struct hash_table *t = calloc(1, sizeof(*t));

	if (!t)
		return -1;
	t->algo = be->hash_algo;
	if (place_build(&t->tier[0], t->algo, servers, n, false) < 0 ||
	    place_build(&t->tier[1], t->algo, servers, n, true) < 0) {
		table_free(t);
		return -1;
	}
	struct hash_table *old = __atomic_load_n((struct hash_table **)&be->hash_state,
						 __ATOMIC_ACQUIRE);

	do {
		t->retired = old;
	} while (!__atomic_compare_exchange_n((struct hash_table **)&be->hash_state, &old, t,
					      false, __ATOMIC_RELEASE, __ATOMIC_ACQUIRE));
	return 0;
}

size_t lb_hash_bytes(const struct backend *be)
{
	const struct hash_table *t = __atomic_load_n((struct hash_table *const *)&be->hash_state,
						     __ATOMIC_ACQUIRE);
	size_t n = 0;

	for (int i = 0; t && i < 2; i++)
		n += (size_t)t->tier[i].nsrv * sizeof(*t->tier[i].srv) +
		     (size_t)t->tier[i].npts * sizeof(*t->tier[i].pts) +
		     (size_t)t->tier[i].m * sizeof(*t->tier[i].lookup);
	return n;
}

void lb_hash_free(struct backend *be)
{
	struct hash_table *t = __atomic_exchange_n((struct hash_table **)&be->hash_state, NULL,
						   __ATOMIC_ACQ_REL);

	table_free(t);
}

/* ---- picking ---------------------------------------------------------- */

/* One pass's view: the filter, and with a bound the loads of the tier. */
struct pick_ctx {
	const struct lb_filter *f;
	uint64_t bound;               /* F x 1000, 0 = unbounded */
	uint64_t load;                /* L + 1: the tier's active connections, plus this one */
	uint64_t wsum;                /* W: the tier's total effective weight */
};

/* May s take the key in this pass? Usable, in the tier, not excluded and,
 * with a bound, conns + 1 <= ceil(F (L + 1) w / W), i.e. (integers, F
 * scaled by 1000) conns x 1000 W < F1000 (L + 1) w. 128-bit products: no
 * overflow for 63-bit counts and 32-bit weights. */
static bool fits(const struct server *s, const struct pick_ctx *c, bool bounded)
{
	int64_t conns;
	uint32_t w = lb_eligible(s, c->f, &conns);

	if (w == 0)
		return false;
	if (!bounded)
		return true;
	return (unsigned __int128)(uint64_t)conns * 1000 * c->wsum <
	       (unsigned __int128)c->bound * c->load * w;
}

/* Last resort of a pass: the servers in name order from a position the key
 * chooses, first with the bound, then without (only concurrent picks racing
 * past the caps can get there). */
static struct server *scan(const struct hash_place *pl, uint64_t keyhash,
			   const struct pick_ctx *c)
{
	uint32_t start = scale(mix64(keyhash), pl->nsrv);

	for (int bounded = c->bound != 0; bounded >= 0; bounded--)
		for (uint32_t i = 0; i < pl->nsrv; i++) {
			struct server *s = pl->srv[(start + i) % pl->nsrv];

			if (fits(s, c, bounded))
				return s;
		}
	return NULL;
}

/* The first point at or after keyhash (npts: past the top, wrap to 0). */
static uint32_t ring_first(const struct hash_place *pl, uint64_t keyhash)
{
	uint32_t lo = 0, hi = pl->npts;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (pl->pts[mid].hash < keyhash)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct server *ring_pick(const struct hash_place *pl, uint64_t keyhash,
				const struct pick_ctx *c)
{
	uint32_t lo = ring_first(pl, keyhash);

	/* Clockwise. Every server of the tier owns points, so one turn sees
	 * them all; a full turn happens only when none fits. */
	for (uint32_t k = 0, i = lo; k < pl->npts; k++, i++) {
		if (i == pl->npts)
			i = 0;
		struct server *s = pl->srv[pl->pts[i].srv];

		if (fits(s, c, c->bound != 0))
			return s;
	}
	return scan(pl, keyhash, c);
}

static struct server *maglev_pick(const struct hash_place *pl, uint64_t keyhash,
				  const struct pick_ctx *c)
{
	for (uint64_t k = 0; k < MAGLEV_PROBES; k++) {
		uint64_t h = k == 0 ? keyhash : mix64(keyhash + k * 0x9e3779b97f4a7c15ULL);
		struct server *s = pl->srv[pl->lookup[scale(h, pl->m)]];

		if (fits(s, c, c->bound != 0))
			return s;
	}
	return scan(pl, keyhash, c);
}

/* One pass of lb_hash_pick() over one tier. */
static struct server *pick_pass(const struct hash_table *t, const struct hash_place *pl,
				uint64_t keyhash, struct pick_ctx *c)
{
	if (pl->nsrv == 0)
		return NULL;
	if (c->bound) {
		uint64_t load = 0, wsum = 0;

		for (uint32_t i = 0; i < pl->nsrv; i++) {
			int64_t conns;
			/* excluded servers count: their connections are load */
			uint32_t w = lb_candidate(pl->srv[i], c->f, &conns);

			if (w == 0)
				continue;
			load += (uint64_t)conns;
			wsum += w;
		}
		if (wsum == 0)
			return NULL;
		c->load = load + 1;
		c->wsum = wsum;
	}
	return t->algo == HASH_RING ? ring_pick(pl, keyhash, c) : maglev_pick(pl, keyhash, c);
}

struct server *lb_hash_home(struct backend *be, uint64_t keyhash)
{
	const struct hash_table *t = __atomic_load_n((struct hash_table **)&be->hash_state,
						     __ATOMIC_ACQUIRE);
	const struct hash_place *pl = t ? &t->tier[0] : NULL;

	if (!pl || pl->nsrv == 0)
		return NULL;
	if (t->algo == HASH_RING) {
		uint32_t lo = ring_first(pl, keyhash);

		return pl->srv[pl->pts[lo == pl->npts ? 0 : lo].srv];
	}
	return pl->srv[pl->lookup[scale(keyhash, pl->m)]];
}

/*
 * The server for keyhash among be's servers (see lb_hash.h), in the passes
 * of lb_pick(): primaries, then backups, not excluded; then the same
 * allowing excluded servers. Returns a server of be or NULL.
 */
struct server *lb_hash_pick(struct backend *be, uint64_t keyhash,
			    struct server *const *exclude, int nexclude)
{
	const struct hash_table *t = __atomic_load_n((struct hash_table **)&be->hash_state,
						     __ATOMIC_ACQUIRE);

	if (unlikely(!t))
		return NULL;
	struct lb_filter f = { .exclude = exclude, .nexclude = nexclude };
	/* F in thousandths: integer caps, and 1.25 is exact */
	struct pick_ctx c = {
		.f = &f,
		.bound = be->hash_bound > 0 ? (uint64_t)(be->hash_bound * 1000.0f + 0.5f) : 0,
	};

	for (int pass = 0; pass < 4; pass++) {
		f.backup = (pass & 1) != 0;
		f.strict = pass < 2;
		if (!f.strict && nexclude == 0)
			continue; /* the lenient pass would see the same servers */
		struct server *s = pick_pass(t, &t->tier[f.backup], keyhash, &c);

		if (s)
			return s;
	}
	return NULL;
}
