/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The tc ingress side: a single-datagram write is cloned with
 * bpf_clone_redirect to every writable replica of its key, each clone
 * NATed like a read; the original is dropped.  XDP aggregates the replies
 * (km_xdp_write_reply).  XDP cannot clone, hence tc.
 */
#ifndef KM_TC_CLONE_BPF_H
#define KM_TC_CLONE_BPF_H

#include <linux/pkt_cls.h>
#include "parse.bpf.h"
#include "mcproto.bpf.h"
#include "maps.bpf.h"
#include "pending.bpf.h"
#include "nat.bpf.h"
#include "xdp_rx.bpf.h"

#define KM_L4_CSUM_FLAGS (BPF_F_MARK_MANGLED_0)

/* km_tc_write: the datagram goes up the stack to a local replica. */
#define KM_TC_UP_LOCAL 100

/* km_tc_nat_l3l4 and km_tc_nat read these fields as runs of bytes */
#define KM_NEXT_TO(t, a, b, n)                                                 \
	(__builtin_offsetof(t, b) == __builtin_offsetof(t, a) + (n))
_Static_assert(KM_NEXT_TO(struct km_tc_hdr, saddr, daddr, 16) &&
		       KM_NEXT_TO(struct km_tc_hdr, sport, dport, 2) &&
		       KM_NEXT_TO(struct km_tc_hdr, dport, rid, 2),
	       "km_tc_hdr: saddr daddr, sport dport rid adjacent");
_Static_assert(KM_NEXT_TO(struct km_hdrvals, dmac, smac, ETH_ALEN) &&
		       KM_NEXT_TO(struct km_hdrvals, saddr, daddr, 16) &&
		       KM_NEXT_TO(struct km_hdrvals, sport, dport, 2) &&
		       KM_NEXT_TO(struct km_hdrvals, dport, rid, 2),
	       "km_hdrvals: dmac smac, saddr daddr, sport dport rid adjacent");
_Static_assert(KM_NEXT_TO(struct ipv6hdr, saddr, daddr, 16),
	       "ipv6hdr: saddr daddr adjacent");

/* p's header fields, as km_tc_nat starts from them. */
static __always_inline void km_tc_hdr_of(const struct km_pkt *p,
					 struct km_tc_hdr *h)
{
	h->family = p->family;
	h->ip_off = p->l2_len;
	if (p->family == KM_FAM_V6) {
		h->udp_off = p->l2_len + sizeof(struct ipv6hdr);
		__builtin_memcpy(&h->saddr, &p->ip6->saddr, 32);
	} else {
		h->udp_off = p->l2_len + sizeof(struct iphdr);
		__builtin_memset(&h->saddr, 0, 32);
		h->saddr.v4 = p->ip->saddr;
		h->daddr.v4 = p->ip->daddr;
	}
	h->sport = p->udp->source;
	h->dport = p->udp->dest;
	h->rid = p->frame->rid;
}

/*
 * The addresses, from h's to v's: IPv4 has a header checksum and its two
 * addresses apart in v (km_ip's); IPv6 only the pseudo-header's share.
 */
static __always_inline int km_tc_nat_l3(struct __sk_buff *skb,
					struct km_tc_hdr *h,
					const struct km_hdrvals *v)
{
	__u32 l3c = h->ip_off + offsetof(struct iphdr, check);
	__u32 l4c = h->udp_off + offsetof(struct udphdr, check);
	__be32 a4[2] = {v->saddr.v4, v->daddr.v4};
	__u32 d;

	if (h->family == KM_FAM_V6) {
		d = km_csum_delta(&h->saddr, &v->saddr, 32);
		return bpf_l4_csum_replace(skb, l4c, 0, d,
					   KM_L4_CSUM_FLAGS |
						   BPF_F_PSEUDO_HDR) ||
		       bpf_skb_store_bytes(
			       skb, h->ip_off + offsetof(struct ipv6hdr, saddr),
			       &v->saddr, 32, 0);
	}
	d = km_csum_delta(&h->saddr.v4, &v->saddr.v4, 4) +
	    km_csum_delta(&h->daddr.v4, &v->daddr.v4, 4);
	return bpf_l3_csum_replace(skb, l3c, 0, d, 0) ||
	       bpf_l4_csum_replace(skb, l4c, 0, d,
				   KM_L4_CSUM_FLAGS | BPF_F_PSEUDO_HDR) ||
	       bpf_skb_store_bytes(skb,
				   h->ip_off + offsetof(struct iphdr, saddr),
				   a4, 8, 0);
}

