/*
 * route.c - the endpoints of the demo app (SPEC section 8) and the answers
 * they build.
 *
 * Every answer carries X-Server: NAME (so a test sees which server
 * answered), Content-Length or chunked framing, and Connection: close
 * when the connection ends after it. HEAD gets the headers of the GET
 * answer without its body (RFC 9110 9.3.2); 204 and 304 carry no body and
 * no Content-Length (RFC 9110 8.6: a 304's would have to be the length of
 * a 200 this app never computed).
 *
 *   GET  /                   page: server, session visit count, cart
 *   POST /cart/add           item=NAME (form body or query); 303 to /,
 *                            or JSON when Accept asks for application/json
 *   GET  /healthz            200 "ok\n", 503 "failing\n" after /admin/fail
 *   POST /admin/fail|recover toggle /healthz
 *   GET  /whoami             "NAME\n" (text/plain, one trailing newline)
 *   ANY  /echo[/...]         JSON: the request as received, body length and
 *                            SHA-256, chunked trailers
 *   GET  /bytes?n=N[&chunked=1]  N bytes of "0123456789abcdef" repeated
 *   GET  /slow?ms=N          answers after N ms (timer, thread not blocked)
 *   GET  /ws                 WebSocket echo (ws.c)
 *   GET  /status?code=N      answers with status N
 *   GET  /stats              JSON counters: connections, requests, sessions
 *   POST /logout             deletes the session from its store
 *   PUT|DELETE /replica/ID   a peer's copy of a session (--replicate-to)
 */
#include "demo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "store.h"

#define PATTERN       "0123456789abcdef"
#define BYTES_CHUNK   16384          /* chunk size of /bytes?chunked=1 */
#define STREAM_STEP   65536
#define SLOW_MAX_MS   600000

static char pattern[STREAM_STEP + 16];
static struct sbuf whoami_ka;        /* GET /whoami, HTTP/1.1 keep-alive */

static const char *reason(int code)
{
	switch (code) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 205: return "Reset Content";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 426: return "Upgrade Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "Status";
	}
}

void route_init(void)
{
	size_t i;

	for (i = 0; i < sizeof(pattern); i++)
		pattern[i] = PATTERN[i % 16];
	sbuf_puts(&whoami_ka, "HTTP/1.1 200 OK\r\nX-Server: ");
	sbuf_put(&whoami_ka, demo_cfg.name, demo_cfg.name_len);
	sbuf_puts(&whoami_ka, "\r\nContent-Type: text/plain\r\nContent-Length: ");
	sbuf_putu(&whoami_ka, demo_cfg.name_len + 1);
	sbuf_puts(&whoami_ka, "\r\n\r\n");
	sbuf_put(&whoami_ka, demo_cfg.name, demo_cfg.name_len);
	sbuf_puts(&whoami_ka, "\n");
}

static bool no_body_status(int status)
{
	return status == 204 || status == 304;
}

/* Status line and the headers every answer has. clen is the body length
 * (ignored when chunked or for 204/304); extra is more header lines, each
 * ending in CRLF. */
static void head(struct demo_conn *c, int status, const char *ctype,
		 uint64_t clen, bool chunked, const char *extra)
{
	struct sbuf *o = &c->out;

	sbuf_puts(o, "HTTP/1.1 ");
	sbuf_putu(o, (uint64_t)status);
	sbuf_puts(o, " ");
	sbuf_puts(o, reason(status));
	sbuf_puts(o, "\r\nX-Server: ");
	sbuf_put(o, demo_cfg.name, demo_cfg.name_len);
	sbuf_puts(o, "\r\n");
	if (ctype && status != 204 && status != 304) {
		sbuf_puts(o, "Content-Type: ");
		sbuf_puts(o, ctype);
		sbuf_puts(o, "\r\n");
	}
	if (chunked) {
		sbuf_puts(o, "Transfer-Encoding: chunked\r\n");
	} else if (!no_body_status(status)) {
		sbuf_puts(o, "Content-Length: ");
		sbuf_putu(o, clen);
		sbuf_puts(o, "\r\n");
	}
	if (extra)
		sbuf_puts(o, extra);
	if (c->close_after)
		sbuf_puts(o, "Connection: close\r\n");
	else if (c->req.minor == 0)
		sbuf_puts(o, "Connection: keep-alive\r\n");
	sbuf_puts(o, "\r\n");
}

