/*
 * conn.c - one client connection of the demo app: socket I/O, the request
 * head parser, request-body decoding and the state machine that ties them.
 *
 * Everything is non-blocking and edge-triggered, so conn_run() loops
 * (process input, flush output, read more) until none of the three makes
 * progress: the next epoll event or timer resumes it. Memory per connection
 * is bounded: a fixed input buffer (the largest head), an output buffer
 * that producers stop filling above DEMO_OUT_HIGH, and bodies that are
 * counted and hashed as they pass, never stored.
 *
 * Pipelining is safe by construction: a request is only parsed once the
 * previous answer is fully queued (or streamed), so answers leave in order.
 * The parser is strict where a lenient one would let a proxy and this app
 * disagree on framing (RFC 9112 section 6.3, 11.2): CRLF line ends only,
 * no obs-fold, no whitespace before the colon, one Content-Length value,
 * chunked as the only transfer coding and not on HTTP/1.0.
 */
#include "demo.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define DRAIN_MS        2000     /* lingering close: wait for the client's EOF */
#define TRAILERS_LIMIT  65536    /* trailer section larger than this: 400 */
#define CHUNK_SIZE_MAX  (1ull << 60)

void conn_accept(struct demo_worker *w, int fd)
{
	struct epoll_event ev;
	struct demo_conn *c;
	int one = 1;

	c = malloc(sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	/* rbuf needs no clearing: only rbuf[roff..rlen) is ever read. */
	memset(c, 0, offsetof(struct demo_conn, rbuf));
	c->w = w;
	c->fd = fd;
	c->st = CS_HEAD;
	/* Answers are written whole; Nagle would only delay pipelined ones. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
	ev.data.ptr = c;
	if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
		close(fd);
		free(c);
	}
}

static void conn_close(struct demo_conn *c)
{
	demo_timer_clear(c);
	close(c->fd);
	free(c->head_copy);
	sbuf_free(&c->out);
	free(c);
}

/* ---- request head ------------------------------------------------------ */

/* RFC 9110 5.6.2: tchar */
static bool is_tchar(unsigned char ch)
{
	static const char extra[] = "!#$%&'*+-.^_`|~";

	if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
	    (ch >= 'A' && ch <= 'Z'))
		return true;
	return ch && strchr(extra, ch) != NULL;
}

static bool name_is(const char *h, const struct demo_field *f, const char *name)
{
	size_t n = strlen(name);

	return f->name_len == n && strncasecmp(h + f->name, name, n) == 0;
}

/* Is tok one of the comma-separated elements of v[0..n) (RFC 9110 5.6.1)? */
static bool has_token(const char *v, size_t n, const char *tok)
{
	size_t tl = strlen(tok), i = 0;

	while (i < n) {
		size_t s, e;
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		s = i;
		while (i < n && v[i] != ',')
			i++;
		e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e - s == tl && strncasecmp(v + s, tok, tl) == 0)
			return true;
	}
	return false;
}

const char *conn_header(const struct demo_req *r, const char *name, size_t *len)
{
	unsigned i;

	for (i = 0; i < r->nfields; i++) {
		const struct demo_field *f = &r->fields[i];
		if (name_is(r->hb, f, name)) {
			*len = f->value_len;
			return r->hb + f->value;
		}
	}
	return NULL;
}

/* The semantics bollard's tests rely on, from the framing fields. Returns
 * 0 or the status to refuse the request with. */
static int field_meaning(struct demo_req *r, const char *h,
			 const struct demo_field *f, bool *close, bool *ka)
{
	const char *v = h + f->value;
	size_t n = f->value_len, i;

	if (name_is(h, f, "content-length")) {
		/* RFC 9112 6.3: one decimal value; a list or a second
		 * differing value is a framing attack, refuse it. */
		uint64_t x = 0;
		if (n == 0 || n > 18)
			return 400;
		for (i = 0; i < n; i++) {
			if (v[i] < '0' || v[i] > '9')
				return 400;
			x = x * 10 + (uint64_t)(v[i] - '0');
		}
		if (r->has_clen && r->clen != x)
			return 400;
		r->has_clen = true;
		r->clen = x;
	} else if (name_is(h, f, "transfer-encoding")) {
		/* RFC 9112 6.1: chunked must be the final coding; we know
		 * no other, so chunked must be the only one. */
		if (r->chunked || n != 7 || strncasecmp(v, "chunked", 7) != 0)
			return 400;
		r->chunked = true;
	} else if (name_is(h, f, "connection")) {
		if (has_token(v, n, "close"))
			*close = true;
		if (has_token(v, n, "keep-alive"))
			*ka = true;
		if (has_token(v, n, "upgrade"))
			r->conn_upgrade = true;
	} else if (name_is(h, f, "expect")) {
		if (n == 12 && strncasecmp(v, "100-continue", 12) == 0)
			r->expect100 = true;
	} else if (name_is(h, f, "upgrade")) {
		if (has_token(v, n, "websocket"))
			r->upgrade_ws = true;
	}
	return 0;
}

