/*
 * h1.c - strict HTTP/1.x head parser and chunked-body validator (RFC 9112).
 *
 * A proxy that parses a message differently from the hop before or after it
 * can be made to see two requests where the server sees one (request
 * smuggling). The defence is to accept only messages whose framing has one
 * and only one reading, and to reject everything else before a byte is
 * forwarded. So this parser is deliberately narrower than the grammar:
 *
 *   - lines end in CRLF, nothing else; a bare CR or bare LF anywhere is 400;
 *   - obs-fold, whitespace before the colon, an empty or non-token field
 *     name, control bytes (other than HTAB) in a value are 400;
 *   - Content-Length must be 1*DIGIT below 2^63; repeated fields or list
 *     elements must all carry the same value;
 *   - Transfer-Encoding must be exactly "chunked", once (we never decode
 *     other codings and the framing toward the server is regenerated, so a
 *     "gzip, chunked" message could not be forwarded faithfully: 400, not
 *     501, because nothing about it is worth a retry);
 *   - Content-Length together with Transfer-Encoding, and Transfer-Encoding
 *     in an HTTP/1.0 message, are 400 (RFC 9112 6.1 allows "fixing" the
 *     former; a proxy that fixes is a proxy that disagrees with someone);
 *   - HTTP/1.1 requests need exactly one Host, made of uri-host[:port]
 *     characters; an HTTP/1.0 request may omit it, not repeat it;
 *   - the request line is method SP target SP version with single spaces;
 *     HTTP/1.0 and HTTP/1.1 only (another well-formed version is 505).
 * What is accepted although a stricter reading could refuse it: obs-text
 * (bytes >= 0x80) in field values, reason phrases and the request-target
 * (raw UTF-8 paths are common and cannot affect framing); one or more
 * empty lines before a request line (RFC 9112 2.2); a status line without
 * the SP before an empty reason. The parser does not compare an
 * absolute-form target's authority with Host: that is the caller's job.
 * Responses follow the same rules but every failure is a 502: the fault is
 * the server's, and the client must not see a 400 it did not cause.
 *
 * The parser is pure: no I/O, no allocation, no global state. It runs in one
 * pass over the bytes, classifying characters with a 256-entry table and
 * recognising the dozen header names the proxy cares about by length first,
 * so the proxy never compares names again (H1_HF_* flags). It is
 * incremental-safe the simple way: it keeps no state between calls, so
 * calling it again on the grown buffer re-parses from the start; heads are
 * small and re-parsing them is cheaper than keeping and checking state.
 * Limits are enforced as soon as they are exceeded, before the head is
 * complete, so a slow client cannot make us hold an unbounded line.
 *
 * h1_chunk_scan() is the opposite: a byte-exact streaming state machine,
 * because a chunked body may be gigabytes and arrives in arbitrary pieces.
 */
#include "api.h"
#include "h1.h"

#include <strings.h>

/* Character classes, one byte per character (RFC 9110 5.6.2, 5.5; RFC 9112
 * 3.2; RFC 3986 3.2.2). Generated once; a bit per class: */
#define C_TOKEN  H1_C_TOKEN /* tchar */
#define C_VALUE  H1_C_VALUE /* field-vchar / SP / HTAB (obs-text included) */
#define C_TARGET 0x04 /* request-target: any byte but CTL and SP */
#define C_HEX    0x08 /* HEXDIG */
#define C_DIGIT  0x10 /* DIGIT */
#define C_HOST   H1_C_HOST /* uri-host / port / IP-literal characters */

const uint8_t h1_cls[256] = {
	/* 0x00 */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	/* 0x10 */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	/* 0x20 */ 0x02, 0x27, 0x06, 0x07, 0x27, 0x27, 0x27, 0x27, 0x26, 0x26, 0x27, 0x27, 0x26, 0x27, 0x27, 0x06,
	/* 0x30 */ 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x26, 0x26, 0x06, 0x26, 0x06, 0x06,
	/* 0x40 */ 0x06, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x27, 0x27, 0x27, 0x27, 0x27, 0x27, 0x27, 0x27, 0x27,
	/* 0x50 */ 0x27, 0x27, 0x27, 0x27, 0x27, 0x27, 0x27, 0x27, 0x27, 0x27, 0x27, 0x26, 0x06, 0x26, 0x07, 0x27,
	/* 0x60 */ 0x07, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x27, 0x27, 0x27, 0x27, 0x27, 0x27, 0x27, 0x27, 0x27,
	/* 0x70 */ 0x27, 0x27, 0x27, 0x27, 0x27, 0x27, 0x27, 0x27, 0x27, 0x27, 0x27, 0x06, 0x07, 0x06, 0x27, 0x00,
	/* 0x80 */ 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06,
	/* 0x90 */ 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06,
	/* 0xa0 */ 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06,
	/* 0xb0 */ 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06,
	/* 0xc0 */ 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06,
	/* 0xd0 */ 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06,
	/* 0xe0 */ 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06,
	/* 0xf0 */ 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06,
};

/* Used when the caller passes no limits: HAProxy-like defaults. */
static const struct h1_limits h1_default_limits = {
	.max_line = 8192,
	.max_head = 16384,
	.max_hdrs = 100,
};

static inline uint8_t lower(uint8_t c)
{
	return (uint8_t)(c | ((uint8_t)(c - 'A') < 26 ? 0x20 : 0));
}

