/*
 * shared_link.h - one asynchronous Redis link per worker event loop, for the
 * persistence tables shared between bollard instances (SPEC 13,
 * doc/scale-out.md).
 *
 * The link is driven by the loop that owns it through three callbacks (watch
 * an fd, one timer, a log line), so it depends on no particular loop. It
 * never blocks: a lookup either returns an error at once or its callback
 * fires exactly once later, by its deadline at the latest; writes are queued
 * (bounded), batched per loop iteration and replayed after a reconnect.
 *
 * Not thread-safe: a link belongs to the thread of its loop. Its counters
 * (struct shared_link_stats) are atomics that any thread may read.
 */
#ifndef BOLLARD_SHARED_LINK_H
#define BOLLARD_SHARED_LINK_H

#include "api.h"
#include <stdatomic.h>

#define SHARED_NO_TIMER UINT64_MAX
#define SHARED_EV_READ  1u
#define SHARED_EV_WRITE 2u

/* Longest encoded key (prefix + table + ':' + key) and value. */
#define SHARED_KEY_MAX 256
#define SHARED_VAL_MAX 128

struct shared_link;

/* What a loop offers the link. Times are CLOCK_MONOTONIC milliseconds (the
 * clock of ev_now_ms()). */
struct shared_link_loop {
	void *ctx;
	/* Watch fd for the SHARED_EV_* bits in events, level-triggered (hiredis
	 * reads at most 16 KB per call, so an edge could be lost); 0: stop
	 * watching (the fd is about to be closed). Called only on a change.
	 * Returns 0, or -1 (the link then drops the connection). */
	int (*io)(void *ctx, struct shared_link *l, int fd, unsigned events);
	/* Call shared_link_on_timer(l) once now >= when; SHARED_NO_TIMER
	 * disarms. One timer per link: each call replaces the last. */
	void (*timer)(void *ctx, struct shared_link *l, uint64_t when);
	/* One line for the error log (a transition of the link); level as enum
	 * log_level (0 error, 1 warning, 2 info). May be NULL. */
	void (*log)(void *ctx, int level, const char *msg);
	/* A refresh of table's key found it cleared fleet-wide (`clear
	 * sessions` on some instance): drop the local entry. May be NULL. */
	void (*cleared)(void *ctx, const char *table, size_t tlen, const void *key, size_t klen);
	/* The links of one process share one spell of error replies, so that
	 * it is logged once whichever link (worker) meets it, and ended by any
	 * link's answer without error REFUSE_QUIET_MS after the last refusal
	 * anywhere. NULL: the link keeps its own. */
	struct shared_spell *spell;
	/* Log no transition of the link (up, down): another link of the same
	 * Redis says them (the spell's lines still go to log). */
	bool quiet;
};

/* Error replies with the link up (answered() in shared_link.c). */
struct shared_spell {
	atomic_bool open;
	_Atomic uint64_t refused_at, refusals;
};

struct shared_link_conf {
	const char *host;          /* an IP literal: no DNS on a worker */
	int port;
	int db;                    /* SELECT when > 0 */
	const char *prefix;        /* of every key, e.g. "bollard:" */
	const char *password_file; /* first line is the AUTH password; NULL: none */
	uint32_t timeout_ms;       /* default deadline of a request (20) */
	uint32_t connect_timeout_ms; /* TCP connect + AUTH/SELECT/PING (1000) */
	uint32_t backoff_min_ms, backoff_max_ms; /* reconnect delays (100, 5000) */
	uint32_t stall_ms;         /* no reply for this long while waiting: drop (1000) */
	uint32_t refresh_ms;       /* at most one SET of the same key+value per (1000) */
	uint32_t queue;            /* pending writes kept while down (1024; rounded up
				    * to a power of two) */
	uint32_t slots;            /* requests waiting for an answer (256) */
	uint64_t seed;             /* jitter and rate-limit hashing; 0: random */
	/* Sentinel discovery (shared_sentinel.c): with nsentinels > 0, host and
	 * port are only a first guess; before each connect the sentinels are
	 * asked where the master called master is. Each "IP:PORT" or
	 * "[IPv6]:PORT"; the link keeps its own copies. host may then be NULL. */
#define SHARED_SENTINELS_MAX 8
	const char *sentinels[SHARED_SENTINELS_MAX];
	int nsentinels;
	const char *master;
};

/* SCAN: the runtime API's walk of a table in Redis (shared.c, from the
 * control thread, never a link's); counted with the links' operations. */
enum shared_op { SHARED_OP_GET, SHARED_OP_SETNX, SHARED_OP_CAS, SHARED_OP_SET, SHARED_OP_DEL,
		 SHARED_OP_SCAN, SHARED_OP_N };

/* Results of requests (callbacks) and of writes (counters only). */
enum shared_result {
	SHARED_HIT,     /* get: the value */
	SHARED_MISS,    /* get: no such key */
	SHARED_WON,     /* setnx, cas: our value is stored */
	SHARED_LOST,    /* setnx, cas: another value was there; it is the value given */
	SHARED_OK,      /* set, del: acknowledged */
	SHARED_ERROR,   /* Redis answered with an error */
	SHARED_TIMEOUT, /* no answer by the deadline */
	SHARED_DOWN,    /* the link is or went down before an answer */
	SHARED_BUSY,    /* every request slot is waiting */
	SHARED_DROPPED, /* set, del: the pending-write queue was full */
	SHARED_LIMITED, /* set: same key and value written less than refresh_ms ago */
	SHARED_RES_N
};

