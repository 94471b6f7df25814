/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * km_xdp_retry: a request whose backend does not answer within the retry
 * delay (kmagentd --udp-retry; a host down, a blackholed link, a stopped
 * memcached: nothing like ICMP tells us) is moved on without waiting for
 * the client's timeout.  A BPF program cannot send from a timer, so
 * kmagentd scans km_deadline, queues the overdue requests in km_retry_q
 * and runs this program through BPF_PROG_RUN, with live frames where the
 * host allows: what it returns is acted on as if the frame had come in
 * on the client's interface (XDP_TX and XDP_REDIRECT send it, XDP_PASS
 * hands it to the stack).  Where live frames are refused, kmagentd runs
 * it on a copy and does the same with the frame it gets back (user/
 * kbpf_retry.c), so the program records where a redirect goes.  Each
 * run takes one queued request and turns the frame into
 *
 *  - for a read: the stored request to the next untried readable
 *    replica, from the NAT port with the entry's request id, so that the
 *    reply comes back through km_xdp_reply like any other; the silent
 *    backend is flagged KM_BE_F_SILENT (reads skip it) and reported;
 *  - for a write (policies primary and worst) that some replicas
 *    answered: the answer to the client from those, by the policy, as
 *    the last reply would have; the silent ones are flagged and reported.
 *
 * The request's km_deadline word decides races: the retry and an answer
 * arriving at the same time both compare-and-swap it, and only one wins
 * (km_take); a reply from the backend the request moved on from is
 * dropped and counted (retry_late).  Each replica is asked at most once
 * (tried[]), so a read is retried at most replicas - 1 times.
 */
#ifndef KM_RETRY_BPF_H
#define KM_RETRY_BPF_H

#include "reply.bpf.h"
#include "read.bpf.h"

static __always_inline struct km_retry_q *km_retry_q_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&km_retry_q, &zero);
}

/* km_retry_frame's IPv6 header, UDP and frame headers at ip. */
static __always_inline int km_retry_frame6(void *ip, void *end, __u32 l2,
					   struct km_pkt *p, void *data)
{
	struct ipv6hdr *ip6 = ip;
	struct km_udp_frame *f;
	struct udphdr *udp;

	udp = (void *)(ip6 + 1);
	f = (void *)(udp + 1);
	if ((void *)(f + 1) > end)
		return -1;
	__builtin_memset(ip6, 0, sizeof(*ip6));
	ip6->version = 6;
	ip6->hop_limit = 64;
	ip6->nexthdr = IPPROTO_UDP;
	ip6->payload_len = bpf_htons(KM_RETRY_FRAME_LEN - l2 - sizeof(*ip6));
	__builtin_memset(udp, 0, sizeof(*udp));
	udp->len = ip6->payload_len;
	udp->check = 0xffff; /* km_xdp_emit computes it: not "none" */
	__builtin_memset(f, 0, sizeof(*f));
	return km_parse(data, end, p);
}

/*
 * Fresh headers over the whole frame (KM_RETRY_FRAME_LEN bytes), untagged
 * or with e's VLAN tag, parsed into p for km_xdp_emit: a live frame's page
 * holds whatever an earlier run left in it.
 */
static __always_inline int
km_retry_frame(struct xdp_md *ctx, const struct km_pending *e, struct km_pkt *p)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct km_vlan_hdr *vh;
	__be16 proto = bpf_htons(ETH_P_IP);
	struct km_udp_frame *f;
	struct udphdr *udp;
	struct iphdr *ip;
	__u32 l2 = sizeof(*eth), len = end - data;

	/* a frame of another size would keep its extra bytes past ours */
	km_barrier_var(len);
	if (len != KM_RETRY_FRAME_LEN)
		return -1;
	if (data + KM_RETRY_FRAME_LEN > end)
		return -1;
	if (e->family == KM_FAM_V6)
		proto = bpf_htons(ETH_P_IPV6);
	ip = data + sizeof(*eth);
	if (e->vlan_tci) {
		vh = data + sizeof(*eth);
		eth->h_proto = bpf_htons(ETH_P_8021Q);
		vh->tci = e->vlan_tci;
		vh->proto = proto;
		ip = (void *)(vh + 1);
		l2 += sizeof(*vh);
	} else {
		eth->h_proto = proto;
	}
	if (e->family == KM_FAM_V6)
		return km_retry_frame6(ip, end, l2, p, data);
	udp = (void *)(ip + 1);
	f = (void *)(udp + 1);
	if ((void *)(f + 1) > end)
		return -1;
	__builtin_memset(ip, 0, sizeof(*ip));
	ip->version = 4;
	ip->ihl = 5;
	ip->ttl = 64;
	ip->protocol = IPPROTO_UDP;
	ip->tot_len = bpf_htons(KM_RETRY_FRAME_LEN - l2);
	__builtin_memset(udp, 0, sizeof(*udp));
	udp->len = bpf_htons(KM_RETRY_FRAME_LEN - l2 - sizeof(*ip));
	__builtin_memset(f, 0, sizeof(*f));
	return km_parse(data, end, p);
}

