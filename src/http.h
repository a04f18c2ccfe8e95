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

struct http_resp_opts {
	bool keep_alive;          /* the client connection stays open after it */
	int client_minor;         /* HTTP/1.x version of the client's request */
	bool upgrade;             /* a 101 opening a tunnel: keep its Upgrade field */
	const char *extra;        /* complete header lines (CRLF each) to add */
	size_t extra_len;
	const char *prefix_cookie; /* Set-Cookie of this name gets its value */
	const char *prefix;        /* prefixed with "prefix~" (persist prefix) */
};

int http_build_response(char *out, size_t cap, const struct h1_msg *resp,
			const struct http_resp_opts *ro);

/* A complete error response (head and short body); always closes. */
int http_build_error(char *out, size_t cap, int status, const char *detail);
const char *http_status_text(int status);

#endif
