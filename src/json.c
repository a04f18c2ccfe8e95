/*
 * json.c - a tiny JSON writer (RFC 8259).
 *
 * The only subtle part is the string escaping. RFC 8259 section 7 requires
 * escaping the quotation mark, the reverse solidus and the control
 * characters U+0000..U+001F; section 8.1 requires the text to be UTF-8. The
 * strings we write come from places an operator or a client controls
 * (configuration names, addresses, later request paths and cookie values in
 * the JSON access log), so we do not trust them to be UTF-8: every byte
 * that does not start a well-formed UTF-8 sequence (RFC 3629 section 4) is
 * written as \ufffd, the replacement character. DEL (0x7f) is escaped too,
 * so that a JSON log line never carries a raw control byte to a terminal.
 * The result is always valid JSON whatever the input bytes.
 */
#include "api.h"
#include "bytes.h"
#include "json.h"

static const char hexdig[] = "0123456789abcdef";

/*
 * Length of the well-formed UTF-8 sequence at s[0..n), or 0 when s does not
 * start one. RFC 3629 section 4 (the table of well-formed byte sequences):
 * it excludes overlong forms, surrogates (ED A0..BF) and code points above
 * U+10FFFF.
 */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	unsigned char lo = 0x80, hi = 0xbf;
	size_t len, i;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0;      /* overlong */
		else if (c == 0xed)
			hi = 0x9f;      /* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90;      /* overlong */
		else if (c == 0xf4)
			hi = 0x8f;      /* above U+10FFFF */
	} else
		return 0;
	if (n < len)
		return 0;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

/*
 * The escaped form of the character at s[0..n): writes it to piece (at most
 * 6 bytes), stores its length in *plen and returns how many input bytes it
 * consumed.
 */
static size_t escape_one(const unsigned char *s, size_t n, char *piece,
			 size_t *plen)
{
	unsigned char c = s[0];
	size_t ulen;

	switch (c) {
	case '"':  memcpy(piece, "\\\"", 2); *plen = 2; return 1;
	case '\\': memcpy(piece, "\\\\", 2); *plen = 2; return 1;
	case '\b': memcpy(piece, "\\b", 2); *plen = 2; return 1;
	case '\f': memcpy(piece, "\\f", 2); *plen = 2; return 1;
	case '\n': memcpy(piece, "\\n", 2); *plen = 2; return 1;
	case '\r': memcpy(piece, "\\r", 2); *plen = 2; return 1;
	case '\t': memcpy(piece, "\\t", 2); *plen = 2; return 1;
	default:
		break;
	}
	if (c < 0x20 || c == 0x7f) {
		/* RFC 8259 section 7: \u followed by four hex digits */
		piece[0] = '\\';
		piece[1] = 'u';
		piece[2] = '0';
		piece[3] = '0';
		piece[4] = hexdig[c >> 4];
		piece[5] = hexdig[c & 15];
		*plen = 6;
		return 1;
	}
	ulen = utf8_len(s, n);
	if (ulen == 0) {
		memcpy(piece, "\\ufffd", 6);
		*plen = 6;
		return 1;
	}
	memcpy(piece, s, ulen);
	*plen = ulen;
	return ulen;
}

size_t json_escape(char *dst, size_t cap, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t need = 0, used = 0, i = 0, plen;
	bool full = false;
	char piece[6];

	while (i < n) {
		i += escape_one(p + i, n - i, piece, &plen);
		/* keep whole escapes only, and room for the NUL */
		if (!full && used + plen < cap) {
			memcpy(dst + used, piece, plen);
			used += plen;
		} else
			full = true;
		need += plen;
	}
	if (cap > 0)
		dst[used] = '\0';
	return need;
}

void json_init(struct json *j, char *buf, size_t cap)
{
	memset(j, 0, sizeof(*j));
	j->buf = buf;
	j->cap = cap;
	if (cap == 0)
		j->overflow = true;
	else
		buf[0] = '\0';
}

void json_init_heap(struct json *j)
{
	memset(j, 0, sizeof(*j));
	j->heap = true;
	j->cap = 256;
	j->buf = malloc(j->cap);
	if (!j->buf) {
		j->cap = 0;
		j->overflow = true;
		return;
	}
	j->buf[0] = '\0';
}

