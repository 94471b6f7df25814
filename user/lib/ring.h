/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef KM_RING_H
#define KM_RING_H

#include <stdbool.h>
#include <stddef.h>
#include "kmagent.h"

/* A backend as the ring sees it: a stable id and a name ("host:port"). */
struct km_ring_member {
	__u8 id;
	const char *name;
};

/* The table the kernel reads from the km_ring map, slot for slot. */
struct km_ring {
	struct km_slot slots[KM_RING_SLOTS];
};

int km_ring_build(struct km_ring *ring, const struct km_ring_member *members,
		  unsigned int n, unsigned int replicas);
__u32 km_ring_slot_of(const char *key, size_t len);
const struct km_slot *km_ring_lookup(const struct km_ring *ring,
				     const char *key, size_t len);
/* Is backend id one of the slot's replicas? */
bool km_slot_has(const struct km_slot *s, __u8 id);

/* A set of ring slots, one bit each (purges: resync.h). */
#define KM_SLOT_BITS_BYTES ((KM_RING_SLOTS + 7) / 8)
static inline bool km_slot_bit(const __u8 *bits, __u32 slot)
{
	return bits[slot / 8] & (1u << (slot % 8));
}

static inline void km_slot_bit_set(__u8 *bits, __u32 slot)
{
	bits[slot / 8] |= 1u << (slot % 8);
}

/* For bitmaps the data path reads without the lock (daemon.h). */
static inline void km_slot_bits_clear(__u8 *bits)
{
	unsigned int i;

	for (i = 0; i < KM_SLOT_BITS_BYTES; i++)
		__atomic_store_n(&bits[i], 0, __ATOMIC_RELAXED);
}

static inline bool km_slot_bit_load(const __u8 *bits, __u32 slot)
{
	return __atomic_load_n(&bits[slot / 8], __ATOMIC_RELAXED) &
	       (1u << (slot % 8));
}

static inline void km_slot_bit_store(__u8 *bits, __u32 slot, bool on)
{
	if (on)
		__atomic_fetch_or(&bits[slot / 8], 1u << (slot % 8),
				  __ATOMIC_RELAXED);
	else
		__atomic_fetch_and(&bits[slot / 8], ~(1u << (slot % 8)),
				   __ATOMIC_RELAXED);
}

#endif /* KM_RING_H */
