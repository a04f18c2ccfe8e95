/*
 * test_cookie.c - the byte-level helpers of persistence (src/cookie.c):
 * Cookie lookup, removal and rewriting, Set-Cookie parsing and building,
 * query and path parameters, base64url, JWT splitting, claims and HS256.
 * Each helper is also fed hostile input (empty, only separators,
 * unbalanced quotes, NUL bytes, non-ASCII, very long), where the only
 * acceptable answers are a miss or a rejection.
 */
#include "api.h"
#include "cookie.h"

#include <stdarg.h>
#include <setjmp.h>
#include <cmocka.h>
#include <sodium.h>

#define S(lit) cookie_str(lit)

/* A range of known length (may hold NUL bytes). */
static struct h1_str B(const char *p, size_t n)
{
	struct h1_str r = { p, n };
	return r;
}

static void assert_str(struct h1_str s, const char *want)
{
	size_t n = strlen(want);

	if (s.n != n || (n && memcmp(s.p, want, n))) {
		print_error("got \"%.*s\" (%zu), want \"%s\"\n", (int)s.n, s.p ? s.p : "",
			    s.n, want);
		fail();
	}
}

static void assert_inside(struct h1_str s, struct h1_str in)
{
	assert_true(s.p >= in.p && s.p + s.n <= in.p + in.n);
}

/* ---- Cookie ------------------------------------------------------------- */

static void test_find(void **state)
{
	struct h1_str v, h = S("a=1; BOLLARD=xyz; c=3");

	(void)state;
	assert_int_equal(cookie_find(h, S("BOLLARD"), &v), 1);
	assert_str(v, "xyz");
	assert_inside(v, h);
	assert_int_equal(cookie_find(h, S("a"), &v), 1);
	assert_str(v, "1");
	assert_int_equal(cookie_find(h, S("c"), &v), 1);
	assert_str(v, "3");
	/* exact and case-sensitive */
	assert_int_equal(cookie_find(h, S("bollard"), &v), 0);
	assert_int_equal(cookie_find(h, S("BOLLAR"), &v), 0);
	assert_int_equal(cookie_find(h, S("BOLLARDX"), &v), 0);
	assert_int_equal(cookie_find(h, S(""), &v), 0);
	/* first occurrence wins */
	assert_int_equal(cookie_find(S("x=1; x=2"), S("x"), &v), 1);
	assert_str(v, "1");
	/* lenient separators, as browsers send them */
	assert_int_equal(cookie_find(S("a=1;b=2"), S("b"), &v), 1);
	assert_str(v, "2");
	assert_int_equal(cookie_find(S(" ;; a = 1 ;\tb\t=\t2 ; "), S("b"), &v), 1);
	assert_str(v, "2");
	assert_int_equal(cookie_find(S("a=1;;;b=2"), S("b"), &v), 1);
	/* empty value */
	assert_int_equal(cookie_find(S("a=; b=2"), S("a"), &v), 1);
	assert_str(v, "");
	/* value containing '=' */
	assert_int_equal(cookie_find(S("t=a=b=c"), S("t"), &v), 1);
	assert_str(v, "a=b=c");
	/* a name does not match inside a value or a pair without '=' */
	assert_int_equal(cookie_find(S("a=x; b"), S("b"), &v), 0);
	assert_int_equal(cookie_find(S("a=b=1"), S("b"), &v), 0);
}

static void test_find_quotes(void **state)
{
	struct h1_str v;

	(void)state;
	assert_int_equal(cookie_find(S("s=\"abc\""), S("s"), &v), 1);
	assert_str(v, "abc");
	assert_int_equal(cookie_find(S("s=\"\""), S("s"), &v), 1);
	assert_str(v, "");
	/* unbalanced: left as is */
	assert_int_equal(cookie_find(S("s=\"abc"), S("s"), &v), 1);
	assert_str(v, "\"abc");
	assert_int_equal(cookie_find(S("s=\""), S("s"), &v), 1);
	assert_str(v, "\"");
	assert_int_equal(cookie_find(S("s=abc\"; t=1"), S("t"), &v), 1);
	assert_str(v, "1");
}

static void test_find_hostile(void **state)
{
	static const char nul[] = "a=1\0; b=2; c\0=3";
	struct h1_str v, none = { NULL, 0 };
	char big[70000];

	(void)state;
	assert_int_equal(cookie_find(S(""), S("a"), &v), 0);
	assert_int_equal(cookie_find(none, S("a"), &v), 0);
	assert_int_equal(cookie_find(S(";;;; ; ;"), S("a"), &v), 0);
	assert_int_equal(cookie_find(S("="), S("a"), &v), 0);
	assert_int_equal(cookie_find(S("=;=;="), S("a"), &v), 0);
	assert_int_equal(cookie_find(S("   "), S("a"), &v), 0);
	/* NUL bytes are ordinary bytes: never a terminator */
	assert_int_equal(cookie_find(B(nul, sizeof(nul) - 1), S("b"), &v), 1);
	assert_str(v, "2");
	assert_int_equal(cookie_find(B(nul, sizeof(nul) - 1), S("c"), &v), 0);
	assert_int_equal(cookie_find(B(nul, sizeof(nul) - 1), S("a"), &v), 1);
	assert_int_equal(v.n, 2); /* "1\0" */
	/* non-ASCII */
	assert_int_equal(cookie_find(S("\xc3\xa9t\xc3\xa9=\xff\xfe; k=v"), S("\xc3\xa9t\xc3\xa9"), &v), 1);
	assert_str(v, "\xff\xfe");
	/* very long: the cookie at the end of 70 KB of separators and pairs */
	memset(big, ';', sizeof(big));
	for (size_t i = 0; i + 6 <= sizeof(big) - 4; i += 7)
		memcpy(big + i, "x=yy; ", 6);
	memcpy(big + sizeof(big) - 4, "Z=9;", 4);
	assert_int_equal(cookie_find(B(big, sizeof(big)), S("Z"), &v), 1);
	assert_str(v, "9");
	assert_int_equal(cookie_find(B(big, sizeof(big)), S("Q"), &v), 0);
}

