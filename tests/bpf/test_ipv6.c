// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * BPF_PROG_TEST_RUN tests of the kernel path for IPv6 clients and
 * backends (issue 18), on crafted frames in a private network namespace
 * (km_t_world, plus 2001:2::1/64 on kv0, IPv6 forwarding and permanent
 * IPv6 neighbours): reads routed, NAT both ways with the UDP checksum
 * recomputed and checked, the null-fallback, writes cloned by tc and
 * their replies combined, ICMPv6 port unreachable, what is passed up
 * untouched (extension headers, fragments, no checksum, truncation), the
 * allow-list and a client of the other family.  Tables of cases, as
 * test_xdp_rx.c.
 */
#include <linux/pkt_cls.h>

#include "km_test.h"

#define SVC_PORT KM_T_SVC_PORT
#define NAT_PORT KM_T_NAT_PORT
#define MC_PORT	 KM_T_MC_PORT
#define NBE	 3

static const struct km_t_ep client6 = {
	{0x02, 0, 0, 0, 0, 0x64}, "2001:2::64", 40000};
static const struct km_t_ep proxy6 = {
	{0x02, 0, 0, 0, 0, 0x01}, "2001:2::1", SVC_PORT};
static const struct km_t_ep proxy6_nat = {
	{0x02, 0, 0, 0, 0, 0x01}, "2001:2::1", NAT_PORT};
static const struct km_t_ep be6[] = {
	{},
	{{0x02, 0, 0, 0, 0, 0x11}, "2001:2::11", MC_PORT},
	{{0x02, 0, 0, 0, 0, 0x12}, "2001:2::12", MC_PORT},
	{{0x02, 0, 0, 0, 0, 0x13}, "2001:2::13", MC_PORT},
};

static struct km_bpf *kb;
static struct km_ring ring;
static int xdp_fd, tc6_fd, tc4_fd, retry_fd, q_fd, dl_fd, if0;
static char pin_root[64];

static struct km_stats stats(void)
{
	struct km_stats s = {};

	if (km_bpf_stats(kb, &s))
		printf("read stats failed\n");
	return s;
}

static const struct km_slot *slot_of(const char *key)
{
	return km_ring_lookup(&ring, key, strlen(key));
}

static int backend_flags(__u8 id)
{
	int fd = km_bpf_map_fd(kb, KM_MAP_BACKENDS);
	struct km_backend b;
	__u32 key = id;

	return bpf_map_lookup_elem(fd, &key, &b) ? -1 : b.flags;
}

/* Backend id at addr (its own when NULL), up, with flags. */
static void set_backend6_at(__u8 id, const char *addr, __u8 flags)
{
	struct km_backend b = {.family = KM_FAM_V6,
			       .port = htons(MC_PORT),
			       .state = KM_BE_UP,
			       .flags = flags};

	inet_pton(AF_INET6, addr ? addr : be6[id].ip, b.addr.v6);
	if (km_bpf_set_backend(kb, id, &b))
		printf("set backend %u failed\n", id);
}

static void set_backend6(__u8 id, __u8 flags)
{
	set_backend6_at(id, NULL, flags);
}

/*
 * km_t_world's namespace and maps, made IPv6: the proxy's address and
 * neighbours, the backends at 2001:2::1N, IPv6 served, 2001:2::/64
 * allowed.
 */
