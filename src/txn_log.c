/*
 * txn_log.c - the end of a transaction as the operator sees it: its
 * access-log record (log.c writes it), its persistence verdict counted
 * (persist_count) and its duration in the backend's histogram. Every
 * request ends in exactly one call (the exchange keeps tx.logged).
 */
#include "api.h"
#include "txn.h"
#include "stream.h"
#include "worker-t.h"
#include "xprt_tls.h"

static double ms_between(uint64_t a_us, uint64_t b_us)
{
	if (!a_us || !b_us || b_us < a_us)
		return -1;
	return (double)(b_us - a_us) / 1000.0;
}

/* bollard_request_duration_seconds{backend}: one bucket increment, found
 * by a short scan of 12 bounds, per request. */
static void count_duration(struct backend *be, uint64_t us)
{
	static const uint64_t bounds[] = CFG_DUR_BOUNDS_US;
	int k = 0;
	while (k < (int)ARRAY_SIZE(bounds) && us > bounds[k])
		k++;
	atomic_fetch_add_explicit(&be->dur_buckets[k], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&be->dur_sum_us, us, memory_order_relaxed);
	atomic_fetch_add_explicit(&be->dur_count, 1, memory_order_relaxed);
}

void txn_log(struct cconn *c)
{
	struct worker *w = c->w;
	if (c->tx.be && c->tx.be->npersist && c->tx.pr)
		persist_count(c->tx.be, c->tx.pr);
	if (c->tx.be && c->tx.t_start)
		count_duration(c->tx.be, w->now_us > c->tx.t_start ? w->now_us - c->tx.t_start : 0);
	if (!log_access_enabled())
		return;
	struct access_rec r = { 0 };
	r.client = c->client_ip;
	if (c->tx.rq.data && c->tx.log_meth_len) {
		const char *b = c->tx.rq.data;
		r.method = (struct log_str){ b, c->tx.log_meth_len };
		r.target = (struct log_str){ b + c->tx.log_target_off, c->tx.log_target_len };
		r.ua = (struct log_str){ b + c->tx.log_ua_off, c->tx.log_ua_len };
		r.referer = (struct log_str){ b + c->tx.log_ref_off, c->tx.log_ref_len };
		r.reqid = (struct log_str){ b + c->tx.log_id_off, c->tx.log_id_len };
	}
	r.minor = c->tx.minor;
	r.status = c->tx.status;
	r.bytes = c->tx.bytes_out;
	r.frontend = c->fe->name;
	r.backend = c->tx.be ? c->tx.be->name : NULL;
	r.server = c->tx.srv ? c->tx.srv->name : NULL;
	r.scheme = c->scheme;
	r.term = c->tx.term;
	if (c->tx.be && c->tx.be->npersist && c->tx.pr && c->tx.pr->result != PR_NONE) {
		const struct persist_rules *rs = c->tx.be->persist;
		r.persist = persist_result_name(c->tx.pr->result);
		r.persist_method = c->tx.pr->rule >= 0 ? rs->r[c->tx.pr->rule].label : NULL;
		r.persist_reason = c->tx.pr->result == PR_MOVED ? persist_reason_name(c->tx.pr->reason) : NULL;
		r.persist_cookie = c->tx.pr->also ? persist_result_name(c->tx.pr->also) : NULL;
		r.persist_shared = persist_from_name(c->tx.pr->from);
	}
	r.connect_ms = ms_between(c->tx.t_start, c->tx.t_connect);
	r.ttfb_ms = ms_between(c->tx.t_start, c->tx.t_first);
	r.total_ms = ms_between(c->tx.t_start, w->now_us);
	struct tls_info ti;
	if (c->tls && xprt_tls_info(&c->xc, &ti)) {
		r.tls = ti.version;
		r.alpn = (struct log_str){ ti.alpn, ti.alpn_len };
		r.sni = (struct log_str){ ti.sni, strlen(ti.sni) };
		r.resumed = ti.resumed;
	}
	log_access(&w->log, &r);
}
