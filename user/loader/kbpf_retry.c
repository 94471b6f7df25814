// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The kernel path's retry thread (kmagentd --udp-retry): every few ms,
 * look through km_deadline (mmap'ed: no system call while nothing is
 * overdue) for requests whose backend has not answered within the retry
 * delay, queue them in km_retry_q and run km_xdp_retry over them with
 * BPF_PROG_RUN in live-frame mode, which sends what the program makes of
 * each frame: the read to the next replica, the write's answer to its
 * client (bpf/retry.bpf.h).  One run per attached interface, the client's
 * first, as a frame handed to the stack enters by the run's interface.
 *
 * Also clears KM_BE_F_SILENT a while after the kernel set it, so that a
 * backend that was only slow gets reads again (and one still silent is
 * flagged again at its next overdue read, and reported again to health).
 */
#include <errno.h>
#include <net/if.h>
#include <pthread.h>
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "daemon.h"
#include "kbpf.h"
#include "kbpf_retry.h"
#include "log.h"
#include "mcclient.h"
#include "retry.h"

/* Batches run a scan at most: a bound on the CPU one scan may take. */
#define KM_RETRY_MAX_BATCHES 4

static struct {
	int prog_fd, backends_fd;
	const volatile __u64 *dl; /* km_deadline, KM_PENDING_SLOTS words */
	struct km_retry_q *q;	  /* km_retry_q's one entry */
	size_t q_len;
	int ifindex[KM_MAX_IFACES];
	unsigned int nr_ifindex;
	__u32 cursor;
	__u64 silent_due_ms[KM_MAX_BACKENDS]; /* atomic; 0 = nothing due */
	pthread_t thread;
	int up;
	int copy; /* copy mode: we send what each run makes */
	struct km_retry_tx tx;
	volatile int stop;
	long long warned_ms;
	km_kretry_repush_fn repush;
} km_kr = {.prog_fd = -1, .backends_fd = -1, .tx = {-1, -1}};

/* A run failed: say so at most once a minute, not once per scan. */
static void km_kr_warn(const char *what, int err)
{
	long long now = km_now_ms();

	if (km_kr.warned_ms && now - km_kr.warned_ms < 60000)
		return;
	km_kr.warned_ms = now;
	km_warn("kernel path: retry: %s: %s\n", what, strerror(err));
}

static int km_kr_todo_left(unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (__atomic_load_n(&km_kr.q->d[i].state, __ATOMIC_RELAXED) ==
		    KM_RQ_TODO)
			return 1;
	return 0;
}

int km_retry_tx_open(struct km_retry_tx *tx)
{
	int one = 1;

	tx->raw_fd = tx->raw6_fd = -1;
	tx->pkt_fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (tx->pkt_fd < 0)
		return -errno;
	/* as XDP_TX and XDP_REDIRECT frames: past the qdisc and tc egress */
	if (setsockopt(tx->pkt_fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one,
		       sizeof(one)))
		km_debug("retry: PACKET_QDISC_BYPASS: %s\n", strerror(errno));
	tx->raw_fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
	if (tx->raw_fd < 0) {
		int err = -errno;

		km_retry_tx_close(tx);
		return err;
	}
	/* IPPROTO_RAW: the IPv6 header is ours too (IPV6_HDRINCL) */
	tx->raw6_fd = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
	if (tx->raw6_fd < 0)
		km_debug("retry: raw IPv6 socket: %s\n", strerror(errno));
	return 0;
}

void km_retry_tx_close(struct km_retry_tx *tx)
{
	if (tx->pkt_fd >= 0)
		close(tx->pkt_fd);
	if (tx->raw_fd >= 0)
		close(tx->raw_fd);
	if (tx->raw6_fd >= 0)
		close(tx->raw6_fd);
	tx->pkt_fd = tx->raw_fd = tx->raw6_fd = -1;
}

/* The IPv6 packet of an XDP_PASS frame into the stack. */
static int km_retry_tx_stack6(const struct km_retry_tx *tx, const __u8 *pkt,
			      size_t len)
{
	struct sockaddr_in6 to = {.sin6_family = AF_INET6};

	if (tx->raw6_fd < 0)
		return -EAFNOSUPPORT;
	if (len < 40)
		return -EINVAL;
	memcpy(&to.sin6_addr, pkt + 24, sizeof(to.sin6_addr));
	if (sendto(tx->raw6_fd, pkt, len, 0, (struct sockaddr *)&to,
		   sizeof(to)) < 0)
		return -errno;
	return 0;
}