/*
 * Rewrite addresses, ports and request id from h's values to v's: a
 * checksum update and a store per group of fields that changes (the
 * addresses; ports and request id), instead of per field.
 */
static __always_inline int km_tc_nat_l3l4(struct __sk_buff *skb,
					  struct km_tc_hdr *h,
					  const struct km_hdrvals *v)
{
	__u32 l4c = h->udp_off + offsetof(struct udphdr, check);
	__u32 d;

	if (!km_ip_eq(&h->saddr, &v->saddr) ||
	    !km_ip_eq(&h->daddr, &v->daddr)) {
		if (km_tc_nat_l3(skb, h, v))
			return -1;
	}
	if (h->sport != v->sport || h->dport != v->dport || h->rid != v->rid) {
		d = km_csum_delta(&h->sport, &v->sport, 6);
		if (bpf_l4_csum_replace(skb, l4c, 0, d, KM_L4_CSUM_FLAGS) ||
		    bpf_skb_store_bytes(skb, h->udp_off, &v->sport, 4, 0) ||
		    bpf_skb_store_bytes(skb, h->udp_off + sizeof(struct udphdr),
					&v->rid, 2, 0))
			return -1;
	}
	h->saddr = v->saddr;
	h->daddr = v->daddr;
	h->sport = v->sport;
	h->dport = v->dport;
	h->rid = v->rid;
	return 0;
}

/*
 * Make skb a single datagram of len bytes of src (a map value whose one's
 * complement sum is sum), with p's IP header and v's addresses, ports and
 * request id; MACs untouched.  len and l2 (p's) are checked by the caller.
 * The checksums are computed from scratch, as km_xdp_emit does.
 */
static __always_inline int km_tc_set_payload6(struct __sk_buff *skb,
					      const struct km_pkt *p, __u32 l2,
					      const struct km_hdrvals *v,
					      const char *src, __u32 len,
					      __u32 sum)
{
	struct {
		struct ipv6hdr ip;
		struct udphdr udp;
		struct km_udp_frame f;
	} h;

	if (!p->ip6)
		return -1;
	h.ip = *p->ip6;
	h.ip.payload_len = bpf_htons(sizeof(h) - sizeof(h.ip) + len);
	__builtin_memcpy(&h.ip.saddr, &v->saddr, 32);
	h.udp.source = v->sport;
	h.udp.dest = v->dport;
	h.udp.len = h.ip.payload_len;
	h.udp.check = 0;
	h.f.rid = v->rid;
	h.f.seq = 0;
	h.f.total = bpf_htons(1);
	h.f.reserved = 0;
	h.udp.check = km_udp_csum_full(&v->saddr, &v->daddr, &h.udp, &h.f, sum);
	if (bpf_skb_change_tail(skb, l2 + sizeof(h) + len, 0) ||
	    bpf_skb_store_bytes(skb, l2 + sizeof(h), src, len, 0) ||
	    bpf_skb_store_bytes(skb, l2, &h, sizeof(h), 0))
		return -1;
	return 0;
}

