/*
 * store.c - what every session store shares: choosing the module from
 * --store, one handle per worker thread, what happens when a store fails,
 * session ids, and the value the remote stores keep.
 *
 * A failing store must cost a bounded wait and a clear 503, never a hang:
 * each module bounds its own calls by --store-timeout, and this layer adds
 * a short back-off per thread (a thread whose store just failed answers
 * 503 at once for STORE_BACKOFF_MS instead of waiting out the timeout on
 * every request of a store that does not answer), one log line when the
 * store goes down and one when it comes back (not one per request: the
 * lab kills stores under load), and the counters /stats shows.
 */
#include "demo.h"
#include "store.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#define STORE_BACKOFF_MS 100

struct store_config store_cfg = {
	.spec = "memory",
	.ttl_s = 1800,
	.timeout_ms = 500,
};

struct slot {
	void *h;
	uint64_t retry_at;             /* back-off: fail fast until then (ms) */
} __attribute__((aligned(64)));

static const struct store_ops *ops = &store_memory_ops;
static struct slot *slots;
static atomic_int down;                /* 1 while the store fails */
static _Atomic uint64_t errors, refused;

static const struct {
	const char *prefix;
	const struct store_ops *ops;
} kinds[] = {
	{ "memory", &store_memory_ops },
	{ "redis://", &store_redis_ops },
	{ "memcached://", &store_memcached_ops },
	{ "postgresql://", &store_pg_ops },
	{ "postgres://", &store_pg_ops },
	{ "jwt", &store_jwt_ops },
};

uint64_t store_now_ms(void)
{
	return demo_now_ms();
}

void store_log(const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One write, so lines of several threads never interleave. */
	fprintf(stderr, "bollard-demo-app %s: %s\n", demo_cfg.name, line);
}

int store_fail(struct store_err *e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return -1;
}

const char *store_configure(void)
{
	const char *spec = store_cfg.spec;
	size_t i;

	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		size_t n = strlen(kinds[i].prefix);
		bool exact = kinds[i].prefix[n - 1] != '/';
		if (exact ? strcmp(spec, kinds[i].prefix) == 0 :
			    strncasecmp(spec, kinds[i].prefix, n) == 0) {
			ops = kinds[i].ops;
			break;
		}
	}
	if (i == sizeof(kinds) / sizeof(kinds[0]))
		return "--store must be memory, jwt, redis://HOST:PORT, "
		       "memcached://HOST:PORT or postgresql://...";
	if (store_cfg.replicate_to && ops != &store_memory_ops)
		return "--replicate-to needs --store memory (the other stores "
		       "are shared or client-side already)";
	if (store_cfg.key_file && ops != &store_jwt_ops)
		return "--key-file is the key of --store jwt";
	return ops->configure(spec);
}

const char *store_name(void)
{
	return ops->name;
}

bool store_client_side(void)
{
	return ops == &store_jwt_ops;
}

int store_threads(int threads)
{
	int i;

	slots = aligned_alloc(64, sizeof(*slots) * (size_t)threads);
	if (!slots)
		return -1;
	memset(slots, 0, sizeof(*slots) * (size_t)threads);
	for (i = 0; i < threads; i++) {
		slots[i].h = ops->open();
		if (!slots[i].h)
			return -1;
	}
	return 0;
}

/* Before a call: fail fast while the thread backs off. */
static int enter(struct slot *sl, struct store_err *e)
{
	if (sl->retry_at && store_now_ms() < sl->retry_at) {
		atomic_fetch_add_explicit(&errors, 1, memory_order_relaxed);
		return store_fail(e, "%s store unavailable (retrying)", ops->name);
	}
	return 0;
}

/* After a call: the log lines on transitions, back-off after a failure. */
static int leave(struct slot *sl, int rc, struct store_err *e)
{
	if (rc < 0) {
		atomic_fetch_add_explicit(&errors, 1, memory_order_relaxed);
		ops->reset(sl->h);
		sl->retry_at = store_now_ms() + STORE_BACKOFF_MS;
		if (atomic_exchange(&down, 1) == 0)
			store_log("store %s failed: %s; answering 503 while it is down",
				  store_cfg.spec, e->msg);
		return rc;
	}
	sl->retry_at = 0;
	if (atomic_load_explicit(&down, memory_order_relaxed) &&
	    atomic_exchange(&down, 0) == 1)
		store_log("store %s is back", store_cfg.spec);
	return rc;
}

int store_get(int slot, const char *key, size_t len, struct store_session *out,
	      struct store_err *e)
{
	struct slot *sl = &slots[slot];

	if (enter(sl, e) < 0)
		return -1;
	return leave(sl, ops->get(sl->h, key, len, out, e), e);
}

int store_put(int slot, const struct store_session *s, char *tok, size_t *toklen,
	      struct store_err *e)
{
	struct slot *sl = &slots[slot];

	*toklen = 0;
	if (enter(sl, e) < 0)
		return -1;
	return leave(sl, ops->put(sl->h, s, store_cfg.ttl_s, tok, toklen, e), e);
}

