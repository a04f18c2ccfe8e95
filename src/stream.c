/*
 * stream.c - the client connection's state machine: accept to close.
 *
 * A connection goes through these states (stream.h); each is driven by the
 * module that owns it:
 *
 *   CS_PROXY    (here) the PROXY protocol header of `bind ... accept-proxy`;
 *   CS_HEAD     h1_exchange.c: the next request head, its transaction;
 *   CS_QUEUED, CS_CONNECT  dispatch.c: which server, queueing, connecting;
 *   CS_FORWARD  h1_exchange.c: request and response both ways;
 *   CS_TUNNEL   tunnel.c: after a 101 to an allowed upgrade, bytes both ways;
 *   CS_CLOSING / CS_LINGER  (here) flush a last response, shut the write
 *               side, and drain the client briefly so that close() does not
 *               reset a response the client has not read yet.
 *
 * This file owns the connection's life (accept, close), bollard's own
 * error responses, the driving loop, the timer and the timeouts. Bytes go
 * through the connection's transport (xprt.h); every transaction ends in
 * one access-log record (txn_log.c).
 */
#include "api.h"
#include "stream.h"
#include "global.h"
#include "http.h"
#include "dispatch.h"
#include "h1_exchange.h"
#include "h2.h"
#include "proxyproto.h"
#include "reload.h"
#include "route.h"
#include "tunnel.h"
#include "xprt_tls.h"
#include "shared_loop.h"
#include "worker-t.h"

#include <sys/epoll.h>

#define LINGER_MS 1000
/*
 * An idle TLS connection gives OpenSSL's record buffers back
 * (xprt_tls_release: ~33 KB of heap, ~10 KB resident, BENCHMARKS.md),
 * which HAProxy and NGINX do after every record (SSL_MODE_RELEASE_BUFFERS)
 * and bollard not on a busy connection, which must not allocate per
 * request. Which waits are idle is learnt from the connection's last one:
 * a wait after a response gives them back at once, unless the
 * connection's previous wait ended within STREAM_TLS_IDLE_MS (it is in a
 * burst: a keep-alive client in use, a page's requests), and then after
 * STREAM_TLS_IDLE_MS. So a busy connection takes them again once, at its
 * second request, and never after; a connection that serves one request
 * now and then (most of an edge's: between pages, parked HTTP/2) holds
 * them for no time, which is also what keeps the memory of a burst of new
 * connections low (buffers freed late stay resident in malloc's free
 * lists). The wait before the first request (the request usually follows
 * the handshake within a round trip) and a wait whose release OpenSSL
 * refused (it held bytes of a record) take the long delay and teach
 * nothing.
 */
#define STREAM_TLS_IDLE_MS 100

/* ---- connection lifetime ------------------------------------------------------ */

void stream_accept(struct worker *w, struct listener *l, int fd,
		   const struct sockaddr_storage *ss)
{
	struct cconn *c = calloc(1, sizeof(*c));
	if (!c) {
		struct xconn x;
		xconn_init(&x, fd, &xprt_tcp);
		xconn_close(&x);
		return;
	}
	c->kind = OBJ_CLIENT;
	xconn_init(&c->xc, fd, l->tls ? &xprt_tls : &xprt_tcp);
	c->xc.ctx = (void *)l->tls; /* the TLS transport's init takes the bind from here */
	c->tls = l->tls != NULL;
	c->w = w;
	c->fe = l->fe;
	c->gen = w->cfg;
	cfg_hold(c->gen);
	c->xc.can_write = true;
	c->tx.minor = 1;
	c->peer = *ss;
	ev_timer_init(&c->timer);
	route_addr_text(&c->peer, c->peer_ip, sizeof(c->peer_ip));
	c->client = c->peer;
	memcpy(c->client_ip, c->peer_ip, sizeof(c->client_ip));
	strcpy(c->scheme, STREAM_OWN_SCHEME(c));
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = c };
	if (c->xc.ops->init(&c->xc) < 0 || epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		xconn_close(&c->xc);
		cfg_release(c->gen);
		free(c);
		return;
	}
	c->next = w->clients;
	if (w->clients)
		w->clients->prev = c;
	w->clients = c;
	w->nclients++;
	atomic_fetch_add_explicit(&G.conns, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&G.conns_total, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->fe->conns_total, 1, memory_order_relaxed);
	c->state = l->accept_proxy ? CS_PROXY : CS_HEAD;
	c->head_deadline = w->now + c->fe->to.http_request;
	/* the client usually sent its request with the handshake: try now */
	c->xc.can_read = true;
	stream_drive(c);
}

