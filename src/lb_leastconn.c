/*
 * lb_leastconn.c - least active connections relative to weight
 * (`balance leastconn`).
 *
 * For long or uneven requests (WebSockets, downloads, slow endpoints) the
 * number of requests a server received says little about how busy it is;
 * its count of active connections does. A new assignment goes to the
 * candidate with the smallest conns / weight, so a server of weight 2 is
 * expected to carry twice the connections of a server of weight 1. The
 * ratio is compared by cross-multiplication (lb_load_less), never divided.
 *
 * Ties are frequent (every idle server has load 0) and are broken by smooth
 * weighted round robin among the tied servers, with the thread's current
 * weights: at low concurrency, when every request finishes before the next
 * one arrives, the servers still take turns in proportion to their weights
 * instead of the first server of the list taking everything.
 *
 * conns is read from each server's atomic, shared by all threads, so every
 * thread sees the load the others put on a server.
 */
#include "api.h"
#include "lb_algo.h"

/*
 * Pick the least loaded usable server of f's tier among servers[0..n),
 * skipping the excluded ones unless every usable server is excluded.
 * Returns NULL when the tier has no usable server. Two scans: find the
 * minimum load, then run one smooth-WRR step among the servers at that load
 * (crediting excluded ones too, as lb_rr_pick() does).
 */
struct server *lb_leastconn_pick(struct lb_be_state *st, struct server *const *servers, int n,
				 const struct lb_filter *f)
{
	int min = -1, min_ex = -1;
	int64_t min_conns = 0, ex_conns = 0;
	uint32_t min_w = 0, ex_w = 0;

	BUG_ON(n > st->ncw);
	for (int i = 0; i < n; i++) {
		int64_t conns;
		uint32_t w = lb_candidate(servers[i], f, &conns);

		if (w == 0)
			continue;
		if (lb_excluded(servers[i], f)) {
			if (min_ex < 0 || lb_load_less(conns, w, ex_conns, ex_w)) {
				min_ex = i;
				ex_conns = conns;
				ex_w = w;
			}
		} else if (min < 0 || lb_load_less(conns, w, min_conns, min_w)) {
			min = i;
			min_conns = conns;
			min_w = w;
		}
	}
	bool only_excluded = min < 0;

	if (only_excluded) {
		/* every usable server of the tier already failed this request:
		 * lb_pick() tries the backup tier first */
		if (min_ex < 0 || f->strict)
			return NULL;
		min = min_ex;
		min_conns = ex_conns;
		min_w = ex_w;
	}

	/* Second scan: the tied servers take turns by weight. The atomics may
	 * have moved since the first scan; a server counts as tied when its
	 * load now equals the minimum seen, and if none does any more, the
	 * minimum of the first scan is still a fine answer. */
	int64_t total = 0;
	int best = -1;

	for (int i = 0; i < n; i++) {
		int64_t conns;
		uint32_t w = lb_candidate(servers[i], f, &conns);

		if (w == 0 || lb_load_less(conns, w, min_conns, min_w) ||
		    lb_load_less(min_conns, min_w, conns, w))
			continue;
		st->cw[i] += w;
		total += w;
		if (!only_excluded && lb_excluded(servers[i], f))
			continue;
		if (best < 0 || st->cw[i] > st->cw[best])
			best = i;
	}
	if (best < 0) {
		/* A race with another thread moved every tied server. The
		 * credits given above are not taken back: one round of
		 * weights, harmless, and the LB_RR_LIMIT reset bounds any drift. */
		return servers[min];
	}
	st->cw[best] -= total;
	if (unlikely(st->cw[best] > LB_RR_LIMIT || st->cw[best] < -LB_RR_LIMIT))
		memset(st->cw, 0, (size_t)st->ncw * sizeof(*st->cw));
	return servers[best];
}
