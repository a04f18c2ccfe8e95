/*
 * shared.c - the `shared-tables` keyword, the worker thread's link, and the
 * registry of links the control thread reads (see shared.h and
 * doc/scale-out.md). Nothing here runs per request: the request path calls
 * the link itself (persist.c, shared_loop.c).
 */
#include "api.h"
#include "shared.h"
#include "cfg.h"

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <sys/time.h>
#include <time.h>

_Thread_local struct shared_link *shared_tl;

/* ---- configuration ---------------------------------------------------------- */

static int fail(char *err, size_t errlen, const char *fmt, const char *arg)
{
	msg_fill(err, errlen, fmt, arg);
	return -1;
}

static bool is_ip(const char *s)
{
	struct in6_addr a;

	return inet_pton(AF_INET, s, &a) == 1 || inet_pton(AF_INET6, s, &a) == 1;
}

/* "IP:PORT" or "[IP6]:PORT" (port required) or, with defport, the port
 * optional; host into h (cap 64). Returns the port, or -1. */
static int host_port(const char *s, size_t n, char *h, int defport)
{
	const char *colon;
	size_t hn;
	char *end;
	long port = defport;
	char tmp[80];

	if (n >= sizeof(tmp))
		return -1;
	memcpy(tmp, s, n);
	tmp[n] = 0;
	if (tmp[0] == '[') {
		char *rb = strchr(tmp, ']');
		if (!rb)
			return -1;
		hn = (size_t)(rb - tmp - 1);
		memmove(tmp, tmp + 1, hn);
		colon = rb[1] == ':' ? rb + 1 : rb[1] ? NULL : rb + 1;
		if (!colon)
			return -1;
		memmove(tmp + hn, colon, strlen(colon) + 1);
		colon = tmp + hn;
	} else {
		colon = strrchr(tmp, ':');
		hn = colon ? (size_t)(colon - tmp) : strlen(tmp);
	}
	if (hn == 0 || hn >= 64)
		return -1;
	memcpy(h, tmp, hn);
	h[hn] = 0;
	if (colon && *colon == ':') {
		port = strtol(colon + 1, &end, 10);
		if (*end || colon[1] == 0)
			return -1;
	}
	return port > 0 && port <= 65535 ? (int)port : -1;
}

static int parse_url(struct shared_conf *c, const char *u, char *err, size_t errlen)
{
	static const char scheme[] = "redis://";
	const char *hp, *slash;
	int port;

	if (strncmp(u, scheme, sizeof(scheme) - 1))
		return fail(err, errlen, "shared-tables needs a redis://HOST:PORT/DB address, not '%s'",
			    u);
	hp = u + sizeof(scheme) - 1;
	slash = strchr(hp, '/');
	port = host_port(hp, slash ? (size_t)(slash - hp) : strlen(hp), c->host, 6379);
	if (port < 0)
		return fail(err, errlen, "shared-tables: cannot read HOST:PORT in '%s' "
			    "(e.g. redis://127.0.0.1:6379/0)", u);
	if (!is_ip(c->host))
		return fail(err, errlen, "shared-tables: '%s' is not an IP address (a worker never "
			    "waits for DNS: write the address, or use sentinel discovery)", c->host);
	c->link.port = port;
	if (slash && slash[1]) {
		char *end;
		long db = strtol(slash + 1, &end, 10);
		if (*end || db < 0 || db > 65535)
			return fail(err, errlen, "shared-tables: database '%s' is not a number", slash + 1);
		c->link.db = (int)db;
	}
	return 0;
}

static int parse_sentinels(struct shared_conf *c, const char *list, char *err, size_t errlen)
{
	const char *p = list;

	while (*p) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		char h[64];
		int port;

		if (c->link.nsentinels == SHARED_SENTINELS_MAX)
			return fail(err, errlen, "shared-tables: at most 8 sentinels%s", "");
		port = host_port(p, n, h, -1);
		if (port < 0 || !is_ip(h))
			return fail(err, errlen, "shared-tables: sentinel '%s' is not IP:PORT", p);
		snprintf(c->sentinel[c->link.nsentinels], sizeof(c->sentinel[0]),
			 strchr(h, ':') ? "[%s]:%d" : "%s:%d", h, port);
		c->link.sentinels[c->link.nsentinels] = c->sentinel[c->link.nsentinels];
		c->link.nsentinels++;
		p += n + (comma != NULL);
	}
	return c->link.nsentinels ? 0 : fail(err, errlen, "shared-tables: sentinel needs HOST:PORT,...%s", "");
}

