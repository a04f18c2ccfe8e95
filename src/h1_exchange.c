/*
 * h1_exchange.c - HTTP/1.1 transactions on a client connection.
 *
 * One transaction at a time (c->tx); pipelined requests simply wait in the
 * connection's input buffer until the current response is finished, which
 * answers them in order. For each request:
 *
 *   CS_HEAD     parse the head (h1.c), choose the backend (routes) and the
 *               persistence decision, rewrite the head for the server
 *               (http.c) into tx.rq, then dispatch.c chooses the server;
 *   CS_FORWARD  two independent directions: request head + body to the
 *               server, response head (rewritten into c->out) + body to the
 *               client. Bodies are never copied: Content-Length bodies are
 *               counted, chunked bodies validated by h1_chunk_scan() and
 *               forwarded as they are (trailers included) but for their
 *               chunk-size lines, re-encoded in place as SIZE CRLF
 *               (chunk_ready()). Each direction writes straight from the
 *               input buffer of the other side with one writev of head +
 *               body through the transport, and stops reading while the
 *               other side cannot take more (back-pressure, fixed memory);
 *               a 101 to an allowed upgrade hands over to tunnel.c.
 */
#include "api.h"
#include "h1_exchange.h"
#include "global.h"
#include "http.h"
#include "dispatch.h"
#include "h2.h"
#include "cidr.h"
#include "reload.h"
#include "route.h"
#include "worker-t.h"

static void find_client(struct cconn *c, const struct h1_msg *m);

static int status_class(int status)
{
	return status >= 100 && status < 600 ? status / 100 : 0;
}

/*
 * `redirect https` on a cleartext connection: 308 (RFC 9110 15.4.9: the
 * method and body are kept on the new request) to the same host, without
 * its port (the https one is the default), and the same path and query.
 * Answered by bollard and closed after, as its own error pages are.
 */
static void redirect_https(struct cconn *c, const struct h1_msg *m)
{
	struct worker *w = c->w;
	struct h1_str host = m->host, t = m->target;
	/* the port of host:port or [v6]:port goes; a bare IPv6 has brackets */
	const char *rb = host.n && host.p[0] == '[' ? memchr(host.p, ']', host.n) : NULL;
	const char *colon = memchr(rb ? rb : host.p, ':', host.n - (size_t)(rb ? rb - host.p : 0));
	if (colon)
		host.n = (size_t)(colon - host.p);
	/* absolute-form (RFC 9112 3.2.2): the path after the authority */
	if (t.n && t.p[0] != '/') {
		const char *s = t.n > 3 ? memmem(t.p, t.n, "://", 3) : NULL;
		const char *path = s ? memchr(s + 3, '/', t.n - (size_t)(s + 3 - t.p)) : NULL;
		t = path ? (struct h1_str){ path, t.n - (size_t)(path - t.p) } : (struct h1_str){ "/", 1 };
	}
	buf_consume(&c->in, (uint32_t)m->head_len);
	if (m->body != H1_BODY_NONE)
		c->close_after = true; /* its body is not read */
	if (!host.n) {
		stream_error(c, 400, "no Host to redirect to", "bad-request");
		return;
	}
	if (buf_get(&w->bufs, &c->out) < 0) {
		stream_abort(c, "no-resources");
		return;
	}
	c->out.head = c->out.tail = 0;
	int n = snprintf(c->out.data, w->bufs.size,
			 "HTTP/1.1 308 Permanent Redirect\r\nLocation: https://%.*s%.*s\r\n"
			 "Content-Length: 0\r\nConnection: close\r\n\r\n",
			 (int)host.n, host.p, (int)t.n, t.p);
	if (n < 0 || (size_t)n >= w->bufs.size) {
		stream_error(c, 414, "URI too long to redirect", "bad-request");
		return;
	}
	c->out.tail = (uint32_t)n;
	c->tx.status = 308;
	c->tx.term = "redirect";
	c->close_after = true;
	c->state = CS_CLOSING;
	c->close_deadline = w->now + c->fe->to.client;
}

