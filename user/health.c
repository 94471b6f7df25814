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
 * Before a backend that kept its data (same memcached process) comes
 * back, it is emptied (flush_all) when another backend took writes
 * meanwhile: it missed those writes and deletes, and an old value must
 * never be read again.  A backend that restarted is empty already: it is
 * never flushed (it may have taken writes since) and never preferred
 * over a replica that holds acknowledged writes.  Resync refills both.
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
#include "health.h"
#include "log.h"

static pthread_t km_health_thread;
static int km_health_running;
static int km_probe_fd[KM_MAX_BACKENDS] = {[0 ... KM_MAX_BACKENDS - 1] = -1};
static unsigned int km_probe_gen[KM_MAX_BACKENDS];

static long km_ms_left(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (deadline->tv_sec - now.tv_sec) * 1000 +
	       (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

static int km_wait(int fd, short events, const struct timespec *deadline)
{
	struct pollfd p = {.fd = fd, .events = events};
	long left = km_ms_left(deadline);
	int n;

	if (left <= 0)
		return -ETIMEDOUT;
	n = poll(&p, 1, left);
	if (n < 0)
		return -errno;
	return n == 0 ? -ETIMEDOUT : 0;
}

static int km_probe_connect(const struct sockaddr_in *sa,
			    const struct timespec *deadline)
{
	int fd, err = 0, one = 1;
	socklen_t sl = sizeof(err);

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) &&
	    errno != EINPROGRESS) {
		err = -errno;
		goto fail;
	}
	err = km_wait(fd, POLLOUT, deadline);
	if (err)
		goto fail;
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl);
	if (err) {
		err = -err;
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return err;
}

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

/* One probe: 0 and pid/uptime, or -errno with what failed in *what. */
static int km_probe(__u8 id, const struct sockaddr_in *sa, long *pid,
		    long *uptime, const char **what)
{
	static const char req[] = "stats\r\n";
	char buf[8192];
	struct timespec deadline;
	size_t len = 0;
	int fd = km_probe_fd[id], err;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += km_d.cfg.probe_timeout_ms / 1000;
	deadline.tv_nsec += (km_d.cfg.probe_timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	if (fd < 0) {
		*what = "probe connect";
		fd = km_probe_connect(sa, &deadline);
		if (fd < 0)
			return fd;
	}
	*what = "probe send";
	if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) !=
	    (ssize_t)sizeof(req) - 1) {
		err = -EIO;
		goto fail;
	}
	*what = "probe reply";
	for (;;) {
		ssize_t n;

		err = km_wait(fd, POLLIN, &deadline);
		if (err)
			goto fail;
		n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
		if (n <= 0) {
			err = n == 0 ? -ECONNRESET : -errno;
			if (err == -EAGAIN)
				continue;
			goto fail;
		}
		len += n;
		if (len >= 5 && !memcmp(buf + len - 5, "END\r\n", 5))
			break;
		if (len >= sizeof(buf) - 1) {
			err = -EMSGSIZE;
			goto fail;
		}
	}
	*pid = *uptime = 0;
	km_health_parse_stats(buf, len, pid, uptime);
	km_probe_fd[id] = fd;
	return 0;
fail:
	close(fd);
	km_probe_fd[id] = -1;
	return err;
}

/* Lock held.  A failure from a probe or the data path. */
static void km_health_fail_locked(struct km_backend_info *b, const char *what)
{
	char reason[96];

	b->oks = 0;
	b->fails++;
	if (b->kb.state != KM_BE_DOWN && b->fails >= km_d.cfg.fall) {
		snprintf(reason, sizeof(reason), "%s, %d failures", what,
			 b->fails);
		km_backend_set_state_locked(b->id, KM_BE_DOWN, reason);
	}
}

void km_health_passive_failure(__u8 id, const char *what)
{
	if (km_d.stop || !id || id >= KM_MAX_BACKENDS)
		return;
	pthread_mutex_lock(&km_d.lock);
	if (km_d.be[id].id)
		km_health_fail_locked(&km_d.be[id], what);
	pthread_mutex_unlock(&km_d.lock);
}

