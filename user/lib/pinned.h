/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Read-only access to the kernel path's pinned maps and programs, by path:
 * what kmagentd's metrics and kmagentctl (even with the daemon down) show.
 * The field lists name every counter of include/kmagent.h once, for JSON
 * and Prometheus output alike.
 */
#ifndef KM_PINNED_H
#define KM_PINNED_H

#include <stdio.h>
#include "kmagent.h"

struct km_pinned {
	int stats_fd, be_stats_fd, backends_fd, config_fd, ring_fd;
	int ncpus;
};

/* clang-format off */
#define KM_STATS_FIELDS(X)                                                     \
	X(rx_service)                                                          \
	X(passed_up)                                                           \
	X(kernel_gets)                                                         \
	X(kernel_writes) X(noreply_writes) X(write_clones) X(replies) X(hits)  \
		X(misses) X(fallbacks) X(fallback_hits) X(write_replies)       \
			X(write_divergent) X(timeouts) X(denied)               \
				X(pending_full) X(no_backend) X(no_route)      \
					X(stray_replies) X(helper_errors)      \
						X(events_lost) X(refused)      \
							X(retries)             \
							X(retry_writes)        \
							X(retry_late)          \
							X(retry_exhausted) \
							X(reply_capped)
/* clang-format on */

#define KM_BE_STATS_FIELDS(X)                                                  \
	X(gets)                                                                \
	X(hits)                                                                \
	X(misses) X(writes) X(write_replies) X(timeouts) X(retried) X(capped)

struct km_prog_stats {
	__u32 id;
	char name[16];
	__u64 run_cnt, run_time_ns;
};

/* -errno (-ENOENT: nothing pinned under root, NULL = KM_PIN_ROOT). */
int km_pinned_open(struct km_pinned *p, const char *root);
void km_pinned_close(struct km_pinned *p);
/* Per-CPU counters summed. */
int km_pinned_stats(const struct km_pinned *p, struct km_stats *out);
int km_pinned_be_stats(const struct km_pinned *p, __u8 id,
		       struct km_be_stats *out);
int km_pinned_backend(const struct km_pinned *p, __u8 id,
		      struct km_backend *out);
/* The slot of the ring half the data path reads now. */
int km_pinned_slot(const struct km_pinned *p, __u32 slot, struct km_slot *out);
/* The km_* programs using these maps: up to max, returns how many. */
int km_pinned_progs(const struct km_pinned *p, struct km_prog_stats *out,
		    int max);

/*
 * The same as JSON, for kmagentd's control socket and kmagentctl alike:
 * an object of every counter (null when p is NULL or the map unreadable),
 * an array of the programs.
 */
void km_pinned_json_stats(FILE *out, const struct km_pinned *p);
void km_pinned_json_be_stats(FILE *out, const struct km_pinned *p, __u8 id);
void km_pinned_json_progs(FILE *out, const struct km_pinned *p);

/*
 * How XDP is attached to ifindex: "native" (driver), "generic" (skb,
 * slower), "offload" or "none".
 */
const char *km_xdp_mode(int ifindex);
/* The interfaces with an XDP link pinned under root: up to max ifindexes. */
int km_pinned_ifaces(const char *root, int *ifindex, int max);
/* {"name":..,"ifindex":..,"xdp":km_xdp_mode} (name: a safe ifname) */
void km_json_iface(FILE *out, const char *name, int ifindex);

#endif /* KM_PINNED_H */