static __always_inline int km_tc_set_payload(struct __sk_buff *skb,
					     const struct km_pkt *p, __u32 l2,
					     const struct km_hdrvals *v,
					     const char *src, __u32 len,
					     __u32 sum)
{
	struct {
		struct iphdr ip;
		struct udphdr udp;
		struct km_udp_frame f;
	} h;

	if (p->family == KM_FAM_V6)
		return km_tc_set_payload6(skb, p, l2, v, src, len, sum);
	if (!p->ip)
		return -1;
	h.ip = *p->ip;
	h.ip.tot_len = bpf_htons(sizeof(h) + len);
	h.ip.saddr = v->saddr.v4;
	h.ip.daddr = v->daddr.v4;
	h.ip.check = km_ip_csum(&h.ip);
	h.udp.source = v->sport;
	h.udp.dest = v->dport;
	h.udp.len = bpf_htons(sizeof(h) - sizeof(h.ip) + len);
	h.udp.check = 0;
	h.f.rid = v->rid;
	h.f.seq = 0;
	h.f.total = bpf_htons(1);
	h.f.reserved = 0;
	h.udp.check = km_udp_csum_full(&v->saddr, &v->daddr, &h.udp, &h.f, sum);
	if (bpf_skb_change_tail(skb, l2 + sizeof(h) + len, 0) ||
	    bpf_skb_store_bytes(skb, l2 + sizeof(h), src, len, 0) ||
	    bpf_skb_store_bytes(skb, l2, &h, sizeof(h), 0))
		return -1;
	return 0;
}

/* Rewrite the skb's headers (MACs too) from h's current values to v's. */
static __always_inline int km_tc_nat(struct __sk_buff *skb, struct km_tc_hdr *h,
				     const struct km_hdrvals *v)
{
	/* dmac and smac: in the Ethernet header's order */
	if (bpf_skb_store_bytes(skb, 0, (void *)v->dmac, 2 * ETH_ALEN, 0))
		return -1;
	return km_tc_nat_l3l4(skb, h, v);
}

/*
 * The first of tg's k targets owes writes: swap it with the first that
 * does not (a write's answer is its first target's reply).  Returns where
 * the local target (index local) is now.  Global: verified once, apart
 * from km_tc_targets' loop.
 */
__attribute__((noinline)) int
km_tc_targets_owes_not_first(struct km_targets *tg, int k, int local)
{
	const struct km_config *cfg = km_config_get();
	struct km_backend *be;
	__u8 id;
	int j;

	if (!tg || !km_daemon_alive(cfg))
		return local;
	be = km_backend_get(tg->ids[0]);
	if (!be || !(be->flags & KM_BE_F_OWES))
		return local;
	for (j = 1; j < KM_MAX_REPLICAS; j++) {
		if (j >= k)
			return local;
		be = km_backend_get(tg->ids[j]);
		if (be && !(be->flags & KM_BE_F_OWES))
			break;
	}
	if (j >= KM_MAX_REPLICAS)
		return local;
	__builtin_memcpy(&tg->swap, &tg->tv[0], sizeof(tg->swap));
	__builtin_memcpy(&tg->tv[0], &tg->tv[j], sizeof(tg->swap));
	__builtin_memcpy(&tg->tv[j], &tg->swap, sizeof(tg->swap));
	id = tg->ids[0];
	tg->ids[0] = tg->ids[j];
	tg->ids[j] = id;
	return local == 0 ? j : local == j ? 0 : local;
}

/*
 * Fill tg with the writable replicas of slot and their next hops, from
 * the per-CPU next-hop cache the reads use: a FIB and neighbour lookup per
 * replica was a quarter of a replicated write's BPF time (one that owes
 * writes is then moved from the front: km_tc_targets_owes_not_first).
 * Returns their number, plus 256 * (1 + the index of the one on this
 * host) when one is local, or -1 when one cannot be reached from here (or
 * two are local).  Global: verified once, not once per path of
 * km_tc_write; one per family (fam a constant), so that the verifier
 * walks one family's lookups per replica, not both, and each has a small
 * stack frame.
 */
