/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * kmagentd's shared state: the backend table, the current ring, the
 * configuration and the global counters, plus the hooks by which the
 * kernel path (kbpf), resync and read-repair plug into the daemon.
 *
 * Threading: the backend table is written under km_daemon.lock by the
 * health thread, the control socket and reloads; the data path reads
 * be[id].kb.state/flags without the lock (atomic loads, km_be_kb).  The
 * ring is an RCU-like pointer: readers load it once per request (acquire), a
 * rebuild publishes a complete new ring (release) and frees the previous
 * one only at the next swap, long after any request has finished with it.
 */
#ifndef KM_DAEMON_H
#define KM_DAEMON_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include "kmagent.h"
#include "ring.h"
#include "config.h"

struct km_be_counters {
	uint64_t requests;    /* requests sent to this backend */
	uint64_t errors;      /* ERROR/SERVER_ERROR/garbage replies */
	uint64_t timeouts;    /* requests that timed out */
	uint64_t conn_errors; /* connect failures and lost connections */
	uint64_t fallbacks;   /* reads that moved on from this backend */
	uint64_t probes_ok;
	uint64_t probes_failed;
	int64_t inflight; /* gauge: requests sent, not answered or failed */
};

/* How a WARMING backend is refilled (health.c decides, resync_daemon.c
 * does it). */
enum km_refill {
	KM_REFILL_ALL = 0, /* every key of its slots (new, or restarted) */
	KM_REFILL_REPLAY,  /* the keys in its journal (journal.h) */
	KM_REFILL_FLUSH,   /* its journal was lost: flush, every key */
};

struct km_backend_info {
	__u8 id; /* index in km_daemon.be[], 0 = slot unused */
	char name[KM_NAME_MAX];
	union km_addr addr;
	/* addr/port/state/flags as the kernel sees them (include/kmagent.h) */
	struct km_backend kb;

	/* health (health.c), under km_daemon.lock */
	int fails;	       /* consecutive failures (probes + passive) */
	int oks;	       /* consecutive successful probes */
	long pid;	       /* from the last `stats`, 0 = unknown */
	long uptime;	       /* idem */
	int restarted;	       /* a new memcached process seen while DOWN */
	time_t since;	       /* time of the last state change */
	int unknown_past;      /* came back never seen up before */
	enum km_refill refill; /* how WARMING refills it (resync daemon) */
	/* until then it may lack keys a resync missed: read-repair it */
	time_t suspect_until;
	/*
	 * A flush of it was avoided (no replica known complete): it may hold
	 * values older than its replicas', so it is never taken as complete
	 * for another backend's flush either (resync_daemon.c).
	 */
	bool doubt;
	/*
	 * Ring slots whose copies on it are stale (KM_RING_SLOTS bits, NULL:
	 * none): slots it left (writes no longer reach it), every slot of a
	 * backend new to the ring.  Purged (resync.h) in the background, or
	 * before a warming backend serves reads.
	 */
	__u8 *stale;
	/*
	 * The ring handoff (daemon.c): slots it joined and was not filled
	 * for yet (nobody reads their keys from it, engine.c), and slots it
	 * left that it still holds and still gets writes for, until every
	 * joining backend is filled.  Written under the lock with atomic
	 * byte ops, read by the data path without it (km_slot_bit_load).
	 */
	__u8 joining[KM_SLOT_BITS_BYTES];
	__u8 leaving[KM_SLOT_BITS_BYTES];
	bool has_joining, has_leaving;
	/*
	 * It joins slots of the ring restored at start (km_daemon_restore_
	 * ring): another kmagentd that runs this ring may have filled it
	 * there while we were down, and read it since.  Purging its copies
	 * would delete what that one reads (seed 9012 of the chaos test: pa,
	 * restarted in the middle of a handoff, purged keys pb had just
	 * written), so then we fence it (fence.c) until filled, and purge
	 * nothing before every other kmagentd saw the fence (km_fence_seen):
	 * km_daemon_join_fence_locked.
	 */
	bool join_fenced;
	/*
	 * A reload removed it: it leaves every slot it served, and stays in
	 * the table, getting those slots' writes, until the handoff is over
	 * for every kmagentd (peers.h); a reload that brings it back before
	 * finds it up to date.
	 */
	bool removed;
	/*
	 * It leaves slots that another kmagentd may no longer write: our
	 * handoff was ready to end (another may have ended its own since),
	 * or another one's record shows other leaving slots than ours (it
	 * restarted, or runs another ring).  So it serves none of their
	 * reads any more (it still gets our writes), until it stops
	 * leaving; back in a slot, it is filled again.  Atomic: read by the
	 * data path.
	 */
	bool leaving_unread;
	/*
	 * kmagentd's own keys on it (fences, ring records), as the last fence
	 * round found them: left out of the items `stats` reports.  Atomic.
	 */
	unsigned int internal_items;
	char reason[96]; /* reason of the last state change */

