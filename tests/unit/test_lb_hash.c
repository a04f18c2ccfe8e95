/*
 * test_lb_hash.c - consistent hashing (lb_hash.c): placement that depends
 * only on names and weights, how many keys move when a server leaves or
 * joins, weighted shares, bounded loads under skewed keys, the fallbacks
 * (unusable, excluded, backup servers) and rebuilding while another thread
 * picks. Keys are hashes of "key-<i>": every count here is deterministic,
 * the margins only absorb the choice of hash, not luck.
 */
#include "api.h"
#include "lb_hash.h"

#include <pthread.h>
#include <stdarg.h>
#include <setjmp.h>
#include <cmocka.h>

#define NKEYS 100000

static const enum lb_hash_algo algos[] = { HASH_RING, HASH_MAGLEV };

/* A backend of the servers named names[0..n) with weights w (NULL = 100),
 * those with index >= nprim being backups; not built. */
static struct backend *mk_backend(enum lb_hash_algo algo, int n, const char *const *names,
				  const uint32_t *w, int nprim)
{
	struct backend *be = calloc(1, sizeof(*be));

	assert_non_null(be);
	be->balance = LB_HASH;
	be->hash_algo = algo;
	be->servers = calloc((size_t)n, sizeof(*be->servers));
	assert_non_null(be->servers);
	be->nservers = n;
	for (int i = 0; i < n; i++) {
		struct server *s = calloc(1, sizeof(*s));

		assert_non_null(s);
		snprintf(s->name, sizeof(s->name), "%s", names[i]);
		s->weight = w ? w[i] : 100;
		atomic_store(&s->cur_weight, s->weight);
		atomic_store(&s->state, SRV_READY);
		s->backup = i >= nprim;
		s->idx = i;
		s->be = be;
		be->servers[i] = s;
	}
	return be;
}

static void free_backend(struct backend *be)
{
	lb_hash_free(be);
	assert_null(be->hash_state);
	for (int i = 0; i < be->nservers; i++)
		free(be->servers[i]);
	free(be->servers);
	free(be);
}

static uint64_t key(int i)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "key-%d", i);

	return lb_hash_key(buf, (size_t)n);
}

static const char *pick_name(struct backend *be, uint64_t h)
{
	struct server *s = lb_hash_pick(be, h, NULL, 0);

	assert_non_null(s);
	return s->name;
}

static const char *const names11[] = { "app0", "app1", "app2", "app3", "app4", "app5",
				       "app6", "app7", "app8", "app9", "app10" };

/* ---- the key hash ---------------------------------------------------- */

static void test_key_hash(void **state)
{
	(void)state;
	/* The seed is fixed: this value must never change, or instances of
	 * different versions would disagree on every key. */
	assert_true(lb_hash_key("abc", 3) == lb_hash_key("abc", 3));
	assert_true(lb_hash_key("abc", 3) != lb_hash_key("abd", 3));
	assert_true(lb_hash_key("", 0) == lb_hash_key(NULL, 0));
	assert_true(lb_hash_key("abc", 3) == 0xcc4db1d843eaf31cULL);
}

static void test_not_built(void **state)
{
	(void)state;
	struct backend *be = mk_backend(HASH_MAGLEV, 3, names11, NULL, 3);

	assert_null(lb_hash_pick(be, key(1), NULL, 0));
	free_backend(be);
}

/* ---- placement depends only on names and weights ------------------------- */

static void test_order_independent(void **state)
{
	(void)state;
	static const char *const shuffled[] = { "app7", "app2", "app9", "app0", "app5",
						"app3", "app8", "app1", "app6", "app4" };
	uint32_t w1[10], w2[10];

	/* different weights per name, so the shuffle must carry them along */
	for (int i = 0; i < 10; i++) {
		w1[i] = (uint32_t)(50 + 10 * i);
		w2[i] = (uint32_t)(50 + 10 * (shuffled[i][3] - '0'));
	}
	for (size_t a = 0; a < ARRAY_SIZE(algos); a++) {
		struct backend *be1 = mk_backend(algos[a], 10, names11, w1, 10);
		struct backend *be2 = mk_backend(algos[a], 10, shuffled, w2, 10);

		assert_int_equal(lb_hash_build(be1), 0);
		assert_int_equal(lb_hash_build(be2), 0);
		for (int i = 0; i < NKEYS; i++)
			assert_string_equal(pick_name(be1, key(i)), pick_name(be2, key(i)));
		/* a rebuild of the same servers changes nothing either */
		assert_int_equal(lb_hash_build(be1), 0);
		for (int i = 0; i < NKEYS; i += 7)
			assert_string_equal(pick_name(be1, key(i)), pick_name(be2, key(i)));
		free_backend(be1);
		free_backend(be2);
	}
}

