// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * kmagentd's side of resync: the daemon calls the warming hook with its
 * lock held, so the hook does nothing; a manager thread looks at the
 * backend table every 100 ms, starts a resync for each WARMING backend
 * (sources: the UP backends), cancels one whose backend left WARMING or
 * was replaced, and marks the backend UP when its copy is complete.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "fence.h"
#include "health.h"
#include "journal.h"
#include "resync_daemon.h"

#define KM_RSD_TICK_US	  (100 * 1000)
#define KM_RSD_RETRY_SECS 1
/* between replays of what an UP backend still misses (source was down) */
#define KM_RSD_BG_SECS 1

struct km_rsd_slot {
	struct km_resync *rs;
	unsigned int gen;	/* backend's gen at the start */
	unsigned long ring_gen; /* km_d.ring_gen at the start */
	bool manual;		/* on demand: state left alone */
	bool requested;
	time_t last_fail;
	bool have_last;
	struct km_resync_progress last;
	bool replay;		     /* rs replays snap's keys */
	struct km_journal_snap snap; /* the journal, while it is replayed */
	bool src[KM_MAX_BACKENDS];   /* the replay's sources, by id */
	time_t last_bg;		     /* end of the last replay while UP */
	__u8 *purge;		     /* stale slots (km_backend_info) */
	bool purge_only;	     /* slots it left: purged, nothing copied */
	bool has_only;		     /* a joiner's fill: only of these slots */
	__u8 only[KM_SLOT_BITS_BYTES];
};

static struct km_rsd_slot km_rsd[KM_MAX_BACKENDS];
static pthread_mutex_t km_rsd_lock = PTHREAD_MUTEX_INITIALIZER;
static int km_rsd_open; /* km_resyncd_open */
static pthread_t km_rsd_thread;
static bool km_rsd_up;
static _Atomic int
	km_rsd_stop; /* km_resyncd_stop sets it, the thread reads it */

/* Called with km_d.lock held: the manager thread will see it. */
static void km_rsd_on_warming(const struct km_backend_info *be, void *ctx)
{
	(void)ctx;
	km_debug("backend %s warming: resync scheduled\n", be->name);
}

struct km_rsd_view {
	bool exists;
	unsigned int gen;
	enum km_backend_state state;
	enum km_refill refill;
	bool writable;
	bool stale;	/* slots to purge (km_backend_info) */
	bool joining;	/* has_joining (km_backend_info) */
	int join_fence; /* km_daemon_join_fence_locked */
	char name[KM_NAME_MAX];
};

static void km_rsd_view(__u8 id, struct km_rsd_view *v)
{
	const struct km_backend_info *b = &km_d.be[id];

	pthread_mutex_lock(&km_d.lock);
	v->exists = b->id != 0;
	v->gen = km_backend_gen(id);
	v->state = b->kb.state;
	v->refill = b->refill;
	v->writable = km_backend_writable(&b->kb);
	v->stale = b->stale != NULL;
	v->joining = b->has_joining;
	v->join_fence = km_daemon_join_fence_locked(b);
	snprintf(v->name, sizeof(v->name), "%s", b->name);
	pthread_mutex_unlock(&km_d.lock);
}

/* 0: owes no write; 1: owes some; 2: another kmagentd fenced it. */
static unsigned int km_rsd_source_rank(const struct km_backend_info *b)
{
	if (b->kb.flags & KM_BE_F_FENCED)
		return 2;
	return km_journal_settled(b->id) && !(b->kb.flags & KM_BE_F_NO_WRITES)
		       ? 0
		       : 1;
}

/*
 * Sources: every UP backend but the target, by rank (a slot is copied
 * from its first source).  A fenced one comes last: another kmagentd
 * knows it missed writes, and which keys we do not know.  Seed 8802 of
 * the chaos test replayed keys from one while a replica no other
 * kmagentd fenced held them too (452 stale reads).
 */
