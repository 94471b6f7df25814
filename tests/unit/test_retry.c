// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* retry: which deadline words are overdue, how often to look. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "retry.h"

#define MS 1000000ull

static __u64 dl[KM_PENDING_SLOTS];

static void test_overdue_words_only(void **state)
{
	struct km_retry_d out[8];
	__u64 now = 5000 * MS;
	__u32 cursor = 0;
	unsigned int n;

	(void)state;
	memset(dl, 0, sizeof(dl));
	dl[3] = km_dl_word(now - 150 * MS, 2); /* overdue */
	dl[7] = km_dl_word(now - 50 * MS, 1);  /* not yet */
	dl[9] = km_dl_word(now - 100 * MS, 0); /* a write, just due */
	dl[11] = km_dl_word(now + 3 * MS, 5);  /* armed after now was read */
	dl[KM_PENDING_SLOTS - 1] = km_dl_word(now - 1000 * MS, 7);
	n = km_retry_scan(dl, KM_PENDING_SLOTS, now, 100 * MS, &cursor, out, 8);
	assert_int_equal(n, 3);
	assert_int_equal(out[0].idx, 3);
	assert_int_equal(out[0].w, dl[3]);
	assert_int_equal(out[0].state, KM_RQ_TODO);
	assert_int_equal(out[1].idx, 9);
	assert_int_equal(out[2].idx, KM_PENDING_SLOTS - 1);
	assert_int_equal(out[2].w & KM_DL_BE, 7);
	/* once round, back where it started */
	assert_int_equal(cursor, 0);
}

static void test_cut_short_goes_on(void **state)
{
	struct km_retry_d out[4];
	__u64 now = 9000 * MS;
	__u32 cursor = 100, i;
	unsigned int n;

	(void)state;
	memset(dl, 0, sizeof(dl));
	for (i = 0; i < 6; i++)
		dl[10 + i * 1000] = km_dl_word(now - 500 * MS, 1);
	/* from 100 on: 1010, 2010, 3010, 4010 first, then 5010 and 10 */
	n = km_retry_scan(dl, KM_PENDING_SLOTS, now, 100 * MS, &cursor, out, 4);
	assert_int_equal(n, 4);
	assert_int_equal(out[0].idx, 1010);
	assert_int_equal(out[3].idx, 4010);
	assert_int_equal(cursor, 4011);
	for (i = 0; i < n; i++)
		dl[out[i].idx] = 0; /* retried: re-armed or disarmed */
	n = km_retry_scan(dl, KM_PENDING_SLOTS, now, 100 * MS, &cursor, out, 4);
	assert_int_equal(n, 2);
	assert_int_equal(out[0].idx, 5010);
	assert_int_equal(out[1].idx, 10);
	/* nothing armed: nothing taken */
	memset(dl, 0, sizeof(dl));
	assert_int_equal(km_retry_scan(dl, KM_PENDING_SLOTS, now, 100 * MS,
				       &cursor, out, 4),
			 0);
}

/* Zero words are skipped in blocks: a word in any place of one is seen. */
static void test_every_place_in_a_block(void **state)
{
	struct km_retry_d out[16];
	__u64 now = 7000 * MS;
	__u32 cursor = 0, j;
	unsigned int n;

	(void)state;
	memset(dl, 0, sizeof(dl));
	for (j = 0; j < 8; j++)
		dl[800 + 16 * j + j] = km_dl_word(now - 200 * MS, j + 1);
	n = km_retry_scan(dl, KM_PENDING_SLOTS, now, 100 * MS, &cursor, out,
			  16);
	assert_int_equal(n, 8);
	for (j = 0; j < 8; j++) {
		assert_int_equal(out[j].idx, 800 + 16 * j + j);
		assert_int_equal(out[j].w & KM_DL_BE, j + 1);
	}
}

static void test_word_layout(void **state)
{
	(void)state;
	/* the backend in the low byte, the time in the rest: never 0 */
	assert_int_equal(km_dl_word(0x12345678ab, 9), 0x1234567809);
	assert_int_equal(km_dl_word(0x12345678ff, 0) & KM_DL_BE, 0);
	assert_true(km_dl_word(0x1000, 0) != 0);
}

static void test_period(void **state)
{
	(void)state;
	assert_int_equal(km_retry_period_ms(100), 20);
	assert_int_equal(km_retry_period_ms(50), 10);
	assert_int_equal(km_retry_period_ms(3), 1);
	assert_int_equal(km_retry_period_ms(5000), 20);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_overdue_words_only),
		cmocka_unit_test(test_cut_short_goes_on),
		cmocka_unit_test(test_every_place_in_a_block),
		cmocka_unit_test(test_word_layout),
		cmocka_unit_test(test_period),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
