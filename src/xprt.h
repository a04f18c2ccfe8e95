/*
 * xprt.h - the transport under a connection: how its bytes are received
 * and sent, and when either can make progress.
 *
 * The exchange code (stream.c, dispatch.c) never calls a socket: it calls
 * the operations of its connection's transport, in the spirit of NGINX's
 * c->recv / c->send, Redis's conn->type and HAProxy's xprt_ops. Plain TCP
 * (xprt_tcp.c) is the first transport; TLS is meant to be the second.
 *
 * Readiness is the transport's to decide, not the kernel's: epoll reports
 * what the socket can do, and xprt_ops.events() turns that into "a receive
 * may make progress" (can_read) and "a send may make progress" (can_write).
 * For TCP the two are the same thing. A TLS transport may need the socket
 * to be writable before a receive can go on (a handshake or a key update
 * mid-stream) or readable before a send can: its recv or writev remembers
 * which, and its events() then sets can_read on EPOLLOUT, or can_write on
 * EPOLLIN. The exchange code only ever looks at can_read / can_write.
 *
 * Return conventions (doc/principles.md, I/O steps): recv and writev
 * return > 0 bytes moved, 0 no progress now (readiness used up, try at the
 * next event), -1 the connection is dead (eof set by recv); they clear
 * can_read / can_write themselves when they used the readiness up.
 */
#ifndef BOLLARD_XPRT_H
#define BOLLARD_XPRT_H

#include "api.h"
#include "buf.h"
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

struct xconn;
struct h1_msg;
struct http_resp_opts;

struct xprt_ops {
	const char *name;
	/* The connection x->fd was just accepted or connected: set it up
	 * (TCP: no Nagle; TLS: create the session). 0, or -1 to close it. */
	int (*init)(struct xconn *x);
	/* Receive up to len bytes into p (see the conventions above). */
	ssize_t (*recv)(struct xconn *x, void *p, size_t len);
	/* Send the n entries of iov, in order, as far as possible. */
	ssize_t (*writev)(struct xconn *x, const struct iovec *iov, int n);
	/* No more bytes from us (the half-close a tunnel carries, or the
	 * lingering close of a client). */
	void (*shutw)(struct xconn *x);
	/* Release everything the transport holds, the descriptor included
	 * (which takes it out of epoll); x->fd becomes -1. */
	void (*close)(struct xconn *x);
	/* Whether an outgoing connection is established (TCP: the connect's
	 * outcome; TLS: the handshake done too): 1 yes, 0 not yet, -1 failed. */
	int (*established)(struct xconn *x);
	/* epoll reported events (EPOLL*) on x->fd: update the readiness. */
	void (*events)(struct xconn *x, uint32_t events);
	/* Optional (NULL for byte transports): the response head m, with what
	 * ro adds, is about to be written as its HTTP/1.1 text of len bytes.
	 * A transport that does not carry HTTP/1.1 (an HTTP/2 stream) may take
	 * the fields from here, parsed already, and drop those len bytes when
	 * writev brings them: 0. -1: it takes the text and parses it. */
	int (*head)(struct xconn *x, const struct h1_msg *m, const struct http_resp_opts *ro,
		    uint32_t len);
};

/* One end of a connection as the exchange sees it: client (cconn) and
 * server (sconn) connections both hold one. */
struct xconn {
	int fd;                       /* -1 once closed */
	const struct xprt_ops *ops;
	void *ctx;                    /* the transport's own state (NULL for TCP) */
	bool can_read, can_write;     /* readiness not used up yet (the transport's view) */
	bool rdhup;                   /* the peer's FIN was reported: read to EOF */
	bool eof;                     /* the peer will send nothing more */
};

/* Plain TCP (xprt_tcp.c). */
extern const struct xprt_ops xprt_tcp;

/* Set x up on fd with transport ops (init not called). */
static inline void xconn_init(struct xconn *x, int fd, const struct xprt_ops *ops)
{
	*x = (struct xconn){ .fd = fd, .ops = ops };
}

/* Read what fits into b (taken from pool if it has no memory). Returns
 * bytes read, 0 if nothing (no room, no readiness, or nothing there), -1
 * at the end of the stream or on an error (x->eof set). */
int xconn_read(struct xconn *x, struct buf *b, struct buf_pool *pool);
/* Send iov[0..n) (empty entries skipped). >0 bytes written, 0 would
 * block or nothing to send, -1 error. */
ssize_t xconn_writev(struct xconn *x, struct iovec *iov, int n);

/* Receive into p without a buffer (draining a lingering client). */
static inline ssize_t xconn_recv(struct xconn *x, void *p, size_t len)
{
	return x->ops->recv(x, p, len);
}
static inline void xconn_shutw(struct xconn *x) { x->ops->shutw(x); }
static inline void xconn_close(struct xconn *x)
{
	if (x->fd >= 0)
		x->ops->close(x);
}
static inline int xconn_established(struct xconn *x) { return x->ops->established(x); }
static inline void xconn_events(struct xconn *x, uint32_t ev) { x->ops->events(x, ev); }

/* Outgoing TCP: a new non-blocking socket for family (-1 and errno if
 * none), then its connect to sa: 1 connected, 0 in progress (the outcome
 * comes through established()), -1 failed. */
int xprt_tcp_socket(int family);
int xprt_tcp_connect(struct xconn *x, const struct sockaddr *sa, socklen_t len);

#endif
