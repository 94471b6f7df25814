/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Fences: several kmagentd in front of the same backends (the article's
 * shape: one per memcached host) each see the backends through their own
 * network.  One that cannot write to backend X (X is down for it, drained
 * for writes, or missed writes it has not replayed yet) knows that X is
 * missing writes; the others, which still reach X, must stop reading it,
 * or they would serve the values it missed (and read-repair them onto the
 * other replicas).
 *
 * They coordinate through the backends themselves, with no new daemon:
 * the key "kmagent:fence:<X>" on every other backend holds the names
 * (--name) of the kmagentd that hold a debt to X, space-separated,
 * updated with cas.  Every probe round, each kmagentd adds or removes its
 * own name, and reads the fences of every backend from every backend it
 * reaches: a fence naming another kmagentd sets KM_BE_F_FENCED on X (no
 * reads, kernel path included).  So a fence is seen by every kmagentd
 * within two probe intervals of its cause.
 *
 * A fence outlives its writer: a kmagentd that finds its own name in a
 * fence when it starts lost the journal of what that backend missed, and
 * has it flushed (once across kmagentd, see resync.h) and resynced in
 * full before it lifts the fence.
 */
#ifndef KM_FENCE_H
#define KM_FENCE_H

#include <stdbool.h>
#include "kmagent.h"

#define KM_FENCE_PREFIX KM_INTERNAL_PREFIX "fence:"

struct km_cfg;

/* This kmagentd's name in fences: --name, or derived from -l/-p. */
void km_fence_set_name(const char *name);
/* The same from cfg: --name, else where clients reach us (kmagentd). */
void km_fence_name_from(const struct km_cfg *cfg);
const char *km_fence_name(void);
/*
 * kmagentctl forget NAME: kmagentd NAME is gone for good.  Its name is
 * taken out of every fence, and each backend it fenced is flushed and
 * resynced in full by this kmagentd (fenced by us until then): what NAME
 * knew X missed is lost with it.  -EINVAL for a bad name, -EPERM for our
 * own, -ENOSPC when too many names wait to be forgotten.
 */
int km_fence_forget(const char *name);
/* One round, from the health thread after its probes. */
void km_fence_round(void);
/* Does this kmagentd fence backend id (for status)? */
bool km_fence_holds(__u8 id);
/*
 * Has every other kmagentd seen our fence of id, so that none reads it
 * or takes its answers any more?  Before then a replay's delete there
 * (resync.h) is a miss, and a NOT_FOUND, for one that still does:
 * seed 9013 of the chaos test, a cas and two deletes through pa answered
 * NOT_FOUND by a replica whose key pb was replaying.  True when alone.
 */
bool km_fence_seen(__u8 id);
void km_fence_stop(void);

#endif /* KM_FENCE_H */
