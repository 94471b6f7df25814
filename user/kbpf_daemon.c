// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * kmagentd's side of the kernel path: with -I IFACE, load and attach the
 * programs, push the backend table, ring, policy and allow-list into the
 * maps and keep them in step through the daemon's hooks, and turn kernel
 * events into health signals (timeouts) and read-repair notes (hits after
 * a fallback).  Kept apart from kbpf.c, which knows nothing of the daemon.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>

#include "daemon.h"
#include "kbpf.h"
#include "proxy.h"
#include "log.h"

static struct km_bpf *km_kb;
static pthread_t km_kb_thread;
static int km_kb_thread_up;
static volatile int km_kb_stop;

/*
 * The address the routing table picks as source towards addr (a UDP
 * connect sends nothing): a backend behind another interface than the
 * clients' answers that one.  0 when unknown.
 */
static __be32 km_kbpf_src_towards(const struct sockaddr_in *addr)
{
	struct sockaddr_in me;
	socklen_t len = sizeof(me);
	__be32 src = 0;
	int fd;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	if (!connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) &&
	    !getsockname(fd, (struct sockaddr *)&me, &len))
		src = me.sin_addr.s_addr;
	close(fd);
	return src;
}

static void km_kbpf_push_backend(const struct km_backend_info *b)
{
	int err;

	err = km_bpf_set_backend(km_kb, b->id, &b->kb);
	if (!err)
		err = km_bpf_set_backend_src(km_kb, b->id,
					     km_kbpf_src_towards(&b->addr));
	if (err)
		km_warn("kernel path: backend %s: %s\n", b->name,
			strerror(-err));
}

/* Called with km_d.lock held after a backend's state or flags changed. */
static void km_kbpf_on_backend(const struct km_backend_info *b,
			       enum km_backend_state old, void *ctx)
{
	(void)old;
	(void)ctx;
	if (b->id)
		km_kbpf_push_backend(b);
}

static void km_kbpf_push_all_backends(void)
{
	struct km_backend none = {};
	unsigned int id;

	for (id = 1; id < KM_MAX_BACKENDS; id++) {
		if (km_d.be[id].id)
			km_kbpf_push_backend(&km_d.be[id]);
		else
			km_bpf_set_backend(km_kb, id, &none);
	}
}

/* After a ring swap: backends may have been added or removed too. */
static void km_kbpf_on_ring(const struct km_ring *ring, void *ctx)
{
	int err;

	(void)ctx;
	km_kbpf_push_all_backends();
	err = km_bpf_set_ring(km_kb, ring);
	if (err)
		km_warn("kernel path: ring update: %s\n", strerror(-err));
}

/*
 * A lost datagram is a timeout too: pass at most one a second per backend
 * on to health, so that a few UDP losses between two probes do not take a
 * healthy backend down (a dead one keeps timing out, second after second).
 */
static int km_kbpf_timeout_due(__u8 id)
{
	static long long last_ms[KM_MAX_BACKENDS];
	struct timespec ts;
	long long now;

	if (!id || id >= KM_MAX_BACKENDS)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
	if (last_ms[id] && now - last_ms[id] < 1000)
		return 0;
	last_ms[id] = now;
	return 1;
}

static int km_kbpf_on_event(const struct km_event *ev, void *ctx)
{
	(void)ctx;
	switch (ev->type) {
	case KM_EV_TIMEOUT:
		if (km_kbpf_timeout_due(ev->backend))
			km_health_passive_failure(ev->backend,
						  "UDP reply timeout");
		break;
	case KM_EV_REFUSED:
		/* hosts send these at about one a second: no flood to fear */
		if (ev->backend < KM_MAX_BACKENDS)
			km_info("kernel path: backend %s: ICMP port "
				"unreachable: skipped until its state "
				"changes\n",
				km_d.be[ev->backend].name);
		km_health_passive_failure(ev->backend,
					  "ICMP port unreachable (UDP)");
		break;
	case KM_EV_FALLBACK_HIT:
		/* the kernel keeps no value: the repair hook fetches it */
		km_debug("kernel fallback hit: key %.*s on backend %u, %u "
			 "missed\n",
			 ev->key_len, ev->key, ev->backend, ev->nr_missed);
		km_repair_note(ev->key, ev->key_len, NULL, 0, 0, ev->missed,
			       ev->nr_missed);
		break;
	}
	return 0;
}

