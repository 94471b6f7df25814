// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The daemon's shared state: backend table, ring publication, hooks. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "daemon.h"
#include "km_hash.h"
#include "ring.h"
#include "journal.h"
#include "log.h"

struct km_daemon km_d = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
};

static void km_run_backend_hooks(const struct km_backend_info *b,
				 enum km_backend_state old);

const char *km_backend_state_name(enum km_backend_state st)
{
	switch (st) {
	case KM_BE_DOWN:
		return "down";
	case KM_BE_UP:
		return "up";
	case KM_BE_WARMING:
		return "warming";
	}
	return "?";
}

static void km_backend_fill(struct km_backend_info *b, __u8 id,
			    const char *name, const union km_addr *sa)
{
	memset(b, 0, sizeof(*b));
	b->id = id;
	__atomic_fetch_add(&km_d.be_gen[id], 1, __ATOMIC_RELEASE);
	snprintf(b->name, sizeof(b->name), "%s", name);
	b->addr = *sa;
	/* kb.addr is also the table's "in use" mark: never all zero */
	if (sa->sa.sa_family == AF_INET6) {
		memcpy(b->kb.addr.v6, &sa->in6.sin6_addr, sizeof(b->kb.addr));
		b->kb.family = KM_FAM_V6;
		b->kb.port = sa->in6.sin6_port;
	} else {
		b->kb.addr.v4 = sa->in.sin_addr.s_addr;
		b->kb.family = KM_FAM_V4;
		b->kb.port = sa->in.sin_port;
	}
	km_journal_name(id, name);
	/*
	 * Optimistic start: a new backend serves at once; the first failed
	 * probes or connects take it down.  Starting DOWN would refuse every
	 * request during the first probe interval.
	 */
	b->kb.state = KM_BE_UP;
	b->since = time(NULL);
	snprintf(b->reason, sizeof(b->reason), "configured");
}

/*
 * Ring changes are a handoff (docs/operations.md, "Ring changes").  Per
 * slot, a backend that joins it is "joining" until a resync filled it
 * (km_daemon_joined): it gets the slot's writes but serves no read of its
 * keys, and no resync copies them from it.  One that leaves it is
 * "leaving": it stays in the published ring's slot, after the members,
 * so it keeps getting writes and serving reads as their last resort
 * (while every kmagentd leaves it there: leaving_unread), until nobody
 * joins anything any more; then its copies of the slot's
 * keys are purged (resync.h, purge) and the ring drops it.  Its copies
 * are never left to come back stale: writes reach them until they go.
 * A backend new to the ring (or back after a removal) is warming anyway:
 * all its slots are purged before its refill.  One that leaves a slot it
 * was never filled for only has its partial copies purged.
 */
static void km_handoff_slot_locked(struct km_backend_info *b, __u32 slot,
				   bool in_old, bool in_new)
{
	bool leaving = km_slot_bit(b->leaving, slot);
	bool member = in_old && !leaving;
	bool stale = false;

	if (in_new && leaving && !b->leaving_unread) {
		km_slot_bit_store(b->leaving, slot,
				  false); /* back: it kept up */
	} else if (in_new && !member) {
		/* what it holds of the slot is from an earlier membership, or
		 * missed writes of a kmagentd that stopped writing it there */
		km_slot_bit_store(b->leaving, slot, false);
		km_slot_bit_store(b->joining, slot, true);
		b->has_joining = true;
		stale = true;
	} else if (!in_new && member && km_slot_bit(b->joining, slot)) {
		/* the bit goes once the new ring is out
		 * (km_daemon_unjoin_locked): a request still on the old ring
		 * must not read it meanwhile */
		stale = true;
	} else if (!in_new && member) {
		km_slot_bit_store(b->leaving, slot, true);
		b->has_leaving = true;
	}
	if (!stale)
		return;
	if (!b->stale)
		b->stale = calloc(1, KM_SLOT_BITS_BYTES);
	if (b->stale) /* else purged nothing: as before */
		km_slot_bit_set(b->stale, slot);
}

