/*
 * txn.h - a transaction: one request and its response, apart from the
 * client connection that carries it (stream.h's struct cconn: descriptor,
 * transport, buffers, keep-alive, timers).
 *
 * In the spirit of HAProxy's connection / session / stream split
 * (doc/internals/core-principles.txt): the connection is transport, the
 * transaction a request/response pair. An HTTP/1.1 connection carries one
 * at a time (the one embedded in it, reset for each request: nothing is
 * allocated per request); an HTTP/2 connection will carry many, taken from
 * a per-worker pool like the persistence decisions are.
 */
#ifndef BOLLARD_TXN_H
#define BOLLARD_TXN_H

#include "buf.h"
#include "h1.h"
#include "persist.h"

struct cconn;
struct sconn;

enum rq_state { RQ_HEAD, RQ_BODY, RQ_DONE };
enum rs_state { RS_HEAD, RS_BODY, RS_DONE };

struct txn {
	/* the request's head, rewritten for the server, and what the log
	 * says of it (located in rq) */
	struct buf rq;
	enum h1_method meth;
	int minor;                    /* HTTP/1.x of the client's request */
	bool req_keepalive;           /* the client did not ask to close */
	uint32_t upgrade;             /* ROUTE_UP_* tokens the request offered the server */
	uint32_t log_target_off, log_target_len, log_meth_len;
	uint32_t log_ua_off, log_ua_len, log_ref_off, log_ref_len, log_id_off, log_id_len;

	/* where it goes, and why: the backend, the persistence decision
	 * (worker pool, backends with persistence only), the server and its
	 * connection, the servers tried, the balance hash key */
	struct backend *be;
	struct persist_req *pr;
	struct server *srv;
	struct sconn *sc;
	struct server *tried[8];
	int ntried;
	int attempts;
	bool retryable;               /* no body: it can go again on another connection */
	bool fresh_only;              /* a pooled connection failed: open a new one */
	uint64_t hash_key;
	bool has_hash_key;
	struct cconn *qnext, *qprev;  /* worker's queue (CS_QUEUED) */
	struct server *qsrv;          /* the server it waits for */
	uint64_t queue_deadline;      /* ms: timeout queue */
	uint64_t conn_deadline;       /* ms: timeout connect */
	void *shwait;                 /* CS_SHARED: its place among the questions to Redis */
	uint64_t shared_deadline;     /* ms: CS_SHARED's safety net (the link answers first) */

	/* the exchange, one state per direction */
	uint32_t rq_sent;             /* bytes of rq already sent */
	enum rq_state rq_state;
	enum h1_body rq_body;
	uint64_t rq_left;             /* CL body bytes left */
	uint32_t rq_ready;            /* body bytes at the front of the client's input that
				       * can go as they are */
	uint32_t rq_scanned;          /* ... and those checked so far (h1_chunk_scan) */
	struct h1_chunk rq_chunk;
	enum rs_state rs_state;
	enum h1_body rs_body;
	uint64_t rs_left;
	uint32_t rs_ready;            /* body bytes at the front of sc->in that can go as they are */
	uint32_t rs_scanned;          /* ... and those checked so far */
	struct h1_chunk rs_chunk;
	bool rs_keepalive;            /* server connection reusable after this response */
	bool resp_started;            /* a byte of a response came */
	bool shut_srv, shut_cli;      /* tunnel half-closes done */

	/* what the log and the metrics say of it */
	int status;
	uint64_t bytes_out;           /* bytes sent to the client for this response */
	uint64_t bytes_1xx;           /* interim (1xx) heads queued for the client before it */
	const char *term;             /* why it ended, when not normally */
	bool logged;
	uint64_t t_start, t_connect, t_first;   /* µs */
	uint64_t t_srv, t_tun;                  /* ms: last activity of the server, the tunnel */
	uint64_t t_took;                        /* ms: the server last took request bytes */
	uint64_t t_head;                        /* ms: since when a response head is due
						 * (request all sent, or the last 1xx) */
};

struct worker;

/* Ready tx for the next request of its connection. */
void txn_reset(struct txn *tx);
/* A persistence decision from w's pool (NULL: out of memory); back to the
 * pool with txn_pr_put() (tx->pr becomes NULL); freed at exit. */
struct persist_req *txn_pr_get(struct worker *w);
void txn_pr_put(struct worker *w, struct txn *tx);
void txn_pr_free_all(struct worker *w);
/* A new request id (X-Request-Id), 16 hex digits, not terminated. */
void txn_new_reqid(struct worker *w, char id[16]);
/* The transaction of c ended (c->tx.logged is the caller's): its access
 * log record, persistence verdict and duration counted (txn_log.c). */
void txn_log(struct cconn *c);

#endif
