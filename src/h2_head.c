/*
 * h2_head.c - HTTP/2 header lists to and from HTTP/1.1 heads (h2_head.h).
 *
 * The request head is written as the fields come, in one pass: the
 * pseudo-header values wait in aux until the first regular field (RFC 9113
 * 8.3: pseudo-header fields come first), which writes the request line and
 * Host; then aux holds the cookie crumbs, joined with "; " (RFC 9113
 * 8.2.3) and written as one Cookie field at the end, where persistence
 * reads it as it reads an HTTP/1.1 one.
 */
#include "api.h"
#include "h2_head.h"
#include "bytes.h"
#include "h2.h"
#include "http.h"

/* here, with no dependency, for the metrics (stats.c) */
const char *const h2_goaway_names[H2_GA_N] = {
	[H2_GA_SHUTDOWN] = "shutdown",
	[H2_GA_TIMEOUT] = "timeout",
	[H2_GA_PROTOCOL] = "protocol-error",
	[H2_GA_RAPID_RESET] = "rapid-reset",
	[H2_GA_CONTINUATION] = "continuation-flood",
	[H2_GA_SETTINGS] = "settings-flood",
	[H2_GA_PING] = "ping-flood",
	[H2_GA_FLOOD] = "flood",
};

void h2h_req_init(struct h2h_req *r, char *out, uint32_t cap, char *aux, uint32_t auxcap,
		  uint64_t max_list)
{
	*r = (struct h2h_req){ .out = out, .cap = cap, .aux = aux, .auxcap = auxcap,
			       .max_list = max_list };
}

static bool name_eq(const uint8_t *n, size_t nlen, const char *lit)
{
	size_t l = strlen(lit);
	return nlen == l && !memcmp(n, lit, l);
}

/* These checks are bollard's alone: libnghttp2's HTTP messaging checks
 * are off (h2.c conn_new), they did the same work a second time. A name is
 * a token (RFC 9110 5.6.2) in lowercase (RFC 9113 8.2.1); a value holds
 * field-vchar, SP and HTAB only (RFC 9110 5.5: RFC 9113 8.2.1 requires no
 * NUL, CR or LF, and the HTTP/1.1 server must not see the other controls
 * either), and no whitespace at either end (8.2.1: HTTP/1.1 would trim it
 * and so change the value). Every field of every request passes here. */
static bool name_ok(const uint8_t *n, size_t len, size_t from)
{
	unsigned ok = H1_C_TOKEN;
	if (len <= from)
		return false;
	for (size_t i = from; i < len; i++)
		ok &= (unsigned)(n[i] - 'A') < 26 ? 0 : h1_cls[n[i]];
	return ok;
}

static bool value_ok(const uint8_t *v, size_t len)
{
	if (len && (v[0] == ' ' || v[0] == '\t' || v[len - 1] == ' ' || v[len - 1] == '\t'))
		return false;
	return h1_skip_value(v, v + len) == v + len;
}

static bool all_of(const char *p, size_t len, uint8_t cls)
{
	unsigned ok = cls;
	for (size_t i = 0; i < len; i++)
		ok &= h1_cls[(uint8_t)p[i]];
	return ok;
}

static bool put(struct h2h_req *r, const void *p, size_t n)
{
	if (n > r->cap - r->len)
		return false;
	memcpy(r->out + r->len, p, n);
	r->len += (uint32_t)n;
	return true;
}

static bool put_field(struct h2h_req *r, const void *n, size_t nlen, const void *v, size_t vlen)
{
	return put(r, n, nlen) && put(r, ": ", 2) && put(r, v, vlen) && put(r, "\r\n", 2);
}

static bool aux_put(struct h2h_req *r, const void *p, size_t n, uint32_t *off)
{
	if (n > r->auxcap - r->auxlen)
		return false;
	*off = r->auxlen;
	memcpy(r->aux + r->auxlen, p, n);
	r->auxlen += (uint32_t)n;
	return true;
}

