/*
 * fuzz_h2head.c - libFuzzer target for the header handling bollard does
 * itself around nghttp2 (src/h2_head.c): an HTTP/2 request's header list
 * into an HTTP/1.1 head, with the cookie crumbs joined, and an HTTP/1.1
 * response head back into an HTTP/2 header list.
 *
 * Input: the first byte picks the direction and the end-of-stream flag;
 * then, for a request, fields as [name length][name][value length][value]
 * (one byte each length), as nghttp2 would hand them over; for a response,
 * the bytes of an HTTP/1.1 response head. Besides "no crash under
 * ASan/UBSan", it checks what the proxy relies on:
 *   - a head the builder returns is one complete HTTP/1.1 head: h1.c
 *     parses exactly its length, or rejects it (a missing Host, a bad
 *     method), and never finds it incomplete or longer (no CR or LF of a
 *     field ever split it);
 *   - the cookie crumbs come out as one Cookie field, joined with "; " in
 *     their order;
 *   - no connection-specific field gets through, and chunked framing is
 *     there exactly when a body without a content-length is announced;
 *   - the response list starts with a 3-digit :status, its names are
 *     lowercase and none is hop-by-hop.
 * The same function runs under gcc via fuzz/replay.c over the committed
 * corpus fuzz/corpus/h2head/.
 */
#include "api.h"
#include "h1.h"
#include "h2_head.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define OUT_CAP 4096

static char out[OUT_CAP], aux[OUT_CAP], want_cookie[OUT_CAP];
static struct h1_hdr hdrs[H1_MAX_HDRS_HARD + 1];

static bool eq(const uint8_t *n, size_t len, const char *lit)
{
	return len == strlen(lit) && !memcmp(n, lit, len);
}

static void check_request(const uint8_t *p, size_t n, bool body)
{
	struct h2h_req r;
	size_t wc = 0;
	bool has_cl = false, failed = false;
	h2h_req_init(&r, out, OUT_CAP, aux, OUT_CAP, 3000);
	while (n >= 2 && !failed) {
		size_t nl = p[0];
		if (1 + nl + 1 > n)
			break;
		const uint8_t *name = p + 1;
		size_t vl = p[1 + nl];
		if (2 + nl + vl > n)
			break;
		const uint8_t *v = p + 2 + nl;
		p += 2 + nl + vl;
		n -= 2 + nl + vl;
		int e = h2h_req_field(&r, name, nl, v, vl);
		BUG_ON(e != 0 && e != H2H_TOO_LARGE && e != H2H_MALFORMED && e != H2H_CONNECT);
		if (e) {
			failed = true;
			break;
		}
		if (eq(name, nl, "cookie") && wc + vl + 2 >= sizeof(want_cookie))
			return; /* bigger than the builder takes anyway */
		if (eq(name, nl, "cookie")) {
			if (wc) {
				memcpy(want_cookie + wc, "; ", 2);
				wc += 2;
			}
			memcpy(want_cookie + wc, v, vl);
			wc += vl;
		}
		if (eq(name, nl, "content-length"))
			has_cl = true;
		/* RFC 9113 8.2.2: accepted means not connection-specific */
		BUG_ON(eq(name, nl, "connection") || eq(name, nl, "transfer-encoding") ||
		       eq(name, nl, "upgrade") || eq(name, nl, "keep-alive"));
	}
	if (failed)
		return;
	int len = h2h_req_end(&r, body);
	if (len < 0)
		return;
	BUG_ON((size_t)len > OUT_CAP || len < 4 || memcmp(out + len - 4, "\r\n\r\n", 4));
	BUG_ON(h2h_req_chunked(&r, body) != (body && !has_cl));
	struct h1_msg m;
	struct h1_limits lim = { OUT_CAP, OUT_CAP, H1_MAX_HDRS_HARD };
	memset(&m, 0, sizeof(m));
	m.hdrs = hdrs;
	m.hdrs_cap = H1_MAX_HDRS_HARD;
	int pn = h1_parse_request(out, (size_t)len, &m, &lim);
	BUG_ON(pn == H1_INCOMPLETE);
	if (pn < 0)
		return;
	BUG_ON(pn != len);
	int ncookie = 0;
	for (uint32_t i = 0; i < m.nhdrs; i++) {
		if (h1_name_eq(m.hdrs[i].name, "cookie")) {
			/* the crumbs joined, but for the OWS at the ends the
			 * parser trims (an empty last crumb leaves "; ") */
			const char *w = want_cookie, *we = want_cookie + wc;
			while (w < we && (*w == ' ' || *w == '\t'))
				w++;
			while (we > w && (we[-1] == ' ' || we[-1] == '\t'))
				we--;
			BUG_ON(m.hdrs[i].value.n != (size_t)(we - w) || memcmp(m.hdrs[i].value.p, w, (size_t)(we - w)));
			ncookie++;
		}
		BUG_ON(h1_name_eq(m.hdrs[i].name, "connection"));
	}
	BUG_ON(ncookie > 1 || (wc && ncookie != 1));
	BUG_ON(body && !has_cl && m.body != H1_BODY_CHUNKED);
}

static void check_response(const uint8_t *p, size_t n)
{
	struct h1_msg m;
	struct h1_limits lim = { OUT_CAP, OUT_CAP, H1_MAX_HDRS_HARD };
	nghttp2_nv nv[H1_MAX_HDRS_HARD + 1];
	memset(&m, 0, sizeof(m));
	m.hdrs = hdrs;
	m.hdrs_cap = H1_MAX_HDRS_HARD;
	if (h1_parse_response((const char *)p, n, &m, &lim, H1_M_GET) < 0)
		return;
	int cnt = h2h_rsp_nv(&m, nv, (int)ARRAY_SIZE(nv), aux, sizeof(aux));
	if (cnt < 0)
		return;
	BUG_ON(cnt < 1 || nv[0].namelen != 7 || memcmp(nv[0].name, ":status", 7) || nv[0].valuelen != 3);
	for (int i = 1; i < cnt; i++) {
		for (size_t k = 0; k < nv[i].namelen; k++)
			BUG_ON(nv[i].name[k] >= 'A' && nv[i].name[k] <= 'Z');
		struct h1_str nm = { (const char *)nv[i].name, nv[i].namelen };
		BUG_ON(h1_name_eq(nm, "connection") || h1_name_eq(nm, "transfer-encoding") ||
		       h1_name_eq(nm, "keep-alive") || h1_name_eq(nm, "upgrade"));
		/* values point into the input */
		BUG_ON(nv[i].valuelen && (nv[i].value < p || nv[i].value + nv[i].valuelen > p + n));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 16384)
		return 0;
	if (data[0] & 1)
		check_response(data + 1, size - 1);
	else
		check_request(data + 1, size - 1, data[0] & 2);
	return 0;
}
