/*
 * stick.h - persistence tables (SPEC §3.1, issue 3 items 7 and 8).
 *
 * A table maps a key of at most STICK_KEY_MAX bytes (a learned session
 * cookie value, a masked client address, a header value, a JWT claim) to a
 * server id and remembers when the entry was created and last used. Tables
 * are shared by every worker thread: they are split in shards, each with
 * its own lock, so there is no global lock. Keys come from clients, so they
 * are hashed with SipHash-2-4 under a random key (hash-flooding
 * resistance). Entries idle for longer than expire_ms are invisible to
 * lookups at once and reclaimed by a bounded background sweep
 * (stick_expire); a full shard evicts its least-recently-used entry.
 *
 * Times are caller-supplied monotonic milliseconds (now_ms): the table
 * never reads a clock, which keeps it deterministic under test.
 *
 * Server ids are opaque uint32_t values chosen by the caller (persist.c:
 * the server's sid, which a reload keeps by name). Counters per server are maintained
 * for ids below STICK_SRV_COUNTED; larger ids are counted by a scan.
 */
#ifndef BOLLARD_STICK_H
#define BOLLARD_STICK_H

#include "api.h"

#define STICK_KEY_MAX       255
#define STICK_SRV_COUNTED   65536
#define STICK_DEFAULT_SIZE  (1u << 20)	/* SPEC §3.1: size default 1m */

struct stick_table;

/*
 * New empty table holding at most max_entries entries (0 = the default,
 * STICK_DEFAULT_SIZE), where entries idle for expire_ms or longer are
 * expired (0 = never). nshards is rounded up to a power of two (at most
 * 1024); 0 picks one from max_entries (64 for large tables, fewer for
 * small ones so that each shard's LRU stays meaningful). The bound is
 * enforced per shard (ceil(max_entries / nshards) each), so a table may
 * start evicting slightly before it holds max_entries entries.
 * Returns NULL on allocation failure. The caller holds the one reference;
 * free with stick_free().
 */
struct stick_table *stick_new(uint32_t max_entries, uint32_t expire_ms,
			      unsigned nshards);
/* Tables are reference counted, so that two configuration generations can
 * share one across a reload (reload.c): stick_hold() takes a reference,
 * stick_free() drops one and frees the table with the last (NULL: no-op). */
void stick_hold(struct stick_table *t);
void stick_free(struct stick_table *t);

/* New limits for a table in use (a reload that changed `size` or `expire`);
 * the shard count stays. A smaller bound evicts at once, LRU first. */
void stick_set_limits(struct stick_table *t, uint32_t max_entries, uint32_t expire_ms);

/*
 * Look key up. On a hit, refresh its access time and LRU position, set
 * *srv and return 1. Return 0 on a miss; an entry found expired is removed
 * and counted (stick_stats().expired). klen > STICK_KEY_MAX is a miss.
 */
int stick_lookup(struct stick_table *t, const void *key, size_t klen,
		 uint64_t now_ms, uint32_t *srv);

/* The same, also saying (when not NULL) how long the entry had been idle
 * before this lookup and how old it is (since its creation or its last
 * change of server), on a hit. */
int stick_lookup_times(struct stick_table *t, const void *key, size_t klen, uint64_t now_ms,
		       uint32_t *srv, uint64_t *idle_ms, uint64_t *age_ms);

/*
 * Insert key -> srv or update it (a changed server resets the entry's
 * creation time: it is a new assignment). A full shard evicts its
 * least-recently-used entry first. Returns 0, or -1 on allocation failure
 * or klen > STICK_KEY_MAX (the table is unchanged then).
 */
int stick_store(struct stick_table *t, const void *key, size_t klen,
		uint32_t srv, uint64_t now_ms);

/* Remove key. Returns 1 if it was present, else 0. */
int stick_delete(struct stick_table *t, const void *key, size_t klen);

/* Remove every entry pointing at srv (`clear sessions BACKEND SERVER`).
 * O(entries). Returns how many were removed. */
size_t stick_clear_server(struct stick_table *t, uint32_t srv);

/* Remove every entry and give the memory back (the table stays usable). */
void stick_clear(struct stick_table *t);

/*
 * Bounded background expiry, called by each worker once per loop
 * iteration with a small budget (e.g. 16). Visits shards round-robin from
 * a shared cursor, skipping without locking those whose oldest entry
 * cannot have expired yet, never waiting for a busy shard (trylock), and
 * pops expired entries from each visited shard's LRU tail. At most
 * `budget` entries are examined (a visited shard costs one). Returns the
 * number removed: a caller seeing removed == budget may call again.
 */
