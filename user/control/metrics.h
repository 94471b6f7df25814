/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Prometheus text exposition over HTTP (--metrics ADDR:PORT, GET
 * /metrics): the userspace and kernel counters, per backend and path,
 * BPF program run counts, resync progress, read-repair, backend states.
 */
#ifndef KM_METRICS_H
#define KM_METRICS_H

#include <stdio.h>
#include <time.h>
#include <netinet/in.h>
#include "daemon.h"

/* The fields of daemon.h's counters, for JSON and metrics. */
/* clang-format off */
#define KM_COUNTERS_FIELDS(X)                                                  \
	X(curr_connections)                                                    \
	X(total_connections)                                                   \
	X(rejected_connections)                                                \
	X(cmd_get)                                                             \
	X(cmd_set)                                                             \
	X(cmd_touch) X(cmd_flush) X(get_hits) X(get_misses) X(fallbacks)       \
		X(fallback_hits) X(divergent) X(write_failures)                \
			X(backend_timeouts) X(udp_requests) X(udp_denied)      \
				X(udp_capped) X(protocol_errors) X(idle_kicks) \
					X(bytes_read) X(bytes_written) X(flushes_avoided)
/* clang-format on */
#define KM_BE_COUNTERS_FIELDS(X)                                               \
	X(requests)                                                            \
	X(errors)                                                              \
	X(timeouts) X(conn_errors) X(fallbacks) X(probes_ok) X(probes_failed)

/* A copy of one backend's row, taken under km_d.lock. */
struct km_be_view {
	__u8 id;
	char name[KM_NAME_MAX];
	union km_addr addr;
	struct km_backend kb;
	time_t since;
	char reason[96];
	long pid, uptime;
	bool joining, leaving; /* the ring handoff (daemon.c) */
	bool removed;	       /* by a reload: leaves when the handoff ends */
	struct km_be_counters c;
};

/* Fills v[] (KM_MAX_BACKENDS rows), returns how many. */
int km_be_snapshot(struct km_be_view *v);

int km_metrics_start(const union km_addr *addr);
void km_metrics_stop(void);
/* The whole exposition, as served. */
void km_metrics_render(FILE *out);

#endif /* KM_METRICS_H */
