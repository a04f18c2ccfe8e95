/*
 * stream.h - the HTTP proxy state machine: a client connection, the request
 * it is carrying, and the server connection attached to it. Owned by one
 * worker thread from accept to close (worker.c drives the events).
 */
#ifndef BOLLARD_STREAM_H
#define BOLLARD_STREAM_H

#include "buf.h"
#include "cfg.h"
#include "ev.h"
#include "h1.h"
#include "log.h"
#include "persist.h"
#include "txn.h"
#include "xprt.h"
#include <netinet/in.h>

struct worker;

/* The scheme of a request bollard received itself. */
#define STREAM_SCHEME "http"
#define STREAM_SCHEME_TLS "https"
#define STREAM_OWN_SCHEME(c) ((c)->tls ? STREAM_SCHEME_TLS : STREAM_SCHEME)

/* The first field of every object epoll hands back (and of the client
 * connection the timer heap hands back): its kind, as a magic number in the
 * spirit of Varnish's, so that a stale or foreign pointer is caught where it
 * is turned back into an object (worker.c) rather than after. */
enum obj_kind {
	OBJ_LISTENER = 0x4c53544e, /* "LSTN" */
	OBJ_CLIENT = 0x434c4e54,   /* "CLNT" */
	OBJ_SERVER = 0x53525652,   /* "SRVR" */
	OBJ_WAKEUP = 0x57414b45,   /* "WAKE" */
	OBJ_SHARED = 0x53485244,   /* "SHRD": a worker's Redis link (shared_loop.c) */
};

struct tls_bind;

struct listener {
	int kind; /* OBJ_LISTENER */
	int fd;
	struct frontend *fe;
	bool paused; /* maxconn reached: accept again when a connection ends */
	bool accept_proxy; /* connections start with a PROXY protocol header */
	const struct tls_bind *tls; /* bind ... tls (its generation's); NULL = cleartext */
	const char *addr;  /* the bind address as written (reload matches on it) */
};

/* Server-side connection; pooled (owner NULL) between requests. */
struct sconn {
	int kind; /* OBJ_SERVER */
	struct xconn xc;              /* fd, transport, readiness */
	struct server *srv;
	struct worker *w;
	struct cconn *owner;          /* client using it, NULL when idle in the pool */
	struct sconn *next, *prev;    /* idle-pool list of its server */
	struct buf in;                /* bytes from the server */
	uint64_t idle_since;          /* ms, while pooled */
	bool connected;
	bool reused;                  /* carried an earlier request */
	bool counted;                 /* included in srv->conns */
	bool dead;                    /* closed; freed at the end of the loop iteration */
};

enum cstate {
	CS_PROXY,     /* bind ... accept-proxy: waiting for the PROXY header */
	CS_HEAD,      /* waiting for / parsing a request head */
	CS_QUEUED,    /* its persistent server is at maxconn: waiting for a slot */
	CS_SHARED,    /* waiting (at most `timeout`) for Redis's answer (shared_loop.c) */
	CS_CONNECT,   /* server connection being established */
	CS_FORWARD,   /* request and response flowing */
	CS_TUNNEL,    /* after 101 Switching Protocols: bytes both ways */
	CS_CLOSING,   /* flushing a final response, then close */
	CS_LINGER,    /* write side shut; draining the client briefly before close */
	CS_H2,        /* ALPN chose h2: frames, each stream its own connection (h2.c) */
};

struct cconn {
	int kind; /* OBJ_CLIENT */
	struct xconn xc;               /* fd, transport, readiness */
	struct worker *w;
	struct config *gen;            /* configuration generation c->fe belongs to */
	struct frontend *fe;
	struct cconn *next, *prev;     /* worker's list of clients */
	struct ev_timer timer;
	enum cstate state;
	bool close_after, closed;
	char client_ip[INET6_ADDRSTRLEN];      /* the request's client, as logged */
	char peer_ip[INET6_ADDRSTRLEN];        /* who connected (appended to X-Forwarded-For) */
	struct sockaddr_storage peer;          /* who connected (or the PROXY header's source) */
	struct sockaddr_storage client;        /* the request's client (trust-forwarded) */
	char scheme[16];                       /* the request's scheme (trust-forwarded) */
	bool tls;                              /* came in on a TLS bind (xprt_tls) */
	bool h2_checked;                       /* its ALPN was looked at (h2.c) */
	/* when an idle TLS connection gives OpenSSL's buffers back (stream.c) */
	bool tls_long;       /* this wait: after STREAM_TLS_IDLE_MS, and it teaches nothing */
	bool tls_bursty;     /* its last wait after a response was shorter than that */
	bool tls_released;   /* given back in this wait */
	struct h2_conn *h2;                    /* CS_H2: its HTTP/2 session */
	struct cconn *h2p;                     /* a stream's connection: the one it is on */

