// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * BPF_PROG_TEST_RUN tests of km_xdp_retry (bpf/retry.bpf.h) and of the
 * deadline words the data path keeps for it: a read whose backend is
 * silent goes to the next replica, once per replica; an answer that came
 * first wins, the late one is dropped; a write is answered from the
 * replicas that replied; a local replica's late answer is stopped at tc
 * egress; and in live-frame mode (as kmagentd runs it) the retried
 * request really leaves by the interface.
 */
#include <linux/if_link.h>
#include <linux/pkt_cls.h>

#include "kbpf_retry.h"
#include "km_test.h"

#define MC_PORT KM_T_MC_PORT
#define NBE	3

static struct km_bpf *kb;
static struct km_ring ring;
static int xdp_fd, tc_fd, egress_fd, retry_fd, pending_fd, dl_fd, q_fd, if0,
	if2;
static char pin_root[64];

static struct km_event last_ev, last_missed;
static int nr_ev, nr_missed;

/* Missed writes (for the journal) are kept apart from the other events. */
static int on_event(const struct km_event *ev, void *ctx)
{
	(void)ctx;
	if (ev->type == KM_EV_WRITE_MISSED) {
		last_missed = *ev;
		nr_missed++;
		return 0;
	}
	last_ev = *ev;
	nr_ev++;
	return 0;
}

static int setup(void)
{
	if (km_t_world(&kb, &ring, NBE, "kmr", pin_root, sizeof(pin_root)))
		return -1;
	/* a second NIC, whose runs must leave kv0's clients alone */
	if (km_t_sh("ip link add kv2 address 02:00:00:00:01:01 type veth "
		    "peer name kv3") ||
	    km_t_sh("ip addr add 198.18.1.1/24 dev kv2") ||
	    km_t_sh("ip link set kv2 up && ip link set kv3 up"))
		return -1;
	if0 = if_nametoindex("kv0");
	if2 = if_nametoindex("kv2");
	xdp_fd = km_bpf_xdp_fd(kb);
	tc_fd = km_bpf_tc_fd(kb);
	egress_fd = km_bpf_prog_fd(kb, "km_tc_egress");
	retry_fd = km_bpf_prog_fd(kb, "km_xdp_retry");
	pending_fd = km_bpf_map_fd(kb, KM_MAP_PENDING);
	dl_fd = km_bpf_map_fd(kb, KM_MAP_DEADLINE);
	q_fd = km_bpf_map_fd(kb, KM_MAP_RETRY_Q);
	if (retry_fd < 0 || dl_fd < 0 || q_fd < 0 || egress_fd < 0)
		return -1;
	return km_bpf_set_event_handler(kb, on_event, NULL);
}

static struct km_stats stats(void)
{
	struct km_stats s = {};

	if (km_bpf_stats(kb, &s))
		printf("read stats failed\n");
	return s;
}

static struct km_be_stats be_stats(__u8 id)
{
	struct km_be_stats s = {};

	if (km_bpf_be_stats(kb, id, &s))
		printf("read backend stats failed\n");
	return s;
}

static int backend_flags(__u8 id)
{
	int fd = km_bpf_map_fd(kb, KM_MAP_BACKENDS);
	struct km_backend b;
	__u32 key = id;

	return bpf_map_lookup_elem(fd, &key, &b) ? -1 : b.flags;
}

/* Backend id at addr (its own by default), up, no flag. */
static void set_backend(__u8 id, const char *addr)
{
	struct km_backend b = {.addr.v4 =
				       km_t_addr(addr ? addr : km_t_be[id].ip),
			       .family = KM_FAM_V4,
			       .port = htons(MC_PORT),
			       .state = KM_BE_UP};

	if (km_bpf_set_backend(kb, id, &b))
		printf("set backend %u failed\n", id);
}

static void reset_backends(void)
{
	int i;

	for (i = 1; i <= NBE; i++)
		set_backend(i, NULL);
}

static struct km_pending pending(__u32 idx)
{
	struct km_pending e = {};

