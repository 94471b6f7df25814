// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * kmagentd's side of the kernel path: with -I IFACE, load and attach the
 * programs, push the backend table, ring, policy and allow-list into the
 * maps and keep them in step through the daemon's hooks, turn kernel
 * events into health signals (timeouts, silent backends) and read-repair
 * notes (hits after a fallback), and run the retry thread
 * (kbpf_retry.c).  Kept apart from kbpf.c, which knows nothing of the daemon.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <net/if.h>

#include "daemon.h"
#include "health.h"
#include "journal.h"
#include "kbpf_daemon.h"
#include "kbpf_retry.h"
#include "proxy.h"
#include "log.h"
#include "mcclient.h"
#include "netdev.h"
#include "retry.h"

static struct km_bpf *km_kb;
static __u64 *km_kb_gaps; /* km_write_gaps, mmap'ed */
static pthread_t km_kb_thread;
static int km_kb_thread_up;
static volatile int km_kb_stop;

/*
 * Replies that never come back: a backend answering from behind an
 * interface without the kernel path (two NICs, -I on one) answers the NAT
 * port, where nothing catches it; the kernel path sends, nobody replies,
 * the client gets nothing, and probes (TCP) say the backend is fine.
 * Sampled once a second from km_be_stats: requests sent with no reply
 * (hit, miss or write reply) for KM_NOREPLY_WINDOW seconds while the backend
 * stayed up and answered health probes all along (so not a backend that
 * died between two probes) flag it and turn the kernel path into a
 * pass-through (every UDP request up to kmagentd, which asks the backends
 * over TCP) for --bypass-hold seconds: losing requests in silence is worse
 * than serving them slower.  Then the kernel serves again and is judged
 * afresh: a bypass never latches, as its evidence (requests without
 * replies) is something a client can also make, and the pinned programs
 * must serve alone whenever no kmagentd runs (the deadline is in
 * km_config, so the kernel lifts it even when kmagentd was killed).
 */
#define KM_NOREPLY_WINDOW   4 /* samples, one a second */
#define KM_NOREPLY_MIN_SENT 3 /* sent requests before judging */

static struct {
	__u64 sent[KM_NOREPLY_WINDOW], answered[KM_NOREPLY_WINDOW];
	__u64 probes_ok[KM_NOREPLY_WINDOW], probes_failed[KM_NOREPLY_WINDOW];
	unsigned int up_samples; /* consecutive samples with it up */
	unsigned int samples;
	__u64 answered_first; /* at the first sample */
	bool answered_ever;   /* the kernel saw a reply of it since */
	int noreply;	      /* read by ctl and metrics threads */
} km_noreply[KM_MAX_BACKENDS];

/* The bypass in force; read by the ctl and metrics threads. */
static struct {
	pthread_mutex_t lock;
	long long until_ms; /* CLOCK_MONOTONIC; 0: none */
	char why[160];
	unsigned long long count[KM_BYPASS_REASONS];
} km_bp = {.lock = PTHREAD_MUTEX_INITIALIZER};

/*
 * The address the routing table picks as source towards addr (a UDP
 * connect sends nothing): a backend behind another interface than the
 * clients' answers that one.  All zero when unknown.
 */
static union km_ip km_kbpf_src_towards(const union km_addr *addr)
{
	union km_ip src = {0};
	union km_addr me;
	socklen_t len = sizeof(me);
	int fd;

