/*
 * fuzz_smuggle.c - libFuzzer target for the anti-smuggling property of the
 * request path: a request head that h1_parse_request() accepts, rebuilt
 * for the server by http_build_request(), parses back (with the same
 * parser, as a strict server would) to the same request:
 *   - the rebuilt head is accepted whole, with nothing left over, so the
 *     server sees exactly one request where bollard saw one;
 *   - same method, target, version and Host;
 *   - same body framing: no body, the same Content-Length, or chunked — a
 *     disagreement here is the desynchronisation a smuggling attack needs;
 *   - every end-to-end field of the client's head reaches the server in
 *     the same order with the same value, and no field reaches it that
 *     the client did not send, except the ones bollard itself writes
 *     (framing, forwarding, X-Request-Id, Connection, Upgrade).
 * Runs under gcc via fuzz/replay.c over its corpus and tests/vectors/.
 */
#include "api.h"
#include "h1.h"
#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NHDRS 64

static const struct h1_limits lim = {
	.max_line = 8192,
	.max_head = 32768,
	.max_hdrs = NHDRS,
};

static bool eq(struct h1_str a, struct h1_str b)
{
	return a.n == b.n && (a.n == 0 || !memcmp(a.p, b.p, a.n));
}

/* A field bollard writes itself toward the server (http.c). */
static bool ours(const struct h1_hdr *h)
{
	static const char *const names[] = {
		"connection", "upgrade", "content-length", "transfer-encoding",
		"x-forwarded-for", "x-forwarded-proto", "forwarded", "x-request-id",
		"keep-alive", "te", "proxy-connection",
	};
	if (h->flags & (H1_HF_HOPBYHOP | H1_HF_FRAMING | H1_HF_XFF | H1_HF_XFP | H1_HF_REQID))
		return true;
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (h1_name_eq(h->name, names[i]))
			return true;
	return false;
}

static void check(const char *b, size_t n, unsigned fwd)
{
	static struct h1_hdr ih[NHDRS], oh[NHDRS];
	static char out[65536];
	struct h1_msg in = { .hdrs = ih, .hdrs_cap = NHDRS };
	struct h1_msg re = { .hdrs = oh, .hdrs_cap = NHDRS };
	int r = h1_parse_request(b, n, &in, &lim);

	if (r <= 0)
		return;
	/* an upgrade offered is sent on as the client wrote it (what
	 * route_upgrade() passes when every token is allowed) */
	struct h1_str up = { 0 };
	if (in.flags & H1_MF_UPGRADE)
		h1_find_header(&in, "upgrade", &up);
	struct http_req_out o = {
		.fwd = fwd,
		.client_ip = "192.0.2.7",
		.proto = "http",
		.new_reqid = "0123456789abcdef",
		.new_reqid_len = 16,
		.upgrade = up,
	};
	int k = http_build_request(out, sizeof(out), &in, &o);
	if (k < 0)
		return; /* too large: bollard answers 431, nothing is sent */
	BUG_ON((size_t)k > sizeof(out));

	int r2 = h1_parse_request(out, (size_t)k, &re, &lim);
	if (r2 == H1_INVALID && re.status == 431)
		return; /* bollard's own fields pushed it past this parser's limits */
	if (r2 != k) {
		fprintf(stderr, "rebuilt head refused or not whole (%d of %d): %s\n%.*s\n", r2, k,
			re.reason ? re.reason : "", k, out);
		abort();
	}
	BUG_ON(!eq(in.method, re.method));
	BUG_ON(!eq(in.target, re.target));
	BUG_ON(!eq(in.host, re.host));
	BUG_ON(re.minor != in.minor); /* the version is the client's (RFC 9110 2.5) */
	BUG_ON(in.body != re.body);
	BUG_ON(in.body == H1_BODY_LENGTH && in.content_length != re.content_length);

	/* end-to-end fields: the same sequence on both sides */
	uint32_t j = 0;
	for (uint32_t i = 0; i < in.nhdrs; i++) {
		if (ours(&ih[i]))
			continue;
		while (j < re.nhdrs && ours(&oh[j]))
			j++;
		BUG_ON(j >= re.nhdrs);
		BUG_ON(!eq(ih[i].name, oh[j].name));
		/* Cookie may be rewritten (bollard's own cookie is removed) */
		if (!(ih[i].flags & H1_HF_COOKIE))
			BUG_ON(!eq(ih[i].value, oh[j].value));
		j++;
	}
	while (j < re.nhdrs && ours(&oh[j]))
		j++;
	BUG_ON(j != re.nhdrs); /* nothing the client did not send */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 1 << 15)
		return 0;
	check((const char *)data, size, HTTP_FWD_DEFAULT);
	check((const char *)data, size, HTTP_FWD_DEFAULT | HTTP_FWD_RFC7239);
	check((const char *)data, size, 0);
	return 0;
}