/* A complete request head is at the front of c->in. */
static void start_request(struct cconn *c, struct h1_msg *m)
{
	struct worker *w = c->w;
	atomic_fetch_add_explicit(&c->fe->requests, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&G.requests, 1, memory_order_relaxed);
	if (unlikely(c->fe->redirect_https) && !c->tls) {
		redirect_https(c, m);
		return;
	}

	c->tx.meth = m->meth;
	c->tx.minor = m->minor;
	c->tx.req_keepalive = !(m->flags & H1_MF_CONN_CLOSE);
	char upgrade[256];
	size_t upgrade_len;
	c->tx.upgrade = route_upgrade(c->fe, m, upgrade, sizeof(upgrade), &upgrade_len);
	c->tx.rq_body = m->body;
	c->tx.rq_left = m->body == H1_BODY_LENGTH ? m->content_length : 0;
	h1_chunk_init(&c->tx.rq_chunk);
	c->tx.rq_state = RQ_HEAD;
	c->tx.rs_state = RS_HEAD;
	c->tx.retryable = m->body == H1_BODY_NONE;
	find_client(c, m);
	const struct view cv = { &c->client, m };
	c->tx.be = route_backend(c->fe, &cv);
	atomic_fetch_add_explicit(&c->tx.be->requests, 1, memory_order_relaxed);
	c->tx.has_hash_key = c->tx.be->balance == LB_HASH && route_hash_key(c->tx.be, &cv, &c->tx.hash_key);
	if (c->tx.be->npersist) {
		if (!c->tx.pr && !(c->tx.pr = txn_pr_get(w))) {
			stream_error(c, 503, "out of memory", "no-resources");
			return;
		}
		persist_decide(c->tx.be, &cv, w->now, c->tx.pr);
		c->tx.pr->secure = c->tls;
		if (c->tx.pr->fail) {
			buf_consume(&c->in, (uint32_t)m->head_len);
			if (m->body != H1_BODY_NONE)
				c->close_after = true; /* its body is not read */
			stream_error(c, 503, "the server holding this session is unavailable",
				   "session-server-down");
			return;
		}
	}

	if (buf_get(&w->bufs, &c->tx.rq) < 0) {
		stream_error(c, 503, "out of memory", "no-resources");
		return;
	}
	char id[16];
	txn_new_reqid(w, id);
	struct http_req_out ro = {
		.client_ip = c->peer_ip,
		.proto = c->scheme,
		.new_reqid = id,
		.new_reqid_len = 16,
		.upgrade = { upgrade, upgrade_len },
		.fwd = c->fe->fwd,
		.strip_cookie = c->tx.pr && c->tx.pr->strip_cookie ? persist_cookie_name(c->tx.be) : NULL,
		.unprefix_cookie = c->tx.be->npersist ? persist_prefix_name(c->tx.be) : NULL,
	};
	int n = http_build_request(c->tx.rq.data, c->w->bufs.size, m, &ro);
	if (n < 0) {
		stream_error(c, 431, "request head too large", "bad-request");
		return;
	}
	c->tx.rq.head = 0;
	c->tx.rq.tail = (uint32_t)n;
	c->tx.log_meth_len = (uint32_t)m->method.n;
	c->tx.log_target_off = ro.target_off;
	c->tx.log_target_len = (uint32_t)m->target.n;
	c->tx.log_ua_off = ro.ua_off;
	c->tx.log_ua_len = ro.ua_len;
	c->tx.log_ref_off = ro.ref_off;
	c->tx.log_ref_len = ro.ref_len;
	c->tx.log_id_off = ro.reqid_off;
	c->tx.log_id_len = ro.reqid_len;
	buf_consume(&c->in, (uint32_t)m->head_len);
	c->t_cli = w->now;
	dispatch_start(c);
}

/* trust-forwarded: when the peer is trusted, the request's client is the
 * rightmost X-Forwarded-For address that is not (cidr.c), and its scheme
 * the one X-Forwarded-Proto or Forwarded reports (route.c); otherwise the
 * peer itself and bollard's own scheme. Used for the log, the forwarding
 * headers, `persist source` and `balance hash source`. */
static void find_client(struct cconn *c, const struct h1_msg *m)
{
	c->client = c->peer;
	memcpy(c->client_ip, c->peer_ip, sizeof(c->client_ip));
	if (!c->fe->trusted || !cidr_match(c->fe->trusted, &c->peer))
		return;
	char scheme[sizeof(c->scheme)];
	if (route_forwarded_proto(m, scheme, sizeof(scheme)))
		memcpy(c->scheme, scheme, sizeof(scheme));
	struct sockaddr_storage a;
	if (cidr_xff_client(m->hdrs, m->nhdrs, c->fe->trusted, &a) == 1) {
		c->client = a;
		route_addr_text(&c->client, c->client_ip, sizeof(c->client_ip));
	}
}

