/*
 * xprt_h2s.c - the transport of a stream connection (xprt.h): one HTTP/2
 * stream as the HTTP/1.1 bytes the exchange code reads and writes.
 *
 * Receiving: the request head built from the header list (h2_head.c), then
 * the DATA of the stream, framed with its content-length or, when it has
 * none, chunked (RFC 9112 7.1), all in rx. The stream's window is given
 * back (nghttp2_session_consume) only as the exchange takes body bytes out
 * of rx, so a stream holds at most its window of body in memory however
 * big the upload, and a stream whose server does not read stops only its
 * own client (RFC 9113 5.2: flow control is per stream).
 *
 * Sending: the exchange writes an HTTP/1.1 response. Its head is parsed
 * back (h1.c) into a header list for nghttp2_submit_response, and its body
 * is de-framed (content-length counted, chunked decoded, trailers dropped)
 * into tx, which nghttp2 reads as the client's window allows. A full tx
 * makes the write short, as a full socket would: the exchange stops
 * reading the server until nghttp2 took some (back-pressure).
 */
#include "api.h"
#include "h2-t.h"
#include "http.h"
#include "worker-t.h"

#define HEX_LINE 10 /* "%08x\r\n": a size line that can grow in place */

enum { CH_SIZE, CH_EXT, CH_DATA, CH_DATA_END, CH_TRAILER };

/* ---- slots ------------------------------------------------------------- */

struct h2_strm *h2s_take(struct h2_conn *h, int32_t id)
{
	struct cconn *pc = h->c;
	struct worker *w = pc->w;
	struct h2_strm *s = w->h2_free;
	if (s)
		w->h2_free = s->next;
	else if (!(s = malloc(sizeof(*s))))
		return NULL;
	memset(s, 0, sizeof(*s));
	if (buf_get(&w->bufs, &s->rx) < 0 || buf_get(&w->bufs, &s->tx) < 0) {
		buf_put(&w->bufs, &s->rx);
		s->next = w->h2_free;
		w->h2_free = s;
		return NULL;
	}
	s->h = h;
	s->id = id;
	/* pseudo-headers and cookies wait in tx until the head is written */
	h2h_req_init(&s->req, s->rx.data, w->bufs.size - 64, s->tx.data, w->bufs.size, h->max_list);
	struct cconn *c = &s->c;
	c->kind = OBJ_CLIENT;
	xconn_init(&c->xc, -1, &xprt_h2s);
	c->xc.ctx = s;
	c->xc.can_write = true;
	c->w = w;
	c->gen = pc->gen;
	cfg_hold(c->gen);
	c->fe = pc->fe;
	c->h2p = pc;
	c->h2_checked = true;
	c->tls = pc->tls;
	c->tx.minor = 1;
	c->peer = pc->peer;
	memcpy(c->peer_ip, pc->peer_ip, sizeof(c->peer_ip));
	c->client = c->peer;
	memcpy(c->client_ip, c->peer_ip, sizeof(c->client_ip));
	strcpy(c->scheme, STREAM_OWN_SCHEME(c));
	ev_timer_init(&c->timer);
	c->state = CS_HEAD;
	c->head_deadline = w->now + c->fe->to.http_request;
	c->t_cli = w->now;
	s->next = h->streams;
	if (h->streams)
		h->streams->prev = s;
	h->streams = s;
	h->nstreams++;
	h->nopen++;
	return s;
}

void h2s_recycle(struct h2_strm *s)
{
	struct h2_conn *h = s->h;
	struct worker *w = h->c->w;
	BUG_ON(!s->cc_closed || !s->ns_closed || s->woken);
	if (h->held == s)
		h->held = NULL; /* its window went back when it closed */
	buf_put(s->rx_body ? &w->h2_bodies : &w->bufs, &s->rx);
	buf_put(&w->bufs, &s->tx);
	if (s->prev)
		s->prev->next = s->next;
	else
		h->streams = s->next;
	if (s->next)
		s->next->prev = s->prev;
	h->nstreams--;
	s->c.kind = 0; /* a stale pointer fails its magic check */
	s->h = NULL;
	s->next = w->h2_free;
	w->h2_free = s;
}

void h2_free_all(struct worker *w)
{
	while (w->h2_free) {
		struct h2_strm *s = w->h2_free;
		w->h2_free = s->next;
		free(s);
	}
}

