/*
 * xprt_tls.h - TLS, the second transport (xprt.h): OpenSSL driven
 * non-blocking in the worker's edge-triggered loop. Server side only for
 * now (`bind ... tls`); the SSL_CTX comes from tls_ctx.c.
 *
 * What the rest of bollard sees of it: the per-bind object the listener
 * carries (struct tls_bind, built with the configuration generation), the
 * counters of SPEC §11 (struct tls_stats, in the frontend), and what the
 * access log says of a connection (xprt_tls_info).
 */
#ifndef BOLLARD_XPRT_TLS_H
#define BOLLARD_XPRT_TLS_H

#include "api.h"
#include "xprt.h"

/* bollard_tls_handshake_errors_total{reason}: the reasons, in label order. */
enum tls_err {
	TLS_ERR_PROTOCOL,     /* not TLS, or a version or message we refuse */
	TLS_ERR_NO_CIPHER,    /* nothing in common: cipher, group, signature */
	TLS_ERR_ALPN,         /* no_application_protocol (RFC 7301 3.2) */
	TLS_ERR_CERT,         /* client certificate missing or refused */
	TLS_ERR_CLOSED,       /* the client closed or reset mid-handshake */
	TLS_ERR_INCOMPLETE,   /* closed by us before the end (timeout http-request, stop) */
	TLS_ERR_OTHER,
	TLS_ERR_N
};
extern const char *const tls_err_names[TLS_ERR_N];

/* Counters of one frontend (atomic: every worker adds), shared by its
 * successive generations (a reload hands them on, reload.c), so that a
 * session made before a reload still counts where the metrics look. */
struct tls_stats {
	_Atomic int refs;
	_Atomic uint64_t hs[2][2];        /* [0: TLS 1.2, 1: TLS 1.3][resumed] */
	_Atomic uint64_t err[TLS_ERR_N];
};

struct tls_ctx;
struct frontend;

/* One `bind ... tls` line of a configuration generation: its OpenSSL
 * contexts (which the generation owns and frees) and where to count. */
struct tls_bind {
	struct tls_ctx *ctx;
	struct frontend *fe;
	struct config *cfg;               /* the generation owning it: held by each session */
	int line;                         /* of the bind (the parser's numbering) */
	char *where;                      /* "FILE:LINE" of the bind, for messages */
};

/*
 * The TLS transport. Before ops->init, the caller puts the connection's
 * struct tls_bind in x->ctx; init replaces it with the session, which holds
 * the bind's generation (cfg_hold) until it closes: a client connection
 * moves to a newer generation between requests, but its SSL keeps reading
 * the contexts it was made from (SNI, ticket keys, counters).
 */
extern const struct xprt_ops xprt_tls;

/* What the access log says of a TLS connection (SPEC §11). Strings are
 * the session's, valid until the connection closes; "-" when absent. */
struct tls_info {
	const char *version;              /* "1.2", "1.3" */
	const char *alpn;                 /* negotiated protocol, not NUL-terminated */
	unsigned alpn_len;
	const char *sni;
	bool resumed;
};
/* false when x is not a TLS connection or its handshake is not done. */
bool xprt_tls_info(const struct xconn *x, struct tls_info *out);

#endif
