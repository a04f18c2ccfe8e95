/*
 * lb_rr.c - smooth weighted round robin (`balance roundrobin`).
 *
 * Plain weighted round robin sends a server of weight 5 five requests in a
 * row, then one to each weight-1 server: bursts that a cold server feels.
 * The smooth variant (the idea of NGINX's upstream round robin) interleaves
 * them: every pick adds each candidate's weight to its "current weight",
 * takes the candidate with the largest current weight, and takes the total
 * of the weights off the winner. Over a cycle of W = sum(weights) picks each
 * server is chosen exactly weight times, and for 5,1,1 the order is
 * a a b a c a a rather than a a a a a b c.
 *
 * The current weights live in the worker thread's own state (struct
 * lb_be_state), so picking takes no lock; each thread interleaves on its
 * own, which keeps the proportions exact per thread and therefore overall.
 * Weights are read from the servers' atomics at every pick, so `set server
 * weight` and slow start take effect at the next request.
 */
#include "api.h"
#include "lb_algo.h"

/*
 * One step of smooth weighted round robin over the usable servers of f's
 * tier among servers[0..n). Returns the chosen server, or NULL when the
 * tier has none. A server excluded for this request (already tried) is
 * still credited its weight, so it resumes its place in the rotation after
 * the retry instead of losing share to the server that took the retry; when
 * every usable server of the tier is excluded, NULL (lb_pick() then tries
 * the next tier, and finally a pass that allows excluded servers).
 * Servers that are not usable keep their current weight unchanged.
 */
struct server *lb_rr_pick(struct lb_be_state *st, struct server *const *servers, int n,
			  const struct lb_filter *f)
{
	int64_t total = 0;
	int best = -1;      /* best not excluded */
	int best_ex = -1;   /* best among the excluded, the fallback */

	BUG_ON(n > st->ncw);
	for (int i = 0; i < n; i++) {
		int64_t conns;
		uint32_t w = lb_candidate(servers[i], f, &conns);

		if (w == 0)
			continue;
		st->cw[i] += w;
		total += w;
		/* strict '>': on equal current weights the first server wins,
		 * which is what makes the sequence deterministic */
		if (lb_excluded(servers[i], f)) {
			if (best_ex < 0 || st->cw[i] > st->cw[best_ex])
				best_ex = i;
		} else if (best < 0 || st->cw[i] > st->cw[best]) {
			best = i;
		}
	}
	if (best < 0 && best_ex >= 0) {
		/* Every usable server of the tier already failed this request:
		 * lb_pick() tries the backup tier before coming back to them,
		 * so take back this step's credits and let it. */
		for (int i = 0; i < n; i++) {
			int64_t conns;
			uint32_t w = lb_candidate(servers[i], f, &conns);

			st->cw[i] -= w;
		}
		return NULL;
	}
	if (best < 0)
		return NULL;
	st->cw[best] -= total;
	if (unlikely(st->cw[best] > LB_RR_LIMIT || st->cw[best] < -LB_RR_LIMIT))
		memset(st->cw, 0, (size_t)st->ncw * sizeof(*st->cw));
	return servers[best];
}