	/* data-path failures in the window since passive_since (ms,
	 * CLOCK_MONOTONIC): good probes do not clear them (health.c) */
	int passive;
	long passive_since;
	int verify; /* down on data-path failures: probes send mn too */

	struct km_be_counters c; /* atomic adds (__atomic_fetch_add) */
};

struct km_counters {
	uint64_t curr_connections;
	uint64_t total_connections;
	uint64_t rejected_connections;
	uint64_t cmd_get; /* keys asked by get/gets/gat/gats/mg */
	uint64_t cmd_set; /* storage commands */
	uint64_t cmd_touch;
	uint64_t cmd_flush;
	uint64_t get_hits;
	uint64_t get_misses;
	uint64_t fallbacks;	 /* a read asked the next replica */
	uint64_t fallback_hits;	 /* ... and found the value there */
	uint64_t divergent;	 /* write replicas answered differently */
	uint64_t write_failures; /* no replica could take a write */
	uint64_t backend_timeouts;
	uint64_t udp_requests;
	uint64_t udp_denied; /* datagrams from clients not allowed: dropped */
	uint64_t udp_capped; /* replies over --udp-reply-max: dropped */
	uint64_t protocol_errors; /* ERROR/CLIENT_ERROR sent to clients */
	uint64_t idle_kicks;	  /* clients closed by --idle-timeout */
	uint64_t bytes_read;	  /* from clients, TCP and UDP */
	uint64_t bytes_written;	  /* to clients */
	/* refills that would have flushed a backend with no replica known
	 * complete to refill it from: kept, copied in add mode instead */
	uint64_t flushes_avoided;
};

/* Called after a backend's state or flags changed, lock held. */
typedef void (*km_backend_hook)(const struct km_backend_info *be,
				enum km_backend_state old, void *ctx);
/* Called after the ring was swapped (backend added/removed). */
typedef void (*km_ring_hook)(const struct km_ring *ring, void *ctx);
/*
 * A backend came back (DOWN -> WARMING, or a restart was detected): start
 * copying its keys; call km_backend_set_state(id, KM_BE_UP, "resync done")
 * when done.  Without such a hook a warming backend goes UP at once.
 */
typedef void (*km_warming_hook)(const struct km_backend_info *be, void *ctx);
/*
 * A read found its value only after asking other replicas first: the
 * backends in missed[] lack the key (read-repair, H5).  Called from worker
 * threads: must not block.
 */
typedef void (*km_repair_hook)(const char *key, size_t nkey, const char *value,
			       size_t nvalue, uint32_t flags,
			       const __u8 *missed, unsigned int nmissed,
			       void *ctx);

#define KM_MAX_HOOKS 4

struct km_daemon {
	struct km_cfg cfg;
	pthread_mutex_t lock;
	struct km_backend_info be[KM_MAX_BACKENDS]; /* by id, be[0] unused */
	/*
	 * By id, bumped when the slot is filled or emptied: a connection
	 * made before is to another server.  Apart from be[], which
	 * km_backend_add clears, so that the workers compare it without
	 * the lock: written under it, read with km_backend_gen.
	 */
	unsigned int be_gen[KM_MAX_BACKENDS];
	struct km_ring *ring;	 /* current, see km_daemon_ring() */
	struct km_ring *retired; /* previous, freed at the next swap */
	unsigned long ring_gen;	 /* swaps so far (a freed ring's address
				    may come back: compare this) */
	struct {
		__u32 fp; /* our ring when the other kmagentd were read */
		bool agree, ready, none;
	} peers;	    /* km_daemon_set_peers */
	bool ring_restored; /* km_daemon_restore_ring ran (under the lock) */
	time_t started;
	pid_t pid;
	/* set at shutdown: every thread's loop exits */
	_Atomic int stop;
	/* SIGTERM: no new connections; set by main, read by workers */
	_Atomic int draining;
	int fence_kick;	      /* a backend went down: fence round now */
	struct km_counters c; /* atomic adds */

