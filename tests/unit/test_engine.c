// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The request engine (engine.c) and its backend connections (backend.c),
 * driven as a worker drives them, against scripted backends: two loopback
 * listeners whose accepted end the test reads (what the engine sent) and
 * answers with memcached's replies, or leaves silent.  The harness is the
 * worker loop's part that concerns backends (flush, epoll events,
 * timeouts) and a client connection that is never flushed: the client's
 * reply is read from its request (resp).  No mock: the engine runs on the
 * real daemon table, ring and journal.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "backend.h"
#include "config.h"
#include "daemon.h"
#include "engine.h"
#include "journal.h"
#include "window.h"

#define NBE 2

/* A scripted memcached: the listener, and the engine's connection to it. */
struct sbe {
	int lfd, fd;
	char port[16];
	char got[4096]; /* what the engine sent, not consumed yet */
	size_t ngot;
};

static struct sbe sb[NBE];
static struct km_worker w;
static struct km_conn conn;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sbe_listen(struct sbe *s)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t al = sizeof(a);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	assert_true(s->lfd >= 0);
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s->lfd, 4), 0);
	assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &al), 0);
	snprintf(s->port, sizeof(s->port), "%u", ntohs(a.sin_port));
	s->fd = -1;
	s->ngot = 0;
}

/* The backend side: take the engine's connection, read what it sent. */
static void sbe_poll(struct sbe *s)
{
	ssize_t n;

	if (s->fd < 0)
		s->fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK);
	if (s->fd < 0)
		return;
	n = recv(s->fd, s->got + s->ngot, sizeof(s->got) - 1 - s->ngot, 0);
	if (n > 0) {
		s->ngot += n;
	} else if (n == 0 || errno != EAGAIN) {
		/* the engine dropped it (a reset after a timeout) */
		close(s->fd);
		s->fd = -1;
	}
	s->got[s->ngot] = 0;
}

/* One round of the worker loop, as proxy.c runs it, backends only. */
static void pump_once(void)
{
	struct epoll_event ev[8];
	struct km_bconn *bc;
	int i, n;

	w.now = now_ms();
	while ((bc = w.dirty_b)) {
		w.dirty_b = bc->dirty_next;
		km_backend_flush(&w, bc);
	}
	w.dirty_c = NULL; /* the client is never flushed: resp is read */
	n = epoll_wait(w.epfd, ev, 8, 5);
	for (i = 0; i < n; i++) {
		struct km_ev *e = ev[i].data.ptr;

		assert_int_equal(e->kind, KM_EV_BACKEND);
		bc = (struct km_bconn *)((char *)e -
					 offsetof(struct km_bconn, ev));
		km_backend_event(&w, bc, ev[i].events);
	}
	w.now = now_ms();
	km_backend_check_timeouts(&w);
	for (i = 0; i < NBE; i++)
		sbe_poll(&sb[i]);
}

static void pump_for(unsigned int ms)
{
	uint64_t end = now_ms() + ms;

	while (now_ms() < end)
		pump_once();
}

/* Run the loop until backend s was sent want (consumed), at most 2 s. */
static void expect_sent(struct sbe *s, const char *want)
{
	uint64_t end = now_ms() + 2000;
	size_t n = strlen(want);

	while (s->ngot < n && now_ms() < end)
		pump_once();
	if (s->ngot < n || memcmp(s->got, want, n))
		fail_msg("backend %s: sent \"%s\", expected \"%s\"", s->port,
			 s->got, want);
	memmove(s->got, s->got + n, s->ngot - n + 1);
	s->ngot -= n;
}

static void sbe_reply(struct sbe *s, const char *reply)
{
	size_t n = strlen(reply);

	assert_true(s->fd >= 0);
	assert_int_equal(send(s->fd, reply, n, MSG_NOSIGNAL), (ssize_t)n);
}

static void run_until_answered(struct km_req *r, unsigned int ms)
{
	uint64_t end = now_ms() + ms;

	while (!r->answered && now_ms() < end)
		pump_once();
	assert_true(r->answered);
}

/* The engine has nothing more out: every op answered or failed. */
static void run_until_idle(void)
{
	uint64_t end = now_ms() + 2000;

	while (km_backend_pending(&w) && now_ms() < end)
		pump_once();
	assert_false(km_backend_pending(&w));
}

/* A client request, parsed as proxy.c does, dispatched; its km_req. */
static struct km_req *client(const char *text)
{
	struct km_request pr;
	const char *data = NULL;
	size_t dlen = 0;