static void check_remove(const char *hdr, const char *name, const char *want)
{
	char out[256];
	long n = cookie_remove(S(hdr), S(name), out, sizeof(out));
	struct h1_str v;

	assert_true(n >= 0);
	assert_str(B(out, (size_t)n), want);
	assert_int_equal(cookie_find(B(out, (size_t)n), S(name), &v), 0);
}

static void test_remove(void **state)
{
	(void)state;
	check_remove("a=1; BOLLARD=xyz; c=3", "BOLLARD", "a=1; c=3");
	check_remove("BOLLARD=xyz", "BOLLARD", "");
	check_remove("BOLLARD=xyz; a=1", "BOLLARD", "a=1");
	check_remove("a=1; BOLLARD=xyz", "BOLLARD", "a=1");
	/* every occurrence goes */
	check_remove("BOLLARD=1; a=1; BOLLARD=2", "BOLLARD", "a=1");
	/* separators normalized, pairs kept byte for byte */
	check_remove("a=1;b=2;;  BOLLARD=x ;c = 3", "BOLLARD", "a=1; b=2; c = 3");
	check_remove("a=1;b=2", "zz", "a=1; b=2");
	check_remove("a; BOLLARD=1; \"q\"", "BOLLARD", "a; \"q\"");
	check_remove("", "BOLLARD", "");
	check_remove(" ; ;; ", "BOLLARD", "");
	check_remove("BOLLARDX=1; XBOLLARD=2", "BOLLARD", "BOLLARDX=1; XBOLLARD=2");
}

static void test_remove_room(void **state)
{
	char out[64];
	const char *h = "a=1;b=2;c=3";

	(void)state;
	/* normalizing grows "a=1;b=2;c=3" (11) to "a=1; b=2; c=3" (13) */
	assert_int_equal(cookie_remove(S(h), S("x"), out, 13), 13);
	assert_int_equal(cookie_remove(S(h), S("x"), out, 12), -1);
	assert_int_equal(cookie_remove(S(h), S("x"), out, 0), -1);
	assert_int_equal(cookie_remove(S("x=1"), S("x"), NULL, 0), 0);
	/* the documented bound: 2 * hdr.n is always enough */
	assert_true(cookie_remove(S(";a;b;c;d"), S("x"), out, 16) >= 0);
}

static void test_replace(void **state)
{
	char out[128];
	long n;

	(void)state;
	n = cookie_replace(S("a=1; J=s1~abc; c=3"), S("J"), S("abc"), out, sizeof(out));
	assert_str(B(out, (size_t)n), "a=1; J=abc; c=3");
	/* quotes kept around the new value */
	n = cookie_replace(S("J=\"s1~abc\";c=3"), S("J"), S("abc"), out, sizeof(out));
	assert_str(B(out, (size_t)n), "J=\"abc\"; c=3");
	/* only the first occurrence */
	n = cookie_replace(S("J=1; J=2"), S("J"), S("x"), out, sizeof(out));
	assert_str(B(out, (size_t)n), "J=x; J=2");
	/* absent: unchanged but for separators */
	n = cookie_replace(S("a=1;b=2"), S("J"), S("x"), out, sizeof(out));
	assert_str(B(out, (size_t)n), "a=1; b=2");
	n = cookie_replace(S("J = old"), S("J"), S(""), out, sizeof(out));
	assert_str(B(out, (size_t)n), "J=");
	/* a value that would break the header */
	assert_int_equal(cookie_replace(S("J=1"), S("J"), S("a;b"), out, sizeof(out)), -1);
	assert_int_equal(cookie_replace(S("J=1"), S("J"), S("a\r\nX: y"), out, sizeof(out)), -1);
	assert_int_equal(cookie_replace(S("J=1"), S("J"), S("a b"), out, sizeof(out)), -1);
	assert_int_equal(cookie_replace(S("J=1; a=2"), S("J"), S("v"), out, 5), -1);
}

static void test_prefix_split(void **state)
{
	struct h1_str p, r, v = S("app1~ABCDEF");

	(void)state;
	assert_int_equal(cookie_prefix_split(v, '~', &p, &r), 1);
	assert_str(p, "app1");
	assert_str(r, "ABCDEF");
	assert_inside(p, v);
	assert_inside(r, v);
	assert_int_equal(cookie_prefix_split(S("a~b~c"), '~', &p, &r), 1);
	assert_str(p, "a");
	assert_str(r, "b~c");
	assert_int_equal(cookie_prefix_split(S("~x"), '~', &p, &r), 1);
	assert_str(p, "");
	assert_str(r, "x");
	assert_int_equal(cookie_prefix_split(S("x~"), '~', &p, &r), 1);
	assert_str(p, "x");
	assert_str(r, "");
	assert_int_equal(cookie_prefix_split(S("plain"), '~', &p, &r), 0);
	assert_str(p, "");
	assert_str(r, "plain");
	assert_int_equal(cookie_prefix_split(S(""), '~', &p, &r), 0);
	assert_str(r, "");
}

