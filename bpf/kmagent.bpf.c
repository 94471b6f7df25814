// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * kmagent's kernel fast path: the entry points and what they dispatch
 * on (port, a reply's kind).  The work is in leaf headers, each about one
 * thing and including only those below it:
 *
 *   parse.bpf.h, mcproto.bpf.h   frames and memcached requests
 *   maps.bpf.h                   every map, and their lookups
 *   nat.bpf.h                    routing (FIB, next-hop cache), rewrites
 *   pending.bpf.h                the pending-request table, deadlines
 *   reply.bpf.h                  a backend reply: classifier, combiner
 *   read.bpf.h                   reads: routing, null-fallback
 *   write.bpf.h                  writes: targets, clones, their replies
 *   icmp.bpf.h, retry.bpf.h      unreachable and silent backends
 *
 * Oldest kernel: 5.18, for bpf_xdp_load_bytes/bpf_xdp_store_bytes.  Also
 * needed, and older: BPF atomics with fetch and compare-and-swap (5.12),
 * the ring buffer (5.8), growing frames with bpf_xdp_adjust_tail (5.8),
 * XDP bpf_links (5.9), bounded loops (5.3), global functions taking
 * map-value pointers (5.12).  Built and tested on 6.18 only.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "kmagent.h"
#include "maps.bpf.h"
#include "parse.bpf.h"
#include "reply.bpf.h"
#include "read.bpf.h"
#include "write.bpf.h"
#include "icmp.bpf.h"
#include "retry.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * Is this datagram addressed to us, where kmagentd listens (-l): IPv4 to
 * proxy_addr (any address when it is 0), IPv6 to any address or to
 * proxy_addr6 (enum km_serve_v6)?
 */
static __always_inline int km_for_us(const struct km_config *cfg,
				     const struct km_pkt *p)
{
	if (p->family == KM_FAM_V6)
		return cfg->serve_v6 == KM_V6_ALL ||
		       (cfg->serve_v6 == KM_V6_ONLY &&
			km_pkt_addr_is(p, 1, KM_FAM_V6, &cfg->proxy_addr6));
	return cfg->serve_v6 != KM_V6_ONLY &&
	       (!cfg->proxy_addr || p->ip->daddr == cfg->proxy_addr);
}

/*
 * What every program does first: parse the datagram, find the maps.  -1
 * when it is none of ours (not UDP of family fam, no ports configured,
 * no maps, IPv6 while kmagentd serves IPv4 only).
 */
static __always_inline int km_begin(void *data, void *end, struct km_pkt *p,
				    struct km_config **cfg,
				    struct km_stats **st, const __u8 fam)
{
	if (km_parse(data, end, p) || p->family != fam)
		return -1;
	if (!km_service_port || !km_nat_port)
		return -1;
	*st = km_stats_get();
	*cfg = km_config_get();
	if (!*st || !*cfg)
		return -1;
	return fam == KM_FAM_V6 && !(*cfg)->serve_v6 ? -1 : 0;
}

/*
 * XDP, to the NAT port: a backend's reply.  A read's goes back to the
 * client, a miss turning into a request to the next replica on the way;
 * a cloned write's are combined (tc cannot see them before XDP does).
 */
static __always_inline int km_xdp_reply(struct xdp_md *ctx, struct km_pkt *p,
					const struct km_config *cfg,
					struct km_stats *st)
{
	void *end = (void *)(long)ctx->data_end;
	__u16 total = bpf_ntohs(p->frame->total);
	struct km_pending *e;
	__u32 idx;
	__u64 ts;
	int rc;

	e = km_pending_of(p, &idx);
	if (!e)
		return XDP_PASS;
	ts = e->ts;
	switch (km_reply_classify(e, idx, ts, p, end, cfg, st, 0)) {
	case KM_RC_STRAY:
		st->stray_replies++;
		return XDP_PASS;
	case KM_RC_LATE:
		/* the client has (or will have) its answer from another */
		st->retry_late++;
		return XDP_DROP;
	case KM_RC_WRITE:
		return km_xdp_write_reply(ctx, p, e, idx, ts, st);
	case KM_RC_CAPPED:
		return XDP_DROP;
	case KM_RC_MISS:
		rc = km_xdp_fallback(ctx, p, e, idx, cfg, st);
		if (rc >= 0)
			return rc;
		st->misses++;
		break;
	case KM_RC_HIT:
		break;
	}
	/* one more datagram of the reply; the entry goes with the last */
	if (__sync_fetch_and_add(&e->rx_dgrams, 1) + 1 >= total)
		return km_reply_to_client(ctx, p, e, ts, 1, st);
	return km_reply_to_client(ctx, p, e, ts, 0, st);
}

/*
 * tc egress: a local backend's reply to a client (km_to_local sent it the
 * client's address), as km_xdp_reply for a remote one's.  It leaves as
 * the proxy's reply: source = proxy address and service port, request
 * id = the client's.
 */
static __always_inline int km_tc_local_reply(struct __sk_buff *skb,
					     struct km_pkt *p,
					     const struct km_config *cfg,
					     struct km_stats *st)
{
	void *end = (void *)(long)skb->data_end;
	__u16 total = bpf_ntohs(p->frame->total);
	struct km_pending *e;
	struct km_tc_hdr h;
	struct km_hdrvals v;
	__u32 idx;
	__u64 ts;
	int rc;

	e = km_pending_of(p, &idx);
	if (!e)
		return TC_ACT_OK;
	if (p->udp->dest != e->client_port ||
	    !km_pkt_addr_is(p, 1, e->family, &e->client_addr))
		return TC_ACT_OK;
	ts = e->ts;
	switch (km_reply_classify(e, idx, ts, p, end, cfg, st, 1)) {
	case KM_RC_STRAY:
		return TC_ACT_OK;
	case KM_RC_LATE:
		st->retry_late++;
		return TC_ACT_SHOT; /* the client has its answer from another */
	case KM_RC_WRITE:
		return km_tc_local_write_reply(skb, p, e, idx, ts, st);
	case KM_RC_CAPPED:
		return TC_ACT_SHOT;
	case KM_RC_HIT:
		break;
	case KM_RC_MISS:
		rc = km_tc_refetch(skb, p, e, idx, 1, cfg, st);
		if (rc >= 0)
			return rc;
		st->misses++;
		break;
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
}

/*
 * Each entry point is built twice: for IPv4 and for IPv6 (km_*6).  One
 * program walking both families' paths would be twice as much for the
 * verifier, over its limit for km_tc_clone; each copy knows its family
 * (a constant), and the other's code is not in it.  XDP has one program
 * per interface: km_xdp_rx tail-calls km_xdp_rx6 (km_progs).  tc runs
 * its filters in turn: km_tc_clone and km_tc_egress leave IPv6 frames
 * (TC_ACT_UNSPEC) to the IPv6 filters after them.  (A tail call there
 * makes the kernel refuse km_tc_clone: EINVAL once verified, on 6.18.)
 *
 * KM_PROG_FAMILIES(xdp, km_xdp_rx, ...) defines both programs, km_xdp_rx
 * and km_xdp_rx6, from km_xdp_rx_fam.
 */
#define KM_PROG_FAMILIES(sec, name, ctx_type)                                  \
	SEC(#sec)                                                              \
	int name(ctx_type ctx)                                                 \
	{                                                                      \
		return name##_fam(ctx, KM_FAM_V4);                             \
	}                                                                      \
	SEC(#sec)                                                              \
	int name##6(ctx_type ctx)                                              \
	{                                                                      \
		return name##_fam(ctx, KM_FAM_V6);                             \
	}

static __always_inline int km_xdp_rx_fam(struct xdp_md *ctx, const __u8 fam)
{
	/* read once: clang would otherwise reuse one load as a plain
	 * integer, which the verifier no longer sees as the packet's end */
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct km_config *cfg;
	struct km_stats *st;
	struct km_pkt p;

	if (fam == KM_FAM_V4 && km_l3_is_v6(data, end)) {
		bpf_tail_call(ctx, &km_progs, KM_PROG_XDP6);
		return XDP_PASS; /* no IPv6 program: kmagentd serves */
	}
	if (km_begin(data, end, &p, &cfg, &st, fam))
		return km_xdp_icmp(ctx, data, end, fam);
	if (p.udp->dest == bpf_htons(km_service_port) && km_for_us(cfg, &p))
		return km_xdp_request(ctx, &p, cfg, st);
	/* replies come to the source used towards their backend, which may
	 * be another address of ours: request id + backend identify them */
	if (p.udp->dest == bpf_htons(km_nat_port))
		return km_xdp_reply(ctx, &p, cfg, st);
	return XDP_PASS;
}

KM_PROG_FAMILIES(xdp, km_xdp_rx, struct xdp_md *) /* and km_xdp_rx6 */

/*
 * What both tc programs do first: KM_TC_OURS with p, cfg and st set, or
 * their verdict: TC_ACT_UNSPEC leaves an IPv6 frame to the IPv6 filter
 * after the IPv4 one (km_tc_clone6, km_tc_egress6), TC_ACT_OK lets
 * one that is none of ours go.
 */
#define KM_TC_OURS 101
static __always_inline int km_tc_begin(struct __sk_buff *skb, struct km_pkt *p,
				       struct km_config **cfg,
				       struct km_stats **st, const __u8 fam)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;

	if (fam == KM_FAM_V4 && km_l3_is_v6(data, end))
		return TC_ACT_UNSPEC;
	if (km_begin(data, end, p, cfg, st, fam))
		return TC_ACT_OK;
	return KM_TC_OURS;
}

static __always_inline int km_tc_clone_fam(struct __sk_buff *skb,
					   const __u8 fam)
{
	struct km_config *cfg;
	struct km_stats *st;
	union km_ip client;
	struct km_pkt p;
	int rc;

	rc = km_tc_begin(skb, &p, &cfg, &st, fam);
	if (rc != KM_TC_OURS)
		return rc;
	if (p.udp->dest == bpf_htons(km_nat_port))
		return km_tc_fallback(skb, &p, cfg, st);
	if (p.udp->dest != bpf_htons(km_service_port) || !km_for_us(cfg, &p))
		return TC_ACT_OK;
	km_pkt_saddr(&p, &client);
	if (!km_client_allowed(p.family, &client)) {
		st->denied++;
		return TC_ACT_SHOT;
	}
	rc = km_tc_write(skb, &p, cfg, st);
	if (rc == KM_TC_UP_LOCAL)
		return TC_ACT_OK; /* to the local replica, not to kmagentd */
	if (rc == TC_ACT_OK)
		st->passed_up++;
	return rc;
}

KM_PROG_FAMILIES(tc, km_tc_clone, struct __sk_buff *) /* and km_tc_clone6 */

/* Local backends' replies to clients, on their way out (see nat.bpf.h). */
static __always_inline int km_tc_egress_fam(struct __sk_buff *skb,
					    const __u8 fam)
{
	struct km_config *cfg;
	struct km_stats *st;
	struct km_pkt p;
	int rc;

	/* Received, not sent by a local socket: a write's clone (whose
	 * bpf_clone_redirect runs this program), a fallback or a forwarded
	 * frame.  A local backend's reply never is: skip the parse and the
	 * pending lookup, a third of a replicated write's BPF time here. */
	if (skb->ingress_ifindex)
		return TC_ACT_OK;
	rc = km_tc_begin(skb, &p, &cfg, &st, fam);
	if (rc != KM_TC_OURS)
		return rc;
	return km_tc_local_reply(skb, &p, cfg, st);
}

KM_PROG_FAMILIES(tc, km_tc_egress, struct __sk_buff *) /* and km_tc_egress6 */

/*
 * Never attached: kmagentd runs it (BPF_PROG_RUN, live frames) for the
 * requests whose backend did not answer in time (retry.bpf.h).
 */
SEC("xdp")
int km_xdp_retry(struct xdp_md *ctx)
{
	return km_retry(ctx);
}