/* The answer is queued: what the connection does next. */
static int finish(struct demo_conn *c)
{
	c->st = c->close_after ? CS_CLOSING : CS_HEAD;
	return c->out.oom ? -1 : 0;
}

static int send_body(struct demo_conn *c, int status, const char *ctype,
		     const char *body, size_t len, const char *extra)
{
	if (no_body_status(status))
		len = 0;
	head(c, status, ctype, len, false, extra);
	if (!c->req.is_head)
		sbuf_put(&c->out, body, len);
	return finish(c);
}

static int send_text(struct demo_conn *c, int status, const char *text,
		     const char *extra)
{
	return send_body(c, status, "text/plain", text, strlen(text), extra);
}

void route_error(struct demo_conn *c, int status, const char *text)
{
	c->close_after = true;
	c->req.is_head = false;
	c->req.minor = 1;
	head(c, status, "text/plain", strlen(text), false, NULL);
	sbuf_puts(&c->out, text);
	c->st = CS_CLOSING;
}

/* ---- request helpers ---------------------------------------------------- */

static bool path_is(const struct demo_req *r, const char *p)
{
	size_t n = strlen(p);

	return r->path_len == n && memcmp(r->hb + r->target, p, n) == 0;
}

static bool method_is(const struct demo_req *r, const char *m)
{
	size_t n = strlen(m);

	return r->meth_len == n && memcmp(r->hb, m, n) == 0;
}

/* Value of query parameter name (raw, not decoded), or false. */
static bool query_param(const struct demo_req *r, const char *name,
			const char **v, size_t *vlen)
{
	const char *q = r->hb + r->target + r->path_len;
	const char *end = r->hb + r->target + r->target_len;
	size_t n = strlen(name);

	if (q == end)
		return false;
	q++;                       /* '?' */
	while (q < end) {
		const char *amp = memchr(q, '&', (size_t)(end - q));
		const char *e = amp ? amp : end;
		if ((size_t)(e - q) >= n && memcmp(q, name, n) == 0 &&
		    (q + n == e || q[n] == '=')) {
			*v = q + n < e ? q + n + 1 : e;
			*vlen = (size_t)(e - *v);
			return true;
		}
		q = amp ? amp + 1 : end;
	}
	return false;
}

/* Parse a decimal query parameter into *out; false when malformed or
 * above max. Absent: *out = dflt. */
static bool query_uint(const struct demo_req *r, const char *name,
		       uint64_t dflt, uint64_t max, uint64_t *out)
{
	const char *v;
	size_t n, i;
	uint64_t x = 0;

	if (!query_param(r, name, &v, &n)) {
		*out = dflt;
		return true;
	}
	if (n == 0 || n > 15)
		return false;
	for (i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return false;
		x = x * 10 + (uint64_t)(v[i] - '0');
	}
	if (x > max)
		return false;
	*out = x;
	return true;
}

static bool wants_json(const struct demo_req *r)
{
	const char *v;
	size_t n;

	if (query_param(r, "format", &v, &n) && n == 4 && !memcmp(v, "json", 4))
		return true;
	v = conn_header(r, "accept", &n);
	return v && memmem(v, n, "application/json", 16) != NULL;
}

/* The session cookie's value (RFC 6265 5.4: "name=value" pairs joined by
 * "; "), from any Cookie field. */