/* ---- Set-Cookie ------------------------------------------------------------ */

static void test_set_parse(void **state)
{
	struct cookie_set sc;
	struct h1_str h = S("JSESSIONID=abc123; Path=/; HttpOnly");

	(void)state;
	assert_int_equal(cookie_set_parse(h, &sc), 0);
	assert_str(sc.name, "JSESSIONID");
	assert_str(sc.value, "abc123");
	assert_str(sc.attrs, "; Path=/; HttpOnly");
	assert_false(sc.quoted);
	assert_inside(sc.name, h);
	assert_inside(sc.value, h);
	assert_inside(sc.attrs, h);

	assert_int_equal(cookie_set_parse(S(" s = \"q v\" ;Secure"), &sc), 0);
	assert_str(sc.name, "s");
	assert_str(sc.value, "q v");
	assert_true(sc.quoted);
	assert_str(sc.attrs, ";Secure");

	assert_int_equal(cookie_set_parse(S("a="), &sc), 0);
	assert_str(sc.value, "");
	assert_str(sc.attrs, "");
	/* '=' only in the attributes does not count */
	assert_int_equal(cookie_set_parse(S("abc; Path=/"), &sc), -1);
	assert_int_equal(cookie_set_parse(S("=abc"), &sc), -1);
	assert_int_equal(cookie_set_parse(S("  =abc"), &sc), -1);
	assert_int_equal(cookie_set_parse(S(""), &sc), -1);
	assert_int_equal(cookie_set_parse(S(";"), &sc), -1);
	assert_int_equal(cookie_set_parse(B("a=\0b", 4), &sc), -1);
	assert_int_equal(cookie_set_parse(S("a=b\x7f"), &sc), -1);
}

static void test_set_rewrite(void **state)
{
	struct cookie_set sc;
	char out[128];
	long n;

	(void)state;
	assert_int_equal(cookie_set_parse(S("JSESSIONID=abc; Path=/; Secure"), &sc), 0);
	n = cookie_set_rewrite(&sc, S("app1"), '~', sc.value, out, sizeof(out));
	assert_str(B(out, (size_t)n), "JSESSIONID=app1~abc; Path=/; Secure");
	n = cookie_set_rewrite(&sc, S(""), '~', S("new"), out, sizeof(out));
	assert_str(B(out, (size_t)n), "JSESSIONID=new; Path=/; Secure");
	assert_int_equal(cookie_set_rewrite(&sc, S("a;b"), '~', sc.value, out, sizeof(out)), -1);
	assert_int_equal(cookie_set_rewrite(&sc, S("a"), ';', sc.value, out, sizeof(out)), -1);
	assert_int_equal(cookie_set_rewrite(&sc, S("a"), '~', S("x y"), out, sizeof(out)), -1);
	assert_int_equal(cookie_set_rewrite(&sc, S("app1"), '~', sc.value, out, 20), -1);

	assert_int_equal(cookie_set_parse(S("q=\"v\""), &sc), 0);
	n = cookie_set_rewrite(&sc, S("s2"), '.', sc.value, out, sizeof(out));
	assert_str(B(out, (size_t)n), "q=\"s2.v\"");

	/* round trip: what we write parses back to the prefixed value */
	assert_int_equal(cookie_set_parse(B(out, (size_t)n), &sc), 0);
	{
		struct h1_str p, r;
		assert_int_equal(cookie_prefix_split(sc.value, '.', &p, &r), 1);
		assert_str(p, "s2");
		assert_str(r, "v");
	}
}

static void test_set_build(void **state)
{
	struct cookie_attrs a = { .max_age = -1 };
	char out[256];
	long n;

	(void)state;
	n = cookie_set_build(S("B"), S("v"), &a, out, sizeof(out));
	assert_str(B(out, (size_t)n), "B=v");

	a.path = S("/");
	a.httponly = true;
	a.samesite = COOKIE_SAMESITE_LAX;
	n = cookie_set_build(S("BOLLARD"), S("abc-_"), &a, out, sizeof(out));
	assert_str(B(out, (size_t)n), "BOLLARD=abc-_; Path=/; HttpOnly; SameSite=Lax");

	a.domain = S(".example.com");
	a.max_age = 3600;
	a.secure = true;
	a.samesite = COOKIE_SAMESITE_STRICT;
	n = cookie_set_build(S("BOLLARD"), S("x"), &a, out, sizeof(out));
	assert_str(B(out, (size_t)n), "BOLLARD=x; Path=/; Domain=.example.com; Max-Age=3600; "
				      "Secure; HttpOnly; SameSite=Strict");
	/* the exact length fits, one byte less does not */
	assert_int_equal(cookie_set_build(S("BOLLARD"), S("x"), &a, out, (size_t)n), n);
	assert_int_equal(cookie_set_build(S("BOLLARD"), S("x"), &a, out, (size_t)n - 1), -1);

	/* SameSite=None implies Secure */
	memset(&a, 0, sizeof(a));
	a.max_age = 0;
	a.samesite = COOKIE_SAMESITE_NONE;
	n = cookie_set_build(S("B"), S(""), &a, out, sizeof(out));
	assert_str(B(out, (size_t)n), "B=; Max-Age=0; Secure; SameSite=None");
	a.max_age = INT64_MAX;
	n = cookie_set_build(S("B"), S("1"), &a, out, sizeof(out));
	assert_str(B(out, (size_t)n), "B=1; Max-Age=9223372036854775807; Secure; SameSite=None");

	/* nothing can inject a header or an attribute */
	memset(&a, 0, sizeof(a));
	a.max_age = -1;
	assert_int_equal(cookie_set_build(S(""), S("v"), &a, out, sizeof(out)), -1);
	assert_int_equal(cookie_set_build(S("a b"), S("v"), &a, out, sizeof(out)), -1);
	assert_int_equal(cookie_set_build(S("a=b"), S("v"), &a, out, sizeof(out)), -1);
	assert_int_equal(cookie_set_build(S("a"), S("v\r\nX: 1"), &a, out, sizeof(out)), -1);
	assert_int_equal(cookie_set_build(S("a"), S("v;Domain=evil"), &a, out, sizeof(out)), -1);
	a.path = S("/; Domain=evil");
	assert_int_equal(cookie_set_build(S("a"), S("v"), &a, out, sizeof(out)), -1);
	a.path = S("/x\n");
	assert_int_equal(cookie_set_build(S("a"), S("v"), &a, out, sizeof(out)), -1);
	a.path = S("");
	a.domain = S("a.com,b");
	assert_int_equal(cookie_set_build(S("a"), S("v"), &a, out, sizeof(out)), -1);
}