	if (bpf_map_lookup_elem(pending_fd, &idx, &e))
		printf("read pending %u failed\n", idx);
	return e;
}

static __u64 deadline(__u32 idx)
{
	__u64 w = 0;

	if (bpf_map_lookup_elem(dl_fd, &idx, &w))
		printf("read deadline %u failed\n", idx);
	return w;
}

static const struct km_slot *slot_of(const char *key)
{
	return km_ring_lookup(&ring, key, strlen(key));
}

/* A get from the client, to backend expect; returns its request id. */
static int send_get(const char *req, __u16 rid, __u8 expect, const char *what)
{
	struct km_t_frame f;
	int v;

	km_t_build(&f, &km_t_client, &km_t_proxy, rid, 0, 1, req, strlen(req),
		   0);
	v = km_t_run_xdp(xdp_fd, &f, if0);
	if (!CHECK(v == XDP_TX, "%s: routed (got %d)", what, v))
		return -1;
	km_t_check_to(&f, &km_t_proxy_nat, &km_t_be[expect], what);
	return ntohs(km_t_mc(&f)->rid);
}

static int reply_from(__u8 id, __u16 rid, const char *payload,
		      struct km_t_frame *f)
{
	km_t_build(f, &km_t_be[id], &km_t_proxy_nat, rid, 0, 1, payload,
		   strlen(payload), 0);
	return km_t_run_xdp(xdp_fd, f, if0);
}

/* Queue one overdue request (idx, word w) for km_xdp_retry. */
static int queue_one(__u32 idx, __u64 w, int any_if)
{
	static struct km_retry_q q;
	__u32 zero = 0;

	memset(&q, 0, sizeof(q));
	q.n = 1;
	q.any_if = any_if;
	q.d[0].idx = idx;
	q.d[0].w = w;
	return bpf_map_update_elem(q_fd, &zero, &q, BPF_ANY);
}

static __u32 queued_state(void)
{
	static struct km_retry_q q;
	__u32 zero = 0;

	if (bpf_map_lookup_elem(q_fd, &zero, &q))
		return ~0u;
	return q.d[0].state;
}

/*
 * km_xdp_retry on the queued request, as kmagentd runs it but without
 * live frames: the verdict and the frame come back here instead of
 * leaving.  *state: what the program marked the request.
 */
static int run_retry(__u32 idx, __u64 w, int ifindex, int any_if,
		     struct km_t_frame *f, __u32 *state)
{
	int v;

	memset(f, 0, sizeof(*f));
	f->len = KM_RETRY_FRAME_LEN;
	if (queue_one(idx, w, any_if))
		return -1;
	v = km_t_run_xdp(retry_fd, f, ifindex);
	f->l2 = 14;
	*state = queued_state();
	return v;
}

