/*
 * sconn.c - server-side connections and their idle pools.
 *
 * After a response, a server connection that can carry another request
 * goes back to its worker's pool for that server (most recently used
 * first, so the connections most likely still open are reused first, and
 * the others age out). Any client of the same worker may take it: a
 * keep-alive client costs no server connect, and neither does a client
 * that opens a connection per request. Pools are per worker, so nothing
 * here is shared between threads but the servers' atomic counters.
 */
#include "api.h"
#include "stream.h"
#include "worker-t.h"


#define POOL_MAX_PER_SERVER 512

void sconn_release_counted(struct sconn *sc)
{
	if (sc->counted) {
		atomic_fetch_sub_explicit(&sc->srv->conns, 1, memory_order_relaxed);
		sc->counted = false;
	}
}

void sconn_close(struct worker *w, struct sconn *sc)
{
	sconn_release_counted(sc);
	xconn_close(&sc->xc); /* also takes it out of epoll */
	buf_put(&w->bufs, &sc->in);
	/* events for it may still be queued in this epoll_wait batch */
	sc->dead = true;
	sc->owner = NULL;
	sc->next = w->dead_servers;
	w->dead_servers = sc;
}

/* The idle pool of s on this worker. Servers added at runtime (`add
 * server`) get one on first use: the array grows then, never per request. */
static struct sconn_pool *pool_of(struct worker *w, struct server *s)
{
	int b = s->be->idx;
	if (unlikely((uint32_t)s->idx >= w->pool_cap[b])) {
		uint32_t cap = (uint32_t)s->idx + 8;
		struct sconn_pool *np = realloc(w->pools[b], cap * sizeof(*np));
		if (!np)
			return NULL;
		memset(np + w->pool_cap[b], 0, (cap - w->pool_cap[b]) * sizeof(*np));
		w->pools[b] = np;
		w->pool_cap[b] = cap;
	}
	return &w->pools[b][s->idx];
}

static void pool_unlink(struct sconn_pool *p, struct sconn *sc)
{
	if (sc->prev)
		sc->prev->next = sc->next;
	else
		p->head = sc->next;
	if (sc->next)
		sc->next->prev = sc->prev;
	sc->next = sc->prev = NULL;
	p->n--;
}

/* An idle server connection the server closed (or wrote to, which HTTP does
 * not allow between responses) is useless: drop it. */
void sconn_pool_drop(struct worker *w, struct sconn *sc)
{
	pool_unlink(pool_of(w, sc->srv), sc);
	sconn_close(w, sc);
}

struct sconn *sconn_pool_take(struct worker *w, struct server *s)
{
	struct sconn_pool *p = pool_of(w, s);
	struct sconn *sc = p ? p->head : NULL;
	if (!sc)
		return NULL;
	pool_unlink(p, sc);
	return sc;
}

void sconn_pool_put(struct worker *w, struct sconn *sc)
{
	struct sconn_pool *p = pool_of(w, sc->srv);
	sconn_release_counted(sc);
	buf_put(&w->bufs, &sc->in);
	if (!p || p->n >= POOL_MAX_PER_SERVER || w->stopping || sc->srv->removed) {
		sconn_close(w, sc);
		return;
	}
	sc->owner = NULL;
	sc->idle_since = w->now;
	sc->reused = true;
	sc->prev = NULL;
	sc->next = p->head;
	if (p->head)
		p->head->prev = sc;
	p->head = sc;
	p->n++;
}

/* Close pooled connections idle for longer than their backend's
 * keep-alive timeout: servers close theirs eventually, and reusing one
 * they are closing costs a retry. Called about once a second. */
void sconn_pool_sweep(struct worker *w)
{
	for (int b = 0; b < w->cfg->nbackends; b++) {
		struct backend *be = w->cfg->backends[b];
		for (uint32_t s = 0; s < w->pool_cap[b]; s++) {
			struct sconn_pool *p = &w->pools[b][s];
			struct sconn *sc = p->head, *next;
			for (; sc; sc = next) {
				next = sc->next;
				if (w->stopping || w->now - sc->idle_since >= be->to.http_keep_alive)
					sconn_pool_drop(w, sc);
			}
		}
	}
}

void sconn_pool_sweep_all(struct worker *w)
{
	for (int b = 0; b < w->cfg->nbackends; b++) {
		for (uint32_t s = 0; s < w->pool_cap[b]; s++) {
			struct sconn_pool *p = &w->pools[b][s];
			while (p->head)
				sconn_pool_drop(w, p->head);
		}
	}
}

