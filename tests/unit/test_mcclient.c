// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * mcclient.c against a scripted peer on a socketpair: a reply is read
 * whole however it is cut, and only until the deadline.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "mcclient.h"

struct pair {
	int me, peer;
};

static int setup(void **state)
{
	static struct pair p;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		return -1;
	p.me = sv[0];
	p.peer = sv[1];
	*state = &p;
	return 0;
}

static int teardown(void **state)
{
	struct pair *p = *state;

	close(p->me);
	if (p->peer >= 0)
		close(p->peer);
	return 0;
}

static void peer_says(struct pair *p, const char *s)
{
	assert_int_equal(write(p->peer, s, strlen(s)), (ssize_t)strlen(s));
}

/* km_mc_read of one reply of kind into buf[cap], ms to wait */
static long read_reply(struct pair *p, char *buf, size_t cap,
		       enum km_reply_kind kind, int ms)
{
	struct timespec dl;
	size_t len = 0;

	km_deadline_in(&dl, ms);
	return km_mc_read(p->me, buf, cap, &len, kind, &dl);
}

static void test_send(void **state)
{
	struct pair *p = *state;
	struct timespec dl;
	char buf[16] = {0};

	km_deadline_in(&dl, 1000);
	assert_int_equal(km_mc_send(p->me, "mn\r\n", 4, &dl), 0);
	assert_int_equal(read(p->peer, buf, sizeof(buf)), 4);
	assert_string_equal(buf, "mn\r\n");
}

/* a value and END in pieces: one reply, its whole length */
static void test_read_values(void **state)
{
	static const char r[] = "VALUE k 0 2\r\nhi\r\nEND\r\n";
	struct pair *p = *state;
	char buf[64];

	peer_says(p, "VALUE k 0 2\r\nh");
	peer_says(p, "i\r\nEND\r\n");
	assert_int_equal(read_reply(p, buf, sizeof(buf), KM_RK_VALUES, 1000),
			 sizeof(r) - 1);
	assert_memory_equal(buf, r, sizeof(r) - 1);
}

static void test_read_meta(void **state)
{
	struct pair *p = *state;
	char buf[64];

	peer_says(p, "VA 3 f0\r\nabc\r\n");
	assert_int_equal(read_reply(p, buf, sizeof(buf), KM_RK_META, 1000), 14);
}

/* two replies in one read: the second is kept for the next call */
static void test_read_two(void **state)
{
	struct pair *p = *state;
	struct timespec dl;
	char buf[64];
	size_t len = 0;
	long n;

	peer_says(p, "STAT pid 7\r\nEND\r\nMN\r\n");
	km_deadline_in(&dl, 1000);
	n = km_mc_read(p->me, buf, sizeof(buf), &len, KM_RK_STATS, &dl);
	assert_int_equal(n, 17);
	assert_int_equal(len, 21);
	len -= n;
	assert_int_equal(km_mc_read(p->me, buf + n, sizeof(buf) - n, &len,
				    KM_RK_LINE, &dl),
			 4);
	assert_memory_equal(buf + n, "MN\r\n", 4);
}

/* half a reply and silence: the deadline ends the wait */
static void test_read_timeout(void **state)
{
	struct pair *p = *state;
	char buf[64];

	peer_says(p, "VALUE k 0 2\r\n");
	assert_int_equal(read_reply(p, buf, sizeof(buf), KM_RK_VALUES, 50),
			 -ETIMEDOUT);
}

static void test_read_closed(void **state)
{
	struct pair *p = *state;
	char buf[64];

	peer_says(p, "STAT pid 1\r\n");
	close(p->peer);
	p->peer = -1;
	assert_int_equal(read_reply(p, buf, sizeof(buf), KM_RK_STATS, 1000),
			 -ECONNRESET);
}

static void test_read_too_big(void **state)
{
	struct pair *p = *state;
	char buf[8];

	peer_says(p, "VALUE k 0 20\r\n");
	assert_int_equal(read_reply(p, buf, sizeof(buf), KM_RK_VALUES, 1000),
			 -EMSGSIZE);
}

static void test_read_garbage(void **state)
{
	struct pair *p = *state;
	char buf[64];

	peer_says(p, "VA x\r\n");
	assert_int_equal(read_reply(p, buf, sizeof(buf), KM_RK_META, 1000),
			 -EPROTO);
}

int main(void)
{
/* each test on a socketpair of its own */
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_send),	      T(test_read_values),  T(test_read_meta),
		T(test_read_two),     T(test_read_timeout), T(test_read_closed),
		T(test_read_too_big), T(test_read_garbage),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
