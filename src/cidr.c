/*
 * cidr.c - lists of IPv4 and IPv6 networks and the X-Forwarded-For walk.
 *
 * `trust-forwarded CIDR...` names the proxies in front of bollard whose
 * word about the client address may be believed. Each network is kept in
 * the family it was written in; addresses are compared after turning an
 * IPv4-mapped IPv6 address (RFC 4291 2.5.5.2, ::ffff:a.b.c.d, what a
 * dual-stack socket reports for an IPv4 peer) back into IPv4, so that
 * `10.0.0.0/8` trusts 10.0.0.1 whichever socket it arrived on, and `::/0`
 * does not silently trust every IPv4 client too.
 *
 * Lists are built at configuration time (one realloc per network) and only
 * read afterwards, by every thread at once: no locks, no allocation on the
 * request path.
 */
#include "api.h"
#include "cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>

struct cidr_net {
	int af;                       /* AF_INET or AF_INET6 */
	unsigned bits;                /* prefix length: 0..32 or 0..128 */
	unsigned char a[16];          /* network, host bits cleared; 4 used for IPv4 */
};

struct cidr_list {
	size_t n;
	struct cidr_net net[];
};

/* RFC 4291 2.5.5.2: ::ffff:0:0/96 carries an IPv4 address. */
static const unsigned char v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

/* Parses a bare address (no brackets, no port, no zone) of n bytes. */
static int parse_ip(const char *p, size_t n, unsigned char out[16])
{
	char tmp[INET6_ADDRSTRLEN];

	if (n == 0 || n >= sizeof(tmp))
		return AF_UNSPEC;
	memcpy(tmp, p, n);
	tmp[n] = '\0';
	/* glibc's inet_pton(AF_INET) takes only four decimal octets without
	 * leading zeros: "010.0.0.1" (octal to inet_aton) is refused. */
	if (inet_pton(AF_INET, tmp, out) == 1)
		return AF_INET;
	if (inet_pton(AF_INET6, tmp, out) == 1)
		return AF_INET6;
	return AF_UNSPEC;
}

/* Turns ::ffff:a.b.c.d into a.b.c.d (in place); returns the new family. */
static int unmap(int af, unsigned char a[16])
{
	if (af == AF_INET6 && memcmp(a, v4mapped, sizeof(v4mapped)) == 0) {
		memmove(a, a + 12, 4);
		return AF_INET;
	}
	return af;
}

/* 1 when the first bits of x and y are equal. */
static bool prefix_eq(const unsigned char *x, const unsigned char *y, unsigned bits)
{
	unsigned whole = bits / 8, rest = bits % 8;

	if (memcmp(x, y, whole) != 0)
		return false;
	if (rest == 0)
		return true;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return ((x[whole] ^ y[whole]) & mask) == 0;
}

int cidr_list_add(struct cidr_list **l, const char *text, char *err, size_t errlen)
{
	struct cidr_net net = { 0 };
	const char *slash = strchr(text, '/');
	size_t alen = slash ? (size_t)(slash - text) : strlen(text);
	unsigned max;

	net.af = parse_ip(text, alen, net.a);
	if (net.af == AF_UNSPEC) {
		snprintf(err, errlen, "'%.*s' is not an IPv4 or IPv6 address",
			 (int)MIN(alen, 64), text);
		return -1;
	}
	max = net.af == AF_INET ? 32 : 128;
	net.bits = max;
	if (slash) {
		const char *s = slash + 1;
		size_t n = strlen(s);
		unsigned v = 0;

		if (n == 0 || n > 3 || strspn(s, "0123456789") != n) {
			snprintf(err, errlen, "invalid prefix length '%.8s'", s);
			return -1;
		}
		for (size_t i = 0; i < n; i++)
			v = v * 10 + (unsigned)(s[i] - '0');
		if (v > max) {
			snprintf(err, errlen, "prefix length %u is larger than %u", v, max);
			return -1;
		}
		net.bits = v;
	}
	/* ::ffff:10.0.0.0/104 is the IPv4 network 10.0.0.0/8. */
	if (net.af == AF_INET6 && net.bits >= 96 &&
	    memcmp(net.a, v4mapped, sizeof(v4mapped)) == 0) {
		net.af = unmap(net.af, net.a);
		net.bits -= 96;
	}
	/* Clear the host bits so that matching compares networks only. */
	for (unsigned i = net.bits; i < 128; i++)
		net.a[i / 8] &= (unsigned char)~(0x80u >> (i % 8));

	size_t n = *l ? (*l)->n : 0;
	struct cidr_list *nl = realloc(*l, sizeof(*nl) + (n + 1) * sizeof(nl->net[0]));
	if (!nl) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	nl->n = n + 1;
	nl->net[n] = net;
	*l = nl;
	return 0;
}

