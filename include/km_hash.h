/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The key hash, defined once and compiled into both the BPF object and
 * the daemon, so that both pick the same ring slot for a key.
 *
 * FNV-1a over the key bytes, then murmur3's finaliser: FNV-1a is one xor
 * and one multiply a byte, cheap enough for the XDP path, and the
 * finaliser spreads its weak low bits before the modulo.  The step
 * function is exposed so that BPF code can feed bytes it has bounds-checked
 * one at a time from packet memory.
 */
#ifndef KM_HASH_H
#define KM_HASH_H

#include <linux/types.h>
#include "kmagent.h"

#define KM_HASH_INIT  2166136261u
#define KM_HASH_PRIME 16777619u

static inline __u32 km_hash_step(__u32 h, __u8 byte)
{
	return (h ^ byte) * KM_HASH_PRIME;
}

static inline __u32 km_hash_final(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

static inline __u32 km_hash_slot(__u32 hash)
{
	return hash % KM_RING_SLOTS;
}

#ifndef __bpf__
/* Userspace convenience: hash a whole key held in memory. */
static inline __u32 km_hash_key(const void *key, unsigned long len)
{
	const __u8 *p = key;
	__u32 h = KM_HASH_INIT;
	unsigned long i;

	for (i = 0; i < len; i++)
		h = km_hash_step(h, p[i]);
	return km_hash_final(h);
}
#endif

#endif /* KM_HASH_H */