	struct buf in;    /* bytes from the client */
	struct buf out;   /* rewritten response head or error page for the client */

	/* the transaction it carries (HTTP/1.1: one at a time) */
	struct txn tx;
	uint64_t head_deadline;                 /* ms: http-request limit for this head */
	uint64_t idle_deadline;                 /* ms: keep-alive limit between requests */
	uint64_t close_deadline;                /* ms */
	uint64_t t_cli;                         /* ms: the client's last activity */
	uint64_t tls_idle_since;                /* ms: a TLS connection waits idle (0: busy) */
};

/* called by worker.c */
void stream_accept(struct worker *w, struct listener *l, int fd,
		   const struct sockaddr_storage *ss);
void stream_client_event(struct cconn *c, uint32_t events);
void stream_server_event(struct sconn *sc, uint32_t events);
void stream_timeout(struct cconn *c);
void stream_close(struct cconn *c);
/* graceful stop: close c now if it is idle between requests, else mark it
 * to close after the current response. */
void stream_stop_soon(struct cconn *c);
/* within the stream module (stream.c, h1_exchange.c, tunnel.c, dispatch.c): run c's state machine
 * until it makes no progress, then arm its timer (c may be closed after) */
void stream_drive(struct cconn *c);
/* answer c's request with bollard's own error page and close after it, or,
 * when part of a response already went out, close (term: the log's reason) */
void stream_error(struct cconn *c, int status, const char *detail, const char *term);
/* abort c's transaction when nothing can be said to the client any more
 * (its response started): log it (term: the reason), close c */
void stream_abort(struct cconn *c, const char *term);
/* read into c->in / sc->in through the connection's transport
 * (xconn_read(): >0 bytes, 0 nothing, -1 end or error) */
int stream_read_client(struct cconn *c);
/* c waits for the client with nothing in flight (between HTTP/1.1
 * requests, an HTTP/2 connection without streams; served: it carried a
 * request before), or has work again: a TLS connection's OpenSSL buffers
 * go back while it waits (stream.c says when) */
void stream_tls_idle(struct cconn *c, bool served);
void stream_tls_busy(struct cconn *c);
/* bytes came in that did not end c's wait: OpenSSL took its buffers
 * again, to be given back again */
void stream_tls_stirred(struct cconn *c);
int stream_read_server(struct sconn *sc);
/* sconn.c: server connections and their per-worker idle pools */
void sconn_close(struct worker *w, struct sconn *sc);
void sconn_release_counted(struct sconn *sc);  /* no longer busy: srv->conns-- */
struct sconn *sconn_pool_take(struct worker *w, struct server *s); /* NULL: none idle */
void sconn_pool_put(struct worker *w, struct sconn *sc);  /* or close it when it can't stay */
void sconn_pool_drop(struct worker *w, struct sconn *sc); /* idle one the server closed */
/* server ... tls: offer the session kept for sc's server (sc just
 * initialised); free every kept session (reload, exit) */
void sconn_tls_resume(struct worker *w, struct sconn *sc);
void sconn_pool_forget_sessions(struct worker *w);
/* close pooled server connections idle too long (about once a second) */
void sconn_pool_sweep(struct worker *w);
/* requests waiting for a server slot (maxconn): start those that can
 * (dispatch.c) */
void stream_queue_run(struct worker *w);
/* close every pooled server connection (reload: pools are per generation) */
void sconn_pool_sweep_all(struct worker *w);

#endif
