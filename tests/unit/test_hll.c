/*
 * test_hll.c - the sliding-window distinct count of hll.c: exact for no
 * and few ids, duplicates counted once, within a few standard errors
 * (1.04/sqrt(HLL_M)) for thousands and a hundred thousand ids, ids leaving
 * the window, a slice cleared when its period comes back, and adds from
 * several threads at once. The clock is passed in: nothing here depends on
 * time.
 */
#include "api.h"
#include "hll.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <setjmp.h>
#include <cmocka.h>

#define WINDOW 40000u /* 40 s: slices of 10 s */

static void test_empty_and_few(void **state)
{
	struct hll *h = hll_new(WINDOW);

	(void)state;
	assert_non_null(h);
	assert_int_equal(hll_estimate(h, 0), 0);
	hll_add(h, 42, 0);
	assert_int_equal(hll_estimate(h, 0), 1);
	for (int i = 0; i < 100; i++)
		hll_add(h, 42, (uint64_t)i);          /* the same session, again and again */
	assert_int_equal(hll_estimate(h, 100), 1);
	for (uint64_t id = 1; id <= 20; id++)
		hll_add(h, id * 1000003u, 200);
	/* linear counting is exact at this size but for a collision */
	assert_in_range(hll_estimate(h, 200), 20, 21);
	assert_int_equal(hll_estimate(NULL, 0), 0);
	hll_add(NULL, 1, 0);
	hll_free(h);
	hll_free(NULL);
}

static void within(uint64_t n, uint64_t est, double sigmas)
{
	double err = fabs((double)est - (double)n) / (double)n;
	double se = 1.04 / sqrt((double)HLL_M);

	if (err > sigmas * se)
		fail_msg("estimate %llu for %llu ids: error %.3f > %.1f x %.4f",
			 (unsigned long long)est, (unsigned long long)n, err, sigmas, se);
}

static void test_accuracy(void **state)
{
	static const uint64_t sizes[] = { 500, 3000, 20000, 100000 };

	(void)state;
	for (size_t s = 0; s < ARRAY_SIZE(sizes); s++) {
		struct hll *h = hll_new(WINDOW);

		/* sequential ids: what a counter-based session id looks like */
		for (uint64_t id = 0; id < sizes[s]; id++)
			hll_add(h, id, 5000 + id % 1000);
		within(sizes[s], hll_estimate(h, 6000), 4.0);
		hll_free(h);
	}
}

static void test_window(void **state)
{
	struct hll *h = hll_new(WINDOW);

	(void)state;
	for (uint64_t id = 0; id < 100; id++)
		hll_add(h, id, 1000);                  /* period of [0, 10 s) */
	for (uint64_t id = 100; id < 150; id++)
		hll_add(h, id, 25000);                 /* period of [20 s, 30 s) */
	assert_in_range(hll_estimate(h, 25000), 145, 155);
	/* at 45 s the window [5 s, 45 s] still holds the slice of [0, 10 s) */
	assert_in_range(hll_estimate(h, 45000), 145, 155);
	/* from 50 s the first 100 have left; the 50 stay until 70 s */
	assert_in_range(hll_estimate(h, 50000), 49, 51);
	assert_in_range(hll_estimate(h, 69999), 49, 51);
	assert_int_equal(hll_estimate(h, 70000), 0);
	/* a slice coming round again starts empty */
	hll_add(h, 7, 51000);                          /* the slice of [0, 10 s) again */
	assert_in_range(hll_estimate(h, 51000), 50, 52);
	hll_free(h);
}

static void test_tiny_window(void **state)
{
	struct hll *h = hll_new(1); /* raised to one millisecond a slice */

	(void)state;
	hll_add(h, 1, 10);
	assert_int_equal(hll_estimate(h, 10), 1);
	assert_int_equal(hll_estimate(h, 20), 0);
	hll_free(h);
}

struct worker_arg { struct hll *h; uint64_t base; };

static void *adder(void *p)
{
	struct worker_arg *a = p;

	for (uint64_t i = 0; i < 20000; i++)
		hll_add(a->h, a->base + i, 3000);
	return NULL;
}

static void test_threads(void **state)
{
	struct hll *h = hll_new(WINDOW);
	pthread_t t[4];
	struct worker_arg a[4];

	(void)state;
	/* four threads, overlapping halves: 50000 distinct ids in all */
	for (int i = 0; i < 4; i++) {
		a[i] = (struct worker_arg){ h, (uint64_t)i * 10000 };
		assert_int_equal(pthread_create(&t[i], NULL, adder, &a[i]), 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	within(50000, hll_estimate(h, 3000), 4.0);
	hll_free(h);
}

/* Two generations of a server hold one estimator (reload.c): the first
 * free leaves it to the other, whose adds and estimate see both (ASan
 * reports the use after free if the count is wrong). */
static void test_shared_between_generations(void **state)
{
	struct hll *old = hll_new(WINDOW);
	struct hll *cur = hll_share(old);

	(void)state;
	assert_ptr_equal(old, cur);
	assert_null(hll_share(NULL));
	for (uint64_t i = 0; i < 100; i++)
		hll_add(old, i, 3000);
	hll_free(old);
	for (uint64_t i = 100; i < 200; i++)
		hll_add(cur, i, 3000);
	within(200, hll_estimate(cur, 3000), 4.0);
	hll_free(cur);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_and_few),
		cmocka_unit_test(test_accuracy),
		cmocka_unit_test(test_window),
		cmocka_unit_test(test_tiny_window),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_shared_between_generations),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
