/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Header parsing and checksum arithmetic shared by the XDP and tc programs.
 * The parser checks each bound once and gives up (-1) on anything that is
 * not a plain IPv4 or IPv6 UDP datagram (no IPv4 options, no IPv6
 * extension header, no fragment): such traffic is never touched, and goes
 * up to the stack, where kmagentd serves it.
 */
#ifndef KM_PARSE_BPF_H
#define KM_PARSE_BPF_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "kmagent.h"

/*
 * Make the compiler forget what it knows about v, so that a bound check
 * written after it stays in the object for the verifier to see.
 */
#define km_barrier_var(v) asm volatile("" : "+r"(v))

#define KM_IP_MF	  0x2000
#define KM_IP_OFFSET	  0x1fff

struct km_vlan_hdr {
	__be16 tci;
	__be16 proto;
};

struct km_pkt {
	/* first, 8-byte aligned: the verifier then tracks the constant
	 * through the stack and walks one family's path, not both */
	__u64 family; /* KM_FAM_V4 or KM_FAM_V6 */
	struct ethhdr *eth;
	struct iphdr *ip;    /* IPv4 only */
	struct ipv6hdr *ip6; /* IPv6 only */
	struct udphdr *udp;
	struct km_udp_frame *frame;
	__u32 l2_len;	   /* 14, or 18 with one VLAN tag */
	__u32 payload_off; /* memcached payload, after the frame header */
	__u32 payload_len;
	__be16 vlan_tci; /* 0 when untagged */
};

/*
 * The IPv4 header (no options, no fragment) or the IPv6 header after
 * Ethernet (+ one VLAN tag), bounds-checked, with the L2 length, the tag
 * and the family; NULL for anything else.
 */
static __always_inline void *km_parse_l2(void *data, void *end, __u32 *l2_len,
					 __be16 *tci, __u8 *fam)
{
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6;
	struct iphdr *ip;
	__be16 proto;

	if ((void *)(eth + 1) > end)
		return NULL;
	proto = eth->h_proto;
	ip = (void *)(eth + 1);
	*l2_len = sizeof(*eth);
	*tci = 0;
	if (proto == bpf_htons(ETH_P_8021Q) ||
	    proto == bpf_htons(ETH_P_8021AD)) {
		struct km_vlan_hdr *vh = (void *)(eth + 1);

		if ((void *)(vh + 1) > end)
			return NULL;
		*tci = vh->tci;
		proto = vh->proto;
		ip = (void *)(vh + 1);
		*l2_len += sizeof(*vh);
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		ip6 = (void *)ip;
		if ((void *)(ip6 + 1) > end || ip6->version != 6)
			return NULL;
		*fam = KM_FAM_V6;
		return ip6;
	}
	if (proto != bpf_htons(ETH_P_IP) || (void *)(ip + 1) > end)
		return NULL;
	if (ip->version != 4 || ip->ihl != 5 ||
	    (ip->frag_off & bpf_htons(KM_IP_MF | KM_IP_OFFSET)))
		return NULL;
	*fam = KM_FAM_V4;
	return ip;
}

/* Is the frame IPv6 (after one VLAN tag, if any)? */
static __always_inline int km_l3_is_v6(void *data, void *end)
{
	struct ethhdr *eth = data;
	struct km_vlan_hdr *vh = (void *)(eth + 1);
	__be16 proto;

	if ((void *)(eth + 1) > end)
		return 0;
	proto = eth->h_proto;
	if (proto == bpf_htons(ETH_P_8021Q) ||
	    proto == bpf_htons(ETH_P_8021AD)) {
		if ((void *)(vh + 1) > end)
			return 0;
		proto = vh->proto;
	}
	return proto == bpf_htons(ETH_P_IPV6);
}

/*
 * IPv6 / UDP: p's udp and frame are set by the caller's check.  The UDP
 * checksum is mandatory in IPv6: a datagram without one is the stack's to
 * drop.  An extension header (a fragment among them) is no UDP next
 * header: not ours.
 */
static __always_inline int km_parse_udp6(struct ipv6hdr *ip6, void *end,
					 struct km_pkt *p)
{
	struct km_udp_frame *frame;
	struct udphdr *udp;
	__u16 plen, ulen;

	if (ip6->nexthdr != IPPROTO_UDP)
		return -1;
	udp = (void *)(ip6 + 1);
	frame = (void *)(udp + 1);
	if ((void *)(frame + 1) > end)
		return -1;
	plen = bpf_ntohs(ip6->payload_len);
	ulen = bpf_ntohs(udp->len);
	if (ulen < sizeof(*udp) + sizeof(*frame) || ulen != plen || !udp->check)
		return -1;
	if ((long)plen > (long)(end - (void *)(ip6 + 1)))
		return -1;
	p->ip = NULL;
	p->ip6 = ip6;
	p->udp = udp;
	p->frame = frame;
	p->payload_off =
		p->l2_len + sizeof(*ip6) + sizeof(*udp) + sizeof(*frame);
	p->payload_len = ulen - sizeof(*udp) - sizeof(*frame);
	return 0;
}

/*
 * Fill p for an Ethernet (+ one VLAN tag) / IPv4 without options or
 * fragmentation, or IPv6 without extension headers / UDP datagram carrying
 * at least a memcached frame header.  Returns 0, or -1 for anything else.
 */
