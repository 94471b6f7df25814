/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every map of the kernel path, declared once.  The pinned ones carry BTF
 * value types from include/kmagent.h, so `bpftool map dump pinned
 * /sys/fs/bpf/kmagent/km_stats` prints named fields, and a restarted
 * daemon adopts them (LIBBPF_PIN_BY_NAME) instead of starting empty.
 */
#ifndef KM_MAPS_BPF_H
#define KM_MAPS_BPF_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include "kmagent.h"

/*
 * Per-attach constants, set by the loader before load: the UDP port
 * clients send requests to, and the source port the proxy uses towards
 * backends (their replies come back to it).  0 disables the fast path.
 */
const volatile __u16 km_service_port = 11211;
const volatile __u16 km_nat_port = 0;

/* Two rings of KM_RING_SLOTS slots; km_config.ring_active picks one. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KM_RING_HALVES *KM_RING_SLOTS);
	__type(key, __u32);
	__type(value, struct km_slot);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} km_ring SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KM_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct km_backend);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} km_backends SEC(".maps");

/*
 * The source address to use towards each backend (the daemon asks the
 * routing table: a backend behind another interface must be able to
 * answer it), of the backend's family; 0 = the address the client used.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KM_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, union km_ip);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} km_be_src SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct km_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} km_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KM_PENDING_SLOTS);
	__type(key, __u32);
	__type(value, struct km_pending);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} km_pending SEC(".maps");

/*
 * Retry deadlines, by request id (see KM_MAP_DEADLINE): mmap'able, so
 * that kmagentd scans them without a system call per entry.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KM_PENDING_SLOTS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} km_deadline SEC(".maps");

/* KM_MAP_WRITE_GAPS: missed writes each backend's journal lacks. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KM_MAX_BACKENDS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} km_write_gaps SEC(".maps");

/* km_xdp_rx's tail calls (KM_PROG_*), filled by the loader; its own. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, KM_PROG_NR);
	__type(key, __u32);
	__type(value, __u32);
} km_progs SEC(".maps");

/* kmagentd's batch of overdue requests for km_xdp_retry; its own. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct km_retry_q);
} km_retry_q SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct km_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} km_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KM_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct km_be_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} km_be_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, KM_ALLOW_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct km_lpm_key);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} km_allow SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, KM_ALLOW_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct km_lpm6_key);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} km_allow6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} km_events SEC(".maps");

/*
 * Per-CPU scratch: the datagram's payload is copied here once, so that the
 * parser indexes a map value with masked offsets instead of proving every
 * packet access to the verifier.  Not pinned: it holds nothing between runs.
 */
#define KM_SCRATCH_SIZE 512
struct km_scratch {
	char buf[KM_SCRATCH_SIZE + 16]; /* slack for KM_IDX(i) + 3 */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct km_scratch);
} km_scratch SEC(".maps");

/* ---- per-CPU working space of the write and routing paths: their value
 * types are BPF-only, hence here and not in include/kmagent.h ---- */

/* Where a rewritten datagram goes: every header field the proxy owns. */
struct km_hdrvals {
	__u8 dmac[ETH_ALEN];
	__u8 smac[ETH_ALEN];
	union km_ip saddr;
	union km_ip daddr;
	__be16 sport;
	__be16 dport;
	__be16 rid;
	__u32 ifindex; /* egress: XDP_TX when it is the ingress */
};

/* Where the header fields of the datagram being cloned sit, and their
 * values. */
struct km_tc_hdr {
	__u64 family; /* first: see km_pkt */
	__u32 ip_off;
	__u32 udp_off;
	union km_ip saddr;
	union km_ip daddr;
	__be16 sport;
	__be16 dport;
	__be16 rid;
};

/*
 * A replica index the verifier cannot bound by itself (a counter, a value
 * read back from a map) is masked: KM_REPLICA_IDX(i).  The arrays indexed
 * so have KM_REPLICA_MASK + 1 elements, so that the mask alone keeps the
 * access inside them (the asserts below); the index itself is always
 * under KM_MAX_REPLICAS.
 */
#define KM_REPLICA_MASK	  7
#define KM_REPLICA_IDX(i) ((i)&KM_REPLICA_MASK)
_Static_assert(KM_REPLICA_MASK + 1 >= KM_MAX_REPLICAS &&
		       ((KM_REPLICA_MASK + 1) & KM_REPLICA_MASK) == 0,
	       "KM_REPLICA_MASK: a power of two minus one, over every replica");