static int setup(void)
{
	struct km_config cfg;
	struct in6_addr net;
	int i;

	if (km_t_world(&kb, &ring, NBE, "kmv6", pin_root, sizeof(pin_root)))
		return -1;
	if (km_t_sh("ip -6 addr add 2001:2::1/64 dev kv0 nodad") ||
	    km_t_sh("sysctl -qw net.ipv6.conf.kv0.forwarding=1") ||
	    km_t_sh("ip -6 neigh add %s lladdr 02:00:00:00:00:64 dev kv0 "
		    "nud permanent",
		    client6.ip))
		return -1;
	for (i = 1; i <= NBE; i++) {
		if (km_t_sh("ip -6 neigh add %s lladdr 02:00:00:00:00:%02x "
			    "dev kv0 nud permanent",
			    be6[i].ip, be6[i].mac[5]))
			return -1;
		set_backend6(i, 0);
	}
	if (km_bpf_get_config(kb, &cfg))
		return -1;
	cfg.serve_v6 = KM_V6_ALL;
	inet_pton(AF_INET6, "2001:2::", &net);
	if (km_bpf_set_config(kb, &cfg) || km_bpf_allow6_add(kb, &net, 64))
		return -1;
	if0 = if_nametoindex("kv0");
	xdp_fd = km_bpf_xdp_fd(kb);
	tc4_fd = km_bpf_tc_fd(kb);
	tc6_fd = km_bpf_prog_fd(kb, "km_tc_clone6");
	retry_fd = km_bpf_prog_fd(kb, "km_xdp_retry");
	q_fd = km_bpf_map_fd(kb, KM_MAP_RETRY_Q);
	dl_fd = km_bpf_map_fd(kb, KM_MAP_DEADLINE);
	return tc6_fd < 0 || retry_fd < 0 || q_fd < 0 || dl_fd < 0 ? -1 : 0;
}

/* A get from the client, expected routed to replica be; its request id. */
static int send_get(const char *req, __u16 rid, __u16 vlan, __u8 be,
		    const char *what)
{
	struct km_t_frame f;
	int v;

	km_t_build6(&f, &client6, &proxy6, rid, 0, 1, req, strlen(req), vlan);
	v = km_t_run_xdp(xdp_fd, &f, if0);
	if (!CHECK(v == XDP_TX, "%s: XDP_TX (got %d)", what, v))
		return -1;
	CHECK(f.l2 == (vlan ? 18u : 14u) &&
		      (!vlan || ntohs(*(__be16 *)(f.buf + 14)) == vlan),
	      "%s: VLAN tag kept", what);
	km_t_check_to6(&f, &proxy6_nat, &be6[be], what);
	km_t_check_payload6(&f, req, what);
	return ntohs(km_t_mc6(&f)->rid);
}

/* A datagram from backend id to the proxy's NAT port; its verdict. */
static int reply_from(__u8 id, __u16 rid, const char *payload, __u16 vlan,
		      struct km_t_frame *f)
{
	km_t_build6(f, &be6[id], &proxy6_nat, rid, 0, 1, payload,
		    strlen(payload), vlan);
	return km_t_run_xdp(xdp_fd, f, if0);
}

/* Reads: each routed to the key's first replica, its hit back. */
static void test_reads(void)
{
	static const struct {
		const char *key, *req, *hit;
		__u16 vlan;
	} cases[] = {
		{"k6", "get k6\r\n", "VALUE k6 0 1\r\nx\r\nEND\r\n", 0},
		{"k6", "gets k6\r\n", "VALUE k6 0 1 9\r\nx\r\nEND\r\n", 0},
		{"m6", "mg m6 v\r\n", "VA 1\r\ny\r\n", 0},
		{"t6", "get t6\r\n", "VALUE t6 0 1\r\nz\r\nEND\r\n", 7},
	};
	struct km_t_frame f;
	unsigned int i;
	int idx, v;

	printf("IPv6 reads routed in the kernel, hits back to the client\n");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct km_slot *s = slot_of(cases[i].key);
		struct km_stats s0 = stats(), s1;

		idx = send_get(cases[i].req, 100 + i, cases[i].vlan, s->be[0],
			       cases[i].req);
		if (idx < 0)
			continue;
		v = reply_from(s->be[0], idx, cases[i].hit, cases[i].vlan, &f);
		CHECK(v == XDP_TX, "%s: hit forwarded (got %d)", cases[i].req,
		      v);
		km_t_check_to6(&f, &proxy6, &client6, "hit to client");
		km_t_check_payload6(&f, cases[i].hit, "hit to client");
		CHECK(ntohs(km_t_mc6(&f)->rid) == 100 + i,
		      "%s: the client's request id", cases[i].req);
		s1 = stats();
		CHECK(s1.kernel_gets == s0.kernel_gets + 1 &&
			      s1.hits == s0.hits + 1 &&
			      s1.replies == s0.replies + 1 &&
			      s1.passed_up == s0.passed_up,
		      "%s: counted as a kernel get and hit", cases[i].req);
	}
}

