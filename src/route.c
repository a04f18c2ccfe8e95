/*
 * route.c - where a parsed request goes, decided from its head alone: the
 * backend (`route host|path-prefix`, else `default-backend`), which
 * upgrade tokens may reach the server (websocket, `allow-upgrade`) and which
 * 101 may open a tunnel, the scheme a trusted proxy in front reports, and
 * the key `balance hash` places it by. Pure functions of the configuration
 * and the head; stream.c calls them once per request. The backend and the
 * hash key read the client through a view (view.h), so that a connection
 * without an HTTP message is routed by the same code.
 */
#include "api.h"
#include "route.h"
#include "cookie.h"
#include "lb_hash.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <strings.h>

/* First matching route wins (configuration order); Host is compared
 * without its port and case-insensitively (RFC 9110 4.2.3). Both kinds
 * read the request: without one, the default backend. */
struct backend *route_backend(const struct frontend *fe, const struct view *v)
{
	struct h1_str target = view_target(v), host = view_host(v);
	for (int i = 0; i < fe->nroutes; i++) {
		const struct route *r = &fe->routes[i];
		if (r->kind == ROUTE_PATH_PREFIX) {
			if (target.n >= r->len && !memcmp(target.p, r->value, r->len))
				return r->be;
		} else if (host.n == r->len && !strncasecmp(host.p, r->value, host.n)) {
			return r->be;
		}
	}
	return fe->default_be;
}

/* `balance hash KEY`: the client's key, hashed the same way by every
 * instance (lb_hash_key). Returns false when the client has none (every
 * key but source needs a request). */
bool route_hash_key(const struct backend *be, const struct view *cv, uint64_t *key)
{
	struct h1_str v = { NULL, 0 };
	switch (be->hash_key) {
	case HASH_KEY_SOURCE:
		if (cv->addr->ss_family == AF_INET) {
			const struct sockaddr_in *a = (const void *)cv->addr;
			*key = lb_hash_key(&a->sin_addr, 4);
		} else {
			const struct sockaddr_in6 *a = (const void *)cv->addr;
			*key = lb_hash_key(&a->sin6_addr, 16);
		}
		return true;
	case HASH_KEY_URI:
		v = view_target(cv);
		break;
	case HASH_KEY_HEADER:
		view_header(cv, be->hash_key_name, &v);
		break;
	case HASH_KEY_COOKIE:
		view_cookie(cv, cookie_str(be->hash_key_name), &v);
		break;
	case HASH_KEY_URLPARAM:
		cookie_query_param(view_target(cv), cookie_str(be->hash_key_name), &v);
		break;
	}
	if (!v.n)
		return false;
	*key = lb_hash_key(v.p, v.n);
	return true;
}

/*
 * Upgrade (RFC 9110 7.8). An element is protocol-name ["/" protocol-version];
 * a configured token without "/" stands for every version of its protocol,
 * one with "/" for that version only. Compared case-insensitively, as RFC
 * 6455 4.2.1 asks for "websocket". Returns the token's ROUTE_UP_* bit, 0
 * when the element is not allowed.
 */
static bool token_match(struct h1_str el, const char *tok)
{
	size_t n = el.n;
	const char *slash = strchr(tok, '/') ? NULL : memchr(el.p, '/', el.n);
	if (slash)
		n = (size_t)(slash - el.p);
	return n == strlen(tok) && !strncasecmp(el.p, tok, n);
}

static uint32_t token_bit(const struct frontend *fe, bool get, struct h1_str el)
{
	/* RFC 6455 4.1: the opening handshake is a GET */
	if (get && token_match(el, "websocket"))
		return ROUTE_UP_WEBSOCKET;
	for (int k = 0; k < fe->nallow_upgrade; k++)
		if (token_match(el, fe->allow_upgrade[k]))
			return ROUTE_UP_WEBSOCKET << (k + 1);
	return 0;
}

uint32_t route_upgrade(const struct frontend *fe, const struct h1_msg *m, char *out, size_t cap,
		       size_t *len)
{
	uint32_t sent = 0;
	size_t n = 0;

	*len = 0;
	/* RFC 9110 7.8: "A server MUST ignore an Upgrade header field that
	 * is received in an HTTP/1.0 request": so does the next hop's */
	if (!(m->flags & H1_MF_UPGRADE) || m->minor == 0)
		return 0;
	/* Every Upgrade line, every element: one allowed token beside others
	 * (or on a line of its own) must not carry the others through. */
	for (uint32_t i = 0; i < m->nhdrs; i++) {
		struct h1_str rest = m->hdrs[i].value, el;
		if (!(m->hdrs[i].flags & H1_HF_UPGRADE))
			continue;
		while (h1_list_next(&rest, &el)) {
			uint32_t bit = token_bit(fe, m->meth == H1_M_GET, el);
			/* once per token; one too long for out is not offered
			 * (never a tunnel the server was not asked for) */
			if (!bit || (sent & bit) || n + el.n + 2 > cap)
				continue;
			if (n) {
				out[n++] = ',';
				out[n++] = ' ';
			}
			memcpy(out + n, el.p, el.n);
			n += el.n;
			sent |= bit;
		}
	}
	*len = n;
	return sent;
}

