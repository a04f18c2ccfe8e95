/*
 * test_cidr.c - network lists (parse errors with their messages, IPv4 and
 * IPv6 matching at prefix boundaries, IPv4-mapped IPv6 peers against IPv4
 * networks) and the X-Forwarded-For walk (rightmost untrusted address,
 * all trusted => leftmost, malformed entries, several header lines).
 */
#include "api.h"
#include "cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <setjmp.h>
#include <stdarg.h>
#include <cmocka.h>

static struct sockaddr_storage addr(const char *ip)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(1234);
		assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(1234);
		assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
	}
	return ss;
}

static bool match(const struct cidr_list *l, const char *ip)
{
	struct sockaddr_storage ss = addr(ip);
	return cidr_match(l, &ss);
}

static struct cidr_list *list(const char *const *nets, size_t n)
{
	struct cidr_list *l = NULL;
	char err[128];

	for (size_t i = 0; i < n; i++) {
		int rc = cidr_list_add(&l, nets[i], err, sizeof(err));
		if (rc != 0)
			fprintf(stderr, "'%s': %s\n", nets[i], err);
		assert_int_equal(rc, 0);
	}
	return l;
}

static void test_parse(void **state)
{
	static const struct { const char *text, *err; } bad[] = {
		{ "10.0.0.0/33", "prefix length 33 is larger than 32" },
		{ "::/129", "prefix length 129 is larger than 128" },
		{ "10.0.0.0/", "invalid prefix length ''" },
		{ "10.0.0.0/-1", "invalid prefix length '-1'" },
		{ "10.0.0.0/8a", "invalid prefix length '8a'" },
		{ "10.0.0.0/0008", "invalid prefix length '0008'" },
		{ "10.0.0.0/8/8", "invalid prefix length '8/8'" },
		{ "10.0.0/8", "'10.0.0' is not an IPv4 or IPv6 address" },
		{ "300.0.0.0/8", "'300.0.0.0' is not an IPv4 or IPv6 address" },
		{ "010.0.0.0/8", "'010.0.0.0' is not an IPv4 or IPv6 address" },
		{ "example.com", "'example.com' is not an IPv4 or IPv6 address" },
		{ "[::1]", "'[::1]' is not an IPv4 or IPv6 address" },
		{ "fe80::1%eth0/64", "'fe80::1%eth0' is not an IPv4 or IPv6 address" },
		{ "/8", "'' is not an IPv4 or IPv6 address" },
		{ "", "'' is not an IPv4 or IPv6 address" },
		{ " 10.0.0.0/8", "' 10.0.0.0' is not an IPv4 or IPv6 address" },
	};
	struct cidr_list *l = NULL;
	char err[128];

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		err[0] = '\0';
		assert_int_equal(cidr_list_add(&l, bad[i].text, err, sizeof(err)), -1);
		assert_string_equal(err, bad[i].err);
		assert_null(l);
	}
	static const char *const good[] = {
		"10.0.0.0/8", "192.168.1.1", "0.0.0.0/0", "::1", "2001:db8::/32",
		"::/0", "::ffff:10.0.0.0/104", "1.2.3.4/32", "fe80::/10",
	};
	l = list(good, ARRAY_SIZE(good));
	assert_int_equal(cidr_list_len(l), ARRAY_SIZE(good));
	cidr_list_free(l);
	assert_int_equal(cidr_list_len(NULL), 0);
	cidr_list_free(NULL);
}

static void test_match_v4(void **state)
{
	static const char *const nets[] = { "10.0.0.0/8", "192.168.1.7", "172.16.0.0/12",
					    "100.64.1.200/26" };
	struct cidr_list *l = list(nets, ARRAY_SIZE(nets));

	assert_true(match(l, "10.0.0.0"));
	assert_true(match(l, "10.255.255.255"));
	assert_false(match(l, "11.0.0.0"));
	assert_false(match(l, "9.255.255.255"));
	assert_true(match(l, "192.168.1.7"));
	assert_false(match(l, "192.168.1.8"));
	assert_true(match(l, "172.31.255.255"));
	assert_false(match(l, "172.32.0.0"));
	/* host bits are ignored: 100.64.1.200/26 is 100.64.1.192/26 */
	assert_true(match(l, "100.64.1.192"));
	assert_true(match(l, "100.64.1.255"));
	assert_false(match(l, "100.64.1.191"));
	/* IPv6 peers only match IPv4 networks when IPv4-mapped */
	assert_true(match(l, "::ffff:10.1.2.3"));
	assert_false(match(l, "::ffff:11.1.2.3"));
	assert_false(match(l, "::10.1.2.3"));
	assert_false(match(l, "2001:db8::1"));
	/* other families and the empty list never match */
	struct sockaddr_storage un = { .ss_family = AF_UNIX };
	assert_false(cidr_match(l, &un));
	assert_false(match(NULL, "10.0.0.1"));
	cidr_list_free(l);

	static const char *const all[] = { "0.0.0.0/0" };
	l = list(all, 1);
	assert_true(match(l, "1.2.3.4"));
	assert_true(match(l, "::ffff:1.2.3.4"));
	assert_false(match(l, "::1"));
	cidr_list_free(l);
}

