/*
 * store_memory.c - sessions in this process's memory (--store memory, the
 * default): a bounded table shared by the worker threads.
 *
 * A real application server keeps sessions in its own memory; so does the
 * demo app, which is the point: a request that lands on another instance
 * finds no session and starts a new one, and the page says so. The table is
 * a chained hash keyed with SipHash under a random key (ids come from
 * clients and, with --replicate-to, from a peer: nobody can aim at a chain)
 * with an LRU list; past SESSION_MAX the least recently used session is
 * dropped, like a servlet container's session limit, and a session idle
 * longer than its TTL is gone. One mutex: the demo app's hot benchmark path
 * (/whoami) never takes it.
 *
 * With --replicate-to PEER every write is also queued for the peer
 * (replica.c), whose own table then serves the session when bollard sends
 * the user there after this server failed (`on-server-down replica`).
 */
#include "demo.h"
#include "store.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define SESSION_MAX      100000
#define SESSION_BUCKETS  65536   /* power of two */

struct session {
	struct session *chain;             /* next in bucket */
	struct session *lru_prev, *lru_next;
	uint64_t expires_ms;               /* monotonic; idle TTL from last write */
	struct store_session s;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct session *buckets[SESSION_BUCKETS];
static struct session *lru_head, *lru_tail;    /* head = most recent */
static uint64_t count;
static bool active;                            /* the chosen store */
static uint8_t hkey[crypto_shorthash_KEYBYTES];

static uint32_t id_hash(const char *id)
{
	uint8_t h[crypto_shorthash_BYTES];
	uint32_t v;

	crypto_shorthash(h, (const uint8_t *)id, SESSION_ID_LEN, hkey);
	memcpy(&v, h, sizeof(v));
	return v & (SESSION_BUCKETS - 1);
}

static void lru_unlink(struct session *s)
{
	if (s->lru_prev)
		s->lru_prev->lru_next = s->lru_next;
	else
		lru_head = s->lru_next;
	if (s->lru_next)
		s->lru_next->lru_prev = s->lru_prev;
	else
		lru_tail = s->lru_prev;
	s->lru_prev = s->lru_next = NULL;
}

static void lru_push(struct session *s)
{
	s->lru_prev = NULL;
	s->lru_next = lru_head;
	if (lru_head)
		lru_head->lru_prev = s;
	lru_head = s;
	if (!lru_tail)
		lru_tail = s;
}

static struct session **slot_of(const char *id)
{
	struct session **pp;

	for (pp = &buckets[id_hash(id)]; *pp; pp = &(*pp)->chain)
		if (memcmp((*pp)->s.id, id, SESSION_ID_LEN) == 0)
			return pp;
	return pp;
}

static void drop(struct session **pp)
{
	struct session *s = *pp;

	*pp = s->chain;
	lru_unlink(s);
	free(s);
	count--;
}

static void evict_oldest(void)
{
	if (lru_tail)
		drop(slot_of(lru_tail->s.id));
}

static const char *mem_configure(const char *spec)
{
	if (sodium_init() < 0)
		return "libsodium failed to initialise";
	randombytes_buf(hkey, sizeof(hkey));
	active = true;
	if (store_cfg.replicate_to)
		return replica_configure(store_cfg.replicate_to);
	return NULL;
}

static void *mem_open(void)
{
	return &lock;            /* any non-NULL handle: the table is shared */
}

static int mem_get(void *h, const char *key, size_t len, struct store_session *out,
		   struct store_err *e)
{
	struct session **pp, *s;
	int found = 0;

	if (!store_id_valid(key, len))
		return 0;
	pthread_mutex_lock(&lock);
	pp = slot_of(key);
	s = *pp;
	if (s && s->expires_ms <= store_now_ms()) {
		drop(pp);
		s = NULL;
	}
	if (s) {
		lru_unlink(s);
		lru_push(s);
		*out = s->s;
		found = 1;
	}
	pthread_mutex_unlock(&lock);
	return found;
}

/* Insert or replace s. Returns 0, or -1 when out of memory. */
static int put_local(const struct store_session *in, unsigned ttl_s)
{
	struct session **pp, *s;

	pthread_mutex_lock(&lock);
	pp = slot_of(in->id);
	s = *pp;
	if (s) {
		lru_unlink(s);
	} else {
		if (count >= SESSION_MAX) {
			evict_oldest();
			pp = slot_of(in->id);   /* the chain may have changed */
		}
		s = calloc(1, sizeof(*s));
		if (!s) {
			pthread_mutex_unlock(&lock);
			return -1;
		}
		*pp = s;
		count++;
	}
	s->s = *in;
	s->expires_ms = store_now_ms() + (uint64_t)ttl_s * 1000;
	lru_push(s);
	pthread_mutex_unlock(&lock);
	return 0;
}

static int mem_put(void *h, const struct store_session *s, unsigned ttl_s,
		   char *tok, size_t *toklen, struct store_err *e)
{
	if (put_local(s, ttl_s) < 0)
		return store_fail(e, "out of memory");
	if (store_cfg.replicate_to)
		replica_send(s, ttl_s);
	return 0;
}

static void del_local(const char *id)
{
	struct session **pp;

	pthread_mutex_lock(&lock);
	pp = slot_of(id);
	if (*pp)
		drop(pp);
	pthread_mutex_unlock(&lock);
}

int store_memory_accept_replica(const struct store_session *s, unsigned ttl_s)
{
	if (!active)
		return -1;
	if (ttl_s == 0) {
		del_local(s->id);
		return 0;
	}
	return put_local(s, ttl_s);
}

static int mem_del(void *h, const char *id, struct store_err *e)
{
	del_local(id);
	if (store_cfg.replicate_to) {
		struct store_session s = { .visits = 0 };
		memcpy(s.id, id, sizeof(s.id));
		replica_send(&s, 0);
	}
	return 0;
}

static void mem_reset(void *h)
{
}

static int64_t mem_count(void)
{
	uint64_t n;

	pthread_mutex_lock(&lock);
	n = count;
	pthread_mutex_unlock(&lock);
	return (int64_t)n;
}

const struct store_ops store_memory_ops = {
	.name = "memory",
	.configure = mem_configure,
	.open = mem_open,
	.get = mem_get,
	.put = mem_put,
	.del = mem_del,
	.reset = mem_reset,
	.count = mem_count,
};