int shared_parse(int argc, char **argv, int line, struct shared_conf **out, char *err, size_t errlen)
{
	struct shared_conf *c = calloc(1, sizeof(*c));
	int rc = -1;

	*out = NULL;
	if (!c)
		return fail(err, errlen, "out of memory%s", "");
	c->line = line;
	snprintf(c->url, sizeof(c->url), "%s", argv[1]);
	snprintf(c->prefix, sizeof(c->prefix), SHARED_DEFAULT_PREFIX);
	c->link.host = c->host;
	c->link.prefix = c->prefix;
	if (parse_url(c, argv[1], err, errlen) < 0)
		goto out;
	for (int i = 2; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		uint32_t ms;

		if (!v && strcmp(o, "tls")) {
			fail(err, errlen, "shared-tables: '%s' needs a value", o);
			goto out;
		}
		if (!strcmp(o, "prefix")) {
			if (strlen(v) >= sizeof(c->prefix) || strpbrk(v, " \t\r\n")) {
				fail(err, errlen, "shared-tables: prefix '%s' is longer than 63 bytes", v);
				goto out;
			}
			snprintf(c->prefix, sizeof(c->prefix), "%s", v);
		} else if (!strcmp(o, "timeout")) {
			if (cfg_duration_check("timeout", v, &ms, err, errlen))
				goto out;
			if (ms < 1 || ms > 10000) {
				fail(err, errlen, "shared-tables: timeout %s is out of range (1ms..10s)", v);
				goto out;
			}
			c->link.timeout_ms = ms;
		} else if (!strcmp(o, "password-file")) {
			FILE *f = fopen(v, "re");
			char buf[8];
			size_t n = f ? fread(buf, 1, sizeof(buf), f) : 0;

			if (f)
				fclose(f);
			if (!f || !n || buf[0] == '\n' || buf[0] == '\r') {
				fail(err, errlen, f ? "shared-tables: password-file %s has an empty first line"
					 : "shared-tables: cannot read password-file %s", v);
				goto out;
			}
			if (strlen(v) >= sizeof(c->password_file)) {
				fail(err, errlen, "shared-tables: password-file path too long: %s", v);
				goto out;
			}
			snprintf(c->password_file, sizeof(c->password_file), "%s", v);
			c->link.password_file = c->password_file;
		} else if (!strcmp(o, "sentinel")) {
			if (parse_sentinels(c, v, err, errlen) < 0)
				goto out;
			if (i + 3 >= argc || strcmp(argv[i + 2], "master") ||
			    strlen(argv[i + 3]) >= sizeof(c->master)) {
				fail(err, errlen, "shared-tables: sentinel %s needs 'master NAME' after it", v);
				goto out;
			}
			snprintf(c->master, sizeof(c->master), "%s", argv[i + 3]);
			c->link.master = c->master;
			i += 2;
		} else if (!strcmp(o, "tls")) {
			fail(err, errlen, "shared-tables: tls to Redis is not supported yet%s", "");
			goto out;
		} else {
			fail(err, errlen, "shared-tables: unknown option '%s' (prefix, timeout, "
			     "password-file, sentinel ... master NAME)", o);
			goto out;
		}
		i++;
	}
	rc = 0;
out:
	if (rc < 0)
		free(c);
	else
		*out = c;
	return rc;
}

/* ---- the registry ------------------------------------------------------------ */

/* Creating and freeing a link (start, reload, stop) and reading the
 * counters (the control thread) take this lock; requests never do. */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shared_link *reg[256];
static int nreg;

void shared_register(struct shared_link *l)
{
	pthread_mutex_lock(&reg_lock);
	if (nreg < (int)ARRAY_SIZE(reg))
		reg[nreg++] = l;
	pthread_mutex_unlock(&reg_lock);
}

void shared_unregister(struct shared_link *l)
{
	pthread_mutex_lock(&reg_lock);
	for (int i = 0; i < nreg; i++)
		if (reg[i] == l) {
			reg[i] = reg[--nreg];
			break;
		}
	pthread_mutex_unlock(&reg_lock);
}

