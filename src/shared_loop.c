/*
 * shared_loop.c - the shared tables in a worker's loop (shared_loop.h,
 * doc/scale-out.md "The integration").
 *
 * The link: its socket is watched level-triggered (hiredis reads at most
 * 16 KB per call, an edge could be lost), its one timer is a deadline kept
 * here and run after the iteration's I/O events and client timers, so that
 * the writes the iteration's requests queued leave in one pipelined batch.
 * Only worker 0's link logs its transitions: every worker's link sees the
 * same Redis, and a transition is worth one line, not one per thread. Error
 * replies are one spell for the process, said by whichever link meets
 * them: the key of one session fails on the worker that serves it.
 *
 * A request that needs Redis before its server is chosen parks in
 * CS_SHARED, holding one struct shared_wait (a fixed pool as large as the
 * link's request slots: nothing is allocated per request). The link calls
 * back exactly once, by the deadline at the latest; a connection that
 * closes meanwhile only clears the wait's pointer, so the late answer finds
 * nobody. What a request asks, in order:
 *  1. a local miss on a shared rule: GET. A hit is adopted (persist.c); a
 *     miss leaves the decision to the balancer (keyed methods: the hash
 *     placement, so the same server as on every other instance);
 *  2. a move off an unusable server: the compare-and-set against the old
 *     server's name, proposing the balancer's choice; LOST follows the
 *     winner. A learn key Redis did not know: SET NX GET, the same way.
 * The request waits for these as for a lookup: the server it goes to is
 * the one the fleet agreed on, or, on timeout, its own choice.
 */
#include "api.h"
#include "shared_loop.h"
#include "dispatch.h"
#include "global.h"
#include "persist.h"
#include "shared.h"
#include "worker-t.h"

#include <sys/epoll.h>

#define WAITS 256 /* the link's request slots (shared_link_conf.slots default) */
#define SAFETY_MS 1000

struct shared_loop;

struct shared_wait {
	struct shared_loop *s;
	struct cconn *c;              /* NULL: free, or its connection closed */
	struct shared_wait *next;     /* free list */
	uint8_t op;                   /* enum shared_op */
	int8_t rule;
};

struct shared_loop {
	int kind;                     /* OBJ_SHARED: the epoll object */
	struct worker *w;
	struct shared_link *l;
	int fd;
	bool watched;
	uint64_t when;                /* the link's timer, SHARED_NO_TIMER: none */
	uint32_t timeout_ms;          /* of the configuration the link follows */
	struct shared_wait waits[WAITS];
	struct shared_wait *free;
};

/* ---- the link in the loop ---------------------------------------------------- */

static int loop_io(void *ctx, struct shared_link *l, int fd, unsigned events)
{
	struct shared_loop *s = ctx;
	struct epoll_event ev = { .events = (events & SHARED_EV_READ ? EPOLLIN : 0u) |
					    (events & SHARED_EV_WRITE ? EPOLLOUT : 0u),
				  .data.ptr = s };

	if (!events) {
		if (s->watched)
			epoll_ctl(s->w->epfd, EPOLL_CTL_DEL, s->fd, NULL);
		s->watched = false;
		return 0;
	}
	if (s->watched && s->fd != fd) {
		epoll_ctl(s->w->epfd, EPOLL_CTL_DEL, s->fd, NULL);
		s->watched = false;
	}
	/* level-triggered: no EPOLLET */
	if (epoll_ctl(s->w->epfd, s->watched ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) < 0)
		return -1;
	s->fd = fd;
	s->watched = true;
	return 0;
}

static void loop_timer(void *ctx, struct shared_link *l, uint64_t when)
{
	struct shared_loop *s = ctx;

	s->when = when;
}

static void loop_log(void *ctx, int level, const char *msg)
{
	log_msg(level == 0 ? LOG_ERR : level == 1 ? LOG_WARN : LOG_INFO, "%s", msg);
}

static void loop_cleared(void *ctx, const char *table, size_t tlen, const void *key, size_t klen)
{
	struct shared_loop *s = ctx;

	persist_shared_cleared(s->w->cfg, table, tlen, key, klen);
}

static void open_link(struct shared_loop *s, const struct shared_conf *conf)
{
	/* every worker's link sees the same Redis: worker 0's says its
	 * transitions, and the refusals are one spell for all (shared_link.h) */
	static struct shared_spell spell;
	struct shared_link_loop lp = { s, loop_io, loop_timer, loop_log, loop_cleared, &spell,
				       s->w->id != 0 };
	char err[256] = "";

	s->l = shared_link_create(&conf->link, &lp, err, sizeof(err));
	if (!s->l) {
		log_msg(LOG_ERR, "worker %d: shared-tables: %s; its tables stay local", s->w->id, err);
		return;
	}
	s->timeout_ms = conf->link.timeout_ms ? conf->link.timeout_ms : 20;
	shared_register(s->l);
	shared_link_start(s->l);
}

