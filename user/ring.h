/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef KM_RING_H
#define KM_RING_H

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

#endif /* KM_RING_H */
