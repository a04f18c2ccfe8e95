/*
 * test_h1.c - unit tests of the HTTP/1.x parser and the chunked-body
 * scanner. The bulk of the rules is covered by the vector files under
 * tests/vectors/ (one file per case, expected verdict in the file name:
 * tests/vectors/{req,resp,chunk}/<ok|status>-<name>.http), iterated here and
 * replayed by the fuzz target; the focused tests below check what a verdict
 * alone cannot show: flags, values, incremental and byte-by-byte feeding.
 * Run from the repository root.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "api.h"
#include "h1.h"

#define NHDRS 64

/* The limits the 414/431 vectors were written for. */
static const struct h1_limits vec_lim = {
	.max_line = 1024,
	.max_head = 4096,
	.max_hdrs = 32,
};

static struct h1_hdr hdrs[NHDRS];

static void msg_init(struct h1_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->hdrs = hdrs;
	m->hdrs_cap = NHDRS;
}

static int req(const char *s, struct h1_msg *m)
{
	msg_init(m);
	return h1_parse_request(s, strlen(s), m, &vec_lim);
}

static int resp(const char *s, struct h1_msg *m, enum h1_method meth)
{
	msg_init(m);
	return h1_parse_response(s, strlen(s), m, &vec_lim, meth);
}

static const struct h1_hdr *find(const struct h1_msg *m, const char *lname)
{
	for (uint32_t i = 0; i < m->nhdrs; i++)
		if (h1_name_eq(m->hdrs[i].name, lname))
			return &m->hdrs[i];
	return NULL;
}

/* Read a whole small file; returns a malloc'ed buffer (NULL on error). */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *b;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
		fclose(f);
		return NULL;
	}
	b = malloc((size_t)n + 1);
	if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
		free(b);
		b = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return b;
}

/*
 * Scan a chunked body in pieces of `step` bytes, as the proxy does: bytes
 * are "forwarded" into out (when not NULL, of room for len bytes) once the
 * scanner no longer holds them, and each size line it asks to rewrite is
 * replaced by h1_chunk_line(). Returns the input bytes consumed until done,
 * or -1 if invalid, or -2 if the input ended before the end; *outlen is
 * the length forwarded.
 */
static long chunk_feed_out(const char *b, size_t len, size_t step, char *out, size_t *outlen)
{
	struct h1_chunk c;
	size_t off = 0, fwd = 0, o = 0;

	h1_chunk_init(&c);
	while (off < len && !c.done) {
		size_t k = MIN(step, len - off);
		long r = h1_chunk_scan(&c, b + off, k);
		if (r == H1_INVALID)
			return -1;
		assert_true(r >= 0 && (size_t)r <= k);
		if ((size_t)r < k)
			assert_true(c.done || c.rewrite);
		off += (size_t)r;
		assert_true(c.hold <= off - fwd);
		if (out)
			memcpy(out + o, b + fwd, off - c.hold - fwd);
		o += off - c.hold - fwd;
		fwd = off - c.hold;
		if (c.rewrite) {
			char line[H1_CHUNK_LINE_CANON];
			uint32_t held = c.hold;
			size_t n = h1_chunk_line(&c, line);
			assert_true(n <= held && !c.rewrite && !c.hold);
			if (out)
				memcpy(out + o, line, n);
			o += n;
			fwd = off;
		}
	}
	if (outlen)
		*outlen = o;
	return c.done ? (long)off : -2;
}

static long chunk_feed(const char *b, size_t len, size_t step)
{
	return chunk_feed_out(b, len, step, NULL, NULL);
}

/* After an accepted head: the rest of the file must be exactly its body. */
static void check_body(const char *path, const struct h1_msg *m,
		       const char *b, size_t len, size_t head)
{
	size_t rest = len - head;

	switch (m->body) {
	case H1_BODY_NONE:
		if (rest)
			fail_msg("%s: %zu bytes after a body-less head", path, rest);
		break;
	case H1_BODY_LENGTH:
		if (rest != m->content_length)
			fail_msg("%s: body %zu != content-length %llu", path, rest,
				 (unsigned long long)m->content_length);
		break;
	case H1_BODY_CHUNKED:
		if (chunk_feed(b + head, rest, rest ? rest : 1) != (long)rest ||
		    chunk_feed(b + head, rest, 1) != (long)rest)
			fail_msg("%s: chunked body does not end the file", path);
		break;
	case H1_BODY_CLOSE:
		break;
	}
}