/* The address of a as (family, 16 bytes), IPv4-mapped IPv6 unmapped;
 * AF_UNSPEC for anything else. */
static int sockaddr_ip(const struct sockaddr_storage *a, unsigned char out[16])
{
	if (a->ss_family == AF_INET) {
		memcpy(out, &((const struct sockaddr_in *)a)->sin_addr, 4);
		return AF_INET;
	}
	if (a->ss_family == AF_INET6) {
		memcpy(out, &((const struct sockaddr_in6 *)a)->sin6_addr, 16);
		return unmap(AF_INET6, out);
	}
	return AF_UNSPEC;
}

static bool match_ip(const struct cidr_list *l, int af, const unsigned char *ip)
{
	if (!l || af == AF_UNSPEC)
		return false;
	for (size_t i = 0; i < l->n; i++)
		if (l->net[i].af == af && prefix_eq(l->net[i].a, ip, l->net[i].bits))
			return true;
	return false;
}

bool cidr_match(const struct cidr_list *l, const struct sockaddr_storage *a)
{
	unsigned char ip[16];

	return match_ip(l, sockaddr_ip(a, ip), ip);
}

size_t cidr_list_len(const struct cidr_list *l)
{
	return l ? l->n : 0;
}

void cidr_list_free(struct cidr_list *l)
{
	free(l);
}

static void fill(struct sockaddr_storage *out, int af, const unsigned char *ip)
{
	memset(out, 0, sizeof(*out));
	if (af == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)out;
		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, ip, 4);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;
		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, ip, 16);
	}
}

static bool ows(char c)
{
	return c == ' ' || c == '\t';
}

int cidr_xff_client(const struct h1_hdr *hdrs, uint32_t nhdrs,
		    const struct cidr_list *trusted, struct sockaddr_storage *out)
{
	unsigned char ip[16] = { 0 }, left[16] = { 0 };
	int left_af = AF_UNSPEC;

	/* Each proxy appends to the right (or adds a line below), so the walk
	 * goes from the last line's last element towards the first. */
	for (uint32_t v = nhdrs; v-- > 0;) {
		if (!(hdrs[v].flags & H1_HF_XFF))
			continue;
		const char *base = hdrs[v].value.p;
		size_t end = hdrs[v].value.n;

		while (end > 0) {
			size_t start = end;
			while (start > 0 && base[start - 1] != ',')
				start--;
			size_t s = start, e = end;
			while (s < e && ows(base[s]))
				s++;
			while (e > s && ows(base[e - 1]))
				e--;
			end = start > 0 ? start - 1 : 0;
			/* RFC 9110 5.6.1: empty list elements are ignored. */
			if (s == e)
				continue;
			int af = unmap(parse_ip(base + s, e - s, ip), ip);
			if (af == AF_UNSPEC)
				return 0; /* "unknown", "1.2.3.4:80", garbage: believe nothing */
			if (!match_ip(trusted, af, ip)) {
				fill(out, af, ip);
				return 1;
			}
			left_af = af;
			memcpy(left, ip, 16);
		}
	}
	if (left_af == AF_UNSPEC)
		return 0;
	fill(out, left_af, left);
	return 1;
}
