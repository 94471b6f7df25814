/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ICMP (or ICMPv6) port unreachable from a backend's host: memcached there is
 * gone (killed, restarting) while the host still answers.  The error quotes our
 * request, whose request id is its pending entry's index.  Instead of
 * letting the client wait out its timeout and the daemon its probes, the
 * kernel path stops using the backend at once (KM_BE_F_REFUSED), asks the
 * next replica for the read that bounced, and tells the daemon, whose
 * health checks take it from there.  Only an error from the backend's own
 * address, quoting a request in flight to it, is believed: a forged one
 * has to guess a live request id.
 *
 * Hosts rate-limit these errors (a burst of 6, then one a second for the
 * Linux defaults): the first one must be enough, hence the flag.
 */
#ifndef KM_ICMP_BPF_H
#define KM_ICMP_BPF_H

#include "read.bpf.h"

/* <linux/icmp.h> drags in libc headers: the 8 bytes needed here */
struct km_icmphdr {
	__u8 type;
	__u8 code;
	__be16 checksum;
	__be32 unused;
};
#define KM_ICMP_DEST_UNREACH 3
#define KM_ICMP_PORT_UNREACH 3
/* ICMPv6 (RFC 4443): the same header, other numbers */
#define KM_IPPROTO_ICMPV6      58
#define KM_ICMPV6_DEST_UNREACH 1
#define KM_ICMPV6_PORT_UNREACH 4

struct km_icmp_quote {
	__u32 l2_len;
	struct iphdr *ip;    /* the error's, from the backend's host */
	struct iphdr *qip;   /* the quoted request's */
	struct ipv6hdr *ip6; /* the same for ICMPv6 */
	struct ipv6hdr *qip6;
	struct udphdr *qudp;
	struct km_udp_frame *qframe;
};

/*
 * ICMPv6 destination unreachable / port unreachable quoting an IPv6 UDP
 * datagram with no extension header (ours never has one).
 */
static __always_inline int km_parse_icmp6(void *data, void *end,
					  struct km_icmp_quote *q)
{
	struct km_icmphdr *icmp;
	__be16 tci;
	__u8 fam;

	q->ip6 = km_parse_l2(data, end, &q->l2_len, &tci, &fam);
	if (!q->ip6 || fam != KM_FAM_V6 || q->ip6->nexthdr != KM_IPPROTO_ICMPV6)
		return -1;
	icmp = (void *)(q->ip6 + 1);
	q->qip6 = (void *)(icmp + 1);
	q->qudp = (void *)(q->qip6 + 1);
	q->qframe = (void *)(q->qudp + 1);
	if ((void *)(q->qframe + 1) > end)
		return -1;
	if (icmp->type != KM_ICMPV6_DEST_UNREACH ||
	    icmp->code != KM_ICMPV6_PORT_UNREACH)
		return -1;
	if (q->qip6->version != 6 || q->qip6->nexthdr != IPPROTO_UDP)
		return -1;
	return 0;
}

static __always_inline int
km_parse_icmp(void *data, void *end, struct km_icmp_quote *q, const __u8 fam)
{
	struct km_icmphdr *icmp;
	__be16 tci;
	__u8 l3fam;

	if (fam == KM_FAM_V6)
		return km_parse_icmp6(data, end, q);
	q->ip = km_parse_l2(data, end, &q->l2_len, &tci, &l3fam);
	if (!q->ip || l3fam != KM_FAM_V4 || q->ip->protocol != IPPROTO_ICMP)
		return -1;
	icmp = (void *)(q->ip + 1);
	q->qip = (void *)(icmp + 1);
	q->qudp = (void *)(q->qip + 1);
	q->qframe = (void *)(q->qudp + 1);
	if ((void *)(q->qframe + 1) > end)
		return -1;
	if (icmp->type != KM_ICMP_DEST_UNREACH ||
	    icmp->code != KM_ICMP_PORT_UNREACH)
		return -1;
	if (q->qip->version != 4 || q->qip->ihl != 5 ||
	    q->qip->protocol != IPPROTO_UDP)
		return -1;
	return 0;
}

/* Are the 16 bytes at w the IPv6 address a? */
static __always_inline int km_ip6_is(const void *w, const union km_ip *a)
{
	const __be32 *x = w;

	return ((x[0] ^ a->v6[0]) | (x[1] ^ a->v6[1]) | (x[2] ^ a->v6[2]) |
		(x[3] ^ a->v6[3])) == 0;
}