static void test_match_v6(void **state)
{
	static const char *const nets[] = { "2001:db8::/32", "::1", "fe80::/10",
					    "2001:db8:1:2:3::/77" };
	struct cidr_list *l = list(nets, ARRAY_SIZE(nets));

	assert_true(match(l, "2001:db8::"));
	assert_true(match(l, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"));
	assert_false(match(l, "2001:db9::"));
	assert_true(match(l, "::1"));
	assert_false(match(l, "::2"));
	assert_true(match(l, "febf::1"));
	assert_false(match(l, "fec0::1"));
	assert_false(match(l, "127.0.0.1"));
	cidr_list_free(l);

	static const char *const odd[] = { "2001:db9:1:2:3::/77" };
	l = list(odd, 1);
	/* /77 fixes the top 13 bits of the fifth group: 0x0000..0x0007 */
	assert_true(match(l, "2001:db9:1:2:3::"));
	assert_true(match(l, "2001:db9:1:2::"));
	assert_true(match(l, "2001:db9:1:2:7:ffff:ffff:ffff"));
	assert_false(match(l, "2001:db9:1:2:8::"));      /* bit 76 */
	assert_false(match(l, "2001:db9:1:2:8000::"));   /* bit 64 */
	assert_false(match(l, "2001:db9:1:3:3::"));      /* bit 63 */
	cidr_list_free(l);

	/* ::/0 does not trust every IPv4 client; ::ffff:0:0/96 does. */
	static const char *const all6[] = { "::/0" };
	l = list(all6, 1);
	assert_true(match(l, "2001:db8::1"));
	assert_false(match(l, "10.0.0.1"));
	assert_false(match(l, "::ffff:10.0.0.1"));
	cidr_list_free(l);
	static const char *const mapped[] = { "::ffff:0:0/96", "::ffff:192.168.0.0/112" };
	l = list(mapped, 2);
	assert_true(match(l, "10.0.0.1"));
	assert_true(match(l, "::ffff:10.0.0.1"));
	assert_false(match(l, "::1"));
	cidr_list_free(l);
	static const char *const m2[] = { "::ffff:192.168.0.0/112" };
	l = list(m2, 1);
	assert_true(match(l, "192.168.4.5"));
	assert_false(match(l, "192.169.4.5"));
	cidr_list_free(l);
}

/* ---- X-Forwarded-For ---------------------------------------------------- */

/* Runs cidr_xff_client over the lines and returns the answer as text, or
 * "-" when it believes nothing. */
static const char *xff(const struct cidr_list *trusted, const char *const *lines, int n)
{
	static char text[INET6_ADDRSTRLEN];
	/* each line between two other fields, which the walk must skip */
	struct h1_hdr h[2 * 64 + 1];
	uint32_t nh = 0;
	struct sockaddr_storage out;

	assert_true(n <= 64);
	memset(h, 0, sizeof(h));
	h[nh++].value = (struct h1_str){ "9.9.9.9", 7 };
	for (int i = 0; i < n; i++) {
		h[nh].value = (struct h1_str){ lines[i], strlen(lines[i]) };
		h[nh++].flags = H1_HF_XFF;
		h[nh++].value = (struct h1_str){ "9.9.9.9", 7 };
	}
	memset(&out, 0xa5, sizeof(out));
	if (!cidr_xff_client(h, nh, trusted, &out))
		return "-";
	if (out.ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)&out;
		assert_int_equal(s4->sin_port, 0);
		inet_ntop(AF_INET, &s4->sin_addr, text, sizeof(text));
	} else {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&out;
		assert_int_equal(out.ss_family, AF_INET6);
		assert_int_equal(s6->sin6_port, 0);
		inet_ntop(AF_INET6, &s6->sin6_addr, text, sizeof(text));
	}
	return text;
}

#define XFF(t, ...) xff((t), (const char *const[]){ __VA_ARGS__ }, \
			(int)ARRAY_SIZE(((const char *const[]){ __VA_ARGS__ })))