/* gone (by id, or NULL): filled for none of its slots of old */
static void km_daemon_note_handoff_locked(const struct km_ring *old,
					  const struct km_ring *ring,
					  const bool *gone)
{
	unsigned int id, slot;

	for (id = 1; id < KM_MAX_BACKENDS; id++) {
		struct km_backend_info *b = &km_d.be[id];

		if (!b->id)
			continue;
		for (slot = 0; slot < KM_RING_SLOTS; slot++)
			km_handoff_slot_locked(
				b, slot,
				km_slot_has(&old->slots[slot], id) &&
					!(gone && gone[id]),
				km_slot_has(&ring->slots[slot], id));
	}
}

/* The backends leaving each slot go after its members (see above). */
static void km_ring_add_leaving_locked(struct km_ring *ring)
{
	unsigned int id, slot;

	for (id = 1; id < KM_MAX_BACKENDS; id++) {
		const struct km_backend_info *b = &km_d.be[id];

		if (!b->id || !b->has_leaving)
			continue;
		for (slot = 0; slot < KM_RING_SLOTS; slot++) {
			struct km_slot *s = &ring->slots[slot];

			if (km_slot_bit(b->leaving, slot) &&
			    s->nr < KM_MAX_REPLICAS && !km_slot_has(s, id))
				s->be[s->nr++] = id;
		}
	}
}

/*
 * Once ring is published: a backend no longer joins the slots it left
 * before it was filled for them.  A request that took the ring before
 * skips it there all the same (engine.c, km_be_current).
 */
static void km_daemon_unjoin_locked(const struct km_ring *ring)
{
	unsigned int id, slot;

	for (id = 1; id < KM_MAX_BACKENDS; id++) {
		struct km_backend_info *b = &km_d.be[id];

		if (!b->id || !b->has_joining)
			continue;
		for (slot = 0; slot < KM_RING_SLOTS; slot++)
			if (km_slot_bit(b->joining, slot) &&
			    !km_slot_has(&ring->slots[slot], id))
				km_slot_bit_store(b->joining, slot, false);
	}
}

/* Build from the table, note the handoff from the current ring, publish. */
static int km_daemon_swap_ring_locked(bool handoff)
{
	struct km_ring_member m[KM_MAX_BACKENDS];
	struct km_ring *ring, *old;
	unsigned int n = 0, id, i;
	int err;

	for (id = 1; id < KM_MAX_BACKENDS; id++) {
		if (!km_d.be[id].id || km_d.be[id].removed)
			continue;
		m[n].id = id;
		m[n].name = km_d.be[id].name;
		n++;
	}
	ring = malloc(sizeof(*ring));
	if (!ring)
		return -ENOMEM;
	err = km_ring_build(ring, m, n, KM_LIVE(replicas));
	if (err) {
		free(ring);
		return err;
	}
	old = km_d.ring;
	if (old && handoff)
		km_daemon_note_handoff_locked(old, ring, NULL);
	km_ring_add_leaving_locked(ring);
	/*
	 * The kernel path first: when a handoff ends, it must stop reading
	 * (falling back to) the backends that leave before our writes stop
	 * reaching them, or it serves a value deleted meanwhile.
	 */
	for (i = 0; i < KM_MAX_HOOKS; i++)
		if (km_d.ring_hooks[i].fn)
			km_d.ring_hooks[i].fn(ring, km_d.ring_hooks[i].ctx);
	__atomic_store_n(&km_d.ring_gen, km_d.ring_gen + 1, __ATOMIC_RELEASE);
	__atomic_store_n(&km_d.ring, ring, __ATOMIC_RELEASE);
	km_daemon_unjoin_locked(ring);
	/* requests last far less than the time between two rebuilds */
	free(km_d.retired);
	km_d.retired = old;
	return 0;
}