/* ---- request target ------------------------------------------------------ */

static void test_query_param(void **state)
{
	struct h1_str v, t = S("/a?x=1&NAME=v&y");

	(void)state;
	assert_int_equal(cookie_query_param(t, S("NAME"), &v), 1);
	assert_str(v, "v");
	assert_inside(v, t);
	assert_int_equal(cookie_query_param(t, S("x"), &v), 1);
	assert_str(v, "1");
	assert_int_equal(cookie_query_param(t, S("y"), &v), 1);
	assert_str(v, "");
	assert_int_equal(cookie_query_param(t, S("name"), &v), 0);
	assert_int_equal(cookie_query_param(t, S("NAM"), &v), 0);
	assert_int_equal(cookie_query_param(t, S("a"), &v), 0);
	assert_int_equal(cookie_query_param(t, S(""), &v), 0);
	/* first match; stop at '#' */
	assert_int_equal(cookie_query_param(S("/?k=1&k=2"), S("k"), &v), 1);
	assert_str(v, "1");
	assert_int_equal(cookie_query_param(S("/?a=1#k=2"), S("k"), &v), 0);
	assert_int_equal(cookie_query_param(S("/?k=1#frag"), S("k"), &v), 1);
	assert_str(v, "1");
	assert_int_equal(cookie_query_param(S("/#?k=1"), S("k"), &v), 0);
	/* the path is not the query */
	assert_int_equal(cookie_query_param(S("/k=1"), S("k"), &v), 0);
	assert_int_equal(cookie_query_param(S("/p;k=1"), S("k"), &v), 0);
	/* a second '?' belongs to the query */
	assert_int_equal(cookie_query_param(S("/?a=?&k=x?y"), S("k"), &v), 1);
	assert_str(v, "x?y");
	/* hostile */
	assert_int_equal(cookie_query_param(S(""), S("k"), &v), 0);
	assert_int_equal(cookie_query_param(S("?"), S("k"), &v), 0);
	assert_int_equal(cookie_query_param(S("?&&&"), S("k"), &v), 0);
	assert_int_equal(cookie_query_param(S("?&&&k"), S("k"), &v), 1);
	assert_str(v, "");
	assert_int_equal(cookie_query_param(B("/?k\0=1&k=2", 10), S("k"), &v), 1);
	assert_str(v, "2");
	assert_int_equal(cookie_query_param(S("/?k="), S("k"), &v), 1);
	assert_str(v, "");
}

static void test_path_param(void **state)
{
	struct h1_str v, t = S("/shop/cart;jsessionid=ABC123?x=1");

	(void)state;
	assert_int_equal(cookie_path_param(t, S("JSESSIONID"), &v), 1);
	assert_str(v, "ABC123");
	assert_inside(v, t);
	assert_int_equal(cookie_path_param(t, S("jsessionid"), &v), 1);
	assert_int_equal(cookie_path_param(S("/a;JSessionId=z"), S("jsessionid"), &v), 1);
	assert_str(v, "z");
	/* value ends at '/', ';', '#', '?' */
	assert_int_equal(cookie_path_param(S("/a;s=1/b"), S("s"), &v), 1);
	assert_str(v, "1");
	assert_int_equal(cookie_path_param(S("/a;s=1;t=2"), S("t"), &v), 1);
	assert_str(v, "2");
	assert_int_equal(cookie_path_param(S("/a;s=1#f"), S("s"), &v), 1);
	assert_str(v, "1");
	assert_int_equal(cookie_path_param(S("/a;s="), S("s"), &v), 1);
	assert_str(v, "");
	/* first match */
	assert_int_equal(cookie_path_param(S("/a;s=1/b;s=2"), S("s"), &v), 1);
	assert_str(v, "1");
	/* not in the query, not without '=', not a longer name */
	assert_int_equal(cookie_path_param(S("/a?;s=1"), S("s"), &v), 0);
	assert_int_equal(cookie_path_param(S("/a#;s=1"), S("s"), &v), 0);
	assert_int_equal(cookie_path_param(S("/a;s"), S("s"), &v), 0);
	assert_int_equal(cookie_path_param(S("/a;ss=1"), S("s"), &v), 0);
	assert_int_equal(cookie_path_param(S("/a;xs=1"), S("s"), &v), 0);
	assert_int_equal(cookie_path_param(S("/as=1"), S("s"), &v), 0);
	/* hostile */
	assert_int_equal(cookie_path_param(S(""), S("s"), &v), 0);
	assert_int_equal(cookie_path_param(S(";"), S("s"), &v), 0);
	assert_int_equal(cookie_path_param(S(";;;;"), S("s"), &v), 0);
	assert_int_equal(cookie_path_param(S(";s"), S("s"), &v), 0);
	assert_int_equal(cookie_path_param(S("/;s=1"), S(""), &v), 0);
	assert_int_equal(cookie_path_param(B("/;s\0=1;s=2", 10), S("s"), &v), 1);
	assert_str(v, "2");
}

