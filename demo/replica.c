/*
 * replica.c - --replicate-to PEER: every session write of the memory store
 * is also sent to the peer demo app, so that when this server fails and
 * bollard moves its users to its `replica` (SPEC 3.2), the peer already
 * holds their sessions.
 *
 * Asynchronous by design: the worker queues a copy and answers at once; one
 * thread of its own drains the queue, pipelining `PUT /replica/ID?ttl=N`
 * (body: store_encode) and `DELETE /replica/ID` over one keep-alive
 * connection. A synchronous copy would make each answer wait on the peer,
 * and two single-threaded apps replicating to each other (or a ring of
 * them) would each wait on the other: a deadlock cut only by the timeout.
 * The price is the one every asynchronous replication pays: a write still
 * queued when the server dies never reaches the replica (the lab counts
 * such sessions as stale). The queue is bounded; a full queue or a peer
 * that is down drops copies, counted in /stats and logged once per outage.
 */
#include "demo.h"
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define REPLICA_QUEUE   4096      /* queued copies (about 4.5 MB) */
#define REPLICA_BATCH   64        /* copies per pipelined write */
#define REPLICA_BACKOFF_MS 200
#define REQ_MAX         (STORE_VALUE_MAX + 160)

struct copy {
	struct store_session s;
	unsigned ttl_s;                /* 0: a deletion */
};

static char peer_host[256];
static int peer_port;
static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t qcond = PTHREAD_COND_INITIALIZER;
static struct copy *queue;
static size_t qhead, qlen;
static _Atomic uint64_t sent, dropped;

void replica_send(const struct store_session *s, unsigned ttl_s)
{
	pthread_mutex_lock(&qlock);
	if (qlen == REPLICA_QUEUE) {
		pthread_mutex_unlock(&qlock);
		atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
		return;
	}
	queue[(qhead + qlen) % REPLICA_QUEUE].s = *s;
	queue[(qhead + qlen) % REPLICA_QUEUE].ttl_s = ttl_s;
	qlen++;
	pthread_cond_signal(&qcond);
	pthread_mutex_unlock(&qlock);
}

uint64_t replica_sent(void)
{
	return atomic_load_explicit(&sent, memory_order_relaxed);
}

uint64_t replica_dropped(void)
{
	return atomic_load_explicit(&dropped, memory_order_relaxed);
}

/* Connect to the peer within the store timeout; the socket keeps that
 * bound on every later read and write (SO_RCVTIMEO, SO_SNDTIMEO). */
static int peer_connect(char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
	struct timeval tv = {
		.tv_sec = store_cfg.timeout_ms / 1000,
		.tv_usec = (store_cfg.timeout_ms % 1000) * 1000,
	};
	char port[16];
	struct pollfd pfd;
	int fd, one = 1, soerr = 0, rc;
	socklen_t sl = sizeof(soerr);

	snprintf(port, sizeof(port), "%d", peer_port);
	rc = getaddrinfo(peer_host, port, &hints, &ai);
	if (rc) {
		snprintf(err, errlen, "%.64s: %s", peer_host, gai_strerror(rc));
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS)
			goto fail;
		pfd.fd = fd;
		pfd.events = POLLOUT;
		rc = poll(&pfd, 1, (int)store_cfg.timeout_ms);
		if (rc == 0)
			errno = ETIMEDOUT;
		if (rc <= 0)
			goto fail;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
			errno = soerr;
			goto fail;
		}
	}
	/* Back to blocking: this thread has nothing else to do meanwhile. */
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
		goto fail;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	freeaddrinfo(ai);
	return fd;
fail:
	snprintf(err, errlen, "connect %.64s:%d: %s", peer_host, peer_port, strerror(errno));
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	return -1;
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read n answers to the pipelined requests; each must be a 2xx. The
 * peer's answers are short heads with "Content-Length: N" bodies. */
