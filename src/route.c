/*
 * route.c - where a parsed request goes, decided from its head alone: the
 * backend (`route host|path-prefix`, else `default-backend`), whether an
 * upgrade other than websocket may become a tunnel (`allow-upgrade`), and
 * the key `balance hash` places it by. Pure functions of the configuration
 * and the head; stream.c calls them once per request.
 */
#include "api.h"
#include "route.h"
#include "cookie.h"
#include "lb_hash.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <strings.h>

/* First matching route wins (configuration order); Host is compared
 * without its port and case-insensitively (RFC 9110 4.2.3). */
struct backend *route_backend(const struct frontend *fe, const struct h1_msg *m)
{
	for (int i = 0; i < fe->nroutes; i++) {
		const struct route *r = &fe->routes[i];
		if (r->kind == ROUTE_PATH_PREFIX) {
			if (m->target.n >= r->len && !memcmp(m->target.p, r->value, r->len))
				return r->be;
		} else {
			/* Host without its port, compared case-insensitively */
			size_t hn = m->host.n;
			const char *colon = memchr(m->host.p, ':', hn);
			if (colon && m->host.p[0] != '[')
				hn = (size_t)(colon - m->host.p);
			if (hn == r->len && !strncasecmp(m->host.p, r->value, hn))
				return r->be;
		}
	}
	return fe->default_be;
}

/* `balance hash KEY`: the request's key, hashed the same way by every
 * instance (lb_hash_key). Returns false when the request has none. */
bool route_hash_key(const struct backend *be, const struct sockaddr_storage *client,
		    const struct h1_msg *m, uint64_t *key)
{
	struct h1_str v = { NULL, 0 };
	switch (be->hash_key) {
	case HASH_KEY_SOURCE:
		if (client->ss_family == AF_INET) {
			const struct sockaddr_in *a = (const void *)client;
			*key = lb_hash_key(&a->sin_addr, 4);
		} else {
			const struct sockaddr_in6 *a = (const void *)client;
			*key = lb_hash_key(&a->sin6_addr, 16);
		}
		return true;
	case HASH_KEY_URI:
		v = m->target;
		break;
	case HASH_KEY_HEADER:
		h1_find_header(m, be->hash_key_name, &v);
		break;
	case HASH_KEY_COOKIE:
		cookie_find_msg(m, cookie_str(be->hash_key_name), &v);
		break;
	case HASH_KEY_URLPARAM:
		cookie_query_param(m->target, cookie_str(be->hash_key_name), &v);
		break;
	}
	if (!v.n)
		return false;
	*key = lb_hash_key(v.p, v.n);
	return true;
}

/* `allow-upgrade TOKEN`: does the request ask (Connection: upgrade) for an
 * upgrade to a token the frontend allows? */
bool route_upgrade_allowed(const struct frontend *fe, const struct h1_msg *m)
{
	bool conn_upgrade = false, allowed = false;
	for (uint32_t i = 0; i < m->nhdrs; i++) {
		const struct h1_hdr *h = &m->hdrs[i];
		if (h1_name_eq(h->name, "connection") && h1_list_has(h->value, "upgrade"))
			conn_upgrade = true;
		if (h->flags & H1_HF_UPGRADE)
			for (int k = 0; k < fe->nallow_upgrade; k++)
				allowed |= h1_list_has(h->value, fe->allow_upgrade[k]);
	}
	return conn_upgrade && allowed;
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

