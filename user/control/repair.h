/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Read-repair: a read that found its value only after asking other
 * replicas (TCP/UDP slow path, or a kernel fallback-hit event) leaves the
 * replicas that missed without the key.  The hook queues the key; a thread
 * re-reads the item from a replica that has it (`mg KEY v f t`: a get
 * reply carries no TTL, and a kernel event carries no value) and writes it
 * to those that missed with `ms ... ME` (add: a newer write wins).
 * Rate-limited by a token bucket; everything is counted.
 */
#ifndef KM_REPAIR_H
#define KM_REPAIR_H

#include <stdint.h>
#include "kmagent.h"

#define KM_REPAIR_RATE	1000 /* repairs per second, default */
#define KM_REPAIR_BURST 200
#define KM_REPAIR_QUEUE 4096

struct km_repair_stats {
	uint64_t queued;       /* hits after a fallback reported */
	uint64_t repaired;     /* replicas written (HD) */
	uint64_t existed;      /* replica had it meanwhile (NS) */
	uint64_t gone;	       /* no replica had it any more */
	uint64_t rate_limited; /* dropped by the token bucket */
	uint64_t queue_full;   /* dropped: queue full */
	uint64_t errors;       /* connection or protocol errors */
	uint64_t complete;     /* missed on replicas we think complete: kept */
	uint64_t undone; /* deleted by a client meanwhile: copy taken back */
};

/* clang-format off */
#define KM_REPAIR_FIELDS(X)                                                    \
	X(queued)                                                              \
	X(repaired) X(existed) X(gone) X(rate_limited) X(queue_full) X(errors) \
	X(complete) X(undone)
/* clang-format on */

/* Register the daemon's repair hook and start the thread. */
int km_repair_start(unsigned int rate_per_sec);
void km_repair_stop(void);
void km_repair_set_rate(unsigned int rate_per_sec);
unsigned int km_repair_get_rate(void);
void km_repair_get_stats(struct km_repair_stats *out);

/*
 * The token bucket, exposed for unit tests: `rate` tokens a second, at
 * most `burst` saved.  Returns 1 when a token was taken.
 */
struct km_bucket {
	double tokens, rate, burst;
	double last; /* seconds */
};
int km_bucket_take(struct km_bucket *b, double now);

#endif /* KM_REPAIR_H */
