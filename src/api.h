/*
 * api.h - the few definitions every bollard file needs: standard headers,
 * branch hints and the BUG_ON invariant check that stays compiled in.
 * Included first by every .c file of src/.
 */
#ifndef BOLLARD_API_H
#define BOLLARD_API_H

#define _GNU_SOURCE 1
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BOLLARD_VERSION "0.1.0"

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Cheap invariant checks stay in release builds: a broken invariant in a
 * proxy is better as a crash with a location than as silent corruption. */
#define BUG_ON(cond)                                                          \
	do {                                                                  \
		if (unlikely(cond)) {                                         \
			fprintf(stderr, "BUG at %s:%d: %s\n", __FILE__,       \
				__LINE__, #cond);                             \
			abort();                                              \
		}                                                             \
	} while (0)

/*
 * A message template with one "%s" for arg, as the runtime API and the
 * configuration keep their messages ("no server '%s'"): copied into
 * out[0..cap) (always terminated, truncated if need be) with the first %s
 * replaced by arg and "%%" by "%". Not a format string, on purpose: the
 * templates are chosen at run time, and a printf with a variable format is
 * what -Wformat=2 exists to catch. Returns out.
 */
static inline char *msg_fill(char *out, size_t cap, const char *tmpl, const char *arg)
{
	size_t n = 0;
	bool used = false;

	if (!cap)
		return out;
	for (const char *t = tmpl; *t && n + 1 < cap; t++) {
		if (t[0] == '%' && t[1] == '%') {
			out[n++] = '%';
			t++;
		} else if (t[0] == '%' && t[1] == 's' && !used) {
			for (const char *a = arg ? arg : ""; *a && n + 1 < cap; a++)
				out[n++] = *a;
			used = true;
			t++;
		} else {
			out[n++] = *t;
		}
	}
	out[n] = '\0';
	return out;
}

#endif
