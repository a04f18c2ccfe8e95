/*
 * worker.c - worker threads and their event loops.
 *
 * Each worker has its own epoll instance and its own SO_REUSEPORT listening
 * socket per bind address, so the kernel spreads incoming connections across
 * threads and a connection stays on one thread from accept to close: nothing
 * on the request path is shared but atomic counters. Sockets are registered
 * once, edge-triggered for both directions, so a request costs no
 * epoll_ctl() call.
 *
 * The control thread talks to the workers only through an eventfd per worker
 * (stop, force stop) and a few atomics.
 */
#include "api.h"
#include "worker.h"
#include "priv.h"
#include "global.h"
#include "h2.h"
#include "persist.h"
#include "reload.h"
#include "shared_loop.h"
#include "stream.h"
#include "worker-t.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sodium.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define ACCEPT_BATCH 64

static struct worker *workers;
static int nworkers;
static _Atomic int nworkers_done;

/*
 * Out of descriptors (or kernel memory) at accept: the listeners pause and
 * are retried every 10 ms (worker_main), which logged a line per attempt,
 * hundreds a second (issue 9 item 17). The condition is the process's, not
 * a worker's: one line when it begins, one with the count of failed
 * attempts when an accept succeeds again, whichever workers see them.
 */
static _Atomic bool accept_short;
static _Atomic uint64_t accept_fails;

static void accept_failed(int err)
{
	atomic_fetch_add_explicit(&accept_fails, 1, memory_order_relaxed);
	if (!atomic_exchange(&accept_short, true))
		log_msg(LOG_ERR, "accept: %s: not accepting for now, retried every 10 ms "
			"(raise ulimit -n or lower maxconn)", strerror(err));
}

static void accept_works(void)
{
	uint64_t n;

	/* a relaxed load per accept; the exchange only after a shortage */
	if (!atomic_load_explicit(&accept_short, memory_order_relaxed) ||
	    !atomic_exchange(&accept_short, false))
		return;
	n = atomic_exchange(&accept_fails, 0);
	log_msg(LOG_INFO, "accept: accepting again (%llu failed attempt%s)",
		(unsigned long long)n, n == 1 ? "" : "s");
}

static int open_listener(const struct cfg_addr *a, char *err, size_t errlen)
{
	int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (a->ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0) {
		snprintf(err, errlen, "cannot bind %s: %s%s", a->text, strerror(errno),
			 priv_bind_hint(errno, a));
		close(fd);
		return -1;
	}
	if (listen(fd, 4096) < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", a->text, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void accept_some(struct worker *w, struct listener *l)
{
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		if (w->cfg->maxconn &&
		    atomic_load_explicit(&G.conns, memory_order_relaxed) >= (int64_t)w->cfg->maxconn) {
			/* leave them in the backlog (they wait, they do not fail);
			 * looked at again every 10 ms, since connections may end
			 * on any thread */
			l->paused = true;
			w->limit_paused = true;
			return;
		}
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				accept_failed(errno);
				l->paused = true;
				w->limit_paused = true;
			}
			return;
		}
		accept_works();
		stream_accept(w, l, fd, &ss);
	}
	/* more may be waiting: with edge triggering, come back next iteration */
	l->paused = true;
	w->paused_listeners = true;
}

static void free_dead(struct worker *w)
{
	while (w->dead_clients) {
		struct cconn *c = w->dead_clients;
		w->dead_clients = c->next;
		c->kind = 0; /* a pointer that outlives it fails its magic check */
		c->timer.magic = 0;
		free(c);
	}
	while (w->dead_servers) {
		struct sconn *sc = w->dead_servers;
		w->dead_servers = sc->next;
		sc->kind = 0;
		free(sc);
	}
}

static void close_listeners(struct worker *w)
{
	for (int i = 0; i < w->nlisteners; i++) {
		if (w->listeners[i].fd >= 0) {
			close(w->listeners[i].fd);
			w->listeners[i].fd = -1;
		}
	}
}