static void km_rsd_sources(struct km_resync_opts *o, __u8 target)
{
	unsigned int id, pass;

	pthread_mutex_lock(&km_d.lock);
	o->target = km_d.be[target].addr;
	for (pass = 0; pass < 3; pass++) {
		for (id = 1; id < KM_MAX_BACKENDS; id++) {
			const struct km_backend_info *b = &km_d.be[id];

			if (id == target || !b->id || b->kb.state != KM_BE_UP)
				continue;
			if (km_rsd_source_rank(b) != pass)
				continue;
			o->sources[o->nr_sources].id = id;
			o->sources[o->nr_sources].addr = b->addr;
			o->nr_sources++;
		}
	}
	pthread_mutex_unlock(&km_d.lock);
}

/*
 * Lock held: is source id complete, as far as this kmagentd knows?  Up
 * and probed (not merely assumed up at start), fenced by no other
 * kmagentd, owing no write it missed.
 */
static bool km_rsd_complete_locked(__u8 id)
{
	const struct km_backend_info *b = &km_d.be[id];
	struct km_journal_info j;

	if (!b->id || b->kb.state != KM_BE_UP || b->doubt || !b->pid ||
	    (b->kb.flags & KM_BE_F_FENCED) || !km_journal_empty(id))
		return false;
	km_journal_get_info(id, &j);
	return !j.lost && !j.flush;
}

/*
 * Never destroy the only copy: target may be flushed only if every slot
 * it holds has another replica among the sources that is known complete,
 * so that everything the flush removes is copied back.  Else "" stays in
 * why, or the reason.
 */
static bool km_rsd_may_flush(__u8 target, const struct km_resync_opts *o,
			     char *why, size_t len)
{
	bool src[KM_MAX_BACKENDS] = {0}, ok = true;
	unsigned int i, r, slot;

	pthread_mutex_lock(&km_d.lock);
	for (i = 0; i < o->nr_sources; i++)
		src[o->sources[i].id] =
			km_rsd_complete_locked(o->sources[i].id);
	pthread_mutex_unlock(&km_d.lock);
	for (slot = 0; ok && slot < KM_RING_SLOTS; slot++) {
		const struct km_slot *s = &o->ring->slots[slot];
		bool mine = false, covered = false;

		for (r = 0; r < s->nr && r < KM_MAX_REPLICAS; r++) {
			mine |= s->be[r] == target;
			covered |= s->be[r] != target && src[s->be[r]];
		}
		if (mine && !covered) {
			snprintf(why, len,
				 "no replica known complete holds slot %u",
				 slot);
			ok = false;
		}
	}
	return ok;
}

/* A flush that would destroy the only copy: keep it, copy in add mode. */
static void km_rsd_keep(const struct km_rsd_view *v, __u8 target,
			struct km_resync_opts *o)
{
	char why[96] = "";

	if (km_rsd_may_flush(target, o, why, sizeof(why)))
		return;
	o->flush_first = false;
	KM_INC(km_d.c.flushes_avoided);
	pthread_mutex_lock(&km_d.lock);
	km_d.be[target].doubt = true;
	pthread_mutex_unlock(&km_d.lock);
	km_warn("backend %s: not flushed (%s): its data is kept and served, "
		"and every key its replicas hold is copied in where it "
		"lacks it; a value it missed may be stale until the key is "
		"written again\n",
		v->name, why);
}

/*
 * What to copy: a restarted or new backend gets every key of its slots; one
 * that kept its memcached gets the keys of its journal, or, when the
 * journal is lost, a flush and every key (km_rsd_keep: only if its
 * replicas are known complete).
 */
static void km_rsd_plan(__u8 id, struct km_rsd_slot *s,
			const struct km_rsd_view *v, bool journal,
			struct km_resync_opts *o)
{
	if (!journal)
		return;
	o->lock_owner = km_fence_name();
	if (v->refill == KM_REFILL_FLUSH && v->state == KM_BE_WARMING) {
		/* again after a failed try: what it missed is still unknown */
		km_journal_clear(id);
		o->flush_first = true;
		km_rsd_keep(v, id, o);
		return;
	}
	if (km_journal_take(id, &s->snap))
		return; /* no memory: copy every key, in add mode */
	if (s->snap.lost) {
		o->flush_first = true;
		km_rsd_keep(v, id, o);
		if (o->flush_first)
			km_info("backend %s: %s: flushed and resynced in "
				"full\n",
				v->name, s->snap.why);
		km_journal_snap_free(&s->snap);
		/* until it is done, whatever becomes of this try */
		pthread_mutex_lock(&km_d.lock);
		if (km_backend_gen(id) == v->gen)
			km_d.be[id].refill = KM_REFILL_FLUSH;
		pthread_mutex_unlock(&km_d.lock);
		return;
	}
	s->replay = true;
	o->replay = true;
	/* the copies follow a delete: one older than a write in flight
	 * is taken back once that write reached the source (resync.h) */
	o->verify_delay_ms = KM_LIVE(timeout_ms);
	o->keys = s->snap.keys;
	o->nr_keys = s->snap.n;
	o->flush_first = s->snap.flush;
}