/*
 * Skip bytes of a field value (or a request-target) eight at a time: a word
 * is accepted whole when none of its bytes is below `lo` (0x20 for values,
 * 0x21 for targets) nor DEL; bytes >= 0x80 (obs-text) pass. The test is the
 * classic "has a byte less than n" (exact as a yes/no for n <= 128). Any
 * other word, and the tail, go through the class table byte by byte, so the
 * result is exactly the table's. Returns the first byte not in `cls`.
 */
#define SWAR_ONES 0x0101010101010101ULL
#define SWAR_HIGH 0x8080808080808080ULL

static inline const uint8_t *skip_class(const uint8_t *p, const uint8_t *e,
					uint8_t cls, uint64_t lo)
{
	for (;;) {
		const uint8_t *stop;

		while (e - p >= 8) {
			uint64_t x, y;
			memcpy(&x, p, 8);
			y = x ^ (SWAR_ONES * 0x7f);
			if (((x - SWAR_ONES * lo) & ~x & SWAR_HIGH) |
			    ((y - SWAR_ONES) & ~y & SWAR_HIGH))
				break;
			p += 8;
		}
		stop = e - p > 8 ? p + 8 : e;
		while (p < stop && (h1_cls[*p] & cls))
			p++;
		if (p < stop || p == e)
			return p;
	}
}

const uint8_t *h1_skip_value(const uint8_t *p, const uint8_t *e)
{
	return skip_class(p, e, C_VALUE, 0x20);
}

/* Does p[0..n) equal the lowercase literal lit (of the same length n)? */
static inline bool eq_lower(const uint8_t *p, const char *lit, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (lower(p[i]) != (uint8_t)lit[i])
			return false;
	return true;
}

static inline bool is_ows(uint8_t c)
{
	return c == ' ' || c == '\t';
}

/* lower_lit: a NUL-terminated lowercase literal. */
bool h1_find_header(const struct h1_msg *m, const char *name, struct h1_str *v)
{
	size_t n = strlen(name);

	for (uint32_t i = 0; i < m->nhdrs; i++)
		if (m->hdrs[i].name.n == n && !strncasecmp(m->hdrs[i].name.p, name, n)) {
			*v = m->hdrs[i].value;
			return true;
		}
	return false;
}

bool h1_name_eq(struct h1_str s, const char *lower_lit)
{
	size_t n = strlen(lower_lit);

	return s.n == n && eq_lower((const uint8_t *)s.p, lower_lit, n);
}

bool h1_is_scheme(struct h1_str v)
{
	if (!v.n || (unsigned)((v.p[0] | 0x20) - 'a') >= 26)
		return false;
	for (size_t i = 1; i < v.n; i++)
		if ((unsigned)((v.p[i] | 0x20) - 'a') >= 26 && (unsigned)(v.p[i] - '0') >= 10 &&
		    v.p[i] != '+' && v.p[i] != '-' && v.p[i] != '.')
			return false;
	return true;
}

/*
 * Iterate over the elements of a comma-separated list value (RFC 9110 5.6.1):
 * returns the next non-empty element trimmed of OWS in *el, advancing *pos;
 * false when there is none left. Empty elements are skipped, as the RFC asks
 * of recipients.
 */
static bool list_next(const uint8_t **pos, const uint8_t *end,
		      const uint8_t **el, size_t *el_len)
{
	const uint8_t *p = *pos;

	for (;;) {
		while (p < end && (is_ows(*p) || *p == ','))
			p++;
		if (p == end) {
			*pos = p;
			return false;
		}
		const uint8_t *s = p;
		while (p < end && *p != ',')
			p++;
		const uint8_t *t = p;
		while (t > s && is_ows(t[-1]))
			t--;
		*pos = p;
		*el = s;
		*el_len = (size_t)(t - s);
		return true;
	}
}

/* Exact element match, case-insensitive, OWS and empty elements ignored. */
bool h1_list_has(struct h1_str value, const char *lower_token)
{
	const uint8_t *p = (const uint8_t *)value.p;
	const uint8_t *end = p + value.n;
	const uint8_t *el;
	size_t n, tl = strlen(lower_token);

	while (list_next(&p, end, &el, &n))
		if (n == tl && eq_lower(el, lower_token, n))
			return true;
	return false;
}

bool h1_list_next(struct h1_str *rest, struct h1_str *el)
{
	const uint8_t *pos = (const uint8_t *)rest->p, *e;
	size_t n;

	if (!list_next(&pos, pos + rest->n, &e, &n))
		return false;
	rest->n -= (size_t)(pos - (const uint8_t *)rest->p);
	rest->p = (const char *)pos;
	el->p = (const char *)e;
	el->n = n;
	return true;
}

/* RFC 9110 9.1: method names are case-sensitive. */
static enum h1_method method_of(const uint8_t *p, size_t n)
{
	switch (n) {
	case 3:
		if (!memcmp(p, "GET", 3))
			return H1_M_GET;
		if (!memcmp(p, "PUT", 3))
			return H1_M_PUT;
		break;
	case 4:
		if (!memcmp(p, "POST", 4))
			return H1_M_POST;
		if (!memcmp(p, "HEAD", 4))
			return H1_M_HEAD;
		break;
	case 5:
		if (!memcmp(p, "PATCH", 5))
			return H1_M_PATCH;
		if (!memcmp(p, "TRACE", 5))
			return H1_M_TRACE;
		break;
	case 6:
		if (!memcmp(p, "DELETE", 6))
			return H1_M_DELETE;
		break;
	case 7:
		if (!memcmp(p, "OPTIONS", 7))
			return H1_M_OPTIONS;
		if (!memcmp(p, "CONNECT", 7))
			return H1_M_CONNECT;
		break;
	}
	return H1_M_OTHER;
}

