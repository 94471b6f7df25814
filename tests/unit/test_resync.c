// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The resync engine against real memcached processes on loopback, started
 * here on free ports and stopped by PID.  The key sets are written the way
 * the proxy would (each key on the replicas of its slot), the target is
 * started empty, then checked key by key.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "resync.h"
#include "ring.h"

#define NR_MC 3

struct mc {
	pid_t pid;
	int port;
	struct sockaddr_in addr;
	int fd; /* a client connection of the test */
};

static struct mc mcs[NR_MC];
static struct km_ring *ring;

/* ---- memcached processes ------------------------------------------------ */

static int mc_connect(const struct sockaddr_in *a)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (const struct sockaddr *)a, sizeof(*a))) {
		close(fd);
		return -1;
	}
	return fd;
}

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t l = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	assert_true(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static void mc_start(struct mc *m)
{
	char port[16];
	int i;

	m->port = free_port();
	snprintf(port, sizeof(port), "%d", m->port);
	m->pid = fork();
	assert_true(m->pid >= 0);
	if (m->pid == 0) {
		/* never outlive a crashed test */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execlp("memcached", "memcached", "-p", port, "-U", "0", "-l",
		       "127.0.0.1", "-u", "root", "-t", "1", "-m", "512",
		       (char *)NULL);
		_exit(127);
	}
	memset(&m->addr, 0, sizeof(m->addr));
	m->addr.sin_family = AF_INET;
	m->addr.sin_port = htons(m->port);
	m->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (i = 0; i < 200; i++) {
		m->fd = mc_connect(&m->addr);
		if (m->fd >= 0)
			return;
		usleep(10000);
	}
	fail_msg("memcached on port %d did not start", m->port);
}

static void mc_stop(struct mc *m)
{
	if (m->fd >= 0)
		close(m->fd);
	m->fd = -1;
	if (m->pid > 0) {
		kill(m->pid, SIGKILL);
		waitpid(m->pid, NULL, 0);
	}
	m->pid = 0;
}

/* ---- a tiny client ------------------------------------------------------ */

static void send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		assert_true(w > 0);
		p += w;
		n -= w;
	}
}