static void km_daemon_end_handoff_locked(void);
static void km_backend_drop_locked(__u8 id);
static bool km_daemon_peers_ok_locked(bool ready);

int km_daemon_rebuild_ring_locked(void)
{
	int err = km_daemon_swap_ring_locked(true);

	if (!err)
		km_daemon_end_handoff_locked(); /* if nobody joins */
	return err;
}

/*
 * Does a member of some slot lack what a leaving backend may hold: not
 * filled yet, or owing writes (journal.h)?  Then the leaving backends
 * stay: they may hold the only good copy.
 */
static bool km_handoff_pending_locked(void)
{
	unsigned int id;

	for (id = 1; id < KM_MAX_BACKENDS; id++) {
		const struct km_backend_info *b = &km_d.be[id];

		/* a removed backend's debts go with it */
		if (b->id && !b->removed &&
		    (b->has_joining || !km_journal_settled(id)))
			return true;
	}
	return false;
}

/*
 * Nobody joins or leaves a slot: every member is filled for the ring as
 * configured.  The journal keeps it for the next start (see
 * km_daemon_restore_ring).
 */
static void km_daemon_note_settled_locked(void)
{
	struct km_journal_ring r = {.replicas = KM_LIVE(replicas)};
	unsigned int id;

	if (!km_d.ring_restored)
		return; /* the journal's, not loaded yet, stays */
	for (id = 1; id < KM_MAX_BACKENDS; id++) {
		const struct km_backend_info *b = &km_d.be[id];

		if (!b->id)
			continue;
		if (b->has_joining || b->has_leaving)
			return;
		snprintf(r.names[r.n++], sizeof(r.names[0]), "%s", b->name);
	}
	km_journal_set_ring(&r);
}

/* Nobody joins or owes any more: the leaving backends go (see above). */
static void km_daemon_end_handoff_locked(void)
{
	unsigned int id, i;
	bool any = false;

	for (id = 1; id < KM_MAX_BACKENDS; id++)
		any |= km_d.be[id].id && km_d.be[id].has_leaving;
	if (!any || km_handoff_pending_locked()) {
		km_daemon_note_settled_locked();
		return;
	}
	if (!km_daemon_peers_ok_locked(true))
		return; /* another kmagentd may still read them (peers.h) */
	for (id = 1; id < KM_MAX_BACKENDS; id++) {
		struct km_backend_info *b = &km_d.be[id];

		if (!b->id || !b->has_leaving)
			continue;
		if (b->removed) {
			km_backend_drop_locked(id);
			continue;
		}
		if (!b->stale)
			b->stale = calloc(1, KM_SLOT_BITS_BYTES);
		for (i = 0; b->stale && i < KM_SLOT_BITS_BYTES; i++)
			b->stale[i] |= b->leaving[i];
		km_slot_bits_clear(b->leaving);
		b->has_leaving = false;
		__atomic_store_n(&b->leaving_unread, false, __ATOMIC_RELEASE);
	}
	if (km_daemon_swap_ring_locked(false)) {
		km_warn("ring handoff over, but the ring could not be rebuilt: "
			"the backends that left slots keep getting their "
			"writes\n");
		return;
	}
	km_info("ring handoff over: every backend that joined slots "
		"is filled, those that left them are purged\n");
	km_daemon_note_settled_locked();
}

/*
 * The ring the journal recorded, with the configured backends' ids: a
 * recorded backend no longer configured gets a free id (it has no entry
 * in the table, so it only shapes the slots).
 */
static int km_daemon_saved_ring_locked(const struct km_journal_ring *saved,
				       struct km_ring *old, bool *gone)
{
	struct km_ring_member m[KM_MAX_BACKENDS];
	bool used[KM_MAX_BACKENDS] = {false};
	unsigned int id, i, free_id = 1;

