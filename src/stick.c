/*
 * stick.c - persistence tables: key -> server, shared by all threads.
 *
 * The problem is memory and contention at scale: SPEC §9 wants 10 million
 * entries in under 1 GiB with O(1) operations and no global lock, where
 * HAProxy's stick tables spend ~240 bytes an entry. So:
 *
 * - Sharding. A table is 2^k shards, each a complete little table (hash
 *   buckets, LRU list, slabs, counters) behind its own mutex. The shard is
 *   picked by the top bits of the key's SipHash, the bucket by the low bits.
 *
 * - No pointers and no per-entry malloc. Entries live in per-shard slabs,
 *   one per key-size class (a 4-byte IPv4 key does not pay for 255 bytes),
 *   allocated 1024 slots at a time. Every link (hash chain, LRU prev/next)
 *   is a 32-bit reference: 4 bits of size class, 28 bits of slot index.
 *   Freed slots go to the class's free list and are reused.
 *
 * - Times are 32-bit millisecond offsets from a per-shard base. Before
 *   the offset of "now" would overflow (after ~24 days) the shard is
 *   rebased once in O(entries): offsets older than the new base clamp to 0,
 *   which only makes entries idle for more than 12 days look younger than
 *   they are (they stay at the LRU tail either way).
 *
 *   Entry layout: 26 bytes + key, rounded to 4: 32 bytes for a 4-byte key,
 *   44 for a 16-byte key, 60 for a 32-byte key, plus ~3-5 bytes of bucket.
 *
 * - Growth: a shard doubles its bucket array when its load factor passes
 *   1.5, rehashing all its entries at once under its lock (SipHash is
 *   recomputed; the hash is not stored, to save 8 bytes an entry). This is
 *   amortised O(1); the worst single pause is one shard's rehash, about
 *   1/64 of the table (~150k entries at 10M, a few ms), paid on one thread
 *   while the other 63 shards stay available.
 *
 * - Expiry (Redis expire.c's shape, minus randomness since LRU order gives
 *   us the oldest entry for free): lookups hide expired entries at once;
 *   stick_expire() pops expired entries from LRU tails with a budget, and
 *   skips without locking every shard whose published "earliest possible
 *   deadline" is still in the future.
 */
#include "api.h"
#include "bytes.h"
#include "stick.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <sodium.h>

#define NIL            UINT32_MAX
#define CLS_SHIFT      28
#define IDX_MASK       ((1u << CLS_SHIFT) - 1)
#define CHUNK_SHIFT    10		/* 1024 slots a slab chunk */
#define CHUNK_SLOTS    (1u << CHUNK_SHIFT)
#define MIN_BUCKETS    16u
#define MAX_SHARDS     1024u
#define TIME_REBASE    (1ull << 31)	/* rebase when now's offset reaches it */
#define TIME_KEEP      (1ull << 30)	/* history kept by a rebase */

/* Key-size classes: slot capacity for the key bytes. */
static const uint16_t cls_cap[] = {
	4, 8, 12, 16, 20, 24, 32, 40, 48, 64, 96, 128, 192, 255,
};
#define NCLASS ((unsigned)ARRAY_SIZE(cls_cap))

/* An entry, laid over a slot of its class's slab. 4-byte aligned (slot
 * sizes are multiples of 4); key follows the fixed part directly. */
struct stick_entry {
	uint32_t hnext;		/* hash chain */
	uint32_t prev, next;	/* LRU: prev is towards the head (newer) */
	uint32_t srv;
	uint32_t atime;		/* last access, ms from shard base */
	uint32_t ctime;		/* creation, ms from shard base */
	uint8_t klen;
	uint8_t tag;		/* 8 more hash bits: skips most memcmp */
	uint8_t key[];
};
#define ENTRY_HDR offsetof(struct stick_entry, key)

struct stick_class {
	uint8_t **chunks;
	uint32_t nchunks, chunks_cap;
	uint32_t used;		/* slots ever handed out */
	uint32_t free_head;	/* freed slots, linked through hnext */
	uint32_t slot_size;
};

struct stick_shard {
	pthread_mutex_t lock;
	uint32_t *buckets;
	uint32_t mask;		/* nbuckets - 1 */
	uint32_t count;
	uint32_t head, tail;	/* LRU: head = most recently used */
	/* ms, origin of atime/ctime. Signed: an entry restored from a state
	 * file may be older than the machine's boot, i.e. before monotonic
	 * time 0, and must keep its true idle time (issue 9 item 12). */
	int64_t base;
	bool based;
	uint32_t *srv_count;
	uint32_t srv_cap;
	uint64_t expired, evicted;
	/* Read without the lock by stick_count / stick_expire. */
	_Atomic uint32_t acount;
	_Atomic uint64_t deadline;	/* tail can't expire before this */
	struct stick_class cls[NCLASS];
} __attribute__((aligned(64)));	/* no false sharing between shard locks */

struct stick_table {
	struct stick_shard *shards;
	unsigned nshards;
	unsigned shard_bits;
	/* Limits: a reload may change them on a table that stays in use
	 * (stick_set_limits), so they are read with relaxed atomic loads. */
	_Atomic uint32_t shard_cap;	/* max entries per shard */
	_Atomic uint32_t expire_ms;
	_Atomic unsigned refs;		/* stick_hold / stick_free */
	_Atomic unsigned expire_cursor;
	uint8_t sipkey[crypto_shorthash_KEYBYTES];
};