/* ---- base64url ----------------------------------------------------------- */

static void test_b64_vectors(void **state)
{
	/* RFC 4648 §10, in the URL alphabet without padding */
	static const char *const v[][2] = {
		{ "", "" }, { "f", "Zg" }, { "fo", "Zm8" }, { "foo", "Zm9v" },
		{ "foob", "Zm9vYg" }, { "fooba", "Zm9vYmE" }, { "foobar", "Zm9vYmFy" },
	};
	char enc[32];
	uint8_t dec[32];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		size_t n = strlen(v[i][0]);
		long e = cookie_b64_encode((const uint8_t *)v[i][0], n, enc, sizeof(enc));
		assert_int_equal(e, (long)cookie_b64_enclen(n));
		assert_str(B(enc, (size_t)e), v[i][1]);
		long d = cookie_b64_decode(v[i][1], strlen(v[i][1]), dec, sizeof(dec));
		assert_int_equal(d, (long)n);
		assert_memory_equal(dec, v[i][0], n);
	}
	/* the two URL-safe characters */
	{
		static const uint8_t b[] = { 0xfb, 0xff, 0xbf };
		long e = cookie_b64_encode(b, 3, enc, sizeof(enc));
		assert_str(B(enc, (size_t)e), "-_-_");
		assert_int_equal(cookie_b64_decode("-_-_", 4, dec, sizeof(dec)), 3);
		assert_memory_equal(dec, b, 3);
	}
}

static void test_b64_strict(void **state)
{
	uint8_t dec[32];

	(void)state;
	assert_int_equal(cookie_b64_decode("Zg==", 4, dec, sizeof(dec)), -1); /* padding */
	assert_int_equal(cookie_b64_decode("Zm9v+A", 6, dec, sizeof(dec)), -1); /* std alphabet */
	assert_int_equal(cookie_b64_decode("Zm9v/A", 6, dec, sizeof(dec)), -1);
	assert_int_equal(cookie_b64_decode("Zm 9v", 5, dec, sizeof(dec)), -1);
	assert_int_equal(cookie_b64_decode("Zm9v\n", 5, dec, sizeof(dec)), -1);
	assert_int_equal(cookie_b64_decode("Zm\09v", 5, dec, sizeof(dec)), -1);
	assert_int_equal(cookie_b64_decode("Z\xc3\xa9", 3, dec, sizeof(dec)), -1);
	assert_int_equal(cookie_b64_decode("Z", 1, dec, sizeof(dec)), -1);     /* length % 4 == 1 */
	assert_int_equal(cookie_b64_decode("Zm9vY", 5, dec, sizeof(dec)), -1);
	/* non-canonical: nonzero unused bits */
	assert_int_equal(cookie_b64_decode("Zh", 2, dec, sizeof(dec)), -1);
	assert_int_equal(cookie_b64_decode("Zm9", 3, dec, sizeof(dec)), -1);
	assert_int_equal(cookie_b64_decode("Zm8", 3, dec, sizeof(dec)), 2);
	/* out of room */
	assert_int_equal(cookie_b64_decode("Zm9vYmFy", 8, dec, 5), -1);
	assert_int_equal(cookie_b64_decode("Zm9vYmFy", 8, dec, 6), 6);
	assert_int_equal(cookie_b64_decode("", 0, NULL, 0), 0);
	{
		char enc[8];
		assert_int_equal(cookie_b64_encode((const uint8_t *)"foobar", 6, enc, 7), -1);
		assert_int_equal(cookie_b64_encode((const uint8_t *)"foobar", 6, enc, 8), 8);
	}
}

static void test_b64_roundtrip(void **state)
{
	uint8_t in[300], dec[300];
	char enc[400];

	(void)state;
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 37 + 11);
	for (size_t n = 0; n <= sizeof(in); n++) {
		long e = cookie_b64_encode(in, n, enc, sizeof(enc));
		assert_int_equal(e, (long)cookie_b64_enclen(n));
		assert_true(e % 4 != 1);
		assert_int_equal(cookie_b64_declen((size_t)e), n);
		long d = cookie_b64_decode(enc, (size_t)e, dec, sizeof(dec));
		assert_int_equal(d, (long)n);
		assert_memory_equal(dec, in, n);
	}
}

/* ---- JSON ------------------------------------------------------------------ */

static int member(const char *json, const char *name, struct h1_str *v)
{
	return cookie_json_member(json, strlen(json), S(name), v);
}