	for (id = 1; id < KM_MAX_BACKENDS; id++)
		used[id] = km_d.be[id].id != 0;
	for (i = 0; i < saved->n; i++) {
		const struct km_backend_info *b =
			km_backend_by_name(saved->names[i]);

		if (b) {
			id = b->id;
		} else {
			while (free_id < KM_MAX_BACKENDS && used[free_id])
				free_id++;
			if (free_id == KM_MAX_BACKENDS)
				return -E2BIG;
			id = free_id;
			used[id] = true;
		}
		m[i].id = id;
		m[i].name = saved->names[i];
		gone[id] = saved->gone[i];
	}
	return km_ring_build(old, m, saved->n, saved->replicas);
}

int km_daemon_restore_ring(void)
{
	struct km_journal_ring *saved = malloc(sizeof(*saved));
	struct km_ring *old = malloc(sizeof(*old));
	bool gone[KM_MAX_BACKENDS] = {false};
	unsigned int id, joining = 0, leaving = 0;
	int err = -ENOMEM;

	pthread_mutex_lock(&km_d.lock);
	/* from now on the ring recorded is ours to update */
	km_d.ring_restored = true;
	if (!saved || !old)
		goto out;
	err = 0;
	if (!km_journal_ring(saved))
		goto out;
	err = km_daemon_saved_ring_locked(saved, old, gone);
	if (!err) {
		km_daemon_note_handoff_locked(old, km_d.ring, gone);
		err = km_daemon_swap_ring_locked(false);
	}
	for (id = 1; !err && id < KM_MAX_BACKENDS; id++) {
		km_d.be[id].join_fenced = km_d.be[id].has_joining;
		joining += km_d.be[id].id && km_d.be[id].has_joining;
		leaving += km_d.be[id].id && km_d.be[id].has_leaving;
	}
	if (!err && (joining || leaving))
		km_info("ring changed since the last run (%u backends, %u "
			"replicas then): %u backend%s join slots, %u leave "
			"them\n",
			saved->n, saved->replicas, joining,
			joining == 1 ? "" : "s", leaving);
	if (!err)
		km_daemon_end_handoff_locked();
out:
	pthread_mutex_unlock(&km_d.lock);
	free(saved);
	free(old);
	return err;
}

void km_daemon_rejoin(__u8 id)
{
	struct km_backend_info *b;
	const struct km_ring *ring;
	unsigned int slot;

	if (!id || id >= KM_MAX_BACKENDS)
		return;
	b = &km_d.be[id];
	pthread_mutex_lock(&km_d.lock);
	ring = km_d.ring;
	for (slot = 0; b->id && ring && slot < KM_RING_SLOTS; slot++)
		if (km_slot_has(&ring->slots[slot], id) &&
		    !km_slot_bit(b->leaving, slot)) {
			km_slot_bit_store(b->joining, slot, true);
			b->has_joining = true;
		}
	if (b->has_joining) /* the kernel path leaves its slots to us */
		km_run_backend_hooks(b, b->kb.state);
	pthread_mutex_unlock(&km_d.lock);
}

void km_daemon_set_peers(__u32 fp, bool agree, bool ready, bool none)
{
	pthread_mutex_lock(&km_d.lock);
	if (agree != km_d.peers.agree || none != km_d.peers.none)
		__atomic_store_n(&km_d.ring_gen, km_d.ring_gen + 1,
				 __ATOMIC_RELEASE);
	km_d.peers.fp = fp;
	km_d.peers.agree = agree;
	km_d.peers.ready = ready;
	km_d.peers.none = none;
	pthread_mutex_unlock(&km_d.lock);
}

/*
 * What the last round said holds for the ring it was about: after a
 * change of ours, wait for the next one (unless nobody else is there).
 */
static bool km_daemon_peers_ok_locked(bool ready)
{
	if (km_d.peers.none)
		return true;
	if (km_d.peers.fp != km_daemon_ring_fp_locked())
		return false;
	return ready ? km_d.peers.ready : km_d.peers.agree;
}