static bool session_cookie(const struct demo_req *r, const char **v, size_t *vlen)
{
	unsigned i;

	for (i = 0; i < r->nfields; i++) {
		const struct demo_field *f = &r->fields[i];
		const char *p, *end;
		if (f->name_len != 6 || strncasecmp(r->hb + f->name, "cookie", 6))
			continue;
		p = r->hb + f->value;
		end = p + f->value_len;
		while (p < end) {
			const char *semi = memchr(p, ';', (size_t)(end - p));
			const char *e = semi ? semi : end;
			while (p < e && (*p == ' ' || *p == '\t'))
				p++;
			if ((size_t)(e - p) > demo_cfg.cookie_len &&
			    p[demo_cfg.cookie_len] == '=' &&
			    memcmp(p, demo_cfg.cookie, demo_cfg.cookie_len) == 0) {
				*v = p + demo_cfg.cookie_len + 1;
				*vlen = (size_t)(e - *v);
				while (*vlen && ((*v)[*vlen - 1] == ' '))
					(*vlen)--;
				return true;
			}
			p = semi ? semi + 1 : end;
		}
	}
	return false;
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch |= 0x20;
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

/* application/x-www-form-urlencoded value of item in s[0..n), decoded
 * into out (at most SESSION_ITEM_MAX bytes, control bytes replaced). */
static size_t form_item(const char *s, size_t n, char *out)
{
	const char *p = s, *end = s + n, *v = NULL, *ve = NULL;
	size_t o = 0;

	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *e = amp ? amp : end;
		if (e - p >= 5 && memcmp(p, "item=", 5) == 0) {
			v = p + 5;
			ve = e;
			break;
		}
		p = amp ? amp + 1 : end;
	}
	for (p = v; p && p < ve && o < SESSION_ITEM_MAX; p++) {
		int ch = (unsigned char)*p;
		if (ch == '+') {
			ch = ' ';
		} else if (ch == '%' && ve - p >= 3 && hexval(p[1]) >= 0 &&
			   hexval(p[2]) >= 0) {
			ch = hexval(p[1]) << 4 | hexval(p[2]);
			p += 2;
		}
		if (ch < 0x20 || ch == 0x7f)
			ch = '?';
		out[o++] = (char)ch;
	}
	return o;
}

/* ---- endpoints ---------------------------------------------------------- */

/* The Set-Cookie the answer needs: the token of a client-side store on
 * every answer, a new session's id once. */
static void set_cookie(char *extra, size_t size, const struct store_session *sv,
		       bool created, const char *tok, size_t toklen)
{
	if (toklen)
		snprintf(extra, size, "Set-Cookie: %s=%.*s; Path=/; HttpOnly\r\n"
			 "Cache-Control: no-store\r\n", demo_cfg.cookie, (int)toklen, tok);
	else if (created)
		snprintf(extra, size, "Set-Cookie: %s=%s; Path=/; HttpOnly\r\n"
			 "Cache-Control: no-store\r\n", demo_cfg.cookie, sv->id);
	else
		snprintf(extra, size, "Cache-Control: no-store\r\n");
}

static void session_json(struct sbuf *b, const struct store_session *sv, bool created,
			 size_t toklen)
{
	unsigned i;

	sbuf_puts(b, "{\"server\":");
	sbuf_json(b, demo_cfg.name, demo_cfg.name_len);
	sbuf_puts(b, ",\"session\":\"");
	sbuf_puts(b, sv->id);
	sbuf_puts(b, "\",\"new\":");
	sbuf_puts(b, created ? "true" : "false");
	sbuf_puts(b, ",\"visits\":");
	sbuf_putu(b, sv->visits);
	sbuf_puts(b, ",\"cart\":[");
	for (i = 0; i < sv->ncart; i++) {
		if (i)
			sbuf_puts(b, ",");
		sbuf_json(b, sv->cart[i], strlen(sv->cart[i]));
	}
	sbuf_puts(b, "],\"cart_total\":");
	sbuf_putu(b, sv->cart_total);
	sbuf_puts(b, ",\"store\":\"");
	sbuf_puts(b, store_name());
	sbuf_puts(b, "\"");
	if (store_client_side()) {
		sbuf_puts(b, ",\"token_bytes\":");
		sbuf_putu(b, toklen);
	}
	sbuf_puts(b, "}\n");
}