static void test_json_member(void **state)
{
	const char *j = "{\"sub\":\"u-42\",\"n\":-12.5e+3,\"i\":1516239022,\"o\":{\"sub\":\"no\","
			"\"a\":[1,{\"x\":[[]]},\"s\"]},\"b\":true,\"z\":null,\"e\":\"a\\\"b\\u00e9\\n\"}";
	struct h1_str v;

	(void)state;
	assert_int_equal(member(j, "sub", &v), COOKIE_JSON_STRING);
	assert_str(v, "u-42");
	assert_int_equal(member(j, "n", &v), COOKIE_JSON_NUMBER);
	assert_str(v, "-12.5e+3");
	assert_int_equal(member(j, "i", &v), COOKIE_JSON_NUMBER);
	assert_str(v, "1516239022");
	/* raw escaped bytes */
	assert_int_equal(member(j, "e", &v), COOKIE_JSON_STRING);
	assert_str(v, "a\\\"b\\u00e9\\n");
	/* unusable types, nested names and absent names are misses */
	assert_int_equal(member(j, "o", &v), 0);
	assert_int_equal(member(j, "b", &v), 0);
	assert_int_equal(member(j, "z", &v), 0);
	assert_int_equal(member(j, "x", &v), 0);
	assert_int_equal(member(j, "SUB", &v), 0);
	assert_int_equal(member(" {\n\t\"a\" : \"b\" \r\n} \n", "a", &v), COOKIE_JSON_STRING);
	assert_str(v, "b");
	assert_int_equal(member("{}", "a", &v), 0);
	assert_int_equal(member("{\"\":1}", "", &v), COOKIE_JSON_NUMBER);
	assert_int_equal(member("{\"a\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}", "a", &v),
			 COOKIE_JSON_STRING);
	assert_int_equal(member("{\"a\":0}", "a", &v), COOKIE_JSON_NUMBER);
	assert_str(v, "0");
}

static void test_json_malformed(void **state)
{
	static const char *const bad[] = {
		"", " ", "[]", "\"a\"", "1", "{", "}", "{\"a\"}", "{\"a\":}", "{\"a\":1,}",
		"{,\"a\":1}", "{\"a\":1 \"b\":2}", "{\"a\":1}}", "{\"a\":1}x", "{\"a\":1}{}",
		"{a:1}", "{'a':1}", "{\"a\":01}", "{\"a\":1.}", "{\"a\":.5}", "{\"a\":1e}",
		"{\"a\":+1}", "{\"a\":-}", "{\"a\":tru}", "{\"a\":True}", "{\"a\":nul}",
		"{\"a\":\"x}", "{\"a\":\"\\x\"}", "{\"a\":\"\\u12g4\"}", "{\"a\":\"\\u12\"}",
		"{\"a\":\"\x01\"}", "{\"a\":\"\t\"}", "{\"a\":[1,]}", "{\"a\":[1 2]}",
		"{\"a\":[}", "{\"a\":{]}", "{\"a\":{\"b\"}}", "{\"a\":{\"b\":1,}}",
		"{\"a\":\"\xc3\"}", "{\"a\":\"\xc0\xaf\"}", "{\"a\":\"\xed\xa0\x80\"}",
		"{\"a\":\"\xf4\x90\x80\x80\"}", "{\"a\":\"\xff\"}", "{\"a\":NaN}",
		"{\"a\":1,\"a\":2}", "{\"a\":\"x\",\"b\":[],\"a\":\"x\"}", "{\"a\":1\0}",
	};
	struct h1_str v;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		if (member(bad[i], "a", &v) != -1) {
			print_error("accepted: %s\n", bad[i]);
			fail();
		}
	}
	/* an embedded NUL byte */
	assert_int_equal(cookie_json_member("{\"a\":1}\0", 8, S("a"), &v), -1);
	/* a raw NUL inside a string is an unescaped control character */
	assert_int_equal(cookie_json_member("{\"a\0\":1}", 8, S("a"), &v), -1);
	assert_int_equal(cookie_json_member(NULL, 0, S("a"), &v), -1);
	/* duplicates of other names are not our business */
	assert_int_equal(member("{\"b\":1,\"b\":2,\"a\":3}", "a", &v), COOKIE_JSON_NUMBER);
}

static void test_json_depth(void **state)
{
	char buf[1024];
	size_t n = 0, d;
	struct h1_str v;

	(void)state;
	/* depth 63 inside the top-level object: fine; 64 nested more: too deep */
	for (int round = 0; round < 2; round++) {
		d = round == 0 ? COOKIE_JSON_MAX_DEPTH : COOKIE_JSON_MAX_DEPTH + 1;
		n = 0;
		n += (size_t)sprintf(buf + n, "{\"x\":");
		for (size_t i = 0; i < d; i++)
			buf[n++] = '[';
		for (size_t i = 0; i < d; i++)
			buf[n++] = ']';
		n += (size_t)sprintf(buf + n, ",\"a\":7}");
		assert_int_equal(cookie_json_member(buf, n, S("a"), &v),
				 round == 0 ? COOKIE_JSON_NUMBER : -1);
	}
	/* a deep but unbalanced document */
	memset(buf, '[', sizeof(buf));
	buf[0] = '{';
	assert_int_equal(cookie_json_member(buf, sizeof(buf), S("a"), &v), -1);
}

/* ---- JWT ------------------------------------------------------------------- */

