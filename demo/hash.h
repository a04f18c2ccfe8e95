/*
 * hash.h - the three small codecs the demo application needs and must not
 * pull a library for: SHA-256 (streamed, to fingerprint request bodies in
 * /echo without buffering them), SHA-1 and base64 (the WebSocket handshake,
 * RFC 6455 section 4.2.2). Pure functions, no allocation.
 */
#ifndef DEMO_HASH_H
#define DEMO_HASH_H

#include <stddef.h>
#include <stdint.h>

struct hash_sha256 {
	uint32_t h[8];
	uint64_t total;        /* bytes fed so far */
	uint8_t block[64];     /* partial block */
	size_t fill;           /* bytes in block */
};

struct hash_sha1 {
	uint32_t h[5];
	uint64_t total;
	uint8_t block[64];
	size_t fill;
};

/* SHA-256 (FIPS 180-4): init, feed any number of byte ranges, then final
 * writes the 32-byte digest. The context is reusable after init. */
void hash_sha256_init(struct hash_sha256 *s);
void hash_sha256_update(struct hash_sha256 *s, const void *data, size_t len);
void hash_sha256_final(struct hash_sha256 *s, uint8_t out[32]);

/* SHA-1 (FIPS 180-4), used only for Sec-WebSocket-Accept. */
void hash_sha1_init(struct hash_sha1 *s);
void hash_sha1_update(struct hash_sha1 *s, const void *data, size_t len);
void hash_sha1_final(struct hash_sha1 *s, uint8_t out[20]);

/* Standard base64 with padding (RFC 4648 section 4). Writes
 * 4 * ceil(len / 3) characters and a NUL to out; returns the characters
 * written (without the NUL). out must hold that many plus one. */
size_t hash_base64(const uint8_t *in, size_t len, char *out);

/* Lower-case hex of len bytes into out (2 * len characters and a NUL). */
void hash_hex(const uint8_t *in, size_t len, char *out);

#endif