bool km_daemon_alone(void)
{
	bool alone;

	pthread_mutex_lock(&km_d.lock);
	alone = km_d.peers.none;
	pthread_mutex_unlock(&km_d.lock);
	return alone;
}

int km_daemon_join_fence_locked(const struct km_backend_info *b)
{
	if (!b->join_fenced || !b->has_joining || km_d.peers.none)
		return 0;
	if (km_d.peers.fp != km_daemon_ring_fp_locked())
		return -1;
	return km_d.peers.agree;
}

bool km_daemon_peers_agree(void)
{
	bool ok;

	pthread_mutex_lock(&km_d.lock);
	ok = km_daemon_peers_ok_locked(false);
	pthread_mutex_unlock(&km_d.lock);
	return ok;
}

/* FNV-1a (km_hash.h's step) of n bytes, on top of h */
static __u32 km_fnv(__u32 h, const void *s, size_t n)
{
	const __u8 *p = s;
	size_t i;

	for (i = 0; i < n; i++)
		h = km_hash_step(h, p[i]);
	return h;
}

/* A backend's name, for the fingerprints: the same on every kmagentd. */
static __u32 km_fnv_name(const struct km_backend_info *b)
{
	return km_fnv(KM_HASH_INIT, b->name, strlen(b->name));
}

__u32 km_daemon_ring_fp_locked(void)
{
	__u32 sum = 0;
	unsigned int id;

	/* a sum of the names' FNV-1a: the order of the config does not count */
	for (id = 1; id < KM_MAX_BACKENDS; id++)
		if (km_d.be[id].id && !km_d.be[id].removed)
			sum += km_fnv_name(&km_d.be[id]);
	return (sum ^ KM_LIVE(replicas)) * KM_HASH_PRIME;
}

__u32 km_daemon_leaving_fp_locked(void)
{
	__u32 sum = 0;
	unsigned int id;

	/* a sum again: the ids differ from one kmagentd to the next */
	for (id = 1; id < KM_MAX_BACKENDS; id++) {
		const struct km_backend_info *b = &km_d.be[id];

		if (!b->id || !b->has_leaving)
			continue;
		sum += km_fnv(km_fnv_name(b), b->leaving, KM_SLOT_BITS_BYTES);
	}
	return sum;
}

/*
 * The leaving backends serve no read any more, for good: their copies
 * stay current only as long as every kmagentd writes them.
 */
static void km_daemon_unread_leaving_locked(void)
{
	unsigned int id;

	for (id = 1; id < KM_MAX_BACKENDS; id++) {
		struct km_backend_info *b = &km_d.be[id];

		if (!b->id || !b->has_leaving || b->leaving_unread)
			continue;
		__atomic_store_n(&b->leaving_unread, true, __ATOMIC_RELEASE);
		km_run_backend_hooks(b, b->kb.state); /* the kernel path too */
	}
}

void km_daemon_set_leaving_shared(__u32 lfp, bool shared)
{
	pthread_mutex_lock(&km_d.lock);
	/* else our leaving set changed since: the next round says */
	if (!shared && lfp == km_daemon_leaving_fp_locked())
		km_daemon_unread_leaving_locked();
	pthread_mutex_unlock(&km_d.lock);
}

enum km_handoff_state km_daemon_handoff_state_locked(void)
{
	unsigned int id;
	bool leaving = false;

	for (id = 1; id < KM_MAX_BACKENDS; id++) {
		if (!km_d.be[id].id)
			continue;
		if (km_d.be[id].has_joining && !km_d.be[id].removed)
			return KM_HANDOFF_PENDING;
		leaving |= km_d.be[id].has_leaving;
	}
	if (!leaving)
		return KM_HANDOFF_SETTLED;
	if (km_handoff_pending_locked())
		return KM_HANDOFF_PENDING;
	/* before the others can know it (see leaving_unread) */
	km_daemon_unread_leaving_locked();
	return KM_HANDOFF_READY;
}