	struct {
		km_backend_hook fn;
		void *ctx;
	} be_hooks[KM_MAX_HOOKS];
	struct {
		km_ring_hook fn;
		void *ctx;
	} ring_hooks[KM_MAX_HOOKS];
	km_warming_hook warming_fn;
	void *warming_ctx;
	km_repair_hook repair_fn;
	void *repair_ctx;
};

extern struct km_daemon km_d;

#define KM_INC(field)	 __atomic_fetch_add(&(field), 1, __ATOMIC_RELAXED)
#define KM_DEC(field)	 __atomic_fetch_sub(&(field), 1, __ATOMIC_RELAXED)
#define KM_ADD(field, n) __atomic_fetch_add(&(field), (n), __ATOMIC_RELAXED)
#define KM_LOAD(field)	 __atomic_load_n(&(field), __ATOMIC_RELAXED)

/*
 * The settings a reload changes in a running daemon (km_reload_live):
 * written with KM_LIVE_SET under km_d.lock, read with KM_LIVE by any
 * thread, lock held or not.  Each is one scalar on its own; no reader
 * needs two of them to agree, so relaxed atomics are enough.
 */
#define KM_LIVE(field) __atomic_load_n(&km_d.cfg.field, __ATOMIC_RELAXED)
#define KM_LIVE_SET(field, v)                                                  \
	__atomic_store_n(&km_d.cfg.field, (v), __ATOMIC_RELAXED)

/* Set up the table from cfg (backends get ids 1..n, state UP) and ring. */
int km_daemon_init(const struct km_cfg *cfg);
void km_daemon_fini(void);

static inline unsigned int km_backend_gen(__u8 id)
{
	return __atomic_load_n(&km_d.be_gen[id], __ATOMIC_ACQUIRE);
}

/* The ring to use for one request; never NULL after km_daemon_init. */
static inline const struct km_ring *km_daemon_ring(void)
{
	return __atomic_load_n(&km_d.ring, __ATOMIC_ACQUIRE);
}

/* Rebuild the ring from the current table and publish it (lock held). */
int km_daemon_rebuild_ring_locked(void);
/*
 * Backend id was filled for every slot it joined as of ring_gen (a resync
 * from the ring that was current when it started): it serves them now,
 * and once nobody joins any more, the backends that left slots are
 * purged of them and the ring drops them.
 */
void km_daemon_joined(__u8 id, unsigned long ring_gen);
/*
 * An operator's resync of id (kmagentctl resync): its copy in add mode
 * may put back, for a moment, a value a client just deleted (until the
 * delete check): it joins its slots again, serving none until the copy
 * is done (km_daemon_joined).
 */
void km_daemon_rejoin(__u8 id);
/* Where our ring handoff stands, as the other kmagentd see it (peers.h). */
enum km_handoff_state {
	KM_HANDOFF_PENDING = 'p', /* a joiner is not filled, or writes owed */
	KM_HANDOFF_READY = 'r',	  /* would end: waits for the others */
	KM_HANDOFF_SETTLED = 's', /* no handoff */
};
enum km_handoff_state km_daemon_handoff_state_locked(void);
/* Our ring, as published: the configured backends' names and replicas. */
__u32 km_daemon_ring_fp_locked(void);
/*
 * What the other kmagentd said of our ring fp (peers.h): agree, they all
 * run it (a joiner is filled only then); ready, none has a handoff
 * pending either (a handoff ends only then); none, there is no other
 * kmagentd (both hold for any ring).  A change of agreement makes a fill
 * that started before count for nothing, as a ring swap does.
 */
void km_daemon_set_peers(__u32 fp, bool agree, bool ready, bool none);
/*
 * Do the other live kmagentd leave the same slots as we do (lfp: ours, as
 * km_daemon_leaving_fp_locked said when they were read)?  If not, they
 * may not write our leaving backends there: those serve no read any
 * more (leaving_unread).
 */
void km_daemon_set_leaving_shared(__u32 lfp, bool shared);
/* The slots each backend leaves, by name: the same on every kmagentd. */
__u32 km_daemon_leaving_fp_locked(void);
bool km_daemon_peers_agree(void);
/*
 * Must b be fenced before its purge (join_fenced)?  1: another kmagentd
 * runs our ring; 0: no, or nobody else is there (one that runs the ring
 * we restored from never read b in the slots it joins); -1: not known
 * until the next fence round.  Lock held.
 */