/* Negative returns of the request functions: the callback will not fire. */
#define SHARED_EDOWN  (-1)
#define SHARED_EBUSY  (-2)
#define SHARED_EINVAL (-3)   /* key or value too long, table name with ':' */

/* Called once per accepted request; val/len (the value for HIT, the winner
 * for WON and LOST) are valid during the call only. Never called from
 * inside the request function itself. */
typedef void (*shared_link_cb)(void *arg, enum shared_result res, const char *val, size_t len);

#define SHARED_LAT_N 14
/* Upper bounds (µs) of the latency buckets; the last one is +Inf. */
extern const uint64_t shared_link_lat_bounds_us[SHARED_LAT_N];

struct shared_link_stats {
	_Atomic uint64_t ops[SHARED_OP_N][SHARED_RES_N];
	_Atomic uint64_t lat[SHARED_LAT_N];   /* per bucket, not cumulative */
	_Atomic uint64_t lat_sum_us;
	_Atomic uint64_t up;                  /* 0/1 */
	_Atomic uint64_t connects;            /* attempts */
	_Atomic uint64_t downs;               /* up -> down transitions */
	_Atomic uint64_t script_loads;        /* NOSCRIPT answered by EVAL */
	_Atomic uint64_t queued;              /* writes waiting (gauge) */
	/* Sentinel discovery (shared_sentinel.c) */
	_Atomic uint64_t sentinel_rounds;     /* times the sentinels were asked */
	_Atomic uint64_t sentinel_failures;   /* rounds no sentinel answered */
	_Atomic uint64_t master_switches;     /* the master's address changed */
	_Atomic uint64_t master_lost;         /* READONLY or ROLE: not a master, dropped */
};

/* Create a link (not yet connecting). Reads the password file. Returns the
 * link (owned by the caller, shared_link_free) or NULL with a message in err. */
struct shared_link *shared_link_create(const struct shared_link_conf *conf,
				       const struct shared_link_loop *loop,
				       char *err, size_t errlen);
/* A reload: take conf's delays; when the address, database, prefix or
 * password changed, drop the connection and reconnect at once, keeping the
 * queued writes (replayed to the new address). 0: kept, 1: re-opening,
 * -1: conf refused (err; the link is unchanged). */
int shared_link_reconfigure(struct shared_link *l, const struct shared_link_conf *conf,
			    char *err, size_t errlen);
/* Start connecting; later failures reconnect with backoff. */
void shared_link_start(struct shared_link *l);
/* Close and free; requests still waiting get SHARED_DOWN first. */
void shared_link_free(struct shared_link *l);

/* The loop's side: fd readiness (SHARED_EV_* bits) and the timer. */
void shared_link_on_io(struct shared_link *l, unsigned events);
void shared_link_on_timer(struct shared_link *l);

/* Requests. table: a name without ':'; key: any bytes. timeout_ms 0: the
 * link's. Return 0 (cb fires exactly once later) or SHARED_E*. */
int shared_link_get(struct shared_link *l, const char *table, const void *key, size_t klen,
		    uint32_t timeout_ms, shared_link_cb cb, void *arg);
/* First binding: the compare-and-set expecting nothing, a SET NX that also
 * replaces a clear's mark (shared_link_del). WON, or LOST with the value of
 * the instance that was first. */
int shared_link_setnx(struct shared_link *l, const char *table, const void *key, size_t klen,
		      const char *val, size_t vlen, uint32_t ttl_ms, uint32_t timeout_ms,
		      shared_link_cb cb, void *arg);
/* A move: store val if the key holds expect, nothing or a clear's mark (one
 * Lua script, EVALSHA then EVAL on NOSCRIPT). WON, or LOST with the value
 * stored. */
int shared_link_cas(struct shared_link *l, const char *table, const void *key, size_t klen,
		    const char *expect, size_t elen, const char *val, size_t vlen,
		    uint32_t ttl_ms, uint32_t timeout_ms, shared_link_cb cb, void *arg);

/* Write-behind (no answer): queued, sent once per loop iteration while up,
 * kept and replayed while down. SHARED_SET_NX writes only when absent.
 * Returns 0 (queued), 1 (rate-limited: not needed), SHARED_EINVAL, or
 * SHARED_EBUSY (queue full: dropped and counted). */
#define SHARED_SET_NX 1u
/* Store val unless the key holds another value: created when absent, its
 * TTL renewed when it holds val (a refresh that never overwrites a move
 * made by another instance). Rate-limited like a plain SET. On a clear's
 * mark: left alone, and loop.cleared is called with the table and key. */
#define SHARED_SET_KEEP 2u
int shared_link_set(struct shared_link *l, const char *table, const void *key, size_t klen,
		    const char *val, size_t vlen, uint32_t ttl_ms, unsigned flags);
/* A clear: the key, if present, becomes the mark (the empty value, its TTL
 * kept), which keep writes do not overwrite (see SHARED_SET_KEEP). */
int shared_link_del(struct shared_link *l, const char *table, const void *key, size_t klen);

bool shared_link_is_up(const struct shared_link *l);
const struct shared_link_stats *shared_link_stats(const struct shared_link *l);
const char *shared_link_op_name(enum shared_op op);
const char *shared_link_result_name(enum shared_result r);

/* The delay before reconnect attempt n (0: after the first failure):
 * min * 2^n capped at max, minus a jitter of up to half of it drawn from rnd
 * (so that the workers of a fleet do not reconnect in step), never below
 * min. Pure. */
uint32_t shared_link_backoff(uint32_t n, uint32_t min, uint32_t max, uint64_t rnd);

#endif