void km_daemon_handoff_check(void)
{
	pthread_mutex_lock(&km_d.lock);
	km_daemon_end_handoff_locked();
	pthread_mutex_unlock(&km_d.lock);
}

void km_daemon_joined(__u8 id, unsigned long ring_gen)
{
	struct km_backend_info *b;

	if (!id || id >= KM_MAX_BACKENDS)
		return;
	b = &km_d.be[id];
	pthread_mutex_lock(&km_d.lock);
	/* a later change may have made it join more: filled by the next */
	km_debug("backend %s: filled as of ring %lu (now %lu)%s\n", b->name,
		 ring_gen, km_d.ring_gen,
		 b->has_joining ? "" : ", joining nothing");
	if (b->id && b->has_joining && ring_gen == km_d.ring_gen &&
	    km_daemon_peers_ok_locked(false)) {
		km_slot_bits_clear(b->joining);
		b->has_joining = b->join_fenced = false;
		km_daemon_end_handoff_locked();
	}
	pthread_mutex_unlock(&km_d.lock);
}

int km_daemon_init(const struct km_cfg *cfg)
{
	unsigned int i;
	int err;

	pthread_mutex_lock(&km_d.lock);
	km_d.cfg = *cfg;
	km_d.started = time(NULL);
	km_d.pid = getpid();
	for (i = 0; i < cfg->nr_backends; i++)
		km_backend_fill(&km_d.be[i + 1], i + 1, cfg->backends[i].name,
				&cfg->backends[i].addr);
	err = km_daemon_rebuild_ring_locked();
	pthread_mutex_unlock(&km_d.lock);
	return err;
}

void km_daemon_fini(void)
{
	unsigned int id;

	for (id = 0; id < KM_MAX_BACKENDS; id++) {
		free(km_d.be[id].stale);
		km_d.be[id].stale = NULL;
	}
	free(km_d.ring);
	free(km_d.retired);
	km_d.ring = km_d.retired = NULL;
}

struct km_backend_info *km_backend_by_name(const char *name)
{
	unsigned int id;

	for (id = 1; id < KM_MAX_BACKENDS; id++)
		if (km_d.be[id].id && !strcmp(km_d.be[id].name, name))
			return &km_d.be[id];
	return NULL;
}

int km_backend_add(const char *hostport)
{
	union km_addr sa;
	unsigned int id;
	int err;

	err = km_parse_hostport(hostport, KM_DEFAULT_PORT, &sa);
	if (err)
		return err;
	pthread_mutex_lock(&km_d.lock);
	if (km_backend_by_name(hostport)) {
		err = -EEXIST;
		goto out;
	}
	for (id = 1; id < KM_MAX_BACKENDS && km_d.be[id].id; id++)
		;
	if (id == KM_MAX_BACKENDS) {
		err = -ENOSPC;
		goto out;
	}
	km_backend_fill(&km_d.be[id], id, hostport, &sa);
	err = km_daemon_rebuild_ring_locked();
	if (err) {
		km_d.be[id].id = 0;
		memset(&km_d.be[id].kb.addr, 0, sizeof(union km_ip));
		goto out;
	}
	km_info("backend %u %s added\n", id, hostport);
	err = id;
out:
	pthread_mutex_unlock(&km_d.lock);
	return err;
}

/* The end of a removal: it leaves the table. */
static void km_backend_drop_locked(__u8 id)
{
	km_backend_set_state_locked(id, KM_BE_DOWN, "removed");
	/* writes stop reaching it: a restart must not take it as filled */
	km_journal_ring_gone(km_d.be[id].name);
	km_journal_clear(id);
	km_journal_name(id, NULL);
	free(km_d.be[id].stale);
	km_d.be[id].stale = NULL;
	km_slot_bits_clear(km_d.be[id].joining);
	km_slot_bits_clear(km_d.be[id].leaving);
	km_d.be[id].has_joining = km_d.be[id].has_leaving = false;
	km_d.be[id].join_fenced = false;
	km_d.be[id].removed = km_d.be[id].leaving_unread = false;
	km_d.be[id].id = 0;
	memset(&km_d.be[id].kb.addr, 0, sizeof(union km_ip));
	__atomic_fetch_add(&km_d.be_gen[id], 1, __ATOMIC_RELEASE);
	km_info("backend %u %s removed\n", id, km_d.be[id].name);
}

