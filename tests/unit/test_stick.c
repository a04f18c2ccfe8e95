/*
 * test_stick.c - persistence tables: lookups and updates, LRU eviction
 * order, idle expiry (on lookup and by the bounded sweep), per-server
 * counters, growth, the 32-bit time rebase, concurrent use by several
 * threads, and the state file: round trip, several tables in one file,
 * map_srv, and rejection of truncated, corrupted and foreign files.
 */
#include "api.h"
#include "stick.h"

#include <stdarg.h>
#include <setjmp.h>
#include <cmocka.h>
#include <pthread.h>

static void key_of(char *buf, size_t cap, unsigned i)
{
	snprintf(buf, cap, "session-%08u", i);
}

static void test_basic(void **state)
{
	struct stick_table *t = stick_new(1000, 0, 0);
	uint32_t srv = 99;

	(void)state;
	assert_non_null(t);
	assert_int_equal(stick_lookup(t, "abc", 3, 10, &srv), 0);
	assert_int_equal(stick_store(t, "abc", 3, 7, 10), 0);
	assert_int_equal(stick_lookup(t, "abc", 3, 20, &srv), 1);
	assert_int_equal(srv, 7);
	/* prefix and extension are other keys */
	assert_int_equal(stick_lookup(t, "ab", 2, 20, &srv), 0);
	assert_int_equal(stick_lookup(t, "abcd", 4, 20, &srv), 0);
	/* update */
	assert_int_equal(stick_store(t, "abc", 3, 8, 30), 0);
	assert_int_equal(stick_lookup(t, "abc", 3, 40, &srv), 1);
	assert_int_equal(srv, 8);
	assert_int_equal(stick_count(t), 1);
	/* empty key and the longest key */
	{
		uint8_t big[STICK_KEY_MAX + 1];

		memset(big, 'k', sizeof(big));
		assert_int_equal(stick_store(t, "", 0, 1, 50), 0);
		assert_int_equal(stick_store(t, big, STICK_KEY_MAX, 2, 50), 0);
		assert_int_equal(stick_store(t, big, STICK_KEY_MAX + 1, 3, 50),
				 -1);
		assert_int_equal(stick_lookup(t, big, STICK_KEY_MAX + 1, 50,
					      &srv), 0);
		assert_int_equal(stick_lookup(t, "", 0, 60, &srv), 1);
		assert_int_equal(srv, 1);
		assert_int_equal(stick_lookup(t, big, STICK_KEY_MAX, 60, &srv),
				 1);
		assert_int_equal(srv, 2);
	}
	assert_int_equal(stick_count(t), 3);
	assert_int_equal(stick_delete(t, "abc", 3), 1);
	assert_int_equal(stick_delete(t, "abc", 3), 0);
	assert_int_equal(stick_lookup(t, "abc", 3, 70, &srv), 0);
	assert_int_equal(stick_count(t), 2);
	stick_clear(t);
	assert_int_equal(stick_count(t), 0);
	assert_int_equal(stick_lookup(t, "", 0, 80, &srv), 0);
	/* usable after clear */
	assert_int_equal(stick_store(t, "x", 1, 4, 90), 0);
	assert_int_equal(stick_lookup(t, "x", 1, 90, &srv), 1);
	stick_free(t);
}

/* stick_lookup_times: the idle time before this lookup and the age since
 * creation or the last change of server (the shared tables' refresh
 * schedule, persist.c). */
