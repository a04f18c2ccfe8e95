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

#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <setjmp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <fcntl.h>
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

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), p;

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
	p = ntohs(a.sin_port);
	close(fd);
	return p;
}

/* A blocking client for checking what Redis holds; NULL until it answers. */
static redisContext *sync_client(void)
{
	struct timeval tv = { 1, 0 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
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

static void redis_start(void)
{
	char portstr[16];
	redisContext *c = NULL;

	snprintf(portstr, sizeof(portstr), "%d", port);
	redis_pid = fork();
	assert_true(redis_pid >= 0);
	if (!redis_pid) {
		int null = open("/dev/null", O_WRONLY);

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
	int logs;
	char lastlog[256];
};

static int tl_io(void *ctx, struct shared_link *l, int fd, unsigned events)
{
	struct tl *t = ctx;
	struct epoll_event ev = { .data.ptr = t };
	int op;

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

/* Run the loop until pred(arg) or max_ms; returns pred's last answer. */
static bool run_until(bool (*pred)(void *), void *arg, uint64_t max_ms)
{
	uint64_t end = ms() + max_ms;

	for (int i = 0; i < 100000 && ms() < end; i++) {
		if (pred(arg))
			return true;
		step(10);
	}
	return pred(arg);
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
	struct shared_link_loop lp = { NULL, tl_io, tl_timer, tl_log };
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
	/* DEL goes through the same queue */
	{
		struct cnt d = { a, SHARED_OP_DEL, SHARED_OK, 1 };

		assert_int_equal(shared_link_del(a->l, "source", "b9", 2), 0);
		assert_true(run_until(counted, &d, 3000));
		assert_int_equal(redis_int("EXISTS t:source:b9"), 0);
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

static int teardown(void **st)
{
	char cmd[128];

	if (redis_pid > 0) {
		kill(redis_pid, SIGCONT);
		redis_kill();
	}
	close(epfd);
	unlink(pwfile);
	snprintf(cmd, sizeof(cmd), "%s/dump.rdb", dir);
	unlink(cmd);
	rmdir(dir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_get_hit_miss_binary),
		cmocka_unit_test(test_write_ttl_and_ratelimit),
		cmocka_unit_test(test_setnx_race),
		cmocka_unit_test(test_cas_race_and_noscript),
		cmocka_unit_test(test_bad_password_logged_once),
		cmocka_unit_test(test_slots_exhausted),
		cmocka_unit_test(test_queue_overflow),
		cmocka_unit_test(test_kill_queue_restart_replay),
		cmocka_unit_test(test_sigstop_timeout_then_recover),
		cmocka_unit_test(test_keep_write),
		cmocka_unit_test(test_reconfigure_keeps_queue),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