void h2s_wake(struct h2_strm *s)
{
	if (s->woken)
		return;
	s->woken = true;
	s->wnext = s->h->wake;
	s->h->wake = s;
	h2_mark_dirty(s->h);
}

/* ---- the request: rx ------------------------------------------------------- */

/* Room at the end of rx, moving what is unread to the front first (and
 * the open chunk's size line with it). */
int h2s_rx_for_body(struct h2_strm *s)
{
	struct worker *w = s->c.w;
	struct buf big = { 0 };
	if (buf_get(&w->h2_bodies, &big) < 0)
		return -1;
	memcpy(big.data, buf_rptr(&s->rx), buf_len(&s->rx));
	big.tail = buf_len(&s->rx);
	buf_put(&w->bufs, &s->rx);
	s->rx = big;
	s->rx_body = true;
	return 0;
}

static uint32_t rx_space(struct h2_strm *s)
{
	uint32_t size = s->rx_body ? s->c.w->h2_bodies.size : s->c.w->bufs.size, k = s->rx.head;
	if (k) {
		memmove(s->rx.data, s->rx.data + k, buf_len(&s->rx));
		s->rx.tail -= k;
		s->rx.head = 0;
		if (s->chunk_open && s->chunk_off != UINT32_MAX)
			s->chunk_off -= k;
	}
	return size - s->rx.tail;
}

static bool rx_room(struct h2_strm *s, size_t n)
{
	return rx_space(s) >= n;
}

static void rx_put(struct h2_strm *s, const void *p, size_t n)
{
	memcpy(s->rx.data + s->rx.tail, p, n);
	s->rx.tail += (uint32_t)n;
}

size_t h2s_rx_data(struct h2_strm *s, const uint8_t *p, size_t n)
{
	if (!n)
		return 0;
	uint32_t room = rx_space(s);
	if (!s->chunked) {
		size_t k = MIN(n, (size_t)room);
		rx_put(s, p, k);
		s->c.xc.can_read = s->c.xc.can_read || k;
		return k;
	}
	/* one chunk grows while the exchange has not taken its size line,
	 * so that small DATA frames do not cost a size line each */
	bool grow = s->chunk_open && s->chunk_off != UINT32_MAX && s->chunk_len + n <= UINT32_MAX / 2;
	uint32_t ovh = grow ? 0 : HEX_LINE + 2;
	if (room <= ovh + 7) /* and the last chunk's room, kept for h2s_rx_end */
		return 0;
	size_t k = MIN(n, (size_t)(room - ovh - 7));
	if (!grow) {
		if (s->chunk_open)
			rx_put(s, "\r\n", 2);
		s->chunk_off = s->rx.tail;
		s->chunk_len = 0;
		s->chunk_open = true;
		rx_put(s, "00000000\r\n", HEX_LINE);
	}
	rx_put(s, p, k);
	s->chunk_len += (uint32_t)k;
	char hex[9];
	snprintf(hex, sizeof(hex), "%08x", s->chunk_len);
	memcpy(s->rx.data + s->chunk_off, hex, 8);
	s->c.xc.can_read = true;
	return k;
}

void h2s_rx_end(struct h2_strm *s)
{
	s->req_end = true;
	if (s->chunked && s->head_ready && !s->refused) {
		/* the last chunk: always fits, the window left room for it */
		if (rx_room(s, 7)) {
			if (s->chunk_open)
				rx_put(s, "\r\n", 2);
			rx_put(s, "0\r\n\r\n", 5);
		}
		s->chunk_open = false;
	}
	s->c.xc.can_read = true;
	/* an empty DATA frame with END_STREAM brings nothing else to wake
	 * the exchange for */
	h2s_wake(s);
}

