/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Shared by the BPF program tests: a private network namespace with veths
 * and permanent neighbours (so bpf_fib_lookup answers), the skeleton loaded
 * under a per-run pin root, crafted frames with correct checksums, and
 * named checks that print PASS/FAIL.
 */
#ifndef KM_TEST_H
#define KM_TEST_H

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <net/if.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "kmagent.h"
#include "detach.h"
#include "kbpf.h"
#include "ring.h"

/* unused by users of the frames only, such as bench/kmbpfcost.c */
static int km_t_failed __attribute__((unused));
static int km_t_passed __attribute__((unused));

#define CHECK(cond, ...)                                                       \
	({                                                                     \
		int __ok = !!(cond);                                           \
		if (__ok) {                                                    \
			km_t_passed++;                                         \
		} else {                                                       \
			km_t_failed++;                                         \
			printf("FAIL %s:%d: ", __FILE__, __LINE__);            \
			printf(__VA_ARGS__);                                   \
			printf("\n");                                          \
		}                                                              \
		__ok;                                                          \
	})

static inline int km_t_sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	rc = system(cmd);
	if (rc)
		fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
	return rc;
}

/* ---- frames ---- */

/*
 * Header views of a byte buffer.  Header structs written through pointers
 * into a byte array break strict aliasing: gcc then reorders the writes
 * past struct copies of the frame.  Hence no-strict-aliasing for the tests.
 */
#pragma GCC optimize("no-strict-aliasing")
typedef struct iphdr km_t_iphdr;
typedef struct udphdr km_t_udphdr;
typedef struct ethhdr km_t_ethhdr;
typedef struct km_udp_frame km_t_mchdr;

struct km_t_ep {
	__u8 mac[6];
	const char *ip;
	__u16 port;
};

struct km_t_frame {
	__u8 buf[2048];
	__u32 len;
	__u32 l2; /* 14 or 18 */
};

static inline __u32 km_t_sum(const void *p, size_t len, __u32 sum)
{
	const __u8 *b = p;
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (b[i] << 8) | b[i + 1];
	if (len & 1)
		sum += b[len - 1] << 8;
	return sum;
}

static inline __u16 km_t_fold(__u32 sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return sum;
}

static inline km_t_iphdr *km_t_ip(struct km_t_frame *f)
{
	return (km_t_iphdr *)(f->buf + f->l2);
}

/*
 * The views of f's UDP datagram behind l3 bytes of IP header, for IPv4
 * (km_t_udp, km_t_mc, km_t_payload, km_t_payload_len) and IPv6 (the same
 * names ending in 6, below).
 */