/* ---- remapping ------------------------------------------------------------ */

static void test_remove_one_of_ten(void **state)
{
	(void)state;
	/* names11 without app3 */
	static const char *const nine[] = { "app0", "app1", "app2", "app4", "app5",
					    "app6", "app7", "app8", "app9" };

	for (size_t a = 0; a < ARRAY_SIZE(algos); a++) {
		struct backend *ten = mk_backend(algos[a], 10, names11, NULL, 10);
		struct backend *be9 = mk_backend(algos[a], 9, nine, NULL, 9);
		int moved = 0, moved_other = 0, owned = 0;

		assert_int_equal(lb_hash_build(ten), 0);
		assert_int_equal(lb_hash_build(be9), 0);
		for (int i = 0; i < NKEYS; i++) {
			const char *before = pick_name(ten, key(i));
			const char *after = pick_name(be9, key(i));
			bool was_app3 = strcmp(before, "app3") == 0;

			owned += was_app3;
			if (strcmp(before, after) != 0) {
				moved++;
				moved_other += !was_app3;
			}
		}
		print_message("%s: removed 1 of 10: %.2f%% moved (it owned %.2f%%), "
			      "%.3f%% of the others' keys moved\n",
			      algos[a] == HASH_RING ? "ring" : "maglev", 100.0 * moved / NKEYS,
			      100.0 * owned / NKEYS, 100.0 * moved_other / NKEYS);
		assert_true(moved <= NKEYS * 13 / 100);
		assert_true(moved >= owned); /* each of app3's keys had to move */
		if (algos[a] == HASH_RING)
			assert_int_equal(moved_other, 0);
		else
			assert_true(moved_other < NKEYS * 2 / 100);
		free_backend(ten);
		free_backend(be9);
	}
}

/* Removing a server at runtime: weight 0 (or deleting it) and a rebuild of
 * the same backend give the same answer as a backend without it. */
static void test_rebuild_same_backend(void **state)
{
	(void)state;
	for (size_t a = 0; a < ARRAY_SIZE(algos); a++) {
		struct backend *be = mk_backend(algos[a], 10, names11, NULL, 10);
		const char **before = calloc(NKEYS, sizeof(*before));
		int moved = 0;

		assert_non_null(before);
		assert_int_equal(lb_hash_build(be), 0);
		for (int i = 0; i < NKEYS; i++)
			before[i] = pick_name(be, key(i));
		be->servers[3]->weight = 0;
		assert_int_equal(lb_hash_build(be), 0);
		for (int i = 0; i < NKEYS; i++) {
			const char *now = pick_name(be, key(i));

			assert_string_not_equal(now, "app3");
			moved += strcmp(now, before[i]) != 0;
		}
		assert_true(moved <= NKEYS * 13 / 100);
		/* and back: everyone goes home */
		be->servers[3]->weight = 100;
		assert_int_equal(lb_hash_build(be), 0);
		for (int i = 0; i < NKEYS; i++)
			assert_string_equal(pick_name(be, key(i)), before[i]);
		free(before);
		free_backend(be);
	}
}

static void test_add_eleventh(void **state)
{
	(void)state;
	for (size_t a = 0; a < ARRAY_SIZE(algos); a++) {
		struct backend *ten = mk_backend(algos[a], 10, names11, NULL, 10);
		struct backend *be11 = mk_backend(algos[a], 11, names11, NULL, 11);
		int moved = 0, elsewhere = 0;

		assert_int_equal(lb_hash_build(ten), 0);
		assert_int_equal(lb_hash_build(be11), 0);
		for (int i = 0; i < NKEYS; i++) {
			const char *before = pick_name(ten, key(i));
			const char *after = pick_name(be11, key(i));

			if (strcmp(before, after) != 0) {
				moved++;
				elsewhere += strcmp(after, "app10") != 0;
			}
		}
		print_message("%s: 11th server takes %.2f%% (ideal %.2f%%)\n",
			      algos[a] == HASH_RING ? "ring" : "maglev", 100.0 * moved / NKEYS,
			      100.0 / 11);
		/* 1/11 = 9.09%, +-3 points */
		assert_in_range(moved, NKEYS * 609 / 10000, NKEYS * 1209 / 10000);
		if (algos[a] == HASH_RING)
			assert_int_equal(elsewhere, 0);
		else
			assert_true(elsewhere < NKEYS * 2 / 100);
		free_backend(ten);
		free_backend(be11);
	}
}

