/*
 * fuzz_cookie.c - libFuzzer target for the persistence byte helpers
 * (src/cookie.c). Every input goes through every parser, with a few fixed
 * cookie names and one taken from the input itself (first byte = its
 * length). Besides "no crash under ASan/UBSan", it checks what persist.c
 * relies on:
 *   - every returned range lies inside the input (or the caller's buffer);
 *   - a rebuilt Cookie header never contains the removed cookie, keeps every
 *     other cookie's value, is idempotent, and fits the documented bound;
 *     a replaced cookie reads back as the new value;
 *   - a Set-Cookie rewritten or built by us parses back to what we wrote;
 *   - base64url is a bijection: decode(encode(x)) == x, and whatever
 *     decodes re-encodes to exactly the same characters (strictness);
 *   - JSON/JWT lookups are misses or ranges inside the decoded payload.
 * The same function runs under gcc via fuzz/replay.c over the committed
 * corpus fuzz/corpus/cookie/ and tests/vectors/.
 */
#include "api.h"
#include "cookie.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX 8192

static uint8_t buf1[2 * FUZZ_MAX + 64], buf2[2 * FUZZ_MAX + 64];

static void inside(struct h1_str s, const void *base, size_t n)
{
	const char *b = base;

	BUG_ON(!s.p && s.n);
	if (s.p)
		BUG_ON(s.p < b || s.p + s.n > b + n);
}

