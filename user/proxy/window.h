/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The arithmetic of a client's backpressure (proxy.c, "Backpressure"),
 * apart from the sockets so that it can be unit-tested.
 */
#ifndef KM_WINDOW_H
#define KM_WINDOW_H

#include <stddef.h>

#define KM_WIN_MAX 256 /* keys a client may have asked at once */
#define KM_EST_MIN 512 /* least bytes expected of a key's reply */

/*
 * How many more keys a client may ask for: what is left of limit once
 * used is held, at est bytes a key; at least one (a request always goes,
 * alone if need be), at most KM_WIN_MAX.
 */
static inline unsigned int km_window_keys(size_t limit, size_t used, size_t est)
{
	size_t n = used < limit ? (limit - used) / est : 0;

	return n < 1 ? 1 : n > KM_WIN_MAX ? KM_WIN_MAX : (unsigned int)n;
}

/*
 * The expected size of a key's reply after one of bytes (0: a miss): a
 * larger one is taken at once, a smaller one lowers it by an eighth, so
 * that one big value closes the window and a run of small ones reopens it.
 */
static inline size_t km_window_est(size_t est, size_t bytes)
{
	est -= est / 8;
	est = bytes > est ? bytes : est;
	return est < KM_EST_MIN ? KM_EST_MIN : est;
}

/* The estimate of a new client: a few 1 MB values, many small ones. */
static inline size_t km_window_est_initial(size_t item_size_max)
{
	size_t est = item_size_max / 8;

	return est < KM_EST_MIN ? KM_EST_MIN : est;
}

#endif /* KM_WINDOW_H */