static void test_lookup_times(void **state)
{
	struct stick_table *t = stick_new(1000, 0, 0);
	uint32_t srv = 0;
	uint64_t idle = 99, age = 99;

	(void)state;
	assert_non_null(t);
	assert_int_equal(stick_lookup_times(t, "k", 1, 100, &srv, &idle, &age), 0);
	assert_int_equal(idle, 99);  /* untouched on a miss */
	assert_int_equal(stick_store(t, "k", 1, 3, 100), 0);
	assert_int_equal(stick_lookup_times(t, "k", 1, 150, &srv, &idle, &age), 1);
	assert_int_equal(srv, 3);
	assert_int_equal(idle, 50);
	assert_int_equal(age, 50);
	assert_int_equal(stick_lookup_times(t, "k", 1, 400, &srv, &idle, &age), 1);
	assert_int_equal(idle, 250);
	assert_int_equal(age, 300);
	/* the same server again keeps the age; another one starts it again */
	assert_int_equal(stick_store(t, "k", 1, 3, 500), 0);
	assert_int_equal(stick_lookup_times(t, "k", 1, 510, &srv, &idle, &age), 1);
	assert_int_equal(age, 410);
	assert_int_equal(stick_store(t, "k", 1, 4, 600), 0);
	assert_int_equal(stick_lookup_times(t, "k", 1, 610, &srv, NULL, &age), 1);
	assert_int_equal(age, 10);
	assert_int_equal(srv, 4);
	stick_free(t);
}

static void test_lru_eviction_order(void **state)
{
	struct stick_table *t = stick_new(4, 0, 1);
	struct stick_stats st;
	uint32_t srv;

	(void)state;
	assert_non_null(t);
	assert_int_equal(stick_store(t, "a", 1, 1, 1), 0);
	assert_int_equal(stick_store(t, "b", 1, 2, 2), 0);
	assert_int_equal(stick_store(t, "c", 1, 3, 3), 0);
	assert_int_equal(stick_store(t, "d", 1, 4, 4), 0);
	/* touch a: b becomes the least recently used */
	assert_int_equal(stick_lookup(t, "a", 1, 5, &srv), 1);
	assert_int_equal(stick_store(t, "e", 1, 5, 6), 0);
	assert_int_equal(stick_count(t), 4);
	assert_int_equal(stick_lookup(t, "b", 1, 7, &srv), 0);
	/* an update refreshes too: c is touched, so d goes next */
	assert_int_equal(stick_store(t, "c", 1, 3, 8), 0);
	assert_int_equal(stick_store(t, "f", 1, 6, 9), 0);
	assert_int_equal(stick_lookup(t, "d", 1, 10, &srv), 0);
	assert_int_equal(stick_lookup(t, "a", 1, 10, &srv), 1);
	assert_int_equal(stick_lookup(t, "c", 1, 10, &srv), 1);
	assert_int_equal(stick_lookup(t, "e", 1, 10, &srv), 1);
	assert_int_equal(stick_lookup(t, "f", 1, 10, &srv), 1);
	stick_stats(t, &st);
	assert_int_equal(st.evicted, 2);
	assert_int_equal(st.entries, 4);
	assert_int_equal(stick_count_server(t, 2), 0);
	assert_int_equal(stick_count_server(t, 4), 0);
	assert_int_equal(stick_count_server(t, 1), 1);
	stick_free(t);
}

static void test_expiry_on_lookup(void **state)
{
	struct stick_table *t = stick_new(100, 100, 0);
	struct stick_stats st;
	uint32_t srv;

	(void)state;
	assert_int_equal(stick_store(t, "k", 1, 1, 1000), 0);
	assert_int_equal(stick_lookup(t, "k", 1, 1099, &srv), 1);
	/* the hit refreshed it: idle counts from 1099 now */
	assert_int_equal(stick_lookup(t, "k", 1, 1198, &srv), 1);
	assert_int_equal(stick_lookup(t, "k", 1, 1298, &srv), 0);
	assert_int_equal(stick_count(t), 0);
	stick_stats(t, &st);
	assert_int_equal(st.expired, 1);
	assert_int_equal(stick_count_server(t, 1), 0);
	/* an expired entry is not in the way of a new store */
	assert_int_equal(stick_store(t, "k", 1, 2, 2000), 0);
	assert_int_equal(stick_lookup(t, "k", 1, 2001, &srv), 1);
	assert_int_equal(srv, 2);
	stick_free(t);
}

static int count_cb(void *arg, const void *key, size_t klen, uint32_t srv,
		    uint64_t idle_ms, uint64_t age_ms)
{
	(*(size_t *)arg)++;
	return 0;
}

