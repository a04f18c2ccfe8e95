/*
 * bench_lb_hash.c - what consistent hashing costs and what it promises, in
 * numbers for BENCHMARKS.md: lb_hash_pick() calls a second for ring and
 * Maglev with 10 and 100 servers (with and without `bound 1.25`), the time
 * lb_hash_build() takes, the fraction of 1M keys that move when 1 of 10
 * servers goes (ideal 10%), and the max/mean load over 1M assignments,
 * uniform and skewed keys, with and without the bound. Not part of `make
 * test` (timings on a shared machine are not assertions); run with `make
 * microbench` or build/bench_lb_hash [KEYS].
 */
#include "api.h"
#include "lb_hash.h"

#include <time.h>

static const char *algo_name(enum lb_hash_algo a)
{
	return a == HASH_RING ? "ring" : "maglev";
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* n servers "s0".."s<n-1>", weight 100, all primaries; not built. */
static struct backend *mk_backend(enum lb_hash_algo algo, int n)
{
	struct backend *be = calloc(1, sizeof(*be));
	struct server *srv = calloc((size_t)n, sizeof(*srv));
	struct server **sv = calloc((size_t)n, sizeof(*sv));

	if (!be || !srv || !sv) {
		perror("calloc");
		exit(1);
	}
	be->balance = LB_HASH;
	be->hash_algo = algo;
	for (int i = 0; i < n; i++) {
		snprintf(srv[i].name, sizeof(srv[i].name), "s%d", i);
		srv[i].weight = 100;
		atomic_store(&srv[i].cur_weight, 100);
		atomic_store(&srv[i].state, SRV_READY);
		srv[i].idx = i;
		srv[i].be = be;
		sv[i] = &srv[i];
	}
	be->servers = sv;
	be->nservers = n;
	return be;
}

static void free_backend(struct backend *be)
{
	lb_hash_free(be);
	free(be->servers[0]);
	free(be->servers);
	free(be);
}

static uint64_t key(long i)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "key-%ld", i);

	return lb_hash_key(buf, (size_t)n);
}

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Picks a second with 64 requests in flight (each pick adds a connection,
 * the oldest in flight is released), keys from a precomputed set so that
 * hashing the key is not measured. */
static double bench_picks(enum lb_hash_algo algo, int n, float bound, long picks,
			  const uint64_t *keys, long nkeys)
{
	struct backend *be = mk_backend(algo, n);
	struct server *inflight[64] = { 0 };
	unsigned long check = 0;

	be->hash_bound = bound;
	if (lb_hash_build(be) < 0) {
		perror("lb_hash_build");
		exit(1);
	}
	double t0 = now_s();

	for (long i = 0; i < picks; i++) {
		struct server *s = lb_hash_pick(be, keys[i % nkeys], NULL, 0);
		struct server **slot = &inflight[i & 63];

		if (*slot)
			atomic_fetch_sub_explicit(&(*slot)->conns, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&s->conns, 1, memory_order_relaxed);
		*slot = s;
		check += (unsigned long)s->idx;
	}
	double dt = now_s() - t0;

	if (check == 0)
		fprintf(stderr, "suspicious: every pick was server 0\n");
	free_backend(be);
	return (double)picks / dt;
}

/* Milliseconds one lb_hash_build() takes (best of 5). */
static double bench_build(enum lb_hash_algo algo, int n)
{
	struct backend *be = mk_backend(algo, n);
	double best = 1e9;

	for (int r = 0; r < 5; r++) {
		double t0 = now_s();

		if (lb_hash_build(be) < 0) {
			perror("lb_hash_build");
			exit(1);
		}
		best = MIN(best, now_s() - t0);
	}
	free_backend(be);
	return best * 1e3;
}

/* Percentage of nkeys keys whose server changes when s3 of 10 goes (by
 * weight 0 and a rebuild, as a runtime removal would do). */
