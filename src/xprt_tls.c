/*
 * xprt_tls.c - TLS, the second transport (xprt.h, xprt_tls.h): OpenSSL 3
 * driven non-blocking in the worker's edge-triggered loop.
 *
 * The handshake (server side) runs inside the first recv or writev: the
 * exchange code reads the connection as it reads a TCP one, and the bytes
 * it gets are the request. OpenSSL may need the socket writable to go on
 * reading (the handshake's flight, a key update, a ticket) or readable to
 * go on writing; the call that hit it remembers which (rd_wants_write,
 * wr_wants_read), clears its own readiness, and events() turns the other
 * direction's edge into it. So nothing here ever waits, and nothing is
 * polled: every return is at an EAGAIN the kernel will raise an edge for.
 *
 * The SSL_CTX comes from tls_ctx.c (partial writes and a moving write
 * buffer allowed, no renegotiation, tickets). The context must outlive
 * every SSL made from it: each session holds the configuration generation
 * that owns it (cfg_hold), apart from the client connection's own hold,
 * which moves to a newer generation between requests.
 *
 * As the client of a server (xprt_tls_client), the handshake is driven by
 * established() instead, which the connect step calls on every event
 * until it says done: the exchange never writes a request on a connection
 * whose server is not verified yet. A server connection never outlives
 * its generation (sconn.c: pools are per generation), so it holds none.
 */
#include "api.h"
#include "xprt_tls.h"
#include "cfg.h"
#include "log.h"
#include "route.h"
#include "tls_ctx.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* One record's worth: what is gathered from a vector into one SSL_write
 * (RFC 8446 5.1: 2^14 bytes of plaintext per record). */
#define TLS_GATHER 16384

struct tls_conn {
	SSL *ssl;
	const struct tls_bind *bind;      /* server side: the bind; NULL for a client */
	struct tls_server *srv;           /* client side: the server; NULL otherwise */
	bool tcp_up;                      /* client: the TCP connect is done */
	bool hs_done;
	bool failed;          /* the handshake failed: counted and logged */
	bool rd_wants_write;  /* a receive waits for EPOLLOUT */
	bool wr_wants_read;   /* a send waits for EPOLLIN */
	bool shut;            /* close_notify sent (or tried) */
	bool short_read;      /* the socket's last read() got less than asked */
};

/* ---- handshake ---------------------------------------------------------- */

static enum tls_err classify(unsigned long e, int sslerr, int err_no)
{
	if (!e)
		return sslerr == SSL_ERROR_SYSCALL || sslerr == SSL_ERROR_ZERO_RETURN ||
		       err_no == ECONNRESET ? TLS_ERR_CLOSED : TLS_ERR_OTHER;
	switch (ERR_GET_REASON(e)) {
	case SSL_R_NO_SHARED_CIPHER:
	case SSL_R_NO_SHARED_GROUPS:
	case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
	case SSL_R_NO_SHARED_SIGNATURE_ALGORITHMS:
		return TLS_ERR_NO_CIPHER;
	case SSL_R_NO_APPLICATION_PROTOCOL:
		return TLS_ERR_ALPN;
	case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
	case SSL_R_CERTIFICATE_VERIFY_FAILED:
		return TLS_ERR_CERT;
	case SSL_R_UNEXPECTED_EOF_WHILE_READING:
		return TLS_ERR_CLOSED;
	default:
		return ERR_GET_LIB(e) == ERR_LIB_SSL ? TLS_ERR_PROTOCOL : TLS_ERR_OTHER;
	}
}

/* Counted and logged once per connection, with OpenSSL's reason: the
 * operator's first question about a failing client is "why". */