/* Build "b64(header).b64(payload).b64(HMAC-SHA256(key, ...))" into out. */
static size_t make_jwt(const char *header, const char *payload, const char *key,
		       char *out, size_t cap)
{
	crypto_auth_hmacsha256_state st;
	uint8_t mac[crypto_auth_hmacsha256_BYTES];
	long n, m, s;

	n = cookie_b64_encode((const uint8_t *)header, strlen(header), out, cap);
	assert_true(n > 0);
	out[n++] = '.';
	m = cookie_b64_encode((const uint8_t *)payload, strlen(payload), out + n, cap - (size_t)n);
	assert_true(m > 0);
	n += m;
	crypto_auth_hmacsha256_init(&st, (const uint8_t *)key, strlen(key));
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)out, (size_t)n);
	crypto_auth_hmacsha256_final(&st, mac);
	out[n++] = '.';
	s = cookie_b64_encode(mac, sizeof(mac), out + n, cap - (size_t)n);
	assert_int_equal(s, 43);
	return (size_t)(n + s);
}

static void test_jwt_known_vector(void **state)
{
	/* the example token of jwt.io, signed with "your-256-bit-secret" */
	static const char tok[] =
		"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
		"eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ."
		"SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
	static const char key[] = "your-256-bit-secret";
	struct cookie_jwt j;
	uint8_t buf[256];
	struct h1_str v;

	(void)state;
	assert_int_equal(cookie_jwt_split(S(tok), &j), 0);
	assert_int_equal(j.signature.n, 43);
	assert_int_equal(cookie_jwt_claim(S(tok), S("sub"), buf, sizeof(buf), &v),
			 COOKIE_JSON_STRING);
	assert_str(v, "1234567890");
	assert_int_equal(cookie_jwt_claim(S(tok), S("iat"), buf, sizeof(buf), &v),
			 COOKIE_JSON_NUMBER);
	assert_str(v, "1516239022");
	assert_int_equal(cookie_jwt_claim(S(tok), S("exp"), buf, sizeof(buf), &v), 0);
	assert_int_equal(cookie_jwt_verify_hs256(&j, (const uint8_t *)key, strlen(key)), 1);
	assert_int_equal(cookie_jwt_verify_hs256(&j, (const uint8_t *)"other", 5), 0);
	/* payload larger than the buffer */
	assert_int_equal(cookie_jwt_claim(S(tok), S("sub"), buf, 10, &v), -1);
}

static void test_jwt_built(void **state)
{
	static const char hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
	char tok[512], bad[512];
	size_t n;
	struct cookie_jwt j;
	struct h1_str v;
	uint8_t buf[256];

	(void)state;
	n = make_jwt(hdr, "{\"sub\":\"alice\",\"tenant\":7,\"roles\":[\"a\",{\"b\":1}]}",
		     "k", tok, sizeof(tok));
	assert_int_equal(cookie_jwt_split(B(tok, n), &j), 0);
	assert_int_equal(cookie_jwt_verify_hs256(&j, (const uint8_t *)"k", 1), 1);
	assert_int_equal(cookie_jwt_claim(B(tok, n), S("sub"), buf, sizeof(buf), &v),
			 COOKIE_JSON_STRING);
	assert_str(v, "alice");
	assert_int_equal(cookie_jwt_claim(B(tok, n), S("tenant"), buf, sizeof(buf), &v),
			 COOKIE_JSON_NUMBER);
	assert_str(v, "7");
	assert_int_equal(cookie_jwt_claim(B(tok, n), S("roles"), buf, sizeof(buf), &v), 0);

	/* every single-character change of the token breaks the signature */
	for (size_t i = 0; i < n; i++) {
		memcpy(bad, tok, n);
		bad[i] = bad[i] == 'A' ? 'B' : 'A';
		if (cookie_jwt_split(B(bad, n), &j) == 0)
			assert_int_equal(cookie_jwt_verify_hs256(&j, (const uint8_t *)"k", 1), 0);
	}
	/* a long key (hashed first, RFC 2104 §2) */
	{
		char key[200];
		memset(key, 'K', sizeof(key) - 1);
		key[sizeof(key) - 1] = 0;
		n = make_jwt(hdr, "{\"sub\":\"b\"}", key, tok, sizeof(tok));
		assert_int_equal(cookie_jwt_split(B(tok, n), &j), 0);
		assert_int_equal(cookie_jwt_verify_hs256(&j, (const uint8_t *)key, strlen(key)), 1);
	}
	/* a correct MAC under another algorithm name, or "none", is refused */
	n = make_jwt("{\"alg\":\"none\"}", "{\"sub\":\"a\"}", "k", tok, sizeof(tok));
	assert_int_equal(cookie_jwt_split(B(tok, n), &j), 0);
	assert_int_equal(cookie_jwt_verify_hs256(&j, (const uint8_t *)"k", 1), 0);
	n = make_jwt("{\"alg\":\"HS256\",\"alg\":\"none\"}", "{\"sub\":\"a\"}", "k", tok, sizeof(tok));
	assert_int_equal(cookie_jwt_split(B(tok, n), &j), 0);
	assert_int_equal(cookie_jwt_verify_hs256(&j, (const uint8_t *)"k", 1), 0);
	/* unsigned: split is fine, verification is not */
	assert_int_equal(cookie_jwt_split(S("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0."), &j), 0);
	assert_int_equal(j.signature.n, 0);
	assert_int_equal(cookie_jwt_verify_hs256(&j, (const uint8_t *)"k", 1), 0);
	/* malformed payload JSON is a miss (-1), never a partial answer */
	n = make_jwt(hdr, "{\"sub\":\"a\",", "k", tok, sizeof(tok));
	assert_int_equal(cookie_jwt_claim(B(tok, n), S("sub"), buf, sizeof(buf), &v), -1);
}

