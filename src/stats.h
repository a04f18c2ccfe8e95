/*
 * stats.h - the stats HTTP endpoints on `stats-listen` (SPEC §7):
 * GET /metrics (Prometheus text format 0.0.4), GET /api/info and
 * GET /api/servers (the JSON of `show info` / `show servers`).
 * No I/O here: control.c accepts the connections, reads a request head and
 * asks stats_respond() for the whole response.
 */
#ifndef BOLLARD_STATS_H
#define BOLLARD_STATS_H

#include "api.h"
#include "admin.h"

/* Largest request head we read; a longer one gets 431. */
#define STATS_MAX_REQUEST 8192

/*
 * Has req[0..len) a complete request head (up to the empty line)? Returns
 * its length, 0 if more bytes are needed, -1 if it is already too long.
 */
long stats_head_len(const char *req, size_t len);

/*
 * Build the complete HTTP/1.1 response (status line, headers, body) to the
 * request head req[0..len) into out. Every response carries
 * "Connection: close": the caller closes once it is written.
 */
void stats_respond(const char *req, size_t len, struct admin_buf *out);

/* The Prometheus text exposition of every counter (the /metrics body). */
void stats_metrics(struct admin_buf *out);

#endif
