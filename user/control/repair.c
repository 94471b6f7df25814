// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Read-repair: see repair.h. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "daemon.h"
#include "journal.h"
#include "log.h"
#include "mcclient.h"
#include "repair.h"
#include "resync.h"

#define KM_REPAIR_IO_MS 500
#define KM_REPAIR_BUF	(KM_ITEM_SIZE_MAX + 1024)

struct km_repair_job {
	double queued; /* km_now() */
	__u8 klen, nmissed;
	__u8 missed[KM_MAX_REPLICAS];
	char key[KM_KEY_MAX];
};

struct km_repair_conn {
	int fd;
	unsigned int gen;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct km_repair_job *q;
	unsigned int head, len;
	struct km_bucket bucket;
	struct km_repair_stats st;
	pthread_t thread;
	bool up, stop;
	struct km_repair_conn conn[KM_MAX_BACKENDS];
	char *buf;
} km_rp = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
};

int km_bucket_take(struct km_bucket *b, double now)
{
	if (now > b->last) {
		b->tokens += (now - b->last) * b->rate;
		if (b->tokens > b->burst)
			b->tokens = b->burst;
		b->last = now;
	}
	if (b->tokens < 1)
		return 0;
	b->tokens -= 1;
	return 1;
}

static double km_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * With another kmagentd about, a repair waits two probe intervals: the
 * fence it puts on a replica that missed its writes reaches us within
 * that (fence.h), and a fenced replica is no source.  Copied at once, a
 * value the other deleted, read from a replica that missed the delete,
 * would land on a replica that had it right, and be read there through
 * both kmagentd: seed 8614 of the chaos test, a delete through pb undone
 * by pa's repair a few ms after its acknowledgement.
 */
static double km_repair_delay(void)
{
	return km_daemon_alone() ? 0 : 2 * KM_LIVE(probe_interval_ms) / 1000.0;
}

/* The daemon's repair hook, from worker threads: queue, never block. */
static void km_repair_hook_fn(const char *key, size_t nkey, const char *value,
			      size_t nvalue, uint32_t flags, const __u8 *missed,
			      unsigned int nmissed, void *ctx)
{
	struct km_repair_job *j;
	__u8 todo[KM_MAX_REPLICAS];
	unsigned int i, ntodo = 0;

	(void)value;
	(void)nvalue;
	(void)flags;
	(void)ctx;
	if (!nkey || nkey > KM_KEY_MAX || !nmissed)
		return;
	if (nmissed > KM_MAX_REPLICAS)
		nmissed = KM_MAX_REPLICAS;
	/*
	 * Only a replica we know may lack keys is repaired: a miss on one
	 * we think complete may be a delete that the replica which answered
	 * missed (another kmagentd's view of the network), and writing the
	 * value back would undo the delete.
	 */
	for (i = 0; i < nmissed; i++)
		if (km_backend_incomplete(missed[i]))
			todo[ntodo++] = missed[i];
	pthread_mutex_lock(&km_rp.lock);
	km_rp.st.queued++;
	if (!ntodo) {
		km_rp.st.complete++;
		pthread_mutex_unlock(&km_rp.lock);
		return;
	}
	if (!km_bucket_take(&km_rp.bucket, km_now())) {
		km_rp.st.rate_limited++;
	} else if (km_rp.len == KM_REPAIR_QUEUE) {
		km_rp.st.queue_full++;
	} else {
		j = &km_rp.q[(km_rp.head + km_rp.len++) % KM_REPAIR_QUEUE];
		j->queued = km_now();
		j->klen = nkey;
		memcpy(j->key, key, nkey);
		j->nmissed = ntodo;
		memcpy(j->missed, todo, ntodo);
		pthread_cond_signal(&km_rp.cond);
	}
	pthread_mutex_unlock(&km_rp.lock);
}

/* ---- connections to backends, blocking with timeouts ------------------ */

static void km_repair_drop(__u8 id)
{
	if (km_rp.conn[id].fd > 0)
		close(km_rp.conn[id].fd);
	km_rp.conn[id].fd = 0;
}

