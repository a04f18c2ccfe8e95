/*
 * session.h - the in-memory sessions of the demo application: what makes it
 * a stateful server that visibly breaks when a load balancer sends a user
 * to a server that does not hold the user's session.
 */
#ifndef DEMO_SESSION_H
#define DEMO_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SESSION_ID_LEN    32   /* hex characters of a session id */
#define SESSION_CART_MAX  16   /* items remembered per cart (the rest counted) */
#define SESSION_ITEM_MAX  64   /* bytes of one item name */

enum session_op {
	SESSION_VISIT,         /* a page view: count it */
	SESSION_ADD,           /* add an item to the cart */
};

/* A copy of one session, taken under the table lock, so the caller renders
 * without holding it. */
struct session_view {
	char id[SESSION_ID_LEN + 1];
	bool created;                  /* no known session: this one is new */
	uint64_t visits;
	uint64_t cart_total;           /* items ever added */
	unsigned ncart;                /* items in cart[] */
	char cart[SESSION_CART_MAX][SESSION_ITEM_MAX + 1];
};

/* Find the session whose id is id[0..len) (len 0 or an unknown id: create
 * one with a random id), apply op (item/ilen for SESSION_ADD: an item name,
 * already sanitised, truncated to SESSION_ITEM_MAX), and copy it to *out.
 * Thread-safe. Returns 0, or -1 when no random id could be drawn. */
int session_touch(const char *id, size_t len, enum session_op op,
		  const char *item, size_t ilen, struct session_view *out);

/* Number of live sessions (for /stats). */
uint64_t session_count(void);

#endif
