/*
 * cookie.c - reading and writing the bytes that carry a session key.
 *
 * Every persistence method of SPEC §3.1 starts by finding a key somewhere in
 * a request (a cookie, a query or path parameter, a JWT claim) or a response
 * (a Set-Cookie), and some of them rewrite it (remove our cookie before the
 * server sees it, strip or add a server prefix). Those bytes come straight
 * from clients and servers, so this file is where hostile input meets the
 * persistence code: everything here is a pure function over byte ranges, no
 * allocation, no I/O, bounded by its input, returning ranges into its input
 * or bytes into a caller's buffer of stated size.
 *
 * Two attitudes, chosen per direction:
 *   - reading what browsers send (Cookie, request targets) is lenient the
 *     way browsers and servlet containers are, because rejecting a request
 *     for a stray space in a cookie would break real users; a miss is the
 *     worst outcome, and a miss only means "assign afresh";
 *   - decoding what we authenticate (base64url, JWTs, their JSON) is strict:
 *     one byte string has one encoding and one reading, or it is rejected,
 *     so that nobody can find a second spelling of a token that some other
 *     component reads differently.
 * Everything written (cookie_*_build/rewrite/replace/remove) is checked
 * against the RFC 6265 grammar so that no input can inject a header.
 */
#include "api.h"
#include "cookie.h"
#include "bytes.h"

#include <limits.h>
#include <sodium.h>

/* ---- small helpers ------------------------------------------------------- */

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static struct h1_str mkstr(const char *s, const char *e)
{
	struct h1_str r = { s, (size_t)(e - s) };
	return r;
}

static struct h1_str trim(const char *s, const char *e)
{
	while (s < e && is_wsp(*s))
		s++;
	while (e > s && is_wsp(e[-1]))
		e--;
	return mkstr(s, e);
}

