/*
 * bench_lb.c - how many lb_pick() calls a second each algorithm sustains
 * on one thread, with 3 and with 50 servers: the cost a new session pays
 * when persistence has no answer. Not part of `make test` (timings on a
 * shared machine are not assertions); run with `make microbench` or
 * build/bench_lb. Connections are added and released as picks go, so
 * leastconn and p2c see a moving load as they would in production.
 */
#include "api.h"
#include "lb.h"

#include <time.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double bench(enum lb_kind kind, int nservers, long picks)
{
	struct backend be = { .balance = kind, .nservers = nservers };
	struct backend *bes[1] = { &be };
	struct config cfg = { .backends = bes, .nbackends = 1 };
	struct server *srv = calloc((size_t)nservers, sizeof(*srv));
	struct server **sv = calloc((size_t)nservers, sizeof(*sv));
	struct server *inflight[64] = { 0 };

	if (!srv || !sv) {
		perror("calloc");
		exit(1);
	}
	for (int i = 0; i < nservers; i++) {
		snprintf(srv[i].name, sizeof(srv[i].name), "s%d", i);
		srv[i].weight = (uint32_t)(1 + i % 4);
		atomic_store(&srv[i].cur_weight, srv[i].weight);
		atomic_store(&srv[i].state, SRV_READY);
		srv[i].idx = i;
		srv[i].be = &be;
		sv[i] = &srv[i];
	}
	be.servers = sv;

	struct lb_thread *t = lb_thread_new(&cfg, 42);

	if (!t) {
		perror("lb_thread_new");
		exit(1);
	}
	unsigned long check = 0;
	double t0 = now_s();

	for (long i = 0; i < picks; i++) {
		struct server *s = lb_pick(t, &be, NULL, 0);
		struct server **slot = &inflight[i & 63];

		/* keep 64 requests in flight: release the oldest, add this one */
		if (*slot)
			atomic_fetch_sub_explicit(&(*slot)->conns, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&s->conns, 1, memory_order_relaxed);
		*slot = s;
		check += (unsigned long)s->idx;
	}
	double dt = now_s() - t0;

	if (check == 0 && nservers > 1)
		fprintf(stderr, "suspicious: every pick was server 0\n");
	lb_thread_free(t);
	free(sv);
	free(srv);
	return (double)picks / dt;
}

int main(int argc, char **argv)
{
	long picks = argc > 1 ? atol(argv[1]) : 5000000;
	const struct {
		enum lb_kind kind;
		const char *name;
	} algos[] = {
		{ LB_ROUNDROBIN, "roundrobin" },
		{ LB_LEASTCONN, "leastconn" },
		{ LB_RANDOM, "random" },
		{ LB_P2C, "p2c" },
	};
	const int sizes[] = { 3, 50 };

	if (picks <= 0)
		picks = 5000000;
	printf("%-12s %8s %14s %10s\n", "algorithm", "servers", "picks/s", "ns/pick");
	for (size_t a = 0; a < ARRAY_SIZE(algos); a++) {
		for (size_t z = 0; z < ARRAY_SIZE(sizes); z++) {
			double rate = bench(algos[a].kind, sizes[z], picks);

			printf("%-12s %8d %14.0f %10.1f\n", algos[a].name, sizes[z], rate,
			       1e9 / rate);
		}
	}
	return 0;
}