/* Parse the head h[0..len), which ends with CRLF CRLF. Returns 0, or the
 * status code to refuse it with (400, 431, 505). */
static int parse_head(const char *h, uint32_t len, struct demo_req *r)
{
	bool close = false, ka = false;
	uint32_t i = 0, s;
	const char *q;

	r->nfields = 0;
	r->has_clen = r->chunked = r->expect100 = false;
	r->conn_upgrade = r->upgrade_ws = false;
	r->clen = 0;
	r->head_len = len;

	/* RFC 9112 3: request-line = method SP request-target SP HTTP-version */
	while (i < len && is_tchar((unsigned char)h[i]))
		i++;
	if (i == 0 || h[i] != ' ')
		return 400;
	r->meth_len = i++;
	r->target = s = i;
	while (i < len && (unsigned char)h[i] > 0x20 && (unsigned char)h[i] < 0x7f)
		i++;
	if (i == s || h[i] != ' ')
		return 400;
	r->target_len = i - s;
	q = memchr(h + s, '?', r->target_len);
	r->path_len = q ? (uint32_t)(q - (h + s)) : r->target_len;
	i++;
	if (len - i < 10 || memcmp(h + i, "HTTP/", 5) != 0)
		return 400;
	if (h[i + 5] != '1' || h[i + 6] != '.')
		return 505;
	if (h[i + 7] < '0' || h[i + 7] > '9' || h[i + 8] != '\r' || h[i + 9] != '\n')
		return 400;
	/* RFC 9110 2.5: a higher minor version is answered as 1.1. */
	r->minor = h[i + 7] == '0' ? 0 : 1;
	i += 10;

	/* RFC 9112 5: field-line = field-name ":" OWS field-value OWS CRLF */
	while (!(h[i] == '\r' && h[i + 1] == '\n')) {
		struct demo_field *f;
		uint32_t e;
		int st;

		if (r->nfields == DEMO_MAX_FIELDS)
			return 431;
		f = &r->fields[r->nfields];
		f->name = s = i;
		/* An empty name also catches obs-fold (a line starting with
		 * SP or HTAB, RFC 9112 5.2) and a space before the colon
		 * (RFC 9112 5.1). */
		while (is_tchar((unsigned char)h[i]))
			i++;
		if (i == s || h[i] != ':')
			return 400;
		f->name_len = i - s;
		i++;
		while (h[i] == ' ' || h[i] == '\t')
			i++;
		f->value = i;
		/* RFC 9110 5.5: no CTL but HTAB; a bare CR or LF is one. */
		while (h[i] != '\r') {
			unsigned char ch = (unsigned char)h[i];
			if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
				return 400;
			i++;
		}
		if (h[i + 1] != '\n')
			return 400;
		e = i;
		while (e > f->value && (h[e - 1] == ' ' || h[e - 1] == '\t'))
			e--;
		f->value_len = e - f->value;
		i += 2;
		r->nfields++;
		st = field_meaning(r, h, f, &close, &ka);
		if (st)
			return st;
	}
	/* RFC 9112 6.3: both framings at once is how requests are smuggled;
	 * HTTP/1.0 has no chunked coding (RFC 9112 6.1). */
	if (r->chunked && (r->has_clen || r->minor == 0))
		return 400;
	/* RFC 9112 9.3: 1.1 persists unless "close"; 1.0 only if asked. */
	r->keepalive = r->minor ? !close : (ka && !close);
	r->is_head = r->meth_len == 4 && memcmp(h, "HEAD", 4) == 0;
	return 0;
}

/* A complete head is in the input: parse it and either answer it at once
 * (no body: the head is read in place) or keep a copy and go read the
 * body (the input buffer moves while the body streams through it). */
