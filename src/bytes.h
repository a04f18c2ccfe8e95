/*
 * bytes.h - for the binary formats bollard writes itself (sealed cookies,
 * the state file): fixed-width little-endian integers (the byte order is
 * part of the format, not of the machine) and a growable byte buffer.
 */
#ifndef BOLLARD_BYTES_H
#define BOLLARD_BYTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

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
	if (b->len + n > b->cap) {
		size_t ncap = b->cap ? b->cap * 2 : first_cap;
		while (ncap < b->len + n)
			ncap *= 2;
		uint8_t *np = realloc(b->p, ncap);
		if (!np) {
			b->oom = true;
			return NULL;
		}
		b->p = np;
		b->cap = ncap;
	}
	b->len += n;
	return b->p + b->len - n;
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