/* A miss on the first replica: the request goes to the second. */
static void test_fallback(void)
{
	const struct km_slot *s = slot_of("fb6");
	const char *req = "get fb6\r\n",
		   *hit = "VALUE fb6 0 2\r\nhi\r\nEND\r\n";
	struct km_stats s0 = stats(), s1;
	struct km_t_frame f;
	int idx, v;

	printf("IPv6 miss -> in-kernel fallback -> hit\n");
	idx = send_get(req, 9, 0, s->be[0], "fallback get");
	if (idx < 0)
		return;
	v = reply_from(s->be[0], idx, "END\r\n", 0, &f);
	CHECK(v == XDP_TX, "miss turned into a request (got %d)", v);
	km_t_check_to6(&f, &proxy6_nat, &be6[s->be[1]], "fallback request");
	km_t_check_payload6(&f, req, "fallback request");
	CHECK(ntohs(km_t_mc6(&f)->rid) == idx, "fallback: same request id");
	v = reply_from(s->be[1], idx, hit, 0, &f);
	CHECK(v == XDP_TX, "hit after fallback forwarded");
	km_t_check_to6(&f, &proxy6, &client6, "fallback hit");
	km_t_check_payload6(&f, hit, "fallback hit");
	s1 = stats();
	CHECK(s1.fallbacks == s0.fallbacks + 1 &&
		      s1.fallback_hits == s0.fallback_hits + 1,
	      "fallback and its hit counted");
}

/*
 * ICMPv6 destination unreachable / port unreachable from src's host,
 * quoting the IPv6 datagram in q as it left the proxy.
 */
static void build_unreach6(struct km_t_frame *f, const struct km_t_ep *src,
			   struct km_t_frame *q)
{
	__u32 qlen = 40 + ntohs(km_t_ip6(q)->payload_len);
	km_t_ip6hdr *ip6;
	__u8 *icmp;

	memset(f, 0, sizeof(*f));
	memcpy(f->buf, proxy6.mac, 6);
	memcpy(f->buf + 6, src->mac, 6);
	*(__be16 *)(f->buf + 12) = htons(ETH_P_IPV6);
	f->l2 = 14;
	ip6 = km_t_ip6(f);
	ip6->version = 6;
	ip6->nexthdr = 58; /* ICMPv6 */
	ip6->hop_limit = 64;
	ip6->payload_len = htons(8 + qlen);
	inet_pton(AF_INET6, src->ip, &ip6->saddr);
	inet_pton(AF_INET6, proxy6.ip, &ip6->daddr);
	icmp = f->buf + 14 + 40;
	icmp[0] = 1; /* destination unreachable */
	icmp[1] = 4; /* port unreachable */
	memcpy(icmp + 8, q->buf + q->l2, qlen);
	f->len = 14 + 40 + 8 + qlen;
}