/* Iterate one vector directory. kind: 'q' request, 's' response, 'c' chunk. */
static int run_vectors(const char *dir, char kind)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (!d)
		fail_msg("cannot open %s (run from the repository root)", dir);
	while ((de = readdir(d))) {
		char path[512];
		const char *name = de->d_name;
		size_t len = 0, nl = strlen(name);
		char *b;
		int want; /* 0 = ok, else the expected status */
		int r;
		struct h1_msg m;

		if (nl < 6 || strcmp(name + nl - 5, ".http"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		want = strncmp(name, "ok-", 3) ? atoi(name) : 0;
		if (strncmp(name, "ok-", 3) && want < 100)
			fail_msg("%s: name must start with ok- or a status", path);
		b = slurp(path, &len);
		assert_non_null(b);
		n++;
		if (kind == 'c') {
			char *o1 = malloc(len + 1), *o2 = malloc(len + 1), *o3 = malloc(len + 1);
			size_t n1 = 0, n2 = 0, n3 = 0;
			long c1 = chunk_feed_out(b, len, len ? len : 1, o1, &n1);
			long c2 = chunk_feed_out(b, len, 1, o2, &n2);
			if (c1 != c2)
				fail_msg("%s: whole feed %ld, byte feed %ld", path, c1, c2);
			/* what goes out does not depend on how it came in, and
			 * is already canonical: re-scanning it rewrites nothing */
			if (c1 > 0 && (n1 != n2 || memcmp(o1, o2, n1)))
				fail_msg("%s: forwarded bytes differ by feed", path);
			if (c1 > 0 && (chunk_feed_out(o1, n1, n1, o3, &n3) != (long)n1 || n3 != n1 ||
				       memcmp(o1, o3, n1)))
				fail_msg("%s: the re-encoded body is not canonical", path);
			free(o1);
			free(o2);
			free(o3);
			if (!want && c1 != (long)len)
				fail_msg("%s: expected ok, got %ld of %zu", path, c1, len);
			if (want && c1 != -1)
				fail_msg("%s: expected invalid, got %ld", path, c1);
			free(b);
			continue;
		}
		msg_init(&m);
		if (kind == 'q') {
			r = h1_parse_request(b, len, &m, &vec_lim);
		} else {
			enum h1_method meth = H1_M_GET;
			if (strstr(name, "head-req"))
				meth = H1_M_HEAD;
			else if (strstr(name, "connect-req"))
				meth = H1_M_CONNECT;
			r = h1_parse_response(b, len, &m, &vec_lim, meth);
		}
		if (!want) {
			if (r <= 0)
				fail_msg("%s: expected ok, got %d (%d %s)", path, r,
					 m.status, m.reason ? m.reason : "");
			assert_true((size_t)r <= len);
			assert_int_equal((size_t)r, m.head_len);
			check_body(path, &m, b, len, (size_t)r);
		} else {
			if (r != H1_INVALID || m.status != want)
				fail_msg("%s: expected %d, got %d (status %d %s)", path,
					 want, r, m.status, m.reason ? m.reason : "");
			assert_non_null(m.reason);
		}
		free(b);
	}
	closedir(d);
	return n;
}

static void test_vectors_req(void **state)
{
	(void)state;
	assert_true(run_vectors("tests/vectors/req", 'q') >= 40);
}

static void test_vectors_resp(void **state)
{
	(void)state;
	assert_true(run_vectors("tests/vectors/resp", 's') >= 10);
}

static void test_vectors_chunk(void **state)
{
	(void)state;
	assert_true(run_vectors("tests/vectors/chunk", 'c') >= 10);
}

static void test_request_fields(void **state)
{
	struct h1_msg m;
	const char *s =
		"POST /cart/add?x=1 HTTP/1.1\r\n"
		"Host: shop.example.com\r\n"
		"Cookie: BOLLARD=abc\r\n"
		"X-Forwarded-For: 10.0.0.1\r\n"
		"x-forwarded-proto: https\r\n"
		"X-Request-Id: 42\r\n"
		"Expect: 100-Continue\r\n"
		"Cache-Control: no-cache\r\n"
		"Content-Length:  12 \r\n"
		"\r\n";
	int r;

	(void)state;
	r = req(s, &m);
	assert_int_equal(r, (int)strlen(s));
	assert_int_equal(m.meth, H1_M_POST);
	assert_int_equal(m.method.n, 4);
	assert_memory_equal(m.target.p, "/cart/add?x=1", m.target.n);
	assert_int_equal(m.target.n, 13);
	assert_int_equal(m.minor, 1);
	assert_int_equal(m.nhdrs, 8);
	assert_int_equal(m.host.n, 16);
	assert_memory_equal(m.host.p, "shop.example.com", 16);
	assert_int_equal(m.body, H1_BODY_LENGTH);
	assert_int_equal(m.content_length, 12);
	assert_true(m.flags & H1_MF_HAS_HOST);
	assert_true(m.flags & H1_MF_EXPECT_100);
	assert_false(m.flags & (H1_MF_CONN_CLOSE | H1_MF_UPGRADE));
	assert_int_equal(m.hdrs[0].flags, H1_HF_HOST);
	assert_int_equal(m.hdrs[1].flags, H1_HF_COOKIE);
	assert_int_equal(m.hdrs[2].flags, H1_HF_XFF);
	assert_int_equal(m.hdrs[3].flags, H1_HF_XFP);
	assert_int_equal(m.hdrs[4].flags, H1_HF_REQID);
	assert_int_equal(m.hdrs[5].flags, H1_HF_EXPECT);
	assert_int_equal(m.hdrs[6].flags, H1_HF_CACHECONTROL);
	assert_int_equal(m.hdrs[7].flags, H1_HF_FRAMING);
	/* OWS trimmed from values, names exact */
	assert_int_equal(m.hdrs[7].value.n, 2);
	assert_memory_equal(m.hdrs[7].value.p, "12", 2);
	assert_int_equal(m.hdrs[7].name.n, 14);
}

static void test_methods(void **state)
{
	static const struct { const char *name; enum h1_method m; } t[] = {
		{ "GET", H1_M_GET }, { "HEAD", H1_M_HEAD }, { "POST", H1_M_POST },
		{ "PUT", H1_M_PUT }, { "DELETE", H1_M_DELETE },
		{ "OPTIONS", H1_M_OPTIONS }, { "PATCH", H1_M_PATCH },
		{ "CONNECT", H1_M_CONNECT }, { "TRACE", H1_M_TRACE },
		{ "get", H1_M_OTHER }, { "PROPFIND", H1_M_OTHER },
	};
	char buf[128];
	struct h1_msg m;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		snprintf(buf, sizeof(buf), "%s / HTTP/1.1\r\nHost: a\r\n\r\n", t[i].name);
		assert_true(req(buf, &m) > 0);
		assert_int_equal(m.meth, t[i].m);
	}
}