static int km_repair_fd(__u8 id)
{
	struct km_repair_conn *c = &km_rp.conn[id];
	struct timespec deadline;
	union km_addr sa;
	unsigned int gen;
	int fd;

	pthread_mutex_lock(&km_d.lock);
	sa = km_d.be[id].addr;
	gen = km_backend_gen(id);
	pthread_mutex_unlock(&km_d.lock);
	if (c->fd > 0 && c->gen == gen)
		return c->fd;
	km_repair_drop(id);
	km_deadline_in(&deadline, KM_REPAIR_IO_MS);
	fd = km_mc_connect(&sa, &deadline);
	if (fd < 0)
		return fd;
	c->fd = fd;
	c->gen = gen;
	return fd;
}

static int km_send_all(int fd, const char *p, size_t n)
{
	struct timespec deadline;

	km_deadline_in(&deadline, KM_REPAIR_IO_MS);
	return km_mc_send(fd, p, n, &deadline) ? -EIO : 0;
}

/*
 * Read one meta reply into km_rp.buf: a status line, plus the value when
 * it is "VA <len> ...".  Returns the total length, or <0.
 */
static ssize_t km_read_reply(int fd, size_t *line_len)
{
	struct timespec deadline;
	size_t len = 0;
	long n;

	km_deadline_in(&deadline, KM_REPAIR_IO_MS);
	n = km_mc_read(fd, km_rp.buf, KM_REPAIR_BUF, &len, KM_RK_META,
		       &deadline);
	if (n < 0)
		return n == -EMSGSIZE ? n : -EIO;
	*line_len = (char *)memchr(km_rp.buf, '\n', n) - km_rp.buf + 1;
	return n;
}

/* Send req, read a one-line reply into r (NUL-terminated): 0, or <0. */
static int km_repair_ask(int fd, const char *req, size_t n, char *r, size_t cap)
{
	struct timespec deadline;
	size_t len = 0;
	long got;

	r[0] = '\0';
	if (km_send_all(fd, req, n))
		return -EIO;
	km_deadline_in(&deadline, KM_REPAIR_IO_MS);
	got = km_mc_read(fd, r, cap - 1, &len, KM_RK_LINE, &deadline);
	r[got >= 0 ? (size_t)got : len] = '\0'; /* a failure's part too */
	if (got < 0)
		return got == -EMSGSIZE ? -EMSGSIZE : -EIO;
	return 0;
}

/* ---- one repair --------------------------------------------------------- */

static bool km_in(const __u8 *ids, unsigned int n, __u8 id)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (ids[i] == id)
			return true;
	return false;
}

/* The item from the first readable replica that did not miss it. */
static int km_repair_fetch(const struct km_repair_job *j, size_t *line,
			   size_t *total, __u8 *src)
{
	const struct km_slot *s =
		km_ring_lookup(km_daemon_ring(), j->key, j->klen);
	char req[KM_KEY_MAX + 32];
	unsigned int i;
	int n, fd;

	n = snprintf(req, sizeof(req), "mg %.*s v f t\r\n", j->klen, j->key);
	for (i = 0; i < s->nr; i++) {
		__u8 id = s->be[i];
		ssize_t r;

		if (km_in(j->missed, j->nmissed, id) || !km_be_readable(id))
			continue;
		fd = km_repair_fd(id);
		if (fd < 0 || km_send_all(fd, req, n)) {
			km_repair_drop(id);
			continue;
		}
		r = km_read_reply(fd, line);
		if (r < 0) {
			km_repair_drop(id);
			continue;
		}
		*total = r;
		*src = id;
		return !strncmp(km_rp.buf, "VA ", 3) ? 0 : -ENOENT;
	}
	return -ENOENT;
}

