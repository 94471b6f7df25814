/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The kernel/user contract of kmagent: every struct, enum, limit and pin
 * name that crosses the boundary between bpf/ and user/ is defined here
 * and nowhere else.  Keep it free of libc and libbpf: it is compiled into
 * the BPF object as well as the daemon.  Maps are pinned and adopted
 * across restarts and upgrades: a pinned map whose shape no longer matches
 * is replaced (user/loader/kbpf.c), so a struct that changes its layout but not
 * its size must give its map a new name.
 */
#ifndef KMAGENT_H
#define KMAGENT_H

#include <linux/types.h>

/* memcached's own limit on key length (KEY_MAX_LENGTH). */
#define KM_KEY_MAX 250
/* Keys kmagentd stores on backends for itself (fences): never copied. */
#define KM_INTERNAL_PREFIX "kmagent:"

/*
 * The ring is a flat lookup table: key hash % KM_RING_SLOTS picks a slot,
 * and the slot holds the ordered replica list of every key that lands in
 * it.  A prime, as in Maglev, so that the modulo uses every hash bit.
 */
#define KM_RING_SLOTS 65537

/* Backend ids are 1..KM_MAX_BACKENDS-1; id 0 means "no backend". */
#define KM_MAX_BACKENDS 64
#define KM_BACKEND_NONE 0

/* A slot lists at most this many replicas (the replication factor cap). */
#define KM_MAX_REPLICAS 7

struct km_slot {
	__u8 nr;		  /* replicas in be[], 0 = empty ring */
	__u8 be[KM_MAX_REPLICAS]; /* backend ids, first = primary */
};

/*
 * Backend states, shared by the TCP and the kernel paths.  Only UP serves
 * reads; UP and WARMING receive writes; DOWN receives nothing.
 */
enum km_backend_state {
	KM_BE_DOWN = 0,
	KM_BE_UP = 1,
	KM_BE_WARMING = 2,
};

/* Operator overrides on top of the health state (kmagentctl drain). */
enum km_backend_flags {
	KM_BE_F_NO_READS = 1 << 0,
	KM_BE_F_NO_WRITES = 1 << 1,
	/*
	 * Set by the kernel path, not the daemon: the backend's host answered
	 * a request with ICMP port unreachable (memcached is gone).  Cleared
	 * by the daemon's next write of the entry, when it has taken the
	 * backend down or seen it back.
	 */
	KM_BE_F_REFUSED = 1 << 2,
	/*
	 * Set by the kernel path too: a read waited on the backend longer
	 * than the retry delay (kmagentd --udp-retry) and was re-sent to the
	 * next replica.  Reads skip it (writes do not: it may only be slow,
	 * and a replica that misses writes serves stale values) until the
	 * daemon next writes the entry, at the latest a second later.
	 */
	KM_BE_F_SILENT = 1 << 3,
	/* Another kmagentd knows it missed writes (user/control/fence.h): no
	 * reads. */
	KM_BE_F_FENCED = 1 << 4,
	/*
	 * Set by the daemon: it owes writes of some keys (its journal is not
	 * empty), joins slots it is not filled for, or is warming.  Only
	 * kmagentd knows for which keys, so while kmagentd is alive
	 * (daemon_until_ns) the programs read from the slot's other replicas
	 * and answer a write with another replica's reply when one answers.
	 */
	KM_BE_F_OWES = 1 << 5,
};

/*
 * An address of either family, network order: IPv4 in v4 with the rest
 * zero, IPv6 in v6.  Which one is said by a family byte beside it (the IP
 * version, KM_FAM_V4 or KM_FAM_V6): the kernel path answers a client only
 * with backends of its own family (NAT keeps the header's size).
 */
union km_ip {
	__be32 v4;
	__be32 v6[4];
};
#define KM_FAM_V4 4
#define KM_FAM_V6 6

static inline int km_ip_set(const union km_ip *a)
{
	return (a->v6[0] | a->v6[1] | a->v6[2] | a->v6[3]) != 0;
}

