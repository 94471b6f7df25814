// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * backend.c: an op that fails while it is submitted is completed by the
 * worker loop (km_backend_complete_failed), never inside
 * km_backend_submit, where the engine that sends it would be re-entered.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "backend.h"
#include "daemon.h"

#define NOPS 4

static struct km_worker w;
static struct km_op ops[NOPS];
static int in_submit;
static unsigned int ndone, resubmit;
static struct km_op *done_order[NOPS];

static int submit(struct km_op *op)
{
	int err;

	in_submit++;
	err = km_backend_submit(&w, op, 0, "get k\r\n", 7, NULL, 0);
	in_submit--;
	return err;
}

static int on_done(struct km_worker *dw, struct km_op *op, const char *reply,
		   size_t len)
{
	(void)len;
	assert_ptr_equal(dw, &w);
	/* the point: never completed from inside a submit */
	assert_int_equal(in_submit, 0);
	assert_null(reply);
	assert_true(ndone < NOPS);
	done_order[ndone++] = op;
	/* a read asks its next replica from its completion */
	if (resubmit && op == &ops[0])
		assert_int_equal(submit(&ops[resubmit]), -1);
	return 0;
}

static int setup(void **state)
{
	(void)state;
	memset(&w, 0, sizeof(w));
	w.epfd = -1;
	memset(ops, 0, sizeof(ops));
	memset(done_order, 0, sizeof(done_order));
	ndone = resubmit = 0;
	km_d.cfg.pool_size = 1;
	km_d.cfg.timeout_ms = 1000;
	/* no address family: socket() fails, so does every submit */
	memset(&km_d.be[1].addr, 0, sizeof(km_d.be[1].addr));
	km_d.be[1].addr.sa.sa_family = AF_UNSPEC;
	for (unsigned int i = 0; i < NOPS; i++) {
		ops[i].be = 1;
		ops[i].kind = KM_RK_LINE;
		ops[i].cmd = KM_CMD_GET;
	}
	km_backend_set_done(on_done);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	km_backend_close_all(&w);
	return 0;
}

static void test_failed_submit_completes_later(void **state)
{
	(void)state;
	assert_int_equal(submit(&ops[0]), -1);
	/* the reconnect delay: this one fails without trying */
	assert_int_equal(submit(&ops[1]), -1);
	assert_int_equal(ndone, 0);
	assert_non_null(w.failed_head);
	km_backend_complete_failed(&w);
	assert_int_equal(ndone, 2);
	assert_ptr_equal(done_order[0], &ops[0]);
	assert_ptr_equal(done_order[1], &ops[1]);
	assert_null(w.failed_head);
	assert_null(w.failed_tail);
	/* nothing left: a second call completes nothing twice */
	km_backend_complete_failed(&w);
	assert_int_equal(ndone, 2);
}

static void test_resubmit_from_completion(void **state)
{
	(void)state;
	resubmit = 2;
	assert_int_equal(submit(&ops[0]), -1);
	km_backend_complete_failed(&w);
	/* the op sent from the completion failed too: done in the same
	 * call, after the one whose completion sent it */
	assert_int_equal(ndone, 2);
	assert_ptr_equal(done_order[0], &ops[0]);
	assert_ptr_equal(done_order[1], &ops[2]);
	assert_null(w.failed_head);
}

static void test_fail_later(void **state)
{
	(void)state;
	km_backend_fail_later(&w, &ops[3]);
	assert_int_equal(ndone, 0);
	km_backend_complete_failed(&w);
	assert_int_equal(ndone, 1);
	assert_ptr_equal(done_order[0], &ops[3]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_failed_submit_completes_later, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resubmit_from_completion,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_fail_later, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