static void test_refused(void)
{
	const struct km_slot *s = slot_of("icmp6");
	const char *req = "get icmp6\r\n";
	struct km_stats s0 = stats(), s1;
	struct km_t_frame f, q;
	int v;

	printf("ICMPv6 port unreachable: backend avoided, read asked again\n");
	km_t_build6(&q, &client6, &proxy6, 31, 0, 1, req, strlen(req), 0);
	v = km_t_run_xdp(xdp_fd, &q, if0);
	if (!CHECK(v == XDP_TX, "get routed (got %d)", v))
		return;
	build_unreach6(&f, &be6[s->be[0]], &q);
	v = km_t_run_xdp(xdp_fd, &f, if0);
	CHECK(v == XDP_TX,
	      "error turned into the get to the next replica "
	      "(got %d)",
	      v);
	km_t_check_to6(&f, &proxy6_nat, &be6[s->be[1]], "refetch");
	km_t_check_payload6(&f, req, "refetch");
	s1 = stats();
	CHECK(s1.refused == s0.refused + 1 && s1.fallbacks == s0.fallbacks + 1,
	      "refused and fallback counted");
	CHECK(backend_flags(s->be[0]) & KM_BE_F_REFUSED,
	      "backend flagged refused");
	/* an error from another host for the same request: not believed */
	build_unreach6(&f, &be6[s->be[2]], &q);
	CHECK(km_t_run_xdp(xdp_fd, &f, if0) == XDP_PASS,
	      "an error from another address is passed up");
	set_backend6(s->be[0], 0);
}

/*
 * km_xdp_retry on request idx overdue with deadline word w, on a copy:
 * its verdict, and the frame it made of it in f.
 */
static int run_retry(__u32 idx, __u64 w, struct km_t_frame *f)
{
	static struct km_retry_q q;
	__u32 zero = 0;

	memset(&q, 0, sizeof(q));
	q.n = 1;
	q.any_if = 1;
	q.d[0].idx = idx;
	q.d[0].w = w;
	if (bpf_map_update_elem(q_fd, &zero, &q, BPF_ANY))
		return -1;
	memset(f, 0, sizeof(*f));
	f->len = KM_RETRY_FRAME_LEN;
	f->l2 = 14;
	return km_t_run_xdp(retry_fd, f, if0);
}

static __u64 deadline(__u32 idx)
{
	__u64 w = 0;

	bpf_map_lookup_elem(dl_fd, &idx, &w);
	return w;
}

/* A silent backend's IPv6 read goes to the next replica (--udp-retry). */
static void test_retry(void)
{
	const char *req = "get rt6\r\n", *hit = "VALUE rt6 0 1\r\nr\r\nEND\r\n";
	const struct km_slot *s = slot_of("rt6");
	struct km_stats s0 = stats();
	struct km_t_frame f;
	int idx, v;
	__u64 w;

	printf("IPv6 read retried on the next replica, from a fresh frame\n");
	idx = send_get(req, 41, 0, s->be[0], "get rt6");
	if (idx < 0)
		return;
	w = deadline(idx);
	CHECK(w && (w & KM_DL_BE) == s->be[0], "deadline armed");
	v = run_retry(idx, w, &f);
	CHECK(v == XDP_TX, "retry: XDP_TX (got %d)", v);
	km_t_check_to6(&f, &proxy6_nat, &be6[s->be[1]], "retried request");
	km_t_check_payload6(&f, req, "retried request");
	CHECK(ntohs(km_t_mc6(&f)->rid) == idx, "retried: the entry's id");
	CHECK(stats().retries == s0.retries + 1, "retries counted");
	CHECK(backend_flags(s->be[0]) == KM_BE_F_SILENT,
	      "primary flagged silent");
	v = reply_from(s->be[0], idx, hit, 0, &f);
	CHECK(v == XDP_DROP, "the primary's late reply dropped (got %d)", v);
	v = reply_from(s->be[1], idx, hit, 0, &f);
	CHECK(v == XDP_TX, "the next replica's hit forwarded (got %d)", v);
	km_t_check_to6(&f, &proxy6, &client6, "hit after retry");
	km_t_check_payload6(&f, hit, "hit after retry");
	set_backend6(s->be[0], 0);
}

