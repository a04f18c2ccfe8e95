/*
 * seal.h - the secret key(s) that authenticate persistence cookies
 * (SPEC §3.1): the key file, loaded (or created with a fresh random key on
 * first start) into an immutable, reference-counted key set that a
 * configuration generation holds (persist.c), so that a reload can re-read
 * the file while requests of the previous generation still use the keys
 * they started with.
 *
 * Key file format: one key a line, 64 hex digits (32 bytes); lines that
 * are empty or start with '#' are ignored. The first key seals new cookies;
 * every key (up to SEAL_MAX_KEYS) opens them, so that keys can be rotated:
 * put the new key first, keep the old one below until old cookies expired.
 */
#ifndef BOLLARD_SEAL_H
#define BOLLARD_SEAL_H

#include "api.h"
#include <stdatomic.h>

#define SEAL_KEY_LEN  32
#define SEAL_MAX_KEYS 8
#define SEAL_ID_LEN   8	/* hex digits of a key's public id */

struct seal_keys {
	_Atomic int refs;
	int n;				/* 1..SEAL_MAX_KEYS */
	uint64_t serial;		/* unique per set loaded in this process, from 1 */
	/* the key that seals: 0, except while a reload that put a new key
	 * first is still reaching the workers (persist.c, key handover) */
	_Atomic int seal_idx;
	uint8_t key[SEAL_MAX_KEYS][SEAL_KEY_LEN];	/* [0] seals, in the end */
};

/*
 * Load the keys of path. When the file does not exist and create is true,
 * create it (mode 0600, atomically: another instance starting at the same
 * time reads the same key) holding one new random key, and set *created
 * (may be NULL). Refuses a file readable or writable by group or others.
 * Returns a new key set (one reference, the caller's), or NULL with a
 * message in err[0..errlen) ("FILE:LINE: ..." for a malformed line).
 */
struct seal_keys *seal_keys_load(const char *path, bool create, bool *created,
				 char *err, size_t errlen);
void seal_keys_hold(struct seal_keys *k);
/* Drop a reference; the last one wipes and frees the keys. NULL: no-op. */
void seal_keys_free(struct seal_keys *k);

/*
 * Would seal_keys_load(path, true, ...) succeed? Reads and parses an existing
 * file (nothing installed), checks that an absent one could be created.
 * Returns 0, or -1 with the same message a start would give in err.
 */
int seal_key_check(const char *path, char *err, size_t errlen);

/* A public name for key i, to say in logs which key seals: the first
 * SEAL_ID_LEN hex digits of BLAKE2b-32 of the key (revealing nothing of a
 * 256-bit random key). out holds SEAL_ID_LEN + 1 bytes. */
void seal_key_id(const struct seal_keys *k, int i, char *out);
/* Same keys in the same order? (NULL is a set of its own.) */
bool seal_keys_same(const struct seal_keys *a, const struct seal_keys *b);

#endif