/*
 * Backend id left a request of the key in slot unanswered: reads skip it
 * from now on (until kmagentd next writes its entry), and kmagentd hears
 * of it once (a passive health failure), not once per request.
 */
static __always_inline void km_note_silent(__u8 id, __u32 slot,
					   struct km_stats *st)
{
	struct km_be_stats *bst = km_be_stats_get(id);
	struct km_backend *be = km_backend_get(id);

	if (bst)
		bst->retried++;
	if (!be || (be->flags & KM_BE_F_SILENT))
		return;
	be->flags |= KM_BE_F_SILENT;
	km_event_failed(KM_EV_SILENT, id, slot, st);
}

/* The read in e (deadline word w at *dl) goes to the next replica. */
static __always_inline int km_retry_read(struct xdp_md *ctx,
					 struct km_pending *e, __u64 *dl,
					 __u32 idx, __u64 w, __u64 ts0,
					 __u64 now, const struct km_config *cfg,
					 struct km_stats *st, __u32 *out_if)
{
	__u8 silent = w & KM_DL_BE, next;
	struct km_backend *nb = NULL;
	struct km_hdrvals v = {};
	struct km_slot *slot;
	struct km_pkt p;
	int local, up = 0;
	__u32 sum;

	if (e->cur_be != silent)
		goto forget;
	slot = km_ring_get(cfg, e->slot);
	next = km_first_readable(slot, e, &nb);
	if (!next || !nb) {
		st->retry_exhausted++; /* it times out, as without a retry */
		goto forget;
	}
	if (km_req_sum(e, &sum))
		goto broken;
	/* one the kernel cannot reach: kmagentd asks the replicas */
	local = km_next_hop(ctx, e, nb, next, idx, e->ifindex, 0, &v, st);
	up = local < 0;
	if (km_retry_frame(ctx, e, &p) ||
	    km_xdp_emit(ctx, &p, &v, e->req, e->req_len, sum))
		goto broken;
	/* the commit point: an answer that came first has disarmed w */
	if (__sync_val_compare_and_swap(dl, w,
					up ? 0 : km_dl_word(now, next)) != w)
		return -1;
	if (e->ts != ts0)
		return -1; /* reclaimed meanwhile: its claimer re-arms w */
	km_note_silent(silent, e->slot, st);
	if (e->nr_tried >= 1 && e->nr_tried <= KM_MAX_REPLICAS)
		e->retried |= 1u << (e->nr_tried - 1); /* cur_be's place */
	else
		e->retried |= 0x80; /* still retried: quarantine it */
	if (up) {
		km_finish(e, ts0);
		st->passed_up++;
		return XDP_PASS;
	}
	km_note_next(e, next, local);
	st->retries++;
	if (local == KM_FIB_LOCAL)
		return XDP_PASS;
	*out_if = v.ifindex;
	return km_xdp_out(ctx, v.ifindex);
broken:
	st->helper_errors++;
forget:
	__sync_val_compare_and_swap(dl, w, 0);
	return -1;
}

/* The write in e: answer its client from the replicas that replied. */
static __always_inline int km_retry_write(struct xdp_md *ctx,
					  struct km_pending *e, __u64 *dl,
					  __u64 w, __u64 ts0, __u64 now,
					  struct km_stats *st, __u32 *out_if)
{
	struct km_write_pick pick = {};
	struct km_hdrvals v;
	struct km_pkt p;
	__u32 got;
	int c, j;