/* Header names the parser acts on. The H1_HF_* bits are public; the K_*
 * values say which special processing a field needs. */
enum hkind {
	K_NONE, K_HOST, K_CL, K_TE, K_CONNECTION, K_UPGRADE, K_EXPECT,
};

/* Recognise a field name by its length, then by comparison: one switch and
 * at most two short compares per field. */
static uint32_t classify(const uint8_t *p, size_t n, enum hkind *kind)
{
	*kind = K_NONE;
	switch (n) {
	case 2:
		if (eq_lower(p, "te", 2))
			return H1_HF_HOPBYHOP;
		break;
	case 4:
		if (eq_lower(p, "host", 4)) {
			*kind = K_HOST;
			return H1_HF_HOST;
		}
		break;
	case 6:
		if (eq_lower(p, "cookie", 6))
			return H1_HF_COOKIE;
		if (eq_lower(p, "expect", 6)) {
			*kind = K_EXPECT;
			return H1_HF_EXPECT;
		}
		break;
	case 7:
		if (eq_lower(p, "upgrade", 7)) {
			*kind = K_UPGRADE;
			return H1_HF_UPGRADE | H1_HF_HOPBYHOP;
		}
		break;
	case 10:
		if (eq_lower(p, "connection", 10)) {
			*kind = K_CONNECTION;
			return H1_HF_HOPBYHOP;
		}
		if (eq_lower(p, "set-cookie", 10))
			return H1_HF_SETCOOKIE;
		if (eq_lower(p, "keep-alive", 10))
			return H1_HF_HOPBYHOP;
		break;
	case 12:
		if (eq_lower(p, "x-request-id", 12))
			return H1_HF_REQID;
		break;
	case 13:
		if (eq_lower(p, "cache-control", 13))
			return H1_HF_CACHECONTROL;
		break;
	case 14:
		if (eq_lower(p, "content-length", 14)) {
			*kind = K_CL;
			return H1_HF_FRAMING;
		}
		break;
	case 15:
		if (eq_lower(p, "x-forwarded-for", 15))
			return H1_HF_XFF;
		break;
	case 16:
		if (eq_lower(p, "proxy-connection", 16))
			return H1_HF_HOPBYHOP;
		break;
	case 17:
		if (eq_lower(p, "transfer-encoding", 17)) {
			*kind = K_TE;
			return H1_HF_FRAMING;
		}
		if (eq_lower(p, "x-forwarded-proto", 17))
			return H1_HF_XFP;
		break;
	}
	return 0;
}

/*
 * RFC 9110 8.6: Content-Length = 1*DIGIT. RFC 9112 6.3 (5): a list of
 * identical values ("5, 5", from a merged repeat) may be taken as that one
 * value; anything else in a list is invalid. Values that do not fit in a
 * signed 63-bit integer are invalid rather than truncated.
 * Returns CL_OK and the value, CL_MALFORMED, or CL_DIFFERING (a list of
 * unequal values): two answers apart, and neither is H1_INCOMPLETE, since
 * the value is whole by then.
 */
enum { CL_OK = 0, CL_MALFORMED = -1, CL_DIFFERING = -3 };

static int parse_cl(const uint8_t *p, const uint8_t *end, uint64_t *out)
{
	bool have = false;
	uint64_t first = 0;

	for (;;) {
		const uint8_t *d = p;
		uint64_t v = 0;

		while (p < end && (h1_cls[*p] & C_DIGIT)) {
			unsigned dig = (unsigned)(*p - '0');
			if (v > ((uint64_t)INT64_MAX - dig) / 10)
				return CL_MALFORMED;
			v = v * 10 + dig;
			p++;
		}
		if (p == d)
			return CL_MALFORMED;
		if (have && v != first)
			return CL_DIFFERING;
		first = v;
		have = true;
		while (p < end && is_ows(*p))
			p++;
		if (p == end)
			break;
		if (*p != ',')
			return CL_MALFORMED;
		p++;
		while (p < end && is_ows(*p))
			p++;
	}
	*out = first;
	return CL_OK;
}

/* Everything the single pass learns about the fields, then checked as a
 * whole once the head is complete (RFC 9112 6.3 needs all of them). */
struct hstate {
	unsigned n_host, n_cl, n_te;
	uint64_t cl;
	bool conn_upgrade;  /* Connection lists "upgrade" */
	bool conn_other;    /* Connection lists some field name: second pass */
	bool up_any;        /* Upgrade lists a protocol */
};

static bool eq_nocase(const uint8_t *a, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (lower(a[i]) != lower(b[i]))
			return false;
	return true;
}

static int fail(struct h1_msg *m, bool is_req, int status, const char *why)
{
	/* A bad response is the server's fault: the client gets a 502. */
	m->status = is_req ? status : 502;
	m->reason = why;
	return H1_INVALID;
}

/* Per-field processing of the names recognised by classify(). Returns NULL
 * when fine, else the reason to reject with (status in *st). */