/* Its stale slots: purged by this run (ours until it is done). */
static void km_rsd_take_purge(__u8 id, struct km_rsd_slot *s,
			      struct km_resync_opts *o)
{
	const struct km_backend_info *b = &km_d.be[id];
	const struct km_ring *ring;
	unsigned int slot;

	pthread_mutex_lock(&km_d.lock);
	if (!s->purge) {
		s->purge = km_d.be[id].stale;
		km_d.be[id].stale = NULL;
	}
	/*
	 * Never a slot it is a filled member of now: its copies there are
	 * the current ones (a purge put off since, then the slot came back).
	 */
	ring = km_d.ring;
	for (slot = 0; s->purge && ring && slot < KM_RING_SLOTS; slot++)
		if (km_slot_bit(s->purge, slot) &&
		    km_slot_has(&ring->slots[slot], id) &&
		    !km_slot_bit(b->joining, slot) &&
		    !km_slot_bit(b->leaving, slot))
			s->purge[slot / 8] &= ~(1u << (slot % 8));
	pthread_mutex_unlock(&km_d.lock);
	o->purge = s->purge;
}

/* Not done: the stale slots go back, with any that went stale meanwhile. */
static void km_rsd_put_purge(__u8 id, struct km_rsd_slot *s)
{
	unsigned int i;

	if (!s->purge)
		return;
	pthread_mutex_lock(&km_d.lock);
	if (km_d.be[id].id && !km_d.be[id].stale) {
		km_d.be[id].stale = s->purge;
		s->purge = NULL;
	} else if (km_d.be[id].id) {
		for (i = 0; i < KM_SLOT_BITS_BYTES; i++)
			km_d.be[id].stale[i] |= s->purge[i];
	}
	pthread_mutex_unlock(&km_d.lock);
	free(s->purge);
	s->purge = NULL;
}

/*
 * An up backend left slots: its copies of their keys go, in the
 * background (its state untouched: it serves its other slots meanwhile,
 * and nobody reads or copies the ones it left).
 */
static void km_rsd_start_purge(__u8 id, struct km_rsd_slot *s,
			       const struct km_rsd_view *v)
{
	unsigned long gen = __atomic_load_n(&km_d.ring_gen, __ATOMIC_ACQUIRE);
	struct km_resync_opts o;

	memset(&o, 0, sizeof(o));
	o.ring = km_daemon_ring();
	o.target_id = id;
	km_rsd_take_purge(id, s, &o);
	if (!o.purge)
		return;
	pthread_mutex_lock(&km_d.lock);
	o.target = km_d.be[id].addr;
	pthread_mutex_unlock(&km_d.lock);
	if (km_resync_start(&s->rs, &o)) {
		km_rsd_put_purge(id, s);
		s->last_fail = time(NULL);
		return;
	}
	s->gen = v->gen;
	s->ring_gen = gen;
	s->manual = true;
	s->purge_only = true;
	km_info("resync of %s: purging its copies of the ring slots it left\n",
		v->name);
}

/* Is another backend up, that a copy into id could read from? */
static bool km_rsd_has_sources(__u8 id)
{
	struct km_resync_opts o = {0};

	km_rsd_sources(&o, id);
	return o.nr_sources > 0;
}

/* Is the key one of target's (ctx: its id) in the current ring? */
static bool km_rsd_mine(const char *key, size_t len, void *ctx)
{
	__u8 target = (__u8)(uintptr_t)ctx;

	return km_slot_has(km_ring_lookup(km_daemon_ring(), key, len), target);
}

