/*
 * cookie.h - pure helpers over the bytes that carry a session key: the
 * Cookie and Set-Cookie headers (RFC 6265), query and path parameters of a
 * request target, base64url (RFC 4648 §5) and compact JWTs (RFC 7519,
 * RFC 7515). persist.c and seal.c build the persistence methods of SPEC
 * §3.1 on top of them.
 *
 * Every function here is pure: no I/O, no allocation, no global state, and
 * bounded by its input. What is returned as a struct h1_str points into the
 * caller's input (or into the caller's buffer, where said); the caller owns
 * all memory and keeps it alive as long as it uses the result.
 *
 * Return conventions (doc/principles.md §1), the same across this file:
 *   - lookups  (cookie_find, cookie_query_param, ...): 1 found, 0 absent;
 *     the out-parameter is set only when found;
 *   - parsers  (cookie_set_parse, cookie_jwt_split): 0 ok, -1 invalid;
 *   - builders (anything writing into out[0..cap)): the number of bytes
 *     written (>= 0), or -1 when out is too small or an input would make a
 *     malformed header (a CTL, ';' or ',' where it does not belong). Nothing
 *     is NUL-terminated; out may be partly written on -1.
 * Names are given as struct h1_str; cookie_str() makes one from a C string.
 */
#ifndef BOLLARD_COOKIE_H
#define BOLLARD_COOKIE_H

#include "api.h"
#include "h1.h"

static inline struct h1_str cookie_str(const char *s)
{
	struct h1_str r = { s, s ? strlen(s) : 0 };
	return r;
}

/* ---- Cookie request header (RFC 6265 §4.2, §5.4) --------------------------
 * One header value at a time; a request with several Cookie lines is
 * searched by calling these on each line in order (first match wins).
 * Parsing is lenient, as browsers are: pairs are split on ';', spaces and
 * tabs around pairs, names and values are ignored, empty pairs are skipped,
 * a pair without '=' has no name and never matches. Names match exactly
 * (case-sensitive, byte for byte). */

/*
 * Find cookie `name` (non-empty) in one Cookie header value. On success sets
 * *value to its value, without surrounding DQUOTEs (a value of the form
 * "..." of at least two bytes loses its first and last byte; an unbalanced
 * quote stays), and returns 1. Returns 0 when absent.
 */
int cookie_find(struct h1_str hdr, struct h1_str name, struct h1_str *value);
/* cookie_find() over every Cookie field of a parsed request, first match
 * wins. Returns 1 (found) or 0. */
int cookie_find_msg(const struct h1_msg *m, struct h1_str name, struct h1_str *value);

/*
 * Rebuild the Cookie header value hdr into out[0..cap) without any cookie
 * called `name` (every occurrence: the server must never see it). The other
 * pairs stay in order, byte for byte (trimmed), joined by "; ". Returns the
 * length (0 when nothing is left: the caller drops the header), or -1 when
 * cap is too small. cap >= 2 * hdr.n always suffices. out must not overlap
 * hdr.
 */
long cookie_remove(struct h1_str hdr, struct h1_str name, char *out, size_t cap);

/*
 * Rebuild hdr into out[0..cap) with the value of the first cookie `name`
 * replaced by `value` (its DQUOTEs are kept around the new value if the old
 * one had them), other pairs as in cookie_remove(). A header without the
 * cookie is rebuilt unchanged but for separators. Returns the length or -1
 * (cap too small, or value holds a byte that is not a cookie-octet).
 * cap >= 2 * hdr.n + value.n + 2 always suffices.
 */
long cookie_replace(struct h1_str hdr, struct h1_str name, struct h1_str value,
		    char *out, size_t cap);

/*
 * `persist cookie NAME prefix`: split "SRVID<sep>appvalue" at the first sep.
 * Returns 1 with *prefix = "SRVID" and *rest = "appvalue"; 0 when value
 * holds no sep (then *prefix is empty and *rest = value).
 */
int cookie_prefix_split(struct h1_str value, char sep, struct h1_str *prefix,
			struct h1_str *rest);