	fd = socket(addr->sa.sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return src;
	if (!connect(fd, &addr->sa, km_addr_len(addr)) &&
	    !getsockname(fd, &me.sa, &len)) {
		if (me.sa.sa_family == AF_INET6)
			memcpy(src.v6, &me.in6.sin6_addr, sizeof(src));
		else
			src.v4 = me.in.sin_addr.s_addr;
	}
	close(fd);
	return src;
}

/*
 * KM_BE_F_OWES, ours to set (include/kmagent.h): the programs leave the
 * backend's slots to us while it owes writes or joins slots.  Pushes are
 * serialized, each with the state as of its own time, so that the last
 * one the kernel gets is never older than a debt.  km_kb_owes: what the
 * kernel was told last.
 */
static pthread_mutex_t km_kb_push_lock = PTHREAD_MUTEX_INITIALIZER;
/* set by the programs, cleared by a state or flags change only */
#define KM_BE_F_KERNEL (KM_BE_F_REFUSED | KM_BE_F_SILENT)
static bool km_kb_owes[KM_MAX_BACKENDS];

/*
 * A down backend gets nothing from the programs: its debts change nothing
 * there.  A warming one gets writes, and may be a slot's first replica,
 * whose reply the programs would answer a delete with.
 */
static bool km_kbpf_owes(const struct km_backend_info *b)
{
	enum km_backend_state st =
		__atomic_load_n(&b->kb.state, __ATOMIC_RELAXED);

	return st != KM_BE_DOWN &&
	       (st == KM_BE_WARMING || !km_journal_settled(b->id) ||
		__atomic_load_n(&b->has_joining, __ATOMIC_RELAXED) ||
		__atomic_load_n(&b->leaving_unread, __ATOMIC_RELAXED));
}

/* b's entry, with keep's flags of the kernel's entry (set by the programs) */
static void km_kbpf_push_keeping(const struct km_backend_info *b, __u8 keep)
{
	union km_ip src = km_kbpf_src_towards(&b->addr);
	struct km_backend kb, cur;
	bool owes;
	int err;

	pthread_mutex_lock(&km_kb_push_lock);
	/* a debt noted from here on finds false and pushes again */
	__atomic_store_n(&km_kb_owes[b->id], false, __ATOMIC_SEQ_CST);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	owes = km_kbpf_owes(b);
	kb = b->kb;
	if (owes)
		kb.flags |= KM_BE_F_OWES;
	if (keep && !km_bpf_get_backend(km_kb, b->id, &cur))
		kb.flags |= cur.flags & keep;
	err = km_bpf_set_backend(km_kb, b->id, &kb);
	if (!err && owes)
		__atomic_store_n(&km_kb_owes[b->id], true, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&km_kb_push_lock);
	if (!err)
		err = km_bpf_set_backend_src(km_kb, b->id, &src);
	if (err)
		km_warn("kernel path: backend %s: %s\n", b->name,
			strerror(-err));
}

static void km_kbpf_push_backend(const struct km_backend_info *b)
{
	km_kbpf_push_keeping(b, 0);
}

void km_kbpf_repush(__u8 id, __u8 keep)
{
	if (km_kb && id && id < KM_MAX_BACKENDS && km_d.be[id].id)
		km_kbpf_push_keeping(&km_d.be[id], keep);
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

/*
 * A debt was noted (journal.h, km_journal_on_owing), on the data path:
 * a syscall only when the kernel was not told already.  The fences pair
 * with km_kbpf_push_backend's: either it sees the debt, or this sees its
 * false and pushes after it.
 */
static void km_kbpf_on_owing(__u8 id)
{
	if (!km_kb || !id || id >= KM_MAX_BACKENDS)
		return;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n(&km_kb_owes[id], __ATOMIC_SEQ_CST))
		return;
	if (km_d.be[id].id)
		km_kbpf_push_keeping(&km_d.be[id], KM_BE_F_KERNEL);
}

/* Debts settled and joins done since: the kernel serves the slots again. */
static void km_kbpf_check_owes(void)
{
	unsigned int id;

	for (id = 1; id < KM_MAX_BACKENDS; id++)
		if (km_d.be[id].id &&
		    __atomic_load_n(&km_kb_owes[id], __ATOMIC_RELAXED) &&
		    !km_kbpf_owes(&km_d.be[id]))
			km_kbpf_push_keeping(&km_d.be[id], KM_BE_F_KERNEL);
}

/*
 * kmagentd alive: KM_BE_F_OWES holds until then (km_config).  Renewed
 * each second; a frozen or killed daemon's lapses within 2 s.
 */
static int km_kbpf_heartbeat(__u64 until_ns)
{
	struct km_config kc;
	int err;

	err = km_bpf_get_config(km_kb, &kc);
	if (err)
		return err;
	kc.daemon_until_ns = until_ns;
	return km_bpf_set_config(km_kb, &kc);
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
 * A kernel request's reply is late: a failure for health?  A lost datagram
 * is a timeout too: at most one a second per backend is passed on, so that
 * a few UDP losses between two probes do not take a healthy backend down
 * (a dead one keeps timing out, second after second).  And none before the
 * kernel saw a reply of it since we started: its replies may not reach
 * the kernel path at all (routed out of an interface without it).  Taken
 * down for that, it would never be judged for it (km_kbpf_check_backend),
 * and TCP clients would lose it too.
 */
static int km_kbpf_timeout_due(__u8 id)
{
	static long long last_ms[KM_MAX_BACKENDS];
	long long now;

	if (!id || id >= KM_MAX_BACKENDS || !km_noreply[id].answered_ever)
		return 0;
	now = km_now_ms();
	if (last_ms[id] && now - last_ms[id] < 1000)
		return 0;
	last_ms[id] = now;
	return 1;
}

/* A write the kernel cloned around replicas that were not writable. */
static void km_kbpf_write_missed(const struct km_event *ev)
{
	unsigned int i;

	for (i = 0; i < ev->nr_missed && i < KM_MAX_REPLICAS; i++) {
		if (ev->key_len && ev->key_len <= KM_KEY_MAX)
			km_journal_note(ev->missed[i], ev->key, ev->key_len);
		else
			km_journal_set_lost(ev->missed[i],
					    "kernel write without its key");
	}
}

/*
 * Writes a replica missed that the ring buffer had no room to report
 * (kmagentd slow, or not running at all: the kernel then serves alone),
 * counted per replica in km_write_gaps: its journal lacks their keys, so
 * it no longer says all the replica missed.  The counts outlive a killed
 * kmagentd, and the next one takes them at its start.
 */
static void km_kbpf_check_gaps(void)
{
	char name[KM_NAME_MAX];
	unsigned int id;
	bool known;
	__u64 n;

	if (!km_kb_gaps)
		return;
	for (id = 1; id < KM_MAX_BACKENDS; id++) {
		n = __atomic_load_n(&km_kb_gaps[id], __ATOMIC_ACQUIRE);
		if (!n)
			continue;
		pthread_mutex_lock(&km_d.lock);
		known = km_d.be[id].id != 0;
		snprintf(name, sizeof(name), "%s", km_d.be[id].name);
		pthread_mutex_unlock(&km_d.lock);
		if (known) {
			km_warn("kernel path: backend %s: %llu missed writes "
				"not reported (event ring buffer full)\n",
				name, (unsigned long long)n);
			km_journal_set_lost(id, "kernel events lost");
			/* up: refilled now; down: when it is back */
			km_backend_warm_for_replay(id, "kernel events lost");
		}
		/* only now: a count taken is in the journal first */
		__atomic_fetch_sub(&km_kb_gaps[id], n, __ATOMIC_RELEASE);
	}
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
	case KM_EV_WRITE_MISSED:
		km_kbpf_write_missed(ev);
		break;
	case KM_EV_SILENT:
		/* once per silence: the kernel sends it when it sets the flag
		 */
		if (ev->backend && ev->backend < KM_MAX_BACKENDS)
			km_info("kernel path: backend %s: no reply within "
				"%u ms: requests retried on its replicas, "
				"reads skip it for %d ms\n",
				km_d.be[ev->backend].name,
				KM_LIVE(udp_retry_ms), KM_SILENT_HOLD_MS);
		km_kretry_silent(ev->backend);
		if (km_kbpf_timeout_due(ev->backend))
			km_health_passive_failure(ev->backend,
						  "no UDP reply in time");
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

static int km_kbpf_set_bypass_until(__u64 until_ns)
{
	struct km_config kc;
	int err;

	err = km_bpf_get_config(km_kb, &kc);
	if (err)
		return err;
	kc.bypass_until_ns = until_ns;
	return km_bpf_set_config(km_kb, &kc);
}

static const char *const km_bypass_reason_names[KM_BYPASS_REASONS] = {
	[KM_BYPASS_LOST_REPLIES] = "lost_replies",
};

/*
 * Pass every UDP request up to kmagentd for --bypass-hold seconds: the
 * kernel path stays attached, and serves again when the hold is over.
 */
static void km_kbpf_bypass(enum km_bypass_reason r, const char *why)
{
	unsigned int hold_ms = km_d.cfg.bypass_hold_ms;
	int err;

	if (km_kbpf_bypassed())
		return;
	err = km_kbpf_set_bypass_until(km_bpf_coarse_ns() +
				       hold_ms * 1000000ull);
	if (err) {
		km_err("kernel path: cannot pass UDP up (%s): %s\n", why,
		       strerror(-err));
		return;
	}
	pthread_mutex_lock(&km_bp.lock);
	km_bp.until_ms = km_now_ms() + hold_ms;
	snprintf(km_bp.why, sizeof(km_bp.why), "%s", why);
	km_bp.count[r]++;
	pthread_mutex_unlock(&km_bp.lock);
	km_err("kernel path bypassed for %u s: every UDP request goes to "
	       "kmagentd (%s); the kernel serves again after that, and is "
	       "judged again\n",
	       hold_ms / 1000, why);
}

/* The hold is over (the kernel lifted it already): judge afresh. */
static void km_kbpf_check_bypass(void)
{
	unsigned int id;
	int over;

	pthread_mutex_lock(&km_bp.lock);
	over = km_bp.until_ms && km_now_ms() >= km_bp.until_ms;
	if (over)
		km_bp.until_ms = 0;
	pthread_mutex_unlock(&km_bp.lock);
	if (!over)
		return;
	for (id = 1; id < KM_MAX_BACKENDS; id++) {
		km_noreply[id].samples = 0;
		__atomic_store_n(&km_noreply[id].noreply, 0, __ATOMIC_RELAXED);
	}
	km_info("kernel path: bypass over: the kernel serves UDP again\n");
}

int km_kbpf_bypassed(void)
{
	int on;

	pthread_mutex_lock(&km_bp.lock);
	on = km_bp.until_ms && km_now_ms() < km_bp.until_ms;
	pthread_mutex_unlock(&km_bp.lock);
	return on;
}

void km_kbpf_bypass_info(struct km_bypass_info *bi)
{
	long long now = km_now_ms();
	unsigned int r;

	memset(bi, 0, sizeof(*bi));
	pthread_mutex_lock(&km_bp.lock);
	if (km_bp.until_ms > now) {
		bi->active = 1;
		bi->left_ms = km_bp.until_ms - now;
		snprintf(bi->why, sizeof(bi->why), "%s", km_bp.why);
	}
	for (r = 0; r < KM_BYPASS_REASONS; r++) {
		bi->count[r] = km_bp.count[r];
		bi->reason[r] = km_bypass_reason_names[r];
	}
	pthread_mutex_unlock(&km_bp.lock);
}

static void km_kbpf_check_backend(__u8 id)
{
	typeof(km_noreply[0]) *h = &km_noreply[id];
	const struct km_backend_info *b = &km_d.be[id];
	const int last = KM_NOREPLY_WINDOW - 1;
	struct km_be_stats s;

	if (km_bpf_be_stats(km_kb, id, &s))
		return;
#define KM_NR_PUSH(a, v)                                                       \
	do {                                                                   \
		memmove(h->a, h->a + 1, last * sizeof(h->a[0]));               \
		h->a[last] = (v);                                              \
	} while (0)
	KM_NR_PUSH(sent, s.gets + s.writes);
	KM_NR_PUSH(answered, s.hits + s.misses + s.write_replies + s.capped);
	KM_NR_PUSH(probes_ok, KM_LOAD(b->c.probes_ok));
	KM_NR_PUSH(probes_failed, KM_LOAD(b->c.probes_failed));
#undef KM_NR_PUSH
	if (__atomic_load_n(&b->kb.state, __ATOMIC_RELAXED) == KM_BE_UP)
		h->up_samples++;
	else
		h->up_samples = 0;
	if (!h->samples && !h->answered_ever)
		h->answered_first = h->answered[last];
	else if (h->answered[last] != h->answered_first)
		h->answered_ever = true;
	if (++h->samples < KM_NOREPLY_WINDOW)
		return;
	if (h->answered[last] != h->answered[last - 1]) {
		if (h->noreply)
			km_info("kernel path: backend %s answers again\n",
				km_d.be[id].name);
		__atomic_store_n(&h->noreply, 0, __ATOMIC_RELAXED);
		return;
	}
	/* sent a second or more ago: their replies are due by now */
	if (h->noreply || h->up_samples < KM_NOREPLY_WINDOW ||
	    h->probes_ok[last] == h->probes_ok[0] ||
	    h->probes_failed[last] != h->probes_failed[0] ||
	    h->sent[last - 1] - h->sent[0] < KM_NOREPLY_MIN_SENT ||
	    h->answered[last] != h->answered[0])
		return;
	__atomic_store_n(&h->noreply, 1, __ATOMIC_RELAXED);
	km_err("kernel path: backend %s: %llu requests sent in the kernel, "
	       "no reply in %d s, while it answers probes: its replies do "
	       "not come back through an interface with the kernel path "
	       "(add -I for the interface towards it?)\n",
	       b->name, (unsigned long long)(h->sent[last] - h->sent[0]),
	       KM_NOREPLY_WINDOW);
	km_kbpf_bypass(KM_BYPASS_LOST_REPLIES,
		       "a backend's kernel replies are lost");
}

static void km_kbpf_check_replies(void)
{
	unsigned int id;

	for (id = 1; id < KM_MAX_BACKENDS; id++)
		if (km_d.be[id].id)
			km_kbpf_check_backend(id);
}

int km_kbpf_backend_noreply(__u8 id)
{
	return id < KM_MAX_BACKENDS &&
	       __atomic_load_n(&km_noreply[id].noreply, __ATOMIC_RELAXED);
}

static void *km_kbpf_events(void *arg)
{
	long long next = km_now_ms() + 1000;
	int err;

	(void)arg;
	while (!km_d.stop && !km_kb_stop) {
		err = km_bpf_poll(km_kb, 250);
		if (err < 0) {
			km_warn("kernel path: events: %s\n", strerror(-err));
			break;
		}
		km_kbpf_check_gaps();
		km_kbpf_check_owes();
		if (km_now_ms() >= next) {
			err = km_kbpf_heartbeat(km_bpf_coarse_ns() +
						2000000000ull);
			if (err)
				km_warn("kernel path: heartbeat: %s\n",
					strerror(-err));
			km_kbpf_check_bypass();
			km_kbpf_check_replies();
			next += 1000;
		}
	}
	return NULL;
}

/* The name of the interface holding local address addr, or NULL. */
static const char *km_iface_of(__be32 addr, char *name, size_t len)
{
	struct ifaddrs *ifa, *i;
	const char *ret = NULL;

	if (getifaddrs(&ifa))
		return NULL;
	for (i = ifa; i && !ret; i = i->ifa_next) {
		if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
		    ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr ==
			    addr) {
			snprintf(name, len, "%s", i->ifa_name);
			ret = name;
		}
	}
	freeifaddrs(ifa);
	return ret;
}

/*
 * At start: a backend the routing table reaches through an interface
 * without the kernel path answers there, past XDP (found by the source
 * address the route picks; a local backend answers through lo and tc
 * egress catches it).  Warned, not attached on our own: XDP on a NIC the
 * operator did not name changes that NIC's data path for everyone.
 */
static void km_kbpf_check_routes(const struct km_cfg *cfg)
{
	char name[IF_NAMESIZE];
	const char *ifname;
	unsigned int id, k;
	__be32 src;

	for (id = 1; id < KM_MAX_BACKENDS; id++) {
		const struct km_backend_info *b = &km_d.be[id];

		/* IPv6: not checked (km_iface_of knows IPv4 only) */
		if (!b->id || b->addr.sa.sa_family != AF_INET)
			continue;
		src = km_kbpf_src_towards(&b->addr).v4;
		if (!src || src == b->addr.in.sin_addr.s_addr)
			continue;
		ifname = km_iface_of(src, name, sizeof(name));
		if (!ifname || !strcmp(ifname, "lo"))
			continue;
		for (k = 0; k < cfg->nr_ifaces; k++)
			if (!strcmp(cfg->ifaces[k], ifname))
				break;
		if (k == cfg->nr_ifaces)
			km_warn("kernel path: backend %s is reached through "
				"%s, which has no kernel path: its UDP "
				"replies will be lost (add -I %s)\n",
				b->name, ifname, ifname);
	}
}

/* One --allow network into km_allow or km_allow6. */
static int km_kbpf_allow(const struct km_cfg_allow *a)
{
	if (a->family == AF_INET6)
		return km_bpf_allow6_add(km_kb, &a->addr6, a->prefix);
	return km_bpf_allow_add(km_kb, a->addr.s_addr, a->prefix);
}

/* The clients allowed by default: as the daemon's UDP socket allows. */
static int km_kbpf_default_allow(const struct km_cfg *cfg)
{
	struct km_cfg_allow a[KM_MAX_ALLOW];
	unsigned int i, n = km_allow_default(cfg, a, KM_MAX_ALLOW);
	int err = 0;

	for (i = 0; !err && i < n; i++)
		err = km_kbpf_allow(&a[i]);
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
	/* -l :: serves every address, as 0.0.0.0 */
	kc.proxy_addr = cfg->listen_addr.sa.sa_family == AF_INET
				? cfg->listen_addr.in.sin_addr.s_addr
				: 0;
	/* -l ::: both families, every address; -l ADDR6: that one only */
	kc.serve_v6 = KM_V6_NONE;
	memset(&kc.proxy_addr6, 0, sizeof(kc.proxy_addr6));
	if (cfg->listen_addr.sa.sa_family == AF_INET6)
		kc.serve_v6 = km_addr_is_any(&cfg->listen_addr) ? KM_V6_ALL
								: KM_V6_ONLY;
	if (kc.serve_v6 == KM_V6_ONLY)
		memcpy(kc.proxy_addr6.v6, &cfg->listen_addr.in6.sin6_addr,
		       sizeof(kc.proxy_addr6));
	kc.write_policy = cfg->write_policy;
	/* a previous run's bypass (km_kbpf_bypass): judged again from here */
	kc.bypass_until_ns = 0;
	kc.daemon_until_ns = km_bpf_coarse_ns() + 2000000000ull;
	kc.udp_reply_max = km_cfg_udp_reply_max(cfg);
	if (cfg->timeout_ms > 0)
		kc.pending_timeout_ns = cfg->timeout_ms * 1000000ull;
	err = km_bpf_set_config(km_kb, &kc);
	for (i = 0; !err && i < cfg->nr_allow; i++)
		err = km_kbpf_allow(&cfg->allow[i]);
	if (!err && !cfg->nr_allow)
		err = km_kbpf_default_allow(cfg);
	return err;
}

static int km_kbpf_map_gaps(void)
{
	int fd = km_bpf_map_fd(km_kb, KM_MAP_WRITE_GAPS);
	void *m;

	if (fd < 0)
		return fd;
	m = mmap(NULL, KM_MAX_BACKENDS * sizeof(__u64), PROT_READ | PROT_WRITE,
		 MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		return -errno;
	km_kb_gaps = m;
	return 0;
}

int km_kbpf_start(const struct km_cfg *cfg)
{
	struct km_bpf_opts o = {.pin_root = cfg->pin_root,
				.service_port = km_cfg_udp_port(cfg),
				.verbose = cfg->verbose};
	unsigned int i;
	int err;

	if (!cfg->nr_ifaces)
		return 0;
	for (i = 0; i < cfg->nr_backends; i++)
		if (cfg->backends[i].addr.sa.sa_family == AF_INET6)
			o.ipv6 = 1;
	/* a missing interface fails the start before anything is attached */
	for (i = 0; i < cfg->nr_ifaces; i++) {
		if (!if_nametoindex(cfg->ifaces[i])) {
			err = -errno;
			km_err("interface %s: %s\n", cfg->ifaces[i],
			       strerror(errno));
			return err;
		}
	}
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
		km_journal_on_owing(km_kbpf_on_owing);
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
		km_netdev_check(cfg->ifaces[i]);
	}
	km_kbpf_check_routes(cfg);
	err = km_bpf_set_event_handler(km_kb, km_kbpf_on_event, NULL);
	if (!err)
		err = km_kbpf_map_gaps();
	if (err)
		goto fail;
	/* before the journal is loaded and anything replays from it */
	km_kbpf_check_gaps();
	err = pthread_create(&km_kb_thread, NULL, km_kbpf_events, NULL);
	if (err) {
		err = -err;
		goto fail;
	}
	km_kb_thread_up = 1;
	err = km_kretry_start(km_kb, cfg, km_kbpf_repush);
	if (err) {
		km_err("kernel path: retry thread: %s\n", strerror(-err));
		return err;
	}
	return 0;
fail:
	/* hooks stay registered: the daemon exits on this error, and
	 * km_kbpf_abort leaves them a handle that is not attached */
	km_bpf_undo(km_kb);
	return err;
}

/* Leave everything attached and pinned: traffic flows without us. */
void km_kbpf_stop(void)
{
	km_journal_on_owing(NULL);
	km_kb_stop = 1;
	km_kretry_stop();
	if (km_kb_thread_up) {
		pthread_join(km_kb_thread, NULL);
		km_kb_thread_up = 0;
	}
	if (km_kb_gaps)
		munmap(km_kb_gaps, KM_MAX_BACKENDS * sizeof(__u64));
	km_kb_gaps = NULL;
	/* the programs serve alone now: nobody is there to take UDP */
	if (km_kb && km_kbpf_bypassed() && km_kbpf_set_bypass_until(0))
		km_warn("kernel path: cannot lift the bypass at exit\n");
	if (km_kb && km_kbpf_heartbeat(0))
		km_warn("kernel path: cannot stop the heartbeat at exit\n");
}

/*
 * The start failed after the kernel path was attached (control socket or
 * metrics port in use...): leave the host as it was before this start.
 * What was adopted from a previous run stays: it served before us.
 */
void km_kbpf_abort(void)
{
	km_kbpf_stop();
	if (km_kb)
		km_bpf_undo(km_kb);
}

struct km_bpf *km_kbpf_handle(void)
{
	return km_kb_thread_up ? km_kb : NULL;
}
