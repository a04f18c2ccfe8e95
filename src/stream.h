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
#include "xprt.h"
#include <netinet/in.h>

struct worker;

/* The scheme of a request bollard received itself (no TLS yet). */
#define STREAM_SCHEME "http"

/* The first field of every object epoll hands back (and of the client
 * connection the timer heap hands back): its kind, as a magic number in the
 * spirit of Varnish's, so that a stale or foreign pointer is caught where it
 * is turned back into an object (worker.c) rather than after. */
enum obj_kind {
	OBJ_LISTENER = 0x4c53544e, /* "LSTN" */
	OBJ_CLIENT = 0x434c4e54,   /* "CLNT" */
	OBJ_SERVER = 0x53525652,   /* "SRVR" */
	OBJ_WAKEUP = 0x57414b45,   /* "WAKE" */
};

struct listener {
	int kind; /* OBJ_LISTENER */
	int fd;
	struct frontend *fe;
	bool paused; /* maxconn reached: accept again when a connection ends */
	bool accept_proxy; /* connections start with a PROXY protocol header */
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
	CS_CONNECT,   /* server connection being established */
	CS_FORWARD,   /* request and response flowing */
	CS_TUNNEL,    /* after 101 Switching Protocols: bytes both ways */
	CS_CLOSING,   /* flushing a final response, then close */
	CS_LINGER,    /* write side shut; draining the client briefly before close */
};

enum rq_state { RQ_HEAD, RQ_BODY, RQ_DONE };
enum rs_state { RS_HEAD, RS_BODY, RS_DONE };

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

	struct buf in;    /* bytes from the client */
	struct buf rq;    /* rewritten request head for the server */
	struct buf out;   /* rewritten response head or error page for the client */

	/* the current request */
	struct backend *be;
	struct server *srv;
	struct sconn *sc;
	struct server *tried[8];
	int ntried;
	int attempts;
	enum h1_method meth;
	int minor;
	bool req_keepalive, retryable, resp_started, logged;
	uint32_t upgrade;             /* ROUTE_UP_* tokens the request offered the server */
	bool fresh_only;              /* a pooled connection failed: open a new one */
	bool shut_srv, shut_cli;      /* tunnel half-closes done */
	uint32_t rq_sent;             /* bytes of rq already sent */
	enum rq_state rq_state;
	enum h1_body rq_body;
	uint64_t rq_left;             /* CL body bytes left */
	uint32_t rq_ready;            /* body bytes at the front of in that can go as they are */
	uint32_t rq_scanned;          /* ... and those checked so far (h1_chunk_scan) */
	struct h1_chunk rq_chunk;
	enum rs_state rs_state;
	enum h1_body rs_body;
	uint64_t rs_left;
	uint32_t rs_ready;            /* body bytes at the front of sc->in that can go as they are */
	uint32_t rs_scanned;          /* ... and those checked so far */
	struct h1_chunk rs_chunk;
	bool rs_keepalive;            /* server connection reusable after this response */
	int status;
	uint64_t bytes_out;           /* bytes sent to the client for this response */
	uint64_t bytes_1xx;           /* interim (1xx) heads queued for the client before it */
	/* log fields located in rq */
	uint32_t log_target_off, log_target_len, log_meth_len;
	uint32_t log_ua_off, log_ua_len, log_ref_off, log_ref_len, log_id_off, log_id_len;
	const char *term;
	struct persist_req *pr;                 /* the persistence decision, during a request
						 * of a backend with persistence (worker pool) */
	struct cconn *qnext, *qprev;            /* worker's queue (CS_QUEUED) */
	struct server *qsrv;                    /* the server it waits for */
	uint64_t queue_deadline;                /* ms: timeout queue */
	uint64_t hash_key;                      /* balance hash: the request's key */
	bool has_hash_key;
	uint64_t t_start, t_connect, t_first;   /* µs */
	uint64_t head_deadline;                 /* ms: http-request limit for this head */
	uint64_t idle_deadline;                 /* ms: keep-alive limit between requests */
	uint64_t conn_deadline, close_deadline; /* ms */
	uint64_t t_cli, t_srv, t_tun;           /* ms: last activity per side */
	uint64_t t_took;                        /* ms: the server last took request bytes */
	uint64_t t_head;                        /* ms: since when a response head is due
						 * (request all sent, or the last 1xx) */
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
/* within the stream module (stream.c, dispatch.c): run c's state machine
 * until it makes no progress, then arm its timer (c may be closed after) */
void stream_drive(struct cconn *c);
/* answer c's request with bollard's own error page and close after it, or,
 * when part of a response already went out, close (term: the log's reason) */
void stream_error(struct cconn *c, int status, const char *detail, const char *term);
/* sconn.c: server connections and their per-worker idle pools */
void sconn_close(struct worker *w, struct sconn *sc);
void sconn_release_counted(struct sconn *sc);  /* no longer busy: srv->conns-- */
struct sconn *sconn_pool_take(struct worker *w, struct server *s); /* NULL: none idle */
void sconn_pool_put(struct worker *w, struct sconn *sc);  /* or close it when it can't stay */
void sconn_pool_drop(struct worker *w, struct sconn *sc); /* idle one the server closed */
/* close pooled server connections idle too long (about once a second) */
void sconn_pool_sweep(struct worker *w);
/* requests waiting for a server slot (maxconn): start those that can
 * (dispatch.c) */
void stream_queue_run(struct worker *w);
/* free the worker's idle persistence decisions (at exit) */
void stream_pr_free_all(struct worker *w);
/* close every pooled server connection (reload: pools are per generation) */
void sconn_pool_sweep_all(struct worker *w);

#endif