int km_backend_remove(__u8 id)
{
	int err = 0;

	if (!id || id >= KM_MAX_BACKENDS)
		return -EINVAL;
	pthread_mutex_lock(&km_d.lock);
	if (!km_d.be[id].id) {
		err = -ENOENT;
		goto out;
	}
	if (km_d.be[id].removed)
		goto out;
	/*
	 * The slots it served become leaving (km_handoff_slot_locked); those
	 * it was joining stop getting writes now.  Gone from the recorded
	 * ring at once: back after a restart, it is refilled in full.
	 */
	km_d.be[id].removed = true;
	km_journal_ring_gone(km_d.be[id].name);
	err = km_daemon_rebuild_ring_locked();
	if (err)
		km_d.be[id].removed = false;
	if (err || !km_d.be[id].id)
		goto out; /* failed, or dropped at once by the handoff's end */
	/* in no slot of the new ring: it joins nothing (no fill waits) */
	km_slot_bits_clear(km_d.be[id].joining);
	km_d.be[id].has_joining = false;
	if (!km_d.be[id].has_leaving) {
		km_backend_drop_locked(id);
		err = km_daemon_rebuild_ring_locked();
	} else {
		km_info("backend %u %s removed from the ring: it gets the "
			"writes of its slots until the handoff is over\n",
			id, km_d.be[id].name);
	}
out:
	pthread_mutex_unlock(&km_d.lock);
	return err;
}

void km_backend_drop_removed(__u8 id)
{
	if (!id || id >= KM_MAX_BACKENDS)
		return;
	pthread_mutex_lock(&km_d.lock);
	if (km_d.be[id].id && km_d.be[id].removed) {
		km_backend_drop_locked(id);
		km_daemon_rebuild_ring_locked();
	}
	pthread_mutex_unlock(&km_d.lock);
}

void km_backend_warm_for_replay(__u8 id, const char *why)
{
	if (!id || id >= KM_MAX_BACKENDS)
		return;
	pthread_mutex_lock(&km_d.lock);
	if (km_d.be[id].id && km_d.be[id].kb.state == KM_BE_UP) {
		km_d.be[id].refill = KM_REFILL_REPLAY;
		km_backend_set_state_locked(id, KM_BE_WARMING, why);
	}
	pthread_mutex_unlock(&km_d.lock);
}

static void km_run_backend_hooks(const struct km_backend_info *b,
				 enum km_backend_state old)
{
	unsigned int i;

	for (i = 0; i < KM_MAX_HOOKS; i++)
		if (km_d.be_hooks[i].fn)
			km_d.be_hooks[i].fn(b, old, km_d.be_hooks[i].ctx);
}