static void test_read_retry(void)
{
	const char *req = "get rk1\r\n", *hit = "VALUE rk1 0 1\r\nx\r\nEND\r\n";
	const struct km_slot *s = slot_of("rk1");
	__u8 b0 = s->be[0], b1 = s->be[1];
	struct km_be_stats bs0 = be_stats(b0), bs1 = be_stats(b1);
	struct km_stats s0 = stats(), s1;
	struct km_pending e;
	struct km_t_frame f;
	__u64 w, w2;
	__u32 st;
	int idx, v;

	printf("a silent backend's read goes to the next replica\n");
	idx = send_get(req, 31, b0, "get rk1");
	if (idx < 0)
		return;
	w = deadline(idx);
	e = pending(idx);
	CHECK(w && (w & KM_DL_BE) == b0, "deadline armed for the primary");
	CHECK((w & ~KM_DL_BE) == (e.ts & ~KM_DL_BE),
	      "armed with the claim's time");
	nr_ev = nr_missed = 0;
	v = run_retry(idx, w, if0, 1, &f, &st);
	CHECK(v == XDP_TX, "retry: XDP_TX (got %d)", v);
	km_t_check_to(&f, &km_t_proxy_nat, &km_t_be[b1], "retried request");
	km_t_check_payload(&f, req, "retried request");
	CHECK(ntohs(km_t_mc(&f)->rid) == idx && ntohs(km_t_mc(&f)->total) == 1,
	      "retried request: the entry's request id");
	CHECK(st == KM_RQ_SENT, "queued request marked sent (%u)", st);
	e = pending(idx);
	CHECK(e.kind == KM_PK_GET && e.cur_be == b1 && e.nr_tried == 2 &&
		      e.tried[0] == b0 && e.tried[1] == b1 && e.retried == 1,
	      "entry: second replica asked, the first marked silent");
	w2 = deadline(idx);
	CHECK(w2 && w2 != w && (w2 & KM_DL_BE) == b1,
	      "deadline re-armed for the second replica");
	s1 = stats();
	CHECK(s1.retries == s0.retries + 1, "retries counted");
	CHECK(be_stats(b0).retried == bs0.retried + 1,
	      "backend's retried counted");
	CHECK(be_stats(b1).gets == bs1.gets + 1, "next replica's get counted");
	CHECK(backend_flags(b0) == KM_BE_F_SILENT, "primary flagged silent");
	CHECK(km_bpf_poll(kb, 100) >= 1 && nr_ev == 1 &&
		      last_ev.type == KM_EV_SILENT && last_ev.backend == b0,
	      "one silent event for the primary");

	v = run_retry(idx, w, if0, 1, &f, &st);
	CHECK(v == XDP_DROP && st == KM_RQ_NONE && deadline(idx) == w2 &&
		      stats().retries == s1.retries,
	      "the same overdue word again: nothing done, nothing disarmed");

	v = reply_from(b0, idx, hit, &f);
	CHECK(v == XDP_DROP, "the primary's late reply dropped (got %d)", v);
	CHECK(stats().retry_late == s1.retry_late + 1, "retry_late counted");
	nr_ev = 0;
	v = reply_from(b1, idx, hit, &f);
	CHECK(v == XDP_TX, "the second replica's reply forwarded (got %d)", v);
	CHECK(km_bpf_poll(kb, 50) == 0 && nr_ev == 0 &&
		      stats().fallback_hits == s1.fallback_hits,
	      "a hit after a retry is no read-repair: the primary did not "
	      "miss");
	km_t_check_to(&f, &km_t_proxy, &km_t_client, "reply to the client");
	km_t_check_payload(&f, hit, "reply to the client");
	CHECK(ntohs(km_t_mc(&f)->rid) == 31, "reply: the client's id");
	e = pending(idx);
	CHECK(e.kind == KM_PK_DONE && e.ts, "answered entry quarantined");
	CHECK(deadline(idx) == 0, "deadline disarmed by the answer");
	v = reply_from(b0, idx, hit, &f);
	CHECK(v == XDP_DROP && stats().retry_late == s1.retry_late + 2,
	      "a later reply of the primary dropped too");
	CHECK(stats().replies == s1.replies + 1, "the client got one answer");

	/* reads skip the silent primary until the daemon rewrites it */
	idx = send_get(req, 32, b1, "get rk1 again");
	if (idx >= 0)
		reply_from(b1, idx, hit, &f);
	reset_backends();
	km_bpf_poll(kb, 10);
}

