/*
 * bench_seal.c - how many persistence cookies a core can seal and open per
 * second (issue 6, microbenchmarks).
 *
 * persist.c keeps its cookie_seal()/cookie_open() static, so this does the
 * same work with the same sizes rather than calling them: a 17-byte
 * plaintext (version, server-name hash, issued, refreshed) sealed with
 * XChaCha20-Poly1305-IETF under a 24-byte nonce (16 random bytes + a
 * counter, as persist.c builds it), associated data "backend/rule", and the
 * 65 raw bytes (nonce + ciphertext + tag) encoded with cookie_b64_encode()
 * from src/cookie.c into an 87-character cookie value. Opening is the
 * reverse: decode, decrypt, check. If persist.c's layout changes, change
 * SEAL_PLAIN here with it; the numbers only mean something while they match.
 *
 * Also measured: the base64url encode and decode alone, and an open of a
 * forged cookie (the tag check fails: what a client sending garbage costs).
 *
 * Not part of `make test` (timings on a shared machine are not assertions);
 * run with `make microbench` or build/bench_seal [iterations]. Bounded: a
 * few seconds at the default 1,000,000 iterations.
 */
#include "api.h"
#include "cookie.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SEAL_PLAIN 25 /* the same as persist.c: version, hash (8), issued (4), refreshed (4),
		      * session id (8) */
#define SEAL_NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define SEAL_TAG crypto_aead_xchacha20poly1305_ietf_ABYTES
#define SEAL_RAW (SEAL_NONCE + SEAL_PLAIN + SEAL_TAG)

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char ad[] = "app/BOLLARD";
static uint8_t key[crypto_aead_xchacha20poly1305_ietf_KEYBYTES];
static uint8_t prefix[16];

/* One seal as persist.c does it; returns the cookie length. */
static long bench_seal_one(uint64_t counter, char *out, size_t cap)
{
	uint8_t plain[SEAL_PLAIN], raw[SEAL_RAW];
	unsigned long long clen;

	plain[0] = 2;
	memcpy(plain + 1, &counter, 8);
	memset(plain + 9, 0x5a, 16);
	memcpy(raw, prefix, 16);
	memcpy(raw + 16, &counter, 8);
	crypto_aead_xchacha20poly1305_ietf_encrypt(raw + SEAL_NONCE, &clen, plain, sizeof(plain),
						   (const uint8_t *)ad, sizeof(ad) - 1, NULL, raw, key);
	return cookie_b64_encode(raw, SEAL_RAW, out, cap);
}

/* One open; 0 when the cookie is authentic. */
static int bench_open_one(const char *v, size_t n)
{
	uint8_t raw[SEAL_RAW + 4], plain[SEAL_PLAIN];
	unsigned long long plen;

	if (n != cookie_b64_enclen(SEAL_RAW) || cookie_b64_decode(v, n, raw, sizeof(raw)) != SEAL_RAW)
		return -1;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &plen, NULL, raw + SEAL_NONCE,
						       SEAL_PLAIN + SEAL_TAG, (const uint8_t *)ad,
						       sizeof(ad) - 1, raw, key) != 0)
		return -1;
	return plen == SEAL_PLAIN && plain[0] == 2 ? 0 : -1;
}

static void report(const char *what, long n, double dt)
{
	printf("| %-32s | %10.0f | %8.1f |\n", what, (double)n / dt, dt * 1e9 / (double)n);
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000000;
	char cookie[128], forged[128];
	uint8_t raw[SEAL_RAW + 4];
	long len = 0, bad = 0;
	unsigned long sink = 0;
	double t;

	if (n < 1 || sodium_init() < 0) {
		fprintf(stderr, "usage: bench_seal [iterations >= 1] (and a working libsodium)\n");
		return 2;
	}
	randombytes_buf(key, sizeof(key));
	randombytes_buf(prefix, sizeof(prefix));
	printf("cookie seal/open: XChaCha20-Poly1305 over %d bytes, %d-byte nonce, %d raw bytes -> "
	       "%zu base64url characters; %ld iterations\n\n",
	       SEAL_PLAIN, (int)SEAL_NONCE, (int)SEAL_RAW, cookie_b64_enclen(SEAL_RAW), n);
	printf("| %-32s | %10s | %8s |\n", "operation", "per second", "ns each");
	printf("|----------------------------------|-----------:|---------:|\n");

	t = now_s();
	for (long i = 0; i < n; i++) {
		len = bench_seal_one((uint64_t)i, cookie, sizeof(cookie));
		sink += (unsigned char)cookie[i % len];
	}
	report("seal (encrypt + base64url)", n, now_s() - t);

	t = now_s();
	for (long i = 0; i < n; i++)
		bad += bench_open_one(cookie, (size_t)len) != 0;
	report("open (base64url + decrypt)", n, now_s() - t);

	memcpy(forged, cookie, (size_t)len);
	forged[len / 2] = forged[len / 2] == 'A' ? 'B' : 'A';
	t = now_s();
	for (long i = 0; i < n; i++)
		bad += bench_open_one(forged, (size_t)len) != 0;
	report("open of a forged cookie (reject)", n, now_s() - t);

	t = now_s();
	for (long i = 0; i < n; i++)
		sink += (unsigned long)cookie_b64_encode(raw, SEAL_RAW, cookie, sizeof(cookie));
	report("base64url encode 65 bytes", n, now_s() - t);

	t = now_s();
	for (long i = 0; i < n; i++)
		sink += (unsigned long)cookie_b64_decode(cookie, (size_t)len, raw, sizeof(raw));
	report("base64url decode 87 chars", n, now_s() - t);

	/* every authentic open must pass and every forged one fail */
	if (bad != n) {
		fprintf(stderr, "bench_seal: %ld of %ld opens disagreed\n", bad - n, n);
		return 1;
	}
	printf("\n(checksum %lu)\n", sink);
	return 0;
}