/* "VA <len> f<flags> t<ttl>" -> the ms header for the missing replicas. */
static int km_repair_header(const struct km_repair_job *j, size_t line,
			    char *hdr, size_t cap)
{
	unsigned long vlen, flags = 0;
	long ttl = -1;
	char *p = km_rp.buf + 3, *end = km_rp.buf + line;

	vlen = strtoul(p, &p, 10);
	while (p < end) {
		if (p[0] == ' ' && p[1] == 'f')
			flags = strtoul(p + 2, NULL, 10);
		else if (p[0] == ' ' && p[1] == 't')
			ttl = strtol(p + 2, NULL, 10);
		p++;
	}
	return snprintf(hdr, cap, "ms %.*s %lu F%lu T%ld ME c\r\n", j->klen,
			j->key, vlen, flags,
			km_resync_ttl_for_ms(ttl, time(NULL)));
}

static void km_repair_count(uint64_t *field)
{
	pthread_mutex_lock(&km_rp.lock);
	(*field)++;
	pthread_mutex_unlock(&km_rp.lock);
}

/*
 * A client delete that lands between our fetch and our add would be undone
 * by the add: ask the source again, and if it lost the key meanwhile (or
 * cannot say), take our copy back, only ours (C<cas>: a newer client write
 * changed it).  The same check as resync's (resync.h).
 */
static void km_repair_recheck(const struct km_repair_job *j, __u8 src, __u8 id,
			      unsigned long long cas)
{
	char req[KM_KEY_MAX + 48], r[64];
	int n, fd = km_repair_fd(src);

	n = snprintf(req, sizeof(req), "mg %.*s\r\n", j->klen, j->key);
	if (fd >= 0 && !km_repair_ask(fd, req, n, r, sizeof(r)) &&
	    !strncmp(r, "HD", 2))
		return; /* still there: a delete would reach our copy too */
	if (fd < 0 || strncmp(r, "EN", 2))
		km_repair_drop(src);
	fd = km_repair_fd(id);
	n = snprintf(req, sizeof(req), "md %.*s C%llu\r\n", j->klen, j->key,
		     cas);
	if (fd < 0 || km_repair_ask(fd, req, n, r, sizeof(r))) {
		km_repair_drop(id);
		km_repair_count(&km_rp.st.errors);
	} else if (!strncmp(r, "HD", 2)) {
		km_repair_count(&km_rp.st.undone);
	}
}

static void km_repair_store(const struct km_repair_job *j, size_t line,
			    size_t total, __u8 src)
{
	char hdr[KM_KEY_MAX + 96], r[64], *cp, *value = km_rp.buf + line;
	size_t vtotal = total - line;
	int n = km_repair_header(j, line, hdr, sizeof(hdr));
	unsigned int i;

	for (i = 0; i < j->nmissed; i++) {
		__u8 id = j->missed[i];
		int fd;

		if (!km_be_writable(id))
			continue;
		/*
		 * Until a replay settles it, the key is owed: our copy may
		 * land after a client's delete (taken back only later, by
		 * the recheck), and nobody may read it or take its answer
		 * for the key meanwhile (journal.h).  Not before: a replay
		 * would copy it without the wait (km_repair_delay).
		 */
		km_journal_note_sent(id, j->key, j->klen);
		fd = km_repair_fd(id);
		if (fd < 0 || km_send_all(fd, hdr, n) ||
		    km_repair_ask(fd, value, vtotal, r, sizeof(r))) {
			km_repair_drop(id);
			km_repair_count(&km_rp.st.errors);
		} else if (!strncmp(r, "HD", 2)) {
			km_repair_count(&km_rp.st.repaired);
			cp = strstr(r, " c");
			km_repair_recheck(j, src, id,
					  cp ? strtoull(cp + 2, NULL, 10) : 0);
		} else if (!strncmp(r, "NS", 2)) {
			km_repair_count(&km_rp.st.existed);
		} else {
			km_repair_drop(id);
			km_repair_count(&km_rp.st.errors);
		}
	}
}

