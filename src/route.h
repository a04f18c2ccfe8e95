/*
 * route.h - where a request goes (see route.c).
 */
#ifndef BOLLARD_ROUTE_H
#define BOLLARD_ROUTE_H

#include "cfg.h"
#include "h1.h"
#include "view.h"

/* The backend of the first matching route of fe, else fe->default_be
 * (always, for a view without a request: every route reads the head). */
struct backend *route_backend(const struct frontend *fe, const struct view *v);
/* `balance hash KEY`: the client's key hashed with lb_hash_key() (the same
 * on every instance). false when the view has no such key (every key but
 * source needs the request). */
bool route_hash_key(const struct backend *be, const struct view *v, uint64_t *key);
/*
 * Upgrade: the elements of m's Upgrade lines that fe lets through
 * (websocket on a GET, the `allow-upgrade` tokens), once each, joined into
 * out[0..cap) with their length in *len; every other element is dropped.
 * Returns the ROUTE_UP_* bits of the tokens written, 0 when there is no
 * upgrade to ask for (m without Connection: upgrade, or nothing allowed).
 */
#define ROUTE_UP_WEBSOCKET 0x01u /* then 0x02 << k for fe->allow_upgrade[k] */
uint32_t route_upgrade(const struct frontend *fe, const struct h1_msg *m, char *out, size_t cap,
		       size_t *len);
/* May the 101 response resp open a tunnel? Only when its Upgrade names
 * protocols, each of them among the tokens `sent` (route_upgrade()). */
bool route_upgrade_accepts(const struct frontend *fe, uint32_t sent, const struct h1_msg *resp);
/*
 * trust-forwarded: the scheme the client used, as the proxy in front says:
 * the last element of the last X-Forwarded-Proto line (what the nearest
 * proxy wrote), else the proto= of the last element of Forwarded (RFC
 * 7239 5.4). Written lowercase into out[0..cap) when it is a URI scheme
 * (RFC 3986 3.1) shorter than cap; false when the request says nothing
 * believable (the caller keeps its own scheme). Call it only for a trusted
 * peer.
 */
bool route_forwarded_proto(const struct h1_msg *m, char *out, size_t cap);
/* An address as text; IPv4-mapped IPv6 addresses as plain IPv4. */
void route_addr_text(const struct sockaddr_storage *ss, char *out, size_t cap);

#endif
