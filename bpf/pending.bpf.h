/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The pending table: one entry per request in flight, indexed by the
 * request id the proxy puts in the frame header.  An entry is claimed by a
 * compare-and-swap of its timestamp (free or stale -> now), so a live entry
 * is never overwritten; a stale one is reclaimed and counted as a timeout
 * of the backend(s) that did not answer, which feeds passive health.
 */
#ifndef KM_PENDING_BPF_H
#define KM_PENDING_BPF_H

#include "kmagent.h"
#include "parse.bpf.h"
#include "mcproto.bpf.h"
#include "maps.bpf.h"

/* Random probes before giving up: a table this full is overloaded anyway. */
#define KM_CLAIM_PROBES 4

/* A zeroed event on km_events to fill and submit, or NULL (counted). */
static __always_inline struct km_event *km_event_new(__u32 type, __u32 slot,
						     struct km_stats *st)
{
	struct km_event *ev;

	ev = bpf_ringbuf_reserve(&km_events, sizeof(*ev), 0);
	if (!ev) {
		st->events_lost++;
		return NULL;
	}
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->type = type;
	ev->slot = slot;
	return ev;
}

/* Tell the daemon that backend be failed a request (key in ring slot). */
static __always_inline void km_event_failed(__u32 type, __u8 be, __u32 slot,
					    struct km_stats *st)
{
	struct km_event *ev = km_event_new(type, slot, st);

	if (!ev)
		return;
	ev->backend = be;
	bpf_ringbuf_submit(ev, 0);
}

static __always_inline void km_event_timeout(__u8 be, __u32 slot,
					     struct km_stats *st)
{
	struct km_be_stats *bst = km_be_stats_get(be);

	if (bst)
		bst->timeouts++;
	km_event_failed(KM_EV_TIMEOUT, be, slot, st);
}

/*
 * A write's replica that never answered may have missed it: kmagentd
 * journals the key for it (or, without the key, its whole journal is
 * lost).
 */
static __always_inline void km_event_write_silent(const struct km_pending *e,
						  __u8 be, struct km_stats *st)
{
	struct km_event *ev = km_event_new(KM_EV_WRITE_MISSED, e->slot, st);

	if (!ev) {
		km_write_gap(be);
		return;
	}
	ev->nr_missed = 1;
	ev->missed[0] = be;
	ev->key_len = e->wkey_len;
	if (bpf_probe_read_kernel(ev->key, KM_WKEY_MAX, e->wkey))
		ev->key_len = 0;
	bpf_ringbuf_submit(ev, 0);
}

/*
 * A stale entry we now own: charge its timeout to who did not answer.
 * Global, so verified once rather than on every path of its callers.
 */
__attribute__((noinline)) int km_expire(struct km_pending *e,
					struct km_stats *st)
{
	int j;

	if (!e || !st)
		return 0;

	st->timeouts++;
	if (e->kind != KM_PK_WRITE) {
		km_event_timeout(e->cur_be, e->slot, st);
		return 0;
	}
	for (j = 0; j < KM_MAX_REPLICAS; j++) {
		if (j >= e->nr_wr)
			break;
		if (!e->wr_len[j]) {
			km_event_timeout(e->wr_be[j], e->slot, st);
			km_event_write_silent(e, e->wr_be[j], st);
		}
	}
	return 0;
}

/*
 * Each CPU claims entries from its own window of the table, in order, so
 * that in steady state a few hundred entries are reused while still hot in
 * its cache (random ones over 27 MB miss every time); when the window is
 * busy, random entries anywhere.  Windows overlap past 128 CPUs: the
 * compare-and-swap keeps that safe.
 */
#define KM_CLAIM_WINDOW 512

static __always_inline struct km_pending *
km_try_claim(__u32 idx, __u64 now, __u64 timeout, struct km_stats *st)
{
	struct km_pending *e;
	__u64 old;

	if (idx == KM_RID_NOREPLY)
		return NULL; /* noreply writes' request id: never an entry */
	e = bpf_map_lookup_elem(&km_pending, &idx);
	if (!e)
		return NULL;
	old = e->ts;
	/* signed: a stamp from a finer clock may be a tick ahead of ours */
	if (old && (__s64)(now - old) < (__s64)timeout)
		return NULL;
	if (__sync_val_compare_and_swap(&e->ts, old, now) != old)
		return NULL; /* another CPU took it */
	if (old && e->kind != KM_PK_FREE && e->kind != KM_PK_DONE) {
		/*
		 * A request that timed out: charge it, then keep the entry
		 * unused for one more timeout (kind FREE, fresh ts), so that
		 * a late reply to it finds no request to be taken for.
		 */
		km_expire(e, st);
		e->kind = KM_PK_FREE;
		return NULL;
	}
	return e;
}