/* ---- weights -------------------------------------------------------------- */

static void test_weights(void **state)
{
	(void)state;
	const uint32_t w[] = { 100, 200, 0 };

	for (size_t a = 0; a < ARRAY_SIZE(algos); a++) {
		struct backend *be = mk_backend(algos[a], 3, names11, w, 3);
		int n[3] = { 0 };

		assert_int_equal(lb_hash_build(be), 0);
		for (int i = 0; i < NKEYS; i++)
			n[lb_hash_pick(be, key(i), NULL, 0)->idx]++;
		print_message("%s: weights 100:200 -> %d:%d\n",
			      algos[a] == HASH_RING ? "ring" : "maglev", n[0], n[1]);
		assert_int_equal(n[2], 0); /* weight 0: no share */
		/* 1:2 within 10%: n1 / n0 in [1.8, 2.2] */
		assert_true(n[1] * 10 >= n[0] * 18 && n[1] * 10 <= n[0] * 22);
		free_backend(be);
	}
}

/* Weights up to 1000000 (issue 9 item 18): the shares follow them, and the
 * placement stays bounded (no giant ring, no 32-bit overflow of its count). */
static void test_large_weights(void **state)
{
	(void)state;
	const uint32_t w[] = { 1000000, 500000, 250000 };

	for (size_t a = 0; a < ARRAY_SIZE(algos); a++) {
		struct backend *be = mk_backend(algos[a], 3, names11, w, 3);
		int n[3] = { 0 };

		assert_int_equal(lb_hash_build(be), 0);
		/* ring: at most 1024 points a server; maglev: its fixed table */
		assert_true(lb_hash_bytes(be) <= (algos[a] == HASH_RING ? 3 * 1024 * 16 + 64 :
						  65537 * 4 + 64));
		for (int i = 0; i < NKEYS; i++)
			n[lb_hash_pick(be, key(i), NULL, 0)->idx]++;
		print_message("%s: weights 4:2:1 -> %d:%d:%d\n",
			      algos[a] == HASH_RING ? "ring" : "maglev", n[0], n[1], n[2]);
		/* 4:2:1 within 10% */
		assert_true(n[0] * 10 >= n[1] * 18 && n[0] * 10 <= n[1] * 22);
		assert_true(n[1] * 10 >= n[2] * 18 && n[1] * 10 <= n[2] * 22);
		free_backend(be);
	}

	/* the common 100/200/300 and the same ratios written large place alike */
	const uint32_t small[] = { 100, 200, 300 }, large[] = { 100000, 200000, 300000 };
	struct backend *bs = mk_backend(HASH_MAGLEV, 3, names11, small, 3);
	struct backend *bl = mk_backend(HASH_MAGLEV, 3, names11, large, 3);
	assert_int_equal(lb_hash_build(bs), 0);
	assert_int_equal(lb_hash_build(bl), 0);
	for (int i = 0; i < NKEYS; i++)
		assert_string_equal(pick_name(bs, key(i)), pick_name(bl, key(i)));
	free_backend(bs);
	free_backend(bl);

	/* 1100 servers of the largest weight: 4.4 billion ring points unscaled */
	enum { N = 1100 };
	static char names[N][16];
	static const char *np[N];
	static uint32_t wmax[N];

	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "s%d", i);
		np[i] = names[i];
		wmax[i] = 1000000;
	}
	struct backend *be = mk_backend(HASH_RING, N, np, wmax, N);
	assert_int_equal(lb_hash_build(be), 0);
	assert_true(lb_hash_bytes(be) <= (size_t)N * (1024 * 16 + 8));
	assert_non_null(lb_hash_pick(be, key(1), NULL, 0));
	free_backend(be);
}

/* ---- bounded loads -------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* A skewed key of 0..999: the product of three uniform draws, scaled, so
 * that low keys are far more popular (key 0 alone gets about 6% of the
 * draws, as much as the 500 least popular together). */
static int skewed_key(uint64_t *rng)
{
	uint64_t a = rng_next(rng) % 1000, b = rng_next(rng) % 1000, c = rng_next(rng) % 1000;

	return (int)(a * b * c / 1000000);
}

/* Assign nassign skewed keys, each adding a connection to its server; the
 * largest load over the mean (mean = nassign / n). */
