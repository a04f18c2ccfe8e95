/*
 * test_proxyproto.c - the PROXY protocol parser: v1 TCP4/TCP6/UNKNOWN and
 * its refusals (too long, no CRLF, bad addresses and ports), v2 PROXY and
 * LOCAL over IPv4/IPv6/UNIX with TLVs and its refusals (signature,
 * version, command, family, truncated TLVs, a length too short for the
 * addresses), and the PROXYPROTO_INCOMPLETE contract: every strict prefix of a valid header
 * asks for more bytes. Inputs are exact-size heap copies so that ASan sees
 * any read past the end.
 */
#include "api.h"
#include "proxyproto.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <setjmp.h>
#include <stdarg.h>
#include <cmocka.h>

static int parse(const void *data, size_t n, struct sockaddr_storage *ss)
{
	char *copy = malloc(n ? n : 1);
	assert_non_null(copy);
	memcpy(copy, data, n);
	int r = proxyproto_parse(copy, n, ss);
	free(copy);
	return r;
}

/* Every strict prefix of a valid header answers PROXYPROTO_INCOMPLETE and leaves *ss alone. */
static void check_prefixes(const void *data, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		struct sockaddr_storage ss;
		memset(&ss, 0xa5, sizeof(ss));
		int r = parse(data, k, &ss);
		if (r != PROXYPROTO_INCOMPLETE)
			fprintf(stderr, "prefix of %zu bytes gave %d\n", k, r);
		assert_int_equal(r, PROXYPROTO_INCOMPLETE);
		assert_int_equal(((unsigned char *)&ss)[0], 0xa5);
	}
}

static void assert_v4(const struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
	char buf[INET_ADDRSTRLEN];

	assert_int_equal(ss->ss_family, AF_INET);
	assert_non_null(inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf)));
	assert_string_equal(buf, ip);
	assert_int_equal(ntohs(sin->sin_port), port);
}

static void assert_v6(const struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
	char buf[INET6_ADDRSTRLEN];

	assert_int_equal(ss->ss_family, AF_INET6);
	assert_non_null(inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf)));
	assert_string_equal(buf, ip);
	assert_int_equal(ntohs(sin6->sin6_port), port);
}

/* ---- version 1 ---------------------------------------------------------- */

static void test_v1_tcp4(void **state)
{
	static const char h[] = "PROXY TCP4 1.2.3.4 5.6.7.8 111 222\r\n";
	char buf[128];
	struct sockaddr_storage ss;

	assert_int_equal(parse(h, strlen(h), &ss), (int)strlen(h));
	assert_v4(&ss, "1.2.3.4", 111);
	check_prefixes(h, strlen(h));
	/* The request that follows is not consumed. */
	snprintf(buf, sizeof(buf), "%sGET / HTTP/1.1\r\n\r\n", h);
	assert_int_equal(parse(buf, strlen(buf), &ss), (int)strlen(h));
	/* Extreme ports. */
	assert_int_equal(parse("PROXY TCP4 255.255.255.255 0.0.0.0 65535 0\r\n", 44, &ss), 44);
	assert_v4(&ss, "255.255.255.255", 65535);
}