static __always_inline int km_tc_targets_fam(struct __sk_buff *skb,
					     struct km_slot *slot,
					     struct km_targets *tg, __u64 now,
					     const __u8 fam)
{
	int i, rc, k = 0, local = -1;
	struct km_backend *be;

	tg->nr_skipped = 0;
	for (i = 0; i < KM_MAX_REPLICAS; i++) {
		if (i >= slot->nr)
			break;
		be = km_backend_get(slot->be[i]);
		if (!be || !km_ip_set(&be->addr))
			continue;
		if (!km_backend_writable(be)) {
			/* it misses this write: kmagentd journals it */
			tg->skipped[tg->nr_skipped++ & 7] = slot->be[i];
			continue;
		}
		km_nat_src(slot->be[i], &tg->proxy, &tg->src);
		rc = km_fib_cached_in(skb, &tg->fib, fam, &tg->src, slot->be[i],
				      be, skb->ifindex, now, &tg->tv[k & 7]);
		if (rc < 0 || (rc == KM_FIB_LOCAL && local >= 0))
			return -1;
		if (rc == KM_FIB_LOCAL)
			local = k;
		tg->tv[k & 7].sport = bpf_htons(km_nat_port);
		tg->tv[k & 7].dport = be->port;
		tg->ids[k & 7] = slot->be[i];
		k++;
	}
	return k + 256 * (local + 1);
}

__attribute__((noinline)) int km_tc_targets4(struct __sk_buff *skb,
					     struct km_slot *slot,
					     struct km_targets *tg, __u64 now)
{
	if (!skb || !slot || !tg)
		return -1;
	return km_tc_targets_fam(skb, slot, tg, now, KM_FAM_V4);
}

__attribute__((noinline)) int km_tc_targets6(struct __sk_buff *skb,
					     struct km_slot *slot,
					     struct km_targets *tg, __u64 now)
{
	if (!skb || !slot || !tg)
		return -1;
	return km_tc_targets_fam(skb, slot, tg, now, KM_FAM_V6);
}

/*
 * Tell kmagentd which replicas a write skipped, and its key: they are
 * missing it, and the key is replayed onto them when they are back.
 */
static __always_inline void km_event_write_missed(struct km_scratch *sc,
						  const struct km_req *r,
						  const struct km_targets *tg,
						  struct km_stats *st)
{
	struct km_event *ev =
		km_event_new(KM_EV_WRITE_MISSED, km_hash_slot(r->hash), st);
	int i;

	if (!ev)
		return;
	ev->nr_missed = tg->nr_skipped;
	for (i = 0; i < KM_MAX_REPLICAS; i++)
		ev->missed[i] = i < tg->nr_skipped ? tg->skipped[i] : 0;
	ev->key_len = r->key_len;
	/* key_off is the verb's length plus one: under 16 */
	if (bpf_probe_read_kernel(ev->key, sizeof(ev->key),
				  sc->buf + (r->key_off & 15)))
		ev->key_len = 0;
	bpf_ringbuf_submit(ev, 0);
}

/*
 * Send a clone of skb to each replica of tg but the local one.  Global:
 * verified once, not once per family and path of km_tc_write.
 */
__attribute__((noinline)) int
km_tc_clones(struct __sk_buff *skb, struct km_targets *tg, struct km_stats *st)
{
	struct km_be_stats *bst;
	int i;

	if (!skb || !tg || !st)
		return 0;
	for (i = 0; i < KM_MAX_REPLICAS; i++) {
		if (i >= tg->nr)
			break;
		if (i == tg->local)
			continue;
		tg->tv[i].rid = tg->rid;
		if (km_tc_nat(skb, &tg->h, &tg->tv[i]) ||
		    bpf_clone_redirect(skb, tg->tv[i].ifindex, 0)) {
			st->helper_errors++;
			continue; /* that replica times out: counted there */
		}
		st->write_clones++;
		bst = km_be_stats_get(tg->ids[i]);
		if (bst)
			bst->writes++;
	}
	return 0;
}

