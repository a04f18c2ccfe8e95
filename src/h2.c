/*
 * h2.c - the HTTP/2 frontend: one nghttp2 server session per client
 * connection whose ALPN chose "h2" (RFC 9113), driven in CS_H2 with
 * nghttp2_session_mem_recv / mem_send through the connection's transport
 * (TLS), non-blocking, in the worker's loop.
 *
 * Every stream becomes a stream connection (xprt_h2s.c): a struct cconn
 * without a descriptor that goes through the same exchange as an HTTP/1.1
 * connection (h1_exchange.c, dispatch.c: route, persistence, balance, the
 * pooled server connections), with one request. nghttp2's callbacks only
 * record what came and put the stream on the connection's wake list; the
 * streams are driven once nghttp2 has returned (run_wake), and what they
 * write is sent by the next flush: nothing re-enters the library.
 *
 * Abuse limits (doc/tls.md "HTTP/2"): concurrent streams and the header
 * list size are SETTINGS nghttp2 enforces (REFUSED_STREAM, and a 431 here);
 * resets, SETTINGS and PING frames are held to per-second budgets, and the
 * CONTINUATION frames of one header block to a count, each answered by
 * GOAWAY ENHANCE_YOUR_CALM and counted by reason.
 */
#include "api.h"
#include "h2-t.h"
#include "global.h"
#include "h2_mem.h"
#include "h1_exchange.h"
#include "worker-t.h"
#include "xprt_tls.h"

/* reads from the client per step before the streams get their turn */
#define READS_PER_STEP 8
#define WAKE_ROUNDS 16

bool h2_alpn_chose_h2(struct cconn *c)
{
	struct tls_info ti;
	if (!xprt_tls_info(&c->xc, &ti))
		return false; /* handshake not done yet */
	c->h2_checked = true;
	return ti.alpn_len == 2 && !memcmp(ti.alpn, "h2", 2);
}

/* ---- budgets ------------------------------------------------------------ */

/* A token bucket of rate events a second, as deep as one second: false
 * when the event is over budget. */
static bool budget_take(struct h2_budget *b, uint32_t rate, uint64_t now)
{
	uint64_t full = (uint64_t)rate * 1000;
	b->credit = MIN(full, b->credit + (now - b->at) * rate);
	b->at = now;
	if (b->credit < 1000)
		return false;
	b->credit -= 1000;
	return true;
}

/* A flood: GOAWAY ENHANCE_YOUR_CALM, and nothing more is read (even after
 * a graceful GOAWAY, whose reason this one replaces). */
static void calm(struct h2_conn *h, enum h2_goaway why)
{
	if (h->dead)
		return;
	h->goaway = (int)why;
	h->dead = true;
	nghttp2_session_terminate_session(h->ss, NGHTTP2_ENHANCE_YOUR_CALM);
}

/* ---- nghttp2's callbacks --------------------------------------------------- */

static int on_begin_frame(nghttp2_session *ss, const nghttp2_frame_hd *hd, void *user)
{
	struct h2_conn *h = user;
	(void)ss;
	if (hd->type == NGHTTP2_CONTINUATION) {
		if (++h->ncont > h->max_cont)
			calm(h, H2_GA_CONTINUATION);
	} else {
		/* any other frame means the previous header block ended (RFC
		 * 9113 6.10), whether nghttp2 handed it over or ignored it */
		h->ncont = 0;
		h->hdr_since = 0;
	}
	/* a header block that does not end is bounded by timeout http-request */
	if ((hd->type == NGHTTP2_HEADERS || hd->type == NGHTTP2_CONTINUATION ||
	     hd->type == NGHTTP2_PUSH_PROMISE) && !(hd->flags & NGHTTP2_FLAG_END_HEADERS)) {
		if (!h->hdr_since)
			h->hdr_since = h->c->w->now;
	} else {
		h->hdr_since = 0;
	}
	return 0;
}

