// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Tests of kmbench's latency histogram (bench/kmb_hist.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "../../bench/kmb_hist.h"

static struct kmb_hist *new_hist(void)
{
	struct kmb_hist *h = malloc(sizeof(*h));

	assert_non_null(h);
	kmb_hist_reset(h);
	return h;
}

static void test_small_values_are_exact(void **state)
{
	uint64_t v;

	(void)state;
	for (v = 0; v < KMB_HIST_SUB; v++) {
		assert_int_equal(kmb_hist_index(v), v);
		assert_int_equal(kmb_hist_low(v), v);
		assert_int_equal(kmb_hist_high(v), v);
	}
}

/* Buckets tile the value range: no gap, no overlap, bounded width. */
static void test_buckets_are_contiguous(void **state)
{
	unsigned int i;

	(void)state;
	for (i = 1; i < KMB_HIST_BUCKETS; i++) {
		assert_int_equal(kmb_hist_low(i), kmb_hist_high(i - 1) + 1);
		assert_true(kmb_hist_high(i) >= kmb_hist_low(i));
		/* width <= low / 128: the promised relative error */
		assert_true((kmb_hist_high(i) - kmb_hist_low(i)) *
				    KMB_HIST_SUB <=
			    kmb_hist_low(i));
	}
	assert_int_equal(kmb_hist_high(KMB_HIST_BUCKETS - 1),
			 (1ull << KMB_HIST_MAX_BITS) - 1);
}

static void test_values_land_in_their_bucket(void **state)
{
	uint64_t v;
	unsigned int i;

	(void)state;
	/* every value up to 1 ms, then a geometric walk to the clamp */
	for (v = 0; v < 1000000; v++) {
		i = kmb_hist_index(v);
		assert_true(kmb_hist_low(i) <= v && v <= kmb_hist_high(i));
	}
	for (v = 1000000; v < (1ull << KMB_HIST_MAX_BITS); v += v / 7 + 1) {
		i = kmb_hist_index(v);
		assert_true(kmb_hist_low(i) <= v && v <= kmb_hist_high(i));
	}
	assert_int_equal(kmb_hist_index(UINT64_MAX), KMB_HIST_BUCKETS - 1);
}

static void test_quantiles_of_a_uniform_range(void **state)
{
	struct kmb_hist *h = new_hist();
	uint64_t v;

	(void)state;
	/* 1..100000 us in ns: the q quantile is q * 100000 us */
	for (v = 1; v <= 100000; v++)
		kmb_hist_record(h, v * 1000);
	assert_int_equal(h->count, 100000);
	assert_int_equal(h->min, 1000);
	assert_int_equal(h->max, 100000000);
	assert_in_range(kmb_hist_quantile(h, 0.5), 50000000, 50000000 * 1.008);
	assert_in_range(kmb_hist_quantile(h, 0.99), 99000000, 99000000 * 1.008);
	assert_in_range(kmb_hist_quantile(h, 0.999), 99900000,
			99900000 * 1.008);
	assert_int_equal(kmb_hist_quantile(h, 1.0), 100000000);
	assert_int_equal(h->sum / h->count, 50000500);
	free(h);
}

static void test_quantile_picks_the_right_rank(void **state)
{
	struct kmb_hist *h = new_hist();
	int i;

	(void)state;
	assert_int_equal(kmb_hist_quantile(h, 0.5), 0);
	/* 99 fast samples, one slow: p99 is fast, p99.9 is the slow one */
	for (i = 0; i < 99; i++)
		kmb_hist_record(h, 10);
	kmb_hist_record(h, 5000000);
	assert_int_equal(kmb_hist_quantile(h, 0.5), 10);
	assert_int_equal(kmb_hist_quantile(h, 0.99), 10);
	assert_int_equal(kmb_hist_quantile(h, 0.999), 5000000);
	free(h);
}

static void test_merge_adds_up(void **state)
{
	struct kmb_hist *a = new_hist(), *b = new_hist();

	(void)state;
	kmb_hist_record(a, 100);
	kmb_hist_record(a, 300);
	kmb_hist_record(b, 7);
	kmb_hist_record(b, 90000);
	kmb_hist_merge(a, b);
	assert_int_equal(a->count, 4);
	assert_int_equal(a->sum, 90407);
	assert_int_equal(a->min, 7);
	assert_int_equal(a->max, 90000);
	assert_int_equal(kmb_hist_quantile(a, 0.25), 7);
	assert_int_equal(kmb_hist_quantile(a, 0.5), 100);
	assert_int_equal(kmb_hist_quantile(a, 1.0), 90000);
	free(a);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_small_values_are_exact),
		cmocka_unit_test(test_buckets_are_contiguous),
		cmocka_unit_test(test_values_land_in_their_bucket),
		cmocka_unit_test(test_quantiles_of_a_uniform_range),
		cmocka_unit_test(test_quantile_picks_the_right_rank),
		cmocka_unit_test(test_merge_adds_up),
	};

	return cmocka_run_group_tests_name("kmb_hist", tests, NULL, NULL);
}