static double run_skewed(struct backend *be, int nassign, int64_t *max_out)
{
	uint64_t rng = 12345;
	int64_t max = 0;

	for (int i = 0; i < be->nservers; i++)
		atomic_store(&be->servers[i]->conns, 0);
	for (int i = 0; i < nassign; i++) {
		struct server *s = lb_hash_pick(be, key(skewed_key(&rng)), NULL, 0);

		assert_non_null(s);
		atomic_fetch_add(&s->conns, 1);
	}
	for (int i = 0; i < be->nservers; i++)
		max = MAX(max, atomic_load(&be->servers[i]->conns));
	*max_out = max;
	return (double)max / ((double)nassign / be->nservers);
}

static void test_bounded_loads(void **state)
{
	(void)state;
	const int nassign = 20000;

	for (size_t a = 0; a < ARRAY_SIZE(algos); a++) {
		struct backend *be = mk_backend(algos[a], 10, names11, NULL, 10);
		int64_t max_free, max_bound;

		assert_int_equal(lb_hash_build(be), 0);
		double r_free = run_skewed(be, nassign, &max_free);

		be->hash_bound = 1.25f;
		double r_bound = run_skewed(be, nassign, &max_bound);

		print_message("%s: skewed keys, max/mean %.2f unbounded, %.3f with bound 1.25\n",
			      algos[a] == HASH_RING ? "ring" : "maglev", r_free, r_bound);
		/* the skew is real: without the bound some server is overloaded */
		assert_true(r_free > 1.25);
		/* avg = 2000: cap ceil(1.25 x 2000) + 1 */
		assert_true(max_bound <= 2500 + 1);
		free_backend(be);
	}
}

/* ---- fallbacks: unusable, excluded, backup --------------------------------- */

static void test_unusable_skipped(void **state)
{
	(void)state;
	for (size_t a = 0; a < ARRAY_SIZE(algos); a++) {
		struct backend *be = mk_backend(algos[a], 10, names11, NULL, 10);
		struct server *home;
		int spread[10] = { 0 }, nspread = 0;

		assert_int_equal(lb_hash_build(be), 0);
		home = lb_hash_pick(be, key(0), NULL, 0);
		atomic_store(&home->state, SRV_DOWN);
		/* the keys of a down server go to several others, each key to
		 * the same substitute every time */
		for (int i = 0; i < 20000; i++) {
			struct server *s = lb_hash_pick(be, key(i), NULL, 0);

			assert_ptr_not_equal(s, home);
			assert_ptr_equal(lb_hash_pick(be, key(i), NULL, 0), s);
			spread[s->idx]++;
		}
		for (int i = 0; i < 10; i++)
			nspread += spread[i] > 0;
		assert_int_equal(nspread, 9);
		/* drain, maint, runtime weight 0, full: skipped as well */
		const int states[] = { SRV_DRAIN, SRV_MAINT };

		for (size_t k = 0; k < ARRAY_SIZE(states); k++) {
			atomic_store(&home->state, states[k]);
			assert_ptr_not_equal(lb_hash_pick(be, key(0), NULL, 0), home);
		}
		atomic_store(&home->state, SRV_READY);
		assert_ptr_equal(lb_hash_pick(be, key(0), NULL, 0), home); /* back home */
		atomic_store(&home->cur_weight, 0);
		assert_ptr_not_equal(lb_hash_pick(be, key(0), NULL, 0), home);
		atomic_store(&home->cur_weight, 100);
		home->maxconn = 1;
		atomic_store(&home->conns, 1);
		assert_ptr_not_equal(lb_hash_pick(be, key(0), NULL, 0), home);
		atomic_store(&home->conns, 0);
		assert_ptr_equal(lb_hash_pick(be, key(0), NULL, 0), home);
		/* nothing usable: NULL */
		for (int i = 0; i < 10; i++)
			atomic_store(&be->servers[i]->state, SRV_MAINT);
		assert_null(lb_hash_pick(be, key(0), NULL, 0));
		free_backend(be);
	}
}