/*
 * Move this worker to the configuration generation nc (reload.c). Listeners
 * whose address did not change keep their socket (no connection refused
 * during a reload); the balancing state and the idle server connections
 * belong to a generation and start afresh. Client connections follow at
 * their next request (stream.c).
 */
static void worker_apply(struct worker *w, struct config *nc)
{
	char err[256];
	struct listener *old = w->listeners;
	int nold = w->nlisteners;
	int nl = 0;
	for (int f = 0; f < nc->nfrontends; f++)
		nl += nc->frontends[f]->nbinds;
	struct listener *ls = calloc((size_t)nl + 1, sizeof(*ls));
	uint64_t seed = w->reqid_seed ^ w->reqid_next;
	struct lb_thread *lb = lb_thread_new(nc, seed);
	struct sconn_pool **pools = calloc((size_t)nc->nbackends + 1, sizeof(*pools));
	struct h1_hdr *hdrs = calloc(nc->maxhdr + 1, sizeof(*hdrs));
	uint32_t *pool_cap = calloc((size_t)nc->nbackends + 1, sizeof(*pool_cap));
	bool ok = ls && lb && pools && hdrs && pool_cap;
	for (int b = 0; ok && b < nc->nbackends; b++) {
		pool_cap[b] = (uint32_t)nc->backends[b]->nservers + 1;
		ok = (pools[b] = calloc(pool_cap[b], sizeof(**pools))) != NULL;
	}
	if (!ok) {
		log_msg(LOG_ERR, "worker %d: out of memory applying the new configuration; "
			"it keeps serving the previous one", w->id);
		if (pools)
			for (int b = 0; b < nc->nbackends; b++)
				free(pools[b]);
		free(pools);
		free(pool_cap);
		free(ls);
		free(hdrs);
		lb_thread_free(lb);
		cfg_release(nc);
		return;
	}
	/* listeners: same address, same socket */
	int n = 0;
	for (int f = 0; f < nc->nfrontends; f++) {
		struct frontend *fe = nc->frontends[f];
		for (int b = 0; b < fe->nbinds; b++) {
			struct listener *l = &ls[n++];
			l->kind = OBJ_LISTENER;
			l->fe = fe;
			l->accept_proxy = fe->binds[b].accept_proxy;
			l->tls = fe->binds[b].tls;
			l->fd = -1;
			for (int k = 0; k < nold; k++)
				if (old[k].fd >= 0 && old[k].accept_proxy == l->accept_proxy &&
				    !strcmp(old[k].addr, fe->binds[b].text)) {
					l->fd = old[k].fd;
					old[k].fd = -1;
					break;
				}
			struct epoll_event lev = { .events = EPOLLIN | EPOLLET, .data.ptr = l };
			if (l->fd >= 0) {
				epoll_ctl(w->epfd, EPOLL_CTL_MOD, l->fd, &lev);
			} else {
				l->fd = open_listener(&fe->binds[b], err, sizeof(err));
				if (l->fd < 0) {
					log_msg(LOG_ERR, "worker %d: %s", w->id, err);
					continue;
				}
				int secs = 1;
				setsockopt(l->fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof(secs));
				epoll_ctl(w->epfd, EPOLL_CTL_ADD, l->fd, &lev);
			}
			l->addr = fe->binds[b].text;
			/* a listener kept across the reload may hold connections
			 * whose edge was consumed: look at it once */
			l->paused = true;
			w->paused_listeners = true;
		}
	}
	for (int k = 0; k < nold; k++)
		if (old[k].fd >= 0) {
			close(old[k].fd);
			old[k].fd = -1;
		}
	/* events of this iteration may still name the old array */
	free(w->old_listeners);
	w->old_listeners = old;
	w->listeners = ls;
	w->nlisteners = n;

	sconn_pool_sweep_all(w);
	sconn_pool_forget_sessions(w);
	for (int b = 0; b < w->cfg->nbackends; b++)
		free(w->pools[b]);
	free(w->pools);
	w->pools = pools;
	free(w->pool_cap);
	w->pool_cap = pool_cap;
	lb_thread_free(w->lb);
	w->lb = lb;
	free(w->hdrs);
	w->hdrs = hdrs;
	w->lim.max_line = nc->max_request_line;
	w->lim.max_head = nc->bufsize;
	w->lim.max_hdrs = nc->maxhdr;
	struct config *prev = w->cfg;
	w->cfg = nc; /* the reference workers_reload() took becomes ours */
	/* sequentially consistent, as workers_run()'s loads: of two workers
	 * taking nc at once, the later sees the other's store */
	atomic_store(&w->running_cfg, nc);
	cfg_release(prev);
	if (workers_run(nc))
		persist_keys_settle(nc);
}