static void test_expire_sweep(void **state)
{
	struct stick_table *t = stick_new(100000, 500, 8);
	char k[32];
	size_t removed = 0, n = 0;
	int calls = 0;

	(void)state;
	for (unsigned i = 0; i < 1000; i++) {
		key_of(k, sizeof(k), i);
		assert_int_equal(stick_store(t, k, strlen(k), i % 3, 1000), 0);
	}
	for (unsigned i = 1000; i < 1500; i++) {
		key_of(k, sizeof(k), i);
		assert_int_equal(stick_store(t, k, strlen(k), i % 3, 2000), 0);
	}
	/* nothing expired yet: nothing removed */
	assert_int_equal(stick_expire(t, 1400, 64), 0);
	/* expired entries are invisible before the sweep reaches them */
	stick_foreach(t, 1600, count_cb, &n);
	assert_int_equal(n, 500);
	/* each call is bounded by its budget; repeated calls drain all */
	while (calls < 1000) {
		size_t r = stick_expire(t, 1600, 16);

		assert_true(r <= 16);
		removed += r;
		calls++;
		if (stick_count(t) == 500)
			break;
	}
	assert_int_equal(removed, 1000);
	assert_int_equal(stick_count(t), 500);
	assert_true(calls > 1000 / 16);
	assert_int_equal(stick_count_server(t, 0) + stick_count_server(t, 1) +
			 stick_count_server(t, 2), 500);
	/* shards whose tail is fresh are skipped: the call does nothing */
	assert_int_equal(stick_expire(t, 1700, 16), 0);
	/* later, the rest goes too */
	for (calls = 0; calls < 1000 && stick_count(t) > 0; calls++)
		stick_expire(t, 2500, 16);
	assert_int_equal(stick_count(t), 0);
	stick_free(t);
}

static void test_server_counters(void **state)
{
	struct stick_table *t = stick_new(10000, 0, 0);
	char k[32];

	(void)state;
	for (unsigned i = 0; i < 1000; i++) {
		key_of(k, sizeof(k), i);
		assert_int_equal(stick_store(t, k, strlen(k), i % 4, 1), 0);
	}
	/* a very large id is counted by scan */
	assert_int_equal(stick_store(t, "big", 3, 100000, 1), 0);
	for (uint32_t s = 0; s < 4; s++)
		assert_int_equal(stick_count_server(t, s), 250);
	assert_int_equal(stick_count_server(t, 100000), 1);
	assert_int_equal(stick_count_server(t, 5), 0);
	/* moving an entry moves its count */
	key_of(k, sizeof(k), 0);
	assert_int_equal(stick_store(t, k, strlen(k), 1, 2), 0);
	assert_int_equal(stick_count_server(t, 0), 249);
	assert_int_equal(stick_count_server(t, 1), 251);
	assert_int_equal(stick_clear_server(t, 1), 251);
	assert_int_equal(stick_count_server(t, 1), 0);
	assert_int_equal(stick_count(t), 750);
	assert_int_equal(stick_clear_server(t, 100000), 1);
	assert_int_equal(stick_clear_server(t, 1), 0);
	key_of(k, sizeof(k), 5);
	{
		uint32_t srv;

		assert_int_equal(stick_lookup(t, k, strlen(k), 3, &srv), 0);
		key_of(k, sizeof(k), 6);
		assert_int_equal(stick_lookup(t, k, strlen(k), 3, &srv), 1);
		assert_int_equal(srv, 2);
	}
	stick_free(t);
}

static void test_growth(void **state)
{
	struct stick_table *t = stick_new(200000, 0, 1);
	char k[32];
	uint32_t srv;

	(void)state;
	for (unsigned i = 0; i < 200000; i++) {
		key_of(k, sizeof(k), i);
		assert_int_equal(stick_store(t, k, strlen(k), i, 1), 0);
	}
	assert_int_equal(stick_count(t), 200000);
	for (unsigned i = 0; i < 200000; i++) {
		key_of(k, sizeof(k), i);
		assert_int_equal(stick_lookup(t, k, strlen(k), 2, &srv), 1);
		assert_int_equal(srv, i);
	}
	for (unsigned i = 0; i < 200000; i += 2) {
		key_of(k, sizeof(k), i);
		assert_int_equal(stick_delete(t, k, strlen(k)), 1);
	}
	assert_int_equal(stick_count(t), 100000);
	key_of(k, sizeof(k), 1);
	assert_int_equal(stick_lookup(t, k, strlen(k), 3, &srv), 1);
	stick_free(t);
}

