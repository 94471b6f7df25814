/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Latency histogram of kmbench: log-linear buckets with nanosecond
 * resolution, as in HdrHistogram.  Values below 2^KMB_HIST_SUB_BITS ns
 * get one bucket each; above, every power of two is cut into
 * 2^KMB_HIST_SUB_BITS equal buckets, so a bucket is never wider than
 * 1/128 of its lower bound (0.8 % relative error) and recording is a
 * count-leading-zeros, a shift and an increment.  Header-only so that
 * the load generator stays self-contained and tests/unit/test_kmb_hist.c
 * can test it.
 */
#ifndef KMB_HIST_H
#define KMB_HIST_H

#include <stdint.h>
#include <string.h>

#define KMB_HIST_SUB_BITS 7
#define KMB_HIST_SUB	  (1u << KMB_HIST_SUB_BITS)
/* Values of 2^KMB_HIST_MAX_BITS ns (18 minutes) and more are clamped. */
#define KMB_HIST_MAX_BITS 40
#define KMB_HIST_BUCKETS                                                       \
	((KMB_HIST_MAX_BITS - KMB_HIST_SUB_BITS + 1) * KMB_HIST_SUB)

struct kmb_hist {
	uint64_t count;
	uint64_t sum; /* ns, for the mean */
	uint64_t min;
	uint64_t max;
	uint64_t b[KMB_HIST_BUCKETS];
};

static inline void kmb_hist_reset(struct kmb_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

static inline unsigned int kmb_hist_index(uint64_t v)
{
	unsigned int msb, shift;

	if (v >= (1ull << KMB_HIST_MAX_BITS))
		v = (1ull << KMB_HIST_MAX_BITS) - 1;
	if (v < KMB_HIST_SUB)
		return (unsigned int)v;
	msb = 63 - __builtin_clzll(v);
	shift = msb - KMB_HIST_SUB_BITS;
	return ((shift + 1) << KMB_HIST_SUB_BITS) +
	       (unsigned int)((v >> shift) - KMB_HIST_SUB);
}

/* Smallest value that falls into bucket idx. */
static inline uint64_t kmb_hist_low(unsigned int idx)
{
	unsigned int shift;

	if (idx < KMB_HIST_SUB)
		return idx;
	shift = (idx >> KMB_HIST_SUB_BITS) - 1;
	return ((uint64_t)(idx & (KMB_HIST_SUB - 1)) + KMB_HIST_SUB) << shift;
}

/* Largest value that falls into bucket idx. */
static inline uint64_t kmb_hist_high(unsigned int idx)
{
	unsigned int shift;

	if (idx < KMB_HIST_SUB)
		return idx;
	shift = (idx >> KMB_HIST_SUB_BITS) - 1;
	return kmb_hist_low(idx) + (1ull << shift) - 1;
}

static inline void kmb_hist_record(struct kmb_hist *h, uint64_t ns)
{
	h->b[kmb_hist_index(ns)]++;
	h->count++;
	h->sum += ns;
	if (ns < h->min)
		h->min = ns;
	if (ns > h->max)
		h->max = ns;
}

static inline void kmb_hist_merge(struct kmb_hist *dst,
				  const struct kmb_hist *src)
{
	unsigned int i;

	for (i = 0; i < KMB_HIST_BUCKETS; i++)
		dst->b[i] += src->b[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

/*
 * The value at quantile q (0 < q <= 1): the upper bound of the bucket
 * holding the ceil(q * count)-th smallest sample, capped by the largest
 * sample seen, so that it never under-reports.  0 when empty.
 */
static inline uint64_t kmb_hist_quantile(const struct kmb_hist *h, double q)
{
	uint64_t rank, seen = 0, v;
	unsigned int i;

	if (!h->count)
		return 0;
	if (q <= 0)
		return h->min;
	rank = (uint64_t)(q * (double)h->count);
	if ((double)rank < q * (double)h->count)
		rank++;
	if (rank < 1)
		rank = 1;
	if (rank > h->count)
		rank = h->count;
	for (i = 0; i < KMB_HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank) {
			v = kmb_hist_high(i);
			return v < h->max ? v : h->max;
		}
	}
	return h->max;
}

#endif /* KMB_HIST_H */
