/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Resync: copy into a warming backend every key that belongs to it (its id
 * is in the key's ring slot) from the healthy replicas, with the values'
 * flags and remaining TTL, without overwriting what clients wrote to it
 * since it came back.
 *
 * How, per source replica:
 *   - `lru_crawler metadump all` on a connection of its own lists the keys;
 *   - the keys of the target's slots are fetched in pipelined batches of
 *     `mg KEY v f t k q` ended by `mn`;
 *   - each hit is written to the target as `ms KEY LEN F<flags> T<ttl> ME c`
 *     (mode E = add: a value a client wrote meanwhile wins, NS);
 *   - deletes: a client delete that lands between our fetch and our add
 *     would resurrect the key, so (verify on) every key we stored is asked
 *     again of the source, and if the source no longer has it we delete it
 *     from the target with `md KEY C<cas>`: only if the target still holds
 *     the very item we wrote (a newer client write changed the CAS).
 * Each slot is copied from one source, the first live source (in the order
 * given) that is one of its replicas.  A source that fails midway is
 * dropped, its remaining slots move to the next source holding them, and
 * the copy goes on; keys already copied answer NS and cost a fetch.
 *
 * Replay mode copies a given list of keys instead (the target's journal
 * of missed writes), deleting each from the target before the copy.
 *
 * Runs in a thread of its own; progress is readable at any time.
 */
#ifndef KM_RESYNC_H
#define KM_RESYNC_H

#include <netinet/in.h>
#include <stdbool.h>

#include "kmagent.h"
#include "ring.h"
#include "journal.h"
#include "config.h"

enum km_resync_state {
	KM_RS_IDLE = 0,
	KM_RS_RUNNING,
	KM_RS_DONE,
	KM_RS_FAILED,
	KM_RS_CANCELLED,
};

struct km_resync_source {
	__u8 id; /* backend id, as in the ring */
	union km_addr addr;
};

struct km_resync;

struct km_resync_opts {
	const struct km_ring *ring; /* copied: the caller may free it */
	__u8 target_id;
	union km_addr target;
	struct km_resync_source sources[KM_MAX_BACKENDS];
	unsigned int nr_sources;
	unsigned int batch;	 /* keys per pipelined batch; 0 = 2048 */
	unsigned int timeout_ms; /* longest silence of a peer; 0 = 3000 */
	bool no_verify;		 /* skip the delete check (faster) */
	/*
	 * The delete check of a key waits this long after its copy: a
	 * client write that reached the target before a replay deleted it
	 * may reach the source only later, after we fetched the older
	 * value.  A write reaches every replica or times out within the
	 * request timeout: by then the check sees the source's new cas and
	 * takes our copy back (km_parse_check).  The copies go on
	 * meanwhile: a replay waits for it once a source, after its last
	 * batch.  0:
	 * at once.
	 */
	int verify_delay_ms;
	/*
	 * Replay (journal.h): copy only these keys instead of dumping the
	 * sources.  Each is deleted from the target first (its copy may be
	 * stale), then copied as above; a key that no live replica holds
	 * stays deleted.  Borrowed: they must outlive the resync.
	 */
	bool replay;
	const struct km_jkey *keys;
	size_t nr_keys;
	/* flush_all the target before anything else, unless another
	 * kmagentd (lock_owner: our name) just did */
	bool flush_first;
	/*
	 * Slots the target just joined (KM_RING_SLOTS bits, borrowed): its
	 * own copies of their keys, left from an earlier membership, are
	 * deleted first (`md KEY C<cas>`: only the items listed, so a
	 * client write that reached it since stays).
	 */
	const __u8 *purge;
	/*
	 * Copy only the keys of these slots (KM_RING_SLOTS bits, borrowed;
	 * NULL: all the target's slots).  A joiner's fill leaves alone the
	 * slots it already serves: there, an add-mode copy that crosses a
	 * client's delete is read before the delete check undoes it.
	 */
	const __u8 *only;
	const char *lock_owner;
	/*
	 * A key whose copy was undone (the delete check): the target lacks
	 * what the source holds and owes it (journal.h).  From the resync
	 * thread.
	 */
	void (*on_owed)(__u8 target, const char *key, size_t len);
	/*
	 * Replay: does source owe key itself (its copy may be older, or
	 * gone under its own replay)?  A key that no live replica holds
	 * without owing it is left as it is on the target, neither deleted
	 * nor copied: two replays must never delete each other's only
	 * copy.  The first such replica in the slot keeps its copy as right
	 * (ambiguous); the others keep owing the key (on_owed: deferred).
	 * NULL: no source owes anything.
	 */
	bool (*source_owes)(__u8 source, const char *key, size_t len);
	/* after a batch's values are fetched, before they are written */
	void (*on_fetched)(struct km_resync *rs, void *arg);
	/* after each batch, from the resync thread (progress, tests) */
	void (*on_batch)(struct km_resync *rs, void *arg);
	/* once, from the resync thread, when it ends (any state) */
	void (*on_done)(struct km_resync *rs, enum km_resync_state st,
			void *arg);
	void *arg;
};

struct km_resync_progress {
	enum km_resync_state state;
	__u8 target_id;
	__u8 source_id;	       /* source being read now, 0 = none */
	__u64 scanned;	       /* keys listed by the sources' dumps */
	__u64 matched;	       /* of those, keys of the target's slots */
	__u64 copied;	       /* stored on the target */
	__u64 existed;	       /* target had a newer value: kept */
	__u64 missing;	       /* gone from the source before the fetch */
	__u64 undone;	       /* deleted again: the source lost it meanwhile */
	__u64 failed;	       /* the target refused to store */
	__u64 dropped;	       /* replay: keys no live replica holds */
	__u64 ambiguous;       /* replay: every live replica owes it: kept */
	__u64 deferred;	       /* ... and one before us in the slot: owed */
	__u64 purged;	       /* its own copies of joined slots: deleted */
	bool flush_skipped;    /* another kmagentd had just flushed it */
	__u64 total_est;       /* estimate of matched at the end */
	__u64 source_errors;   /* sources that failed midway */
	__u32 slots_unsourced; /* target slots no live source holds */
	double elapsed;	       /* seconds since the start */
	double rate;	       /* matched keys per second */
	double eta;	       /* seconds left, -1 = unknown */
	char error[128];       /* why it failed, "" otherwise */
	int target_err;	       /* -errno when the target failed it */
};

int km_resync_start(struct km_resync **out, const struct km_resync_opts *o);
/* Ask the thread to stop; km_resync_wait() then returns KM_RS_CANCELLED. */
void km_resync_cancel(struct km_resync *rs);
enum km_resync_state km_resync_wait(struct km_resync *rs);
void km_resync_get_progress(struct km_resync *rs, struct km_resync_progress *p);
/* Joins the thread if still running (after cancelling it), then frees. */
void km_resync_free(struct km_resync *rs);
const char *km_resync_state_name(enum km_resync_state st);

/* Helpers exposed for unit tests. */
int km_uri_decode(const char *in, size_t len, char *out, size_t cap);
long km_resync_ttl_for_ms(long remaining, long now);

#endif /* KM_RESYNC_H */