/* Retried once per replica, then left to time out. */
static void test_retry_each_replica_once(void)
{
	const char *req = "get rk2\r\n";
	const struct km_slot *s = slot_of("rk2");
	struct km_stats s0 = stats();
	struct km_pending e;
	struct km_t_frame f;
	__u64 w;
	__u32 st;
	int idx, v, i;

	printf("each replica asked once, then no replica is left\n");
	idx = send_get(req, 33, s->be[0], "get rk2");
	if (idx < 0)
		return;
	for (i = 1; i < NBE; i++) {
		w = deadline(idx);
		v = run_retry(idx, w, if0, 1, &f, &st);
		CHECK(v == XDP_TX, "retry %d: sent (got %d)", i, v);
		km_t_check_to(&f, &km_t_proxy_nat, &km_t_be[s->be[i]],
			      "retry to the next replica in key order");
	}
	e = pending(idx);
	CHECK(e.nr_tried == NBE && e.cur_be == s->be[NBE - 1],
	      "every replica tried");
	w = deadline(idx);
	v = run_retry(idx, w, if0, 1, &f, &st);
	CHECK(v == XDP_DROP && st == KM_RQ_NONE, "no replica left: nothing");
	CHECK(deadline(idx) == 0, "deadline disarmed: the entry times out");
	CHECK(stats().retries == s0.retries + NBE - 1 &&
		      stats().retry_exhausted == s0.retry_exhausted + 1,
	      "retries and retry_exhausted counted");
	v = reply_from(s->be[NBE - 1], idx, "END\r\n", &f);
	CHECK(v == XDP_TX, "the last replica's miss reaches the client");
	reset_backends();
	km_bpf_poll(kb, 10);
}

/* The answer and the retry race: whoever takes the word first wins. */
static void test_answer_first(void)
{
	const char *req = "get rk3\r\n", *hit = "VALUE rk3 0 1\r\nz\r\nEND\r\n";
	const struct km_slot *s = slot_of("rk3");
	struct km_stats s0 = stats();
	struct km_t_frame f;
	__u64 w, w1;
	__u32 st;
	int idx, v;

	printf("an answer that comes first wins; a fallback re-arms\n");
	idx = send_get(req, 34, s->be[0], "get rk3");
	if (idx < 0)
		return;
	w = deadline(idx);
	v = reply_from(s->be[0], idx, hit, &f);
	CHECK(v == XDP_TX, "the answer forwarded");
	CHECK(deadline(idx) == 0, "the answer disarmed the deadline");
	v = run_retry(idx, w, if0, 1, &f, &st);
	CHECK(v == XDP_DROP && st == KM_RQ_NONE &&
		      stats().retries == s0.retries,
	      "a retry after the answer does nothing");
	CHECK(backend_flags(s->be[0]) == 0, "the backend is not flagged");

	/* a miss moves the read on: the deadline follows it */
	idx = send_get(req, 35, s->be[0], "get rk3 again");
	if (idx < 0)
		return;
	w = deadline(idx);
	v = reply_from(s->be[0], idx, "END\r\n", &f);
	CHECK(v == XDP_TX, "miss: fallback to the next replica");
	w1 = deadline(idx);
	CHECK(w1 && (w1 & KM_DL_BE) == s->be[1], "fallback re-armed");
	v = run_retry(idx, w, if0, 1, &f, &st);
	CHECK(v == XDP_DROP && deadline(idx) == w1,
	      "the word from before the fallback is stale");
	v = run_retry(idx, w1, if0, 1, &f, &st);
	CHECK(v == XDP_TX, "the fallback's own deadline retries (got %d)", v);
	km_t_check_to(&f, &km_t_proxy_nat, &km_t_be[s->be[2]],
		      "retry after a fallback");
	km_bpf_poll(kb, 10);
	nr_ev = 0;
	v = reply_from(s->be[2], idx, hit, &f);
	CHECK(v == XDP_TX, "third replica's hit forwarded");
	CHECK(km_bpf_poll(kb, 100) >= 1 && nr_ev == 1 &&
		      last_ev.type == KM_EV_FALLBACK_HIT &&
		      last_ev.nr_missed == 1 && last_ev.missed[0] == s->be[0],
	      "read-repair for the replica that missed, not the silent one");

	/*
	 * The other order, frozen half-way: a retry on another CPU has won
	 * the word (now armed for the next replica) but not yet switched
	 * the entry.  The answer of the backend it moved on from is late.
	 */
	idx = send_get(req, 38, s->be[0], "get rk3 once more");
	if (idx < 0)
		return;
	w1 = km_dl_word(deadline(idx) + 256, s->be[1]);
	bpf_map_update_elem(dl_fd, &(__u32){idx}, &w1, BPF_ANY);
	s0 = stats();
	v = reply_from(s->be[0], idx, hit, &f);
	CHECK(v == XDP_DROP && stats().retry_late == s0.retry_late + 1 &&
		      deadline(idx) == w1,
	      "lost to the retry: the answer is dropped (got %d)", v);
	w = 0;
	bpf_map_update_elem(dl_fd, &(__u32){idx}, &w, BPF_ANY);
	v = reply_from(s->be[0], idx, hit, &f);
	CHECK(v == XDP_TX, "disarmed: the awaited backend's answer goes out");
	reset_backends();
	km_bpf_poll(kb, 10);
}

