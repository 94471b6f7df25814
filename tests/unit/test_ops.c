// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The ops pieces that need no backend: kmagentctl's JSON reader, the
 * read-repair token bucket, and the control socket's request handler run
 * against a daemon table (every reply must be valid JSON with the right
 * figures).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "config.h"
#include "ctl.h"
#include "daemon.h"
#include "json.h"
#include "repair.h"

static void test_json_reader(void **state)
{
	struct km_json *j;
	const struct km_json *a;

	(void)state;
	j = km_json_parse(" {\"a\": [1, -2.5e1, true, null], \"s\": "
			  "\"x\\\"y\\\\\\u0041\\n\", \"o\": {\"k\": false}} ");
	assert_non_null(j);
	a = km_json_get(j, "a");
	assert_non_null(a);
	assert_int_equal(a->t, KM_J_ARR);
	assert_true(a->child->num == 1);
	assert_true(a->child->next->num == -25);
	assert_int_equal(a->child->next->next->t, KM_J_BOOL);
	assert_int_equal(a->child->next->next->next->t, KM_J_NULL);
	assert_string_equal(km_json_string(j, "s", ""), "x\"y\\A\n");
	assert_int_equal(km_json_bool(km_json_get(j, "o"), "k"), 0);
	assert_true(km_json_num(j, "missing", 7) == 7);
	assert_null(km_json_get(j, "k")); /* not recursive */
	km_json_free(j);

	assert_null(km_json_parse("{\"a\":1} x"));
	assert_null(km_json_parse("{\"a\" 1}"));
	assert_null(km_json_parse("[1,]"));
	assert_null(km_json_parse("\"\\q\""));
	assert_null(km_json_parse("\"open"));
	assert_null(km_json_parse(""));
	j = km_json_parse("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]"
			  "]]]]]]]]]]]]]]]]");
	assert_null(j); /* deeper than 32 */
	j = km_json_parse("{}");
	assert_non_null(j);
	assert_null(j->child);
	km_json_free(j);
}

static void test_token_bucket(void **state)
{
	struct km_bucket b = {.tokens = 5, .rate = 10, .burst = 5, .last = 0};
	int i, n = 0;

	(void)state;
	for (i = 0; i < 10; i++)
		n += km_bucket_take(&b, 0);
	assert_int_equal(n, 5);			       /* the burst */
	assert_int_equal(km_bucket_take(&b, 0.05), 0); /* half a token */
	assert_int_equal(km_bucket_take(&b, 0.1), 1);  /* one a 100 ms */
	assert_int_equal(km_bucket_take(&b, 0.1), 0);
	for (n = 0, i = 0; i < 10; i++)
		n += km_bucket_take(&b, 100);
	assert_int_equal(n, 5); /* capped at the burst after a long pause */
}

/* Run one request; returns the parsed reply (caller frees). */
static struct km_json *ask(const char *line)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	struct km_json *j;

	assert_non_null(out);
	km_ctl_handle(line, out);
	fclose(out);
	j = km_json_parse(buf);
	if (!j)
		fail_msg("not JSON for '%s': %s", line, buf);
	free(buf);
	return j;
}

static int setup_daemon(void **state)
{
	struct km_cfg cfg;

	(void)state;
	km_config_defaults(&cfg);
	/* port 1 on loopback: refused at once, latency -1 */
	assert_int_equal(
		km_config_add_backend(&cfg, "127.0.0.1:1", 0, stderr, "test"),
		0);
	assert_int_equal(
		km_config_add_backend(&cfg, "127.0.0.2:1", 0, stderr, "test"),
		0);
	assert_int_equal(km_daemon_init(&cfg), 0);
	return 0;
}

static int teardown_daemon(void **state)
{
	(void)state;
	km_daemon_fini();
	return 0;
}

