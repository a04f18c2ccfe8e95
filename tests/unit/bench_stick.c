/*
 * bench_stick.c - what a persistence table costs at 10 million entries:
 * heap bytes per entry (mallinfo2, and the RSS delta from /proc/self/statm)
 * for 32-, 16- and 4-byte keys (a learned cookie, a masked IPv6 address, a
 * masked IPv4 address), and inserts and lookups per second with 1 and 2
 * threads. Issue 3's target: <= 100 bytes an entry beyond a 32-byte key
 * (HAProxy: 243), <= 64 bytes an entry in all for 4- and 16-byte keys.
 *
 * Not part of `make test` (timings on a shared machine are not assertions);
 * run with `make microbench` or build/bench_stick [entries]. Bounded: about
 * a minute and < 1 GB of RAM at the default 10M entries.
 */
#include "api.h"
#include "stick.h"

#include <malloc.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t heap_bytes(void)
{
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
}

static size_t rss_bytes(void)
{
	unsigned long size = 0, res = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f) {
		if (fscanf(f, "%lu %lu", &size, &res) != 2)
			res = 0;
		fclose(f);
	}
	return res * (size_t)sysconf(_SC_PAGESIZE);
}

/* splitmix64: distinct, well-spread key bytes from an index, generated on
 * the fly so that the benchmark does not hold the keys in memory too. */
static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static void make_key(uint8_t *k, size_t klen, uint64_t i)
{
	uint64_t w;

	if (klen == 4) {
		/* a masked IPv4 address: distinct for i < 2^32 */
		uint32_t a = (uint32_t)i;

		memcpy(k, &a, 4);
		return;
	}
	for (size_t off = 0; off < klen; off += 8) {
		w = mix(i * 4 + off / 8);
		if (off == 0)
			w = i;	/* uniqueness guaranteed, not probable */
		memcpy(k + off, &w, MIN(8, klen - off));
	}
}

struct job {
	struct stick_table *t;
	size_t klen;
	uint64_t from, to;	/* key range */
	uint64_t ops;		/* lookups: how many */
	uint64_t seed;
	uint64_t hits;
	int insert;
};

static void *run(void *arg)
{
	struct job *j = arg;
	uint8_t k[64];
	uint32_t srv;

	if (j->insert) {
		for (uint64_t i = j->from; i < j->to; i++) {
			make_key(k, j->klen, i);
			if (stick_store(j->t, k, j->klen, (uint32_t)(i % 16),
					1000) < 0) {
				fprintf(stderr, "store failed\n");
				exit(1);
			}
		}
		return NULL;
	}
	for (uint64_t n = 0; n < j->ops; n++) {
		uint64_t i = j->from + mix(j->seed + n) % (j->to - j->from);

		make_key(k, j->klen, i);
		if (stick_lookup(j->t, k, j->klen, 2000, &srv)) {
			if (srv != i % 16) {
				fprintf(stderr, "wrong server\n");
				exit(1);
			}
			j->hits++;
		}
	}
	return NULL;
}

/* Run nthreads jobs splitting [0, n) (inserts) or each doing `ops`
 * lookups over the whole range; returns operations a second. */
static double phase(struct stick_table *t, size_t klen, uint64_t n,
		    int nthreads, int insert, uint64_t ops)
{
	struct job j[2];
	pthread_t th[2];
	double t0, dt;
	uint64_t total = 0;

	for (int i = 0; i < nthreads; i++) {
		j[i] = (struct job){
			.t = t, .klen = klen, .insert = insert,
			.from = insert ? n * (uint64_t)i / (uint64_t)nthreads : 0,
			.to = insert ? n * (uint64_t)(i + 1) / (uint64_t)nthreads : n,
			.ops = ops, .seed = 77 + (uint64_t)i * 1000003,
		};
	}
	t0 = now_s();
	for (int i = 0; i < nthreads; i++)
		pthread_create(&th[i], NULL, run, &j[i]);
	for (int i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	dt = now_s() - t0;
	for (int i = 0; i < nthreads; i++) {
		total += insert ? j[i].to - j[i].from : j[i].ops;
		if (!insert && j[i].hits != j[i].ops) {
			fprintf(stderr, "lookup missed: %llu of %llu hit\n",
				(unsigned long long)j[i].hits,
				(unsigned long long)j[i].ops);
			exit(1);
		}
	}
	return (double)total / dt;
}

static void bench(size_t klen, uint64_t n, int speed)
{
	size_t h0, r0;
	double ins1, ins2 = 0, look1 = 0, look2 = 0;
	struct stick_table *t;
	struct stick_stats st;
	uint64_t lops = n / 2 < 2000000 ? n / 2 : 2000000;

	malloc_trim(0);
	h0 = heap_bytes();
	r0 = rss_bytes();
	t = stick_new((uint32_t)(n + n / 16), 0, 0);
	if (!t) {
		fprintf(stderr, "stick_new failed\n");
		exit(1);
	}
	ins1 = phase(t, klen, n, 1, 1, 0);
	stick_stats(t, &st);
	printf("key %3zu B  %llu entries: heap %.1f B/entry (%.1f beyond the key),"
	       " RSS %.1f B/entry, table's own count %.1f B/entry\n",
	       klen, (unsigned long long)st.entries,
	       (double)(heap_bytes() - h0) / (double)n,
	       (double)(heap_bytes() - h0) / (double)n - (double)klen,
	       (double)(rss_bytes() - r0) / (double)n,
	       (double)st.bytes / (double)n);
	if (speed) {
		look1 = phase(t, klen, n, 1, 0, lops);
		look2 = phase(t, klen, n, 2, 0, lops);
		stick_free(t);
		t = stick_new((uint32_t)(n + n / 16), 0, 0);
		ins2 = phase(t, klen, n, 2, 1, 0);
	}
	stick_free(t);
	printf("key %3zu B  inserts/s: 1 thread %.2fM%s", klen, ins1 / 1e6,
	       speed ? "" : "\n");
	if (speed)
		printf(", 2 threads %.2fM; lookups/s (random, all hits):"
		       " 1 thread %.2fM, 2 threads %.2fM\n",
		       ins2 / 1e6, look1 / 1e6, look2 / 1e6);
}

/* The cost of stick_expire when there is nothing to do (the common case:
 * every worker calls it once per loop iteration). */
static void bench_expire_idle(void)
{
	struct stick_table *t = stick_new(1000000, 1800000, 0);
	uint8_t k[32];
	long calls = 2000000;
	double t0, dt;

	for (uint64_t i = 0; i < 100000; i++) {
		make_key(k, sizeof(k), i);
		stick_store(t, k, sizeof(k), 1, 1000);
	}
	stick_expire(t, 2000, 16);
	t0 = now_s();
	for (long i = 0; i < calls; i++)
		stick_expire(t, 2000 + (uint64_t)i / 1000, 16);
	dt = now_s() - t0;
	printf("stick_expire(budget 16) with nothing expired: %.1f ns/call\n",
	       dt / (double)calls * 1e9);
	stick_free(t);
}

int main(int argc, char **argv)
{
	uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 10000000;

	if (n < 1000 || n > 50000000) {
		fprintf(stderr, "usage: bench_stick [entries, 1000..50000000]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	bench(32, n, 1);
	bench(16, n, 0);
	bench(4, n, 1);
	bench_expire_idle();
	return 0;
}