static void page_html(struct sbuf *b, const struct store_session *sv, bool created)
{
	unsigned i;

	sbuf_puts(b, "<!doctype html>\n<html><head><meta charset=\"utf-8\">"
		  "<meta name=\"viewport\" content=\"width=device-width\">"
		  "<title>bollard demo: ");
	sbuf_html(b, demo_cfg.name, demo_cfg.name_len);
	sbuf_puts(b, "</title><style>body{font-family:sans-serif;max-width:36em;"
		  "margin:2em auto;padding:0 1em}.new{color:#b00}.old{color:#070}"
		  "code{background:#eee;padding:0 .2em}</style></head><body>\n"
		  "<h1>Served by <code id=\"server\">");
	sbuf_html(b, demo_cfg.name, demo_cfg.name_len);
	sbuf_puts(b, "</code></h1>\n");
	if (created)
		sbuf_puts(b, "<p class=\"new\" id=\"session-state\"><b>new session</b>: "
			  "this server did not know your session (first visit, "
			  "or your session was lost).</p>\n");
	else {
		sbuf_puts(b, "<p class=\"old\" id=\"session-state\">session kept: <b>visit #");
		sbuf_putu(b, sv->visits);
		sbuf_puts(b, "</b></p>\n");
	}
	sbuf_puts(b, "<p>session <code id=\"session\">");
	sbuf_puts(b, sv->id);
	sbuf_puts(b, "</code> (store <code id=\"store\">");
	sbuf_puts(b, store_name());
	sbuf_puts(b, "</code>), visits: <span id=\"visits\">");
	sbuf_putu(b, sv->visits);
	sbuf_puts(b, "</span></p>\n<h2>Cart (<span id=\"cart-total\">");
	sbuf_putu(b, sv->cart_total);
	sbuf_puts(b, "</span> items)</h2>\n<ul id=\"cart\">");
	for (i = 0; i < sv->ncart; i++) {
		sbuf_puts(b, "<li>");
		sbuf_html(b, sv->cart[i], strlen(sv->cart[i]));
		sbuf_puts(b, "</li>");
	}
	if (sv->cart_total > sv->ncart)
		sbuf_puts(b, "<li>...</li>");
	sbuf_puts(b, "</ul>\n<form method=\"post\" action=\"/cart/add\">"
		  "<input name=\"item\" value=\"widget\" maxlength=\"64\"> "
		  "<button type=\"submit\">Add to cart</button></form>\n"
		  "<p><small>Reload the page: with session persistence the server "
		  "and the visit count stay; without it, sessions get lost.</small></p>\n"
		  "</body></html>\n");
}

static int worker_slot(const struct demo_conn *c)
{
	return (int)(c->w - demo_workers);
}

/* The store failed (store.c has logged it): a clear 503, never a page
 * that pretends the session is new. */
static int store_down(struct demo_conn *c, const struct store_err *e)
{
	char text[STORE_ERR_MAX + 64];

	snprintf(text, sizeof(text), "session store unavailable: %s\n", e->msg);
	return send_text(c, 503, text, "Retry-After: 1\r\nCache-Control: no-store\r\n");
}

/* The item of POST /cart/add: the form body, else the query, else widget. */
static size_t cart_item(struct demo_conn *c, char *item)
{
	const char *qv;
	size_t qn, ilen = form_item(c->keep, c->keep_len, item);

	if (!ilen && query_param(&c->req, "item", &qv, &qn)) {
		char tmp[SESSION_ITEM_MAX + 8];
		size_t k = min_sz(qn, SESSION_ITEM_MAX);
		memcpy(tmp, "item=", 5);
		memcpy(tmp + 5, qv, k);
		ilen = form_item(tmp, k + 5, item);
	}
	if (!ilen) {
		memcpy(item, "widget", 6);
		ilen = 6;
	}
	return ilen;
}

