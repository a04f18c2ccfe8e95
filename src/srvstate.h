/*
 * srvstate.h - the operator's state of servers beyond the configuration
 * file (issue 10 item 8, as HAProxy's server-state-file): the drain/maint
 * state and the weight set through the runtime API, and the servers added
 * with `add server`. It survives a reload (carried by name) and a restart
 * (saved in the state file, state.c, and restored at start before the
 * persistence tables, whose entries may name an added server), so that a
 * crash during a deploy does not put a draining server back into the
 * pool. `show servers` says where each server's state came from.
 *
 * Rules, what an operator expects:
 * - the admin state set at runtime always survives (the file has no state
 *   keyword to disagree with it);
 * - a runtime weight survives until the configuration itself changes that
 *   server's weight: a file edited and reloaded wins;
 * - a server added at runtime survives until the configuration defines a
 *   server of that name (the file wins for its address and options) or it
 *   is deleted with `del server`.
 */
#ifndef BOLLARD_SRVSTATE_H
#define BOLLARD_SRVSTATE_H

#include "cfg.h"
#include "bytes.h"

/* What the runtime API set on a server (struct server.op_set). */
#define SRVSTATE_OP_STATE  0x01 /* admin state: set server ... state */
#define SRVSTATE_OP_WEIGHT 0x02 /* set server ... weight */
#define SRVSTATE_OP_ADDED  0x04 /* the server itself: add server */

/* Where a server's operator state came from (struct server.origin). */
enum srvstate_origin {
	SRVSTATE_CONFIG = 0,    /* the configuration file only */
	SRVSTATE_RUNTIME,       /* the runtime API, in this process (kept by reloads) */
	SRVSTATE_STATE_FILE,    /* restored from the state file at start */
};

/* The runtime API changed what (SRVSTATE_OP_*) of s: remember it for the
 * next reload and save, and ask for a save soon (control thread). */
void srvstate_set(struct server *s, unsigned what);
/* "config", "runtime" or "state-file". */
const char *srvstate_origin_name(const struct server *s);
/* Did the operator change something since the last call? (the control
 * loop saves the state file then, not only every few seconds) */
bool srvstate_take_dirty(void);
void srvstate_mark_dirty(void);

/* A server joins a configuration (persist_server_added): its weight as
 * the configuration (or `add server`) gave it. */
void srvstate_server_added(struct server *s);

/*
 * State file, version 2 (state.c): after a backend's server names, its
 * records: u32 count, then per server with something to keep: u8 length +
 * name, u8 admin state, u8 SRVSTATE_OP_* flags, u32 weight, u32 the
 * configuration's weight at save, u32 maxconn, u8 backup, u8 length +
 * address (for added servers). Integers little-endian.
 */
void srvstate_encode(const struct backend *be, struct bytebuf *b);
/* Skip the records at p[*off..len): 0, or -1 when malformed. */
int srvstate_skip(const uint8_t *p, size_t len, size_t *off);
/*
 * At start, before the workers and before the tables load: apply the
 * records p[off..len) (validated by srvstate_skip) to be: admin states,
 * weights the configuration did not change meanwhile, servers added at
 * runtime that the configuration does not define. *restored counts the
 * servers that took something, *added the servers re-added. Logs what the
 * configuration overrode. 0, or -1 (out of memory).
 */
int srvstate_apply(struct backend *be, const uint8_t *p, size_t len, size_t off,
		   size_t *restored, size_t *added);

/*
 * Reload (reload.c, before the new generation is published): the servers
 * added at runtime in ob that nb does not define join nb, and every server
 * of nb that kept its name takes the operator's weight and origin from ob
 * (admin state and health are carried by reload.c). 0, or -1 (out of
 * memory: the added servers are then missing from nb, logged).
 */
int srvstate_carry(const struct backend *ob, struct backend *nb);

#endif
