/*
 * proxyproto.c - the PROXY protocol header, versions 1 (text) and 2
 * (binary), as specified by HAProxy's doc/proxy-protocol.txt ("the spec"
 * below). A listener with `accept-proxy` sits behind another proxy that
 * prepends this header to every connection; the header replaces the peer
 * address by the real client's, which `persist source`, the access log and
 * X-Forwarded-For then use.
 *
 * Strictness: the header comes from a party we chose to trust, so anything
 * that is not exactly what the spec allows is invalid (-1) and the
 * connection is closed: a lenient parser here would let a client that
 * reaches the listener directly forge its address. Incomplete input
 * (PROXYPROTO_INCOMPLETE) is only answered while the bytes seen so far are
 * still a prefix of some
 * valid header, so garbage is refused at once, not after a timeout.
 */
#include "api.h"
#include "proxyproto.h"

#include <arpa/inet.h>
#include <netinet/in.h>

/* spec 2.2: "\r\n\r\n\0\r\nQUIT\n", chosen so that no v1 or HTTP request
 * can start with it. */
static const char v2_sig[12] = {
	'\r', '\n', '\r', '\n', '\0', '\r', '\n', 'Q', 'U', 'I', 'T', '\n'
};

/* Compares the n first bytes of buf with the expected prefix: 1 when they
 * match (the header may still be complete later), 0 otherwise. */
static bool prefix_ok(const char *buf, size_t len, const char *want, size_t wlen)
{
	return memcmp(buf, want, MIN(len, wlen)) == 0;
}

/* A text address of at most INET6_ADDRSTRLEN - 1 characters into *out. */
static bool text_addr(const char *p, size_t n, int af, void *out)
{
	char tmp[INET6_ADDRSTRLEN];

	if (n == 0 || n >= sizeof(tmp))
		return false;
	memcpy(tmp, p, n);
	tmp[n] = '\0';
	/* inet_pton(AF_INET) takes exactly four decimal octets, no leading
	 * zeros: the "dotted quad" the spec asks for. */
	return inet_pton(af, tmp, out) == 1;
}

/* spec 2.1: a port is a decimal integer in [0..65535]. */
static bool text_port(const char *p, size_t n, uint16_t *out)
{
	uint32_t v = 0;

	if (n == 0 || n > 5)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (uint32_t)(p[i] - '0');
	}
	if (v > 65535)
		return false;
	*out = (uint16_t)v;
	return true;
}

/* Cuts the next field, ended by one space (sep = true) or by the end of
 * the line; fields are separated by exactly one space (spec 2.1). */
static bool field(const char **p, const char *end, bool sep, const char **f, size_t *n)
{
	const char *s = *p, *e;

	if (sep) {
		e = memchr(s, ' ', (size_t)(end - s));
		if (!e)
			return false;
	} else {
		e = end;
		if (memchr(s, ' ', (size_t)(end - s)))
			return false;
	}
	*f = s;
	*n = (size_t)(e - s);
	*p = sep ? e + 1 : e;
	return *n > 0;
}

static void set_addr(struct sockaddr_storage *ss, int af, const void *addr, uint16_t port)
{
	memset(ss, 0, sizeof(*ss));
	if (af == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, addr, 4);
		sin->sin_port = htons(port);
	} else if (af == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, addr, 16);
		sin6->sin6_port = htons(port);
	} else {
		ss->ss_family = AF_UNSPEC;
	}
}

/*
 * spec 2.1, version 1:
 *   "PROXY" SP ( "TCP4" | "TCP6" ) SP src SP dst SP sport SP dport CRLF
 *   "PROXY" SP "UNKNOWN" [ anything but CRLF ] CRLF
 * at most 107 bytes including the CRLF.
 */
static int parse_v1(const char *buf, size_t len, struct sockaddr_storage *src)
{
	static const char magic[] = "PROXY ";
	const size_t mlen = sizeof(magic) - 1;
	const char *cr = NULL;
	size_t i;

	if (!prefix_ok(buf, len, magic, mlen))
		return PROXYPROTO_INVALID;
	/* The CR of the CRLF is at index PROXYPROTO_V1_MAX - 2 at the latest. */
	for (i = mlen; i < len && i < PROXYPROTO_V1_MAX - 1; i++) {
		if (buf[i] == '\r') {
			cr = buf + i;
			break;
		}
		if (buf[i] == '\n' || buf[i] == '\0')
			return PROXYPROTO_INVALID;
	}
	if (!cr)
		return len >= PROXYPROTO_V1_MAX - 1 ? PROXYPROTO_INVALID : PROXYPROTO_INCOMPLETE;
	if (i + 1 >= len)
		return PROXYPROTO_INCOMPLETE;
	if (cr[1] != '\n')
		return PROXYPROTO_INVALID;

	const char *p = buf + mlen, *end = cr, *f;
	size_t n, used = i + 2;
	int af;

	/* spec 2.1: with UNKNOWN the receiver ignores the rest of the line
	 * and keeps the real connection's addresses. */
	if ((size_t)(end - p) >= 7 && memcmp(p, "UNKNOWN", 7) == 0 &&
	    (end - p == 7 || p[7] == ' ')) {
		set_addr(src, AF_UNSPEC, NULL, 0);
		return (int)used;
	}
	if (!field(&p, end, true, &f, &n) || n != 4)
		return PROXYPROTO_INVALID;
	if (memcmp(f, "TCP4", 4) == 0)
		af = AF_INET;
	else if (memcmp(f, "TCP6", 4) == 0)
		af = AF_INET6;
	else
		return PROXYPROTO_INVALID;

	unsigned char saddr[16], daddr[16];
	uint16_t sport, dport;

	if (!field(&p, end, true, &f, &n) || !text_addr(f, n, af, saddr))
		return PROXYPROTO_INVALID;
	if (!field(&p, end, true, &f, &n) || !text_addr(f, n, af, daddr))
		return PROXYPROTO_INVALID;
	if (!field(&p, end, true, &f, &n) || !text_port(f, n, &sport))
		return PROXYPROTO_INVALID;
	if (!field(&p, end, false, &f, &n) || !text_port(f, n, &dport))
		return PROXYPROTO_INVALID;
	set_addr(src, af, saddr, sport);
	return (int)used;
}