/* Returns a tc verdict: TC_ACT_OK leaves the datagram to kmagentd. */
static __always_inline int km_tc_write(struct __sk_buff *skb, struct km_pkt *p,
				       const struct km_config *cfg,
				       struct km_stats *st)
{
	struct km_targets *tg;
	__u8 *ids;
	struct km_be_stats *bst;
	struct km_pending *e = NULL;
	struct km_req r = {};
	struct km_scratch *sc;
	struct km_slot *slot;
	__u32 n = p->payload_len, idx = 0, k = 0;
	int i, rc, local = -1; /* the local replica's index in tv/ids */
	struct km_backend *local_be = NULL, *be0;
	enum km_blind blind;
	__u64 now = 0;
	char crlf[2];

	if (p->frame->total != bpf_htons(1) || p->frame->seq)
		return TC_ACT_OK;
	if (km_bypassed(cfg))
		return TC_ACT_OK;
	if (n > KM_REQ_MAX)
		n = KM_REQ_MAX; /* the command line must fit; data may not */
	if (n < 8)
		return TC_ACT_OK;
	sc = km_scratch_get();
	if (!sc)
		return TC_ACT_OK;
	if (bpf_skb_load_bytes(skb, p->payload_off, sc->buf, n))
		return TC_ACT_OK;
	if (km_parse_write(sc, n, p->payload_len, &r))
		return TC_ACT_OK;
	/* kmagentd's, unless it is frozen or gone: then the kernel alone */
	blind = km_write_blind(sc);
	if (blind == KM_BLIND_NOT && km_daemon_alive(cfg))
		return TC_ACT_OK;
	/* the data block ends as memcached wants, or it answers twice */
	if (r.vtok &&
	    (bpf_skb_load_bytes(skb, p->payload_off + p->payload_len - 2, crlf,
				2) ||
	     crlf[0] != '\r' || crlf[1] != '\n'))
		return TC_ACT_OK;
	slot = km_ring_get(cfg, km_hash_slot(r.hash));
	tg = km_targets_get();
	if (!slot || !tg)
		return TC_ACT_OK;
	ids = tg->ids;
	km_proxy_addr(cfg, p, &tg->proxy);
	now = bpf_ktime_get_coarse_ns();
	if (p->family == KM_FAM_V6)
		rc = km_tc_targets6(skb, slot, tg, now);
	else
		rc = km_tc_targets4(skb, slot, tg, now);
	if (rc < 0) {
		st->no_route++; /* unreachable, or a second local one */
		return TC_ACT_OK;
	}
	k = rc & 0xff;
	if (!k || k > KM_MAX_REPLICAS) {
		st->no_backend++;
		return TC_ACT_OK;
	}
	local = km_tc_targets_owes_not_first(tg, k, (rc >> 8) - 1);
	/* every replica owes writes: kmagentd knows if one is up to date */
	if (blind == KM_BLIND_DELETE) {
		be0 = km_backend_get(ids[0]);
		if (!be0 || km_backend_owes(cfg, be0))
			return TC_ACT_OK;
	}
	if (local >= 0) {
		local_be = km_backend_get(ids[local & 7]);
		if (!local_be)
			return TC_ACT_OK;
	}
	km_tc_hdr_of(p, &tg->h);
	if (!r.noreply) {
		e = km_claim(cfg, st, now, &idx);
		if (!e)
			return TC_ACT_OK;
		km_pending_open(e, p, &tg->proxy, skb->ifindex, &r);
		e->kind = KM_PK_WRITE;
		e->cur_be = ids[0];
		e->nr_tried = 0;
		e->nr_wr = k;
		e->policy = cfg->write_policy;
		e->req_len = 0;
		e->retried = 0;
		/* key_off is the verb's length plus one: under 16 */
		e->wkey_len = r.key_len <= KM_WKEY_MAX ? r.key_len : 0;
		if (bpf_probe_read_kernel(e->wkey, KM_WKEY_MAX,
					  sc->buf + (r.key_off & 15)))
			e->wkey_len = 0;
		for (i = 0; i < KM_MAX_REPLICAS; i++) {
			e->wr_be[i] = i < (int)k ? ids[i] : 0;
			e->wr_len[i] = 0;
		}
		km_arm(idx, now, 0);
	}
	/* the datagram itself goes to the local replica, after the clones */
	if (local_be) {
		km_mac_copy(tg->lv.dmac, p->eth->h_dest);
		km_mac_copy(tg->lv.smac, p->eth->h_source);
		/* the client's address: see km_to_local */
		tg->lv.saddr = tg->h.saddr;
		tg->lv.daddr = local_be->addr;
		tg->lv.sport = tg->h.sport;
		tg->lv.dport = local_be->port;
		tg->lv.rid = bpf_htons(e ? idx : KM_RID_NOREPLY);
	}
	/* p's packet pointers are dead from here: helpers below change data */
	/* noreply: a request id no entry has, so that a reply memcached
	 * sends anyway is no other client's */
	tg->rid = bpf_htons(e ? idx : KM_RID_NOREPLY);
	tg->local = local;
	tg->nr = k;
	km_tc_clones(skb, tg, st);
	st->kernel_writes++;
	if (r.noreply)
		st->noreply_writes++;
	if (tg->nr_skipped)
		km_event_write_missed(sc, &r, tg, st);
	if (!local_be)
		return TC_ACT_SHOT;
	if (km_tc_nat(skb, &tg->h, &tg->lv)) {
		st->helper_errors++;
		return TC_ACT_SHOT;
	}
	st->write_clones++;
	bst = km_be_stats_get(ids[local & 7]);
	if (bst)
		bst->writes++;
	return KM_TC_UP_LOCAL;
}