/* An XDP_PASS frame: its IP packet into the stack, to its destination. */
static int km_retry_tx_stack(const struct km_retry_tx *tx, const __u8 *frame,
			     size_t len)
{
	size_t l2 = sizeof(struct ethhdr);
	struct sockaddr_in to = {.sin_family = AF_INET};
	__be16 proto;

	if (len < l2 + 20)
		return -EINVAL;
	memcpy(&proto, frame + 12, sizeof(proto));
	if (proto == htons(ETH_P_8021Q)) {
		l2 += 4;
		if (len < l2)
			return -EINVAL;
		memcpy(&proto, frame + l2 - 2, sizeof(proto));
	}
	if (proto == htons(ETH_P_IPV6))
		return km_retry_tx_stack6(tx, frame + l2, len - l2);
	if (len < l2 + 20)
		return -EINVAL;
	memcpy(&to.sin_addr, frame + l2 + 16, sizeof(to.sin_addr));
	if (sendto(tx->raw_fd, frame + l2, len - l2, 0, (struct sockaddr *)&to,
		   sizeof(to)) < 0)
		return -errno;
	return 0;
}

int km_retry_tx_send(const struct km_retry_tx *tx, int verdict,
		     const void *frame, size_t len, int ingress_if,
		     int redirect_if)
{
	struct sockaddr_ll to = {.sll_family = AF_PACKET,
				 .sll_halen = ETH_ALEN};

	switch (verdict) {
	case XDP_TX:
	case XDP_REDIRECT:
		if (len < sizeof(struct ethhdr))
			return -EINVAL;
		to.sll_ifindex = verdict == XDP_TX ? ingress_if : redirect_if;
		memcpy(to.sll_addr, frame, ETH_ALEN);
		if (sendto(tx->pkt_fd, frame, len, 0, (struct sockaddr *)&to,
			   sizeof(to)) < 0)
			return -errno;
		return 0;
	case XDP_PASS:
		return km_retry_tx_stack(tx, frame, len);
	default:
		return 0; /* nothing to send */
	}
}

/* One run on a copy entering ifindex; we send what it makes of it. */
static int km_kr_run_copy(int ifindex)
{
	static const __u8 frame[KM_RETRY_FRAME_LEN];
	__u8 out[KM_RETRY_FRAME_LEN + 256];
	struct xdp_md ctx = {.data_end = sizeof(frame),
			     .ingress_ifindex = ifindex};
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame,
		    .data_size_in = sizeof(frame), .data_out = out,
		    .data_size_out = sizeof(out), .ctx_in = &ctx,
		    .ctx_size_in = sizeof(ctx), .repeat = 1);
	__u32 taken;
	int err;

	if (bpf_prog_test_run_opts(km_kr.prog_fd, &o))
		return -errno;
	/* runs are one at a time here: the one it took is next - 1 */
	taken = __atomic_load_n(&km_kr.q->next, __ATOMIC_RELAXED) - 1;
	if (taken >= KM_RETRY_BATCH)
		return 0;
	err = km_retry_tx_send(&km_kr.tx, o.retval, out, o.data_size_out,
			       ifindex, km_kr.q->d[taken].ifindex);
	if (err)
		km_kr_warn("send a retried frame", -err);
	return 0;
}

/* The live way: one BPF_PROG_RUN takes every queued request. */
static int km_kr_run_live(int ifindex, unsigned int n)
{
	static const __u8 frame[KM_RETRY_FRAME_LEN];
	struct xdp_md ctx = {.data_end = sizeof(frame),
			     .ingress_ifindex = ifindex};
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame,
		    .data_size_in = sizeof(frame), .ctx_in = &ctx,
		    .ctx_size_in = sizeof(ctx), .repeat = n ? n : 1,
		    .flags = BPF_F_TEST_XDP_LIVE_FRAMES);

	return bpf_prog_test_run_opts(km_kr.prog_fd, &o) ? -errno : 0;
}