/* One test, not four: each branch is a path more for the verifier. */
static inline int km_ip_eq(const union km_ip *a, const union km_ip *b)
{
	return ((a->v6[0] ^ b->v6[0]) | (a->v6[1] ^ b->v6[1]) |
		(a->v6[2] ^ b->v6[2]) | (a->v6[3] ^ b->v6[3])) == 0;
}

/* One entry of the km_backends array map, indexed by backend id. */
struct km_backend {
	union km_ip addr; /* all zero = unused id */
	__be16 port;	  /* memcached's port, TCP and UDP alike */
	__u8 state;	  /* enum km_backend_state */
	__u8 flags;	  /* enum km_backend_flags */
	__u8 family;	  /* KM_FAM_V4 or KM_FAM_V6 */
	__u8 pad[3];
};

static inline int km_backend_readable(const struct km_backend *b)
{
	return km_ip_set(&b->addr) && b->state == KM_BE_UP &&
	       !(b->flags & (KM_BE_F_NO_READS | KM_BE_F_REFUSED |
			     KM_BE_F_SILENT | KM_BE_F_FENCED));
}

static inline int km_backend_writable(const struct km_backend *b)
{
	return km_ip_set(&b->addr) &&
	       (b->state == KM_BE_UP || b->state == KM_BE_WARMING) &&
	       !(b->flags & (KM_BE_F_NO_WRITES | KM_BE_F_REFUSED));
}

/*
 * Write policy: which one of the replicas' replies goes back to the
 * client.  The default, PRIMARY, waits for every live replica and answers
 * with the reply of the first one in the key's order that answered: it is
 * what a following read of that key (served by the same replica) will be
 * consistent with.
 */
enum km_write_policy {
	KM_WP_PRIMARY = 0, /* wait for all, answer the first replica's reply */
	KM_WP_FIRST = 1,   /* answer the first reply to arrive */
	KM_WP_WORST = 2,   /* wait for all, answer the worst (errors first) */
};

/* Pin root and map names (each fits BPF_OBJ_NAME_LEN). */
#define KM_PIN_ROOT	"/sys/fs/bpf/kmagent"
#define KM_MAP_RING	"km_ring"
#define KM_MAP_BACKENDS "km_backends"
#define KM_MAP_CONFIG	"km_config"
#define KM_MAP_PENDING	"km_pending"
#define KM_MAP_STATS	"km_stats"
#define KM_MAP_BE_STATS "km_be_stats"
#define KM_MAP_ALLOW	"km_allow"
#define KM_MAP_ALLOW6	"km_allow6"
#define KM_MAP_EVENTS	"km_events"
#define KM_MAP_BE_SRC	"km_be_src"   /* union km_ip by id, 0 = proxy's */
#define KM_MAP_DEADLINE "km_deadline" /* __u64 by request id, see below */
#define KM_MAP_RETRY_Q	"km_retry_q"  /* struct km_retry_q, not pinned */
/*
 * __u64 by backend id: writes it missed whose event found the ring buffer
 * full, so its journal lacks their keys.  Pinned and mmap'able: kmagentd
 * takes the count (atomically) whenever it runs, a restarted one too.
 */
#define KM_MAP_WRITE_GAPS "km_write_gaps"
/*
 * km_progs (not pinned): the programs km_xdp_rx tail-calls, by index;
 * KM_PROG_XDP6 is km_xdp_rx6, for IPv6 frames (bpf/kmagent.bpf.c).
 */
enum km_prog_idx { KM_PROG_XDP6 = 0, KM_PROG_NR };
/* Pinned links (bpffs file names under the pin root). */
#define KM_LINK_XDP_FMT "link_xdp_%d" /* ifindex */

/* ---- kernel fast path (bpf/kmagent.bpf.c, user/loader/kbpf.c) ---- */

/*
 * km_ring holds two rings of KM_RING_SLOTS slots: the data path reads the
 * half named by km_config.ring_active; the daemon fills the other half,
 * then flips the index, so a reader never sees a half-written ring.
 */
#define KM_RING_HALVES 2

/*
 * The pending table is indexed by the request id the proxy puts in the
 * memcached UDP frame header towards the backends: 16 bits, so 65536.
 */