/* A rejected request whose request line was read still deserves its
 * method and target in the access log: copy them where txn_log()
 * looks (c->tx.rq), bounded and only when they lie inside the input. */
static void log_rejected_line(struct cconn *c, const struct h1_msg *m)
{
	const char *b = buf_rptr(&c->in), *e = b + buf_len(&c->in);
	if (!m->method.n || !m->target.n || m->method.p < b || m->target.p + m->target.n > e ||
	    m->method.n + m->target.n + 1 > 2048 || buf_get(&c->w->bufs, &c->tx.rq) < 0)
		return;
	memcpy(c->tx.rq.data, m->method.p, m->method.n);
	c->tx.rq.data[m->method.n] = ' ';
	memcpy(c->tx.rq.data + m->method.n + 1, m->target.p, m->target.n);
	c->tx.log_meth_len = (uint32_t)m->method.n;
	c->tx.log_target_off = (uint32_t)m->method.n + 1;
	c->tx.log_target_len = (uint32_t)m->target.n;
	c->tx.log_ua_len = c->tx.log_ref_len = c->tx.log_id_len = 0;
	c->tx.minor = m->minor;
}

/* A reload happened: the next request of this connection uses the new
 * generation's frontend of the same name, or the connection closes. */
bool stream_switch_generation(struct cconn *c)
{
	struct config *nc = c->w->cfg;
	struct frontend *nf = NULL;
	for (int i = 0; i < nc->nfrontends; i++)
		if (!strcmp(nc->frontends[i]->name, c->fe->name))
			nf = nc->frontends[i];
	if (!nf)
		return false;
	cfg_hold(nc);
	cfg_release(c->gen);
	c->gen = nc;
	c->fe = nf;
	return true;
}

/* CS_HEAD: wait for, then parse, the next request head. */
int h1_exchange_head(struct cconn *c)
{
	struct worker *w = c->w;
	if (unlikely(c->gen != w->cfg) && !stream_switch_generation(c)) {
		stream_close(c); /* its frontend is gone */
		return 0;
	}
	int r = stream_read_client(c);
	if (unlikely(c->tls && !c->h2_checked) && h2_alpn_chose_h2(c)) {
		c->state = CS_H2; /* h2.c: what was read is the client's preface */
		return 1;
	}
	if (buf_empty(&c->in)) {
		if (c->xc.eof || r < 0) {
			stream_close(c);
			return 0;
		}
		/* idle between requests: hold no buffer */
		buf_put(&w->bufs, &c->in);
		stream_tls_idle(c, c->idle_deadline != 0);
		return 0;
	}
	stream_tls_busy(c);
	if (!c->tx.t_start) {
		c->tx.t_start = w->now_us;
		c->head_deadline = w->now + c->fe->to.http_request;
	}
	struct h1_msg m;
	memset(&m, 0, sizeof(m));
	m.hdrs = w->hdrs;
	m.hdrs_cap = w->lim.max_hdrs;
	int n = h1_parse_request(buf_rptr(&c->in), buf_len(&c->in), &m, &w->lim);
	if (n == H1_INCOMPLETE) {
		if (buf_len(&c->in) >= c->w->bufs.size) {
			stream_error(c, 431, "request head too large", "bad-request");
			return 1;
		}
		if (c->xc.eof) {
			c->tx.term = "client-closed";
			stream_close(c);
			return 0;
		}
		return r > 0;
	}
	if (n < 0) {
		atomic_fetch_add_explicit(&c->fe->rejected, 1, memory_order_relaxed);
		log_rejected_line(c, &m);
		stream_error(c, m.status ? m.status : 400, m.reason, "bad-request");
		return 1;
	}
	txn_reset(&c->tx);
	start_request(c, &m);
	return 1;
}

/* ---- the two directions ----------------------------------------------------- */

/*
 * The server connection failed before any byte of a response (RFC 9110
 * 9.2.2). The request is still whole in c->tx.rq and has no body, so it can go
 * again:
 * - on a pooled connection, the server may have closed it just as we
 *   reused it (a race no client can avoid): once more, on a fresh
 *   connection, without using up a retry;
 * - otherwise, if the method is idempotent (GET, HEAD, OPTIONS, PUT,
 *   DELETE, TRACE: sending it twice does no harm, SPEC 3.2), on another
 *   server, within `retries`.
 */
