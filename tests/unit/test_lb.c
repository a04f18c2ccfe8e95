/*
 * test_lb.c - the balancing algorithms and the rules around them: which
 * servers may be chosen (usability, backups, exclusion of servers already
 * tried) and how often each is chosen (weights, in every algorithm).
 * Backends and servers are built by hand, without the configuration
 * parser, so these tests depend on lb*.c alone. Random choices use a fixed
 * seed: the distribution checks are deterministic, not flaky.
 */
#include "api.h"
#include "lb.h"

#include <stdarg.h>
#include <setjmp.h>
#include <cmocka.h>

#ifndef SEED
#define SEED 0x5eed5eedULL
#endif

/* A backend of n servers named "a", "b", ... with the given weights; the
 * servers whose index is in [nprim, n) are backups. */
static struct backend *mk_backend(enum lb_kind kind, int n, const uint32_t *w, int nprim)
{
	struct backend *be = calloc(1, sizeof(*be));

	assert_non_null(be);
	be->balance = kind;
	be->servers = calloc((size_t)n, sizeof(*be->servers));
	assert_non_null(be->servers);
	be->nservers = n;
	for (int i = 0; i < n; i++) {
		struct server *s = calloc(1, sizeof(*s));

		assert_non_null(s);
		snprintf(s->name, sizeof(s->name), "%c", 'a' + i);
		s->weight = w[i];
		atomic_store(&s->cur_weight, w[i]);
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
	for (int i = 0; i < be->nservers; i++)
		free(be->servers[i]);
	free(be->servers);
	free(be);
}

/* A config holding just be, as lb_thread_new() expects. */
static struct config *mk_config(struct backend **bes, int n)
{
	struct config *cfg = calloc(1, sizeof(*cfg));