	assert_int_equal(km_parse_request(text, strlen(text), &pr), KM_P_OK);
	if (pr.vlen >= 0) {
		data = text + pr.consumed;
		dlen = pr.vlen + 2;
	}
	w.now = now_ms(); /* as at the start of a loop round */
	km_dispatch(&w, &conn, &pr, data, dlen);
	assert_non_null(conn.tail);
	return conn.tail;
}

/* Replica rank of key (0: primary), its scripted backend. */
static struct sbe *replica(const struct km_req *r, unsigned int rank)
{
	assert_true(r->nkeys >= 1 && rank < r->keys[0].nr);
	return &sb[r->keys[0].be[rank] - 1];
}

static __u8 replica_id(const struct km_req *r, unsigned int rank)
{
	return r->keys[0].be[rank];
}

static void assert_resp(const struct km_req *r, const char *want)
{
	size_t n = km_buf_used(&r->resp);

	if (n != strlen(want) || memcmp(km_buf_data(&r->resp), want, n))
		fail_msg("client got \"%.*s\", expected \"%s\"", (int)n,
			 (const char *)km_buf_data(&r->resp), want);
}

/* The client is done with its head request (proxy.c after flushing). */
static void client_done(void)
{
	struct km_req *r = conn.head;

	conn.head = r->next;
	if (!conn.head)
		conn.tail = NULL;
	conn.nreq--;
	km_req_detach(&w, r);
}

static int setup(void **state)
{
	struct km_cfg cfg;
	char hp[32];
	int i;

	(void)state;
	km_config_defaults(&cfg);
	for (i = 0; i < NBE; i++) {
		sbe_listen(&sb[i]);
		snprintf(hp, sizeof(hp), "127.0.0.1:%s", sb[i].port);
		assert_int_equal(
			km_config_add_backend(&cfg, hp, 0, stderr, "test"), 0);
	}
	cfg.pool_size = 1;
	cfg.timeout_ms = 200;
	assert_int_equal(km_daemon_init(&cfg), 0);
	km_backend_set_done(km_op_complete);

	memset(&w, 0, sizeof(w));
	w.epfd = epoll_create1(EPOLL_CLOEXEC);
	assert_true(w.epfd >= 0);
	w.seq_ev.kind = KM_EV_SEQ;
	w.seq_ev.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_true(w.seq_ev.fd >= 0);
	pthread_mutex_init(&w.seq_lock, NULL);
	w.now = now_ms();

	memset(&conn, 0, sizeof(conn));
	conn.ev.kind = KM_EV_CLIENT;
	conn.ev.fd = -1;
	conn.w = &w;
	conn.est = km_window_est_initial(cfg.item_size_max);
	return 0;
}

static int teardown(void **state)
{
	int i;

	(void)state;
	while (conn.head)
		client_done();
	km_backend_close_all(&w);
	km_worker_free_lists(&w);
	close(w.epfd);
	close(w.seq_ev.fd);
	pthread_mutex_destroy(&w.seq_lock);
	for (i = 0; i < NBE; i++) {
		if (sb[i].fd >= 0)
			close(sb[i].fd);
		close(sb[i].lfd);
		km_journal_clear(i + 1);
	}
	km_daemon_fini();
	return 0;
}

/* A get goes to the primary only; its hit is the client's reply. */
static void test_get_hit_primary(void **state)
{
	struct km_req *r;

	(void)state;
	r = client("get k1\r\n");
	expect_sent(replica(r, 0), "get k1\r\n");
	sbe_reply(replica(r, 0), "VALUE k1 0 2\r\nv1\r\nEND\r\n");
	run_until_answered(r, 1000);
	assert_resp(r, "VALUE k1 0 2\r\nv1\r\nEND\r\n");
	assert_int_equal(replica(r, 1)->ngot, 0); /* never asked */
}

/* A miss on the primary asks the next replica, whose hit is returned. */
static void test_get_miss_falls_back(void **state)
{
	struct km_req *r;

	(void)state;
	r = client("get k2\r\n");
	expect_sent(replica(r, 0), "get k2\r\n");
	sbe_reply(replica(r, 0), "END\r\n");
	expect_sent(replica(r, 1), "get k2\r\n");
	sbe_reply(replica(r, 1), "VALUE k2 5 3\r\nabc\r\nEND\r\n");
	run_until_answered(r, 1000);
	assert_resp(r, "VALUE k2 5 3\r\nabc\r\nEND\r\n");
}