static void test_ctl_status_backends_stats(void **state)
{
	struct km_json *j;
	const struct km_json *b;

	(void)state;
	j = ask("status");
	assert_true(km_json_bool(j, "ok"));
	assert_true(km_json_num(j, "backends", 0) == 2);
	assert_true(km_json_num(j, "up", 0) == 2);
	assert_string_equal(km_json_string(j, "write_policy", ""), "primary");
	km_json_free(j);

	j = ask("backends");
	b = km_json_get(j, "backends")->child;
	assert_string_equal(km_json_string(b, "name", ""), "127.0.0.1:1");
	assert_string_equal(km_json_string(b, "state", ""), "up");
	assert_true(km_json_num(b, "latency_us", 0) == -1);
	assert_int_equal(km_json_get(b, "resync")->t, KM_J_NULL);
	assert_string_equal(km_json_string(b->next, "name", ""), "127.0.0.2:1");
	assert_null(b->next->next);
	km_json_free(j);

	KM_ADD(km_d.c.cmd_get, 42);
	j = ask("stats");
	assert_true(km_json_num(km_json_get(j, "user"), "cmd_get", 0) == 42);
	assert_int_equal(km_json_get(j, "kernel")->t, KM_J_NULL);
	assert_true(km_json_num(km_json_get(j, "repair"), "rate_limit", 0) ==
		    0); /* repair not started here */
	b = km_json_get(j, "backends")->child;
	assert_non_null(km_json_get(b, "user"));
	km_json_free(j);
}

static void test_ctl_ring_matches_ring_lookup(void **state)
{
	static const char *keys[] = {"becd0000", "a", "key:12345",
				     "\xc3\xa9t\xc3\xa9"};
	unsigned int i;

	(void)state;
	for (i = 0; i < 4; i++) {
		const struct km_slot *s = km_ring_lookup(
			km_daemon_ring(), keys[i], strlen(keys[i]));
		char line[64];
		struct km_json *j;
		const struct km_json *r;
		unsigned int n = 0;

		snprintf(line, sizeof(line), "ring %s", keys[i]);
		j = ask(line);
		assert_true(km_json_bool(j, "ok"));
		assert_string_equal(km_json_string(j, "key", ""), keys[i]);
		assert_true(km_json_num(j, "slot", -1) ==
			    km_ring_slot_of(keys[i], strlen(keys[i])));
		for (r = km_json_get(j, "replicas")->child; r; r = r->next)
			assert_true(km_json_num(r, "id", 0) == s->be[n++]);
		assert_int_equal(n, s->nr);
		assert_true(km_json_num(j, "read_from", 0) == s->be[0]);
		km_json_free(j);
	}
}

static void test_ctl_drain_and_errors(void **state)
{
	struct km_json *j;

	(void)state;
	j = ask("drain 127.0.0.2:1 writes");
	assert_true(km_json_bool(j, "ok"));
	km_json_free(j);
	assert_int_equal(km_d.be[2].kb.flags,
			 KM_BE_F_NO_READS | KM_BE_F_NO_WRITES);
	assert_false(km_be_readable(2));
	j = ask("undrain 2");
	assert_true(km_json_bool(j, "ok"));
	km_json_free(j);
	assert_int_equal(km_d.be[2].kb.flags, 0);
	assert_true(km_be_readable(2));

	j = ask("drain 9");
	assert_false(km_json_bool(j, "ok"));
	assert_non_null(strstr(km_json_string(j, "error", ""), "no such"));
	km_json_free(j);
	j = ask("drain 1 sideways");
	assert_false(km_json_bool(j, "ok"));
	km_json_free(j);
	assert_int_equal(km_d.be[1].kb.flags, 0);
	j = ask("frobnicate");
	assert_false(km_json_bool(j, "ok"));
	km_json_free(j);
	j = ask("");
	assert_false(km_json_bool(j, "ok"));
	km_json_free(j);
	j = ask("repair-rate 250");
	assert_true(km_json_bool(j, "ok"));
	km_json_free(j);
	assert_int_equal(km_repair_get_rate(), 250);
	j = ask("repair-rate -3");
	assert_false(km_json_bool(j, "ok"));
	km_json_free(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_reader),
		cmocka_unit_test(test_token_bucket),
		cmocka_unit_test(test_ctl_status_backends_stats),
		cmocka_unit_test(test_ctl_ring_matches_ring_lookup),
		cmocka_unit_test(test_ctl_drain_and_errors),
	};

	return cmocka_run_group_tests(tests, setup_daemon, teardown_daemon);
}