/* ---- hashing ------------------------------------------------------------ */

static uint64_t khash(const struct stick_table *t, const void *key,
		      size_t klen)
{
	uint8_t out[crypto_shorthash_BYTES];
	uint64_t h;

	/* SipHash-2-4 under a random key: clients choose our keys, so they
	 * must not be able to choose our collisions. */
	crypto_shorthash(out, key, klen, t->sipkey);
	memcpy(&h, out, sizeof(h));
	return h;
}

static struct stick_shard *shard_of(const struct stick_table *t, uint64_t h)
{
	if (t->shard_bits == 0)
		return &t->shards[0];
	return &t->shards[h >> (64 - t->shard_bits)];
}

static uint8_t tag_of(uint64_t h)
{
	return (uint8_t)(h >> 32);
}

/* ---- slabs ---------------------------------------------------------------- */

static unsigned cls_for(size_t klen)
{
	unsigned c = 0;

	while (cls_cap[c] < klen)
		c++;
	return c;
}

static struct stick_entry *ent(const struct stick_shard *s, uint32_t ref)
{
	const struct stick_class *c = &s->cls[ref >> CLS_SHIFT];
	uint32_t idx = ref & IDX_MASK;

	return (struct stick_entry *)(void *)(c->chunks[idx >> CHUNK_SHIFT] +
		(size_t)(idx & (CHUNK_SLOTS - 1)) * c->slot_size);
}

static uint32_t slot_alloc(struct stick_shard *s, unsigned ci)
{
	struct stick_class *c = &s->cls[ci];
	uint32_t ref;

	if (c->free_head != NIL) {
		ref = c->free_head;
		c->free_head = ent(s, ref)->hnext;
		return ref;
	}
	if (c->used == (c->nchunks << CHUNK_SHIFT)) {
		uint8_t *chunk;

		if (c->used >= IDX_MASK - CHUNK_SLOTS)
			return NIL;
		if (c->nchunks == c->chunks_cap) {
			uint32_t ncap = c->chunks_cap ? c->chunks_cap * 2 : 4;
			uint8_t **nc = realloc(c->chunks, ncap * sizeof(*nc));

			if (!nc)
				return NIL;
			c->chunks = nc;
			c->chunks_cap = ncap;
		}
		chunk = malloc((size_t)c->slot_size * CHUNK_SLOTS);
		if (!chunk)
			return NIL;
		c->chunks[c->nchunks++] = chunk;
	}
	return ((uint32_t)ci << CLS_SHIFT) | c->used++;
}

static void slot_free(struct stick_shard *s, uint32_t ref)
{
	struct stick_class *c = &s->cls[ref >> CLS_SHIFT];

	ent(s, ref)->hnext = c->free_head;
	c->free_head = ref;
}

/* ---- per-server counters -------------------------------------------------- */

static int srv_inc(struct stick_shard *s, uint32_t srv)
{
	if (srv >= STICK_SRV_COUNTED)
		return 0;
	if (srv >= s->srv_cap) {
		uint32_t ncap = s->srv_cap ? s->srv_cap : 8;
		uint32_t *n;

		while (ncap <= srv)
			ncap *= 2;
		n = realloc(s->srv_count, ncap * sizeof(*n));
		if (!n)
			return -1;
		memset(n + s->srv_cap, 0, (ncap - s->srv_cap) * sizeof(*n));
		s->srv_count = n;
		s->srv_cap = ncap;
	}
	s->srv_count[srv]++;
	return 0;
}

static void srv_dec(struct stick_shard *s, uint32_t srv)
{
	if (srv < STICK_SRV_COUNTED) {
		BUG_ON(srv >= s->srv_cap || s->srv_count[srv] == 0);
		s->srv_count[srv]--;
	}
}

/* ---- time ------------------------------------------------------------------ */

static void rebase(struct stick_shard *s, int64_t newbase)
{
	uint64_t delta = (uint64_t)(newbase - s->base);

	for (uint32_t r = s->head; r != NIL;) {
		struct stick_entry *e = ent(s, r);

		e->atime = e->atime > delta ? (uint32_t)(e->atime - delta) : 0;
		e->ctime = e->ctime > delta ? (uint32_t)(e->ctime - delta) : 0;
		r = e->next;
	}
	s->base = newbase;
	/* Clamping made entries look older: the published deadline may now
	 * be too late, so withdraw it. */
	atomic_store_explicit(&s->deadline, 0, memory_order_relaxed);
}

/* now as an offset from the shard's base, rebasing when needed. */
static uint32_t now_off(struct stick_shard *s, uint64_t now_ms)
{
	int64_t now = (int64_t)now_ms;

	if (unlikely(!s->based)) {
		/* TIME_KEEP of history below now, even when that is before
		 * the boot (a small monotonic clock) */
		s->base = now - (int64_t)TIME_KEEP;
		s->based = true;
	}
	if (now < s->base)
		return 0;
	if (unlikely((uint64_t)(now - s->base) >= TIME_REBASE))
		rebase(s, now - (int64_t)TIME_KEEP);
	return (uint32_t)(now - s->base);
}

/* An absolute time (ms, possibly before the clock's origin) as an offset,
 * clamped to the representable range. */