/* Writes: cloned by km_tc_clone6 to every replica, replies combined. */
static void test_writes(void)
{
	static const struct {
		const char *req, *reply[NBE];
		const char *want;
	} cases[] = {
		{"set w6 0 0 3\r\nabc\r\n",
		 {"STORED\r\n", "STORED\r\n", "STORED\r\n"},
		 "STORED\r\n"},
		{"delete w6\r\n",
		 {"DELETED\r\n", "NOT_FOUND\r\n", "DELETED\r\n"},
		 "DELETED\r\n"},
	};
	const struct km_slot *s = slot_of("w6");
	struct km_t_frame f, c;
	unsigned int i, j, k;
	int sock, v, idx;

	printf("IPv6 writes cloned by tc, replies combined by XDP\n");
	sock = km_t_pkt_sock("kv1");
	if (!CHECK(sock >= 0, "packet socket on kv1"))
		return;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct km_stats s0 = stats(), s1;
		int seen[NBE + 1] = {};

		km_t_build6(&f, &client6, &proxy6, 600 + i, 0, 1, cases[i].req,
			    strlen(cases[i].req), 0);
		/* the IPv4 filter leaves it to the IPv6 one */
		v = km_t_run_tc(tc4_fd, &f, if0);
		CHECK(v == TC_ACT_UNSPEC, "%.6s: IPv4 filter: next (got %d)",
		      cases[i].req, v);
		v = km_t_run_tc(tc6_fd, &f, if0);
		if (!CHECK(v == TC_ACT_SHOT, "%.6s: original dropped (got %d)",
			   cases[i].req, v))
			continue;
		idx = -1;
		for (k = 0; k < s->nr; k++) {
			if (!CHECK(!km_t_recv_udp6(sock, MC_PORT, &c),
				   "%.6s: clone %u sent", cases[i].req, k))
				break;
			for (j = 1; j <= NBE; j++)
				if (km_t_addr6_is(&km_t_ip6(&c)->daddr,
						  be6[j].ip))
					seen[j]++;
			CHECK(km_t_udp6_verify(&c) == 0 &&
				      ntohs(km_t_udp6(&c)->source) ==
					      NAT_PORT &&
				      km_t_addr6_is(&km_t_ip6(&c)->saddr,
						    proxy6.ip),
			      "%.6s: clone from the NAT port, checksum right",
			      cases[i].req);
			km_t_check_payload6(&c, cases[i].req, "clone");
			idx = ntohs(km_t_mc6(&c)->rid);
		}
		for (k = 0; k < s->nr; k++)
			CHECK(seen[s->be[k]] == 1, "%.6s: one clone to %u",
			      cases[i].req, s->be[k]);
		if (idx < 0)
			continue;
		for (k = s->nr; k-- > 0;) {
			v = reply_from(s->be[k], idx, cases[i].reply[k], 0, &f);
			CHECK(v == (k ? XDP_DROP : XDP_TX),
			      "%.6s: reply %u (got %d)", cases[i].req, k, v);
		}
		km_t_check_to6(&f, &proxy6, &client6, "write reply");
		km_t_check_payload6(&f, cases[i].want, "write reply");
		CHECK(ntohs(km_t_mc6(&f)->rid) == 600 + i,
		      "write reply: the client's request id");
		s1 = stats();
		CHECK(s1.kernel_writes == s0.kernel_writes + 1 &&
			      s1.write_clones == s0.write_clones + s->nr,
		      "%.6s: write counters", cases[i].req);
	}
	close(sock);
}

