/*
 * h2-t.h - what h2.c (the connection, nghttp2's session) and xprt_h2s.c
 * (the stream connections' transport) share. Everything belongs to the
 * worker thread of the client connection.
 */
#ifndef BOLLARD_H2_T_H
#define BOLLARD_H2_T_H

#include "h2.h"
#include "h2_head.h"
#include "stream.h"
#include <nghttp2/nghttp2.h>

struct h2_conn;

/*
 * One stream: its client connection as the exchange sees it (c, which
 * must stay first: the exchange's pointer to it is the slot's), the
 * HTTP/1.1 request bytes waiting for the exchange (rx), and the response
 * body waiting for nghttp2 (tx). Pooled per worker: taken at the stream's
 * first HEADERS, back when both the exchange (cc_closed) and nghttp2
 * (ns_closed) are done with it.
 */
struct h2_strm {
	struct cconn c;
	struct h2_conn *h;
	struct h2_strm *next, *prev;  /* the connection's streams / the pool */
	struct h2_strm *wnext;        /* the connection's wake list */
	int32_t id;
	struct buf rx, tx;
	struct h2h_req req;           /* while the header list comes */
	uint32_t rx_head_left;        /* head bytes in rx the exchange has not taken */
	uint64_t unacked;             /* DATA bytes received, not yet given back to the window */
	uint32_t chunk_off;           /* rx offset of the open chunk's size line */
	uint32_t chunk_len;
	bool chunk_open;
	bool rx_body;                 /* rx is from w->h2_bodies */
	bool chunked;                 /* the request body goes chunked */
	bool head_ready;              /* the head is in rx: the exchange may start */
	bool started;                 /* the exchange was started */
	int refused;                  /* bollard answers it itself: 431, 501 */
	bool req_end;                 /* END_STREAM received */
	uint64_t cl_left;             /* DATA the content-length still allows (req.has_cl) */
	bool rsp_head;                /* the final response head was submitted */
	bool text_heads;              /* heads come as text to parse (xprt_ops.head said -1) */
	uint32_t head_skip;           /* bytes of heads submitted already, still to come in writev */
	bool rsp_end;                 /* the whole response body is in tx */
	bool deferred;                /* nghttp2 waits for tx (resume_data) */
	bool woken;                   /* on the wake list */
	bool ns_closed, cc_closed;
	/* the response body the exchange writes, de-framed */
	enum h1_body rbody;
	uint64_t rleft;
	int cstate;
	uint64_t csize;
	uint32_t cline;
};

struct h2_budget {
	uint64_t credit;              /* thousandths of an event */
	uint64_t at;                  /* ms of the last refill */
};

struct h2_conn {
	nghttp2_session *ss;
	struct cconn *c;
	struct h2_strm *streams;      /* every slot in use */
	struct h2_strm *wake;         /* streams to drive once nghttp2 returned */
	struct h2_conn *dnext;        /* the worker's dirty list */
	bool dirty;
	uint32_t nstreams;
	uint32_t nopen;               /* of which the exchange still runs (cc_closed not set) */
	/* DATA that did not fit its stream's rx (sent before our SETTINGS
	 * were acknowledged, within the 65535 bytes RFC 9113 6.9.2 allows):
	 * input is paused until that stream's exchange makes room; it points
	 * into c->in, which does not move meanwhile */
	struct h2_strm *held;
	const uint8_t *held_p;
	size_t held_n;
	const uint8_t *pend;          /* a frame from mem_send that did not fit c->out */
	size_t pend_len;
	/* limits, from the generation the connection started in */
	uint32_t window;              /* per stream, and what rx holds of a body */
	uint32_t max_list;
	uint32_t max_cont;
	uint32_t reset_rate, ctl_rate;
	struct h2_budget rst, settings, ping;
	uint32_t ncont;               /* CONTINUATION frames of the header block */
	uint64_t hdr_since;           /* ms: a header block began (0: none open) */
	uint64_t idle_since;          /* ms: the last stream ended */
	int goaway;                   /* H2_GA_* of a GOAWAY we decided, -1 none */
	bool goaway_sent;
	bool dead;                    /* fatal: close once the GOAWAY is out */
};

extern const struct xprt_ops xprt_h2s;

/* xprt_h2s.c */
struct h2_strm *h2s_take(struct h2_conn *h, int32_t id);
void h2s_recycle(struct h2_strm *s);
void h2s_wake(struct h2_strm *s);
/* DATA of the request into rx: how much of it fits */
size_t h2s_rx_data(struct h2_strm *s, const uint8_t *p, size_t n);
void h2s_rx_end(struct h2_strm *s);
/* a request with a body: rx moves to a buffer with room for the window */
int h2s_rx_for_body(struct h2_strm *s);
ssize_t h2s_read_body(nghttp2_session *ss, int32_t id, uint8_t *out, size_t len,
		      uint32_t *flags, nghttp2_data_source *src, void *user);
/* h2.c */
void h2_mark_dirty(struct h2_conn *h);

#endif
