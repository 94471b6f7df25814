// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Unit tests of the missed-write journal (user/lib/journal.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "journal.h"

static void note(__u8 be, const char *key)
{
	km_journal_note(be, key, strlen(key));
}

static bool snap_has(const struct km_journal_snap *s, const char *key)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (s->keys[i].len == strlen(key) &&
		    !memcmp(s->keys[i].key, key, s->keys[i].len))
			return true;
	return false;
}

static int teardown(void **state)
{
	(void)state;
	km_journal_fini();
	km_journal_set_max(0);
	return 0;
}

static void test_note_forget_take(void **state)
{
	struct km_journal_snap s;

	(void)state;
	assert_true(km_journal_empty(1));
	note(1, "a");
	note(1, "b");
	note(1, "a"); /* once */
	note(2, "c");
	km_journal_forget(1, "b", 1);
	km_journal_forget(1, "zz", 2); /* not there: nothing */
	assert_false(km_journal_empty(1));
	assert_int_equal(km_journal_take(1, &s), 0);
	assert_int_equal(s.n, 1);
	assert_true(snap_has(&s, "a"));
	assert_false(s.lost);
	assert_false(s.flush);
	assert_true(km_journal_empty(1));
	assert_false(km_journal_empty(2)); /* journals are per backend */
	km_journal_snap_free(&s);
}

static void test_growth(void **state)
{
	struct km_journal_snap s;
	char key[32];
	int i;

	(void)state;
	for (i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "key-%d", i);
		note(3, key);
	}
	for (i = 0; i < 5000; i += 2) {
		snprintf(key, sizeof(key), "key-%d", i);
		km_journal_forget(3, key, strlen(key));
	}
	assert_int_equal(km_journal_take(3, &s), 0);
	assert_int_equal(s.n, 2500);
	assert_true(snap_has(&s, "key-4999"));
	assert_false(snap_has(&s, "key-4998"));
	km_journal_snap_free(&s);
}

static void test_overflow_is_lost(void **state)
{
	struct km_journal_info info;
	struct km_journal_snap s;

	(void)state;
	km_journal_set_max(2);
	note(1, "a");
	note(1, "b");
	note(1, "c");
	km_journal_get_info(1, &info);
	assert_true(info.lost);
	assert_string_equal(info.why, "journal full");
	assert_int_equal(info.keys, 0);
	note(1, "d"); /* ignored: a full resync comes anyway */
	assert_int_equal(km_journal_take(1, &s), 0);
	assert_true(s.lost);
	assert_int_equal(s.n, 0);
	km_journal_snap_free(&s);
	km_journal_get_info(1, &info);
	assert_false(info.lost); /* taken */
}

static void test_flush_drops_older_keys(void **state)
{
	struct km_journal_snap s;

	(void)state;
	note(1, "before");
	km_journal_note_flush(1);
	note(1, "after");
	assert_int_equal(km_journal_take(1, &s), 0);
	assert_true(s.flush);
	assert_int_equal(s.n, 1);
	assert_true(snap_has(&s, "after"));
	km_journal_snap_free(&s);
}

static void test_put_back_merges(void **state)
{
	struct km_journal_snap s, t;

	(void)state;
	note(1, "x");
	km_journal_note_flush(1);
	note(1, "y");
	assert_int_equal(km_journal_take(1, &s), 0);
	note(1, "z"); /* missed while the replay ran */
	km_journal_put_back(1, &s);
	assert_int_equal(km_journal_take(1, &t), 0);
	assert_int_equal(t.n, 2);
	assert_true(snap_has(&t, "y"));
	assert_true(snap_has(&t, "z"));
	assert_true(t.flush); /* the flush is still owed */
	km_journal_snap_free(&t);
}

static void test_clear_and_bad_ids(void **state)
{
	struct km_journal_snap s;

	(void)state;
	note(1, "a");
	km_journal_set_lost(1, "test");
	km_journal_clear(1);
	assert_true(km_journal_empty(1));
	assert_int_equal(km_journal_take(1, &s), 0);
	assert_false(s.lost);
	km_journal_snap_free(&s);
	note(0, "ignored"); /* backend id 0 is "none" */
	assert_true(km_journal_empty(0));
	assert_int_equal(km_journal_take(0, &s), -EINVAL);
}