/* Read until the reply ends with `end`; returns a malloc'd string. */
static char *recv_until(int fd, const char *end)
{
	size_t cap = 1 << 16, len = 0, el = strlen(end);
	char *buf = malloc(cap);

	assert_non_null(buf);
	for (;;) {
		ssize_t r;

		if (len + 1 >= cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		r = recv(fd, buf + len, cap - len - 1, 0);
		assert_true(r > 0);
		len += r;
		buf[len] = '\0';
		if (len >= el && !memcmp(buf + len - el, end, el))
			return buf;
	}
}

static void mc_cmd(struct mc *m, const char *req, const char *end)
{
	send_all(m->fd, req, strlen(req));
	free(recv_until(m->fd, end));
}

struct item {
	char val[256];
	unsigned long flags;
	long ttl;
	int found;
};

static void mc_get(struct mc *m, const char *key, struct item *it)
{
	char req[300], *r, *p;
	size_t vlen;

	snprintf(req, sizeof(req), "mg %s v f t\r\n", key);
	send_all(m->fd, req, strlen(req));
	memset(it, 0, sizeof(*it));
	r = recv_until(m->fd, "\r\n");
	if (!strncmp(r, "EN", 2)) {
		free(r);
		return;
	}
	assert_true(!strncmp(r, "VA ", 3));
	vlen = strtoul(r + 3, &p, 10);
	/* the value may arrive in a second read */
	if (!strstr(p, "\r\n") || strlen(strstr(p, "\r\n") + 2) < vlen + 2) {
		char *more = recv_until(m->fd, "\r\n");
		size_t l = strlen(r);

		r = realloc(r, l + strlen(more) + 1);
		strcpy(r + l, more);
		free(more);
	}
	p = strchr(r, 'f');
	it->flags = strtoul(p + 1, NULL, 10);
	p = strchr(r, 't');
	it->ttl = strtol(p + 1, NULL, 10);
	p = strstr(r, "\r\n") + 2;
	assert_true(vlen < sizeof(it->val));
	memcpy(it->val, p, vlen);
	it->found = 1;
	free(r);
}

static long mc_items(struct mc *m)
{
	char *r, *p;
	long n;

	send_all(m->fd, "stats\r\n", 7);
	r = recv_until(m->fd, "END\r\n");
	p = strstr(r, "STAT curr_items ");
	assert_non_null(p);
	n = strtol(p + 16, NULL, 10);
	free(r);
	return n;
}

/* ---- data sets ---------------------------------------------------------- */

static void key_name(char *buf, size_t cap, int i)
{
	/* some keys need URI-encoding in metadump: '%', UTF-8, '+' */
	if (i % 97 == 0)
		snprintf(buf, cap, "k%%%d+\xc3\xa9", i);
	else
		snprintf(buf, cap, "key:%d", i);
}

static long ttl_of(int i)
{
	if (i % 3 == 0)
		return 0; /* never expires */
	if (i % 3 == 1)
		return 5000;	   /* plain */
	return 60L * 60 * 24 * 40; /* beyond 30 days: absolute on the wire */
}

static void value_of(char *buf, size_t cap, int i, size_t vlen)
{
	size_t n = snprintf(buf, cap, "v%d-", i);

	for (; n < vlen && n + 1 < cap; n++)
		buf[n] = 'a' + (i + n) % 26;
	buf[n] = '\0';
}

static int slot_has(const char *key, __u8 id)
{
	const struct km_slot *s = km_ring_lookup(ring, key, strlen(key));
	int i;

	for (i = 0; i < s->nr; i++)
		if (s->be[i] == id)
			return 1;
	return 0;
}

/* Write keys [0, n) to each of their replicas but `skip` (0 = none). */
static void load(int n, size_t vlen, __u8 skip)
{
	char key[64], val[512], line[700];
	int i, b, sz = 0;
	char *buf[NR_MC];
	size_t len[NR_MC] = {0};
	long t;

	for (b = 0; b < NR_MC; b++) {
		buf[b] = malloc(1 << 20);
		assert_non_null(buf[b]);
	}
	for (i = 0; i <= n; i++) {
		for (b = 0; b < NR_MC && i < n; b++) {
			if (b + 1 == skip || !mcs[b].pid)
				continue;
			key_name(key, sizeof(key), i);
			if (!slot_has(key, b + 1))
				continue;
			value_of(val, sizeof(val), i, vlen);
			t = ttl_of(i);
			if (t > 60L * 60 * 24 * 30)
				t += time(NULL);
			sz = snprintf(line, sizeof(line),
				      "ms %s %zu F%d T%ld q\r\n%s\r\n", key,
				      strlen(val), i, t, val);
			memcpy(buf[b] + len[b], line, sz);
			len[b] += sz;
		}
		for (b = 0; b < NR_MC; b++) {
			if (len[b] < (1 << 20) - 1024 && i < n)
				continue;
			if (!mcs[b].pid)
				continue;
			memcpy(buf[b] + len[b], "mn\r\n", 4);
			send_all(mcs[b].fd, buf[b], len[b] + 4);
			free(recv_until(mcs[b].fd, "MN\r\n"));
			len[b] = 0;
		}
	}
	for (b = 0; b < NR_MC; b++)
		free(buf[b]);
}

static void build_ring(unsigned int replicas)
{
	static const char *names[NR_MC] = {"a", "b", "c"};
	struct km_ring_member m[NR_MC];
	int i;

	for (i = 0; i < NR_MC; i++) {
		m[i].id = i + 1;
		m[i].name = names[i];
	}
	assert_int_equal(km_ring_build(ring, m, NR_MC, replicas), 0);
}

static int setup(void **state)
{
	int i;

	(void)state;
	ring = malloc(sizeof(*ring));
	assert_non_null(ring);
	for (i = 0; i < NR_MC; i++)
		mc_start(&mcs[i]);
	return 0;
}

static int teardown(void **state)
{
	int i;

	(void)state;
	for (i = 0; i < NR_MC; i++)
		mc_stop(&mcs[i]);
	free(ring);
	return 0;
}

/*
 * Restart every memcached empty: flush_all leaves counted items behind
 * until they are reclaimed, and the checks count items.
 */
static void flush_all(void)
{
	int i;

	for (i = 0; i < NR_MC; i++) {
		mc_stop(&mcs[i]);
		mc_start(&mcs[i]);
	}
}

static void opts_for(struct km_resync_opts *o, __u8 target)
{
	int i;

	memset(o, 0, sizeof(*o));
	o->ring = ring;
	o->target_id = target;
	o->target.in = mcs[target - 1].addr;
	for (i = 0; i < NR_MC; i++) {
		if (i + 1 == target)
			continue;
		o->sources[o->nr_sources].id = i + 1;
		o->sources[o->nr_sources].addr.in = mcs[i].addr;
		o->nr_sources++;
	}
}

static enum km_resync_state run(struct km_resync_opts *o,
				struct km_resync_progress *p)
{
	struct km_resync *rs;
	enum km_resync_state st;

	assert_int_equal(km_resync_start(&rs, o), 0);
	st = km_resync_wait(rs);
	km_resync_get_progress(rs, p);
	km_resync_free(rs);
	print_message(
		"    scanned %llu matched %llu copied %llu existed %llu "
		"missing %llu undone %llu est %llu, %.0f keys/s, %s %s\n",
		(unsigned long long)p->scanned, (unsigned long long)p->matched,
		(unsigned long long)p->copied, (unsigned long long)p->existed,
		(unsigned long long)p->missing, (unsigned long long)p->undone,
		(unsigned long long)p->total_est, p->rate,
		km_resync_state_name(st), p->error);
	return st;
}

/* Every key of the target's slots is there, with value, flags and TTL. */
static int check_target(int n, size_t vlen, __u8 target)
{
	char key[64], val[512];
	struct item it;
	int i, on = 0;

	for (i = 0; i < n; i++) {
		key_name(key, sizeof(key), i);
		mc_get(&mcs[target - 1], key, &it);
		if (!slot_has(key, target)) {
			assert_false(it.found);
			continue;
		}
		assert_true(it.found);
		value_of(val, sizeof(val), i, vlen);
		assert_string_equal(it.val, val);
		assert_int_equal(it.flags, (unsigned long)i);
		if (ttl_of(i) == 0)
			assert_int_equal(it.ttl, -1);
		else
			/* memcached's clock ticks once a second: +-2 s */
			assert_true(it.ttl > ttl_of(i) - 30 &&
				    it.ttl <= ttl_of(i) + 2);
		on++;
	}
	return on;
}

/* ---- tests -------------------------------------------------------------- */

static void test_uri_decode_and_ttl(void **state)
{
	char out[16];

	(void)state;
	assert_int_equal(km_uri_decode("a%2520b", 7, out, sizeof(out)), 5);
	assert_memory_equal(out, "a%20b", 5);
	assert_int_equal(km_uri_decode("%C3%a9", 6, out, sizeof(out)), 2);
	assert_memory_equal(out, "\xc3\xa9", 2);
	assert_int_equal(km_uri_decode("a%2", 3, out, sizeof(out)), -EINVAL);
	assert_int_equal(km_uri_decode("a%zz", 4, out, sizeof(out)), -EINVAL);
	assert_int_equal(km_uri_decode("abc", 3, out, 2), -EINVAL);
	assert_int_equal(km_resync_ttl_for_ms(-1, 1000), 0);
	assert_int_equal(km_resync_ttl_for_ms(0, 1000), 1);
	assert_int_equal(km_resync_ttl_for_ms(77, 1000), 77);
	assert_int_equal(km_resync_ttl_for_ms(60L * 60 * 24 * 31, 1000),
			 1000 + 60L * 60 * 24 * 31);
}

/* R=2 of 3: only the target's keys, from two sources, nothing else. */
static void test_copies_target_keys_only(void **state)
{
	struct km_resync_opts o;
	struct km_resync_progress p;
	int n = 20000, on;

	(void)state;
	flush_all();
	build_ring(2);
	load(n, 100, 2);
	assert_int_equal(mc_items(&mcs[1]), 0);
	opts_for(&o, 2);
	o.batch = 1000;
	assert_int_equal(run(&o, &p), KM_RS_DONE);
	on = check_target(n, 100, 2);
	print_message("    %d of %d keys belong to the target\n", on, n);
	assert_true(on > n / 2 && on < n);
	assert_int_equal(p.copied, (unsigned long long)on);
	assert_int_equal(mc_items(&mcs[1]), on);
	assert_int_equal(p.existed + p.missing + p.undone + p.failed, 0);
	/* every key was listed by exactly one of the sources' dumps... */
	assert_true(p.scanned >= (unsigned long long)on);
	assert_true(p.total_est > 0);
}

/* A value written to the target meanwhile is newer: kept. */
static void test_newer_writes_win(void **state)
{
	struct km_resync_opts o;
	struct km_resync_progress p;
	char key[64];
	struct item it;
	int i, fresh = 0;

	(void)state;
	flush_all();
	build_ring(3);
	load(5000, 50, 2);
	for (i = 0; i < 5000; i += 50) {
		char req[128];

		key_name(key, sizeof(key), i);
		snprintf(req, sizeof(req), "set %s 7 0 5\r\nfresh\r\n", key);
		mc_cmd(&mcs[1], req, "\r\n");
		fresh++;
	}
	opts_for(&o, 2);
	assert_int_equal(run(&o, &p), KM_RS_DONE);
	assert_int_equal(p.existed, (unsigned long long)fresh);
	assert_int_equal(p.copied, 5000ull - fresh);
	for (i = 0; i < 5000; i += 50) {
		key_name(key, sizeof(key), i);
		mc_get(&mcs[1], key, &it);
		assert_true(it.found);
		assert_string_equal(it.val, "fresh");
		assert_int_equal(it.flags, 7);
	}
}

static int owed;

static void count_owed(__u8 target, const char *key, size_t len)
{
	(void)target;
	(void)key;
	(void)len;
	owed++;
}

static bool owes_first_key(__u8 source, const char *key, size_t len)
{
	char k0[64];

	(void)source;
	key_name(k0, sizeof(k0), 0);
	return len == strlen(k0) && !memcmp(key, k0, len);
}

/*
 * A replay never deletes a key that only replicas owing it hold (two
 * replays would delete each other's only copy): the target's copy stays;
 * a key a clean replica holds is replaced as before.
 */
static void test_replay_keeps_ambiguous_keys(void **state)
{
	struct km_resync_opts o;
	struct km_resync_progress p;
	struct km_jkey keys[2];
	char k[2][64], req[160];
	struct item it;
	int i;

	(void)state;
	flush_all();
	build_ring(3);
	load(2, 50, 0); /* on every replica, the target too */
	for (i = 0; i < 2; i++) {
		key_name(k[i], sizeof(k[i]), i);
		snprintf(req, sizeof(req), "set %s 7 0 3\r\nold\r\n", k[i]);
		mc_cmd(&mcs[1], req, "\r\n");
		keys[i].key = k[i];
		keys[i].len = strlen(k[i]);
	}
	opts_for(&o, 2);
	o.replay = true;
	o.keys = keys;
	o.nr_keys = 2;
	o.source_owes = owes_first_key;
	o.on_owed = count_owed;
	owed = 0;
	assert_int_equal(run(&o, &p), KM_RS_DONE);
	/* kept as right when first in the slot, else kept and owed */
	assert_int_equal(p.ambiguous + p.deferred, 1);
	assert_int_equal(owed, (int)p.deferred);
	assert_int_equal(p.copied, 1);
	mc_get(&mcs[1], k[0], &it);
	assert_true(it.found);
	assert_string_equal(it.val, "old");
	mc_get(&mcs[1], k[1], &it);
	assert_true(it.found);
	assert_string_not_equal(it.val, "old");
}

/*
 * A client write that reached the target before the replay deleted the
 * key, and reaches the source only after the replay fetched the older
 * value: the delete check, made once the write had time to land, takes
 * the older copy back and the key stays owed.
 */
static void test_replay_takes_back_older_copy(void **state)
{
	const struct km_slot *sl;
	struct km_resync_opts o;
	struct km_resync_progress p;
	struct km_resync *rs;
	struct km_jkey key;
	char k[64] = "", req[160];
	struct item it;
	int i, src = -1, seen = 0;

	(void)state;
	flush_all();
	build_ring(2);
	for (i = 0; !i || !slot_has(k, 2); i++)
		snprintf(k, sizeof(k), "inflight:%d", i);
	sl = km_ring_lookup(ring, k, strlen(k));
	for (i = 0; i < sl->nr; i++)
		if (sl->be[i] != 2)
			src = sl->be[i] - 1;
	assert_true(src >= 0);
	snprintf(req, sizeof(req), "set %s 0 0 2\r\nv1\r\n", k);
	mc_cmd(&mcs[src], req, "\r\n");
	snprintf(req, sizeof(req), "set %s 0 0 2\r\nv2\r\n", k);
	mc_cmd(&mcs[1], req, "\r\n"); /* the write reached the target */
	key.key = k;
	key.len = strlen(k);
	opts_for(&o, 2);
	o.replay = true;
	o.keys = &key;
	o.nr_keys = 1;
	o.on_owed = count_owed;
	o.verify_delay_ms = 500;
	owed = 0;
	assert_int_equal(km_resync_start(&rs, &o), 0);
	/* the replay copied the older value over it: now the write lands
	 * on the source too */
	for (i = 0; i < 2000 && !seen; i++) {
		mc_get(&mcs[1], k, &it);
		seen = it.found && !strcmp(it.val, "v1");
		if (!seen)
			usleep(1000);
	}
	assert_true(seen);
	mc_cmd(&mcs[src], req, "\r\n");
	assert_int_equal(km_resync_wait(rs), KM_RS_DONE);
	km_resync_get_progress(rs, &p);
	km_resync_free(rs);
	assert_int_equal(p.undone, 1);
	assert_int_equal(owed, 1);
	mc_get(&mcs[1], k, &it);
	assert_false(it.found && !strcmp(it.val, "v1"));
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

struct batch_times {
	int n;
	double first, last;
};

static void note_batch(struct km_resync *rs, void *arg)
{
	struct batch_times *t = arg;

	(void)rs;
	t->last = now_s();
	if (!t->n++)
		t->first = t->last;
}

/*
 * A replay of several batches from one source copies them one after the
 * other and waits for the delete check's delay once, at the end: each
 * batch used to wait for the delay of the one before (a million keys,
 * 490 times --timeout).
 */
static void test_replay_waits_once(void **state)
{
	enum { NKEYS = 40, BATCH = 10, DELAY_MS = 2000 };
	static char names[NKEYS][64];
	struct km_jkey keys[NKEYS];
	struct batch_times t = {0};
	struct km_resync_opts o;
	struct km_resync_progress p;
	char req[160];
	int i, n;

	(void)state;
	flush_all();
	build_ring(2);
	for (i = n = 0; n < NKEYS; i++) {
		snprintf(names[n], sizeof(names[n]), "once:%d", i);
		/* one source: its pass waits once (a pass a source) */
		if (!slot_has(names[n], 2) || !slot_has(names[n], 1))
			continue;
		snprintf(req, sizeof(req), "set %s 0 0 1\r\nv\r\n", names[n]);
		mc_cmd(&mcs[0], req, "\r\n");
		keys[n].key = names[n];
		keys[n].len = strlen(names[n]);
		n++;
	}
	opts_for(&o, 2);
	o.replay = true;
	o.keys = keys;
	o.nr_keys = NKEYS;
	o.batch = BATCH;
	o.verify_delay_ms = DELAY_MS;
	o.on_batch = note_batch;
	o.arg = &t;
	assert_int_equal(run(&o, &p), KM_RS_DONE);
	assert_int_equal(p.copied, NKEYS);
	assert_int_equal(p.undone, 0);
	assert_true(t.n >= NKEYS / BATCH);
	/* no batch waited for the check of an earlier one */
	assert_true(t.last - t.first < DELAY_MS / 1000.0);
}

struct kill_ctx {
	int batches;
	int kill_at;
	int victim;
	const char *delete_key;
	int deleted;
};

static void kill_source(struct km_resync *rs, void *arg)
{
	struct kill_ctx *k = arg;

	(void)rs;
	if (++k->batches == k->kill_at)
		mc_stop(&mcs[k->victim]);
}

/* The first source dies after two batches: the second one finishes. */
static void test_source_dies_midway(void **state)
{
	struct km_resync_opts o;
	struct km_resync_progress p;
	struct kill_ctx k = {.kill_at = 2, .victim = 0};
	int n = 20000;

	(void)state;
	flush_all();
	build_ring(3);
	load(n, 100, 2);
	opts_for(&o, 2);
	o.batch = 1000;
	o.timeout_ms = 1000;
	o.on_batch = kill_source;
	o.arg = &k;
	assert_int_equal(run(&o, &p), KM_RS_DONE);
	assert_int_equal(p.source_errors, 1);
	/* the keys copied before the failure are not fetched again */
	assert_int_equal(p.copied, (unsigned long long)n);
	assert_int_equal(p.existed, 0);
	assert_int_equal(check_target(n, 100, 2), n);
	assert_int_equal(mc_items(&mcs[1]), n);
}

/* Both sources die: the resync fails and says why. */
static void test_all_sources_die(void **state)
{
	struct km_resync_opts o;
	struct km_resync_progress p;
	struct kill_ctx k = {.kill_at = 1, .victim = 0};

	(void)state;
	flush_all();
	build_ring(3);
	load(5000, 10, 2);
	mc_stop(&mcs[2]);
	opts_for(&o, 2);
	o.batch = 500;
	o.timeout_ms = 500;
	o.on_batch = kill_source;
	o.arg = &k;
	assert_int_equal(run(&o, &p), KM_RS_FAILED);
	assert_int_equal(p.source_errors, 2);
	assert_non_null(strstr(p.error, "no live replica"));
}

/*
 * A client deletes a key (on every replica) after we fetched it and
 * before we write it: the check removes our stale copy.
 */
static void delete_between(struct km_resync *rs, void *arg)
{
	struct kill_ctx *k = arg;
	char req[128];
	int i;

	(void)rs;
	if (k->deleted++)
		return;
	snprintf(req, sizeof(req), "delete %s\r\n", k->delete_key);
	for (i = 0; i < NR_MC; i++)
		mc_cmd(&mcs[i], req, "\r\n");
}

static void run_delete_race(bool no_verify, int expect_found)
{
	struct km_resync_opts o;
	struct km_resync_progress p;
	struct kill_ctx k = {.delete_key = "key:1"};
	struct item it;

	flush_all();
	build_ring(3);
	load(3000, 10, 2);
	opts_for(&o, 2);
	o.batch = 3000; /* one batch: key:1 is fetched before the hook */
	o.no_verify = no_verify;
	o.on_fetched = delete_between;
	o.arg = &k;
	assert_int_equal(run(&o, &p), KM_RS_DONE);
	mc_get(&mcs[1], "key:1", &it);
	assert_int_equal(it.found, expect_found);
	assert_int_equal(p.undone, (unsigned long long)!expect_found);
	mc_get(&mcs[1], "key:2", &it);
	assert_true(it.found);
}

static void test_delete_during_resync(void **state)
{
	(void)state;
	run_delete_race(false, 0);
	/* the same race without the check resurrects the key */
	run_delete_race(true, 1);
}

static void cancel_at_first(struct km_resync *rs, void *arg)
{
	(void)arg;
	km_resync_cancel(rs);
}

static void test_cancel(void **state)
{
	struct km_resync_opts o;
	struct km_resync_progress p;

	(void)state;
	flush_all();
	build_ring(3);
	load(10000, 10, 2);
	opts_for(&o, 2);
	o.batch = 500;
	o.on_batch = cancel_at_first;
	assert_int_equal(run(&o, &p), KM_RS_CANCELLED);
	assert_true(p.copied >= 500 && p.copied < 10000);
}

/*
 * Throughput, printed not asserted: KM_RESYNC_KEYS keys (default 200000)
 * of 100 bytes from one source to an empty target, with and without the
 * delete check.
 */
static void test_throughput(void **state)
{
	const char *env = getenv("KM_RESYNC_KEYS");
	int n = env ? atoi(env) : 200000, pass;
	struct km_resync_opts o;
	struct km_resync_progress p;

	(void)state;
	for (pass = 0; pass < 2; pass++) {
		flush_all();
		build_ring(3);
		mc_stop(&mcs[2]);
		load(n, 100, 2);
		opts_for(&o, 2);
		o.nr_sources = 1; /* mcs[0] only */
		o.no_verify = pass == 1;
		if (getenv("KM_RESYNC_BATCH"))
			o.batch = atoi(getenv("KM_RESYNC_BATCH"));
		assert_int_equal(run(&o, &p), KM_RS_DONE);
		/*
		 * The LRU crawler can miss a key in every sweep (seen: 1 of
		 * 200,000, once in many runs); null-fallback and read-repair
		 * cover it.  More than 1 in 10,000 is a bug of ours.
		 */
		assert_true(p.copied <= (unsigned long long)n &&
			    p.copied >= (unsigned long long)(n - n / 10000));
		assert_int_equal(mc_items(&mcs[1]), (long)p.copied);
		print_message("RESYNC %d keys of 100 bytes, delete check %s: "
			      "%.2f s, %.0f keys/s\n",
			      n, o.no_verify ? "off" : "on", p.elapsed, p.rate);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uri_decode_and_ttl),
		cmocka_unit_test(test_copies_target_keys_only),
		cmocka_unit_test(test_newer_writes_win),
		cmocka_unit_test(test_replay_keeps_ambiguous_keys),
		cmocka_unit_test(test_replay_takes_back_older_copy),
		cmocka_unit_test(test_replay_waits_once),
		cmocka_unit_test(test_source_dies_midway),
		cmocka_unit_test(test_all_sources_die),
		cmocka_unit_test(test_delete_during_resync),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_throughput),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