static int km_pid_changed(const struct km_backend_info *b, long pid,
			  long uptime)
{
	return b->pid && pid && (pid != b->pid || uptime < b->uptime);
}

/* Its memcached restarted since it last took writes: it holds nothing. */
static int km_restarted(const struct km_backend_info *b, long pid, long uptime)
{
	return b->restarted || km_pid_changed(b, pid, uptime);
}

/* Lock held: will this good probe bring the backend back (WARMING)? */
static int km_health_comes_back_locked(const struct km_backend_info *b,
				       long pid, long uptime)
{
	if (b->kb.state == KM_BE_DOWN)
		return b->oks + 1 >= km_d.cfg.rise;
	return b->kb.state == KM_BE_UP && km_restarted(b, pid, uptime);
}

/*
 * A backend that comes back missed every write and delete made while it
 * was down (or since it restarted): what it still holds may be stale, and
 * a stale value or a deleted key must never be read again.  Empty it
 * before it takes writes; resync then refills it from its replicas.
 */
static int km_probe_flush(__u8 id)
{
	static const char req[] = "flush_all\r\n";
	struct timespec deadline;
	char buf[64];
	size_t len = 0;
	int fd = km_probe_fd[id];

	if (fd < 0)
		return -ENOTCONN;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += 1 + km_d.cfg.probe_timeout_ms / 1000;
	if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) !=
	    (ssize_t)sizeof(req) - 1)
		goto fail;
	while (len < 4) {
		ssize_t n;

		if (km_wait(fd, POLLIN, &deadline))
			goto fail;
		n = recv(fd, buf + len, sizeof(buf) - len, 0);
		if (n <= 0)
			goto fail;
		len += n;
	}
	if (len == 4 && !memcmp(buf, "OK\r\n", 4))
		return 0;
fail:
	close(fd);
	km_probe_fd[id] = -1;
	return -EIO;
}

/*
 * Lock held; backend id is coming back.  Must it be emptied first?
 *
 * Yes if another writable backend held everything it held: one that was
 * taking writes when it went down (writable since before, or down only
 * after it).  Then it missed writes and deletes, and resync refills it.
 *
 * If every writable backend was itself down when this one went down, and
 * this one took writes after they went down (counted), it holds the best
 * copy: it is kept, and those others, stale, are taken down; they come
 * back emptied and are refilled from it.  (Writes that only such a stale
 * backend took in between are lost: without versions there is no merge.)
 * With no other writable backend it is simply kept.
 */
/* Did r take writes after o went down, before r went down itself? */
static int km_took_writes_alone(const struct km_backend_info *r,
				const struct km_backend_info *o)
{
	return o->down_epoch < r->down_epoch &&
	       r->writes_seen_at_down[r->id] > o->writes_seen_at_down[r->id];
}

static int km_returning_is_stale_locked(__u8 id)
{
	const struct km_backend_info *r = &km_d.be[id];
	unsigned int i;

	for (i = 1; i < KM_MAX_BACKENDS; i++) {
		const struct km_backend_info *o = &km_d.be[i];

		if (i == id || !o->id || !km_be_writable(i))
			continue;
		if (o->writable_epoch < r->down_epoch ||
		    o->down_epoch > r->down_epoch ||
		    !km_took_writes_alone(r, o))
			return 1;
	}
	return 0;
}

/*
 * Lock held; backend id just came back without being emptied: take down
 * the writable backends that were themselves down when it went down (see
 * above).  After its own transition, so that they see it as having been
 * writable since before they went down, and get emptied when they return.
 */