/* A run for another interface leaves the request to its own run. */
static void test_other_interface(void)
{
	const struct km_slot *s = slot_of("rk4");
	struct km_t_frame f;
	__u64 w;
	__u32 st;
	int idx, v;

	printf("runs per interface, the last one takes any\n");
	idx = send_get("get rk4\r\n", 36, s->be[0], "get rk4");
	if (idx < 0)
		return;
	w = deadline(idx);
	v = run_retry(idx, w, if2, 0, &f, &st);
	CHECK(v == XDP_DROP && st == KM_RQ_TODO && deadline(idx) == w,
	      "another interface's run leaves it untouched");
	v = run_retry(idx, w, if2, 1, &f, &st);
	CHECK(v == XDP_REDIRECT && st == KM_RQ_SENT,
	      "the last run takes it, redirected to kv0 (got %d)", v);
	km_t_check_to(&f, &km_t_proxy_nat, &km_t_be[s->be[1]],
		      "retry from another interface's run");
	reply_from(s->be[1], idx, "END\r\n", &f);
	reset_backends();
	km_bpf_poll(kb, 10);
}

/* Close to its timeout an entry is not retried any more. */
static void test_old_entry(void)
{
	const struct km_slot *s = slot_of("rk5");
	struct km_config cfg;
	struct km_t_frame f;
	__u64 w;
	__u32 st;
	int idx, v;

	printf("an entry past half its timeout is forgotten, not retried\n");
	idx = send_get("get rk5\r\n", 37, s->be[0], "get rk5");
	if (idx < 0)
		return;
	w = deadline(idx);
	km_bpf_get_config(kb, &cfg);
	cfg.pending_timeout_ns = 20000000; /* 20 ms */
	km_bpf_set_config(kb, &cfg);
	usleep(30000); /* the coarse clock moves a tick at a time */
	v = run_retry(idx, w, if0, 1, &f, &st);
	CHECK(v == XDP_DROP && st == KM_RQ_NONE && deadline(idx) == 0,
	      "old entry: dropped and disarmed");
	cfg.pending_timeout_ns = KM_PENDING_TIMEOUT_NS;
	km_bpf_set_config(kb, &cfg);
	reply_from(s->be[0], idx, "END\r\n", &f);
}

/* The write of req (client rid), cloned; returns the entry's id or -1. */
static int send_write(int sock, const char *req, __u16 rid, const char *what)
{
	struct km_t_frame f, c;
	int v, i, idx = -1;

	km_t_build(&f, &km_t_client, &km_t_proxy, rid, 0, 1, req, strlen(req),
		   0);
	v = km_t_run_tc(tc_fd, &f, if0);
	if (!CHECK(v == TC_ACT_SHOT, "%s: cloned (got %d)", what, v))
		return -1;
	for (i = 0; i < NBE; i++)
		if (CHECK(!km_t_recv_udp(sock, MC_PORT, &c), "%s: clone %d",
			  what, i))
			idx = ntohs(km_t_mc(&c)->rid);
	return idx;
}