/* A write one replica never answers: the retry answers from the others. */
static void test_write_retry(void)
{
	const char *req = "set wr6 0 0 1\r\nq\r\n";
	const struct km_slot *s = slot_of("wr6");
	struct km_stats s0 = stats();
	struct km_t_frame f, c;
	int sock, v, idx = -1;
	unsigned int k;

	printf("IPv6 write with a silent replica answered by the retry\n");
	sock = km_t_pkt_sock("kv1");
	if (!CHECK(sock >= 0, "packet socket on kv1"))
		return;
	km_t_build6(&f, &client6, &proxy6, 700, 0, 1, req, strlen(req), 0);
	v = km_t_run_tc(tc6_fd, &f, if0);
	CHECK(v == TC_ACT_SHOT, "write cloned (got %d)", v);
	for (k = 0; k < s->nr; k++)
		if (!km_t_recv_udp6(sock, MC_PORT, &c))
			idx = ntohs(km_t_mc6(&c)->rid);
	close(sock);
	if (!CHECK(idx >= 0, "clones seen"))
		return;
	for (k = 0; k + 1 < s->nr; k++)
		CHECK(reply_from(s->be[k], idx, "STORED\r\n", 0, &f) ==
			      XDP_DROP,
		      "reply %u kept back", k);
	v = run_retry(idx, deadline(idx), &f);
	CHECK(v == XDP_TX, "retry answers the client (got %d)", v);
	km_t_check_to6(&f, &proxy6, &client6, "write answered by the retry");
	km_t_check_payload6(&f, "STORED\r\n", "write answered by the retry");
	CHECK(ntohs(km_t_mc6(&f)->rid) == 700, "the client's request id");
	CHECK(stats().retry_writes == s0.retry_writes + 1,
	      "retry_writes counted");
	CHECK(backend_flags(s->be[s->nr - 1]) == KM_BE_F_SILENT,
	      "the silent replica flagged");
	set_backend6(s->be[s->nr - 1], 0);
}

/*
 * A replica on the proxy's host: the get goes up the stack with the
 * client's address, the reply is caught by km_tc_egress6 on its way out;
 * a write's datagram goes up to it, after the clones to the others.
 */
static void test_local_backend(void)
{
	const char *req = "get lk6\r\n", *hit = "VALUE lk6 0 1\r\nL\r\nEND\r\n";
	const char *set = "set lk6 0 0 1\r\nL\r\n";
	const struct km_slot *s = slot_of("lk6");
	const struct km_t_ep local_be = {
		{0x02, 0, 0, 0, 0, 0x01}, "2001:2::1", MC_PORT};
	int egress_fd = km_bpf_prog_fd(kb, "km_tc_egress6");
	struct km_t_frame f;
	unsigned int k;
	int idx, v;

	printf("IPv6 local backend: up the stack, replies caught at egress\n");
	if (!CHECK(egress_fd >= 0, "km_tc_egress6 loaded"))
		return;
	set_backend6_at(s->be[0], local_be.ip, 0);
	km_t_build6(&f, &client6, &proxy6, 51, 0, 1, req, strlen(req), 0);
	v = km_t_run_xdp(xdp_fd, &f, if0);
	CHECK(v == XDP_PASS, "local get: passed up the stack (got %d)", v);
	km_t_check_to6(&f, &client6, &local_be, "local get");
	idx = ntohs(km_t_mc6(&f)->rid);
	km_t_build6(&f, &local_be, &client6, idx, 0, 1, hit, strlen(hit), 0);
	v = km_t_run_tc(egress_fd, &f, if0);
	CHECK(v == TC_ACT_OK, "local hit: let out (got %d)", v);
	km_t_check_to6(&f, &proxy6, &client6, "local hit to client");
	km_t_check_payload6(&f, hit, "local hit to client");
	CHECK(ntohs(km_t_mc6(&f)->rid) == 51, "local hit: client's rid");

	/* a local miss: on to the next (remote) replica, from egress */
	km_t_build6(&f, &client6, &proxy6, 52, 0, 1, req, strlen(req), 0);
	km_t_run_xdp(xdp_fd, &f, if0);
	idx = ntohs(km_t_mc6(&f)->rid);
	km_t_build6(&f, &local_be, &client6, idx, 0, 1, "END\r\n", 5, 0);
	v = km_t_run_tc(egress_fd, &f, if0);
	CHECK(v == TC_ACT_OK, "local miss: sent on (got %d)", v);
	km_t_check_to6(&f, &proxy6_nat, &be6[s->be[1]], "fallback from local");
	km_t_check_payload6(&f, req, "fallback from local");

	/* a write: the datagram itself goes up to the local replica */
	km_t_build6(&f, &client6, &proxy6, 53, 0, 1, set, strlen(set), 0);
	v = km_t_run_tc(tc6_fd, &f, if0);
	CHECK(v == TC_ACT_OK, "local write: up the stack (got %d)", v);
	km_t_check_to6(&f, &client6, &local_be, "local write");
	km_t_check_payload6(&f, set, "local write");
	idx = ntohs(km_t_mc6(&f)->rid);
	/* the remote replicas' replies kept, the local one's answers */
	for (k = 1; k < s->nr; k++)
		CHECK(reply_from(s->be[k], idx, "STORED\r\n", 0, &f) ==
			      XDP_DROP,
		      "remote write reply %u kept back", k);
	km_t_build6(&f, &local_be, &client6, idx, 0, 1, "STORED\r\n", 8, 0);
	v = km_t_run_tc(egress_fd, &f, if0);
	CHECK(v == TC_ACT_OK, "local write reply: let out (got %d)", v);
	km_t_check_to6(&f, &proxy6, &client6, "combined write reply");
	km_t_check_payload6(&f, "STORED\r\n", "combined write reply");
	CHECK(ntohs(km_t_mc6(&f)->rid) == 53, "write reply: client's rid");
	set_backend6(s->be[0], 0);
}