static bool retry_stale(struct cconn *c)
{
	struct sconn *sc = c->tx.sc;
	if (c->tx.resp_started || !c->tx.retryable)
		return false;
	bool stale = sc->reused && !c->tx.fresh_only;
	if (!stale) {
		bool idempotent = c->tx.meth == H1_M_GET || c->tx.meth == H1_M_HEAD ||
				  c->tx.meth == H1_M_OPTIONS || c->tx.meth == H1_M_PUT ||
				  c->tx.meth == H1_M_DELETE || c->tx.meth == H1_M_TRACE;
		if (!idempotent || c->tx.attempts > (int)c->tx.be->retries)
			return false;
	}
	sconn_close(c->w, sc);
	c->tx.sc = NULL;
	c->tx.rq_sent = 0;
	c->tx.rq_state = RQ_HEAD;
	if (stale) {
		c->tx.fresh_only = true;
		c->tx.attempts--; /* not the server's failure: does not use up a retry */
		c->tx.ntried = 0;
	}
	dispatch_start(c);
	return true;
}

/*
 * A chunked body at the front of b (either direction): scan what arrived
 * past the *scanned bytes already checked, and return how many bytes at the
 * front may go as they are: every scanned byte but a size line the scanner
 * still holds (h1.h). A size line to re-encode is replaced once everything
 * before it has gone, so that it is at the front of b: its canonical form
 * overwrites its last bytes and the others are dropped, which costs no copy
 * of the body and no memory of its own. -1: the body is invalid.
 */
static long chunk_ready(struct h1_chunk *ch, struct buf *b, uint32_t *scanned)
{
	for (;;) {
		if (ch->rewrite) {
			if (*scanned > ch->hold)
				break; /* the bytes before it must go first */
			uint32_t held = ch->hold;
			char line[H1_CHUNK_LINE_CANON];
			uint32_t k = (uint32_t)h1_chunk_line(ch, line);
			memcpy(buf_rptr(b) + held - k, line, k);
			buf_consume(b, held - k);
			*scanned = k;
		}
		uint32_t avail = buf_len(b);
		if (ch->done || avail <= *scanned)
			break;
		long n = h1_chunk_scan(ch, buf_rptr(b) + *scanned, avail - *scanned);
		if (n < 0)
			return -1;
		*scanned += (uint32_t)n;
		if (!ch->rewrite)
			break;
	}
	return (long)(*scanned - ch->hold);
}

/* How many request-body bytes at the front of c->in can go to the server. */
static int rq_scan(struct cconn *c)
{
	uint32_t avail = buf_len(&c->in);
	if (c->tx.rq_body == H1_BODY_LENGTH) {
		c->tx.rq_ready = c->tx.rq_scanned = (uint32_t)MIN((uint64_t)avail, c->tx.rq_left);
		return 0;
	}
	if (c->tx.rq_body == H1_BODY_CHUNKED) {
		long n = chunk_ready(&c->tx.rq_chunk, &c->in, &c->tx.rq_scanned);
		if (n < 0)
			return -1;
		c->tx.rq_ready = (uint32_t)n;
	}
	return 0;
}

static bool rq_body_complete(const struct cconn *c)
{
	switch (c->tx.rq_body) {
	case H1_BODY_LENGTH: return c->tx.rq_left == 0;
	case H1_BODY_CHUNKED: return c->tx.rq_chunk.done && c->tx.rq_ready == 0;
	default: return true;
	}
}

/* Send what can be sent toward the server. Returns >0 progress, 0 none,
 * -1 when the request is finished with (error sent or connection closed). */