/* RFC 9110 7.8: "A server MUST NOT switch to a protocol that was not
 * indicated by the client in the corresponding request's Upgrade header
 * field", and names the protocols it switches to in its own Upgrade. */
bool route_upgrade_accepts(const struct frontend *fe, uint32_t sent, const struct h1_msg *resp)
{
	bool any = false;
	for (uint32_t i = 0; i < resp->nhdrs; i++) {
		struct h1_str rest = resp->hdrs[i].value, el;
		if (!(resp->hdrs[i].flags & H1_HF_UPGRADE))
			continue;
		while (h1_list_next(&rest, &el)) {
			if (!(token_bit(fe, true, el) & sent))
				return false;
			any = true;
		}
	}
	return any;
}

/* A URI scheme (h1_is_scheme), kept lowercase in out[0..cap) (schemes are
 * case-insensitive). */
static bool put_scheme(struct h1_str v, char *out, size_t cap)
{
	if (v.n >= 2 && v.p[0] == '"' && v.p[v.n - 1] == '"') {
		v.p++; /* RFC 7239 4: a value may be a quoted-string */
		v.n -= 2;
	}
	if (v.n >= cap || !h1_is_scheme(v))
		return false;
	for (size_t i = 0; i < v.n; i++)
		out[i] = (char)tolower((unsigned char)v.p[i]);
	out[v.n] = '\0';
	return true;
}

/* The last element of a Forwarded value (RFC 7239 4: elements separated by
 * commas, pairs by semicolons, values tokens or quoted-strings, which may
 * hold either), then its proto= pair. */
static bool forwarded_proto(struct h1_str v, struct h1_str *proto)
{
	size_t start = 0, i;
	bool q = false;
	for (i = 0; i < v.n; i++) {
		if (v.p[i] == '"')
			q = !q;
		else if (v.p[i] == '\\' && q)
			i++;
		else if (v.p[i] == ',' && !q)
			start = i + 1;
	}
	for (i = start; i < v.n;) {
		size_t e = i;
		for (q = false; e < v.n && (q || v.p[e] != ';'); e++) {
			if (v.p[e] == '"')
				q = !q;
			else if (v.p[e] == '\\' && q)
				e++;
		}
		if (e > v.n)
			e = v.n;
		struct h1_str pair = { v.p + i, e - i }, rest = pair, el;
		if (h1_list_next(&rest, &el) && el.n > 6 && !strncasecmp(el.p, "proto=", 6)) {
			*proto = (struct h1_str){ el.p + 6, el.n - 6 };
			return true;
		}
		i = e + 1;
	}
	return false;
}

bool route_forwarded_proto(const struct h1_msg *m, char *out, size_t cap)
{
	struct h1_str fwd = { NULL, 0 };
	for (uint32_t i = m->nhdrs; i-- > 0;) {
		const struct h1_hdr *h = &m->hdrs[i];
		if (h->flags & H1_HF_XFP) {
			/* the nearest proxy's word: the last element */
			struct h1_str rest = h->value, el, last = { NULL, 0 };
			while (h1_list_next(&rest, &el))
				last = el;
			return put_scheme(last, out, cap);
		}
		if (!fwd.p && h1_name_eq(h->name, "forwarded"))
			fwd = h->value;
	}
	struct h1_str proto;
	return fwd.p && forwarded_proto(fwd, &proto) && put_scheme(proto, out, cap);
}

/* An address as text, IPv4-mapped IPv6 addresses as plain IPv4. */
void route_addr_text(const struct sockaddr_storage *ss, char *out, size_t cap)
{
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a6 = (const void *)ss;
		if (IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr))
			inet_ntop(AF_INET, &a6->sin6_addr.s6_addr[12], out, (socklen_t)cap);
		else
			inet_ntop(AF_INET6, &a6->sin6_addr, out, (socklen_t)cap);
	} else {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, out, (socklen_t)cap);
	}
}