static int read_answers(int fd, unsigned n, char *err, size_t errlen)
{
	static char buf[65536];
	size_t have = 0;

	while (n) {
		char *eoh = have ? memmem(buf, have, "\r\n\r\n", 4) : NULL;
		if (eoh) {
			size_t hl = (size_t)(eoh + 4 - buf), bl = 0, used;
			char *cl = memmem(buf, hl, "Content-Length: ", 16);
			if (hl < 12 || memcmp(buf, "HTTP/1.1 2", 10) != 0) {
				snprintf(err, errlen, "peer answered %.12s", buf);
				return -1;
			}
			if (cl)
				bl = strtoul(cl + 16, NULL, 10);
			used = hl + bl;
			if (used <= have) {
				memmove(buf, buf + used, have - used);
				have -= used;
				n--;
				continue;
			}
		}
		if (have == sizeof(buf)) {
			snprintf(err, errlen, "peer answer too large");
			return -1;
		}
		ssize_t r = recv(fd, buf + have, sizeof(buf) - have, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			snprintf(err, errlen, "peer %s", r == 0 ? "closed the connection" :
				 strerror(errno));
			return -1;
		}
		have += (size_t)r;
	}
	return 0;
}

static void *replica_main(void *arg)
{
	static struct copy batch[REPLICA_BATCH];
	static char req[REPLICA_BATCH * REQ_MAX];
	char value[STORE_VALUE_MAX + 1], err[STORE_ERR_MAX];
	bool failing = false;
	int fd = -1;

	for (;;) {
		unsigned n = 0, i;
		size_t len = 0;

		pthread_mutex_lock(&qlock);
		while (qlen == 0)
			pthread_cond_wait(&qcond, &qlock);
		while (qlen && n < REPLICA_BATCH) {
			batch[n++] = queue[qhead];
			qhead = (qhead + 1) % REPLICA_QUEUE;
			qlen--;
		}
		pthread_mutex_unlock(&qlock);

		for (i = 0; i < n; i++) {
			const struct copy *cp = &batch[i];
			if (cp->ttl_s == 0) {
				len += (size_t)snprintf(req + len, REQ_MAX,
					"DELETE /replica/%s HTTP/1.1\r\nHost: %s\r\n\r\n",
					cp->s.id, peer_host);
				continue;
			}
			size_t vl = store_encode(&cp->s, value);
			len += (size_t)snprintf(req + len, REQ_MAX,
				"PUT /replica/%s?ttl=%u HTTP/1.1\r\nHost: %s\r\n"
				"Content-Length: %zu\r\n\r\n%s",
				cp->s.id, cp->ttl_s, peer_host, vl, value);
		}
		if (fd < 0)
			fd = peer_connect(err, sizeof(err));
		if (fd >= 0 && (send_all(fd, req, len) < 0 ?
				(snprintf(err, sizeof(err), "send: %s", strerror(errno)), -1) :
				read_answers(fd, n, err, sizeof(err))) == 0) {
			atomic_fetch_add_explicit(&sent, n, memory_order_relaxed);
			if (failing)
				store_log("replica %s:%d is back", peer_host, peer_port);
			failing = false;
			continue;
		}
		atomic_fetch_add_explicit(&dropped, n, memory_order_relaxed);
		if (fd >= 0)
			close(fd);
		fd = -1;
		if (!failing)
			store_log("replica %s:%d: %s; dropping copies until it is back",
				  peer_host, peer_port, err);
		failing = true;
		{
			struct timespec ts = { 0, REPLICA_BACKOFF_MS * 1000000L };
			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

const char *replica_configure(const char *peer)
{
	const char *rest;
	pthread_t tid;

	if (store_hostport(peer, peer_host, sizeof(peer_host), &peer_port, -1, &rest) < 0 ||
	    peer_port < 0 || (*rest && strcmp(rest, "/") != 0))
		return "--replicate-to must be HOST:PORT (the peer demo app)";
	queue = calloc(REPLICA_QUEUE, sizeof(*queue));
	if (!queue)
		return "out of memory";
	if (pthread_create(&tid, NULL, replica_main, NULL))
		return "cannot start the replication thread";
	pthread_detach(tid);
	return NULL;
}