static __always_inline struct km_pending *km_claim(const struct km_config *cfg,
						   struct km_stats *st,
						   __u64 now, __u32 *idx_out)
{
	__u64 timeout = cfg->pending_timeout_ns ?: KM_PENDING_TIMEOUT_NS;
	__u32 zero = 0, base, idx;
	struct km_cursor *cur;
	struct km_pending *e;
	int i;

	cur = bpf_map_lookup_elem(&km_cursor, &zero);
	base = bpf_get_smp_processor_id() * KM_CLAIM_WINDOW;
	for (i = 0; cur && i < KM_CLAIM_PROBES; i++) {
		idx = (base + (cur->next++ & (KM_CLAIM_WINDOW - 1))) &
		      (KM_PENDING_SLOTS - 1);
		e = km_try_claim(idx, now, timeout, st);
		if (e) {
			*idx_out = idx;
			return e;
		}
	}
	for (i = 0; i < KM_CLAIM_PROBES; i++) {
		idx = bpf_get_prandom_u32() & (KM_PENDING_SLOTS - 1);
		e = km_try_claim(idx, now, timeout, st);
		if (e) {
			*idx_out = idx;
			return e;
		}
	}
	st->pending_full++;
	return NULL;
}

/* Free the entry unless someone reclaimed it since we looked at it. */
static __always_inline void km_release(struct km_pending *e, __u64 ts)
{
	__sync_val_compare_and_swap(&e->ts, ts, 0);
}

/*
 * Keep an answered entry unused for one more timeout (KM_PK_DONE), unless
 * someone reclaimed it since: a backend the request was retried away from
 * may still answer, and its reply must find no new request to be taken
 * for.
 */
static __always_inline void km_quarantine(struct km_pending *e, __u64 ts)
{
	if (__sync_val_compare_and_swap(&e->ts, ts,
					bpf_ktime_get_coarse_ns()) == ts)
		e->kind = KM_PK_DONE;
}

/* A read answered: free its entry, or quarantine it after a retry. */
static __always_inline void km_finish(struct km_pending *e, __u64 ts)
{
	if (e->retried)
		km_quarantine(e, ts);
	else
		km_release(e, ts);
}

/* The entry a backend's reply p answers: by its request id, *idx. */
static __always_inline struct km_pending *km_pending_of(const struct km_pkt *p,
							__u32 *idx)
{
	*idx = bpf_ntohs(p->frame->rid);
	return bpf_map_lookup_elem(&km_pending, idx);
}

/* ---- retry deadlines (KM_MAP_DEADLINE) ---- */

static __always_inline __u64 *km_deadline_get(__u32 idx)
{
	return bpf_map_lookup_elem(&km_deadline, &idx);
}

/* Request idx went to backend be (0: a write) at now: arm its deadline. */
static __always_inline void km_arm(__u32 idx, __u64 now, __u8 be)
{
	__u64 *dl = km_deadline_get(idx);

	if (dl)
		*(volatile __u64 *)dl = km_dl_word(now, be);
}

/* Nothing left to retry for request idx (a write fully answered). */
static __always_inline void km_disarm(__u32 idx)
{
	__u64 *dl = km_deadline_get(idx);

	if (dl)
		*(volatile __u64 *)dl = 0;
}

/*
 * An answer (reply, miss, ICMP error) from backend id to the read in entry
 * e, request id idx: is it ours to act on?  0 when it is, the deadline
 * then disarmed; -1 when the request has moved on from id (km_xdp_retry
 * sent it to the next replica): a late reply, to drop.  The deadline word
 * is the one both sides compare-and-swap, so that exactly one of the
 * answer and the retry wins.
 */
