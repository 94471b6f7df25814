/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Reads: a single-key get, gets or mg from a client is routed to the
 * key's first readable replica (km_xdp_request); a miss becomes the same
 * request to the next one (null-fallback), from XDP (km_xdp_fallback) or,
 * where the frame must grow or the reply left a local backend, from tc
 * (km_tc_refetch).
 */
#ifndef KM_READ_BPF_H
#define KM_READ_BPF_H

#include <linux/pkt_cls.h>
#include "parse.bpf.h"
#include "mcproto.bpf.h"
#include "maps.bpf.h"
#include "pending.bpf.h"
#include "nat.bpf.h"
#include "reply.bpf.h"

/*
 * The first replica in slot's order that is readable, owes no write
 * (KM_BE_F_OWES: its copy of the key may be older) and is not in tried's
 * list (tried may be NULL); KM_BACKEND_NONE if none, and kmagentd serves
 * the read.  With kmagentd gone, nobody would: then the first one that
 * owes, if no other is readable.  Global functions,
 * this one and km_write_choose: verified once instead of on every path of
 * their callers, which keeps the programs well under the verifier's limit.
 */
__attribute__((noinline)) int km_next_readable(struct km_slot *slot,
					       struct km_pending *tried)
{
	const struct km_config *cfg;
	int last_resort = KM_BACKEND_NONE;
	struct km_backend *be;
	__u8 id;
	int i;

	if (!slot)
		return KM_BACKEND_NONE;
	cfg = km_config_get();
	for (i = 0; i < KM_MAX_REPLICAS; i++) {
		if (i >= slot->nr)
			break;
		id = slot->be[i];
		if (tried && km_tried(tried, id))
			continue;
		be = km_backend_get(id);
		if (!be || !km_backend_readable(be))
			continue;
		if (!(be->flags & KM_BE_F_OWES))
			return id;
		if (last_resort == KM_BACKEND_NONE && !km_daemon_alive(cfg))
			last_resort = id;
	}
	return last_resort;
}

/* km_next_readable, with the backend's entry. */
static __always_inline __u8 km_first_readable(struct km_slot *slot,
					      struct km_pending *tried,
					      struct km_backend **out)
{
	__u8 id = km_next_readable(slot, tried);

	*out = km_backend_get(id);
	return *out ? id : KM_BACKEND_NONE;
}

static __always_inline int km_xdp_request(struct xdp_md *ctx, struct km_pkt *p,
					  const struct km_config *cfg,
					  struct km_stats *st)
{
	struct km_backend *be = NULL;
	struct km_hdrvals v = {};
	struct km_be_stats *bst;
	struct km_parsed_req r = {};
	struct km_scratch *sc;
	struct km_pending *e;
	struct km_slot *slot;
	__u32 n = p->payload_len, idx;
	union km_ip proxy, src;
	const char *verb;
	int local;
	__u8 be_id;
	__u64 now;

	st->rx_service++;
	km_pkt_saddr(p, &src);
	if (!km_client_allowed(p->family, &src)) {
		st->denied++;
		return XDP_DROP;
	}
	if (p->frame->total != bpf_htons(1) || p->frame->seq)
		return XDP_PASS;
	if (km_bypassed(cfg) || n < 6 || n > KM_REQ_MAX)
		return XDP_PASS;
	/* no read (get, gets, mg) starts otherwise: a write goes on to tc
	 * without being copied and parsed here first */
	verb = (const char *)(p->frame + 1);
	if ((void *)(verb + 1) > (void *)(long)ctx->data_end ||
	    (*verb != 'g' && *verb != 'm'))
		return XDP_PASS;
	sc = km_scratch_get();
	if (!sc)
		return XDP_PASS;
	if (bpf_xdp_load_bytes(ctx, p->payload_off, sc->buf, n))
		return XDP_PASS;
	if (km_parse_read(sc, n, &r))
		return XDP_PASS; /* writes go on to tc, the rest to kmagentd */
	slot = km_ring_get(cfg, km_hash_slot(r.hash));
	if (!slot)
		return XDP_PASS;
	be_id = km_first_readable(slot, NULL, &be);
	if (!be_id || !be) {
		st->no_backend++;
		return XDP_PASS;
	}
	km_proxy_addr(cfg, p, &proxy);
	km_nat_src(be_id, &proxy, &src);
	now = bpf_ktime_get_coarse_ns();
	local = km_fib_cached(ctx, p->family, &src, be_id, be,
			      ctx->ingress_ifindex, now, &v);
	if (local < 0) {
		st->no_route++;
		return XDP_PASS;
	}
	e = km_claim(cfg, st, now, &idx);
	if (!e)
		return XDP_PASS;
	if (bpf_xdp_load_bytes(ctx, p->payload_off, e->req, n)) {
		km_release(e, now);
		st->helper_errors++;
		return XDP_PASS;
	}
	km_pending_open(e, p, &proxy, ctx->ingress_ifindex, &r);
	e->kind = r.kind;
	e->cur_be = be_id;
	e->nr_tried = 1;
	e->tried[0] = be_id;
	e->nr_wr = 0;
	e->req_len = n;
	km_req_pad(e, n);
	e->local = local == KM_FIB_LOCAL;
	e->retried = 0;
	km_arm(idx, now, be_id); /* last: the entry is complete */

