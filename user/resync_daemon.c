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
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "resync.h"

#define KM_RSD_TICK_US	  (100 * 1000)
#define KM_RSD_RETRY_SECS 1

struct km_rsd_slot {
	struct km_resync *rs;
	unsigned int gen;	    /* backend's gen at the start */
	const struct km_ring *ring; /* ring at the start */
	bool manual;		    /* on demand: state left alone */
	bool requested;
	time_t last_fail;
	bool have_last;
	struct km_resync_progress last;
};

static struct km_rsd_slot km_rsd[KM_MAX_BACKENDS];
static pthread_mutex_t km_rsd_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_t km_rsd_thread;
static bool km_rsd_up;
static volatile int km_rsd_stop;

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
	char name[KM_NAME_MAX];
};

static void km_rsd_view(__u8 id, struct km_rsd_view *v)
{
	const struct km_backend_info *b = &km_d.be[id];

	pthread_mutex_lock(&km_d.lock);
	v->exists = b->id != 0;
	v->gen = b->gen;
	v->state = b->kb.state;
	snprintf(v->name, sizeof(v->name), "%s", b->name);
	pthread_mutex_unlock(&km_d.lock);
}

/* Sources: every UP backend but the target, in id order. */
static void km_rsd_sources(struct km_resync_opts *o, __u8 target)
{
	unsigned int id;

	pthread_mutex_lock(&km_d.lock);
	o->target = km_d.be[target].addr;
	for (id = 1; id < KM_MAX_BACKENDS; id++) {
		const struct km_backend_info *b = &km_d.be[id];

		if (id == target || !b->id || b->kb.state != KM_BE_UP)
			continue;
		o->sources[o->nr_sources].id = id;
		o->sources[o->nr_sources].addr = b->addr;
		o->nr_sources++;
	}
	pthread_mutex_unlock(&km_d.lock);
}

static void km_rsd_start_one(__u8 id, struct km_rsd_slot *s,
			     const struct km_rsd_view *v, bool manual)
{
	struct km_resync_opts o;
	int err;

	memset(&o, 0, sizeof(o));
	o.ring = km_daemon_ring();
	o.target_id = id;
	km_rsd_sources(&o, id);
	if (!o.nr_sources) {
		/* nobody holds its keys: serving it empty is all we can do */
		if (!manual)
			km_backend_set_state(id, KM_BE_UP,
					     "no live replica to resync from");
		return;
	}
	err = km_resync_start(&s->rs, &o);
	if (err) {
		km_warn("resync of %s: %s\n", v->name, strerror(-err));
		s->last_fail = time(NULL);
		return;
	}
	s->gen = v->gen;
	s->ring = o.ring;
	s->manual = manual;
	km_info("resync of %s started from %u replica%s\n", v->name,
		o.nr_sources, o.nr_sources > 1 ? "s" : "");
}

static void km_rsd_finish(__u8 id, struct km_rsd_slot *s,
			  const struct km_rsd_view *v)
{
	enum km_resync_state st = km_resync_wait(s->rs);
	struct km_resync_progress p;
	char why[96];

	km_resync_get_progress(s->rs, &p);
	km_resync_free(s->rs);
	s->rs = NULL;
	s->last = p;
	s->have_last = true;
	km_info("resync of %s %s: %llu copied, %llu kept, %llu gone, %.1f s, "
		"%.0f keys/s%s%s\n",
		v->name, km_resync_state_name(st), (unsigned long long)p.copied,
		(unsigned long long)p.existed, (unsigned long long)p.missing,
		p.elapsed, p.rate, p.error[0] ? ": " : "", p.error);
	if (st != KM_RS_DONE) {
		s->last_fail = time(NULL);
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
	if (s->ring != km_daemon_ring()) {
		km_info("resync of %s: the ring changed, again\n", v->name);
		return; /* the next tick starts a new one */
	}
	snprintf(why, sizeof(why), "resync done, %llu keys copied",
		 (unsigned long long)p.copied);
	km_backend_set_state(id, KM_BE_UP, why);
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
	if (v.state == KM_BE_WARMING)
		km_rsd_start_one(id, s, &v, false);
	else if (s->requested)
		km_rsd_start_one(id, s, &v, true);
	s->requested = false;
}

static void *km_rsd_main(void *arg)
{
	unsigned int id;

	(void)arg;
	while (!km_rsd_stop && !km_d.stop) {
		pthread_mutex_lock(&km_rsd_lock);
		for (id = 1; id < KM_MAX_BACKENDS; id++)
			km_rsd_tick(id);
		pthread_mutex_unlock(&km_rsd_lock);
		usleep(KM_RSD_TICK_US);
	}
	pthread_mutex_lock(&km_rsd_lock);
	for (id = 1; id < KM_MAX_BACKENDS; id++) {
		if (km_rsd[id].rs) {
			km_resync_free(km_rsd[id].rs); /* cancels */
			km_rsd[id].rs = NULL;
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
