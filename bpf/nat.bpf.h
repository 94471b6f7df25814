/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Routing and rewriting: where a datagram goes (FIB and neighbour
 * lookups, their per-CPU cache; the headers towards a backend, a client,
 * kmagentd), and the rewrite of a parsed XDP frame or tc skb: header-only
 * NAT with incremental checksum updates, and whole-payload replacement
 * (fallback request, combined write reply) with the checksums recomputed
 * from scratch.
 */
#ifndef KM_NAT_BPF_H
#define KM_NAT_BPF_H

#include "parse.bpf.h"
#include "maps.bpf.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

/* km_fib: dst is an address of this host (a local backend). */
#define KM_FIB_LOCAL 1

/* The lookup's addresses, by family; -1 for a destination never routed. */
static __always_inline int km_fib_addrs(struct bpf_fib_lookup *f, __u8 fam,
					const union km_ip *src,
					const union km_ip *dst)
{
	if (fam == KM_FAM_V6) {
		/* ::1 arriving on a NIC is a martian: leave it to kmagentd */
		if (!(dst->v6[0] | dst->v6[1] | dst->v6[2] |
		      (dst->v6[3] ^ bpf_htonl(1))))
			return -1;
		f->family = AF_INET6;
		__builtin_memcpy(f->ipv6_src, src->v6, 16);
		__builtin_memcpy(f->ipv6_dst, dst->v6, 16);
		return 0;
	}
	/* 127/8 arriving on a NIC is a martian: leave it to kmagentd */
	if ((bpf_ntohl(dst->v4) >> 24) == 127)
		return -1;
	f->family = AF_INET;
	f->ipv4_src = src->v4;
	f->ipv4_dst = dst->v4;
	return 0;
}

/*
 * Next hop towards backend be, for a request of family fam from src: 0,
 * KM_FIB_LOCAL (v holds only the addresses), or -1 when the kernel cannot
 * forward there (no route, neighbour unknown, a backend of the other
 * family: NAT does not translate between them).
 */
static __always_inline int km_fib_in(void *ctx, struct bpf_fib_lookup *f,
				     __u8 fam, const union km_ip *src,
				     const struct km_backend *be, __u32 ifindex,
				     struct km_hdrvals *v)
{
	long rc;

	if (be->family != fam)
		return -1;
	__builtin_memset(f, 0, sizeof(*f));
	if (km_fib_addrs(f, fam, src, &be->addr))
		return -1;
	f->l4_protocol = IPPROTO_UDP;
	f->ifindex = ifindex;
	rc = bpf_fib_lookup(ctx, f, sizeof(*f), 0);
	v->saddr = *src;
	v->daddr = be->addr;
	if (rc == BPF_FIB_LKUP_RET_NOT_FWDED)
		return KM_FIB_LOCAL; /* a local route (or another non-unicast)
				      */
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return -1;
	__builtin_memcpy(v->dmac, f->dmac, ETH_ALEN);
	__builtin_memcpy(v->smac, f->smac, ETH_ALEN);
	v->ifindex = f->ifindex;
	return 0;
}

static __always_inline int km_fib(void *ctx, __u8 fam, const union km_ip *src,
				  const struct km_backend *be, __u32 ifindex,
				  struct km_hdrvals *v)
{
	struct bpf_fib_lookup f;

	return km_fib_in(ctx, &f, fam, src, be, ifindex, v);
}

/*
 * A per-CPU cache of km_fib's answer for each backend, valid for
 * KM_NH_TTL_NS: a FIB and neighbour lookup per get costs more than all
 * the rest of the routing.  A changed route or neighbour is seen at most
 * that late.
 */
#define KM_NH_TTL_NS (50ull * 1000 * 1000)

/*
 * A km_hdrvals copied word by word: a struct copy is loaded whole into
 * registers first, and their spills alone overflowed the stack frames.
 */