struct seen {
	uint64_t idle, age;
	int n;
};

static int idle_cb(void *arg, const void *key, size_t klen, uint32_t srv,
		   uint64_t idle_ms, uint64_t age_ms)
{
	struct seen *s = arg;

	s->idle = idle_ms;
	s->age = age_ms;
	s->n++;
	return 0;
}

/* Monotonic milliseconds past 2^32: offsets are rebased, not wrapped. */
static void test_time_rebase(void **state)
{
	struct stick_table *t = stick_new(100, 0, 1);
	struct stick_table *e = stick_new(100, 60000, 1);
	uint64_t t0 = 5000, far = 5000 + (3ull << 32);
	struct seen s = { 0 };
	uint32_t srv;

	(void)state;
	assert_int_equal(stick_store(t, "old", 3, 1, t0), 0);
	assert_int_equal(stick_store(t, "new", 3, 2, far - 1000), 0);
	assert_int_equal(stick_lookup(t, "old", 3, far, &srv), 1);
	assert_int_equal(srv, 1);
	assert_int_equal(stick_delete(t, "old", 3), 1);
	stick_foreach(t, far + 500, idle_cb, &s);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.idle, 1500);
	assert_int_equal(s.age, 1500);

	/* expiry keeps working across rebases */
	for (uint64_t now = t0; now < far; now += (1ull << 29)) {
		assert_int_equal(stick_store(e, "k", 1, 3, now), 0);
		assert_int_equal(stick_lookup(e, "k", 1, now + 59999, &srv), 1);
		assert_int_equal(stick_lookup(e, "k", 1, now + 59999 + 60000,
					      &srv), 0);
		assert_int_equal(stick_store(e, "k", 1, 3, now), 0);
		assert_int_equal(stick_expire(e, now + 200000, 8), 1);
		assert_int_equal(stick_count(e), 0);
	}
	stick_free(t);
	stick_free(e);
}

/* ---- threads ---------------------------------------------------------- */

#define NTHREADS 4
#define NKEYS    512
#define NOPS     40000

struct worker {
	struct stick_table *t;
	unsigned seed;
	size_t hits;
};

static void *hammer(void *arg)
{
	struct worker *w = arg;
	unsigned x = w->seed;
	char k[32];

	for (unsigned i = 0; i < NOPS; i++) {
		unsigned op, key;
		uint32_t srv;
		uint64_t now = 1000 + i;

		x = x * 1103515245u + 12345u;
		op = (x >> 16) % 100;
		x = x * 1103515245u + 12345u;
		key = (x >> 16) % NKEYS;
		key_of(k, sizeof(k), key);
		if (op < 50) {
			if (stick_lookup(w->t, k, strlen(k), now, &srv)) {
				/* each key only ever maps to key % 8 */
				BUG_ON(srv != key % 8);
				w->hits++;
			}
		} else if (op < 85) {
			BUG_ON(stick_store(w->t, k, strlen(k), key % 8, now) != 0);
		} else if (op < 95) {
			stick_delete(w->t, k, strlen(k));
		} else if (op < 99) {
			stick_expire(w->t, now, 8);
		} else {
			(void)stick_count_server(w->t, key % 8);
		}
	}
	return NULL;
}

