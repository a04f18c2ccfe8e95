/*
 * test_shared_link.c - the Redis link of the shared tables against a real
 * redis-server (Debian's, `stores` profile), started here on a free loopback
 * port in a temporary directory, with a password and a database other than
 * 0, and stopped by PID. The links are driven by a tiny epoll loop of the
 * test's own. Every wait is bounded in iterations and in time and waits for
 * an observable state (a callback, a counter, the link's state).
 */
#include "api.h"
#include "shared_link.h"
#include "shared_sentinel.h"

#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <setjmp.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <ftw.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#define PASSWORD "t3st-pass"
#define DB 3

static char dir[64], pwfile[128];
static int port;
static pid_t redis_pid;
static int epfd;

static uint64_t ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A port nobody listens on, never one given before in this run: the kernel
 * may hand a just-closed port to the next bind of port 0, and the trio of
 * Redis processes picks three before it starts any (as tests/integ/util.py's
 * free_port does). */
static int free_port(void)
{
	static int given[256];
	static unsigned ngiven;

	assert_true(ngiven < ARRAY_SIZE(given));
	for (int tries = 0; tries < 1000; tries++) {
		struct sockaddr_in a = { .sin_family = AF_INET,
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		socklen_t al = sizeof(a);
		int fd = socket(AF_INET, SOCK_STREAM, 0), p;
		bool seen = false;

		assert_true(fd >= 0);
		assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
		assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
		p = ntohs(a.sin_port);
		close(fd);
		for (unsigned i = 0; i < ngiven && !seen; i++)
			seen = given[i] == p;
		if (!seen) {
			given[ngiven++] = p;
			return p;
		}
	}
	fail_msg("no free port left that this run has not used already");
	return -1;
}

/* A blocking client for checking what the Redis on port p holds; NULL until
 * it answers. */
static redisContext *sync_client_at(int p)
{
	struct timeval tv = { 1, 0 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1", p, tv);
	redisReply *r;

	if (!c || c->err) {
		redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	r = redisCommand(c, "AUTH %s", PASSWORD);
	if (!r || r->type == REDIS_REPLY_ERROR) {
		freeReplyObject(r);
		redisFree(c);
		return NULL;
	}
	freeReplyObject(r);
	freeReplyObject(redisCommand(c, "SELECT %d", DB));
	return c;
}

static redisContext *sync_client(void) { return sync_client_at(port); }

static void redis_start(void)
{
	char portstr[16];
	redisContext *c = NULL;

	snprintf(portstr, sizeof(portstr), "%d", port);
	redis_pid = fork();
	assert_true(redis_pid >= 0);
	if (!redis_pid) {
		int null = open("/dev/null", O_WRONLY);

		/* a crash or a kill of the test must not leave Redis running */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(null, 1);
		execlp("redis-server", "redis-server", "--port", portstr, "--bind", "127.0.0.1",
		       "--dir", dir, "--save", "", "--appendonly", "no", "--requirepass", PASSWORD,
		       "--daemonize", "no", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500 && !(c = sync_client()); i++)
		usleep(10000);  /* polling the observable state: Redis answers */
	assert_non_null(c);
	redisFree(c);
}

static void redis_kill(void)
{
	int st;

	kill(redis_pid, SIGKILL);
	assert_int_equal(waitpid(redis_pid, &st, 0), redis_pid);
	redis_pid = 0;
}

static long long redis_int(const char *fmt, ...)
{
	redisContext *c = sync_client();
	redisReply *r;
	long long v;
	va_list ap;

	assert_non_null(c);
	va_start(ap, fmt);
	r = redisvCommand(c, fmt, ap);
	va_end(ap);
	assert_non_null(r);
	v = r->type == REDIS_REPLY_INTEGER ? r->integer : -999;
	freeReplyObject(r);
	redisFree(c);
	return v;
}

/* The value of a key (binary-safe), "" with *found 0 when absent. */
static size_t redis_get(const char *k, size_t kn, char *out, bool *found)
{
	redisContext *c = sync_client();
	const char *argv[] = { "GET", k };
	size_t lens[] = { 3, kn }, n = 0;
	redisReply *r;

	assert_non_null(c);
	r = redisCommandArgv(c, 2, argv, lens);
	assert_non_null(r);
	*found = r->type == REDIS_REPLY_STRING;
	if (*found) {
		n = r->len;
		memcpy(out, r->str, n);
	}
	freeReplyObject(r);
	redisFree(c);
	return n;
}

/* ---- the test's own loop ------------------------------------------------ */

struct tl {
	struct shared_link *l;
	int fd;
	unsigned mask;
	uint64_t timer;
	int timer_calls;
	int io_calls;
	int logs;
	char lastlog[256];
	int cleared;                    /* loop.cleared calls, the last one's table:key */
	char lastcleared[SHARED_KEY_MAX + 1];
};

static int tl_io(void *ctx, struct shared_link *l, int fd, unsigned events)
{
	struct tl *t = ctx;
	struct epoll_event ev = { .data.ptr = t };
	int op;

	t->io_calls++;
	if (!events) {
		if (t->mask)
			epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
		t->mask = 0;
		return 0;
	}
	op = t->mask ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	ev.events = (events & SHARED_EV_READ ? EPOLLIN : 0) | (events & SHARED_EV_WRITE ? EPOLLOUT : 0);
	t->fd = fd;
	t->mask = events;
	return epoll_ctl(epfd, op, fd, &ev);
}

static void tl_timer(void *ctx, struct shared_link *l, uint64_t when)
{
	((struct tl *)ctx)->timer = when;
	((struct tl *)ctx)->timer_calls++;
}

static void tl_log(void *ctx, int level, const char *msg)
{
	struct tl *t = ctx;

	t->logs++;
	snprintf(t->lastlog, sizeof(t->lastlog), "%s", msg);
}

static void tl_cleared(void *ctx, const char *table, size_t tlen, const void *key, size_t klen)
{
	struct tl *t = ctx;

	t->cleared++;
	snprintf(t->lastcleared, sizeof(t->lastcleared), "%.*s:%.*s", (int)tlen, table, (int)klen,
		 (const char *)key);
}

static struct tl *tls[4];

/* One iteration over every link: events, then due timers (so that writes
 * queued during the events go out as one batch). */
static void step(int max_wait)
{
	struct epoll_event evs[8];
	uint64_t now = ms(), next = now + (uint64_t)max_wait;
	int n;

	for (int i = 0; i < 4; i++)
		if (tls[i] && tls[i]->timer < next)
			next = tls[i]->timer;
	n = epoll_wait(epfd, evs, 8, next > now ? (int)(next - now) : 0);
	for (int i = 0; i < n; i++) {
		struct tl *t = evs[i].data.ptr;
		unsigned e = (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR) ? SHARED_EV_READ : 0) |
			     (evs[i].events & (EPOLLOUT | EPOLLERR) ? SHARED_EV_WRITE : 0);

		shared_link_on_io(t->l, e);
	}
	now = ms();
	for (int i = 0; i < 4; i++)
		if (tls[i] && tls[i]->timer <= now)
			shared_link_on_timer(tls[i]->l);
}

/* Call tick(10) until pred(arg) or max_ms; returns pred's last answer. */
static bool until(bool (*pred)(void *), void *arg, uint64_t max_ms, void (*tick)(int))
{
	uint64_t end = ms() + max_ms;

	for (int i = 0; i < 100000 && ms() < end; i++) {
		if (pred(arg))
			return true;
		tick(10);
	}
	return pred(arg);
}

/* Run the loop until pred(arg) or max_ms. */
static bool run_until(bool (*pred)(void *), void *arg, uint64_t max_ms)
{
	return until(pred, arg, max_ms, step);
}

static bool is_up(void *a) { return shared_link_is_up(((struct tl *)a)->l); }
static bool is_down(void *a) { return !shared_link_is_up(((struct tl *)a)->l); }

static struct tl *link_new(int slot, struct shared_link_conf *over)
{
	struct shared_link_conf c = {
		.host = "127.0.0.1", .port = port, .db = DB, .prefix = "t:",
		.password_file = pwfile, .timeout_ms = 1000, .connect_timeout_ms = 300,
		.backoff_min_ms = 20, .backoff_max_ms = 200, .stall_ms = 400,
		.refresh_ms = 300, .seed = 42 + (uint64_t)slot,
	};
	struct shared_link_loop lp = { NULL, tl_io, tl_timer, tl_log, tl_cleared, NULL, false };
	struct tl *t = calloc(1, sizeof(*t));
	char err[128] = "";

	assert_non_null(t);
	if (over) {
		over->host = over->host ? over->host : c.host;
		over->port = over->port ? over->port : c.port;
		c = *over;
	}
	t->timer = SHARED_NO_TIMER;
	lp.ctx = t;
	t->l = shared_link_create(&c, &lp, err, sizeof(err));
	assert_non_null(t->l);
	tls[slot] = t;
	shared_link_start(t->l);
	return t;
}

static void link_end(int slot)
{
	shared_link_free(tls[slot]->l);
	free(tls[slot]);
	tls[slot] = NULL;
}

struct res {
	int n;
	enum shared_result r;
	char v[SHARED_VAL_MAX];
	size_t len;
	uint64_t at;
};

static void rec(void *arg, enum shared_result r, const char *v, size_t len)
{
	struct res *x = arg;

	x->n++;
	x->r = r;
	x->len = len;
	if (v)
		memcpy(x->v, v, len);
	x->at = ms();
}

static bool answered(void *a) { return ((struct res *)a)->n > 0; }
static bool was_told(void *a) { return ((struct tl *)a)->cleared > 0; }

static uint64_t opcount(struct tl *t, enum shared_op op, enum shared_result r)
{
	return atomic_load(&shared_link_stats(t->l)->ops[op][r]);
}

struct cnt { struct tl *t; enum shared_op op; enum shared_result r; uint64_t want; };
static bool counted(void *a)
{
	struct cnt *c = a;

	return opcount(c->t, c->op, c->r) >= c->want;
}

/* ---- tests -------------------------------------------------------------- */

static void test_backoff(void **st)
{
	uint32_t prev = 0;

	/* doubles, capped, jitter only downwards by at most half, never below min */
	for (uint32_t n = 0; n < 12; n++) {
		uint64_t cap = MIN(100ull << n, 5000ull);

		for (uint64_t r = 0; r < 1000; r += 37) {
			uint32_t d = shared_link_backoff(n, 100, 5000, r * 7919);

			assert_true(d <= cap && d >= cap / 2 && d >= 100);
		}
		assert_true(shared_link_backoff(n, 100, 5000, 0) >= prev);
		prev = shared_link_backoff(n, 100, 5000, 0);
	}
	assert_int_equal(shared_link_backoff(40, 100, 5000, 0), 5000);
	assert_true(shared_link_backoff(3, 100, 5000, 1) != shared_link_backoff(3, 100, 5000, 2));
}

static void test_get_hit_miss_binary(void **st)
{
	struct tl *a = link_new(0, NULL);
	static const char key[] = { 'k', 0, '\r', '\n', (char)0xff };
	struct res r1 = { 0 }, r2 = { 0 };
	struct cnt c = { a, SHARED_OP_SET, SHARED_OK, 1 };
	char v[64];
	bool found;

	assert_true(run_until(is_up, a, 3000));
	assert_int_equal(a->logs, 1);  /* "up", once */
	assert_int_equal(shared_link_set(a->l, "learn", key, sizeof(key), "srv1", 4, 60000, 0), 0);
	assert_true(run_until(counted, &c, 3000));
	/* prefix + table + ':' + the key's bytes, in database DB */
	assert_int_equal(redis_get("t:learn:k\0\r\n\xff", 13, v, &found), 4);
	assert_true(found);
	assert_memory_equal(v, "srv1", 4);

	assert_int_equal(shared_link_get(a->l, "learn", key, sizeof(key), 0, rec, &r1), 0);
	assert_int_equal(r1.n, 0);  /* never from inside the call */
	assert_int_equal(shared_link_get(a->l, "learn", "nope", 4, 0, rec, &r2), 0);
	assert_true(run_until(answered, &r1, 3000) && run_until(answered, &r2, 3000));
	assert_int_equal(r1.r, SHARED_HIT);
	assert_int_equal(r1.len, 4);
	assert_memory_equal(r1.v, "srv1", 4);
	assert_int_equal(r2.r, SHARED_MISS);
	step(0);
	assert_int_equal(r1.n + r2.n, 2);
	assert_int_equal(shared_link_get(a->l, "a:b", "x", 1, 0, rec, &r1), SHARED_EINVAL);
	assert_true(atomic_load(&shared_link_stats(a->l)->lat_sum_us) > 0);
	link_end(0);
}

/* The refreshes of a thousand live keys right after their writes: every one
 * rate-limited (the memory must not evict live keys of one another). */
static void test_ratelimit_many_keys(void **st)
{
	struct shared_link_conf c = { .port = free_port(), .db = DB, .prefix = "t:",
				      .password_file = pwfile, .queue = 2048, .refresh_ms = 60000,
				      .seed = 42 };
	struct tl *a = link_new(0, &c);
	char k[32];

	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < 1000; i++) {
			snprintf(k, sizeof(k), "sess-%d", i);
			assert_int_equal(shared_link_set(a->l, "learn", k, strlen(k), "s1", 2, 60000, 0),
					 pass);
		}
	assert_int_equal(opcount(a, SHARED_OP_SET, SHARED_LIMITED), 1000);
	link_end(0);
}

/* A binding adopted from Redis (another instance wrote it) is not written
 * back at once by the adopter's refresh; another value is. */
static void test_hit_needs_no_refresh(void **st)
{
	struct tl *a = link_new(0, NULL);
	struct res r = { 0 };

	assert_true(run_until(is_up, a, 3000));
	assert_int_equal(redis_int("SET t:learn:adopted srvX"), -999);
	assert_int_equal(shared_link_get(a->l, "learn", "adopted", 7, 0, rec, &r), 0);
	assert_true(run_until(answered, &r, 3000));
	assert_int_equal(r.r, SHARED_HIT);
	assert_int_equal(shared_link_set(a->l, "learn", "adopted", 7, "srvX", 4, 60000, 0), 1);
	assert_int_equal(shared_link_set(a->l, "learn", "adopted", 7, "srvY", 4, 60000, 0), 0);
	link_end(0);
}

/* A batch of writes is written at once from the timer: the loop is not
 * asked to watch for a writable socket and then to stop, per batch (it
 * was: two calls per batch). Twenty batches; a write the kernel takes only
 * in part legitimately needs the watch, hence a bound, not zero. */
static void test_batch_costs_no_watch_change(void **st)
{
	struct tl *a = link_new(0, NULL);
	struct cnt c = { a, SHARED_OP_SET, SHARED_OK, 0 };
	char k[32];
	int calls;

	assert_true(run_until(is_up, a, 3000));
	step(0);
	calls = a->io_calls;
	for (int b = 0; b < 20; b++) {
		for (int i = 0; i < 5; i++) {
			snprintf(k, sizeof(k), "w%d-%d", b, i);
			assert_int_equal(shared_link_set(a->l, "learn", k, strlen(k), "s1", 2, 60000, 0),
					 0);
		}
		c.want += 5;
		assert_true(run_until(counted, &c, 3000));
	}
	assert_true(a->io_calls - calls < 10);
	link_end(0);
}

static void test_write_ttl_and_ratelimit(void **st)
{
	struct tl *a = link_new(0, NULL);
	struct cnt c = { a, SHARED_OP_SET, SHARED_OK, 1 };
	char v[64];
	bool found;
	long long pttl;
	uint64_t t0;

	assert_true(run_until(is_up, a, 3000));
	assert_int_equal(shared_link_set(a->l, "source", "10.0.0.1", 8, "s1", 2, 5000, 0), 0);
	assert_true(run_until(counted, &c, 3000));
	pttl = redis_int("PTTL t:source:10.0.0.1");
	assert_true(pttl > 0 && pttl <= 5000);
	t0 = ms();

	/* a refresh of the same value right after: not written */
	assert_int_equal(redis_int("DEL t:source:10.0.0.1"), 1);
	assert_int_equal(shared_link_set(a->l, "source", "10.0.0.1", 8, "s1", 2, 5000, 0), 1);
	assert_int_equal(opcount(a, SHARED_OP_SET, SHARED_LIMITED), 1);
	/* a new value always goes through */
	c.want = 2;
	assert_int_equal(shared_link_set(a->l, "source", "10.0.0.1", 8, "s2", 2, 5000, 0), 0);
	assert_true(run_until(counted, &c, 3000));
	redis_get("t:source:10.0.0.1", 17, v, &found);
	assert_true(found);
	assert_memory_equal(v, "s2", 2);
	/* once refresh_ms (300) has passed since the write, a refresh goes again */
	assert_int_equal(redis_int("DEL t:source:10.0.0.1"), 1);
	while (ms() - t0 < 400)
		step(50);
	c.want = 3;
	assert_int_equal(shared_link_set(a->l, "source", "10.0.0.1", 8, "s2", 2, 5000, 0), 0);
	assert_true(run_until(counted, &c, 3000));
	redis_get("t:source:10.0.0.1", 17, v, &found);
	assert_true(found);

	/* many writes in one iteration: one flush, one pipelined batch */
	{
		int calls = a->timer_calls;
		char k[32];

		for (int i = 0; i < 10; i++) {
			snprintf(k, sizeof(k), "b%d", i);
			assert_int_equal(shared_link_set(a->l, "source", k, strlen(k), "s1", 2, 5000, 0), 0);
		}
		assert_int_equal(a->timer_calls, calls + 1);
		assert_true(a->timer <= ms());
		c.want = 13;
		assert_true(run_until(counted, &c, 3000));
		assert_int_equal(redis_int("EXISTS t:source:b9"), 1);
	}
	/* a delete goes through the same queue: the clear's mark, the empty
	 * value, with the binding's TTL kept (test_clear_mark) */
	{
		struct cnt d = { a, SHARED_OP_DEL, SHARED_OK, 1 };

		assert_int_equal(shared_link_del(a->l, "source", "b9", 2), 0);
		assert_true(run_until(counted, &d, 3000));
		assert_int_equal(redis_get("t:source:b9", 11, v, &found), 0);
		assert_true(found);
		assert_true(redis_int("PTTL t:source:b9") > 0);
		/* no key, no mark */
		d.want = 2;
		assert_int_equal(shared_link_del(a->l, "source", "b99", 3), 0);
		assert_true(run_until(counted, &d, 3000));
		assert_int_equal(redis_int("EXISTS t:source:b99"), 0);
	}
	link_end(0);
}

static void test_setnx_race(void **st)
{
	struct tl *a = link_new(0, NULL), *b = link_new(1, NULL);
	struct res ra = { 0 }, rb = { 0 };
	char v[64];
	bool found;
	size_t n;

	assert_true(run_until(is_up, a, 3000) && run_until(is_up, b, 3000));
	assert_int_equal(shared_link_setnx(a->l, "learn", "JS1", 3, "srvA", 4, 60000, 0, rec, &ra), 0);
	assert_int_equal(shared_link_setnx(b->l, "learn", "JS1", 3, "srvB", 4, 60000, 0, rec, &rb), 0);
	assert_true(run_until(answered, &ra, 3000) && run_until(answered, &rb, 3000));
	assert_true((ra.r == SHARED_WON) != (rb.r == SHARED_WON));
	assert_true(ra.r == SHARED_LOST || rb.r == SHARED_LOST);
	/* both end on the winner's value, which is what Redis holds */
	assert_int_equal(ra.len, rb.len);
	assert_memory_equal(ra.v, rb.v, ra.len);
	n = redis_get("t:learn:JS1", 11, v, &found);
	assert_true(found && n == ra.len);
	assert_memory_equal(v, ra.v, n);
	/* a write-behind SET NX never overwrites the first binding */
	{
		struct cnt c = { a, SHARED_OP_SET, SHARED_OK, 1 };

		assert_int_equal(shared_link_set(a->l, "learn", "JS1", 3, "srvC", 4, 60000,
						 SHARED_SET_NX), 0);
		assert_true(run_until(counted, &c, 3000));
		n = redis_get("t:learn:JS1", 11, v, &found);
		assert_true(found && n == ra.len && !memcmp(v, ra.v, n));
	}
	link_end(0);
	link_end(1);
}

static void test_cas_race_and_noscript(void **st)
{
	struct tl *a = link_new(0, NULL), *b = link_new(1, NULL);
	struct res ra = { 0 }, rb = { 0 }, rc = { 0 };
	char v[64];
	bool found;
	size_t n;

	assert_true(run_until(is_up, a, 3000) && run_until(is_up, b, 3000));
	/* the script is not cached yet (or flushed): EVALSHA, NOSCRIPT, EVAL */
	assert_int_equal(redis_int("SET t:header:u1 s1"), -999);
	{
		redisContext *c = sync_client();

		freeReplyObject(redisCommand(c, "SCRIPT FLUSH"));
		redisFree(c);
	}
	assert_int_equal(shared_link_cas(a->l, "header", "u1", 2, "s1", 2, "s2", 2, 60000, 0, rec, &ra), 0);
	assert_int_equal(shared_link_cas(b->l, "header", "u1", 2, "s1", 2, "s3", 2, 60000, 0, rec, &rb), 0);
	assert_true(run_until(answered, &ra, 3000) && run_until(answered, &rb, 3000));
	assert_true((ra.r == SHARED_WON) != (rb.r == SHARED_WON));
	assert_true(ra.r == SHARED_LOST || rb.r == SHARED_LOST);
	assert_int_equal(ra.len, 2);
	assert_memory_equal(ra.v, rb.v, 2);  /* the session moved once: both follow the winner */
	assert_true(!memcmp(ra.v, "s2", 2) || !memcmp(ra.v, "s3", 2));
	n = redis_get("t:header:u1", 11, v, &found);
	assert_true(found && n == 2 && !memcmp(v, ra.v, 2));
	assert_true(atomic_load(&shared_link_stats(a->l)->script_loads) +
		    atomic_load(&shared_link_stats(b->l)->script_loads) >= 1);
	assert_true(redis_int("PTTL t:header:u1") > 0);
	/* an absent key matches any expectation: the first mover wins */
	assert_int_equal(shared_link_cas(a->l, "header", "u2", 2, "s1", 2, "s4", 2, 60000, 0, rec, &rc), 0);
	assert_true(run_until(answered, &rc, 3000));
	assert_int_equal(rc.r, SHARED_WON);
	assert_memory_equal(rc.v, "s4", 2);
	link_end(0);
	link_end(1);
}

static void test_bad_password_logged_once(void **st)
{
	char bad[160];
	FILE *f;
	struct shared_link_conf c = { .db = DB, .prefix = "t:", .connect_timeout_ms = 300,
				      .backoff_min_ms = 10, .backoff_max_ms = 20 };
	struct tl *a;
	struct res r = { 0 };
	uint64_t end;

	snprintf(bad, sizeof(bad), "%s/bad", dir);
	f = fopen(bad, "w");
	assert_non_null(f);
	fputs("wrong\n", f);
	fclose(f);
	c.password_file = bad;
	a = link_new(0, &c);
	end = ms() + 5000;
	while (atomic_load(&shared_link_stats(a->l)->connects) < 5 && ms() < end)
		step(10);
	assert_true(atomic_load(&shared_link_stats(a->l)->connects) >= 5);
	assert_false(shared_link_is_up(a->l));
	assert_int_equal(a->logs, 1);  /* one transition, not one line per attempt */
	assert_non_null(strstr(a->lastlog, "unreachable"));
	assert_int_equal(shared_link_get(a->l, "learn", "k", 1, 0, rec, &r), SHARED_EDOWN);
	assert_int_equal(r.n, 0);
	link_end(0);
	unlink(bad);
}

static void test_slots_exhausted(void **st)
{
	struct shared_link_conf c = { .db = DB, .prefix = "t:", .password_file = pwfile, .slots = 1 };
	struct tl *a = link_new(0, &c);
	struct res r1 = { 0 }, r2 = { 0 };

	assert_true(run_until(is_up, a, 3000));
	assert_int_equal(shared_link_get(a->l, "learn", "k", 1, 0, rec, &r1), 0);
	assert_int_equal(shared_link_get(a->l, "learn", "k", 1, 0, rec, &r2), SHARED_EBUSY);
	assert_int_equal(opcount(a, SHARED_OP_GET, SHARED_BUSY), 1);
	assert_true(run_until(answered, &r1, 3000));
	assert_int_equal(r2.n, 0);
	/* the slot is back once answered */
	assert_int_equal(shared_link_get(a->l, "learn", "k", 1, 0, rec, &r2), 0);
	assert_true(run_until(answered, &r2, 3000));
	link_end(0);
}

static void test_queue_overflow(void **st)
{
	struct shared_link_conf c = { .port = free_port(), .db = DB, .prefix = "t:",
				      .password_file = pwfile, .queue = 4,
				      .backoff_min_ms = 50, .backoff_max_ms = 100 };
	struct tl *a = link_new(0, &c);
	char k[32];

	for (int i = 0; i < 6; i++) {
		snprintf(k, sizeof(k), "q%d", i);
		assert_int_equal(shared_link_set(a->l, "learn", k, strlen(k), "v", 1, 1000, 0),
				 i < 4 ? 0 : SHARED_EBUSY);
	}
	assert_int_equal(opcount(a, SHARED_OP_SET, SHARED_DROPPED), 2);
	assert_int_equal(atomic_load(&shared_link_stats(a->l)->queued), 4);
	link_end(0);
}

static void test_kill_queue_restart_replay(void **st)
{
	struct tl *a = link_new(0, NULL);
	struct res r = { 0 }, r2 = { 0 };
	uint64_t t0, c0;
	char k[32], v[16];
	bool found;

	assert_true(run_until(is_up, a, 3000));
	/* a lookup in flight when Redis dies: DOWN, well before its deadline */
	kill(redis_pid, SIGSTOP);
	assert_int_equal(shared_link_get(a->l, "learn", "k", 1, 3000, rec, &r), 0);
	/* and a write sent but never acknowledged: it must be replayed too */
	assert_int_equal(shared_link_set(a->l, "learn", "inflight", 8, "r9", 2, 60000, 0), 0);
	step(0);
	step(0);
	t0 = ms();
	redis_kill();
	assert_true(run_until(answered, &r, 3000));
	assert_int_equal(r.r, SHARED_DOWN);
	assert_true(r.at - t0 < 3000);
	assert_true(run_until(is_down, a, 1000));
	assert_int_equal(shared_link_get(a->l, "learn", "k", 1, 0, rec, &r2), SHARED_EDOWN);
	assert_int_equal(r2.n, 0);
	for (int i = 0; i < 3; i++) {
		snprintf(k, sizeof(k), "r%d", i);
		assert_int_equal(shared_link_set(a->l, "learn", k, strlen(k), k, strlen(k), 60000, 0), 0);
	}
	assert_int_equal(atomic_load(&shared_link_stats(a->l)->queued), 4);
	/* attempts go on while it is down, with backoff */
	c0 = atomic_load(&shared_link_stats(a->l)->connects);
	t0 = ms();
	while (atomic_load(&shared_link_stats(a->l)->connects) < c0 + 3 && ms() - t0 < 5000)
		step(10);
	assert_true(atomic_load(&shared_link_stats(a->l)->connects) >= c0 + 3);
	assert_true(ms() - t0 >= 20);  /* three attempts cannot come back to back */

	redis_start();  /* empty */
	assert_true(run_until(is_up, a, 5000));
	{
		struct cnt c = { a, SHARED_OP_SET, SHARED_OK, 4 };

		assert_true(run_until(counted, &c, 3000));
	}
	assert_int_equal(redis_get("t:learn:inflight", 16, v, &found), 2);
	assert_true(found);
	assert_memory_equal(v, "r9", 2);
	for (int i = 0; i < 3; i++) {
		snprintf(k, sizeof(k), "t:learn:r%d", i);
		assert_int_equal(redis_get(k, strlen(k), v, &found), 2);
		assert_memory_equal(v, k + 8, 2);
		assert_true(found);
		assert_true(redis_int("PTTL %s", k) > 0);
	}
	assert_int_equal(atomic_load(&shared_link_stats(a->l)->queued), 0);
	assert_int_equal(atomic_load(&shared_link_stats(a->l)->downs), 1);
	link_end(0);
}

static void test_sigstop_timeout_then_recover(void **st)
{
	struct tl *a = link_new(0, NULL);
	struct res r = { 0 }, r2 = { 0 }, r3 = { 0 };
	uint64_t t0;

	assert_true(run_until(is_up, a, 3000));
	kill(redis_pid, SIGSTOP);
	t0 = ms();
	assert_int_equal(shared_link_get(a->l, "learn", "k", 1, 50, rec, &r), 0);
	assert_true(run_until(answered, &r, 2000));
	assert_int_equal(r.r, SHARED_TIMEOUT);
	assert_true(r.at - t0 >= 50 && r.at - t0 < 1050);
	assert_int_equal(opcount(a, SHARED_OP_GET, SHARED_TIMEOUT), 1);
	/* nothing answers for stall_ms: the link goes down, next lookups fail at once */
	assert_true(run_until(is_down, a, 3000));
	assert_int_equal(shared_link_get(a->l, "learn", "k", 1, 50, rec, &r2), SHARED_EDOWN);
	/* reconnects cannot finish their handshake while Redis is stopped */
	t0 = ms();
	while (ms() - t0 < 500)
		step(20);
	assert_false(shared_link_is_up(a->l));
	kill(redis_pid, SIGCONT);
	assert_true(run_until(is_up, a, 5000));
	assert_int_equal(shared_link_get(a->l, "learn", "k", 1, 0, rec, &r3), 0);
	assert_true(run_until(answered, &r3, 3000));
	assert_true(r3.r == SHARED_MISS || r3.r == SHARED_HIT);
	assert_int_equal(r.n, 1);  /* the late reply did not fire it again */
	link_end(0);
}

/* ---- Sentinel: a master, its replica and one sentinel -------------------- */

/* Sentinel settings, and the bound of a failover derived from them: the
 * master is seen down after DOWN_AFTER; a sentinel delays the start of a
 * failover by up to 1 s (its SENTINEL_MAX_DESYNC, so that sentinels do not
 * vote in step); the promotion must end within FAILOVER_TIMEOUT; then the
 * link needs at most one backoff and one connect. */
#define MASTER_NAME "mym"
#define DOWN_AFTER 300
#define FAILOVER_TIMEOUT 3000
#define S_BACKOFF_MAX 200
#define S_CONNECT 300
#define FAILOVER_BOUND (DOWN_AFTER + 1000 + FAILOVER_TIMEOUT + S_BACKOFF_MAX + S_CONNECT)

static int pm, pr, ps;          /* ports: master, replica, sentinel */
static pid_t pm_pid, pr_pid, ps_pid, fake_pid;
static char sent_addr[32];

static pid_t spawn(char *const argv[])
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (!pid) {
		int null = open("/dev/null", O_WRONLY);

		prctl(PR_SET_PDEATHSIG, SIGKILL);  /* a failed assertion must not leave it */
		dup2(null, 1);
		dup2(null, 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	return pid;
}

static void stop(pid_t *pid)
{
	int st;

	if (*pid <= 0)
		return;
	kill(*pid, SIGKILL);
	waitpid(*pid, &st, 0);
	*pid = 0;
}

static void nap(int ms_) { usleep((useconds_t)ms_ * 1000u); }

/* Poll a state of another process (no loop of ours to run meanwhile). */
static bool poll_until(bool (*pred)(void *), void *arg, uint64_t max_ms)
{
	return until(pred, arg, max_ms, nap);
}

/* Does the text answer of cmd on port p (a node; a sentinel when !auth)
 * contain needle? */
static bool answer_has(int p, bool auth, const char *cmd, const char *needle)
{
	struct timeval tv = { 1, 0 };
	redisContext *c = auth ? sync_client_at(p) : redisConnectWithTimeout("127.0.0.1", p, tv);
	redisReply *r;
	bool has = false;

	if (!c || c->err) {
		redisFree(c);
		return false;
	}
	redisSetTimeout(c, tv);
	r = redisCommand(c, cmd);
	if (r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS))
		has = strstr(r->str, needle) != NULL;
	/* an array of field/value arrays (SENTINEL replicas) */
	for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
		for (size_t j = 0; j + 1 < r->element[i]->elements; j += 2)
			if (r->element[i]->element[j + 1]->type == REDIS_REPLY_STRING &&
			    !strcmp(r->element[i]->element[j]->str, "flags") &&
			    !strcmp(r->element[i]->element[j + 1]->str, needle))
				has = true;
	freeReplyObject(r);
	redisFree(c);
	return has;
}

static bool node_answers(void *p)
{
	redisContext *c = sync_client_at(*(int *)p);

	redisFree(c);
	return c != NULL;
}

static bool replica_synced(void *unused)
{
	return answer_has(pr, true, "INFO replication", "master_link_status:up");
}

static bool sentinel_knows_replica(void *unused)
{
	return answer_has(ps, false, "SENTINEL replicas " MASTER_NAME, "slave");
}

static pid_t node_start(int p, int master_port)
{
	char ps_[16], mp[16], d[96];

	snprintf(ps_, sizeof(ps_), "%d", p);
	snprintf(mp, sizeof(mp), "%d", master_port);
	snprintf(d, sizeof(d), "%s/n%d", dir, p);
	mkdir(d, 0700);
	{
		/* the initial sync at once (the default waits 5 s for more replicas) */
		char *argv[] = { "redis-server", "--port", ps_, "--bind", "127.0.0.1", "--dir", d,
				 "--save", "", "--appendonly", "no", "--requirepass", PASSWORD,
				 "--masterauth", PASSWORD, "--repl-diskless-sync-delay", "0",
				 "--daemonize", "no", master_port ? "--replicaof" : NULL,
				 "127.0.0.1", mp, NULL };
		pid_t pid = spawn(argv);

		assert_true(poll_until(node_answers, &p, 5000));
		return pid;
	}
}

/* The master and its replica in sync, a sentinel that knows both. */
static int trio_up(void **st)
{
	char conf[128];
	FILE *f;

	pm = free_port();
	pr = free_port();
	ps = free_port();
	pm_pid = node_start(pm, 0);
	pr_pid = node_start(pr, pm);
	assert_true(poll_until(replica_synced, NULL, 10000));
	snprintf(conf, sizeof(conf), "%s/sentinel-%d.conf", dir, ps);
	f = fopen(conf, "w");
	assert_non_null(f);
	fprintf(f, "port %d\nbind 127.0.0.1\ndaemonize no\ndir %s\n"
		"sentinel monitor " MASTER_NAME " 127.0.0.1 %d 1\n"
		"sentinel auth-pass " MASTER_NAME " " PASSWORD "\n"
		"sentinel down-after-milliseconds " MASTER_NAME " %d\n"
		"sentinel failover-timeout " MASTER_NAME " %d\n",
		ps, dir, pm, DOWN_AFTER, FAILOVER_TIMEOUT);
	fclose(f);
	{
		char *argv[] = { "redis-sentinel", conf, NULL };

		ps_pid = spawn(argv);
	}
	/* the sentinel learns the replica from the master's INFO */
	assert_true(poll_until(sentinel_knows_replica, NULL, 10000));
	snprintf(sent_addr, sizeof(sent_addr), "127.0.0.1:%d", ps);
	return 0;
}

static int trio_down(void **st)
{
	stop(&ps_pid);
	stop(&pr_pid);
	stop(&pm_pid);
	stop(&fake_pid);
	return 0;
}

/* A link whose first guess is the group's own Redis (a master too: the
 * test sees where the writes land) and which asks the sentinels given. */
static struct shared_link_conf sentinel_conf(const char *s1, const char *s2, const char *master)
{
	return (struct shared_link_conf){
		.db = DB, .prefix = "t:", .password_file = pwfile, .timeout_ms = 1000,
		.connect_timeout_ms = S_CONNECT, .backoff_min_ms = 20,
		.backoff_max_ms = S_BACKOFF_MAX, .stall_ms = 400, .refresh_ms = 300,
		.sentinels = { s1, s2 }, .nsentinels = s2 ? 2 : 1, .master = master,
	};
}

static struct tl *sentinel_link(int slot, const char *s1, const char *s2)
{
	struct shared_link_conf c = sentinel_conf(s1, s2, MASTER_NAME);

	return link_new(slot, &c);
}

static uint64_t stat_of(struct tl *t, size_t off)
{
	return atomic_load((const _Atomic uint64_t *)((const char *)shared_link_stats(t->l) + off));
}
#define STAT(t, f) stat_of(t, offsetof(struct shared_link_stats, f))

/* Write key=val through the link and wait for the acknowledgement. */
static void write_acked(struct tl *t, const char *key, const char *val)
{
	struct cnt c = { t, SHARED_OP_SET, SHARED_OK, opcount(t, SHARED_OP_SET, SHARED_OK) + 1 };

	assert_int_equal(shared_link_set(t->l, "learn", key, strlen(key), val, strlen(val), 60000, 0), 0);
	assert_true(run_until(counted, &c, 3000));
}

/* The value of t:learn:key on node p, "" when absent. */
static bool node_holds(int p, const char *key, const char *val)
{
	redisContext *c = sync_client_at(p);
	redisReply *r;
	bool same;

	assert_non_null(c);
	r = redisCommand(c, "GET t:learn:%s", key);
	same = r && r->type == REDIS_REPLY_STRING && !strcmp(r->str, val);
	freeReplyObject(r);
	redisFree(c);
	return same;
}

/* SIGHUP with the same sentinels keeps the connection, whatever the first
 * guess says; another master name is a new discovery. */
static void test_sentinel_reconfigure(void **st)
{
	struct tl *a = sentinel_link(0, sent_addr, NULL);
	struct shared_link_conf c = sentinel_conf(sent_addr, NULL, MASTER_NAME);
	char err[128] = "";
	uint64_t connects, end;

	assert_true(run_until(is_up, a, 3000));
	connects = STAT(a, connects);
	c.host = "127.0.0.1";
	c.port = port;  /* another first guess: not a reason to reconnect */
	assert_int_equal(shared_link_reconfigure(a->l, &c, err, sizeof(err)), 0);
	step(0);
	assert_true(shared_link_is_up(a->l));
	assert_int_equal(STAT(a, connects), connects);
	c = sentinel_conf(sent_addr, NULL, "other");
	assert_int_equal(shared_link_reconfigure(a->l, &c, err, sizeof(err)), 1);
	end = ms() + 3000;
	while (STAT(a, sentinel_failures) < 1 && ms() < end)
		step(10);
	assert_true(STAT(a, sentinel_failures) >= 1);
	assert_false(shared_link_is_up(a->l));
	/* one line for the transition (down), one naming the new cause,
	 * none per failed round */
	assert_non_null(strstr(a->lastlog, "still down (no sentinel answered for master other"));
	{
		int logs = a->logs;

		while (STAT(a, sentinel_failures) < 3 && ms() < end)
			step(10);
		assert_true(STAT(a, sentinel_failures) >= 3);
		assert_int_equal(a->logs, logs);
	}
	c = sentinel_conf(sent_addr, NULL, MASTER_NAME);
	assert_int_equal(shared_link_reconfigure(a->l, &c, err, sizeof(err)), 1);
	assert_true(run_until(is_up, a, 3000));
	write_acked(a, "s6", "srvF");
	assert_true(node_holds(pm, "s6", "srvF"));
	link_end(0);
}

static void test_sentinel_finds_master(void **st)
{
	struct tl *a = sentinel_link(0, sent_addr, NULL);

	assert_true(run_until(is_up, a, 3000));
	write_acked(a, "s1", "srvA");
	assert_true(node_holds(pm, "s1", "srvA"));
	assert_false(node_holds(port, "s1", "srvA"));  /* not the first guess */
	assert_int_equal(STAT(a, sentinel_rounds), 1);
	assert_int_equal(STAT(a, master_switches), 0);
	link_end(0);
}

static bool switched_up(void *a)
{
	struct tl *t = a;

	return shared_link_is_up(t->l) && STAT(t, master_switches) >= 1;
}

static bool pr_has_s1(void *unused) { return node_holds(pr, "s1", "srvA"); }

static void test_sentinel_failover(void **st)
{
	struct tl *a = sentinel_link(0, sent_addr, NULL);
	struct res r = { 0 };
	uint64_t t0;

	assert_true(run_until(is_up, a, 3000));
	write_acked(a, "s1", "srvA");
	/* replicated: after the failover it must be read from the new master */
	assert_true(poll_until(pr_has_s1, NULL, 3000));
	stop(&pm_pid);
	t0 = ms();
	/* written while there is no master: queued, then replayed on the new one */
	assert_true(run_until(is_down, a, 1000));
	assert_int_equal(shared_link_set(a->l, "learn", "s2", 2, "srvB", 4, 60000, 0), 0);
	assert_true(run_until(switched_up, a, FAILOVER_BOUND + 1000));
	assert_true(ms() - t0 <= FAILOVER_BOUND);
	{
		struct cnt c = { a, SHARED_OP_SET, SHARED_OK, 2 };

		assert_true(run_until(counted, &c, 3000));
	}
	assert_true(node_holds(pr, "s2", "srvB"));
	write_acked(a, "s3", "srvC");
	assert_true(node_holds(pr, "s3", "srvC"));
	assert_int_equal(shared_link_get(a->l, "learn", "s1", 2, 0, rec, &r), 0);
	assert_true(run_until(answered, &r, 3000));
	assert_int_equal(r.r, SHARED_HIT);
	assert_memory_equal(r.v, "srvA", 4);
	assert_int_equal(STAT(a, master_switches), 1);
	assert_int_equal(STAT(a, downs), 1);
	assert_int_equal(opcount(a, SHARED_OP_SET, SHARED_DROPPED), 0);
	/* one line down, at most two naming a new cause of the failed
	 * reconnects (shared_link.c SAID_MAX), the switch, up: not one per
	 * attempt */
	assert_true(a->logs <= 6);
	link_end(0);
}

/* A sentinel cut off from its peers, still naming the replica: answered by a
 * child that speaks just enough RESP. */
static pid_t fake_sentinel(int *fport, int answer_port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	pid_t pid;

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	*fport = ntohs(sa.sin_port);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		char ans[64], in[512];
		int n;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		n = snprintf(ans, sizeof(ans), "*2\r\n$9\r\n127.0.0.1\r\n$%d\r\n%d\r\n",
			     snprintf(in, sizeof(in), "%d", answer_port), answer_port);

		for (;;) {
			int c = accept(fd, NULL, NULL);

			if (c < 0)
				continue;
			if (read(c, in, sizeof(in)) > 0 && write(c, ans, (size_t)n) < 0)
				_exit(1);
			close(c);
		}
	}
	close(fd);
	return pid;
}

static void test_sentinel_stale_answer(void **st)
{
	char fake[32];
	int fport;
	struct tl *a;

	fake_pid = fake_sentinel(&fport, pr);
	snprintf(fake, sizeof(fake), "127.0.0.1:%d", fport);
	a = sentinel_link(0, fake, sent_addr);
	/* the fake names the replica: ROLE refuses it, the next round asks the other */
	assert_true(run_until(is_up, a, 3000));
	assert_int_equal(STAT(a, master_lost), 1);
	assert_int_equal(STAT(a, sentinel_rounds), 2);
	write_acked(a, "s4", "srvD");
	assert_true(node_holds(pm, "s4", "srvD"));
	link_end(0);
}

/* Demoted under the link (REPLICAOF, as a sentinel does to an old master):
 * the refused write stays queued, the link stays off the replica, and
 * the write reaches the node once it is a master again. */
static void test_readonly_demoted(void **st)
{
	struct shared_link_conf c = {
		.port = pm, .db = DB, .prefix = "t:", .password_file = pwfile,
		.connect_timeout_ms = S_CONNECT, .backoff_min_ms = 20, .backoff_max_ms = 100,
	};
	struct tl *a;
	uint64_t c0;
	char cmd[64];

	stop(&ps_pid);  /* no sentinel undoing what the test does */
	a = link_new(0, &c);
	assert_true(run_until(is_up, a, 3000));
	snprintf(cmd, sizeof(cmd), "REPLICAOF 127.0.0.1 %d", pr);
	assert_true(answer_has(pm, true, cmd, "OK"));
	assert_int_equal(shared_link_set(a->l, "learn", "s5", 2, "srvE", 4, 60000, 0), 0);
	assert_true(run_until(is_down, a, 3000));
	assert_true(STAT(a, master_lost) >= 1);
	assert_int_equal(opcount(a, SHARED_OP_SET, SHARED_ERROR), 0);
	assert_int_equal(atomic_load(&shared_link_stats(a->l)->queued), 1);
	/* it reconnects, and ROLE keeps it off: down, logged once */
	c0 = STAT(a, connects);
	{
		uint64_t end = ms() + 3000;

		while (STAT(a, connects) < c0 + 3 && ms() < end)
			step(10);
	}
	assert_true(STAT(a, connects) >= c0 + 3);
	assert_false(shared_link_is_up(a->l));
	assert_int_equal(a->logs, 3);  /* up, down, still down: not the master */
	assert_non_null(strstr(a->lastlog, "not the master"));
	assert_true(answer_has(pm, true, "REPLICAOF NO ONE", "OK"));
	assert_true(run_until(is_up, a, 3000));
	{
		struct cnt k = { a, SHARED_OP_SET, SHARED_OK, 1 };

		assert_true(run_until(counted, &k, 3000));
	}
	assert_true(node_holds(pm, "s5", "srvE"));
	link_end(0);
}

static void test_sentinels_all_down(void **st)
{
	char s1[32], s2[32];
	struct tl *a;
	struct res r = { 0 };
	uint64_t end;

	snprintf(s1, sizeof(s1), "127.0.0.1:%d", free_port());
	snprintf(s2, sizeof(s2), "[::1]:%d", free_port());
	a = sentinel_link(0, s1, s2);
	end = ms() + 5000;
	while (STAT(a, sentinel_failures) < 4 && ms() < end)
		step(10);
	assert_true(STAT(a, sentinel_failures) >= 4);
	assert_int_equal(STAT(a, connects), 0);  /* no address, no connect */
	assert_false(shared_link_is_up(a->l));
	assert_int_equal(a->logs, 1);
	assert_non_null(strstr(a->lastlog, "no sentinel answered for master " MASTER_NAME));
	assert_int_equal(shared_link_get(a->l, "learn", "k", 1, 0, rec, &r), SHARED_EDOWN);
	link_end(0);
}

static void test_sentinel_config_errors(void **st)
{
	struct tl t = { .timer = SHARED_NO_TIMER };
	struct shared_link_loop lp = { &t, tl_io, tl_timer, tl_log, NULL, NULL, false };
	struct shared_link_conf c = { .nsentinels = 1, .sentinels = { "127.0.0.1:1" } };
	char err[128] = "", h[64];
	int p;

	assert_null(shared_link_create(&c, &lp, err, sizeof(err)));
	assert_non_null(strstr(err, "master name"));
	c.master = "m";
	c.sentinels[0] = "localhost:26379";
	err[0] = 0;
	assert_null(shared_link_create(&c, &lp, err, sizeof(err)));
	assert_non_null(strstr(err, "localhost:26379"));
	assert_int_equal(shared_sentinel_parse_addr("[::1]:26379", h, sizeof(h), &p), 0);
	assert_string_equal(h, "::1");
	assert_int_equal(p, 26379);
	assert_int_equal(shared_sentinel_parse_addr("10.1.2.3:1", h, sizeof(h), &p), 0);
	assert_int_equal(shared_sentinel_parse_addr("::1:26379", h, sizeof(h), &p), -1);
	assert_int_equal(shared_sentinel_parse_addr("10.1.2.3:0", h, sizeof(h), &p), -1);
	assert_int_equal(shared_sentinel_parse_addr("10.1.2.3:", h, sizeof(h), &p), -1);
	assert_int_equal(shared_sentinel_parse_addr("10.1.2.3:70000", h, sizeof(h), &p), -1);
	assert_int_equal(shared_sentinel_parse_addr("[::1]26379", h, sizeof(h), &p), -1);
}

/* SHARED_SET_KEEP: created when absent, TTL renewed when equal, another
 * value (a move by another instance) never overwritten. */
static void test_keep_write(void **st)
{
	struct tl *a = link_new(0, NULL);
	struct cnt c = { a, SHARED_OP_SET, SHARED_OK, 1 };
	char v[64];
	bool found;

	assert_true(run_until(is_up, a, 3000));
	assert_int_equal(redis_int("DEL t:learn:kp"), 0);
	assert_int_equal(shared_link_set(a->l, "learn", "kp", 2, "s1", 2, 5000, SHARED_SET_KEEP), 0);
	assert_true(run_until(counted, &c, 3000));
	assert_int_equal(redis_get("t:learn:kp", 10, v, &found), 2);
	assert_true(found);
	assert_memory_equal(v, "s1", 2);
	assert_true(redis_int("PTTL t:learn:kp") > 0);
	/* equal: rate-limited like a SET, then, after refresh_ms, the TTL is
	 * renewed to the one given */
	assert_int_equal(shared_link_set(a->l, "learn", "kp", 2, "s1", 2, 9000, SHARED_SET_KEEP), 1);
	assert_int_equal(redis_int("PEXPIRE t:learn:kp 100000000"), 1);
	{
		uint64_t t0 = ms();

		while (ms() - t0 < 350)
			step(50);
	}
	c.want = 2;
	assert_int_equal(shared_link_set(a->l, "learn", "kp", 2, "s1", 2, 9000, SHARED_SET_KEEP), 0);
	assert_true(run_until(counted, &c, 3000));
	assert_true(redis_int("PTTL t:learn:kp") <= 9000);
	/* another instance moved it: a keep write of the old value leaves it */
	{
		redisContext *sc = sync_client();

		assert_non_null(sc);
		freeReplyObject(redisCommand(sc, "SET t:learn:kp moved PX 60000"));
		redisFree(sc);
	}
	c.want = 3;
	assert_int_equal(shared_link_set(a->l, "learn", "kp", 2, "s9", 2, 9000, SHARED_SET_KEEP), 0);
	assert_true(run_until(counted, &c, 3000));
	assert_int_equal(redis_get("t:learn:kp", 10, v, &found), 5);
	assert_memory_equal(v, "moved", 5);
	assert_true(redis_int("PTTL t:learn:kp") > 30000);
	link_end(0);
}

/* A reload that changes the address keeps the writes queued while the old
 * Redis was unreachable and replays them to the new one. */
static void test_reconfigure_keeps_queue(void **st)
{
	struct shared_link_conf bad = { .port = free_port(), .prefix = "t:", .password_file = pwfile,
					 .db = DB, .connect_timeout_ms = 300, .backoff_min_ms = 20,
					 .backoff_max_ms = 200, .stall_ms = 400, .refresh_ms = 300 };
	struct tl *a = link_new(0, &bad);
	struct shared_link_conf good = bad;
	struct cnt c = { a, SHARED_OP_SET, SHARED_OK, 2 };
	char err[128] = "", v[16];
	bool found;

	step(50);
	assert_false(shared_link_is_up(a->l));
	assert_int_equal(shared_link_set(a->l, "learn", "q1", 2, "s1", 2, 60000, 0), 0);
	assert_int_equal(shared_link_set(a->l, "learn", "q2", 2, "s2", 2, 60000, SHARED_SET_KEEP), 0);
	assert_int_equal(atomic_load(&shared_link_stats(a->l)->queued), 2);
	/* the same configuration again: nothing to re-open */
	assert_int_equal(shared_link_reconfigure(a->l, &bad, err, sizeof(err)), 0);
	good.port = port;
	assert_int_equal(shared_link_reconfigure(a->l, &good, err, sizeof(err)), 1);
	assert_true(run_until(is_up, a, 3000));
	assert_true(run_until(counted, &c, 3000));
	assert_int_equal(redis_get("t:learn:q1", 10, v, &found), 2);
	assert_true(found);
	assert_int_equal(redis_get("t:learn:q2", 10, v, &found), 2);
	assert_true(found);
	assert_memory_equal(v, "s2", 2);
	good.host = "not-an-ip";
	assert_int_equal(shared_link_reconfigure(a->l, &good, err, sizeof(err)), -1);
	assert_true(shared_link_is_up(a->l));
	link_end(0);
}

/* A reload that changes the prefix: the writes queued meanwhile are
 * bindings the fleet now looks up under the new prefix, so they go there
 * (SET, keep write and DEL alike), in order; one that no longer fits a key
 * under a longer prefix is dropped and counted. */
static void test_reconfigure_prefix_rekeys_queue(void **st)
{
	static const char long_prefix[] =
		"p23456789012345678901234567890123456789012345678901234567890:";
	struct shared_link_conf bad = { .port = free_port(), .prefix = "t:", .password_file = pwfile,
					 .db = DB, .connect_timeout_ms = 300, .backoff_min_ms = 20,
					 .backoff_max_ms = 200, .stall_ms = 400 };
	struct tl *a = link_new(0, &bad);
	struct shared_link_conf good = bad;
	struct cnt c = { a, SHARED_OP_DEL, SHARED_OK, 1 };
	char err[128] = "", v[16], big[190], key[300];
	bool found;

	assert_int_equal(redis_int("SET u:learn:q7 old"), -999);
	memset(big, 'k', sizeof(big));
	step(50);
	assert_false(shared_link_is_up(a->l));
	assert_int_equal(shared_link_set(a->l, "learn", "q5", 2, "s5", 2, 60000, 0), 0);
	assert_int_equal(shared_link_set(a->l, "learn", "q6", 2, "s6", 2, 60000, SHARED_SET_KEEP), 0);
	assert_int_equal(shared_link_del(a->l, "learn", "q7", 2), 0);
	/* fits under "t:" and "u:", not under long_prefix */
	assert_int_equal(shared_link_set(a->l, "learn", big, sizeof(big), "s8", 2, 60000, 0), 0);
	good.port = port;
	good.prefix = "u:";
	assert_int_equal(shared_link_reconfigure(a->l, &good, err, sizeof(err)), 1);
	assert_true(run_until(is_up, a, 3000));
	assert_true(run_until(counted, &c, 3000));
	assert_int_equal(redis_get("u:learn:q5", 10, v, &found), 2);
	assert_true(found);
	assert_memory_equal(v, "s5", 2);
	assert_int_equal(redis_get("u:learn:q6", 10, v, &found), 2);
	assert_true(found);
	assert_memory_equal(v, "s6", 2);
	assert_int_equal(redis_get("u:learn:q7", 10, v, &found), 0);  /* the clear's mark */
	assert_true(found);
	redis_get("t:learn:q5", 10, v, &found);
	assert_false(found);
	memcpy(key, "u:learn:", 8);
	memcpy(key + 8, big, sizeof(big));
	assert_int_equal(redis_get(key, 8 + sizeof(big), v, &found), 2);
	assert_true(found);

	/* down again, one binding too long for the next prefix */
	good.port = bad.port;
	assert_int_equal(shared_link_reconfigure(a->l, &good, err, sizeof(err)), 1);
	step(50);
	assert_false(shared_link_is_up(a->l));
	assert_int_equal(shared_link_set(a->l, "learn", big, sizeof(big), "s9", 2, 60000, 0), 0);
	assert_int_equal(shared_link_set(a->l, "learn", "q9", 2, "s9", 2, 60000, 0), 0);
	good.port = port;
	good.prefix = long_prefix;
	assert_int_equal(shared_link_reconfigure(a->l, &good, err, sizeof(err)), 1);
	assert_int_equal(opcount(a, SHARED_OP_SET, SHARED_DROPPED), 1);
	assert_int_equal(atomic_load(&shared_link_stats(a->l)->queued), 1);
	assert_true(run_until(is_up, a, 3000));
	{
		struct cnt k = { a, SHARED_OP_SET, SHARED_OK, 4 };

		assert_true(run_until(counted, &k, 3000));
	}
	snprintf(key, sizeof(key), "%slearn:q9", long_prefix);
	assert_int_equal(redis_get(key, strlen(key), v, &found), 2);
	assert_true(found);
	link_end(0);
}

/* `clear sessions` leaves a mark (the empty value) rather than deleting:
 * a refresh (keep write) from an instance that still holds the session
 * does not write it back but tells that instance, which forgets it; a new
 * binding (SET NX, a move) replaces the mark. */
static void test_clear_mark(void **st)
{
	struct tl *a = link_new(0, NULL);
	struct res r = { 0 };
	struct cnt c = { a, SHARED_OP_DEL, SHARED_OK, 1 };
	char v[8];
	bool found;

	assert_true(run_until(is_up, a, 3000));
	write_acked(a, "m1", "srvA");
	assert_int_equal(shared_link_del(a->l, "learn", "m1", 2), 0);
	assert_true(run_until(counted, &c, 3000));
	/* the holder's refresh: left alone, and the loop told */
	assert_int_equal(shared_link_set(a->l, "learn", "m1", 2, "srvA", 4, 60000, SHARED_SET_KEEP),
			 0);
	assert_true(run_until(was_told, a, 3000));
	assert_string_equal(a->lastcleared, "learn:m1");
	assert_int_equal(redis_get("t:learn:m1", 10, v, &found), 0);
	assert_true(found);
	/* a lookup finds the mark: a miss */
	assert_int_equal(shared_link_get(a->l, "learn", "m1", 2, 0, rec, &r), 0);
	assert_true(run_until(answered, &r, 3000));
	assert_int_equal(r.r, SHARED_MISS);
	/* a first binding replaces it */
	memset(&r, 0, sizeof(r));
	assert_int_equal(shared_link_setnx(a->l, "learn", "m1", 2, "srvB", 4, 60000, 0, rec, &r), 0);
	assert_true(run_until(answered, &r, 3000));
	assert_int_equal(r.r, SHARED_WON);
	assert_int_equal(redis_get("t:learn:m1", 10, v, &found), 4);
	assert_memory_equal(v, "srvB", 4);
	/* and so does a move, expecting the server it was on before the clear */
	assert_int_equal(shared_link_del(a->l, "learn", "m1", 2), 0);
	c.want = 2;
	assert_true(run_until(counted, &c, 3000));
	memset(&r, 0, sizeof(r));
	assert_int_equal(shared_link_cas(a->l, "learn", "m1", 2, "srvB", 4, "srvC", 4, 60000, 0, rec,
					 &r), 0);
	assert_true(run_until(answered, &r, 3000));
	assert_int_equal(r.r, SHARED_WON);
	assert_int_equal(redis_get("t:learn:m1", 10, v, &found), 4);
	assert_memory_equal(v, "srvC", 4);
	assert_int_equal(a->cleared, 1);
	link_end(0);
}

static int setup(void **st)
{
	FILE *f;

	signal(SIGPIPE, SIG_IGN);
	snprintf(dir, sizeof(dir), "/tmp/bollard-shared-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(pwfile, sizeof(pwfile), "%s/pw", dir);
	f = fopen(pwfile, "w");
	if (!f)
		return -1;
	fputs(PASSWORD "\n", f);
	fclose(f);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	port = free_port();
	redis_start();
	return 0;
}

static int rm_one(const char *path, const struct stat *sb, int type, struct FTW *f)
{
	return remove(path);
}

static int teardown(void **st)
{
	if (redis_pid > 0) {
		kill(redis_pid, SIGCONT);
		redis_kill();
	}
	close(epfd);
	/* the servers' files: dumps, the sentinels' rewritten configurations */
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_get_hit_miss_binary),
		cmocka_unit_test(test_write_ttl_and_ratelimit),
		cmocka_unit_test(test_ratelimit_many_keys),
		cmocka_unit_test(test_hit_needs_no_refresh),
		cmocka_unit_test(test_batch_costs_no_watch_change),
		cmocka_unit_test(test_setnx_race),
		cmocka_unit_test(test_cas_race_and_noscript),
		cmocka_unit_test(test_bad_password_logged_once),
		cmocka_unit_test(test_slots_exhausted),
		cmocka_unit_test(test_queue_overflow),
		cmocka_unit_test(test_kill_queue_restart_replay),
		cmocka_unit_test(test_sigstop_timeout_then_recover),
		cmocka_unit_test(test_sentinel_config_errors),
		cmocka_unit_test(test_sentinels_all_down),
		cmocka_unit_test_setup_teardown(test_sentinel_finds_master, trio_up, trio_down),
		cmocka_unit_test_setup_teardown(test_sentinel_reconfigure, trio_up, trio_down),
		cmocka_unit_test_setup_teardown(test_sentinel_stale_answer, trio_up, trio_down),
		cmocka_unit_test_setup_teardown(test_sentinel_failover, trio_up, trio_down),
		cmocka_unit_test_setup_teardown(test_readonly_demoted, trio_up, trio_down),
		cmocka_unit_test(test_keep_write),
		cmocka_unit_test(test_reconfigure_keeps_queue),
		cmocka_unit_test(test_reconfigure_prefix_rekeys_queue),
		cmocka_unit_test(test_clear_mark),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
