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
 *
 * A TLS server's pool also keeps the last session the server handed one of
 * its connections: a new connection offers it (RFC 8446 2.2), and so
 * costs the server a resumption instead of a full handshake. Like the
 * connections, it belongs to the worker (no lock) and to the generation:
 * a reload that changes `ca` must not skip the new checks by resuming a
 * session verified under the old ones.
 */
#include "api.h"
#include "stream.h"
#include "worker-t.h"
#include "xprt_tls.h"


#define POOL_MAX_PER_SERVER 512
/* A TLS connection pooled this long gives OpenSSL's buffers back
 * (xprt_tls_release): busy pools hand their connections out again within
 * milliseconds, and so keep them; the sweep, about once a second, looks. */
#define POOL_TLS_IDLE_MS 1000

void sconn_release_counted(struct sconn *sc)
{
	if (sc->counted) {
		atomic_fetch_sub_explicit(&sc->srv->conns, 1, memory_order_relaxed);
		sc->counted = false;
	}
}

/* The pool of sc's server, when sc belongs to the worker's generation
 * (a server connection of an older one has no pool left). */
static struct sconn_pool *pool_of(struct worker *w, struct server *s);
static struct sconn_pool *own_pool(struct worker *w, struct sconn *sc)
{
	struct backend *be = sc->srv->be;
	if (be->idx >= w->cfg->nbackends || w->cfg->backends[be->idx] != be)
		return NULL;
	return pool_of(w, sc->srv);
}

/* Keep the session sc's server gave it, for the next connection; or forget
 * the one kept when sc failed its handshake (offering it may be why). */
static void keep_session(struct worker *w, struct sconn *sc)
{
	if (!sc->srv->tls)
		return;
	struct ssl_session_st *sess = xprt_tls_take_session(&sc->xc);
	bool failed = xprt_tls_failed(&sc->xc);
	struct sconn_pool *p = sess || failed ? own_pool(w, sc) : NULL;
	if (p && (sess || failed)) {
		xprt_tls_session_free(p->tls_sess);
		p->tls_sess = sess;
		sess = NULL;
	}
	xprt_tls_session_free(sess);
}

void sconn_tls_resume(struct worker *w, struct sconn *sc)
{
	struct sconn_pool *p = pool_of(w, sc->srv);
	if (p && p->tls_sess)
		xprt_tls_resume(&sc->xc, p->tls_sess);
}

void sconn_pool_forget_sessions(struct worker *w)
{
	for (int b = 0; w->pools && b < w->cfg->nbackends; b++)
		for (uint32_t s = 0; s < w->pool_cap[b]; s++) {
			xprt_tls_session_free(w->pools[b][s].tls_sess);
			w->pools[b][s].tls_sess = NULL;
		}
}

void sconn_close(struct worker *w, struct sconn *sc)
{
	keep_session(w, sc);
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
	keep_session(w, sc);
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
 * they are closing costs a retry; TLS ones idle a while give their
 * buffers back before. Called about once a second. */
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
				else if (w->now - sc->idle_since >= POOL_TLS_IDLE_MS)
					xprt_tls_release(&sc->xc);
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