static uint32_t abs_off(const struct stick_shard *s, int64_t when,
			uint32_t nowo)
{
	if (when <= s->base)
		return 0;
	if ((uint64_t)(when - s->base) > nowo)
		return nowo;
	return (uint32_t)(when - s->base);
}

static uint32_t idle_of(const struct stick_entry *e, uint32_t nowo)
{
	/* Threads read their own clocks: an entry touched by another thread
	 * may be a hair "in the future". */
	return nowo > e->atime ? nowo - e->atime : 0;
}

static uint32_t expire_of(const struct stick_table *t)
{
	return atomic_load_explicit(&t->expire_ms, memory_order_relaxed);
}

static bool is_expired(const struct stick_table *t,
		       const struct stick_entry *e, uint32_t nowo)
{
	uint32_t x = expire_of(t);

	return x && idle_of(e, nowo) >= x;
}

/* ---- LRU and hash chains --------------------------------------------------- */

static void lru_unlink(struct stick_shard *s, struct stick_entry *e)
{
	if (e->prev != NIL)
		ent(s, e->prev)->next = e->next;
	else
		s->head = e->next;
	if (e->next != NIL)
		ent(s, e->next)->prev = e->prev;
	else
		s->tail = e->prev;
}

static void lru_push_head(struct stick_shard *s, uint32_t ref,
			  struct stick_entry *e)
{
	e->prev = NIL;
	e->next = s->head;
	if (s->head != NIL)
		ent(s, s->head)->prev = ref;
	else
		s->tail = ref;
	s->head = ref;
}

/* Find key in its chain; *link is set to the reference pointing at it. */
static uint32_t chain_find(struct stick_shard *s, uint64_t h, const void *key,
			   size_t klen, uint32_t **link)
{
	uint32_t *l = &s->buckets[(uint32_t)h & s->mask];
	uint8_t tag = tag_of(h);

	while (*l != NIL) {
		struct stick_entry *e = ent(s, *l);

		if (e->tag == tag && e->klen == klen &&
		    memcmp(e->key, key, klen) == 0) {
			if (link)
				*link = l;
			return *l;
		}
		l = &e->hnext;
	}
	return NIL;
}

/* Unlink and free the entry ref, whose chain link is `link` (NULL: find
 * it by rehashing its key, for entries reached through the LRU list). */
static void remove_entry(const struct stick_table *t, struct stick_shard *s,
			 uint32_t ref, uint32_t *link)
{
	struct stick_entry *e = ent(s, ref);

	if (!link) {
		uint64_t h = khash(t, e->key, e->klen);

		link = &s->buckets[(uint32_t)h & s->mask];
		while (*link != ref) {
			BUG_ON(*link == NIL);
			link = &ent(s, *link)->hnext;
		}
	}
	*link = e->hnext;
	lru_unlink(s, e);
	srv_dec(s, e->srv);
	s->count--;
	atomic_store_explicit(&s->acount, s->count, memory_order_relaxed);
	slot_free(s, ref);
}

/* Double the bucket array and rehash every entry. On allocation failure
 * keep the old array: chains grow longer, nothing breaks. */
static void grow(const struct stick_table *t, struct stick_shard *s)
{
	uint32_t nb = (s->mask + 1) * 2;
	uint32_t *b;

	if (nb == 0)
		return;
	b = malloc((size_t)nb * sizeof(*b));
	if (!b)
		return;
	memset(b, 0xff, (size_t)nb * sizeof(*b));
	for (uint32_t r = s->head; r != NIL;) {
		struct stick_entry *e = ent(s, r);
		uint32_t *l = &b[(uint32_t)khash(t, e->key, e->klen) & (nb - 1)];

		e->hnext = *l;
		*l = r;
		r = e->next;
	}
	free(s->buckets);
	s->buckets = b;
	s->mask = nb - 1;
}

/* ---- table life ------------------------------------------------------------ */

static int shard_init(struct stick_shard *s)
{
	pthread_mutexattr_t a;
	int rc;

	memset(s, 0, sizeof(*s));
	s->buckets = malloc(MIN_BUCKETS * sizeof(*s->buckets));
	if (!s->buckets)
		return -1;
	memset(s->buckets, 0xff, MIN_BUCKETS * sizeof(*s->buckets));
	s->mask = MIN_BUCKETS - 1;
	s->head = s->tail = NIL;
	for (unsigned c = 0; c < NCLASS; c++) {
		s->cls[c].free_head = NIL;
		/* Multiple of 4: keeps the uint32_t fields aligned. */
		s->cls[c].slot_size =
			(uint32_t)((ENTRY_HDR + cls_cap[c] + 3) & ~(size_t)3);
	}
	pthread_mutexattr_init(&a);
	/* Critical sections are short: spin a little before sleeping. */
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ADAPTIVE_NP);
	rc = pthread_mutex_init(&s->lock, &a);
	pthread_mutexattr_destroy(&a);
	if (rc != 0) {
		free(s->buckets);
		return -1;
	}
	return 0;
}

static void shard_release(struct stick_shard *s)
{
	for (unsigned c = 0; c < NCLASS; c++) {
		for (uint32_t i = 0; i < s->cls[c].nchunks; i++)
			free(s->cls[c].chunks[i]);
		free(s->cls[c].chunks);
	}
	free(s->buckets);
	free(s->srv_count);
}