/* The request line and Host, from the pseudo-header fields. */
static int write_line(struct h2h_req *r)
{
	if (!r->has_meth)
		return H2H_MALFORMED;
	const char *meth = r->aux + r->meth_off, *path = r->aux + r->path_off;
	bool connect = r->meth_len == 7 && !memcmp(meth, "CONNECT", 7);
	/* RFC 9113 8.5: CONNECT has :authority only; a tunnel, which
	 * bollard does not open over HTTP/2 */
	if (connect)
		return r->has_path || r->has_scheme || !r->has_auth ? H2H_MALFORMED : H2H_CONNECT;
	/* RFC 9113 8.3.1: :path is there, and "/..." or "*" (OPTIONS only) */
	bool options = r->meth_len == 7 && !memcmp(meth, "OPTIONS", 7);
	if (!r->has_path || !r->has_scheme || !r->path_len ||
	    (path[0] != '/' && !(options && r->path_len == 1 && path[0] == '*')))
		return H2H_MALFORMED;
	/* RFC 9110 9.1: the method is a token; RFC 9113 8.3.1: :authority
	 * is host [ ":" port ], no userinfo, and (RFC 9110 4.2.1) an http(s)
	 * URI's host is never empty */
	if (!r->meth_len || !all_of(meth, r->meth_len, H1_C_TOKEN) ||
	    (r->has_auth && (!r->auth_len || !all_of(r->aux + r->auth_off, r->auth_len, H1_C_HOST))))
		return H2H_MALFORMED;
	for (uint32_t i = 0; i < r->path_len; i++)
		if ((unsigned char)path[i] <= 0x20 || path[i] == 0x7f)
			return H2H_MALFORMED;
	if (!put(r, meth, r->meth_len) || !put(r, " ", 1) || !put(r, path, r->path_len) ||
	    !put(r, " HTTP/1.1\r\n", 11))
		return H2H_TOO_LARGE;
	/* RFC 9113 8.3.1: :authority is the Host of the HTTP/1.1 request */
	if (r->has_auth && !put_field(r, "host", 4, r->aux + r->auth_off, r->auth_len))
		return H2H_TOO_LARGE;
	r->line_done = true;
	r->auxlen = 0; /* from here on aux holds the cookie */
	return 0;
}

static int pseudo(struct h2h_req *r, const uint8_t *name, size_t nlen, const uint8_t *v,
		  size_t vlen)
{
	uint32_t off;
	bool *has;
	uint32_t *o, *l;
	if (r->line_done)
		return H2H_MALFORMED; /* 8.3: after a regular field */
	if (name_eq(name, nlen, ":method")) {
		has = &r->has_meth, o = &r->meth_off, l = &r->meth_len;
	} else if (name_eq(name, nlen, ":path")) {
		has = &r->has_path, o = &r->path_off, l = &r->path_len;
	} else if (name_eq(name, nlen, ":authority")) {
		has = &r->has_auth, o = &r->auth_off, l = &r->auth_len;
	} else if (name_eq(name, nlen, ":scheme")) {
		/* bollard's own scheme goes to the server (X-Forwarded-Proto) */
		if (r->has_scheme || !h1_is_scheme((struct h1_str){ (const char *)v, vlen }))
			return H2H_MALFORMED;
		r->has_scheme = true;
		return 0;
	} else {
		return H2H_MALFORMED; /* 8.3: no other pseudo-header in a request */
	}
	if (*has)
		return H2H_MALFORMED;
	if (!aux_put(r, v, vlen, &off))
		return H2H_TOO_LARGE;
	*has = true;
	*o = off;
	*l = (uint32_t)vlen;
	return 0;
}

/* The fields the conversion treats apart, by length first: a request's
 * other fields cost one switch and at most one comparison. */
enum { F_OTHER, F_CONNECTION, F_TE, F_HOST, F_COOKIE, F_CONTENT_LENGTH };