static void handle_wakeup(struct worker *w)
{
	uint64_t v;
	ssize_t r = read(w->wakefd, &v, sizeof(v));
	(void)r;
	struct config *nc = atomic_exchange(&w->pending_cfg, NULL);
	if (nc && !w->stopping) {
		shared_loop_apply(w, nc);
		worker_apply(w, nc);
	} else if (nc) {
		cfg_release(nc);
	}
	if (atomic_load(&G.stopping) && !w->stopping) {
		w->stopping = true;
		close_listeners(w);
		struct cconn *c = w->clients, *next;
		for (; c; c = next) {
			next = c->next;
			stream_stop_soon(c);
		}
		sconn_pool_sweep(w);
	}
	if (atomic_load(&G.stopping) > 1 && !w->forced) {
		w->forced = true;
		while (w->clients)
			stream_close(w->clients);
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct epoll_event evs[MAX_EVENTS];
	uint64_t last_sweep = 0, last_expire = 0, last_limit_retry = 0;
	char name[16]; /* the kernel keeps 15 characters */

	/* named for the operator (top -H, ps -L, gdb) and for the tests,
	 * which find a worker's thread by it (doc/architecture.md) */
	snprintf(name, sizeof(name), "bollard-w%d", w->id);
	pthread_setname_np(pthread_self(), name);
	shared_loop_start(w);
	for (;;) {
		w->now_us = ev_now_us();
		w->now = w->now_us / 1000;
		int timeout = ev_next_timeout(&w->timers, w->now, 1000);
		if (w->paused_listeners)
			timeout = 0;
		else if (w->limit_paused && timeout > 10)
			timeout = 10;
		else if (w->nqueued && timeout > 5)
			timeout = 5; /* slots free up on other threads too */
		if (w->shared)
			timeout = shared_loop_timeout(w, timeout);
		if (w->h2_dirty)
			timeout = 0; /* HTTP/2 frames left from the last iteration */
		int n = epoll_wait(w->epfd, evs, MAX_EVENTS, timeout);
		w->now_us = ev_now_us();
		w->now = w->now_us / 1000;
		for (int i = 0; i < n; i++) {
			int kind = *(int *)evs[i].data.ptr;
			uint32_t e = evs[i].events;
			switch (kind) {
			case OBJ_LISTENER: {
				struct listener *l = evs[i].data.ptr;
				if (l->fd >= 0)
					accept_some(w, l);
				break;
			}
			case OBJ_CLIENT: {
				struct cconn *c = evs[i].data.ptr;
				BUG_ON(c->w != w); /* a connection lives on one thread */
				if (!c->closed)
					stream_client_event(c, e);
				break;
			}
			case OBJ_SERVER: {
				struct sconn *sc = evs[i].data.ptr;
				BUG_ON(sc->w != w);
				stream_server_event(sc, e);
				break;
			}
			case OBJ_WAKEUP:
				handle_wakeup(w);
				break;
			case OBJ_SHARED:
				shared_loop_event(evs[i].data.ptr, e);
				break;
			default:
				BUG_ON(!"epoll returned an object of no known kind");
			}
		}
		if (w->limit_paused && w->now - last_limit_retry >= 10) {
			last_limit_retry = w->now;
			w->limit_paused = false;
			w->paused_listeners = true; /* accept_some() pauses again if still full */
		}
		if (w->paused_listeners) {
			w->paused_listeners = false;
			for (int i = 0; i < w->nlisteners; i++) {
				struct listener *l = &w->listeners[i];
				if (l->paused && l->fd >= 0) {
					l->paused = false;
					accept_some(w, l);
				}
			}
		}
		if (w->nqueued)
			stream_queue_run(w);
		struct ev_timer *t;
		while ((t = ev_timer_expired(&w->timers, w->now))) {
			struct cconn *c = (struct cconn *)((char *)t - offsetof(struct cconn, timer));
			BUG_ON(c->kind != OBJ_CLIENT); /* only client connections have timers */
			if (!c->closed)
				stream_timeout(c);
		}
		if (w->shared)
			shared_loop_run(w); /* after the requests: their writes leave as one batch */
		/* bounded expiry work on the persistence tables, a little
		 * every 100 ms so that no iteration pays for a big sweep */
		if (w->now - last_expire >= 100) {
			last_expire = w->now;
			persist_expire(w->cfg, w->now);
		}
		if (w->now - last_sweep >= 1000) {
			last_sweep = w->now;
			/* the runtime API and /metrics read sessions per server */
			if (w->id == 0)
				persist_update_sessions(w->cfg);
			sconn_pool_sweep(w);
		}
		h2_run(w); /* frames the streams' server events and timers produced */
		log_flush(&w->log);
		free_dead(w);
		free(w->old_listeners);
		w->old_listeners = NULL;
		if (w->stopping && !w->clients)
			break;
	}
	sconn_pool_sweep(w);
	shared_loop_stop(w);
	free_dead(w);
	log_flush(&w->log);
	w->done = true;
	atomic_fetch_add(&nworkers_done, 1);
	return NULL;
}

static int worker_init(struct worker *w, int id, struct config *cfg, char *err, size_t errlen)
{
	w->id = id;
	w->cfg = cfg;
	atomic_store_explicit(&w->running_cfg, cfg, memory_order_relaxed);
	cfg_hold(cfg);
	w->wake_kind = OBJ_WAKEUP;
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	w->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->epfd < 0 || w->wakefd < 0) {
		snprintf(err, errlen, "epoll/eventfd: %s", strerror(errno));
		return -1;
	}
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &w->wake_kind };
	epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->wakefd, &ev);
	buf_pool_init(&w->bufs, cfg->bufsize);
	buf_pool_init(&w->h2_bodies, cfg->h2_stream_window + cfg->bufsize);
	if (log_thread_init(&w->log) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	uint64_t seed;
	randombytes_buf(&seed, sizeof(seed));
	w->reqid_seed = seed;
	w->lb = lb_thread_new(cfg, seed ^ (uint64_t)id);
	w->hdrs = calloc(cfg->maxhdr + 1, sizeof(*w->hdrs));
	w->pools = calloc((size_t)cfg->nbackends + 1, sizeof(*w->pools));
	w->pool_cap = calloc((size_t)cfg->nbackends + 1, sizeof(*w->pool_cap));
	if (!w->lb || !w->hdrs || !w->pools || !w->pool_cap) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (int b = 0; b < cfg->nbackends; b++) {
		w->pool_cap[b] = (uint32_t)cfg->backends[b]->nservers + 1;
		w->pools[b] = calloc(w->pool_cap[b], sizeof(**w->pools));
		if (!w->pools[b]) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	w->lim.max_line = cfg->max_request_line;
	w->lim.max_head = cfg->bufsize;
	w->lim.max_hdrs = cfg->maxhdr;

	int nl = 0;
	for (int f = 0; f < cfg->nfrontends; f++)
		nl += cfg->frontends[f]->nbinds;
	w->listeners = calloc((size_t)nl + 1, sizeof(*w->listeners));
	if (!w->listeners) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (int f = 0; f < cfg->nfrontends; f++) {
		struct frontend *fe = cfg->frontends[f];
		for (int b = 0; b < fe->nbinds; b++) {
			struct listener *l = &w->listeners[w->nlisteners++];
			l->kind = OBJ_LISTENER;
			l->fe = fe;
			l->addr = fe->binds[b].text;
			l->accept_proxy = fe->binds[b].accept_proxy;
			l->tls = fe->binds[b].tls;
			l->fd = open_listener(&fe->binds[b], err, errlen);
			if (l->fd < 0)
				return -1;
			/* wake up only when the request's first bytes are here,
			 * so the first read after accept finds them */
			int secs = 1;
			setsockopt(l->fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof(secs));
			struct epoll_event lev = { .events = EPOLLIN | EPOLLET, .data.ptr = l };
			epoll_ctl(w->epfd, EPOLL_CTL_ADD, l->fd, &lev);
		}
	}
	return 0;
}

int workers_start(struct config *cfg)
{
	char err[256];
	nworkers = cfg->threads > 0 ? cfg->threads : 1;
	workers = calloc((size_t)nworkers, sizeof(*workers));
	if (!workers) {
		log_msg(LOG_ERR, "out of memory");
		return -1;
	}
	for (int i = 0; i < nworkers; i++) {
		if (worker_init(&workers[i], i, cfg, err, sizeof(err)) < 0) {
			log_msg(LOG_ERR, "%s", err);
			return -1;
		}
	}
	for (int i = 0; i < nworkers; i++) {
		if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0) {
			log_msg(LOG_ERR, "cannot start worker thread %d", i);
			return -1;
		}
	}
	return 0;
}