static void test_backup(void **state)
{
	(void)state;
	for (size_t a = 0; a < ARRAY_SIZE(algos); a++) {
		/* app0..app2 primaries, app3 and app4 backups */
		struct backend *be = mk_backend(algos[a], 5, names11, NULL, 3);
		int nb[5] = { 0 };

		assert_int_equal(lb_hash_build(be), 0);
		for (int i = 0; i < 3000; i++)
			assert_false(lb_hash_pick(be, key(i), NULL, 0)->backup);
		atomic_store(&be->servers[0]->state, SRV_DOWN);
		atomic_store(&be->servers[1]->state, SRV_MAINT);
		for (int i = 0; i < 3000; i++)
			assert_int_equal(lb_hash_pick(be, key(i), NULL, 0)->idx, 2);
		atomic_store(&be->servers[2]->state, SRV_DRAIN);
		for (int i = 0; i < 3000; i++)
			nb[lb_hash_pick(be, key(i), NULL, 0)->idx]++;
		/* both backups share the keys */
		assert_int_equal(nb[0] + nb[1] + nb[2], 0);
		assert_in_range(nb[3], 1000, 2000);
		atomic_store(&be->servers[3]->state, SRV_DOWN);
		atomic_store(&be->servers[4]->state, SRV_DOWN);
		assert_null(lb_hash_pick(be, key(1), NULL, 0));
		/* a primary back: the backups are left again */
		atomic_store(&be->servers[1]->state, SRV_READY);
		assert_int_equal(lb_hash_pick(be, key(1), NULL, 0)->idx, 1);
		free_backend(be);
	}
}

static void test_exclude(void **state)
{
	(void)state;
	for (size_t a = 0; a < ARRAY_SIZE(algos); a++) {
		struct backend *be = mk_backend(algos[a], 4, names11, NULL, 3);
		struct server *ex[3];

		assert_int_equal(lb_hash_build(be), 0);
		for (int i = 0; i < 1000; i++) {
			uint64_t h = key(i);
			struct server *home = lb_hash_pick(be, h, NULL, 0);

			ex[0] = home;
			struct server *second = lb_hash_pick(be, h, ex, 1);

			assert_ptr_not_equal(second, home);
			assert_false(second->backup);
			/* the retry order of a key is fixed */
			assert_ptr_equal(lb_hash_pick(be, h, ex, 1), second);
		}
		/* every primary tried: the backup */
		ex[0] = be->servers[0];
		ex[1] = be->servers[1];
		ex[2] = be->servers[2];
		assert_ptr_equal(lb_hash_pick(be, key(5), ex, 3), be->servers[3]);
		/* and without the backup, a server already tried beats none */
		atomic_store(&be->servers[3]->state, SRV_MAINT);
		struct server *s = lb_hash_pick(be, key(5), ex, 3);

		assert_non_null(s);
		assert_false(s->backup);
		free_backend(be);
	}
}

/* ---- rebuild while another thread picks ---------------------------------- */

struct picker {
	struct backend *be;
	atomic_bool stop;
	atomic_long picks;
	atomic_long bad;
};

static void *picker_main(void *arg)
{
	struct picker *pk = arg;

	/* bounded: stops when told, or after 5 million picks */
	for (long i = 0; i < 5000000 && !atomic_load(&pk->stop); i++) {
		struct server *s = lb_hash_pick(pk->be, key((int)(i % 5000)), NULL, 0);

		if (!s || s->be != pk->be)
			atomic_fetch_add(&pk->bad, 1);
		atomic_fetch_add(&pk->picks, 1);
	}
	return NULL;
}

static void test_rebuild_concurrent(void **state)
{
	(void)state;
	for (size_t a = 0; a < ARRAY_SIZE(algos); a++) {
		struct backend *be = mk_backend(algos[a], 10, names11, NULL, 10);
		struct picker pk = { .be = be };
		pthread_t th;

		assert_int_equal(lb_hash_build(be), 0);
		assert_int_equal(pthread_create(&th, NULL, picker_main, &pk), 0);
		for (int r = 0; r < 20; r++) {
			/* the picker never reads the configured weight: only
			 * this thread and lb_hash_build() do */
			be->servers[r % 10]->weight = r % 2 ? 100 : 50;
			assert_int_equal(lb_hash_build(be), 0);
		}
		atomic_store(&pk.stop, true);
		pthread_join(th, NULL);
		assert_int_equal(atomic_load(&pk.bad), 0);
		assert_true(atomic_load(&pk.picks) > 0);
		free_backend(be);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_hash),
		cmocka_unit_test(test_not_built),
		cmocka_unit_test(test_order_independent),
		cmocka_unit_test(test_remove_one_of_ten),
		cmocka_unit_test(test_rebuild_same_backend),
		cmocka_unit_test(test_add_eleventh),
		cmocka_unit_test(test_weights),
		cmocka_unit_test(test_large_weights),
		cmocka_unit_test(test_bounded_loads),
		cmocka_unit_test(test_unusable_skipped),
		cmocka_unit_test(test_backup),
		cmocka_unit_test(test_exclude),
		cmocka_unit_test(test_rebuild_concurrent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
