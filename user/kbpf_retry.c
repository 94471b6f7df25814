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
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "daemon.h"
#include "kbpf.h"
#include "kbpf_retry.h"
#include "log.h"
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
	volatile int stop;
	long long warned_ms;
} km_kr = {.prog_fd = -1, .backends_fd = -1};

static long long km_kr_now_ms(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* The clock of bpf_ktime_get_coarse_ns, which the deadline words hold. */
static __u64 km_kr_coarse_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* A run failed: say so at most once a minute, not once per scan. */
static void km_kr_warn(const char *what, int err)
{
	long long now = km_kr_now_ms(CLOCK_MONOTONIC);

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

/* km_xdp_retry over the n requests queued in km_kr.q->d. */
static void km_kr_run(unsigned int n)
{
	static const __u8 frame[KM_RETRY_FRAME_LEN];
	unsigned int i;

	km_kr.q->n = n;
	for (i = 0; i < km_kr.nr_ifindex; i++) {
		struct xdp_md ctx = {.data_end = sizeof(frame),
				     .ingress_ifindex = km_kr.ifindex[i]};
		LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame,
			    .data_size_in = sizeof(frame), .ctx_in = &ctx,
			    .ctx_size_in = sizeof(ctx), .repeat = n,
			    .flags = BPF_F_TEST_XDP_LIVE_FRAMES);

		km_kr.q->next = 0;
		km_kr.q->any_if = i + 1 == km_kr.nr_ifindex;
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (bpf_prog_test_run_opts(km_kr.prog_fd, &o)) {
			km_kr_warn("BPF_PROG_RUN", errno);
			return;
		}
		if (!km_kr_todo_left(n))
			return;
	}
}

/* Reads may go to backend id again: rewrite its entry without SILENT. */
static void km_kr_unsilence(__u8 id)
{
	struct km_backend cur, b;
	__u32 key = id;

	pthread_mutex_lock(&km_d.lock);
	if (km_d.be[id].id &&
	    !bpf_map_lookup_elem(km_kr.backends_fd, &key, &cur) &&
	    (cur.flags & KM_BE_F_SILENT)) {
		b = km_d.be[id].kb;
		/* the other kernel-set flag stays until a state change */
		b.flags |= cur.flags & KM_BE_F_REFUSED;
		if (bpf_map_update_elem(km_kr.backends_fd, &key, &b, BPF_ANY))
			km_warn("kernel path: backend %s: clear silent: %s\n",
				km_d.be[id].name, strerror(errno));
		else
			km_debug("kernel path: backend %s: reads again\n",
				 km_d.be[id].name);
	}
	pthread_mutex_unlock(&km_d.lock);
}

static void km_kr_unsilence_due(void)
{
	long long now = km_kr_now_ms(CLOCK_MONOTONIC);
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
			 km_kr_now_ms(CLOCK_MONOTONIC) + KM_SILENT_HOLD_MS,
			 __ATOMIC_RELAXED);
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
	__u64 now = km_kr_coarse_ns();
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
		retry_ms = __atomic_load_n(&km_d.cfg.udp_retry_ms,
					   __ATOMIC_RELAXED);
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

int km_kretry_start(struct km_bpf *kb, const struct km_cfg *cfg)
{
	long page = sysconf(_SC_PAGESIZE);
	int dl_fd, q_fd, err;
	unsigned int i;
	void *m;

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
	err = -pthread_create(&km_kr.thread, NULL, km_kr_main, NULL);
	if (err)
		goto fail;
	km_kr.up = 1;
	return 0;
fail:
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
	km_kr_unmap();
}
