/*
 * xprt_tls.h - TLS, the second transport (xprt.h): OpenSSL driven
 * non-blocking in the worker's edge-triggered loop, as the server of
 * client connections (`bind ... tls`) and as the client of servers
 * (`server ... tls`); the SSL_CTX comes from tls_ctx.c.
 *
 * What the rest of bollard sees of it: the per-bind object the listener
 * carries (struct tls_bind, built with the configuration generation), the
 * per-server one (struct tls_server), the counters of SPEC §11 (struct
 * tls_stats, in the frontend; the server's in struct tls_server), what the
 * access log says of a connection (xprt_tls_info), and the sessions a
 * server connection brings back for the next one to resume.
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
/* The same reasons for connections to servers
 * (bollard_server_tls_handshake_errors_total): "certificate" is the
 * server's, "server-closed", "incomplete" is timeout connect or the
 * client leaving first. */
extern const char *const tls_srv_err_names[TLS_ERR_N];

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

struct tls_client;
struct ssl_session_st; /* OpenSSL's SSL_SESSION */

/* `server NAME ADDR tls ...` of a configuration generation: its client
 * context, what the connections' handshakes are checked against, and its
 * counters (a reload carries them over by name, reload.c). */
struct tls_server {
	struct tls_client *cli;           /* the generation owns it (cfg_free) */
	char host[48];                    /* the server's IP address, without port */
	char sni[254];                    /* `sni NAME`, or "" */
	char name[136];                   /* "BACKEND/SERVER", for messages */
	_Atomic uint64_t hs[2];           /* handshakes done: [resumed] */
	_Atomic uint64_t err[TLS_ERR_N];
};

/*
 * The TLS transport as a client. Before ops->init, the caller puts the
 * server's struct tls_server in x->ctx (which must outlive the connection:
 * a server connection lives within its generation, sconn.c). The handshake
 * starts once the TCP connect is done, inside established(), which says 1
 * only after it (certificate and name checked under verify required); a
 * failed one is counted, logged once with its reason, and established()
 * says -1. Pooled and reused like TCP: a reused connection has done it.
 */
extern const struct xprt_ops xprt_tls_client;
/* Offer sess (a session of an earlier connection to the same server) for
 * resumption; x just initialised, sess not taken (the caller keeps its
 * reference). */
void xprt_tls_resume(struct xconn *x, struct ssl_session_st *sess);
/* The session the server gave x since the last call, or NULL; the caller
 * owns it (xprt_tls_session_free). */
struct ssl_session_st *xprt_tls_take_session(struct xconn *x);
/* x's handshake failed (a session it offered may be what failed). */
bool xprt_tls_failed(const struct xconn *x);
void xprt_tls_session_free(struct ssl_session_st *sess);

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

/* An idle TLS connection (from a client: stream.c says when; to a server,
 * pooled: sconn.c) gives OpenSSL's record buffers back, about 33 KB of
 * heap; the next record takes them again. false: not now (handshake not
 * done, bytes pending), or not a TLS connection. */
bool xprt_tls_release(struct xconn *x);

#endif