#define KM_PENDING_SLOTS 65536
/* The request id of noreply write clones: no entry ever has it. */
#define KM_RID_NOREPLY 0xffff

/* Longest request line (get/gets/mg, "\r\n" included) kept for fallback. */
#define KM_REQ_MAX 336
/* A write's key kept in its pending entry (journaling a silent replica). */
#define KM_WKEY_MAX 64
/* memcached's UDP datagrams: at most this many bytes, frame header included. */
#define KM_UDP_DGRAM_MAX 1400
/* Longest write reply kept per replica for aggregation. */
#define KM_WREPLY_MAX 48

/* Default age after which a pending entry is reclaimed as a timeout. */
#define KM_PENDING_TIMEOUT_NS (500ull * 1000 * 1000)

/* The only entry (key 0) of km_config: what the daemon changes at runtime. */
struct km_config {
	__u32 ring_active;	  /* 0 or 1: the half of km_ring in use */
	__u32 write_policy;	  /* enum km_write_policy */
	__u64 pending_timeout_ns; /* 0 = KM_PENDING_TIMEOUT_NS */
	__be32 proxy_addr;	  /* 0 = the address each client used */
	__u32 serve_v6;		  /* enum km_serve_v6 */
	union km_ip proxy_addr6;  /* KM_V6_ONLY: the address served */
	/* a read reply of more datagrams than this is dropped (reflection:
	 * a spoofed source gets no more than one item of item_size_max); 0 =
	 * any */
	__u32 udp_reply_max;
	/*
	 * Until then (bpf_ktime_get_coarse_ns), every UDP request goes up to
	 * the daemon.  A deadline, not a flag: the bypass lapses by itself
	 * when the daemon that set it is killed or frozen, and the programs
	 * serve alone again.
	 */
	__u64 bypass_until_ns;
	/*
	 * kmagentd's heartbeat (bpf_ktime_get_coarse_ns), renewed every
	 * second: until then it serves what KM_BE_F_OWES leaves it.  A
	 * killed or frozen daemon's lapses, and the programs serve alone.
	 */
	__u64 daemon_until_ns;
};

/* Which datagrams of each family the kernel path serves (kmagentd's -l). */
enum km_serve_v6 {
	KM_V6_NONE = 0, /* IPv4 only (-l 0.0.0.0, -l ADDR4): IPv6 left alone,
			 * to the NAT port too */
	KM_V6_ALL = 1,	/* both families, every address (-l ::) */
	KM_V6_ONLY = 2, /* IPv6 to proxy_addr6 only (-l ADDR6): IPv4 left
			 * alone */
};

enum km_pending_kind {
	KM_PK_FREE = 0,
	KM_PK_GET = 1,	 /* get or gets: a miss is "END\r\n" */
	KM_PK_MG = 2,	 /* mg: a miss is "EN\r\n" */
	KM_PK_WRITE = 3, /* cloned write, replies aggregated */
	/*
	 * Answered after a retry: kept unused for one timeout (like a timed
	 * out entry) so that the silent backend's late reply is recognised
	 * and dropped, not taken for a new request's.
	 */
	KM_PK_DONE = 4,
};

/*
 * One in-flight request, km_pending[request id].  ts is claimed with a
 * compare-and-swap (0 or stale -> now), so a live entry is never
 * overwritten; the rest is filled by the claimer before the request leaves.
 */