static const char *field_apply(struct h1_msg *m, struct hstate *hs,
			       enum hkind kind, const uint8_t *v, size_t vn,
			       bool is_req, int *st)
{
	const uint8_t *pos = v, *end = v + vn, *el;
	size_t n;
	uint64_t cl;

	*st = 400;
	switch (kind) {
	case K_NONE:
		break;
	case K_HOST:
		/* RFC 9112 3.2: "A server MUST respond with a 400 (Bad Request)
		 * status code to any HTTP/1.1 request message ... that contains
		 * more than one Host header field line or a Host header field
		 * with an invalid field value." Host means nothing in a
		 * response: not checked there. */
		hs->n_host++;
		if (!is_req)
			break;
		if (hs->n_host > 1)
			return "more than one host";
		/* RFC 3986 3.2.2, 3.2.3: uri-host [ ":" port ] */
		for (size_t i = 0; i < vn; i++)
			if (!(h1_cls[v[i]] & C_HOST))
				return "invalid character in host";
		m->host.p = (const char *)v;
		m->host.n = vn;
		m->flags |= H1_MF_HAS_HOST;
		break;
	case K_CL:
		switch (parse_cl(v, end, &cl)) {
		case CL_MALFORMED:
			return "malformed content-length";
		case CL_DIFFERING:
			return "differing content-length values";
		}
		/* RFC 9112 6.3 (5): repeats must agree. */
		if (hs->n_cl++ && cl != hs->cl)
			return "differing content-length values";
		hs->cl = cl;
		break;
	case K_TE:
		/* Only exactly one "chunked" (see the top of the file). */
		if (hs->n_te++)
			return "more than one transfer-encoding";
		if (vn != 7 || !eq_lower(v, "chunked", 7))
			return "unsupported transfer-encoding";
		break;
	case K_CONNECTION:
		/* RFC 9110 7.6.1: connection options, each may name a field. */
		while (list_next(&pos, end, &el, &n)) {
			if (n == 5 && eq_lower(el, "close", 5))
				m->flags |= H1_MF_CONN_CLOSE;
			else if (n == 10 && eq_lower(el, "keep-alive", 10))
				m->flags |= H1_MF_CONN_KEEPALIVE;
			else if (n == 7 && eq_lower(el, "upgrade", 7))
				hs->conn_upgrade = true;
			else
				hs->conn_other = true;
		}
		break;
	case K_UPGRADE:
		/* RFC 9110 7.8: a list of protocol-name ["/" protocol-version].
		 * Which of them may reach the server is not the parser's call:
		 * flagging "websocket" here once let an h2c beside it through. */
		if (list_next(&pos, end, &el, &n))
			hs->up_any = true;
		break;
	case K_EXPECT:
		/* RFC 9110 10.1.1: the only expectation defined. */
		if (vn == 12 && eq_lower(v, "100-continue", 12))
			m->flags |= H1_MF_EXPECT_100;
		break;
	}
	return NULL;
}

/*
 * Second pass, only when Connection named fields (RFC 9110 7.6.1: "a proxy
 * MUST parse the Connection header field ... and remove any header field(s)
 * from the message with the same name"). Host and the framing fields are
 * never marked: a client must not be able to strip the Host the server
 * needs, and framing is regenerated by the proxy anyway.
 */
static void mark_connection_listed(struct h1_msg *m)
{
	for (uint32_t i = 0; i < m->nhdrs; i++) {
		struct h1_hdr *c = &m->hdrs[i];
		const uint8_t *pos, *end, *el;
		size_t n;

		if (!(c->flags & H1_HF_HOPBYHOP) || !h1_name_eq(c->name, "connection"))
			continue;
		pos = (const uint8_t *)c->value.p;
		end = pos + c->value.n;
		while (list_next(&pos, end, &el, &n)) {
			for (uint32_t j = 0; j < m->nhdrs; j++) {
				struct h1_hdr *h = &m->hdrs[j];
				if (h->name.n == n &&
				    !(h->flags & (H1_HF_HOST | H1_HF_FRAMING)) &&
				    eq_nocase((const uint8_t *)h->name.p, el, n))
					h->flags |= H1_HF_HOPBYHOP;
			}
		}
	}
}

/*
 * The out-of-data verdict: more bytes could complete the head, unless a
 * limit is already exceeded. `line` is the start of the start-line while
 * it is still incomplete (NULL once it is done).
 */
static int out_of_data(struct h1_msg *m, const struct h1_limits *lim,
		       const uint8_t *start, const uint8_t *e,
		       const uint8_t *line, bool is_req)
{
	if (line) {
		size_t n = (size_t)(e - line);
		if (n && e[-1] == '\r')
			n--; /* a CR waiting for its LF is not part of the line */
		if (n > lim->max_line)
			return fail(m, is_req, 414, is_req ? "request line too long" :
				    "status line too long");
	}
	/* e stops at max_head: if the head is still open there, it is longer. */
	if ((size_t)(e - start) >= MIN((size_t)lim->max_head, (size_t)INT32_MAX))
		return fail(m, is_req, 431, "header section too large");
	return H1_INCOMPLETE;
}

/* Why a start-line or field line stopped on an unexpected byte. */
static const char *bad_byte(uint8_t c, const char *otherwise)
{
	if (c == '\n')
		return "bare LF";
	if (c == '\r')
		return "bare CR";
	return otherwise;
}

/* "HTTP/1.x" (RFC 9112 2.3), at p with at least 8 bytes. Returns the
 * minor version, VERSION_MALFORMED (400), or VERSION_UNSUPPORTED: well
 * formed but not 1.0/1.1 (505). Both negative, neither H1_INCOMPLETE: the
 * caller made sure the 8 bytes are there. */
enum { VERSION_MALFORMED = -1, VERSION_UNSUPPORTED = -3 };

static int parse_version(const uint8_t *p)
{
	if (memcmp(p, "HTTP/", 5) || !(h1_cls[p[5]] & C_DIGIT) || p[6] != '.' ||
	    !(h1_cls[p[7]] & C_DIGIT))
		return VERSION_MALFORMED;
	if (p[5] != '1' || p[7] > '1')
		return VERSION_UNSUPPORTED;
	return p[7] - '0';
}