/* A set goes to both replicas; the client gets the primary's reply. */
static void test_set_both_primary_reply(void **state)
{
	struct km_req *r;

	(void)state;
	r = client("set k3 0 0 2\r\nxy\r\n");
	expect_sent(replica(r, 0), "set k3 0 0 2\r\nxy\r\n");
	expect_sent(replica(r, 1), "set k3 0 0 2\r\nxy\r\n");
	/* the secondary first, and unlike the primary: still the primary's */
	sbe_reply(replica(r, 1), "SERVER_ERROR out of memory\r\n");
	sbe_reply(replica(r, 0), "STORED\r\n");
	run_until_answered(r, 1000);
	assert_resp(r, "STORED\r\n");
	run_until_idle();
	/* the secondary failed the write: it owes the key now */
	assert_true(km_journal_owes(replica_id(r, 1), "k3", 2));
	assert_false(km_journal_owes(replica_id(r, 0), "k3", 2));
}

/*
 * An add the primary refuses (it holds the key) and a secondary stores:
 * the client is told NOT_STORED, what it will read back, and the
 * secondary, now holding another value than the primary, owes the key.
 */
static void test_add_refused_by_primary(void **state)
{
	struct km_req *r;

	(void)state;
	r = client("add k4 0 0 1\r\nz\r\n");
	expect_sent(replica(r, 0), "add k4 0 0 1\r\nz\r\n");
	expect_sent(replica(r, 1), "add k4 0 0 1\r\nz\r\n");
	sbe_reply(replica(r, 0), "NOT_STORED\r\n");
	sbe_reply(replica(r, 1), "STORED\r\n");
	run_until_answered(r, 1000);
	run_until_idle();
	assert_resp(r, "NOT_STORED\r\n");
	assert_true(km_journal_owes(replica_id(r, 1), "k4", 2));
	assert_false(km_journal_owes(replica_id(r, 0), "k4", 2));
}

/*
 * A replica that never answers: the write times out on it (the client
 * still gets the primary's STORED) and it owes the key as sent, a debt no
 * later overwrite settles (the lost write may still land after it).
 */
static void test_silent_replica_times_out(void **state)
{
	struct km_req *r, *r2;
	__u8 silent;

	(void)state;
	r = client("set k5 0 0 1\r\na\r\n");
	silent = replica_id(r, 1);
	expect_sent(replica(r, 0), "set k5 0 0 1\r\na\r\n");
	expect_sent(replica(r, 1), "set k5 0 0 1\r\na\r\n");
	sbe_reply(replica(r, 0), "STORED\r\n");
	/* the reply waits for every replica: until the timeout (200 ms) */
	pump_for(50);
	assert_false(r->answered);
	assert_false(km_journal_owes(silent, "k5", 2));
	run_until_answered(r, 1000);
	assert_resp(r, "STORED\r\n");
	assert_true(km_journal_owes(silent, "k5", 2));
	assert_true(KM_LOAD(km_d.be[silent].c.timeouts) >= 1);

	/* sticky: an overwrite it takes does not settle the debt (after
	 * the reconnect delay, 100 ms, so that it is sent) */
	client_done();
	usleep(150 * 1000);
	r2 = client("set k5 0 0 1\r\nb\r\n");
	expect_sent(replica(r2, 0), "set k5 0 0 1\r\nb\r\n");
	expect_sent(replica(r2, 1), "set k5 0 0 1\r\nb\r\n");
	sbe_reply(replica(r2, 0), "STORED\r\n");
	sbe_reply(replica(r2, 1), "STORED\r\n");
	run_until_answered(r2, 1000);
	run_until_idle();
	assert_true(km_journal_owes(silent, "k5", 2));
}

/* A read skips a replica that owes the key: the next one is asked. */
static void test_read_skips_owing_replica(void **state)
{
	const struct km_slot *s = km_ring_lookup(km_daemon_ring(), "k6", 2);
	struct km_req *r;

	(void)state;
	km_journal_note(s->be[0], "k6", 2); /* the primary missed a write */
	r = client("get k6\r\n");
	assert_int_equal(replica_id(r, 0), s->be[0]);
	expect_sent(replica(r, 1), "get k6\r\n");
	sbe_reply(replica(r, 1), "VALUE k6 0 1\r\nq\r\nEND\r\n");
	run_until_answered(r, 1000);
	assert_resp(r, "VALUE k6 0 1\r\nq\r\nEND\r\n");
	assert_int_equal(replica(r, 0)->ngot, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_get_hit_primary, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_get_miss_falls_back, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_set_both_primary_reply,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_add_refused_by_primary,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_silent_replica_times_out,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_skips_owing_replica,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