int km_daemon_join_fence_locked(const struct km_backend_info *b);
/* Did the last fence round meet no other kmagentd? */
bool km_daemon_alone(void);
/* Ends the handoff once nobody joins or owes writes any more. */
void km_daemon_handoff_check(void);
/*
 * At start, once the journal is loaded: hand the ring off from the one
 * every member was last filled for (journal.h, km_journal_ring), as a
 * reload would, when the configuration changed while no kmagentd ran.
 * 0 or -errno (the configured ring stays, every backend taken as filled).
 */
int km_daemon_restore_ring(void);
/* Is id leaving slot, where it serves no read any more? */
static inline bool km_be_leaving_unread(__u8 id, __u32 slot)
{
	return __atomic_load_n(&km_d.be[id].leaving_unread, __ATOMIC_ACQUIRE) &&
	       km_slot_bit_load(km_d.be[id].leaving, slot);
}
/* Is id still joining slot (not filled for it yet)? */
static inline bool km_be_joining(__u8 id, __u32 slot)
{
	return km_slot_bit_load(km_d.be[id].joining, slot);
}
/* Add a backend "host:port" (returns its id) / remove one, ring rebuilt. */
int km_backend_add(const char *hostport);
/*
 * A reload removed id: it leaves the ring at the end of the handoff (at
 * once if it serves no slot).  km_backend_drop_removed: a reload put it
 * back before; it leaves now, to be added as new (another kmagentd may
 * have stopped writing to it already: it is refilled in full).
 */
int km_backend_remove(__u8 id);
void km_backend_drop_removed(__u8 id);
struct km_backend_info *km_backend_by_name(const char *name);

/*
 * Change a backend's health state, logging reason; runs the hooks.  UP
 * after DOWN goes through WARMING (the warming hook decides when it is
 * UP).  Takes the lock; the _locked variant expects it held.
 */
void km_backend_set_state(__u8 id, enum km_backend_state st,
			  const char *reason);
void km_backend_set_state_locked(__u8 id, enum km_backend_state st,
				 const char *reason);
/*
 * It owes the writes in its journal (or all, when lost): an up backend
 * serves no read until they are replayed (warming, refill by replay).
 */
void km_backend_warm_for_replay(__u8 id, const char *why);
/* Set the flags in mask to those of flags; the others stay. */
void km_backend_set_flags(__u8 id, __u8 mask, __u8 flags, const char *reason);
const char *km_backend_state_name(enum km_backend_state st);

/*
 * Data path helpers (lock-free): kb's state and flags are stored with
 * __atomic stores under the lock (daemon.c), so loaded atomically here;
 * addr changes only with the ring that hands out id.
 */
static inline struct km_backend km_be_kb(__u8 id)
{
	struct km_backend kb = {.addr = km_d.be[id].kb.addr};

	kb.state = __atomic_load_n(&km_d.be[id].kb.state, __ATOMIC_ACQUIRE);
	kb.flags = __atomic_load_n(&km_d.be[id].kb.flags, __ATOMIC_ACQUIRE);
	return kb;
}

static inline int km_be_readable(__u8 id)
{
	struct km_backend kb;

	if (!id)
		return 0;
	kb = km_be_kb(id);
	return km_backend_readable(&kb);
}

static inline int km_be_writable(__u8 id)
{
	struct km_backend kb;

	if (!id)
		return 0;
	kb = km_be_kb(id);
	return km_backend_writable(&kb);
}

/*
 * May backend id lack keys that its replicas hold?  While it warms up,
 * while this kmagentd journals writes it missed, and for
 * KM_SUSPECT_SECS after it came back (resync can miss a few keys).
 */
#define KM_SUSPECT_SECS 600
int km_backend_incomplete(__u8 id);

/* Hook registration (call before workers start, or under the lock). */
int km_daemon_add_backend_hook(km_backend_hook fn, void *ctx);
int km_daemon_add_ring_hook(km_ring_hook fn, void *ctx);
void km_daemon_set_warming_hook(km_warming_hook fn, void *ctx);
void km_daemon_set_repair_hook(km_repair_hook fn, void *ctx);

/* Read-repair note from the data path: calls the repair hook, if any. */
void km_repair_note(const char *key, size_t nkey, const char *value,
		    size_t nvalue, uint32_t flags, const __u8 *missed,
		    unsigned int nmissed);

#endif /* KM_DAEMON_H */