static void test_v1_tcp6(void **state)
{
	static const char h[] = "PROXY TCP6 2001:db8::1 ::1 40000 443\r\n";
	struct sockaddr_storage ss;

	assert_int_equal(parse(h, strlen(h), &ss), (int)strlen(h));
	assert_v6(&ss, "2001:db8::1", 40000);
	check_prefixes(h, strlen(h));
	/* The longest TCP6 header, and the spec's worst case (107 bytes). */
	static const char big6[] = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
		"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
	assert_int_equal(parse(big6, strlen(big6), &ss), (int)strlen(big6));
	assert_v6(&ss, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
	check_prefixes(big6, strlen(big6));
	static const char big[] = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
		"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
	assert_int_equal(strlen(big), PROXYPROTO_V1_MAX);
	assert_int_equal(parse(big, strlen(big), &ss), PROXYPROTO_V1_MAX);
	assert_int_equal(ss.ss_family, AF_UNSPEC);
	check_prefixes(big, strlen(big));
}

static void test_v1_unknown(void **state)
{
	struct sockaddr_storage ss;
	static const char h1[] = "PROXY UNKNOWN\r\n";
	static const char h2[] = "PROXY UNKNOWN ffff:f::1 ffff:f::2 1 2\r\n";

	assert_int_equal(parse(h1, strlen(h1), &ss), (int)strlen(h1));
	assert_int_equal(ss.ss_family, AF_UNSPEC);
	check_prefixes(h1, strlen(h1));
	/* spec 2.1: the rest of an UNKNOWN line is ignored. */
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_INET;
	assert_int_equal(parse(h2, strlen(h2), &ss), (int)strlen(h2));
	assert_int_equal(ss.ss_family, AF_UNSPEC);
	assert_int_equal(parse("PROXY UNKNOWNX\r\n", 16, &ss), -1);
}

static void test_v1_invalid(void **state)
{
	static const char *const bad[] = {
		"PROXY TCP4 1.2.3.4 5.6.7.8 111 222\n",          /* bare LF */
		"PROXY TCP4 1.2.3.4 5.6.7.8 111 222\rX",         /* CR not followed by LF */
		"PROXY TCP4 1.2.3.4 5.6.7.8 111 222 \r\n",       /* trailing space */
		"PROXY TCP4  1.2.3.4 5.6.7.8 111 222\r\n",       /* two spaces */
		"PROXY TCP4 1.2.3.4 5.6.7.8 111\r\n",            /* missing port */
		"PROXY TCP4 1.2.3.4 5.6.7.8 111 222 333\r\n",    /* extra field */
		"PROXY TCP4 1.2.3 5.6.7.8 111 222\r\n",          /* short address */
		"PROXY TCP4 1.2.3.256 5.6.7.8 111 222\r\n",      /* octet > 255 */
		"PROXY TCP4 01.2.3.4 5.6.7.8 111 222\r\n",       /* leading zero */
		"PROXY TCP4 1.2.3.4 5.6.7.x 111 222\r\n",        /* bad destination */
		"PROXY TCP4 ::1 ::1 111 222\r\n",                /* IPv6 under TCP4 */
		"PROXY TCP6 1.2.3.4 5.6.7.8 111 222\r\n",        /* IPv4 under TCP6 */
		"PROXY TCP6 fe80::1%eth0 ::1 111 222\r\n",       /* zone id */
		"PROXY TCP4 1.2.3.4 5.6.7.8 65536 222\r\n",      /* port too large */
		"PROXY TCP4 1.2.3.4 5.6.7.8 -1 222\r\n",         /* negative port */
		"PROXY TCP4 1.2.3.4 5.6.7.8 111 2x2\r\n",        /* bad port */
		"PROXY TCP4 1.2.3.4 5.6.7.8 0000111 222\r\n",    /* too many digits */
		"PROXY TCP5 1.2.3.4 5.6.7.8 111 222\r\n",        /* protocol */
		"PROXY tcp4 1.2.3.4 5.6.7.8 111 222\r\n",        /* case */
		"PROXY \r\n",
		"PROXY\r\n",
		"proxy TCP4 1.2.3.4 5.6.7.8 111 222\r\n",
		"PROXZ",
		"GET / HTTP/1.1\r\n\r\n",
		"\n",
		"PROXY TCP4 1.2.3.4\0005.6.7.8 111 222\r\n",
	};
	struct sockaddr_storage ss;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		size_t n = strlen(bad[i]);
		if (i == ARRAY_SIZE(bad) - 1)
			n = 36; /* the one with a NUL inside */
		int r = parse(bad[i], n, &ss);
		if (r != -1)
			fprintf(stderr, "accepted #%zu '%s': %d\n", i, bad[i], r);
		assert_int_equal(r, -1);
	}
}

static void test_v1_too_long(void **state)
{
	char buf[300];
	struct sockaddr_storage ss;

	/* No CRLF within 107 bytes: refused, not waited for. */
	memset(buf, 'a', sizeof(buf));
	memcpy(buf, "PROXY UNKNOWN ", 14);
	assert_int_equal(parse(buf, 105, &ss), PROXYPROTO_INCOMPLETE);
	assert_int_equal(parse(buf, 106, &ss), -1);
	assert_int_equal(parse(buf, sizeof(buf), &ss), -1);
	/* A CRLF at 107 bytes is fine, at 108 it is one too many. */
	memcpy(buf + 105, "\r\n", 2);
	assert_int_equal(parse(buf, 107, &ss), 107);
	memset(buf, 'a', sizeof(buf));
	memcpy(buf, "PROXY UNKNOWN ", 14);
	memcpy(buf + 106, "\r\n", 2);
	assert_int_equal(parse(buf, 108, &ss), -1);
	/* A missing CRLF is incomplete until the limit. */
	static const char h[] = "PROXY TCP4 1.2.3.4 5.6.7.8 111 222";
	assert_int_equal(parse(h, strlen(h), &ss), PROXYPROTO_INCOMPLETE);
	assert_int_equal(parse(h, 0, &ss), PROXYPROTO_INCOMPLETE);
}