#define KM_NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* The replicas a write is cloned to: too big for the stack, per CPU. */
struct km_targets {
	struct km_hdrvals tv[KM_REPLICA_MASK + 1];
	__u8 ids[KM_REPLICA_MASK + 1];
	__u8 nr_skipped; /* replicas of the slot not writable now */
	__u8 skipped[KM_REPLICA_MASK + 1];
	/* km_fib_in's, off the stack: km_tc_targets4/6 run below the
	 * biggest frame there is (km_tc_clone's); so are these */
	struct bpf_fib_lookup fib;
	struct km_hdrvals swap; /* km_tc_targets_auth_first's */
	union km_ip proxy;	/* the address the client sent to */
	union km_ip src;	/* the proxy's towards the replica at hand */
	/* km_tc_clones': the datagram's headers as they are now, the
	 * request id of the clones; km_tc_targets': the replica on this
	 * host (an index in tv and ids, -1: none), how many there are */
	struct km_tc_hdr h;
	struct km_hdrvals lv; /* the local replica's headers */
	__be16 rid;
	__s8 local;
	__u8 nr; /* replicas in tv[] and ids[] */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct km_targets);
} km_targets SEC(".maps");

_Static_assert(KM_NELEM(((struct km_targets *)0)->tv) > KM_REPLICA_MASK &&
		       KM_NELEM(((struct km_targets *)0)->ids) >
			       KM_REPLICA_MASK &&
		       KM_NELEM(((struct km_targets *)0)->skipped) >
			       KM_REPLICA_MASK,
	       "km_targets: KM_REPLICA_IDX indexes tv, ids and skipped");

/* km_fib_cached_in's per-CPU next-hop cache (nat.bpf.h). */
struct km_nexthop {
	__u64 ts; /* 0 = empty */
	union km_ip src;
	union km_ip dst;
	__u32 in_ifindex;
	int rc; /* km_fib's return */
	struct km_hdrvals v;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KM_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct km_nexthop);
} km_nexthop SEC(".maps");

/* Where km_claim looks next in this CPU's window (pending.bpf.h). */
struct km_cursor {
	__u32 next;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct km_cursor);
} km_cursor SEC(".maps");

static __always_inline struct km_stats *km_stats_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&km_stats, &zero);
}

static __always_inline struct km_be_stats *km_be_stats_get(__u32 id)
{
	return bpf_map_lookup_elem(&km_be_stats, &id);
}

/* Backend id missed a write the ring buffer had no room to report. */
static __always_inline void km_write_gap(__u32 id)
{
	__u64 *n = bpf_map_lookup_elem(&km_write_gaps, &id);

	if (n)
		__sync_fetch_and_add(n, 1);
}

static __always_inline struct km_backend *km_backend_get(__u32 id)
{
	if (id == KM_BACKEND_NONE)
		return NULL;
	return bpf_map_lookup_elem(&km_backends, &id);
}

static __always_inline struct km_config *km_config_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&km_config, &zero);
}

/* kmagentd asked for every UDP request, for a while (km_config). */
static __always_inline int km_bypassed(const struct km_config *cfg)
{
	__u64 until = cfg->bypass_until_ns;

	return until && bpf_ktime_get_coarse_ns() < until;
}

/* kmagentd is alive to serve what KM_BE_F_OWES leaves it (km_config). */
static __always_inline int km_daemon_alive(const struct km_config *cfg)
{
	return cfg && bpf_ktime_get_coarse_ns() < cfg->daemon_until_ns;
}

/* be owes writes, with kmagentd alive to know for which keys. */
static __always_inline int km_backend_owes(const struct km_config *cfg,
					   const struct km_backend *be)
{
	return (be->flags & KM_BE_F_OWES) && km_daemon_alive(cfg);
}

static __always_inline struct km_scratch *km_scratch_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&km_scratch, &zero);
}

static __always_inline struct km_targets *km_targets_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&km_targets, &zero);
}

static __always_inline struct km_slot *km_ring_get(const struct km_config *cfg,
						   __u32 slot)
{
	__u32 key = (cfg->ring_active & 1) * KM_RING_SLOTS + slot;

	return bpf_map_lookup_elem(&km_ring, &key);
}

/* The proxy's source address towards backend id, into out. */
static __always_inline void km_nat_src(__u32 id, const union km_ip *proxy,
				       union km_ip *out)
{
	union km_ip *src = bpf_map_lookup_elem(&km_be_src, &id);

	*out = src && km_ip_set(src) ? *src : *proxy;
}

/* Is the client at a (of family fam) in km_allow (IPv4), km_allow6? */
static __always_inline int km_client_allowed(__u8 fam, const union km_ip *a)
{
	struct km_lpm6_key k6 = {.prefixlen = 128};
	struct km_lpm_key key = {.prefixlen = 32, .addr = a->v4};

	if (fam != KM_FAM_V6)
		return bpf_map_lookup_elem(&km_allow, &key) != NULL;
	__builtin_memcpy(k6.addr, a->v6, 16);
	return bpf_map_lookup_elem(&km_allow6, &k6) != NULL;
}

#endif /* KM_MAPS_BPF_H */