static int field_kind(const uint8_t *n, size_t nlen)
{
#define IS(lit) (!memcmp(n, lit, sizeof(lit) - 1))
	switch (nlen) {
	case 2:
		return IS("te") ? F_TE : F_OTHER;
	case 4:
		return IS("host") ? F_HOST : F_OTHER;
	case 6:
		return IS("cookie") ? F_COOKIE : F_OTHER;
	case 7:
		return IS("upgrade") ? F_CONNECTION : F_OTHER;
	case 10:
		return IS("connection") || IS("keep-alive") ? F_CONNECTION : F_OTHER;
	case 14:
		return IS("content-length") ? F_CONTENT_LENGTH : F_OTHER;
	case 16:
		return IS("proxy-connection") ? F_CONNECTION : F_OTHER;
	case 17:
		return IS("transfer-encoding") ? F_CONNECTION : F_OTHER;
	default:
		return F_OTHER;
	}
#undef IS
}

int h2h_req_field(struct h2h_req *r, const uint8_t *name, size_t nlen, const uint8_t *v,
		  size_t vlen)
{
	r->list_size += nlen + vlen + 32;
	if (r->list_size > r->max_list)
		return H2H_TOO_LARGE;
	if (!value_ok(v, vlen))
		return H2H_MALFORMED;
	if (nlen && name[0] == ':') {
		if (!name_ok(name, nlen, 1))
			return H2H_MALFORMED;
		return pseudo(r, name, nlen, v, vlen);
	}
	if (!name_ok(name, nlen, 0))
		return H2H_MALFORMED;
	if (!r->line_done) {
		int e = write_line(r);
		if (e < 0)
			return e;
	}
	/* RFC 9113 8.2.2: connection-specific fields make the request
	 * malformed; te may only say "trailers", and is hop-by-hop in
	 * HTTP/1.1 anyway: it stays here */
	switch (field_kind(name, nlen)) {
	case F_CONNECTION:
		return H2H_MALFORMED;
	case F_TE:
		/* a transfer-coding is a case-insensitive token (RFC 9110 10.1.4) */
		if (!h1_name_eq((struct h1_str){ (const char *)v, vlen }, "trailers"))
			return H2H_MALFORMED;
		return 0;
	case F_HOST:
		/* :authority wins over a host field (RFC 9113 8.3.1) */
		if (r->has_auth)
			return 0;
		if (!vlen || !all_of((const char *)v, vlen, H1_C_HOST))
			return H2H_MALFORMED;
		break;
	case F_COOKIE: {
		uint32_t off;
		if (r->has_cookie && !aux_put(r, "; ", 2, &off))
			return H2H_TOO_LARGE;
		if (!aux_put(r, v, vlen, &off))
			return H2H_TOO_LARGE;
		if (!r->has_cookie)
			r->cookie_off = off;
		r->has_cookie = true;
		r->cookie_len = r->auxlen - r->cookie_off;
		return 0;
	}
	case F_CONTENT_LENGTH:
		/* the stream counts DATA against it (RFC 9113 8.1.1, h2.c) */
		if (r->has_cl || !vlen || vlen > 18)
			return H2H_MALFORMED;
		r->cl = 0;
		for (size_t i = 0; i < vlen; i++) {
			if (v[i] < '0' || v[i] > '9')
				return H2H_MALFORMED;
			r->cl = r->cl * 10 + (uint64_t)(v[i] - '0');
		}
		r->has_cl = true;
		break;
	default:
		break;
	}
	return put_field(r, name, nlen, v, vlen) ? 0 : H2H_TOO_LARGE;
}

int h2h_req_end(struct h2h_req *r, bool body)
{
	if (!r->line_done) {
		int e = write_line(r);
		if (e < 0)
			return e;
	}
	if (r->has_cookie && !put_field(r, "cookie", 6, r->aux + r->cookie_off, r->cookie_len))
		return H2H_TOO_LARGE;
	/* a body without a length: chunked, so that the server sees where it
	 * ends (the stream's END_STREAM) */
	if (h2h_req_chunked(r, body) && !put_field(r, "transfer-encoding", 17, "chunked", 7))
		return H2H_TOO_LARGE;
	if (!put(r, "\r\n", 2))
		return H2H_TOO_LARGE;
	return (int)r->len;
}

