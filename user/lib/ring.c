// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The ring builder.  Each slot ranks every backend by a rendezvous
 * (highest random weight) score of (backend name, slot) and keeps the top
 * `replicas` in order.  Scores depend only on the name, so adding or
 * removing one of N backends changes the primary of about 1/N of the slots,
 * and the order of the others never; ids are just labels.
 */
#include <errno.h>
#include <string.h>

#include "km_hash.h"
#include "ring.h"

static __u64 km_mix64(__u64 x)
{
	/* splitmix64's finaliser: every input bit reaches every output bit */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

static __u64 km_name_hash(const char *name)
{
	__u64 h = 14695981039346656037ull;

	for (; *name; name++)
		h = (h ^ (unsigned char)*name) * 1099511628211ull;
	return h;
}

static void km_ring_fill_slot(struct km_slot *slot, __u32 idx,
			      const struct km_ring_member *m,
			      const __u64 *name_hash, unsigned int n,
			      unsigned int replicas)
{
	__u64 best[KM_MAX_REPLICAS];
	unsigned int i, j, nr = 0;

	for (i = 0; i < n; i++) {
		__u64 score =
			km_mix64(name_hash[i] ^ (idx * 0x9e3779b97f4a7c15ull));

		/* insertion into the short sorted list of the best so far */
		for (j = nr; j > 0 && best[j - 1] < score; j--) {
			if (j < replicas) {
				best[j] = best[j - 1];
				slot->be[j] = slot->be[j - 1];
			}
		}
		if (j < replicas) {
			best[j] = score;
			slot->be[j] = m[i].id;
			if (nr < replicas)
				nr++;
		}
	}
	slot->nr = nr;
}

int km_ring_build(struct km_ring *ring, const struct km_ring_member *members,
		  unsigned int n, unsigned int replicas)
{
	__u64 name_hash[KM_MAX_BACKENDS];
	unsigned int i, j;
	__u32 s;

	if (n >= KM_MAX_BACKENDS)
		return -E2BIG;
	for (i = 0; i < n; i++) {
		if (members[i].id == KM_BACKEND_NONE || !members[i].name)
			return -EINVAL;
		for (j = 0; j < i; j++)
			if (members[j].id == members[i].id ||
			    !strcmp(members[j].name, members[i].name))
				return -EEXIST;
		name_hash[i] = km_name_hash(members[i].name);
	}
	if (replicas == 0 || replicas > n)
		replicas = n;
	if (replicas > KM_MAX_REPLICAS)
		replicas = KM_MAX_REPLICAS;

	memset(ring, 0, sizeof(*ring));
	for (s = 0; s < KM_RING_SLOTS; s++)
		km_ring_fill_slot(&ring->slots[s], s, members, name_hash, n,
				  replicas);
	return 0;
}

__u32 km_ring_slot_of(const char *key, size_t len)
{
	return km_hash_slot(km_hash_key(key, len));
}

const struct km_slot *km_ring_lookup(const struct km_ring *ring,
				     const char *key, size_t len)
{
	return &ring->slots[km_ring_slot_of(key, len)];
}

bool km_slot_has(const struct km_slot *s, __u8 id)
{
	unsigned int i;

	for (i = 0; i < s->nr && i < KM_MAX_REPLICAS; i++)
		if (s->be[i] == id)
			return true;
	return false;
}
