/*
 * fuzz_proxyproto.c - libFuzzer target for the PROXY protocol parser
 * (src/proxyproto.c). Besides "no crash, no read past the input under
 * ASan/UBSan", it checks the contract the accept path relies on:
 *   - the answer is -2, -1 or a length within the input;
 *   - a header is self-delimiting: given exactly its own bytes it parses
 *     to the same length and address, and every strict prefix of it is
 *     -2 (so reading more can never turn an accepted header into another);
 *   - -2 is monotonic: every prefix of an incomplete input is incomplete;
 *   - the address is AF_INET, AF_INET6 or AF_UNSPEC, and *src is left
 *     untouched unless the header is accepted.
 * The same function runs under gcc via fuzz/replay.c over the committed
 * corpus fuzz/corpus/proxyproto/.
 */
#include "api.h"
#include "proxyproto.h"

#include <netinet/in.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Prefix checks re-parse up to this many lengths: enough to cover every
 * v1 header and the fixed part of v2, bounded for large v2 inputs. */
#define FUZZ_PREFIXES 300

static int parse_copy(const uint8_t *data, size_t n, struct sockaddr_storage *ss)
{
	/* An exact-size copy, so that ASan sees a read past n bytes even
	 * when the fuzzer's buffer is longer. */
	char *c = malloc(n ? n : 1);
	int r;

	BUG_ON(!c);
	if (n)
		memcpy(c, data, n);
	r = proxyproto_parse(c, n, ss);
	free(c);
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_storage ss, ss2;
	int r, r2;

	if (size > PROXYPROTO_MAX + 64)
		return 0;
	memset(&ss, 0x5a, sizeof(ss));
	r = proxyproto_parse((const char *)data, size, &ss);
	BUG_ON(r < -2 || r == 0 || (r > 0 && (size_t)r > size));

	if (r > 0) {
		BUG_ON(ss.ss_family != AF_INET && ss.ss_family != AF_INET6 &&
		       ss.ss_family != AF_UNSPEC);
		memset(&ss2, 0x5a, sizeof(ss2));
		r2 = parse_copy(data, (size_t)r, &ss2);
		BUG_ON(r2 != r);
		BUG_ON(memcmp(&ss, &ss2, sizeof(ss)) != 0);
		for (size_t k = 0; k < (size_t)r && k < FUZZ_PREFIXES; k++) {
			memset(&ss2, 0x5a, sizeof(ss2));
			BUG_ON(parse_copy(data, k, &ss2) != -2);
			BUG_ON(((unsigned char *)&ss2)[0] != 0x5a);
		}
		/* the last few prefixes of a long v2 header too */
		for (size_t k = (size_t)r > 8 ? (size_t)r - 8 : 0; k < (size_t)r; k++)
			BUG_ON(parse_copy(data, k, &ss2) != -2);
	} else {
		BUG_ON(((unsigned char *)&ss)[0] != 0x5a);
		if (r == -2)
			for (size_t k = 0; k < size && k < FUZZ_PREFIXES; k++)
				BUG_ON(parse_copy(data, k, &ss2) != -2);
	}
	return 0;
}