static void test_write_retry(void)
{
	const char *req = "set wk1 0 0 1\r\nx\r\n";
	const struct km_slot *s = slot_of("wk1");
	struct km_stats s0 = stats();
	struct km_config cfg;
	struct km_t_frame f;
	__u64 w, w2;
	__u32 st;
	int sock, idx, v;

	printf("a write is answered from the replicas that replied\n");
	sock = km_t_pkt_sock("kv1");
	if (!CHECK(sock >= 0, "packet socket on kv1"))
		return;
	idx = send_write(sock, req, 40, "set wk1");
	if (idx < 0)
		goto out;
	w = deadline(idx);
	CHECK(w && (w & KM_DL_BE) == 0, "write deadline armed");
	CHECK(reply_from(s->be[1], idx, "STORED\r\n", &f) == XDP_DROP &&
		      reply_from(s->be[2], idx, "STORED\r\n", &f) == XDP_DROP,
	      "two replies kept back: the primary is awaited");
	nr_ev = nr_missed = 0;
	v = run_retry(idx, w, if0, 1, &f, &st);
	CHECK(v == XDP_TX && st == KM_RQ_SENT, "retry answers (got %d)", v);
	km_t_check_to(&f, &km_t_proxy, &km_t_client, "write answer");
	km_t_check_payload(&f, "STORED\r\n", "write answer");
	CHECK(ntohs(km_t_mc(&f)->rid) == 40, "write answer: the client's id");
	CHECK(stats().retry_writes == s0.retry_writes + 1,
	      "retry_writes counted");
	CHECK(pending(idx).kind == KM_PK_DONE && deadline(idx) == 0,
	      "entry quarantined, deadline disarmed");
	CHECK(backend_flags(s->be[0]) == KM_BE_F_SILENT &&
		      km_bpf_poll(kb, 100) >= 1 &&
		      last_ev.type == KM_EV_SILENT &&
		      last_ev.backend == s->be[0],
	      "the silent primary flagged and reported");
	CHECK(nr_missed == 1 && last_missed.nr_missed == 1 &&
		      last_missed.missed[0] == s->be[0] &&
		      last_missed.key_len == 3 &&
		      !memcmp(last_missed.key, "wk1", 3),
	      "its missed write reported with the key, for the journal");
	v = reply_from(s->be[0], idx, "STORED\r\n", &f);
	CHECK(v == XDP_DROP && stats().retry_late == s0.retry_late + 1,
	      "the primary's late reply dropped");
	CHECK(stats().replies == s0.replies + 1, "the client got one answer");
	reset_backends();

	/* nobody has answered: looked at again one delay later */
	idx = send_write(sock, req, 41, "set wk1 again");
	if (idx < 0)
		goto out;
	w = deadline(idx);
	usleep(20000); /* a tick of the coarse clock */
	v = run_retry(idx, w, if0, 1, &f, &st);
	w2 = deadline(idx);
	CHECK(v == XDP_DROP && w2 && w2 != w && st == KM_RQ_NONE,
	      "no reply yet: nothing sent, deadline moved on");
	reply_from(s->be[0], idx, "STORED\r\n", &f);
	reply_from(s->be[1], idx, "STORED\r\n", &f);
	v = reply_from(s->be[2], idx, "STORED\r\n", &f);
	CHECK(v == XDP_TX && deadline(idx) == 0,
	      "the last reply answers and disarms");

	/* policy first: the first reply has answered, nothing to retry */
	km_bpf_get_config(kb, &cfg);
	cfg.write_policy = KM_WP_FIRST;
	km_bpf_set_config(kb, &cfg);
	idx = send_write(sock, req, 42, "set wk1 first");
	if (idx >= 0) {
		w = deadline(idx);
		CHECK(reply_from(s->be[1], idx, "STORED\r\n", &f) == XDP_TX,
		      "first: the first reply answers");
		v = run_retry(idx, w, if0, 1, &f, &st);
		CHECK(v == XDP_DROP && deadline(idx) == 0,
		      "first: the retry only disarms");
		reply_from(s->be[0], idx, "STORED\r\n", &f);
		reply_from(s->be[2], idx, "STORED\r\n", &f);
	}
	cfg.write_policy = KM_WP_PRIMARY;
	km_bpf_set_config(kb, &cfg);
out:
	close(sock);
	reset_backends();
	km_bpf_poll(kb, 10);
}