static uint16_t be16(const unsigned char *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/*
 * spec 2.2, version 2: signature (12), version and command (1), family
 * and transport (1), length of what follows (2, network order), then the
 * addresses of the family and optional TLVs (type 1, length 2, value).
 */
static int parse_v2(const char *buf, size_t len, struct sockaddr_storage *src)
{
	const unsigned char *u = (const unsigned char *)buf;
	size_t total, alen;

	if (!prefix_ok(buf, len, v2_sig, sizeof(v2_sig)))
		return PROXYPROTO_INVALID;
	if (len <= 12)
		return PROXYPROTO_INCOMPLETE;
	/* The high nibble is the version, which must be 2; the low nibble
	 * the command: 0 LOCAL, 1 PROXY, anything else is invalid. */
	if ((u[12] & 0xf0) != 0x20 || (u[12] & 0x0f) > 1)
		return PROXYPROTO_INVALID;
	bool local = (u[12] & 0x0f) == 0;
	if (len <= 13)
		return PROXYPROTO_INCOMPLETE;
	/* spec 2.2: only these family/transport pairs exist; "other values
	 * ... must be rejected as invalid by receivers". With LOCAL the
	 * block, "including the family", is ignored. */
	unsigned fam = u[13] >> 4, proto = u[13] & 0x0f;
	if (!local && !(u[13] == 0x00 || (fam >= 1 && fam <= 3 && proto >= 1 && proto <= 2)))
		return PROXYPROTO_INVALID;
	if (len < PROXYPROTO_V2_MIN)
		return PROXYPROTO_INCOMPLETE;
	total = PROXYPROTO_V2_MIN + (size_t)be16(u + 14);

	switch (local ? 0 : fam) {
	case 1: alen = 12; break;       /* 2 x IPv4 + 2 ports */
	case 2: alen = 36; break;       /* 2 x IPv6 + 2 ports */
	case 3: alen = 216; break;      /* 2 x 108-byte sun_path */
	default: alen = 0; break;
	}
	/* The length must cover the addresses: refused before waiting for
	 * bytes that could not make the header valid anyway. */
	if (total - PROXYPROTO_V2_MIN < alen)
		return PROXYPROTO_INVALID;
	if (len < total)
		return PROXYPROTO_INCOMPLETE;
	BUG_ON(total > INT32_MAX);

	/* spec 2.2: LOCAL (health checks of the sending proxy) and UNSPEC
	 * keep the real connection's addresses; the block is skipped. */
	if (local || fam == 0) {
		set_addr(src, AF_UNSPEC, NULL, 0);
		return (int)total;
	}

	/* TLVs fill what is left after the addresses (spec 2.2.7); their
	 * content is not used, but each must fit exactly, so that a bad
	 * length is an invalid header rather than bytes taken as data. */
	size_t off = PROXYPROTO_V2_MIN + alen;
	while (off < total) {
		if (total - off < 3)
			return PROXYPROTO_INVALID;
		size_t vlen = be16(u + off + 1);
		if (vlen > total - off - 3)
			return PROXYPROTO_INVALID;
		off += 3 + vlen;
	}

	const unsigned char *a = u + PROXYPROTO_V2_MIN;
	if (fam == 1)
		set_addr(src, AF_INET, a, be16(a + 8));
	else if (fam == 2)
		set_addr(src, AF_INET6, a, be16(a + 32));
	else
		set_addr(src, AF_UNSPEC, NULL, 0); /* AF_UNIX: nothing to route by */
	return (int)total;
}

int proxyproto_parse(const char *buf, size_t len, struct sockaddr_storage *src)
{
	if (len == 0)
		return PROXYPROTO_INCOMPLETE;
	/* spec 2.2: the first byte tells the versions apart ('P' or '\r'). */
	if (buf[0] == 'P')
		return parse_v1(buf, len, src);
	if (buf[0] == '\r')
		return parse_v2(buf, len, src);
	return PROXYPROTO_INVALID;
}
