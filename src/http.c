/*
 * http.c - serializing heads (see http.h).
 *
 * Request toward the server: the request line as received (method and
 * target are already validated by h1.c), every field except the hop-by-hop
 * ones (RFC 9110 7.6.1) and the framing ones, then the framing bollard
 * decided (Content-Length or Transfer-Encoding: chunked), X-Forwarded-For
 * (the client's list plus the client address), X-Forwarded-Proto (replaced:
 * a client must not claim https), X-Request-Id when absent, and Upgrade
 * with only the tokens route.c let through (never the client's lines).
 * Response toward the client: the same rules in the other direction.
 */
#include "api.h"
#include "http.h"
#include "bytes.h"
#include "cookie.h"

struct out {
	char *p, *end;
	bool overflow;
};

static inline void put(struct out *o, const void *s, size_t n)
{
	if (unlikely((size_t)(o->end - o->p) < n)) {
		o->overflow = true;
		return;
	}
	memcpy(o->p, s, n);
	o->p += n;
}

#define PUTS(o, lit) put((o), (lit), sizeof(lit) - 1)

static void put_u64(struct out *o, uint64_t v)
{
	char tmp[BYTES_U64_DEC], *d = bytes_u64_dec(tmp, v);
	put(o, d, (size_t)(tmp + sizeof(tmp) - d));
}

static void put_field(struct out *o, const struct h1_hdr *h)
{
	put(o, h->name.p, h->name.n);
	PUTS(o, ": ");
	put(o, h->value.p, h->value.n);
	PUTS(o, "\r\n");
}

/*
 * A field whose value bollard rewrites (cookies): the caller writes the new
 * value at field_value() into at most field_room() bytes, then field_done()
 * puts the name before it and the CRLF after. Room 0 when even the name
 * does not fit.
 */
static size_t field_room(const struct out *o, const struct h1_hdr *h)
{
	size_t need = h->name.n + 4; /* ": " and CRLF */
	size_t have = (size_t)(o->end - o->p);
	return have < need ? 0 : have - need;
}

static char *field_value(const struct out *o, const struct h1_hdr *h)
{
	return field_room(o, h) ? o->p + h->name.n + 2 : o->p;
}

static void field_done(struct out *o, const struct h1_hdr *h, size_t n)
{
	memcpy(o->p, h->name.p, h->name.n);
	o->p[h->name.n] = ':';
	o->p[h->name.n + 1] = ' ';
	o->p += h->name.n + 2 + n;
	PUTS(o, "\r\n");
}

/* The values of every field of m with flag (or, with flag 0, named lname),
 * joined with ", " as one list (RFC 9110 5.3). Returns whether any was. */
static bool put_list(struct out *o, const struct h1_msg *m, uint32_t flag, const char *lname)
{
	bool first = true;
	for (uint32_t j = 0; j < m->nhdrs; j++) {
		const struct h1_hdr *h = &m->hdrs[j];
		if (!h->value.n || (flag ? !(h->flags & flag) : !h1_name_eq(h->name, lname)))
			continue;
		if (!first)
			PUTS(o, ", ");
		put(o, h->value.p, h->value.n);
		first = false;
	}
	return !first;
}

static void put_framing(struct out *o, const struct h1_msg *m)
{
	if (m->body == H1_BODY_LENGTH) {
		PUTS(o, "Content-Length: ");
		put_u64(o, m->content_length);
		PUTS(o, "\r\n");
	} else if (m->body == H1_BODY_CHUNKED) {
		PUTS(o, "Transfer-Encoding: chunked\r\n");
	}
}

int http_build_request(char *buf, size_t cap, const struct h1_msg *req,
		       struct http_req_out *ro)
{
	struct out o = { buf, buf + cap, false };
	bool have_reqid = false, xff_done = false, fwd_seen = false;

	put(&o, req->method.p, req->method.n);
	PUTS(&o, " ");
	ro->target_off = (uint32_t)(o.p - buf);
	put(&o, req->target.p, req->target.n);
	if (req->minor)
		PUTS(&o, " HTTP/1.1\r\n");
	else
		PUTS(&o, " HTTP/1.0\r\n");
	ro->ua_len = ro->ref_len = ro->reqid_len = 0;

