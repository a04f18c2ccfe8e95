/*
 * shared_sentinel.h - where is the Redis master now: one round of Redis
 * Sentinel discovery for a shared-tables link (SPEC 13, doc/scale-out.md
 * "Sentinel").
 *
 * A round asks the sentinels in turn `SENTINEL get-master-addr-by-name
 * NAME`, each within its own deadline, starting with the one that answered
 * last, and ends with the first address given, or with a failure once every
 * sentinel was tried. It never blocks: the connection to a sentinel is a
 * hiredis asynchronous context whose one socket the owner's loop watches
 * through watch(); the owner feeds readiness and its timer back.
 *
 * Answers are not trusted blindly: a sentinel cut off from its peers may
 * still name a demoted master. The link verifies the node (ROLE) and calls
 * shared_sentinel_distrust() when it is not a master, so that the next round
 * starts with another sentinel.
 *
 * Not thread-safe: one per link, on the link's thread.
 */
#ifndef BOLLARD_SHARED_SENTINEL_H
#define BOLLARD_SHARED_SENTINEL_H

#include "api.h"

struct shared_sentinel;

enum shared_sentinel_status {
	SHARED_SENTINEL_WAIT,    /* a round is running (or none started) */
	SHARED_SENTINEL_FOUND,   /* shared_sentinel_host()/_port() name the master */
	SHARED_SENTINEL_FAILED,  /* no sentinel answered; shared_sentinel_why() says why */
};

struct shared_sentinel_io {
	void *ctx;
	/* Watch fd for SHARED_EV_* (level-triggered); 0: stop (about to be
	 * closed). Returns 0 or -1 (the attempt then fails). */
	int (*watch)(void *ctx, int fd, unsigned events);
};

/* addrs: n (1..SHARED_SENTINELS_MAX) "IP:PORT" or "[IPv6]:PORT"; master:
 * the name the sentinels monitor. timeout_ms bounds one sentinel's
 * exchange (connect and answer). NULL with a message in err. */
struct shared_sentinel *shared_sentinel_create(const char *const *addrs, int n, const char *master,
					       uint32_t timeout_ms, const struct shared_sentinel_io *io,
					       char *err, size_t errlen);
void shared_sentinel_free(struct shared_sentinel *s);

/* Start a round (aborting one that runs). The status is WAIT, or already
 * FAILED when no sentinel could even be connected to. */
enum shared_sentinel_status shared_sentinel_begin(struct shared_sentinel *s);
/* Drive the round: readiness of the watched fd, and the timer (due at
 * shared_sentinel_deadline(), UINT64_MAX when no round runs). Both must be
 * called outside any hiredis callback of the caller's own contexts. */
enum shared_sentinel_status shared_sentinel_on_io(struct shared_sentinel *s, unsigned events);
enum shared_sentinel_status shared_sentinel_on_timer(struct shared_sentinel *s);
uint64_t shared_sentinel_deadline(const struct shared_sentinel *s);

/* The answer of the last round that found one. */
const char *shared_sentinel_host(const struct shared_sentinel *s);
int shared_sentinel_port(const struct shared_sentinel *s);
/* Which sentinel gave it ("IP:PORT"), and why the last round failed. */
const char *shared_sentinel_from(const struct shared_sentinel *s);
const char *shared_sentinel_why(const struct shared_sentinel *s);
const char *shared_sentinel_master(const struct shared_sentinel *s);

/* Are these the sentinels (in this order) and the master name it has? */
bool shared_sentinel_same(const struct shared_sentinel *s, const char *const *addrs, int n,
			  const char *master);

/* The last answer named a node that is not a master: start the next round
 * with the next sentinel. */
void shared_sentinel_distrust(struct shared_sentinel *s);

/* The socket of a hiredis asynchronous context, watched through a loop's
 * callback (the link's connection to the master uses it too): hiredis asks
 * for read/write interest, fn passes each change on: at once, or, when
 * lazy, at the owner's shared_watch_apply() (hiredis adds write interest
 * for every command and drops it once written: a batch written at once
 * then costs the loop nothing). Closing is always passed on at once. */
struct redisAsyncContext;
struct shared_watch {
	int (*fn)(void *ctx, int fd, unsigned events);  /* as shared_sentinel_io.watch */
	void *ctx;
	int fd;                 /* -1: none */
	unsigned mask, want;    /* what fn was given; what hiredis asked for */
	bool failed;            /* fn refused: no event will come, the owner's timer must act */
	bool lazy;
};
void shared_watch_attach(struct shared_watch *w, struct redisAsyncContext *ac);
void shared_watch_apply(struct shared_watch *w);

/* Split "IP:PORT" / "[IPv6]:PORT" into host (an IP literal, NUL-ended, at
 * most hostlen-1 bytes) and port. 0, or -1 when it is not that. Pure. */
int shared_sentinel_parse_addr(const char *addr, char *host, size_t hostlen, int *port);

#endif