static __always_inline void km_hv_copy(struct km_hdrvals *dst,
				       const struct km_hdrvals *src)
{
	__u32 *d = (__u32 *)dst;
	const __u32 *s = (const __u32 *)src;
	int i;

	for (i = 0; i < (int)(sizeof(*dst) / 4); i++) {
		__u32 w = s[i];

		km_barrier_var(w);
		d[i] = w;
	}
}

/* f: km_fib_in's lookup buffer */
static __always_inline int
km_fib_cached_in(void *ctx, struct bpf_fib_lookup *f, __u8 fam,
		 const union km_ip *src, __u32 id, const struct km_backend *be,
		 __u32 ifindex, __u64 now, struct km_hdrvals *v)
{
	struct km_nexthop *nh = bpf_map_lookup_elem(&km_nexthop, &id);
	int rc;

	if (nh && nh->ts && (__s64)(now - nh->ts) < (__s64)KM_NH_TTL_NS &&
	    km_ip_eq(&nh->src, src) && km_ip_eq(&nh->dst, &be->addr) &&
	    nh->in_ifindex == ifindex && be->family == fam) {
		km_hv_copy(v, &nh->v);
		return nh->rc;
	}
	rc = km_fib_in(ctx, f, fam, src, be, ifindex, v);
	if (nh && rc >= 0) {
		km_hv_copy(&nh->v, v);
		nh->rc = rc;
		nh->src = *src;
		nh->dst = be->addr;
		nh->in_ifindex = ifindex;
		nh->ts = now;
	}
	return rc;
}

static __always_inline int km_fib_cached(void *ctx, __u8 fam,
					 const union km_ip *src, __u32 id,
					 const struct km_backend *be,
					 __u32 ifindex, __u64 now,
					 struct km_hdrvals *v)
{
	struct bpf_fib_lookup f;

	return km_fib_cached_in(ctx, &f, fam, src, id, be, ifindex, now, v);
}

static __always_inline int km_xdp_out(struct xdp_md *ctx, __u32 ifindex)
{
	if (ifindex == ctx->ingress_ifindex)
		return XDP_TX;
	/* a constant either way: callers then know the verdict is >= 0 */
	return bpf_redirect(ifindex, 0) == XDP_REDIRECT ? XDP_REDIRECT
							: XDP_ABORTED;
}

/*
 * A request to a backend on this host goes up the stack, so it keeps the
 * client's address and port (a local source address arriving on the NIC
 * would be a martian); only the destination port and the request id
 * change.  The backend answers the client directly, and km_tc_egress
 * catches that answer on its way out.
 */
static __always_inline void km_to_local(const struct km_pending *e,
					const struct km_backend *be, __u32 idx,
					struct km_hdrvals *v)
{
	km_mac_copy(v->dmac, e->proxy_mac);
	km_mac_copy(v->smac, e->client_mac);
	v->saddr = e->client_addr;
	v->daddr = be->addr;
	v->sport = e->client_port;
	v->dport = be->port;
	v->rid = bpf_htons(idx);
	v->ifindex = 0;
}

/* A request to a remote backend leaves from the proxy's NAT port. */
static __always_inline void km_to_remote(const struct km_backend *be, __u32 idx,
					 struct km_hdrvals *v)
{
	v->sport = bpf_htons(km_nat_port);
	v->dport = be->port;
	v->rid = bpf_htons(idx);
}

/*
 * The client's request as it first came (client to proxy's service port,
 * client's request id): what kmagentd's UDP socket must see when the
 * kernel hands a request up halfway.
 */
static __always_inline void km_to_service(const struct km_pending *e,
					  struct km_hdrvals *v)
{
	km_mac_copy(v->dmac, e->proxy_mac);
	km_mac_copy(v->smac, e->client_mac);
	v->saddr = e->client_addr;
	v->daddr = e->proxy_addr;
	v->sport = e->client_port;
	v->dport = bpf_htons(km_service_port);
	v->rid = e->client_rid;
	v->ifindex = e->ifindex;
}