static void test_threads(void **state)
{
	/* small: evictions, expiries and collisions between threads */
	struct stick_table *t = stick_new(256, 3000, 4);
	struct worker w[NTHREADS];
	pthread_t th[NTHREADS];
	size_t n = 0, by_srv = 0;

	(void)state;
	for (int i = 0; i < NTHREADS; i++) {
		w[i] = (struct worker){ .t = t, .seed = 17u * (unsigned)i + 1 };
		assert_int_equal(pthread_create(&th[i], NULL, hammer, &w[i]), 0);
	}
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < NTHREADS; i++)
		assert_true(w[i].hits > 0);
	assert_true(stick_count(t) <= 256);
	for (uint32_t s = 0; s < 8; s++)
		by_srv += stick_count_server(t, s);
	assert_int_equal(by_srv, stick_count(t));
	stick_foreach(t, 0, count_cb, &n);
	assert_int_equal(n, stick_count(t));
	stick_free(t);
}

/* ---- state file -------------------------------------------------------- */

/* Save t into a memory buffer; returns its length. */
static size_t save_to(struct stick_table *t, const char *name, uint64_t now,
		      char **buf)
{
	size_t len = 0;
	FILE *f = open_memstream(buf, &len);
	char err[128];

	assert_non_null(f);
	assert_int_equal(stick_save(t, f, name, now, err, sizeof(err)), 0);
	assert_int_equal(fclose(f), 0);
	return len;
}

static int load_from(struct stick_table *t, const char *buf, size_t len,
		     uint64_t now, stick_map_fn map, void *arg, char *err,
		     size_t errlen)
{
	FILE *f;
	int rc;

	if (len == 0) {
		f = tmpfile();	/* fmemopen refuses an empty buffer */
		assert_non_null(f);
	} else {
		f = fmemopen((void *)buf, len, "r");
		assert_non_null(f);
	}
	rc = stick_load(t, f, now, map, arg, err, errlen);
	fclose(f);
	return rc;
}

static struct stick_table *sample_table(void)
{
	struct stick_table *t = stick_new(10000, 600000, 0);
	uint8_t big[STICK_KEY_MAX];
	char k[32];

	assert_non_null(t);
	memset(big, 0xab, sizeof(big));
	for (unsigned i = 0; i < 300; i++) {
		key_of(k, sizeof(k), i);
		assert_int_equal(stick_store(t, k, strlen(k), i % 5,
					     100000 + i), 0);
	}
	assert_int_equal(stick_store(t, "", 0, 1, 100000), 0);
	assert_int_equal(stick_store(t, big, sizeof(big), 2, 100000), 0);
	assert_int_equal(stick_store(t, "\x0a\x00\x00\x01", 4, 3, 100000), 0);
	return t;
}

static void check_sample(struct stick_table *t, uint64_t now)
{
	uint8_t big[STICK_KEY_MAX];
	char k[32];
	uint32_t srv;

	memset(big, 0xab, sizeof(big));
	assert_int_equal(stick_count(t), 303);
	for (unsigned i = 0; i < 300; i++) {
		key_of(k, sizeof(k), i);
		assert_int_equal(stick_lookup(t, k, strlen(k), now, &srv), 1);
		assert_int_equal(srv, i % 5);
	}
	assert_int_equal(stick_lookup(t, "", 0, now, &srv), 1);
	assert_int_equal(srv, 1);
	assert_int_equal(stick_lookup(t, big, sizeof(big), now, &srv), 1);
	assert_int_equal(srv, 2);
	assert_int_equal(stick_lookup(t, "\x0a\x00\x00\x01", 4, now, &srv), 1);
	assert_int_equal(srv, 3);
}

static int idle_age_cb(void *arg, const void *key, size_t klen, uint32_t srv,
		       uint64_t idle_ms, uint64_t age_ms)
{
	uint64_t *out = arg;

	(void)key, (void)klen, (void)srv;
	out[0] = idle_ms;
	out[1] = age_ms;
	return 0;
}

/* A reload shares a table between two generations (reload.c): references,
 * and new limits applied to a table in use. */