static void *km_kbpf_events(void *arg)
{
	int err;

	(void)arg;
	while (!km_d.stop && !km_kb_stop) {
		err = km_bpf_poll(km_kb, 250);
		if (err < 0) {
			km_warn("kernel path: events: %s\n", strerror(-err));
			break;
		}
	}
	return NULL;
}

/* The clients allowed by default: as the daemon's UDP socket allows. */
static int km_kbpf_default_allow(const struct km_cfg *cfg)
{
	struct km_cfg_allow a[KM_MAX_ALLOW];
	unsigned int i, n = km_allow_default(cfg, a, KM_MAX_ALLOW);
	int err = 0;

	for (i = 0; !err && i < n; i++)
		err = km_bpf_allow_add(km_kb, a[i].addr.s_addr, a[i].prefix);
	return err;
}

static int km_kbpf_configure(const struct km_cfg *cfg)
{
	struct km_config kc;
	unsigned int i;
	int err;

	err = km_bpf_get_config(km_kb, &kc);
	if (err)
		return err;
	kc.proxy_addr = cfg->listen_addr.s_addr;
	kc.write_policy = cfg->write_policy;
	kc.udp_reply_ratio = cfg->udp_reply_ratio;
	if (cfg->timeout_ms > 0)
		kc.pending_timeout_ns = cfg->timeout_ms * 1000000ull;
	err = km_bpf_set_config(km_kb, &kc);
	for (i = 0; !err && i < cfg->nr_allow; i++)
		err = km_bpf_allow_add(km_kb, cfg->allow[i].addr.s_addr,
				       cfg->allow[i].prefix);
	if (!err && !cfg->nr_allow)
		err = km_kbpf_default_allow(cfg);
	return err;
}

int km_kbpf_start(const struct km_cfg *cfg)
{
	struct km_bpf_opts o = {.pin_root = cfg->pin_root,
				.service_port = cfg->port,
				.verbose = cfg->verbose};
	unsigned int i;
	int err;

	if (!cfg->nr_ifaces)
		return 0;
	err = km_bpf_open(&km_kb, &o);
	if (err)
		return err;
	err = km_kbpf_configure(cfg);
	if (err) {
		km_err("kernel path: configure maps: %s\n", strerror(-err));
		goto fail;
	}
	pthread_mutex_lock(&km_d.lock);
	km_kbpf_push_all_backends();
	err = km_bpf_set_ring(km_kb, km_daemon_ring());
	if (!err)
		err = km_daemon_add_backend_hook(km_kbpf_on_backend, NULL);
	if (!err)
		err = km_daemon_add_ring_hook(km_kbpf_on_ring, NULL);
	pthread_mutex_unlock(&km_d.lock);
	if (err) {
		km_err("kernel path: ring and hooks: %s\n", strerror(-err));
		goto fail;
	}
	for (i = 0; i < cfg->nr_ifaces; i++) {
		err = km_bpf_attach(km_kb, cfg->ifaces[i]);
		if (err)
			goto fail;
		km_info("kernel path attached to %s (%s XDP), pins in %s\n",
			cfg->ifaces[i],
			km_bpf_is_generic(km_kb, cfg->ifaces[i]) ? "generic"
								 : "native",
			cfg->pin_root);
	}
	err = km_bpf_set_event_handler(km_kb, km_kbpf_on_event, NULL);
	if (err)
		goto fail;
	err = pthread_create(&km_kb_thread, NULL, km_kbpf_events, NULL);
	if (err) {
		err = -err;
		goto fail;
	}
	km_kb_thread_up = 1;
	return 0;
fail:
	/* hooks stay registered but see no handle: they are never called
	 * again, since the daemon exits on this error */
	return err;
}

/* Leave everything attached and pinned: traffic flows without us. */
void km_kbpf_stop(void)
{
	km_kb_stop = 1;
	if (km_kb_thread_up) {
		pthread_join(km_kb_thread, NULL);
		km_kb_thread_up = 0;
	}
}

struct km_bpf *km_kbpf_handle(void)
{
	return km_kb_thread_up ? km_kb : NULL;
}