void shared_totals(struct shared_totals *t)
{
	memset(t, 0, sizeof(*t));
	pthread_mutex_lock(&reg_lock);
	for (int i = 0; i < nreg; i++) {
		const struct shared_link_stats *s = shared_link_stats(reg[i]);

		t->links++;
		t->up += atomic_load_explicit(&s->up, memory_order_relaxed) != 0;
		for (int o = 0; o < SHARED_OP_N; o++)
			for (int r = 0; r < SHARED_RES_N; r++)
				t->ops[o][r] += atomic_load_explicit(&s->ops[o][r], memory_order_relaxed);
		for (int b = 0; b < SHARED_LAT_N; b++)
			t->lat[b] += atomic_load_explicit(&s->lat[b], memory_order_relaxed);
		t->lat_sum_us += atomic_load_explicit(&s->lat_sum_us, memory_order_relaxed);
		t->connects += atomic_load_explicit(&s->connects, memory_order_relaxed);
		t->downs += atomic_load_explicit(&s->downs, memory_order_relaxed);
		t->queued += atomic_load_explicit(&s->queued, memory_order_relaxed);
		t->sentinel_rounds += atomic_load_explicit(&s->sentinel_rounds, memory_order_relaxed);
		t->sentinel_failures += atomic_load_explicit(&s->sentinel_failures,
							     memory_order_relaxed);
		t->master_switches += atomic_load_explicit(&s->master_switches, memory_order_relaxed);
		t->master_lost += atomic_load_explicit(&s->master_lost, memory_order_relaxed);
	}
	for (int r = 0; r < SHARED_RES_N; r++)
		t->ops[SHARED_OP_SCAN][r] += shared_admin_ops((enum shared_result)r);
	pthread_mutex_unlock(&reg_lock);
}

/* ---- deletes from the control thread ------------------------------------------ */

/* `clear sessions` runs on the control thread, which has no link: its DELs
 * wait here (bounded) for the next loop iteration of a worker, which queues
 * them on its own link (ordered, replayed after an outage like any write). */
#define POSTED_MAX 4096
struct posted {
	char table[2 * 64 + 16];
	uint16_t klen;
	char key[SHARED_KEY_MAX];
};
static struct posted *posted;
static uint32_t nposted;
_Atomic uint32_t shared_nposted;
static _Atomic uint64_t posted_dropped;

int shared_post_del(const char *table, const void *key, size_t klen)
{
	int rc = -1;

	if (strlen(table) >= sizeof(posted->table) || klen > SHARED_KEY_MAX)
		return -1;
	pthread_mutex_lock(&reg_lock);
	if (!posted)
		posted = calloc(POSTED_MAX, sizeof(*posted));
	if (posted && nposted < POSTED_MAX && nreg > 0) {
		struct posted *p = &posted[nposted++];

		snprintf(p->table, sizeof(p->table), "%s", table);
		memcpy(p->key, key, klen);
		p->klen = (uint16_t)klen;
		atomic_store_explicit(&shared_nposted, nposted, memory_order_release);
		rc = 0;
	} else {
		atomic_fetch_add_explicit(&posted_dropped, 1, memory_order_relaxed);
	}
	pthread_mutex_unlock(&reg_lock);
	return rc;
}

void shared_take_posted(struct shared_link *l)
{
	pthread_mutex_lock(&reg_lock);
	for (uint32_t i = 0; i < nposted; i++)
		shared_link_del(l, posted[i].table, posted[i].key, posted[i].klen);
	nposted = 0;
	atomic_store_explicit(&shared_nposted, 0, memory_order_relaxed);
	pthread_mutex_unlock(&reg_lock);
}

uint64_t shared_posted_dropped(void)
{
	return atomic_load_explicit(&posted_dropped, memory_order_relaxed);
}

/* ---- the shared view for the runtime API (control thread) ---------------------- */

/*
 * `show sessions` and `clear sessions` walk the backend's tables in Redis.
 * This is the fallback design of doc/scale-out.md ("show and clear"): a
 * blocking hiredis connection of the control thread, never a worker's,
 * each step bounded by what is left of one overall budget (SHARED_ADMIN_BUDGET_MS),
 * so that the control thread (admin socket, stats listener, signals) is
 * held at most that long. Each step is one short Lua script around one
 * `SCAN cursor MATCH pattern COUNT n`: O(n) work in Redis per call, never a
 * script over the whole keyspace.
 */
static _Atomic uint64_t scan_ops[SHARED_RES_N];

uint64_t shared_admin_ops(enum shared_result r)
{
	return atomic_load_explicit(&scan_ops[r], memory_order_relaxed);
}

size_t shared_glob_escape(const char *s, size_t n, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		bool meta = strchr("*?[]\\", s[i]) != NULL && s[i];

		if (o + 1 + meta >= cap)
			return 0;
		if (meta)
			out[o++] = '\\';
		out[o++] = s[i];
	}
	out[o] = 0;
	return o;
}