static ssize_t h2s_recv(struct xconn *x, void *p, size_t len)
{
	struct h2_strm *s = x->ctx;
	uint32_t n = (uint32_t)MIN((size_t)buf_len(&s->rx), len);
	if (!n) {
		x->can_read = false;
		if (s->req_end || s->ns_closed || s->refused || !s->rx.data) {
			x->eof = true;
			return -1;
		}
		return 0;
	}
	memcpy(p, buf_rptr(&s->rx), n);
	/* the open chunk's size line is taken (in part or whole): it can no
	 * longer grow, the next DATA ends it and opens another */
	if (s->chunk_open && s->chunk_off != UINT32_MAX && s->chunk_off < s->rx.head + n)
		s->chunk_off = UINT32_MAX;
	buf_consume(&s->rx, n);
	uint32_t h = MIN(n, s->rx_head_left);
	s->rx_head_left -= h;
	uint64_t body = MIN((uint64_t)(n - h), s->unacked);
	if (body && !s->ns_closed) {
		s->unacked -= body;
		nghttp2_session_consume(s->h->ss, s->id, body);
		h2_mark_dirty(s->h); /* a WINDOW_UPDATE may be due */
	}
	/* at the end of the request, the next receive says so (-1): the
	 * exchange then closes the stream connection after its response,
	 * rather than holding it for timeout http-keep-alive */
	if (buf_empty(&s->rx) && !s->req_end)
		x->can_read = false;
	return n;
}

/* ---- the response: tx ---------------------------------------------------------- */

static void tx_push(struct h2_strm *s, const char *p, size_t n)
{
	memmove(s->tx.data + s->tx.tail, p, n);
	s->tx.tail += (uint32_t)n;
}

static uint32_t tx_room(struct h2_strm *s)
{
	return buf_room(&s->tx, s->c.w->bufs.size);
}

/* The body bytes p[0..n) as the exchange framed them: what goes into tx.
 * Returns how many of them were taken (tx may fill up). */
static size_t body_feed(struct h2_strm *s, const char *p, size_t n)
{
	size_t i = 0;
	if (s->rbody == H1_BODY_LENGTH || s->rbody == H1_BODY_CLOSE) {
		size_t k = MIN(n, (size_t)tx_room(s));
		if (s->rbody == H1_BODY_LENGTH)
			k = (size_t)MIN((uint64_t)k, s->rleft);
		tx_push(s, p, k);
		if (s->rbody == H1_BODY_LENGTH && !(s->rleft -= k))
			s->rsp_end = true;
		return k;
	}
	/* chunked (RFC 9112 7.1): the exchange already checked its grammar */
	while (i < n && !s->rsp_end) {
		char ch = p[i];
		switch (s->cstate) {
		case CH_SIZE:
			i++;
			if (ch >= '0' && ch <= '9')
				s->csize = s->csize * 16 + (uint64_t)(ch - '0');
			else if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f')
				s->csize = s->csize * 16 + (uint64_t)((ch | 0x20) - 'a' + 10);
			else if (ch == '\n')
				s->cstate = s->csize ? CH_DATA : CH_TRAILER;
			else
				s->cstate = CH_EXT;
			s->cline = 0;
			break;
		case CH_EXT:
			i++;
			if (ch == '\n')
				s->cstate = s->csize ? CH_DATA : CH_TRAILER;
			break;
		case CH_DATA: {
			size_t k = (size_t)MIN((uint64_t)(n - i), s->csize);
			k = MIN(k, (size_t)tx_room(s));
			if (!k)
				return i;
			tx_push(s, p + i, k);
			i += k;
			if (!(s->csize -= k))
				s->cstate = CH_DATA_END;
			break;
		}
		case CH_DATA_END:
			i++;
			if (ch == '\n')
				s->cstate = CH_SIZE;
			break;
		case CH_TRAILER:
			/* trailer fields are dropped; the empty line ends the body */
			i++;
			if (ch == '\n') {
				if (s->cline == 0)
					s->rsp_end = true;
				s->cline = 0;
			} else if (ch != '\r') {
				s->cline++;
			}
			break;
		}
	}
	return i;
}

static nghttp2_data_provider provider(struct h2_strm *s)
{
	return (nghttp2_data_provider){ .source.ptr = s, .read_callback = h2s_read_body };
}

/* Hand a response head to nghttp2 (its list nv). 0 done, -1 the stream
 * cannot take it. */
