// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Health: active probes and passive signals, with fall/rise thresholds.
 *
 * A thread probes every backend every --probe-interval ms with `stats`
 * (timeout --probe-timeout) over a connection it keeps open.  --fall
 * consecutive failures (probes, connect errors, timeouts from the data
 * path) take a backend DOWN; --rise consecutive good probes bring it back
 * through WARMING (writes only, until resync says UP).  The pid and
 * uptime in the reply reveal a restart that no probe saw fail (a quick
 * restart between two probes): the backend is empty again, so it goes
 * to WARMING as well.
 *
 * How a backend that comes back is refilled (km_health_set_refill_locked)
 * depends on whether its memcached restarted: see resync.h and journal.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "daemon.h"
#include "fence.h"
#include "health.h"
#include "journal.h"
#include "log.h"
#include "mcclient.h"

static pthread_t km_health_thread;
static int km_health_running;
static int km_probe_fd[KM_MAX_BACKENDS] = {[0 ... KM_MAX_BACKENDS - 1] = -1};
static unsigned int km_probe_gen[KM_MAX_BACKENDS];

void km_health_parse_stats(const char *buf, size_t len, long *pid, long *uptime)
{
	const char *p = buf, *end = buf + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', end - p);

		if (!nl)
			break;
		if (nl - p > 9 && !memcmp(p, "STAT pid ", 9))
			*pid = strtol(p + 9, NULL, 10);
		else if (nl - p > 12 && !memcmp(p, "STAT uptime ", 12))
			*uptime = strtol(p + 12, NULL, 10);
		p = nl + 1;
	}
}

/* reply (n bytes at p) is stats' own, ended by END, not an error line */
static int km_is_stats(const char *p, long n)
{
	return n >= 5 && !memcmp(p + n - 5, "END\r\n", 5);
}

/*
 * One probe: 0 and pid/uptime, or -errno with what failed in *what.
 * verify adds a no-op request (mn): it goes where clients' requests go
 * in memcached, which stats alone may not show.
 */
static int km_probe(__u8 id, const union km_addr *sa, int verify, long *pid,
		    long *uptime, const char **what)
{
	static const char req[] = "stats\r\nmn\r\n";
	size_t reqlen = verify ? sizeof(req) - 1 : sizeof("stats\r\n") - 1;
	char buf[8192];
	struct timespec deadline;
	size_t len = 0;
	long n, mn;
	int fd = km_probe_fd[id], err;

	km_deadline_in(&deadline, KM_LIVE(probe_timeout_ms));
	if (fd < 0) {
		*what = "probe connect";
		fd = km_mc_connect(sa, &deadline);
		if (fd < 0)
			return fd;
	}
	*what = "probe send";
	err = km_mc_send(fd, req, reqlen, &deadline);
	if (err)
		goto fail;
	*what = "probe reply";
	n = km_mc_read(fd, buf, sizeof(buf) - 1, &len, KM_RK_STATS, &deadline);
	if (n < 0)
		err = n;
	else if (!km_is_stats(buf, n))
		err = -EPROTO;
	if (!err && verify) {
		/* then mn's MN, which may have come with it */
		len -= n;
		mn = km_mc_read(fd, buf + n, sizeof(buf) - 1 - n, &len,
				KM_RK_LINE, &deadline);
		if (mn < 0)
			err = mn;
		else if (mn != 4 || memcmp(buf + n, "MN\r\n", 4))
			err = -EPROTO;
	}
	if (err)
		goto fail;
	*pid = *uptime = 0;
	km_health_parse_stats(buf, n, pid, uptime);
	km_probe_fd[id] = fd;
	return 0;
fail:
	close(fd);
	km_probe_fd[id] = -1;
	return err;
}

static void km_health_down_locked(struct km_backend_info *b, const char *what,
				  int n)
{
	char reason[96];

	snprintf(reason, sizeof(reason), "%s, %d failures", what, n);
	b->passive = 0;
	km_backend_set_state_locked(b->id, KM_BE_DOWN, reason);
}

/* Lock held.  A failure from a probe or the data path. */
static void km_health_fail_locked(struct km_backend_info *b, const char *what)
{
	b->oks = 0;
	b->fails++;
	if (b->kb.state != KM_BE_DOWN && b->fails >= KM_LIVE(fall))
		km_health_down_locked(b, what, b->fails);
}

static long km_mono_ms(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec * 1000L + now.tv_nsec / 1000000L;
}

/*
 * Lock held.  A request that failed (timeout, reset, refused, the
 * backend's own SERVER_ERROR) counts towards --fall within a window of
 * ten probe intervals or request timeouts, whichever is longer: good
 * probes in between do not clear it, or a backend that answers probes
 * and nothing else would never go down at a low request rate.  Such a
 * backend comes back only once a probe's request (mn) is answered too.
 */
static void km_health_passive_locked(struct km_backend_info *b,
				     const char *what)
{
	int interval = KM_LIVE(probe_interval_ms),
	    timeout = KM_LIVE(timeout_ms);
	int slice = interval > timeout ? interval : timeout;
	long now = km_mono_ms();

	if (!b->passive || now - b->passive_since > 10L * slice) {
		b->passive = 0;
		b->passive_since = now;
	}
	b->passive++;
	if (b->kb.state != KM_BE_DOWN && b->passive >= KM_LIVE(fall) &&
	    b->fails < KM_LIVE(fall)) {
		b->verify = 1;
		b->oks = 0;
		km_health_down_locked(b, what, b->passive);
		return;
	}
	km_health_fail_locked(b, what);
}

