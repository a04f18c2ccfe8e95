/*
 * shared.h - the persistence tables shared between bollard instances on
 * Redis (SPEC 13, doc/scale-out.md): the `shared-tables` configuration, the
 * link of the calling worker thread, and the links' counters summed for the
 * metrics and `show info`.
 *
 * Each worker thread owns one link (shared_link.c), created and driven by
 * its loop (shared_loop.c); persistence (persist.c) reaches it through
 * shared_here(), which is NULL on any other thread and when the keyword is
 * absent, so that the tables cost nothing more then.
 */
#ifndef BOLLARD_SHARED_H
#define BOLLARD_SHARED_H

#include "api.h"
#include "shared_link.h"

struct config;

#define SHARED_DEFAULT_PREFIX "bollard:"

/* `global shared-tables redis://HOST:PORT/DB [prefix P] [timeout D]
 * [password-file F] [sentinel HOST:PORT,... master NAME]`. link's strings
 * point into this struct (it is freed with free()). */
struct shared_conf {
	struct shared_link_conf link;
	char url[128];                /* as written, for show info */
	char host[64];
	char prefix[64];
	char password_file[256];
	char sentinel[SHARED_SENTINELS_MAX][64];
	char master[64];
	int line;
};

/* Parse the arguments of the keyword (argv[0] is "shared-tables") into a
 * new conf in *out (the caller frees it with free()). 0, or -1 with a
 * message in err. */
int shared_parse(int argc, char **argv, int line, struct shared_conf **out, char *err,
		 size_t errlen);

/* The link of the calling worker thread; NULL when there is none. */
extern _Thread_local struct shared_link *shared_tl;
static inline struct shared_link *shared_here(void)
{
	return shared_tl;
}

/* Links in use (shared_loop.c registers each one it creates and
 * unregisters it before freeing it), so that the control thread can read
 * their counters. */
void shared_register(struct shared_link *l);
void shared_unregister(struct shared_link *l);

/* The counters of every link, summed; links: how many, up: how many up. */
struct shared_totals {
	int links, up;
	uint64_t ops[SHARED_OP_N][SHARED_RES_N];
	uint64_t lat[SHARED_LAT_N];   /* per bucket, not cumulative */
	uint64_t lat_sum_us;
	uint64_t connects, downs, queued;
	uint64_t sentinel_rounds, sentinel_failures, master_switches, master_lost;
};
void shared_totals(struct shared_totals *t);

/* A DEL of key in table from a thread without a link (the runtime API's
 * `clear sessions`): kept (bounded) until a worker takes it onto its link.
 * 0, or -1 when dropped (no link, queue full: counted). */
int shared_post_del(const char *table, const void *key, size_t klen);
/* Workers: when shared_nposted is not 0, queue the posted DELs on l. */
extern _Atomic uint32_t shared_nposted;
void shared_take_posted(struct shared_link *l);
uint64_t shared_posted_dropped(void);

/*
 * The shared view of the runtime API (`show sessions`, `clear sessions`):
 * a blocking connection of the CONTROL thread (never a worker's), every
 * call bounded by what is left of SHARED_ADMIN_BUDGET_MS from the open
 * (doc/scale-out.md, "show and clear"). Each scan step is one short Lua
 * script around `SCAN cursor MATCH pattern COUNT 500`.
 */
#define SHARED_ADMIN_BUDGET_MS 1000
struct shared_admin;
/* Connect (through the sentinels when configured), AUTH, SELECT. NULL
 * with why set when Redis cannot be reached in the budget (counted as
 * op scan, result down or timeout). */
struct shared_admin *shared_admin_open(const struct shared_conf *sc, char *why, size_t whylen);
void shared_admin_close(struct shared_admin *a);
/* Why the last call failed. */
const char *shared_admin_why(const struct shared_admin *a);
/* key: the bytes after "PREFIX TABLE:" (as persist.c wrote them); val: the
 * server name held. Non-zero stops the walk. */
typedef int (*shared_admin_fn)(void *arg, const char *key, size_t klen, const char *val,
			       size_t vlen);
/* Walk the keys of table (those holding server only, unless NULL),
 * deleting them when del; *matched: how many were seen (deleted). 0 when
 * the walk ended (or fn stopped it), -1 (why) when Redis failed or the
 * budget ran out midway: *matched says how far it got. */
int shared_admin_scan(struct shared_admin *a, const char *prefix, const char *table,
		      const char *server, bool del, shared_admin_fn fn, void *arg,
		      uint64_t *matched);
/* The scans' results (the control thread has no link of its own). */
uint64_t shared_admin_ops(enum shared_result r);
/* s[0..n) with the glob metacharacters of SCAN MATCH (* ? [ ] \) escaped,
 * NUL-terminated in out; its length, or 0 when it does not fit in cap. Pure. */
size_t shared_glob_escape(const char *s, size_t n, char *out, size_t cap);

#endif