static __always_inline int km_parse(void *data, void *end, struct km_pkt *p)
{
	struct km_udp_frame *frame;
	struct udphdr *udp;
	struct iphdr *ip;
	__u16 tot, ulen;
	__u8 fam = 0;

	ip = km_parse_l2(data, end, &p->l2_len, &p->vlan_tci, &fam);
	if (!ip)
		return -1;
	p->eth = data;
	/* constants, in a 64-bit field: see km_pkt */
	if (fam == KM_FAM_V6) {
		p->family = KM_FAM_V6;
		return km_parse_udp6((void *)ip, end, p);
	}
	p->family = KM_FAM_V4;
	if (ip->protocol != IPPROTO_UDP)
		return -1;
	udp = (void *)(ip + 1);
	frame = (void *)(udp + 1);
	if ((void *)(frame + 1) > end)
		return -1;
	tot = bpf_ntohs(ip->tot_len);
	ulen = bpf_ntohs(udp->len);
	if (ulen < sizeof(*udp) + sizeof(*frame) || ulen != tot - sizeof(*ip))
		return -1;
	/* tot_len may be shorter than the frame (Ethernet padding), not longer
	 */
	if ((long)tot > (long)(end - (void *)ip))
		return -1;
	p->ip = ip;
	p->ip6 = NULL;
	p->udp = udp;
	p->frame = frame;
	p->payload_off =
		p->l2_len + sizeof(*ip) + sizeof(*udp) + sizeof(*frame);
	p->payload_len = ulen - sizeof(*udp) - sizeof(*frame);
	return 0;
}

/* p's source address, as a km_ip. */
static __always_inline void km_pkt_saddr(const struct km_pkt *p, union km_ip *a)
{
	if (p->family == KM_FAM_V6) {
		__builtin_memcpy(a->v6, &p->ip6->saddr, 16);
		return;
	}
	__builtin_memset(a, 0, sizeof(*a));
	a->v4 = p->ip->saddr;
}

/* Is a (of family fam) p's source address?  Its destination (dst)? */
static __always_inline int km_pkt_addr_is(const struct km_pkt *p, int dst,
					  __u8 fam, const union km_ip *a)
{
	const __be32 *w;

	if (fam != p->family)
		return 0;
	if (p->family != KM_FAM_V6)
		return a->v4 == (dst ? p->ip->daddr : p->ip->saddr);
	w = dst ? p->ip6->daddr.in6_u.u6_addr32 : p->ip6->saddr.in6_u.u6_addr32;
	return ((a->v6[0] ^ w[0]) | (a->v6[1] ^ w[1]) | (a->v6[2] ^ w[2]) |
		(a->v6[3] ^ w[3])) == 0;
}

/*
 * One's complement arithmetic on 16-bit words as they lie in memory: the
 * sum is byte-order independent (RFC 1071), so fields are used as loaded.
 */
static __always_inline __u16 km_csum_fold(__u64 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') for one 16-bit word. */
static __always_inline __u16 km_csum_replace2(__u16 check, __u16 from, __u16 to)
{
	__u64 sum = (__u16)~check;

	sum += (__u16)~from;
	sum += to;
	return ~km_csum_fold(sum);
}

static __always_inline __u16 km_csum_replace4(__u16 check, __u32 from, __u32 to)
{
	check = km_csum_replace2(check, from >> 16, to >> 16);
	return km_csum_replace2(check, from & 0xffff, to & 0xffff);
}

/* UDP: 0 means "no checksum" and stays 0; a computed 0 is sent as ~0. */
static __always_inline void km_udp_csum_replace4(struct udphdr *udp, __u32 from,
						 __u32 to)
{
	__u16 c;

	if (!udp->check)
		return;
	c = km_csum_replace4(udp->check, from, to);
	udp->check = c ? c : 0xffff;
}

static __always_inline void km_udp_csum_replace2(struct udphdr *udp, __u16 from,
						 __u16 to)
{
	__u16 c;

	if (!udp->check)
		return;
	c = km_csum_replace2(udp->check, from, to);
	udp->check = c ? c : 0xffff;
}

static __always_inline void km_ip_set_addrs(struct iphdr *ip, __be32 saddr,
					    __be32 daddr)
{
	__u16 c = ip->check;

	c = km_csum_replace4(c, ip->saddr, saddr);
	c = km_csum_replace4(c, ip->daddr, daddr);
	ip->check = c;
	ip->saddr = saddr;
	ip->daddr = daddr;
}

/*
 * The one's complement difference between n bytes (even) at from and at
 * to, unfolded: what bpf_l3/l4_csum_replace take with size 0, and what
 * km_csum_apply adds to a checksum.  One update for several fields, not
 * one per field.
 */
static __always_inline __u32 km_csum_delta(const void *from, const void *to,
					   int n)
{
	const __u16 *a = from, *b = to;
	__u32 s = 0;
	int i;

#pragma unroll
	for (i = 0; i < n / 2; i++)
		s += (__u16)~a[i] + b[i];
	return s;
}

/* A checksum updated by km_csum_delta's d (RFC 1624 eqn. 3). */
static __always_inline __u16 km_csum_apply(__u16 check, __u32 d)
{
	return ~km_csum_fold((__u64)(__u16)~check + d);
}

/* The same for UDP: 0 stays 0 (none, IPv4), a computed 0 is sent as ~0. */
static __always_inline void km_udp_csum_apply(struct udphdr *udp, __u32 d)
{
	__u16 c;

	if (!udp->check)
		return;
	c = km_csum_apply(udp->check, d);
	udp->check = c ? c : 0xffff;
}

/* Full IPv4 header checksum (no options), for headers whose length changed. */
static __always_inline __u16 km_ip_csum(struct iphdr *ip)
{
	__u16 *w = (__u16 *)ip;
	__u64 sum = 0;
	int i;

	ip->check = 0;
#pragma unroll
	for (i = 0; i < (int)(sizeof(*ip) / 2); i++)
		sum += w[i];
	return ~km_csum_fold(sum);
}

static __always_inline void km_mac_copy(__u8 *dst, const __u8 *src)
{
	__builtin_memcpy(dst, src, ETH_ALEN);
}

#endif /* KM_PARSE_BPF_H */