static int submit_head(struct h2_strm *s, const struct h1_msg *m, nghttp2_nv *nv, int cnt)
{
	if (m->status_code < 200) {
		/* interim (100, 103): a HEADERS without END_STREAM before the
		 * final one (RFC 9113 8.1) */
		return nghttp2_submit_headers(s->h->ss, NGHTTP2_FLAG_NONE, s->id, NULL, nv, (size_t)cnt,
					      NULL) != 0 ? -1 : 0;
	}
	s->rbody = m->body;
	s->rleft = m->body == H1_BODY_LENGTH ? m->content_length : 0;
	s->cstate = CH_SIZE;
	s->csize = 0;
	s->rsp_end = m->body == H1_BODY_NONE || (m->body == H1_BODY_LENGTH && !s->rleft);
	nghttp2_data_provider prd = provider(s);
	if (nghttp2_submit_response(s->h->ss, s->id, nv, (size_t)cnt,
				    m->body == H1_BODY_NONE ? NULL : &prd) != 0)
		return -1;
	s->rsp_head = true;
	return 0;
}

/* A whole response head is at the front of tx (n bytes), as text: parse
 * it back and hand it to nghttp2. 1 done, -1 the stream cannot take it. */
static int head_feed(struct h2_strm *s, struct h1_msg *m, int n)
{
	char scratch[4096];
	nghttp2_nv nv[H1_MAX_HDRS_HARD + 1];
	int cnt = h2h_rsp_nv(m, nv, (int)ARRAY_SIZE(nv), scratch, sizeof(scratch));
	if (cnt < 0 || submit_head(s, m, nv, cnt) < 0)
		return -1;
	if (!s->rsp_head) {
		buf_consume(&s->tx, (uint32_t)n);
		return 1;
	}
	/* the body bytes written with the head move to the front, de-framed */
	uint32_t rest = buf_len(&s->tx) - (uint32_t)n;
	char *from = buf_rptr(&s->tx) + n;
	s->tx.head = s->tx.tail = 0;
	size_t took = m->body == H1_BODY_NONE ? rest : body_feed(s, from, rest);
	return took == rest ? 1 : -1; /* de-framing never grows: it all fits */
}

/* xprt_ops.head: the exchange's response head, parsed already (the
 * server's, with what bollard adds): submitted from the fields, and its
 * len bytes of text skipped when writev brings them. What the list cannot
 * say from the fields alone goes the text way: a cookie prefix (persist
 * cookie NAME prefix rewrites Set-Cookie values in http_build_response),
 * and every head after one that went so, to keep them in order. */
static int h2s_head(struct xconn *x, const struct h1_msg *m, const struct http_resp_opts *ro,
		    uint32_t len)
{
	struct h2_strm *s = x->ctx;
	char scratch[4096];
	nghttp2_nv nv[H1_MAX_HDRS_HARD + HTTP_ADD_MAX + 2];
	int cnt = -1;
	if (!s->text_heads && !s->rsp_head && !ro->prefix_cookie && !ro->upgrade &&
	    !s->ns_closed && !s->h->dead && buf_empty(&s->tx))
		cnt = h2h_rsp_nv_from(m, ro->add, nv, (int)ARRAY_SIZE(nv), scratch, sizeof(scratch));
	if (cnt < 0 || submit_head(s, m, nv, cnt) < 0) {
		s->text_heads = true;
		return -1;
	}
	s->head_skip += len;
	h2_mark_dirty(s->h);
	return 0;
}

