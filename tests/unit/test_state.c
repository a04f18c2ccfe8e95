/*
 * test_state.c - the state file (state.c): configurations parsed from
 * temporary files, tables created by persist_init() and filled by hand,
 * then saved and restored. What must hold: a round trip restores every
 * entry; entries follow their server's name when servers are reordered
 * and are dropped (and counted) when their server, rule or backend is
 * gone; a truncated, bit-flipped, foreign or future file is refused and
 * leaves every table empty; a missing file is no error; time spent
 * stopped counts as idle time.
 */
#include "api.h"
#include "state.h"
#include "persist.h"
#include "srvstate.h"
#include "stick.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <cmocka.h>
#include <sodium.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char dir[64];
static char path[128];

static const char *CONF_A =
	"global\n"
	"    threads 1\n"
	"    log off\n"
	"frontend fe\n"
	"    bind 127.0.0.1:18080\n"
	"    default-backend app\n"
	"backend app\n"
	"    persist cookie BOLLARD insert\n"
	"    persist source\n"
	"    persist learn JSESSIONID\n"
	"    server a1 127.0.0.1:9001\n"
	"    server a2 127.0.0.1:9002\n"
	"    server a3 127.0.0.1:9003\n"
	"backend api\n"
	"    persist header X-User\n"
	"    persist url-param sid expire 30m\n"
	"    server b1 127.0.0.1:9101\n"
	"    server b2 127.0.0.1:9102\n";

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static struct config *load_conf(const char *text)
{
	char cpath[160], err[256] = "";
	char *errs = NULL;
	struct config *cfg;
	FILE *f;

	snprintf(cpath, sizeof(cpath), "%s/bollard.conf", dir);
	f = fopen(cpath, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	cfg = cfg_load(cpath, &errs);
	if (!cfg)
		fail_msg("config: %s", errs ? errs : "?");
	assert_int_equal(persist_init(cfg, err, sizeof(err)), 0);
	return cfg;
}

static void free_conf(struct config *cfg)
{
	persist_fini(cfg);
	cfg_free(cfg);
}

/* Table of rule i of backend be (NULL for cookie insert). */
static struct stick_table *tab(struct config *cfg, const char *be, int i)
{
	struct backend *b = cfg_find_backend(cfg, be);
	struct persist_rules *rs;

	assert_non_null(b);
	rs = b->persist;
	assert_non_null(rs);
	assert_true(i < rs->n);
	return rs->r[i].table;
}

static int srv_idx(struct config *cfg, const char *be, const char *srv)
{
	struct server *s = cfg_find_server(cfg_find_backend(cfg, be), srv);

	assert_non_null(s);
	return s->idx;
}

static void put(struct config *cfg, const char *be, int rule, const char *key,
		const char *srv)
{
	assert_int_equal(stick_store(tab(cfg, be, rule), key, strlen(key),
				     (uint32_t)srv_idx(cfg, be, srv), now_ms()), 0);
}

/* -1: key absent, else the server index it maps to. */
static int get(struct config *cfg, const char *be, int rule, const char *key)
{
	uint32_t srv;

	if (!stick_lookup(tab(cfg, be, rule), key, strlen(key), now_ms(), &srv))
		return -1;
	return (int)srv;
}

static size_t total_entries(struct config *cfg)
{
	size_t n = 0;

	for (int b = 0; b < cfg->nbackends; b++) {
		struct persist_rules *rs = cfg->backends[b]->persist;

		for (int i = 0; rs && i < rs->n; i++)
			if (rs->r[i].table)
				n += stick_count(rs->r[i].table);
	}
	return n;
}

/* 12 entries over four tables. */
static void fill_a(struct config *cfg)
{
	put(cfg, "app", 1, "10.0.0.1", "a1");
	put(cfg, "app", 1, "10.0.0.2", "a2");
	put(cfg, "app", 1, "10.0.0.3", "a3");
	put(cfg, "app", 2, "sess-one", "a1");
	put(cfg, "app", 2, "sess-two", "a2");
	put(cfg, "app", 2, "sess-three", "a3");
	put(cfg, "app", 2, "sess-four", "a2");
	put(cfg, "api", 0, "alice", "b1");
	put(cfg, "api", 0, "bob", "b2");
	put(cfg, "api", 1, "s1", "b1");
	put(cfg, "api", 1, "s2", "b2");
	put(cfg, "api", 1, "s3", "b2");
	assert_int_equal(total_entries(cfg), 12);
}

static void save(struct config *cfg)
{
	char err[256] = "";

	if (state_save(cfg, path, err, sizeof(err)) < 0)
		fail_msg("state_save: %s", err);
}

static int load(struct config *cfg, size_t *restored, size_t *dropped)
{
	char err[256] = "";
	int rc = state_load(cfg, path, restored, dropped, err, sizeof(err));

	if (rc < 0)
		assert_true(err[0] != '\0');
	return rc;
}

static uint8_t *read_whole(const char *p, size_t *len)
{
	FILE *f = fopen(p, "rb");
	uint8_t *buf;
	long n;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static void write_whole(const char *p, const uint8_t *buf, size_t len)
{
	FILE *f = fopen(p, "wb");

	assert_non_null(f);
	if (len)
		assert_int_equal(fwrite(buf, 1, len, f), len);
	fclose(f);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_state_XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/bollard.state", dir);
	return 0;
}

static int teardown(void **state)
{
	char p[160];

	(void)state;
	unlink(path);
	snprintf(p, sizeof(p), "%s.tmp", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s/bollard.conf", dir);
	unlink(p);
	rmdir(dir);
	return 0;
}

static void test_round_trip(void **state)
{
	struct config *a = load_conf(CONF_A), *b = load_conf(CONF_A);
	size_t restored = 99, dropped = 99;
	struct stat st;
	char tmp[160];

	(void)state;
	fill_a(a);
	save(a);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	assert_int_equal(access(tmp, F_OK), -1);

	assert_int_equal(load(b, &restored, &dropped), 0);
	assert_int_equal(restored, 12);
	assert_int_equal(dropped, 0);
	assert_int_equal(total_entries(b), 12);
	assert_int_equal(get(b, "app", 1, "10.0.0.2"), srv_idx(b, "app", "a2"));
	assert_int_equal(get(b, "app", 2, "sess-three"), srv_idx(b, "app", "a3"));
	assert_int_equal(get(b, "app", 2, "sess-four"), srv_idx(b, "app", "a2"));
	assert_int_equal(get(b, "api", 0, "bob"), srv_idx(b, "api", "b2"));
	assert_int_equal(get(b, "api", 1, "s1"), srv_idx(b, "api", "b1"));
	/* keys do not leak between tables of the same backend */
	assert_int_equal(get(b, "app", 1, "sess-one"), -1);

	/* Saving again over an existing file (and a stale .tmp) works. */
	write_whole(tmp, (const uint8_t *)"junk", 4);
	chmod(tmp, 0644);
	save(b);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(access(tmp, F_OK), -1);
	free_conf(a);
	free_conf(b);
}

static void test_servers_reordered(void **state)
{
	const char *conf =
		"global\n    log off\n"
		"frontend fe\n    bind 127.0.0.1:18080\n    default-backend app\n"
		"backend app\n"
		"    persist cookie BOLLARD insert\n"
		"    persist source\n"
		"    persist learn JSESSIONID\n"
		"    server a3 127.0.0.1:9003\n"
		"    server a1 127.0.0.1:9001\n"
		"    server a2 127.0.0.1:9002\n"
		"backend api\n"
		"    persist header X-User\n"
		"    persist url-param sid expire 30m\n"
		"    server b2 127.0.0.1:9102\n"
		"    server b1 127.0.0.1:9101\n";
	struct config *a = load_conf(CONF_A), *b;
	size_t restored, dropped;

	(void)state;
	fill_a(a);
	save(a);
	free_conf(a);
	b = load_conf(conf);
	assert_int_equal(srv_idx(b, "app", "a1"), 1);
	assert_int_equal(load(b, &restored, &dropped), 0);
	assert_int_equal(restored, 12);
	assert_int_equal(dropped, 0);
	assert_int_equal(get(b, "app", 1, "10.0.0.1"), srv_idx(b, "app", "a1"));
	assert_int_equal(get(b, "app", 1, "10.0.0.3"), srv_idx(b, "app", "a3"));
	assert_int_equal(get(b, "app", 2, "sess-two"), srv_idx(b, "app", "a2"));
	assert_int_equal(get(b, "api", 0, "alice"), srv_idx(b, "api", "b1"));
	assert_int_equal(get(b, "api", 1, "s3"), srv_idx(b, "api", "b2"));
	free_conf(b);
}

static void test_servers_removed_renamed(void **state)
{
	/* app: a2 removed, a3 moved up; api: b1 renamed to b9. */
	const char *conf =
		"global\n    log off\n"
		"frontend fe\n    bind 127.0.0.1:18080\n    default-backend app\n"
		"backend app\n"
		"    persist source\n"
		"    persist learn JSESSIONID\n"
		"    server a1 127.0.0.1:9001\n"
		"    server a3 127.0.0.1:9003\n"
		"backend api\n"
		"    persist header X-User\n"
		"    persist url-param sid expire 30m\n"
		"    server b9 127.0.0.1:9101\n"
		"    server b2 127.0.0.1:9102\n";
	struct config *a = load_conf(CONF_A), *b;
	size_t restored, dropped;

	(void)state;
	fill_a(a);
	save(a);
	free_conf(a);
	b = load_conf(conf);
	assert_int_equal(load(b, &restored, &dropped), 0);
	/* gone: a2 x3 (10.0.0.2, sess-two, sess-four), b1 x2 (alice, s1) */
	assert_int_equal(dropped, 5);
	assert_int_equal(restored, 7);
	assert_int_equal(total_entries(b), 7);
	/* rules are found by label and name, not position (cookie removed) */
	assert_int_equal(get(b, "app", 0, "10.0.0.3"), srv_idx(b, "app", "a3"));
	assert_int_equal(get(b, "app", 0, "10.0.0.2"), -1);
	assert_int_equal(get(b, "app", 1, "sess-three"), srv_idx(b, "app", "a3"));
	assert_int_equal(get(b, "app", 1, "sess-two"), -1);
	assert_int_equal(get(b, "api", 0, "alice"), -1);
	assert_int_equal(get(b, "api", 0, "bob"), srv_idx(b, "api", "b2"));
	assert_int_equal(get(b, "api", 1, "s1"), -1);
	free_conf(b);
}

static void test_rules_backends_removed(void **state)
{
	/* api gone; app's learn rule now names another cookie. */
	const char *conf =
		"global\n    log off\n"
		"frontend fe\n    bind 127.0.0.1:18080\n    default-backend app\n"
		"backend app\n"
		"    persist source\n"
		"    persist learn PHPSESSID\n"
		"    server a1 127.0.0.1:9001\n"
		"    server a2 127.0.0.1:9002\n"
		"    server a3 127.0.0.1:9003\n"
		"backend other\n"
		"    persist header X-User\n"
		"    server b1 127.0.0.1:9101\n";
	struct config *a = load_conf(CONF_A), *b;
	size_t restored, dropped;

	(void)state;
	fill_a(a);
	save(a);
	free_conf(a);
	b = load_conf(conf);
	assert_int_equal(load(b, &restored, &dropped), 0);
	assert_int_equal(restored, 3);
	assert_int_equal(dropped, 9);
	assert_int_equal(stick_count(tab(b, "app", 1)), 0);
	assert_int_equal(stick_count(tab(b, "other", 0)), 0);
	assert_int_equal(get(b, "app", 0, "10.0.0.1"), srv_idx(b, "app", "a1"));
	free_conf(b);
}

static void test_no_tables(void **state)
{
	const char *conf =
		"global\n    log off\n"
		"frontend fe\n    bind 127.0.0.1:18080\n    default-backend app\n"
		"backend app\n"
		"    server a1 127.0.0.1:9001\n";
	struct config *b = load_conf(conf), *a = load_conf(CONF_A);
	size_t restored, dropped;

	(void)state;
	save(b);
	assert_int_equal(load(b, &restored, &dropped), 0);
	assert_int_equal(restored, 0);
	/* a file without blocks restores nothing into tables that exist */
	assert_int_equal(load(a, &restored, &dropped), 0);
	assert_int_equal(restored + dropped, 0);
	/* and the other way round: every entry dropped */
	fill_a(a);
	save(a);
	assert_int_equal(load(b, &restored, &dropped), 0);
	assert_int_equal(restored, 0);
	assert_int_equal(dropped, 12);
	free_conf(a);
	free_conf(b);
}

static void test_missing_file(void **state)
{
	struct config *a = load_conf(CONF_A);
	size_t restored = 7, dropped = 7;
	char err[256] = "";

	(void)state;
	assert_int_equal(state_load(a, path, &restored, &dropped, err, sizeof(err)), 0);
	assert_int_equal(restored, 0);
	assert_int_equal(dropped, 0);
	assert_int_equal(state_load(a, path, NULL, NULL, err, sizeof(err)), 0);
	/* an unwritable place is an error, not a crash */
	assert_int_equal(state_save(a, "/nonexistent-dir/x/bollard.state", err,
				    sizeof(err)), -1);
	assert_non_null(strstr(err, "nonexistent"));
	free_conf(a);
}

/* Every proper prefix of a good file is refused and loads nothing. */
static void test_truncated(void **state)
{
	struct config *a = load_conf(CONF_A), *b = load_conf(CONF_A);
	size_t len, restored, dropped;
	uint8_t *good;

	(void)state;
	fill_a(a);
	save(a);
	good = read_whole(path, &len);
	assert_true(len > 200);
	for (size_t n = 0; n < len; n++) {
		write_whole(path, good, n);
		if (load(b, &restored, &dropped) != -1)
			fail_msg("a file cut at %zu of %zu bytes was accepted", n, len);
		assert_int_equal(restored, 0);
		assert_int_equal(total_entries(b), 0);
	}
	/* and trailing bytes after a good file are refused too */
	{
		uint8_t *more = malloc(len + 8);

		assert_non_null(more);
		memcpy(more, good, len);
		memcpy(more + len, "bollstk\n", 8);
		write_whole(path, more, len + 8);
		assert_int_equal(load(b, &restored, &dropped), -1);
		assert_int_equal(total_entries(b), 0);
		free(more);
	}
	write_whole(path, good, len);
	assert_int_equal(load(b, &restored, &dropped), 0);
	assert_int_equal(restored, 12);
	free(good);
	free_conf(a);
	free_conf(b);
}

/* A flipped bit anywhere is refused and loads nothing. */
static void test_flipped(void **state)
{
	struct config *a = load_conf(CONF_A), *b = load_conf(CONF_A);
	size_t len, restored, dropped;
	uint8_t *good;

	(void)state;
	fill_a(a);
	save(a);
	good = read_whole(path, &len);
	for (size_t i = 0; i < len; i++) {
		uint8_t bit = (uint8_t)(1u << (i % 8));

		good[i] ^= bit;
		write_whole(path, good, len);
		good[i] ^= bit;
		if (load(b, &restored, &dropped) != -1)
			fail_msg("a file with byte %zu of %zu altered was accepted", i, len);
		assert_int_equal(total_entries(b), 0);
	}
	free(good);
	free_conf(a);
	free_conf(b);
}

static void test_foreign(void **state)
{
	static const char *texts[] = {
		"",
		"hello, world\n",
		"bollard-state\n",	/* magic only */
		"bollard-state\n\x03\0\0\0\0\0\0\0",	/* a future version */
		"bollard-state\n\x01\0\0\0\xff\xff\xff\xff",	/* absurd length */
	};
	static const size_t lens[] = { 0, 13, 14, 22, 22 };
	struct config *a = load_conf(CONF_A);
	char err[256];
	size_t restored, dropped;
	FILE *f;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(texts); i++) {
		write_whole(path, (const uint8_t *)texts[i], lens[i]);
		err[0] = '\0';
		assert_int_equal(state_load(a, path, &restored, &dropped, err,
					    sizeof(err)), -1);
		assert_non_null(strstr(err, path));
	}
	/* a bare stick block (stick.h's format without our header) */
	put(a, "app", 1, "10.0.0.1", "a1");
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(stick_save(tab(a, "app", 1), f, "app/source/", now_ms(),
				    err, sizeof(err)), 0);
	fclose(f);
	assert_int_equal(state_load(a, path, &restored, &dropped, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a bollard state file"));
	/* a directory where the file should be */
	assert_int_equal(state_load(a, dir, &restored, &dropped, err, sizeof(err)), -1);
	free_conf(a);
}

/*
 * Time stopped counts as idle time and age. Both clocks are injected
 * (state_save_at / state_load_at), so the test does not depend on the
 * machine: the save happens on a machine up for 40 days, the load right
 * after a reboot (monotonic clock at 5 s), which is where "load as of the
 * save on the monotonic clock" used to clamp and bring entries back
 * younger than they were.
 */
#define DAY_MS (24ull * 3600 * 1000)
#define MIN_MS (60ull * 1000)
static const uint64_t WALL0 = 1790000000000ull; /* some wall-clock ms */

struct span {
	uint64_t min_idle, max_idle, min_age, max_age;
	size_t n;
};

static int span_cb(void *arg, const void *key, size_t klen, uint32_t srv,
		   uint64_t idle_ms, uint64_t age_ms)
{
	struct span *sp = arg;

	(void)key, (void)klen, (void)srv;
	sp->min_idle = MIN(sp->min_idle, idle_ms);
	sp->max_idle = MAX(sp->max_idle, idle_ms);
	sp->min_age = MIN(sp->min_age, age_ms);
	sp->max_age = MAX(sp->max_age, age_ms);
	sp->n++;
	return 0;
}

static struct span span_of(struct stick_table *t, uint64_t now)
{
	struct span sp = { UINT64_MAX, 0, UINT64_MAX, 0, 0 };

	stick_foreach(t, now, span_cb, &sp);
	return sp;
}

/* Save cfg's tables as of (mono, wall), load them into a fresh
 * configuration as of (mono2, wall + down). */
static struct config *restart(struct config *cfg, uint64_t mono, uint64_t mono2,
			      uint64_t down, size_t *restored, size_t *dropped)
{
	struct state_clock at_save = { mono, WALL0 }, at_load = { mono2, WALL0 + down };
	struct config *b = load_conf(CONF_A);
	char err[256] = "";

	if (state_save_at(cfg, path, &at_save, err, sizeof(err)) < 0)
		fail_msg("state_save_at: %s", err);
	if (state_load_at(b, path, &at_load, restored, dropped, err, sizeof(err)) < 0)
		fail_msg("state_load_at: %s", err);
	return b;
}

static void test_downtime(void **state)
{
	const uint64_t up = 40 * DAY_MS, boot = 5000;
	struct config *a = load_conf(CONF_A), *b;
	struct stick_table *t = tab(a, "api", 1); /* url-param, expire 30m */
	size_t restored, dropped;
	struct span sp;

	(void)state;
	/* three entries created 5 minutes before the save, s3 last used 2
	 * minutes before it */
	assert_int_equal(stick_store(t, "s1", 2, 0, up - 5 * MIN_MS), 0);
	assert_int_equal(stick_store(t, "s2", 2, 1, up - 5 * MIN_MS), 0);
	assert_int_equal(stick_store(t, "s3", 2, 1, up - 5 * MIN_MS), 0);
	uint32_t srv;
	assert_int_equal(stick_lookup(t, "s3", 2, up - 2 * MIN_MS, &srv), 1);

	/* 10 minutes stopped, loaded 5 s after a reboot: entries come back
	 * exactly 10 minutes older (idle 12 and 15 minutes, age 15) */
	b = restart(a, up, boot, 10 * MIN_MS, &restored, &dropped);
	assert_int_equal(restored, 3);
	assert_int_equal(dropped, 0);
	sp = span_of(tab(b, "api", 1), boot);
	assert_int_equal(sp.n, 3);
	assert_int_equal(sp.min_idle, 12 * MIN_MS);
	assert_int_equal(sp.max_idle, 15 * MIN_MS);
	assert_int_equal(sp.min_age, 15 * MIN_MS);
	assert_int_equal(sp.max_age, 15 * MIN_MS);
	/* and they keep ageing from there: s1 and s2 expire 15 minutes after
	 * the boot, s3 3 minutes later */
	assert_int_equal(span_of(tab(b, "api", 1), boot + 15 * MIN_MS - 1).n, 3);
	assert_int_equal(span_of(tab(b, "api", 1), boot + 15 * MIN_MS).n, 1);
	assert_int_equal(span_of(tab(b, "api", 1), boot + 18 * MIN_MS).n, 0);
	free_conf(b);

	/* 26 minutes stopped: idle 28 and 31 minutes, only s3 survives */
	b = restart(a, up, boot, 26 * MIN_MS, &restored, &dropped);
	assert_int_equal(restored, 1);
	assert_int_equal(dropped, 0);
	sp = span_of(tab(b, "api", 1), boot);
	assert_int_equal(sp.n, 1);
	assert_int_equal(sp.min_idle, 28 * MIN_MS);
	free_conf(b);

	/* the same downtime with the monotonic clock far from its origin
	 * (a restart without a reboot) gives the same answer */
	b = restart(a, up, up + 3 * DAY_MS, 10 * MIN_MS, &restored, &dropped);
	assert_int_equal(restored, 3);
	sp = span_of(tab(b, "api", 1), up + 3 * DAY_MS);
	assert_int_equal(sp.min_idle, 12 * MIN_MS);
	assert_int_equal(sp.max_age, 15 * MIN_MS);
	free_conf(b);

	free_conf(a);

	/* 31 minutes stopped: the 30m tables come back empty */
	a = load_conf(CONF_A);
	fill_a(a);
	b = restart(a, now_ms(), boot, 31 * MIN_MS, &restored, &dropped);
	assert_int_equal(restored, 0);
	assert_int_equal(dropped, 0);
	assert_int_equal(total_entries(b), 0);
	free_conf(a);
	free_conf(b);
}

/*
 * A file of version 1 (tables only, what bollard wrote before the
 * operator's state joined it) still loads: an upgrade keeps its sessions.
 * Built here byte by byte, as state.c documents the layout.
 */
static void hput_name(uint8_t *b, size_t *n, const char *s)
{
	b[(*n)++] = (uint8_t)strlen(s);
	memcpy(b + *n, s, strlen(s));
	*n += strlen(s);
}

static void test_version1_file_loads(void **state)
{
	struct config *a = load_conf(CONF_A), *b = load_conf(CONF_A);
	uint8_t h[512];
	size_t n = 22, restored, dropped;
	uint64_t now = now_ms();
	struct timespec ts;
	char err[256];
	FILE *f;

	(void)state;
	put(a, "app", 2, "sess-one", "a1");
	put(a, "app", 2, "sess-two", "a3");
	memcpy(h, "bollard-state\n", 14);
	h[14] = 1, h[15] = h[16] = h[17] = 0;	/* version 1 */
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t wall = (uint64_t)ts.tv_sec * 1000;
	for (int i = 0; i < 8; i++)
		h[n++] = (uint8_t)(wall >> (8 * i));
	h[n++] = 1, h[n++] = 0, h[n++] = 0, h[n++] = 0;	/* one block */
	h[n++] = 1, h[n++] = 0, h[n++] = 0, h[n++] = 0;	/* one backend */
	hput_name(h, &n, "app");
	h[n++] = 3, h[n++] = 0, h[n++] = 0, h[n++] = 0;
	hput_name(h, &n, "a1");
	hput_name(h, &n, "a2");
	hput_name(h, &n, "a3");
	uint32_t len = (uint32_t)(n - 22);
	for (int i = 0; i < 4; i++)
		h[18 + i] = (uint8_t)(len >> (8 * i));
	crypto_generichash(h + n, 16, h, n, NULL, 0);
	n += 16;
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(h, n, 1, f), 1);
	assert_int_equal(stick_save(tab(a, "app", 2), f, "app/learn/JSESSIONID", now, err,
				    sizeof(err)), 0);
	fclose(f);
	assert_int_equal(load(b, &restored, &dropped), 0);
	assert_int_equal(restored, 2);
	assert_int_equal(get(b, "app", 2, "sess-one"), srv_idx(b, "app", "a1"));
	assert_int_equal(get(b, "app", 2, "sess-two"), srv_idx(b, "app", "a3"));
	free_conf(a);
	free_conf(b);
}

/* The operator's state (srvstate.h) goes with the tables: a state and a
 * weight set at runtime, and a server added at runtime whose table entries
 * must find it at load. */
static void test_operator_state(void **state)
{
	struct config *a = load_conf(CONF_A), *b = load_conf(CONF_A);
	struct backend *be = cfg_find_backend(a, "app");
	struct server *a1 = cfg_find_server(be, "a1"), *a2 = cfg_find_server(be, "a2");
	struct server *added = calloc(1, sizeof(*added)), **arr;
	size_t restored, dropped;

	(void)state;
	atomic_store(&a1->admin_state, SRV_DRAIN);
	srvstate_set(a1, SRVSTATE_OP_STATE);
	a2->weight = 40;
	srvstate_set(a2, SRVSTATE_OP_WEIGHT);
	/* as admin_pool.c does, minus the publication */
	snprintf(added->name, sizeof(added->name), "a9");
	assert_int_equal(cfg_parse_addr("127.0.0.1:9009", &added->addr), 0);
	added->weight = 7;
	added->maxconn = 3;
	added->be = be;
	added->idx = be->nservers;
	atomic_store(&added->admin_state, SRV_MAINT);
	persist_server_added(added);
	srvstate_set(added, SRVSTATE_OP_ADDED | SRVSTATE_OP_STATE);
	arr = realloc(be->servers, ((size_t)be->nservers + 1) * sizeof(*arr));
	assert_non_null(arr);
	be->servers = arr;
	be->servers[be->nservers++] = added;
	assert_int_equal(stick_store(tab(a, "app", 2), "on-a9", 5, added->sid, now_ms()), 0);
	put(a, "app", 2, "on-a1", "a1");
	save(a);

	assert_int_equal(load(b, &restored, &dropped), 0);
	assert_int_equal(restored, 2);
	assert_int_equal(dropped, 0);
	be = cfg_find_backend(b, "app");
	assert_int_equal(be->nservers, 4);
	struct server *b1 = cfg_find_server(be, "a1"), *b2 = cfg_find_server(be, "a2");
	struct server *b9 = cfg_find_server(be, "a9");
	assert_non_null(b9);
	assert_int_equal(atomic_load(&b1->admin_state), SRV_DRAIN);
	assert_int_equal(atomic_load(&b1->state), SRV_DRAIN);
	assert_int_equal(b2->weight, 40);
	assert_int_equal(atomic_load(&b2->cur_weight), 40);
	assert_string_equal(b9->addr.text, "127.0.0.1:9009");
	assert_int_equal(b9->weight, 7);
	assert_int_equal(b9->maxconn, 3);
	assert_int_equal(atomic_load(&b9->state), SRV_MAINT);
	assert_string_equal(srvstate_origin_name(b1), "state-file");
	assert_string_equal(srvstate_origin_name(cfg_find_server(be, "a3")), "config");
	assert_int_equal(get(b, "app", 2, "on-a9"), (int)b9->sid);
	assert_int_equal(get(b, "app", 2, "on-a1"), (int)b1->sid);
	free_conf(b);

	/* a configuration that changed a2's weight and defines a9 wins */
	b = load_conf(
		"global\n    threads 1\n    log off\n"
		"frontend fe\n    bind 127.0.0.1:18080\n    default-backend app\n"
		"backend app\n    persist cookie BOLLARD insert\n    persist source\n"
		"    persist learn JSESSIONID\n"
		"    server a1 127.0.0.1:9001\n    server a2 127.0.0.1:9002 weight 90\n"
		"    server a3 127.0.0.1:9003\n    server a9 127.0.0.1:9999 weight 5\n"
		"backend api\n    server b1 127.0.0.1:9101\n");
	assert_int_equal(load(b, &restored, &dropped), 0);
	be = cfg_find_backend(b, "app");
	assert_int_equal(be->nservers, 4);
	assert_int_equal(cfg_find_server(be, "a2")->weight, 90);
	assert_string_equal(cfg_find_server(be, "a9")->addr.text, "127.0.0.1:9999");
	assert_int_equal(cfg_find_server(be, "a9")->weight, 5);
	assert_int_equal(atomic_load(&cfg_find_server(be, "a9")->admin_state), SRV_MAINT);
	assert_int_equal(atomic_load(&cfg_find_server(be, "a1")->admin_state), SRV_DRAIN);
	free_conf(a);
	free_conf(b);
}

/* Saving while other threads write the tables (the control thread's
 * periodic save): the file stays loadable. Run under the sanitizers. */
struct writer_arg {
	struct config *cfg;
	_Atomic int stop;
};

static void *writer(void *p)
{
	struct writer_arg *w = p;
	struct stick_table *t = tab(w->cfg, "app", 2);
	char key[32];
	unsigned i = 0;

	while (!atomic_load(&w->stop)) {
		int n = snprintf(key, sizeof(key), "k%u", i++ % 5000);

		stick_store(t, key, (size_t)n, i % 3, now_ms());
	}
	return NULL;
}

static void test_save_concurrent(void **state)
{
	struct config *a = load_conf(CONF_A), *b = load_conf(CONF_A);
	struct writer_arg w = { .cfg = a };
	size_t restored, dropped;
	pthread_t th;

	(void)state;
	fill_a(a);
	assert_int_equal(pthread_create(&th, NULL, writer, &w), 0);
	for (int i = 0; i < 20; i++)
		save(a);
	atomic_store(&w.stop, 1);
	pthread_join(th, NULL);
	assert_int_equal(load(b, &restored, &dropped), 0);
	assert_true(restored >= 12);
	assert_int_equal(dropped, 0);
	free_conf(a);
	free_conf(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_servers_reordered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_servers_removed_renamed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_backends_removed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_tables, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flipped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign, setup, teardown),
		cmocka_unit_test_setup_teardown(test_downtime, setup, teardown),
		cmocka_unit_test_setup_teardown(test_version1_file_loads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_operator_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_concurrent, setup, teardown),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