static void km_demote_stale_locked(__u8 id)
{
	const struct km_backend_info *r = &km_d.be[id];
	unsigned int i;

	for (i = 1; i < KM_MAX_BACKENDS; i++) {
		struct km_backend_info *o = &km_d.be[i];
		char reason[96];

		if (i == id || !o->id || !km_be_writable(i) ||
		    !(o->down_epoch < r->down_epoch &&
		      r->down_epoch < o->writable_epoch) ||
		    !km_took_writes_alone(r, o))
			continue;
		snprintf(reason, sizeof(reason),
			 "stale: was down when %s took its last writes",
			 r->name);
		km_backend_set_state_locked(i, KM_BE_DOWN, reason);
		/* it answers probes: back (emptied) at the next good one */
		o->oks = km_d.cfg.rise - 1;
	}
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
	b->pid = pid;
	b->uptime = uptime;
	b->fails = 0;
	b->oks++;
	if (b->kb.state == KM_BE_DOWN) {
		if (b->oks >= km_d.cfg.rise) {
			snprintf(reason, sizeof(reason), "%d probes ok",
				 b->oks);
			km_backend_set_state_locked(b->id, KM_BE_UP, reason);
			b->restarted = 0;
		}
	} else if (restarted && b->kb.state == KM_BE_UP) {
		km_backend_set_state_locked(b->id, KM_BE_WARMING, reason);
	}
}

static void km_health_round(void)
{
	unsigned int id;

	for (id = 1; id < KM_MAX_BACKENDS && !km_d.stop; id++) {
		struct sockaddr_in sa;
		const char *what = "probe";
		long pid = 0, uptime = 0;
		unsigned int gen;
		int err;

		pthread_mutex_lock(&km_d.lock);
		if (!km_d.be[id].id) {
			pthread_mutex_unlock(&km_d.lock);
			continue;
		}
		sa = km_d.be[id].addr;
		gen = km_d.be[id].gen;
		pthread_mutex_unlock(&km_d.lock);
		if (gen != km_probe_gen[id] && km_probe_fd[id] >= 0) {
			close(km_probe_fd[id]);
			km_probe_fd[id] = -1;
		}
		km_probe_gen[id] = gen;

		err = km_probe(id, &sa, &pid, &uptime, &what);

		pthread_mutex_lock(&km_d.lock);
		if (km_d.be[id].id && km_d.be[id].gen == gen) {
			if (err) {
				KM_INC(km_d.be[id].c.probes_failed);
				km_debug("backend %s: %s: %s\n",
					 km_d.be[id].name, what,
					 strerror(-err));
				km_health_fail_locked(&km_d.be[id], what);
			} else if (km_health_comes_back_locked(&km_d.be[id],
							       pid, uptime) &&
				   !km_restarted(&km_d.be[id], pid, uptime) &&
				   km_returning_is_stale_locked(id)) {
				pthread_mutex_unlock(&km_d.lock);
				err = km_probe_flush(id);
				pthread_mutex_lock(&km_d.lock);
				if (!km_d.be[id].id || km_d.be[id].gen != gen) {
					/* removed meanwhile */
				} else if (err) {
					km_health_fail_locked(&km_d.be[id],
							      "flush_all");
				} else {
					KM_INC(km_d.be[id].c.probes_ok);
					km_info("backend %s: flushed before "
						"taking writes again\n",
						km_d.be[id].name);
					km_health_ok_locked(&km_d.be[id], pid,
							    uptime);
				}
			} else {
				int was_down =
					km_d.be[id].kb.state == KM_BE_DOWN;
				int restarted =
					km_restarted(&km_d.be[id], pid, uptime);

				KM_INC(km_d.be[id].c.probes_ok);
				km_health_ok_locked(&km_d.be[id], pid, uptime);
				if (was_down && !restarted &&
				    km_d.be[id].kb.state != KM_BE_DOWN)
					km_demote_stale_locked(id);
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

		clock_gettime(CLOCK_MONOTONIC, &deadline);
		deadline.tv_sec += km_d.cfg.probe_interval_ms / 1000;
		deadline.tv_nsec +=
			(km_d.cfg.probe_interval_ms % 1000) * 1000000L;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
		km_health_round();
		while (!km_d.stop) {
			long left = km_ms_left(&deadline);
			struct timespec ts = {0, 20 * 1000000L};

			if (left <= 0)
				break;
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
	km_health_running = 0;
	for (id = 0; id < KM_MAX_BACKENDS; id++) {
		if (km_probe_fd[id] >= 0)
			close(km_probe_fd[id]);
		km_probe_fd[id] = -1;
	}
}
