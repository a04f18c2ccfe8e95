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
#include <pthread.h>

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