static bool same(struct h1_str a, struct h1_str b)
{
	return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static void check_cookie_hdr(struct h1_str h, struct h1_str name, struct h1_str other)
{
	char *out = (char *)buf1, *out2 = (char *)buf2;
	struct h1_str v, v2;
	int f, fo;
	long n, n2;

	f = cookie_find(h, name, &v);
	BUG_ON(f != 0 && f != 1);
	if (f)
		inside(v, h.p, h.n);
	fo = cookie_find(h, other, &v2);

	n = cookie_remove(h, name, out, 2 * h.n);
	BUG_ON(n < 0 || (size_t)n > 2 * h.n);
	BUG_ON(cookie_find((struct h1_str){ out, (size_t)n }, name, &v) != 0);
	/* another cookie keeps its value, unless it is the removed one */
	if (!same(name, other)) {
		struct h1_str v3;
		int f3 = cookie_find((struct h1_str){ out, (size_t)n }, other, &v3);
		BUG_ON(f3 != fo);
		if (f3)
			BUG_ON(!same(v2, v3));
	}
	/* idempotent: the rebuilt header is a fixed point */
	n2 = cookie_remove((struct h1_str){ out, (size_t)n }, name, out2, 2 * (size_t)n);
	BUG_ON(n2 != n || (n && memcmp(out, out2, (size_t)n)));

	n = cookie_replace(h, name, cookie_str("s1~v"), out, 2 * h.n + 8);
	BUG_ON(n < 0);
	if (f) {
		struct h1_str p, r;
		BUG_ON(cookie_find((struct h1_str){ out, (size_t)n }, name, &v) != 1);
		BUG_ON(!same(v, cookie_str("s1~v")));
		BUG_ON(cookie_prefix_split(v, '~', &p, &r) != 1);
		BUG_ON(!same(p, cookie_str("s1")) || !same(r, cookie_str("v")));
	}
}

static void check_set_cookie(struct h1_str h, struct h1_str name)
{
	struct cookie_set sc, sc2;
	char *out = (char *)buf1;
	long n;

	if (cookie_set_parse(h, &sc) == 0) {
		inside(sc.name, h.p, h.n);
		inside(sc.value, h.p, h.n);
		inside(sc.attrs, h.p, h.n);
		BUG_ON(sc.name.n == 0);
		BUG_ON(sc.attrs.n && sc.attrs.p[0] != ';');
		n = cookie_set_rewrite(&sc, cookie_str("app1"), '~', sc.value, out, sizeof(buf1));
		if (n >= 0) {
			struct h1_str p, r;
			BUG_ON(cookie_set_parse((struct h1_str){ out, (size_t)n }, &sc2) != 0);
			BUG_ON(!same(sc.name, sc2.name) || !same(sc.attrs, sc2.attrs));
			BUG_ON(cookie_prefix_split(sc2.value, '~', &p, &r) != 1);
			BUG_ON(!same(p, cookie_str("app1")) || !same(r, sc.value));
		}
	}
	/* our own cookie, with the input as its value and name */
	{
		struct cookie_attrs a = { .path = cookie_str("/"), .max_age = 60,
					  .httponly = true, .samesite = COOKIE_SAMESITE_LAX };
		n = cookie_set_build(name, h, &a, out, sizeof(buf1));
		if (n >= 0) {
			BUG_ON(cookie_set_parse((struct h1_str){ out, (size_t)n }, &sc2) != 0);
			BUG_ON(!same(sc2.name, name));
			/* a value of the form "..." is read back without its quotes,
			 * but cookie-octets exclude DQUOTE */
			BUG_ON(!same(sc2.value, h));
		}
	}
}

static void check_target(struct h1_str t, struct h1_str name)
{
	struct h1_str v;

	if (cookie_query_param(t, name, &v))
		inside(v, t.p, t.n);
	if (cookie_path_param(t, name, &v)) {
		inside(v, t.p, t.n);
		BUG_ON(memchr(v.p, '/', v.n) || memchr(v.p, ';', v.n) ||
		       memchr(v.p, '?', v.n) || memchr(v.p, '#', v.n));
	}
	if (cookie_bearer(t, &v)) {
		inside(v, t.p, t.n);
		BUG_ON(v.n == 0);
	}
}

static void check_b64(const uint8_t *d, size_t n)
{
	char *enc = (char *)buf1;
	long e, r;

	e = cookie_b64_encode(d, n, enc, sizeof(buf1));
	BUG_ON(e != (long)cookie_b64_enclen(n));
	r = cookie_b64_decode(enc, (size_t)e, buf2, sizeof(buf2));
	BUG_ON(r != (long)n || (n && memcmp(buf2, d, n)));

	r = cookie_b64_decode((const char *)d, n, buf2, sizeof(buf2));
	if (r >= 0) {
		BUG_ON((size_t)r != cookie_b64_declen(n));
		e = cookie_b64_encode(buf2, (size_t)r, enc, sizeof(buf1));
		BUG_ON(e != (long)n || (n && memcmp(enc, d, n)));
	}
}

static void check_json_jwt(struct h1_str in, struct h1_str name)
{
	struct h1_str v;
	struct cookie_jwt j;
	int r;

	r = cookie_json_member(in.p, in.n, name, &v);
	BUG_ON(r < -1 || r > COOKIE_JSON_NUMBER);
	if (r > 0)
		inside(v, in.p, in.n);
	if (r == COOKIE_JSON_STRING)
		BUG_ON(v.p == in.p || v.p[-1] != '"' || v.p[v.n] != '"');

	if (cookie_jwt_split(in, &j) == 0) {
		inside(j.header, in.p, in.n);
		inside(j.payload, in.p, in.n);
		inside(j.signature, in.p, in.n);
		BUG_ON(j.signing.p != in.p || j.signing.n != j.header.n + 1 + j.payload.n);
		BUG_ON(cookie_jwt_verify_hs256(&j, (const uint8_t *)"k", 1) > 1);
	}
	r = cookie_jwt_claim(in, name, buf1, sizeof(buf1), &v);
	BUG_ON(r < -1 || r > COOKIE_JSON_NUMBER);
	if (r > 0)
		inside(v, buf1, sizeof(buf1));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = { "BOLLARD", "a", "jsessionid", "sub" };
	struct h1_str all = { (const char *)data, size };
	struct h1_str iname = { NULL, 0 }, rest = all;

	if (size > FUZZ_MAX)
		return 0;
	/* first byte: length of a name taken from the input */
	if (size > 0) {
		size_t k = data[0] % 16;
		if (k < size) {
			iname.p = (const char *)data + 1;
			iname.n = k;
			rest.p = (const char *)data + 1 + k;
			rest.n = size - 1 - k;
		}
	}
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		struct h1_str nm = cookie_str(names[i]);
		check_cookie_hdr(all, nm, iname);
		check_set_cookie(all, nm);
		check_target(all, nm);
		check_json_jwt(all, nm);
	}
	check_cookie_hdr(rest, iname, cookie_str("a"));
	check_set_cookie(rest, iname);
	check_target(rest, iname);
	check_json_jwt(rest, iname);
	check_b64(data, size);
	return 0;
}
