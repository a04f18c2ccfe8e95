/*
 * seal.h - the secret key(s) that authenticate persistence cookies
 * (SPEC §3.1). For now only the key file: load it, or create it with a
 * fresh random key when absent. The sealing and opening of cookies will
 * live here too.
 *
 * Key file format: one key a line, 64 hex digits (32 bytes); lines that
 * are empty or start with '#' are ignored. The first key seals new cookies;
 * every key (up to SEAL_MAX_KEYS) opens them, so that keys can be rotated:
 * put the new key first, keep the old one below until old cookies expired.
 */
#ifndef BOLLARD_SEAL_H
#define BOLLARD_SEAL_H

#include "api.h"

#define SEAL_KEY_LEN  32
#define SEAL_MAX_KEYS 8

/*
 * Load the keys of path, or create path (mode 0600) holding one new random
 * key if it does not exist. Refuses a file readable or writable by group or
 * others. Returns 0, or -1 with a message in err[0..errlen) ("FILE:LINE:
 * ..." for a malformed line). On failure the keys loaded before stay in
 * place, so a failed reload keeps the running keys.
 */
int seal_key_load_or_create(const char *path, char *err, size_t errlen);

/*
 * Would seal_key_load_or_create(path) succeed? Reads and parses an existing
 * file (nothing installed), checks that an absent one could be created.
 * Returns 0, or -1 with the same message a start would give in err.
 */
int seal_key_check(const char *path, char *err, size_t errlen);

/* Key i (0 = the sealing key), SEAL_KEY_LEN bytes; NULL if i >= nkeys. */
const uint8_t *seal_key(int i);
int seal_nkeys(void);

#endif