/* ---- Set-Cookie response header (RFC 6265 §4.1, §5.2) --------------------- */

struct cookie_set {
	struct h1_str name;   /* trimmed, non-empty */
	struct h1_str value;  /* trimmed, DQUOTEs stripped as in cookie_find() */
	struct h1_str attrs;  /* from the ';' that ends the pair to the end of the
			       * value, verbatim; empty when there is none */
	bool quoted;          /* the value was "..." */
};

/*
 * Parse one Set-Cookie header value. Returns 0 and fills *sc, or -1 when
 * the user agent would ignore it (RFC 6265 §5.2: no '=' in the pair, or an
 * empty name) or the pair holds a CTL byte.
 */
int cookie_set_parse(struct h1_str hdr, struct cookie_set *sc);

/*
 * Write "NAME=<value><attrs>" into out[0..cap): the cookie sc (parsed from
 * a server's header) with its value replaced and its attributes intact.
 * When prefix.n > 0 the value written is prefix, sep, value (for `persist
 * cookie NAME prefix`). DQUOTEs are kept if sc->quoted. Returns the length
 * or -1 (cap too small, prefix or value not made of cookie-octets).
 */
long cookie_set_rewrite(const struct cookie_set *sc, struct h1_str prefix, char sep,
			struct h1_str value, char *out, size_t cap);

enum cookie_samesite {
	COOKIE_SAMESITE_UNSET = 0, /* no attribute */
	COOKIE_SAMESITE_LAX,
	COOKIE_SAMESITE_STRICT,
	COOKIE_SAMESITE_NONE,      /* implies Secure: browsers drop it otherwise */
};

struct cookie_attrs {
	struct h1_str path;        /* empty: no Path */
	struct h1_str domain;      /* empty: no Domain */
	int64_t max_age;           /* seconds; < 0: no Max-Age (a session cookie) */
	bool secure;
	bool httponly;
	enum cookie_samesite samesite;
};

/*
 * Build our own Set-Cookie value "NAME=VALUE; Path=..; Domain=..;
 * Max-Age=..; Secure; HttpOnly; SameSite=.." into out[0..cap), attributes
 * in that order, each only when set. name must be a token, value
 * cookie-octets, path and domain free of CTLs and ';'. Returns the length or
 * -1 (cap too small or invalid input).
 */
long cookie_set_build(struct h1_str name, struct h1_str value,
		      const struct cookie_attrs *a, char *out, size_t cap);

/* ---- Request target (RFC 3986 §3.3, §3.4) ----------------------------------
 * No percent-decoding: names and values are the raw bytes of the target. */

/*
 * The query parameter `name` of target ("/a?x=1&NAME=v&y"): parameters are
 * split on '&', the query ends at '#'. First exact match wins; "NAME" with
 * no '=' is found with an empty value. Returns 1/0.
 */
int cookie_query_param(struct h1_str target, struct h1_str name, struct h1_str *value);

/*
 * The path parameter ";NAME=value" in the path part of target (before '?'
 * or '#'), name matched case-insensitively (servlet containers write
 * ";jsessionid="). The value ends at '?', '/', ';', '#' or the end. First
 * match wins. Returns 1/0.
 */
int cookie_path_param(struct h1_str target, struct h1_str name, struct h1_str *value);

/* ---- base64url without padding (RFC 4648 §5, §3.2) ------------------------ */

/* Encoded length of n bytes; decoded length of n characters (n % 4 != 1). */
static inline size_t cookie_b64_enclen(size_t n)
{
	return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

static inline size_t cookie_b64_declen(size_t n)
{
	return n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
}

/* Encode in[0..n) into out[0..cap). Returns the length or -1 (cap). */
long cookie_b64_encode(const uint8_t *in, size_t n, char *out, size_t cap);

/*
 * Strict decoding of in[0..n) into out[0..cap): only [A-Za-z0-9_-], no
 * padding, no whitespace, n % 4 != 1, and the unused low bits of the last
 * character must be zero (RFC 4648 §3.5: one encoding per byte string, so a
 * sealed cookie cannot be varied without breaking it). Returns the decoded
 * length or -1.
 */
long cookie_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap);