static void close_link(struct shared_loop *s)
{
	struct shared_link *l = s->l;

	if (!l)
		return;
	/* requests still waiting get SHARED_DOWN from the free and go on;
	 * what they record must not reach a link being freed */
	s->l = NULL;
	shared_tl = NULL;
	shared_unregister(l);
	shared_link_free(l);
	s->when = SHARED_NO_TIMER;
}

void shared_loop_start(struct worker *w)
{
	shared_loop_apply(w, w->cfg);
}

void shared_loop_apply(struct worker *w, const struct config *nc)
{
	struct shared_loop *s = w->shared;
	char err[256] = "";

	if (!nc->shared && (!s || !s->l))
		return;
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s) {
			log_msg(LOG_ERR, "worker %d: shared-tables: out of memory; its tables stay local",
				w->id);
			return;
		}
		s->kind = OBJ_SHARED;
		s->w = w;
		s->fd = -1;
		s->when = SHARED_NO_TIMER;
		for (int i = WAITS; i-- > 0;) {
			s->waits[i].s = s;
			s->waits[i].next = s->free;
			s->free = &s->waits[i];
		}
		w->shared = s;
	}
	if (!nc->shared) {
		close_link(s);
		if (w->id == 0)
			log_msg(LOG_INFO, "reload: shared-tables removed: the tables are local only");
	} else if (!s->l) {
		open_link(s, nc->shared);
	} else {
		int rc = shared_link_reconfigure(s->l, &nc->shared->link, err, sizeof(err));

		if (rc < 0)
			log_msg(LOG_ERR, "worker %d: reload: shared-tables: %s; the link keeps its "
				"previous settings", w->id, err);
		else if (rc > 0 && w->id == 0)
			log_msg(LOG_INFO, "reload: shared-tables now %s: re-opening the links, "
				"queued writes kept", nc->shared->url);
		if (rc >= 0)
			s->timeout_ms = nc->shared->link.timeout_ms ? nc->shared->link.timeout_ms : 20;
	}
	shared_tl = s->l;
}

void shared_loop_stop(struct worker *w)
{
	if (!w->shared)
		return;
	close_link(w->shared);
	free(w->shared);
	w->shared = NULL;
}

int shared_loop_timeout(struct worker *w, int timeout_ms)
{
	uint64_t when = w->shared->when;

	if (when == SHARED_NO_TIMER)
		return timeout_ms;
	if (when <= w->now)
		return 0;
	return when - w->now < (uint64_t)timeout_ms ? (int)(when - w->now) : timeout_ms;
}

void shared_loop_event(void *obj, uint32_t events)
{
	struct shared_loop *s = obj;

	BUG_ON(s->kind != OBJ_SHARED);
	if (!s->l)
		return;
	shared_link_on_io(s->l, (events & (EPOLLIN | EPOLLHUP | EPOLLERR) ? SHARED_EV_READ : 0u) |
				(events & (EPOLLOUT | EPOLLERR) ? SHARED_EV_WRITE : 0u));
}

void shared_loop_run(struct worker *w)
{
	struct shared_loop *s = w->shared;

	if (!s->l)
		return;
	if (atomic_load_explicit(&shared_nposted, memory_order_relaxed))
		shared_take_posted(s->l);
	/* a fresh clock: writes queued during this iteration are due now */
	if (s->when != SHARED_NO_TIMER && ev_now_ms() >= s->when)
		shared_link_on_timer(s->l);
}

/* ---- requests waiting for Redis ---------------------------------------------- */

/* Why Redis had no say: an error reply (OOM, WRONGTYPE...) is not an
 * outage, and the access log tells them apart. */
static uint8_t unanswered(enum shared_result res)
{
	return res == SHARED_TIMEOUT ? FROM_TIMEOUT : res == SHARED_ERROR ? FROM_ERROR : FROM_DOWN;
}