static int parse_head(const char *buf, size_t len, struct h1_msg *m,
		      const struct h1_limits *lim, bool is_req,
		      enum h1_method req_meth)
{
	const uint8_t *start = (const uint8_t *)buf;
	const uint8_t *e, *p, *line, *s;
	struct hstate hs = { 0 };
	uint32_t maxh;
	const char *why;
	int st, v;

	m->method.p = NULL;
	m->method.n = 0;
	m->meth = H1_M_OTHER;
	m->target.p = NULL;
	m->target.n = 0;
	m->status_code = 0;
	m->reason_phrase.p = NULL;
	m->reason_phrase.n = 0;
	m->minor = 1;
	m->nhdrs = 0;
	m->host.p = NULL;
	m->host.n = 0;
	m->body = H1_BODY_NONE;
	m->content_length = 0;
	m->flags = 0;
	m->head_len = 0;
	m->status = 0;
	m->reason = NULL;
	if (!len)
		return H1_INCOMPLETE; /* (and buf may be NULL) */

	if (!lim)
		lim = &h1_default_limits;
	/* Never look past max_head: the head must fit in it anyway. */
	e = start + MIN(len, MIN((size_t)lim->max_head, (size_t)INT32_MAX));
	p = start;
	maxh = MIN(MIN(lim->max_hdrs, m->hdrs_cap), (uint32_t)H1_MAX_HDRS_HARD);
	if (!m->hdrs)
		maxh = 0;

	if (is_req) {
		/* RFC 9112 2.2: a server SHOULD ignore at least one empty line
		 * (CRLF) received prior to the request-line. */
		for (;;) {
			if (p == e)
				return out_of_data(m, lim, start, e, NULL, is_req);
			if (*p != '\r')
				break;
			if (p + 1 == e)
				return out_of_data(m, lim, start, e, NULL, is_req);
			if (p[1] != '\n')
				return fail(m, is_req, 400, "bare CR");
			p += 2;
		}
		/* RFC 9112 3: method SP request-target SP HTTP-version CRLF,
		 * with exactly one SP between the parts. */
		line = p;
		while (p < e && (h1_cls[*p] & C_TOKEN))
			p++;
		if (p == e)
			return out_of_data(m, lim, start, e, line, is_req);
		if (p == line)
			return fail(m, is_req, 400, bad_byte(*p, "invalid method"));
		if (*p != ' ')
			return fail(m, is_req, 400, bad_byte(*p, "invalid character in method"));
		m->method.p = (const char *)line;
		m->method.n = (size_t)(p - line);
		m->meth = method_of(line, m->method.n);
		s = ++p;
		p = skip_class(p, e, C_TARGET, 0x21);
		if (p == e)
			return out_of_data(m, lim, start, e, line, is_req);
		if (p == s)
			return fail(m, is_req, 400, *p == ' ' ? "more than one SP in request line" :
				    bad_byte(*p, "invalid request target"));
		if (*p != ' ')
			return fail(m, is_req, 400,
				    bad_byte(*p, "invalid character in request target"));
		m->target.p = (const char *)s;
		m->target.n = (size_t)(p - s);
		p++;
		if (e - p < 10) {
			/* Fail early on what can never become a version. */
			size_t k = MIN((size_t)(e - p), (size_t)5);
			if (memcmp(p, "HTTP/", k))
				return fail(m, is_req, 400, "invalid HTTP version");
			return out_of_data(m, lim, start, e, line, is_req);
		}
		v = parse_version(p);
		if (v == VERSION_MALFORMED)
			return fail(m, is_req, 400, "invalid HTTP version");
		if ((size_t)(p + 8 - line) > lim->max_line)
			return fail(m, is_req, 414, "request line too long");
		if (v == VERSION_UNSUPPORTED)
			return fail(m, is_req, 505, "unsupported HTTP version");
		m->minor = v;
		p += 8;
		if (p[0] != '\r')
			return fail(m, is_req, 400, bad_byte(*p, "junk after HTTP version"));
		if (p[1] != '\n')
			return fail(m, is_req, 400, "bare CR");
		p += 2;
	} else {
		/* RFC 9112 4: HTTP-version SP status-code SP [ reason-phrase ].
		 * A missing SP before an empty reason is tolerated: it cannot
		 * change the framing. */
		line = p;
		if (e - p < 13) {
			size_t k = MIN((size_t)(e - p), (size_t)5);
			if (memcmp(p, "HTTP/", k))
				return fail(m, is_req, 502, "invalid HTTP version");
			return out_of_data(m, lim, start, e, line, is_req);
		}
		v = parse_version(p);
		if (v < 0)
			return fail(m, is_req, 502, "invalid HTTP version");
		m->minor = v;
		if (p[8] != ' ' || !(h1_cls[p[9]] & C_DIGIT) ||
		    !(h1_cls[p[10]] & C_DIGIT) || !(h1_cls[p[11]] & C_DIGIT) ||
		    p[9] == '0')
			return fail(m, is_req, 502, "invalid status code");
		m->status_code = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
		p += 12;
		if (*p == ' ') {
			s = ++p;
			while (p < e && (h1_cls[*p] & C_VALUE))
				p++;
			if (p == e)
				return out_of_data(m, lim, start, e, line, is_req);
			m->reason_phrase.p = (const char *)s;
			m->reason_phrase.n = (size_t)(p - s);
		}
		if (*p != '\r')
			return fail(m, is_req, 502, bad_byte(*p, "invalid reason phrase"));
		if (p + 1 == e)
			return out_of_data(m, lim, start, e, line, is_req);
		if (p[1] != '\n')
			return fail(m, is_req, 502, "bare CR");
		if ((size_t)(p - line) > lim->max_line)
			return fail(m, is_req, 502, "status line too long");
		p += 2;
	}

