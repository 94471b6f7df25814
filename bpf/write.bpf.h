/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Writes: a single-datagram write is cloned with bpf_clone_redirect to
 * every writable replica of its key, each clone NATed like a read, the
 * original dropped (XDP cannot clone, hence tc); their replies are
 * combined (km_write_combine) by XDP for the remote replicas and by tc
 * egress for a local one.
 */
#ifndef KM_WRITE_BPF_H
#define KM_WRITE_BPF_H

#include <linux/pkt_cls.h>
#include "parse.bpf.h"
#include "mcproto.bpf.h"
#include "maps.bpf.h"
#include "pending.bpf.h"
#include "nat.bpf.h"
#include "reply.bpf.h"

/* km_tc_write: the datagram goes up the stack to a local replica. */
#define KM_TC_UP_LOCAL 100

/*
 * May it answer for its keys?  As the daemon's km_be_current: readable
 * (not fenced, drained, silent or warming) and owing none.  A fenced
 * first replica's NOT_FOUND to a delete was the client's answer while the
 * others deleted the key: seed 9017 of the chaos test.
 */
static __always_inline int km_be_answers_for(const struct km_config *cfg,
					     const struct km_backend *be)
{
	return be && km_backend_readable(be) && !km_backend_owes(cfg, be);
}

/*
 * The first of tg's targets cannot answer for the key: swap it with the
 * first that can (a write's answer is its first target's reply), tg->local
 * following the local one.  Global: verified once, apart from
 * km_tc_targets' loop.
 */
__attribute__((noinline)) int km_tc_targets_auth_first(struct km_targets *tg)
{
	const struct km_config *cfg = km_config_get();
	int j, local;
	__u8 id;

	if (!tg || km_be_answers_for(cfg, km_backend_get(tg->ids[0])))
		return 0;
	for (j = 1; j < KM_MAX_REPLICAS; j++) {
		if (j >= tg->nr)
			return 0;
		if (km_be_answers_for(cfg, km_backend_get(tg->ids[j])))
			break;
	}
	if (j >= KM_MAX_REPLICAS)
		return 0;
	__builtin_memcpy(&tg->swap, &tg->tv[0], sizeof(tg->swap));
	__builtin_memcpy(&tg->tv[0], &tg->tv[j], sizeof(tg->swap));
	__builtin_memcpy(&tg->tv[j], &tg->swap, sizeof(tg->swap));
	id = tg->ids[0];
	tg->ids[0] = tg->ids[j];
	tg->ids[j] = id;
	local = tg->local;
	tg->local = local == 0 ? j : local == j ? 0 : local;
	return 0;
}

/*
 * Fill tg with the writable replicas of slot and their next hops, from
 * the per-CPU next-hop cache the reads use: a FIB and neighbour lookup per
 * replica was a quarter of a replicated write's BPF time (one that owes
 * cannot answer for the key is then moved from the front:
 * km_tc_targets_auth_first).
 * Their number in tg->nr, the index of the one on this host in tg->local
 * (-1: none).  Returns 0, or -1 when one cannot be reached from here (or
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
			tg->skipped[KM_REPLICA_IDX(tg->nr_skipped++)] =
				slot->be[i];
			continue;
		}
		km_nat_src(slot->be[i], &tg->proxy, &tg->src);
		rc = km_fib_cached_in(skb, &tg->fib, fam, &tg->src, slot->be[i],
				      be, skb->ifindex, now,
				      &tg->tv[KM_REPLICA_IDX(k)]);
		if (rc < 0 || (rc == KM_FIB_LOCAL && local >= 0))
			return -1;
		if (rc == KM_FIB_LOCAL)
			local = k;
		tg->tv[KM_REPLICA_IDX(k)].sport = bpf_htons(km_nat_port);
		tg->tv[KM_REPLICA_IDX(k)].dport = be->port;
		tg->ids[KM_REPLICA_IDX(k)] = slot->be[i];
		k++;
	}
	tg->nr = k;
	tg->local = local;
	return 0;
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
						  const struct km_parsed_req *r,
						  const struct km_targets *tg,
						  struct km_stats *st)
{
	struct km_event *ev =
		km_event_new(KM_EV_WRITE_MISSED, km_hash_slot(r->hash), st);
	int i;

	if (!ev) {
		for (i = 0; i < KM_MAX_REPLICAS; i++)
			if (i < tg->nr_skipped)
				km_write_gap(tg->skipped[i]);
		return;
	}
	ev->nr_missed = tg->nr_skipped;
	for (i = 0; i < KM_MAX_REPLICAS; i++)
		ev->missed[i] = i < tg->nr_skipped ? tg->skipped[i] : 0;
	ev->key_len = r->key_len;
	if (bpf_probe_read_kernel(ev->key, sizeof(ev->key),
				  sc->buf + KM_KEY_OFF(r->key_off)))
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
	struct km_parsed_req r = {};
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
	if (blind == KM_BLIND_NEVER ||
	    (blind == KM_BLIND_NOT && km_daemon_alive(cfg)))
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
	k = tg->nr;
	if (!k || k > KM_MAX_REPLICAS) {
		st->no_backend++;
		return TC_ACT_OK;
	}
	km_tc_targets_auth_first(tg);
	local = tg->local;
	/* no replica may answer for the key (all fenced, owing...):
	 * kmagentd's, which knows if one is up to date */
	if (blind == KM_BLIND_DELETE) {
		be0 = km_backend_get(ids[0]);
		if (!be0 ||
		    (km_daemon_alive(cfg) && !km_be_answers_for(cfg, be0)))
			return TC_ACT_OK;
	}
	if (local >= 0) {
		local_be = km_backend_get(ids[KM_REPLICA_IDX(local)]);
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
		e->wkey_len = r.key_len <= KM_WKEY_MAX ? r.key_len : 0;
		if (bpf_probe_read_kernel(e->wkey, KM_WKEY_MAX,
					  sc->buf + KM_KEY_OFF(r.key_off)))
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
	bst = km_be_stats_get(ids[KM_REPLICA_IDX(local)]);
	if (bst)
		bst->writes++;
	return KM_TC_UP_LOCAL;
}

