/*
 * bytes.h - for the binary formats bollard writes itself (sealed cookies,
 * the state file): fixed-width little-endian integers (the byte order is
 * part of the format, not of the machine) and a growable byte buffer.
 *
 * bytes_u64_dec() is the one integer-to-decimal of the writers that must
 * not call printf per request (http.c, log.c, cookie.c, h2_head.c).
 *
 * bytes_grow() is the one growth rule of the heap buffers bollard grows on
 * the control path: struct bytebuf here, the runtime API's answers
 * (admin_buf, admin.c) and the heap JSON writer (json.c).
 */
#ifndef BOLLARD_BYTES_H
#define BOLLARD_BYTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/*
 * A heap block p of *cap bytes (NULL and 0 at first) that must hold used + n
 * bytes: p itself when it does, else p reallocated to the next doubling of
 * *cap (of first_cap, for an empty block) that holds them, *cap updated.
 * NULL when out of memory or past SIZE_MAX; p is then still valid and *cap
 * unchanged, so the caller keeps what it has and reports the failure.
 */
static inline void *bytes_grow(void *p, size_t *cap, size_t used, size_t n, size_t first_cap)
{
	if (n > SIZE_MAX - used)
		return NULL;
	size_t need = used + n, ncap = *cap ? *cap : first_cap ? first_cap : 1;
	if (need <= *cap)
		return p;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2)
			return NULL;
		ncap *= 2;
	}
	void *np = realloc(p, ncap);
	if (np)
		*cap = ncap;
	return np;
}

/* A growable byte buffer; zero-initialise it, free(b.p) when done. */
struct bytebuf {
	uint8_t *p;
	size_t len, cap;
	bool oom;      /* sticky: an allocation failed */
};

/* Append n bytes of room (the caller fills them) and return where they
 * start, growing by doubling from first_cap; NULL once out of memory. */
static inline uint8_t *bytebuf_room(struct bytebuf *b, size_t n, size_t first_cap)
{
	if (b->oom)
		return NULL;
	uint8_t *np = bytes_grow(b->p, &b->cap, b->len, n, first_cap);
	if (!np) {
		b->oom = true;
		return NULL;
	}
	b->p = np;
	b->len += n;
	return b->p + b->len - n;
}

/* The decimal digits of v, written at the end of tmp (BYTES_U64_DEC bytes:
 * any uint64_t fits); returns where they begin. No NUL. */
#define BYTES_U64_DEC 20
static inline char *bytes_u64_dec(char tmp[BYTES_U64_DEC], uint64_t v)
{
	char *p = tmp + BYTES_U64_DEC;
	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return p;
}

static inline void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t get32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static inline uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

#endif
