/*
 * check.h - health checks (active probes and passive detection) and slow
 * start: what decides a server's `health` input (server.h) and ramps its
 * effective weight back up after it returns.
 *
 * The active checks run on the control thread (control.c) on an epoll set
 * of their own, whose one descriptor the control loop watches; the passive
 * entry points are called by the worker threads and touch only atomics.
 */
#ifndef BOLLARD_CHECK_H
#define BOLLARD_CHECK_H

#include "cfg.h"

/* backend->hc_kind */
enum check_kind { CHECK_NONE, CHECK_TCP, CHECK_HTTP };

/* Defaults of `health` and of passive-only servers (doc/config.md). */
#define CHECK_DEF_INTERVAL 2000u
#define CHECK_DEF_TIMEOUT  1000u
#define CHECK_DEF_RISE     2u
#define CHECK_DEF_FALL     3u

/*
 * Build the check state of every server of cfg and schedule the first
 * probes (spread over the first half-second). Servers of a backend with a
 * `health` line (and without `no-check`) start HEALTH_UP; the others stay
 * HEALTH_UNCHECKED and are probed only after passive failures took them
 * down. Calling it again (reload) replaces the set of servers, carrying
 * health and counters over for servers that kept their backend/server name.
 * Control thread only. Returns the descriptor the caller must watch for
 * EPOLLIN (then call check_events()), the same one on every call, or -1
 * (logged) when it cannot create it.
 */
int check_start(const struct config *cfg);

/* Work on every probe that has an event; control thread. */
void check_events(void);

/*
 * Timeouts, due probes, passive verdicts and slow-start ramps, at now_ms
 * (CLOCK_MONOTONIC milliseconds). Returns the longest time in ms the caller
 * may wait before calling again (100 while any server is known, so that
 * passive failures and ramps are seen promptly). Control thread.
 */
int check_tick(uint64_t now_ms);

/* Close every probe and the descriptor; control thread, at exit. */
void check_stop(void);

/*
 * Runtime API hooks (control thread). check_server_add() starts checking a
 * server added with `add server` (0, or -1 out of memory);
 * check_server_del() forgets it before it is freed. check_server_recovered()
 * starts the slow-start ramp of s (call it when the operator moves it from
 * maint back to ready); without `slowstart` it sets the full weight.
 */
int check_server_add(struct server *s);
void check_server_del(struct server *s);
void check_server_recovered(struct server *s);

/*
 * Passive detection, from the request path of any thread: a failed (or
 * timed-out) connect to s, and a successful one. `fall` consecutive
 * failures mark s down at the next check_tick(), whether it has active
 * checks or not. Atomics only; cheap when nothing changes.
 */
void check_passive_failure(struct server *s);
void check_passive_success(struct server *s);

#endif
