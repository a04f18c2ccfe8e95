/*
 * sbuf.c - a growable byte buffer for building responses. Writers append
 * without checking each call; an allocation failure latches b->oom and the
 * caller checks once (and drops the connection) when the answer is built.
 */
#include "demo.h"

#include <stdlib.h>
#include <string.h>

bool sbuf_reserve(struct sbuf *b, size_t n, size_t max)
{
	size_t cap;
	char *p;

	if (b->oom)
		return false;
	if (b->cap - b->len >= n)
		return true;
	if (n > max || b->len > max - n) {
		b->oom = true;
		return false;
	}
	cap = b->cap ? b->cap : 4096;
	while (cap - b->len < n)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p) {
		b->oom = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

void sbuf_put(struct sbuf *b, const void *s, size_t n)
{
	if (!sbuf_reserve(b, n, DEMO_OUT_MAX))
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

void sbuf_puts(struct sbuf *b, const char *s)
{
	sbuf_put(b, s, strlen(s));
}

void sbuf_putu(struct sbuf *b, uint64_t v)
{
	char tmp[24];
	size_t i = sizeof(tmp);

	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	sbuf_put(b, tmp + i, sizeof(tmp) - i);
}

void sbuf_json(struct sbuf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, run = 0;

	sbuf_put(b, "\"", 1);
	/* RFC 8259 section 7: quote, backslash and control characters must
	 * be escaped; copy the runs in between in one go. */
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch >= 0x20 && ch < 0x80 && ch != '"' && ch != '\\')
			continue;
		sbuf_put(b, s + run, i - run);
		run = i + 1;
		if (ch == '"' || ch == '\\') {
			char e[2] = { '\\', (char)ch };
			sbuf_put(b, e, 2);
		} else {
			char e[6] = { '\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15] };
			sbuf_put(b, e, 6);
		}
	}
	sbuf_put(b, s + run, n - run);
	sbuf_put(b, "\"", 1);
}

void sbuf_html(struct sbuf *b, const char *s, size_t n)
{
	size_t i, run = 0;

	for (i = 0; i < n; i++) {
		const char *e;
		switch (s[i]) {
		case '<': e = "&lt;"; break;
		case '>': e = "&gt;"; break;
		case '&': e = "&amp;"; break;
		case '"': e = "&quot;"; break;
		case '\'': e = "&#39;"; break;
		default: continue;
		}
		sbuf_put(b, s + run, i - run);
		sbuf_puts(b, e);
		run = i + 1;
	}
	sbuf_put(b, s + run, n - run);
}

void sbuf_free(struct sbuf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
	b->oom = false;
}
