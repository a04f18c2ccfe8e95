/*
 * demo.h - the types shared by the modules of bollard-demo-app: the
 * configuration, the worker threads (one epoll loop each), a connection
 * with its parsed request, and the small output-buffer helpers.
 *
 * Modules: main.c (options, listeners, event loops, timers), conn.c
 * (socket I/O, request parsing, body decoding, the connection state
 * machine), route.c (the endpoints), ws.c (WebSocket echo), store*.c
 * (where sessions are kept, store.h), replica.c (--replicate-to), hash.c
 * (SHA-256, SHA-1, base64).
 */
#ifndef DEMO_H
#define DEMO_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hash.h"

#define DEMO_RBUF_SIZE    32768  /* input buffer = largest request head (431 beyond) */
#define DEMO_MAX_FIELDS   128    /* header fields per request (431 beyond) */
#define DEMO_OUT_HIGH     65536  /* stop producing output above this many pending bytes */
#define DEMO_OUT_MAX      (1u << 20) /* hard bound of one connection's output buffer */
#define DEMO_KEEP_BODY    4096   /* request-body bytes kept (/cart/add form, /replica value) */
#define DEMO_TRAILERS_MAX 4096   /* trailer-section bytes kept for /echo */
#define DEMO_LINE_MAX     4096   /* chunk-size and trailer line limit */

/* A growable byte buffer; oom latches so writers check once at the end. */
struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

void sbuf_put(struct sbuf *b, const void *s, size_t n);
void sbuf_puts(struct sbuf *b, const char *s);
void sbuf_putu(struct sbuf *b, uint64_t v);
/* JSON string literal (with the quotes) of s[0..n); bytes >= 0x80 are taken
 * as Latin-1 and written as \u00XX so the output is always valid JSON. */
void sbuf_json(struct sbuf *b, const char *s, size_t n);
/* HTML-escaped text of s[0..n). */
void sbuf_html(struct sbuf *b, const char *s, size_t n);
/* Make room for n more bytes; false when the buffer would pass max. */
bool sbuf_reserve(struct sbuf *b, size_t n, size_t max);
void sbuf_free(struct sbuf *b);

struct demo_config {
	const char *name;
	size_t name_len;
	const char *cookie;          /* session cookie name */
	size_t cookie_len;
	int threads;
};

extern struct demo_config demo_cfg;
extern atomic_int demo_failing;   /* 1 after POST /admin/fail */

struct demo_conn;

/* One worker thread. Counters are written by their thread only and read
 * by any thread answering /stats, hence relaxed atomics. */
struct demo_worker {
	int ep;                       /* epoll fd */
	int lfd;                      /* this thread's SO_REUSEPORT listener */
	pthread_t tid;
	struct demo_conn *timers;     /* conns waiting on a deadline, sorted */
	struct sbuf scratch;          /* response bodies are built here */
	_Atomic uint64_t accepted;
	_Atomic uint64_t requests;
} __attribute__((aligned(64)));

extern struct demo_worker *demo_workers;
extern int demo_nworkers;

/* Offsets into the request head (req.hb). */
struct demo_field {
	uint32_t name, name_len, value, value_len;
};

enum demo_route {
	R_NOT_FOUND, R_INDEX, R_CART_ADD, R_HEALTHZ, R_ADMIN_FAIL,
	R_ADMIN_RECOVER, R_WHOAMI, R_ECHO, R_BYTES, R_SLOW, R_WS, R_STATUS,
	R_STATS, R_LOGOUT, R_REPLICA,
};

struct demo_req {
	const char *hb;               /* head base: in rbuf or head_copy */
	uint32_t head_len;
	uint32_t meth_len, target, target_len;   /* method starts at 0 */
	uint32_t path_len;            /* target up to '?' */
	int minor;                    /* HTTP/1.minor */
	unsigned nfields;
	struct demo_field fields[DEMO_MAX_FIELDS];
	uint64_t clen;
	bool has_clen, chunked, keepalive, expect100, is_head;
	bool conn_upgrade, upgrade_ws;
	enum demo_route route;
};