static void test_shared_limits(void **state)
{
	struct stick_table *t = stick_new(1000, 0, 1);
	char k[32];
	uint32_t srv;
	struct stick_stats st;

	(void)state;
	stick_hold(t);
	for (unsigned i = 0; i < 100; i++) {
		key_of(k, sizeof(k), i);
		assert_int_equal(stick_store(t, k, strlen(k), i % 3, 1000 + i), 0);
	}
	stick_free(t); /* one holder left: still usable */
	assert_int_equal(stick_count(t), 100);
	/* a smaller size evicts the least recently used at once */
	stick_set_limits(t, 10, 0);
	assert_int_equal(stick_count(t), 10);
	stick_stats(t, &st);
	assert_int_equal(st.evicted, 90);
	key_of(k, sizeof(k), 99);
	assert_int_equal(stick_lookup(t, k, strlen(k), 2000, &srv), 1);
	key_of(k, sizeof(k), 89);
	assert_int_equal(stick_lookup(t, k, strlen(k), 2000, &srv), 0);
	/* a new expiry applies to the entries already there */
	stick_set_limits(t, 10, 500);
	key_of(k, sizeof(k), 98);
	assert_int_equal(stick_lookup(t, k, strlen(k), 1098 + 499, &srv), 1);
	key_of(k, sizeof(k), 97);
	assert_int_equal(stick_lookup(t, k, strlen(k), 1097 + 500, &srv), 0);
	assert_true(stick_expire(t, 100000, 64) > 0);
	assert_int_equal(stick_count(t), 0);
	stick_free(t);
}

/* Entries restored older than the clock's origin (a state file loaded
 * just after a reboot) keep their true idle time and age. */
static void test_load_older_than_boot(void **state)
{
	struct stick_table *a = stick_new(100, 0, 1), *b = stick_new(100, 0, 1);
	struct stick_block blk;
	char err[128];
	FILE *f = tmpfile();
	uint64_t idle = 0, age = 0;

	(void)state;
	assert_non_null(f);
	assert_int_equal(stick_store(a, "k", 1, 1, 50 * 86400000ull), 0);
	assert_int_equal(stick_save(a, f, "t", 50 * 86400000ull + 1000, err, sizeof(err)), 0);
	rewind(f);
	assert_int_equal(stick_load_header(f, &blk, err, sizeof(err)), 1);
	blk.downtime_ms = 600000; /* 10 minutes stopped */
	assert_int_equal(stick_load_body(b, f, &blk, 3000, NULL, NULL, err, sizeof(err)), 1);
	{
		uint64_t got[2] = { 0, 0 };

		stick_foreach(b, 3000, idle_age_cb, got);
		idle = got[0];
		age = got[1];
	}
	assert_int_equal(idle, 601000);
	assert_int_equal(age, 601000);
	fclose(f);
	stick_free(a);
	stick_free(b);
}

static void test_save_load_roundtrip(void **state)
{
	struct stick_table *a = sample_table();
	struct stick_table *b = stick_new(10000, 600000, 0);
	char *buf = NULL, err[128];
	size_t len;
	struct seen s = { 0 };

	(void)state;
	/* saved at 200000: every entry ~100 s idle */
	len = save_to(a, "app/learn", 200000, &buf);
	/* another process, another monotonic origin */
	assert_int_equal(load_from(b, buf, len, 7000, NULL, NULL, err,
				   sizeof(err)), 303);
	/* idle and age survive as relative times */
	{
		char k[32];
		struct stick_table *one = stick_new(10, 600000, 1);
		char *b2 = NULL;
		size_t l2;

		key_of(k, sizeof(k), 7);
		assert_int_equal(stick_store(one, k, strlen(k), 4, 1000), 0);
		l2 = save_to(one, NULL, 6000, &b2);
		stick_clear(one);
		assert_int_equal(load_from(one, b2, l2, 90000000, NULL, NULL,
					   err, sizeof(err)), 1);
		stick_foreach(one, 90000000, idle_cb, &s);
		assert_int_equal(s.n, 1);
		assert_int_equal(s.idle, 5000);
		assert_int_equal(s.age, 5000);
		free(b2);
		stick_free(one);
	}
	check_sample(b, 7001);
	assert_int_equal(stick_count_server(b, 3), 61);
	free(buf);
	stick_free(a);
	stick_free(b);
}