/*
 * A full copy into target takes each source's value of the keys that
 * source owes, maybe older than the last acknowledged write: target owes
 * them too (asked at the start and at the end: a replay of the source in
 * between would hide one).
 */
static void km_rsd_inherit(__u8 target, const bool *src)
{
	unsigned int id;

	for (id = 1; id < KM_MAX_BACKENDS; id++)
		if (src[id])
			km_journal_inherit(target, id, km_rsd_mine,
					   (void *)(uintptr_t)target);
}

/* A copy undone by the delete check: the target owes the key again. */
static void km_rsd_owed(__u8 target, const char *key, size_t len)
{
	km_journal_note(target, key, len);
}

/*
 * Drop the members of a slot still joining it (they hold only the writes
 * since they joined, daemon.c), unless no member is filled for the slot,
 * target included: then the joiners hold all that survived, and are the
 * only source.  A target filled for the slot already takes nothing from
 * them: a joiner's copy may be one a client deleted since (on both), and
 * the copy's add would bring it back until its delete check.
 */
static void km_rsd_skip_joiners(struct km_slot *sl, unsigned int slot,
				__u8 target)
{
	__u8 be[KM_MAX_REPLICAS];
	unsigned int i, n = 0, filled = 0;

	for (i = 0; i < sl->nr && i < KM_MAX_REPLICAS; i++) {
		if (km_be_joining(sl->be[i], slot)) {
			if (sl->be[i] == target)
				be[n++] = target;
			continue;
		}
		filled++;
		be[n++] = sl->be[i];
	}
	if (!filled)
		return;
	memcpy(sl->be, be, n);
	sl->nr = n;
}

/*
 * The ring a copy into target reads, from the published one: without the
 * backends still joining a slot but target (km_rsd_skip_joiners).
 * NULL: no memory (the published ring is used).
 */
static struct km_ring *km_rsd_source_ring(__u8 target,
					  const struct km_ring *ring)
{
	struct km_ring *r = malloc(sizeof(*r));
	unsigned int slot;

	if (!r)
		return NULL;
	memcpy(r, ring, sizeof(*r));
	for (slot = 0; slot < KM_RING_SLOTS; slot++)
		km_rsd_skip_joiners(&r->slots[slot], slot, target);
	return r;
}

/*
 * Does another backend share a slot with id?  Alone (one backend, or
 * replicas 1), what it missed was taken by nobody: nothing can ever be
 * replayed onto it, and its debts are moot.
 */
static bool km_rsd_has_peers(__u8 id, const struct km_ring *ring)
{
	unsigned int slot;

	for (slot = 0; ring && slot < KM_RING_SLOTS; slot++)
		if (ring->slots[slot].nr > 1 &&
		    km_slot_has(&ring->slots[slot], id))
			return true;
	return false;
}

/* manual: the state is left alone; journal: replay it (km_rsd_plan) */
static void km_rsd_start_from(__u8 id, struct km_rsd_slot *s,
			      const struct km_rsd_view *v, bool manual,
			      bool journal, unsigned long ring_gen,
			      const struct km_ring *ring,
			      const struct km_ring *src_ring)
{
	struct km_resync_opts o;
	unsigned int i;
	int err;

	memset(&o, 0, sizeof(o));
	o.ring = src_ring ? src_ring : ring;
	o.target_id = id;
	o.on_owed = km_rsd_owed;
	o.source_owes = km_journal_owes;
	o.only = s->has_only ? s->only : NULL;
	km_rsd_sources(&o, id);
	if (manual && journal && !o.nr_sources)
		return; /* nothing to copy its missed keys from yet */
	km_rsd_plan(id, s, v, journal, &o);
	/*
	 * A replay with nobody to copy from would delete the keys it owes,
	 * maybe their only copies (every replica warming after a restart):
	 * they stay owed instead (it serves none of them, answers none of
	 * their writes) and are replayed once another replica is up.
	 */
	if (o.replay && !o.nr_sources && !o.flush_first &&
	    km_rsd_has_peers(id, ring)) {
		km_journal_put_back(id, &s->snap);
		s->replay = false;
		if (!manual)
			km_backend_set_state(id, KM_BE_UP,
					     "no replica to replay from: its "
					     "missed keys stay owed");
		return;
	}
	/* a full copy first purges what it holds from earlier memberships */
	if (!manual || !journal)
		km_rsd_take_purge(id, s, &o);
	if (!o.nr_sources && !o.replay && !o.flush_first && !o.purge) {
		/* nobody holds its keys: serving it empty is all we can do */
		if (!manual)
			km_backend_set_state(id, KM_BE_UP,
					     "no live replica to resync from");
		return;
	}
	err = km_resync_start(&s->rs, &o);
	if (err) {
		km_warn("resync of %s: %s\n", v->name, strerror(-err));
		km_rsd_put_purge(id, s);
		s->last_fail = time(NULL);
		if (s->replay)
			km_journal_put_back(id, &s->snap);
		s->replay = false;
		return;
	}
	s->gen = v->gen;
	s->ring_gen = ring_gen;
	s->manual = manual;
	memset(s->src, 0, sizeof(s->src));
	for (i = 0; i < o.nr_sources; i++)
		s->src[o.sources[i].id] = true;
	if (!o.replay)
		km_rsd_inherit(id, s->src);
	if (o.replay)
		km_info("resync of %s: replaying %zu missed keys%s from %u "
			"replica%s\n",
			v->name, o.nr_keys,
			o.flush_first ? " after a flush" : "", o.nr_sources,
			o.nr_sources == 1 ? "" : "s");
	else
		km_info("resync of %s started from %u replica%s\n", v->name,
			o.nr_sources, o.nr_sources > 1 ? "s" : "");
}

