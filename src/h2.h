/*
 * h2.h - the HTTP/2 frontend (RFC 9113) with libnghttp2: a client
 * connection whose ALPN chose "h2" is driven in state CS_H2 by h2_step(),
 * and each of its streams is carried by a stream connection (a struct
 * cconn without a descriptor, doc/architecture.md "HTTP/2") whose
 * transport, xprt_h2s, turns the stream into HTTP/1.1 bytes for the
 * exchange code and its HTTP/1.1 response back into frames.
 */
#ifndef BOLLARD_H2_H
#define BOLLARD_H2_H

#include "api.h"

struct cconn;
struct worker;

/* bollard_http2_goaway_total{reason}: the reasons, in label order */
enum h2_goaway {
	H2_GA_SHUTDOWN,       /* graceful: stop, or the frontend left in a reload */
	H2_GA_TIMEOUT,        /* idle connection, or a header block that did not end */
	H2_GA_PROTOCOL,       /* the client broke RFC 9113 (nghttp2 found it) */
	H2_GA_RAPID_RESET,    /* tune.h2.reset-budget (CVE-2023-44487) */
	H2_GA_CONTINUATION,   /* tune.h2.max-continuations (CVE-2024-27316 class) */
	H2_GA_SETTINGS,       /* tune.h2.control-budget: SETTINGS */
	H2_GA_PING,           /* tune.h2.control-budget: PING */
	H2_GA_FLOOD,          /* nghttp2's own flood limits (frames it must answer) */
	H2_GA_N
};
extern const char *const h2_goaway_names[H2_GA_N];

/* Within the stream module: */
/* c (TLS, CS_HEAD) finished its handshake with ALPN "h2": true once, and
 * then c goes to CS_H2. */
bool h2_alpn_chose_h2(struct cconn *c);
/* CS_H2: read frames, run the streams, send frames (>0 progress). */
int h2_step(struct cconn *c);
/* CS_H2: the connection's deadline, and what happens at it. */
uint64_t h2_deadline(struct cconn *c);
void h2_timeout(struct cconn *c);
/* graceful stop: GOAWAY, then close once the streams are done */
void h2_stop_soon(struct cconn *c);
/* stream_close() of a connection with c->h2 (its streams end first), and
 * of a stream connection (c->h2p): its slot goes back to the pool once
 * nghttp2 is done with the stream too. */
void h2_conn_closed(struct cconn *c);
void h2_stream_closed(struct cconn *c);

/* worker.c: send what the streams wrote since (server events, timers),
 * once per loop iteration; true when some is left for the next one */
bool h2_run(struct worker *w);
/* worker exit: free the pooled stream slots */
void h2_free_all(struct worker *w);

#endif
