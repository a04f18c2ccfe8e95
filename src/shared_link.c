/*
 * shared_link.c - one asynchronous Redis link per worker loop (hiredis
 * async API), the transport of the shared persistence tables (SPEC 13,
 * doc/scale-out.md).
 *
 * Three kinds of traffic, kept apart because they fail differently:
 *  - requests (GET, SET NX GET, the compare-and-set script) hold one slot of
 *    a fixed pool until Redis answers; their callback fires exactly once: at
 *    the answer, at the deadline (the slot then waits, orphaned, for the late
 *    reply) or when the connection goes (hiredis hands every pending reply
 *    back as NULL). A request while the link is down fails at once.
 *  - writes (SET PX, SET NX PX, DEL) go into a bounded ring as formatted
 *    RESP; a zero-delay timer sends everything queued once per loop
 *    iteration, one pipelined batch. An entry leaves the ring only when Redis
 *    acknowledged it; a lost connection rewinds the send cursor, so what was
 *    in flight is replayed, in order, after the reconnect.
 *  - the handshake (AUTH, SELECT, ROLE, SCRIPT LOAD, an empty EVAL, PING):
 *    the link is up at the PING's reply, so "connected" means "Redis
 *    answers, writes too", not "the kernel accepted"
 *    (a SIGSTOPped Redis still completes TCP handshakes from its backlog);
 *    ROLE keeps it off a replica, which would refuse writes.
 *
 * With sentinels (shared_sentinel.c) every connect is preceded by a round
 * of discovery, on the same single socket slot; a READONLY answer (the node
 * was demoted under us) drops the connection, so the next connect asks the
 * sentinels again and the writes not yet acknowledged go to the new master.
 *
 * A connection is dropped when nothing comes back for stall_ms while
 * something is waiting: a stopped or overloaded Redis then costs one
 * `timeout` to the requests already sent and nothing to the next ones.
 *
 * Allocation: none in this file after shared_link_create(); commands are
 * formatted into the link's own buffers and given to hiredis already
 * formatted. hiredis itself allocates, per command, one callback record;
 * per reply, the reply object (and its string, and the elements of an
 * array); per write(2) that empties its output buffer, a fresh empty buffer.
 */
#include "api.h"
#include "shared_link.h"
#include "shared_sentinel.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <arpa/inet.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <sys/random.h>
#include <time.h>
#include <xxhash.h>

#define CMD_MAX 640                 /* one formatted write: EVALSHA, key, value twice, framing */
#define SCRATCH_MAX 1024            /* the longest command: EVAL with the script */
#define RL_BITS 14                  /* rate-limit memory: 16384 keys per link, */
#define RL_WAYS 8                   /* in sets of 8 */
#define SAID_MAX 3                  /* log lines about the causes of one outage */
#define REFUSE_QUIET_MS 2000        /* no error reply for this long: Redis accepts again */
#define NOSCRIPT_AGAIN_MS 60000     /* at most one reconnect per minute for a flushed script */
#define PING_CMD "*1\r\n$4\r\nPING\r\n"
#define IDLE_PING_MS 500            /* an idle connection says PING this often */

const uint64_t shared_link_lat_bounds_us[SHARED_LAT_N] = {
	100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, UINT64_MAX,
};

/* KEYS[1]; ARGV: expected value, new value, ttl ms. An absent key matches any
 * expectation: after an expiry or a Redis restarted empty the first mover
 * wins, and the others see its value. The empty value is the mark a
 * `clear sessions` leaves (shared.c, shared_link_del()): a new binding (a
 * first one, expected "", or a move) replaces it, a keep write (expected =
 * new: a refresh from an instance that still holds the session) does not,
 * and is told {0, ""}: the session was cleared, forget it. */
static const char cas_script[] =
	"local v = redis.call('GET', KEYS[1]) "
	"if v == false or v == ARGV[1] or (v == '' and ARGV[1] ~= ARGV[2]) then "
	"redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return {1, ARGV[2]} end "
	"return {0, v}";

static const char probe[] = "*3\r\n$4\r\nEVAL\r\n$8\r\nreturn 1\r\n$1\r\n0\r\n";

/* DISCOVERING: asking the sentinels where the master is (shared_sentinel.c) */
enum link_state { LINK_DOWN, LINK_DISCOVERING, LINK_CONNECTING, LINK_UP };
enum slot_state { SLOT_FREE, SLOT_WAITING, SLOT_ORPHAN };

struct slot {
	uint8_t state, op;
	uint16_t klen, elen, vlen;      /* CAS arguments kept for the EVAL retry */
	uint32_t ttl_ms;
	uint64_t deadline_ms, t0_us;
	shared_link_cb cb;
	void *arg;
	uint32_t next_free;
	char args[SHARED_KEY_MAX + 2 * SHARED_VAL_MAX];
};

struct wentry {
	uint16_t len;
	uint16_t koff;                  /* of the key's "$N\r\n": a prefix change rewrites it */
	uint8_t op;
	uint64_t t0_us;
	char cmd[CMD_MAX];
};

struct rl_entry { uint64_t kh; uint32_t vh, t; };

struct shared_link {
	struct shared_link_conf conf;
	struct shared_link_loop loop;
	char host[64], prefix[64];
	size_t prefix_len;
	char *password;
	char sha[41];

	enum link_state state;
	redisAsyncContext *ac;
	struct shared_watch w;          /* its socket (shared_sentinel.c) */
	uint64_t armed;                 /* what loop.timer was last given */

	uint64_t retry_at, connect_deadline, flush_at, ops_next;
	uint32_t attempt;               /* failed attempts since the last up */
	uint32_t inflight;              /* commands on this connection without reply */
	uint64_t last_reply_ms;
	bool logged_down, closing;
	uint8_t said;                   /* causes logged during this outage */
	char said_why[128];             /* the cause of the last failed attempt */
	struct shared_spell own_spell;  /* when the loop gives none to share */
	uint64_t noscript_at;           /* the last reconnect for a flushed script */
	bool known_master;              /* host:port was a master once: a change is a switch */
	char reason[128];

	struct slot *slots;
	uint32_t free_head, nslots;

	struct wentry *ring;
	uint32_t qcap, head, sent, tail; /* head <= sent <= tail, modulo qcap */

	struct rl_entry rl[1u << RL_BITS];
	uint64_t rnd;

	char scratch[SCRATCH_MAX];
	struct shared_link_stats st;
	struct shared_sentinel *sentinel; /* NULL: host and port are the master */
};

/* ---- small helpers ------------------------------------------------------ */

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t now_ms(void) { return now_us() / 1000u; }

