/*
 * json.h - a tiny JSON writer (RFC 8259) for the runtime API, the stats
 * endpoints and, later, the JSON access log. It writes into a buffer the
 * caller provides (fixed size, never reallocated: usable on paths that must
 * not allocate) or, on the control path, into a heap buffer that grows.
 * The writer inserts the commas itself, so callers only say "object",
 * "key", "value", "close".
 *
 * Errors are sticky: once a write does not fit (fixed buffer) or an
 * allocation fails (heap buffer), j->overflow is set, every later call is a
 * no-op and json_result() returns NULL. The buffer is always NUL-terminated.
 */
#ifndef BOLLARD_JSON_H
#define BOLLARD_JSON_H

#include "api.h"

#define JSON_MAX_DEPTH 32

struct json {
	char *buf;
	size_t len;         /* bytes written, excluding the NUL */
	size_t cap;         /* size of buf including room for the NUL */
	bool heap;          /* buf is ours (json_init_heap) and may grow */
	bool overflow;      /* sticky error: out of room or out of memory */
	bool after_key;     /* the next value completes a "key": pair */
	int depth;          /* open containers */
	uint32_t has_elem;  /* bit d: the container at depth d has an element */
};

/* Write into buf[0..cap) owned by the caller (cap >= 1). */
void json_init(struct json *j, char *buf, size_t cap);
/* Write into a growing heap buffer owned by j; release it with json_free(). */
void json_init_heap(struct json *j);
void json_free(struct json *j);

void json_obj_open(struct json *j);
void json_obj_close(struct json *j);
void json_arr_open(struct json *j);
void json_arr_close(struct json *j);
/* An object member name; the next value call gives its value. */
void json_key(struct json *j, const char *name);

void json_str(struct json *j, const char *s);
void json_strn(struct json *j, const char *s, size_t n);
void json_u64(struct json *j, uint64_t v);
void json_i64(struct json *j, int64_t v);
void json_bool(struct json *j, bool v);
void json_null(struct json *j);

/* Shorthands for "key": value members. */
void json_kv_str(struct json *j, const char *key, const char *s);
void json_kv_u64(struct json *j, const char *key, uint64_t v);
void json_kv_i64(struct json *j, const char *key, int64_t v);

/* The document so far (NUL-terminated), or NULL after an overflow. The
 * pointer stays owned by the caller (json_init) or by j (json_init_heap). */
const char *json_result(const struct json *j);

/*
 * Escape s[0..n) as the inside of a JSON string (no surrounding quotes)
 * into dst[0..cap), NUL-terminated. Returns the length the escaped text
 * needs (excluding the NUL), like snprintf: a result >= cap means dst was
 * truncated (at a whole escape, never in the middle of one).
 */
size_t json_escape(char *dst, size_t cap, const char *s, size_t n);

#endif
