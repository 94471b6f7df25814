// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "km_hash.h"
#include "ring.h"

static const char *names[] = {
	"198.18.0.1:11211", "198.18.0.2:11211", "198.18.0.3:11211",
	"198.18.0.4:11211", "198.18.0.5:11211", "198.18.0.6:11211",
};

static struct km_ring *build(unsigned int first, unsigned int n,
			     unsigned int replicas)
{
	struct km_ring_member m[8];
	struct km_ring *ring = malloc(sizeof(*ring));
	unsigned int i;

	assert_non_null(ring);
	for (i = 0; i < n; i++) {
		m[i].id = first + i + 1;
		m[i].name = names[first + i];
	}
	assert_int_equal(km_ring_build(ring, m, n, replicas), 0);
	return ring;
}

static void test_fnv1a_vectors(void **state)
{
	__u32 h = KM_HASH_INIT;
	const char *s = "foobar";

	(void)state;
	/* published FNV-1a 32-bit test vectors */
	assert_int_equal(km_hash_step(KM_HASH_INIT, 'a'), 0xe40c292c);
	for (; *s; s++)
		h = km_hash_step(h, *s);
	assert_int_equal(h, 0xbf9cf968);
	assert_int_equal(km_hash_key("foobar", 6), km_hash_final(0xbf9cf968));
	assert_true(km_hash_slot(0xffffffffu) < KM_RING_SLOTS);
}

static void test_slots_hold_distinct_ordered_replicas(void **state)
{
	struct km_ring *ring = build(0, 3, 2);
	unsigned int s;

	(void)state;
	for (s = 0; s < KM_RING_SLOTS; s++) {
		const struct km_slot *sl = &ring->slots[s];

		assert_int_equal(sl->nr, 2);
		assert_int_not_equal(sl->be[0], sl->be[1]);
		assert_in_range(sl->be[0], 1, 3);
		assert_in_range(sl->be[1], 1, 3);
		assert_int_equal(sl->be[2], KM_BACKEND_NONE);
	}
	free(ring);
}

static void test_replicas_default_to_all_backends(void **state)
{
	struct km_ring *ring = build(0, 4, 0);

	(void)state;
	assert_int_equal(ring->slots[0].nr, 4);
	assert_int_equal(ring->slots[KM_RING_SLOTS - 1].nr, 4);
	free(ring);
}

static void test_primaries_are_balanced(void **state)
{
	struct km_ring *ring = build(0, 5, 2);
	unsigned int count[6] = {0}, s, i;

	(void)state;
	for (s = 0; s < KM_RING_SLOTS; s++)
		count[ring->slots[s].be[0]]++;
	for (i = 1; i <= 5; i++)
		assert_in_range(count[i], KM_RING_SLOTS / 5 * 9 / 10,
				KM_RING_SLOTS / 5 * 11 / 10);
	free(ring);
}

/* Adding a 6th backend moves ~1/6 of the primaries, all to the new one. */
static void test_adding_a_backend_moves_one_nth(void **state)
{
	struct km_ring *before = build(0, 5, 2), *after = build(0, 6, 2);
	unsigned int s, moved = 0;

	(void)state;
	for (s = 0; s < KM_RING_SLOTS; s++) {
		if (before->slots[s].be[0] == after->slots[s].be[0])
			continue;
		moved++;
		assert_int_equal(after->slots[s].be[0], 6);
	}
	assert_in_range(moved, KM_RING_SLOTS / 6 * 9 / 10,
			KM_RING_SLOTS / 6 * 11 / 10);
	free(before);
	free(after);
}

/* Removing backend 1 of 5 moves only the keys it was primary for. */
static void test_removing_a_backend_moves_one_nth(void **state)
{
	struct km_ring *before = build(0, 5, 3), *after = build(1, 4, 3);
	unsigned int s, moved = 0;

	(void)state;
	for (s = 0; s < KM_RING_SLOTS; s++) {
		const struct km_slot *b = &before->slots[s];
		const struct km_slot *a = &after->slots[s];

		if (b->be[0] == a->be[0])
			continue;
		moved++;
		/* the old secondary takes over: order is preserved */
		assert_int_equal(b->be[0], 1);
		assert_int_equal(a->be[0], b->be[1]);
	}
	assert_in_range(moved, KM_RING_SLOTS / 5 * 9 / 10,
			KM_RING_SLOTS / 5 * 11 / 10);
	free(before);
	free(after);
}

static void test_bad_members_are_refused(void **state)
{
	struct km_ring_member m[KM_MAX_BACKENDS] = {
		{1, "a:1"},
		{1, "b:1"},
	};
	struct km_ring *ring = malloc(sizeof(*ring));

	(void)state;
	assert_non_null(ring);
	assert_int_equal(km_ring_build(ring, m, 2, 0), -EEXIST);
	m[1].id = 2;
	m[1].name = "a:1";
	assert_int_equal(km_ring_build(ring, m, 2, 0), -EEXIST);
	m[1].id = KM_BACKEND_NONE;
	m[1].name = "b:1";
	assert_int_equal(km_ring_build(ring, m, 2, 0), -EINVAL);
	assert_int_equal(km_ring_build(ring, m, KM_MAX_BACKENDS, 0), -E2BIG);
	free(ring);
}

static void test_lookup_uses_the_shared_hash(void **state)
{
	struct km_ring *ring = build(0, 3, 0);
	const char *key = "becd0000";

	(void)state;
	assert_ptr_equal(km_ring_lookup(ring, key, 8),
			 &ring->slots[km_hash_key(key, 8) % KM_RING_SLOTS]);
	free(ring);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fnv1a_vectors),
		cmocka_unit_test(test_slots_hold_distinct_ordered_replicas),
		cmocka_unit_test(test_replicas_default_to_all_backends),
		cmocka_unit_test(test_primaries_are_balanced),
		cmocka_unit_test(test_adding_a_backend_moves_one_nth),
		cmocka_unit_test(test_removing_a_backend_moves_one_nth),
		cmocka_unit_test(test_bad_members_are_refused),
		cmocka_unit_test(test_lookup_uses_the_shared_hash),
	};

	return cmocka_run_group_tests_name("ring", tests, NULL, NULL);
}