/* km_xdp_retry over the n requests queued in km_kr.q->d. */
static void km_kr_run(unsigned int n)
{
	unsigned int i, k;
	int err = 0;

	km_kr.q->n = n;
	for (i = 0; i < km_kr.nr_ifindex; i++) {
		km_kr.q->next = 0;
		km_kr.q->any_if = i + 1 == km_kr.nr_ifindex;
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (!km_kr.copy)
			err = km_kr_run_live(km_kr.ifindex[i], n);
		for (k = 0; km_kr.copy && !err && k < n; k++)
			err = km_kr_run_copy(km_kr.ifindex[i]);
		if (err) {
			km_kr_warn("BPF_PROG_RUN", -err);
			return;
		}
		if (!km_kr_todo_left(n))
			return;
	}
}

/*
 * Live frames where the host allows them (one run with nothing queued
 * tells), else copy mode: the retry works either way, and says which.
 * 0, -errno (a mode forced and impossible), 1: auto, and neither works.
 */
static int km_kr_pick_mode(enum km_retry_mode mode)
{
	int err, live_err = 0;

	if (mode != KM_RETRY_COPY) {
		km_kr.q->n = 0;
		live_err = km_kr_run_live(km_kr.ifindex[0], 0);
		if (!live_err) {
			km_info("kernel path: retry by live frames "
				"(BPF_PROG_RUN)\n");
			return 0;
		}
		if (mode == KM_RETRY_LIVE) {
			km_err("kernel path: retry: live frames refused "
			       "(%s), and --udp-retry-mode live\n",
			       strerror(-live_err));
			return live_err;
		}
	}
	err = km_retry_tx_open(&km_kr.tx);
	if (err && mode == KM_RETRY_AUTO) {
		/* the kernel path works without it: say so, serve on */
		km_err("kernel path: retry off: live frames refused (%s), and "
		       "copy mode's sockets: %s (needs CAP_NET_RAW)\n",
		       strerror(-live_err), strerror(-err));
		return 1;
	}
	if (err) {
		km_err("kernel path: retry: copy mode's sockets: %s (needs "
		       "CAP_NET_RAW)\n",
		       strerror(-err));
		return err;
	}
	km_kr.copy = 1;
	if (mode == KM_RETRY_COPY)
		km_info("kernel path: retry by copies sent by kmagentd "
			"(--udp-retry-mode copy)\n");
	else
		km_info("kernel path: retry by copies sent by kmagentd: this "
			"host refuses live frames (%s)\n",
			strerror(-live_err));
	return 0;
}

/* Reads may go to backend id again: rewrite its entry without SILENT. */
static void km_kr_unsilence(__u8 id)
{
	struct km_backend cur;
	__u32 key = id;

	pthread_mutex_lock(&km_d.lock);
	if (km_d.be[id].id &&
	    !bpf_map_lookup_elem(km_kr.backends_fd, &key, &cur) &&
	    (cur.flags & KM_BE_F_SILENT)) {
		/* the other kernel-set flag stays until a state change */
		km_kr.repush(id, KM_BE_F_REFUSED);
		km_debug("kernel path: backend %s: reads again\n",
			 km_d.be[id].name);
	}
	pthread_mutex_unlock(&km_d.lock);
}

static void km_kr_unsilence_due(void)
{
	long long now = km_now_ms();
	__u64 due;
	int id;

	for (id = 1; id < KM_MAX_BACKENDS; id++) {
		due = __atomic_load_n(&km_kr.silent_due_ms[id],
				      __ATOMIC_RELAXED);
		if (!due || (long long)due > now)
			continue;
		if (__atomic_compare_exchange_n(&km_kr.silent_due_ms[id], &due,
						0, 0, __ATOMIC_RELAXED,
						__ATOMIC_RELAXED))
			km_kr_unsilence(id);
	}
}

void km_kretry_silent(__u8 id)
{
	if (!id || id >= KM_MAX_BACKENDS)
		return;
	__atomic_store_n(&km_kr.silent_due_ms[id],
			 km_now_ms() + KM_SILENT_HOLD_MS, __ATOMIC_RELAXED);
}