/*
 * What a kmagentd leaves in its state dir when it is killed: run in a
 * child that ends with _exit (no cleanup, as SIGKILL), so that the parent,
 * a fresh "process" with no journal in memory, loads the file.
 */
static void in_child(void (*fn)(const char *dir), const char *dir)
{
	pid_t pid = fork();
	int st;

	assert_true(pid >= 0);
	if (!pid) {
		fn(dir);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void name_backends(void)
{
	km_journal_name(1, "198.18.0.1:11211");
	km_journal_name(2, "198.18.0.2:11211");
	km_journal_name(3, "198.18.0.3:11211");
}

static void owe_and_die(const char *dir)
{
	struct km_journal_snap s;

	name_backends();
	if (km_journal_open(dir))
		_exit(3);
	note(1, "a");
	note(1, "b");
	note(1, "c");
	km_journal_forget(1, "b", 1); /* the file keeps it: a superset */
	km_journal_set_lost(2, "journal full");
	note(3, "t");
	/* a replay under way: its keys are still owed until settled */
	if (km_journal_take(3, &s))
		_exit(4);
	km_journal_snap_free(&s);
}

static char *state_dir(void)
{
	static char tmpl[64];

	snprintf(tmpl, sizeof(tmpl), "/tmp/km-journal-XXXXXX");
	assert_non_null(mkdtemp(tmpl));
	return tmpl;
}

static void rm_state_dir(const char *dir)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/journal", dir);
	unlink(path);
	rmdir(dir);
}

static void test_durable_after_kill(void **state)
{
	char *dir = state_dir();
	struct km_journal_snap s;
	struct km_journal_info ji;

	(void)state;
	in_child(owe_and_die, dir);
	name_backends();
	assert_int_equal(km_journal_open(dir), 0);
	assert_true(km_journal_known_past());
	assert_int_equal(km_journal_take(1, &s), 0);
	assert_true(s.n >= 2 && snap_has(&s, "a") && snap_has(&s, "c"));
	assert_false(s.lost);
	km_journal_snap_free(&s);
	km_journal_get_info(2, &ji);
	assert_true(ji.lost);
	assert_string_equal(ji.why, "journal full");
	assert_int_equal(km_journal_take(3, &s), 0);
	assert_int_equal(s.n, 1);
	assert_true(snap_has(&s, "t"));
	km_journal_snap_free(&s);
	rm_state_dir(dir);
}

static void settle_and_die(const char *dir)
{
	struct km_journal_snap s;

	name_backends();
	if (km_journal_open(dir))
		_exit(3);
	note(1, "a");
	note(2, "x");
	if (km_journal_take(1, &s))
		_exit(4);
	km_journal_snap_free(&s);
	km_journal_settle(1); /* replayed: owed no more */
}

static void test_settle_forgets(void **state)
{
	char *dir = state_dir();
	struct km_journal_snap s;

	(void)state;
	in_child(settle_and_die, dir);
	name_backends();
	assert_int_equal(km_journal_open(dir), 0);
	assert_true(km_journal_empty(1));
	assert_int_equal(km_journal_take(2, &s), 0);
	assert_int_equal(s.n, 1);
	assert_true(snap_has(&s, "x"));
	km_journal_snap_free(&s);
	rm_state_dir(dir);
}

/* A line torn by a kill mid-write, and a backend removed since. */
static void test_torn_line_and_removed_backend(void **state)
{
	char *dir = state_dir(), path[128];
	struct km_journal_snap s;
	FILE *f;

	(void)state;
	snprintf(path, sizeof(path), "%s/journal", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("n 198.18.0.1:11211 6b31\nn 198.18.0.9:11211 6b32\nn "
	      "198.18.0.1:112",
	      f);
	fclose(f);
	name_backends();
	assert_int_equal(km_journal_open(dir), 0);
	assert_true(km_journal_known_past());
	assert_int_equal(km_journal_take(1, &s), 0);
	assert_int_equal(s.n, 1);
	assert_true(snap_has(&s, "k1"));
	km_journal_snap_free(&s);
	rm_state_dir(dir);
}

static void owe_ipv6_and_die(const char *dir)
{
	km_journal_name(1, "198.18.0.1:11211");
	km_journal_name(2, "[2001:2::2]:11211");
	if (km_journal_open(dir))
		_exit(3);
	note(2, "v6");
}

/*
 * Records name a backend as written: an IPv6 one in brackets, next to an
 * IPv4 one in a file of an earlier version (the format is unchanged).
 */
static void test_ipv6_names(void **state)
{
	char *dir = state_dir(), path[128], line[128];
	struct km_journal_snap s;
	FILE *f;

	(void)state;
	snprintf(path, sizeof(path), "%s/journal", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("n 198.18.0.1:11211 6b31\n", f); /* an IPv4-only version's */
	fclose(f);
	in_child(owe_ipv6_and_die, dir);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f) &&
	       strcmp(line, "n [2001:2::2]:11211 7636\n"))
		;
	assert_string_equal(line, "n [2001:2::2]:11211 7636\n");
	fclose(f);
	km_journal_name(1, "198.18.0.1:11211");
	km_journal_name(2, "[2001:2::2]:11211");
	assert_int_equal(km_journal_open(dir), 0);
	assert_int_equal(km_journal_take(1, &s), 0);
	assert_int_equal(s.n, 1);
	assert_true(snap_has(&s, "k1"));
	km_journal_snap_free(&s);
	assert_int_equal(km_journal_take(2, &s), 0);
	assert_int_equal(s.n, 1);
	assert_true(snap_has(&s, "v6"));
	km_journal_snap_free(&s);
	rm_state_dir(dir);
}

static void set_ring(unsigned int replicas, unsigned int n)
{
	struct km_journal_ring r = {.replicas = replicas, .n = n};
	unsigned int i;

	for (i = 0; i < n; i++)
		snprintf(r.names[i], sizeof(r.names[i]), "198.18.0.%u:11211",
			 i + 1);
	km_journal_set_ring(&r);
}

static void change_ring_and_die(const char *dir)
{
	struct km_journal_snap s;

	name_backends();
	set_ring(2, 2); /* as km_daemon_init does, before the open */
	if (km_journal_open(dir))
		_exit(3);
	set_ring(3, 3);
	note(1, "a");
	if (km_journal_take(1, &s)) /* a checkpoint rewrites the file */
		_exit(4);
	km_journal_snap_free(&s);
	km_journal_settle(1);
}

/* The ring outlives a kill and a checkpoint; the file's wins at open. */
static void test_ring_outlives_a_kill(void **state)
{
	char *dir = state_dir();
	struct km_journal_ring r;

	(void)state;
	assert_false(km_journal_ring(&r));
	in_child(change_ring_and_die, dir);
	name_backends();
	set_ring(1, 1);
	assert_int_equal(km_journal_open(dir), 0);
	assert_true(km_journal_ring(&r));
	assert_int_equal(r.replicas, 3);
	assert_int_equal(r.n, 3);
	assert_string_equal(r.names[0], "198.18.0.1:11211");
	assert_string_equal(r.names[2], "198.18.0.3:11211");
	rm_state_dir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_note_forget_take, teardown),
		cmocka_unit_test_teardown(test_growth, teardown),
		cmocka_unit_test_teardown(test_overflow_is_lost, teardown),
		cmocka_unit_test_teardown(test_flush_drops_older_keys,
					  teardown),
		cmocka_unit_test_teardown(test_put_back_merges, teardown),
		cmocka_unit_test_teardown(test_clear_and_bad_ids, teardown),
		cmocka_unit_test_teardown(test_durable_after_kill, teardown),
		cmocka_unit_test_teardown(test_settle_forgets, teardown),
		cmocka_unit_test_teardown(test_torn_line_and_removed_backend,
					  teardown),
		cmocka_unit_test_teardown(test_ipv6_names, teardown),
		cmocka_unit_test_teardown(test_ring_outlives_a_kill, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