/* ---- JWT, compact serialization (RFC 7519 §3, RFC 7515 §7.1) -------------- */

struct cookie_jwt {
	struct h1_str header;    /* base64url of the JOSE header */
	struct h1_str payload;   /* base64url of the claims */
	struct h1_str signature; /* base64url of the signature (may be empty) */
	struct h1_str signing;   /* "header.payload": the signing input */
};

/*
 * Split a compact JWS "h.p.s" (exactly two dots; header and payload
 * non-empty; every part made of base64url characters). 0 or -1.
 */
int cookie_jwt_split(struct h1_str token, struct cookie_jwt *j);

/* Decode the payload into out[0..cap): the claims JSON. Length or -1. */
long cookie_jwt_payload(const struct cookie_jwt *j, uint8_t *out, size_t cap);

enum cookie_json_type {
	COOKIE_JSON_STRING = 1,
	COOKIE_JSON_NUMBER = 2,
};

/*
 * Find the top-level member `name` of the JSON object json[0..n) (RFC 8259).
 * The whole document is validated, iteratively (nesting up to
 * COOKIE_JSON_MAX_DEPTH, nested values are skipped), so a malformed
 * document is never half-used. Member names are compared with the raw bytes
 * between their quotes (an escaped name does not match its unescaped form).
 * Returns COOKIE_JSON_STRING with *value = the raw bytes between the quotes
 * (escapes validated, not decoded: "\u00e9" stays 6 bytes), or
 * COOKIE_JSON_NUMBER with *value = the number token as written; 0 when the
 * member is absent or is a bool, null, object or array; -1 when the
 * document is not a single valid JSON object or holds `name` twice (two
 * readings of one token are one too many).
 */
#define COOKIE_JSON_MAX_DEPTH 64
int cookie_json_member(const char *json, size_t n, struct h1_str name,
		       struct h1_str *value);

/*
 * All of the above in one call, for `persist jwt CLAIM`: split token,
 * decode its payload into buf[0..cap), find claim. Returns as
 * cookie_json_member() (*value points into buf); -1 also for a malformed
 * token or a payload larger than cap.
 */
int cookie_jwt_claim(struct h1_str token, struct h1_str claim, uint8_t *buf,
		     size_t cap, struct h1_str *value);

/*
 * HS256 (RFC 7518 §3.2): 1 when the JOSE header says "alg":"HS256" and the
 * signature is base64url(HMAC-SHA256(key, header "." payload)), compared in
 * constant time; 0 otherwise (including malformed). Any key length. Uses
 * libsodium; the caller has run sodium_init().
 */
int cookie_jwt_verify_hs256(const struct cookie_jwt *j, const uint8_t *key, size_t keylen);

/*
 * The token of an "Authorization: Bearer TOKEN" value (RFC 6750 §2.1; the
 * scheme is case-insensitive, RFC 9110 §11.1). 1 with *token set, or 0.
 */
int cookie_bearer(struct h1_str authz, struct h1_str *token);

/* ---- Age of an insert cookie (persist cookie ... max-idle, max-life) ------
 * An insert cookie carries the seconds it was issued and last refreshed
 * at, read against now (the same epoch). COOKIE_EXPIRED: refreshed more
 * than max_idle_ms ago, or issued more than max_life_ms ago (0: no such
 * bound), or refreshed over 300 s in the future; COOKIE_REFRESH: valid,
 * but refreshed over a quarter of max_idle_ms ago (time to issue it
 * again); COOKIE_FRESH otherwise. A time a little ahead of now is not
 * old: another instance sharing the secret-file may run a second ahead,
 * and a clock may be stepped back.
 */
enum cookie_age { COOKIE_FRESH, COOKIE_REFRESH, COOKIE_EXPIRED };

enum cookie_age cookie_age(uint32_t now_s, uint32_t issued, uint32_t refreshed,
			   uint32_t max_idle_ms, uint32_t max_life_ms);

#endif