	got = e->wr_got;
	if (e->policy == KM_WP_FIRST || (got & KM_WR_CLOSED) ||
	    got >= e->nr_wr) {
		/* first: the first reply has answered; else done already */
		__sync_val_compare_and_swap(dl, w, 0);
		return -1;
	}
	if (!got) {
		/* nobody has answered yet: look again one delay later */
		__sync_val_compare_and_swap(dl, w, km_dl_word(now, 0));
		return -1;
	}
	/* the commit point, against the last reply's fetch-and-add */
	if (__sync_val_compare_and_swap(&e->wr_got, got, got | KM_WR_CLOSED) !=
	    got)
		return -1; /* a reply came meanwhile: the next scan sees */
	*(volatile __u64 *)dl = 0;
	c = km_write_choose(e, st);
	for (j = 0; j < KM_MAX_REPLICAS; j++) {
		if (j >= e->nr_wr)
			break;
		if (!e->wr_len[j]) {
			km_note_silent(e->wr_be[j], e->slot, st);
			km_event_write_silent(e, e->wr_be[j], st);
		}
	}
	km_quarantine(e, ts0); /* late replies then find it and are dropped */
	/* none kept (too long): the client times out */
	if (km_write_pick(e, c, &pick))
		goto broken;
	km_to_client(e, &v);
	if (km_retry_frame(ctx, e, &p) ||
	    km_xdp_emit(ctx, &p, &v, pick.reply, pick.len, pick.sum))
		goto broken;
	st->retry_writes++;
	st->replies++;
	*out_if = v.ifindex;
	return km_xdp_out(ctx, v.ifindex);
broken:
	st->helper_errors++;
	return -1;
}

static __always_inline int km_retry(struct xdp_md *ctx)
{
	struct km_retry_q *q = km_retry_q_get();
	struct km_config *cfg = km_config_get();
	struct km_stats *st = km_stats_get();
	__u64 *dl, w, ts0, now, timeout;
	__u32 i, idx, out_if = 0;
	struct km_retry_d *d;
	struct km_pending *e;
	int rc;

	if (!q || !cfg || !st || !km_nat_port || !km_service_port)
		return XDP_DROP;
	i = __sync_fetch_and_add(&q->next, 1);
	if (i >= q->n || i >= KM_RETRY_BATCH)
		return XDP_DROP;
	d = &q->d[i];
	if (d->state != KM_RQ_TODO)
		return XDP_DROP;
	idx = d->idx & (KM_PENDING_SLOTS - 1);
	w = d->w;
	e = bpf_map_lookup_elem(&km_pending, &idx);
	dl = km_deadline_get(idx);
	if (!e || !dl || !w || *(volatile __u64 *)dl != w) {
		d->state = KM_RQ_NONE; /* answered or re-armed since */
		return XDP_DROP;
	}
	if (e->ifindex != ctx->ingress_ifindex && !q->any_if)
		return XDP_DROP; /* for the run on its own interface */
	d->state = KM_RQ_NONE;
	now = bpf_ktime_get_coarse_ns();
	ts0 = e->ts;
	timeout = cfg->pending_timeout_ns ?: KM_PENDING_TIMEOUT_NS;
	/* not this claim's word (a stale one), or about to time out */
	if (!ts0 || (w & ~KM_DL_BE) < (ts0 & ~KM_DL_BE) ||
	    (__s64)(now - ts0) >= (__s64)(timeout / 2)) {
		__sync_val_compare_and_swap(dl, w, 0);
		return XDP_DROP;
	}
	if (e->kind == KM_PK_WRITE) {
		rc = km_retry_write(ctx, e, dl, w, ts0, now, st, &out_if);
	} else if (e->kind == KM_PK_GET || e->kind == KM_PK_MG) {
		rc = km_retry_read(ctx, e, dl, idx, w, ts0, now, cfg, st,
				   &out_if);
	} else {
		__sync_val_compare_and_swap(dl, w, 0);
		rc = -1;
	}
	if (rc < 0)
		return XDP_DROP;
	d->ifindex = out_if ?: ctx->ingress_ifindex;
	d->state = KM_RQ_SENT;
	return rc;
}

#endif /* KM_RETRY_BPF_H */