/*
 * A local backend (on the proxy's own address: requests go up the stack,
 * replies leave by tc egress) that is silent: the retry goes to a remote
 * replica, and the local one's late answer is stopped at egress.
 */
static void test_local_silent(void)
{
	const char *req = "get rk6\r\n", *hit = "VALUE rk6 0 1\r\nl\r\nEND\r\n";
	const struct km_slot *s = slot_of("rk6");
	const struct km_t_ep local_be = {
		{0x02, 0, 0, 0, 0, 0x01}, "198.18.0.1", MC_PORT};
	struct km_stats s0 = stats();
	struct km_t_frame f;
	__u32 st;
	int idx, v;

	printf("a silent local backend: retried remotely, stopped at egress\n");
	set_backend(s->be[0], local_be.ip);
	km_t_build(&f, &km_t_client, &km_t_proxy, 50, 0, 1, req, strlen(req),
		   0);
	v = km_t_run_xdp(xdp_fd, &f, if0);
	CHECK(v == XDP_PASS, "local get: up the stack (got %d)", v);
	idx = ntohs(km_t_mc(&f)->rid);
	v = run_retry(idx, deadline(idx), if0, 1, &f, &st);
	CHECK(v == XDP_TX, "retried to a remote replica (got %d)", v);
	km_t_check_to(&f, &km_t_proxy_nat, &km_t_be[s->be[1]],
		      "retry from a local backend");
	CHECK(!pending(idx).local, "entry no longer local");
	km_t_build(&f, &local_be, &km_t_client, idx, 0, 1, hit, strlen(hit), 0);
	v = km_t_run_tc(egress_fd, &f, if0);
	CHECK(v == TC_ACT_SHOT, "the local late answer stopped (got %d)", v);
	CHECK(stats().retry_late == s0.retry_late + 1, "counted late");
	v = reply_from(s->be[1], idx, hit, &f);
	CHECK(v == XDP_TX, "the remote answer forwarded");
	reset_backends();

	/* the other way round: a silent remote, a local replica next */
	set_backend(s->be[1], local_be.ip);
	idx = send_get(req, 51, s->be[0], "get rk6 remote first");
	if (idx < 0)
		return;
	v = run_retry(idx, deadline(idx), if0, 1, &f, &st);
	CHECK(v == XDP_PASS, "retried to the local replica (got %d)", v);
	km_t_check_to(&f, &km_t_client, &local_be, "retry up the stack");
	km_t_check_payload(&f, req, "retry up the stack");
	CHECK(pending(idx).local, "entry local");
	km_t_build(&f, &local_be, &km_t_client, idx, 0, 1, hit, strlen(hit), 0);
	v = km_t_run_tc(egress_fd, &f, if0);
	CHECK(v == TC_ACT_OK && ntohs(km_t_mc(&f)->rid) == 51,
	      "the local answer goes out as the proxy's (got %d)", v);
	km_t_check_to(&f, &km_t_proxy, &km_t_client, "local answer");
	reset_backends();
	km_bpf_poll(kb, 10);
}

static __u32 queued_ifindex(void)
{
	static struct km_retry_q q;
	__u32 zero = 0;

	if (bpf_map_lookup_elem(q_fd, &zero, &q))
		return 0;
	return q.d[0].ifindex;
}

/*
 * What kmagentd does: live frames where the host allows them, else copy
 * mode (it sends the frame the run gives back).  Either way the retried
 * request must really leave by kv0 (seen on kv1, whose XDP_PASS program
 * lets veth hand a live XDP frame over).
 */