static int on_begin_headers(nghttp2_session *ss, const nghttp2_frame *f, void *user)
{
	struct h2_conn *h = user;
	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	if (h->dead)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	struct h2_strm *s = h2s_take(h, f->hd.stream_id);
	if (!s)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* out of memory: RST_STREAM */
	nghttp2_session_set_stream_user_data(ss, f->hd.stream_id, s);
	return 0;
}

static int on_header(nghttp2_session *ss, const nghttp2_frame *f, const uint8_t *name,
		     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *user)
{
	(void)flags;
	(void)user;
	struct h2_strm *s = nghttp2_session_get_stream_user_data(ss, f->hd.stream_id);
	if (!s || f->hd.type != NGHTTP2_HEADERS || s->refused)
		return 0;
	int e;
	if (f->headers.cat != NGHTTP2_HCAT_REQUEST)
		/* trailers are not forwarded; RFC 9113 8.1: they hold no
		 * pseudo-header field */
		e = nlen && name[0] == ':' ? H2H_MALFORMED : 0;
	else
		e = h2h_req_field(&s->req, name, nlen, value, vlen);
	if (e == H2H_TOO_LARGE || e == H2H_CONNECT)
		s->refused = e == H2H_CONNECT ? 501 : 431;
	else if (e == H2H_MALFORMED) {
		/* RFC 9113 8.1.1: a stream error of type PROTOCOL_ERROR; the
		 * failure alone would reset with INTERNAL_ERROR */
		nghttp2_submit_rst_stream(ss, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_PROTOCOL_ERROR);
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	return 0;
}

/* The header list is whole: the HTTP/1.1 head goes into rx, and the
 * stream's exchange may start. */
static void head_done(struct h2_conn *h, struct h2_strm *s, bool end_stream)
{
	atomic_fetch_add_explicit(&h->c->fe->h2_streams, 1, memory_order_relaxed);
	s->req_end = end_stream;
	if (!s->refused) {
		int n = h2h_req_end(&s->req, !end_stream);
		if (n == H2H_MALFORMED) {
			nghttp2_submit_rst_stream(h->ss, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_PROTOCOL_ERROR);
			return;
		}
		/* RFC 9113 8.1.1: no DATA can follow, so a content-length
		 * other than 0 is already wrong */
		if (end_stream && s->req.has_cl && s->req.cl && n >= 0) {
			nghttp2_submit_rst_stream(h->ss, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_PROTOCOL_ERROR);
			return;
		}
		s->cl_left = s->req.cl;
		if (n == H2H_TOO_LARGE || n == H2H_CONNECT) {
			s->refused = n == H2H_CONNECT ? 501 : 431;
		} else {
			s->rx.head = 0;
			s->rx.tail = s->rx_head_left = (uint32_t)n;
			s->chunked = h2h_req_chunked(&s->req, !end_stream);
		}
	}
	if (s->refused)
		s->rx.head = s->rx.tail = 0;
	buf_put(&h->c->w->bufs, &s->tx); /* it held the pseudo-headers and cookies */
	if (!end_stream && !s->refused && h2s_rx_for_body(s) < 0) {
		nghttp2_submit_rst_stream(h->ss, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
		return;
	}
	s->head_ready = true;
	s->c.xc.can_read = true;
	if (end_stream)
		h2s_rx_end(s);
	h2s_wake(s);
}

/* END_STREAM after a body: RFC 9113 8.1.1, a body shorter than its
 * content-length makes the request malformed (a longer one was stopped
 * at its first DATA over, on_data_chunk); the server never sees its end. */
static void body_end(struct h2_conn *h, struct h2_strm *s)
{
	if (s->req.has_cl && s->cl_left && !s->refused)
		nghttp2_submit_rst_stream(h->ss, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_PROTOCOL_ERROR);
	else
		h2s_rx_end(s);
}

static int on_frame_recv(nghttp2_session *ss, const nghttp2_frame *f, void *user)
{
	struct h2_conn *h = user;
	uint64_t now = h->c->w->now;
	struct h2_strm *s = f->hd.stream_id ? nghttp2_session_get_stream_user_data(ss, f->hd.stream_id) : NULL;
	bool es = f->hd.flags & NGHTTP2_FLAG_END_STREAM;
	switch (f->hd.type) {
	case NGHTTP2_HEADERS:
		if (!s)
			break;
		if (f->headers.cat == NGHTTP2_HCAT_REQUEST)
			head_done(h, s, es);
		else if (!es) /* RFC 9113 8.1: trailers end the stream */
			nghttp2_submit_rst_stream(ss, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_PROTOCOL_ERROR);
		else if (!s->req_end) /* trailers end the body */
			body_end(h, s);
		break;
	case NGHTTP2_DATA:
		if (s && es && !s->req_end)
			body_end(h, s);
		break;
	case NGHTTP2_RST_STREAM:
		if (!budget_take(&h->rst, h->reset_rate, now))
			calm(h, H2_GA_RAPID_RESET);
		break;
	case NGHTTP2_SETTINGS:
		if (!(f->hd.flags & NGHTTP2_FLAG_ACK) && !budget_take(&h->settings, h->ctl_rate, now))
			calm(h, H2_GA_SETTINGS);
		break;
	case NGHTTP2_PING:
		if (!(f->hd.flags & NGHTTP2_FLAG_ACK) && !budget_take(&h->ping, h->ctl_rate, now))
			calm(h, H2_GA_PING);
		break;
	default:
		break;
	}
	return 0;
}

static int on_data_chunk(nghttp2_session *ss, uint8_t flags, int32_t id, const uint8_t *data,
			 size_t len, void *user)
{
	(void)flags;
	(void)user;
	struct h2_strm *s = nghttp2_session_get_stream_user_data(ss, id);
	bool over = s && s->req.has_cl && !s->refused && len > s->cl_left;
	if (over) /* RFC 9113 8.1.1: more DATA than the content-length */
		nghttp2_submit_rst_stream(ss, NGHTTP2_FLAG_NONE, id, NGHTTP2_PROTOCOL_ERROR);
	if (!s || over || s->cc_closed || s->refused || !s->head_ready) {
		nghttp2_session_consume(ss, id, len); /* nobody reads it: the window stays open */
		return 0;
	}
	if (s->req.has_cl)
		s->cl_left -= len;
	s->unacked += len;
	h2s_wake(s);
	size_t k = h2s_rx_data(s, data, len);
	if (k < len) {
		struct h2_conn *h = user;
		h->held = s;
		h->held_p = data + k;
		h->held_n = len - k;
		return NGHTTP2_ERR_PAUSE;
	}
	return 0;
}

/* The held DATA (on_data_chunk) went into its stream, or the stream is
 * gone: input may go on. */
static bool unhold(struct h2_conn *h)
{
	struct h2_strm *s = h->held;
	if (!s)
		return true;
	/* a closed stream gave its unacked bytes, these among them, back */
	if (!s->cc_closed && !s->ns_closed) {
		size_t k = h2s_rx_data(s, h->held_p, h->held_n);
		h->held_p += k;
		h->held_n -= k;
		if (k)
			h2s_wake(s);
		if (h->held_n)
			return false;
	}
	h->held = NULL;
	return true;
}

static int on_stream_close(nghttp2_session *ss, int32_t id, uint32_t code, void *user)
{
	(void)code;
	(void)user;
	struct h2_strm *s = nghttp2_session_get_stream_user_data(ss, id);
	if (!s)
		return 0;
	s->ns_closed = true;
	/* DATA the exchange will never take: give the connection's window back */
	if (s->unacked)
		nghttp2_session_consume_connection(ss, s->unacked);
	s->unacked = 0;
	if (s->cc_closed) {
		if (!s->woken)
			h2s_recycle(s);
	} else {
		h2s_wake(s);
	}
	return 0;
}

static int on_frame_send(nghttp2_session *ss, const nghttp2_frame *f, void *user)
{
	struct h2_conn *h = user;
	if (f->hd.type == NGHTTP2_GOAWAY) {
		int why = h->goaway;
		if (why < 0)
			why = f->goaway.error_code == NGHTTP2_NO_ERROR ? H2_GA_SHUTDOWN :
			      f->goaway.error_code == NGHTTP2_ENHANCE_YOUR_CALM ? H2_GA_FLOOD : H2_GA_PROTOCOL;
		if (!h->goaway_sent || f->goaway.error_code != NGHTTP2_NO_ERROR)
			atomic_fetch_add_explicit(&h->c->fe->h2_goaway[why], 1, memory_order_relaxed);
		h->goaway_sent = true;
		return 0;
	}
	/* RFC 9113 8.1: a response complete before the request is ends the
	 * stream with RST_STREAM NO_ERROR, so the client stops sending */
	if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) &&
	    (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
		struct h2_strm *s = nghttp2_session_get_stream_user_data(ss, f->hd.stream_id);
		if (s && !s->req_end)
			nghttp2_submit_rst_stream(ss, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_NO_ERROR);
	}
	return 0;
}

/* DATA frames no bigger than what c->out holds with room to spare */
static ssize_t data_len(nghttp2_session *ss, uint8_t type, int32_t id, int32_t swin,
			int32_t cwin, uint32_t max, void *user)
{
	(void)ss, (void)type, (void)id;
	struct h2_conn *h = user;
	ssize_t n = MIN(MIN(swin, cwin), (int32_t)MIN(max, h->c->w->bufs.size / 2));
	return n > 0 ? n : 1;
}

/* nghttp2 copies them into each session */
static nghttp2_session_callbacks *callbacks(void)
{
	nghttp2_session_callbacks *cb;
	if (nghttp2_session_callbacks_new(&cb) != 0)
		return NULL;
	nghttp2_session_callbacks_set_on_begin_frame_callback(cb, on_begin_frame);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
	nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
	nghttp2_session_callbacks_set_data_source_read_length_callback(cb, data_len);
	return cb;
}

/* ---- the connection --------------------------------------------------------- */

static struct h2_conn *conn_new(struct cconn *c)
{
	const struct config *g = c->gen;
	struct h2_conn *h = calloc(1, sizeof(*h));
	nghttp2_session_callbacks *cb = callbacks();
	nghttp2_option *opt = NULL;
	if (!h || !cb || nghttp2_option_new(&opt) != 0) {
		nghttp2_session_callbacks_del(cb);
		free(h);
		return NULL;
	}
	h->c = c;
	h->goaway = -1;
	/* a stream's head is built in a buffer (xprt_h2s.c); one with a body
	 * then moves to a buffer of the window's size more */
	h->max_list = MIN(g->h2_max_header_list, c->w->bufs.size - 512);
	h->window = c->w->h2_bodies.size - c->w->bufs.size;
	h->max_cont = g->h2_max_continuations;
	h->reset_rate = g->h2_reset_budget;
	h->ctl_rate = g->h2_control_budget;
	h->rst.at = h->settings.at = h->ping.at = c->w->now;
	h->rst.credit = (uint64_t)h->reset_rate * 1000;
	h->settings.credit = h->ping.credit = (uint64_t)h->ctl_rate * 1000;
	h->idle_since = c->w->now;
	/* the window reopens only as the exchange takes bytes (xprt_h2s.c) */
	nghttp2_option_set_no_auto_window_update(opt, 1);
	/* nghttp2's own limits stay behind bollard's, which count by reason */
	nghttp2_option_set_stream_reset_rate_limit(opt, (uint64_t)h->reset_rate * 4 + 16,
						   (uint64_t)h->reset_rate * 4 + 16);
	nghttp2_option_set_max_continuations(opt, h->max_cont * 2 + 8);
	/* The request's fields are checked by bollard's conversion (h2_head.c)
	 * and its body against content-length here (on_data_chunk, body_end):
	 * libnghttp2's HTTP messaging checks were the same work done twice,
	 * about 2,400 instructions a request, a tenth of bollard's. The
	 * framing rules (RFC 9113 4-6) stay libnghttp2's. */
	nghttp2_option_set_no_http_messaging(opt, 1);
	nghttp2_mem mem;
	h2_mem_bind(&c->w->h2_mem, &mem);
	int rc = nghttp2_session_server_new3(&h->ss, cb, h, opt, &mem);
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cb);
	if (rc != 0) {
		free(h);
		return NULL;
	}
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, g->h2_max_streams },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, h->window },
		{ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, h->max_list },
		{ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
	};
	/* the connection's window: every stream's at once, so that streams
	 * that do not read do not stop the others (RFC 9113 6.9.1) */
	uint64_t cwin = MIN((uint64_t)g->h2_max_streams * h->window, (uint64_t)INT32_MAX);
	if (nghttp2_submit_settings(h->ss, NGHTTP2_FLAG_NONE, iv, ARRAY_SIZE(iv)) != 0 ||
	    nghttp2_session_set_local_window_size(h->ss, NGHTTP2_FLAG_NONE, 0, (int32_t)cwin) != 0) {
		nghttp2_session_del(h->ss);
		free(h);
		return NULL;
	}
	return h;
}