enum conn_state {
	CS_HEAD,        /* waiting for / parsing a request head */
	CS_BODY,        /* consuming the request body */
	CS_STREAM,      /* generating a long response body (/bytes) */
	CS_SLEEP,       /* /slow: waiting for the timer */
	CS_WS,          /* WebSocket frames */
	CS_CLOSING,     /* flush the output, then half-close */
	CS_DRAIN,       /* half-closed: read and discard until EOF or timeout */
};

enum body_state { BS_CL, BS_CSIZE, BS_CDATA, BS_CCRLF, BS_TRAILER };

struct ws_state {
	bool in_payload;
	uint8_t opcode;               /* of the frame being read */
	bool fin;
	uint8_t mask[4];
	uint64_t left;                /* payload bytes still to read */
	uint64_t pos;                 /* payload bytes read (mask index) */
	bool discard;                 /* pong: read, do not echo */
	bool closing;                 /* a close frame: close after echoing */
};

struct demo_conn {
	struct demo_worker *w;
	int fd;
	enum conn_state st;
	bool rd_eof;
	bool close_after;             /* close once this response is out */
	uint32_t roff, rlen;          /* unread input is rbuf[roff..rlen) */
	struct sbuf out;              /* pending output is out.p[woff..len) */
	size_t woff;
	struct demo_req req;
	char *head_copy;              /* the head, kept while its body streams */

	/* request body */
	enum body_state bst;
	uint64_t left;                /* in Content-Length body or chunk */
	uint64_t body_len;
	bool hashing;
	struct hash_sha256 sha;
	char keep[DEMO_KEEP_BODY];
	size_t keep_len;
	char trailers[DEMO_TRAILERS_MAX];
	size_t trailers_len;          /* kept */
	size_t trailers_seen;         /* received */

	/* streamed response (/bytes) */
	uint64_t gen_left, gen_pos;
	bool gen_chunked;

	/* deadline (/slow, drain) */
	uint64_t deadline;            /* CLOCK_MONOTONIC ms */
	struct demo_conn *tprev, *tnext;
	bool timed;

	struct ws_state ws;
	char rbuf[DEMO_RBUF_SIZE];
};

static inline uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static inline size_t min_sz(size_t a, size_t b)
{
	return a < b ? a : b;
}

/* main.c */
uint64_t demo_now_ms(void);
void demo_timer_set(struct demo_conn *c, uint64_t deadline_ms);
void demo_timer_clear(struct demo_conn *c);

/* conn.c */
/* Take ownership of an accepted, non-blocking socket: registers it with
 * the worker's epoll. Closes fd on failure. */
void conn_accept(struct demo_worker *w, int fd);
/* Make all the progress possible on c (read, parse, answer, write); frees
 * c when the connection ends. Called on every epoll event and timer. */
void conn_run(struct demo_conn *c);
/* The deadline of c passed (called by the worker loop, then conn_run). */
void conn_timeout(struct demo_conn *c);
/* Value of header name (case-insensitive), first occurrence, or NULL. */
const char *conn_header(const struct demo_req *r, const char *name, size_t *len);

/* route.c */
/* Build the constant answers and the /bytes pattern, before the threads. */
void route_init(void);
/* Classify the request once its head is parsed (sets r->route and whether
 * the body must be hashed). */
void route_classify(struct demo_conn *c);
/* The request (and its body) is complete: queue the answer and set c->st
 * to what follows (CS_HEAD, CS_STREAM, CS_SLEEP, CS_WS, CS_CLOSING).
 * Returns 0, or -1 to drop the connection. */
int route_respond(struct demo_conn *c);
/* /slow's timer fired: send its answer. */
int route_slow_done(struct demo_conn *c);
/* Append the next pieces of a /bytes body while the output has room; sets
 * c->st when the body is complete. Returns >0 on progress, 0 when the
 * output is full, -1 to drop. */
int route_stream(struct demo_conn *c);
/* Queue an error answer with Connection: close and enter CS_CLOSING. */
void route_error(struct demo_conn *c, int status, const char *text);

/* ws.c */
/* Consume WebSocket frames from the input and echo them. Returns >0 on
 * progress, 0 when waiting for input or output room, -1 to drop. */
int ws_process(struct demo_conn *c);
/* Compute Sec-WebSocket-Accept for key[0..len) into out[29]. */
void ws_accept_key(const char *key, size_t len, char out[29]);

#endif