static void resume(struct cconn *c, enum shared_op op, int rule, enum shared_result res,
		   const char *v, size_t n)
{
	struct persist_req *pr = c->tx.pr;
	struct backend *be = c->tx.be;

	BUG_ON(c->state != CS_SHARED || !pr);
	c->tx.shwait = NULL;
	c->state = CS_HEAD; /* between its head and its server, as dispatch_start() expects */
	if (op == SHARED_OP_GET) {
		if (res == SHARED_HIT) {
			persist_shared_found(be, pr, rule, v, n, c->w->now);
		} else if (res == SHARED_MISS) {
			pr->from = pr->place ? FROM_HASH : FROM_LOCAL;
			persist_shared_missed(be, pr, rule);
		} else {
			pr->from = unanswered(res);
		}
		if (pr->fail) {
			stream_error(c, 503, "the server holding this session is unavailable",
				     "session-server-down");
			stream_drive(c);
			return;
		}
		pr->shared = pr->bind >= 0 || pr->place;
	} else if (res == SHARED_WON || res == SHARED_LOST) {
		persist_shared_agreed(be, pr, res == SHARED_WON, v, n);
	} else {
		pr->from = unanswered(res);
	}
	dispatch_start(c);
	if (!c->closed)
		stream_drive(c);
}

static void on_answer(void *arg, enum shared_result res, const char *v, size_t n)
{
	struct shared_wait *wt = arg;
	struct shared_loop *s = wt->s;
	struct cconn *c = wt->c;

	wt->c = NULL;
	wt->next = s->free;
	s->free = wt;
	if (c)
		resume(c, (enum shared_op)wt->op, wt->rule, res, v, n);
}

/* Ask Redis op about rule's key for c (pick: the server it proposes);
 * true when c now waits for the answer. */
static bool ask(struct cconn *c, struct shared_loop *s, enum shared_op op, int rule,
		const struct server *pick)
{
	struct persist_req *pr = c->tx.pr;
	const struct persist_rule *r = &((struct persist_rules *)c->tx.be->persist)->r[rule];
	struct shared_wait *wt = s->free;
	char k[PERSIST_KEY_MAX + 1];
	size_t kn;
	int rc;

	if (!wt || !(kn = persist_shared_key(r, pr, rule, k)))
		return false;
	if (op == SHARED_OP_GET)
		rc = shared_link_get(s->l, r->shared_name, k, kn, s->timeout_ms, on_answer, wt);
	else if (op == SHARED_OP_SETNX)
		rc = shared_link_setnx(s->l, r->shared_name, k, kn, pick->name, strlen(pick->name),
				       r->expire_ms, s->timeout_ms, on_answer, wt);
	else
		rc = shared_link_cas(s->l, r->shared_name, k, kn, pr->lost->name,
				     strlen(pr->lost->name), pick->name, strlen(pick->name),
				     r->expire_ms, s->timeout_ms, on_answer, wt);
	if (rc < 0)
		return false;
	s->free = wt->next;
	wt->c = c;
	wt->op = (uint8_t)op;
	wt->rule = (int8_t)rule;
	c->tx.shwait = wt;
	c->state = CS_SHARED;
	c->tx.shared_deadline = c->w->now + s->timeout_ms + SAFETY_MS;
	return true;
}

bool shared_loop_decide(struct cconn *c)
{
	struct persist_req *pr = c->tx.pr;
	struct shared_loop *s = c->w->shared;

	pr->shared = false;
	if (pr->place) {
		/* the balancer places it by its key: the same server everywhere */
		c->tx.hash_key = pr->place_hash;
		c->tx.has_hash_key = true;
	}
	if (!s || !s->l) {
		if (pr->ask >= 0 || pr->bind >= 0)
			pr->from = FROM_DOWN;
		pr->ask = pr->bind = -1;
		return false;
	}
	if (pr->ask >= 0) {
		int i = pr->ask;

		pr->ask = -1;
		if (ask(c, s, SHARED_OP_GET, i, NULL))
			return true;
		pr->from = FROM_DOWN; /* down or busy: counted by the link */
	}
	if (pr->bind >= 0) {
		int i = pr->bind;
		struct server *pick = pr->srv ? pr->srv : dispatch_balance(c);

		pr->bind = -1;
		if (!pick)
			return false; /* nothing usable: choose_server() answers */
		pr->srv = pick;
		pr->assigned = true;
		return ask(c, s, pr->lost ? SHARED_OP_CAS : SHARED_OP_SETNX, i, pick);
	}
	return false;
}

void shared_loop_cancel(struct cconn *c)
{
	struct shared_wait *wt = c->tx.shwait;

	wt->c = NULL; /* the answer comes back to the pool, for nobody */
	c->tx.shwait = NULL;
}

void shared_loop_expired(struct cconn *c)
{
	struct shared_wait *wt = c->tx.shwait;
	enum shared_op op = (enum shared_op)wt->op;
	int rule = wt->rule;

	shared_loop_cancel(c);
	resume(c, op, rule, SHARED_TIMEOUT, NULL, 0);
}