void h2_mark_dirty(struct h2_conn *h)
{
	if (h->dirty)
		return;
	struct worker *w = h->c->w;
	h->dirty = true;
	h->dnext = w->h2_dirty;
	w->h2_dirty = h;
}

static void undirty(struct h2_conn *h)
{
	struct worker *w = h->c->w;
	if (!h->dirty)
		return;
	for (struct h2_conn **p = &w->h2_dirty; *p; p = &(*p)->dnext)
		if (*p == h) {
			*p = h->dnext;
			break;
		}
	h->dirty = false;
}

/* Send what nghttp2 has, through c->out. >0 progress, 0 none, -1 the
 * client is gone. */
static int flush(struct h2_conn *h)
{
	struct cconn *c = h->c;
	struct worker *w = c->w;
	int progress = 0, round;
	for (round = 0; round < 64; round++) {
		if (!c->out.data && buf_get(&w->bufs, &c->out) < 0)
			return -1;
		while (!h->pend_len) {
			uint32_t room = buf_room(&c->out, w->bufs.size);
			if (room < 256 && !buf_empty(&c->out))
				break;
			const uint8_t *d;
			ssize_t n = nghttp2_session_mem_send(h->ss, &d);
			if (n < 0)
				return -1;
			if (n == 0)
				break;
			if ((size_t)n <= room) {
				memcpy(buf_wptr(&c->out), d, (size_t)n);
				c->out.tail += (uint32_t)n;
			} else {
				/* valid until the next mem_send, which waits for it */
				h->pend = d;
				h->pend_len = (size_t)n;
			}
		}
		if (buf_empty(&c->out) && !h->pend_len)
			break;
		struct iovec iov[2] = { { buf_rptr(&c->out), buf_len(&c->out) },
					{ (void *)h->pend, h->pend_len } };
		ssize_t wn = xconn_writev(&c->xc, iov, h->pend_len ? 2 : 1);
		if (wn < 0)
			return -1;
		if (wn == 0)
			break;
		progress = 1;
		c->t_cli = w->now;
		size_t k = MIN((size_t)wn, (size_t)buf_len(&c->out));
		buf_consume(&c->out, (uint32_t)k);
		k = (size_t)wn - k;
		h->pend += k;
		h->pend_len -= k;
		if (h->pend_len && h->pend_len <= buf_room(&c->out, w->bufs.size)) {
			memcpy(buf_wptr(&c->out), h->pend, h->pend_len);
			c->out.tail += (uint32_t)h->pend_len;
			h->pend_len = 0;
		}
	}
	if (c->out.data && buf_empty(&c->out))
		buf_put(&w->bufs, &c->out);
	/* the socket still takes bytes and nghttp2 has more: no edge will
	 * come for it, so the next loop iteration goes on */
	if (round == 64)
		h2_mark_dirty(h);
	return progress;
}