	for (uint32_t i = 0; i < req->nhdrs; i++) {
		const struct h1_hdr *h = &req->hdrs[i];
		if (h->flags & (H1_HF_HOPBYHOP | H1_HF_FRAMING) ||
		    ((h->flags & H1_HF_XFP) && (ro->fwd & HTTP_FWD_XFP)))
			continue; /* Upgrade too: only the allowed tokens go, below */
		if ((ro->fwd & HTTP_FWD_RFC7239) && h1_name_eq(h->name, "forwarded")) {
			fwd_seen = true; /* joined with ours below */
			continue;
		}
		if ((h->flags & H1_HF_XFF) && (ro->fwd & HTTP_FWD_XFF)) {
			/* Several X-Forwarded-For lines form one list (RFC 9110
			 * 5.3): emit them joined, once, at the first one. */
			if (xff_done)
				continue;
			xff_done = true;
			PUTS(&o, "X-Forwarded-For: ");
			if (put_list(&o, req, H1_HF_XFF, NULL))
				PUTS(&o, ", ");
			put(&o, ro->client_ip, strlen(ro->client_ip));
			PUTS(&o, "\r\n");
			continue;
		}
		if ((h->flags & H1_HF_COOKIE) && ro->unprefix_cookie) {
			struct h1_str v, pre, rest;
			struct h1_str name = cookie_str(ro->unprefix_cookie);
			if (cookie_find(h->value, name, &v) && cookie_prefix_split(v, '~', &pre, &rest)) {
				long n = cookie_replace(h->value, name, rest, field_value(&o, h),
							field_room(&o, h));
				if (n > 0) {
					field_done(&o, h, (size_t)n);
					continue;
				}
			}
		}
		if ((h->flags & H1_HF_COOKIE) && ro->strip_cookie) {
			/* bollard's own persistence cookie is for bollard only:
			 * the server gets the other cookies, or no header at all */
			long n = cookie_remove(h->value, cookie_str(ro->strip_cookie),
					       field_value(&o, h), field_room(&o, h));
			if (n < 0)
				o.overflow = true;
			else if (n > 0)
				field_done(&o, h, (size_t)n);
			continue;
		}
		if (h->flags & H1_HF_REQID) {
			have_reqid = true;
			ro->reqid_off = (uint32_t)(o.p - buf) + (uint32_t)h->name.n + 2;
			ro->reqid_len = (uint32_t)h->value.n;
		} else if (h1_name_eq(h->name, "user-agent")) {
			ro->ua_off = (uint32_t)(o.p - buf) + (uint32_t)h->name.n + 2;
			ro->ua_len = (uint32_t)h->value.n;
		} else if (h1_name_eq(h->name, "referer")) {
			ro->ref_off = (uint32_t)(o.p - buf) + (uint32_t)h->name.n + 2;
			ro->ref_len = (uint32_t)h->value.n;
		}
		put_field(&o, h);
	}
	put_framing(&o, req);
	if (ro->fwd & HTTP_FWD_RFC7239) {
		/* RFC 7239 4: one list; the client's elements, then ours. An
		 * IPv6 address is a quoted "[...]" (section 6). */
		PUTS(&o, "Forwarded: ");
		if (fwd_seen && put_list(&o, req, 0, "forwarded"))
			PUTS(&o, ", ");
		bool v6 = strchr(ro->client_ip, ':') != NULL;
		PUTS(&o, "for=");
		if (v6)
			PUTS(&o, "\"[");
		put(&o, ro->client_ip, strlen(ro->client_ip));
		if (v6)
			PUTS(&o, "]\"");
		PUTS(&o, ";proto=");
		put(&o, ro->proto, strlen(ro->proto));
		PUTS(&o, "\r\n");
	}
	if (!xff_done && (ro->fwd & HTTP_FWD_XFF)) {
		PUTS(&o, "X-Forwarded-For: ");
		put(&o, ro->client_ip, strlen(ro->client_ip));
		PUTS(&o, "\r\n");
	}
	if (ro->fwd & HTTP_FWD_XFP) {
		PUTS(&o, "X-Forwarded-Proto: ");
		put(&o, ro->proto, strlen(ro->proto));
		PUTS(&o, "\r\n");
	}
	if (!have_reqid && (ro->fwd & HTTP_FWD_REQID)) {
		PUTS(&o, "X-Request-Id: ");
		ro->reqid_off = (uint32_t)(o.p - buf);
		ro->reqid_len = (uint32_t)ro->new_reqid_len;
		put(&o, ro->new_reqid, ro->new_reqid_len);
		PUTS(&o, "\r\n");
	}
	if (ro->upgrade.n) {
		PUTS(&o, "Upgrade: ");
		put(&o, ro->upgrade.p, ro->upgrade.n);
		PUTS(&o, "\r\nConnection: upgrade\r\n");
	}
	else if (!req->minor)
		/* HTTP/1.0 defaults to close: ask the server to keep the
		 * connection so it can go back to the pool. */
		PUTS(&o, "Connection: keep-alive\r\n");
	PUTS(&o, "\r\n");
	return o.overflow ? -1 : (int)(o.p - buf);
}