static void test_connection_flags(void **state)
{
	struct h1_msg m;

	(void)state;
	assert_true(req("GET / HTTP/1.1\r\nHost: a\r\n\r\n", &m) > 0);
	assert_int_equal(m.flags & (H1_MF_CONN_CLOSE | H1_MF_CONN_KEEPALIVE), 0);
	assert_true(req("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, Close\r\n\r\n", &m) > 0);
	assert_true(m.flags & H1_MF_CONN_CLOSE);
	assert_true(req("GET / HTTP/1.0\r\n\r\n", &m) > 0);
	assert_int_equal(m.minor, 0);
	assert_true(m.flags & H1_MF_CONN_CLOSE);
	assert_false(m.flags & H1_MF_HAS_HOST);
	assert_true(req("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &m) > 0);
	assert_false(m.flags & H1_MF_CONN_CLOSE);
	assert_true(m.flags & H1_MF_CONN_KEEPALIVE);
}

static void test_upgrade_flags(void **state)
{
	struct h1_msg m;

	(void)state;
	assert_true(req("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n"
			"Upgrade: WebSocket\r\n\r\n", &m) > 0);
	assert_true(m.flags & H1_MF_UPGRADE);
	assert_true(find(&m, "upgrade")->flags & H1_HF_UPGRADE);
	assert_true(find(&m, "upgrade")->flags & H1_HF_HOPBYHOP);
	/* Upgrade without Connection: upgrade is not an upgrade request */
	assert_true(req("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", &m) > 0);
	assert_false(m.flags & H1_MF_UPGRADE);
	/* nor is Connection: upgrade with an empty Upgrade list */
	assert_true(req("GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: ,\r\n\r\n", &m) > 0);
	assert_false(m.flags & H1_MF_UPGRADE);
	assert_true(req("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
			"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n", &m) > 0);
	assert_true(m.flags & H1_MF_UPGRADE);
	assert_true(find(&m, "http2-settings")->flags & H1_HF_HOPBYHOP);
}

static void test_hop_by_hop(void **state)
{
	struct h1_msg m;
	const char *s =
		"GET / HTTP/1.1\r\n"
		"X-Secret: 1\r\n"
		"Host: a\r\n"
		"Keep-Alive: timeout=5\r\n"
		"TE: trailers\r\n"
		"Proxy-Connection: keep-alive\r\n"
		"Connection: keep-alive, x-secret\r\n"
		"Connection: X-Other , host, content-length\r\n"
		"x-other: 2\r\n"
		"X-Kept: 3\r\n"
		"Content-Length: 0\r\n"
		"\r\n";

	(void)state;
	assert_int_equal(req(s, &m), (int)strlen(s));
	assert_true(find(&m, "x-secret")->flags & H1_HF_HOPBYHOP);
	assert_true(find(&m, "keep-alive")->flags & H1_HF_HOPBYHOP);
	assert_true(find(&m, "te")->flags & H1_HF_HOPBYHOP);
	assert_true(find(&m, "proxy-connection")->flags & H1_HF_HOPBYHOP);
	assert_true(find(&m, "connection")->flags & H1_HF_HOPBYHOP);
	assert_true(find(&m, "x-other")->flags & H1_HF_HOPBYHOP);
	assert_false(find(&m, "x-kept")->flags & H1_HF_HOPBYHOP);
	/* a client cannot make the proxy strip Host or framing */
	assert_false(find(&m, "host")->flags & H1_HF_HOPBYHOP);
	assert_false(find(&m, "content-length")->flags & H1_HF_HOPBYHOP);
	assert_true(m.flags & H1_MF_CONN_KEEPALIVE);
}

static void test_content_length(void **state)
{
	struct h1_msg m;

	(void)state;
	assert_true(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n", &m) > 0);
	assert_int_equal(m.content_length, INT64_MAX);
	assert_int_equal(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n", &m), H1_INVALID);
	assert_int_equal(m.status, 400);
	assert_true(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7,7 , 7\r\n\r\n", &m) > 0);
	assert_int_equal(m.content_length, 7);
	assert_int_equal(m.body, H1_BODY_LENGTH);
	assert_true(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", &m) > 0);
	assert_int_equal(m.body, H1_BODY_LENGTH);
	assert_int_equal(m.content_length, 0);
	assert_true(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n", &m) > 0);
	assert_int_equal(m.body, H1_BODY_CHUNKED);
	assert_true(req("GET / HTTP/1.1\r\nHost: a\r\n\r\n", &m) > 0);
	assert_int_equal(m.body, H1_BODY_NONE);
}

static void test_response_body(void **state)
{
	struct h1_msg m;

	(void)state;
	assert_true(resp("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", &m, H1_M_GET) > 0);
	assert_int_equal(m.status_code, 200);
	assert_int_equal(m.reason_phrase.n, 2);
	assert_int_equal(m.body, H1_BODY_LENGTH);
	assert_int_equal(m.content_length, 10);
	assert_true(resp("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", &m, H1_M_HEAD) > 0);
	assert_int_equal(m.body, H1_BODY_NONE);
	assert_true(resp("HTTP/1.1 200 OK\r\n\r\n", &m, H1_M_GET) > 0);
	assert_int_equal(m.body, H1_BODY_CLOSE);
	assert_true(resp("HTTP/1.1 200 OK\r\n\r\n", &m, H1_M_CONNECT) > 0);
	assert_int_equal(m.body, H1_BODY_NONE);
	assert_true(resp("HTTP/1.1 407 Auth\r\n\r\n", &m, H1_M_CONNECT) > 0);
	assert_int_equal(m.body, H1_BODY_CLOSE);
	assert_true(resp("HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n", &m, H1_M_GET) > 0);
	assert_int_equal(m.body, H1_BODY_NONE);
	assert_true(resp("HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n", &m, H1_M_GET) > 0);
	assert_int_equal(m.body, H1_BODY_NONE);
	assert_true(resp("HTTP/1.1 100 Continue\r\n\r\n", &m, H1_M_POST) > 0);
	assert_int_equal(m.status_code, 100);
	assert_int_equal(m.body, H1_BODY_NONE);
	assert_true(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", &m, H1_M_GET) > 0);
	assert_int_equal(m.body, H1_BODY_CHUNKED);
	assert_true(resp("HTTP/1.1 101 Switching\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n", &m, H1_M_GET) > 0);
	assert_true(m.flags & H1_MF_UPGRADE);
	assert_true(resp("HTTP/1.0 200 OK\r\nSet-Cookie: a=b\r\n\r\n", &m, H1_M_GET) > 0);
	assert_true(m.flags & H1_MF_CONN_CLOSE);
	assert_true(m.hdrs[0].flags & H1_HF_SETCOOKIE);
	/* response errors are the server's: 502 */
	assert_int_equal(resp("HTTP/1.1 200 OK\r\nHost: a\r\nHost: b\r\nX: \x01\r\n\r\n", &m, H1_M_GET), H1_INVALID);
	assert_int_equal(m.status, 502);
}

/* Every proper prefix of a valid head is incomplete, never invalid; bytes
 * after the head are not consumed. */
static void test_incremental(void **state)
{
	const char *heads[] = {
		"GET /a HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\n",
		"\r\n\r\nPOST / HTTP/1.0\r\nContent-Length: 3\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nEmpty:\r\nSp:  \r\n\r\n",
	};
	const char *rheads[] = {
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 204\r\n\r\n",
		"HTTP/1.1 200 \r\n\r\n",
	};
	char buf[256];
	struct h1_msg m;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(heads); i++) {
		size_t n = strlen(heads[i]);
		memcpy(buf, heads[i], n);
		memcpy(buf + n, "GET / HTTP/1.1\r\n", 16);
		for (size_t k = 0; k < n; k++) {
			msg_init(&m);
			if (h1_parse_request(buf, k, &m, &vec_lim) != H1_INCOMPLETE)
				fail_msg("head %zu prefix %zu not incomplete", i, k);
		}
		msg_init(&m);
		assert_int_equal(h1_parse_request(buf, n, &m, &vec_lim), (int)n);
		msg_init(&m);
		assert_int_equal(h1_parse_request(buf, n + 16, &m, &vec_lim), (int)n);
	}
	for (size_t i = 0; i < ARRAY_SIZE(rheads); i++) {
		size_t n = strlen(rheads[i]);
		for (size_t k = 0; k < n; k++) {
			msg_init(&m);
			if (h1_parse_response(rheads[i], k, &m, &vec_lim, H1_M_GET) != H1_INCOMPLETE)
				fail_msg("rhead %zu prefix %zu not incomplete", i, k);
		}
		msg_init(&m);
		assert_int_equal(h1_parse_response(rheads[i], n, &m, &vec_lim, H1_M_GET), (int)n);
	}
}

/* Limits are enforced on incomplete heads, as soon as they are exceeded. */
static void test_limits_early(void **state)
{
	static char buf[8192];
	struct h1_limits lim = { .max_line = 20, .max_head = 60, .max_hdrs = 2 };
	struct h1_msg m;
	const char *line = "GET /0123456789 HTTP/1.1\r\n"; /* 24 + CRLF */

	(void)state;
	/* line of exactly max_line is fine, one more is 414 */
	msg_init(&m);
	assert_int_equal(h1_parse_request("GET /0123456 HTTP/1.1", 21, &m, &lim), H1_INVALID);
	assert_int_equal(m.status, 414);
	msg_init(&m);
	assert_int_equal(h1_parse_request("GET /012345 HTTP/1.1\r", 21, &m, &lim), H1_INCOMPLETE);
	msg_init(&m);
	assert_int_equal(h1_parse_request("GET /0123456789012345", 21, &m, &lim), H1_INVALID);
	assert_int_equal(m.status, 414);
	msg_init(&m);
	assert_int_equal(h1_parse_request(line, strlen(line), &m, &lim), H1_INVALID);
	assert_int_equal(m.status, 414);
	/* head: 431 once 60 bytes are buffered without the end of the head */
	memset(buf, 'a', sizeof(buf));
	memcpy(buf, "GET / HTTP/1.1\r\nHost: a\r\nX: ", 28);
	msg_init(&m);
	assert_int_equal(h1_parse_request(buf, 59, &m, &lim), H1_INCOMPLETE);
	msg_init(&m);
	assert_int_equal(h1_parse_request(buf, 60, &m, &lim), H1_INVALID);
	assert_int_equal(m.status, 431);
	msg_init(&m);
	assert_int_equal(h1_parse_request(buf, sizeof(buf), &m, &lim), H1_INVALID);
	assert_int_equal(m.status, 431);
	/* header count: max_hdrs, and the caller's array capacity */
	msg_init(&m);
	assert_int_equal(h1_parse_request("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n", 38, &m, &lim), H1_INVALID);
	assert_int_equal(m.status, 431);
	msg_init(&m);
	m.hdrs_cap = 1;
	assert_int_equal(h1_parse_request("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\n\r\n", 34, &m, &vec_lim), H1_INVALID);
	assert_int_equal(m.status, 431);
	/* NULL limits: defaults */
	msg_init(&m);
	assert_int_equal(h1_parse_request("GET / HTTP/1.1\r\nHost: a\r\n\r\n", 27, &m, NULL), 27);
	/* early garbage in place of a version is rejected before CRLF */
	msg_init(&m);
	assert_int_equal(h1_parse_request("GET / XTTP", 10, &m, &lim), H1_INVALID);
	assert_int_equal(m.status, 400);
}

static void test_chunk_byte_by_byte(void **state)
{
	const char *body = "1a;x=\"y\"\r\nabcdefghijklmnopqrstuvwxyz\r\n"
			   "2\r\n\r\n\r\n0\r\nT: v\r\n\r\n";
	const char *canon = "1a\r\nabcdefghijklmnopqrstuvwxyz\r\n"
			    "2\r\n\r\n\r\n0\r\nT: v\r\n\r\n";
	const char *next = "GET / HTTP/1.1\r\n";
	char buf[256], out[256];
	size_t bl = strlen(body), nl = strlen(next), on;

	(void)state;
	memcpy(buf, body, bl);
	memcpy(buf + bl, next, nl);
	/* whole, with the next message behind: stops exactly at the end,
	 * and the extension is gone; the same fed in any pieces */
	for (size_t step = 1; step <= bl + nl; step++) {
		assert_int_equal(chunk_feed_out(buf, bl + nl, step, out, &on), (long)bl);
		assert_int_equal(on, strlen(canon));
		assert_memory_equal(out, canon, on);
	}
}

/* Size lines: held until complete, re-encoded as SIZE CRLF when they are
 * anything else, refused when RFC 9112 7.1.1 does not allow them. */
static void test_chunk_lines(void **state)
{
	static const struct {
		const char *in, *out; /* out NULL: invalid */
	} v[] = {
		{ "5\r\nhello\r\n0\r\n\r\n", "5\r\nhello\r\n0\r\n\r\n" },
		{ "5;a\r\nhello\r\n0\r\n\r\n", "5\r\nhello\r\n0\r\n\r\n" },
		{ "0005\r\nhello\r\n000\r\n\r\n", "5\r\nhello\r\n0\r\n\r\n" },
		{ "5 ; a = b ;c=\"x\\\"y\" \t;d\r\nhello\r\n0;e=f\r\n\r\n",
		  "5\r\nhello\r\n0\r\n\r\n" },
		{ "A\r\n0123456789\r\n0\r\n\r\n", "A\r\n0123456789\r\n0\r\n\r\n" },
		{ "5;\r\nhello\r\n0\r\n\r\n", NULL },          /* bare ";" */
		{ "5;;a\r\nhello\r\n0\r\n\r\n", NULL },
		{ "5; \r\nhello\r\n0\r\n\r\n", NULL },
		{ "5;a=\r\nhello\r\n0\r\n\r\n", NULL },        /* "=" without a value */
		{ "5;@\r\nhello\r\n0\r\n\r\n", NULL },         /* not a token */
		{ "5;a b\r\nhello\r\n0\r\n\r\n", NULL },
		{ "5;a=b c\r\nhello\r\n0\r\n\r\n", NULL },
		{ "5;a=\"b\r\nhello\r\n0\r\n\r\n", NULL },     /* CR inside a quoted string */
		{ "5;a=\"b\"c\r\nhello\r\n0\r\n\r\n", NULL },
		{ "5;a \r\nhello\r\n0\r\n\r\n", NULL },         /* BWS before CRLF */
		{ "5\rhello\r\n0\r\n\r\n", NULL },              /* size ended by a bare CR */
		{ "5;a\rhello\r\n0\r\n\r\n", NULL },
		{ "0;\r\n\r\n", NULL },
	};
	char out[256];
	size_t on;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		size_t n = strlen(v[i].in);
		for (size_t step = 1; step <= n; step++) {
			long r = chunk_feed_out(v[i].in, n, step, out, &on);
			if (!v[i].out) {
				if (r != -1)
					fail_msg("accepted %zu: %s", i, v[i].in);
				continue;
			}
			assert_int_equal(r, (long)n);
			assert_int_equal(on, strlen(v[i].out));
			assert_memory_equal(out, v[i].out, on);
		}
	}
	/* an open size line is held: nothing of it may be forwarded yet */
	struct h1_chunk c;
	h1_chunk_init(&c);
	assert_int_equal(h1_chunk_scan(&c, "5\r\nhello\r\n12;ab", 15), 15);
	assert_int_equal(c.hold, 5);
	assert_false(c.rewrite);
	assert_int_equal(h1_chunk_scan(&c, "c\r", 2), 2);
	assert_int_equal(c.hold, 7);
	assert_int_equal(h1_chunk_scan(&c, "\nxy", 3), 1);
	assert_true(c.rewrite);
	assert_int_equal(c.hold, 8);
	assert_int_equal(h1_chunk_scan(&c, "xy", 2), 0); /* until the rewrite */
	assert_int_equal(h1_chunk_line(&c, out), 4);
	assert_memory_equal(out, "12\r\n", 4);
	/* the largest chunk size accepted, and one above */
	h1_chunk_init(&c);
	assert_int_equal(h1_chunk_scan(&c, "1000000000000000\r\n", 18), 18);
	assert_int_equal(c.remaining, (uint64_t)1 << 60);
	assert_false(c.rewrite);
	h1_chunk_init(&c);
	assert_int_equal(h1_chunk_scan(&c, "1000000000000001\r\n", 18), H1_INVALID);
	/* a size line longer than the bound is refused, whole or in pieces */
	char longl[4100];
	memset(longl, '0', sizeof(longl));
	for (size_t step = 1000; step <= sizeof(longl); step += 1000) {
		size_t off = 0;
		long r = 0;
		h1_chunk_init(&c);
		while (off < sizeof(longl) && (r = h1_chunk_scan(&c, longl + off, MIN(step, sizeof(longl) - off))) > 0)
			off += (size_t)r;
		assert_int_equal(r, H1_INVALID);
	}
}

static void test_list_helpers(void **state)
{
	struct h1_str v = { "  gzip , , Chunked,x ", 21 };
	struct h1_str n = { "Content-Length", 14 };

	(void)state;
	assert_true(h1_list_has(v, "chunked"));
	assert_true(h1_list_has(v, "gzip"));
	assert_true(h1_list_has(v, "x"));
	assert_false(h1_list_has(v, "chunk"));
	assert_false(h1_list_has(v, ""));
	/* h1_list_next: every non-empty element, trimmed, in order */
	struct h1_str rest = v, el;
	static const char *const want[] = { "gzip", "Chunked", "x" };
	for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
		assert_true(h1_list_next(&rest, &el));
		assert_int_equal(el.n, strlen(want[i]));
		assert_memory_equal(el.p, want[i], el.n);
	}
	assert_false(h1_list_next(&rest, &el));
	assert_true(h1_name_eq(n, "content-length"));
	assert_false(h1_name_eq(n, "content-lengt"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors_req),
		cmocka_unit_test(test_vectors_resp),
		cmocka_unit_test(test_vectors_chunk),
		cmocka_unit_test(test_request_fields),
		cmocka_unit_test(test_methods),
		cmocka_unit_test(test_connection_flags),
		cmocka_unit_test(test_upgrade_flags),
		cmocka_unit_test(test_hop_by_hop),
		cmocka_unit_test(test_content_length),
		cmocka_unit_test(test_response_body),
		cmocka_unit_test(test_incremental),
		cmocka_unit_test(test_limits_early),
		cmocka_unit_test(test_chunk_byte_by_byte),
		cmocka_unit_test(test_chunk_lines),
		cmocka_unit_test(test_list_helpers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