static int rq_forward(struct cconn *c)
{
	struct sconn *sc = c->tx.sc;
	int progress = 0;
	if (c->tx.rq_state == RQ_DONE || !sc->connected)
		return 0;
	if (c->tx.rq_state != RQ_HEAD || c->tx.rq_body != H1_BODY_NONE) {
		int rr = stream_read_client(c);
		if (rr > 0) {
			progress = 1;
			c->t_cli = c->w->now;
		}
		if (rq_scan(c) < 0) {
			atomic_fetch_add_explicit(&c->fe->rejected, 1, memory_order_relaxed);
			stream_error(c, 400, "invalid chunked body", "bad-request");
			return -1;
		}
	}
	struct iovec iov[2];
	uint32_t head_left = c->tx.rq_state == RQ_HEAD ? buf_len(&c->tx.rq) - c->tx.rq_sent : 0;
	iov[0].iov_base = c->tx.rq.data + c->tx.rq_sent;
	iov[0].iov_len = head_left;
	iov[1].iov_base = c->in.data ? buf_rptr(&c->in) : NULL;
	iov[1].iov_len = c->tx.rq_ready;
	BUG_ON(c->tx.rq_sent > buf_len(&c->tx.rq));
	BUG_ON(c->tx.rq_ready > (c->in.data ? buf_len(&c->in) : 0));
	if (head_left || c->tx.rq_ready) {
		ssize_t wn = xconn_writev(&sc->xc, iov, 2);
		if (wn < 0) {
			/* the server went away while we were sending */
			if (retry_stale(c))
				return -1;
			stream_error(c, 502, "server closed the connection", "server-closed");
			return -1;
		}
		/* bytes sent never exceed bytes buffered */
		BUG_ON(wn > 0 && (size_t)wn > head_left + c->tx.rq_ready);
		if (wn > 0) {
			progress = 1;
			c->tx.t_srv = c->tx.t_took = c->w->now;
			uint32_t h = (uint32_t)MIN((size_t)wn, (size_t)head_left);
			c->tx.rq_sent += h;
			uint32_t b = (uint32_t)((size_t)wn - h);
			if (b) {
				buf_consume(&c->in, b);
				c->tx.rq_ready -= b;
				c->tx.rq_scanned -= b;
				if (c->tx.rq_body == H1_BODY_LENGTH)
					c->tx.rq_left -= b;
				c->t_cli = c->w->now;
			}
			if (c->tx.rq_state == RQ_HEAD && c->tx.rq_sent == buf_len(&c->tx.rq)) {
				c->tx.rq_state = RQ_BODY;
				atomic_fetch_add_explicit(&c->tx.srv->requests, 1, memory_order_relaxed);
				atomic_store_explicit(&c->tx.srv->last_request_ms, c->w->now, memory_order_relaxed);
			}
		}
	}
	if (c->tx.rq_state == RQ_BODY && rq_body_complete(c)) {
		c->tx.rq_state = RQ_DONE;
		c->tx.t_head = c->w->now; /* the whole request is there: the head is due */
		progress = 1;
	}
	if (c->tx.rq_state != RQ_DONE && c->xc.eof && c->tx.rq_ready == 0 &&
	    !(c->tx.rq_state == RQ_HEAD && c->tx.rq_body == H1_BODY_NONE)) {
		/* the client closed in the middle of its request body */
		c->tx.term = "client-closed";
		if (!c->tx.status)
			c->tx.status = 400;
		txn_log(c);
		c->tx.logged = true;
		stream_close(c);
		return -1;
	}
	return progress;
}

static void srv_count_status(struct cconn *c, int status)
{
	int k = status_class(status);
	atomic_fetch_add_explicit(&c->tx.srv->responses[k], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->tx.be->responses[k], 1, memory_order_relaxed);
}

/*
 * Queue the response head for the client, from the server's head m: the
 * fields bollard adds, as name/value pairs (persistence's, and its cookie
 * prefix, for a final or 101 response: `persist`), serialised for the
 * client's protocol, HTTP/1.1 (http_build_response). Returns its length, or
 * -1 when it does not fit (answered 502).
 */
static int queue_head(struct cconn *c, const struct h1_msg *m, bool keep_alive, bool upgrade,
		      bool persist)
{
	struct worker *w = c->w;
	struct http_add add;
	http_add_init(&add);
	struct http_resp_opts ro = { .keep_alive = keep_alive, .client_minor = c->tx.minor,
		.upgrade = upgrade, .add = &add };
	if (persist && c->tx.be->npersist) {
		if (persist_on_response(c->tx.be, c->tx.pr, c->tx.srv, m, w->now, &add) < 0)
			http_add_init(&add); /* all or none */
		if (c->tx.srv) {
			/* `persist cookie NAME prefix`: which cookie to
			 * prefix with which server */
			ro.prefix_cookie = persist_prefix_name(c->tx.be);
			ro.prefix = c->tx.srv->name;
		}
	}
	/* RFC 6797 7.2: over TLS only */
	if (persist && c->tls && c->fe->hsts)
		http_add_field(&add, "Strict-Transport-Security", c->fe->hsts_value,
			       strlen(c->fe->hsts_value));
	int hn = http_build_response(buf_wptr(&c->out), buf_room(&c->out, w->bufs.size), m, &ro);
	if (hn < 0) {
		stream_error(c, 502, "response head too large", "bad-response");
		return -1;
	}
	c->out.tail += (uint32_t)hn;
	/* the text stays the head as far as the exchange knows (what it
	 * writes and counts); a transport that would parse it back is
	 * handed the fields instead (xprt.h) */
	if (c->xc.ops->head)
		c->xc.ops->head(&c->xc, m, &ro, (uint32_t)hn);
	return hn;
}

