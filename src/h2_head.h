/*
 * h2_head.h - the header conversions bollard does itself around nghttp2:
 * an HTTP/2 request's header list into an HTTP/1.1 request head, and an
 * HTTP/1.1 response head back into an HTTP/2 header list. Pure functions
 * over caller buffers (no I/O, no allocation), so that the fuzzer
 * (fuzz/fuzz_h2head.c) drives exactly what the proxy runs.
 *
 * nghttp2 already validates what RFC 9113 8.2 and 8.3 ask of a request
 * (lowercase names, pseudo-headers first and once, no connection-specific
 * field, te only "trailers", content-length against DATA) when HTTP
 * messaging is on, as it is in h2.c. The builder checks again what it
 * relies on, so that no CR, LF or NUL can reach the HTTP/1.1 head whatever
 * the library lets through.
 */
#ifndef BOLLARD_H2_HEAD_H
#define BOLLARD_H2_HEAD_H

#include "api.h"
#include "h1.h"
#include <nghttp2/nghttp2.h>

/* h2h_req_field / h2h_req_end answers, besides 0 / a length */
#define H2H_TOO_LARGE (-1) /* over the header list limit or the buffer: 431 */
#define H2H_MALFORMED (-2) /* RFC 9113 8.1.1: a stream error PROTOCOL_ERROR */
#define H2H_CONNECT   (-3) /* CONNECT (RFC 9113 8.5), which bollard does not tunnel: 501 */

struct h2h_req {
	char *out;              /* the HTTP/1.1 head being written */
	uint32_t cap, len;
	char *aux;              /* pseudo-header values, then the joined cookie */
	uint32_t auxcap, auxlen;
	uint32_t meth_off, meth_len, path_off, path_len, auth_off, auth_len;
	uint32_t cookie_off, cookie_len;
	uint64_t list_size;     /* RFC 9113 6.5.2: name + value + 32 per field */
	uint64_t max_list;
	bool has_meth, has_path, has_auth, has_scheme;
	bool line_done;         /* request line (and Host) written */
	bool has_cookie, has_cl;
	uint64_t cl;            /* the content-length, when has_cl */
};

void h2h_req_init(struct h2h_req *r, char *out, uint32_t cap, char *aux, uint32_t auxcap,
		  uint64_t max_list);
/* One field of the header list, in order. 0, H2H_TOO_LARGE or H2H_MALFORMED
 * (then the request is finished with: no further call). */
int h2h_req_field(struct h2h_req *r, const uint8_t *name, size_t nlen, const uint8_t *value,
		  size_t vlen);
/* The end of the header list: the joined cookie (RFC 9113 8.2.3), the
 * framing of the body the stream will carry (body: DATA may follow, and
 * without content-length it goes chunked, RFC 9112 7.1), the final CRLF.
 * Returns the head's length, or H2H_TOO_LARGE / H2H_MALFORMED. */
int h2h_req_end(struct h2h_req *r, bool body);
/* Whether the head says Transfer-Encoding: chunked (no content-length and
 * a body), known after h2h_req_end. */
static inline bool h2h_req_chunked(const struct h2h_req *r, bool body)
{
	return body && !r->has_cl;
}

/*
 * The HTTP/2 header list of the response head m (parsed from what the
 * exchange wrote for the client): :status, then its fields with names in
 * lowercase (RFC 9113 8.2.1) and without the connection-specific ones
 * (RFC 9113 8.2.2: Connection and what it names, Keep-Alive,
 * Proxy-Connection, Transfer-Encoding, Upgrade, TE). Names and the status
 * are written into scratch; values point into m. Returns the number of
 * entries, or -1 when nv or scratch is too small.
 */
int h2h_rsp_nv(const struct h1_msg *m, nghttp2_nv *nv, int nvcap, char *scratch, size_t scap);

/*
 * The same list from the server's head m as the exchange is about to
 * write it (http_build_response): its framing fields regenerated (one
 * content-length, no transfer-encoding), then the fields bollard adds
 * (add, may be NULL). So the stream need not parse the HTTP/1.1 text back.
 * Same answers as h2h_rsp_nv.
 */
struct http_add;
int h2h_rsp_nv_from(const struct h1_msg *m, const struct http_add *add, nghttp2_nv *nv,
		    int nvcap, char *scratch, size_t scap);

/* the list being built (h2_head.c) */
struct h2h_nv {
	nghttp2_nv *nv;
	int n, cap;
	char *scratch;
	size_t used, scap;
};

#endif
