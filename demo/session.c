/*
 * session.c - a bounded table of sessions shared by the worker threads.
 *
 * A real application server keeps sessions in its own memory; so does the
 * demo app, which is the point: a request that lands on another instance
 * finds no session and starts a new one, and the page says so. The table is
 * a chained hash (ids are random, drawn from getrandom(2), so clients cannot
 * aim at a chain: an unknown id is never inserted) with an LRU list; past
 * SESSION_MAX the least recently used session is dropped, like a servlet
 * container's session limit. One mutex: the demo app's hot benchmark path
 * (/whoami) never takes it.
 */
#include "session.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "hash.h"

#define SESSION_MAX      100000
#define SESSION_BUCKETS  65536   /* power of two */

struct session {
	struct session *chain;             /* next in bucket */
	struct session *lru_prev, *lru_next;
	char id[SESSION_ID_LEN + 1];
	uint64_t visits;
	uint64_t cart_total;
	unsigned ncart;
	char cart[SESSION_CART_MAX][SESSION_ITEM_MAX + 1];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct session *buckets[SESSION_BUCKETS];
static struct session *lru_head, *lru_tail;    /* head = most recent */
static uint64_t count;

/* FNV-1a: ids are random hex, so a simple hash spreads them evenly. */
static uint32_t id_hash(const char *id, size_t len)
{
	uint32_t h = 2166136261u;

	while (len--) {
		h ^= (uint8_t)*id++;
		h *= 16777619u;
	}
	return h & (SESSION_BUCKETS - 1);
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

static struct session *find(const char *id, size_t len)
{
	struct session *s;

	if (len != SESSION_ID_LEN)
		return NULL;
	for (s = buckets[id_hash(id, len)]; s; s = s->chain)
		if (memcmp(s->id, id, len) == 0)
			return s;
	return NULL;
}

static void evict_oldest(void)
{
	struct session *s = lru_tail, **pp;

	if (!s)
		return;
	lru_unlink(s);
	for (pp = &buckets[id_hash(s->id, SESSION_ID_LEN)]; *pp; pp = &(*pp)->chain) {
		if (*pp == s) {
			*pp = s->chain;
			break;
		}
	}
	free(s);
	count--;
}

static struct session *create(void)
{
	uint8_t rnd[SESSION_ID_LEN / 2];
	struct session *s;
	uint32_t b;

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return NULL;
	if (count >= SESSION_MAX)
		evict_oldest();
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	hash_hex(rnd, sizeof(rnd), s->id);
	b = id_hash(s->id, SESSION_ID_LEN);
	s->chain = buckets[b];
	buckets[b] = s;
	lru_push(s);
	count++;
	return s;
}

int session_touch(const char *id, size_t len, enum session_op op,
		  const char *item, size_t ilen, struct session_view *out)
{
	struct session *s;
	bool created = false;

	pthread_mutex_lock(&lock);
	s = find(id, len);
	if (s) {
		lru_unlink(s);
		lru_push(s);
	} else {
		s = create();
		created = true;
		if (!s) {
			pthread_mutex_unlock(&lock);
			return -1;
		}
	}
	if (op == SESSION_VISIT) {
		s->visits++;
	} else if (op == SESSION_ADD) {
		if (ilen > SESSION_ITEM_MAX)
			ilen = SESSION_ITEM_MAX;
		if (s->ncart < SESSION_CART_MAX) {
			memcpy(s->cart[s->ncart], item, ilen);
			s->cart[s->ncart][ilen] = '\0';
			s->ncart++;
		}
		s->cart_total++;
	}
	memcpy(out->id, s->id, sizeof(out->id));
	out->created = created;
	out->visits = s->visits;
	out->cart_total = s->cart_total;
	out->ncart = s->ncart;
	memcpy(out->cart, s->cart, sizeof(out->cart));
	pthread_mutex_unlock(&lock);
	return 0;
}

uint64_t session_count(void)
{
	uint64_t n;

	pthread_mutex_lock(&lock);
	n = count;
	pthread_mutex_unlock(&lock);
	return n;
}