/* Drive the streams nghttp2 woke (and those their writes wake), then send. */
static int run_streams(struct h2_conn *h)
{
	int progress = 0;
	for (int round = 0; round < WAKE_ROUNDS; round++) {
		while (h->wake) {
			struct h2_strm *s = h->wake;
			h->wake = s->wnext;
			s->woken = false;
			progress = 1;
			if (s->cc_closed) {
				if (s->ns_closed)
					h2s_recycle(s);
				continue;
			}
			struct cconn *sc = &s->c;
			if (s->ns_closed) {
				/* the client reset it, or the connection ends */
				if (sc->tx.t_start && !sc->tx.logged)
					stream_abort(sc, "client-reset");
				else
					stream_close(sc);
				continue;
			}
			if (!s->head_ready)
				continue;
			if (!s->started) {
				s->started = true;
				if (s->refused) {
					/* as an HTTP/1.1 head too large is answered */
					sc->tx.t_start = sc->w->now_us;
					atomic_fetch_add_explicit(&sc->fe->rejected, 1, memory_order_relaxed);
					stream_error(sc, s->refused, s->refused == 431 ?
						     "request header list too large" :
						     "CONNECT is not served over HTTP/2", "bad-request");
				}
			}
			stream_drive(sc);
		}
		int f = flush(h);
		if (f < 0)
			return -1;
		if (!h->wake)
			break;
	}
	return progress;
}