static void km_rsd_start_one(__u8 id, struct km_rsd_slot *s,
			     const struct km_rsd_view *v, bool manual,
			     bool journal)
{
	/* the generation first: a swap in between makes it older, not newer */
	unsigned long gen = __atomic_load_n(&km_d.ring_gen, __ATOMIC_ACQUIRE);
	const struct km_ring *ring = km_daemon_ring();
	struct km_ring *src_ring = km_rsd_source_ring(id, ring);

	km_rsd_start_from(id, s, v, manual, journal, gen, ring, src_ring);
	free(src_ring); /* the resync copied it */
}

/* Did the replay have a source for this key? */
static bool km_rsd_sourced(const struct km_rsd_slot *s, const struct km_jkey *k)
{
	const struct km_slot *sl =
		km_ring_lookup(km_daemon_ring(), k->key, k->len);
	unsigned int i;

	for (i = 0; i < sl->nr && i < KM_MAX_REPLICAS; i++)
		if (s->src[sl->be[i]])
			return true;
	return false;
}

/*
 * A replay that did not finish gives its keys back to the journal.  One
 * that did deleted the keys that no live replica held: they stay in the
 * journal, to be copied once a replica holding them is up again.
 */
static void km_rsd_end_replay(__u8 id, struct km_rsd_slot *s, bool done)
{
	size_t i;

	if (!s->replay)
		return;
	if (done) {
		for (i = 0; i < s->snap.n; i++)
			if (!km_rsd_sourced(s, &s->snap.keys[i]))
				km_journal_note(id, s->snap.keys[i].key,
						s->snap.keys[i].len);
		km_journal_snap_free(&s->snap);
		km_journal_settle(id);
	} else {
		km_journal_put_back(id, &s->snap);
	}
	s->replay = false;
}

