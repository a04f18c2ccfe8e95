/*
 * txn.c - a transaction's own memory and identity (txn.h): reset for each
 * request of a connection, the per-worker pool of persistence decisions
 * it borrows, and its request id.
 */
#include "api.h"
#include "txn.h"
#include "worker-t.h"

void txn_reset(struct txn *tx)
{
	tx->be = NULL;
	tx->srv = NULL;
	tx->ntried = 0;
	tx->attempts = 0;
	tx->status = 0;
	tx->bytes_out = tx->bytes_1xx = 0;
	tx->rq_sent = 0;
	tx->rq_ready = tx->rq_scanned = 0;
	tx->rs_ready = tx->rs_scanned = 0;
	tx->term = NULL;
	tx->t_connect = tx->t_first = 0;
	tx->log_meth_len = 0;
	tx->upgrade = 0;
	tx->resp_started = tx->logged = tx->fresh_only = false;
}

/* Persistence decisions are per request: idle keep-alive connections hold
 * none (they would cost ~600 bytes each), requests take one from the
 * worker's free list. */
struct persist_req *txn_pr_get(struct worker *w)
{
	struct persist_req *pr = w->pr_free;
	if (pr) {
		w->pr_free = *(struct persist_req **)pr;
		return pr;
	}
	return malloc(sizeof(*pr));
}

void txn_pr_put(struct worker *w, struct txn *tx)
{
	if (!tx->pr)
		return;
	*(struct persist_req **)tx->pr = w->pr_free;
	w->pr_free = tx->pr;
	tx->pr = NULL;
}

void txn_pr_free_all(struct worker *w)
{
	while (w->pr_free) {
		struct persist_req *pr = w->pr_free;
		w->pr_free = *(struct persist_req **)pr;
		free(pr);
	}
}

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

void txn_new_reqid(struct worker *w, char id[16])
{
	uint64_t v = splitmix64(w->reqid_seed + w->reqid_next++);
	static const char hex[] = "0123456789abcdef";
	for (int i = 15; i >= 0; i--, v >>= 4)
		id[i] = hex[v & 15];
}