/* ---- version 2 ---------------------------------------------------------- */

static const unsigned char sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};

/* Builds a v2 header: signature, ver_cmd, fam, then body (length = blen
 * unless len_override >= 0). Returns its size. */
static size_t v2(unsigned char *out, unsigned char ver_cmd, unsigned char fam,
		 const void *body, size_t blen, long len_override)
{
	size_t l = len_override >= 0 ? (size_t)len_override : blen;

	memcpy(out, sig, 12);
	out[12] = ver_cmd;
	out[13] = fam;
	out[14] = (unsigned char)(l >> 8);
	out[15] = (unsigned char)l;
	if (blen)
		memcpy(out + 16, body, blen);
	return 16 + blen;
}

static const unsigned char inet4[12] = {
	192, 0, 2, 1,  10, 0, 0, 1,  0x30, 0x39,  0x01, 0xbb   /* :12345 -> :443 */
};

static void test_v2_inet(void **state)
{
	unsigned char h[512], body[256];
	struct sockaddr_storage ss;
	size_t n;

	n = v2(h, 0x21, 0x11, inet4, sizeof(inet4), -1);
	assert_int_equal(n, 28);
	assert_int_equal(parse(h, n, &ss), 28);
	assert_v4(&ss, "192.0.2.1", 12345);
	check_prefixes(h, n);
	/* DGRAM addresses are addresses too. */
	n = v2(h, 0x21, 0x12, inet4, sizeof(inet4), -1);
	assert_int_equal(parse(h, n, &ss), 28);
	assert_v4(&ss, "192.0.2.1", 12345);

	/* IPv6 */
	memset(body, 0, 36);
	body[0] = 0x20; body[1] = 0x01; body[2] = 0x0d; body[3] = 0xb8; body[15] = 7;
	body[31] = 1;
	body[32] = 0xff; body[33] = 0xfe; body[34] = 0; body[35] = 80;
	n = v2(h, 0x21, 0x21, body, 36, -1);
	assert_int_equal(parse(h, n, &ss), 52);
	assert_v6(&ss, "2001:db8::7", 65534);
	check_prefixes(h, n);
}

static void test_v2_tlvs(void **state)
{
	unsigned char h[512], body[256];
	struct sockaddr_storage ss;
	size_t n;

	memcpy(body, inet4, 12);
	/* ALPN "h2", an empty NOOP, then AUTHORITY "example.com" */
	memcpy(body + 12, "\x01\x00\x02h2", 5);
	memcpy(body + 17, "\x04\x00\x00", 3);
	memcpy(body + 20, "\x02\x00\x0b" "example.com", 14);
	n = v2(h, 0x21, 0x11, body, 34, -1);
	assert_int_equal(parse(h, n, &ss), (int)n);
	assert_v4(&ss, "192.0.2.1", 12345);
	check_prefixes(h, n);

	/* A TLV whose length runs past the header. */
	memcpy(body + 12, "\x01\x00\x03h2", 5);
	n = v2(h, 0x21, 0x11, body, 17, -1);
	assert_int_equal(parse(h, n, &ss), -1);
	/* Fewer than 3 bytes left: a truncated TLV header. */
	n = v2(h, 0x21, 0x11, body, 14, -1);
	assert_int_equal(parse(h, n, &ss), -1);
	n = v2(h, 0x21, 0x11, body, 13, -1);
	assert_int_equal(parse(h, n, &ss), -1);
	/* The maximal TLV length with a length field that fits it. */
	static unsigned char big[16 + 12 + 3 + 65520];
	memset(big, 0, sizeof(big));
	memcpy(big + 16, inet4, 12);
	big[28] = 0xee;
	big[29] = 65520 >> 8;
	big[30] = 65520 & 0xff;
	v2(big, 0x21, 0x11, NULL, 0, 12 + 3 + 65520);
	assert_int_equal(parse(big, sizeof(big), &ss), (int)sizeof(big));
	assert_int_equal(parse(big, sizeof(big) - 1, &ss), PROXYPROTO_INCOMPLETE);
}