static void km_rsd_finish(__u8 id, struct km_rsd_slot *s,
			  const struct km_rsd_view *v)
{
	enum km_resync_state st = km_resync_wait(s->rs);
	struct km_resync_progress p;
	char why[128];
	bool replay, missed;

	km_resync_get_progress(s->rs, &p);
	km_resync_free(s->rs);
	s->rs = NULL;
	s->last = p;
	s->have_last = true;
	replay = s->replay;
	if (replay && s->manual)
		s->last_bg = time(NULL);
	/* before the keys no replica could give go back in */
	missed = !km_journal_empty(id);
	km_rsd_end_replay(id, s, st == KM_RS_DONE);
	km_info("resync of %s %s: %llu copied, %llu kept, %llu gone, %llu old "
		"copies purged, %.1f s, %.0f keys/s%s%s\n",
		v->name, km_resync_state_name(st), (unsigned long long)p.copied,
		(unsigned long long)p.existed, (unsigned long long)p.missing,
		(unsigned long long)p.purged, p.elapsed, p.rate,
		p.error[0] ? ": " : "", p.error);
	if (p.ambiguous || p.deferred)
		km_warn("resync of %s: every live replica owes %llu replayed "
			"keys too: %llu kept as they are, %llu left owed until "
			"a replica before it is settled\n",
			v->name, (unsigned long long)(p.ambiguous + p.deferred),
			(unsigned long long)p.ambiguous,
			(unsigned long long)p.deferred);
	if (st == KM_RS_DONE) {
		free(s->purge);
		s->purge = NULL;
		/* every key of its slots copied in: it joined them */
		if (!replay && !s->purge_only) {
			km_rsd_inherit(id, s->src);
			km_daemon_joined(id, s->ring_gen);
		}
	} else {
		km_rsd_put_purge(id, s);
	}
	if (s->purge_only) {
		s->purge_only = false;
		if (st != KM_RS_DONE)
			s->last_fail = time(NULL);
		return;
	}
	if (p.flush_skipped)
		km_info("resync of %s: another kmagentd flushed it since we "
			"lost its journal: not flushed again\n",
			v->name);
	if (st != KM_RS_DONE) {
		s->last_fail = time(NULL);
		/*
		 * The target did not answer our own connection: a passive
		 * failure, as a request's.  Reads may skip it (it owes the
		 * keys being replayed), and probes may be a minute apart.
		 */
		if (p.target_err == -ETIMEDOUT ||
		    p.target_err == -ECONNREFUSED ||
		    p.target_err == -ECONNRESET ||
		    p.target_err == -EHOSTUNREACH)
			km_health_passive_failure(id, "resync: no answer");
		/* no replica holds some of its keys any more: nothing to wait
		 * for */
		if (st == KM_RS_FAILED && !s->manual && p.source_errors &&
		    p.slots_unsourced && v->state == KM_BE_WARMING)
			km_backend_set_state(id, KM_BE_UP,
					     "resync: no live replica left");
		return;
	}
	if (s->manual || !v->exists || v->gen != s->gen ||
	    v->state != KM_BE_WARMING)
		return;
	if (s->ring_gen != __atomic_load_n(&km_d.ring_gen, __ATOMIC_ACQUIRE)) {
		km_info("resync of %s: the ring changed, again\n", v->name);
		return; /* the next tick starts a new one */
	}
	pthread_mutex_lock(&km_d.lock);
	if (missed) {
		/* writes it missed while warming: replay them first */
		km_d.be[id].refill = KM_REFILL_REPLAY;
		pthread_mutex_unlock(&km_d.lock);
		return;
	}
	if (replay)
		snprintf(
			why, sizeof(why),
			"resync done, replayed %llu missed keys: %llu copied, "
			"%llu deleted",
			(unsigned long long)(p.matched + p.dropped),
			(unsigned long long)p.copied,
			(unsigned long long)(p.missing + p.dropped + p.undone));
	else
		snprintf(why, sizeof(why), "resync done, %llu keys copied",
			 (unsigned long long)p.copied);
	km_backend_set_state_locked(id, KM_BE_UP, why);
	pthread_mutex_unlock(&km_d.lock);
	km_journal_settle(id); /* refilled: nothing of before is owed */
}

