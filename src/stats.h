/*
 * stats.h - the stats HTTP endpoints on `stats-listen` (SPEC §7):
 * GET /metrics (Prometheus text format 0.0.4), GET /api/info,
 * /api/servers, /api/sessions (the JSON of `show info|servers|sessions`),
 * GET /api/stats (the dashboard's counters), GET / (the dashboard page,
 * dashboard.c) and, with `stats-admin on`, POST /api/server.
 * No I/O here: control.c accepts the connections, reads a request head and
 * asks stats_respond() for the whole response.
 */
#ifndef BOLLARD_STATS_H
#define BOLLARD_STATS_H

#include "api.h"
#include "admin.h"

#include <sys/socket.h>

/* Largest request head we read; a longer one gets 431. */
#define STATS_MAX_REQUEST 8192

/* Largest request body we read (POST /api/server); head and body must
 * also fit in STATS_MAX_REQUEST together. A larger one gets 413. */
#define STATS_MAX_BODY 4096

/*
 * Has req[0..len) a complete request? Returns the length of the head (up
 * to the empty line) plus that of its Content-Length body when the body is
 * small enough to be read (STATS_MAX_BODY), 0 if more bytes are needed, -1
 * if the head is already too long.
 */
long stats_head_len(const char *req, size_t len);

/*
 * Build the complete HTTP/1.1 response (status line, headers, body) to the
 * request req[0..len) (as measured by stats_head_len()) into out. local is
 * the address the client connected to (getsockname), or NULL when unknown:
 * a state-changing request must name it, localhost or a stats-host name as
 * its Host. Every response carries "Connection: close": the caller closes
 * once it is written.
 */
void stats_respond(const char *req, size_t len, const struct sockaddr_storage *local,
		   struct admin_buf *out);

/* The Prometheus text exposition of every counter (the /metrics body). */
void stats_metrics(struct admin_buf *out);

#endif