/* `persist cookie NAME prefix`: the application's cookie NAME leaves with
 * its value as "SERVER~value", so that the client brings back which server
 * holds its session. Returns true when h was written (rewritten). */
static bool put_prefixed(struct out *o, const struct h1_hdr *h, const struct http_resp_opts *ro)
{
	struct cookie_set sc;
	size_t nl = strlen(ro->prefix_cookie);
	if (cookie_set_parse(h->value, &sc) < 0 || sc.name.n != nl ||
	    memcmp(sc.name.p, ro->prefix_cookie, nl) || !sc.value.n)
		return false;
	long n = cookie_set_rewrite(&sc, cookie_str(ro->prefix), '~', sc.value, field_value(o, h),
				    field_room(o, h));
	if (n < 0)
		return false; /* not cookie-octets (or no room): pass it on as it is */
	field_done(o, h, (size_t)n);
	return true;
}

int http_build_response(char *buf, size_t cap, const struct h1_msg *resp,
			const struct http_resp_opts *ro)
{
	bool keep_alive = ro->keep_alive, upgrade = ro->upgrade;
	int client_minor = ro->client_minor;
	struct out o = { buf, buf + cap, false };
	PUTS(&o, "HTTP/1.1 ");
	put_u64(&o, (uint64_t)resp->status_code);
	PUTS(&o, " ");
	put(&o, resp->reason_phrase.p, resp->reason_phrase.n);
	PUTS(&o, "\r\n");
	for (uint32_t i = 0; i < resp->nhdrs; i++) {
		const struct h1_hdr *h = &resp->hdrs[i];
		if (h->flags & H1_HF_HOPBYHOP) {
			if ((h->flags & H1_HF_UPGRADE) && upgrade)
				put_field(&o, h);
			continue;
		}
		/* Bodiless responses (HEAD, 204, 304) keep the Content-Length
		 * the server announced: it describes the representation, not
		 * this message's framing (RFC 9110 8.6). */
		if ((h->flags & H1_HF_FRAMING) && resp->body != H1_BODY_NONE)
			continue;
		if ((h->flags & H1_HF_SETCOOKIE) && ro->prefix_cookie && put_prefixed(&o, h, ro))
			continue;
		put_field(&o, h);
	}
	put_framing(&o, resp);
	for (uint32_t i = 0; ro->add && i < ro->add->n; i++) {
		const struct http_field *f = &ro->add->f[i];
		put(&o, f->name.p, f->name.n);
		PUTS(&o, ": ");
		put(&o, f->value.p, f->value.n);
		PUTS(&o, "\r\n");
	}
	if (upgrade)
		PUTS(&o, "Connection: upgrade\r\n");
	else if (!keep_alive)
		PUTS(&o, "Connection: close\r\n");
	else if (!client_minor)
		PUTS(&o, "Connection: keep-alive\r\n");
	PUTS(&o, "\r\n");
	return o.overflow ? -1 : (int)(o.p - buf);
}

const char *http_status_text(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default:  return "Error";
	}
}

int http_build_error(char *buf, size_t cap, int status, const char *detail, const char *hsts)
{
	char body[256];
	int bl = snprintf(body, sizeof(body), "%d %s%s%s\n", status, http_status_text(status),
			  detail ? ": " : "", detail ? detail : "");
	if (bl < 0 || bl >= (int)sizeof(body))
		bl = (int)sizeof(body) - 1;
	int n = snprintf(buf, cap,
			 "HTTP/1.1 %d %s\r\n"
			 "Content-Type: text/plain; charset=utf-8\r\n"
			 "Content-Length: %d\r\n"
			 "Cache-Control: no-store\r\n"
			 "%s%s%s%s"
			 "Connection: close\r\n\r\n%.*s",
			 status, http_status_text(status), bl,
			 status == 503 ? "Retry-After: 1\r\n" : "",
			 hsts ? "Strict-Transport-Security: " : "", hsts ? hsts : "", hsts ? "\r\n" : "",
			 bl, body);
	return n < 0 || (size_t)n >= cap ? -1 : n;
}