static void km_rsd_tick(__u8 id)
{
	struct km_rsd_slot *s = &km_rsd[id];
	struct km_resync_progress p;
	struct km_rsd_view v;

	km_rsd_view(id, &v);
	if (s->rs) {
		km_resync_get_progress(s->rs, &p);
		if (p.state != KM_RS_RUNNING) {
			km_rsd_finish(id, s, &v);
		} else if (!v.exists || v.gen != s->gen ||
			   (!s->manual && v.state != KM_BE_WARMING) ||
			   (s->manual && v.state == KM_BE_DOWN)) {
			km_resync_cancel(s->rs);
		}
		return;
	}
	if (!v.exists || v.state == KM_BE_DOWN) {
		s->requested = false;
		return;
	}
	if (time(NULL) - s->last_fail < KM_RSD_RETRY_SECS)
		return;
	/* nothing purged before the others stopped reading it (daemon.h) */
	if (v.join_fence < 0 || (v.join_fence > 0 && !km_fence_seen(id)))
		return;
	if (v.state == KM_BE_WARMING) {
		/* a replay deletes first: only once nobody else reads it */
		if (v.refill != KM_REFILL_ALL && !km_fence_seen(id))
			return;
		km_rsd_start_one(id, s, &v, false, v.refill != KM_REFILL_ALL);
	} else if (v.state == KM_BE_UP && v.stale) {
		km_rsd_start_purge(id, s, &v);
		return;
	} else if (s->requested || (v.state == KM_BE_UP && v.joining)) {
		/*
		 * Add mode; it serves none of the joined slots meanwhile.  Only
		 * once every kmagentd writes to it (peers.h), or their writes
		 * after the copy would miss it.
		 */
		if (!s->requested && !km_daemon_peers_agree())
			return;
		if (s->requested && km_rsd_has_sources(id))
			km_daemon_rejoin(id);
		s->has_only = !s->requested;
		if (s->has_only) {
			pthread_mutex_lock(&km_d.lock);
			memcpy(s->only, km_d.be[id].joining, sizeof(s->only));
			pthread_mutex_unlock(&km_d.lock);
		}
		km_rsd_start_one(id, s, &v, true, false);
		s->has_only = false; /* the running resync keeps s->only */
	} else if (v.state == KM_BE_UP && v.writable && !km_journal_empty(id) &&
		   time(NULL) - s->last_bg >= KM_RSD_BG_SECS &&
		   km_fence_seen(id))
		km_rsd_start_one(id, s, &v, true, true);
	s->requested = false;
}

void km_resyncd_open(void)
{
	pthread_mutex_lock(&km_rsd_lock);
	km_rsd_open = 1;
	pthread_mutex_unlock(&km_rsd_lock);
}

static void *km_rsd_main(void *arg)
{
	unsigned int id;

	(void)arg;
	while (!km_rsd_stop && !km_d.stop) {
		pthread_mutex_lock(&km_rsd_lock);
		for (id = 1; km_rsd_open && id < KM_MAX_BACKENDS; id++)
			km_rsd_tick(id);
		pthread_mutex_unlock(&km_rsd_lock);
		km_daemon_handoff_check();
		usleep(KM_RSD_TICK_US);
	}
	pthread_mutex_lock(&km_rsd_lock);
	for (id = 1; id < KM_MAX_BACKENDS; id++) {
		if (km_rsd[id].rs) {
			km_resync_free(km_rsd[id].rs); /* cancels */
			km_rsd[id].rs = NULL;
			km_rsd_end_replay(id, &km_rsd[id], false);
		}
	}
	pthread_mutex_unlock(&km_rsd_lock);
	return NULL;
}

int km_resyncd_start(void)
{
	int err;

	pthread_mutex_lock(&km_d.lock);
	km_daemon_set_warming_hook(km_rsd_on_warming, NULL);
	pthread_mutex_unlock(&km_d.lock);
	err = pthread_create(&km_rsd_thread, NULL, km_rsd_main, NULL);
	if (err)
		return -err;
	km_rsd_up = true;
	return 0;
}

void km_resyncd_stop(void)
{
	km_rsd_stop = 1;
	if (km_rsd_up)
		pthread_join(km_rsd_thread, NULL);
	km_rsd_up = false;
}

int km_resyncd_request(__u8 id)
{
	if (!id || id >= KM_MAX_BACKENDS || !km_d.be[id].id)
		return -ENOENT;
	pthread_mutex_lock(&km_rsd_lock);
	km_rsd[id].requested = true;
	km_rsd[id].last_fail = 0;
	pthread_mutex_unlock(&km_rsd_lock);
	return 0;
}

int km_resyncd_progress(__u8 id, struct km_resync_progress *p)
{
	int err = 0;

	if (!id || id >= KM_MAX_BACKENDS)
		return -ENOENT;
	pthread_mutex_lock(&km_rsd_lock);
	if (km_rsd[id].rs)
		km_resync_get_progress(km_rsd[id].rs, p);
	else if (km_rsd[id].have_last)
		*p = km_rsd[id].last;
	else
		err = -ENOENT;
	pthread_mutex_unlock(&km_rsd_lock);
	return err;
}