static void hs_failed(struct xconn *x, struct tls_conn *t, enum tls_err why, const char *reason)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char ip[64] = "-";

	t->failed = true;
	if (t->srv) {
		atomic_fetch_add_explicit(&t->srv->err[why], 1, memory_order_relaxed);
		log_msg(LOG_WARN, "server %s: TLS handshake failed: %s (%s)", t->srv->name, reason,
			tls_srv_err_names[why]);
		return;
	}
	atomic_fetch_add_explicit(&t->bind->fe->tls->err[why], 1, memory_order_relaxed);
	if (getpeername(x->fd, (struct sockaddr *)&ss, &len) == 0)
		route_addr_text(&ss, ip, sizeof(ip));
	log_msg(LOG_INFO, "frontend %s: TLS handshake from %s failed: %s (%s)",
		t->bind->fe->name, ip, reason, tls_err_names[why]);
}

static void hs_count(struct tls_conn *t)
{
	int v = SSL_version(t->ssl) == TLS1_3_VERSION;
	int r = SSL_session_reused(t->ssl) == 1;
	if (t->srv)
		atomic_fetch_add_explicit(&t->srv->hs[r], 1, memory_order_relaxed);
	else
		atomic_fetch_add_explicit(&t->bind->fe->tls->hs[v][r], 1, memory_order_relaxed);
}

/* The readiness an OpenSSL call used up: want is SSL_ERROR_WANT_*; dir
 * tells which call it was (true: a receive). */
static void wants(struct xconn *x, struct tls_conn *t, int want, bool receiving)
{
	if (want == SSL_ERROR_WANT_READ) {
		x->can_read = false;
		if (!receiving) {
			t->wr_wants_read = true;
			x->can_write = false;
		}
	} else {
		x->can_write = false;
		if (receiving) {
			t->rd_wants_write = true;
			x->can_read = false;
		}
	}
}

/* 1 done, 0 not yet (readiness used up), -1 failed (eof set). */
static int handshake(struct xconn *x, struct tls_conn *t, bool receiving)
{
	ERR_clear_error();
	errno = 0;
	int r = SSL_do_handshake(t->ssl);
	if (r == 1) {
		t->hs_done = true;
		hs_count(t);
		return 1;
	}
	int e = SSL_get_error(t->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		wants(x, t, e, receiving);
		return 0;
	}
	unsigned long code = ERR_peek_error();
	enum tls_err why = classify(code, e, errno);
	if (why == TLS_ERR_CLOSED && !t->srv && BIO_number_read(SSL_get_rbio(t->ssl)) == 0) {
		/* closed without sending a byte: a port probe or an L4 health
		 * check, not a handshake */
		t->failed = true;
		ERR_clear_error();
		x->eof = true;
		x->can_read = x->can_write = false;
		return -1;
	}
	char reason[160];
	if (t->srv && (code || !errno))
		tls_client_why(t->ssl, code, reason, sizeof(reason));
	else if (code)
		ERR_error_string_n(code, reason, sizeof(reason));
	else
		snprintf(reason, sizeof(reason), "%s", errno ? strerror(errno) : "connection closed");
	hs_failed(x, t, why, code && ERR_reason_error_string(code) && !t->srv ?
		  ERR_reason_error_string(code) : reason);
	ERR_clear_error();
	x->eof = true;
	x->can_read = x->can_write = false;
	return -1;
}

/* ---- the operations ------------------------------------------------------- */

/* Sees every read() OpenSSL makes on the socket: one that got less than it
 * asked for drained the socket, as a short recv does for xprt_tcp. */
static long bio_seen(BIO *b, int oper, const char *argp, size_t len, int argi, long argl,
		     int ret, size_t *processed)
{
	(void)argp;
	(void)argi;
	(void)argl;
	if (oper == (BIO_CB_READ | BIO_CB_RETURN)) {
		struct tls_conn *t = (struct tls_conn *)BIO_get_callback_arg(b);
		t->short_read = ret > 0 && *processed < len;
	}
	return ret;
}