	/* RFC 9112 5: field-line = field-name ":" OWS field-value OWS, CRLF. */
	for (;;) {
		const uint8_t *vs, *ve, *colon;
		struct h1_hdr *h;
		enum hkind kind;

		line = p;
		if (p == e)
			return out_of_data(m, lim, start, e, NULL, is_req);
		if (*p == '\r') {
			if (p + 1 == e)
				return out_of_data(m, lim, start, e, NULL, is_req);
			if (p[1] != '\n')
				return fail(m, is_req, 400, "bare CR");
			p += 2;
			break;
		}
		while (p < e && (h1_cls[*p] & C_TOKEN))
			p++;
		if (p == e)
			return out_of_data(m, lim, start, e, NULL, is_req);
		if (*p != ':') {
			if (p == line && is_ows(*p))
				/* RFC 9112 5.2 obs-fold, and RFC 9112 2.2
				 * whitespace before the first field: both 400. */
				return fail(m, is_req, 400, "obs-fold or leading whitespace");
			if (is_ows(*p))
				return fail(m, is_req, 400, "whitespace before colon");
			return fail(m, is_req, 400, bad_byte(*p, "invalid character in field name"));
		}
		if (p == line)
			return fail(m, is_req, 400, "empty field name");
		colon = p++;
		while (p < e && is_ows(*p))
			p++;
		vs = p;
		p = skip_class(p, e, C_VALUE, 0x20);
		if (p == e)
			return out_of_data(m, lim, start, e, NULL, is_req);
		if (*p != '\r')
			return fail(m, is_req, 400, bad_byte(*p, "control character in field value"));
		if (p + 1 == e)
			return out_of_data(m, lim, start, e, NULL, is_req);
		if (p[1] != '\n')
			return fail(m, is_req, 400, "bare CR");
		ve = p;
		while (ve > vs && is_ows(ve[-1]))
			ve--;
		p += 2;
		if (m->nhdrs >= maxh)
			return fail(m, is_req, 431, "too many header fields");
		h = &m->hdrs[m->nhdrs++];
		h->name.p = (const char *)line;
		h->name.n = (size_t)(colon - line);
		h->value.p = (const char *)vs;
		h->value.n = (size_t)(ve - vs);
		h->flags = classify(line, h->name.n, &kind);
		if (kind != K_NONE &&
		    (why = field_apply(m, &hs, kind, vs, h->value.n, is_req, &st)))
			return fail(m, is_req, st, why);
	}
	m->head_len = (size_t)(p - start);

	if (hs.conn_other)
		mark_connection_listed(m);
	if (hs.conn_upgrade && hs.up_any)
		m->flags |= H1_MF_UPGRADE;
	/* RFC 9112 9.3: HTTP/1.0 closes unless keep-alive was asked for. */
	if (m->minor == 0 && !(m->flags & H1_MF_CONN_KEEPALIVE))
		m->flags |= H1_MF_CONN_CLOSE;

	/* RFC 9112 6.1: "A server or client that receives an HTTP/1.0 message
	 * containing a Transfer-Encoding header field MUST treat the message
	 * as if the framing is faulty". */
	if (hs.n_te && m->minor == 0)
		return fail(m, is_req, 400, "transfer-encoding in HTTP/1.0");
	/* RFC 9112 6.3 (3): both present "ought to be handled as an error". */
	if (hs.n_te && hs.n_cl)
		return fail(m, is_req, 400, "both content-length and transfer-encoding");

	if (is_req) {
		/* RFC 9112 3.2: "A server MUST respond with a 400 (Bad Request)
		 * status code to any HTTP/1.1 request message that lacks a Host
		 * header field". */
		if (m->minor == 1 && !hs.n_host)
			return fail(m, is_req, 400, "missing host");
		/* RFC 9112 6.3 (6), (7): no framing field means no body. */
		if (hs.n_te)
			m->body = H1_BODY_CHUNKED;
		else if (hs.n_cl) {
			m->body = H1_BODY_LENGTH;
			m->content_length = hs.cl;
		}
	} else {
		int sc = m->status_code;

		/* RFC 9112 6.3 (1), (2): no body whatever the fields say. */
		if (req_meth == H1_M_HEAD || sc < 200 || sc == 204 || sc == 304 ||
		    (req_meth == H1_M_CONNECT && sc < 300))
			m->body = H1_BODY_NONE;
		else if (hs.n_te)
			m->body = H1_BODY_CHUNKED;
		else if (hs.n_cl) {
			m->body = H1_BODY_LENGTH;
			m->content_length = hs.cl;
		} else
			/* RFC 9112 6.3 (8): read until the server closes. */
			m->body = H1_BODY_CLOSE;
		if (hs.n_cl)
			m->content_length = hs.cl;
	}
	return (int)m->head_len;
}

/* See h1.h. buf stays the caller's; on success m's strings point into it
 * and m->hdrs[0..nhdrs) is filled. lim may be NULL (built-in defaults). */
int h1_parse_request(const char *buf, size_t len, struct h1_msg *m,
		     const struct h1_limits *lim)
{
	return parse_head(buf, len, m, lim, true, H1_M_OTHER);
}

/* See h1.h; as h1_parse_request(), every failure being a 502. */
int h1_parse_response(const char *buf, size_t len, struct h1_msg *m,
		      const struct h1_limits *lim, enum h1_method req_meth)
{
	return parse_head(buf, len, m, lim, false, req_meth);
}

