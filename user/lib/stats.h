/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The backends' share of the proxy-port `stats`: what only memcached
 * knows (items, memory, evictions, the outcome of writes), gathered from
 * every up backend's `stats` reply and put back in memcached's format, so
 * that collectd and memcached exporters pointed at kmagentd read the data
 * set behind it.  Root-free and socket-free, unit-tested.
 */
#ifndef KM_STATS_H
#define KM_STATS_H

#include <stddef.h>
#include <stdint.h>
#include "buf.h"

/* memcached fields taken from the backends (user/lib/stats.c km_agg_fields) */
#define KM_AGG_NR 23

struct km_agg {
	uint64_t sum[KM_AGG_NR];
	unsigned int seen[KM_AGG_NR]; /* backends that had the field */
	unsigned int answered;	      /* backends whose reply was added */
};

/* Add one backend's `stats` reply (STAT lines then END). */
void km_agg_add(struct km_agg *a, const char *reply, size_t len);

/*
 * Add one backend's reply, less n items of kmagentd's own on it (fences,
 * ring records: docs/operations.md) from curr_items and total_items.
 */
void km_agg_add_less(struct km_agg *a, const char *reply, size_t len,
		     uint64_t n);

/*
 * The STAT lines, for the fields at least one backend had: nr_backends
 * configured, copies of each key (the replication factor, at most
 * nr_backends).  0, or -1 when out is full.
 */
int km_agg_emit(const struct km_agg *a, unsigned int nr_backends,
		unsigned int copies, struct km_buf *out);

#endif /* KM_STATS_H */