/* Is backend id the quoted request's destination, and the error's source? */
static __always_inline int km_quote_to(__u8 id, const struct km_icmp_quote *q,
				       const __u8 fam)
{
	struct km_backend *be = km_backend_get(id);

	if (!be || be->family != fam || be->port != q->qudp->dest)
		return 0;
	if (fam == KM_FAM_V6)
		return km_ip6_is(&q->qip6->daddr, &be->addr) &&
		       km_ip6_is(&q->ip6->saddr, &be->addr);
	return be->addr.v4 == q->qip->daddr && be->addr.v4 == q->ip->saddr;
}

/* The backend of live entry e that the quoted request went to, or NONE. */
static __always_inline __u8 km_quote_backend(const struct km_pending *e,
					     const struct km_icmp_quote *q,
					     const __u8 fam)
{
	int j;

	if (e->kind == KM_PK_GET || e->kind == KM_PK_MG)
		return km_quote_to(e->cur_be, q, fam) ? e->cur_be
						      : KM_BACKEND_NONE;
	if (e->kind != KM_PK_WRITE)
		return KM_BACKEND_NONE;
	for (j = 0; j < KM_MAX_REPLICAS; j++) {
		if (j >= e->nr_wr)
			break;
		if (km_quote_to(e->wr_be[j], q, fam))
			return e->wr_be[j];
	}
	return KM_BACKEND_NONE;
}

/*
 * Strip the error's IP and ICMP headers: what is left, once the L2 header
 * is put back in front, is the quoted request as it left here.
 */
static __always_inline int km_unwrap_quote(struct xdp_md *ctx, void *data,
					   const struct km_icmp_quote *q,
					   const __u8 fam)
{
	__u32 l2 = q->l2_len;
	__u8 hdr[18];
	void *end;
	int off = sizeof(struct iphdr) + sizeof(struct km_icmphdr);

	if (fam == KM_FAM_V6)
		off = sizeof(struct ipv6hdr) + sizeof(struct km_icmphdr);
	/* km_parse_icmp checked far more than these 18 bytes */
	__builtin_memcpy(hdr, data, sizeof(hdr));
	if (bpf_xdp_adjust_head(ctx, off))
		return -1;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + sizeof(hdr) > end)
		return -1;
	__builtin_memcpy(data, hdr, sizeof(struct ethhdr));
	if (l2 != sizeof(struct ethhdr))
		__builtin_memcpy(data + sizeof(struct ethhdr),
				 hdr + sizeof(struct ethhdr),
				 sizeof(struct km_vlan_hdr));
	return 0;
}

/* data and end: ctx's, read once by the caller (see km_xdp_rx) */
static __always_inline int km_xdp_icmp(struct xdp_md *ctx, void *data,
				       void *end, const __u8 fam)
{
	struct km_icmp_quote q;
	struct km_config *cfg;
	struct km_pending *e;
	struct km_backend *be;
	struct km_stats *st;
	struct km_pkt p;
	__u32 idx;
	__u8 id;
	int rc;

	if (!km_nat_port || km_parse_icmp(data, end, &q, fam))
		return XDP_PASS;
	if (q.qudp->source != bpf_htons(km_nat_port))
		return XDP_PASS;
	st = km_stats_get();
	cfg = km_config_get();
	if (!st || !cfg || (fam == KM_FAM_V6 && !cfg->serve_v6))
		return XDP_PASS; /* no IPv6 request of ours to bounce */
	idx = bpf_ntohs(q.qframe->rid);
	e = bpf_map_lookup_elem(&km_pending, &idx);
	if (!e || !e->ts)
		return XDP_PASS;
	id = km_quote_backend(e, &q, fam);
	be = km_backend_get(id);
	if (!be)
		return XDP_PASS;
	be->flags |= KM_BE_F_REFUSED;
	st->refused++;
	km_event_failed(KM_EV_REFUSED, id, e->slot, st);
	/*
	 * A write waits for this replica's reply in vain: the retry answers
	 * it from the replicas that did (km_xdp_retry); writes from now on
	 * skip the backend.
	 */
	if (e->kind == KM_PK_WRITE)
		return XDP_DROP;
	if (km_take(e, idx, id))
		return XDP_DROP; /* already retried elsewhere */
	if (km_unwrap_quote(ctx, data, &q, fam) ||
	    km_parse((void *)(long)ctx->data, (void *)(long)ctx->data_end,
		     &p) ||
	    p.family != fam || p.payload_len != e->req_len)
		return XDP_DROP; /* cut short: the client retries */
	/* the same length: km_xdp_emit cannot fail for want of room */
	rc = km_xdp_fallback(ctx, &p, e, idx, cfg, st);
	return rc >= 0 ? rc : XDP_DROP;
}

#endif /* KM_ICMP_BPF_H */
