// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Table-driven BPF_PROG_TEST_RUN tests of the tc programs, as Katran's
 * fixtures are: each case is the map state it needs (which replica of the
 * key is on this host, which owe writes, whether kmagentd's heartbeat
 * lasts), an input frame, the verdict expected of km_tc_clone or
 * km_tc_egress, the frame expected out of it, and the clones expected on
 * the wire (seen by a packet socket on the veth's peer).
 */
#include <linux/pkt_cls.h>

#include "km_test.h"

#define MC_PORT KM_T_MC_PORT
#define NBE	2 /* two replicas per key: both backends */

static struct km_bpf *kb;
static struct km_ring ring;
static int xdp_fd, clone_fd, egress_fd, pending_fd, if0, sock = -1;
static char pin_root[64];

/* The replica on this host: the proxy's own address. */
static const struct km_t_ep local_be = {
	{0x02, 0, 0, 0, 0, 0x01}, "198.18.0.1", MC_PORT};

/* Who a frame is from or to, as a case names it. */
enum ep {
	EP_NONE, /* no frame expected: the program dropped it */
	EP_CLIENT,
	EP_PROXY,     /* the service port */
	EP_PROXY_NAT, /* the NAT port, towards backends */
	EP_LOCAL,     /* the key's replica on this host */
	EP_REPLICA0,  /* the key's first replica, remote */
	EP_REPLICA1,
};

enum prog {
	P_CLONE,  /* km_tc_clone: a client's request at ingress */
	P_EGRESS, /* km_tc_egress: a local backend's reply to a read */
};

struct tc_case {
	const char *name;
	enum prog prog;
	const char *key;
	const char *req;   /* the client's request (P_EGRESS: a get, by XDP) */
	const char *reply; /* P_EGRESS: the local backend's reply */
	int local;	   /* replica index on this host, -1: none */
	__u8 owes;	   /* bit i: replica i has KM_BE_F_OWES */
	__u8 fenced;	   /* bit i: replica i has KM_BE_F_FENCED */
	int daemon;	   /* kmagentd's heartbeat lasts */
	int verdict;
	enum ep out_src, out_dst; /* the frame the program lets out */
	const char *out_payload;  /* NULL: the request's */
	int clones;		  /* to remote replicas, on the wire */
	int first;		  /* the write entry's first replica (index) */
};

static const struct tc_case cases[] = {
	{.name = "set cloned to two remote replicas",
	 .key = "tk-set",
	 .req = "set tk-set 0 0 3\r\nabc\r\n",
	 .local = -1,
	 .verdict = TC_ACT_SHOT,
	 .clones = 2},
	{.name = "set with a local replica: one clone, the datagram up",
	 .key = "tk-set",
	 .req = "set tk-set 0 0 3\r\nabc\r\n",
	 .local = 0,
	 .verdict = TC_ACT_OK,
	 .out_src = EP_CLIENT,
	 .out_dst = EP_LOCAL,
	 .clones = 1},
	{.name = "add left to kmagentd while its heartbeat lasts",
	 .key = "tk-add",
	 .req = "add tk-add 0 0 1\r\nx\r\n",
	 .local = -1,
	 .daemon = 1,
	 .verdict = TC_ACT_OK,
	 .out_src = EP_CLIENT,
	 .out_dst = EP_PROXY},
	{.name = "add cloned once the heartbeat has lapsed",
	 .key = "tk-add",
	 .req = "add tk-add 0 0 1\r\nx\r\n",
	 .local = -1,
	 .verdict = TC_ACT_SHOT,
	 .clones = 2},
	{.name = "cas left to kmagentd even with its heartbeat lapsed",
	 .key = "tk-cas",
	 .req = "cas tk-cas 0 0 1 5\r\nx\r\n",
	 .local = -1,
	 .verdict = TC_ACT_OK,
	 .out_src = EP_CLIENT,
	 .out_dst = EP_PROXY},
	{.name = "delete whose every replica owes writes passed up",
	 .key = "tk-del",
	 .req = "delete tk-del\r\n",
	 .local = -1,
	 .owes = 3,
	 .daemon = 1,
	 .verdict = TC_ACT_OK,
	 .out_src = EP_CLIENT,
	 .out_dst = EP_PROXY},
	{.name = "delete whose every replica owes, kmagentd gone: cloned",
	 .key = "tk-del",
	 .req = "delete tk-del\r\n",
	 .local = -1,
	 .owes = 3,
	 .verdict = TC_ACT_SHOT,
	 .clones = 2},
	{.name = "delete whose first replica owes: the other answers",
	 .key = "tk-del",
	 .req = "delete tk-del\r\n",
	 .local = -1,
	 .owes = 1,
	 .daemon = 1,
	 .verdict = TC_ACT_SHOT,
	 .clones = 2,
	 .first = 1},
	{.name = "delete whose first replica is fenced: the other answers",
	 .key = "tk-del",
	 .req = "delete tk-del\r\n",
	 .local = -1,
	 .fenced = 1,
	 .daemon = 1,
	 .verdict = TC_ACT_SHOT,
	 .clones = 2,
	 .first = 1},
	{.name = "delete whose every replica is fenced passed up",
	 .key = "tk-del",
	 .req = "delete tk-del\r\n",
	 .local = -1,
	 .fenced = 3,
	 .daemon = 1,
	 .verdict = TC_ACT_OK,
	 .out_src = EP_CLIENT,
	 .out_dst = EP_PROXY},
	{.name = "local backend's get hit at egress: to the client",
	 .prog = P_EGRESS,
	 .key = "tk-get",
	 .req = "get tk-get\r\n",
	 .reply = "VALUE tk-get 0 1\r\nL\r\nEND\r\n",
	 .local = 0,
	 .verdict = TC_ACT_OK,
	 .out_src = EP_PROXY,
	 .out_dst = EP_CLIENT,
	 .out_payload = "VALUE tk-get 0 1\r\nL\r\nEND\r\n"},
	{.name = "local backend's get miss at egress: to the next replica",
	 .prog = P_EGRESS,
	 .key = "tk-get",
	 .req = "get tk-get\r\n",
	 .reply = "END\r\n",
	 .local = 0,
	 .verdict = TC_ACT_OK,
	 .out_src = EP_PROXY_NAT,
	 .out_dst = EP_REPLICA1},
};

static const struct km_t_ep *ep_of(enum ep ep, const struct km_slot *s)
{
	switch (ep) {
	case EP_CLIENT:
		return &km_t_client;
	case EP_PROXY:
		return &km_t_proxy;
	case EP_PROXY_NAT:
		return &km_t_proxy_nat;
	case EP_LOCAL:
		return &local_be;
	case EP_REPLICA0:
		return &km_t_be[s->be[0]];
	case EP_REPLICA1:
		return &km_t_be[s->be[1]];
	default:
		return NULL;
	}
}

static int set_backend(__u8 id, const char *ip, __u8 flags)
{
	struct km_backend b = {.addr.v4 = km_t_addr(ip),
			       .family = KM_FAM_V4,
			       .port = htons(MC_PORT),
			       .state = KM_BE_UP,
			       .flags = flags};

	return km_bpf_set_backend(kb, id, &b);
}

/* The case's map state: backends (local, owing), kmagentd's heartbeat. */
static int arrange(const struct tc_case *c, const struct km_slot *s)
{
	struct km_config cfg;
	int i;

	for (i = 0; i < s->nr; i++)
		if (set_backend(s->be[i],
				i == c->local ? local_be.ip
					      : km_t_be[s->be[i]].ip,
				((c->owes >> i) & 1 ? KM_BE_F_OWES : 0) |
					((c->fenced >> i) & 1 ? KM_BE_F_FENCED
							      : 0)))
			return -1;
	if (km_bpf_get_config(kb, &cfg))
		return -1;
	cfg.daemon_until_ns = c->daemon ? km_t_now_ns() + 60000000000ull : 0;
	return km_bpf_set_config(kb, &cfg);
}

/* Frames left on the wire by an earlier case. */
static void drain(void)
{
	struct km_t_frame f;

	while (recv(sock, f.buf, sizeof(f.buf), 0) > 0)
		;
}

/* The clones on the wire: one to each remote replica, one request id. */
static void check_clones(const struct tc_case *c, const struct km_slot *s,
			 int *rid)
{
	int n, i, seen[KM_MAX_REPLICAS] = {};
	struct km_t_frame f;

	*rid = -1;
	for (n = 0; !km_t_recv_udp(sock, MC_PORT, &f); n++) {
		km_t_check_sane(&f, c->name);
		CHECK(km_t_ip(&f)->saddr == km_t_addr(km_t_proxy.ip) &&
			      ntohs(km_t_udp(&f)->source) == KM_T_NAT_PORT,
		      "%s: clone %d from the proxy's NAT port", c->name, n);
		km_t_check_payload(&f, c->req, c->name);
		for (i = 0; i < s->nr; i++)
			if (i != c->local &&
			    km_t_ip(&f)->daddr ==
				    km_t_addr(km_t_be[s->be[i]].ip))
				seen[i]++;
		if (*rid < 0)
			*rid = ntohs(km_t_mc(&f)->rid);
		CHECK(ntohs(km_t_mc(&f)->rid) == *rid,
		      "%s: one request id on every clone", c->name);
	}
	CHECK(n == c->clones, "%s: %d clones (got %d)", c->name, c->clones, n);
	for (i = 0; i < s->nr && c->clones; i++)
		if (i != c->local)
			CHECK(seen[i] == 1, "%s: one clone to replica %d",
			      c->name, i);
}

/* A cloned write's entry: every replica awaited, c->first's first. */
static void check_entry(const struct tc_case *c, const struct km_slot *s,
			int rid)
{
	struct km_pending e;
	__u32 idx = rid;

	if (!CHECK(rid >= 0 && !bpf_map_lookup_elem(pending_fd, &idx, &e),
		   "%s: write entry readable", c->name))
		return;
	CHECK(e.ts && e.kind == KM_PK_WRITE && e.nr_wr == s->nr,
	      "%s: write entry awaits %d replies", c->name, s->nr);
	CHECK(e.wr_be[0] == s->be[c->first],
	      "%s: replica %d answers the client", c->name, c->first);
}

/* P_EGRESS: the get, routed by XDP to the local replica; its reply. */
static int egress_input(const struct tc_case *c, struct km_t_frame *f)
{
	int v, idx;

	km_t_build(f, &km_t_client, &km_t_proxy, 700, 0, 1, c->req,
		   strlen(c->req), 0);
	v = km_t_run_xdp(xdp_fd, f, if0);
	if (!CHECK(v == XDP_PASS, "%s: get up to the local replica (%d)",
		   c->name, v))
		return -1;
	idx = ntohs(km_t_mc(f)->rid);
	km_t_build(f, &local_be, &km_t_client, idx, 0, 1, c->reply,
		   strlen(c->reply), 0);
	return 0;
}

static void run_case(const struct tc_case *c)
{
	const struct km_slot *s = km_ring_lookup(&ring, c->key, strlen(c->key));
	const char *payload = c->out_payload ? c->out_payload : c->req;
	struct km_stats s0 = {}, s1 = {};
	struct km_t_frame f;
	int v, rid;

	printf("%s\n", c->name);
	if (!CHECK(s && s->nr == NBE && !arrange(c, s), "%s: arranged",
		   c->name))
		return;
	drain();
	km_bpf_stats(kb, &s0);
	if (c->prog == P_EGRESS) {
		if (egress_input(c, &f))
			return;
		v = km_t_run_tc(egress_fd, &f, if0);
	} else {
		km_t_build(&f, &km_t_client, &km_t_proxy, 700, 0, 1, c->req,
			   strlen(c->req), 0);
		v = km_t_run_tc(clone_fd, &f, if0);
	}
	km_bpf_stats(kb, &s1);
	CHECK(v == c->verdict, "%s: verdict %d (got %d)", c->name, c->verdict,
	      v);
	if (c->out_dst != EP_NONE) {
		km_t_check_to(&f, ep_of(c->out_src, s), ep_of(c->out_dst, s),
			      c->name);
		km_t_check_payload(&f, payload, c->name);
	}
	if (c->out_dst == EP_CLIENT)
		CHECK(ntohs(km_t_mc(&f)->rid) == 700, "%s: the client's rid",
		      c->name);
	if (c->prog == P_EGRESS)
		return;
	if (c->out_dst == EP_PROXY)
		CHECK(s1.passed_up == s0.passed_up + 1 &&
			      s1.kernel_writes == s0.kernel_writes,
		      "%s: passed up to kmagentd, counted", c->name);
	check_clones(c, s, &rid);
	if (c->clones) {
		CHECK(s1.kernel_writes == s0.kernel_writes + 1,
		      "%s: kernel write counted", c->name);
		check_entry(c, s, rid);
	}
}

static int setup(void)
{
	if (km_t_world(&kb, &ring, NBE, "kmtc", pin_root, sizeof(pin_root)))
		return -1;
	if0 = if_nametoindex("kv0");
	xdp_fd = km_bpf_xdp_fd(kb);
	clone_fd = km_bpf_prog_fd(kb, "km_tc_clone");
	egress_fd = km_bpf_prog_fd(kb, "km_tc_egress");
	pending_fd = km_bpf_map_fd(kb, KM_MAP_PENDING);
	sock = km_t_pkt_sock("kv1");
	return xdp_fd < 0 || clone_fd < 0 || egress_fd < 0 || pending_fd < 0 ||
			       sock < 0
		       ? -1
		       : 0;
}

static void tests(void)
{
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i]);
}

int main(void)
{
	int rc = km_t_main(setup, tests);

	if (sock >= 0)
		close(sock);
	km_bpf_close(kb);
	km_bpf_detach_all(pin_root, NULL);
	return rc;
}
