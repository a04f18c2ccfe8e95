/*
 * reload.c - SIGHUP and the runtime API's `reload` (SPEC §6).
 *
 * 1. The file is read again and validated; on any error the running
 *    configuration stays and every error is logged.
 * 2. Settings that cannot change under running threads (threads,
 *    tune.bufsize, admin-socket, stats-listen) must be unchanged.
 * 3. The new generation is prepared off to the side: hash placements,
 *    persistence tables. Tables of rules that kept their backend, method and
 *    name are shared with the old generation (servers are named in them by
 *    a sid that a reload keeps by name, so no entry needs remapping);
 *    counters carry over by name so they stay monotonic; the operator's
 *    drain/maint, runtime weights and servers added at runtime
 *    (srvstate.h), and the health of servers that kept their name carry
 *    over too.
 * 4. G.cfg is swapped, and every worker is told: it re-points its listeners
 *    (an unchanged address keeps its socket, so no connection is refused),
 *    rebuilds its balancing state, and moves each client connection to the
 *    new generation at its next request. In-flight requests finish on the
 *    generation they started with, which is freed when its last holder
 *    lets go.
 */
#include "api.h"
#include "reload.h"
#include "hll.h"
#include "global.h"
#include "lb_hash.h"
#include "log.h"
#include "persist.h"
#include "srvstate.h"
#include "stick.h"
#include "worker.h"

static void copy_u64(_Atomic uint64_t *to, _Atomic uint64_t *from)
{
	atomic_store_explicit(to, atomic_load_explicit(from, memory_order_relaxed),
			      memory_order_relaxed);
}

/*
 * Table entries name servers by sid (persist.c). A server that keeps its
 * name keeps its sid, a new name gets one never used in this backend, so
 * the old and the new generation read the same table alike and can share
 * it (below); an entry of a server the new configuration removed names no
 * server there any more, and its session moves once (`removed`).
 */
static void carry_sids(const struct backend *ob, struct backend *nb)
{
	uint32_t next = atomic_load_explicit(&ob->next_sid, memory_order_relaxed);

	for (int i = 0; i < nb->nservers; i++) {
		struct server *ns = nb->servers[i];
		struct server *os = cfg_find_server(ob, ns->name);

		ns->sid = os ? os->sid : next++;
	}
	atomic_store_explicit(&nb->next_sid, next, memory_order_relaxed);
}

/*
 * The new rule takes over the old rule's table itself, not a copy: both
 * generations use it at once while the old one finishes its in-flight
 * requests, so nothing the old generation learns after this point (a
 * Set-Cookie of a response still in flight) can be missed by the new one,
 * and the new one never answers from a table that is still being filled
 * (issue 9 item 14). A changed `size` or `expire` applies to the shared
 * table.
 */
static void share_table(struct persist_rule *r, struct persist_rule *o)
{
	stick_free(r->table); /* the empty one persist_init() made */
	stick_hold(o->table);
	r->table = o->table;
	if (o->size != r->size || o->expire_ms != r->expire_ms)
		stick_set_limits(r->table, r->size, r->expire_ms);
}