#define KM_T_UDP_VIEWS(sfx, l3)                                                \
	static inline km_t_udphdr *km_t_udp##sfx(struct km_t_frame *f)         \
	{                                                                      \
		return (km_t_udphdr *)(f->buf + f->l2 + (l3));                 \
	}                                                                      \
	static inline km_t_mchdr *km_t_mc##sfx(struct km_t_frame *f)           \
	{                                                                      \
		return (km_t_mchdr *)(km_t_udp##sfx(f) + 1);                   \
	}                                                                      \
	static inline char *km_t_payload##sfx(struct km_t_frame *f)            \
	{                                                                      \
		return (char *)(km_t_mc##sfx(f) + 1);                          \
	}                                                                      \
	static inline __u32 km_t_payload_len##sfx(struct km_t_frame *f)        \
	{                                                                      \
		return ntohs(km_t_udp##sfx(f)->len) - 16;                      \
	}

KM_T_UDP_VIEWS(, sizeof(struct iphdr))

/* The UDP checksum of udp, its pseudo-header's addresses at addrs. */
static inline __u16 km_t_udp_sum(const km_t_udphdr *udp, const void *addrs,
				 size_t alen)
{
	__u16 ulen = ntohs(udp->len);
	__u32 sum = km_t_sum(addrs, alen, 0);

	sum += IPPROTO_UDP + ulen;
	sum = km_t_sum(udp, ulen, sum);
	return (__u16)~km_t_fold(sum);
}

/* Checksum of the UDP datagram as it lies in f, 0 when it is right. */
static inline __u16 km_t_udp_verify(struct km_t_frame *f)
{
	if (!km_t_udp(f)->check)
		return 0xdead; /* we never send "no checksum" here */
	return km_t_udp_sum(km_t_udp(f), &km_t_ip(f)->saddr, 8);
}

static inline __u16 km_t_ip_verify(struct km_t_frame *f)
{
	return (__u16)~km_t_fold(km_t_sum(km_t_ip(f), sizeof(struct iphdr), 0));
}

static inline void km_t_udp_fix(struct km_t_frame *f)
{
	km_t_iphdr *ip = km_t_ip(f);
	km_t_udphdr *udp = km_t_udp(f);
	__u16 c;

	udp->check = 0;
	c = km_t_udp_sum(udp, &ip->saddr, 8);
	udp->check = htons(c ? c : 0xffff);
	ip->check = 0;
	ip->check = htons(~km_t_fold(km_t_sum(ip, sizeof(*ip), 0)));
}

/* f cleared, its Ethernet header (and VLAN tag, vlan 0: none) for proto */
static inline void km_t_build_eth(struct km_t_frame *f,
				  const struct km_t_ep *src,
				  const struct km_t_ep *dst, __u16 vlan,
				  __u16 proto)
{
	km_t_ethhdr *eth = (km_t_ethhdr *)f->buf;

	memset(f, 0, sizeof(*f));
	memcpy(eth->h_dest, dst->mac, 6);
	memcpy(eth->h_source, src->mac, 6);
	f->l2 = 14;
	if (vlan) {
		__be16 tag[3] = {htons(ETH_P_8021Q), htons(vlan), htons(proto)};

		memcpy(f->buf + 12, tag, sizeof(tag));
		f->l2 = 18;
	} else {
		eth->h_proto = htons(proto);
	}
}

/* The UDP header and memcached's frame header, then the payload */
static inline void km_t_build_udp(km_t_udphdr *udp, const struct km_t_ep *src,
				  const struct km_t_ep *dst, __u16 rid,
				  __u16 seq, __u16 total, const char *payload,
				  size_t plen)
{
	km_t_mchdr *mc = (km_t_mchdr *)(udp + 1);

	udp->source = htons(src->port);
	udp->dest = htons(dst->port);
	udp->len = htons(8 + 8 + plen);
	mc->rid = htons(rid);
	mc->seq = htons(seq);
	mc->total = htons(total);
	memcpy(mc + 1, payload, plen);
}

/* A memcached UDP datagram from src to dst; vlan 0 = untagged. */
static inline void km_t_build(struct km_t_frame *f, const struct km_t_ep *src,
			      const struct km_t_ep *dst, __u16 rid, __u16 seq,
			      __u16 total, const char *payload, size_t plen,
			      __u16 vlan)
{
	km_t_iphdr *ip;

	km_t_build_eth(f, src, dst, vlan, ETH_P_IP);
	ip = km_t_ip(f);
	ip->version = 4;
	ip->ihl = 5;
	ip->ttl = 64;
	ip->protocol = IPPROTO_UDP;
	ip->id = htons(0x1234);
	inet_pton(AF_INET, src->ip, &ip->saddr);
	inet_pton(AF_INET, dst->ip, &ip->daddr);
	ip->tot_len = htons(20 + 8 + 8 + plen);
	km_t_build_udp(km_t_udp(f), src, dst, rid, seq, total, payload, plen);
	f->len = f->l2 + 20 + 8 + 8 + plen;
	if (f->len < 60)
		f->len = 60; /* Ethernet minimum, padded */
	km_t_udp_fix(f);
}

static inline __be32 km_t_addr(const char *ip)
{
	__be32 a;

	inet_pton(AF_INET, ip, &a);
	return a;
}

/* Checks common to every frame the programs send: checksums, lengths. */
static inline void km_t_check_sane(struct km_t_frame *f, const char *what)
{
	CHECK(km_t_ip_verify(f) == 0, "%s: IP checksum", what);
	CHECK(km_t_udp_verify(f) == 0, "%s: UDP checksum", what);
	CHECK(ntohs(km_t_ip(f)->tot_len) == ntohs(km_t_udp(f)->len) + 20,
	      "%s: IP/UDP lengths agree", what);
	CHECK(f->len >= f->l2 + ntohs(km_t_ip(f)->tot_len),
	      "%s: frame holds IP", what);
}

/* f goes from src to dst (MACs, addresses, ports), and is sane. */
static inline void km_t_check_to(struct km_t_frame *f,
				 const struct km_t_ep *src,
				 const struct km_t_ep *dst, const char *what)
{
	km_t_ethhdr *eth = (km_t_ethhdr *)f->buf;

	CHECK(!memcmp(eth->h_dest, dst->mac, 6), "%s: dst MAC", what);
	CHECK(!memcmp(eth->h_source, src->mac, 6), "%s: src MAC", what);
	CHECK(km_t_ip(f)->saddr == km_t_addr(src->ip), "%s: src addr", what);
	CHECK(km_t_ip(f)->daddr == km_t_addr(dst->ip), "%s: dst addr %x", what,
	      km_t_ip(f)->daddr);
	CHECK(ntohs(km_t_udp(f)->source) == src->port, "%s: src port", what);
	CHECK(ntohs(km_t_udp(f)->dest) == dst->port, "%s: dst port", what);
	km_t_check_sane(f, what);
}

static inline void km_t_check_payload(struct km_t_frame *f, const char *want,
				      const char *what)
{
	size_t n = strlen(want);

	CHECK(km_t_payload_len(f) == n && !memcmp(km_t_payload(f), want, n),
	      "%s: payload is \"%.*s\"", what, (int)n, want);
}

/* ---- IPv6 frames: the same views and checks, 40 bytes of L3 ---- */

typedef struct ipv6hdr km_t_ip6hdr;

static inline km_t_ip6hdr *km_t_ip6(struct km_t_frame *f)
{
	return (km_t_ip6hdr *)(f->buf + f->l2);
}

KM_T_UDP_VIEWS(6, sizeof(struct ipv6hdr))

/* The UDP checksum over the IPv6 pseudo-header as the frame has it. */
static inline __u16 km_t_udp6_sum(struct km_t_frame *f)
{
	return km_t_udp_sum(km_t_udp6(f), &km_t_ip6(f)->saddr, 32);
}

/* 0 when the UDP checksum is right (and not "none": invalid in IPv6). */
static inline __u16 km_t_udp6_verify(struct km_t_frame *f)
{
	if (!km_t_udp6(f)->check)
		return 0xdead;
	return km_t_udp6_sum(f);
}

static inline void km_t_udp6_fix(struct km_t_frame *f)
{
	__u16 c;

	km_t_udp6(f)->check = 0;
	c = km_t_udp6_sum(f);
	km_t_udp6(f)->check = htons(c ? c : 0xffff);
}

/* A memcached UDP datagram over IPv6 from src to dst; vlan 0 = untagged. */
static inline void km_t_build6(struct km_t_frame *f, const struct km_t_ep *src,
			       const struct km_t_ep *dst, __u16 rid, __u16 seq,
			       __u16 total, const char *payload, size_t plen,
			       __u16 vlan)
{
	km_t_ip6hdr *ip6;

	km_t_build_eth(f, src, dst, vlan, ETH_P_IPV6);
	ip6 = km_t_ip6(f);
	ip6->version = 6;
	ip6->nexthdr = IPPROTO_UDP;
	ip6->hop_limit = 64;
	ip6->payload_len = htons(8 + 8 + plen);
	inet_pton(AF_INET6, src->ip, &ip6->saddr);
	inet_pton(AF_INET6, dst->ip, &ip6->daddr);
	km_t_build_udp(km_t_udp6(f), src, dst, rid, seq, total, payload, plen);
	f->len = f->l2 + 40 + 8 + 8 + plen;
	km_t_udp6_fix(f);
}

static inline int km_t_addr6_is(const struct in6_addr *a, const char *ip)
{
	struct in6_addr b;

	return inet_pton(AF_INET6, ip, &b) == 1 && !memcmp(a, &b, sizeof(b));
}

/* f goes from src to dst over IPv6, with a right checksum and lengths. */
static inline void km_t_check_to6(struct km_t_frame *f,
				  const struct km_t_ep *src,
				  const struct km_t_ep *dst, const char *what)
{
	km_t_ethhdr *eth = (km_t_ethhdr *)f->buf;

	CHECK(!memcmp(eth->h_dest, dst->mac, 6), "%s: dst MAC", what);
	CHECK(!memcmp(eth->h_source, src->mac, 6), "%s: src MAC", what);
	CHECK(km_t_addr6_is(&km_t_ip6(f)->saddr, src->ip), "%s: src addr",
	      what);
	CHECK(km_t_addr6_is(&km_t_ip6(f)->daddr, dst->ip), "%s: dst addr",
	      what);
	CHECK(ntohs(km_t_udp6(f)->source) == src->port, "%s: src port", what);
	CHECK(ntohs(km_t_udp6(f)->dest) == dst->port, "%s: dst port", what);
	CHECK(km_t_udp6_verify(f) == 0, "%s: UDP checksum", what);
	CHECK(km_t_ip6(f)->payload_len == km_t_udp6(f)->len,
	      "%s: IPv6/UDP lengths agree", what);
	CHECK(f->len >= f->l2 + 40 + ntohs(km_t_udp6(f)->len),
	      "%s: frame holds the datagram", what);
}

static inline void km_t_check_payload6(struct km_t_frame *f, const char *want,
				       const char *what)
{
	size_t n = strlen(want);

	CHECK(km_t_payload_len6(f) == n && !memcmp(km_t_payload6(f), want, n),
	      "%s: payload is \"%.*s\"", what, (int)n, want);
}

/* A packet socket seeing every frame that goes through ifname. */
static inline int km_t_pkt_sock(const char *ifname)
{
	struct sockaddr_ll sll = {.sll_family = AF_PACKET,
				  .sll_protocol = htons(ETH_P_ALL),
				  .sll_ifindex = if_nametoindex(ifname)};
	int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, htons(ETH_P_ALL));

	if (fd < 0 || bind(fd, (struct sockaddr *)&sll, sizeof(sll))) {
		perror("packet socket");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Is f an untagged UDP frame over IPv4 (v6: IPv6) to port dport? */
static inline int km_t_is_udp_to(struct km_t_frame *f, int v6, __u16 dport)
{
	__be16 proto = ((km_t_ethhdr *)f->buf)->h_proto;

	if (v6)
		return proto == htons(ETH_P_IPV6) &&
		       km_t_ip6(f)->nexthdr == IPPROTO_UDP &&
		       ntohs(km_t_udp6(f)->dest) == dport;
	return proto == htons(ETH_P_IP) &&
	       km_t_ip(f)->protocol == IPPROTO_UDP &&
	       ntohs(km_t_udp(f)->dest) == dport;
}

/*
 * Next untagged UDP frame over IPv4 (v6: IPv6) to port dport seen on
 * packet socket fd, in 1 s.
 */
static inline int km_t_recv_fam(int fd, __u16 dport, struct km_t_frame *f,
				int v6)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	ssize_t min = 14 + (v6 ? 40 : 20) + 8 + 8, n;

	while (poll(&p, 1, 1000) == 1) {
		n = recv(fd, f->buf, sizeof(f->buf), 0);
		if (n < min)
			continue;
		f->len = n;
		f->l2 = 14;
		if (km_t_is_udp_to(f, v6, dport))
			return 0;
	}
	return -1;
}

static inline int km_t_recv_udp(int fd, __u16 dport, struct km_t_frame *f)
{
	return km_t_recv_fam(fd, dport, f, 0);
}

static inline int km_t_recv_udp6(int fd, __u16 dport, struct km_t_frame *f)
{
	return km_t_recv_fam(fd, dport, f, 1);
}

/* Run the XDP program on f in place; returns the verdict, -1 on error. */
static inline int km_t_run_xdp(int prog_fd, struct km_t_frame *f, int ifindex)
{
	struct xdp_md ctx = {.data_end = f->len, .ingress_ifindex = ifindex};
	__u8 out[sizeof(f->buf)];
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = f->buf,
		    .data_size_in = f->len, .data_out = out,
		    .data_size_out = sizeof(out), .ctx_in = &ctx,
		    .ctx_size_in = sizeof(ctx));

	if (bpf_prog_test_run_opts(prog_fd, &o)) {
		printf("test_run: %s\n", strerror(errno));
		return -1;
	}
	memcpy(f->buf, out, o.data_size_out);
	f->len = o.data_size_out;
	return o.retval;
}

static inline int km_t_run_tc(int prog_fd, struct km_t_frame *f, int ifindex)
{
	struct __sk_buff ctx = {.ifindex = ifindex};
	__u8 out[sizeof(f->buf)];
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = f->buf,
		    .data_size_in = f->len, .data_out = out,
		    .data_size_out = sizeof(out), .ctx_in = &ctx,
		    .ctx_size_in = sizeof(ctx));

	if (bpf_prog_test_run_opts(prog_fd, &o)) {
		printf("test_run tc: %s\n", strerror(errno));
		return -1;
	}
	memcpy(f->buf, out, o.data_size_out);
	f->len = o.data_size_out;
	return o.retval;
}

static inline __u64 km_t_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* ---- the programs' world ---- */

#define KM_T_SVC_PORT 11210
#define KM_T_NAT_PORT 11299
#define KM_T_MC_PORT  11211

/* The hosts km_t_world sets up: client, proxy (both ports), backends 1..3. */
static const struct km_t_ep km_t_client __attribute__((unused)) = {
	{0x02, 0, 0, 0, 0, 0x64}, "198.18.0.100", 40000};
static const struct km_t_ep km_t_proxy __attribute__((unused)) = {
	{0x02, 0, 0, 0, 0, 0x01}, "198.18.0.1", KM_T_SVC_PORT};
static const struct km_t_ep km_t_proxy_nat __attribute__((unused)) = {
	{0x02, 0, 0, 0, 0, 0x01}, "198.18.0.1", KM_T_NAT_PORT};
static const struct km_t_ep km_t_be[] __attribute__((unused)) = {
	{},
	{{0x02, 0, 0, 0, 0, 0x11}, "198.18.0.11", KM_T_MC_PORT},
	{{0x02, 0, 0, 0, 0, 0x12}, "198.18.0.12", KM_T_MC_PORT},
	{{0x02, 0, 0, 0, 0, 0x13}, "198.18.0.13", KM_T_MC_PORT},
};

/*
 * A private network namespace where bpf_fib_lookup answers: veth kv0 (the
 * proxy's NIC, 198.18.0.1/24, forwarding on) and its peer kv1, permanent
 * neighbours for km_t_client and backends km_t_be[1..nbe]; the skeleton
 * loaded under a pin root named after tag and the pid, the proxy's address
 * set, 198.18/16 allowed, the backends up and ring built with them all as
 * replicas.  The caller removes pin_root (km_bpf_detach_all).
 */
static inline int km_t_world(struct km_bpf **kb, struct km_ring *ring, int nbe,
			     const char *tag, char *pin_root, size_t n)
{
	struct km_bpf_opts o = {.service_port = KM_T_SVC_PORT,
				.nat_port = KM_T_NAT_PORT};
	struct km_ring_member m[KM_MAX_REPLICAS];
	char names[KM_MAX_REPLICAS][32];
	struct km_config cfg;
	int i;

	if (nbe < 1 || nbe >= (int)(sizeof(km_t_be) / sizeof(*km_t_be)))
		return -1;
	if (unshare(CLONE_NEWNET)) {
		perror("unshare(CLONE_NEWNET) (needs root)");
		return -1;
	}
	if (km_t_sh("ip link set lo up") ||
	    km_t_sh("ip link add kv0 address 02:00:00:00:00:01 type veth "
		    "peer name kv1") ||
	    km_t_sh("ip addr add 198.18.0.1/24 dev kv0") ||
	    km_t_sh("ip link set kv0 up && ip link set kv1 up") ||
	    /* bpf_fib_lookup answers only where forwarding is on (as
	     * km_bpf_attach sets it) */
	    km_t_sh("sysctl -qw net.ipv4.conf.kv0.forwarding=1") ||
	    km_t_sh("ip neigh add 198.18.0.100 lladdr 02:00:00:00:00:64 "
		    "dev kv0 nud permanent"))
		return -1;
	for (i = 1; i <= nbe; i++) {
		if (km_t_sh("ip neigh add %s lladdr 02:00:00:00:00:%02x dev "
			    "kv0 nud permanent",
			    km_t_be[i].ip, km_t_be[i].mac[5]))
			return -1;
		snprintf(names[i - 1], sizeof(names[i - 1]), "%s:%d",
			 km_t_be[i].ip, km_t_be[i].port);
		m[i - 1].id = i;
		m[i - 1].name = names[i - 1];
	}
	snprintf(pin_root, n, "/sys/fs/bpf/%s%d", tag, getpid());
	o.pin_root = pin_root;
	if (km_bpf_open(kb, &o)) {
		fprintf(stderr, "km_bpf_open failed\n");
		return -1;
	}
	if (km_bpf_get_config(*kb, &cfg))
		return -1;
	cfg.proxy_addr = km_t_addr(km_t_proxy.ip);
	if (km_bpf_set_config(*kb, &cfg) ||
	    km_bpf_allow_add(*kb, km_t_addr("198.18.0.0"), 16))
		return -1;
	for (i = 1; i <= nbe; i++) {
		struct km_backend b = {.addr.v4 = km_t_addr(km_t_be[i].ip),
				       .family = KM_FAM_V4,
				       .port = htons(km_t_be[i].port),
				       .state = KM_BE_UP};

		if (km_bpf_set_backend(*kb, i, &b))
			return -1;
	}
	if (km_ring_build(ring, m, nbe, nbe) || km_bpf_set_ring(*kb, ring))
		return -1;
	return 0;
}

/*
 * A table test's main: line-buffered output, one CPU (per-CPU maps, the
 * next-hop cache and the claim window are then one, pending entries are
 * claimed in a known order), setup, the tests, the count.  Returns the
 * exit status; the caller then closes what setup opened.
 */
static inline int km_t_main(int (*setup)(void), void (*tests)(void))
{
	cpu_set_t one;

	setvbuf(stdout, NULL, _IOLBF, 0);
	CPU_ZERO(&one);
	CPU_SET(0, &one);
	sched_setaffinity(0, sizeof(one), &one);
	if (setup()) {
		printf("FAIL setup\n");
		return 1;
	}
	tests();
	printf("%d checks passed, %d failed\n", km_t_passed, km_t_failed);
	return km_t_failed ? 1 : 0;
}

#endif /* KM_TEST_H */
