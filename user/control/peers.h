/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Ring handoffs across kmagentd.  Each kmagentd runs its own handoff when
 * the ring changes (daemon.c): the backends that join a slot are filled
 * before they serve it, the ones that leave keep getting writes until the
 * others are filled, then are purged.  With several kmagentd in front of
 * the same backends, that is not enough: one that ends its handoff stops
 * writing to (and purges) a leaving backend that another, whose handoff
 * is still on, reads; and one that fills a joiner before another reloaded
 * misses the writes the other sends to the old replicas only.
 *
 * So each kmagentd publishes, on every backend it reaches, the ring it
 * runs and where its handoff stands: "kmagent:ring:<name>" holds "<ring
 * fingerprint> <state> <sequence> <leaving fingerprint>" (state: p
 * pending, r ready to end, s settled), and "kmagent:proxies" the names
 * that ever did.  Both are read and written every fence round (fence.c).
 * A kmagentd then
 *   - fills a joiner only while every other live kmagentd runs its ring
 *     (km_daemon_set_peers: agree), and counts the fill only if that held
 * throughout (a change of agreement counts as a ring change);
 *   - ends a handoff only when, moreover, none of them has one pending
 *     (ready): the leaving backends go only once no kmagentd
 *     reads them as a slot's member;
 *   - reads a leaving backend (a slot's last resort) only while every
 *     other live kmagentd leaves the same slots (the record's fourth
 *     field): one that restarted, or runs another ring, may not write
 *     it there any more.
 * The keys expire unless touched: a kmagentd whose record no backend held
 * for KM_PEERS_TTL_SECS is taken as gone (killed for good, or cut off
 * from every backend): handoffs stop waiting for it; kmagentctl forget
 * stops them waiting sooner, once its record is older than a live
 * kmagentd lets it get.
 */
#ifndef KM_PEERS_H
#define KM_PEERS_H

#include <stdbool.h>
#include <stddef.h>
#include "kmagent.h"
#include "daemon.h"

#define KM_PEERS_KEY	  KM_INTERNAL_PREFIX "proxies"
#define KM_PEERS_RING	  KM_INTERNAL_PREFIX "ring:"
#define KM_PEERS_TTL_SECS 30

/* One request/reply exchange with a backend (fence.c's connection). */
typedef int (*km_peers_io_fn)(__u8 backend, const char *req, size_t len,
			      char *rep, size_t cap,
			      int (*done)(const char *, size_t));

/*
 * A round starts: our name, ring fingerprint, handoff state and the slots
 * we leave (km_daemon_leaving_fp_locked).
 */
void km_peers_round_start(const char *me, __u32 fp, enum km_handoff_state st,
			  __u32 lfp);
/*
 * Read the others' records on backend id, write ours; false: I/O failed.
 * *items: how many keys of ours (records, kmagent:proxies) it holds now.
 */
bool km_peers_sync(__u8 id, km_peers_io_fn io, unsigned int *items);
/*
 * The round is over: agreement and readiness, from what every backend
 * said, go to km_daemon_set_peers.
 */
void km_peers_round_end(void);
/* Alone with one backend: no record to keep, nobody to wait for. */
void km_peers_alone(void);
/*
 * kmagentctl forget: handoffs stop waiting for name until it writes again,
 * once its record is older than a live kmagentd lets it get.
 */
void km_peers_forget(const char *name);
/* Does that forget hold (or did name never write a record)? */
bool km_peers_forgotten(const char *name);

#endif /* KM_PEERS_H */