/* Parse the response head(s) at the front of sc->in. Returns >0 progress,
 * 0 need more, -1 finished with the request (error sent or retried). */
static int rs_head(struct cconn *c)
{
	struct worker *w = c->w;
	struct sconn *sc = c->tx.sc;
	if (buf_empty(&sc->in)) {
		if (!sc->xc.eof)
			return 0;
		/* the server closed before any byte of a response */
		if (retry_stale(c))
			return -1;
		stream_error(c, 502, "server closed the connection", "server-closed");
		return -1;
	}
	c->tx.resp_started = true;
	if (!c->tx.t_first)
		c->tx.t_first = w->now_us;
	struct h1_msg m;
	memset(&m, 0, sizeof(m));
	m.hdrs = w->hdrs;
	m.hdrs_cap = w->lim.max_hdrs;
	int n = h1_parse_response(buf_rptr(&sc->in), buf_len(&sc->in), &m, &w->lim, c->tx.meth);
	if (n == H1_INCOMPLETE) {
		if (buf_len(&sc->in) >= w->bufs.size || sc->xc.eof) {
			stream_error(c, 502, "incomplete response head", "bad-response");
			return -1;
		}
		return 0;
	}
	if (n < 0) {
		stream_error(c, 502, "invalid response from server", "bad-response");
		return -1;
	}
	if (buf_get(&w->bufs, &c->out) < 0) {
		stream_error(c, 503, "out of memory", "no-resources");
		return -1;
	}
	if (m.status_code < 200) {
		if (m.status_code == 101) {
			if (!c->tx.upgrade || !route_upgrade_accepts(c->fe, c->tx.upgrade, &m)) {
				/* a tunnel to a protocol nobody allowed would
				 * bypass every rule: refuse it, and the server
				 * connection goes with it (send_error) */
				stream_error(c, 502, "unexpected 101 response", "bad-response");
				return -1;
			}
			if (queue_head(c, &m, true, true, true) < 0)
				return -1;
			buf_consume(&sc->in, (uint32_t)n);
			c->tx.status = 101;
			srv_count_status(c, 101);
			c->tx.rq_state = RQ_DONE;
			c->state = CS_TUNNEL;
			c->tx.t_tun = w->now;
			txn_log(c);
			c->tx.logged = true;
			return 1;
		}
		/* interim responses (100 Continue, 103) go to HTTP/1.1 clients */
		if (c->tx.minor) {
			int hn = queue_head(c, &m, true, false, false);
			if (hn < 0)
				return -1;
			c->tx.bytes_1xx += (uint64_t)hn; /* a final answer can still follow */
		}
		buf_consume(&sc->in, (uint32_t)n);
		c->tx.t_head = w->now; /* a whole interim head: the next one is due */
		return 1;
	}
	c->tx.status = m.status_code;
	srv_count_status(c, m.status_code);
	c->tx.rs_body = m.body;
	c->tx.rs_left = m.body == H1_BODY_LENGTH ? m.content_length : 0;
	h1_chunk_init(&c->tx.rs_chunk);
	c->tx.rs_ready = c->tx.rs_scanned = 0;
	c->tx.rs_keepalive = !(m.flags & H1_MF_CONN_CLOSE) && m.body != H1_BODY_CLOSE &&
			  (m.minor == 1 || (m.flags & H1_MF_CONN_KEEPALIVE));
	bool ka = c->tx.req_keepalive && !w->stopping && m.body != H1_BODY_CLOSE;
	if (!ka)
		c->close_after = true;
	if (queue_head(c, &m, ka, false, true) < 0)
		return -1;
	buf_consume(&sc->in, (uint32_t)n);
	c->tx.rs_state = m.body == H1_BODY_NONE ? RS_DONE : RS_BODY;
	return 1;
}