static void km_repair_one(const struct km_repair_job *j)
{
	size_t line = 0, total = 0;
	__u8 src = 0;
	int err = km_repair_fetch(j, &line, &total, &src);

	if (err) {
		km_repair_count(&km_rp.st.gone);
		return;
	}
	km_repair_store(j, line, total, src);
}

static void *km_repair_main(void *arg)
{
	struct km_repair_job j;
	double wait;

	(void)arg;
	pthread_mutex_lock(&km_rp.lock);
	while (!km_rp.stop) {
		if (!km_rp.len) {
			pthread_cond_wait(&km_rp.cond, &km_rp.lock);
			continue;
		}
		/* queued in order: the head is due first.  A short sleep at a
		 * time, for km_repair_stop. */
		wait = km_rp.q[km_rp.head].queued - km_now();
		pthread_mutex_unlock(&km_rp.lock);
		wait += km_repair_delay();
		if (wait > 0)
			usleep(wait < 0.05 ? (useconds_t)(wait * 1e6) : 50000);
		pthread_mutex_lock(&km_rp.lock);
		if (wait > 0)
			continue;
		j = km_rp.q[km_rp.head];
		km_rp.head = (km_rp.head + 1) % KM_REPAIR_QUEUE;
		km_rp.len--;
		pthread_mutex_unlock(&km_rp.lock);
		km_repair_one(&j);
		pthread_mutex_lock(&km_rp.lock);
	}
	pthread_mutex_unlock(&km_rp.lock);
	return NULL;
}

void km_repair_set_rate(unsigned int rate)
{
	pthread_mutex_lock(&km_rp.lock);
	km_rp.bucket.rate = rate;
	/* rate 0: no token ever, read-repair off */
	km_rp.bucket.burst = rate < KM_REPAIR_BURST ? rate : KM_REPAIR_BURST;
	if (km_rp.bucket.tokens > km_rp.bucket.burst)
		km_rp.bucket.tokens = km_rp.bucket.burst;
	pthread_mutex_unlock(&km_rp.lock);
}

unsigned int km_repair_get_rate(void)
{
	unsigned int rate;

	pthread_mutex_lock(&km_rp.lock);
	rate = (unsigned int)km_rp.bucket.rate;
	pthread_mutex_unlock(&km_rp.lock);
	return rate;
}

void km_repair_get_stats(struct km_repair_stats *out)
{
	pthread_mutex_lock(&km_rp.lock);
	*out = km_rp.st;
	pthread_mutex_unlock(&km_rp.lock);
}

int km_repair_start(unsigned int rate)
{
	int err;

	km_rp.q = calloc(KM_REPAIR_QUEUE, sizeof(*km_rp.q));
	km_rp.buf = malloc(KM_REPAIR_BUF);
	if (!km_rp.q || !km_rp.buf)
		return -ENOMEM;
	km_repair_set_rate(rate);
	km_rp.bucket.tokens = km_rp.bucket.burst;
	km_rp.bucket.last = km_now();
	err = pthread_create(&km_rp.thread, NULL, km_repair_main, NULL);
	if (err)
		return -err;
	km_rp.up = true;
	pthread_mutex_lock(&km_d.lock);
	km_daemon_set_repair_hook(km_repair_hook_fn, NULL);
	pthread_mutex_unlock(&km_d.lock);
	return 0;
}

void km_repair_stop(void)
{
	unsigned int id;

	pthread_mutex_lock(&km_d.lock);
	km_daemon_set_repair_hook(NULL, NULL);
	pthread_mutex_unlock(&km_d.lock);
	if (km_rp.up) {
		pthread_mutex_lock(&km_rp.lock);
		km_rp.stop = true;
		pthread_cond_signal(&km_rp.cond);
		pthread_mutex_unlock(&km_rp.lock);
		pthread_join(km_rp.thread, NULL);
		km_rp.up = false;
	}
	for (id = 0; id < KM_MAX_BACKENDS; id++)
		km_repair_drop(id);
	free(km_rp.q);
	free(km_rp.buf);
	km_rp.q = NULL;
	km_rp.buf = NULL;
}