	assert_non_null(cfg);
	cfg->backends = bes;
	cfg->nbackends = n;
	for (int i = 0; i < n; i++)
		bes[i]->idx = i;
	return cfg;
}

/* Pick count times, counting choices by server index (counts has one slot
 * per server plus one for NULL at [nservers]). With load, each pick adds a
 * connection to the chosen server, as a long-lived request would. */
static void pick_many(struct lb_thread *t, struct backend *be, int count, int *counts, bool load)
{
	for (int i = 0; i < count; i++) {
		struct server *s = lb_pick(t, be, NULL, 0);

		if (!s) {
			counts[be->nservers]++;
			continue;
		}
		counts[s->idx]++;
		if (load)
			atomic_fetch_add(&s->conns, 1);
	}
}

/* Pick from a fresh thread state with a backend built from w (all primary). */
struct fixture {
	struct backend *be;
	struct backend *bes[1];
	struct config *cfg;
	struct lb_thread *t;
};

static void fx_init(struct fixture *fx, enum lb_kind kind, int n, const uint32_t *w, int nprim)
{
	fx->be = mk_backend(kind, n, w, nprim);
	fx->bes[0] = fx->be;
	fx->cfg = mk_config(fx->bes, 1);
	fx->t = lb_thread_new(fx->cfg, SEED);
	assert_non_null(fx->t);
}

static void fx_done(struct fixture *fx)
{
	lb_thread_free(fx->t);
	free(fx->cfg);
	free_backend(fx->be);
}

static const enum lb_kind all_kinds[] = { LB_ROUNDROBIN, LB_LEASTCONN, LB_RANDOM, LB_P2C };

/* ---- usability ----------------------------------------------------------- */

static void test_usable(void **state)
{
	(void)state;
	uint32_t w[] = { 10 };
	struct backend *be = mk_backend(LB_ROUNDROBIN, 1, w, 1);
	struct server *s = be->servers[0];

	assert_true(lb_usable(s));
	atomic_store(&s->state, SRV_DRAIN);
	assert_false(lb_usable(s));
	atomic_store(&s->state, SRV_MAINT);
	assert_false(lb_usable(s));
	atomic_store(&s->state, SRV_DOWN);
	assert_false(lb_usable(s));
	atomic_store(&s->state, SRV_READY);
	atomic_store(&s->cur_weight, 0);
	assert_false(lb_usable(s));
	atomic_store(&s->cur_weight, 1);
	assert_true(lb_usable(s));

	/* maxconn: usable strictly below it; 0 means unlimited */
	s->maxconn = 2;
	atomic_store(&s->conns, 1);
	assert_true(lb_usable(s));
	atomic_store(&s->conns, 2);
	assert_false(lb_usable(s));
	atomic_store(&s->conns, 3);
	assert_false(lb_usable(s));
	s->maxconn = 0;
	atomic_store(&s->conns, 1000000);
	assert_true(lb_usable(s));
	free_backend(be);
}

/* lb_pick never returns a server lb_usable() refuses, in any algorithm. */
static void test_pick_only_usable(void **state)
{
	(void)state;
	for (size_t k = 0; k < ARRAY_SIZE(all_kinds); k++) {
		uint32_t w[] = { 1, 1, 1, 1, 1 };
		struct fixture fx;

		fx_init(&fx, all_kinds[k], 5, w, 5);
		atomic_store(&fx.be->servers[0]->state, SRV_DRAIN);
		atomic_store(&fx.be->servers[1]->state, SRV_MAINT);
		atomic_store(&fx.be->servers[2]->state, SRV_DOWN);
		fx.be->servers[3]->maxconn = 4;
		atomic_store(&fx.be->servers[3]->conns, 4);
		for (int i = 0; i < 200; i++)
			assert_ptr_equal(lb_pick(fx.t, fx.be, NULL, 0), fx.be->servers[4]);
		/* and nothing at all once the last one is full too */
		fx.be->servers[4]->maxconn = 1;
		atomic_store(&fx.be->servers[4]->conns, 1);
		assert_null(lb_pick(fx.t, fx.be, NULL, 0));
		fx_done(&fx);
	}
}

/* ---- smooth weighted round robin ------------------------------------------ */

static void test_rr_smooth_sequence(void **state)
{
	(void)state;
	uint32_t w[] = { 5, 1, 1 };
	struct fixture fx;
	char seq[15] = { 0 };

	fx_init(&fx, LB_ROUNDROBIN, 3, w, 3);
	for (int i = 0; i < 14; i++)
		seq[i] = lb_pick(fx.t, fx.be, NULL, 0)->name[0];
	/* smooth: the heavy server is interleaved, not sent 5 in a row */
	assert_string_equal(seq, "aabacaaaabacaa");
	fx_done(&fx);
}

static void test_rr_exact_proportions(void **state)
{
	(void)state;
	uint32_t w[] = { 3, 2, 1 };
	struct fixture fx;

	fx_init(&fx, LB_ROUNDROBIN, 3, w, 3);
	/* every cycle of 6 picks holds exactly 3 a, 2 b, 1 c */
	for (int cycle = 0; cycle < 100; cycle++) {
		int counts[4] = { 0 };

		pick_many(fx.t, fx.be, 6, counts, false);
		assert_int_equal(counts[0], 3);
		assert_int_equal(counts[1], 2);
		assert_int_equal(counts[2], 1);
		assert_int_equal(counts[3], 0);
	}
	fx_done(&fx);
}

/* `set server weight` takes effect at the next pick, without a reload. */
/* Weights up to 1000000 (issue 9 item 18) are honoured exactly: over one
 * cycle of sum(weights) picks, round robin (and least connections at rest,
 * whose ties take turns the same way) gives each server its weight, cycle
 * after cycle, with no overflow of the current weights. */
static void test_large_weights_exact(void **state)
{
	(void)state;
	static const uint32_t sets[][3] = {
		{ 1000000, 300000, 1 }, { 100000, 200000, 300000 }, { 1000000, 1000000, 1000000 },
	};

	for (size_t k = 0; k < 2; k++) {
		enum lb_kind kind = k == 0 ? LB_ROUNDROBIN : LB_LEASTCONN;

		for (size_t s = 0; s < ARRAY_SIZE(sets); s++) {
			struct fixture fx;
			int sum = (int)(sets[s][0] + sets[s][1] + sets[s][2]);

			fx_init(&fx, kind, 3, sets[s], 3);
			for (int cycle = 0; cycle < 2; cycle++) {
				int counts[4] = { 0 };

				pick_many(fx.t, fx.be, sum, counts, false);
				for (int i = 0; i < 3; i++)
					assert_int_equal(counts[i], (int)sets[s][i]);
				assert_int_equal(counts[3], 0);
			}
			fx_done(&fx);
		}
	}
	/* random and p2c: in proportion, a weight of 1 next to 1000000 almost never */
	static const uint32_t skew[] = { 1000000, 1 };
	for (size_t k = 0; k < 2; k++) {
		struct fixture fx;
		int counts[3] = { 0 };

		fx_init(&fx, k == 0 ? LB_RANDOM : LB_P2C, 2, skew, 2);
		pick_many(fx.t, fx.be, 100000, counts, false);
		assert_true(counts[1] <= 5);
		assert_int_equal(counts[0] + counts[1], 100000);
		fx_done(&fx);
	}
}

static void test_rr_weight_change(void **state)
{
	(void)state;
	uint32_t w[] = { 1, 1 };
	struct fixture fx;
	int counts[3] = { 0 };

	fx_init(&fx, LB_ROUNDROBIN, 2, w, 2);
	pick_many(fx.t, fx.be, 10, counts, false);
	assert_int_equal(counts[0], 5);
	atomic_store(&fx.be->servers[0]->cur_weight, 4);
	/* let the current weights settle over one cycle, then count cycles */
	pick_many(fx.t, fx.be, 5, counts, false);
	memset(counts, 0, sizeof(counts));
	pick_many(fx.t, fx.be, 500, counts, false);
	assert_int_equal(counts[0], 400);
	assert_int_equal(counts[1], 100);
	fx_done(&fx);
}

/* A server added at runtime (add server) is picked without a new state. */
static void test_server_added_at_runtime(void **state)
{
	(void)state;
	for (size_t k = 0; k < ARRAY_SIZE(all_kinds); k++) {
		uint32_t w[] = { 1, 1, 2 };
		struct fixture fx;
		int counts[4] = { 0 };

		fx_init(&fx, all_kinds[k], 3, w, 3);
		fx.be->nservers = 2; /* the thread state is created with 2 servers */
		lb_thread_free(fx.t);
		fx.t = lb_thread_new(fx.cfg, SEED);
		assert_non_null(fx.t);
		pick_many(fx.t, fx.be, 10, counts, false);
		assert_int_equal(counts[2], 0);
		fx.be->nservers = 3;
		memset(counts, 0, sizeof(counts));
		pick_many(fx.t, fx.be, 4000, counts, false);
		/* weight 2 of 4: about half of the picks */
		assert_in_range(counts[2], 1800, 2200);
		fx_done(&fx);
	}
}

/* A backend unknown when the thread state was made (reload, tests) works. */
static void test_backend_unknown_at_creation(void **state)
{
	(void)state;
	uint32_t w[] = { 2, 1 };
	struct backend *be = mk_backend(LB_ROUNDROBIN, 2, w, 2);
	struct lb_thread *t = lb_thread_new(NULL, SEED);
	int counts[3] = { 0 };

	assert_non_null(t);
	be->idx = 3;
	pick_many(t, be, 30, counts, false);
	assert_int_equal(counts[0], 20);
	assert_int_equal(counts[1], 10);
	lb_thread_free(t);
	free_backend(be);
}

/* ---- weights in every algorithm ------------------------------------------- */

static void test_weight_zero_never(void **state)
{
	(void)state;
	for (size_t k = 0; k < ARRAY_SIZE(all_kinds); k++) {
		uint32_t w[] = { 0, 3, 0, 1 };
		struct fixture fx;
		int counts[5] = { 0 };

		fx_init(&fx, all_kinds[k], 4, w, 4);
		pick_many(fx.t, fx.be, 2000, counts, all_kinds[k] == LB_LEASTCONN);
		assert_int_equal(counts[0], 0);
		assert_int_equal(counts[2], 0);
		assert_int_equal(counts[4], 0);
		assert_true(counts[1] > counts[3]);
		/* all weights 0: nothing usable */
		atomic_store(&fx.be->servers[1]->cur_weight, 0);
		atomic_store(&fx.be->servers[3]->cur_weight, 0);
		assert_null(lb_pick(fx.t, fx.be, NULL, 0));
		fx_done(&fx);
	}
}

/* count is within 5% of its expected share of total */
static void assert_share(int count, uint32_t w, uint32_t wsum, int total)
{
	double expect = (double)total * w / wsum;

	if (count < expect * 0.95 || count > expect * 1.05)
		fail_msg("count %d, expected %.0f +-5%%", count, expect);
}

static void test_random_p2c_distribution(void **state)
{
	(void)state;
	const enum lb_kind kinds[] = { LB_RANDOM, LB_P2C };

	for (size_t k = 0; k < ARRAY_SIZE(kinds); k++) {
		uint32_t w[] = { 5, 3, 2 };
		struct fixture fx;
		int counts[4] = { 0 };

		fx_init(&fx, kinds[k], 3, w, 3);
		pick_many(fx.t, fx.be, 100000, counts, false);
		for (int i = 0; i < 3; i++)
			assert_share(counts[i], w[i], 10, 100000);
		assert_int_equal(counts[3], 0);
		fx_done(&fx);
	}
}

/* Same seed, same choices: reproducible runs. */
static void test_random_seeded(void **state)
{
	(void)state;
	uint32_t w[] = { 1, 1, 1, 1 };
	struct fixture f1, f2;

	fx_init(&f1, LB_RANDOM, 4, w, 4);
	fx_init(&f2, LB_RANDOM, 4, w, 4);
	for (int i = 0; i < 100; i++)
		assert_int_equal(lb_pick(f1.t, f1.be, NULL, 0)->idx,
				 lb_pick(f2.t, f2.be, NULL, 0)->idx);
	fx_done(&f1);
	fx_done(&f2);
}

/* Under load p2c keeps connections in proportion to the weights. */
static void test_p2c_under_load(void **state)
{
	(void)state;
	uint32_t w[] = { 3, 1 };
	struct fixture fx;
	int counts[3] = { 0 };

	fx_init(&fx, LB_P2C, 2, w, 2);
	pick_many(fx.t, fx.be, 4000, counts, true);
	assert_share(counts[0], 3, 4, 4000);
	assert_share(counts[1], 1, 4, 4000);
	fx_done(&fx);
}

static void test_p2c_prefers_less_loaded(void **state)
{
	(void)state;
	uint32_t w[] = { 1, 1, 1 };
	struct fixture fx;
	int counts[4] = { 0 };

	fx_init(&fx, LB_P2C, 3, w, 3);
	atomic_store(&fx.be->servers[0]->conns, 50);
	atomic_store(&fx.be->servers[1]->conns, 10);
	atomic_store(&fx.be->servers[2]->conns, 0);
	pick_many(fx.t, fx.be, 9000, counts, false);
	/* a is chosen only when both draws are a (1/9), b when the draws are
	 * {a,b} or {b,b} (3/9), c whenever drawn (5/9) */
	assert_in_range(counts[0], 700, 1300);
	assert_in_range(counts[1], 2500, 3500);
	assert_in_range(counts[2], 4400, 5600);
	fx_done(&fx);
}

/* ---- least connections ---------------------------------------------------- */

static void test_leastconn_min_ratio(void **state)
{
	(void)state;
	uint32_t w[] = { 1, 3, 2 };
	struct fixture fx;

	fx_init(&fx, LB_LEASTCONN, 3, w, 3);
	/* loads 2/1, 5/3, 4/2: b has the least relative load */
	atomic_store(&fx.be->servers[0]->conns, 2);
	atomic_store(&fx.be->servers[1]->conns, 5);
	atomic_store(&fx.be->servers[2]->conns, 4);
	for (int i = 0; i < 10; i++)
		assert_ptr_equal(lb_pick(fx.t, fx.be, NULL, 0), fx.be->servers[1]);
	/* 2/1 vs 7/3 vs 4/2: the least loaded is now a or c, tied at 2 */
	atomic_store(&fx.be->servers[1]->conns, 7);
	int counts[4] = { 0 };

	pick_many(fx.t, fx.be, 30, counts, false);
	assert_int_equal(counts[1], 0);
	/* ties go round by weight: c (2) twice as often as a (1) */
	assert_int_equal(counts[0], 10);
	assert_int_equal(counts[2], 20);
	fx_done(&fx);
}

static void test_leastconn_weights(void **state)
{
	(void)state;
	uint32_t w[] = { 3, 2, 1 };
	struct fixture fx;
	int counts[4] = { 0 };

	/* long-lived connections: each pick adds one to its server; the
	 * connections end up in proportion to the weights */
	fx_init(&fx, LB_LEASTCONN, 3, w, 3);
	pick_many(fx.t, fx.be, 600, counts, true);
	assert_int_equal(counts[0], 300);
	assert_int_equal(counts[1], 200);
	assert_int_equal(counts[2], 100);
	fx_done(&fx);

	/* short requests (no load kept): idle servers tie and share by weight */
	memset(counts, 0, sizeof(counts));
	fx_init(&fx, LB_LEASTCONN, 3, w, 3);
	pick_many(fx.t, fx.be, 600, counts, false);
	assert_int_equal(counts[0], 300);
	assert_int_equal(counts[1], 200);
	assert_int_equal(counts[2], 100);
	fx_done(&fx);
}

/* ---- backups ---------------------------------------------------------------- */

static void test_backup_only_when_primaries_unusable(void **state)
{
	(void)state;
	for (size_t k = 0; k < ARRAY_SIZE(all_kinds); k++) {
		uint32_t w[] = { 1, 1, 1, 1 };
		struct fixture fx;
		struct server *a, *b;
		int counts[5] = { 0 };

		fx_init(&fx, all_kinds[k], 4, w, 2); /* c, d are backups */
		a = fx.be->servers[0];
		b = fx.be->servers[1];
		pick_many(fx.t, fx.be, 200, counts, false);
		assert_int_equal(counts[2] + counts[3], 0);

		/* each way a primary can be unusable, while the other is too */
		atomic_store(&a->state, SRV_DRAIN);
		atomic_store(&b->state, SRV_MAINT);
		memset(counts, 0, sizeof(counts));
		pick_many(fx.t, fx.be, 200, counts, false);
		assert_int_equal(counts[0] + counts[1], 0);
		/* backups are balanced among themselves */
		assert_in_range(counts[2], 70, 130);
		assert_in_range(counts[3], 70, 130);

		atomic_store(&a->state, SRV_DOWN);
		b->maxconn = 3;
		atomic_store(&b->state, SRV_READY);
		atomic_store(&b->conns, 3);
		assert_true(lb_pick(fx.t, fx.be, NULL, 0)->backup);
		/* one primary back: backups are left alone again */
		atomic_store(&b->conns, 2);
		for (int i = 0; i < 50; i++)
			assert_ptr_equal(lb_pick(fx.t, fx.be, NULL, 0), b);
		/* no primary, no backup usable: NULL */
		atomic_store(&b->state, SRV_DOWN);
		atomic_store(&fx.be->servers[2]->state, SRV_MAINT);
		atomic_store(&fx.be->servers[3]->cur_weight, 0);
		assert_null(lb_pick(fx.t, fx.be, NULL, 0));
		fx_done(&fx);
	}
}

/* ---- exclusion of servers already tried ----------------------------------- */

static void test_exclude(void **state)
{
	(void)state;
	for (size_t k = 0; k < ARRAY_SIZE(all_kinds); k++) {
		uint32_t w[] = { 1, 1, 1, 1 };
		struct fixture fx;
		struct server **sv;

		fx_init(&fx, all_kinds[k], 4, w, 3); /* d is a backup */
		sv = fx.be->servers;

		/* strict while another usable primary exists */
		struct server *ex1[] = { sv[0], sv[1] };

		for (int i = 0; i < 100; i++)
			assert_ptr_equal(lb_pick(fx.t, fx.be, ex1, 2), sv[2]);

		/* every primary failed this request: the backup takes over */
		struct server *ex2[] = { sv[0], sv[1], sv[2] };

		for (int i = 0; i < 100; i++)
			assert_ptr_equal(lb_pick(fx.t, fx.be, ex2, 3), sv[3]);

		/* everything tried, backup included: retry a primary */
		struct server *ex_all[] = { sv[0], sv[1], sv[2], sv[3] };

		for (int i = 0; i < 100; i++) {
			struct server *s = lb_pick(fx.t, fx.be, ex_all, 4);

			assert_non_null(s);
			assert_false(s->backup);
		}

		/* the only usable primary was tried and the backup is in
		 * maint: the primary is retried */
		atomic_store(&sv[0]->state, SRV_DOWN);
		atomic_store(&sv[1]->state, SRV_DOWN);
		atomic_store(&sv[3]->state, SRV_MAINT);
		struct server *ex3[] = { sv[2] };

		for (int i = 0; i < 20; i++)
			assert_ptr_equal(lb_pick(fx.t, fx.be, ex3, 1), sv[2]);
		atomic_store(&sv[3]->state, SRV_READY);

		/* no primary usable: the backup, even if tried already */
		atomic_store(&sv[2]->state, SRV_MAINT);
		struct server *ex4[] = { sv[3] };

		assert_ptr_equal(lb_pick(fx.t, fx.be, ex4, 1), sv[3]);
		assert_ptr_equal(lb_pick(fx.t, fx.be, NULL, 0), sv[3]);
		fx_done(&fx);
	}
}

/* Exclusion of one request does not disturb the round robin of the others. */
static void test_exclude_keeps_rr_fair(void **state)
{
	(void)state;
	uint32_t w[] = { 1, 1, 1 };
	struct fixture fx;
	int counts[4] = { 0 };

	fx_init(&fx, LB_ROUNDROBIN, 3, w, 3);
	for (int i = 0; i < 300; i++) {
		struct server *s = lb_pick(fx.t, fx.be, NULL, 0);

		counts[s->idx]++;
		if (i % 10 == 0) { /* a retry elsewhere now and then */
			struct server *ex[] = { s };
			struct server *r = lb_pick(fx.t, fx.be, ex, 1);

			assert_ptr_not_equal(r, s);
			counts[r->idx]++;
		}
	}
	for (int i = 0; i < 3; i++)
		assert_in_range(counts[i], 105, 115);
	fx_done(&fx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_usable),
		cmocka_unit_test(test_pick_only_usable),
		cmocka_unit_test(test_rr_smooth_sequence),
		cmocka_unit_test(test_rr_exact_proportions),
		cmocka_unit_test(test_large_weights_exact),
		cmocka_unit_test(test_rr_weight_change),
		cmocka_unit_test(test_server_added_at_runtime),
		cmocka_unit_test(test_backend_unknown_at_creation),
		cmocka_unit_test(test_weight_zero_never),
		cmocka_unit_test(test_random_p2c_distribution),
		cmocka_unit_test(test_random_seeded),
		cmocka_unit_test(test_p2c_under_load),
		cmocka_unit_test(test_p2c_prefers_less_loaded),
		cmocka_unit_test(test_leastconn_min_ratio),
		cmocka_unit_test(test_leastconn_weights),
		cmocka_unit_test(test_backup_only_when_primaries_unusable),
		cmocka_unit_test(test_exclude),
		cmocka_unit_test(test_exclude_keeps_rr_fair),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