/*
 * Turn the miss in skb (entry e, request id idx) into the stored request
 * to the next untried readable replica: bpf_skb_change_tail can grow what
 * XDP could not.  A remote replica gets it from the proxy's NAT port; a
 * local one (from ingress only) gets it up the stack, as in km_to_local.
 * Returns a tc verdict, or -1 when there is no replica left to ask.
 */
static __always_inline int km_tc_refetch(struct __sk_buff *skb,
					 struct km_pkt *p, struct km_pending *e,
					 __u32 idx, int egress,
					 const struct km_config *cfg,
					 struct km_stats *st)
{
	__u32 len, sum, l2 = p->l2_len;
	struct km_backend *nb = NULL;
	struct km_hdrvals v = {};
	struct km_slot *slot;
	int local, up = 0;
	__u8 next;

	slot = km_ring_get(cfg, e->slot);
	if (!slot)
		return -1;
	next = km_first_readable(slot, e, &nb);
	if (!next || !nb || km_req_sum(e, &sum))
		return -1;
	/* a replica left that the kernel cannot reach from here: the
	 * original request goes up to kmagentd */
	local = km_next_hop(skb, e, nb, next, idx, skb->ifindex, egress, &v,
			    st);
	up = local < 0;
	len = e->req_len;
	km_barrier_var(len);
	if (len < 1 || len > KM_REQ_MAX || (l2 != 14 && l2 != 18))
		return -1;
	/* from here on the skb is ours: a failure drops it */
	if (km_tc_set_payload(skb, p, l2, &v, e->req, len, sum) ||
	    bpf_skb_store_bytes(skb, 0, v.dmac, 2 * ETH_ALEN, 0)) {
		st->helper_errors++;
		return TC_ACT_SHOT;
	}
	if (up) {
		km_finish(e, e->ts);
		if (!egress) {
			st->passed_up++;
			return TC_ACT_OK; /* on up the stack, to kmagentd */
		}
		/* from egress: back in by the interface it came from */
		return bpf_redirect(v.ifindex, BPF_F_INGRESS) == TC_ACT_REDIRECT
			       ? TC_ACT_REDIRECT
			       : TC_ACT_SHOT;
	}
	km_note_fallback(e, idx, next, local, st);
	if (local == KM_FIB_LOCAL)
		return TC_ACT_OK; /* on up the stack, to the local memcached */
	if (egress && v.ifindex == skb->ifindex)
		return TC_ACT_OK; /* out of this interface, as it was going */
	/* a constant either way: callers then know the verdict is >= 0 */
	return bpf_redirect(v.ifindex, 0) == TC_ACT_REDIRECT ? TC_ACT_REDIRECT
							     : TC_ACT_SHOT;
}

