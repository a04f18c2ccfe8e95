/*
 * fuzz_h1.c - libFuzzer target for the HTTP/1.x parser and the chunked-body
 * scanner (src/h1.c). Besides "does not crash under ASan/UBSan", it checks
 * the properties the proxy relies on:
 *   - a head length is never beyond the input, and equals m.head_len;
 *   - parsing is prefix-consistent: a prefix that already yields a head
 *     yields the same head on the whole input, and a prefix rejected as
 *     invalid stays invalid when more bytes arrive (the incremental use in
 *     the proxy re-parses a growing buffer);
 *   - the chunk scanner gives the same verdict, the same end and the same
 *     forwarded bytes (held size lines withheld, rewritten ones replaced)
 *     whether the input is fed whole, split at a few offsets, or one byte
 *     at a time; and what it forwards is canonical: re-scanned, it needs
 *     no rewrite.
 * The same function runs under gcc via fuzz/replay.c over the committed
 * corpus and tests/vectors/.
 */
#include "api.h"
#include "h1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_HDRS 40

/* Small limits so that 414/431 paths are reachable by short inputs. */
static const struct h1_limits fuzz_lim = {
	.max_line = 200,
	.max_head = 1200,
	.max_hdrs = 30,
};

static int parse(const char *b, size_t n, struct h1_msg *m, int resp_meth)
{
	static struct h1_hdr hdrs[FUZZ_HDRS];
	int r;

	memset(m, 0, sizeof(*m));
	m->hdrs = hdrs;
	m->hdrs_cap = FUZZ_HDRS;
	if (resp_meth < 0)
		r = h1_parse_request(b, n, m, &fuzz_lim);
	else
		r = h1_parse_response(b, n, m, &fuzz_lim, (enum h1_method)resp_meth);
	BUG_ON(r == 0 || r < H1_INCOMPLETE);
	if (r > 0) {
		BUG_ON((size_t)r > n);
		BUG_ON((size_t)r != m->head_len);
		BUG_ON(m->nhdrs > FUZZ_HDRS || m->nhdrs > fuzz_lim.max_hdrs);
		for (uint32_t i = 0; i < m->nhdrs; i++) {
			const struct h1_hdr *h = &m->hdrs[i];
			BUG_ON(h->name.p < b || h->name.p + h->name.n > b + r);
			BUG_ON(h->value.p < b || h->value.p + h->value.n > b + r);
			BUG_ON(h->name.n == 0);
		}
		BUG_ON(m->body == H1_BODY_CLOSE && resp_meth < 0);
	} else if (r == H1_INVALID) {
		BUG_ON(!m->reason);
		BUG_ON(m->status < 400 || m->status > 505);
		BUG_ON(resp_meth >= 0 && m->status != 502);
	}
	return r;
}

static void check_parse(const char *b, size_t n, int resp_meth)
{
	struct h1_msg m;
	int full = parse(b, n, &m, resp_meth);
	size_t cuts[4] = { n / 2, n / 3, n > 0 ? n - 1 : 0, n > 7 ? 7 : n };

	for (size_t i = 0; i < ARRAY_SIZE(cuts); i++) {
		int r = parse(b, cuts[i], &m, resp_meth);
		if (r > 0)
			BUG_ON(full != r);
		if (r == H1_INVALID)
			BUG_ON(full != H1_INVALID);
		/* a valid head: every proper prefix is merely incomplete */
		if (full > 0 && cuts[i] < (size_t)full)
			BUG_ON(r != H1_INCOMPLETE);
	}
}

/* Feed the scanner in pieces of `step`, splitting also at `cut`, as the
 * proxy does: held bytes are not forwarded, rewritten size lines are
 * replaced. The forwarded bytes go to out (room for n) and their number to
 * *outlen. Returns bytes consumed up to the end of the body, -1 invalid, -2
 * not finished. */
static long chunk_feed(const char *b, size_t n, size_t step, size_t cut, char *out, size_t *outlen)
{
	struct h1_chunk c;
	size_t off = 0, fwd = 0, o = 0;

	h1_chunk_init(&c);
	while (off < n && !c.done) {
		size_t k = MIN(step, n - off);
		if (off < cut && off + k > cut)
			k = cut - off;
		long r = h1_chunk_scan(&c, b + off, k);
		if (r == H1_INVALID)
			return -1;
		BUG_ON(r < 0 || (size_t)r > k);
		BUG_ON((size_t)r < k && !c.done && !c.rewrite);
		off += (size_t)r;
		BUG_ON(c.hold > off - fwd);
		memcpy(out + o, b + fwd, off - c.hold - fwd);
		o += off - c.hold - fwd;
		fwd = off - c.hold;
		if (c.rewrite) {
			uint32_t held = c.hold;
			size_t ln = h1_chunk_line(&c, out + o);
			BUG_ON(ln > held || c.rewrite || c.hold);
			o += ln;
			fwd = off;
		}
	}
	if (c.done)
		BUG_ON(h1_chunk_scan(&c, b, n) != 0);
	*outlen = o;
	return c.done ? (long)off : -2;
}

/* The scanner's verdict, end and forwarded bytes do not depend on how the
 * input is cut, and what it forwards is canonical (re-scanning it rewrites
 * nothing). */
static void check_chunks(const char *b, size_t size)
{
	static char o1[1 << 16], o2[1 << 16];
	size_t n1, n2;
	long whole = chunk_feed(b, size, size ? size : 1, 0, o1, &n1);
	const size_t steps[][2] = { { size ? size : 1, size / 2 }, { size ? size : 1, 3 }, { 7, 0 },
				    { 1, 0 } };

	BUG_ON(whole > (long)size);
	for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
		if (steps[i][0] == 1 && size >= 4096)
			continue;
		BUG_ON(chunk_feed(b, size, steps[i][0], steps[i][1], o2, &n2) != whole);
		if (whole > 0)
			BUG_ON(n2 != n1 || memcmp(o1, o2, n1));
	}
	if (whole > 0) {
		BUG_ON(n1 > (size_t)whole);
		BUG_ON(chunk_feed(o1, n1, n1 ? n1 : 1, 0, o2, &n2) != (long)n1);
		BUG_ON(n2 != n1 || memcmp(o1, o2, n1));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *b = (const char *)data;

	if (size > 1 << 16)
		return 0;
	check_parse(b, size, -1);
	check_parse(b, size, H1_M_GET);
	check_parse(b, size, H1_M_HEAD);
	check_parse(b, size, H1_M_CONNECT);

	check_chunks(b, size);

	/* A request head followed by its chunked body, as the proxy sees it. */
	{
		struct h1_msg m;
		int r = parse(b, size, &m, -1);
		if (r > 0 && m.body == H1_BODY_CHUNKED)
			check_chunks(b + r, size - (size_t)r);
	}
	return 0;
}