static bool str_eq(struct h1_str a, struct h1_str b)
{
	return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool str_eq_nocase(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (lower(a[i]) != lower(b[i]))
			return false;
	return true;
}

/* RFC 6265 §4.1.1: cookie-octet = %x21 / %x23-2B / %x2D-3A / %x3C-5B /
 * %x5D-7E (no CTL, whitespace, DQUOTE, comma, semicolon or backslash). */
static bool is_cookie_octet(uint8_t c)
{
	return c >= 0x21 && c <= 0x7e && c != '"' && c != ',' && c != ';' && c != '\\';
}

static bool all_cookie_octets(struct h1_str s)
{
	for (size_t i = 0; i < s.n; i++)
		if (!is_cookie_octet((uint8_t)s.p[i]))
			return false;
	return true;
}

/* RFC 9110 §5.6.2: tchar, for cookie names (RFC 6265 §4.1.1 cookie-name). */
static bool is_tchar(uint8_t c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		return true;
	return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* A DQUOTE-wrapped value loses its quotes (RFC 6265 §4.1.1 allows
 * DQUOTE *cookie-octet DQUOTE; servers that quote expect them gone). */
static struct h1_str unquote(struct h1_str v, bool *quoted)
{
	bool q = v.n >= 2 && v.p[0] == '"' && v.p[v.n - 1] == '"';

	if (quoted)
		*quoted = q;
	if (q) {
		v.p++;
		v.n -= 2;
	}
	return v;
}

/* Bounded output: the first write that does not fit marks the whole build
 * failed, so callers check once at the end. */
struct obuf {
	char *p;
	size_t n;
	size_t cap;
	bool err;
};

static void put(struct obuf *o, const char *s, size_t n)
{
	if (o->err || n == 0)
		return;
	if (n > o->cap - o->n) {
		o->err = true;
		return;
	}
	memcpy(o->p + o->n, s, n);
	o->n += n;
}

static void put_str(struct obuf *o, struct h1_str s)
{
	put(o, s.p, s.n);
}

static void put_lit(struct obuf *o, const char *s)
{
	put(o, s, strlen(s));
}

static void put_u64(struct obuf *o, uint64_t v)
{
	char tmp[BYTES_U64_DEC], *d = bytes_u64_dec(tmp, v);

	put(o, d, (size_t)(tmp + sizeof(tmp) - d));
}

static long obuf_result(const struct obuf *o)
{
	return o->err ? -1 : (long)o->n;
}

/* ---- Cookie request header ----------------------------------------------- */

struct pair {
	struct h1_str all;    /* the trimmed pair */
	struct h1_str name;   /* empty when there is no '=' */
	struct h1_str value;  /* raw (quotes kept) */
	bool has_eq;
};

/* RFC 6265 §5.4 is what servers must accept from §4.2 senders; browsers
 * also send "a=1;b=2" and "a=1; ; b=2", so split on ';' alone and trim. */
static bool pair_next(const char **pos, const char *end, struct pair *pr)
{
	while (*pos < end) {
		const char *s = *pos;
		const char *e = memchr(s, ';', (size_t)(end - s));
		const char *eq;

		if (!e)
			e = end;
		*pos = e < end ? e + 1 : end;
		pr->all = trim(s, e);
		if (pr->all.n == 0)
			continue;
		eq = memchr(pr->all.p, '=', pr->all.n);
		pr->has_eq = eq != NULL;
		if (eq) {
			pr->name = trim(pr->all.p, eq);
			pr->value = trim(eq + 1, pr->all.p + pr->all.n);
		} else {
			pr->name = mkstr(pr->all.p, pr->all.p);
			pr->value = pr->all;
		}
		return true;
	}
	return false;
}

static bool pair_is(const struct pair *pr, struct h1_str name)
{
	return pr->has_eq && name.n > 0 && str_eq(pr->name, name);
}

int cookie_find(struct h1_str hdr, struct h1_str name, struct h1_str *value)
{
	const char *pos = hdr.p, *end = hdr.p + hdr.n;
	struct pair pr;

	if (!hdr.p)
		return 0;
	while (pair_next(&pos, end, &pr)) {
		if (pair_is(&pr, name)) {
			*value = unquote(pr.value, NULL);
			return 1;
		}
	}
	return 0;
}

int cookie_find_msg(const struct h1_msg *m, struct h1_str name, struct h1_str *value)
{
	for (uint32_t i = 0; i < m->nhdrs; i++)
		if ((m->hdrs[i].flags & H1_HF_COOKIE) && cookie_find(m->hdrs[i].value, name, value))
			return 1;
	return 0;
}

/* Shared by remove and replace: rebuild hdr, dropping (value == NULL) every
 * `name` pair or replacing the first one's value. */
static long rebuild(struct h1_str hdr, struct h1_str name, const struct h1_str *value,
		    char *out, size_t cap)
{
	struct obuf o = { out, 0, cap, false };
	const char *pos = hdr.p, *end = hdr.p + hdr.n;
	bool replaced = false;
	struct pair pr;

	if (!hdr.p)
		return 0;
	while (pair_next(&pos, end, &pr)) {
		if (pair_is(&pr, name)) {
			if (!value)
				continue;
			if (!replaced) {
				bool q;
				unquote(pr.value, &q);
				if (o.n)
					put_lit(&o, "; ");
				put_str(&o, pr.name);
				put_lit(&o, q ? "=\"" : "=");
				put_str(&o, *value);
				if (q)
					put_lit(&o, "\"");
				replaced = true;
				continue;
			}
		}
		if (o.n)
			put_lit(&o, "; ");
		put_str(&o, pr.all);
	}
	return obuf_result(&o);
}

long cookie_remove(struct h1_str hdr, struct h1_str name, char *out, size_t cap)
{
	return rebuild(hdr, name, NULL, out, cap);
}

long cookie_replace(struct h1_str hdr, struct h1_str name, struct h1_str value,
		    char *out, size_t cap)
{
	if (!all_cookie_octets(value))
		return -1;
	return rebuild(hdr, name, &value, out, cap);
}

int cookie_prefix_split(struct h1_str value, char sep, struct h1_str *prefix,
			struct h1_str *rest)
{
	const char *s = value.n ? memchr(value.p, sep, value.n) : NULL;

	if (!s) {
		*prefix = mkstr(value.p, value.p);
		*rest = value;
		return 0;
	}
	*prefix = mkstr(value.p, s);
	*rest = mkstr(s + 1, value.p + value.n);
	return 1;
}

/* ---- Set-Cookie ----------------------------------------------------------- */

int cookie_set_parse(struct h1_str hdr, struct cookie_set *sc)
{
	const char *end = hdr.p + hdr.n, *semi, *eq;

	if (!hdr.p)
		return -1;
	/* RFC 6265 §5.2: the name-value-pair is everything up to the first ';' */
	semi = memchr(hdr.p, ';', hdr.n);
	if (!semi)
		semi = end;
	for (const char *c = hdr.p; c < semi; c++)
		if (((uint8_t)*c < 0x20 && *c != '\t') || (uint8_t)*c == 0x7f)
			return -1;
	/* §5.2 step 2: no '=' means the user agent ignores the whole header */
	eq = memchr(hdr.p, '=', (size_t)(semi - hdr.p));
	if (!eq)
		return -1;
	sc->name = trim(hdr.p, eq);
	if (sc->name.n == 0)
		return -1; /* §5.2 step 5 */
	sc->value = unquote(trim(eq + 1, semi), &sc->quoted);
	sc->attrs = mkstr(semi, end);
	return 0;
}

long cookie_set_rewrite(const struct cookie_set *sc, struct h1_str prefix, char sep,
			struct h1_str value, char *out, size_t cap)
{
	struct obuf o = { out, 0, cap, false };

	if (!all_cookie_octets(value) || !all_cookie_octets(prefix) ||
	    (prefix.n && !is_cookie_octet((uint8_t)sep)))
		return -1;
	put_str(&o, sc->name);
	put_lit(&o, "=");
	if (sc->quoted)
		put_lit(&o, "\"");
	if (prefix.n) {
		put_str(&o, prefix);
		put(&o, &sep, 1);
	}
	put_str(&o, value);
	if (sc->quoted)
		put_lit(&o, "\"");
	put_str(&o, sc->attrs);
	return obuf_result(&o);
}

/* RFC 6265 §4.1.1: path-value and extension-av are <any CHAR except CTLs
 * or ";">; we also refuse ',' so that the header survives proxies that
 * split Set-Cookie on commas. */
static bool attr_ok(struct h1_str s)
{
	for (size_t i = 0; i < s.n; i++) {
		uint8_t c = (uint8_t)s.p[i];
		if (c < 0x21 || c > 0x7e || c == ';' || c == ',')
			return false;
	}
	return true;
}

long cookie_set_build(struct h1_str name, struct h1_str value,
		      const struct cookie_attrs *a, char *out, size_t cap)
{
	struct obuf o = { out, 0, cap, false };

	if (name.n == 0 || !all_cookie_octets(value))
		return -1;
	for (size_t i = 0; i < name.n; i++)
		if (!is_tchar((uint8_t)name.p[i]))
			return -1;
	if (!attr_ok(a->path) || !attr_ok(a->domain))
		return -1;
	put_str(&o, name);
	put_lit(&o, "=");
	put_str(&o, value);
	if (a->path.n) {
		put_lit(&o, "; Path=");
		put_str(&o, a->path);
	}
	if (a->domain.n) {
		put_lit(&o, "; Domain=");
		put_str(&o, a->domain);
	}
	if (a->max_age >= 0) {
		put_lit(&o, "; Max-Age=");
		put_u64(&o, (uint64_t)a->max_age);
	}
	/* RFC 6265bis §4.1.2.7: SameSite=None without Secure is rejected by
	 * current browsers, so None always carries Secure. */
	if (a->secure || a->samesite == COOKIE_SAMESITE_NONE)
		put_lit(&o, "; Secure");
	if (a->httponly)
		put_lit(&o, "; HttpOnly");
	switch (a->samesite) {
	case COOKIE_SAMESITE_LAX:
		put_lit(&o, "; SameSite=Lax");
		break;
	case COOKIE_SAMESITE_STRICT:
		put_lit(&o, "; SameSite=Strict");
		break;
	case COOKIE_SAMESITE_NONE:
		put_lit(&o, "; SameSite=None");
		break;
	case COOKIE_SAMESITE_UNSET:
		break;
	}
	return obuf_result(&o);
}

/* ---- request target ------------------------------------------------------- */

int cookie_query_param(struct h1_str target, struct h1_str name, struct h1_str *value)
{
	const char *end, *pos, *hash, *q;

	if (!target.p || name.n == 0)
		return 0;
	/* RFC 3986 §3.4, §3.5: the query runs from the first '?' to '#' */
	hash = memchr(target.p, '#', target.n);
	end = hash ? hash : target.p + target.n;
	q = memchr(target.p, '?', (size_t)(end - target.p));
	if (!q)
		return 0;
	pos = q + 1;
	while (pos <= end) {
		const char *amp = memchr(pos, '&', (size_t)(end - pos));
		const char *pe = amp ? amp : end;
		const char *eq = memchr(pos, '=', (size_t)(pe - pos));
		const char *ne = eq ? eq : pe;

		if (str_eq(mkstr(pos, ne), name)) {
			*value = eq ? mkstr(eq + 1, pe) : mkstr(pe, pe);
			return 1;
		}
		if (!amp)
			break;
		pos = amp + 1;
	}
	return 0;
}

int cookie_path_param(struct h1_str target, struct h1_str name, struct h1_str *value)
{
	const char *p, *end;

	if (!target.p || name.n == 0)
		return 0;
	/* RFC 3986 §3.3: the path ends at the first '?' or '#' */
	end = target.p;
	while (end < target.p + target.n && *end != '?' && *end != '#')
		end++;
	for (p = target.p; p < end; p++) {
		const char *v, *ve;

		if (*p != ';' || (size_t)(end - p - 1) < name.n + 1)
			continue;
		if (!str_eq_nocase(p + 1, name.p, name.n) || p[1 + name.n] != '=')
			continue;
		v = p + 1 + name.n + 1;
		for (ve = v; ve < end && *ve != '/' && *ve != ';'; ve++)
			;
		*value = mkstr(v, ve);
		return 1;
	}
	return 0;
}

/* ---- base64url (RFC 4648 §5) --------------------------------------------- */

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* base64url alphabet (RFC 4648 5) to 6-bit values, -1 elsewhere: one
 * load per character, as the cookie of every request is decoded. */
static const int8_t b64_dec[256] = {
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1,
	52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1,
	-1,  0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14,
	15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, 63,
	-1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
	41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};

static int b64_val(uint8_t c)
{
	return b64_dec[c];
}

long cookie_b64_encode(const uint8_t *in, size_t n, char *out, size_t cap)
{
	size_t len = cookie_b64_enclen(n), o = 0, i = 0;

	if (n > SIZE_MAX / 2 || len > cap)
		return -1;
	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64_alphabet[v >> 18 & 63];
		out[o++] = b64_alphabet[v >> 12 & 63];
		out[o++] = b64_alphabet[v >> 6 & 63];
		out[o++] = b64_alphabet[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		out[o++] = b64_alphabet[v >> 18 & 63];
		out[o++] = b64_alphabet[v >> 12 & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = b64_alphabet[v >> 18 & 63];
		out[o++] = b64_alphabet[v >> 12 & 63];
		out[o++] = b64_alphabet[v >> 6 & 63];
	}
	BUG_ON(o != len);
	return (long)len;
}

long cookie_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
	size_t o = 0, i = 0;
	uint32_t acc = 0;
	unsigned bits = 0;

	if (n % 4 == 1 || cookie_b64_declen(n) > cap || n > LONG_MAX)
		return -1;
	for (; i < n; i++) {
		int v = b64_val((uint8_t)in[i]);
		if (v < 0)
			return -1;
		acc = (acc << 6 | (uint32_t)v) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	/* RFC 4648 §3.5: the pad bits of the last character must be zero, or
	 * several strings would decode to the same bytes. */
	if (bits && (acc & ((1u << bits) - 1)))
		return -1;
	BUG_ON(o != cookie_b64_declen(n));
	return (long)o;
}

/* ---- JSON (RFC 8259), validated without recursion -------------------------- */


static const char *json_ws(const char *p, const char *e)
{
	while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* RFC 3629 §4: one well-formed UTF-8 sequence starting at p (a byte >=
 * 0x80); returns its end or NULL (overlong forms, surrogates, > U+10FFFF). */
static const char *utf8_seq(const char *p, const char *e)
{
	uint8_t c = (uint8_t)*p;
	uint8_t lo = 0x80, hi = 0xbf;
	int more;

	if (c >= 0xc2 && c <= 0xdf)
		more = 1;
	else if (c >= 0xe0 && c <= 0xef) {
		more = 2;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		more = 3;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else
		return NULL;
	if (e - p <= more)
		return NULL;
	for (int i = 1; i <= more; i++) {
		uint8_t k = (uint8_t)p[i];
		if (k < lo || k > hi)
			return NULL;
		lo = 0x80;
		hi = 0xbf;
	}
	return p + 1 + more;
}

/* A string starting at its opening quote; returns the end after the closing
 * quote or NULL. RFC 8259 §7: no unescaped control character, only the
 * listed escapes, \u followed by exactly four hex digits. */
static const char *json_string(const char *p, const char *e)
{
	p++;
	while (p < e) {
		uint8_t c = (uint8_t)*p;

		if (c == '"')
			return p + 1;
		if (c < 0x20)
			return NULL;
		if (c >= 0x80) {
			p = utf8_seq(p, e);
			if (!p)
				return NULL;
			continue;
		}
		if (c != '\\') {
			p++;
			continue;
		}
		if (e - p < 2)
			return NULL;
		switch (p[1]) {
		case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
			p += 2;
			break;
		case 'u':
			if (e - p < 6 || !is_hex(p[2]) || !is_hex(p[3]) || !is_hex(p[4]) ||
			    !is_hex(p[5]))
				return NULL;
			p += 6;
			break;
		default:
			return NULL;
		}
	}
	return NULL;
}

/* RFC 8259 §6: [ minus ] int [ frac ] [ exp ], int without leading zeros. */
static const char *json_number(const char *p, const char *e)
{
	if (p < e && *p == '-')
		p++;
	if (p >= e || !is_digit(*p))
		return NULL;
	if (*p == '0')
		p++;
	else
		while (p < e && is_digit(*p))
			p++;
	if (p < e && *p == '.') {
		p++;
		if (p >= e || !is_digit(*p))
			return NULL;
		while (p < e && is_digit(*p))
			p++;
	}
	if (p < e && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < e && (*p == '+' || *p == '-'))
			p++;
		if (p >= e || !is_digit(*p))
			return NULL;
		while (p < e && is_digit(*p))
			p++;
	}
	return p;
}

static const char *json_literal(const char *p, const char *e, const char *lit)
{
	size_t n = strlen(lit);

	return (size_t)(e - p) >= n && memcmp(p, lit, n) == 0 ? p + n : NULL;
}

/* A scalar at p (no leading whitespace); sets *type (0 for true/false/null). */
static const char *json_scalar(const char *p, const char *e, int *type)
{
	*type = 0;
	switch (*p) {
	case '"':
		*type = COOKIE_JSON_STRING;
		return json_string(p, e);
	case 't':
		return json_literal(p, e, "true");
	case 'f':
		return json_literal(p, e, "false");
	case 'n':
		return json_literal(p, e, "null");
	default:
		*type = COOKIE_JSON_NUMBER;
		return json_number(p, e);
	}
}

/* `"key" ws ":"` starting at p (after whitespace); returns past the colon. */
static const char *json_key(const char *p, const char *e)
{
	p = json_ws(p, e);
	if (p >= e || *p != '"')
		return NULL;
	p = json_string(p, e);
	if (!p)
		return NULL;
	p = json_ws(p, e);
	if (p >= e || *p != ':')
		return NULL;
	return p + 1;
}

/*
 * Validate and skip one value starting at p (after whitespace). Containers
 * are walked with an explicit stack of one bit per level (1 = array), so a
 * token of nested brackets costs no C stack: depth beyond
 * COOKIE_JSON_MAX_DEPTH is malformed. *type is the type of the value at p
 * (0 for containers and literals). Returns the end or NULL.
 */
static const char *json_value(const char *p, const char *e, int *type)
{
	uint64_t arr = 0;
	int depth = 0;

	_Static_assert(COOKIE_JSON_MAX_DEPTH <= 64, "one bit per level in a uint64_t");
	*type = 0;
	for (;;) {
		bool closed = false;
		int t;

		/* a value is expected at p */
		p = json_ws(p, e);
		if (p >= e)
			return NULL;
		if (*p == '{' || *p == '[') {
			bool is_arr = *p == '[';

			if (depth >= COOKIE_JSON_MAX_DEPTH)
				return NULL;
			if (is_arr)
				arr |= (uint64_t)1 << depth;
			else
				arr &= ~((uint64_t)1 << depth);
			depth++;
			p = json_ws(p + 1, e);
			if (p >= e)
				return NULL;
			if (*p == (is_arr ? ']' : '}')) {
				p++;
				depth--;
				closed = true;
			} else if (!is_arr) {
				p = json_key(p, e);
				if (!p)
					return NULL;
				continue;
			} else
				continue;
		}
		if (!closed) {
			p = json_scalar(p, e, &t);
			if (!p)
				return NULL;
			if (depth == 0)
				*type = t;
		}
		/* after a value: close containers or move to the next element */
		for (;;) {
			bool is_arr;

			if (depth == 0)
				return p;
			is_arr = (arr >> (depth - 1)) & 1;
			p = json_ws(p, e);
			if (p >= e)
				return NULL;
			if (*p == (is_arr ? ']' : '}')) {
				p++;
				depth--;
				continue;
			}
			if (*p != ',')
				return NULL;
			p++;
			if (!is_arr) {
				p = json_key(p, e);
				if (!p)
					return NULL;
			}
			break;
		}
	}
}

int cookie_json_member(const char *json, size_t n, struct h1_str name,
		       struct h1_str *value)
{
	const char *p = json, *e = json + n;
	int found = -1; /* -1: not seen, else the type (0: unusable type) */
	struct h1_str v = { NULL, 0 };

	if (!json)
		return -1;
	p = json_ws(p, e);
	if (p >= e || *p != '{')
		return -1;
	p = json_ws(p + 1, e);
	if (p < e && *p == '}') {
		p++;
	} else {
		for (;;) {
			const char *ks, *vs;
			int t;

			if (p >= e || *p != '"')
				return -1;
			ks = p + 1;
			p = json_string(p, e);
			if (!p)
				return -1;
			struct h1_str key = mkstr(ks, p - 1);
			p = json_ws(p, e);
			if (p >= e || *p != ':')
				return -1;
			vs = json_ws(p + 1, e);
			p = json_value(vs, e, &t);
			if (!p)
				return -1;
			if (str_eq(key, name)) {
				if (found >= 0)
					return -1; /* duplicate: ambiguous */
				found = t;
				if (t == COOKIE_JSON_STRING)
					v = mkstr(vs + 1, p - 1);
				else if (t == COOKIE_JSON_NUMBER)
					v = mkstr(vs, p);
			}
			p = json_ws(p, e);
			if (p < e && *p == ',') {
				p = json_ws(p + 1, e);
				continue;
			}
			if (p < e && *p == '}') {
				p++;
				break;
			}
			return -1;
		}
	}
	if (json_ws(p, e) != e)
		return -1;
	if (found <= 0)
		return 0;
	*value = v;
	return found;
}

/* ---- JWT (RFC 7519 §7.2, RFC 7515 §7.1) ----------------------------------- */

static bool all_b64(struct h1_str s)
{
	for (size_t i = 0; i < s.n; i++)
		if (b64_val((uint8_t)s.p[i]) < 0)
			return false;
	return true;
}

int cookie_jwt_split(struct h1_str token, struct cookie_jwt *j)
{
	const char *end = token.p + token.n, *d1, *d2;

	if (!token.p || token.n == 0)
		return -1;
	d1 = memchr(token.p, '.', token.n);
	if (!d1)
		return -1;
	d2 = memchr(d1 + 1, '.', (size_t)(end - d1 - 1));
	if (!d2)
		return -1;
	j->header = mkstr(token.p, d1);
	j->payload = mkstr(d1 + 1, d2);
	j->signature = mkstr(d2 + 1, end);
	j->signing = mkstr(token.p, d2);
	/* a JWE (five parts) or anything else with more dots is not for us */
	if (j->header.n == 0 || j->payload.n == 0 || !all_b64(j->header) ||
	    !all_b64(j->payload) || !all_b64(j->signature))
		return -1;
	return 0;
}

long cookie_jwt_payload(const struct cookie_jwt *j, uint8_t *out, size_t cap)
{
	return cookie_b64_decode(j->payload.p, j->payload.n, out, cap);
}

int cookie_jwt_claim(struct h1_str token, struct h1_str claim, uint8_t *buf,
		     size_t cap, struct h1_str *value)
{
	struct cookie_jwt j;
	long n;

	if (cookie_jwt_split(token, &j) < 0)
		return -1;
	n = cookie_jwt_payload(&j, buf, cap);
	if (n < 0)
		return -1;
	return cookie_json_member((const char *)buf, (size_t)n, claim, value);
}

int cookie_jwt_verify_hs256(const struct cookie_jwt *j, const uint8_t *key, size_t keylen)
{
	uint8_t hdr[1024], sig[crypto_auth_hmacsha256_BYTES], mac[crypto_auth_hmacsha256_BYTES];
	crypto_auth_hmacsha256_state st;
	struct h1_str alg;
	long n;
	int ok;

	/* RFC 8725 §3.1: check the algorithm, so "none" or an RS256 token is
	 * never taken for an HMAC one. */
	n = cookie_b64_decode(j->header.p, j->header.n, hdr, sizeof(hdr));
	if (n < 0 || cookie_json_member((const char *)hdr, (size_t)n, cookie_str("alg"),
					&alg) != COOKIE_JSON_STRING ||
	    !str_eq(alg, cookie_str("HS256")))
		return 0;
	if (cookie_b64_decode(j->signature.p, j->signature.n, sig, sizeof(sig)) !=
	    (long)sizeof(sig))
		return 0;
	crypto_auth_hmacsha256_init(&st, keylen ? key : (const uint8_t *)"", keylen);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)j->signing.p, j->signing.n);
	crypto_auth_hmacsha256_final(&st, mac);
	ok = sodium_memcmp(mac, sig, sizeof(mac)) == 0;
	sodium_memzero(&st, sizeof(st));
	return ok;
}

int cookie_bearer(struct h1_str authz, struct h1_str *token)
{
	struct h1_str t;

	if (!authz.p)
		return 0;
	t = trim(authz.p, authz.p + authz.n);
	/* RFC 9110 §11.4: credentials = auth-scheme [ 1*SP token68 ] */
	if (t.n < 8 || !str_eq_nocase(t.p, "bearer", 6) || !is_wsp(t.p[6]))
		return 0;
	t = trim(t.p + 7, t.p + t.n);
	if (t.n == 0)
		return 0;
	for (size_t i = 0; i < t.n; i++)
		if (is_wsp(t.p[i]))
			return 0;
	*token = t;
	return 1;
}

/* Seconds from then to now; 0 when then is later (see cookie_age()). */
static uint64_t seconds_since(uint32_t now_s, uint32_t then_s)
{
	return then_s > now_s ? 0 : now_s - then_s;
}

enum cookie_age cookie_age(uint32_t now_s, uint32_t issued, uint32_t refreshed,
			   uint32_t max_idle_ms, uint32_t max_life_ms)
{
	uint64_t idle_ms = seconds_since(now_s, refreshed) * 1000;

	if ((max_idle_ms && idle_ms > max_idle_ms) ||
	    (max_life_ms && seconds_since(now_s, issued) * 1000 > max_life_ms) ||
	    (uint64_t)refreshed > (uint64_t)now_s + 300)
		return COOKIE_EXPIRED;
	return max_idle_ms && idle_ms > max_idle_ms / 4 ? COOKIE_REFRESH : COOKIE_FRESH;
}