/* How many response-body bytes at the front of sc->in can go to the client. */
static int rs_scan(struct cconn *c)
{
	struct sconn *sc = c->tx.sc;
	uint32_t avail = buf_len(&sc->in);
	long n;
	switch (c->tx.rs_body) {
	case H1_BODY_LENGTH:
		c->tx.rs_ready = c->tx.rs_scanned = (uint32_t)MIN((uint64_t)avail, c->tx.rs_left);
		break;
	case H1_BODY_CLOSE:
		c->tx.rs_ready = c->tx.rs_scanned = avail;
		break;
	case H1_BODY_CHUNKED:
		if ((n = chunk_ready(&c->tx.rs_chunk, &sc->in, &c->tx.rs_scanned)) < 0)
			return -1;
		c->tx.rs_ready = (uint32_t)n;
		break;
	default:
		c->tx.rs_ready = c->tx.rs_scanned = 0;
	}
	return 0;
}

static bool rs_body_complete(const struct cconn *c)
{
	switch (c->tx.rs_body) {
	case H1_BODY_LENGTH: return c->tx.rs_left == 0;
	case H1_BODY_CHUNKED: return c->tx.rs_chunk.done && c->tx.rs_ready == 0;
	case H1_BODY_CLOSE: return c->tx.sc->xc.eof && c->tx.rs_ready == 0;
	default: return true;
	}
}

/* Response direction. Returns >0 progress, 0 none, -1 finished with. */
static int rs_forward(struct cconn *c)
{
	struct sconn *sc = c->tx.sc;
	int progress = 0;
	int rr = stream_read_server(sc);
	if (rr > 0) {
		progress = 1;
		c->tx.t_srv = c->w->now;
	}
	if (c->tx.rs_state == RS_HEAD) {
		int r = rs_head(c);
		if (r < 0)
			return -1;
		if (r == 0 && c->out.data == NULL)
			return progress;
		if (c->state == CS_TUNNEL)
			return 1;
		progress |= r;
	}
	if (c->tx.rs_state == RS_BODY && rs_scan(c) < 0) {
		/* a 502 while nothing went out, else the client connection is
		 * closed before its body ends; the server connection goes
		 * either way (its framing is lost) */
		stream_error(c, 502, "invalid chunked body from the server", "bad-response");
		return -1;
	}
	struct iovec iov[2];
	uint32_t out_left = c->out.data ? buf_len(&c->out) : 0;
	iov[0].iov_base = out_left ? buf_rptr(&c->out) : NULL;
	iov[0].iov_len = out_left;
	iov[1].iov_base = sc->in.data ? buf_rptr(&sc->in) : NULL;
	iov[1].iov_len = c->tx.rs_state == RS_BODY ? c->tx.rs_ready : 0;
	BUG_ON(iov[1].iov_len > (sc->in.data ? buf_len(&sc->in) : 0));
	if (iov[0].iov_len || iov[1].iov_len) {
		ssize_t wn = xconn_writev(&c->xc, iov, 2);
		BUG_ON(wn > 0 && (size_t)wn > iov[0].iov_len + iov[1].iov_len);
		if (wn < 0) {
			stream_abort(c, "client-closed");
			return -1;
		}
		if (wn > 0) {
			progress = 1;
			c->t_cli = c->w->now;
			c->tx.bytes_out += (uint64_t)wn;
			uint32_t h = (uint32_t)MIN((size_t)wn, (size_t)out_left);
			buf_consume(&c->out, h);
			uint32_t b = (uint32_t)((size_t)wn - h);
			if (b) {
				buf_consume(&sc->in, b);
				c->tx.rs_ready -= b;
				c->tx.rs_scanned -= b;
				if (c->tx.rs_body == H1_BODY_LENGTH)
					c->tx.rs_left -= b;
			}
		}
	}
	if (c->out.data && buf_empty(&c->out))
		buf_put(&c->w->bufs, &c->out);
	if (c->tx.rs_state == RS_BODY) {
		if (rs_body_complete(c)) {
			c->tx.rs_state = RS_DONE;
			progress = 1;
		} else if (sc->xc.eof && c->tx.rs_ready == 0 && buf_len(&sc->in) == 0) {
			stream_abort(c, "server-closed");
			return -1;
		}
	}
	return progress;
}