/* The reload moved new requests to a new generation: the connection
 * follows (its streams' exchanges switch themselves), or ends gracefully
 * when its frontend is gone. */
static void follow_generation(struct cconn *c)
{
	if (likely(c->gen == c->w->cfg))
		return;
	if (!stream_switch_generation(c))
		h2_stop_soon(c);
}

int h2_step(struct cconn *c)
{
	struct worker *w = c->w;
	struct h2_conn *h = c->h2;
	int progress = 0;
	if (!h) {
		if (!(h = c->h2 = conn_new(c))) {
			stream_close(c);
			return 0;
		}
	}
	undirty(h); /* this step does what it was marked for */
	follow_generation(c);
	if ((c->close_after || w->stopping) && !h->goaway_sent && h->goaway < 0) {
		h->goaway = H2_GA_SHUTDOWN;
		nghttp2_submit_goaway(h->ss, NGHTTP2_FLAG_NONE,
				      nghttp2_session_get_last_proc_stream_id(h->ss), NGHTTP2_NO_ERROR,
				      NULL, 0);
	}
	bool got = false;
	for (int i = 0; i < READS_PER_STEP && !h->dead && unhold(h); i++) {
		int r = c->in.data && !buf_empty(&c->in) ? 1 : stream_read_client(c);
		if (r > 0) {
			c->t_cli = w->now;
			got = true;
		}
		if (c->in.data && !buf_empty(&c->in)) {
			ssize_t n = nghttp2_session_mem_recv(h->ss, (const uint8_t *)buf_rptr(&c->in),
							     buf_len(&c->in));
			if (n >= 0)
				buf_consume(&c->in, (uint32_t)n);
			else
				buf_consume(&c->in, buf_len(&c->in));
			progress = 1;
			if (n < 0) {
				/* bad preface, flood, or a callback's failure: what
				 * nghttp2 could not answer itself */
				if (h->goaway < 0)
					h->goaway = n == NGHTTP2_ERR_FLOODED ? H2_GA_FLOOD : H2_GA_PROTOCOL;
				nghttp2_session_terminate_session(h->ss, n == NGHTTP2_ERR_FLOODED ?
								  NGHTTP2_ENHANCE_YOUR_CALM :
								  NGHTTP2_PROTOCOL_ERROR);
				h->dead = true;
			}
		}
		if (r <= 0)
			break;
	}
	if (c->in.data && buf_empty(&c->in) && !h->held) /* held DATA lies in it */
		buf_put(&w->bufs, &c->in);
	if (c->xc.eof && !h->dead) {
		stream_close(c); /* the client is gone: so are its streams */
		return 0;
	}
	int rs = run_streams(h);
	if (rs < 0 || c->closed) {
		if (!c->closed)
			stream_close(c);
		return 0;
	}
	/* streams left to drive after WAKE_ROUNDS: the next loop iteration
	 * (h2_run), so that one connection does not hold the worker */
	if (h->wake)
		h2_mark_dirty(h);
	if (!h->nstreams) {
		h->idle_since = h->idle_since ? h->idle_since : w->now;
		if (got) /* frames without a stream (SETTINGS, WINDOW_UPDATE, PING) */
			stream_tls_stirred(c);
		stream_tls_idle(c, nghttp2_session_get_last_proc_stream_id(h->ss) > 0);
	} else {
		h->idle_since = 0;
		stream_tls_busy(c);
	}
	/* done: nothing to read or send any more (GOAWAY out, no stream left) */
	if ((h->dead || (!nghttp2_session_want_read(h->ss) && !nghttp2_session_want_write(h->ss))) &&
	    !h->pend_len && !nghttp2_session_want_write(h->ss)) {
		c->state = CS_CLOSING;
		c->close_deadline = w->now + c->fe->to.client;
		return 1;
	}
	return progress;
}