static int do_index(struct demo_conn *c, bool add)
{
	struct demo_req *r = &c->req;
	struct sbuf *b = &c->w->scratch;
	struct store_session sv;
	struct store_err err;
	char extra[STORE_TOKEN_MAX + 256], tok[STORE_TOKEN_MAX + 1];
	const char *sid = NULL;
	size_t sidlen = 0, toklen = 0;
	bool json = wants_json(r), created;
	int rc;

	session_cookie(r, &sid, &sidlen);
	rc = store_get(worker_slot(c), sid, sidlen, &sv, &err);
	if (rc < 0)
		return store_down(c, &err);
	created = rc == 0;
	if (created) {
		memset(&sv, 0, sizeof(sv));
		if (store_new_id(sv.id) < 0)
			return send_text(c, 500, "no session\n", NULL);
	}
	if (add) {
		char item[SESSION_ITEM_MAX];
		size_t ilen = cart_item(c, item);
		if (sv.ncart < SESSION_CART_MAX) {
			memcpy(sv.cart[sv.ncart], item, ilen);
			sv.cart[sv.ncart][ilen] = '\0';
			sv.ncart++;
		}
		sv.cart_total++;
	} else {
		sv.visits++;
	}
	if (store_put(worker_slot(c), &sv, tok, &toklen, &err) < 0)
		return store_down(c, &err);
	set_cookie(extra, sizeof(extra), &sv, created, tok, toklen);
	b->len = 0;
	b->oom = false;
	if (json) {
		session_json(b, &sv, created, toklen);
		if (b->oom)
			return -1;
		return send_body(c, 200, "application/json", b->p, b->len, extra);
	}
	if (add) {
		size_t el = strlen(extra);
		snprintf(extra + el, sizeof(extra) - el, "Location: /\r\n");
		return send_text(c, 303, "added; see /\n", extra);
	}
	page_html(b, &sv, created);
	if (b->oom)
		return -1;
	return send_body(c, 200, "text/html; charset=utf-8", b->p, b->len, extra);
}

/* POST /logout: the session is deleted from the store and the cookie
 * cleared (RFC 6265 5.3: Max-Age=0 removes it). A client-side token
 * cannot be revoked: clearing the cookie is all the server can do. */
static int do_logout(struct demo_conn *c)
{
	struct store_session sv;
	struct store_err err;
	const char *sid = NULL;
	size_t sidlen = 0;
	char extra[256];
	int rc;

	session_cookie(&c->req, &sid, &sidlen);
	rc = store_get(worker_slot(c), sid, sidlen, &sv, &err);
	if (rc < 0 || (rc == 1 && store_del(worker_slot(c), sv.id, &err) < 0))
		return store_down(c, &err);
	snprintf(extra, sizeof(extra), "Set-Cookie: %s=; Path=/; Max-Age=0; HttpOnly\r\n"
		 "Cache-Control: no-store\r\n", demo_cfg.cookie);
	return send_text(c, 200, rc == 1 ? "logged out\n" : "no session\n", extra);
}

/* PUT /replica/ID?ttl=N (body: store_encode) and DELETE /replica/ID: the
 * copies a peer sends with --replicate-to (replica.c). */
static int do_replica(struct demo_conn *c)
{
	struct demo_req *r = &c->req;
	const char *id = r->hb + r->target + 9;
	size_t idlen = r->path_len - 9;
	struct store_session sv;
	uint64_t ttl = 0;
	bool put = method_is(r, "PUT");

	if (!put && !method_is(r, "DELETE"))
		return send_text(c, 405, "method not allowed\n", "Allow: PUT, DELETE\r\n");
	if (!store_id_valid(id, idlen))
		return send_text(c, 400, "bad session id\n", NULL);
	memset(&sv, 0, sizeof(sv));
	memcpy(sv.id, id, SESSION_ID_LEN);
	if (put && (!query_uint(r, "ttl", 0, 10u * 365 * 86400, &ttl) || ttl == 0))
		return send_text(c, 400, "ttl must be 1.. seconds\n", NULL);
	if (put && (c->body_len > c->keep_len ||
		    store_decode(c->keep, c->keep_len, &sv) < 0)) {
		store_count_refused();
		return send_text(c, 400, "bad session value\n", NULL);
	}
	if (store_memory_accept_replica(&sv, (unsigned)ttl) < 0)
		return send_text(c, 409, "this app does not keep sessions in memory\n", NULL);
	return send_body(c, 204, NULL, "", 0, NULL);
}

/* The request's header fields, in received order, as [[name,value],...]. */
static void json_headers(struct sbuf *b, const struct demo_req *r)
{
	unsigned i;

	sbuf_puts(b, "[");
	for (i = 0; i < r->nfields; i++) {
		const struct demo_field *f = &r->fields[i];
		sbuf_puts(b, i ? ",[" : "[");
		sbuf_json(b, r->hb + f->name, f->name_len);
		sbuf_puts(b, ",");
		sbuf_json(b, r->hb + f->value, f->value_len);
		sbuf_puts(b, "]");
	}
	sbuf_puts(b, "]");
}