/* Both directions finished and the response is flushed. */
static void finish_request(struct cconn *c)
{
	struct worker *w = c->w;
	struct sconn *sc = c->tx.sc;
	BUG_ON(c->state != CS_FORWARD || c->tx.rs_state != RS_DONE);
	if (!c->tx.logged)
		txn_log(c);
	c->tx.logged = true;
	if (sc) {
		c->tx.sc = NULL;
		/* a connection to a server of an older generation has no pool
		 * to go back to (pools are per generation) */
		bool reusable = c->tx.rs_keepalive && c->tx.rq_state == RQ_DONE && !sc->xc.eof &&
				buf_empty(&sc->in) && c->gen == w->cfg;
		if (reusable)
			sconn_pool_put(w, sc);
		else
			sconn_close(w, sc);
	}
	buf_put(&w->bufs, &c->tx.rq);
	txn_pr_put(w, &c->tx);
	if (c->tx.rq_state != RQ_DONE)
		c->close_after = true; /* unread request body: framing is lost */
	c->tx.t_start = 0;
	strcpy(c->scheme, STREAM_OWN_SCHEME(c));
	if (c->close_after || w->stopping) {
		c->state = CS_CLOSING;
		c->close_deadline = w->now + c->fe->to.client;
		return;
	}
	c->state = CS_HEAD;
	c->head_deadline = 0;
	c->idle_deadline = w->now + c->fe->to.http_keep_alive;
	/* a pipelined request may already be waiting */
	c->xc.can_read = c->xc.can_read || !buf_empty(&c->in);
}

int h1_exchange_forward(struct cconn *c)
{
	/* forwarding implies a server connection, and it is c's */
	BUG_ON(!c->tx.sc || c->tx.sc->owner != c);
	/* after -1 the request was answered, retried or closed: the state
	 * changed, so the driver must look again */
	int p1 = rq_forward(c);
	if (p1 < 0 || c->state != CS_FORWARD)
		return c->closed ? 0 : 1;
	int p2 = rs_forward(c);
	if (p2 < 0 || c->state != CS_FORWARD)
		return c->closed ? 0 : 1;
	if (c->tx.rs_state == RS_DONE && (!c->out.data || buf_empty(&c->out))) {
		if (c->tx.rq_state != RQ_DONE && c->tx.rq_body != H1_BODY_NONE) {
			/* answered before the whole body came: close after */
			c->close_after = true;
		}
		finish_request(c);
		return 1;
	}
	return p1 | p2;
}

/*
 * CS_FORWARD: whom bollard waits for, and until when. Bytes waiting to go
 * to one side make that side the one stalling (the other side is not read
 * meanwhile: back-pressure), timed from the last time it took some;
 * otherwise the side that owes bytes: the client while its request body is
 * not all there, then the server. The response head must come whole within
 * `timeout server` of the end of the request (t_head): bytes of it
 * trickling in do not restart that, so a server cannot hold a request by
 * sending its head a byte at a time. Returns the earliest deadline;
 * *client says whether it is the client's (the one to blame).
 */
uint64_t h1_exchange_deadline(const struct cconn *c, bool *client)
{
	uint64_t cli = EV_NO_TIMER, srv = EV_NO_TIMER;
	bool to_srv = c->tx.rq_state == RQ_HEAD ? c->tx.rq_sent < buf_len(&c->tx.rq) : c->tx.rq_ready > 0;
	bool to_cli = (c->out.data && !buf_empty(&c->out)) || c->tx.rs_ready > 0;

	if (c->tx.rq_state != RQ_DONE) {
		if (to_srv)
			srv = c->tx.t_took + c->tx.be->to.server;
		else if (c->tx.rq_state == RQ_BODY)
			cli = c->t_cli + c->fe->to.client;
	}
	if (to_cli)
		cli = MIN(cli, c->t_cli + c->fe->to.client);
	else if (c->tx.rs_state == RS_HEAD && c->tx.rq_state == RQ_DONE)
		srv = MIN(srv, c->tx.t_head + c->tx.be->to.server);
	else if (c->tx.rs_state == RS_BODY)
		srv = MIN(srv, c->tx.t_srv + c->tx.be->to.server);
	*client = cli <= srv;
	return MIN(cli, srv);
}