uint64_t h2_deadline(struct cconn *c)
{
	struct h2_conn *h = c->h2;
	if (!h)
		return c->head_deadline;
	uint64_t when = EV_NO_TIMER;
	if (h->hdr_since)
		when = h->hdr_since + c->fe->to.http_request;
	if ((c->out.data && !buf_empty(&c->out)) || h->pend_len)
		when = MIN(when, c->t_cli + c->fe->to.client);
	if (!h->nstreams && h->idle_since)
		when = MIN(when, h->idle_since + c->fe->to.http_keep_alive);
	/* streams answered whose responses wait for the client only (its
	 * window shut): bounded by timeout client, as a client that stops
	 * reading an HTTP/1.1 response is */
	if (h->nstreams && !h->nopen)
		when = MIN(when, c->t_cli + c->fe->to.client);
	return when;
}

void h2_timeout(struct cconn *c)
{
	struct h2_conn *h = c->h2;
	if (h && h->goaway < 0) {
		h->goaway = H2_GA_TIMEOUT;
		nghttp2_submit_goaway(h->ss, NGHTTP2_FLAG_NONE,
				      nghttp2_session_get_last_proc_stream_id(h->ss), NGHTTP2_NO_ERROR,
				      NULL, 0);
		flush(h);
	}
	stream_close(c);
}

void h2_stop_soon(struct cconn *c)
{
	c->close_after = true;
	if (c->h2)
		h2_mark_dirty(c->h2);
}

void h2_conn_closed(struct cconn *c)
{
	struct h2_conn *h = c->h2;
	if (!h)
		return;
	undirty(h);
	/* every stream ends with its connection; an exchange that did not
	 * finish is logged as the client's closing */
	while (h->streams) {
		struct h2_strm *s = h->streams;
		s->ns_closed = true;
		s->woken = false;
		if (!s->cc_closed) {
			if (s->c.tx.t_start && !s->c.tx.logged)
				stream_abort(&s->c, "client-closed");
			else
				stream_close(&s->c);
		} else {
			h2s_recycle(s);
		}
	}
	nghttp2_session_del(h->ss);
	free(h);
	c->h2 = NULL;
}

bool h2_run(struct worker *w)
{
	for (int pass = 0; pass < 4 && w->h2_dirty; pass++) {
		struct h2_conn *list = w->h2_dirty;
		w->h2_dirty = NULL;
		while (list) {
			struct h2_conn *h = list;
			list = h->dnext;
			h->dirty = false;
			stream_drive(h->c);
		}
	}
	return w->h2_dirty != NULL;
}