static int tls_init(struct xconn *x)
{
	const struct tls_bind *b = x->ctx;
	struct tls_conn *t = calloc(1, sizeof(*t));
	x->ctx = t;
	if (!t)
		return -1;
	t->bind = b;
	cfg_hold(b->cfg);
	t->ssl = SSL_new(tls_ctx_ssl_ctx(b->ctx));
	if (!t->ssl || !SSL_set_fd(t->ssl, x->fd)) {
		ERR_clear_error();
		return -1;
	}
	SSL_set_accept_state(t->ssl);
	BIO_set_callback_arg(SSL_get_rbio(t->ssl), (char *)t);
	BIO_set_callback_ex(SSL_get_rbio(t->ssl), bio_seen);
	int one = 1;
	setsockopt(x->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return 0;
}

/*
 * SSL_read returns one record at most: a short SSL_read says nothing about
 * the socket, so reading goes on until len is filled, or OpenSSL wants the
 * socket, or (as in xprt_tcp) the read() this SSL_read made got less than
 * it asked and nothing is left in OpenSSL's buffer (SSL_has_pending): the
 * socket is drained and new bytes raise a new edge, so the read() that
 * would only return EAGAIN is not made. The read buffer is filled ahead
 * (tls_ctx.c), so that read() took the whole record. Bytes already
 * decrypted (SSL_pending) keep can_read set, and so does a FIN already
 * reported (rdhup), which no edge will announce again.
 */
static ssize_t tls_recv(struct xconn *x, void *p, size_t len)
{
	struct tls_conn *t = x->ctx;
	if (x->eof)
		return -1;
	if (!t->hs_done) {
		int h = handshake(x, t, true);
		if (h <= 0)
			return h;
	}
	t->rd_wants_write = false;
	size_t got = 0;
	while (got < len) {
		ERR_clear_error();
		size_t n = 0;
		t->short_read = false;
		int r = SSL_read_ex(t->ssl, (char *)p + got, len - got, &n);
		if (r == 1) {
			got += n;
			if (t->short_read && !x->rdhup && !SSL_has_pending(t->ssl)) {
				x->can_read = false;
				break;
			}
			continue;
		}
		int e = SSL_get_error(t->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			wants(x, t, e, true);
			break;
		}
		/* close_notify, a reset, or a damaged record: the end either way
		 * (what came before it is still handed over) */
		ERR_clear_error();
		x->eof = true;
		x->can_read = false;
		if (!got)
			return -1;
		break;
	}
	return (ssize_t)got;
}

/*
 * A vector becomes records: small entries are gathered into one record (a
 * head and a short body go out as one), big ones are written in place. A
 * write OpenSSL could not finish (WANT_*) is retried with the same bytes
 * at the front of the caller's next vector, which the exchange guarantees
 * (it consumes only what was reported written); the moving write buffer
 * mode makes a gathered copy at another address acceptable.
 */
static ssize_t tls_writev(struct xconn *x, const struct iovec *iov, int n)
{
	struct tls_conn *t = x->ctx;
	char gather[TLS_GATHER];
	size_t done = 0;
	int i = 0;
	size_t off = 0; /* into iov[i] */

	if (!t->hs_done) {
		int h = handshake(x, t, false);
		if (h <= 0)
			return h;
	}
	t->wr_wants_read = false;
	while (i < n) {
		const char *src;
		size_t len;
		if (iov[i].iov_len - off >= TLS_GATHER || i == n - 1) {
			src = (const char *)iov[i].iov_base + off;
			len = iov[i].iov_len - off;
		} else {
			size_t g = 0;
			for (int k = i; k < n && g < TLS_GATHER; k++) {
				size_t from = k == i ? off : 0;
				size_t take = MIN(iov[k].iov_len - from, TLS_GATHER - g);
				/* an empty entry may be {NULL, 0}: no arithmetic on it */
				if (take)
					memcpy(gather + g, (const char *)iov[k].iov_base + from, take);
				g += take;
			}
			src = gather;
			len = g;
		}
		if (!len) {
			i++;
			off = 0;
			continue;
		}
		ERR_clear_error();
		size_t w = 0;
		int r = SSL_write_ex(t->ssl, src, len, &w);
		if (r != 1) {
			int e = SSL_get_error(t->ssl, r);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
				wants(x, t, e, false);
				break;
			}
			ERR_clear_error();
			return done ? (ssize_t)done : -1;
		}
		done += w;
		/* advance over w bytes of the vector */
		while (w && i < n) {
			size_t left = iov[i].iov_len - off;
			if (w < left) {
				off += w;
				w = 0;
			} else {
				w -= left;
				i++;
				off = 0;
			}
		}
	}
	return (ssize_t)done;
}