static __always_inline int km_take(struct km_pending *e, __u32 idx, __u8 id)
{
	__u64 *dl = km_deadline_get(idx), w;

	if (dl) {
		w = *(volatile __u64 *)dl;
		if (w && (w & KM_DL_BE) != id)
			return -1;
		/* lost to a retry, or to another datagram of this reply (0) */
		if (w && __sync_val_compare_and_swap(dl, w, 0) != w &&
		    *(volatile __u64 *)dl)
			return -1;
	}
	/* a retry that won has switched cur_be before its request left */
	return e->cur_be == id ? 0 : -1;
}

/*
 * Zero the bytes after a request of n stored in e, up to the next multiple
 * of 4: bpf_csum_diff sums whole words, and zeros add nothing.
 */
static __always_inline void km_req_pad(struct km_pending *e, __u32 n)
{
	__u32 i, j, end = (n + 3) & ~3u;

	for (i = 0; i < 3; i++) {
		j = n + i;
		km_barrier_var(j); /* the verifier must see the bound */
		if (j < end && j < KM_REQ_MAX)
			e->req[j] = 0;
	}
}

/*
 * The one's complement sum of e's request, for the checksum of a fallback
 * datagram that carries it: computed only then, the common case (a hit)
 * never pays for it.
 */
static __always_inline int km_req_sum(const struct km_pending *e, __u32 *sum)
{
	__u32 len = (e->req_len + 3) & ~3u;
	long rc;

	km_barrier_var(len);
	if (len < 4 || len > KM_REQ_MAX)
		return -1;
	rc = bpf_csum_diff(NULL, 0, (void *)e->req, len, 0);
	if (rc < 0)
		return -1;
	*sum = rc;
	return 0;
}

static __always_inline int km_tried(const struct km_pending *e, __u8 id)
{
	int i;

	for (i = 0; i < KM_MAX_REPLICAS; i++) {
		if (i >= e->nr_tried)
			break;
		if (e->tried[i] == id)
			return 1;
	}
	return 0;
}

/*
 * The backends of tried[] before the current one that answered with a
 * miss, as bits: the others were retried away from (e->retried), which
 * says nothing of what they hold.
 */
static __always_inline __u32 km_missed(const struct km_pending *e)
{
	__u32 n = e->nr_tried - 1;

	if (n > KM_MAX_REPLICAS)
		n = KM_MAX_REPLICAS;
	return ((1u << n) - 1) & ~(__u32)e->retried;
}

/* Read-repair: the key was found after backends in tried[] missed it. */
static __always_inline void km_event_hit(const struct km_pending *e,
					 __u32 missed, struct km_stats *st)
{
	struct km_event *ev = km_event_new(KM_EV_FALLBACK_HIT, e->slot, st);
	int i, n = 0;

	if (!ev)
		return;
	ev->backend = e->cur_be;
	for (i = 0; i < KM_MAX_REPLICAS; i++)
		if ((missed & (1u << i)) && n < KM_MAX_REPLICAS)
			ev->missed[n++] = e->tried[i];
	ev->nr_missed = n;
	ev->key_len = e->key_len;
	if (bpf_probe_read_kernel(ev->key, sizeof(ev->key),
				  e->req + KM_READ_KEY_OFF(e->key_off)))
		ev->key_len = 0;
	bpf_ringbuf_submit(ev, 0);
}

/* A claimed entry for p's request r: who gets the reply, about what key. */
static __always_inline void km_pending_open(struct km_pending *e,
					    const struct km_pkt *p,
					    const union km_ip *proxy,
					    __u32 ifindex,
					    const struct km_parsed_req *r)
{
	km_pkt_saddr(p, &e->client_addr);
	e->proxy_addr = *proxy;
	e->family = p->family;
	e->client_port = p->udp->source;
	e->client_rid = p->frame->rid;
	km_mac_copy(e->client_mac, p->eth->h_source);
	km_mac_copy(e->proxy_mac, p->eth->h_dest);
	e->vlan_tci = p->vlan_tci;
	e->ifindex = ifindex;
	e->slot = km_hash_slot(r->hash);
	e->key_off = r->key_off;
	e->key_len = r->key_len;
	e->rx_dgrams = 0;
	e->wr_got = 0;
}

#endif /* KM_PENDING_BPF_H */