static ssize_t h2s_writev(struct xconn *x, const struct iovec *iov, int n)
{
	struct h2_strm *s = x->ctx;
	struct worker *w = s->c.w;
	size_t total = 0, want = 0;
	if (s->ns_closed || s->h->dead || (!s->tx.data && buf_get(&w->bufs, &s->tx) < 0))
		return -1;
	for (int i = 0; i < n; i++)
		want += iov[i].iov_len;
	for (int i = 0; i < n && (!s->rsp_end || s->head_skip); i++) {
		const char *p = iov[i].iov_base;
		size_t len = iov[i].iov_len, off = 0;
		while (off < len && (!s->rsp_end || s->head_skip)) {
			if (s->head_skip) {
				/* a head submitted from its fields (h2s_head) */
				size_t k = MIN((size_t)s->head_skip, len - off);
				s->head_skip -= (uint32_t)k;
				off += k;
				continue;
			}
			if (s->rsp_head) {
				size_t k = body_feed(s, p + off, len - off);
				off += k;
				if (!k)
					break;
				continue;
			}
			/* the head: gathered in tx, then parsed back */
			uint32_t room = tx_room(s);
			size_t k = MIN((size_t)room, len - off);
			if (!k)
				return total ? (ssize_t)total : -1; /* a head bigger than a buffer */
			memcpy(buf_wptr(&s->tx), p + off, k);
			s->tx.tail += (uint32_t)k;
			off += k;
			for (;;) {
				struct h1_msg m;
				memset(&m, 0, sizeof(m));
				m.hdrs = w->hdrs;
				m.hdrs_cap = w->lim.max_hdrs;
				int hn = h1_parse_response(buf_rptr(&s->tx), buf_len(&s->tx), &m, &w->lim,
							   s->c.tx.meth);
				if (hn == H1_INCOMPLETE)
					break;
				if (hn < 0 || head_feed(s, &m, hn) < 0)
					return -1;
				if (s->rsp_head || buf_empty(&s->tx))
					break;
			}
		}
		total += off;
		if (off < len)
			break;
	}
	if (total < want && !s->rsp_end)
		x->can_write = false;
	if (s->deferred && (s->rsp_end || !buf_empty(&s->tx))) {
		s->deferred = false;
		nghttp2_session_resume_data(s->h->ss, s->id);
	}
	h2_mark_dirty(s->h);
	return (ssize_t)(total < want && s->rsp_end ? want : total);
}

ssize_t h2s_read_body(nghttp2_session *ss, int32_t id, uint8_t *out, size_t len,
		      uint32_t *flags, nghttp2_data_source *src, void *user)
{
	(void)ss, (void)id, (void)user;
	struct h2_strm *s = src->ptr;
	size_t n = MIN(len, (size_t)buf_len(&s->tx));
	if (n) {
		memcpy(out, buf_rptr(&s->tx), n);
		buf_consume(&s->tx, (uint32_t)n);
		if (!s->cc_closed && !s->c.xc.can_write) {
			s->c.xc.can_write = true; /* room again: the exchange may write */
			h2s_wake(s);
		}
	}
	if (buf_empty(&s->tx) && s->rsp_end) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		return (ssize_t)n;
	}
	if (!n) {
		s->deferred = true;
		return NGHTTP2_ERR_DEFERRED;
	}
	return (ssize_t)n;
}

/* The end of a close-delimited response (the exchange shuts its side). */
static void h2s_shutw(struct xconn *x)
{
	struct h2_strm *s = x->ctx;
	if (s->rsp_head && !s->rsp_end && s->rbody == H1_BODY_CLOSE) {
		s->rsp_end = true;
		if (s->deferred && !s->ns_closed) {
			s->deferred = false;
			nghttp2_session_resume_data(s->h->ss, s->id);
		}
		h2_mark_dirty(s->h);
	}
}

/* Never called: a stream connection has no descriptor (h2_stream_closed). */
static void h2s_close(struct xconn *x)
{
	(void)x;
}

static int h2s_established(struct xconn *x)
{
	(void)x;
	return 1;
}

static void h2s_events(struct xconn *x, uint32_t events)
{
	(void)x, (void)events;
}

const struct xprt_ops xprt_h2s = {
	.name = "h2-stream",
	.init = NULL,
	.recv = h2s_recv,
	.writev = h2s_writev,
	.shutw = h2s_shutw,
	.close = h2s_close,
	.established = h2s_established,
	.events = h2s_events,
	.head = h2s_head,
};

/* stream_close() of a stream connection: the exchange is done with it. A
 * response it did not finish resets the stream; a finished one is sent
 * first (the slot waits for nghttp2's close). */
void h2_stream_closed(struct cconn *c)
{
	struct h2_strm *s = (struct h2_strm *)c;
	s->cc_closed = true;
	s->h->nopen--;
	if (!s->ns_closed) {
		h2s_shutw(&c->xc);
		if (!s->rsp_end || !s->rsp_head) {
			nghttp2_submit_rst_stream(s->h->ss, NGHTTP2_FLAG_NONE, s->id,
						  NGHTTP2_INTERNAL_ERROR);
		}
		/* body it will never take: the window goes back */
		if (s->unacked) {
			nghttp2_session_consume(s->h->ss, s->id, s->unacked);
			s->unacked = 0;
		}
		h2_mark_dirty(s->h);
		return;
	}
	if (!s->woken)
		h2s_recycle(s);
}