/* ARGV: cursor, pattern, count, server ("" any), delete ("1"). Returns
 * {next cursor, key, value, key, value...} of the keys matched (and
 * cleared). A key that is not a string (not ours) is skipped, and so is
 * the mark a clear leaves: the empty value, with the binding's TTL, which
 * a new binding replaces and a refresh from an instance still holding the
 * session does not (shared_link.c's script: that instance then forgets
 * it). A DEL would let that refresh write the cleared session back.
 * (A key without a TTL was not written by bollard: a mark there would
 * stay for ever; it is deleted.) */
static const char scan_script[] =
	"local r = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[3]) "
	"local out = {r[1]} "
	"for _, k in ipairs(r[2]) do "
	"local v = redis.pcall('GET', k) "
	"if type(v) == 'string' and v ~= '' and (ARGV[4] == '' or v == ARGV[4]) then "
	"if ARGV[5] == '1' then "
	"if redis.call('PTTL', k) > 0 then redis.call('SET', k, '', 'KEEPTTL') "
	"else redis.call('DEL', k) end end "
	"out[#out + 1] = k out[#out + 1] = v end end "
	"return out";

struct shared_admin {
	redisContext *c;
	uint64_t deadline_ms;
	char why[160];
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* What is left of the budget, as a timeval; false when nothing is. */
static bool left(const struct shared_admin *a, struct timeval *tv)
{
	uint64_t now = mono_ms();

	if (now >= a->deadline_ms)
		return false;
	tv->tv_sec = (time_t)((a->deadline_ms - now) / 1000u);
	tv->tv_usec = (suseconds_t)((a->deadline_ms - now) % 1000u * 1000u);
	return true;
}

static redisContext *connect_left(struct shared_admin *a, const char *host, int port)
{
	struct timeval tv;
	redisContext *c;

	if (!left(a, &tv)) {
		snprintf(a->why, sizeof(a->why), "no time left to connect");
		return NULL;
	}
	c = redisConnectWithTimeout(host, port, tv);
	if (!c || c->err) {
		snprintf(a->why, sizeof(a->why), "%.63s:%d: %.80s", host, port,
			 c ? c->errstr : "out of memory");
		if (c)
			redisFree(c);
		return NULL;
	}
	return c;
}

/* One command with what is left of the budget; NULL with a->why set. */
static redisReply *command(struct shared_admin *a, redisContext *c, int argc, const char **argv,
			   const size_t *lens)
{
	struct timeval tv;
	redisReply *r;

	if (!left(a, &tv)) {
		snprintf(a->why, sizeof(a->why), "no answer within %d ms", SHARED_ADMIN_BUDGET_MS);
		return NULL;
	}
	redisSetTimeout(c, tv);
	r = redisCommandArgv(c, argc, argv, lens);
	if (!r) {
		snprintf(a->why, sizeof(a->why), "%s", c->err == REDIS_ERR_IO && errno == EAGAIN ?
			 "no answer in time" : c->errstr);
		return NULL;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		snprintf(a->why, sizeof(a->why), "redis: %.140s", r->str);
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

/* With sentinels: ask them in turn where the master is. */
static int find_master(struct shared_admin *a, const struct shared_conf *sc, char *host, int *port)
{
	for (int i = 0; i < sc->link.nsentinels; i++) {
		char h[64];
		int p = host_port(sc->sentinel[i], strlen(sc->sentinel[i]), h, -1);
		const char *argv[] = { "SENTINEL", "get-master-addr-by-name", sc->master };
		size_t lens[] = { 8, 23, strlen(sc->master) };
		redisContext *c = p > 0 ? connect_left(a, h, p) : NULL;
		redisReply *r = c ? command(a, c, 3, argv, lens) : NULL;
		bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
			  r->element[0]->type == REDIS_REPLY_STRING &&
			  r->element[1]->type == REDIS_REPLY_STRING && r->element[0]->len < 64;

		if (ok) {
			snprintf(host, 64, "%s", r->element[0]->str);
			*port = atoi(r->element[1]->str);
		} else if (r) {
			snprintf(a->why, sizeof(a->why), "sentinel %s knows no master %s",
				 sc->sentinel[i], sc->master);
		}
		if (r)
			freeReplyObject(r);
		if (c)
			redisFree(c);
		if (ok)
			return 0;
	}
	return -1;
}

static void count_scan(enum shared_result r)
{
	atomic_fetch_add_explicit(&scan_ops[r], 1, memory_order_relaxed);
}

struct shared_admin *shared_admin_open(const struct shared_conf *sc, char *why, size_t whylen)
{
	struct shared_admin *a = calloc(1, sizeof(*a));
	char host[64], pw[512] = "";
	int port = sc->link.port;
	redisReply *r;

	if (!a) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	a->deadline_ms = mono_ms() + SHARED_ADMIN_BUDGET_MS;
	snprintf(host, sizeof(host), "%s", sc->host);
	if (sc->link.nsentinels && find_master(a, sc, host, &port) < 0)
		goto fail;
	if (!(a->c = connect_left(a, host, port)))
		goto fail;
	if (sc->password_file[0]) {
		FILE *f = fopen(sc->password_file, "re");
		size_t n = f ? fread(pw, 1, sizeof(pw) - 1, f) : 0;
		const char *argv[] = { "AUTH", pw };
		size_t lens[2] = { 4, 0 };

		if (f)
			fclose(f);
		pw[n] = 0;
		pw[strcspn(pw, "\r\n")] = 0;
		lens[1] = strlen(pw);
		r = command(a, a->c, 2, argv, lens);
		explicit_bzero(pw, sizeof(pw));
		if (!r)
			goto fail;
		freeReplyObject(r);
	}
	if (sc->link.db > 0) {
		char db[16];
		const char *argv[] = { "SELECT", db };
		size_t lens[2] = { 6, (size_t)snprintf(db, sizeof(db), "%d", sc->link.db) };

		if (!(r = command(a, a->c, 2, argv, lens)))
			goto fail;
		freeReplyObject(r);
	}
	/* a stopped Redis still accepts connections from its backlog: reached
	 * means it answers */
	{
		const char *argv[] = { "PING" };
		size_t lens[] = { 4 };

		if (!(r = command(a, a->c, 1, argv, lens)))
			goto fail;
		freeReplyObject(r);
	}
	return a;
fail:
	count_scan(strstr(a->why, "no answer") || strstr(a->why, "no time") ? SHARED_TIMEOUT
									      : SHARED_DOWN);
	snprintf(why, whylen, "%s", a->why);
	shared_admin_close(a);
	return NULL;
}

void shared_admin_close(struct shared_admin *a)
{
	if (!a)
		return;
	if (a->c)
		redisFree(a->c);
	free(a);
}

const char *shared_admin_why(const struct shared_admin *a)
{
	return a->why;
}

int shared_admin_scan(struct shared_admin *a, const char *prefix, const char *table,
		      const char *server, bool del, shared_admin_fn fn, void *arg, uint64_t *matched)
{
	char raw[SHARED_KEY_MAX], pat[2 * SHARED_KEY_MAX + 2], cursor[32] = "0";
	int rn = snprintf(raw, sizeof(raw), "%s%s:", prefix, table);
	size_t pn = rn > 0 && (size_t)rn < sizeof(raw) ? shared_glob_escape(raw, (size_t)rn, pat,
									    sizeof(pat) - 1) : 0;
	bool stop = false;

	*matched = 0;
	if (!pn) {
		snprintf(a->why, sizeof(a->why), "table name too long");
		return -1;
	}
	pat[pn++] = '*';
	pat[pn] = 0;
	do {
		const char *argv[] = { "EVAL", scan_script, "0", cursor, pat, "500", server ? server : "",
				       del ? "1" : "0" };
		size_t lens[8] = { 4, sizeof(scan_script) - 1, 1, strlen(cursor), pn, 3,
				   server ? strlen(server) : 0, 1 };
		redisReply *r = command(a, a->c, 8, argv, lens);

		if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
		    r->element[0]->type != REDIS_REPLY_STRING || r->element[0]->len >= sizeof(cursor)) {
			if (r)
				snprintf(a->why, sizeof(a->why), "unexpected answer to the scan");
			count_scan(strstr(a->why, "no answer") ? SHARED_TIMEOUT : SHARED_ERROR);
			if (r)
				freeReplyObject(r);
			return -1;
		}
		snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
		for (size_t i = 1; i + 1 < r->elements && !stop; i += 2) {
			const redisReply *k = r->element[i], *v = r->element[i + 1];

			if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
			    k->len < (size_t)rn || memcmp(k->str, raw, (size_t)rn))
				continue;
			(*matched)++;
			stop = fn && fn(arg, k->str + rn, k->len - (size_t)rn, v->str, v->len);
		}
		freeReplyObject(r);
	} while (strcmp(cursor, "0") && !stop);
	count_scan(SHARED_OK);
	return 0;
}
