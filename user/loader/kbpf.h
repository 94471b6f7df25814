/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The daemon's handle on the kernel fast path (bpf/kmagent.bpf.c): load
 * the skeleton with its maps pinned under a pin root, adopt what a previous
 * run left pinned and attached, attach to interfaces, push the ring,
 * backends, config and allow-list, read counters, poll events, and remove
 * everything again.  Functions return 0 or -errno.
 */
#ifndef KM_KBPF_H
#define KM_KBPF_H

#include <stddef.h>
#include "kmagent.h"
#include "ring.h"

struct km_bpf;

struct km_bpf_opts {
	const char *pin_root; /* NULL = KM_PIN_ROOT */
	__u16 service_port;   /* UDP port clients use (host order) */
	__u16 nat_port;	      /* source port towards backends; 0 = default */
	int verbose;	      /* libbpf messages: 1 warnings, 2 debug */
	int ipv6; /* IPv6 backends: turn IPv6 forwarding on (attach) */
};

#define KM_NAT_PORT_DEFAULT 11299

/* Called for each kernel event (struct km_event); non-zero stops polling. */
typedef int (*km_bpf_event_fn)(const struct km_event *ev, void *ctx);

/* Mount bpffs if missing, create the pin root, load (adopting pins). */
int km_bpf_open(struct km_bpf **out, const struct km_bpf_opts *opts);
/* Drop the handle; programs stay attached and maps pinned. */
void km_bpf_close(struct km_bpf *kb);

/* XDP (native, else generic with a warning), tc ingress and egress. */
int km_bpf_attach(struct km_bpf *kb, const char *ifname);
/* 1 when ifname's XDP link ended up in generic (SKB) mode. */
int km_bpf_is_generic(struct km_bpf *kb, const char *ifname);

/* Fill the inactive half of km_ring, then make it the active one. */
int km_bpf_set_ring(struct km_bpf *kb, const struct km_ring *ring);
int km_bpf_set_backend(struct km_bpf *kb, __u8 id, const struct km_backend *b);
int km_bpf_get_backend(struct km_bpf *kb, __u8 id, struct km_backend *b);
/* Source address towards backend id (its family), 0 = the client's. */
int km_bpf_set_backend_src(struct km_bpf *kb, __u8 id, const union km_ip *src);
int km_bpf_get_config(struct km_bpf *kb, struct km_config *cfg);
int km_bpf_set_config(struct km_bpf *kb, const struct km_config *cfg);
int km_bpf_allow_add(struct km_bpf *kb, __be32 addr, unsigned int prefix);
/* An IPv6 network (addr6: 16 bytes, network order) to km_allow6. */
int km_bpf_allow6_add(struct km_bpf *kb, const void *addr6,
		      unsigned int prefix);

/* Counters summed over CPUs. */
int km_bpf_stats(struct km_bpf *kb, struct km_stats *out);
int km_bpf_be_stats(struct km_bpf *kb, __u8 id, struct km_be_stats *out);

/* Events: fd to wait on (epoll), and a non-blocking drain. */
int km_bpf_set_event_handler(struct km_bpf *kb, km_bpf_event_fn fn, void *ctx);
int km_bpf_events_fd(struct km_bpf *kb);
int km_bpf_poll(struct km_bpf *kb, int timeout_ms);

/* Program fds, for tests (BPF_PROG_TEST_RUN) and map fds by name. */
int km_bpf_xdp_fd(struct km_bpf *kb);
int km_bpf_tc_fd(struct km_bpf *kb);
int km_bpf_map_fd(struct km_bpf *kb, const char *name);
int km_bpf_prog_fd(struct km_bpf *kb, const char *name); /* "km_tc_egress" */

/*
 * A failed start: detach what this handle attached (not what it adopted)
 * and remove the pins when this open created them.
 */
void km_bpf_undo(struct km_bpf *kb);

/* Now on the clock of bpf_ktime_get_coarse_ns (deadlines in the maps). */
__u64 km_bpf_coarse_ns(void);

#endif /* KM_KBPF_H */
