/*
 * hll.h - how many distinct sessions were seen in a sliding time window,
 * estimated in a fixed, small amount of memory: a HyperLogLog (Flajolet,
 * Fusy, Gandouet, Meunier 2007, with the small-range correction of linear
 * counting) per slice of the window.
 *
 * The dashboard uses one per server for the sessions that live in the
 * clients (insert cookies), which no table counts: each request adds its
 * cookie's session id, and the estimate is the number of distinct ids seen
 * over `max-idle`. Standard error 1.04/sqrt(HLL_M), about 3%.
 *
 * The window is cut into HLL_SLICES - 1 slices plus the current one; an
 * estimate merges the registers of those slices, so it counts ids seen in
 * the last `window` and possibly up to one slice more. A slice is cleared
 * by the first add that finds it belongs to an older period.
 *
 * Adds may come from every worker thread at once: registers are atomic
 * bytes raised with compare-and-swap (an add is a hash, a load and rarely a
 * store: no lock); an add racing with the clearing of its slice may be
 * lost, which the estimate tolerates. No clock is read here: the caller
 * passes the time, which keeps the module deterministic under test.
 */
#ifndef BOLLARD_HLL_H
#define BOLLARD_HLL_H

#include "api.h"
#include <stdatomic.h>

#define HLL_P 10
#define HLL_M (1u << HLL_P)
#define HLL_SLICES 5

struct hll {
	_Atomic uint32_t refs;                /* generations sharing it (hll_share) */
	uint64_t window_ms;
	uint64_t slice_ms;
	_Atomic uint64_t epoch[HLL_SLICES];   /* which period each slice holds; 0 = none */
	_Atomic uint8_t reg[HLL_SLICES][HLL_M];
};

/* A new estimator over window_ms (>= HLL_SLICES - 1 ms); NULL if out of
 * memory. Freed with hll_free() (NULL is fine). */
struct hll *hll_new(uint64_t window_ms);
void hll_free(struct hll *h);

/* h once more (NULL is fine): a reload's new generation of a server counts
 * into the estimator the old one's workers still add to, so neither
 * pointer changes under a reader; each holder calls hll_free(). */
struct hll *hll_share(struct hll *h);

/* Record session id at time now_ms (any clock, the same for every call);
 * id need not be well mixed (it is hashed here). h may be NULL. */
void hll_add(struct hll *h, uint64_t id, uint64_t now_ms);

/* Distinct ids recorded over the window ending at now_ms (rounded). */
uint64_t hll_estimate(const struct hll *h, uint64_t now_ms);

#endif
