/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Header parsing and checksum arithmetic shared by the XDP and tc programs.
 * The parser checks each bound once and gives up (-1) on anything that is
 * not a plain IPv4 UDP datagram: such traffic is never touched.
 */
#ifndef KM_PARSE_BPF_H
#define KM_PARSE_BPF_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
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
	struct ethhdr *eth;
	struct iphdr *ip;
	struct udphdr *udp;
	struct km_udp_frame *frame;
	__u32 l2_len;	   /* 14, or 18 with one VLAN tag */
	__u32 payload_off; /* memcached payload, after the frame header */
	__u32 payload_len;
	__be16 vlan_tci; /* 0 when untagged */
};

/*
 * The IPv4 header after Ethernet (+ one VLAN tag), bounds-checked, with
 * the L2 length and the tag; NULL for anything else.
 */
static __always_inline struct iphdr *km_parse_l2(void *data, void *end,
						 __u32 *l2_len, __be16 *tci)
{
	struct ethhdr *eth = data;
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
	if (proto != bpf_htons(ETH_P_IP) || (void *)(ip + 1) > end)
		return NULL;
	if (ip->version != 4 || ip->ihl != 5 ||
	    (ip->frag_off & bpf_htons(KM_IP_MF | KM_IP_OFFSET)))
		return NULL;
	return ip;
}

/*
 * Fill p for an Ethernet (+ one VLAN tag) / IPv4 without options or
 * fragmentation / UDP datagram carrying at least a memcached frame header.
 * Returns 0, or -1 for anything else.
 */
static __always_inline int km_parse(void *data, void *end, struct km_pkt *p)
{
	struct km_udp_frame *frame;
	struct udphdr *udp;
	struct iphdr *ip;
	__u16 tot, ulen;

	ip = km_parse_l2(data, end, &p->l2_len, &p->vlan_tci);
	if (!ip || ip->protocol != IPPROTO_UDP)
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
	p->eth = data;
	p->ip = ip;
	p->udp = udp;
	p->frame = frame;
	p->payload_off =
		p->l2_len + sizeof(*ip) + sizeof(*udp) + sizeof(*frame);
	p->payload_len = ulen - sizeof(*udp) - sizeof(*frame);
	return 0;
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