struct stick_table *stick_new(uint32_t max_entries, uint32_t expire_ms,
			      unsigned nshards)
{
	struct stick_table *t;
	void *mem;
	unsigned n = 1, bits = 0;

	if (sodium_init() < 0)
		return NULL;
	if (max_entries == 0)
		max_entries = STICK_DEFAULT_SIZE;
	if (nshards == 0) {
		/* 64 shards, but at least 256 entries a shard. */
		nshards = 64;
		while (nshards > 1 && max_entries / nshards < 256)
			nshards /= 2;
	}
	if (nshards > MAX_SHARDS)
		nshards = MAX_SHARDS;
	while (n < nshards) {
		n *= 2;
		bits++;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	if (posix_memalign(&mem, 64, n * sizeof(struct stick_shard)) != 0) {
		free(t);
		return NULL;
	}
	t->shards = mem;
	t->nshards = n;
	t->shard_bits = bits;
	atomic_init(&t->shard_cap, (uint32_t)(((uint64_t)max_entries + n - 1) / n));
	atomic_init(&t->expire_ms, expire_ms);
	atomic_init(&t->refs, 1);
	randombytes_buf(t->sipkey, sizeof(t->sipkey));
	for (unsigned i = 0; i < n; i++) {
		if (shard_init(&t->shards[i]) < 0) {
			while (i-- > 0) {
				pthread_mutex_destroy(&t->shards[i].lock);
				shard_release(&t->shards[i]);
			}
			free(t->shards);
			free(t);
			return NULL;
		}
	}
	return t;
}

void stick_hold(struct stick_table *t)
{
	atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
}

void stick_free(struct stick_table *t)
{
	if (!t || atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (unsigned i = 0; i < t->nshards; i++) {
		pthread_mutex_destroy(&t->shards[i].lock);
		shard_release(&t->shards[i]);
	}
	free(t->shards);
	sodium_memzero(t->sipkey, sizeof(t->sipkey));
	free(t);
}

/* ---- operations ------------------------------------------------------------- */

int stick_lookup(struct stick_table *t, const void *key, size_t klen,
		 uint64_t now_ms, uint32_t *srv)
{
	return stick_lookup_times(t, key, klen, now_ms, srv, NULL, NULL);
}

int stick_lookup_times(struct stick_table *t, const void *key, size_t klen, uint64_t now_ms,
		       uint32_t *srv, uint64_t *idle_ms, uint64_t *age_ms)
{
	uint64_t h;
	struct stick_shard *s;
	uint32_t ref, *link, nowo;
	int hit = 0;

	if (klen > STICK_KEY_MAX)
		return 0;
	h = khash(t, key, klen);
	s = shard_of(t, h);
	pthread_mutex_lock(&s->lock);
	nowo = now_off(s, now_ms);
	ref = chain_find(s, h, key, klen, &link);
	if (ref != NIL) {
		struct stick_entry *e = ent(s, ref);

		if (is_expired(t, e, nowo)) {
			remove_entry(t, s, ref, link);
			s->expired++;
		} else {
			if (idle_ms)
				*idle_ms = nowo > e->atime ? nowo - e->atime : 0;
			if (age_ms)
				*age_ms = nowo > e->ctime ? nowo - e->ctime : 0;
			if (nowo > e->atime)
				e->atime = nowo;
			if (s->head != ref) {
				lru_unlink(s, e);
				lru_push_head(s, ref, e);
			}
			*srv = e->srv;
			hit = 1;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return hit;
}

/*
 * Insert or update under the shard lock, with explicit times (offsets):
 * shared by stick_store (atime = ctime = now) and the state-file loader.
 */
static int store_locked(struct stick_table *t, struct stick_shard *s,
			uint64_t h, const void *key, size_t klen, uint32_t srv,
			uint32_t atime, uint32_t ctime)
{
	uint32_t ref = chain_find(s, h, key, klen, NULL);
	struct stick_entry *e;
	uint32_t *l;

	if (ref != NIL) {
		e = ent(s, ref);
		if (e->srv != srv) {
			if (srv_inc(s, srv) < 0)
				return -1;
			srv_dec(s, e->srv);
			e->srv = srv;
			e->ctime = ctime;
		}
		if (atime > e->atime)
			e->atime = atime;
		if (s->head != ref) {
			lru_unlink(s, e);
			lru_push_head(s, ref, e);
		}
		return 0;
	}
	if (srv_inc(s, srv) < 0)
		return -1;
	if (s->count >= atomic_load_explicit(&t->shard_cap, memory_order_relaxed) &&
	    s->tail != NIL) {
		/* Full: the least recently used entry makes room. */
		remove_entry(t, s, s->tail, NULL);
		s->evicted++;
	}
	ref = slot_alloc(s, cls_for(klen));
	if (ref == NIL) {
		srv_dec(s, srv);
		return -1;
	}
	e = ent(s, ref);
	e->srv = srv;
	e->atime = atime;
	e->ctime = ctime;
	e->klen = (uint8_t)klen;
	e->tag = tag_of(h);
	if (klen)
		memcpy(e->key, key, klen);
	l = &s->buckets[(uint32_t)h & s->mask];
	e->hnext = *l;
	*l = ref;
	lru_push_head(s, ref, e);
	s->count++;
	atomic_store_explicit(&s->acount, s->count, memory_order_relaxed);
	/* Load factor 1.5: ~3.4 bytes of bucket an entry, short chains. */
	if (s->count > s->mask + 1 + (s->mask + 1) / 2)
		grow(t, s);
	return 0;
}

int stick_store(struct stick_table *t, const void *key, size_t klen,
		uint32_t srv, uint64_t now_ms)
{
	uint64_t h;
	struct stick_shard *s;
	uint32_t nowo;
	int rc;

	if (klen > STICK_KEY_MAX)
		return -1;
	h = khash(t, key, klen);
	s = shard_of(t, h);
	pthread_mutex_lock(&s->lock);
	nowo = now_off(s, now_ms);
	rc = store_locked(t, s, h, key, klen, srv, nowo, nowo);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int stick_delete(struct stick_table *t, const void *key, size_t klen)
{
	uint64_t h;
	struct stick_shard *s;
	uint32_t ref, *link;

	if (klen > STICK_KEY_MAX)
		return 0;
	h = khash(t, key, klen);
	s = shard_of(t, h);
	pthread_mutex_lock(&s->lock);
	ref = chain_find(s, h, key, klen, &link);
	if (ref != NIL)
		remove_entry(t, s, ref, link);
	pthread_mutex_unlock(&s->lock);
	return ref != NIL;
}

size_t stick_clear_server(struct stick_table *t, uint32_t srv)
{
	size_t n = 0;

	for (unsigned i = 0; i < t->nshards; i++) {
		struct stick_shard *s = &t->shards[i];

		pthread_mutex_lock(&s->lock);
		for (uint32_t r = s->head; r != NIL;) {
			struct stick_entry *e = ent(s, r);
			uint32_t next = e->next;

			if (e->srv == srv) {
				remove_entry(t, s, r, NULL);
				n++;
			}
			r = next;
		}
		pthread_mutex_unlock(&s->lock);
	}
	return n;
}

void stick_clear(struct stick_table *t)
{
	for (unsigned i = 0; i < t->nshards; i++) {
		struct stick_shard *s = &t->shards[i];
		uint32_t *b = malloc(MIN_BUCKETS * sizeof(*b));

		pthread_mutex_lock(&s->lock);
		for (unsigned c = 0; c < NCLASS; c++) {
			struct stick_class *k = &s->cls[c];

			for (uint32_t j = 0; j < k->nchunks; j++)
				free(k->chunks[j]);
			free(k->chunks);
			k->chunks = NULL;
			k->nchunks = k->chunks_cap = k->used = 0;
			k->free_head = NIL;
		}
		if (b) {
			free(s->buckets);
			s->buckets = b;
			s->mask = MIN_BUCKETS - 1;
		}
		memset(s->buckets, 0xff, (s->mask + 1) * sizeof(*s->buckets));
		if (s->srv_count)
			memset(s->srv_count, 0,
			       s->srv_cap * sizeof(*s->srv_count));
		s->head = s->tail = NIL;
		s->count = 0;
		atomic_store_explicit(&s->acount, 0, memory_order_relaxed);
		atomic_store_explicit(&s->deadline, 0, memory_order_relaxed);
		pthread_mutex_unlock(&s->lock);
	}
}

void stick_set_limits(struct stick_table *t, uint32_t max_entries, uint32_t expire_ms)
{
	uint32_t cap;

	if (max_entries == 0)
		max_entries = STICK_DEFAULT_SIZE;
	cap = (uint32_t)(((uint64_t)max_entries + t->nshards - 1) / t->nshards);
	atomic_store_explicit(&t->shard_cap, cap, memory_order_relaxed);
	atomic_store_explicit(&t->expire_ms, expire_ms, memory_order_relaxed);
	for (unsigned i = 0; i < t->nshards; i++) {
		struct stick_shard *s = &t->shards[i];

		pthread_mutex_lock(&s->lock);
		/* a smaller bound applies at once, least recently used first */
		while (s->count > cap && s->tail != NIL) {
			remove_entry(t, s, s->tail, NULL);
			s->evicted++;
		}
		/* deadlines computed under the old expiry may be too late */
		atomic_store_explicit(&s->deadline, 0, memory_order_relaxed);
		pthread_mutex_unlock(&s->lock);
	}
}

size_t stick_expire(struct stick_table *t, uint64_t now_ms, unsigned budget)
{
	uint32_t expire_ms = expire_of(t);
	size_t removed = 0;
	unsigned examined = 0, i, start;

	if (!expire_ms || budget == 0)
		return 0;
	start = atomic_load_explicit(&t->expire_cursor, memory_order_relaxed);
	for (i = 0; i < t->nshards && examined < budget; i++) {
		struct stick_shard *s = &t->shards[(start + i) & (t->nshards - 1)];
		uint32_t nowo;

		/* The tail is the oldest entry and entries only get newer as
		 * it is popped or touched: before its deadline there is
		 * nothing to do, and we need not even take the lock. */
		if (now_ms < atomic_load_explicit(&s->deadline,
						  memory_order_relaxed))
			continue;
		examined++;
		/* Background work never waits for the request path. */
		if (pthread_mutex_trylock(&s->lock) != 0)
			continue;
		nowo = now_off(s, now_ms);
		while (s->tail != NIL && examined < budget &&
		       is_expired(t, ent(s, s->tail), nowo)) {
			remove_entry(t, s, s->tail, NULL);
			s->expired++;
			removed++;
			examined++;
		}
		if (s->tail == NIL)
			/* Anything stored from now on is at least this new. */
			atomic_store_explicit(&s->deadline,
					      now_ms + expire_ms,
					      memory_order_relaxed);
		else if (!is_expired(t, ent(s, s->tail), nowo)) {
			int64_t d = s->base + ent(s, s->tail)->atime + expire_ms;

			/* 0: look again at once (a deadline before the clock's
			 * origin has passed already) */
			atomic_store_explicit(&s->deadline, d > 0 ? (uint64_t)d : 0,
					      memory_order_relaxed);
		}
		pthread_mutex_unlock(&s->lock);
	}
	atomic_store_explicit(&t->expire_cursor, start + i,
			      memory_order_relaxed);
	return removed;
}

size_t stick_count(const struct stick_table *t)
{
	size_t n = 0;

	for (unsigned i = 0; i < t->nshards; i++)
		n += atomic_load_explicit(&t->shards[i].acount,
					  memory_order_relaxed);
	return n;
}

size_t stick_count_server(struct stick_table *t, uint32_t srv)
{
	size_t n = 0;

	for (unsigned i = 0; i < t->nshards; i++) {
		struct stick_shard *s = &t->shards[i];

		pthread_mutex_lock(&s->lock);
		if (srv < STICK_SRV_COUNTED) {
			if (srv < s->srv_cap)
				n += s->srv_count[srv];
		} else {
			for (uint32_t r = s->head; r != NIL; r = ent(s, r)->next)
				n += ent(s, r)->srv == srv;
		}
		pthread_mutex_unlock(&s->lock);
	}
	return n;
}

void stick_stats(struct stick_table *t, struct stick_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->bytes = sizeof(*t) + t->nshards * sizeof(struct stick_shard);
	for (unsigned i = 0; i < t->nshards; i++) {
		struct stick_shard *s = &t->shards[i];

		pthread_mutex_lock(&s->lock);
		out->entries += s->count;
		out->expired += s->expired;
		out->evicted += s->evicted;
		out->bytes += (uint64_t)(s->mask + 1) * sizeof(uint32_t) +
			s->srv_cap * sizeof(uint32_t);
		for (unsigned c = 0; c < NCLASS; c++)
			out->bytes += (uint64_t)s->cls[c].nchunks *
				CHUNK_SLOTS * s->cls[c].slot_size +
				s->cls[c].chunks_cap * sizeof(uint8_t *);
		pthread_mutex_unlock(&s->lock);
	}
}

void stick_foreach(struct stick_table *t, uint64_t now_ms,
		   stick_foreach_fn cb, void *arg)
{
	int stop = 0;

	for (unsigned i = 0; i < t->nshards && !stop; i++) {
		struct stick_shard *s = &t->shards[i];
		uint32_t nowo;

		pthread_mutex_lock(&s->lock);
		nowo = now_off(s, now_ms);
		for (uint32_t r = s->tail; r != NIL && !stop;) {
			struct stick_entry *e = ent(s, r);

			if (!is_expired(t, e, nowo))
				stop = cb(arg, e->key, e->klen, e->srv,
					  idle_of(e, nowo),
					  nowo > e->ctime ? nowo - e->ctime : 0);
			r = e->prev;
		}
		pthread_mutex_unlock(&s->lock);
	}
}

/* ---- state file ----------------------------------------------------------------- */

static const uint8_t STATE_MAGIC[8] = { 'b', 'o', 'l', 'l', 's', 't', 'k', '\n' };
#define STATE_VERSION   1u
#define STATE_CHUNK_MAX (64u * 1024)
#define STATE_REC_FIXED (1 + 4 + 4 + 8)	/* klen, srv, idle, age */
#define DIGEST_LEN      16

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}





/* digest = BLAKE2b-128(prev || a || b): the chain that ties a block's
 * chunks together and to its header. */
static void chain(uint8_t digest[DIGEST_LEN], const uint8_t *a, size_t alen,
		  const uint8_t *b, size_t blen)
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, DIGEST_LEN);
	crypto_generichash_update(&st, digest, DIGEST_LEN);
	crypto_generichash_update(&st, a, alen);
	if (blen)
		crypto_generichash_update(&st, b, blen);
	crypto_generichash_final(&st, digest, DIGEST_LEN);
}

/* One shard's snapshot is built in a struct bytebuf (bytes.h). */
static uint8_t *sbuf_room(struct bytebuf *b, size_t n)
{
	return bytebuf_room(b, n, 64 * 1024);
}

static int write_chunk(FILE *f, uint8_t digest[DIGEST_LEN],
		       const uint8_t *payload, uint32_t len, uint32_t nrec)
{
	uint8_t hdr[8];

	put32(hdr, len);
	put32(hdr + 4, nrec);
	chain(digest, hdr, sizeof(hdr), payload, len);
	if (fwrite(hdr, sizeof(hdr), 1, f) != 1 ||
	    (len && fwrite(payload, len, 1, f) != 1) ||
	    fwrite(digest, DIGEST_LEN, 1, f) != 1)
		return -1;
	return 0;
}

/* Write buf's records as chunks of at most STATE_CHUNK_MAX bytes. */
static int write_records(FILE *f, uint8_t digest[DIGEST_LEN],
			 const struct bytebuf *b)
{
	size_t off = 0;

	while (off < b->len) {
		size_t start = off;
		uint32_t n = 0;

		while (off < b->len) {
			size_t rl = STATE_REC_FIXED + b->p[off];

			if (off - start + rl > STATE_CHUNK_MAX)
				break;
			off += rl;
			n++;
		}
		if (write_chunk(f, digest, b->p + start,
				(uint32_t)(off - start), n) < 0)
			return -1;
	}
	return 0;
}

int stick_save(struct stick_table *t, FILE *f, const char *name,
	       uint64_t now_ms, char *err, size_t errlen)
{
	uint8_t hdr[8 + 4 + 4 + 1 + STICK_KEY_MAX + 4], *p;
	uint8_t digest[DIGEST_LEN] = { 0 }, end[8];
	size_t nlen = name ? strlen(name) : 0;
	struct bytebuf b = { 0 };
	uint64_t total = 0;

	if (nlen > STICK_KEY_MAX)
		return fail(err, errlen, "table name longer than %d bytes",
			    STICK_KEY_MAX);
	p = hdr;
	memcpy(p, STATE_MAGIC, 8);
	put32(p + 8, STATE_VERSION);
	put32(p + 12, 0);
	p[16] = (uint8_t)nlen;
	p += 17;
	if (nlen)
		memcpy(p, name, nlen);
	p += nlen;
	put32(p, expire_of(t));
	p += 4;
	chain(digest, hdr, (size_t)(p - hdr), NULL, 0);
	if (fwrite(hdr, (size_t)(p - hdr), 1, f) != 1 ||
	    fwrite(digest, DIGEST_LEN, 1, f) != 1)
		return fail(err, errlen, "write: %s", strerror(errno));

	/* Snapshot one shard at a time into memory, then write it with the
	 * lock released: a slow disk must not stall the request path. */
	for (unsigned i = 0; i < t->nshards; i++) {
		struct stick_shard *s = &t->shards[i];
		uint32_t nowo;

		b.len = 0;
		pthread_mutex_lock(&s->lock);
		nowo = now_off(s, now_ms);
		/* Oldest first: the loader pushes each at the LRU head, so
		 * the order within a shard survives. */
		for (uint32_t r = s->tail; r != NIL; r = ent(s, r)->prev) {
			struct stick_entry *e = ent(s, r);
			uint32_t idle = idle_of(e, nowo);
			uint8_t *q;

			if (is_expired(t, e, nowo))
				continue;
			q = sbuf_room(&b, STATE_REC_FIXED + e->klen);
			if (!q)
				break;
			q[0] = e->klen;
			memcpy(q + 1, e->key, e->klen);
			q += 1 + e->klen;
			put32(q, e->srv);
			put32(q + 4, idle);
			put64(q + 8, nowo > e->ctime ? nowo - e->ctime : 0);
			total++;
		}
		pthread_mutex_unlock(&s->lock);
		if (b.oom) {
			free(b.p);
			return fail(err, errlen, "out of memory");
		}
		if (write_records(f, digest, &b) < 0) {
			free(b.p);
			return fail(err, errlen, "write: %s", strerror(errno));
		}
	}
	free(b.p);
	/* End marker: an empty chunk, then the total, chained. */
	put32(end, 0);
	put32(end + 4, 0);
	{
		uint8_t tot[8];

		put64(tot, total);
		chain(digest, end, sizeof(end), tot, sizeof(tot));
		if (fwrite(end, sizeof(end), 1, f) != 1 ||
		    fwrite(tot, sizeof(tot), 1, f) != 1 ||
		    fwrite(digest, DIGEST_LEN, 1, f) != 1)
			return fail(err, errlen, "write: %s", strerror(errno));
	}
	if (ferror(f))
		return fail(err, errlen, "write error");
	return 0;
}

/* Read exactly n bytes; a short read is a truncated file. */
static int read_all(FILE *f, void *p, size_t n)
{
	return n == 0 || fread(p, n, 1, f) == 1 ? 0 : -1;
}

int stick_load_header(FILE *f, struct stick_block *b, char *err,
		      size_t errlen)
{
	uint8_t hdr[8 + 4 + 4 + 1 + STICK_KEY_MAX + 4], got[DIGEST_LEN];
	size_t nlen;
	int c;

	memset(b, 0, sizeof(*b));
	c = getc(f);
	if (c == EOF)
		return ferror(f) ? fail(err, errlen, "read error") : 0;
	hdr[0] = (uint8_t)c;
	if (read_all(f, hdr + 1, 16))
		return fail(err, errlen, "truncated state file (header)");
	if (memcmp(hdr, STATE_MAGIC, 8) != 0)
		return fail(err, errlen, "not a bollard state file (bad magic)");
	b->version = get32(hdr + 8);
	if (b->version != STATE_VERSION)
		return fail(err, errlen,
			    "unsupported state file version %u (expected %u)",
			    b->version, STATE_VERSION);
	nlen = hdr[16];
	if (read_all(f, hdr + 17, nlen + 4) || read_all(f, got, DIGEST_LEN))
		return fail(err, errlen, "truncated state file (header)");
	chain(b->digest, hdr, 17 + nlen + 4, NULL, 0);
	if (sodium_memcmp(b->digest, got, DIGEST_LEN) != 0)
		return fail(err, errlen, "corrupt state file (header checksum)");
	memcpy(b->name, hdr + 17, nlen);
	b->name[nlen] = '\0';
	b->expire_ms = get32(hdr + 17 + nlen);
	return 1;
}

/* Insert one loaded record with times relative to now. idle and age may
 * exceed now_ms (entries older than the boot): they are kept as they are,
 * never clamped to the clock's origin. */
static int load_record(struct stick_table *t, const uint8_t *key, size_t klen,
		       uint32_t srv, uint64_t idle, uint64_t age,
		       uint64_t now_ms)
{
	uint64_t h = khash(t, key, klen);
	struct stick_shard *s = shard_of(t, h);
	uint32_t nowo, at, ct;
	int rc;

	/* Beyond TIME_KEEP abs_off() clamps anyway: the bound keeps the
	 * subtraction below in range. */
	idle = MIN(idle, (uint64_t)TIME_REBASE);
	age = MIN(age, (uint64_t)TIME_REBASE);
	pthread_mutex_lock(&s->lock);
	nowo = now_off(s, now_ms);
	at = abs_off(s, (int64_t)now_ms - (int64_t)idle, nowo);
	ct = abs_off(s, (int64_t)now_ms - (int64_t)age, nowo);
	rc = store_locked(t, s, h, key, klen, srv, at, ct);
	/* Old entries were pushed at the head: the tail may no longer be
	 * the oldest, so stick_expire must look again. */
	atomic_store_explicit(&s->deadline, 0, memory_order_relaxed);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static int load_body(struct stick_table *t, FILE *f, struct stick_block *b,
		     uint64_t now_ms, stick_map_fn map_srv, void *arg,
		     char *err, size_t errlen, uint8_t *buf)
{
	uint64_t total = 0;
	int loaded = 0;

	for (;;) {
		uint8_t hdr[8], got[DIGEST_LEN];
		uint32_t len, nrec;
		size_t off = 0;

		if (read_all(f, hdr, sizeof(hdr)))
			return fail(err, errlen, "truncated state file");
		len = get32(hdr);
		nrec = get32(hdr + 4);
		if (len == 0 && nrec == 0) {
			uint8_t tot[8];

			if (read_all(f, tot, sizeof(tot)) ||
			    read_all(f, got, DIGEST_LEN))
				return fail(err, errlen,
					    "truncated state file (end)");
			chain(b->digest, hdr, sizeof(hdr), tot, sizeof(tot));
			if (sodium_memcmp(b->digest, got, DIGEST_LEN) != 0)
				return fail(err, errlen,
					    "corrupt state file (checksum)");
			if (get64(tot) != total)
				return fail(err, errlen,
					    "corrupt state file (record count)");
			return loaded;
		}
		if (len > STATE_CHUNK_MAX || len == 0)
			return fail(err, errlen,
				    "corrupt state file (chunk length %u)", len);
		if (read_all(f, buf, len) || read_all(f, got, DIGEST_LEN))
			return fail(err, errlen, "truncated state file");
		chain(b->digest, hdr, sizeof(hdr), buf, len);
		/* Verify before parsing: nothing unverified reaches the
		 * table or the parser below. */
		if (sodium_memcmp(b->digest, got, DIGEST_LEN) != 0)
			return fail(err, errlen, "corrupt state file (checksum)");
		for (uint32_t i = 0; i < nrec; i++) {
			size_t klen;
			uint32_t srv;
			uint64_t idle, age;
			const uint8_t *k;
			int nsrv;

			if (off >= len || len - off < STATE_REC_FIXED ||
			    len - off < STATE_REC_FIXED + (size_t)buf[off])
				return fail(err, errlen,
					    "corrupt state file (record)");
			klen = buf[off];
			k = buf + off + 1;
			srv = get32(k + klen);
			/* the time the entry spent outside any table (a
			 * stopped bollard) is idle time and age too */
			idle = (uint64_t)get32(k + klen + 4) + b->downtime_ms;
			age = get64(k + klen + 8);
			age = age > UINT64_MAX - b->downtime_ms ? UINT64_MAX
				: age + b->downtime_ms;
			off += STATE_REC_FIXED + klen;
			total++;
			if (!t)
				continue;
			nsrv = map_srv ? map_srv(arg, srv) : (int)srv;
			if (nsrv < 0)
				continue;	/* server gone: drop */
			if (expire_of(t) && idle >= expire_of(t))
				continue;
			if (load_record(t, k, klen, (uint32_t)nsrv, idle, age,
					now_ms) < 0)
				return fail(err, errlen, "out of memory");
			loaded++;
		}
		if (off != len)
			return fail(err, errlen, "corrupt state file (record)");
	}
}

int stick_load_body(struct stick_table *t, FILE *f, struct stick_block *b,
		    uint64_t now_ms, stick_map_fn map_srv, void *arg,
		    char *err, size_t errlen)
{
	uint8_t *buf = malloc(STATE_CHUNK_MAX);
	int rc;

	if (!buf)
		return fail(err, errlen, "out of memory");
	rc = load_body(t, f, b, now_ms, map_srv, arg, err, errlen, buf);
	free(buf);
	if (rc < 0 && t)
		stick_clear(t);
	return rc;
}

int stick_load(struct stick_table *t, FILE *f, uint64_t now_ms,
	       stick_map_fn map_srv, void *arg, char *err, size_t errlen)
{
	struct stick_block b;
	int rc = stick_load_header(f, &b, err, errlen);

	if (rc == 0)
		return fail(err, errlen, "empty state file");
	if (rc < 0)
		return -1;
	return stick_load_body(t, f, &b, now_ms, map_srv, arg, err, errlen);
}
