/*
 * hll.c - a sliding-window HyperLogLog (see hll.h for what and why).
 *
 * An id is hashed to 64 bits; its top HLL_P bits choose a register, and the
 * register keeps the largest "rank" seen, the position of the first 1 bit
 * in the remaining bits. Many distinct ids make long runs of leading zeros
 * likely, so the harmonic mean of 2^rank over the registers estimates their
 * number; with few ids most registers stay 0, and linear counting (the
 * share of empty registers) is the better estimate, as the original paper
 * prescribes below 2.5 * HLL_M.
 */
#include "api.h"
#include "hll.h"

#include <math.h>

/* splitmix64's finaliser: ids (counters, random values) to well-mixed
 * hashes, a bijection so distinct ids stay distinct. */
static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

struct hll *hll_new(uint64_t window_ms)
{
	struct hll *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	if (window_ms < HLL_SLICES - 1)
		window_ms = HLL_SLICES - 1;
	atomic_init(&h->refs, 1);
	h->window_ms = window_ms;
	h->slice_ms = window_ms / (HLL_SLICES - 1);
	return h;
}

struct hll *hll_share(struct hll *h)
{
	if (h)
		atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed);
	return h;
}

void hll_free(struct hll *h)
{
	/* acq_rel: the last holder sees every other holder's adds done */
	if (h && atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) == 1)
		free(h);
}

/* Periods are numbered from 1, so that epoch 0 means "never used". */
static uint64_t period(const struct hll *h, uint64_t now_ms)
{
	return now_ms / h->slice_ms + 1;
}

void hll_add(struct hll *h, uint64_t id, uint64_t now_ms)
{
	uint64_t x, e, seen;
	unsigned k, idx;
	uint8_t rank, old;

	if (!h)
		return;
	e = period(h, now_ms);
	k = (unsigned)(e % HLL_SLICES);
	seen = atomic_load_explicit(&h->epoch[k], memory_order_acquire);
	if (seen < e && atomic_compare_exchange_strong_explicit(&h->epoch[k], &seen, e,
								 memory_order_acq_rel,
								 memory_order_acquire)) {
		/* this slice held a period that has left the window */
		for (unsigned i = 0; i < HLL_M; i++)
			atomic_store_explicit(&h->reg[k][i], 0, memory_order_relaxed);
	} else if (seen > e) {
		return; /* a clock that went back: the slice belongs to later */
	}
	x = mix(id);
	idx = (unsigned)(x >> (64 - HLL_P));
	x <<= HLL_P;
	rank = x ? (uint8_t)(__builtin_clzll(x) + 1) : (uint8_t)(64 - HLL_P + 1);
	old = atomic_load_explicit(&h->reg[k][idx], memory_order_relaxed);
	while (rank > old && !atomic_compare_exchange_weak_explicit(&h->reg[k][idx], &old, rank,
								    memory_order_relaxed,
								    memory_order_relaxed))
		;
}

uint64_t hll_estimate(const struct hll *h, uint64_t now_ms)
{
	uint8_t m[HLL_M] = { 0 };
	uint64_t e;
	double sum = 0, est;
	unsigned zeros = 0;

	if (!h)
		return 0;
	e = period(h, now_ms);
	for (unsigned k = 0; k < HLL_SLICES; k++) {
		uint64_t p = atomic_load_explicit(&h->epoch[k], memory_order_acquire);

		if (!p || p > e || e - p >= HLL_SLICES)
			continue; /* unused, or older than the window */
		for (unsigned i = 0; i < HLL_M; i++) {
			uint8_t r = atomic_load_explicit(&h->reg[k][i], memory_order_relaxed);

			if (r > m[i])
				m[i] = r;
		}
	}
	for (unsigned i = 0; i < HLL_M; i++) {
		sum += ldexp(1.0, -m[i]);
		zeros += m[i] == 0;
	}
	/* alpha_m for m >= 128 (Flajolet et al., figure 3) */
	est = 0.7213 / (1.0 + 1.079 / HLL_M) * HLL_M * HLL_M / sum;
	if (est <= 2.5 * HLL_M && zeros)
		est = HLL_M * log((double)HLL_M / zeros);
	return (uint64_t)(est + 0.5);
}