/*
 * Chunked body (RFC 9112 7.1):
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   last-chunk   = 1*("0") [ chunk-ext ] CRLF
 *   chunk-ext    = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
 *   chunk-ext-name = token;  chunk-ext-val = token / quoted-string
 * One state per position in that grammar; data bytes are skipped in bulk.
 *
 * A size line is never forwarded before it is complete (its bytes are
 * "held"), and one that is not plain `SIZE CRLF` (extensions, BWS, leading
 * zeros) is replaced by that: bollard interprets no extension, and a line a
 * next hop could read differently (a bare ";", a name that is not a token,
 * a quoted string with a line end in it) must not reach it even when we
 * would accept it.
 */
enum {
	CS_SIZE0,    /* first hex digit of a chunk-size */
	CS_SIZE,     /* more hex digits, or what ends the size */
	CS_EXT_WS,   /* BWS after the size or an extension: only ";" may follow */
	CS_EXT_NAME0,/* BWS after ";", then the first tchar of a name */
	CS_EXT_NAME, /* more tchars, "=", ";", BWS or CR */
	CS_EXT_EQ,   /* BWS after a name: "=" or ";" */
	CS_EXT_VAL0, /* BWS after "=", then a token or a quoted-string */
	CS_EXT_TOKEN,
	CS_EXT_QS,   /* inside a quoted-string */
	CS_EXT_QP,   /* after a backslash in it */
	CS_EXT_QEND, /* after the closing quote */
	CS_SIZE_LF,  /* LF ending the size line */
	CS_DATA,     /* chunk-data, `remaining` bytes left */
	CS_DATA_CR,  /* CRLF after chunk-data */
	CS_DATA_LF,
	CS_TR_START, /* start of a trailer line, or the final CRLF */
	CS_TR_NAME,
	CS_TR_VALUE,
	CS_TR_LF,
	CS_END_LF,   /* LF of the final CRLF */
	CS_DONE,
};

/* A size line (CRLF and extensions included) longer than this is an
 * attack, not a chunk (HAProxy and NGINX bound it too). It is held whole
 * until it ends, so it must fit in the smallest buffer (tune.bufsize 4096)
 * with room to spare. */
#define H1_CHUNK_LINE_MAX   4000
/* Total size of the trailer section. */
#define H1_TRAILER_MAX      8192
/* Chunk sizes above 2^60 are rejected long before anything could
 * overflow: no one sends an exabyte in one chunk. */
#define H1_CHUNK_SIZE_MAX   ((uint64_t)1 << 60)

/* Ready c for a new body (c is the caller's, e.g. inside its stream). */
void h1_chunk_init(struct h1_chunk *c)
{
	memset(c, 0, sizeof(*c));
	c->state = CS_SIZE0;
}

static unsigned hex_digits(uint64_t v)
{
	unsigned n = 1;
	while (v >>= 4)
		n++;
	return n;
}

static inline uint64_t hex_val(uint8_t ch)
{
	return (uint64_t)(h1_cls[ch] & C_DIGIT ? ch - '0' : lower(ch) - 'a' + 10);
}

/* Where ch leads from a state that has just ended an element of chunk-ext
 * (a size, a name, a value): BWS, the next ";", or the end of the line. */
static int ext_next(uint8_t ch)
{
	if (ch == ';')
		return CS_EXT_NAME0;
	if (is_ows(ch))
		return CS_EXT_WS;
	if (ch == '\r')
		return CS_SIZE_LF;
	return -1;
}

/* One byte of a size line; returns the next state, -1 invalid. */
static int size_line_byte(struct h1_chunk *c, uint8_t ch)
{
	switch (c->state) {
	case CS_SIZE:
		if (h1_cls[ch] & C_HEX) {
			/* check before shifting, so nothing wraps */
			if (c->remaining > (H1_CHUNK_SIZE_MAX >> 4))
				return -1;
			c->remaining = (c->remaining << 4) | hex_val(ch);
			return c->remaining > H1_CHUNK_SIZE_MAX ? -1 : CS_SIZE;
		}
		return ext_next(ch);
	case CS_EXT_WS:
		/* RFC 9112 7.1.1: BWS may only precede a ";" (a size or an
		 * extension followed by spaces and CRLF is not the grammar) */
		return is_ows(ch) ? CS_EXT_WS : ch == ';' ? CS_EXT_NAME0 : -1;
	case CS_EXT_NAME0:
		if (is_ows(ch))
			return CS_EXT_NAME0;
		/* a bare ";" and a name that is not a token are refused */
		return h1_cls[ch] & C_TOKEN ? CS_EXT_NAME : -1;
	case CS_EXT_NAME:
		if (h1_cls[ch] & C_TOKEN)
			return CS_EXT_NAME;
		__attribute__((fallthrough));
	case CS_EXT_EQ:
		if (ch == '=')
			return CS_EXT_VAL0;
		if (is_ows(ch))
			return CS_EXT_EQ;
		return ch == ';' ? CS_EXT_NAME0 : ch == '\r' && c->state == CS_EXT_NAME ? CS_SIZE_LF : -1;
	case CS_EXT_VAL0:
		if (is_ows(ch))
			return CS_EXT_VAL0;
		if (ch == '"')
			return CS_EXT_QS;
		return h1_cls[ch] & C_TOKEN ? CS_EXT_TOKEN : -1;
	case CS_EXT_TOKEN:
		return h1_cls[ch] & C_TOKEN ? CS_EXT_TOKEN : ext_next(ch);
	case CS_EXT_QS:
		/* RFC 9110 5.6.4: qdtext is field-vchar but DQUOTE and "\" */
		if (ch == '"')
			return CS_EXT_QEND;
		if (ch == '\\')
			return CS_EXT_QP;
		return h1_cls[ch] & C_VALUE ? CS_EXT_QS : -1;
	case CS_EXT_QP:
		return h1_cls[ch] & C_VALUE ? CS_EXT_QS : -1;
	case CS_EXT_QEND:
		return ext_next(ch);
	case CS_SIZE_LF:
		return ch == '\n' ? CS_DATA : -1; /* (caller picks data or trailer) */
	}
	return -1;
}

