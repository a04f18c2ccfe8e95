/*
 * state.h - the state file (SPEC §3 `state-file`, issue 3 item 8): every
 * persistence table of a configuration saved to one file, atomically,
 * periodically and at stop, and restored at start, so that a restart of
 * bollard moves no session.
 *
 * The file is a header of ours followed by one stick block (stick.h) per
 * table rule. The header lists every backend with the name of each server
 * id, because table entries hold a server as a number (its sid, persist.c):
 * on load each saved id is mapped back to a name, then to the sid of the
 * server of that name in the new configuration, which may have reordered,
 * renamed or removed servers. Entries whose backend, rule or
 * server no longer exists are dropped and counted.
 *
 * The cookie key is not in this file: secret-file holds it (seal.h).
 */
#ifndef BOLLARD_STATE_H
#define BOLLARD_STATE_H

#include "cfg.h"

/*
 * Write every persistence table of cfg to path atomically: path.tmp
 * (mode 0600), fflush + fsync, rename over path, fsync the directory, so
 * that a crash at any point leaves either the old or the new file, never a
 * mix. Safe to call from the control thread while workers use the tables
 * (stick_save locks one shard at a time). A cfg with no table writes a
 * valid file with no block. Returns 0, or -1 with a message in err (the
 * previous file is then untouched).
 */
int state_save(const struct config *cfg, const char *path, char *err,
	       size_t errlen);

/*
 * Restore the tables of cfg from path; meant for start-up, before the
 * workers run. A missing file is not an error: 0, nothing loaded. A
 * corrupt, truncated or foreign file: -1 with a message in err, and every
 * table this call loaded into is cleared again (a half-read file must
 * route no one); the caller logs a warning and runs with empty tables.
 * Blocks are matched by backend name and rule (label + name), entries by
 * server name. *restored (may be NULL) receives the number of entries
 * restored, *dropped (may be NULL) those dropped because their backend,
 * rule or server is no longer configured. Entries that expired while
 * bollard was stopped (by the wall clock) are not counted in either.
 */
int state_load(struct config *cfg, const char *path, size_t *restored,
	       size_t *dropped, char *err, size_t errlen);

/*
 * The same two with the clocks given rather than read, so that tests do
 * not depend on the machine's uptime or wall clock: mono_ms is the tables'
 * clock (CLOCK_MONOTONIC ms, what the workers pass to stick.h), wall_ms
 * the wall clock (ms since the epoch), used only to measure how long
 * bollard was stopped: that downtime is added to every restored entry's
 * idle time and age.
 */
struct state_clock {
	uint64_t mono_ms;
	uint64_t wall_ms;
};
int state_save_at(const struct config *cfg, const char *path,
		  const struct state_clock *now, char *err, size_t errlen);
int state_load_at(struct config *cfg, const char *path, const struct state_clock *now,
		  size_t *restored, size_t *dropped, char *err, size_t errlen);

#endif
