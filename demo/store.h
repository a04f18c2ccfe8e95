/*
 * store.h - where the demo app keeps its sessions (SPEC 14): one interface,
 * one module per kind of store, chosen at start by --store.
 *
 *   memory           this process's memory (store_memory.c), optionally
 *                    copied to a peer (--replicate-to, replica.c)
 *   redis://         a Redis server (store_redis.c, hiredis)
 *   memcached://     a Memcached server (store_memcached.c, libmemcached)
 *   postgresql://    a PostgreSQL table (store_pg.c, libpq)
 *   jwt              nothing on the server: the session is the cookie, an
 *                    HS256-signed token (store_jwt.c, libsodium)
 *
 * A module answers get/put/delete of one session by id with a TTL. Calls
 * are made by the worker threads, each with its own handle (its own
 * connection to the store, opened lazily), and block that thread for at
 * most --store-timeout: the demo app behaves like the thread-per-request
 * application servers it stands for, and a store that is down costs a
 * bounded wait and a 503, never a hang. store.c holds what every module
 * shares: choosing the module, the handle per thread, failure logging and
 * back-off, session ids, and the value encoding of the remote stores.
 */
#ifndef DEMO_STORE_H
#define DEMO_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SESSION_ID_LEN    32   /* hex characters of a session id */
#define SESSION_CART_MAX  16   /* items remembered per cart (the rest counted) */
#define SESSION_ITEM_MAX  64   /* bytes of one item name */

/* Encoded session (store_encode): a header plus every item with each byte
 * possibly percent-encoded. */
#define STORE_VALUE_MAX   (64 + SESSION_CART_MAX * (3 * SESSION_ITEM_MAX + 1))
/* Largest cookie value a store may ask for (RFC 6265 6.1: user agents
 * keep at least 4096 bytes per cookie, name and attributes included). */
#define STORE_TOKEN_MAX   3800
#define STORE_ERR_MAX     200

struct store_session {
	char id[SESSION_ID_LEN + 1];
	uint64_t visits;
	uint64_t cart_total;           /* items ever added */
	unsigned ncart;                /* items in cart[] */
	char cart[SESSION_CART_MAX][SESSION_ITEM_MAX + 1];
};

/* What went wrong in a store call, for the log line and the 503 body. */
struct store_err {
	char msg[STORE_ERR_MAX];
};

/* One kind of store. Every call but configure gets the calling thread's
 * handle. get/put/del return 0 on success (get: 1 found, 0 not found) and
 * -1 when the store failed, with e filled; the caller then resets the
 * handle (the module closes its connection) and answers 503. */
struct store_ops {
	const char *name;
	/* Parse the --store value once, before the threads; NULL or an error. */
	const char *(*configure)(const char *spec);
	/* A new handle for one thread, or NULL when out of memory. */
	void *(*open)(void);
	/* The session whose cookie value is key[0..len): for the server-side
	 * stores an id, for jwt the token itself. */
	int (*get)(void *h, const char *key, size_t len, struct store_session *out,
		   struct store_err *e);
	/* Store s for ttl_s seconds. A client-side store writes the cookie
	 * value to tok[0..*toklen) (at most STORE_TOKEN_MAX bytes); the
	 * others leave *toklen at 0. */
	int (*put)(void *h, const struct store_session *s, unsigned ttl_s,
		   char *tok, size_t *toklen, struct store_err *e);
	int (*del)(void *h, const char *id, struct store_err *e);
	/* Forget the connection after a failure; the next call reconnects. */
	void (*reset)(void *h);
	/* Sessions held, when the store can tell cheaply; -1 otherwise. */
	int64_t (*count)(void);
};

extern const struct store_ops store_memory_ops, store_redis_ops,
	store_memcached_ops, store_pg_ops, store_jwt_ops;

/* Options of the store layer, set by main.c before store_configure(). */
struct store_config {
	const char *spec;              /* --store value (default "memory") */
	unsigned ttl_s;                /* --session-ttl */
	unsigned timeout_ms;           /* --store-timeout: bound of one call */
	const char *key_file;          /* --key-file (jwt) */
	const char *replicate_to;      /* --replicate-to HOST:PORT (memory) */
};

extern struct store_config store_cfg;

/* Choose and configure the module named by store_cfg.spec. Returns NULL,
 * or an error message for the command line (exit 2). */
const char *store_configure(void);
/* The chosen module's name ("memory", "redis", ...). */
const char *store_name(void);
/* True when sessions travel in the cookie (jwt). */
bool store_client_side(void);

/* Store calls from worker thread slot (0..threads-1). Same returns as the
 * module's, after back-off (a thread whose store failed answers -1 at once
 * for a short while instead of waiting on a dead store again), a log line
 * when the store goes down or comes back, and the error counters. */
int store_get(int slot, const char *key, size_t len, struct store_session *out,
	      struct store_err *e);
int store_put(int slot, const struct store_session *s, char *tok, size_t *toklen,
	      struct store_err *e);
int store_del(int slot, const char *id, struct store_err *e);
/* Allocate the per-thread handles (threads slots). Returns 0 or -1. */
int store_threads(int threads);

/* A new random session id (32 hex characters and a NUL). Returns 0, or
 * -1 when no random bytes could be drawn. */
int store_new_id(char id[SESSION_ID_LEN + 1]);
/* True when id[0..len) has the shape of a session id (32 lower-case hex). */
bool store_id_valid(const char *id, size_t len);

/* The value the remote stores keep: ASCII, "1 VISITS TOTAL ITEM ...", each
 * item percent-encoded so it holds no space. Returns the length written to
 * out (at most STORE_VALUE_MAX, then a NUL). */
size_t store_encode(const struct store_session *s, char *out);
/* Parse a value of store_encode into *s (whose id is kept). Returns 0, or
 * -1 when v[0..n) is not such a value. */
int store_decode(const char *v, size_t n, struct store_session *s);

/* Counters for /stats (relaxed atomics, any thread); store_count is the
 * module's count (-1: it cannot tell). */
int64_t store_count(void);
uint64_t store_errors(void);
uint64_t store_refused(void);
/* A token (or replica write) was refused: count it. */
void store_count_refused(void);

/* Format a failure into e; returns -1 for "return store_fail(e, ...)". */
int store_fail(struct store_err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Log one line on stderr, prefixed with the app's name. */
void store_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Split "scheme://HOST:PORT[/rest]" after the scheme: host (at most
 * hostcap bytes), port (dflt when absent), and *rest (after the port, ""
 * when none). Returns 0 or -1. */
int store_hostport(const char *s, char *host, size_t hostcap, int *port, int dflt,
		   const char **rest);
/* The monotonic clock, in ms. */
uint64_t store_now_ms(void);

/* store_memory.c: the replica side of --replicate-to. Stores s (sent by
 * the peer whose replica this process is) without replicating it further;
 * ttl_s 0 deletes it. Returns 0, or -1 when this process does not keep
 * sessions in memory. */
int store_memory_accept_replica(const struct store_session *s, unsigned ttl_s);

/* replica.c: copy sessions to the peer, asynchronously (a thread of its
 * own sends them, pipelined, so no worker waits on the peer and two apps
 * replicating to each other cannot deadlock). */
const char *replica_configure(const char *peer);
/* Queue a copy of s (ttl_s 0: its deletion); a full queue drops it and
 * counts the drop. */
void replica_send(const struct store_session *s, unsigned ttl_s);
uint64_t replica_sent(void);
uint64_t replica_dropped(void);

#endif
