/*
 * xprt_tcp.c - plain TCP, the first transport (xprt.h), and the two
 * helpers every transport shares: reading into a buffer and sending a
 * vector. The only file of the proxy path that calls the socket API for
 * bytes (recv, send/writev, shutdown, close, SO_ERROR).
 *
 * Sockets are edge-triggered (worker.c): readiness is remembered until it
 * is used up, and a short read or write is what uses it up, so no call that
 * returns EAGAIN is needed to learn it.
 */
#include "api.h"
#include "xprt.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static int tcp_init(struct xconn *x)
{
	int one = 1;
	setsockopt(x->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return 0;
}

/*
 * A short read drained the socket: new data raises a new edge, so no read
 * that returns EAGAIN is needed, and can_read is cleared. Not so for a FIN
 * already reported with this data (rdhup): no edge will come for it, so
 * reading goes on until EOF.
 */
static ssize_t tcp_recv(struct xconn *x, void *p, size_t len)
{
	ssize_t n = recv(x->fd, p, len, 0);
	if (n > 0) {
		if ((size_t)n < len && !x->rdhup)
			x->can_read = false;
		return n;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		if (errno == EAGAIN)
			x->can_read = false;
		return 0;
	}
	x->eof = true;
	x->can_read = false;
	return -1;
}

static ssize_t tcp_writev(struct xconn *x, const struct iovec *iov, int n)
{
	/* one buffer (a request or response head without body bytes, most
	 * of them): send() goes straight to the socket, where writev() first
	 * passes through the VFS (fdget_pos, vfs_writev), a few percent of
	 * the kernel's share of a request in the HTTP/2 profile */
	ssize_t r = n == 1 ? send(x->fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL) :
			     writev(x->fd, iov, n);
	if (r >= 0) {
		size_t want = 0;
		for (int i = 0; i < n; i++)
			want += iov[i].iov_len;
		if ((size_t)r < want)
			x->can_write = false;
		return r;
	}
	if (errno == EAGAIN || errno == EINTR) {
		if (errno == EAGAIN)
			x->can_write = false;
		return 0;
	}
	return -1;
}

static void tcp_shutw(struct xconn *x)
{
	shutdown(x->fd, SHUT_WR);
}

static void tcp_close(struct xconn *x)
{
	close(x->fd); /* also takes it out of epoll */
	x->fd = -1;
}

static int tcp_established(struct xconn *x)
{
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(x->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err)
		return -1;
	return x->can_write ? 1 : 0;
}

/* An error or hang-up makes both directions "ready" so that the next
 * read or write reports it. */
static void tcp_events(struct xconn *x, uint32_t events)
{
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		x->can_read = true;
	if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		x->rdhup = true;
	if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
		x->can_write = true;
}

const struct xprt_ops xprt_tcp = {
	.name = "tcp",
	.init = tcp_init,
	.recv = tcp_recv,
	.writev = tcp_writev,
	.shutw = tcp_shutw,
	.close = tcp_close,
	.established = tcp_established,
	.events = tcp_events,
};

int xprt_tcp_socket(int family)
{
	return socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

int xprt_tcp_connect(struct xconn *x, const struct sockaddr *sa, socklen_t len)
{
	if (connect(x->fd, sa, len) == 0) {
		x->can_write = true;
		return 1;
	}
	return errno == EINPROGRESS ? 0 : -1;
}

/* ---- shared by every transport ---------------------------------------- */

int xconn_read(struct xconn *x, struct buf *b, struct buf_pool *pool)
{
	if (!x->can_read || x->eof)
		return x->eof ? -1 : 0;
	if (buf_get(pool, b) < 0)
		return 0;
	uint32_t room = buf_room(b, pool->size);
	if (!room)
		return 0;
	ssize_t n = x->ops->recv(x, buf_wptr(b), room);
	if (n > 0) {
		BUG_ON((size_t)n > room);
		b->tail += (uint32_t)n;
	}
	return (int)n;
}

ssize_t xconn_writev(struct xconn *x, struct iovec *iov, int n)
{
	if (!x->can_write)
		return 0;
	while (n && iov[0].iov_len == 0) {
		iov++;
		n--;
	}
	/* and the empty ones at the end (a head without body bytes), so that
	 * one buffer is one send() */
	while (n && iov[n - 1].iov_len == 0)
		n--;
	if (!n)
		return 0;
	return x->ops->writev(x, iov, n);
}