static int on_head(struct demo_conn *c, uint32_t head_len)
{
	int st;

	st = parse_head(c->rbuf + c->roff, head_len, &c->req);
	if (st) {
		route_error(c, st, st == 431 ? "request header fields too large\n" :
			    st == 505 ? "HTTP version not supported\n" :
			    "bad request\n");
		return 1;
	}
	atomic_fetch_add_explicit(&c->w->requests, 1, memory_order_relaxed);
	c->req.hb = c->rbuf + c->roff;
	c->close_after = !c->req.keepalive;
	c->body_len = 0;
	c->keep_len = 0;
	c->trailers_len = c->trailers_seen = 0;
	c->hashing = false;
	route_classify(c);
	if (c->hashing)
		hash_sha256_init(&c->sha);

	if (c->req.chunked || c->req.clen > 0) {
		if (!c->head_copy) {
			c->head_copy = malloc(DEMO_RBUF_SIZE);
			if (!c->head_copy)
				return -1;
		}
		memcpy(c->head_copy, c->rbuf + c->roff, head_len);
		c->req.hb = c->head_copy;
		c->roff += head_len;
		c->bst = c->req.chunked ? BS_CSIZE : BS_CL;
		c->left = c->req.clen;
		c->st = CS_BODY;
		/* RFC 9110 10.1.1: tell a waiting client to send the body. */
		if (c->req.expect100 && c->req.minor == 1)
			sbuf_puts(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
		return 1;
	}
	st = route_respond(c);
	c->roff += head_len;
	return st < 0 ? -1 : 1;
}

static int read_head(struct demo_conn *c)
{
	uint32_t avail;
	const char *end;

	if (c->out.len - c->woff > DEMO_OUT_HIGH)
		return 0;
	/* RFC 9112 2.2: ignore empty lines before a request-line. */
	while (c->rlen - c->roff >= 2 && c->rbuf[c->roff] == '\r' &&
	       c->rbuf[c->roff + 1] == '\n')
		c->roff += 2;
	avail = c->rlen - c->roff;
	if (avail == 0) {
		if (!c->rd_eof)
			return 0;
		/* The client is done: finish writing, then close. */
		c->st = CS_CLOSING;
		return 1;
	}
	end = memmem(c->rbuf + c->roff, avail, "\r\n\r\n", 4);
	if (!end) {
		if (avail >= DEMO_RBUF_SIZE) {
			route_error(c, 431, "request header fields too large\n");
			return 1;
		}
		return c->rd_eof ? -1 : 0;
	}
	return on_head(c, (uint32_t)(end + 4 - (c->rbuf + c->roff)));
}

/* ---- request body ------------------------------------------------------ */

static void body_take(struct demo_conn *c, uint32_t n)
{
	const char *p = c->rbuf + c->roff;

	if (c->hashing)
		hash_sha256_update(&c->sha, p, n);
	if (c->keep_len < DEMO_KEEP_BODY) {
		size_t k = min_sz(n, DEMO_KEEP_BODY - c->keep_len);
		memcpy(c->keep + c->keep_len, p, k);
		c->keep_len += k;
	}
	c->body_len += n;
	c->roff += n;
}

/* RFC 9112 7.1: chunk-size [ chunk-ext ] CRLF. Returns the size, or -1. */
static int64_t chunk_size(const char *p, size_t n)
{
	uint64_t v = 0;
	size_t i = 0;

	for (; i < n; i++) {
		int d;
		if (p[i] >= '0' && p[i] <= '9')
			d = p[i] - '0';
		else if ((p[i] | 0x20) >= 'a' && (p[i] | 0x20) <= 'f')
			d = (p[i] | 0x20) - 'a' + 10;
		else
			break;
		if (v >= CHUNK_SIZE_MAX >> 4)
			return -1;              /* overflow attempt */
		v = v << 4 | (uint64_t)d;
	}
	if (i == 0)
		return -1;
	/* RFC 9112 7.1.1: BWS ";" chunk-ext; extensions are ignored. */
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	if (i < n && p[i] != ';')
		return -1;
	for (; i < n; i++)
		if ((unsigned char)p[i] < 0x20 && p[i] != '\t')
			return -1;
	return (int64_t)v;
}

static int read_body(struct demo_conn *c)
{
	int progress = 0;

	for (;;) {
		uint32_t avail = c->rlen - c->roff;
		const char *p = c->rbuf + c->roff, *eol;
		int64_t sz;
		uint32_t n;

		switch (c->bst) {
		case BS_CL:
		case BS_CDATA:
			if (c->left == 0) {
				if (c->bst == BS_CL)
					goto done;
				c->bst = BS_CCRLF;
				break;
			}
			if (!avail)
				return c->rd_eof ? -1 : progress;
			n = (uint32_t)min_u64(c->left, avail);
			body_take(c, n);
			c->left -= n;
			progress = 1;
			break;
		case BS_CCRLF:
			if (avail < 2)
				return c->rd_eof ? -1 : progress;
			if (p[0] != '\r' || p[1] != '\n')
				goto bad;
			c->roff += 2;
			c->bst = BS_CSIZE;
			break;
		case BS_CSIZE:
		case BS_TRAILER:
			eol = memmem(p, avail, "\r\n", 2);
			if (!eol) {
				if (avail >= DEMO_LINE_MAX)
					goto bad;
				return c->rd_eof ? -1 : progress;
			}
			n = (uint32_t)(eol - p);
			progress = 1;
			if (c->bst == BS_CSIZE) {
				sz = chunk_size(p, n);
				if (sz < 0)
					goto bad;
				c->roff += n + 2;
				c->left = (uint64_t)sz;
				c->bst = sz ? BS_CDATA : BS_TRAILER;
				break;
			}
			c->roff += n + 2;
			if (n == 0)
				goto done;
			/* RFC 9112 7.1.2: trailer fields, kept for /echo. */
			if (!memchr(p, ':', n) || p[0] == ' ' || p[0] == '\t' ||
			    memchr(p, '\r', n) || memchr(p, '\n', n))
				goto bad;
			c->trailers_seen += n + 2;
			if (c->trailers_seen > TRAILERS_LIMIT)
				goto bad;
			if (c->trailers_len + n + 2 <= DEMO_TRAILERS_MAX) {
				memcpy(c->trailers + c->trailers_len, p, n + 2);
				c->trailers_len += n + 2;
			}
			break;
		}
	}
done:
	c->st = CS_HEAD;
	return route_respond(c) < 0 ? -1 : 1;
bad:
	route_error(c, 400, "bad request body framing\n");
	return 1;
}

/* ---- the state machine ------------------------------------------------- */

static int process(struct demo_conn *c)
{
	int progress = 0;

	for (;;) {
		int r = 0;

		/* Producers append to out; move pending bytes to the front
		 * first so the buffer does not creep. */
		if (c->woff && c->woff == c->out.len) {
			c->woff = c->out.len = 0;
		} else if (c->woff > 65536) {
			memmove(c->out.p, c->out.p + c->woff, c->out.len - c->woff);
			c->out.len -= c->woff;
			c->woff = 0;
		}
		switch (c->st) {
		case CS_HEAD:
			r = read_head(c);
			break;
		case CS_BODY:
			r = read_body(c);
			break;
		case CS_STREAM:
			r = route_stream(c);
			break;
		case CS_SLEEP:
			r = 0;
			break;
		case CS_WS:
			r = ws_process(c);
			break;
		case CS_CLOSING:
			if (c->woff < c->out.len)
				break;
			/* Half-close and read on, so a request the client
			 * already sent does not turn our answer into a reset
			 * (RFC 9112 9.6). */
			shutdown(c->fd, SHUT_WR);
			c->st = CS_DRAIN;
			demo_timer_set(c, demo_now_ms() + DRAIN_MS);
			r = 1;
			break;
		case CS_DRAIN:
			c->roff = c->rlen = 0;
			r = c->rd_eof ? -1 : 0;
			break;
		}
		if (c->out.oom)
			return -1;
		if (r <= 0)
			return r < 0 ? -1 : progress;
		progress = 1;
	}
}

static int flush(struct demo_conn *c)
{
	int progress = 0;

	while (c->woff < c->out.len) {
		ssize_t n = send(c->fd, c->out.p + c->woff, c->out.len - c->woff,
				 MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			return -1;
		}
		c->woff += (size_t)n;
		progress = 1;
	}
	if (c->woff == c->out.len) {
		c->woff = c->out.len = 0;
		/* Give back what a big answer grew, keep the usual size. */
		if (c->out.cap > 4 * DEMO_OUT_HIGH)
			sbuf_free(&c->out);
	}
	return progress;
}

static int fill(struct demo_conn *c)
{
	ssize_t n;

	if (c->rd_eof)
		return 0;
	if (c->roff == c->rlen) {
		c->roff = c->rlen = 0;
	} else if (c->roff && (c->rlen == DEMO_RBUF_SIZE || c->roff >= DEMO_RBUF_SIZE / 2)) {
		/* Safe: nothing keeps a pointer into rbuf between calls. */
		memmove(c->rbuf, c->rbuf + c->roff, c->rlen - c->roff);
		c->rlen -= c->roff;
		c->roff = 0;
	}
	if (c->rlen == DEMO_RBUF_SIZE)
		return 0;
	for (;;) {
		n = recv(c->fd, c->rbuf + c->rlen, DEMO_RBUF_SIZE - c->rlen, 0);
		if (n > 0) {
			c->rlen += (uint32_t)n;
			return 1;
		}
		if (n == 0) {
			c->rd_eof = true;
			return 1;
		}
		if (errno == EINTR)
			continue;
		return errno == EAGAIN ? 0 : -1;
	}
}

void conn_run(struct demo_conn *c)
{
	for (;;) {
		int p, r;

		p = process(c);
		if (p < 0)
			break;
		r = flush(c);
		if (r < 0)
			break;
		p |= r;
		r = fill(c);
		if (r < 0)
			break;
		if (!(p | r))
			return;
	}
	conn_close(c);
}

void conn_timeout(struct demo_conn *c)
{
	if (c->st == CS_DRAIN) {
		conn_close(c);
		return;
	}
	if (c->st == CS_SLEEP && route_slow_done(c) < 0) {
		conn_close(c);
		return;
	}
	conn_run(c);
}