void json_free(struct json *j)
{
	if (j->heap)
		free(j->buf);
	j->buf = NULL;
	j->cap = j->len = 0;
	j->overflow = true;
}

/* Make room for n more bytes plus the NUL; false (and overflow) if not. */
static bool reserve(struct json *j, size_t n)
{
	char *nb;

	if (j->overflow)
		return false;
	if (n < j->cap - j->len)
		return true;
	/* a caller's buffer never grows; a heap one by the one growth rule of
	 * every heap buffer (bytes.h) */
	nb = j->heap && n < SIZE_MAX ? bytes_grow(j->buf, &j->cap, j->len, n + 1, 256) : NULL;
	if (!nb) {
		j->overflow = true;
		return false;
	}
	j->buf = nb;
	return true;
}

static void put(struct json *j, const char *s, size_t n)
{
	if (!reserve(j, n))
		return;
	memcpy(j->buf + j->len, s, n);
	j->len += n;
	j->buf[j->len] = '\0';
}

/* Before any value or key: the comma between elements. */
static void sep(struct json *j)
{
	uint32_t bit;

	if (j->after_key) {
		/* the value of a member: the key already placed the comma */
		j->after_key = false;
		return;
	}
	if (j->depth == 0)
		return;
	bit = 1u << (j->depth - 1);
	if (j->has_elem & bit)
		put(j, ",", 1);
	j->has_elem |= bit;
}

static void open_c(struct json *j, char c)
{
	sep(j);
	if (j->depth >= JSON_MAX_DEPTH) {
		/* deeper than we ever write: a caller bug, report it as an error */
		j->overflow = true;
		return;
	}
	put(j, &c, 1);
	j->depth++;
	j->has_elem &= ~(1u << (j->depth - 1));
}

static void close_c(struct json *j, char c)
{
	if (j->depth == 0) {
		j->overflow = true;
		return;
	}
	j->depth--;
	put(j, &c, 1);
}

void json_obj_open(struct json *j)  { open_c(j, '{'); }
void json_obj_close(struct json *j) { close_c(j, '}'); }
void json_arr_open(struct json *j)  { open_c(j, '['); }
void json_arr_close(struct json *j) { close_c(j, ']'); }

static void quoted(struct json *j, const char *s, size_t n)
{
	size_t need = json_escape(NULL, 0, s, n);

	if (!reserve(j, need + 2))
		return;
	j->buf[j->len++] = '"';
	json_escape(j->buf + j->len, j->cap - j->len, s, n);
	j->len += need;
	j->buf[j->len++] = '"';
	j->buf[j->len] = '\0';
}

void json_key(struct json *j, const char *name)
{
	sep(j);
	quoted(j, name, strlen(name));
	put(j, ":", 1);
	j->after_key = true;
}

void json_strn(struct json *j, const char *s, size_t n)
{
	sep(j);
	quoted(j, s, n);
}

void json_str(struct json *j, const char *s)
{
	json_strn(j, s, strlen(s));
}

void json_u64(struct json *j, uint64_t v)
{
	char tmp[24];
	int n = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);

	sep(j);
	put(j, tmp, (size_t)n);
}

void json_i64(struct json *j, int64_t v)
{
	char tmp[24];
	int n = snprintf(tmp, sizeof(tmp), "%lld", (long long)v);

	sep(j);
	put(j, tmp, (size_t)n);
}

void json_bool(struct json *j, bool v)
{
	sep(j);
	if (v)
		put(j, "true", 4);
	else
		put(j, "false", 5);
}

void json_null(struct json *j)
{
	sep(j);
	put(j, "null", 4);
}

void json_kv_str(struct json *j, const char *key, const char *s)
{
	json_key(j, key);
	json_str(j, s);
}

void json_kv_u64(struct json *j, const char *key, uint64_t v)
{
	json_key(j, key);
	json_u64(j, v);
}

void json_kv_i64(struct json *j, const char *key, int64_t v)
{
	json_key(j, key);
	json_i64(j, v);
}

const char *json_result(const struct json *j)
{
	if (j->overflow)
		return NULL;
	return j->buf;
}