static double remap(enum lb_hash_algo algo, long nkeys)
{
	struct backend *be = mk_backend(algo, 10);
	uint8_t *home = malloc((size_t)nkeys);
	long moved = 0;

	if (!home || lb_hash_build(be) < 0) {
		perror("remap");
		exit(1);
	}
	for (long i = 0; i < nkeys; i++)
		home[i] = (uint8_t)lb_hash_pick(be, key(i), NULL, 0)->idx;
	be->servers[3]->weight = 0;
	if (lb_hash_build(be) < 0) {
		perror("lb_hash_build");
		exit(1);
	}
	for (long i = 0; i < nkeys; i++)
		moved += lb_hash_pick(be, key(i), NULL, 0)->idx != home[i];
	free(home);
	free_backend(be);
	return 100.0 * (double)moved / (double)nkeys;
}

/* Max/mean of the connections over 10 servers after nassign assignments
 * that are never released; skewed: key k of 1000 drawn as the scaled
 * product of three uniform draws (a few keys carry most of the load). */
static double max_mean(enum lb_hash_algo algo, float bound, bool skewed, long nassign)
{
	struct backend *be = mk_backend(algo, 10);
	uint64_t rng = 12345;
	int64_t max = 0;

	be->hash_bound = bound;
	if (lb_hash_build(be) < 0) {
		perror("lb_hash_build");
		exit(1);
	}
	for (long i = 0; i < nassign; i++) {
		long k = i;

		if (skewed) {
			uint64_t a = rng_next(&rng) % 1000, b = rng_next(&rng) % 1000;
			uint64_t c = rng_next(&rng) % 1000;

			k = (long)(a * b * c / 1000000);
		}
		atomic_fetch_add_explicit(&lb_hash_pick(be, key(k), NULL, 0)->conns, 1,
					  memory_order_relaxed);
	}
	for (int i = 0; i < be->nservers; i++)
		max = MAX(max, atomic_load(&be->servers[i]->conns));
	free_backend(be);
	return (double)max / ((double)nassign / 10.0);
}

int main(int argc, char **argv)
{
	long nkeys = argc > 1 ? atol(argv[1]) : 1000000;
	const enum lb_hash_algo algos[] = { HASH_RING, HASH_MAGLEV };
	const int sizes[] = { 10, 100 };
	const long picks = 5000000, npk = 65536;
	uint64_t *keys = malloc((size_t)npk * sizeof(*keys));

	if (nkeys <= 0)
		nkeys = 1000000;
	if (!keys) {
		perror("malloc");
		return 1;
	}
	for (long i = 0; i < npk; i++)
		keys[i] = key(i);

	printf("%-8s %8s %8s %14s %10s %10s\n", "algo", "servers", "bound", "picks/s", "ns/pick",
	       "build ms");
	for (size_t a = 0; a < ARRAY_SIZE(algos); a++)
		for (size_t z = 0; z < ARRAY_SIZE(sizes); z++) {
			double build = bench_build(algos[a], sizes[z]);

			for (int b = 0; b < 2; b++) {
				float bound = b ? 1.25f : 0;
				double rate = bench_picks(algos[a], sizes[z], bound, picks, keys, npk);

				printf("%-8s %8d %8s %14.0f %10.1f %10.2f\n", algo_name(algos[a]),
				       sizes[z], b ? "1.25" : "-", rate, 1e9 / rate, build);
			}
		}
	free(keys);

	printf("\n%ld keys, 10 servers, weight 100 each\n", nkeys);
	printf("%-8s %12s %14s %14s %14s %14s\n", "algo", "remap 1/10", "uniform", "uniform",
	       "skewed", "skewed");
	printf("%-8s %12s %14s %14s %14s %14s\n", "", "(ideal 10%)", "max/mean", "bound 1.25",
	       "max/mean", "bound 1.25");
	for (size_t a = 0; a < ARRAY_SIZE(algos); a++)
		printf("%-8s %11.2f%% %14.3f %14.3f %14.3f %14.3f\n", algo_name(algos[a]),
		       remap(algos[a], nkeys), max_mean(algos[a], 0, false, nkeys),
		       max_mean(algos[a], 1.25f, false, nkeys), max_mean(algos[a], 0, true, nkeys),
		       max_mean(algos[a], 1.25f, true, nkeys));
	return 0;
}