static void test_jwt_split_bad(void **state)
{
	static const char *const bad[] = {
		"", ".", "..", "a.b", "a", ".b.c", "a..c", "a.b.c.d", "a.b.c.d.e", "a b.c.d",
		"a.b=.c", "a.b.c=", "a+b.c.d", "a.b/c.d",
	};
	struct cookie_jwt j;
	uint8_t buf[64];
	struct h1_str v;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		if (cookie_jwt_split(S(bad[i]), &j) != -1) {
			print_error("accepted: %s\n", bad[i]);
			fail();
		}
		assert_int_equal(cookie_jwt_claim(S(bad[i]), S("sub"), buf, sizeof(buf), &v), -1);
	}
	assert_int_equal(cookie_jwt_split(B("a.b\0.c", 6), &j), -1);
	/* the payload is not base64url of anything */
	assert_int_equal(cookie_jwt_claim(S("eyJ.Z.x"), S("sub"), buf, sizeof(buf), &v), -1);
	/* valid base64 of something that is not JSON */
	assert_int_equal(cookie_jwt_claim(S("eyJ.Zm9v.x"), S("sub"), buf, sizeof(buf), &v), -1);
}

static void test_bearer(void **state)
{
	struct h1_str t;

	(void)state;
	assert_int_equal(cookie_bearer(S("Bearer abc.def.ghi"), &t), 1);
	assert_str(t, "abc.def.ghi");
	assert_int_equal(cookie_bearer(S("  bearer   x  "), &t), 1);
	assert_str(t, "x");
	assert_int_equal(cookie_bearer(S("BEARER\tx"), &t), 1);
	assert_int_equal(cookie_bearer(S("Basic dXNlcjpwYXNz"), &t), 0);
	assert_int_equal(cookie_bearer(S("Bearer"), &t), 0);
	assert_int_equal(cookie_bearer(S("Bearer "), &t), 0);
	assert_int_equal(cookie_bearer(S("Bearerx y"), &t), 0);
	assert_int_equal(cookie_bearer(S("Bearer a b"), &t), 0);
	assert_int_equal(cookie_bearer(S(""), &t), 0);
}

static void test_age(void **state)
{
	const uint32_t now = 100000;

	(void)state;
	/* no bound: never old */
	assert_int_equal(cookie_age(now, 0, 0, 0, 0), COOKIE_FRESH);
	/* max-idle 4s: fresh up to 1 s, refreshed up to 4 s, then expired */
	assert_int_equal(cookie_age(now, now - 1, now - 1, 4000, 0), COOKIE_FRESH);
	assert_int_equal(cookie_age(now, now - 2, now - 2, 4000, 0), COOKIE_REFRESH);
	assert_int_equal(cookie_age(now, now - 4, now - 4, 4000, 0), COOKIE_REFRESH);
	assert_int_equal(cookie_age(now, now - 5, now - 5, 4000, 0), COOKIE_EXPIRED);
	/* max-life counts from the issue, whatever the refreshes */
	assert_int_equal(cookie_age(now, now - 3, now, 3600000, 2000), COOKIE_EXPIRED);
	assert_int_equal(cookie_age(now, now - 2, now, 3600000, 2000), COOKIE_FRESH);
	/* refreshed far in the future: not ours to honour */
	assert_int_equal(cookie_age(now, now + 301, now + 301, 3600000, 0), COOKIE_EXPIRED);
	assert_int_equal(cookie_age(now, now + 301, now + 301, 0, 0), COOKIE_EXPIRED);
}

/* An instance whose clock runs a second or two ahead issued the cookie
 * (instances share a secret-file), or this clock was stepped back since:
 * the cookie is new, not 136 years old (the unsigned difference). */
static void test_age_of_a_cookie_from_a_clock_ahead(void **state)
{
	const uint32_t now = 100000;

	(void)state;
	assert_int_equal(cookie_age(now, now + 1, now + 1, 3600000, 0), COOKIE_FRESH);
	assert_int_equal(cookie_age(now, now + 2, now + 2, 1000, 1000), COOKIE_FRESH);
	assert_int_equal(cookie_age(now, now - 10, now + 1, 3600000, 3600000), COOKIE_FRESH);
	assert_int_equal(cookie_age(now, now + 300, now + 300, 3600000, 0), COOKIE_FRESH);
	assert_int_equal(cookie_age(UINT32_MAX - 1, UINT32_MAX, UINT32_MAX, 1000, 1000),
			 COOKIE_FRESH);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_find),
		cmocka_unit_test(test_find_quotes),
		cmocka_unit_test(test_find_hostile),
		cmocka_unit_test(test_remove),
		cmocka_unit_test(test_remove_room),
		cmocka_unit_test(test_replace),
		cmocka_unit_test(test_prefix_split),
		cmocka_unit_test(test_set_parse),
		cmocka_unit_test(test_set_rewrite),
		cmocka_unit_test(test_set_build),
		cmocka_unit_test(test_query_param),
		cmocka_unit_test(test_path_param),
		cmocka_unit_test(test_b64_vectors),
		cmocka_unit_test(test_b64_strict),
		cmocka_unit_test(test_b64_roundtrip),
		cmocka_unit_test(test_json_member),
		cmocka_unit_test(test_json_malformed),
		cmocka_unit_test(test_json_depth),
		cmocka_unit_test(test_jwt_known_vector),
		cmocka_unit_test(test_jwt_built),
		cmocka_unit_test(test_jwt_split_bad),
		cmocka_unit_test(test_bearer),
		cmocka_unit_test(test_age),
		cmocka_unit_test(test_age_of_a_cookie_from_a_clock_ahead),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
