// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * What the kernel path's programs cost per packet, free of the lab's
 * noise: km_xdp_rx and km_tc_clone run through BPF_PROG_TEST_RUN on
 * crafted frames in a private network namespace (the BPF tests' setup),
 * one run per measurement, medians over many.  Shapes: a get request
 * routed to its primary, the hit reply going back to the client, a miss
 * turned into the request to the next replica, and a set cloned to every
 * replica (the clones leave on a veth and are dropped by its peer).
 *
 *   kmbpfcost [-n ROUNDS] [--json]
 */
#include <getopt.h>
#include <linux/if_packet.h>
#include <linux/pkt_cls.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "../tests/bpf/km_test.h"

#define SVC_PORT KM_T_SVC_PORT
#define NAT_PORT KM_T_NAT_PORT
#define MC_PORT	 KM_T_MC_PORT
#define NBE	 2

enum { S_GET, S_HIT, S_MISS, S_SET, S_WREPLY, S_NR };
static const char *const shape_name[S_NR] = {"get request", "hit reply",
					     "miss -> next replica",
					     "set clone x2", "write reply"};
static const char *const shape_prog[S_NR] = {
	"km_xdp_rx", "km_xdp_rx", "km_xdp_rx", "km_tc_clone", "km_xdp_rx"};

static struct km_bpf *kb;
static struct km_ring ring;
static int xdp_fd, tc_fd, if0, clone_fd = -1;

static int setup(char *pin_root, size_t n)
{
	struct sockaddr_ll sll = {.sll_family = AF_PACKET,
				  .sll_protocol = htons(ETH_P_IP)};
	struct timeval tmo = {.tv_sec = 1};

	if (km_t_world(&kb, &ring, NBE, "kmcost", pin_root, n))
		return -1;
	if0 = if_nametoindex("kv0");
	xdp_fd = km_bpf_xdp_fd(kb);
	tc_fd = km_bpf_tc_fd(kb);
	sll.sll_ifindex = if_nametoindex("kv1");
	/* the clones arrive on the peer, blocking: they are sent in-line */
	clone_fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_IP));
	if (clone_fd < 0 ||
	    bind(clone_fd, (struct sockaddr *)&sll, sizeof(sll)) ||
	    setsockopt(clone_fd, SOL_SOCKET, SO_RCVTIMEO, &tmo, sizeof(tmo))) {
		perror("packet socket on kv1");
		return -1;
	}
	return 0;
}

/* One run of prog on f (rewritten in place); its duration in ns. */
static long run_once(int prog_fd, int tc, struct km_t_frame *f, int *verdict)
{
	struct xdp_md xctx = {.data_end = f->len, .ingress_ifindex = if0};
	struct __sk_buff sctx = {.ifindex = if0};
	__u8 out[sizeof(f->buf)];
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = f->buf,
		    .data_size_in = f->len, .data_out = out,
		    .data_size_out = sizeof(out));

	o.ctx_in = tc ? (void *)&sctx : (void *)&xctx;
	o.ctx_size_in = tc ? sizeof(sctx) : sizeof(xctx);
	if (bpf_prog_test_run_opts(prog_fd, &o)) {
		fprintf(stderr, "test_run: %s\n", strerror(errno));
		return -1;
	}
	memcpy(f->buf, out, o.data_size_out);
	f->len = o.data_size_out;
	*verdict = o.retval;
	return o.duration;
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

/* The first replica of key's slot. */
static __u8 primary_of(const char *key)
{
	return km_ring_lookup(&ring, key, strlen(key))->be[0];
}

/*
 * One round: a get and its reply (a hit, or a miss then the hit from the
 * next replica), then a set and both of its replies (the second, which
 * answers the client, is the one timed).  Fills t[S_*], -1 where a shape
 * was not measured; returns -1 when a verdict is not the expected one.
 */