/* close_notify (RFC 8446 6.1), sent once and not waited for: a client that
 * truncates is the client's business, ours is that our end is not taken
 * for a truncation. Then the TCP FIN, when the alert is out. */
static void send_close_notify(struct xconn *x, struct tls_conn *t)
{
	if (t->shut || !t->hs_done || t->failed)
		return;
	t->shut = true;
	ERR_clear_error();
	int r = SSL_shutdown(t->ssl);
	if (r < 0 && SSL_get_error(t->ssl, r) == SSL_ERROR_WANT_WRITE) {
		ERR_clear_error();
		return;
	}
	ERR_clear_error();
	(void)x;
}

static void tls_shutw(struct xconn *x)
{
	struct tls_conn *t = x->ctx;
	bool was = t->shut;
	send_close_notify(x, t);
	if (!was)
		shutdown(x->fd, SHUT_WR);
}

static void tls_close(struct xconn *x)
{
	struct tls_conn *t = x->ctx;
	if (t) {
		if (t->ssl) {
			if (!t->hs_done && !t->failed && t->bind)
				atomic_fetch_add_explicit(&t->bind->fe->tls->err[TLS_ERR_INCOMPLETE], 1,
							  memory_order_relaxed);
			if (!t->hs_done && !t->failed && t->srv && t->tcp_up)
				/* timeout connect, or the client left first: once,
				 * like a failure (the handshake to a server that
				 * accepts and never answers ends here) */
				hs_failed(x, t, TLS_ERR_INCOMPLETE, "handshake not finished when the "
					  "connection was closed (timeout connect, or the client left)");
			send_close_notify(x, t);
			SSL_free(t->ssl);
		}
		if (t->bind)
			cfg_release(t->bind->cfg);
		free(t);
		x->ctx = NULL;
	}
	close(x->fd);
	x->fd = -1;
}

/* Server side: established once the handshake is done (the first recv
 * drives it). */
static int tls_established(struct xconn *x)
{
	struct tls_conn *t = x->ctx;
	if (t->failed)
		return -1;
	if (t->hs_done)
		return 1;
	return handshake(x, t, true);
}

static void tls_events(struct xconn *x, uint32_t events)
{
	struct tls_conn *t = x->ctx;
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
		x->can_read = true;
		if (t && t->wr_wants_read)
			x->can_write = true;
	}
	if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		x->rdhup = true;
	if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) {
		x->can_write = true;
		if (t && t->rd_wants_write)
			x->can_read = true;
	}
}

const struct xprt_ops xprt_tls = {
	.name = "tls",
	.init = tls_init,
	.recv = tls_recv,
	.writev = tls_writev,
	.shutw = tls_shutw,
	.close = tls_close,
	.established = tls_established,
	.events = tls_events,
};

/* ---- the client side ----------------------------------------------------- */