struct km_pending {
	__u64 ts; /* claim time (bpf_ktime_get_ns), 0 = free */
	union km_ip client_addr;
	union km_ip proxy_addr; /* the address the client sent to */
	__be16 client_port;
	__be16 client_rid;  /* the client's request id, restored on reply */
	__u8 client_mac[6]; /* source MAC of the request (next hop back) */
	__u8 proxy_mac[6];  /* destination MAC of the request (ours) */
	__u16 vlan_tci; /* 0 = untagged, else the client's tag (net order) */
	__u32 ifindex;	/* where the request came in */
	__u32 slot;	/* ring slot of the key */
	__u8 kind;	/* enum km_pending_kind */
	__u8 family;	/* the client's (and so the backends'): KM_FAM_V* */
	__u8 cur_be;	/* reads: the backend asked now */
	__u8 nr_tried;	/* reads: backends asked so far */
	__u8 tried[KM_MAX_REPLICAS]; /* reads: in order, last = cur_be */
	__u8 nr_wr; /* writes: replicas the write was cloned to */
	__u8 wr_be[KM_MAX_REPLICAS];  /* writes: their ids, in key order */
	__u8 wr_len[KM_MAX_REPLICAS]; /* writes: reply length, 0 = none yet */
	__u8 key_off;		      /* reads: the key's offset in req */
	__u8 key_len;
	__u8 policy;	 /* writes: enum km_write_policy */
	__u8 local;	 /* reads: cur_be is on this host (via the stack) */
	__u8 retried;	 /* reads: bit i, tried[i] was silent: retried away */
	__u16 req_len;	 /* reads: bytes in req */
	__u32 rx_dgrams; /* reply datagrams forwarded (atomic) */
	__u32 wr_got;	 /* writes: replies received (atomic), | CLOSED */
	union {
		char req[KM_REQ_MAX]; /* reads: the request line, for fallback
				       */
		char wr_reply[KM_MAX_REPLICAS][KM_WREPLY_MAX];
	};
	/* writes: the key, so that a replica that never answers has it
	 * journaled (user/lib/journal.h); wkey_len 0: longer than
	 * KM_WKEY_MAX */
	__u8 wkey_len;
	char wkey[KM_WKEY_MAX];
};

/* wr_got: the retry answered the client; later replies are dropped. */
#define KM_WR_CLOSED 0x10000u

/*
 * km_deadline[request id]: the retry deadline of the request in flight
 * with that id, in one word that the data path and the retry race for with
 * compare-and-swap.  0 = nothing to retry (answered, or being answered);
 * else the coarse-clock time (CLOCK_MONOTONIC_COARSE) the request was sent
 * at, its low byte replaced by the backend asked (0 for a write).
 * kmagentd scans the array (mmap) for words older than --udp-retry and
 * hands them to km_xdp_retry through km_retry_q.
 */
#define KM_DL_BE 0xffull
static inline __u64 km_dl_word(__u64 now, __u8 be)
{
	return (now & ~KM_DL_BE) | be;
}

/* One overdue request for km_xdp_retry. */
struct km_retry_d {
	__u64 w;       /* its km_deadline word when kmagentd saw it */
	__u32 idx;     /* request id */
	__u32 state;   /* enum km_retry_state, set by km_xdp_retry */
	__u32 ifindex; /* set by km_xdp_retry: where XDP_REDIRECT sends */
	__u32 pad;
};

enum km_retry_state {
	KM_RQ_TODO = 0, /* not looked at: its client came by another iface */
	KM_RQ_SENT = 1, /* retried, or answered from the replies at hand */
	KM_RQ_NONE = 2, /* nothing to do (answered meanwhile, no replica) */
};

/*
 * km_retry_q (one entry, mmap'ed by kmagentd): a batch of overdue
 * requests.  Each run of km_xdp_retry (BPF_PROG_RUN, live frames, repeat
 * = n) takes the next one.  Runs are made once per interface, as frames
 * passed up (a local replica) must enter the client's interface; the last
 * run (any_if) takes the rest.
 */
#define KM_RETRY_BATCH 256
struct km_retry_q {
	__u32 n;      /* requests in d[] */
	__u32 next;   /* next one to take (atomic) */
	__u32 any_if; /* 1: take requests whatever their interface */
	__u32 pad;
	struct km_retry_d d[KM_RETRY_BATCH];
};

/*
 * The frame kmagentd hands km_xdp_retry: its contents do not matter (the
 * program writes every header; pages are recycled between runs), only
 * its size, room for the longest request with a VLAN tag over IPv6.
 */
#define KM_RETRY_FRAME_LEN (18 + 40 + 8 + 8 + KM_REQ_MAX)