/*
 * Header-only rewrite: MACs, addresses, ports, request id.  One checksum
 * update for the addresses (and the IPv4 header's), one for the ports and
 * the request id.
 */
static __always_inline void km_nat(struct km_pkt *p, const struct km_hdrvals *v)
{
	struct udphdr *udp = p->udp;
	struct {
		__be16 sport, dport, rid;
	} pr = {udp->source, udp->dest, p->frame->rid};
	struct ipv6hdr *ip6 = p->ip6;
	struct iphdr *ip = p->ip;
	__u32 d;

	km_mac_copy(p->eth->h_dest, v->dmac);
	km_mac_copy(p->eth->h_source, v->smac);
	if (p->family == KM_FAM_V6 && ip6) {
		/* saddr and daddr, 32 bytes, in the header as in v */
		d = km_csum_delta(&ip6->saddr, &v->saddr, 32);
		__builtin_memcpy(&ip6->saddr, &v->saddr, 32);
	} else if (ip) {
		d = km_csum_delta(&ip->saddr, &v->saddr.v4, 4) +
		    km_csum_delta(&ip->daddr, &v->daddr.v4, 4);
		ip->check = km_csum_apply(ip->check, d);
		ip->saddr = v->saddr.v4;
		ip->daddr = v->daddr.v4;
	} else {
		return;
	}
	d += km_csum_delta(&pr, &v->sport, 6);
	km_udp_csum_apply(udp, d);
	udp->source = v->sport;
	udp->dest = v->dport;
	p->frame->rid = v->rid;
}

/*
 * Checksum of UDP header + frame header + payload (summed: payload_sum),
 * from source s to destination d.  The pseudo-header's addresses are
 * summed as km_ip's: IPv4 in the first word, zeros after.
 */
static __always_inline __u16 km_udp_csum_full(const union km_ip *s,
					      const union km_ip *d,
					      const struct udphdr *udp,
					      const struct km_udp_frame *f,
					      __u32 payload_sum)
{
	const __u16 *a = (const __u16 *)s, *b = (const __u16 *)d;
	__u64 sum = payload_sum;
	__u16 c;
	int i;

#pragma unroll
	for (i = 0; i < 8; i++)
		sum += a[i] + b[i];
	sum += bpf_htons(IPPROTO_UDP);
	sum += udp->len; /* pseudo-header */
	sum += udp->source;
	sum += udp->dest;
	sum += udp->len;
	sum += f->rid;
	sum += f->seq;
	sum += f->total;
	sum += f->reserved;
	c = ~km_csum_fold(sum);
	return c ? c : 0xffff;
}

/*
 * The UDP and frame headers of a single datagram of len payload bytes
 * (summed: payload_sum) with v's ports and request id, and its checksum.
 */
static __always_inline void km_udp_frame_set(struct udphdr *udp,
					     struct km_udp_frame *f,
					     const struct km_hdrvals *v,
					     __u32 len, __u32 payload_sum)
{
	udp->source = v->sport;
	udp->dest = v->dport;
	udp->len = bpf_htons(sizeof(*udp) + sizeof(*f) + len);
	f->rid = v->rid;
	f->seq = 0;
	f->total = bpf_htons(1);
	f->reserved = 0;
	udp->check =
		km_udp_csum_full(&v->saddr, &v->daddr, udp, f, payload_sum);
}

/* km_xdp_emit's failures: the frame is intact, or it is not. */
#define KM_EMIT_NOROOM -1 /* no tailroom to grow: nothing changed */
#define KM_EMIT_BROKEN -2 /* half-written: drop it */

/*
 * Replace the payload after the frame header with len bytes of src (a map
 * value, zero-padded to a multiple of 4, whose one's complement sum is
 * sum), as a single datagram with every header set from v.  Growing needs
 * tailroom, which a driver may not give (veth hands small skbs over as
 * they are): KM_EMIT_NOROOM, and the caller leaves the job to tc.
 */