static int round_once(unsigned int i, long t[S_NR], int miss)
{
	static const char hit[] = "VALUE key:00001234 0 10\r\n0123456789\r\n"
				  "END\r\n";
	char key[32], req[64], set[96];
	struct km_t_frame f;
	__u8 pri, sec;
	int v, rid;

	snprintf(key, sizeof(key), "key:%08u", i % 100000);
	snprintf(req, sizeof(req), "get %s\r\n", key);
	pri = primary_of(key);
	sec = pri == 1 ? 2 : 1;
	km_t_build(&f, &km_t_client, &km_t_proxy, i & 0xffff, 0, 1, req,
		   strlen(req), 0);
	t[S_GET] = run_once(xdp_fd, 0, &f, &v);
	if (v != XDP_TX)
		return -1;
	rid = ntohs(km_t_mc(&f)->rid);
	if (miss) {
		km_t_build(&f, &km_t_be[pri], &km_t_proxy_nat, rid, 0, 1,
			   "END\r\n", 5, 0);
		t[S_MISS] = run_once(xdp_fd, 0, &f, &v);
		if (v != XDP_TX)
			return -1;
		km_t_build(&f, &km_t_be[sec], &km_t_proxy_nat, rid, 0, 1, hit,
			   sizeof(hit) - 1, 0);
	} else {
		km_t_build(&f, &km_t_be[pri], &km_t_proxy_nat, rid, 0, 1, hit,
			   sizeof(hit) - 1, 0);
	}
	/* a hit after a fallback also reports to read-repair: not a hit's
	 * cost, so only the plain rounds count */
	t[S_HIT] = run_once(xdp_fd, 0, &f, &v);
	if (miss)
		t[S_HIT] = -1;
	if (v != XDP_TX)
		return -1;

	snprintf(set, sizeof(set), "set %s 0 0 10\r\n0123456789\r\n", key);
	km_t_build(&f, &km_t_client, &km_t_proxy, i & 0xffff, 0, 1, set,
		   strlen(set), 0);
	t[S_SET] = run_once(tc_fd, 1, &f, &v);
	if (v != TC_ACT_SHOT)
		return -1;
	/* both clones carry the entry's index as their request id */
	rid = -1;
	for (int b = 1; b <= NBE; b++) {
		ssize_t n = recv(clone_fd, f.buf, sizeof(f.buf), 0);

		if (n < 14 + 20 + 8 + 8)
			return -1;
		f.l2 = 14;
		rid = ntohs(km_t_mc(&f)->rid);
	}
	for (int b = 1; b <= NBE; b++) {
		km_t_build(&f, &km_t_be[b], &km_t_proxy_nat, rid, 0, 1,
			   "STORED\r\n", 8, 0);
		t[S_WREPLY] = run_once(xdp_fd, 0, &f, &v);
		if (v != (b == NBE ? XDP_TX : XDP_DROP))
			return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {{"json", no_argument, NULL, 'j'},
					   {NULL, 0, NULL, 0}};
	unsigned int rounds = 20000, i, s, nr[S_NR] = {0};
	char pin_root[64] = "";
	long *t[S_NR], one[S_NR];
	int c, json = 0, rc = 1;

	while ((c = getopt_long(argc, argv, "n:", lo, NULL)) != -1) {
		if (c == 'n' && atoi(optarg) > 0) {
			rounds = atoi(optarg);
		} else if (c == 'j') {
			json = 1;
		} else {
			fprintf(stderr, "usage: kmbpfcost [-n ROUNDS] "
					"[--json]\n");
			return 2;
		}
	}
	for (s = 0; s < S_NR; s++) {
		t[s] = calloc(rounds, sizeof(long));
		if (!t[s]) {
			fprintf(stderr, "kmbpfcost: out of memory\n");
			return 1;
		}
	}
	if (setup(pin_root, sizeof(pin_root)))
		goto out;
	for (i = 0; i < rounds; i++) {
		memset(one, -1, sizeof(one));
		if (round_once(i, one, i & 1)) {
			fprintf(stderr,
				"kmbpfcost: round %u: unexpected "
				"verdict\n",
				i);
			goto out;
		}
		for (s = 0; s < S_NR; s++)
			if (one[s] >= 0)
				t[s][nr[s]++] = one[s];
	}
	for (s = 0; s < S_NR; s++)
		qsort(t[s], nr[s], sizeof(long), cmp_long);
	if (json)
		printf("{");
	for (s = 0; s < S_NR; s++) {
		long med = nr[s] ? t[s][nr[s] / 2] : -1;

		if (json)
			printf("%s\"%s\": {\"prog\": \"%s\", \"ns\": %ld, "
			       "\"runs\": %u}",
			       s ? ", " : "", shape_name[s], shape_prog[s], med,
			       nr[s]);
		else
			printf("%-22s %-12s %6ld ns (median of %u)\n",
			       shape_name[s], shape_prog[s], med, nr[s]);
	}
	if (json)
		printf("}\n");
	rc = 0;
out:
	if (clone_fd >= 0)
		close(clone_fd);
	if (kb)
		km_bpf_close(kb);
	if (pin_root[0])
		km_bpf_detach_all(pin_root, NULL);
	for (s = 0; s < S_NR; s++)
		free(t[s]);
	return rc;
}