/* See h1.h. Returns the bytes consumed: len while the body goes on (or
 * ends on buf's last byte), fewer when it ended earlier in buf or when a
 * size line must be rewritten (c->rewrite); c->done says it ended, after
 * which the scan returns 0. H1_INVALID leaves c meaningless: the
 * connection must be closed. */
long h1_chunk_scan(struct h1_chunk *c, const char *buf, size_t len)
{
	const uint8_t *p = (const uint8_t *)buf;
	const uint8_t *e = p + len;
	uint8_t ch;
	int st;

	if (c->state == CS_DONE || c->rewrite || !len)
		return 0;
	while (p < e) {
		if (c->state == CS_DATA) {
			size_t k = (size_t)(e - p);
			if (k > c->remaining)
				k = (size_t)c->remaining;
			p += k;
			c->remaining -= k;
			if (!c->remaining)
				c->state = CS_DATA_CR;
			continue;
		}
		ch = *p++;
		switch (c->state) {
		case CS_SIZE0:
			if (!(h1_cls[ch] & C_HEX))
				return H1_INVALID;
			c->remaining = hex_val(ch);
			c->linelen = 1;
			c->state = CS_SIZE;
			break;
		case CS_SIZE:
		case CS_EXT_WS:
		case CS_EXT_NAME0:
		case CS_EXT_NAME:
		case CS_EXT_EQ:
		case CS_EXT_VAL0:
		case CS_EXT_TOKEN:
		case CS_EXT_QS:
		case CS_EXT_QP:
		case CS_EXT_QEND:
		case CS_SIZE_LF:
			/* leading zeros and extensions are legal but bounded */
			if (++c->linelen > H1_CHUNK_LINE_MAX || (st = size_line_byte(c, ch)) < 0)
				return H1_INVALID;
			if (st != CS_DATA) {
				c->state = st;
				break;
			}
			c->state = c->remaining ? CS_DATA : CS_TR_START;
			c->trailer_bytes = 0;
			if (c->linelen != hex_digits(c->remaining) + 2) {
				/* not SIZE CRLF: the caller replaces it */
				c->rewrite = true;
				c->hold = c->linelen;
				return (long)(p - (const uint8_t *)buf);
			}
			c->linelen = 0;
			c->hold = 0;
			break;
		case CS_DATA_CR:
			if (ch != '\r')
				return H1_INVALID;
			c->state = CS_DATA_LF;
			break;
		case CS_DATA_LF:
			if (ch != '\n')
				return H1_INVALID;
			c->state = CS_SIZE0;
			break;
		case CS_TR_START:
			/* RFC 9112 7.1.2: trailer fields are field lines, with
			 * the same rules as in the head (no obs-fold, etc.). */
			if (++c->trailer_bytes > H1_TRAILER_MAX)
				return H1_INVALID;
			if (ch == '\r')
				c->state = CS_END_LF;
			else if (h1_cls[ch] & C_TOKEN)
				c->state = CS_TR_NAME;
			else
				return H1_INVALID;
			break;
		case CS_TR_NAME:
			if (++c->trailer_bytes > H1_TRAILER_MAX)
				return H1_INVALID;
			if (ch == ':')
				c->state = CS_TR_VALUE;
			else if (!(h1_cls[ch] & C_TOKEN))
				return H1_INVALID;
			break;
		case CS_TR_VALUE:
			if (++c->trailer_bytes > H1_TRAILER_MAX)
				return H1_INVALID;
			if (ch == '\r')
				c->state = CS_TR_LF;
			else if (!(h1_cls[ch] & C_VALUE))
				return H1_INVALID;
			break;
		case CS_TR_LF:
			if (++c->trailer_bytes > H1_TRAILER_MAX)
				return H1_INVALID;
			if (ch != '\n')
				return H1_INVALID;
			c->state = CS_TR_START;
			break;
		case CS_END_LF:
			if (ch != '\n')
				return H1_INVALID;
			c->state = CS_DONE;
			c->done = true;
			/* Stop here: what follows is the next message. */
			return (long)(p - (const uint8_t *)buf);
		default:
			BUG_ON(1);
		}
	}
	/* the size line still open is held until it ends */
	c->hold = c->state >= CS_SIZE && c->state <= CS_SIZE_LF ? c->linelen : 0;
	return (long)len;
}

/* See h1.h. The held line's chunk size is still whole in c->remaining:
 * the scan stopped right after the line, before any of its data. */
size_t h1_chunk_line(struct h1_chunk *c, char out[H1_CHUNK_LINE_CANON])
{
	static const char hex[] = "0123456789abcdef";
	unsigned n = hex_digits(c->remaining);
	uint64_t v = c->remaining;

	BUG_ON(!c->rewrite);
	for (unsigned i = n; i-- > 0; v >>= 4)
		out[i] = hex[v & 15];
	out[n] = '\r';
	out[n + 1] = '\n';
	c->rewrite = false;
	c->hold = 0;
	c->linelen = 0;
	return n + 2;
}