static __always_inline int km_xdp_emit(struct xdp_md *ctx, struct km_pkt *p,
				       const struct km_hdrvals *v,
				       const char *src, __u32 len, __u32 sum)
{
	__u32 l2 = p->l2_len, ulen;
	struct ipv6hdr *ip6;
	struct km_udp_frame *f;
	struct udphdr *udp;
	struct ethhdr *eth;
	struct iphdr *ip;
	void *data, *end;
	int v6 = p->family == KM_FAM_V6;

	if (len < 1 || len > KM_REQ_MAX)
		return KM_EMIT_NOROOM;
	if (bpf_xdp_adjust_tail(ctx, (int)len - (int)p->payload_len))
		return KM_EMIT_NOROOM;
	if (bpf_xdp_store_bytes(ctx, p->payload_off, (void *)src, len))
		return KM_EMIT_BROKEN;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	ip = data + sizeof(*eth);
	if (l2 != sizeof(*eth))
		ip = data + sizeof(*eth) + sizeof(struct km_vlan_hdr);
	ip6 = (void *)ip;
	udp = v6 ? (void *)(ip6 + 1) : (void *)(ip + 1);
	f = (void *)(udp + 1);
	if ((void *)(f + 1) > end)
		return KM_EMIT_BROKEN;
	km_mac_copy(eth->h_dest, v->dmac);
	km_mac_copy(eth->h_source, v->smac);
	ulen = sizeof(*udp) + sizeof(*f) + len;
	if (v6) {
		ip6->payload_len = bpf_htons(ulen);
		__builtin_memcpy(&ip6->saddr, &v->saddr, 32);
	} else {
		ip->tot_len = bpf_htons(sizeof(*ip) + ulen);
		ip->saddr = v->saddr.v4;
		ip->daddr = v->daddr.v4;
		ip->check = km_ip_csum(ip);
	}
	km_udp_frame_set(udp, f, v, len, sum);
	return 0;
}

/* ---- replies and rewrites that read a pending entry ---- */

/* The address the proxy answers from: cfg's, else the one p was sent to. */
static __always_inline void km_proxy_addr(const struct km_config *cfg,
					  const struct km_pkt *p,
					  union km_ip *a)
{
	if (p->family == KM_FAM_V6) {
		__builtin_memcpy(a->v6, &p->ip6->daddr, 16);
		return;
	}
	__builtin_memset(a, 0, sizeof(*a));
	a->v4 = cfg->proxy_addr ?: p->ip->daddr;
}

/* The entry's client as the destination of a reply. */
static __always_inline void km_to_client(const struct km_pending *e,
					 struct km_hdrvals *v)
{
	km_mac_copy(v->dmac, e->client_mac);
	km_mac_copy(v->smac, e->proxy_mac);
	v->saddr = e->proxy_addr;
	v->daddr = e->client_addr;
	v->sport = bpf_htons(km_service_port);
	v->dport = e->client_port;
	v->rid = e->client_rid;
	v->ifindex = e->ifindex;
}

/* ---- tc: rewriting an skb ---- */

#define KM_L4_CSUM_FLAGS (BPF_F_MARK_MANGLED_0)

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

/* skb from l2 on: the hlen bytes of headers at h, then len bytes of src. */
static __always_inline int km_tc_store_dgram(struct __sk_buff *skb, __u32 l2,
					     const void *h, __u32 hlen,
					     const char *src, __u32 len)
{
	if (bpf_skb_change_tail(skb, l2 + hlen + len, 0) ||
	    bpf_skb_store_bytes(skb, l2 + hlen, src, len, 0) ||
	    bpf_skb_store_bytes(skb, l2, h, hlen, 0))
		return -1;
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
	km_udp_frame_set(&h.udp, &h.f, v, len, sum);
	return km_tc_store_dgram(skb, l2, &h, sizeof(h), src, len);
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
	km_udp_frame_set(&h.udp, &h.f, v, len, sum);
	return km_tc_store_dgram(skb, l2, &h, sizeof(h), src, len);
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

#endif /* KM_NAT_BPF_H */
