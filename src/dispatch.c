/*
 * dispatch.c - from a parsed request to a server connection: which server
 * (choose_server(): persistence first, then the balancer; on-server-down
 * when the session's server fails this request), waiting in the worker's
 * queue while a persistent request's server is at maxconn, then an idle
 * pooled connection or a non-blocking connect, retried within `retries`.
 * Part of the stream state machine (stream.c), split out by
 * responsibility: it moves a request from CS_HEAD to CS_QUEUED,
 * CS_CONNECT and CS_FORWARD, or answers it (stream_error).
 */
#include "api.h"
#include "dispatch.h"
#include "check.h"
#include "lb.h"
#include "lb_hash.h"
#include "shared_loop.h"
#include "worker-t.h"

#include <sys/epoll.h>

static void connect_to(struct cconn *c, struct server *s);

/*
 * "Which server, and why": persistence (persist.c, with the persistence
 * issue) answers first when the backend has persist rules; the balancer is
 * asked only when it has no answer.
 */
/* The balancer: consistent hashing when the request has the backend's hash
 * key (a request without it is balanced like `random`), else be->balance. */
struct server *dispatch_balance(struct cconn *c)
{
	if (c->tx.has_hash_key)
		return lb_hash_pick(c->tx.be, c->tx.hash_key, c->tx.tried, c->tx.ntried);
	return lb_pick(c->w->lb, c->tx.be, c->tx.tried, c->tx.ntried);
}

static struct server *choose_server(struct cconn *c, bool *parked)
{
	struct backend *be = c->tx.be;
	struct persist_req *pr = c->tx.pr;
	if (!be->npersist)
		return dispatch_balance(c);
	struct server *s = pr->srv;
	for (int i = 0; s && i < c->tx.ntried; i++)
		if (c->tx.tried[i] == s) {
			/* it failed this request: on-server-down decides, as
			 * for a down server (its replica, a 503, or the
			 * balancer) */
			persist_connect_failed(be, pr, c->tx.tried, c->tx.ntried);
			if (pr->fail)
				return NULL;
			s = pr->srv;
			break;
		}
	/* shared tables: Redis is asked first, at most `timeout` */
	if (unlikely(pr->shared) && (*parked = shared_loop_decide(c)))
		return NULL;
	s = pr->srv;
	if (!s) {
		s = dispatch_balance(c);
		if (!s)
			return NULL;
		pr->assigned = true;
	}
	/* a session that leaves its server moves once: the new server is
	 * recorded (table entries now, a new cookie with the response) */
	persist_record(be, pr, s, c->w->now);
	return s;
}

void dispatch_connect_failed(struct cconn *c, bool timeout)
{
	struct server *s = c->tx.srv;
	atomic_fetch_add_explicit(&s->connect_errors, 1, memory_order_relaxed);
	check_passive_failure(s); /* counts toward `fall` (check.c) */
	if (c->tx.sc) {
		sconn_close(c->w, c->tx.sc);
		c->tx.sc = NULL;
	}
	if (c->tx.attempts <= (int)c->tx.be->retries) {
		dispatch_start(c);
		return;
	}
	if (timeout)
		stream_error(c, 504, "connect timeout", "connect-timeout");
	else
		stream_error(c, 502, "cannot connect to a server", "connect-failed");
}

static void attach(struct cconn *c, struct sconn *sc)
{
	BUG_ON(sc->owner || c->tx.sc); /* one server connection per request, one owner each */
	sc->owner = c;
	c->tx.sc = sc;
	c->tx.t_srv = c->tx.t_took = c->tx.t_head = c->w->now;
	if (!sc->counted) {
		atomic_fetch_add_explicit(&sc->srv->conns, 1, memory_order_relaxed);
		sc->counted = true;
	}
}

/* ---- per-server queue (maxconn) ----------------------------------------------- */

static void queue_add(struct cconn *c, struct server *s)
{
	struct worker *w = c->w;
	c->tx.qsrv = s;
	c->state = CS_QUEUED;
	c->tx.queue_deadline = w->now + c->tx.be->to.queue;
	c->tx.qnext = NULL;
	c->tx.qprev = w->queue_tail;
	if (w->queue_tail)
		w->queue_tail->tx.qnext = c;
	else
		w->queue_head = c;
	w->queue_tail = c;
	w->nqueued++;
	atomic_fetch_add_explicit(&s->queued, 1, memory_order_relaxed); /* the dashboard's queue */
}

void dispatch_queue_del(struct cconn *c)
{
	struct worker *w = c->w;
	if (c->tx.qprev)
		c->tx.qprev->tx.qnext = c->tx.qnext;
	else
		w->queue_head = c->tx.qnext;
	if (c->tx.qnext)
		c->tx.qnext->tx.qprev = c->tx.qprev;
	else
		w->queue_tail = c->tx.qprev;
	c->tx.qnext = c->tx.qprev = NULL;
	atomic_fetch_sub_explicit(&c->tx.qsrv->queued, 1, memory_order_relaxed);
	c->tx.qsrv = NULL;
	w->nqueued--;
}