/*
 * Not the kernel's: passed up untouched, to kmagentd's socket (or the
 * stack), by XDP and by the IPv6 tc filter.
 */
static void test_passthrough(void)
{
	enum { EXT_HBH, EXT_FRAG, NO_CSUM, TRUNC, OTHER_PORT, MULTI_KEY };
	static const struct {
		const char *what;
		int how;
	} cases[] = {
		{"hop-by-hop options header", EXT_HBH},
		{"fragment header", EXT_FRAG},
		{"UDP checksum 0", NO_CSUM},
		{"payload length past the frame", TRUNC},
		{"another port", OTHER_PORT},
		{"a multi-key get", MULTI_KEY},
	};
	struct km_t_frame f, orig;
	unsigned int i;
	int v;

	printf("IPv6 frames the kernel leaves to the stack, untouched\n");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *req = cases[i].how == MULTI_KEY ? "get a b\r\n"
							    : "get k6\r\n";

		km_t_build6(&f, &client6, &proxy6, 1, 0, 1, req, strlen(req),
			    0);
		switch (cases[i].how) {
		case EXT_HBH:
			km_t_ip6(&f)->nexthdr = 0;
			break;
		case EXT_FRAG:
			km_t_ip6(&f)->nexthdr = 44;
			break;
		case NO_CSUM:
			km_t_udp6(&f)->check = 0;
			break;
		case TRUNC:
			km_t_ip6(&f)->payload_len = htons(200);
			km_t_udp6(&f)->len = htons(200);
			break;
		case OTHER_PORT:
			km_t_udp6(&f)->dest = htons(SVC_PORT + 7);
			break;
		}
		orig = f;
		v = km_t_run_xdp(xdp_fd, &f, if0);
		CHECK(v == XDP_PASS && f.len == orig.len &&
			      !memcmp(f.buf, orig.buf, f.len),
		      "%s: XDP_PASS untouched (got %d)", cases[i].what, v);
		v = km_t_run_tc(tc6_fd, &f, if0);
		CHECK(v == TC_ACT_OK && !memcmp(f.buf, orig.buf, f.len),
		      "%s: tc TC_ACT_OK untouched (got %d)", cases[i].what, v);
	}
}

