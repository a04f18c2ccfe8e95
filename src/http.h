/*
 * http.h - building the heads bollard sends: the request head toward a
 * server, the response head toward a client, and bollard's own error
 * responses. Pure functions writing into a caller buffer (no I/O, no
 * allocation). Framing and hop-by-hop fields are regenerated here, never
 * copied from the peer (RFC 9110 7.6.1, RFC 9112 6).
 */
#ifndef BOLLARD_HTTP_H
#define BOLLARD_HTTP_H

#include "cfg.h"
#include "h1.h"

struct http_req_out {
	/* inputs */
	unsigned fwd;             /* HTTP_FWD_* */
	const char *client_ip;
	const char *proto;        /* "http" (later "https") */
	const char *new_reqid;    /* used when the request carries none */
	size_t new_reqid_len;
	struct h1_str upgrade;    /* the Upgrade value to send (route_upgrade()); empty: none */
	const char *strip_cookie; /* remove this cookie from Cookie headers (ours) */
	const char *unprefix_cookie; /* `persist cookie NAME prefix`: drop "SRV~" */
	/* outputs: where some values landed in the output, for the access log */
	uint32_t target_off, ua_off, ua_len, ref_off, ref_len, reqid_off, reqid_len;
};

/* Returns the head length, or -1 when it does not fit in cap. */
int http_build_request(char *out, size_t cap, const struct h1_msg *req,
		       struct http_req_out *o);

/*
 * The fields bollard adds to a response head (persistence's Set-Cookie and
 * Cache-Control), as name/value pairs: what a head says, apart from how a
 * protocol writes it. http_build_response() writes them for HTTP/1.1; an
 * HTTP/2 serialiser takes the same pairs. Values live in mem (the caller's,
 * on its stack: nothing allocated per request).
 */
#define HTTP_ADD_MAX 12

struct http_field {
	struct h1_str name, value;
};

struct http_add {
	struct http_field f[HTTP_ADD_MAX];
	uint32_t n;
	uint32_t used;             /* bytes of mem taken by values */
	char mem[1024];
};

static inline void http_add_init(struct http_add *a)
{
	a->n = a->used = 0;
}

/* Where the next value can be built in place, and *room its bytes (0 when
 * no field is left); http_add_commit() then adds it under name. */
static inline char *http_add_room(struct http_add *a, size_t *room)
{
	*room = a->n < HTTP_ADD_MAX ? sizeof(a->mem) - a->used : 0;
	return a->mem + a->used;
}

/* Add name (a static string) with the len bytes built at http_add_room(). */
static inline void http_add_commit(struct http_add *a, const char *name, size_t len)
{
	BUG_ON(a->n >= HTTP_ADD_MAX || len > sizeof(a->mem) - a->used);
	a->f[a->n++] = (struct http_field){ { name, strlen(name) }, { a->mem + a->used, len } };
	a->used += (uint32_t)len;
}

/* Add name: value (copied). 0, or -1 when there is no room. */
static inline int http_add_field(struct http_add *a, const char *name, const char *value, size_t len)
{
	size_t room;
	char *p = http_add_room(a, &room);
	if (a->n >= HTTP_ADD_MAX || room < len)
		return -1;
	memcpy(p, value, len);
	http_add_commit(a, name, len);
	return 0;
}

struct http_resp_opts {
	bool keep_alive;          /* the client connection stays open after it */
	int client_minor;         /* HTTP/1.x version of the client's request */
	bool upgrade;             /* a 101 opening a tunnel: keep its Upgrade field */
	const struct http_add *add; /* fields to add (NULL: none) */
	const char *prefix_cookie; /* Set-Cookie of this name gets its value */
	const char *prefix;        /* prefixed with "prefix~" (persist prefix) */
};

/* The HTTP/1.1 serialiser of a response head toward the client: resp's
 * fields (hop-by-hop and framing ones dropped and regenerated), then ro->add,
 * then Connection. Returns the head length, or -1 when it does not fit. */
int http_build_response(char *out, size_t cap, const struct h1_msg *resp,
			const struct http_resp_opts *ro);

/* A complete error response (head and short body); always closes. hsts:
 * a Strict-Transport-Security value to send, or NULL. */
int http_build_error(char *out, size_t cap, int status, const char *detail, const char *hsts);
const char *http_status_text(int status);

#endif