static void test_v2_local_unspec_unix(void **state)
{
	unsigned char h[512], body[256];
	struct sockaddr_storage ss;
	size_t n;

	/* LOCAL: the block is skipped whatever it holds, even the family. */
	n = v2(h, 0x20, 0x00, NULL, 0, -1);
	ss.ss_family = AF_INET;
	assert_int_equal(parse(h, n, &ss), 16);
	assert_int_equal(ss.ss_family, AF_UNSPEC);
	check_prefixes(h, n);
	n = v2(h, 0x20, 0xff, "\x01\x02\x03", 3, -1);
	assert_int_equal(parse(h, n, &ss), 19);
	assert_int_equal(ss.ss_family, AF_UNSPEC);
	n = v2(h, 0x20, 0x11, inet4, sizeof(inet4), -1);
	assert_int_equal(parse(h, n, &ss), 28);
	assert_int_equal(ss.ss_family, AF_UNSPEC);

	/* PROXY with UNSPEC: the real addresses stay. */
	n = v2(h, 0x21, 0x00, "xyz", 3, -1);
	ss.ss_family = AF_INET;
	assert_int_equal(parse(h, n, &ss), 19);
	assert_int_equal(ss.ss_family, AF_UNSPEC);

	/* AF_UNIX: 216 bytes of addresses, then TLVs. */
	memset(body, 0, sizeof(body));
	memcpy(body, "/run/src.sock", 13);
	memcpy(body + 108, "/run/dst.sock", 13);
	memcpy(body + 216, "\x05\x00\x01x", 4);
	n = v2(h, 0x21, 0x31, body, 220, -1);
	assert_int_equal(parse(h, n, &ss), 236);
	assert_int_equal(ss.ss_family, AF_UNSPEC);
	check_prefixes(h, n);
	/* too short for two sun_path */
	n = v2(h, 0x21, 0x31, body, 215, -1);
	assert_int_equal(parse(h, n, &ss), -1);
}

static void test_v2_invalid(void **state)
{
	unsigned char h[512];
	struct sockaddr_storage ss;
	size_t n;

	/* Signature: any wrong byte, as soon as it is seen. */
	for (size_t i = 0; i < 12; i++) {
		n = v2(h, 0x21, 0x11, inet4, sizeof(inet4), -1);
		h[i] ^= 0x40;
		if (i == 0)
			continue; /* no longer starts like either version */
		assert_int_equal(parse(h, i + 1, &ss), -1);
		assert_int_equal(parse(h, n, &ss), -1);
	}
	/* Version 1 (binary) or 3, and commands other than LOCAL/PROXY. */
	static const unsigned char bad_vc[] = { 0x11, 0x31, 0x01, 0xa1, 0x22, 0x2f };
	for (size_t i = 0; i < ARRAY_SIZE(bad_vc); i++) {
		n = v2(h, bad_vc[i], 0x11, inet4, sizeof(inet4), -1);
		assert_int_equal(parse(h, n, &ss), -1);
		assert_int_equal(parse(h, 13, &ss), -1); /* refused at once */
	}
	/* Families and transports the spec does not define. */
	static const unsigned char bad_fam[] = { 0x01, 0x10, 0x13, 0x41, 0x20, 0x03, 0xf1 };
	for (size_t i = 0; i < ARRAY_SIZE(bad_fam); i++) {
		n = v2(h, 0x21, bad_fam[i], inet4, sizeof(inet4), -1);
		assert_int_equal(parse(h, n, &ss), -1);
		assert_int_equal(parse(h, 14, &ss), -1);
	}
	/* A length too short for the addresses of the family. */
	n = v2(h, 0x21, 0x11, inet4, 11, -1);
	assert_int_equal(parse(h, n, &ss), -1);
	assert_int_equal(parse(h, 16, &ss), -1); /* known from the length alone */
	n = v2(h, 0x21, 0x21, inet4, 12, -1);
	assert_int_equal(parse(h, n, &ss), -1);
	/* Truncated: a length that promises more than is there is incomplete
	 * (the caller's buffer limit turns it into a close). */
	n = v2(h, 0x21, 0x11, inet4, sizeof(inet4), 65535);
	assert_int_equal(parse(h, n, &ss), PROXYPROTO_INCOMPLETE);
	n = v2(h, 0x21, 0x11, inet4, sizeof(inet4), 13);
	assert_int_equal(parse(h, n, &ss), PROXYPROTO_INCOMPLETE);
	/* ...and a length shorter than the bytes only consumes the header. */
	n = v2(h, 0x21, 0x11, inet4, sizeof(inet4), -1);
	memcpy(h + n, "GET", 3);
	assert_int_equal(parse(h, n + 3, &ss), 28);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v1_tcp4),
		cmocka_unit_test(test_v1_tcp6),
		cmocka_unit_test(test_v1_unknown),
		cmocka_unit_test(test_v1_invalid),
		cmocka_unit_test(test_v1_too_long),
		cmocka_unit_test(test_v2_inet),
		cmocka_unit_test(test_v2_tlvs),
		cmocka_unit_test(test_v2_local_unspec_unix),
		cmocka_unit_test(test_v2_invalid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