/* -l ADDR6: IPv6 to that address only, IPv4 left alone. */
static void test_v6_only(void)
{
	const struct km_slot *s = slot_of("k6");
	struct km_t_ep other = proxy6;
	struct km_t_frame f, orig;
	struct km_config cfg;
	struct km_stats s0;
	int v;

	printf("-l ADDR6: only IPv6 to that address is the kernel's\n");
	if (!CHECK(!km_bpf_get_config(kb, &cfg), "config read"))
		return;
	cfg.serve_v6 = KM_V6_ONLY;
	inet_pton(AF_INET6, proxy6.ip, cfg.proxy_addr6.v6);
	km_bpf_set_config(kb, &cfg);
	s0 = stats();
	send_get("get k6\r\n", 11, 0, s->be[0], "get to the listening address");
	other.ip = "2001:2::99";
	km_t_build6(&f, &client6, &other, 12, 0, 1, "get k6\r\n", 8, 0);
	orig = f;
	v = km_t_run_xdp(xdp_fd, &f, if0);
	CHECK(v == XDP_PASS && !memcmp(f.buf, orig.buf, f.len),
	      "IPv6 to another address: untouched (%d)", v);
	km_t_build(&f, &km_t_client, &km_t_proxy, 13, 0, 1, "get k6\r\n", 8, 0);
	orig = f;
	v = km_t_run_xdp(xdp_fd, &f, if0);
	CHECK(v == XDP_PASS && !memcmp(f.buf, orig.buf, f.len),
	      "IPv4: untouched (%d)", v);
	CHECK(stats().rx_service == s0.rx_service + 1,
	      "only the get to the listening address was the kernel's");
	cfg.serve_v6 = KM_V6_ALL;
	memset(&cfg.proxy_addr6, 0, sizeof(cfg.proxy_addr6));
	km_bpf_set_config(kb, &cfg);
}

static void test_denied_and_mixed(void)
{
	struct km_t_ep outsider = client6;
	struct km_stats s0 = stats(), s1;
	const char *set = "set k6 0 0 1\r\nx\r\n";
	struct km_t_frame f;
	int v;

	printf("IPv6 clients outside km_allow6 dropped; IPv4 ones passed up\n");
	outsider.ip = "2001:2:0:1::5";
	km_t_build6(&f, &outsider, &proxy6, 1, 0, 1, "get k6\r\n", 8, 0);
	CHECK(km_t_run_xdp(xdp_fd, &f, if0) == XDP_DROP, "outsider dropped");
	km_t_build6(&f, &outsider, &proxy6, 1, 0, 1, set, strlen(set), 0);
	CHECK(km_t_run_tc(tc6_fd, &f, if0) == TC_ACT_SHOT,
	      "outsider's write dropped by tc");
	/* IPv4 client, IPv6 backends: no NAT across families */
	km_t_build(&f, &km_t_client, &km_t_proxy, 1, 0, 1, "get k6\r\n", 8, 0);
	v = km_t_run_xdp(xdp_fd, &f, if0);
	CHECK(v == XDP_PASS, "IPv4 client of IPv6 backends: passed up (%d)", v);
	km_t_build(&f, &km_t_client, &km_t_proxy, 1, 0, 1, set, strlen(set), 0);
	v = km_t_run_tc(tc4_fd, &f, if0);
	CHECK(v == TC_ACT_OK, "... and its write too (%d)", v);
	s1 = stats();
	CHECK(s1.denied == s0.denied + 2, "denied counted");
	CHECK(s1.no_route == s0.no_route + 2 &&
		      s1.kernel_gets == s0.kernel_gets &&
		      s1.kernel_writes == s0.kernel_writes,
	      "other family: counted as no route, nothing routed");
}

static void tests(void)
{
	test_reads();
	test_fallback();
	test_refused();
	test_retry();
	test_writes();
	test_write_retry();
	test_local_backend();
	test_passthrough();
	test_v6_only();
	test_denied_and_mixed();
}

int main(void)
{
	int rc = km_t_main(setup, tests);

	km_bpf_close(kb);
	km_bpf_detach_all(pin_root, NULL);
	return rc;
}