static void test_load_drops_expired(void **state)
{
	struct stick_table *a = stick_new(100, 0, 1);
	struct stick_table *b = stick_new(100, 1000, 1);
	char *buf = NULL, err[128];
	size_t len;
	uint32_t srv;

	(void)state;
	assert_int_equal(stick_store(a, "old", 3, 1, 1000), 0);
	assert_int_equal(stick_store(a, "new", 3, 2, 5000), 0);
	len = save_to(a, "x", 5500, &buf);
	assert_int_equal(load_from(b, buf, len, 10, NULL, NULL, err,
				   sizeof(err)), 1);
	assert_int_equal(stick_lookup(b, "new", 3, 10, &srv), 1);
	assert_int_equal(stick_lookup(b, "old", 3, 10, &srv), 0);
	free(buf);
	stick_free(a);
	stick_free(b);
}

static int map_even(void *arg, uint32_t old)
{
	(*(int *)arg)++;
	return old % 2 ? -1 : (int)old + 10;
}

static void test_load_map_srv(void **state)
{
	struct stick_table *a = sample_table();
	struct stick_table *b = stick_new(10000, 600000, 0);
	char *buf = NULL, err[128], k[32];
	size_t len;
	int calls = 0;
	uint32_t srv;

	(void)state;
	len = save_to(a, "app/source", 200000, &buf);
	/* servers 0, 2, 4 kept (as 10, 12, 14); 1 and 3 are gone */
	assert_int_equal(load_from(b, buf, len, 1, map_even, &calls, err,
				   sizeof(err)), 181);
	assert_int_equal(calls, 303);
	assert_int_equal(stick_count(b), 181);
	key_of(k, sizeof(k), 1);
	assert_int_equal(stick_lookup(b, k, strlen(k), 2, &srv), 0);
	key_of(k, sizeof(k), 2);
	assert_int_equal(stick_lookup(b, k, strlen(k), 2, &srv), 1);
	assert_int_equal(srv, 12);
	assert_int_equal(stick_count_server(b, 10), 60);
	assert_int_equal(stick_count_server(b, 0), 0);
	free(buf);
	stick_free(a);
	stick_free(b);
}

static void test_several_tables_one_file(void **state)
{
	struct stick_table *a = sample_table(), *c = stick_new(10, 0, 1);
	struct stick_table *a2 = stick_new(10000, 600000, 0);
	struct stick_table *c2 = stick_new(10, 0, 1);
	char *buf = NULL, err[128];
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct stick_block blk;
	int r, blocks = 0;
	uint32_t srv;

	(void)state;
	assert_int_equal(stick_store(c, "10.0.0.1", 8, 9, 100), 0);
	assert_int_equal(stick_save(c, f, "web/source", 200, err,
				    sizeof(err)), 0);
	assert_int_equal(stick_save(a, f, "app/learn/JSESSIONID", 200000, err,
				    sizeof(err)), 0);
	assert_int_equal(stick_save(c, f, "gone/header", 200, err,
				    sizeof(err)), 0);
	fclose(f);
	f = fmemopen(buf, len, "r");
	while ((r = stick_load_header(f, &blk, err, sizeof(err))) == 1) {
		struct stick_table *dst = NULL;

		if (strcmp(blk.name, "web/source") == 0)
			dst = c2;
		else if (strcmp(blk.name, "app/learn/JSESSIONID") == 0)
			dst = a2;
		/* an unknown name is verified and skipped */
		assert_true(stick_load_body(dst, f, &blk, 50, NULL, NULL, err,
					    sizeof(err)) >= 0);
		blocks++;
	}
	assert_int_equal(r, 0);
	assert_int_equal(blocks, 3);
	fclose(f);
	check_sample(a2, 60);
	assert_int_equal(stick_lookup(c2, "10.0.0.1", 8, 60, &srv), 1);
	assert_int_equal(srv, 9);
	assert_int_equal(stick_count(c2), 1);
	free(buf);
	stick_free(a);
	stick_free(c);
	stick_free(a2);
	stick_free(c2);
}