/* Connection-specific fields the parser does not mark hop-by-hop. */
static bool rsp_dropped(struct h1_str nm)
{
	switch (nm.n) {
	case 10:
		return h1_name_eq(nm, "keep-alive");
	case 16:
		return h1_name_eq(nm, "proxy-connection");
	case 17:
		return h1_name_eq(nm, "transfer-encoding");
	default:
		return false;
	}
}

/* One entry of a response's list: the name in lowercase into scratch
 * (RFC 9113 8.2.1), the value where it is. false: no room. */
static bool nv_put(struct h2h_nv *o, const char *name, size_t nlen, const char *v, size_t vlen)
{
	if (o->n == o->cap || nlen > o->scap - o->used)
		return false;
	char *lc = o->scratch + o->used;
	for (size_t k = 0; k < nlen; k++) {
		char ch = name[k];
		lc[k] = ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
	}
	o->used += nlen;
	o->nv[o->n++] = (nghttp2_nv){ (uint8_t *)lc, (uint8_t *)v, nlen, vlen, NGHTTP2_NV_FLAG_NONE };
	return true;
}

/* :status, then m's fields but the connection-specific ones (and, with
 * regen, the framing ones, which the HTTP/1.1 serialiser regenerates). */
static bool nv_fields(struct h2h_nv *o, const struct h1_msg *m, bool regen)
{
	if (o->cap < 1 || o->scap < 3 || m->status_code < 100 || m->status_code > 999)
		return false;
	o->scratch[0] = (char)('0' + m->status_code / 100);
	o->scratch[1] = (char)('0' + m->status_code / 10 % 10);
	o->scratch[2] = (char)('0' + m->status_code % 10);
	o->nv[o->n++] = (nghttp2_nv){ (uint8_t *)":status", (uint8_t *)o->scratch, 7, 3,
				      NGHTTP2_NV_FLAG_NONE };
	o->used = 3;
	for (uint32_t i = 0; i < m->nhdrs; i++) {
		const struct h1_hdr *h = &m->hdrs[i];
		if ((h->flags & H1_HF_HOPBYHOP) || rsp_dropped(h->name) ||
		    (regen && (h->flags & H1_HF_FRAMING) && m->body != H1_BODY_NONE))
			continue;
		if (!nv_put(o, h->name.p, h->name.n, h->value.p, h->value.n))
			return false;
	}
	return true;
}

int h2h_rsp_nv(const struct h1_msg *m, nghttp2_nv *nv, int nvcap, char *scratch, size_t scap)
{
	struct h2h_nv o = { nv, 0, nvcap, scratch, 0, scap };
	return nv_fields(&o, m, false) ? o.n : -1;
}

int h2h_rsp_nv_from(const struct h1_msg *m, const struct http_add *add, nghttp2_nv *nv,
		    int nvcap, char *scratch, size_t scap)
{
	struct h2h_nv o = { nv, 0, nvcap, scratch, 0, scap };
	if (!nv_fields(&o, m, true))
		return -1;
	/* what http_build_response's put_framing writes, but chunked: no
	 * Transfer-Encoding in HTTP/2 (RFC 9113 8.2.2) */
	if (m->body == H1_BODY_LENGTH) {
		char tmp[BYTES_U64_DEC], *digits = bytes_u64_dec(tmp, m->content_length);
		size_t k = (size_t)(tmp + sizeof(tmp) - digits);
		if (k > scap - o.used)
			return -1;
		char *d = scratch + o.used;
		memcpy(d, digits, k);
		o.used += k;
		if (!nv_put(&o, "content-length", 14, d, k))
			return -1;
	}
	for (uint32_t i = 0; add && i < add->n; i++)
		if (!nv_put(&o, add->f[i].name.p, add->f[i].name.n, add->f[i].value.p,
			    add->f[i].value.n))
			return -1;
	return o.n;
}
