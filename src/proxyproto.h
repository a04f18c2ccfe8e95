/*
 * proxyproto.h - the PROXY protocol (HAProxy's doc/proxy-protocol.txt,
 * versions 1 and 2): a load balancer or TLS terminator in front of bollard
 * prepends one header to the TCP stream that says who the real client is.
 * A listener with `bind ... accept-proxy` requires that header as the very
 * first bytes of every connection. The parser is a pure function over a
 * byte range: no I/O, no allocation, no global state.
 */
#ifndef BOLLARD_PROXYPROTO_H
#define BOLLARD_PROXYPROTO_H

#include "api.h"
#include <sys/socket.h>

/* v1: "PROXY ... \r\n" is at most 107 bytes including the CRLF (spec 2.1). */
#define PROXYPROTO_V1_MAX 107
/* v2: 16-byte fixed part followed by at most 65535 bytes (spec 2.2). */
#define PROXYPROTO_V2_MIN 16
#define PROXYPROTO_MAX (PROXYPROTO_V2_MIN + 65535)

/* The same values as H1_INCOMPLETE and the -1 of the convention (doc/principles.md). */
#define PROXYPROTO_INCOMPLETE (-2)
#define PROXYPROTO_INVALID (-1)

/*
 * Parses a PROXY header (v1 or v2, told apart by the first byte) at
 * buf[0..len). Returns the bytes consumed (> 0): the request proper starts
 * at buf + that; PROXYPROTO_INCOMPLETE when more bytes are needed (nothing
 * is consumed; every strict prefix of a valid header answers it);
 * PROXYPROTO_INVALID when the bytes can never form a valid header (the
 * connection must be closed).
 * On success *src holds the client address and port (AF_INET or AF_INET6);
 * family AF_UNSPEC for LOCAL and the UNSPEC and AF_UNIX families (v2) and
 * for UNKNOWN (v1): keep the real peer address.
 * *src is written only on success. A v2 header can be up to PROXYPROTO_MAX
 * bytes long: a caller whose buffer is full and still gets
 * PROXYPROTO_INCOMPLETE must close.
 */
int proxyproto_parse(const char *buf, size_t len, struct sockaddr_storage *src);

#endif