static void test_xff(void **state)
{
	static const char *const nets[] = { "10.0.0.0/8", "2001:db8::/32" };
	struct cidr_list *t = list(nets, ARRAY_SIZE(nets));

	assert_string_equal(XFF(t, "1.1.1.1, 10.0.0.1"), "1.1.1.1");
	assert_string_equal(XFF(t, "1.1.1.1"), "1.1.1.1");
	assert_string_equal(XFF(t, "6.6.6.6, 1.1.1.1, 10.0.0.2, 10.0.0.1"), "1.1.1.1");
	/* whatever is left of the answer is the client's word: not checked */
	assert_string_equal(XFF(t, "garbage, 1.1.1.1, 10.0.0.1"), "1.1.1.1");
	/* every address trusted: the leftmost */
	assert_string_equal(XFF(t, "10.0.0.3, 10.0.0.2, 10.0.0.1"), "10.0.0.3");
	assert_string_equal(XFF(t, "10.9.9.9"), "10.9.9.9");
	/* IPv6, and IPv4-mapped IPv6 reported as IPv4 */
	assert_string_equal(XFF(t, "2001:db9::5, 2001:db8::1"), "2001:db9::5");
	assert_string_equal(XFF(t, "::ffff:1.2.3.4, 10.0.0.1"), "1.2.3.4");
	assert_string_equal(XFF(t, "1.2.3.4, ::ffff:10.0.0.1"), "1.2.3.4");
	/* spaces, tabs and empty elements (RFC 9110 5.6.1) */
	assert_string_equal(XFF(t, "  1.1.1.1\t,\t10.0.0.1  "), "1.1.1.1");
	assert_string_equal(XFF(t, "1.1.1.1,,10.0.0.1,"), "1.1.1.1");
	assert_string_equal(XFF(t, ",1.1.1.1"), "1.1.1.1");
	/* several header lines form one list, in order */
	assert_string_equal(XFF(t, "5.5.5.5, 1.1.1.1", "10.0.0.2", "10.0.0.1"), "1.1.1.1");
	assert_string_equal(XFF(t, "1.1.1.1", "2.2.2.2, 10.0.0.1"), "2.2.2.2");
	assert_string_equal(XFF(t, "10.0.0.5", "", "10.0.0.1"), "10.0.0.5");
	assert_string_equal(XFF(t, "1.1.1.1", "garbage"), "-");
	/* nothing to believe */
	assert_string_equal(XFF(t, ""), "-");
	assert_string_equal(XFF(t, " , ,"), "-");
	assert_int_equal(cidr_xff_client(NULL, 0, t, &(struct sockaddr_storage){ 0 }), 0);
	/* a client's own lines cannot push out the one the trusted proxy
	 * appended below them, however many there are (issue 9 item 2) */
	{
		const char *many[64];
		for (int i = 0; i < 63; i++)
			many[i] = "6.6.6.6";
		many[63] = "1.1.1.1, 10.0.0.1";
		for (int n = 1; n <= 64; n++)
			assert_string_equal(xff(t, many + 64 - n, n), "1.1.1.1");
		assert_string_equal(xff(t, many, 63), "6.6.6.6");
	}
	/* malformed entries met before the answer */
	static const char *const bad[] = {
		"1.1.1.1, unknown", "1.1.1.1:80", "[::1]", "[2001:db9::1]:443", "1.1.1.1 2.2.2.2",
		"1.1.1", "01.1.1.1", "fe80::1%eth0", "1.1.1.1;", "\"1.1.1.1\"", "_hidden",
		"1.1.1.1, 10.0.0.1 x", "1.1.1.1\r\n", "1234:5678:9abc:def0:1234:5678:9abc:def0:1",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		const char *r = XFF(t, bad[i]);
		if (strcmp(r, "-"))
			fprintf(stderr, "believed '%s': %s\n", bad[i], r);
		assert_string_equal(r, "-");
	}
	/* no trusted set: the rightmost address */
	assert_string_equal(XFF(NULL, "1.1.1.1, 10.0.0.1"), "10.0.0.1");
	cidr_list_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_match_v4),
		cmocka_unit_test(test_match_v6),
		cmocka_unit_test(test_xff),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