	st->kernel_gets++;
	bst = km_be_stats_get(be_id);
	if (bst)
		bst->gets++;
	if (e->local) {
		km_to_local(e, be, idx, &v);
		km_nat(p, &v);
		return XDP_PASS; /* up the stack to the local memcached */
	}
	km_to_remote(be, idx, &v);
	km_nat(p, &v);
	return km_xdp_out(ctx, v.ifindex);
}

/*
 * The headers of e's request (id idx) to replica next (nb), routed from
 * ifindex.  Returns km_fib's answer, or -1 when the kernel cannot reach it
 * (or it is local and no_local is set): v then holds the client's own
 * request to the service port, for kmagentd to serve.
 */
static __always_inline int km_next_hop(void *ctx, const struct km_pending *e,
				       const struct km_backend *nb, __u8 next,
				       __u32 idx, __u32 ifindex, int no_local,
				       struct km_hdrvals *v,
				       struct km_stats *st)
{
	union km_ip src;
	int local;

	km_nat_src(next, &e->proxy_addr, &src);
	local = km_fib(ctx, e->family, &src, nb, ifindex, v);

	if (local < 0 || (local == KM_FIB_LOCAL && no_local)) {
		st->no_route++;
		km_to_service(e, v);
		return -1;
	}
	if (local == KM_FIB_LOCAL)
		km_to_local(e, nb, idx, v);
	else
		km_to_remote(nb, idx, v);
	return local;
}

/* The request of e now goes to replica next (km_fib's answer: local). */
static __always_inline void km_note_next(struct km_pending *e, __u8 next,
					 int local)
{
	struct km_be_stats *bst;

	if (e->nr_tried < KM_MAX_REPLICAS)
		e->tried[e->nr_tried] = next;
	e->nr_tried++;
	e->cur_be = next;
	e->rx_dgrams = 0;
	e->local = local == KM_FIB_LOCAL;
	bst = km_be_stats_get(next);
	if (bst)
		bst->gets++;
}

/* After a miss: the request (id idx) went to next, with a fresh deadline. */
static __always_inline void km_note_fallback(struct km_pending *e, __u32 idx,
					     __u8 next, int local,
					     struct km_stats *st)
{
	km_note_next(e, next, local);
	st->fallbacks++;
	km_arm(idx, bpf_ktime_get_coarse_ns(), next);
}

/*
 * Null-fallback: turn this miss into the stored request, sent to the next
 * untried readable replica.  Returns a verdict, or -1 (nothing changed)
 * when no replica is left.  One the kernel cannot reach from here (next
 * hop unknown, loopback) leaves it to kmagentd, which asks every replica
 * itself: the client's original request goes up to it.
 */
static __always_inline int km_xdp_fallback(struct xdp_md *ctx, struct km_pkt *p,
					   struct km_pending *e, __u32 idx,
					   const struct km_config *cfg,
					   struct km_stats *st)
{
	struct km_backend *nb = NULL;
	struct km_hdrvals v = {};
	struct km_slot *slot;
	int rc, local;
	__u32 sum;
	__u8 next;

	slot = km_ring_get(cfg, e->slot);
	if (!slot)
		return -1;
	next = km_first_readable(slot, e, &nb);
	if (!next || !nb)
		return -1;
	if (km_req_sum(e, &sum)) {
		st->helper_errors++;
		return -1;
	}
	local = km_next_hop(ctx, e, nb, next, idx, ctx->ingress_ifindex, 0, &v,
			    st);
	rc = km_xdp_emit(ctx, p, &v, e->req, e->req_len, sum);
	if (rc == KM_EMIT_NOROOM)
		return XDP_PASS; /* km_tc_fallback grows the skb instead */
	if (rc) {
		st->helper_errors++;
		return XDP_DROP; /* the client retries; never a bad frame */
	}
	if (local < 0) {
		km_finish(e, e->ts);
		return XDP_PASS; /* to kmagentd */
	}
	km_note_fallback(e, idx, next, local, st);
	if (local == KM_FIB_LOCAL)
		return XDP_PASS;
	return km_xdp_out(ctx, v.ifindex);
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
	struct km_pending *e;
	__u32 idx;
	int rc;

	e = km_pending_of(p, &idx);
	if (!e || !e->ts || (e->kind != KM_PK_GET && e->kind != KM_PK_MG))
		return TC_ACT_OK;
	if (!km_from_backend(e->cur_be, p))
		return TC_ACT_OK;
	if (p->frame->total != bpf_htons(1) || !km_is_miss(p, end, e->kind))
		return TC_ACT_OK;
	rc = km_tc_refetch(skb, p, e, idx, 0, cfg, st);
	return rc < 0 ? TC_ACT_OK : rc;
}

#endif /* KM_READ_BPF_H */
