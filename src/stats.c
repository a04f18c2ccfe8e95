/*
 * stats.c - the stats HTTP endpoints: Prometheus metrics and the JSON API.
 *
 * This is a deliberately minimal HTTP/1.1 server for monitoring tools
 * (Prometheus, curl, a browser): GET and HEAD, plus one POST (the
 * dashboard's server-state buttons, only with `stats-admin on`, guarded
 * against cross-site requests); a bounded request head, a small
 * Content-Length body read only for that POST, every response closes the
 * connection. `stats-auth` puts every path behind HTTP basic auth. It runs on the control thread and never touches the proxy's
 * hot path; the numbers it shows are relaxed atomic loads of the counters
 * the workers keep, so a scrape is a consistent-enough snapshot, not an
 * atomic one.
 *
 * The metric text follows the Prometheus exposition format 0.0.4: for each
 * family a "# HELP" then a "# TYPE" line, then its samples, never
 * interleaved with another family; label values escape backslash, double
 * quote and line feed.
 */
#include "api.h"
#include "stats.h"
#include "persist.h"
#include "shared.h"
#include "stick.h"
#include "admin.h"
#include "global.h"
#include "json.h"
#include "log.h"
#include "dashboard.h"
#include "ev.h"
#include "hll.h"
#include "tls_ctx.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <sodium.h>
#include <strings.h>
#include <time.h>

static const char *const state_names[] = { "ready", "drain", "maint", "down" };
static const int state_values[] = { SRV_READY, SRV_DRAIN, SRV_MAINT, SRV_DOWN };

/* ---- Prometheus text format ------------------------------------------------ */

/* A label value, escaped as the exposition format requires. */
static void label_value(struct admin_buf *out, const char *s)
{
	const char *run = s;

	for (; *s; s++) {
		const char *esc = NULL;

		if (*s == '\\')
			esc = "\\\\";
		else if (*s == '"')
			esc = "\\\"";
		else if (*s == '\n')
			esc = "\\n";
		if (!esc)
			continue;
		admin_buf_add(out, run, (size_t)(s - run));
		admin_buf_puts(out, esc);
		run = s + 1;
	}
	admin_buf_add(out, run, (size_t)(s - run));
}

/* `name{k1="v1",k2="v2"} ` : labels given as NULL-terminated key, value pairs. */
static void sample_start(struct admin_buf *out, const char *name,
			 const char *const *labels)
{
	int i;

	admin_buf_puts(out, name);
	if (labels && labels[0]) {
		admin_buf_puts(out, "{");
		for (i = 0; labels[i]; i += 2) {
			if (i)
				admin_buf_puts(out, ",");
			admin_buf_puts(out, labels[i]);
			admin_buf_puts(out, "=\"");
			label_value(out, labels[i + 1]);
			admin_buf_puts(out, "\"");
		}
		admin_buf_puts(out, "}");
	}
	admin_buf_puts(out, " ");
}

static void sample_u64(struct admin_buf *out, const char *name,
		       const char *const *labels, uint64_t v)
{
	sample_start(out, name, labels);
	admin_buf_printf(out, "%llu\n", (unsigned long long)v);
}

static void sample_i64(struct admin_buf *out, const char *name,
		       const char *const *labels, int64_t v)
{
	sample_start(out, name, labels);
	admin_buf_printf(out, "%lld\n", (long long)v);
}