/* The kept trailer lines ("name: value" CRLF, checked by conn.c to hold a
 * colon) as [[name,value],...]. */
static void json_trailers(struct sbuf *b, const char *p, size_t n)
{
	const char *end = p + n;
	bool first = true;

	sbuf_puts(b, "[");
	while (p < end) {
		const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
		const char *colon = memchr(p, ':', (size_t)(eol - p));
		const char *v = colon + 1, *ve = eol;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		sbuf_puts(b, first ? "[" : ",[");
		first = false;
		sbuf_json(b, p, (size_t)(colon - p));
		sbuf_puts(b, ",");
		sbuf_json(b, v, (size_t)(ve - v));
		sbuf_puts(b, "]");
		p = eol + 2;
	}
	sbuf_puts(b, "]");
}

static int do_echo(struct demo_conn *c)
{
	struct demo_req *r = &c->req;
	struct sbuf *b = &c->w->scratch;
	uint8_t digest[32];
	char hex[65];

	hash_sha256_final(&c->sha, digest);
	hash_hex(digest, sizeof(digest), hex);
	b->len = 0;
	b->oom = false;
	sbuf_puts(b, "{\"server\":");
	sbuf_json(b, demo_cfg.name, demo_cfg.name_len);
	sbuf_puts(b, ",\"method\":");
	sbuf_json(b, r->hb, r->meth_len);
	sbuf_puts(b, ",\"path\":");
	sbuf_json(b, r->hb + r->target, r->target_len);
	sbuf_puts(b, r->minor ? ",\"version\":\"HTTP/1.1\"" : ",\"version\":\"HTTP/1.0\"");
	sbuf_puts(b, ",\"headers\":");
	json_headers(b, r);
	sbuf_puts(b, ",\"chunked\":");
	sbuf_puts(b, r->chunked ? "true" : "false");
	sbuf_puts(b, ",\"body_length\":");
	sbuf_putu(b, c->body_len);
	sbuf_puts(b, ",\"body_sha256\":\"");
	sbuf_puts(b, hex);
	sbuf_puts(b, "\",\"trailers\":");
	json_trailers(b, c->trailers, c->trailers_len);
	sbuf_puts(b, "}\n");
	if (b->oom)
		return -1;
	return send_body(c, 200, "application/json", b->p, b->len, NULL);
}

static int do_bytes(struct demo_conn *c)
{
	struct demo_req *r = &c->req;
	uint64_t n, ch;

	if (!query_uint(r, "n", 0, 1ull << 40, &n) ||
	    !query_uint(r, "chunked", 0, 1, &ch))
		return send_text(c, 400, "bad n or chunked\n", NULL);
	/* RFC 9112 7: no chunked coding toward an HTTP/1.0 client. */
	c->gen_chunked = ch && r->minor == 1;
	c->gen_left = n;
	c->gen_pos = 0;
	head(c, 200, "application/octet-stream", n, c->gen_chunked, NULL);
	if (r->is_head)
		return finish(c);
	c->st = CS_STREAM;
	return c->out.oom ? -1 : 0;
}

int route_stream(struct demo_conn *c)
{
	struct sbuf *o = &c->out;
	int progress = 0;

	while (o->len - c->woff < DEMO_OUT_HIGH) {
		size_t n;
		if (c->gen_left == 0) {
			if (c->gen_chunked)
				sbuf_puts(o, "0\r\n\r\n");
			return finish(c) < 0 ? -1 : 1;
		}
		n = (size_t)min_u64(c->gen_left, c->gen_chunked ? BYTES_CHUNK : STREAM_STEP);
		if (c->gen_chunked) {
			char sz[24];
			snprintf(sz, sizeof(sz), "%zx\r\n", n);
			sbuf_puts(o, sz);
		}
		sbuf_put(o, pattern + c->gen_pos % 16, n);
		if (c->gen_chunked)
			sbuf_puts(o, "\r\n");
		if (o->oom)
			return -1;
		c->gen_left -= n;
		c->gen_pos += n;
		progress = 1;
	}
	return progress;
}

static int do_slow(struct demo_conn *c)
{
	uint64_t ms;

	if (!query_uint(&c->req, "ms", 1000, SLOW_MAX_MS, &ms))
		return send_text(c, 400, "bad ms\n", NULL);
	c->gen_left = ms;       /* remembered for the answer */
	c->st = CS_SLEEP;
	demo_timer_set(c, demo_now_ms() + ms);
	return 0;
}