static int tlsc_init(struct xconn *x)
{
	struct tls_server *srv = x->ctx;
	struct tls_conn *t = calloc(1, sizeof(*t));
	x->ctx = t;
	if (!t)
		return -1;
	t->srv = srv;
	t->ssl = tls_client_ssl_new(srv->cli, srv->host);
	if (!t->ssl || !SSL_set_fd(t->ssl, x->fd)) {
		ERR_clear_error();
		return -1;
	}
	int one = 1;
	setsockopt(x->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return 0;
}

/* The TCP connect's outcome first (as xprt_tcp), then the handshake: each
 * call goes as far as the socket lets it. */
static int tlsc_established(struct xconn *x)
{
	struct tls_conn *t = x->ctx;
	if (!t || !t->ssl || t->failed)
		return -1;
	if (t->hs_done)
		return 1;
	if (!t->tcp_up) {
		int r = xprt_tcp.established(x);
		if (r < 0)
			t->failed = true; /* a connect failure, not a handshake's */
		if (r <= 0)
			return r;
		t->tcp_up = true;
	}
	return handshake(x, t, true);
}

const struct xprt_ops xprt_tls_client = {
	.name = "tls-client",
	.init = tlsc_init,
	.recv = tls_recv,
	.writev = tls_writev,
	.shutw = tls_shutw,
	.close = tls_close,
	.established = tlsc_established,
	.events = tls_events,
};

/*
 * The SSL gets a copy of the session kept, never the kept one: OpenSSL
 * marks the session of an SSL not resumable when the connection ends in an
 * error (a server closing without close_notify is one), and the kept one
 * must stay good for the next connection (TLS 1.2 hands no new session to
 * a resumed connection). One copy per new connection, not per request.
 */
void xprt_tls_resume(struct xconn *x, struct ssl_session_st *sess)
{
	struct tls_conn *t = x->ctx;
	SSL_SESSION *copy = t && t->ssl && sess ? SSL_SESSION_dup(sess) : NULL;
	/* a session the context refuses (another version) means a full
	 * handshake, which is what no session means too */
	if (copy && SSL_set_session(t->ssl, copy) != 1)
		ERR_clear_error();
	SSL_SESSION_free(copy);
}

struct ssl_session_st *xprt_tls_take_session(struct xconn *x)
{
	struct tls_conn *t = x->ops == &xprt_tls_client ? x->ctx : NULL;
	return t && t->ssl ? tls_client_take_session(t->ssl) : NULL;
}

bool xprt_tls_failed(const struct xconn *x)
{
	const struct tls_conn *t = x->ops == &xprt_tls_client ? x->ctx : NULL;
	return t && t->failed;
}

void xprt_tls_session_free(struct ssl_session_st *sess)
{
	SSL_SESSION_free(sess);
}

bool xprt_tls_info(const struct xconn *x, struct tls_info *out)
{
	if (x->ops != &xprt_tls || !x->ctx)
		return false;
	const struct tls_conn *t = x->ctx;
	if (!t->hs_done)
		return false;
	const unsigned char *a = NULL;
	unsigned alen = 0;
	SSL_get0_alpn_selected(t->ssl, &a, &alen);
	const char *sni = SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name);
	int v = SSL_version(t->ssl);
	out->version = v == TLS1_3_VERSION ? "1.3" : v == TLS1_2_VERSION ? "1.2" : "-";
	out->alpn = alen ? (const char *)a : "-";
	out->alpn_len = alen ? alen : 1;
	out->sni = sni && *sni ? sni : "-";
	out->resumed = SSL_session_reused(t->ssl) == 1;
	return true;
}

/*
 * OpenSSL keeps a connection's read and write buffers (about 17 KB each,
 * a record's worth) from its first record to SSL_free, so that a busy
 * connection allocates nothing per request; SSL_free_buffers gives them
 * back, and the next record read or written takes them again. It refuses
 * while either holds bytes (a record begun, a write not flushed), and the
 * check for decrypted bytes not yet read is ours too (SSL_has_pending):
 * such a connection is not idle, and is asked again later.
 */
bool xprt_tls_release(struct xconn *x)
{
	struct tls_conn *t = x->ops == &xprt_tls || x->ops == &xprt_tls_client ? x->ctx : NULL;
	if (!t || !t->ssl || !t->hs_done || t->shut || SSL_has_pending(t->ssl))
		return false;
	return SSL_free_buffers(t->ssl) == 1;
}