/* Single writer (the link's thread): a relaxed load and store, no lock prefix. */
static void bump(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static void set_gauge(_Atomic uint64_t *c, uint64_t v)
{
	atomic_store_explicit(c, v, memory_order_relaxed);
}

static void count(struct shared_link *l, enum shared_op op, enum shared_result r)
{
	bump(&l->st.ops[op][r], 1);
}

static void latency(struct shared_link *l, uint64_t t0_us)
{
	uint64_t d = now_us() - t0_us;
	unsigned i = 0;

	while (d > shared_link_lat_bounds_us[i])
		i++;
	bump(&l->st.lat[i], 1);
	bump(&l->st.lat_sum_us, d);
}

static uint64_t next_rnd(struct shared_link *l)
{
	/* xorshift64*: jitter only, not security */
	l->rnd ^= l->rnd >> 12;
	l->rnd ^= l->rnd << 25;
	l->rnd ^= l->rnd >> 27;
	return l->rnd * 2685821657736338717ull;
}

static void vsay(struct shared_link *l, int level, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
static void vsay(struct shared_link *l, int level, const char *fmt, va_list ap)
{
	char msg[256];

	if (!l->loop.log)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	l->loop.log(l->loop.ctx, level, msg);
}

/* A transition of the link (up, down, a cause): not from a quiet link. */
static void say(struct shared_link *l, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void say(struct shared_link *l, int level, const char *fmt, ...)
{
	va_list ap;

	if (l->loop.quiet)
		return;
	va_start(ap, fmt);
	vsay(l, level, fmt, ap);
	va_end(ap);
}

/* A line of the process's refusal spell: from whichever link meets it. */
static void say_spell(struct shared_link *l, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void say_spell(struct shared_link *l, int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(l, level, fmt, ap);
	va_end(ap);
}

uint32_t shared_link_backoff(uint32_t n, uint32_t min, uint32_t max, uint64_t rnd)
{
	uint64_t c = min ? min : 1;

	for (uint32_t i = 0; i < n && c < max; i++)
		c <<= 1;
	if (c > max)
		c = max;
	c -= rnd % (c / 2 + 1);
	return (uint32_t)(c < min ? min : c);
}

/* ---- RESP formatting into a caller's buffer ----------------------------- */

struct resp { char *p; size_t n, cap; bool bad; };

static void put(struct resp *b, const void *p, size_t n)
{
	if (b->bad || b->n + n > b->cap) {
		b->bad = true;
		return;
	}
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

static void put_hdr(struct resp *b, char kind, size_t v)
{
	char h[32];
	int n = snprintf(h, sizeof(h), "%c%zu\r\n", kind, v);

	put(b, h, (size_t)n);
}

static void put_arg(struct resp *b, const void *p, size_t n)
{
	put_hdr(b, '$', n);
	put(b, p, n);
	put(b, "\r\n", 2);
}

static void put_num(struct resp *b, uint64_t v)
{
	char d[24];
	int n = snprintf(d, sizeof(d), "%llu", (unsigned long long)v);

	put_arg(b, d, (size_t)n);
}

/* prefix + table + ':' + key, into out; returns its length or -1. */
static int make_key(const struct shared_link *l, char *out, const char *table,
		    const void *key, size_t klen)
{
	size_t tl = strlen(table);

	if (memchr(table, ':', tl) || l->prefix_len + tl + 1 + klen > SHARED_KEY_MAX)
		return -1;
	memcpy(out, l->prefix, l->prefix_len);
	memcpy(out + l->prefix_len, table, tl);
	out[l->prefix_len + tl] = ':';
	memcpy(out + l->prefix_len + tl + 1, key, klen);
	return (int)(l->prefix_len + tl + 1 + klen);
}

/* ---- the connection ----------------------------------------------------- */

static void rearm(struct shared_link *l);

/* The loop watches the socket of the master and that of a sentinel being
 * asked, never both at once. A refusal (w.failed): the timer drops it. */
static int loop_watch(void *ctx, int fd, unsigned events)
{
	struct shared_link *l = ctx;

	return l->loop.io(l->loop.ctx, l, fd, events);
}

/* The connection is gone (hiredis is freeing it, or we are): remember why,
 * rewind the writes, schedule the next attempt, log the transition once. */
static void went_down(struct shared_link *l, const char *why)
{
	l->ac = NULL;
	l->inflight = 0;
	l->sent = l->head;
	if (l->closing) {
		/* shutting down: not a transition worth a log line */
	} else if (l->state == LINK_UP) {
		bump(&l->st.downs, 1);
		set_gauge(&l->st.up, 0);
		say(l, 1, "shared-tables: redis %s:%d down (%s); %u writes queued, reconnecting",
		    l->host, l->conf.port, why, l->tail - l->head);
		l->logged_down = true;
		l->said = 1;
	} else if (!l->logged_down) {
		say(l, 1, "shared-tables: redis %s:%d unreachable (%s); tables go on locally, retrying",
		    l->host, l->conf.port, why);
		l->logged_down = true;
		l->said = 1;
	} else if (l->said < SAID_MAX && strcmp(why, l->said_why)) {
		/* the cause of the outage changed (a Redis killed, then back
		 * refusing the password, or loading): worth a line, not every
		 * attempt's, and a few per outage at most */
		say(l, 1, "shared-tables: redis %s:%d still down (%s); retrying", l->host,
		    l->conf.port, why);
		l->said++;
	}
	if (!l->closing && strcmp(why, l->said_why))
		snprintf(l->said_why, sizeof(l->said_why), "%s", why);
	snprintf(l->reason, sizeof(l->reason), "%s", why);
	l->state = LINK_DOWN;
	l->retry_at = now_ms() + shared_link_backoff(l->attempt, l->conf.backoff_min_ms,
						       l->conf.backoff_max_ms, next_rnd(l));
	if (l->attempt < 32)
		l->attempt++;
}

static void link_lost(struct shared_link *l, const redisAsyncContext *ac, const char *why)
{
	if (ac == l->ac && l->ac)
		went_down(l, why);
}

/* Drop the connection ourselves (timeout, stall, refused AUTH). */
static void link_drop(struct shared_link *l, const char *why)
{
	redisAsyncContext *ac = l->ac;

	if (!ac)
		return;
	link_lost(l, ac, why);
	/* deferred by hiredis when called from one of its callbacks; either way
	 * every pending reply comes back as NULL, which the callbacks expect */
	redisAsyncFree(ac);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	if (status != REDIS_OK)
		link_lost(ac->data, ac, ac->errstr[0] ? ac->errstr : "connect failed");
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	link_lost(ac->data, ac, ac->errstr[0] ? ac->errstr : "connection closed");
}

static void flush_writes(struct shared_link *l);

/* Error replies with the link up (OOM, WRONGTYPE, NOAUTH after a password
 * change...): each is counted by its op; the spell is logged once when it
 * starts and once when Redis answered without error for REFUSE_QUIET_MS,
 * so that a key that always fails among many that work is not one line per
 * request. The spell is the process's (shared_link_loop.spell): a refusal
 * only one worker's link meets (the key of one session) is said too, and
 * a link left idle does not hold the spell open. Two links racing at its
 * end may close it just after a refusal: the next refusal opens another
 * (a line, at most one a REFUSE_QUIET_MS). */
static void answered(struct shared_link *l, const redisReply *r)
{
	struct shared_spell *sp = l->loop.spell ? l->loop.spell : &l->own_spell;
	uint64_t now = now_ms();

	if (r->type == REDIS_REPLY_ERROR) {
		atomic_store_explicit(&sp->refused_at, now, memory_order_relaxed);
		atomic_fetch_add_explicit(&sp->refusals, 1, memory_order_relaxed);
		if (!atomic_exchange(&sp->open, true))
			say_spell(l, 1, "shared-tables: redis %s:%d refuses commands (%.100s); counted as "
			    "errors, tables go on locally", l->host, l->conf.port, r->str);
	} else if (atomic_load_explicit(&sp->open, memory_order_relaxed) &&
		   now - atomic_load_explicit(&sp->refused_at, memory_order_relaxed) >= REFUSE_QUIET_MS &&
		   atomic_exchange(&sp->open, false)) {
		say_spell(l, 2, "shared-tables: redis %s:%d accepts commands again (%llu refused)",
		    l->host, l->conf.port,
		    (unsigned long long)atomic_exchange(&sp->refusals, 0));
	}
}

/* A reply on the live connection: progress for the stall detector. */
static bool live_reply(struct shared_link *l, redisAsyncContext *ac, void *reply)
{
	if (!reply || ac != l->ac)
		return false;
	if (l->inflight)
		l->inflight--;
	l->last_reply_ms = now_ms();
	return true;
}

static void hs_cb(redisAsyncContext *ac, void *r, void *priv)
{
	struct shared_link *l = ac->data;
	redisReply *reply = r;
	bool last = priv != NULL;

	if (!live_reply(l, ac, r)) {
		link_lost(l, ac, "closed during handshake");
		return;
	}
	if (reply->type == REDIS_REPLY_ERROR) {
		char why[128];

		snprintf(why, sizeof(why), "handshake refused: %.100s", reply->str);
		link_drop(l, why);
		return;
	}
	if (!last || l->state != LINK_CONNECTING)
		return;
	l->state = LINK_UP;
	l->known_master = true;
	set_gauge(&l->st.up, 1);
	say(l, 2, "shared-tables: redis %s:%d up%s; replaying %u queued writes", l->host,
	    l->conf.port, l->attempt ? " again" : "", l->tail - l->head);
	l->attempt = 0;
	l->logged_down = false;
	l->said = 0;
	l->said_why[0] = 0;
	l->flush_at = 0;
	flush_writes(l);
}

static int issue(struct shared_link *l, redisCallbackFn *fn, void *priv, const char *cmd, size_t n)
{
	if (!l->ac || redisAsyncFormattedCommand(l->ac, fn, priv, cmd, n) != REDIS_OK)
		return -1;
	if (!l->inflight++)
		l->last_reply_ms = now_ms();
	return 0;
}

/* ---- Sentinel: where the master is (shared_sentinel.c) ------------------- */

static bool is_readonly(const redisReply *r)
{
	return r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "READONLY", 8);
}

/* The node refuses writes: a failover demoted it under us. Drop it; the
 * writes not yet acknowledged stay queued for the next master. */
static void master_moved(struct shared_link *l, const char *why)
{
	bump(&l->st.master_lost, 1);
	if (l->sentinel)
		shared_sentinel_distrust(l->sentinel);
	link_drop(l, why);
}

/* ROLE, in every handshake: a replica (a demoted master, named by a stale
 * sentinel or by the configuration) would refuse the writes (READONLY), and
 * could answer lookups from a stale copy. */
static void role_cb(redisAsyncContext *ac, void *r, void *priv)
{
	struct shared_link *l = ac->data;
	redisReply *reply = r;
	char why[128];

	if (!live_reply(l, ac, r)) {
		link_lost(l, ac, "closed during handshake");
		return;
	}
	if (reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOPERM", 6)) {
		/* the handshake's first command without a password: NOAUTH, or
		 * maxclients' refusal, after which Redis closes; name it */
		snprintf(why, sizeof(why), "handshake refused: %.100s", reply->str);
		link_drop(l, why);
		return;
	}
	/* ROLE not allowed to this user (NOPERM): cannot tell; READONLY
	 * replies will */
	if (reply->type != REDIS_REPLY_ARRAY || !reply->elements ||
	    reply->element[0]->type != REDIS_REPLY_STRING || !strcmp(reply->element[0]->str, "master"))
		return;
	snprintf(why, sizeof(why), "a %.20s, not the master%s", reply->element[0]->str,
		 l->sentinel ? " (stale sentinel answer)" : "");
	master_moved(l, why);
}

static void link_connect(struct shared_link *l);

/* A round of discovery ended, or moved on. */
static void discovered(struct shared_link *l, enum shared_sentinel_status st)
{
	const char *h;
	int port;

	if (st == SHARED_SENTINEL_WAIT)
		return;
	if (st == SHARED_SENTINEL_FAILED) {
		char why[256];

		bump(&l->st.sentinel_failures, 1);
		snprintf(why, sizeof(why), "no sentinel answered for master %s; last: %s",
			 shared_sentinel_master(l->sentinel), shared_sentinel_why(l->sentinel));
		went_down(l, why);
		return;
	}
	h = shared_sentinel_host(l->sentinel);
	port = shared_sentinel_port(l->sentinel);
	if (strcmp(h, l->host) || port != l->conf.port) {
		if (l->known_master) {
			bump(&l->st.master_switches, 1);
			say(l, 2, "shared-tables: sentinel %s: master %s moved from %s:%d to %s:%d",
			    shared_sentinel_from(l->sentinel), shared_sentinel_master(l->sentinel),
			    l->host, l->conf.port, h, port);
		}
		snprintf(l->host, sizeof(l->host), "%s", h);
		l->conf.port = port;
	}
	link_connect(l);
}

/* Connect to the master: where the sentinels say it is, if there are any. */
static void link_begin(struct shared_link *l)
{
	if (!l->sentinel) {
		link_connect(l);
		return;
	}
	l->state = LINK_DISCOVERING;
	bump(&l->st.sentinel_rounds, 1);
	discovered(l, shared_sentinel_begin(l->sentinel));
}

static void link_connect(struct shared_link *l)
{
	redisAsyncContext *ac;
	struct resp b = { l->scratch, 0, sizeof(l->scratch), false };

	bump(&l->st.connects, 1);
	ac = redisAsyncConnect(l->host, l->conf.port);
	if (!ac || ac->err) {
		char why[128];

		snprintf(why, sizeof(why), "%s", ac ? ac->errstr : "out of memory");
		if (ac)
			redisAsyncFree(ac);
		went_down(l, why);
		return;
	}
	ac->data = l;
	shared_watch_attach(&l->w, ac);
	l->ac = ac;
	l->state = LINK_CONNECTING;
	l->inflight = 0;
	l->connect_deadline = now_ms() + l->conf.connect_timeout_ms;
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	redisAsyncSetConnectCallback(ac, on_connect);  /* watches for writable */

	/* one command per issue: a formatted block is one callback */
	if (l->password) {
		put_hdr(&b, '*', 2);
		put_arg(&b, "AUTH", 4);
		put_arg(&b, l->password, strlen(l->password));
		BUG_ON(b.bad);
		issue(l, hs_cb, NULL, b.p, b.n);
		explicit_bzero(l->scratch, b.n);
		b.n = 0;
	}
	if (l->conf.db > 0) {
		put_hdr(&b, '*', 2);
		put_arg(&b, "SELECT", 6);
		put_num(&b, (uint64_t)l->conf.db);
		BUG_ON(b.bad);
		issue(l, hs_cb, NULL, b.p, b.n);
	}
	issue(l, role_cb, NULL, "*1\r\n$4\r\nROLE\r\n", 14);
	b.n = 0;
	/* SHARED_SET_KEEP writes run the compare-and-set script by its SHA
	 * from the write queue, which has no NOSCRIPT retry: load it first */
	put_hdr(&b, '*', 3);
	put_arg(&b, "SCRIPT", 6);
	put_arg(&b, "LOAD", 4);
	put_arg(&b, cas_script, sizeof(cas_script) - 1);
	BUG_ON(b.bad);
	issue(l, hs_cb, NULL, b.p, b.n);
	/* a script that does nothing, as the writes' script does: held by a
	 * `CLIENT PAUSE WRITE` (a failover's), which lets reads and SCRIPT LOAD
	 * through, so the link comes up only once Redis takes writes again
	 * instead of going up and stalling on its first write, once a second */
	issue(l, hs_cb, NULL, probe, sizeof(probe) - 1);
	issue(l, hs_cb, (void *)1, PING_CMD, sizeof(PING_CMD) - 1);
}

/* ---- writes ------------------------------------------------------------- */

/* The key of a queued write: its bytes after the "$N\r\n" at koff, and N. */
static const char *queued_key(const struct wentry *w, size_t *n)
{
	const char *h = w->cmd + w->koff;
	char *k;

	*n = strtoul(h + 1, &k, 10);
	BUG_ON(*h != '$' || k[0] != '\r');
	return k + 2;
}

/* A keep write found the mark of a `clear sessions` (cas_script): the
 * loop forgets the session (table and key from the write's own key). */
static void was_cleared(struct shared_link *l, const struct wentry *w)
{
	size_t n;
	const char *k = queued_key(w, &n), *t, *colon;

	if (!l->loop.cleared || n <= l->prefix_len || memcmp(k, l->prefix, l->prefix_len))
		return;
	t = k + l->prefix_len;
	colon = memchr(t, ':', n - l->prefix_len);
	if (colon)
		l->loop.cleared(l->loop.ctx, t, (size_t)(colon - t), colon + 1,
				(size_t)(k + n - colon - 1));
}

static void write_cb(redisAsyncContext *ac, void *r, void *priv)
{
	struct shared_link *l = ac->data;
	redisReply *reply = r;
	struct wentry *w;

	if (!live_reply(l, ac, r))
		return;  /* stays in the ring: replayed after the reconnect */
	if (is_readonly(reply)) {
		master_moved(l, "READONLY: the master moved");
		return;  /* stays in the ring, for the new master */
	}
	if (reply->type == REDIS_REPLY_ERROR && !strncmp(reply->str, "NOSCRIPT", 8) &&
	    (!l->noscript_at || now_ms() - l->noscript_at >= NOSCRIPT_AGAIN_MS)) {
		/* SCRIPT FLUSH (an operator's): every keep write after it
		 * would fail the same way. Reconnect: the handshake loads the
		 * script, and this write and those behind it, still in the
		 * ring, are replayed. Not more often than NOSCRIPT_AGAIN_MS: a
		 * server that forgets the script at once gets refusals,
		 * counted, not a reconnect loop */
		l->noscript_at = now_ms();
		bump(&l->st.script_loads, 1);
		link_drop(l, "NOSCRIPT: the script cache was flushed");
		return;
	}
	BUG_ON(l->head == l->sent);
	w = &l->ring[l->head % l->qcap];
	latency(l, w->t0_us);
	answered(l, reply);
	if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
	    reply->element[0]->type == REDIS_REPLY_INTEGER && !reply->element[0]->integer &&
	    reply->element[1]->type == REDIS_REPLY_STRING && !reply->element[1]->len)
		was_cleared(l, w);
	/* refused (OOM, WRONGTYPE): not replayed, the same answer would come */
	count(l, w->op, reply->type == REDIS_REPLY_ERROR ? SHARED_ERROR : SHARED_OK);
	l->head++;
	set_gauge(&l->st.queued, l->tail - l->head);
}

static void flush_writes(struct shared_link *l)
{
	uint32_t from = l->sent;

	l->flush_at = SHARED_NO_TIMER;
	while (l->state == LINK_UP && l->sent != l->tail) {
		struct wentry *w = &l->ring[l->sent % l->qcap];

		w->t0_us = now_us();
		if (issue(l, write_cb, NULL, w->cmd, w->len) < 0)
			break;
		l->sent++;
	}
	/* write the batch now rather than at the next wake-up for a writable
	 * socket (the lazy watch then asks the loop for nothing); not from
	 * inside a hiredis callback (the handshake's), which hiredis does not
	 * expect, nor from a request function (a failed write would answer
	 * its requests from inside it): flushes run from the timer */
	if (l->ac && l->sent != from && !(l->ac->c.flags & REDIS_IN_CALLBACK))
		redisAsyncHandleWrite(l->ac);
}

/* The entry of kh, or the one to replace with it: a free one, else the
 * least recently written of its set. Direct-mapped, two of a thousand live
 * keys shared a slot often enough to evict each other on every request, and
 * each eviction cost a write (a fifth of the requests wrote at 1,000
 * sessions); eight ways (two cache lines) make an overflowing set unlikely
 * (about 1e-5 at 1,000 keys) below the memory's size. */
static struct rl_entry *rl_slot(struct shared_link *l, uint64_t kh)
{
	struct rl_entry *set = &l->rl[kh & ((1u << RL_BITS) - RL_WAYS)];
	struct rl_entry *victim = set;
	uint32_t now = (uint32_t)now_ms();

	for (unsigned i = 0; i < RL_WAYS; i++) {
		if (set[i].kh == kh)
			return &set[i];
		if (victim->kh && (!set[i].kh || now - set[i].t > now - victim->t))
			victim = &set[i];
	}
	return victim;
}

static uint64_t key_hash(const struct shared_link *l, const char *k, size_t n)
{
	return XXH3_64bits_withSeed(k, n, l->conf.seed);
}

static void rl_note(struct shared_link *l, const char *k, size_t kn, const char *v, size_t vn)
{
	uint64_t kh = key_hash(l, k, kn);
	struct rl_entry *e = rl_slot(l, kh);

	e->kh = kh;
	e->vh = v ? (uint32_t)XXH3_64bits(v, vn) : 0;
	e->t = v ? (uint32_t)now_ms() : 0;
	if (!v)
		e->kh = 0;
}

static int enqueue(struct shared_link *l, enum shared_op op, const struct resp *b, size_t koff)
{
	struct wentry *w;

	if (l->tail - l->head == l->qcap) {
		count(l, op, SHARED_DROPPED);
		return SHARED_EBUSY;
	}
	w = &l->ring[l->tail % l->qcap];
	memcpy(w->cmd, b->p, b->n);
	w->len = (uint16_t)b->n;
	w->koff = (uint16_t)koff;
	w->op = (uint8_t)op;
	l->tail++;
	set_gauge(&l->st.queued, l->tail - l->head);
	if (l->state == LINK_UP && l->flush_at == SHARED_NO_TIMER) {
		l->flush_at = now_ms();  /* once per loop iteration: one batch */
		rearm(l);
	}
	return 0;
}

int shared_link_set(struct shared_link *l, const char *table, const void *key, size_t klen,
		    const char *val, size_t vlen, uint32_t ttl_ms, unsigned flags)
{
	char k[SHARED_KEY_MAX];
	char cmd[CMD_MAX];
	struct resp b = { cmd, 0, sizeof(cmd), false };
	int kn = make_key(l, k, table, key, klen);
	size_t koff;
	int rc;

	if (kn < 0 || vlen > SHARED_VAL_MAX || !ttl_ms)
		return SHARED_EINVAL;
	if (!(flags & SHARED_SET_NX)) {
		uint64_t kh = key_hash(l, k, (size_t)kn);
		struct rl_entry *e = rl_slot(l, kh);

		/* a refresh of what was just written; a new value always goes */
		if (e->kh == kh && e->vh == (uint32_t)XXH3_64bits(val, vlen) &&
		    (uint32_t)now_ms() - e->t < l->conf.refresh_ms) {
			count(l, SHARED_OP_SET, SHARED_LIMITED);
			return 1;
		}
	}
	if (flags & SHARED_SET_KEEP) {
		/* the compare-and-set with expect = val: created when absent,
		 * its TTL renewed when it holds val, another value left alone */
		put_hdr(&b, '*', 7);
		put_arg(&b, "EVALSHA", 7);
		put_arg(&b, l->sha, 40);
		put_arg(&b, "1", 1);
		koff = b.n;
		put_arg(&b, k, (size_t)kn);
		put_arg(&b, val, vlen);
		put_arg(&b, val, vlen);
		put_num(&b, ttl_ms);
	} else {
		put_hdr(&b, '*', flags & SHARED_SET_NX ? 6 : 5);
		put_arg(&b, "SET", 3);
		koff = b.n;
		put_arg(&b, k, (size_t)kn);
		put_arg(&b, val, vlen);
		if (flags & SHARED_SET_NX)
			put_arg(&b, "NX", 2);
		put_arg(&b, "PX", 2);
		put_num(&b, ttl_ms);
	}
	BUG_ON(b.bad);
	rc = enqueue(l, SHARED_OP_SET, &b, koff);
	if (!rc && !(flags & SHARED_SET_NX))
		rl_note(l, k, (size_t)kn, val, vlen);
	return rc;
}

int shared_link_del(struct shared_link *l, const char *table, const void *key, size_t klen)
{
	char k[SHARED_KEY_MAX];
	char cmd[CMD_MAX];
	struct resp b = { cmd, 0, sizeof(cmd), false };
	int kn = make_key(l, k, table, key, klen);
	size_t koff;

	if (kn < 0)
		return SHARED_EINVAL;
	/* not DEL: instances that still hold the session would write it back
	 * with their next refresh; the mark keeps the binding's TTL, as long
	 * as their tables can hold it, and tells them (the script) */
	put_hdr(&b, '*', 5);
	put_arg(&b, "SET", 3);
	koff = b.n;
	put_arg(&b, k, (size_t)kn);
	put_arg(&b, "", 0);
	put_arg(&b, "XX", 2);
	put_arg(&b, "KEEPTTL", 7);
	BUG_ON(b.bad);
	rl_note(l, k, (size_t)kn, NULL, 0);
	return enqueue(l, SHARED_OP_DEL, &b, koff);
}

/* The prefix changed (reload): the queued writes are bindings of live
 * sessions, which the fleet now looks up under the new prefix; left under
 * the old one they would land in another namespace (another fleet's, as
 * likely as not: that is why prefixes change) and be lost to this one.
 * Rewritten in place, in order; one that no longer fits (a longer prefix)
 * is dropped and counted, as an overflow would be. The connection is
 * dropped next, so nothing of the ring is in flight any more. */
static void rekey_queue(struct shared_link *l, const char *old, size_t on)
{
	char cmd[CMD_MAX];
	uint32_t to = l->head;

	for (uint32_t i = l->head; i != l->tail; i++) {
		struct wentry *w = &l->ring[i % l->qcap];
		struct resp b = { cmd, 0, sizeof(cmd), false };
		size_t n, rest;
		const char *k = queued_key(w, &n);

		if (n >= on && !memcmp(k, old, on)) {
			rest = (size_t)(k + n - w->cmd);
			put(&b, w->cmd, w->koff);
			b.bad = l->prefix_len + n - on > SHARED_KEY_MAX;
			put_hdr(&b, '$', l->prefix_len + n - on);
			put(&b, l->prefix, l->prefix_len);
			put(&b, k + on, n - on);
			put(&b, w->cmd + rest, w->len - rest);
			if (b.bad) {
				count(l, (enum shared_op)w->op, SHARED_DROPPED);
				continue;
			}
			memcpy(w->cmd, cmd, b.n);
			w->len = (uint16_t)b.n;
		}
		if (i != to)
			l->ring[to % l->qcap] = *w;
		to++;
	}
	l->tail = to;
	set_gauge(&l->st.queued, l->tail - l->head);
}

/* ---- requests ----------------------------------------------------------- */

static void slot_release(struct shared_link *l, struct slot *s)
{
	s->state = SLOT_FREE;
	s->next_free = l->free_head;
	l->free_head = (uint32_t)(s - l->slots);
}

static void slot_finish(struct shared_link *l, struct slot *s, enum shared_result res,
			const char *v, size_t n)
{
	bool waiting = s->state == SLOT_WAITING;
	shared_link_cb cb = s->cb;
	void *arg = s->arg;

	if (waiting)
		count(l, s->op, res);
	slot_release(l, s);
	if (waiting)
		cb(arg, res, v, n);
}

static int send_cas(struct shared_link *l, struct slot *s, bool eval);

static void req_cb(redisAsyncContext *ac, void *r, void *priv)
{
	struct shared_link *l = ac->data;
	struct slot *s = priv;
	redisReply *rep = r;

	if (!live_reply(l, ac, r)) {
		slot_finish(l, s, SHARED_DOWN, NULL, 0);
		return;
	}
	if (s->state == SLOT_WAITING)
		latency(l, s->t0_us);
	if (is_readonly(rep)) {
		master_moved(l, "READONLY: the master moved");
		slot_finish(l, s, SHARED_DOWN, NULL, 0);
		return;
	}
	if (rep->type == REDIS_REPLY_ERROR) {
		if (s->op != SHARED_OP_GET && !strncmp(rep->str, "NOSCRIPT", 8) && l->ac) {
			bump(&l->st.script_loads, 1);
			if (send_cas(l, s, true) < 0)
				slot_finish(l, s, SHARED_DOWN, NULL, 0);
			return;
		}
		answered(l, rep);
		slot_finish(l, s, SHARED_ERROR, NULL, 0);
		return;
	}
	answered(l, rep);
	switch (s->op) {
	case SHARED_OP_GET:
		/* the empty value is a clear's mark (cas_script): nothing */
		if (rep->type == REDIS_REPLY_STRING && rep->len) {
			/* what Redis holds needs no refresh at once: the
			 * adopter's first write of it would only renew its TTL */
			if (rep->len <= SHARED_VAL_MAX)
				rl_note(l, s->args, s->klen, rep->str, rep->len);
			slot_finish(l, s, SHARED_HIT, rep->str, rep->len);
		} else {
			slot_finish(l, s, SHARED_MISS, NULL, 0);
		}
		break;
	case SHARED_OP_SETNX:
	case SHARED_OP_CAS:
		if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
		    rep->element[0]->type == REDIS_REPLY_INTEGER &&
		    rep->element[1]->type == REDIS_REPLY_STRING) {
			redisReply *v = rep->element[1];

			if (rep->element[0]->integer == 1)
				rl_note(l, s->args, s->klen, v->str, v->len);
			slot_finish(l, s, rep->element[0]->integer == 1 ? SHARED_WON : SHARED_LOST,
				    v->str, v->len);
		} else {
			slot_finish(l, s, SHARED_ERROR, NULL, 0);
		}
		break;
	default:
		BUG_ON(1);
	}
}

static struct slot *slot_take(struct shared_link *l, enum shared_op op, uint32_t timeout_ms,
			      shared_link_cb cb, void *arg)
{
	struct slot *s;

	if (l->state != LINK_UP) {
		count(l, op, SHARED_DOWN);
		return NULL;
	}
	if (l->free_head == UINT32_MAX) {
		count(l, op, SHARED_BUSY);
		return NULL;
	}
	s = &l->slots[l->free_head];
	l->free_head = s->next_free;
	s->state = SLOT_WAITING;
	s->op = (uint8_t)op;
	s->cb = cb;
	s->arg = arg;
	s->t0_us = now_us();
	s->deadline_ms = s->t0_us / 1000u + (timeout_ms ? timeout_ms : l->conf.timeout_ms);
	if (s->deadline_ms < l->ops_next)
		l->ops_next = s->deadline_ms;
	return s;
}

static int slot_send(struct shared_link *l, struct slot *s, const struct resp *b)
{
	BUG_ON(b->bad);
	if (issue(l, req_cb, s, b->p, b->n) < 0) {
		count(l, s->op, SHARED_DOWN);
		slot_release(l, s);
		return SHARED_EDOWN;
	}
	rearm(l);
	return 0;
}

int shared_link_get(struct shared_link *l, const char *table, const void *key, size_t klen,
		    uint32_t timeout_ms, shared_link_cb cb, void *arg)
{
	char k[SHARED_KEY_MAX];
	struct resp b = { l->scratch, 0, sizeof(l->scratch), false };
	int kn = make_key(l, k, table, key, klen);
	struct slot *s;

	if (kn < 0)
		return SHARED_EINVAL;
	if (!(s = slot_take(l, SHARED_OP_GET, timeout_ms, cb, arg)))
		return l->state != LINK_UP ? SHARED_EDOWN : SHARED_EBUSY;
	memcpy(s->args, k, (size_t)kn);  /* for the rate limit of a hit */
	s->klen = (uint16_t)kn;
	put_hdr(&b, '*', 2);
	put_arg(&b, "GET", 3);
	put_arg(&b, k, (size_t)kn);
	return slot_send(l, s, &b);
}

static int send_cas(struct shared_link *l, struct slot *s, bool eval)
{
	struct resp b = { l->scratch, 0, sizeof(l->scratch), false };
	const char *a = s->args;

	put_hdr(&b, '*', 7);
	if (eval) {
		put_arg(&b, "EVAL", 4);
		put_arg(&b, cas_script, sizeof(cas_script) - 1);
	} else {
		put_arg(&b, "EVALSHA", 7);
		put_arg(&b, l->sha, 40);
	}
	put_arg(&b, "1", 1);
	put_arg(&b, a, s->klen);
	put_arg(&b, a + s->klen, s->elen);
	put_arg(&b, a + s->klen + s->elen, s->vlen);
	put_num(&b, s->ttl_ms);
	BUG_ON(b.bad);
	return issue(l, req_cb, s, b.p, b.n);
}

static int request_cas(struct shared_link *l, enum shared_op op, const char *table,
		       const void *key, size_t klen, const char *expect, size_t elen,
		       const char *val, size_t vlen, uint32_t ttl_ms, uint32_t timeout_ms,
		       shared_link_cb cb, void *arg)
{
	char k[SHARED_KEY_MAX];
	int kn = make_key(l, k, table, key, klen);
	struct slot *s;

	if (kn < 0 || vlen > SHARED_VAL_MAX || elen > SHARED_VAL_MAX || !ttl_ms)
		return SHARED_EINVAL;
	if (!(s = slot_take(l, op, timeout_ms, cb, arg)))
		return l->state != LINK_UP ? SHARED_EDOWN : SHARED_EBUSY;
	memcpy(s->args, k, (size_t)kn);
	memcpy(s->args + kn, expect, elen);
	memcpy(s->args + kn + elen, val, vlen);
	s->klen = (uint16_t)kn;
	s->elen = (uint16_t)elen;
	s->vlen = (uint16_t)vlen;
	s->ttl_ms = ttl_ms;
	if (send_cas(l, s, false) < 0) {
		count(l, op, SHARED_DOWN);
		slot_release(l, s);
		return SHARED_EDOWN;
	}
	rearm(l);
	return 0;
}

/* The script with "" expected: SET NX that also replaces a clear's mark. */
int shared_link_setnx(struct shared_link *l, const char *table, const void *key, size_t klen,
		      const char *val, size_t vlen, uint32_t ttl_ms, uint32_t timeout_ms,
		      shared_link_cb cb, void *arg)
{
	return request_cas(l, SHARED_OP_SETNX, table, key, klen, "", 0, val, vlen, ttl_ms,
			   timeout_ms, cb, arg);
}

int shared_link_cas(struct shared_link *l, const char *table, const void *key, size_t klen,
		    const char *expect, size_t elen, const char *val, size_t vlen,
		    uint32_t ttl_ms, uint32_t timeout_ms, shared_link_cb cb, void *arg)
{
	return request_cas(l, SHARED_OP_CAS, table, key, klen, expect, elen, val, vlen, ttl_ms,
			   timeout_ms, cb, arg);
}

/* ---- timers and I/O ----------------------------------------------------- */

static void expire_requests(struct shared_link *l, uint64_t now)
{
	uint64_t next = SHARED_NO_TIMER;

	/* a callback may send a request, which lowers ops_next again */
	l->ops_next = SHARED_NO_TIMER;
	for (uint32_t i = 0; i < l->nslots; i++) {
		struct slot *s = &l->slots[i];

		if (s->state != SLOT_WAITING)
			continue;
		if (s->deadline_ms <= now) {
			/* the late reply, if any, finds the slot orphaned */
			count(l, s->op, SHARED_TIMEOUT);
			s->state = SLOT_ORPHAN;
			s->cb(s->arg, SHARED_TIMEOUT, NULL, 0);
		} else if (s->deadline_ms < next) {
			next = s->deadline_ms;
		}
	}
	l->ops_next = MIN(l->ops_next, next);
}

static void ping_cb(redisAsyncContext *ac, void *r, void *priv)
{
	live_reply(ac->data, ac, r);
}

/* Redis closes connections idle for its `timeout` (often set, to 300 s
 * or less): an instance without traffic (a standby) would see its link
 * go down and up every `timeout`, each time a warning, a blip of
 * bollard_shared_tables_up and requests meeting "down" while it
 * reconnects. A PING when idle keeps it open, and proves it alive. */
static void keepalive(struct shared_link *l)
{
	if (issue(l, ping_cb, NULL, PING_CMD, sizeof(PING_CMD) - 1) == 0)
		redisAsyncHandleWrite(l->ac);
}

static void rearm(struct shared_link *l)
{
	uint64_t when = l->ops_next;

	/* every entry point ends here: the socket's interest, once per call */
	shared_watch_apply(&l->w);
	if (l->w.failed && l->ac)
		when = 0;
	switch (l->state) {
	case LINK_DOWN:
		when = MIN(when, l->retry_at);
		break;
	case LINK_DISCOVERING:
		when = MIN(when, shared_sentinel_deadline(l->sentinel));
		break;
	case LINK_CONNECTING:
		when = MIN(when, l->connect_deadline);
		break;
	case LINK_UP:
		when = MIN(when, l->flush_at);
		when = MIN(when, l->last_reply_ms + (l->inflight ? l->conf.stall_ms : IDLE_PING_MS));
		break;
	}
	if (when != l->armed) {
		l->armed = when;
		l->loop.timer(l->loop.ctx, l, when);
	}
}

void shared_link_on_timer(struct shared_link *l)
{
	uint64_t now = now_ms();

	l->armed = SHARED_NO_TIMER;  /* fired */
	if (l->ops_next <= now)
		expire_requests(l, now);
	if (l->w.failed && l->ac)
		link_drop(l, "cannot watch the socket");
	switch (l->state) {
	case LINK_DOWN:
		if (l->retry_at <= now)
			link_begin(l);
		break;
	case LINK_DISCOVERING:
		discovered(l, shared_sentinel_on_timer(l->sentinel));
		break;
	case LINK_CONNECTING:
		if (l->connect_deadline <= now)
			link_drop(l, "connect timeout");
		break;
	case LINK_UP:
		if (l->inflight && now - l->last_reply_ms >= l->conf.stall_ms) {
			char why[64];

			snprintf(why, sizeof(why), "no reply for %u ms", l->conf.stall_ms);
			link_drop(l, why);
		} else {
			if (l->flush_at <= now)
				flush_writes(l);
			if (!l->inflight && now - l->last_reply_ms >= IDLE_PING_MS)
				keepalive(l);
		}
		break;
	}
	rearm(l);
}

void shared_link_on_io(struct shared_link *l, unsigned events)
{
	if (l->state == LINK_DISCOVERING) {
		/* the events are the sentinel's socket's, not the master's */
		discovered(l, shared_sentinel_on_io(l->sentinel, events));
		rearm(l);
		return;
	}
	if (l->ac && (events & SHARED_EV_READ))
		redisAsyncHandleRead(l->ac);
	if (l->ac && (events & SHARED_EV_WRITE))
		redisAsyncHandleWrite(l->ac);
	rearm(l);
}

/* ---- life cycle --------------------------------------------------------- */

static int read_password(const char *path, char **out, char *err, size_t errlen)
{
	char buf[512];
	FILE *f = fopen(path, "re");
	size_t n;

	if (!f) {
		snprintf(err, errlen, "password-file %s: %s", path, strerror(errno));
		return -1;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	buf[strcspn(buf, "\r\n")] = 0;
	if (!buf[0]) {
		snprintf(err, errlen, "password-file %s: empty first line", path);
		return -1;
	}
	*out = strdup(buf);
	explicit_bzero(buf, sizeof(buf));
	return *out ? 0 : -1;
}

static int check_conf(const struct shared_link_conf *conf, char *err, size_t errlen)
{
	struct in6_addr a6;
	struct shared_link *l = NULL;
	/* with sentinels, the address is only a first guess, and may be absent */
	bool guess_only = conf->nsentinels > 0 && !conf->host;

	if (!guess_only && (!conf->host || strlen(conf->host) >= sizeof(l->host) ||
	    (inet_pton(AF_INET, conf->host, &a6) != 1 && inet_pton(AF_INET6, conf->host, &a6) != 1))) {
		snprintf(err, errlen, "redis host must be an IP address");
		return -1;
	}
	if ((!guess_only && (conf->port <= 0 || conf->port > 65535)) || conf->db < 0) {
		snprintf(err, errlen, "bad redis port or database");
		return -1;
	}
	if (conf->prefix && strlen(conf->prefix) >= sizeof(l->prefix)) {
		snprintf(err, errlen, "prefix longer than %zu bytes", sizeof(l->prefix) - 1);
		return -1;
	}
	return 0;
}

struct shared_link *shared_link_create(const struct shared_link_conf *conf,
				       const struct shared_link_loop *loop,
				       char *err, size_t errlen)
{
	struct shared_link *l;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;

	if (check_conf(conf, err, errlen) < 0)
		return NULL;
	if (!(l = calloc(1, sizeof(*l)))) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	l->conf = *conf;
	l->loop = *loop;
#define DEF(f, v) if (!l->conf.f) l->conf.f = (v)
	DEF(timeout_ms, 20);
	DEF(connect_timeout_ms, 1000);
	DEF(backoff_min_ms, 100);
	DEF(backoff_max_ms, 5000);
	DEF(stall_ms, 1000);
	DEF(refresh_ms, 1000);
	DEF(queue, 1024);
	DEF(slots, 256);
#undef DEF
	if (l->conf.backoff_max_ms < l->conf.backoff_min_ms)
		l->conf.backoff_max_ms = l->conf.backoff_min_ms;
	if (!l->conf.seed && getrandom(&l->conf.seed, sizeof(l->conf.seed), 0) != sizeof(l->conf.seed))
		l->conf.seed = now_us();
	l->rnd = l->conf.seed | 1;
	snprintf(l->host, sizeof(l->host), "%s", conf->host ? conf->host : "");
	snprintf(l->prefix, sizeof(l->prefix), "%s", conf->prefix ? conf->prefix : "");
	l->prefix_len = strlen(l->prefix);
	l->conf.host = l->host;
	l->conf.prefix = l->prefix;
	l->w = (struct shared_watch){ .fn = loop_watch, .ctx = l, .fd = -1, .lazy = true };
	l->armed = SHARED_NO_TIMER;
	l->ops_next = l->flush_at = l->retry_at = l->connect_deadline = SHARED_NO_TIMER;
	l->nslots = l->conf.slots;
	/* a power of two: the ring's indexes wrap at 2^32 */
	for (l->qcap = 1; l->qcap < l->conf.queue && l->qcap < (1u << 20); l->qcap <<= 1)
		;
	l->slots = calloc(l->nslots, sizeof(*l->slots));
	l->ring = calloc(l->qcap, sizeof(*l->ring));
	if (!l->slots || !l->ring ||
	    (conf->password_file && read_password(conf->password_file, &l->password, err, errlen) < 0) ||
	    !EVP_Digest(cas_script, sizeof(cas_script) - 1, md, &mdlen, EVP_sha1(), NULL)) {
		if (!err[0])
			snprintf(err, errlen, "out of memory");
		shared_link_free(l);
		return NULL;
	}
	if (conf->nsentinels > 0) {
		struct shared_sentinel_io sio = { l, loop_watch };

		l->sentinel = shared_sentinel_create(conf->sentinels, conf->nsentinels, conf->master,
						     l->conf.connect_timeout_ms, &sio, err, errlen);
		if (!l->sentinel) {
			shared_link_free(l);
			return NULL;
		}
	}
	for (unsigned i = 0; i < mdlen && i < 20; i++)
		snprintf(l->sha + 2 * i, 3, "%02x", md[i]);
	l->free_head = UINT32_MAX;
	for (uint32_t i = l->nslots; i-- > 0;)
		slot_release(l, &l->slots[i]);
	return l;
}

int shared_link_reconfigure(struct shared_link *l, const struct shared_link_conf *conf,
			    char *err, size_t errlen)
{
	char *pw = NULL;
	bool same, new_sentinels;
	struct shared_sentinel *ns = NULL;

	if (check_conf(conf, err, errlen) < 0 ||
	    (conf->password_file && read_password(conf->password_file, &pw, err, errlen) < 0))
		return -1;
	new_sentinels = l->sentinel ? !shared_sentinel_same(l->sentinel, conf->sentinels,
							     conf->nsentinels, conf->master)
				    : conf->nsentinels > 0;
	if (new_sentinels && conf->nsentinels > 0) {
		struct shared_sentinel_io sio = { l, loop_watch };

		ns = shared_sentinel_create(conf->sentinels, conf->nsentinels, conf->master,
					    conf->connect_timeout_ms ? conf->connect_timeout_ms
								     : l->conf.connect_timeout_ms,
					    &sio, err, errlen);
		if (!ns) {
			if (pw)
				explicit_bzero(pw, strlen(pw));
			free(pw);
			return -1;
		}
	}
	/* with the same sentinels, the address is theirs, not the first guess */
	same = !new_sentinels &&
	       (l->sentinel || (!strcmp(l->host, conf->host) && l->conf.port == conf->port)) &&
	       l->conf.db == conf->db && !strcmp(l->prefix, conf->prefix ? conf->prefix : "") &&
	       (pw && l->password ? !strcmp(pw, l->password) : pw == l->password);
	/* the delays apply at once; the queue and the slots keep their size
	 * (what is queued stays where it is) */
#define TAKE(f) if (conf->f) l->conf.f = conf->f
	TAKE(timeout_ms);
	TAKE(connect_timeout_ms);
	TAKE(backoff_min_ms);
	TAKE(backoff_max_ms);
	TAKE(stall_ms);
	TAKE(refresh_ms);
#undef TAKE
	if (l->conf.backoff_max_ms < l->conf.backoff_min_ms)
		l->conf.backoff_max_ms = l->conf.backoff_min_ms;
	if (same) {
		if (pw)
			explicit_bzero(pw, strlen(pw));
		free(pw);
		return 0;
	}
	if (new_sentinels) {
		if (l->state == LINK_DISCOVERING)
			l->state = LINK_DOWN;  /* the round dies with its sentinels */
		shared_sentinel_free(l->sentinel);
		l->sentinel = ns;
		l->known_master = false;
	}
	if (conf->host && (!l->sentinel || new_sentinels)) {
		snprintf(l->host, sizeof(l->host), "%s", conf->host);
		l->conf.port = conf->port;
	}
	if (strcmp(l->prefix, conf->prefix ? conf->prefix : "")) {
		char old[sizeof(l->prefix)];
		size_t on = l->prefix_len;

		memcpy(old, l->prefix, sizeof(old));
		snprintf(l->prefix, sizeof(l->prefix), "%s", conf->prefix ? conf->prefix : "");
		l->prefix_len = strlen(l->prefix);
		rekey_queue(l, old, on);
	}
	l->conf.db = conf->db;
	l->conf.password_file = NULL;
	if (l->password)
		explicit_bzero(l->password, strlen(l->password));
	free(l->password);
	l->password = pw;
	/* re-open now; the writes already queued stay in the ring and go to
	 * the new address once it answers, under the new prefix */
	link_drop(l, "configuration changed");
	l->attempt = 0;
	l->retry_at = now_ms();
	rearm(l);
	return 1;
}

void shared_link_start(struct shared_link *l)
{
	link_begin(l);
	rearm(l);
}

void shared_link_free(struct shared_link *l)
{
	if (!l)
		return;
	l->closing = true;
	link_drop(l, "closing");
	shared_sentinel_free(l->sentinel);
	l->loop.timer(l->loop.ctx, l, SHARED_NO_TIMER);
	if (l->password)
		explicit_bzero(l->password, strlen(l->password));
	free(l->password);
	free(l->slots);
	free(l->ring);
	free(l);
}

bool shared_link_is_up(const struct shared_link *l) { return l->state == LINK_UP; }

const struct shared_link_stats *shared_link_stats(const struct shared_link *l) { return &l->st; }

const char *shared_link_op_name(enum shared_op op)
{
	static const char *const n[SHARED_OP_N] = { "get", "setnx", "cas", "set", "del",
							    "scan" };

	return op < SHARED_OP_N ? n[op] : "?";
}

const char *shared_link_result_name(enum shared_result r)
{
	static const char *const n[SHARED_RES_N] = {
		"hit", "miss", "won", "lost", "ok", "error", "timeout", "down", "busy",
		"dropped", "limited",
	};

	return r < SHARED_RES_N ? n[r] : "?";
}
