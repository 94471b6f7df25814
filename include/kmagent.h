/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The kernel/user contract of kmagent: every struct, enum, limit and pin
 * name that crosses the boundary between bpf/ and user/ is defined here
 * and nowhere else.  Keep it free of libc and libbpf: it is compiled into
 * the BPF object as well as the daemon.
 */
#ifndef KMAGENT_H
#define KMAGENT_H

#include <linux/types.h>

/* memcached's own limit on key length (KEY_MAX_LENGTH). */
#define KM_KEY_MAX 250

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
};

/* One entry of the km_backends array map, indexed by backend id. */
struct km_backend {
	__be32 addr; /* IPv4, network order; 0 = unused id */
	__be16 port; /* memcached's port, TCP and UDP alike */
	__u8 state;  /* enum km_backend_state */
	__u8 flags;  /* enum km_backend_flags */
};

static inline int km_backend_readable(const struct km_backend *b)
{
	return b->addr && b->state == KM_BE_UP &&
	       !(b->flags & KM_BE_F_NO_READS);
}

static inline int km_backend_writable(const struct km_backend *b)
{
	return b->addr && (b->state == KM_BE_UP || b->state == KM_BE_WARMING) &&
	       !(b->flags & KM_BE_F_NO_WRITES);
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
#define KM_PIN_ROOT "/sys/fs/bpf/kmagent"

#endif /* KMAGENT_H */