void stream_close(struct cconn *c)
{
	struct worker *w = c->w;
	if (c->closed)
		return;
	c->closed = true;
	if (c->h2)
		h2_conn_closed(c); /* its streams end first */
	if (c->tx.qsrv)
		dispatch_queue_del(c);
	if (unlikely(c->tx.shwait))
		shared_loop_cancel(c);
	if (c->tx.sc) {
		sconn_close(w, c->tx.sc);
		c->tx.sc = NULL;
	}
	txn_pr_put(w, &c->tx);
	ev_timer_del(&w->timers, &c->timer);
	xconn_close(&c->xc);
	buf_put(&w->bufs, &c->in);
	buf_put(&w->bufs, &c->tx.rq);
	buf_put(&w->bufs, &c->out);
	if (c->h2p) {
		/* an HTTP/2 stream: not in the worker's list, back to its pool */
		cfg_release(c->gen);
		c->gen = NULL;
		h2_stream_closed(c);
		return;
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		w->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->nclients--;
	atomic_fetch_sub_explicit(&G.conns, 1, memory_order_relaxed);
	cfg_release(c->gen);
	c->gen = NULL;
	/* freed at the end of the loop iteration: events for it may still be
	 * queued in this epoll_wait batch (worker.c checks c->closed) */
	c->prev = NULL;
	c->next = w->dead_clients;
	w->dead_clients = c;
}

/* ---- I/O (through the connection's transport, xprt.h) ------------------------- */

int stream_read_client(struct cconn *c)
{
	return xconn_read(&c->xc, &c->in, &c->w->bufs);
}

int stream_read_server(struct sconn *sc)
{
	return xconn_read(&sc->xc, &sc->in, &sc->w->bufs);
}

/* CS_PROXY (bind ... accept-proxy): the connection starts with a PROXY
 * protocol v1 or v2 header from the load balancer in front of us, which
 * tells who the client is. Anything else closes the connection: a peer
 * that may speak PROXY must always speak it. */
static int do_proxy(struct cconn *c)
{
	int r = stream_read_client(c);
	if (buf_empty(&c->in)) {
		if (c->xc.eof || r < 0)
			stream_close(c);
		return 0;
	}
	struct sockaddr_storage src;
	int n = proxyproto_parse(buf_rptr(&c->in), buf_len(&c->in), &src);
	if (n == PROXYPROTO_INCOMPLETE) {
		if (buf_len(&c->in) >= c->w->bufs.size || c->xc.eof)
			stream_close(c);
		return r > 0;
	}
	if (n < 0) {
		atomic_fetch_add_explicit(&c->fe->rejected, 1, memory_order_relaxed);
		stream_close(c);
		return 0;
	}
	buf_consume(&c->in, (uint32_t)n);
	if (src.ss_family != AF_UNSPEC) {
		c->peer = src;
		route_addr_text(&c->peer, c->peer_ip, sizeof(c->peer_ip));
		c->client = c->peer;
		memcpy(c->client_ip, c->peer_ip, sizeof(c->client_ip));
	}
	c->state = CS_HEAD;
	return 1;
}

/* Abort a request whose response has started: nothing can be said to the
 * client any more but closing. */
void stream_abort(struct cconn *c, const char *term)
{
	c->tx.term = term;
	if (!c->tx.logged) {
		txn_log(c);
		c->tx.logged = true;
	}
	stream_close(c);
}

/* ---- bollard's own responses and closing ------------------------------------------ */

void stream_error(struct cconn *c, int status, const char *detail, const char *term)
{
	struct worker *w = c->w;
	if (c->tx.sc) {
		sconn_close(w, c->tx.sc);
		c->tx.sc = NULL;
	}
	if (c->state == CS_FORWARD && c->tx.bytes_out > c->tx.bytes_1xx) {
		/* part of a final response already went out (its head may be
		 * gone from c->out): only closing is left */
		stream_abort(c, term);
		return;
	}
	if (!c->tx.t_start)
		c->tx.t_start = w->now_us;
	c->tx.status = status;
	c->tx.term = term;
	if (status >= 500 && c->tx.be)
		atomic_fetch_add_explicit(&c->tx.be->responses[5], 1, memory_order_relaxed);
	if (buf_get(&w->bufs, &c->out) < 0) {
		stream_abort(c, term);
		return;
	}
	c->out.head = c->out.tail = 0;
	/* `hsts`: bollard's own answers over TLS carry the policy too (RFC
	 * 6797 section 7: every response over secure transport may) */
	int n = http_build_error(c->out.data, c->w->bufs.size, status, detail,
				 c->tls && c->fe->hsts ? c->fe->hsts_value : NULL);
	c->out.tail = n > 0 ? (uint32_t)n : 0;
	c->close_after = true;
	c->state = CS_CLOSING;
	c->close_deadline = w->now + c->fe->to.client;
}

static int do_closing(struct cconn *c)
{
	struct worker *w = c->w;
	if (c->out.data && !buf_empty(&c->out)) {
		struct iovec iov = { buf_rptr(&c->out), buf_len(&c->out) };
		ssize_t wn = xconn_writev(&c->xc, &iov, 1);
		if (wn < 0) {
			stream_abort(c, c->tx.term ? c->tx.term : "client-closed");
			return 0;
		}
		c->tx.bytes_out += (uint64_t)(wn > 0 ? wn : 0);
		buf_consume(&c->out, (uint32_t)(wn > 0 ? wn : 0));
		if (!buf_empty(&c->out))
			return wn > 0;
	}
	if (!c->tx.logged && c->tx.status) {
		txn_log(c);
		c->tx.logged = true;
	}
	buf_put(&w->bufs, &c->out);
	buf_put(&w->bufs, &c->tx.rq);
	/* Shut our side, then drain what the client still sends for a while:
	 * closing with unread input would reset the connection and could
	 * destroy the response before the client reads it. */
	xconn_shutw(&c->xc);
	c->state = CS_LINGER;
	c->close_deadline = w->now + LINGER_MS;
	return 1;
}

static int do_linger(struct cconn *c)
{
	char sink[4096];
	for (int i = 0; i < 16; i++) {
		ssize_t n = xconn_recv(&c->xc, sink, sizeof(sink));
		if (n > 0)
			continue;
		if (n == 0)
			return 0; /* nothing more for now */
		stream_close(c);
		return 0;
	}
	return 0; /* a flood: wait for the next edge or the deadline */
}

/* ---- driving ----------------------------------------------------------------------- */

void stream_tls_idle(struct cconn *c, bool served)
{
	if (c->tls_idle_since || c->xc.ops != &xprt_tls)
		return;
	c->tls_idle_since = c->w->now;
	c->tls_long = !served;
	c->tls_released = false;
}

void stream_tls_busy(struct cconn *c)
{
	if (!c->tls_idle_since)
		return;
	if (!c->tls_long)
		c->tls_bursty = c->w->now - c->tls_idle_since < STREAM_TLS_IDLE_MS;
	c->tls_idle_since = 0;
}

void stream_tls_stirred(struct cconn *c)
{
	if (c->tls_idle_since && c->tls_released) {
		c->tls_idle_since = c->w->now;
		c->tls_released = false;
	}
}

/* When c's idle wait gives OpenSSL's buffers back (EV_NO_TIMER: not). */
static uint64_t tls_release_at(const struct cconn *c)
{
	if (!c->tls_idle_since || c->tls_released)
		return EV_NO_TIMER;
	return c->tls_idle_since + (c->tls_long || c->tls_bursty ? STREAM_TLS_IDLE_MS : 0);
}

/* When c's state times out. */
static uint64_t deadline(struct cconn *c)
{
	uint64_t when = EV_NO_TIMER;
	switch (c->state) {
	case CS_PROXY:
		when = c->head_deadline;
		break;
	case CS_HEAD:
		if (c->tx.t_start)
			when = c->head_deadline;
		else if (c->idle_deadline)
			when = c->idle_deadline;
		else
			when = c->head_deadline; /* fresh connection: no request yet */
		break;
	case CS_QUEUED:
		when = c->tx.queue_deadline;
		break;
	case CS_SHARED:
		when = c->tx.shared_deadline;
		break;
	case CS_CONNECT:
		when = c->tx.conn_deadline;
		break;
	case CS_FORWARD: {
		bool client;
		when = h1_exchange_deadline(c, &client);
		break;
	}
	case CS_TUNNEL:
		when = c->tx.t_tun + c->tx.be->to.tunnel;
		break;
	case CS_CLOSING:
	case CS_LINGER:
		when = c->close_deadline;
		break;
	case CS_H2:
		when = h2_deadline(c);
		break;
	}
	return when;
}

static void arm_timer(struct cconn *c)
{
	uint64_t when = MIN(deadline(c), tls_release_at(c));
	if (ev_timer_set(&c->w->timers, &c->timer, when) < 0)
		stream_close(c); /* cannot time it: do not keep it unbounded */
}

void stream_drive(struct cconn *c)
{
	for (;;) {
		int p = 0;
		/* between transactions, waiting in the queue, or closing, a
		 * connection holds no server connection; queued means queued */
		BUG_ON(c->tx.sc && (c->state == CS_PROXY || c->state == CS_HEAD ||
				    c->state == CS_QUEUED || c->state >= CS_CLOSING));
		BUG_ON((c->state == CS_QUEUED) != (c->tx.qsrv != NULL));
		switch (c->state) {
		case CS_PROXY: p = do_proxy(c); break;
		case CS_HEAD: p = h1_exchange_head(c); break;
		case CS_QUEUED: p = 0; break; /* stream_queue_run() moves it on */
		case CS_SHARED: p = 0; break; /* Redis's answer moves it on */
		case CS_CONNECT: p = dispatch_connect_step(c); break;
		case CS_FORWARD: p = h1_exchange_forward(c); break;
		case CS_TUNNEL: p = tunnel_step(c); break;
		case CS_CLOSING: p = do_closing(c); break;
		case CS_LINGER: p = do_linger(c); break;
		case CS_H2: p = h2_step(c); break;
		}
		if (c->closed)
			return;
		if (p <= 0)
			break;
	}
	if (c->w->stopping && c->state == CS_HEAD && !c->tx.t_start && (!c->in.data || buf_empty(&c->in))) {
		stream_close(c);
		return;
	}
	arm_timer(c);
}

void stream_client_event(struct cconn *c, uint32_t events)
{
	xconn_events(&c->xc, events);
	stream_drive(c);
}

void stream_server_event(struct sconn *sc, uint32_t events)
{
	xconn_events(&sc->xc, events);
	if (sc->dead)
		return;
	if (!sc->owner) {
		/* idle in the pool: the server closed it, or sent bytes HTTP
		 * does not allow between responses; either way it is useless */
		if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
			sconn_pool_drop(sc->w, sc);
		return;
	}
	stream_drive(sc->owner);
}

void stream_timeout(struct cconn *c)
{
	uint64_t now = c->w->now;
	if (tls_release_at(c) <= now && now < deadline(c)) {
		/* not a timeout: the idle TLS connection's buffers go back (a
		 * connection closing gives up; when OpenSSL still holds bytes,
		 * they are asked for again later) */
		if ((c->state != CS_HEAD && c->state != CS_H2) || xprt_tls_release(&c->xc)) {
			c->tls_released = true;
		} else {
			c->tls_idle_since = now;
			c->tls_long = true;
		}
		arm_timer(c);
		return;
	}
	switch (c->state) {
	case CS_PROXY:
		stream_close(c);
		return;
	case CS_HEAD:
		if (c->tx.t_start && c->in.data && !buf_empty(&c->in)) {
			atomic_fetch_add_explicit(&c->fe->rejected, 1, memory_order_relaxed);
			stream_error(c, 408, "request head not received in time", "request-timeout");
			stream_drive(c);
		} else {
			stream_close(c);
		}
		return;
	case CS_QUEUED:
		dispatch_queue_del(c);
		stream_error(c, 503, "the server holding this session stayed full", "queue-timeout");
		stream_drive(c);
		return;
	case CS_SHARED:
		shared_loop_expired(c);
		return;
	case CS_CONNECT:
		dispatch_connect_failed(c, true);
		if (!c->closed)
			stream_drive(c);
		return;
	case CS_FORWARD: {
		bool client;
		h1_exchange_deadline(c, &client);
		if (!client)
			stream_error(c, 504, "the server did not answer in time", "server-timeout");
		else if (c->tx.rq_state != RQ_DONE && c->tx.bytes_out <= c->tx.bytes_1xx)
			stream_error(c, 408, "request body not received in time", "client-timeout");
		else
			stream_abort(c, "client-timeout"); /* it stopped taking the response */
		if (!c->closed)
			stream_drive(c);
		return;
	}
	case CS_TUNNEL:
		stream_abort(c, "tunnel-timeout");
		return;
	case CS_CLOSING:
	case CS_LINGER:
		stream_close(c);
		return;
	case CS_H2:
		h2_timeout(c);
		return;
	}
}

void stream_stop_soon(struct cconn *c)
{
	if (c->state == CS_H2)
		h2_stop_soon(c);
	else if (c->state == CS_HEAD && !c->tx.t_start && (!c->in.data || buf_empty(&c->in)))
		stream_close(c);
	else
		c->close_after = true;
}

