// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* window.h: how many keys a client may ask for, and the size expected. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "window.h"

#define MB (1024 * 1024)

static void test_keys_by_room(void **state)
{
	(void)state;
	/* 4 MB of room at 1 MB a key: four */
	assert_int_equal(km_window_keys(4 * MB, 0, MB), 4);
	assert_int_equal(km_window_keys(4 * MB, MB + 1, MB), 2);
	/* small values: capped */
	assert_int_equal(km_window_keys(4 * MB, 0, 100), KM_WIN_MAX);
	/* full, or over: one still goes (a request is never refused) */
	assert_int_equal(km_window_keys(4 * MB, 4 * MB, MB), 1);
	assert_int_equal(km_window_keys(4 * MB, 9 * MB, 512), 1);
	assert_int_equal(km_window_keys(4 * MB, 0, 8 * MB), 1);
}

static void test_estimate(void **state)
{
	size_t est = km_window_est_initial(MB);
	int i;

	(void)state;
	assert_int_equal(est, MB / 8);
	assert_int_equal(km_window_est_initial(1024), KM_EST_MIN);
	/* one big value closes the window at once */
	est = km_window_est(est, 1000023);
	assert_int_equal(est, 1000023);
	assert_int_equal(km_window_keys(4 * MB, 0, est), 4);
	/* misses and small values reopen it, an eighth at a time */
	est = km_window_est(est, 0);
	assert_int_equal(est, 1000023 - 1000023 / 8);
	for (i = 0; i < 100; i++)
		est = km_window_est(est, 40);
	assert_int_equal(est, KM_EST_MIN);
	assert_int_equal(km_window_keys(4 * MB, 0, est), KM_WIN_MAX);
	/* never below the floor, whatever comes */
	assert_int_equal(km_window_est(KM_EST_MIN, 0), KM_EST_MIN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keys_by_room),
		cmocka_unit_test(test_estimate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