void km_backend_set_state_locked(__u8 id, enum km_backend_state st,
				 const char *reason)
{
	struct km_backend_info *b = &km_d.be[id];
	enum km_backend_state old;

	if (!id || id >= KM_MAX_BACKENDS || !b->id)
		return;
	old = b->kb.state;
	/* a backend that was down comes back empty: writes first, then reads */
	if (st == KM_BE_UP && old == KM_BE_DOWN)
		st = KM_BE_WARMING;
	if (st == old)
		return;
	__atomic_store_n(&b->kb.state, st, __ATOMIC_RELEASE);
	b->since = time(NULL);
	if (st == KM_BE_DOWN)
		__atomic_store_n(&km_d.fence_kick, 1, __ATOMIC_RELAXED);
	if (st == KM_BE_UP || st == KM_BE_WARMING)
		__atomic_store_n(&b->suspect_until, b->since + KM_SUSPECT_SECS,
				 __ATOMIC_RELAXED);
	snprintf(b->reason, sizeof(b->reason), "%s", reason);
	km_info("backend %s: %s -> %s (%s)\n", b->name,
		km_backend_state_name(old), km_backend_state_name(st), reason);
	km_run_backend_hooks(b, old);
	if (st == KM_BE_WARMING) {
		if (km_d.warming_fn) {
			km_d.warming_fn(b, km_d.warming_ctx);
		} else {
			__atomic_store_n(&b->kb.state, KM_BE_UP,
					 __ATOMIC_RELEASE);
			km_info("backend %s: warming -> up (no resync)\n",
				b->name);
			km_run_backend_hooks(b, KM_BE_WARMING);
		}
	}
}

int km_backend_incomplete(__u8 id)
{
	const struct km_backend_info *b = &km_d.be[id];

	if (!id || id >= KM_MAX_BACKENDS)
		return 0;
	return b->kb.state == KM_BE_WARMING || !km_journal_empty(id) ||
	       __atomic_load_n(&b->has_joining, __ATOMIC_RELAXED) ||
	       time(NULL) <
		       __atomic_load_n(&b->suspect_until, __ATOMIC_RELAXED);
}

void km_backend_set_state(__u8 id, enum km_backend_state st, const char *reason)
{
	pthread_mutex_lock(&km_d.lock);
	km_backend_set_state_locked(id, st, reason);
	pthread_mutex_unlock(&km_d.lock);
}

void km_backend_set_flags(__u8 id, __u8 mask, __u8 flags, const char *reason)
{
	struct km_backend_info *b = &km_d.be[id];
	__u8 nf;

	if (!id || id >= KM_MAX_BACKENDS)
		return;
	pthread_mutex_lock(&km_d.lock);
	nf = (b->kb.flags & ~mask) | (flags & mask);
	if (b->id && b->kb.flags != nf) {
		__atomic_store_n(&b->kb.flags, nf, __ATOMIC_RELEASE);
		km_info("backend %s: flags 0x%x (%s)\n", b->name, nf, reason);
		km_run_backend_hooks(b, b->kb.state);
	}
	pthread_mutex_unlock(&km_d.lock);
}

int km_daemon_add_backend_hook(km_backend_hook fn, void *ctx)
{
	unsigned int i;

	for (i = 0; i < KM_MAX_HOOKS; i++) {
		if (!km_d.be_hooks[i].fn) {
			km_d.be_hooks[i].ctx = ctx;
			km_d.be_hooks[i].fn = fn;
			return 0;
		}
	}
	return -ENOSPC;
}

int km_daemon_add_ring_hook(km_ring_hook fn, void *ctx)
{
	unsigned int i;

	for (i = 0; i < KM_MAX_HOOKS; i++) {
		if (!km_d.ring_hooks[i].fn) {
			km_d.ring_hooks[i].ctx = ctx;
			km_d.ring_hooks[i].fn = fn;
			return 0;
		}
	}
	return -ENOSPC;
}

void km_daemon_set_warming_hook(km_warming_hook fn, void *ctx)
{
	km_d.warming_ctx = ctx;
	km_d.warming_fn = fn;
}

void km_daemon_set_repair_hook(km_repair_hook fn, void *ctx)
{
	km_d.repair_ctx = ctx;
	km_d.repair_fn = fn;
}

void km_repair_note(const char *key, size_t nkey, const char *value,
		    size_t nvalue, uint32_t flags, const __u8 *missed,
		    unsigned int nmissed)
{
	km_repair_hook fn = km_d.repair_fn;

	if (fn)
		fn(key, nkey, value, nvalue, flags, missed, nmissed,
		   km_d.repair_ctx);
}