static void wake_all(void)
{
	uint64_t one = 1;
	for (int i = 0; i < nworkers; i++) {
		ssize_t r = write(workers[i].wakefd, &one, sizeof(one));
		(void)r;
	}
}

bool workers_run(const struct config *c)
{
	for (int i = 0; i < nworkers; i++)
		if (atomic_load(&workers[i].running_cfg) != c)
			return false;
	return true;
}

void workers_reload(struct config *nc)
{
	for (int i = 0; i < nworkers; i++) {
		cfg_hold(nc);
		struct config *prev = atomic_exchange(&workers[i].pending_cfg, nc);
		if (prev)
			cfg_release(prev); /* superseded before the worker took it */
	}
	wake_all();
}

void workers_begin_stop(void)
{
	int zero = 0;
	atomic_compare_exchange_strong(&G.stopping, &zero, 1);
	wake_all();
}

bool workers_all_done(void)
{
	return atomic_load(&nworkers_done) == nworkers;
}

void workers_force_stop(void)
{
	atomic_store(&G.stopping, 2);
	wake_all();
}

void workers_join(void)
{
	for (int i = 0; i < nworkers; i++) {
		struct worker *w = &workers[i];
		pthread_join(w->thread, NULL);
		close_listeners(w);
		close(w->epfd);
		close(w->wakefd);
		log_thread_free(&w->log);
		buf_pool_destroy(&w->bufs);
		buf_pool_destroy(&w->h2_bodies);
		ev_heap_free(&w->timers);
		lb_thread_free(w->lb);
		sconn_pool_forget_sessions(w);
		if (w->pools)
			for (int b = 0; b < w->cfg->nbackends; b++)
				free(w->pools[b]);
		free(w->pools);
		free(w->pool_cap);
		free(w->hdrs);
		free(w->listeners);
		free(w->old_listeners);
		txn_pr_free_all(w);
		h2_free_all(w);
		h2_mem_free_all(&w->h2_mem);
		struct config *pending = atomic_exchange(&w->pending_cfg, NULL);
		if (pending)
			cfg_release(pending);
		cfg_release(w->cfg);
	}
	free(workers);
	workers = NULL;
}