/*
 * Ingress, to the NAT port: the misses XDP passed on because it could not
 * grow the frame.  TC_ACT_OK for anything else (left alone).
 */
static __always_inline int km_tc_fallback(struct __sk_buff *skb,
					  struct km_pkt *p,
					  const struct km_config *cfg,
					  struct km_stats *st)
{
	void *end = (void *)(long)skb->data_end;
	__u32 idx = bpf_ntohs(p->frame->rid);
	struct km_pending *e;
	int rc;

	e = bpf_map_lookup_elem(&km_pending, &idx);
	if (!e || !e->ts || (e->kind != KM_PK_GET && e->kind != KM_PK_MG))
		return TC_ACT_OK;
	if (!km_from_backend(e->cur_be, p))
		return TC_ACT_OK;
	if (p->frame->total != bpf_htons(1) || !km_is_miss(p, end, e->kind))
		return TC_ACT_OK;
	rc = km_tc_refetch(skb, p, e, idx, 0, cfg, st);
	return rc < 0 ? TC_ACT_OK : rc;
}

/*
 * Egress: the local replica's reply to a cloned write, addressed to the
 * client.  Kept, dropped or sent on as the aggregate, as km_xdp_write_reply
 * does for the remote replicas' replies.
 */
static __always_inline int km_tc_local_write_reply(struct __sk_buff *skb,
						   struct km_pkt *p,
						   struct km_pending *e,
						   __u32 idx, __u64 ts,
						   struct km_stats *st)
{
	__u32 n = p->payload_len, got, wl, l2 = p->l2_len;
	struct km_be_stats *bst;
	struct km_hdrvals v;
	struct km_tc_hdr th;
	int me, c;
	char *buf;
	long sum;

	me = km_write_replica(e, p);
	if (me < 0 || p->frame->total != bpf_htons(1))
		return TC_ACT_OK;
	if (e->wr_len[me])
		return TC_ACT_SHOT; /* duplicate */
	buf = e->wr_reply[me];
	__builtin_memset(buf, 0, KM_WREPLY_MAX);
	if (n < 1 || n > KM_WREPLY_MAX ||
	    bpf_skb_load_bytes(skb, p->payload_off, buf, n))
		e->wr_len[me] = 0xff;
	else
		e->wr_len[me] = n;
	st->write_replies++;
	bst = km_be_stats_get(e->wr_be[me]);
	if (bst)
		bst->write_replies++;
	km_tc_hdr_of(p, &th);
	km_to_client(e, &v);
	got = __sync_fetch_and_add(&e->wr_got, 1) + 1;
	if (got & KM_WR_CLOSED) {
		st->retry_late++; /* the retry answered without it */
		return TC_ACT_SHOT;
	}
	if (e->policy == KM_WP_FIRST) {
		if (got >= e->nr_wr) {
			km_write_choose(e, st); /* counts divergent replies */
			km_disarm(idx);
			km_release(e, ts);
		}
		if (got != 1)
			return TC_ACT_SHOT;
		goto forward;
	}
	if (got < e->nr_wr)
		return TC_ACT_SHOT; /* kept; the last reply answers */
	km_disarm(idx);
	c = km_write_choose(e, st);
	if (c < 0 || c >= KM_MAX_REPLICAS || c == me)
		goto forward_release;
	wl = e->wr_len[c];
	km_barrier_var(wl);
	if (wl < 1 || wl > KM_WREPLY_MAX || (l2 != 14 && l2 != 18))
		goto forward_release;
	sum = bpf_csum_diff(NULL, 0, (void *)e->wr_reply[c], KM_WREPLY_MAX, 0);
	if (sum < 0)
		goto forward_release;
	if (km_tc_set_payload(skb, p, l2, &v, e->wr_reply[c], wl, sum)) {
		km_release(e, ts);
		st->helper_errors++;
		return TC_ACT_SHOT;
	}
	km_release(e, ts);
	st->replies++;
	return TC_ACT_OK;
forward_release:
	km_release(e, ts);
forward:
	if (km_tc_nat_l3l4(skb, &th, &v)) {
		st->helper_errors++;
		return TC_ACT_SHOT;
	}
	st->replies++;
	return TC_ACT_OK;
}