/* Move what belongs to the running system from old to nc, by name. */
static void carry_over(struct config *old, struct config *nc)
{
	for (int f = 0; f < nc->nfrontends; f++) {
		struct frontend *nf = nc->frontends[f], *of = NULL;
		for (int k = 0; k < old->nfrontends; k++)
			if (!strcmp(old->frontends[k]->name, nf->name))
				of = old->frontends[k];
		if (!of)
			continue;
		copy_u64(&nf->requests, &of->requests);
		copy_u64(&nf->conns_total, &of->conns_total);
		copy_u64(&nf->rejected, &of->rejected);
		copy_u64(&nf->h2_streams, &of->h2_streams);
		for (int r = 0; r < H2_GA_N; r++)
			copy_u64(&nf->h2_goaway[r], &of->h2_goaway[r]);
		cfg_tls_stats_carry(nf, of);
	}
	for (int b = 0; b < nc->nbackends; b++) {
		struct backend *nb = nc->backends[b];
		struct backend *ob = cfg_find_backend(old, nb->name);
		if (!ob)
			continue;
		/* servers added at runtime join first, so that everything
		 * below (counters, states, sids) carries over to them too */
		srvstate_carry(ob, nb);
		if (lb_hash_placed(nb))
			lb_hash_build(nb); /* runtime weights and servers place keys too */
		copy_u64(&nb->requests, &ob->requests);
		copy_u64(&nb->no_server, &ob->no_server);
		for (int k = 0; k < (int)ARRAY_SIZE(nb->dur_buckets); k++)
			copy_u64(&nb->dur_buckets[k], &ob->dur_buckets[k]);
		copy_u64(&nb->dur_sum_us, &ob->dur_sum_us);
		copy_u64(&nb->dur_count, &ob->dur_count);
		for (int k = 0; k < 6; k++)
			copy_u64(&nb->responses[k], &ob->responses[k]);
		for (int k = 0; k < 13; k++)
			copy_u64(&nb->dur_buckets[k], &ob->dur_buckets[k]);
		copy_u64(&nb->dur_sum_us, &ob->dur_sum_us);
		copy_u64(&nb->dur_count, &ob->dur_count);
		for (int i = 0; i < nb->nservers; i++) {
			struct server *ns = nb->servers[i];
			struct server *os = cfg_find_server(ob, ns->name);
			if (!os)
				continue;
			copy_u64(&ns->requests, &os->requests);
			copy_u64(&ns->connect_errors, &os->connect_errors);
			copy_u64(&ns->checks_ok, &os->checks_ok);
			copy_u64(&ns->checks_fail, &os->checks_fail);
			for (int k = 0; ns->tls && os->tls && k < 2; k++)
				copy_u64(&ns->tls->hs[k], &os->tls->hs[k]);
			for (int k = 0; ns->tls && os->tls && k < TLS_ERR_N; k++)
				copy_u64(&ns->tls->err[k], &os->tls->err[k]);
			/* what `wait drained` reads: without them a reload made
			 * every draining server look drained (issue 9 item 9) */
			copy_u64(&ns->last_request_ms, &os->last_request_ms);
			copy_u64(&ns->sessions, &os->sessions);
			for (int k = 0; k < 6; k++)
				copy_u64(&ns->responses[k], &os->responses[k]);
			if (ns->cookie_sessions && os->cookie_sessions &&
			    ns->cookie_sessions->window_ms == os->cookie_sessions->window_ms) {
				/* the sessions seen so far stay counted, and so do
				 * the old generation's last requests: both count
				 * into one estimator. Shared, not swapped: workers
				 * still on the old generation read its pointer
				 * (persist_on_response), which must not change */
				hll_free(ns->cookie_sessions);
				ns->cookie_sessions = hll_share(os->cookie_sessions);
			}
			atomic_store(&ns->admin_state, atomic_load(&os->admin_state));
			atomic_store(&ns->health, atomic_load(&os->health));
			int st = atomic_load(&ns->admin_state);
			int h = atomic_load(&ns->health);
			atomic_store(&ns->state, st == SRV_MAINT ? SRV_MAINT : h == HEALTH_DOWN ? SRV_DOWN : st);
		}
		carry_sids(ob, nb);
		struct persist_rules *nr = nb->persist, *orr = ob->persist;
		if (!nr || !orr)
			continue;
		for (int k = 0; k < (int)MOVED_COUNT; k++)
			copy_u64(&nr->moved[k], &orr->moved[k]);
		bool used[PERSIST_MAX_RULES] = { false };
		for (int i = 0; i < nr->n; i++) {
			struct persist_rule *r = &nr->r[i];
			for (int j = 0; j < orr->n; j++) {
				struct persist_rule *o = &orr->r[j];
				if (used[j] || o->kind != r->kind || strcmp(o->name, r->name))
					continue;
				used[j] = true;
				for (int k = 0; k < PR_COUNT; k++)
					copy_u64(&r->counts[k], &o->counts[k]);
				if (r->table && o->table)
					share_table(r, o);
				break;
			}
		}
	}
}

