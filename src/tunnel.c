/*
 * tunnel.c - bytes both ways between a client and a server connection,
 * once the exchange gave way to another protocol: after a 101 Switching
 * Protocols to an upgrade that was allowed (websocket, `allow-upgrade`),
 * and later for `mode tcp`. Nothing is parsed; half-closes travel through
 * (a FIN from one side is a shutdown of the other's write side) and the
 * connection closes when both directions are done.
 */
#include "api.h"
#include "tunnel.h"
#include "worker-t.h"

/* Write what b holds to x (one side of the tunnel). Returns 1 if bytes
 * went, 0 if none could, -1 on a write error. Bytes toward the client are
 * counted for the log. */
static int tunnel_flush(struct cconn *c, struct buf *b, struct xconn *x, bool to_client)
{
	if (!b->data || buf_empty(b))
		return 0;
	struct iovec iov = { buf_rptr(b), buf_len(b) };
	ssize_t wn = xconn_writev(x, &iov, 1);
	if (wn <= 0)
		return wn < 0 ? -1 : 0;
	BUG_ON((size_t)wn > iov.iov_len);
	if (to_client)
		c->tx.bytes_out += (uint64_t)wn;
	buf_consume(b, (uint32_t)wn);
	return 1;
}

int tunnel_step(struct cconn *c)
{
	struct worker *w = c->w;
	struct sconn *sc = c->tx.sc;
	BUG_ON(!sc || sc->owner != c || c->tx.rq_state != RQ_DONE);
	int progress = 0, r;
	/* flush the 101 head first */
	if ((r = tunnel_flush(c, &c->out, &c->xc, true)) < 0) {
		stream_abort(c, "client-closed");
		return 0;
	}
	progress |= r;
	if (c->out.data) {
		if (!buf_empty(&c->out))
			return progress;
		buf_put(&w->bufs, &c->out);
	}
	/* client -> server */
	if (stream_read_client(c) > 0)
		progress = 1;
	if ((r = tunnel_flush(c, &c->in, &sc->xc, false)) < 0) {
		stream_abort(c, "server-closed");
		return 0;
	}
	progress |= r;
	/* server -> client */
	if (stream_read_server(sc) > 0)
		progress = 1;
	if ((r = tunnel_flush(c, &sc->in, &c->xc, true)) < 0) {
		stream_abort(c, "client-closed");
		return 0;
	}
	progress |= r;
	if (progress)
		c->tx.t_tun = w->now;
	/* half-closes travel through the tunnel */
	bool cdone = c->xc.eof && (!c->in.data || buf_empty(&c->in));
	bool sdone = sc->xc.eof && (!sc->in.data || buf_empty(&sc->in));
	if (cdone && !c->tx.shut_srv) {
		xconn_shutw(&sc->xc);
		c->tx.shut_srv = true;
	}
	if (sdone && !c->tx.shut_cli) {
		xconn_shutw(&c->xc);
		c->tx.shut_cli = true;
	}
	if (cdone && sdone) {
		stream_close(c);
		return 0;
	}
	if (c->in.data && buf_empty(&c->in))
		buf_put(&w->bufs, &c->in);
	if (sc->in.data && buf_empty(&sc->in))
		buf_put(&w->bufs, &sc->in);
	return progress;
}
