/*
 * view.h - what bollard knows about a client when it picks a server for it:
 * the address, and whatever protocol message that client has sent so far.
 * Routing (route.c) and persistence (persist.c) read the client through
 * this view rather than through an HTTP message, so that a connection
 * without one (mode tcp; later a TLS ClientHello alone) is routed and
 * persisted by the same code. A method whose input is not in the view
 * (a cookie, a header, a URL parameter without an HTTP message) finds
 * nothing, as it would for a request that does not carry it.
 */
#ifndef BOLLARD_VIEW_H
#define BOLLARD_VIEW_H

#include "cookie.h"
#include "h1.h"

#include <sys/socket.h>

struct view {
	/* the client, as the stream decided it (the peer, or what a
	 * trusted PROXY header / X-Forwarded-For says); never NULL */
	const struct sockaddr_storage *addr;
	/* the request head, valid for the call; NULL when the connection
	 * carries no HTTP (yet) */
	const struct h1_msg *msg;
	/* room for the TLS ClientHello (SNI, ALPN) once there is a parser */
};

/* The value of the first field named lname of the request (h1_find_header). */
static inline bool view_header(const struct view *v, const char *lname, struct h1_str *out)
{
	return v->msg && h1_find_header(v->msg, lname, out);
}

/* The value of the first cookie named name of the request (cookie_find_msg). */
static inline bool view_cookie(const struct view *v, struct h1_str name, struct h1_str *out)
{
	return v->msg && cookie_find_msg(v->msg, name, out) == 1;
}

/* The request target; empty (p NULL, n 0) without a request. */
static inline struct h1_str view_target(const struct view *v)
{
	return v->msg ? v->msg->target : (struct h1_str){ NULL, 0 };
}

/* The Host of the request without its port; empty without a request. */
static inline struct h1_str view_host(const struct view *v)
{
	if (!v->msg || !v->msg->host.n)
		return (struct h1_str){ NULL, 0 };
	struct h1_str h = v->msg->host;
	const char *colon = memchr(h.p, ':', h.n);
	/* an IPv6 literal ([::1]:80) keeps its brackets and colons */
	if (colon && h.p[0] != '[')
		h.n = (size_t)(colon - h.p);
	return h;
}

#endif