/* The line after l in a list of '\n'-terminated lines. */
static const char *next_line(const char *l)
{
	l += strcspn(l, "\n");
	return *l ? l + 1 : l;
}

int reload_run(char *msg, size_t msglen)
{
	struct config *old = G.cfg;
	char *errs = NULL;
	struct config *nc = cfg_load(old->file, &errs);
	if (!nc) {
		/* every error is logged, and listed in the answer too as far
		 * as msg holds them (issue 10 item 14) */
		int n = 0, shown = 0;
		bool full = false;
		for (const char *l = errs; l && *l; l = next_line(l))
			n++;
		snprintf(msg, msglen, "reload failed: %d error%s; still running the previous "
			 "configuration", n, n == 1 ? "" : "s");
		size_t used = strlen(msg);
		for (const char *l = errs; l && *l; l = next_line(l)) {
			int ll = (int)strcspn(l, "\n");
			log_msg(LOG_ERR, "reload: %.*s", ll, l);
			/* keep room for the "(N more in the log)" line */
			if (!full && used + (size_t)ll + 32 < msglen) {
				used += (size_t)snprintf(msg + used, msglen - used, "\n%.*s", ll, l);
				shown++;
			} else
				full = true;
		}
		if (shown < n)
			snprintf(msg + used, msglen - used, "\n(%d more in the log)", n - shown);
		log_msg(LOG_ERR, "%.*s", (int)strcspn(msg, "\n"), msg);
		free(errs);
		return -1;
	}
	const char *why = NULL;
	if (nc->threads != old->threads)
		why = "threads cannot change on reload (restart instead)";
	else if (nc->bufsize != old->bufsize)
		why = "tune.bufsize cannot change on reload (restart instead)";
	else if (nc->h2_stream_window != old->h2_stream_window)
		why = "tune.h2.stream-window cannot change on reload (restart instead)";
	else if ((nc->admin_socket == NULL) != (old->admin_socket == NULL) ||
		 (nc->admin_socket && strcmp(nc->admin_socket, old->admin_socket)))
		why = "admin-socket cannot change on reload (restart instead)";
	else if (nc->has_stats != old->has_stats ||
		 (nc->has_stats && strcmp(nc->stats_listen.text, old->stats_listen.text)))
		why = "stats-listen cannot change on reload (restart instead)";
	char err[256];
	for (int b = 0; !why && b < nc->nbackends; b++)
		if (nc->backends[b]->balance == LB_HASH && lb_hash_build(nc->backends[b]) < 0)
			why = "out of memory building a hash placement";
	if (!why && persist_init(nc, err, sizeof(err)) < 0)
		why = err;
	/* secret-file is read again (key rotation); a bad one keeps all */
	if (!why && persist_keys_init(nc, old, err, sizeof(err)) < 0)
		why = err;
	if (why) {
		log_msg(LOG_ERR, "reload: %s; still running the previous configuration", why);
		snprintf(msg, msglen, "reload failed: %s", why);
		for (int b = 0; b < nc->nbackends; b++)
			lb_hash_free(nc->backends[b]);
		cfg_free(nc);
		return -1;
	}
	carry_over(old, nc);
	cfg_hold(nc); /* the control thread's reference */
	__atomic_store_n(&G.cfg, nc, __ATOMIC_RELEASE);
	atomic_fetch_add(&G.reloads, 1);
	workers_reload(nc);
	cfg_release(old);
	log_msg(LOG_INFO, "reloaded %s (reload #%u)", nc->file, atomic_load(&G.reloads));
	snprintf(msg, msglen, "reloaded");
	return 0;
}