int route_slow_done(struct demo_conn *c)
{
	char text[64];

	snprintf(text, sizeof(text), "slept %llu ms\n", (unsigned long long)c->gen_left);
	return send_text(c, 200, text, NULL);
}

static int do_ws(struct demo_conn *c)
{
	struct demo_req *r = &c->req;
	const char *key, *ver;
	size_t klen, vlen;
	char acc[29];

	key = conn_header(r, "sec-websocket-key", &klen);
	ver = conn_header(r, "sec-websocket-version", &vlen);
	/* RFC 6455 4.2.1: GET, Upgrade: websocket, Connection: Upgrade, a
	 * 16-byte base64 key, version 13. */
	if (!method_is(r, "GET") || !r->upgrade_ws || !r->conn_upgrade ||
	    !key || klen != 24)
		return send_text(c, 426, "WebSocket upgrade required\n",
				 "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n");
	if (!ver || vlen != 2 || memcmp(ver, "13", 2) != 0)
		return send_text(c, 426, "WebSocket version 13 required\n",
				 "Sec-WebSocket-Version: 13\r\n");
	ws_accept_key(key, klen, acc);
	sbuf_puts(&c->out, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
		  "Connection: Upgrade\r\nSec-WebSocket-Accept: ");
	sbuf_puts(&c->out, acc);
	sbuf_puts(&c->out, "\r\nX-Server: ");
	sbuf_put(&c->out, demo_cfg.name, demo_cfg.name_len);
	sbuf_puts(&c->out, "\r\n\r\n");
	memset(&c->ws, 0, sizeof(c->ws));
	c->st = CS_WS;
	return c->out.oom ? -1 : 0;
}

static int do_status(struct demo_conn *c)
{
	uint64_t code;
	char text[32];

	if (!query_uint(&c->req, "code", 200, 599, &code) || code < 200)
		return send_text(c, 400, "code must be 200..599\n", NULL);
	if (code == 205)
		return send_body(c, 205, "text/plain", "", 0, NULL);
	snprintf(text, sizeof(text), "status %u\n", (unsigned)code);
	return send_text(c, (int)code, text, NULL);
}

static int do_stats(struct demo_conn *c)
{
	struct sbuf *b = &c->w->scratch;
	uint64_t acc = 0, req = 0;
	int i;

	for (i = 0; i < demo_nworkers; i++) {
		acc += atomic_load_explicit(&demo_workers[i].accepted, memory_order_relaxed);
		req += atomic_load_explicit(&demo_workers[i].requests, memory_order_relaxed);
	}
	b->len = 0;
	b->oom = false;
	sbuf_puts(b, "{\"server\":");
	sbuf_json(b, demo_cfg.name, demo_cfg.name_len);
	sbuf_puts(b, ",\"connections_accepted\":");
	sbuf_putu(b, acc);
	sbuf_puts(b, ",\"requests\":");
	sbuf_putu(b, req);
	sbuf_puts(b, ",\"sessions\":");
	if (store_count() >= 0)
		sbuf_putu(b, (uint64_t)store_count());
	else
		sbuf_puts(b, "null");
	sbuf_puts(b, ",\"store\":\"");
	sbuf_puts(b, store_name());
	sbuf_puts(b, "\",\"store_errors\":");
	sbuf_putu(b, store_errors());
	sbuf_puts(b, ",\"refused\":");
	sbuf_putu(b, store_refused());
	sbuf_puts(b, ",\"replica_sent\":");
	sbuf_putu(b, replica_sent());
	sbuf_puts(b, ",\"replica_dropped\":");
	sbuf_putu(b, replica_dropped());
	sbuf_puts(b, ",\"threads\":");
	sbuf_putu(b, (uint64_t)demo_nworkers);
	sbuf_puts(b, ",\"failing\":");
	sbuf_puts(b, atomic_load(&demo_failing) ? "true" : "false");
	sbuf_puts(b, "}\n");
	if (b->oom)
		return -1;
	return send_body(c, 200, "application/json", b->p, b->len,
			 "Cache-Control: no-store\r\n");
}

