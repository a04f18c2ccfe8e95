/*
 * cidr.h - sets of IPv4/IPv6 networks (`trust-forwarded CIDR...`) and the
 * X-Forwarded-For rule that uses them: which address of the header is the
 * client's, when only the proxies of the trusted set may be believed.
 */
#ifndef BOLLARD_CIDR_H
#define BOLLARD_CIDR_H

#include "api.h"
#include "h1.h"
#include <sys/socket.h>

/* An opaque, growable list of networks; NULL is the empty list. */
struct cidr_list;

/*
 * Adds the network written as text ("10.0.0.0/8", "2001:db8::/32", or a
 * bare address meaning /32 or /128) to *l, allocating or growing the list
 * (configuration time only). Host bits below the prefix are ignored, as
 * in HAProxy ("10.1.2.3/8" is 10.0.0.0/8). Returns 0, or -1 with a short
 * reason in err[0..errlen) ("prefix length 33 is larger than 32") and *l
 * unchanged. The caller owns *l and frees it with cidr_list_free().
 */
int cidr_list_add(struct cidr_list **l, const char *text, char *err, size_t errlen);

/*
 * 1 when address a (AF_INET or AF_INET6, port ignored) is in one of the
 * networks of l, 0 otherwise (also for l NULL or another family). IPv4
 * networks also match IPv4-mapped IPv6 addresses (::ffff:10.0.0.1), which
 * is what a dual-stack listener reports for IPv4 clients.
 */
bool cidr_match(const struct cidr_list *l, const struct sockaddr_storage *a);

/* Number of networks in l (0 for NULL). */
size_t cidr_list_len(const struct cidr_list *l);

void cidr_list_free(struct cidr_list *l);

/*
 * X-Forwarded-For: the fields of hdrs[0..nhdrs) flagged H1_HF_XFF, in the
 * order received, form one comma-separated list (RFC 9110 5.3), each proxy
 * appending the address it saw. Walking from the right (the last line's last
 * element), the first address not in trusted is the client (whatever is left
 * of it was written by parties we do not trust); if every address is
 * trusted, the leftmost one. Every line is walked, however many there are:
 * no fixed array, so a client's own lines cannot push out the one a trusted
 * proxy appended (their number is bounded by the parser's field limit,
 * tune.maxhdr, which refuses the head whole). Entries are bare IPv4 or IPv6
 * addresses with optional surrounding spaces; empty entries are skipped (RFC
 * 9110 5.6.1). Returns 1 and fills *out (port 0), or 0 when no address can
 * be believed: no entry, or a malformed entry met before the answer (keep
 * the peer address). Call it only when the peer itself is trusted.
 */
int cidr_xff_client(const struct h1_hdr *hdrs, uint32_t nhdrs,
		    const struct cidr_list *trusted, struct sockaddr_storage *out);

#endif
