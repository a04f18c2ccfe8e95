/*
 * test_h2_head.c - the header conversions around nghttp2 (src/h2_head.c):
 * an HTTP/2 header list into the HTTP/1.1 head the exchange reads
 * (:authority as Host, cookie crumbs joined, RFC 9113 8.2.3; the framing
 * of a body; what makes a request malformed, 8.2.2 and 8.3), and a
 * response head back into a header list (lowercase names, no hop-by-hop
 * field).
 */
#include "api.h"
#include "h2_head.h"

#include <setjmp.h>
#include <stdarg.h>
#include <cmocka.h>

static char out[4096], aux[4096];

struct f {
	const char *n, *v;
};

/* The head of the fields, or the error code as a string ("E-1"...). */
static const char *build(const struct f *fs, bool body, uint64_t max_list)
{
	static char res[4200];
	struct h2h_req r;
	h2h_req_init(&r, out, sizeof(out), aux, sizeof(aux), max_list);
	for (const struct f *f = fs; f->n; f++) {
		int e = h2h_req_field(&r, (const uint8_t *)f->n, strlen(f->n), (const uint8_t *)f->v,
				      strlen(f->v));
		if (e) {
			snprintf(res, sizeof(res), "E%d", e);
			return res;
		}
	}
	int n = h2h_req_end(&r, body);
	if (n < 0) {
		snprintf(res, sizeof(res), "E%d", n);
		return res;
	}
	snprintf(res, sizeof(res), "%.*s", n, out);
	return res;
}

#define BASE { ":method", "GET" }, { ":scheme", "https" }, { ":path", "/p?q=1" }, \
	{ ":authority", "example.com" }

static void test_get_authority_is_host(void **state)
{
	(void)state;
	const struct f fs[] = { BASE, { "user-agent", "t" }, { "host", "ignored" }, { NULL, NULL } };
	assert_string_equal(build(fs, false, 8192),
			    "GET /p?q=1 HTTP/1.1\r\nhost: example.com\r\nuser-agent: t\r\n\r\n");
}

static void test_cookie_crumbs_joined(void **state)
{
	(void)state;
	const struct f fs[] = { BASE, { "cookie", "a=1" }, { "accept", "*/*" }, { "cookie", "SRV=x" },
				{ "cookie", "b=2" }, { NULL, NULL } };
	assert_string_equal(build(fs, false, 8192),
			    "GET /p?q=1 HTTP/1.1\r\nhost: example.com\r\naccept: */*\r\n"
			    "cookie: a=1; SRV=x; b=2\r\n\r\n");
}

static void test_body_framing(void **state)
{
	(void)state;
	const struct f post[] = { { ":method", "POST" }, { ":scheme", "https" }, { ":path", "/u" },
				  { ":authority", "h" }, { NULL, NULL } };
	assert_string_equal(build(post, true, 8192),
			    "POST /u HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n");
	const struct f cl[] = { { ":method", "POST" }, { ":scheme", "https" }, { ":path", "/u" },
				{ ":authority", "h" }, { "content-length", "5" }, { NULL, NULL } };
	assert_string_equal(build(cl, true, 8192),
			    "POST /u HTTP/1.1\r\nhost: h\r\ncontent-length: 5\r\n\r\n");
}

static void test_malformed(void **state)
{
	(void)state;
	static const struct f cases[][6] = {
		{ BASE, { "connection", "close" }, { NULL, NULL } },
		{ BASE, { "transfer-encoding", "chunked" }, { NULL, NULL } },
		{ BASE, { "te", "gzip" }, { NULL, NULL } },
		{ BASE, { "x", "a\r\nb: c" }, { NULL, NULL } },
		{ BASE, { "X-Upper", "v" }, { NULL, NULL } },
		{ { ":method", "GET" }, { "x", "y" }, { ":path", "/" }, { NULL, NULL } },
		{ { ":method", "GET" }, { ":scheme", "https" }, { ":path", "p" }, { NULL, NULL } },
		{ BASE, { ":status", "200" }, { NULL, NULL } },
		{ BASE, { "keep-alive", "5" }, { NULL, NULL } },
		{ BASE, { "proxy-connection", "close" }, { NULL, NULL } },
		{ BASE, { "upgrade", "h2c" }, { NULL, NULL } },
		/* CR or LF anywhere in a value: within its 8-byte words, or in
		 * the bytes after the last whole one */
		{ BASE, { "x-long", "0123456789abcdef\n0123456789" }, { NULL, NULL } },
		{ BASE, { "x-long", "01234567\r" }, { NULL, NULL } },
		{ BASE, { "x-long", "0123456789abcd\rxyz" }, { NULL, NULL } },
		{ BASE, { "x-long", "\n1234567" }, { NULL, NULL } },
		{ BASE, { "x-name:y", "v" }, { NULL, NULL } },
		{ BASE, { "x\x7fname", "v" }, { NULL, NULL } },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		assert_string_equal(build(cases[i], false, 8192), "E-2");
	const struct f clean[] = { BASE, { "x-long", "0123456789abcdef~!\t0123456789" }, { NULL, NULL } };
	assert_string_equal(build(clean, false, 8192),
			    "GET /p?q=1 HTTP/1.1\r\nhost: example.com\r\n"
			    "x-long: 0123456789abcdef~!\t0123456789\r\n\r\n");
	/* te: trailers is allowed, and stays here */
	const struct f te[] = { BASE, { "te", "trailers" }, { NULL, NULL } };
	assert_string_equal(build(te, false, 8192),
			    "GET /p?q=1 HTTP/1.1\r\nhost: example.com\r\n\r\n");
}

static void test_limits_and_connect(void **state)
{
	(void)state;
	const struct f fs[] = { BASE, { "x-big", "0123456789012345678901234567890123456789" },
				{ NULL, NULL } };
	assert_string_equal(build(fs, false, 150), "E-1"); /* 32 a field counts too */
	const struct f co[] = { { ":method", "CONNECT" }, { ":authority", "h:443" }, { NULL, NULL } };
	assert_string_equal(build(co, false, 8192), "E-3");
}

static void test_response_fields(void **state)
{
	(void)state;
	const char *head = "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nConnection: close, X-Hop\r\n"
			   "X-Hop: 1\r\nKeep-Alive: timeout=5\r\nSet-Cookie: A=b\r\n\r\n";
	struct h1_hdr hdrs[16];
	struct h1_msg m;
	struct h1_limits lim = { 4096, 4096, 16 };
	memset(&m, 0, sizeof(m));
	m.hdrs = hdrs;
	m.hdrs_cap = 16;
	assert_true(h1_parse_response(head, strlen(head), &m, &lim, H1_M_GET) > 0);
	nghttp2_nv nv[16];
	char scratch[256];
	int n = h2h_rsp_nv(&m, nv, 16, scratch, sizeof(scratch));
	assert_int_equal(n, 3);
	assert_memory_equal(nv[0].name, ":status", 7);
	assert_memory_equal(nv[0].value, "404", 3);
	assert_int_equal(nv[1].namelen, 14);
	assert_memory_equal(nv[1].name, "content-length", 14);
	assert_memory_equal(nv[2].name, "set-cookie", 10);
	assert_memory_equal(nv[2].value, "A=b", 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get_authority_is_host),
		cmocka_unit_test(test_cookie_crumbs_joined),
		cmocka_unit_test(test_body_framing),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_limits_and_connect),
		cmocka_unit_test(test_response_fields),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