void route_classify(struct demo_conn *c)
{
	struct demo_req *r = &c->req;
	const char *p = r->hb + r->target;

	if (path_is(r, "/whoami"))
		r->route = R_WHOAMI;
	else if (path_is(r, "/"))
		r->route = R_INDEX;
	else if (path_is(r, "/echo") || (r->path_len > 6 && !memcmp(p, "/echo/", 6)))
		r->route = R_ECHO;
	else if (path_is(r, "/healthz"))
		r->route = R_HEALTHZ;
	else if (path_is(r, "/cart/add"))
		r->route = R_CART_ADD;
	else if (path_is(r, "/bytes"))
		r->route = R_BYTES;
	else if (path_is(r, "/slow"))
		r->route = R_SLOW;
	else if (path_is(r, "/ws"))
		r->route = R_WS;
	else if (path_is(r, "/status"))
		r->route = R_STATUS;
	else if (path_is(r, "/stats"))
		r->route = R_STATS;
	else if (path_is(r, "/logout"))
		r->route = R_LOGOUT;
	else if (r->path_len > 9 && !memcmp(p, "/replica/", 9))
		r->route = R_REPLICA;
	else if (path_is(r, "/admin/fail"))
		r->route = R_ADMIN_FAIL;
	else if (path_is(r, "/admin/recover"))
		r->route = R_ADMIN_RECOVER;
	else
		r->route = R_NOT_FOUND;
	c->hashing = r->route == R_ECHO;
}

int route_respond(struct demo_conn *c)
{
	struct demo_req *r = &c->req;
	bool get = method_is(r, "GET") || r->is_head;

	switch (r->route) {
	case R_WHOAMI:
		if (!get)
			break;
		if (!c->close_after && r->minor == 1 && !r->is_head) {
			sbuf_put(&c->out, whoami_ka.p, whoami_ka.len);
			return finish(c);
		}
		c->w->scratch.len = 0;
		c->w->scratch.oom = false;
		sbuf_put(&c->w->scratch, demo_cfg.name, demo_cfg.name_len);
		sbuf_put(&c->w->scratch, "\n", 1);
		if (c->w->scratch.oom)
			return -1;
		return send_body(c, 200, "text/plain", c->w->scratch.p,
				 c->w->scratch.len, NULL);
	case R_INDEX:
		return get ? do_index(c, false) : send_text(c, 405,
			"method not allowed\n", "Allow: GET, HEAD\r\n");
	case R_CART_ADD:
		if (!method_is(r, "POST"))
			return send_text(c, 405, "method not allowed\n", "Allow: POST\r\n");
		return do_index(c, true);
	case R_LOGOUT:
		if (!method_is(r, "POST"))
			return send_text(c, 405, "method not allowed\n", "Allow: POST\r\n");
		return do_logout(c);
	case R_REPLICA:
		return do_replica(c);
	case R_HEALTHZ:
		if (!get)
			break;
		if (atomic_load(&demo_failing))
			return send_text(c, 503, "failing\n", NULL);
		return send_text(c, 200, "ok\n", NULL);
	case R_ADMIN_FAIL:
	case R_ADMIN_RECOVER:
		if (!method_is(r, "POST"))
			return send_text(c, 405, "method not allowed\n", "Allow: POST\r\n");
		atomic_store(&demo_failing, r->route == R_ADMIN_FAIL);
		return send_text(c, 200, r->route == R_ADMIN_FAIL ? "failing\n" : "ok\n", NULL);
	case R_ECHO:
		return do_echo(c);
	case R_BYTES:
		return get ? do_bytes(c) : send_text(c, 405, "method not allowed\n",
						     "Allow: GET, HEAD\r\n");
	case R_SLOW:
		if (!get)
			break;
		return do_slow(c);
	case R_WS:
		return do_ws(c);
	case R_STATUS:
		if (!get)
			break;
		return do_status(c);
	case R_STATS:
		if (!get)
			break;
		return do_stats(c);
	case R_NOT_FOUND:
		return send_text(c, 404, "not found\n", NULL);
	}
	return send_text(c, 405, "method not allowed\n", "Allow: GET, HEAD\r\n");
}
