/*
 * route.h - where a request goes (see route.c).
 */
#ifndef BOLLARD_ROUTE_H
#define BOLLARD_ROUTE_H

#include "cfg.h"
#include "h1.h"

/* The backend of the first matching route of fe, else fe->default_be. */
struct backend *route_backend(const struct frontend *fe, const struct h1_msg *m);
/* `balance hash KEY`: the request's key hashed with lb_hash_key() (the same
 * on every instance). false when the request has no such key. */
bool route_hash_key(const struct backend *be, const struct sockaddr_storage *client,
		    const struct h1_msg *m, uint64_t *key);
/* `allow-upgrade`: does m ask (Connection: upgrade) for a token fe allows? */
bool route_upgrade_allowed(const struct frontend *fe, const struct h1_msg *m);
/* An address as text; IPv4-mapped IPv6 addresses as plain IPv4. */
void route_addr_text(const struct sockaddr_storage *ss, char *out, size_t cap);

#endif