static void test_frames_leave(int live)
{
	const struct bpf_insn pass[] = {
		{.code = BPF_ALU64 | BPF_MOV | BPF_K,
		 .dst_reg = BPF_REG_0,
		 .imm = XDP_PASS},
		{.code = BPF_JMP | BPF_EXIT},
	};
	static const __u8 frame[KM_RETRY_FRAME_LEN];
	const struct km_slot *s = slot_of("rk7");
	struct xdp_md ctx = {.data_end = sizeof(frame), .ingress_ifindex = if0};
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame,
		    .data_size_in = sizeof(frame), .ctx_in = &ctx,
		    .ctx_size_in = sizeof(ctx), .repeat = 1,
		    .flags = BPF_F_TEST_XDP_LIVE_FRAMES);
	struct km_retry_tx tx = {-1, -1, -1};
	int sock = -1, pfd, idx, got = 0, i, v, err;
	struct km_t_frame f;
	__u32 st;

	printf("%s: the retried request leaves by the interface\n",
	       live ? "live frames" : "copy mode");
	pfd = bpf_prog_load(BPF_PROG_TYPE_XDP, "km_t_pass", "GPL", pass, 2,
			    NULL);
	if (!CHECK(pfd >= 0 && !bpf_xdp_attach(if_nametoindex("kv1"), pfd,
					       XDP_FLAGS_DRV_MODE, NULL),
		   "XDP_PASS on kv1"))
		return;
	sock = km_t_pkt_sock("kv1");
	if (!CHECK(sock >= 0, "packet socket on kv1"))
		goto out;
	if (!live && !CHECK(!(err = km_retry_tx_open(&tx)),
			    "copy mode's sockets: %s", strerror(-err)))
		goto out;
	idx = send_get("get rk7\r\n", 60, s->be[0], "get rk7");
	if (idx < 0)
		goto out;
	if (live) {
		if (!CHECK(!queue_one(idx, deadline(idx), 1), "queued"))
			goto out;
		if (bpf_prog_test_run_opts(retry_fd, &o) &&
		    (errno == EPERM || errno == EOPNOTSUPP)) {
			/* kmagentd's auto mode then uses copies: tested too */
			printf("SKIP live frames: this host refuses them (%s); "
			       "copy mode is tested instead\n",
			       strerror(errno));
			goto out;
		}
		CHECK(queued_state() == KM_RQ_SENT, "marked sent");
	} else {
		v = run_retry(idx, deadline(idx), if0, 1, &f, &st);
		CHECK(v == XDP_TX && st == KM_RQ_SENT, "XDP_TX, marked sent");
		CHECK(queued_ifindex() == (__u32)if0, "its interface recorded");
		err = km_retry_tx_send(&tx, v, f.buf, f.len, if0,
				       queued_ifindex());
		CHECK(!err, "sent by kmagentd: %s", strerror(-err));
	}
	for (i = 0; i < 10 && !got; i++) {
		if (km_t_recv_udp(sock, MC_PORT, &f))
			break;
		got = ntohs(km_t_mc(&f)->rid) == idx &&
		      km_t_ip(&f)->daddr == km_t_addr(km_t_be[s->be[1]].ip);
	}
	if (CHECK(got, "the retry left kv0 for the second replica")) {
		km_t_check_to(&f, &km_t_proxy_nat, &km_t_be[s->be[1]],
			      live ? "live retry" : "copied retry");
		km_t_check_payload(&f, "get rk7\r\n",
				   live ? "live retry" : "copied retry");
	}
	reply_from(s->be[1], idx, "END\r\n", &f);
out:
	km_retry_tx_close(&tx);
	if (sock >= 0)
		close(sock);
	bpf_xdp_detach(if_nametoindex("kv1"), 0, NULL);
	close(pfd);
	reset_backends();
	km_bpf_poll(kb, 10);
}

static void tests(void)
{
	test_read_retry();
	test_retry_each_replica_once();
	test_answer_first();
	test_other_interface();
	test_old_entry();
	test_write_retry();
	test_local_silent();
	test_frames_leave(1);
	test_frames_leave(0);
}

int main(void)
{
	int rc = km_t_main(setup, tests);

	km_bpf_close(kb);
	km_bpf_detach_all(pin_root, NULL);
	return rc;
}
