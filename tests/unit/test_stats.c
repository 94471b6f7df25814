// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* stats: the backends' `stats` replies aggregated for the proxy port. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "stats.h"

/* A memcached-like reply with these figures. */
static void add(struct km_agg *a, unsigned long items, unsigned long bytes,
		unsigned long expired)
{
	char reply[512];
	int n;

	n = snprintf(reply, sizeof(reply),
		     "STAT pid 42\r\nSTAT uptime 100\r\n"
		     "STAT curr_items %lu\r\nSTAT bytes %lu\r\n"
		     "STAT limit_maxbytes 67108864\r\nSTAT evictions 0\r\n"
		     "STAT get_expired %lu\r\nSTAT version 1.6.18\r\nEND\r\n",
		     items, bytes, expired);
	km_agg_add(a, reply, n);
}

static char *emit(const struct km_agg *a, unsigned int nr, unsigned int copies)
{
	static char text[2048];
	struct km_buf b = {0};

	assert_int_equal(km_agg_emit(a, nr, copies, &b), 0);
	snprintf(text, sizeof(text), "%.*s", (int)km_buf_used(&b),
		 km_buf_data(&b));
	km_buf_free(&b);
	return text;
}

static void test_replicas_are_not_double_counted(void **state)
{
	struct km_agg a = {0};

	(void)state;
	/* two backends, every key on both: the data set once */
	add(&a, 1000, 50000, 3);
	add(&a, 1000, 50000, 4);
	assert_string_equal(emit(&a, 2, 0),
			    "STAT curr_items 1000\r\n"
			    "STAT bytes 50000\r\n"
			    "STAT limit_maxbytes 67108864\r\n"
			    "STAT evictions 0\r\n"
			    "STAT get_expired 7\r\n" /* reads: summed */
			    "STAT kmagent_stats_backends 2/2\r\n");
}

/* kmagentd's own keys (fences, ring records) are not the data set */
static void test_own_keys_are_left_out(void **state)
{
	static const char reply[] = "STAT curr_items 1003\r\n"
				    "STAT total_items 1010\r\n"
				    "STAT bytes 50000\r\nEND\r\n";
	struct km_agg a = {0};

	(void)state;
	km_agg_add_less(&a, reply, sizeof(reply) - 1, 3);
	km_agg_add_less(&a, reply, sizeof(reply) - 1, 3);
	km_agg_add_less(&a, "ERROR\r\n", 7, 3); /* not a stats reply */
	assert_string_equal(emit(&a, 2, 0),
			    "STAT curr_items 1000\r\n"
			    "STAT total_items 1007\r\n"
			    "STAT bytes 50000\r\n"
			    "STAT kmagent_stats_backends 2/2\r\n");
}

static void test_partial_replication_and_a_silent_backend(void **state)
{
	struct km_agg a = {0};

	(void)state;
	/* three backends, two copies: 900 keys, 600 on each */
	add(&a, 600, 6000, 0);
	add(&a, 600, 6000, 0);
	add(&a, 600, 6000, 0);
	assert_non_null(strstr(emit(&a, 3, 2), "STAT curr_items 900\r\n"));
	assert_non_null(
		strstr(emit(&a, 3, 2), "STAT limit_maxbytes 100663296\r\n"));
	/* one down: its keys still exist on the others; scaled up */
	memset(&a, 0, sizeof(a));
	add(&a, 600, 6000, 0);
	add(&a, 600, 6000, 0);
	assert_non_null(strstr(emit(&a, 3, 2), "STAT curr_items 900\r\n"));
	assert_non_null(
		strstr(emit(&a, 3, 2), "STAT kmagent_stats_backends 2/3\r\n"));
	/* replicas above the backends: every backend holds every key */
	memset(&a, 0, sizeof(a));
	add(&a, 600, 6000, 0);
	assert_non_null(strstr(emit(&a, 1, 3), "STAT curr_items 600\r\n"));
}

static void test_errors_and_cut_replies_are_left_out(void **state)
{
	static const char cut[] = "STAT curr_items 5\r\nSTAT bytes 9";
	static const char err[] = "SERVER_ERROR out of memory\r\n";
	static const char odd[] = "STAT curr_items abc\r\nSTAT bytes\r\n"
				  "STAT evictions 2\r\nEND\r\n";
	struct km_agg a = {0};

	(void)state;
	km_agg_add(&a, cut, sizeof(cut) - 1);
	km_agg_add(&a, err, sizeof(err) - 1);
	assert_int_equal(a.answered, 0);
	/* nobody answered: only the count, no figure made up */
	assert_string_equal(emit(&a, 2, 0),
			    "STAT kmagent_stats_backends 0/2\r\n");
	/* a field memcached lacks, or garbage, is not shown */
	km_agg_add(&a, odd, sizeof(odd) - 1);
	assert_string_equal(emit(&a, 1, 0),
			    "STAT evictions 2\r\n"
			    "STAT kmagent_stats_backends 1/1\r\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replicas_are_not_double_counted),
		cmocka_unit_test(test_own_keys_are_left_out),
		cmocka_unit_test(test_partial_replication_and_a_silent_backend),
		cmocka_unit_test(test_errors_and_cut_replies_are_left_out),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