void km_health_passive_failure(__u8 id, const char *what)
{
	if (km_d.stop || !id || id >= KM_MAX_BACKENDS)
		return;
	pthread_mutex_lock(&km_d.lock);
	if (km_d.be[id].id)
		km_health_passive_locked(&km_d.be[id], what);
	pthread_mutex_unlock(&km_d.lock);
}

static int km_pid_changed(const struct km_backend_info *b, long pid,
			  long uptime)
{
	return b->pid && pid && (pid != b->pid || uptime < b->uptime);
}

/*
 * Lock held: how must a backend that comes back be refilled?  One whose
 * memcached restarted holds nothing: every key of its slots is copied
 * (never a flush: it may already hold writes taken since).  One that kept
 * its memcached missed the writes in its journal: those keys are
 * replayed; the journal is lost when kmagentd never saw it up before, as
 * it cannot know what it missed then.
 */
static void km_health_set_refill_locked(struct km_backend_info *b)
{
	if (b->restarted) {
		b->refill = KM_REFILL_ALL;
		km_journal_clear(b->id);
	} else {
		b->refill = KM_REFILL_REPLAY;
		/* the journal's file knows what it missed before we started */
		if (b->unknown_past && !km_journal_known_past())
			km_journal_set_lost(b->id, "down since kmagentd "
						   "started");
	}
	b->restarted = b->unknown_past = 0;
}

static void km_health_ok_locked(struct km_backend_info *b, long pid,
				long uptime)
{
	char reason[96];
	int restarted = km_pid_changed(b, pid, uptime);

	if (restarted)
		snprintf(reason, sizeof(reason),
			 "restarted (pid %ld -> %ld, uptime %ld -> %ld)",
			 b->pid, pid, b->uptime, uptime);
	/* remembered until it comes back: rise may take several probes */
	b->restarted |= restarted;
	if (b->kb.state == KM_BE_DOWN && !b->pid)
		b->unknown_past = 1;
	b->pid = pid;
	b->uptime = uptime;
	b->fails = 0;
	b->oks++;
	if (b->kb.state == KM_BE_DOWN) {
		if (b->oks >= KM_LIVE(rise)) {
			snprintf(reason, sizeof(reason), "%d probes ok",
				 b->oks);
			km_health_set_refill_locked(b);
			b->verify = 0;
			km_backend_set_state_locked(b->id, KM_BE_UP, reason);
		}
	} else if (restarted && b->kb.state == KM_BE_UP) {
		km_health_set_refill_locked(b);
		km_backend_set_state_locked(b->id, KM_BE_WARMING, reason);
	}
}

static void km_health_round(void)
{
	unsigned int id;

	for (id = 1; id < KM_MAX_BACKENDS && !km_d.stop; id++) {
		union km_addr sa;
		const char *what = "probe";
		long pid = 0, uptime = 0;
		unsigned int gen;
		int err, verify;

		pthread_mutex_lock(&km_d.lock);
		if (!km_d.be[id].id) {
			pthread_mutex_unlock(&km_d.lock);
			continue;
		}
		sa = km_d.be[id].addr;
		gen = km_backend_gen(id);
		verify = km_d.be[id].verify;
		pthread_mutex_unlock(&km_d.lock);
		if (gen != km_probe_gen[id] && km_probe_fd[id] >= 0) {
			close(km_probe_fd[id]);
			km_probe_fd[id] = -1;
		}
		km_probe_gen[id] = gen;

		err = km_probe(id, &sa, verify, &pid, &uptime, &what);

		pthread_mutex_lock(&km_d.lock);
		if (km_d.be[id].id && km_backend_gen(id) == gen) {
			if (err) {
				KM_INC(km_d.be[id].c.probes_failed);
				km_debug("backend %s: %s: %s\n",
					 km_d.be[id].name, what,
					 strerror(-err));
				km_health_fail_locked(&km_d.be[id], what);
			} else {
				KM_INC(km_d.be[id].c.probes_ok);
				km_health_ok_locked(&km_d.be[id], pid, uptime);
			}
		}
		pthread_mutex_unlock(&km_d.lock);
	}
}

static void *km_health_main(void *arg)
{
	(void)arg;
	while (!km_d.stop) {
		struct timespec deadline;

		km_deadline_in(&deadline, KM_LIVE(probe_interval_ms));
		km_health_round();
		km_fence_round();
		while (!km_d.stop) {
			long left = km_ms_left(&deadline);
			struct timespec ts = {0, 20 * 1000000L};

			if (left <= 0)
				break;
			/* a backend went down here: fence it now, not in
			 * a probe interval (fence.h) */
			if (__atomic_exchange_n(&km_d.fence_kick, 0,
						__ATOMIC_RELAXED))
				km_fence_round();
			if (left < 20)
				ts.tv_nsec = left * 1000000L;
			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

int km_health_start(void)
{
	int err = pthread_create(&km_health_thread, NULL, km_health_main, NULL);

	if (err)
		return -err;
	km_health_running = 1;
	return 0;
}

void km_health_stop(void)
{
	unsigned int id;

	km_d.stop = 1;
	if (km_health_running)
		pthread_join(km_health_thread, NULL);
	/* lift the fences no longer owed: a restart then finds none */
	if (km_health_running)
		km_fence_round();
	km_health_running = 0;
	km_fence_stop();
	for (id = 0; id < KM_MAX_BACKENDS; id++) {
		if (km_probe_fd[id] >= 0)
			close(km_probe_fd[id]);
		km_probe_fd[id] = -1;
	}
}