/*
 * Egress: a local backend's reply to a client (km_to_local sent it the
 * client's address).  A miss becomes a request to the next replica; the
 * rest leaves as the proxy's reply: source = proxy address and service
 * port, request id = the client's.
 */
static __always_inline int km_tc_local_reply(struct __sk_buff *skb,
					     struct km_pkt *p,
					     const struct km_config *cfg,
					     struct km_stats *st)
{
	void *end = (void *)(long)skb->data_end;
	__u32 idx = bpf_ntohs(p->frame->rid);
	struct km_be_stats *bst;
	struct km_pending *e;
	struct km_tc_hdr h;
	struct km_hdrvals v;
	__u16 total;
	__u64 ts;
	__u8 cur;
	int rc;

	e = bpf_map_lookup_elem(&km_pending, &idx);
	if (!e)
		return TC_ACT_OK;
	ts = e->ts;
	if (!ts || p->udp->dest != e->client_port ||
	    !km_pkt_addr_is(p, 1, e->family, &e->client_addr))
		return TC_ACT_OK;
	if (e->kind == KM_PK_WRITE)
		return km_tc_local_write_reply(skb, p, e, idx, ts, st);
	if (e->kind == KM_PK_DONE && km_sent_to_pkt(e, p))
		goto late; /* quarantined after a retry */
	if (e->kind != KM_PK_GET && e->kind != KM_PK_MG)
		return TC_ACT_OK;
	cur = e->cur_be;
	if (!km_from_backend(cur, p)) {
		/* the local backend, after a retry sent the read elsewhere */
		if (e->retried && km_sent_to_pkt(e, p))
			goto late;
		return TC_ACT_OK;
	}
	if (!e->local)
		return TC_ACT_OK;
	if (km_take(e, idx, cur))
		goto late;
	bst = km_be_stats_get(cur);
	total = bpf_ntohs(p->frame->total);
	if (km_reply_capped(cfg, total)) {
		km_reply_drop(e, bst, st);
		return TC_ACT_SHOT;
	}
	if (total == 1 && km_is_miss(p, end, e->kind)) {
		if (bst)
			bst->misses++;
		rc = km_tc_refetch(skb, p, e, idx, 1, cfg, st);
		if (rc >= 0)
			return rc;
		st->misses++;
	} else if (!p->frame->seq) {
		km_count_hit(e, bst, st);
	}
	km_tc_hdr_of(p, &h);
	km_to_client(e, &v);
	if (km_tc_nat_l3l4(skb, &h, &v)) {
		st->helper_errors++;
		return TC_ACT_SHOT;
	}
	if (__sync_fetch_and_add(&e->rx_dgrams, 1) + 1 >= total)
		km_finish(e, ts);
	st->replies++;
	return TC_ACT_OK;
late:
	st->retry_late++;
	return TC_ACT_SHOT; /* the client has its answer from another */
}

#endif /* KM_TC_CLONE_BPF_H */