static void test_load_truncated(void **state)
{
	struct stick_table *a = sample_table();
	struct stick_table *b = stick_new(10000, 600000, 0);
	char *buf = NULL, err[128];
	size_t len;

	(void)state;
	len = save_to(a, "app/learn", 200000, &buf);
	/* every possible truncation is detected and leaves b empty */
	for (size_t cut = 0; cut < len; cut++) {
		err[0] = '\0';
		assert_int_equal(load_from(b, buf, cut, 1, NULL, NULL, err,
					   sizeof(err)), -1);
		assert_true(err[0] != '\0');
		assert_int_equal(stick_count(b), 0);
	}
	assert_int_equal(load_from(b, buf, len, 1, NULL, NULL, err,
				   sizeof(err)), 303);
	free(buf);
	stick_free(a);
	stick_free(b);
}

static void test_load_corrupt_byte(void **state)
{
	struct stick_table *a = sample_table();
	struct stick_table *b = stick_new(10000, 600000, 0);
	char *buf = NULL, err[128];
	size_t len;

	(void)state;
	len = save_to(a, "app/learn", 200000, &buf);
	/* flip one bit of each byte in turn (a different bit each time):
	 * always rejected, nothing loaded */
	for (size_t i = 0; i < len; i++) {
		char bit = (char)(1 << (i % 8));

		buf[i] ^= bit;
		err[0] = '\0';
		assert_int_equal(load_from(b, buf, len, 1, NULL, NULL, err,
					   sizeof(err)), -1);
		assert_true(err[0] != '\0');
		assert_int_equal(stick_count(b), 0);
		buf[i] ^= bit;
	}
	free(buf);
	stick_free(a);
	stick_free(b);
}

static void test_load_foreign(void **state)
{
	struct stick_table *b = stick_new(100, 0, 0);
	char err[128];
	uint8_t junk[4096];
	const char *text = "global\n    threads auto\n";
	char fake[64];

	(void)state;
	/* random bytes */
	for (int round = 0; round < 50; round++) {
		unsigned x = 12345u + (unsigned)round;

		for (size_t i = 0; i < sizeof(junk); i++) {
			x = x * 1103515245u + 12345u;
			junk[i] = (uint8_t)(x >> 16);
		}
		assert_int_equal(load_from(b, (char *)junk,
					   1 + (size_t)round * 80, 1, NULL,
					   NULL, err, sizeof(err)), -1);
	}
	/* a text file */
	assert_int_equal(load_from(b, text, strlen(text), 1, NULL, NULL, err,
				   sizeof(err)), -1);
	assert_non_null(strstr(err, "magic"));
	/* the right magic, a future version */
	memcpy(fake, "bollstk\n\x02\0\0\0", 12);
	memset(fake + 12, 0, sizeof(fake) - 12);
	assert_int_equal(load_from(b, fake, sizeof(fake), 1, NULL, NULL, err,
				   sizeof(err)), -1);
	assert_non_null(strstr(err, "version"));
	/* the right magic and version, garbage after it */
	fake[8] = 1;
	memset(fake + 12, 0x5a, sizeof(fake) - 12);
	assert_int_equal(load_from(b, fake, sizeof(fake), 1, NULL, NULL, err,
				   sizeof(err)), -1);
	/* empty file */
	assert_int_equal(load_from(b, "", 0, 1, NULL, NULL, err,
				   sizeof(err)), -1);
	assert_int_equal(stick_count(b), 0);
	stick_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_lookup_times),
		cmocka_unit_test(test_lru_eviction_order),
		cmocka_unit_test(test_expiry_on_lookup),
		cmocka_unit_test(test_expire_sweep),
		cmocka_unit_test(test_server_counters),
		cmocka_unit_test(test_growth),
		cmocka_unit_test(test_time_rebase),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_shared_limits),
		cmocka_unit_test(test_load_older_than_boot),
		cmocka_unit_test(test_save_load_roundtrip),
		cmocka_unit_test(test_load_drops_expired),
		cmocka_unit_test(test_load_map_srv),
		cmocka_unit_test(test_several_tables_one_file),
		cmocka_unit_test(test_load_truncated),
		cmocka_unit_test(test_load_corrupt_byte),
		cmocka_unit_test(test_load_foreign),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