static void family(struct admin_buf *out, const char *name, const char *type,
		   const char *help)
{
	/* help texts are our own literals: no escaping needed */
	admin_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

#define RELAXED(x) atomic_load_explicit(&(x), memory_order_relaxed)

struct expiry_arg {
	struct admin_buf *out;
	const char *fe;
};

static int expiry_sample(void *arg, const struct tls_cert_info *ci)
{
	const struct expiry_arg *a = arg;
	sample_i64(a->out, "bollard_tls_cert_expiry_seconds",
		   (const char *const[]){ "frontend", a->fe, "name", ci->nnames ? ci->names[0] : ci->file,
					  NULL }, ci->not_after);
	return 0;
}

/* server ... tls: handshakes to each TLS server, resumed or not (pooled
 * connections make none), and their failures by reason. */
static void srv_tls_metrics(struct admin_buf *out, const struct config *cfg)
{
	family(out, "bollard_server_tls_handshakes_total", "counter",
	       "TLS handshakes to the server completed, by whether the session resumed.");
	for (int b = 0; b < cfg->nbackends; b++)
		for (int i = 0; i < cfg->backends[b]->nservers; i++) {
			const struct server *s = cfg->backends[b]->servers[i];
			for (int r = 0; r < 2 && s->tls && !s->removed; r++)
				sample_u64(out, "bollard_server_tls_handshakes_total",
					   (const char *const[]){ "backend", s->be->name, "server", s->name,
								  "resumed", r ? "1" : "0", NULL },
					   RELAXED(s->tls->hs[r]));
		}
	family(out, "bollard_server_tls_handshake_errors_total", "counter",
	       "TLS handshakes to the server that failed, by reason.");
	for (int b = 0; b < cfg->nbackends; b++)
		for (int i = 0; i < cfg->backends[b]->nservers; i++) {
			const struct server *s = cfg->backends[b]->servers[i];
			for (int e = 0; e < TLS_ERR_N && s->tls && !s->removed; e++)
				sample_u64(out, "bollard_server_tls_handshake_errors_total",
					   (const char *const[]){ "backend", s->be->name, "server", s->name,
								  "reason", tls_srv_err_names[e], NULL },
					   RELAXED(s->tls->err[e]));
		}
}

/* SPEC 11: HTTP/2 streams, and the GOAWAY frames sent, by reason (h2.c),
 * for the frontends with a TLS bind (the only ones that can speak it). */
static void h2_metrics(struct admin_buf *out, const struct config *cfg)
{
	family(out, "bollard_http2_streams_total", "counter",
	       "HTTP/2 streams that carried a request.");
	for (int i = 0; i < cfg->nfrontends; i++)
		if (cfg->frontends[i]->tls)
			sample_u64(out, "bollard_http2_streams_total",
				   (const char *const[]){ "frontend", cfg->frontends[i]->name, NULL },
				   RELAXED(cfg->frontends[i]->h2_streams));
	family(out, "bollard_http2_goaway_total", "counter",
	       "GOAWAY frames sent to HTTP/2 clients, by reason.");
	for (int i = 0; i < cfg->nfrontends; i++)
		for (int r = 0; r < H2_GA_N && cfg->frontends[i]->tls; r++)
			sample_u64(out, "bollard_http2_goaway_total",
				   (const char *const[]){ "frontend", cfg->frontends[i]->name,
							  "reason", h2_goaway_names[r], NULL },
				   RELAXED(cfg->frontends[i]->h2_goaway[r]));
}

/* SPEC 11: handshakes, their failures by reason, certificate expiry. */
static void tls_metrics(struct admin_buf *out, const struct config *cfg)
{
	static const char *const ver[2] = { "1.2", "1.3" };
	family(out, "bollard_tls_handshakes_total", "counter",
	       "TLS handshakes completed, by protocol version and whether the session resumed.");
	for (int i = 0; i < cfg->nfrontends; i++)
		for (int v = 0; v < 2 && cfg->frontends[i]->tls; v++)
			for (int r = 0; r < 2; r++)
				sample_u64(out, "bollard_tls_handshakes_total",
					   (const char *const[]){ "frontend", cfg->frontends[i]->name,
								  "version", ver[v], "resumed",
								  r ? "1" : "0", NULL },
					   RELAXED(cfg->frontends[i]->tls->hs[v][r]));
	family(out, "bollard_tls_handshake_errors_total", "counter",
	       "TLS handshakes that failed, by reason.");
	for (int i = 0; i < cfg->nfrontends; i++)
		for (int e = 0; e < TLS_ERR_N && cfg->frontends[i]->tls; e++)
			sample_u64(out, "bollard_tls_handshake_errors_total",
				   (const char *const[]){ "frontend", cfg->frontends[i]->name,
							  "reason", tls_err_names[e], NULL },
				   RELAXED(cfg->frontends[i]->tls->err[e]));
	family(out, "bollard_tls_cert_expiry_seconds", "gauge",
	       "notAfter of each certificate a TLS bind serves, in seconds since the epoch.");
	for (int i = 0; i < cfg->ntls_binds; i++) {
		struct expiry_arg a = { out, cfg->tls_binds[i]->fe->name };
		tls_ctx_foreach_cert(cfg->tls_binds[i]->ctx, expiry_sample, &a);
	}
	srv_tls_metrics(out, cfg);
}

/* SPEC 7 labels bollard_requests_total by frontend too, but the counters
 * live on the server, shared by every frontend that routes to its backend.
 * When one frontend alone reaches the backend (the usual case, and always
 * for a listen section) its name is exact; otherwise the label is empty,
 * which Prometheus reads as "no value", rather than a split we cannot make. */
static const char *only_frontend(const struct config *cfg, const struct backend *be)
{
	const char *name = NULL;
	int f, r;

	for (f = 0; f < cfg->nfrontends; f++) {
		const struct frontend *fe = cfg->frontends[f];
		bool uses = fe->default_be == be;

		for (r = 0; !uses && r < fe->nroutes; r++)
			uses = fe->routes[r].be == be;
		if (!uses)
			continue;
		if (name)
			return "";
		name = fe->name;
	}
	return name ? name : "";
}

static void request_duration(struct admin_buf *out, const struct backend *be)
{
	static const uint64_t bounds[] = CFG_DUR_BOUNDS_US;
	uint64_t cum = 0;
	char le[32];
	int k;

	_Static_assert(ARRAY_SIZE(bounds) + 1 == ARRAY_SIZE(be->dur_buckets),
		       "one bucket per bound plus +Inf");
	for (k = 0; k < (int)ARRAY_SIZE(be->dur_buckets); k++) {
		cum += RELAXED(be->dur_buckets[k]);
		if (k < (int)ARRAY_SIZE(bounds))
			/* %g writes 0.001 .. 10 the way Prometheus clients do */
			snprintf(le, sizeof(le), "%g", (double)bounds[k] / 1e6);
		else
			snprintf(le, sizeof(le), "+Inf");
		sample_u64(out, "bollard_request_duration_seconds_bucket",
			   (const char *const[]){ "backend", be->name, "le", le, NULL }, cum);
	}
	sample_start(out, "bollard_request_duration_seconds_sum",
		     (const char *const[]){ "backend", be->name, NULL });
	admin_buf_printf(out, "%.6f\n", (double)RELAXED(be->dur_sum_us) / 1e6);
	sample_u64(out, "bollard_request_duration_seconds_count",
		   (const char *const[]){ "backend", be->name, NULL }, cum);
}

/* shared-tables (doc/scale-out.md "What to monitor"): the links of every
 * worker, summed. Only with the keyword: nothing to say without it. */
static void shared_metrics(struct admin_buf *out)
{
	struct shared_totals t;
	uint64_t cum = 0;
	char le[32];

	shared_totals(&t);
	family(out, "bollard_shared_tables_up", "gauge",
	       "1 when every worker's Redis link is up, 0 when a table is local only.");
	sample_u64(out, "bollard_shared_tables_up", NULL, t.links && t.up == t.links);
	family(out, "bollard_shared_tables_links_up", "gauge",
	       "Redis links up (one per worker thread).");
	sample_u64(out, "bollard_shared_tables_links_up", NULL, (uint64_t)t.up);
	family(out, "bollard_shared_tables_queued", "gauge",
	       "Writes waiting to be sent or acknowledged (replayed after an outage).");
	sample_u64(out, "bollard_shared_tables_queued", NULL, t.queued);
	family(out, "bollard_shared_tables_ops_total", "counter",
	       "Redis operations of the shared tables, by operation and result.");
	for (int o = 0; o < SHARED_OP_N; o++)
		for (int r = 0; r < SHARED_RES_N; r++)
			if (t.ops[o][r] || r == SHARED_OK || r == SHARED_HIT || r == SHARED_WON)
				sample_u64(out, "bollard_shared_tables_ops_total",
					   (const char *const[]){ "op", shared_link_op_name(o), "result",
						   shared_link_result_name(r), NULL }, t.ops[o][r]);
	family(out, "bollard_shared_tables_errors_total", "counter",
	       "Redis operations that did not get their answer (error, timeout, down, busy, "
	       "dropped), by operation.");
	for (int o = 0; o < SHARED_OP_N; o++)
		sample_u64(out, "bollard_shared_tables_errors_total",
			   (const char *const[]){ "op", shared_link_op_name(o), NULL },
			   t.ops[o][SHARED_ERROR] + t.ops[o][SHARED_TIMEOUT] + t.ops[o][SHARED_DOWN] +
			   t.ops[o][SHARED_BUSY] + t.ops[o][SHARED_DROPPED]);
	family(out, "bollard_shared_tables_latency_seconds", "histogram",
	       "Time Redis took to answer an operation of the shared tables.");
	for (int k = 0; k < SHARED_LAT_N; k++) {
		cum += t.lat[k];
		if (k + 1 < SHARED_LAT_N)
			snprintf(le, sizeof(le), "%g", (double)shared_link_lat_bounds_us[k] / 1e6);
		else
			snprintf(le, sizeof(le), "+Inf");
		sample_u64(out, "bollard_shared_tables_latency_seconds_bucket",
			   (const char *const[]){ "le", le, NULL }, cum);
	}
	sample_start(out, "bollard_shared_tables_latency_seconds_sum", NULL);
	admin_buf_printf(out, "%.6f\n", (double)t.lat_sum_us / 1e6);
	sample_u64(out, "bollard_shared_tables_latency_seconds_count", NULL, cum);
	family(out, "bollard_shared_tables_sentinel_total", "counter",
	       "Sentinel discovery of the links: rounds asked, rounds no sentinel answered "
	       "(no_answer), master address changes (switch), nodes dropped for not being the "
	       "master (not_master: ROLE or READONLY).");
	{
		static const char *const ev[] = { "round", "no_answer", "switch", "not_master" };
		const uint64_t v[] = { t.sentinel_rounds, t.sentinel_failures, t.master_switches,
				       t.master_lost };

		for (size_t i = 0; i < ARRAY_SIZE(ev); i++)
			sample_u64(out, "bollard_shared_tables_sentinel_total",
				   (const char *const[]){ "event", ev[i], NULL }, v[i]);
	}
}

void stats_metrics(struct admin_buf *out)
{
	static const char *const classes[] = { "other", "1xx", "2xx", "3xx", "4xx", "5xx" };
	const struct config *cfg = G.cfg;
	int nb = cfg ? cfg->nbackends : 0;
	int nf = cfg ? cfg->nfrontends : 0;
	time_t now = time(NULL);
	int b, i, c, k;

	family(out, "bollard_info", "gauge", "Build information; always 1.");
	sample_u64(out, "bollard_info", (const char *const[]){ "version", BOLLARD_VERSION, NULL }, 1);

	family(out, "bollard_uptime_seconds", "gauge", "Seconds since bollard started.");
	sample_u64(out, "bollard_uptime_seconds", NULL,
		   (G.start_time && now > G.start_time) ? (uint64_t)(now - G.start_time) : 0);

	family(out, "bollard_connections", "gauge", "Client connections open now.");
	sample_i64(out, "bollard_connections", NULL, RELAXED(G.conns));

	family(out, "bollard_connections_total", "counter", "Client connections accepted.");
	sample_u64(out, "bollard_connections_total", NULL, RELAXED(G.conns_total));

	family(out, "bollard_reloads_total", "counter", "Configuration reloads.");
	sample_u64(out, "bollard_reloads_total", NULL, RELAXED(G.reloads));

	family(out, "bollard_log_dropped_total", "counter",
	       "Log messages a syslog or udp target could not take at once.");
	sample_u64(out, "bollard_log_dropped_total", NULL, log_dropped());

	family(out, "bollard_frontend_requests_total", "counter",
	       "Requests received by the frontend.");
	for (i = 0; i < nf; i++)
		sample_u64(out, "bollard_frontend_requests_total",
			   (const char *const[]){ "frontend", cfg->frontends[i]->name, NULL },
			   RELAXED(cfg->frontends[i]->requests));

	family(out, "bollard_frontend_connections_total", "counter",
	       "Client connections accepted by the frontend.");
	for (i = 0; i < nf; i++)
		sample_u64(out, "bollard_frontend_connections_total",
			   (const char *const[]){ "frontend", cfg->frontends[i]->name, NULL },
			   RELAXED(cfg->frontends[i]->conns_total));

	family(out, "bollard_frontend_rejected_total", "counter",
	       "Requests the frontend rejected itself (4xx generated by bollard).");
	for (i = 0; i < nf; i++)
		sample_u64(out, "bollard_frontend_rejected_total",
			   (const char *const[]){ "frontend", cfg->frontends[i]->name, NULL },
			   RELAXED(cfg->frontends[i]->rejected));

	tls_metrics(out, cfg);
	h2_metrics(out, cfg);

	family(out, "bollard_backend_requests_total", "counter",
	       "Requests routed to the backend.");
	for (b = 0; b < nb; b++)
		sample_u64(out, "bollard_backend_requests_total",
			   (const char *const[]){ "backend", cfg->backends[b]->name, NULL },
			   RELAXED(cfg->backends[b]->requests));

	family(out, "bollard_backend_no_server_total", "counter",
	       "Requests answered 503 because no server of the backend was usable.");
	for (b = 0; b < nb; b++)
		sample_u64(out, "bollard_backend_no_server_total",
			   (const char *const[]){ "backend", cfg->backends[b]->name, NULL },
			   RELAXED(cfg->backends[b]->no_server));

	/* A histogram in the exposition format: cumulative buckets ending in
	 * le="+Inf", then _sum and _count. The workers keep per-bucket counts
	 * (one increment a request); the running total is made here. _count is
	 * that same total rather than a separate load of dur_count, so that
	 * le="+Inf" == _count holds in every scrape even while requests end. */
	family(out, "bollard_request_duration_seconds", "histogram",
	       "Time from the first byte of the request to the end of the response, by backend.");
	for (b = 0; b < nb; b++)
		request_duration(out, cfg->backends[b]);

	family(out, "bollard_requests_total", "counter",
	       "Responses from the server, by status class; frontend is empty when several frontends share the backend.");
	for (b = 0; b < nb; b++) {
		const struct backend *be = cfg->backends[b];
		const char *fe = only_frontend(cfg, be);

		for (i = 0; i < be->nservers; i++) {
			const struct server *s = be->servers[i];

			if (s->removed)
				continue;

			/* [0] counts requests that got no status class (no
			 * response at all): "other" is not an HTTP class, so
			 * only the five classes are exposed as codes */
			for (c = 1; c <= 5; c++)
				sample_u64(out, "bollard_requests_total",
					   (const char *const[]){ "frontend", fe, "backend", be->name,
						   "server", s->name, "code", classes[c], NULL },
					   RELAXED(s->responses[c]));
		}
	}

	family(out, "bollard_server_active_connections", "gauge",
	       "Server connections busy with a request now.");
	for (b = 0; b < nb; b++)
		for (i = 0; i < cfg->backends[b]->nservers; i++)
			if (!cfg->backends[b]->servers[i]->removed) /* del server */
			sample_i64(out, "bollard_server_active_connections",
				   (const char *const[]){ "backend", cfg->backends[b]->name,
					   "server", cfg->backends[b]->servers[i]->name, NULL },
				   RELAXED(cfg->backends[b]->servers[i]->conns));

	family(out, "bollard_server_sessions", "gauge",
	       "Persistent sessions known to point at the server.");
	for (b = 0; b < nb; b++)
		for (i = 0; i < cfg->backends[b]->nservers; i++)
			if (!cfg->backends[b]->servers[i]->removed) /* del server */
			sample_u64(out, "bollard_server_sessions",
				   (const char *const[]){ "backend", cfg->backends[b]->name,
					   "server", cfg->backends[b]->servers[i]->name, NULL },
				   RELAXED(cfg->backends[b]->servers[i]->sessions));

	family(out, "bollard_persistence_total", "counter",
	       "Persistence decisions by backend, method and result.");
	for (b = 0; b < nb; b++) {
		const struct backend *be = cfg->backends[b];
		const struct persist_rules *rs = be->persist;
		for (i = 0; rs && i < rs->n; i++)
			for (int r = PR_HIT; r < PR_COUNT; r++)
				sample_u64(out, "bollard_persistence_total",
					   (const char *const[]){ "backend", be->name,
						   "method", rs->r[i].label,
						   "result", persist_result_name((enum persist_result)r), NULL },
					   RELAXED(rs->r[i].counts[r]));
	}

	family(out, "bollard_persistence_moved_total", "counter",
	       "Sessions that moved to another server, by reason.");
	for (b = 0; b < nb; b++) {
		const struct backend *be = cfg->backends[b];
		const struct persist_rules *rs = be->persist;
		for (int r = MOVED_DOWN; rs && r < MOVED_COUNT; r++)
			sample_u64(out, "bollard_persistence_moved_total",
				   (const char *const[]){ "backend", be->name,
					   "reason", persist_reason_name(r), NULL },
				   RELAXED(rs->moved[r]));
	}

	family(out, "bollard_persistence_table_entries", "gauge",
	       "Entries in each persistence table.");
	for (b = 0; b < nb; b++) {
		const struct backend *be = cfg->backends[b];
		const struct persist_rules *rs = be->persist;
		for (i = 0; rs && i < rs->n; i++)
			if (rs->r[i].table)
				sample_u64(out, "bollard_persistence_table_entries",
					   (const char *const[]){ "backend", be->name,
						   "method", rs->r[i].label, NULL },
					   stick_count(rs->r[i].table));
	}

	family(out, "bollard_persistence_evictions_total", "counter",
	       "Entries evicted from a full persistence table (least recently used first).");
	for (b = 0; b < nb; b++) {
		const struct backend *be = cfg->backends[b];
		const struct persist_rules *rs = be->persist;
		for (i = 0; rs && i < rs->n; i++)
			if (rs->r[i].table) {
				struct stick_stats st;
				stick_stats(rs->r[i].table, &st);
				sample_u64(out, "bollard_persistence_evictions_total",
					   (const char *const[]){ "backend", be->name,
						   "method", rs->r[i].label, NULL },
					   st.evicted);
			}
	}

	family(out, "bollard_server_weight", "gauge", "Effective weight of the server.");
	for (b = 0; b < nb; b++)
		for (i = 0; i < cfg->backends[b]->nservers; i++)
			if (!cfg->backends[b]->servers[i]->removed) /* del server */
			sample_u64(out, "bollard_server_weight",
				   (const char *const[]){ "backend", cfg->backends[b]->name,
					   "server", cfg->backends[b]->servers[i]->name, NULL },
				   RELAXED(cfg->backends[b]->servers[i]->cur_weight));

	family(out, "bollard_server_state", "gauge",
	       "1 for the current state of the server, 0 for the others.");
	for (b = 0; b < nb; b++) {
		const struct backend *be = cfg->backends[b];

		for (i = 0; i < be->nservers; i++) {
			int st = RELAXED(be->servers[i]->state);

			if (be->servers[i]->removed)
				continue;

			for (k = 0; k < (int)ARRAY_SIZE(state_names); k++)
				sample_u64(out, "bollard_server_state",
					   (const char *const[]){ "backend", be->name,
						   "server", be->servers[i]->name,
						   "state", state_names[k], NULL },
					   st == state_values[k]);
		}
	}

	family(out, "bollard_server_connect_errors_total", "counter",
	       "Failed connection attempts to the server.");
	for (b = 0; b < nb; b++)
		for (i = 0; i < cfg->backends[b]->nservers; i++)
			if (!cfg->backends[b]->servers[i]->removed) /* del server */
			sample_u64(out, "bollard_server_connect_errors_total",
				   (const char *const[]){ "backend", cfg->backends[b]->name,
					   "server", cfg->backends[b]->servers[i]->name, NULL },
				   RELAXED(cfg->backends[b]->servers[i]->connect_errors));

	/* check.c counts every probe, active or of a passively downed server */
	family(out, "bollard_health_checks_total", "counter",
	       "Health checks of the server, by result.");
	for (b = 0; b < nb; b++) {
		const struct backend *be = cfg->backends[b];

		for (i = 0; i < be->nservers; i++) {
			const struct server *s = be->servers[i];

			if (s->removed)
				continue;

			sample_u64(out, "bollard_health_checks_total",
				   (const char *const[]){ "backend", be->name, "server", s->name,
					   "result", "ok", NULL },
				   RELAXED(s->checks_ok));
			sample_u64(out, "bollard_health_checks_total",
				   (const char *const[]){ "backend", be->name, "server", s->name,
					   "result", "fail", NULL },
				   RELAXED(s->checks_fail));
		}
	}
	if (cfg && cfg->shared)
		shared_metrics(out);
}

/* ---- the HTTP side ------------------------------------------------------- */

/*
 * The value of header field name in the head h[0..n) (after the request
 * line), surrounding whitespace trimmed, or NULL. Field names are
 * case-insensitive (RFC 9110 5.1); the first occurrence wins, which is
 * enough for the few fields we read (a repeated Content-Length is refused
 * by the caller, who sees the two disagree or not at all).
 */
static const char *header(const char *h, size_t n, const char *name, size_t *vlen)
{
	size_t nl = strlen(name);
	const char *p = memchr(h, '\n', n);
	const char *end = h + n;

	while (p && p + 1 < end) {
		const char *line = p + 1;
		const char *eol = memchr(line, '\n', (size_t)(end - line));
		const char *v, *ve;

		if (!eol)
			eol = end;
		if ((size_t)(eol - line) > nl && line[nl] == ':' &&
		    strncasecmp(line, name, nl) == 0) {
			v = line + nl + 1;
			ve = eol;
			/* RFC 9110 5.5: OWS around the value is not part of it */
			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			*vlen = (size_t)(ve - v);
			return v;
		}
		p = eol < end ? eol : NULL;
	}
	return NULL;
}

/* Content-Length of the head h[0..n): 0 when absent, -1 when not a plain
 * decimal (RFC 9110 8.6: 1*DIGIT) or absurd. */
static long content_length(const char *h, size_t n)
{
	size_t vl, i;
	const char *v = header(h, n, "Content-Length", &vl);
	long cl = 0;

	if (!v)
		return 0;
	if (vl == 0 || vl > 9)
		return -1;
	for (i = 0; i < vl; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		cl = cl * 10 + (v[i] - '0');
	}
	return cl;
}

static long head_end(const char *req, size_t len)
{
	size_t i;

	/* RFC 9112 2.2 lets a server accept a bare LF as a line terminator;
	 * for a monitoring endpoint, tolerance costs nothing */
	for (i = 0; i < len; i++) {
		if (req[i] != '\n')
			continue;
		if (i >= 1 && req[i - 1] == '\n')
			return (long)(i + 1);
		if (i >= 2 && req[i - 1] == '\r' && req[i - 2] == '\n')
			return (long)(i + 1);
	}
	return 0;
}

long stats_head_len(const char *req, size_t len)
{
	long h = head_end(req, len);
	long cl;

	if (h == 0)
		return len >= STATS_MAX_REQUEST ? -1 : 0;
	/* a body is read only when it is small and fits the buffer; a larger
	 * one is answered (413) from the head alone */
	cl = content_length(req, (size_t)h);
	if (cl <= 0 || cl > STATS_MAX_BODY || h + cl > STATS_MAX_REQUEST - 1)
		return h;
	return (size_t)(h + cl) <= len ? h + cl : 0;
}

static void respond(struct admin_buf *out, int status, const char *reason,
		    const char *ctype, const char *extra, const char *body,
		    size_t blen, bool head_only)
{
	admin_buf_printf(out,
		"HTTP/1.1 %d %s\r\n"
		"Content-Type: %s\r\n"
		"Content-Length: %zu\r\n"
		"Cache-Control: no-store\r\n"
		"X-Content-Type-Options: nosniff\r\n"
		"Connection: close\r\n"
		"%s"
		"\r\n",
		status, reason, ctype, blen, extra ? extra : "");
	if (!head_only)
		admin_buf_add(out, body, blen);
}

static void respond_text(struct admin_buf *out, int status, const char *reason,
			 const char *extra, bool head_only)
{
	char body[64];
	int n = snprintf(body, sizeof(body), "%d %s\n", status, reason);

	respond(out, status, reason, "text/plain; charset=utf-8", extra, body,
		(size_t)n, head_only);
}

/* A JSON error document {"error":"..."} with the given status. */
static void respond_error(struct admin_buf *out, int status, const char *reason,
			  const char *fmt, const char *arg)
{
	char msg[160];
	struct json j;
	const char *txt;

	msg_fill(msg, sizeof(msg), fmt, arg);
	json_init_heap(&j);
	json_obj_open(&j);
	json_kv_str(&j, "error", msg);
	json_obj_close(&j);
	txt = json_result(&j);
	if (txt)
		respond(out, status, reason, "application/json", NULL, txt, strlen(txt), false);
	else
		out->oom = true;
	json_free(&j);
}

/* Does [p, p+n) equal the NUL-terminated lit? */
static bool eq(const char *p, size_t n, const char *lit)
{
	return strlen(lit) == n && memcmp(p, lit, n) == 0;
}

/*
 * The value of key in an application/x-www-form-urlencoded string
 * q[0..n) (a query or a POST body), percent-decoded into out[0..cap)
 * (WHATWG URL "application/x-www-form-urlencoded parsing": '+' is a space,
 * %XX a byte). Returns false when absent, too long, or holding a NUL.
 */
static bool form_value(const char *q, size_t n, const char *key, char *out, size_t cap)
{
	size_t kl = strlen(key), i = 0;

	while (i < n) {
		size_t s = i, e, o = 0;

		while (i < n && q[i] != '&')
			i++;
		e = i++;
		if (e - s <= kl || q[s + kl] != '=' || memcmp(q + s, key, kl) != 0)
			continue;
		for (s += kl + 1; s < e; s++) {
			int c = (unsigned char)q[s];

			if (c == '+')
				c = ' ';
			else if (c == '%' && s + 2 < e && isxdigit((unsigned char)q[s + 1]) &&
				 isxdigit((unsigned char)q[s + 2])) {
				char hx[3] = { q[s + 1], q[s + 2], 0 };

				c = (int)strtol(hx, NULL, 16);
				s += 2;
			}
			if (c == 0 || o + 1 >= cap)
				return false;
			out[o++] = (char)c;
		}
		out[o] = '\0';
		return true;
	}
	return false;
}

/* ---- basic authentication (stats-auth) -------------------------------- */

/* Does pw[0..pn) match the stored password sp[0..sn) of one stats-auth
 * line? Both sides are hashed, so the comparison is constant-time
 * whatever the lengths (sodium_memcmp needs equal sizes). */
static bool password_ok(const char *sp, size_t sn, const char *pw, size_t pn)
{
	unsigned char want[crypto_hash_sha256_BYTES], got[crypto_hash_sha256_BYTES];
	crypto_hash_sha256_state st;

	if (sn > 8 && memcmp(sp, "$sha256$", 8) == 0) {
		/* user:$sha256$SALT$HEX, HEX = SHA-256(SALT || password);
		 * cfg_kw.c checked the shape when it loaded the file */
		const char *salt = sp + 8;
		const char *dollar = memchr(salt, '$', sn - 8);

		if (!dollar || sodium_hex2bin(want, sizeof(want), dollar + 1,
					      (size_t)(sp + sn - dollar - 1), NULL, NULL, NULL) != 0)
			return false;
		crypto_hash_sha256_init(&st);
		crypto_hash_sha256_update(&st, (const unsigned char *)salt, (size_t)(dollar - salt));
		crypto_hash_sha256_update(&st, (const unsigned char *)pw, pn);
		crypto_hash_sha256_final(&st, got);
	} else {
		crypto_hash_sha256(want, (const unsigned char *)sp, sn);
		crypto_hash_sha256(got, (const unsigned char *)pw, pn);
	}
	return sodium_memcmp(want, got, sizeof(want)) == 0;
}

/*
 * RFC 7617: "Authorization: Basic base64(user:password)". Is the head
 * h[0..n) authorized by the users of file (the stats-auth contents)?
 * Every line is tried, so the time taken does not tell which user exists.
 */
static bool authorized(const char *file, const char *h, size_t n)
{
	char cred[512];
	size_t vl, cl = 0;
	const char *v = header(h, n, "Authorization", &vl);
	const char *colon, *l, *end;
	bool ok = false;

	if (!v || vl < 6 || strncasecmp(v, "Basic ", 6) != 0)
		return false;
	v += 6;
	vl -= 6;
	while (vl && *v == ' ') {
		v++;
		vl--;
	}
	if (sodium_base642bin((unsigned char *)cred, sizeof(cred) - 1, v, vl, NULL, &cl, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0)
		return false;
	cred[cl] = '\0';
	colon = memchr(cred, ':', cl);
	if (!colon)
		goto out;
	for (l = file; *l; l = *end ? end + 1 : end) {
		const char *sep;
		size_t ln;

		end = strchr(l, '\n');
		if (!end)
			end = l + strlen(l);
		ln = (size_t)(end - l);
		if (ln && l[ln - 1] == '\r')
			ln--;
		if (ln == 0 || l[0] == '#')
			continue;
		sep = memchr(l, ':', ln);
		if (!sep)
			continue;
		if ((size_t)(sep - l) == (size_t)(colon - cred) &&
		    memcmp(l, cred, (size_t)(colon - cred)) == 0 &&
		    password_ok(sep + 1, (size_t)(l + ln - sep - 1), colon + 1,
				cl - (size_t)(colon - cred) - 1))
			ok = true;
	}
out:
	sodium_memzero(cred, sizeof(cred));
	return ok;
}

/* ---- the JSON API ------------------------------------------------------- */

/*
 * GET /api/stats: the raw counters the dashboard turns into rates and
 * bars, in one document so that one poll is one consistent-enough
 * snapshot. Monotonic counters only (plus gauges): rates are the page's
 * business, computed from two polls and their "time_ms".
 */
static void api_stats(struct admin_buf *out)
{
	static const char *const classes[] = { "other", "1xx", "2xx", "3xx", "4xx", "5xx" };
	const struct config *cfg = G.cfg;
	struct timespec ts;
	struct json j;
	const char *txt;
	int b, i, r, c;

	clock_gettime(CLOCK_REALTIME, &ts);
	json_init_heap(&j);
	json_obj_open(&j);
	json_kv_u64(&j, "time_ms", (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
	json_kv_str(&j, "version", BOLLARD_VERSION);
	json_key(&j, "admin");
	json_bool(&j, cfg && cfg->stats_admin);
	json_kv_i64(&j, "connections", RELAXED(G.conns));
	if (cfg && cfg->shared)
		admin_shared_json(&j);
	json_key(&j, "backends");
	json_arr_open(&j);
	for (b = 0; cfg && b < cfg->nbackends; b++) {
		const struct backend *be = cfg->backends[b];
		const struct persist_rules *rs = be->persist;

		json_obj_open(&j);
		json_kv_str(&j, "name", be->name);
		json_kv_u64(&j, "requests", RELAXED(be->requests));
		json_kv_u64(&j, "no_server", RELAXED(be->no_server));
		/* the window of the servers' cookie_sessions; 0: no insert cookie */
		json_kv_u64(&j, "cookie_window_ms", persist_cookie_window_ms(be));
		json_key(&j, "persistence");
		json_arr_open(&j);
		for (i = 0; rs && i < rs->n; i++) {
			json_obj_open(&j);
			json_kv_str(&j, "method", rs->r[i].label);
			for (r = PR_HIT; r < PR_COUNT; r++)
				json_kv_u64(&j, persist_result_name((enum persist_result)r),
					    RELAXED(rs->r[i].counts[r]));
			json_obj_close(&j);
		}
		json_arr_close(&j);
		json_key(&j, "moved");
		json_obj_open(&j);
		for (r = MOVED_DOWN; rs && r < MOVED_COUNT; r++)
			json_kv_u64(&j, persist_reason_name(r), RELAXED(rs->moved[r]));
		json_obj_close(&j);
		json_key(&j, "servers");
		json_arr_open(&j);
		for (i = 0; i < be->nservers; i++) {
			const struct server *s = be->servers[i];

			if (s->removed)
				continue;
			json_obj_open(&j);
			json_kv_str(&j, "name", s->name);
			json_kv_str(&j, "state", admin_state_name(RELAXED(s->state)));
			json_kv_str(&j, "admin_state", admin_state_name(RELAXED(s->admin_state)));
			json_kv_str(&j, "health", admin_server_health(s));
			json_kv_u64(&j, "weight", RELAXED(s->cur_weight));
			/* the configured weight a slow-start ramp climbs to */
			json_kv_u64(&j, "weight_target", s->weight);
			json_kv_u64(&j, "slowstart_ms", s->slowstart);
			json_key(&j, "backup");
			json_bool(&j, s->backup);
			json_kv_i64(&j, "active", RELAXED(s->conns));
			json_kv_i64(&j, "queued", RELAXED(s->queued));
			json_kv_u64(&j, "requests", RELAXED(s->requests));
			json_kv_u64(&j, "sessions", RELAXED(s->sessions));
			/* insert-cookie sessions, estimated (hll.h); null without one */
			json_key(&j, "cookie_sessions");
			if (s->cookie_sessions)
				json_u64(&j, hll_estimate(s->cookie_sessions, ev_now_ms()));
			else
				json_null(&j);
			json_kv_u64(&j, "connect_errors", RELAXED(s->connect_errors));
			json_key(&j, "responses");
			json_obj_open(&j);
			for (c = 0; c <= 5; c++)
				json_kv_u64(&j, classes[c], RELAXED(s->responses[c]));
			json_obj_close(&j);
			json_obj_close(&j);
		}
		json_arr_close(&j);
		json_obj_close(&j);
	}
	json_arr_close(&j);
	json_obj_close(&j);
	txt = json_result(&j);
	if (txt) {
		admin_buf_puts(out, txt);
		admin_buf_puts(out, "\n");
	} else
		out->oom = true;
	json_free(&j);
}

/* GET /api/sessions?backend=NAME[&limit=N]: `json show sessions NAME limit N`,
 * its keys redacted unless stats-auth authenticated the request. */
static void api_sessions(struct admin_buf *out, const char *q, size_t qn, bool head_only)
{
	const struct config *cfg = G.cfg;
	char be[CFG_NAME_MAX], limit[24];
	char *w[3] = { be, "limit", limit };
	const char *msg = NULL, *arg = NULL;
	struct admin_buf body;

	if (!form_value(q, qn, "backend", be, sizeof(be))) {
		respond_error(out, 400, "Bad Request", "%s", "usage: /api/sessions?backend=NAME[&limit=N]");
		return;
	}
	admin_buf_init(&body);
	if (admin_show_sessions(&body, w, form_value(q, qn, "limit", limit, sizeof(limit)) ? 3 : 1,
				true, !(cfg && cfg->stats_auth), &msg, &arg) < 0)
		respond_error(out, 404, "Not Found", msg, arg ? arg : "");
	else
		respond(out, 200, "OK", "application/json", NULL, body.p ? body.p : "",
			body.len, head_only);
	if (body.oom)
		out->oom = true;
	admin_buf_free(&body);
}

/*
 * Cross-site request forgery (doc/dashboard.md): a state change is a POST
 * that must carry X-Bollard-Csrf (a custom header: a cross-site form or a
 * "simple" fetch cannot set one without a CORS preflight, which we never
 * answer), and whose Origin and Sec-Fetch-Site, when the browser sends
 * them, say it comes from this very origin.
 */
static bool same_origin(const char *h, size_t n)
{
	size_t vl, hl;
	const char *v = header(h, n, "X-Bollard-Csrf", &vl);
	const char *host;

	if (!v || vl == 0)
		return false;
	/* Fetch Metadata: "same-origin", or "none" for a user-typed request */
	v = header(h, n, "Sec-Fetch-Site", &vl);
	if (v && !eq(v, vl, "same-origin") && !eq(v, vl, "none"))
		return false;
	/* RFC 6454 7: Origin is scheme://host[:port]; it must name the Host
	 * this request was sent to (and "null" names nothing) */
	v = header(h, n, "Origin", &vl);
	if (!v)
		return true;
	host = header(h, n, "Host", &hl);
	if (!host || vl < 7 || memcmp(v, "http://", 7) != 0)
		return false;
	return hl > 0 && vl - 7 == hl && memcmp(v + 7, host, hl) == 0;
}

/* Is name (lowercase, NUL-terminated) the address the client connected
 * to, written as an IP literal ("127.0.0.1", "[::1]")? */
static bool names_local_address(const char *name, const struct sockaddr_storage *local)
{
	char a6[INET6_ADDRSTRLEN];
	size_t n = strlen(name);
	struct in6_addr in6;
	struct in_addr in4;

	if (local->ss_family == AF_INET)
		return inet_pton(AF_INET, name, &in4) == 1 &&
		       memcmp(&in4, &((const struct sockaddr_in *)local)->sin_addr, sizeof(in4)) == 0;
	if (local->ss_family != AF_INET6 || n < 3 || name[0] != '[' || n - 2 >= sizeof(a6))
		return false;
	memcpy(a6, name + 1, n - 2);
	a6[n - 2] = '\0';
	return inet_pton(AF_INET6, a6, &in6) == 1 &&
	       memcmp(&in6, &((const struct sockaddr_in6 *)local)->sin6_addr, sizeof(in6)) == 0;
}

/*
 * DNS rebinding (issue 9 item 6): a page of evil.example whose name is
 * made to resolve to this listener is same-origin with itself, so Origin,
 * Sec-Fetch-Site and the custom header all pass; what it cannot choose is
 * the Host its browser sends. A state-changing request must name the
 * listener (RFC 9110 7.2: Host is the authority the client targeted): the
 * address the client connected to, localhost (which browsers never resolve
 * through DNS), or a stats-host name. The port is not compared: a proxy or
 * a NAT in front may change it.
 */
static bool host_allowed(const struct config *cfg, const char *h, size_t n,
			 const struct sockaddr_storage *local)
{
	size_t vl, nl, i;
	const char *v = header(h, n, "Host", &vl), *end;
	char name[256];

	if (!v || vl == 0)
		return false;
	if (v[0] == '[') {
		end = memchr(v, ']', vl);
		nl = end ? (size_t)(end - v) + 1 : 0;
	} else {
		end = memchr(v, ':', vl);
		nl = end ? (size_t)(end - v) : vl;
	}
	if (nl == 0 || nl >= sizeof(name))
		return false;
	for (i = 0; i < nl; i++)
		name[i] = (char)tolower((unsigned char)v[i]);
	if (nl > 1 && name[nl - 1] == '.')
		nl--;    /* the absolute form of the same DNS name */
	name[nl] = '\0';
	if (strcmp(name, "localhost") == 0 || (local && names_local_address(name, local)))
		return true;
	for (const char *t = cfg->stats_hosts; t && *t; t += strspn(t, " ")) {
		size_t tl = strcspn(t, " ");

		if (tl == nl && memcmp(t, name, nl) == 0)
			return true;
		t += tl;
	}
	return false;
}

/* POST /api/server, body backend=..&server=..&state=ready|drain|maint:
 * `json set server BACKEND/SERVER state STATE`. */
static void api_set_server(struct admin_buf *out, const char *body, size_t blen)
{
	char be[CFG_NAME_MAX], srv[CFG_NAME_MAX], state[16];
	char ref[2 * CFG_NAME_MAX + 1];
	char *w[3] = { ref, "state", state };
	const char *msg = NULL, *arg = NULL;
	struct admin_buf ans;

	if (!form_value(body, blen, "backend", be, sizeof(be)) ||
	    !form_value(body, blen, "server", srv, sizeof(srv)) ||
	    !form_value(body, blen, "state", state, sizeof(state))) {
		respond_error(out, 400, "Bad Request", "%s",
			      "the body must be backend=NAME&server=NAME&state=ready|drain|maint");
		return;
	}
	snprintf(ref, sizeof(ref), "%s/%s", be, srv);
	admin_buf_init(&ans);
	if (admin_set_server(&ans, w, 3, true, &msg, &arg) < 0)
		respond_error(out, strncmp(msg, "no server", 9) == 0 ? 404 : 400,
			      strncmp(msg, "no server", 9) == 0 ? "Not Found" : "Bad Request",
			      msg, arg ? arg : "");
	else {
		respond(out, 200, "OK", "application/json", NULL, ans.p ? ans.p : "",
			ans.len, false);
		log_msg(LOG_INFO, "stats: set server %s state %s", ref, state);
	}
	if (ans.oom)
		out->oom = true;
	admin_buf_free(&ans);
}

void stats_respond(const char *req, size_t len, const struct sockaddr_storage *local,
		   struct admin_buf *out)
{
	const char *sp1, *sp2, *eol, *path, *query = NULL;
	const struct config *cfg = G.cfg;
	size_t mlen, plen, qlen = 0, hlen, blen, tel;
	bool head_only, post;
	struct admin_buf body;
	long cl;

	/* request-line = method SP request-target SP HTTP-version (RFC 9112 3) */
	eol = memchr(req, '\n', len);
	if (!eol)
		eol = req + len;
	sp1 = memchr(req, ' ', (size_t)(eol - req));
	sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
	if (!sp1 || !sp2 || sp1 == req || sp2 == sp1 + 1 ||
	    (size_t)(eol - sp2 - 1) < 8 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0) {
		respond_text(out, 400, "Bad Request", NULL, false);
		return;
	}
	hlen = (size_t)head_end(req, len);
	if (hlen == 0)
		hlen = len;
	blen = len - hlen;
	/* every path, the page included, is behind stats-auth (RFC 7617) */
	if (cfg && cfg->stats_auth && !authorized(cfg->stats_auth, req, hlen)) {
		respond_text(out, 401, "Unauthorized",
			     "WWW-Authenticate: Basic realm=\"bollard\", charset=\"UTF-8\"\r\n", false);
		return;
	}
	mlen = (size_t)(sp1 - req);
	head_only = eq(req, mlen, "HEAD");
	post = eq(req, mlen, "POST");
	path = sp1 + 1;
	plen = (size_t)(sp2 - path);
	for (size_t i = 0; i < plen; i++)
		if (path[i] == '?') {
			query = path + i + 1;
			qlen = plen - i - 1;
			plen = i;
			break;
		}
	if (post && cfg && cfg->stats_admin && eq(path, plen, "/api/server")) {
		if (!host_allowed(cfg, req, hlen, local)) {
			respond_error(out, 403, "Forbidden", "%s",
				      "the Host of this request is not a name of the statistics "
				      "listener (its address, localhost, or a stats-host name)");
			return;
		}
		if (!same_origin(req, hlen)) {
			respond_error(out, 403, "Forbidden", "%s",
				      "cross-site request refused: send X-Bollard-Csrf: 1 from the same origin");
			return;
		}
		if (header(req, hlen, "Transfer-Encoding", &tel)) {
			/* RFC 9110 15.5.12: we read Content-Length bodies only */
			respond_text(out, 411, "Length Required", NULL, false);
			return;
		}
		cl = content_length(req, hlen);
		if (cl < 0 || cl > STATS_MAX_BODY || (size_t)cl > blen) {
			respond_text(out, 413, "Content Too Large", NULL, false);
			return;
		}
		api_set_server(out, req + hlen, (size_t)cl);
		return;
	}
	if (!head_only && !eq(req, mlen, "GET")) {
		/* RFC 9110 15.5.6: a 405 lists the allowed methods */
		respond_text(out, 405, "Method Not Allowed", "Allow: GET, HEAD\r\n", false);
		return;
	}

	admin_buf_init(&body);
	if (eq(path, plen, "/metrics")) {
		stats_metrics(&body);
		/* the content type that names exposition format 0.0.4 */
		respond(out, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", NULL,
			body.p ? body.p : "", body.len, head_only);
	} else if (eq(path, plen, "/api/info")) {
		admin_show_info(&body, true);
		respond(out, 200, "OK", "application/json", NULL,
			body.p ? body.p : "", body.len, head_only);
	} else if (eq(path, plen, "/api/servers")) {
		admin_show_servers(&body, NULL, true);
		respond(out, 200, "OK", "application/json", NULL,
			body.p ? body.p : "", body.len, head_only);
	} else if (eq(path, plen, "/api/stats")) {
		api_stats(&body);
		respond(out, 200, "OK", "application/json", NULL,
			body.p ? body.p : "", body.len, head_only);
	} else if (eq(path, plen, "/api/sessions")) {
		api_sessions(out, query ? query : "", qlen, head_only);
	} else if (eq(path, plen, "/api/server")) {
		respond_text(out, 405, "Method Not Allowed", "Allow: POST\r\n", head_only);
	} else if (eq(path, plen, "/") || eq(path, plen, "/index.html")) {
		size_t n;
		const char *page = dashboard_page(&n);

		/* the page is self-contained: forbid it anything from elsewhere
		 * and framing by another site (clickjacking the buttons) */
		respond(out, 200, "OK", "text/html; charset=utf-8",
			"Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; "
			"style-src 'unsafe-inline'; connect-src 'self'; img-src data:; "
			"frame-ancestors 'none'\r\nX-Frame-Options: DENY\r\n",
			page, n, head_only);
	} else
		respond_text(out, 404, "Not Found", NULL, head_only);
	if (body.oom || out->oom) {
		admin_buf_reset(out);
		out->oom = false;
		respond_text(out, 500, "Internal Server Error", NULL, head_only);
	}
	admin_buf_free(&body);
}