static void km_kr_sleep_ms(unsigned int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000,
			      .tv_nsec = (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) && errno == EINTR && !km_kr.stop)
		;
}

/* One look at the deadlines: retry what is overdue. */
static void km_kr_scan(unsigned int retry_ms)
{
	__u64 now = km_bpf_coarse_ns();
	unsigned int b, n;

	for (b = 0; b < KM_RETRY_MAX_BATCHES; b++) {
		n = km_retry_scan(km_kr.dl, KM_PENDING_SLOTS, now,
				  retry_ms * 1000000ull, &km_kr.cursor,
				  km_kr.q->d, KM_RETRY_BATCH);
		if (!n)
			break;
		km_kr_run(n);
		if (n < KM_RETRY_BATCH)
			break;
	}
}

static void *km_kr_main(void *arg)
{
	unsigned int retry_ms;

	(void)arg;
	while (!km_kr.stop && !km_d.stop) {
		/* --udp-retry is reloadable: read it every round */
		retry_ms = KM_LIVE(udp_retry_ms);
		km_kr_sleep_ms(retry_ms ? km_retry_period_ms(retry_ms) : 100);
		if (retry_ms)
			km_kr_scan(retry_ms);
		km_kr_unsilence_due();
	}
	return NULL;
}

static void km_kr_unmap(void)
{
	if (km_kr.dl)
		munmap((void *)km_kr.dl, KM_PENDING_SLOTS * sizeof(__u64));
	if (km_kr.q)
		munmap(km_kr.q, km_kr.q_len);
	km_kr.dl = NULL;
	km_kr.q = NULL;
}

int km_kretry_start(struct km_bpf *kb, const struct km_cfg *cfg,
		    km_kretry_repush_fn repush)
{
	long page = sysconf(_SC_PAGESIZE);
	int dl_fd, q_fd, err;
	unsigned int i;
	void *m;

	km_kr.repush = repush;
	km_kr.prog_fd = km_bpf_prog_fd(kb, "km_xdp_retry");
	km_kr.backends_fd = km_bpf_map_fd(kb, KM_MAP_BACKENDS);
	dl_fd = km_bpf_map_fd(kb, KM_MAP_DEADLINE);
	q_fd = km_bpf_map_fd(kb, KM_MAP_RETRY_Q);
	if (km_kr.prog_fd < 0 || km_kr.backends_fd < 0 || dl_fd < 0 ||
	    q_fd < 0 || page <= 0)
		return -ENOENT;
	m = mmap(NULL, KM_PENDING_SLOTS * sizeof(__u64), PROT_READ, MAP_SHARED,
		 dl_fd, 0);
	if (m == MAP_FAILED)
		return -errno;
	km_kr.dl = m;
	km_kr.q_len = (sizeof(struct km_retry_q) + page - 1) / page * page;
	m = mmap(NULL, km_kr.q_len, PROT_READ | PROT_WRITE, MAP_SHARED, q_fd,
		 0);
	if (m == MAP_FAILED) {
		err = -errno;
		goto fail;
	}
	km_kr.q = m;
	for (i = 0; i < cfg->nr_ifaces; i++) {
		km_kr.ifindex[km_kr.nr_ifindex] =
			if_nametoindex(cfg->ifaces[i]);
		if (km_kr.ifindex[km_kr.nr_ifindex])
			km_kr.nr_ifindex++;
	}
	if (!km_kr.nr_ifindex) {
		err = -ENODEV;
		goto fail;
	}
	err = km_kr_pick_mode(cfg->udp_retry_mode);
	if (err) {
		if (err > 0)
			err = 0; /* logged: no retry thread */
		goto fail;
	}
	err = -pthread_create(&km_kr.thread, NULL, km_kr_main, NULL);
	if (err)
		goto fail;
	km_kr.up = 1;
	return 0;
fail:
	km_retry_tx_close(&km_kr.tx);
	km_kr_unmap();
	return err;
}

void km_kretry_stop(void)
{
	km_kr.stop = 1;
	if (km_kr.up) {
		pthread_join(km_kr.thread, NULL);
		km_kr.up = 0;
	}
	km_retry_tx_close(&km_kr.tx);
	km_kr.copy = 0;
	km_kr_unmap();
}