/* memcached's UDP frame header, in front of every datagram's payload. */
struct km_udp_frame {
	__be16 rid;	 /* request id, echoed in every reply datagram */
	__be16 seq;	 /* datagram number, 0-based */
	__be16 total;	 /* datagrams in this message */
	__be16 reserved; /* 0 */
};

/* Global counters: km_stats, per CPU, key 0.  Sum over CPUs to read. */
struct km_stats {
	__u64 rx_service;     /* datagrams to the service port */
	__u64 passed_up;      /* ... left to kmagentd's UDP socket */
	__u64 kernel_gets;    /* single-key gets routed in the kernel */
	__u64 kernel_writes;  /* writes cloned in the kernel (tc) */
	__u64 noreply_writes; /* ... of which noreply */
	__u64 write_clones;   /* clones sent (one per replica) */
	__u64 replies;	      /* backend datagrams sent back to clients */
	__u64 hits;
	__u64 misses;	     /* misses returned to the client */
	__u64 fallbacks;     /* misses turned into a get to the next replica */
	__u64 fallback_hits; /* hits after at least one fallback */
	__u64 write_replies; /* backend replies to cloned writes */
	__u64 write_divergent; /* writes whose replicas answered differently */
	__u64 timeouts;	       /* pending entries reclaimed after timeout */
	__u64 denied;	       /* clients outside km_allow, dropped */
	__u64 pending_full;    /* no free pending entry: passed up */
	__u64 no_backend;      /* no readable/writable replica: passed up */
	__u64 no_route;	       /* bpf_fib_lookup failed: passed up */
	__u64 stray_replies;   /* to the NAT port, no matching entry: dropped */
	__u64 helper_errors;   /* a helper failed mid-rewrite */
	__u64 events_lost;     /* ring buffer full */
	__u64 refused;	       /* ICMP port unreachable from a backend */
	__u64 retries;	       /* reads re-sent to the next replica after
				  --udp-retry without a reply */
	__u64 retry_writes;    /* writes answered from the replicas that did,
				  after --udp-retry */
	__u64 retry_late;      /* replies from a backend after the retry
				  moved on: dropped */
	__u64 retry_exhausted; /* overdue reads with no replica left to ask */
	__u64 reply_capped;    /* read replies over udp_reply_ratio: dropped */
};

/* Per-backend counters: km_be_stats, per CPU, indexed by backend id. */
struct km_be_stats {
	__u64 gets; /* gets sent (first try or fallback) */
	__u64 hits;
	__u64 misses;
	__u64 writes; /* write clones sent */
	__u64 write_replies;
	__u64 timeouts; /* pending entries that expired waiting on it */
	__u64 retried;	/* requests it left unanswered past --udp-retry */
	__u64 capped;	/* replies over udp_reply_max: came back, dropped */
};

/* km_allow: LPM trie of client networks allowed to use the UDP service. */
struct km_lpm_key {
	__u32 prefixlen;
	__be32 addr;
};
/* km_allow6: the same for IPv6 clients. */
struct km_lpm6_key {
	__u32 prefixlen;
	__be32 addr[4];
};
#define KM_ALLOW_MAX 256

enum km_event_type {
	KM_EV_FALLBACK_HIT = 1, /* read-repair: missed[] lack key */
	KM_EV_TIMEOUT = 2,	/* backend did not answer in time */
	KM_EV_REFUSED = 3,	/* backend's host: ICMP port unreachable */
	KM_EV_SILENT = 4,	/* no reply within --udp-retry: retried */
	KM_EV_WRITE_MISSED = 5, /* a write skipped missed[] (not writable) */
};

/* Sent to the daemon through km_events (ring buffer). */
struct km_event {
	__u32 type;   /* enum km_event_type */
	__u32 slot;   /* ring slot of the key */
	__u8 backend; /* HIT: who answered; else: who failed */
	__u8 nr_missed;
	__u8 missed[KM_MAX_REPLICAS]; /* HIT: backends that missed, in order */
	__u8 key_len;
	char key[KM_KEY_MAX + 6];
};

#endif /* KMAGENT_H */