/*
 * XDP: a remote write replica's reply, kept, dropped or sent on as the
 * client's answer (km_write_combine).
 */
static __always_inline int km_xdp_write_reply(struct xdp_md *ctx,
					      struct km_pkt *p,
					      struct km_pending *e, __u32 idx,
					      __u64 ts, struct km_stats *st)
{
	struct km_write_pick pick = {};
	__u32 n = p->payload_len;
	struct km_hdrvals v;
	char *buf = NULL;
	int me;
	long rc;

	me = km_write_slot(e, p, &buf);
	if (me == KM_WS_STRAY) {
		st->stray_replies++;
		return XDP_PASS;
	}
	if (me < 0 || !buf)
		return XDP_DROP; /* duplicate */
	if (n < 1 || n > KM_WREPLY_MAX ||
	    bpf_xdp_load_bytes(ctx, p->payload_off, buf, n))
		n = 0;
	switch (km_write_combine(e, me, n, idx, ts, st, &pick)) {
	case KM_WV_DROP:
		return XDP_DROP;
	case KM_WV_FORWARD:
		return km_reply_to_client(ctx, p, e, ts, 0, st);
	case KM_WV_FORWARD_LAST:
		return km_reply_to_client(ctx, p, e, ts, 1, st);
	case KM_WV_CHOSEN:
		break;
	}
	km_to_client(e, &v);
	rc = km_xdp_emit(ctx, p, &v, pick.reply, pick.len, pick.sum);
	if (rc == KM_EMIT_NOROOM) {
		/* no room for the chosen reply: answer with this one */
		st->helper_errors++;
		if (km_parse((void *)(long)ctx->data,
			     (void *)(long)ctx->data_end, p))
			return XDP_DROP;
		return km_reply_to_client(ctx, p, e, ts, 1, st);
	}
	km_release(e, ts);
	if (rc) {
		st->helper_errors++;
		return XDP_DROP;
	}
	st->replies++;
	return km_xdp_out(ctx, v.ifindex);
}

/*
 * tc egress: the local replica's reply to a cloned write, addressed to
 * the client, as km_xdp_write_reply does for the remote replicas'.
 */
static __always_inline int km_tc_local_write_reply(struct __sk_buff *skb,
						   struct km_pkt *p,
						   struct km_pending *e,
						   __u32 idx, __u64 ts,
						   struct km_stats *st)
{
	__u32 n = p->payload_len, l2 = p->l2_len;
	struct km_write_pick pick = {};
	struct km_hdrvals v;
	struct km_tc_hdr th;
	char *buf = NULL;
	int me;

	me = km_write_slot(e, p, &buf);
	if (me == KM_WS_STRAY)
		return TC_ACT_OK;
	if (me < 0 || !buf)
		return TC_ACT_SHOT; /* duplicate */
	if (n < 1 || n > KM_WREPLY_MAX ||
	    bpf_skb_load_bytes(skb, p->payload_off, buf, n))
		n = 0;
	km_tc_hdr_of(p, &th);
	km_to_client(e, &v);
	switch (km_write_combine(e, me, n, idx, ts, st, &pick)) {
	case KM_WV_DROP:
		return TC_ACT_SHOT;
	case KM_WV_FORWARD:
		break;
	case KM_WV_CHOSEN:
		if (l2 != 14 && l2 != 18) {
			km_release(e, ts);
			break;
		}
		if (km_tc_set_payload(skb, p, l2, &v, pick.reply, pick.len,
				      pick.sum)) {
			km_release(e, ts);
			st->helper_errors++;
			return TC_ACT_SHOT;
		}
		km_release(e, ts);
		st->replies++;
		return TC_ACT_OK;
	case KM_WV_FORWARD_LAST:
		km_release(e, ts);
		break;
	}
	if (km_tc_nat_l3l4(skb, &th, &v)) {
		st->helper_errors++;
		return TC_ACT_SHOT;
	}
	st->replies++;
	return TC_ACT_OK;
}

#endif /* KM_WRITE_BPF_H */