size_t stick_expire(struct stick_table *t, uint64_t now_ms, unsigned budget);

/* Entries in the table (may include expired ones not yet reclaimed).
 * Lock-free, approximate while other threads write. */
size_t stick_count(const struct stick_table *t);

/* Entries pointing at srv (`show servers` sessions column). O(shards) for
 * srv < STICK_SRV_COUNTED, else O(entries). */
size_t stick_count_server(struct stick_table *t, uint32_t srv);

struct stick_stats {
	uint64_t entries;
	uint64_t expired;	/* removed because idle for expire_ms */
	uint64_t evicted;	/* removed because a shard was full (LRU) */
	uint64_t bytes;		/* memory held by the table */
};
void stick_stats(struct stick_table *t, struct stick_stats *out);

/*
 * Call cb for every live (unexpired) entry, shard by shard, oldest first
 * within a shard; stop early when cb returns non-zero. cb runs with the
 * shard locked: it must be quick and must not call into the same table.
 * idle_ms = now - last access, age_ms = now - creation.
 */
typedef int (*stick_foreach_fn)(void *arg, const void *key, size_t klen,
				uint32_t srv, uint64_t idle_ms, uint64_t age_ms);
void stick_foreach(struct stick_table *t, uint64_t now_ms,
		   stick_foreach_fn cb, void *arg);

/*
 * State file (issue 3 item 8). A file holds any number of table blocks,
 * one per stick_save() call, each carrying a name chosen by the caller
 * (e.g. "app/learn/JSESSIONID") so several tables share one file:
 *
 *   save:  for each table: stick_save(t, f, name, now, err, errlen);
 *   load:  struct stick_block b;
 *          while ((r = stick_load_header(f, &b, err, errlen)) == 1)
 *              if (stick_load_body(find(b.name) or NULL, f, &b, now,
 *                                  map_srv, arg, err, errlen) < 0) break;
 *          (r == 0 at a clean end of file, -1 on error)
 *
 * Block format (integers little-endian): header = magic "bollstk\n",
 * u32 version, u32 flags, u8 name length, name, u32 expire_ms, then a
 * 16-byte BLAKE2b digest of the header; then chunks of at most 64 KiB of
 * records (u32 payload length, u32 record count, payload, 16-byte digest
 * chained over the previous digest, so a dropped, reordered or altered
 * chunk is detected); then an end chunk (two zero u32, u64 total records,
 * chained digest). A record is u8 klen, key, u32 server, u32 idle ms,
 * u64 age ms: times are relative because monotonic clocks of two processes
 * have no common origin.
 *
 * The caller owns the FILE (and the atomic temporary-file + fsync + rename
 * around it). Errors return -1 with a message in err; a corrupt, truncated
 * or foreign file never crashes. On a load error the table is left empty
 * (a half-read file must route no one); the caller should also clear the
 * tables it loaded earlier from the same file.
 */
struct stick_block {
	char name[STICK_KEY_MAX + 1];	/* NUL-terminated */
	uint32_t version;
	uint32_t expire_ms;		/* of the table that was saved */
	/* Set by the caller between stick_load_header() (which zeroes it)
	 * and stick_load_body(): time the entries spent outside any table
	 * (bollard stopped), added to each one's idle time and age. */
	uint64_t downtime_ms;
	uint8_t digest[16];		/* chain state, private */
};

int stick_save(struct stick_table *t, FILE *f, const char *name,
	       uint64_t now_ms, char *err, size_t errlen);

/* Read the next block header. Returns 1 (b filled), 0 at a clean end of
 * file, -1 on error. */
int stick_load_header(FILE *f, struct stick_block *b, char *err,
		      size_t errlen);

/*
 * Read the records of the block whose header was just read into t (NULL:
 * verify and skip them). map_srv (may be NULL = keep ids) maps a saved
 * server id to the current one or returns -1 to drop the entry (a server
 * no longer configured). Entries already expired under t's expire_ms are
 * dropped (their idle time counting b->downtime_ms). Entries may come back
 * older than now_ms itself (older than the boot): times before the clock's
 * origin are kept, not clamped. Returns the number of entries loaded
 * (>= 0) or -1.
 */
typedef int (*stick_map_fn)(void *arg, uint32_t old_srv);
int stick_load_body(struct stick_table *t, FILE *f, struct stick_block *b,
		    uint64_t now_ms, stick_map_fn map_srv, void *arg,
		    char *err, size_t errlen);

/* One-block convenience: header + body, the saved name ignored. */
int stick_load(struct stick_table *t, FILE *f, uint64_t now_ms,
	       stick_map_fn map_srv, void *arg, char *err, size_t errlen);

#endif