/*
 * Slots free up on any thread, so each worker looks at its queue once per
 * loop iteration (worker.c keeps the loop awake while it is not empty).
 * Oldest first; a request whose server became unusable meanwhile moves.
 */
void stream_queue_run(struct worker *w)
{
	struct cconn *c = w->queue_head, *next;
	for (; c; c = next) {
		next = c->tx.qnext;
		struct server *s = c->tx.qsrv;
		int st = atomic_load_explicit(&s->state, memory_order_relaxed);
		if (st != SRV_READY && st != SRV_DRAIN) {
			dispatch_queue_del(c);
			if (c->tx.ntried < (int)ARRAY_SIZE(c->tx.tried))
				c->tx.tried[c->tx.ntried++] = s;
			persist_move(c->tx.pr, st == SRV_MAINT ? MOVED_MAINT : MOVED_DOWN);
			dispatch_start(c);
			stream_drive(c);
			continue;
		}
		if (atomic_load_explicit(&s->conns, memory_order_relaxed) >= (int64_t)s->maxconn)
			continue;
		dispatch_queue_del(c);
		connect_to(c, s);
		stream_drive(c);
	}
}

void dispatch_start(struct cconn *c)
{
	bool parked = false;
	struct server *s = choose_server(c, &parked);
	if (parked)
		return; /* CS_SHARED: Redis's answer starts it again */
	if (!s && c->tx.pr && c->tx.pr->fail) {
		stream_error(c, 503, "the server holding this session is unavailable",
			   "session-server-down");
		return;
	}
	if (!s) {
		atomic_fetch_add_explicit(&c->tx.be->no_server, 1, memory_order_relaxed);
		stream_error(c, 503, "no server is available", "no-server");
		return;
	}
	c->tx.srv = s;
	if (c->tx.be->npersist && c->tx.pr && s == c->tx.pr->srv && c->tx.pr->result == PR_HIT && s->maxconn &&
	    atomic_load_explicit(&s->conns, memory_order_relaxed) >= (int64_t)s->maxconn) {
		/* SPEC 3.2: a persistent request waits for its full server (new
		 * ones were already sent elsewhere by lb_usable()) */
		queue_add(c, s);
		return;
	}
	connect_to(c, s);
}

/* Connect c to s: an idle pooled connection, else a new one. */
static void connect_to(struct cconn *c, struct server *s)
{
	struct worker *w = c->w;
	c->tx.attempts++;
	c->tx.srv = s;
	if (c->tx.ntried < (int)ARRAY_SIZE(c->tx.tried))
		c->tx.tried[c->tx.ntried++] = s;

	struct sconn *sc = c->tx.fresh_only || c->gen != w->cfg ? NULL : sconn_pool_take(w, s);
	if (sc) {
		attach(c, sc);
		c->tx.t_connect = w->now_us;
		c->state = CS_FORWARD;
		return;
	}
	sc = calloc(1, sizeof(*sc));
	int fd = sc ? xprt_tcp_socket(s->addr.ss.ss_family) : -1;
	if (fd < 0) {
		free(sc);
		log_msg(LOG_ERR, "cannot create a socket for server %s/%s: %s", c->tx.be->name, s->name,
			strerror(errno));
		stream_error(c, 503, "out of resources", "no-resources");
		return;
	}
	sc->kind = OBJ_SERVER;
	/* the transport toward servers: plain TCP (a TLS one plugs in here) */
	xconn_init(&sc->xc, fd, &xprt_tcp);
	sc->srv = s;
	sc->w = w;
	sc->xc.ops->init(&sc->xc);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = sc };
	epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev);
	attach(c, sc);
	int r = xprt_tcp_connect(&sc->xc, (const struct sockaddr *)&s->addr.ss, s->addr.len);
	if (r > 0) {
		check_passive_success(s);
		sc->connected = true;
		c->tx.t_connect = w->now_us;
		c->state = CS_FORWARD;
	} else if (r == 0) {
		c->state = CS_CONNECT;
		c->tx.conn_deadline = w->now + c->tx.be->to.connect;
	} else {
		dispatch_connect_failed(c, false);
	}
}

/* CS_CONNECT: wait for the connect() outcome. */
int dispatch_connect_step(struct cconn *c)
{
	struct sconn *sc = c->tx.sc;
	BUG_ON(c->state != CS_CONNECT || !sc || sc->connected);
	if (!sc->xc.can_write && !sc->xc.can_read && !sc->xc.eof)
		return 0;
	int r = xconn_established(&sc->xc);
	if (r < 0) {
		dispatch_connect_failed(c, false);
		return 1;
	}
	if (r == 0)
		return 0;
	sc->connected = true;
	check_passive_success(sc->srv);
	c->tx.t_connect = c->w->now_us;
	c->state = CS_FORWARD;
	return 1;
}