int store_del(int slot, const char *id, struct store_err *e)
{
	struct slot *sl = &slots[slot];

	if (enter(sl, e) < 0)
		return -1;
	return leave(sl, ops->del(sl->h, id, e), e);
}

int64_t store_count(void)
{
	return ops->count ? ops->count() : -1;
}

uint64_t store_errors(void)
{
	return atomic_load_explicit(&errors, memory_order_relaxed);
}

uint64_t store_refused(void)
{
	return atomic_load_explicit(&refused, memory_order_relaxed);
}

void store_count_refused(void)
{
	atomic_fetch_add_explicit(&refused, 1, memory_order_relaxed);
}

int store_new_id(char id[SESSION_ID_LEN + 1])
{
	uint8_t rnd[SESSION_ID_LEN / 2];

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return -1;
	hash_hex(rnd, sizeof(rnd), id);
	return 0;
}

bool store_id_valid(const char *id, size_t len)
{
	size_t i;

	if (len != SESSION_ID_LEN)
		return false;
	for (i = 0; i < len; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return false;
	return true;
}

int store_hostport(const char *s, char *host, size_t hostcap, int *port, int dflt,
		   const char **rest)
{
	const char *p = strstr(s, "://"), *h, *he, *q;
	long v;
	char *end;

	p = p ? p + 3 : s;
	if (*p == '[') {                         /* RFC 3986 3.2.2: IP-literal */
		h = p + 1;
		he = strchr(h, ']');
		if (!he)
			return -1;
		q = he + 1;
	} else {
		h = p;
		he = h + strcspn(h, ":/");
		q = he;
	}
	if (he == h || (size_t)(he - h) >= hostcap)
		return -1;
	memcpy(host, h, (size_t)(he - h));
	host[he - h] = '\0';
	*port = dflt;
	if (*q == ':') {
		v = strtol(q + 1, &end, 10);
		if (end == q + 1 || v < 1 || v > 65535)
			return -1;
		*port = (int)v;
		q = end;
	}
	if (*q && *q != '/')
		return -1;
	*rest = q;
	return 0;
}

/* ---- the value of the remote stores ----------------------------------- */

static bool plain(unsigned char ch)
{
	return isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~';
}

size_t store_encode(const struct store_session *s, char *out)
{
	static const char hex[] = "0123456789ABCDEF";
	int n;
	size_t o;
	unsigned i;

	n = snprintf(out, STORE_VALUE_MAX, "1 %llu %llu %u",
		     (unsigned long long)s->visits,
		     (unsigned long long)s->cart_total, s->ncart);
	o = (size_t)n;
	for (i = 0; i < s->ncart && i < SESSION_CART_MAX; i++) {
		const unsigned char *p = (const unsigned char *)s->cart[i];
		out[o++] = ' ';
		for (; *p; p++) {
			if (plain(*p)) {
				out[o++] = (char)*p;
			} else {
				out[o++] = '%';
				out[o++] = hex[*p >> 4];
				out[o++] = hex[*p & 15];
			}
		}
	}
	out[o] = '\0';
	return o;
}

static int hexdig(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* A decimal number ending at a space or at end; advances *p. */
static int number(const char **p, const char *end, uint64_t *v)
{
	const char *q = *p;
	uint64_t x = 0;

	if (q == end || *q < '0' || *q > '9')
		return -1;
	while (q < end && *q >= '0' && *q <= '9') {
		if (x > (UINT64_MAX - 9) / 10)
			return -1;
		x = x * 10 + (uint64_t)(*q++ - '0');
	}
	if (q < end && *q != ' ')
		return -1;
	*v = x;
	*p = q;
	return 0;
}

int store_decode(const char *v, size_t n, struct store_session *s)
{
	const char *p = v, *end = v + n;
	uint64_t visits, total, ncart;
	unsigned i;

	if (n < 2 || p[0] != '1' || p[1] != ' ')
		return -1;
	p += 2;
	if (number(&p, end, &visits) < 0 || p == end || *p++ != ' ' ||
	    number(&p, end, &total) < 0 || p == end || *p++ != ' ' ||
	    number(&p, end, &ncart) < 0 || ncart > SESSION_CART_MAX || ncart > total)
		return -1;
	for (i = 0; i < ncart; i++) {
		size_t o = 0;
		if (p == end || *p++ != ' ')
			return -1;
		while (p < end && *p != ' ') {
			int hi, lo;
			if (o == SESSION_ITEM_MAX)
				return -1;
			if (*p != '%') {
				if (!plain((unsigned char)*p))
					return -1;
				s->cart[i][o++] = *p++;
				continue;
			}
			if (end - p < 3 || (hi = hexdig(p[1])) < 0 || (lo = hexdig(p[2])) < 0)
				return -1;
			/* Items were sanitised on the way in: a control
			 * byte means the value is not ours. */
			if ((hi << 4 | lo) < 0x20 || (hi << 4 | lo) == 0x7f)
				return -1;
			s->cart[i][o++] = (char)(hi << 4 | lo);
			p += 3;
		}
		s->cart[i][o] = '\0';
	}
	if (p != end)
		return -1;
	s->visits = visits;
	s->cart_total = total;
	s->ncart = (unsigned)ncart;
	return 0;
}
