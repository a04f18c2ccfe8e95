/*
 * ws.c - the WebSocket echo of GET /ws (RFC 6455).
 *
 * After the 101, each frame the client sends comes back as the same frame
 * (same FIN bit and opcode, so fragmented messages stay fragmented),
 * unmasked as a server's frames must be (RFC 6455 5.1); a ping comes back
 * as a pong with its payload (5.5.2-5.5.3), a pong is dropped, and a close
 * is answered with a close carrying the same payload, after which the
 * server half-closes the TCP connection first (7.1.1). Payloads stream
 * through: a 1 GB frame costs the usual buffers.
 */
#include "demo.h"

#include <string.h>

/* RFC 6455 1.3 */
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

void ws_accept_key(const char *key, size_t len, char out[29])
{
	struct hash_sha1 s;
	uint8_t d[20];

	hash_sha1_init(&s);
	hash_sha1_update(&s, key, len);
	hash_sha1_update(&s, WS_GUID, sizeof(WS_GUID) - 1);
	hash_sha1_final(&s, d);
	hash_base64(d, sizeof(d), out);
}

/* RFC 6455 5.2: base header, 16- or 64-bit extended length, no mask. */
static void frame_head(struct sbuf *o, bool fin, uint8_t opcode, uint64_t len)
{
	uint8_t h[10];
	size_t n = 2;
	int i;

	h[0] = (uint8_t)((fin ? 0x80 : 0) | opcode);
	if (len < 126) {
		h[1] = (uint8_t)len;
	} else if (len < 65536) {
		h[1] = 126;
		h[2] = (uint8_t)(len >> 8);
		h[3] = (uint8_t)len;
		n = 4;
	} else {
		h[1] = 127;
		for (i = 0; i < 8; i++)
			h[2 + i] = (uint8_t)(len >> (56 - 8 * i));
		n = 10;
	}
	sbuf_put(o, h, n);
}

/* Fail the connection with a close frame carrying code (RFC 6455 7.4). */
static int fail(struct demo_conn *c, unsigned code)
{
	uint8_t p[2] = { (uint8_t)(code >> 8), (uint8_t)code };

	frame_head(&c->out, true, 0x8, 2);
	sbuf_put(&c->out, p, 2);
	c->st = CS_CLOSING;
	return 1;
}

/* Parse a frame header at the input; returns 1, 0 (incomplete) or the
 * result of fail(). */
static int read_frame_head(struct demo_conn *c)
{
	const uint8_t *p = (const uint8_t *)c->rbuf + c->roff;
	uint32_t avail = c->rlen - c->roff;
	struct ws_state *s = &c->ws;
	uint64_t len;
	size_t need = 2;
	uint8_t op;
	int i;

	if (avail < 2)
		return 0;
	op = p[0] & 0x0f;
	if ((p[0] & 0x70) || !(p[1] & 0x80))
		return fail(c, 1002);   /* no extension negotiated; unmasked (5.1) */
	if ((op > 2 && op < 8) || op > 10)
		return fail(c, 1002);   /* reserved opcodes */
	len = p[1] & 0x7f;
	if (len == 126)
		need += 2;
	else if (len == 127)
		need += 8;
	need += 4;                  /* the masking key (5.3) */
	if (avail < need)
		return 0;
	if (len == 126) {
		len = (uint64_t)p[2] << 8 | p[3];
	} else if (len == 127) {
		len = 0;
		for (i = 0; i < 8; i++)
			len = len << 8 | p[2 + i];
		if (len >> 63)
			return fail(c, 1002);
	}
	/* 5.5: control frames are short and never fragmented. */
	if (op >= 8 && (len > 125 || !(p[0] & 0x80)))
		return fail(c, 1002);
	memcpy(s->mask, p + need - 4, 4);
	s->opcode = op;
	s->fin = p[0] & 0x80;
	s->left = len;
	s->pos = 0;
	s->discard = op == 0xA;
	s->closing = op == 0x8;
	s->in_payload = true;
	c->roff += (uint32_t)need;
	if (!s->discard)
		frame_head(&c->out, s->fin, op == 0x9 ? 0xA : op, len);
	return 1;
}

int ws_process(struct demo_conn *c)
{
	struct ws_state *s = &c->ws;
	int progress = 0;

	for (;;) {
		uint32_t avail;
		size_t n, i;

		if (c->out.len - c->woff > DEMO_OUT_HIGH)
			return progress;
		if (!s->in_payload) {
			int r = read_frame_head(c);
			if (r == 0) {
				if (!c->rd_eof)
					return progress;
				/* The client left between frames: flush, close. */
				c->st = CS_CLOSING;
				return 1;
			}
			if (c->st != CS_WS)
				return 1;
			progress = 1;
		}
		avail = c->rlen - c->roff;
		if (s->left) {
			if (!avail)
				return c->rd_eof ? -1 : progress;
			n = (size_t)min_u64(s->left, min_u64(avail, DEMO_OUT_HIGH));
			if (!s->discard) {
				const uint8_t *in = (const uint8_t *)c->rbuf + c->roff;
				uint8_t *out;
				if (!sbuf_reserve(&c->out, n, DEMO_OUT_MAX))
					return -1;
				out = (uint8_t *)c->out.p + c->out.len;
				/* 5.3: octet i is XORed with mask[i % 4]. */
				for (i = 0; i < n; i++)
					out[i] = in[i] ^ s->mask[(s->pos + i) & 3];
				c->out.len += n;
			}
			c->roff += (uint32_t)n;
			s->left -= n;
			s->pos += n;
			progress = 1;
			if (s->left)
				continue;
		}
		s->in_payload = false;
		if (s->closing) {
			c->st = CS_CLOSING;
			return 1;
		}
	}
}
