// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Unit tests of the ring handoff records between kmagentd
 * (user/control/peers.c): two backends as in-memory key stores that
 * answer gets, set, add and cas, another kmagentd's record written into
 * them as it would write it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "daemon.h"
#include "peers.h"

#define NKEYS 8

static struct store {
	struct {
		char key[128], val[1100];
		unsigned long long cas;
		int ttl; /* seconds left, as mg t shows them */
	} kv[NKEYS];
	unsigned long long next_cas;
	bool down;
} st[3]; /* by backend id: 1 and 2 */

static int find(struct store *s, const char *key)
{
	int i;

	for (i = 0; i < NKEYS; i++)
		if (s->kv[i].key[0] && !strcmp(s->kv[i].key, key))
			return i;
	return -1;
}

static void put(struct store *s, const char *key, const char *val)
{
	int i = find(s, key);

	if (i < 0)
		for (i = 0; s->kv[i].key[0]; i++)
			assert_true(i + 1 < NKEYS);
	snprintf(s->kv[i].key, sizeof(s->kv[i].key), "%s", key);
	snprintf(s->kv[i].val, sizeof(s->kv[i].val), "%s", val);
	s->kv[i].cas = ++s->next_cas;
	s->kv[i].ttl = 60; /* as kmagentd writes its keys */
}

/* Just enough of memcached's text protocol for peers.c. */
static int io(__u8 id, const char *req, size_t len, char *rep, size_t cap,
	      int (*done)(const char *, size_t))
{
	struct store *s = &st[id];
	char cmd[8], key[128], val[1100], copy[4096];
	unsigned long long cas = 0;
	size_t n = 0, bytes;
	int i, used = 0;

	(void)len;
	if (s->down)
		return -1;
	rep[0] = 0;
	if (!strncmp(req, "gets ", 5)) {
		char *save, *w;

		snprintf(copy, sizeof(copy), "%.*s",
			 (int)strcspn(req + 5, "\r"), req + 5);
		for (w = strtok_r(copy, " ", &save); w;
		     w = strtok_r(NULL, " ", &save))
			if ((i = find(s, w)) >= 0)
				n += snprintf(rep + n, cap - n,
					      "VALUE %s 0 %zu %llu\r\n%s\r\n",
					      w, strlen(s->kv[i].val),
					      s->kv[i].cas, s->kv[i].val);
		snprintf(rep + n, cap - n, "END\r\n");
		assert_true(done(rep, strlen(rep)));
		return (int)strlen(rep);
	}
	if (!strncmp(req, "mg ", 3)) {
		assert_true(sscanf(req, "mg %127s t", key) == 1);
		i = find(s, key);
		if (i < 0)
			snprintf(rep, cap, "EN\r\n");
		else
			snprintf(rep, cap, "HD t%d\r\n", s->kv[i].ttl);
		return (int)strlen(rep);
	}
	if (!strncmp(req, "touch ", 6)) {
		snprintf(rep, cap, "TOUCHED\r\n");
		return (int)strlen(rep);
	}
	/* "<cmd> <key> <flags> <exptime> <bytes> [<cas>]" */
	assert_true(sscanf(req, "%7s %127s %*u %*d %zu %llu", cmd, key, &bytes,
			   &cas) >= 3);
	used = (int)(strstr(req, "\r\n") - req) + 2;
	snprintf(val, sizeof(val), "%.*s", (int)bytes, req + used);
	i = find(s, key);
	if ((!strcmp(cmd, "add") && i >= 0) ||
	    (!strcmp(cmd, "cas") && (i < 0 || s->kv[i].cas != cas)))
		snprintf(rep, cap, "NOT_STORED\r\n");
	else
		put(s, key, val), snprintf(rep, cap, "STORED\r\n");
	return (int)strlen(rep);
}

static void round_as(const char *me, __u32 fp, enum km_handoff_state state,
		     __u32 lfp)
{
	km_peers_round_start(me, fp, state, lfp);
	unsigned int items;

	km_peers_sync(1, io, &items);
	km_peers_sync(2, io, &items);
	km_peers_round_end();
}

static bool agree(void)
{
	return km_d.peers.none || km_d.peers.agree;
}

static bool ready(void)
{
	return km_d.peers.none || km_d.peers.ready;
}

/* pb's record, last refreshed secs ago on both backends */
static void pb_aged(int secs)
{
	int b, i;

	for (b = 1; b <= 2; b++)
		if ((i = find(&st[b], KM_PEERS_RING "pb")) >= 0)
			st[b].kv[i].ttl = 60 - secs;
}

/* The other kmagentd, "pb", writes its record on both backends. */
static void pb_says(__u32 fp, char state, unsigned long long seq)
{
	char val[64];

	snprintf(val, sizeof(val), "%08x %c %llu", fp, state, seq);
	put(&st[1], KM_PEERS_RING "pb", val);
	put(&st[2], KM_PEERS_RING "pb", val);
}

static void test_alone_then_a_peer(void **state)
{
	(void)state;
	assert_false(agree()); /* nothing read yet: wait */
	round_as("pa", 0xabc, KM_HANDOFF_SETTLED, 0);
	assert_true(agree());
	assert_true(ready());
	/* we registered, and our record is on both backends */
	assert_true(find(&st[1], KM_PEERS_KEY) >= 0);
	assert_string_equal(st[2].kv[find(&st[2], KM_PEERS_KEY)].val, "pa");
	assert_true(find(&st[2], KM_PEERS_RING "pa") >= 0);

	/* pb joins the directory on backend 2 only, record not written yet */
	put(&st[2], KM_PEERS_KEY, "pa pb");
	round_as("pa", 0xabc, KM_HANDOFF_READY, 0);
	assert_false(agree()); /* registered, not read: it may run anything */
	assert_false(ready());

	pb_says(0x123, 's', 10); /* another ring: it did not reload yet */
	round_as("pa", 0xabc, KM_HANDOFF_READY, 0);
	assert_false(agree());
	assert_false(ready());

	pb_says(0xabc, 'p', 11); /* reloaded, filling its joiners */
	round_as("pa", 0xabc, KM_HANDOFF_READY, 0);
	assert_true(agree());
	assert_false(ready());

	pb_says(0xabc, 'r', 12);
	round_as("pa", 0xabc, KM_HANDOFF_READY, 0);
	assert_true(agree());
	assert_true(ready());

	/* an older record on one backend does not undo a newer one */
	put(&st[1], KM_PEERS_RING "pb", "00000abc p 11");
	round_as("pa", 0xabc, KM_HANDOFF_READY, 0);
	assert_true(ready());
}

static void test_backend_restarted_empty_gets_our_record_again(void **state)
{
	(void)state;
	memset(&st[2], 0, sizeof(st[2]));
	round_as("pa", 0xabc, KM_HANDOFF_SETTLED, 0);
	assert_true(find(&st[2], KM_PEERS_RING "pa") >= 0);
	assert_non_null(strstr(st[2].kv[find(&st[2], KM_PEERS_KEY)].val, "pa"));
}

static void test_forget_until_it_writes_again(void **state)
{
	(void)state;
	pb_says(0x999, 's', 20);
	round_as("pa", 0xabc, KM_HANDOFF_READY, 0);
	assert_false(agree());
	km_peers_forget("pb");
	/* refreshed 5 s ago: it may be alive, the forget waits */
	pb_aged(5);
	round_as("pa", 0xabc, KM_HANDOFF_READY, 0);
	assert_false(agree());
	assert_false(km_peers_forgotten("pb"));
	/* refreshed every 20 s while it runs: a live one never gets older */
	km_peers_forget("pb");
	pb_aged(19);
	round_as("pa", 0xabc, KM_HANDOFF_READY, 0);
	assert_false(agree());
	km_peers_forget("pb");
	pb_aged(40);				/* gone */
	assert_false(km_peers_forgotten("pb")); /* no round read it yet */
	round_as("pa", 0xabc, KM_HANDOFF_READY, 0);
	assert_true(km_peers_forgotten("pb"));
	assert_true(agree());
	assert_true(ready());
	pb_says(0x999, 's', 21); /* alive after all */
	round_as("pa", 0xabc, KM_HANDOFF_READY, 0);
	assert_false(agree());
}

static void test_agreement_change_is_a_ring_change(void **state)
{
	unsigned long gen;

	(void)state;
	pb_says(0xabc, 's', 30);
	round_as("pa", 0xabc, KM_HANDOFF_SETTLED, 0);
	assert_true(agree());
	gen = km_d.ring_gen;
	round_as("pa", 0xabc, KM_HANDOFF_SETTLED, 0);
	assert_int_equal(km_d.ring_gen, gen); /* no change: no bump */
	pb_says(0xdef, 's', 31);
	round_as("pa", 0xabc, KM_HANDOFF_SETTLED, 0);
	assert_false(agree());
	assert_int_equal(km_d.ring_gen, gen + 1);
}

/* A fingerprint of the daemon's, under its lock. */
static __u32 locked(__u32 (*fp)(void))
{
	__u32 v;

	pthread_mutex_lock(&km_d.lock);
	v = fp();
	pthread_mutex_unlock(&km_d.lock);
	return v;
}

static __u32 fp_now(void)
{
	return locked(km_daemon_ring_fp_locked);
}

static bool in_ring(__u8 id)
{
	const struct km_ring *r = km_daemon_ring();
	unsigned int slot;

	for (slot = 0; slot < KM_RING_SLOTS; slot++)
		if (km_slot_has(&r->slots[slot], id))
			return true;
	return false;
}

/* The daemon's table: backends 1 to 3 (198.18.0.N), replicas as given. */
static void daemon_of_three(unsigned int replicas)
{
	struct km_cfg cfg;
	unsigned int i;

	km_config_defaults(&cfg);
	cfg.replicas = replicas;
	for (i = 1; i <= 3; i++) {
		char name[32];

		snprintf(name, sizeof(name), "198.18.0.%u:11211", i);
		assert_int_equal(
			km_config_add_backend(&cfg, name, 0, stderr, "test"),
			0);
	}
	assert_int_equal(km_daemon_init(&cfg), 0);
}

/* A removed backend stays, getting its slots' writes, until all are done. */
static void test_removed_backend_leaves_with_the_handoff(void **state)
{
	unsigned int id;

	(void)state;
	daemon_of_three(2);
	km_daemon_set_peers(fp_now(), true, true, false);
	assert_int_equal(km_backend_remove(3), 0);
	/* what the other kmagentd said was of the ring before: no end */
	assert_int_equal(km_d.be[3].id, 3);
	/* another kmagentd runs our new ring, its handoff pending */
	km_daemon_set_peers(fp_now(), true, false, false);
	assert_int_equal(km_d.be[3].id, 3);
	assert_true(km_d.be[3].removed && km_d.be[3].has_leaving);
	assert_true(in_ring(3)); /* as leaving: writes reach it */
	for (id = 1; id <= 2; id++)
		km_daemon_joined(id, km_d.ring_gen);
	km_daemon_handoff_check();
	assert_int_equal(km_d.be[3].id, 3); /* the other is not ready */

	km_daemon_set_peers(fp_now(), true, true, false);
	km_daemon_handoff_check();
	assert_int_equal(km_d.be[3].id, 0);
	assert_false(in_ring(3));
	km_daemon_fini();
}

static __u32 lfp_now(void)
{
	return locked(km_daemon_leaving_fp_locked);
}

/* Some slot 3 leaves, and whether it serves reads there. */
static bool leaving_read(__u8 id)
{
	unsigned int slot;

	for (slot = 0; slot < KM_RING_SLOTS; slot++)
		if (km_slot_bit_load(km_d.be[id].leaving, slot))
			return !km_be_leaving_unread(id, slot);
	fail_msg("backend %u leaves no slot", id);
	return false;
}

static void set_replicas(unsigned int n)
{
	pthread_mutex_lock(&km_d.lock);
	KM_LIVE_SET(replicas, n);
	assert_int_equal(km_daemon_rebuild_ring_locked(), 0);
	pthread_mutex_unlock(&km_d.lock);
}

/*
 * A leaving backend is a slot's last resort for reads only while every
 * other kmagentd leaves the same slots, so writes it there too.  Seed
 * 8414 of the chaos test: pb, restarted, no longer wrote backend 1, which
 * pa still read as leaving (2757 stale reads).  Back in its slots, it is
 * filled again.
 */
static void test_leaving_read_only_while_every_peer_leaves_it(void **state)
{
	unsigned int slot, joins = 0;
	char val[64];

	(void)state;
	daemon_of_three(3);
	km_daemon_set_peers(fp_now(), true, false, false);
	set_replicas(2); /* each backend leaves a third of the slots */
	assert_true(km_d.be[3].has_leaving);
	assert_true(leaving_read(3));

	/* pb leaves the same slots: its writes still reach them */
	snprintf(val, sizeof(val), "%08x p 1000 %08x", fp_now(), lfp_now());
	put(&st[1], KM_PEERS_RING "pb", val);
	put(&st[2], KM_PEERS_RING "pb", val);
	round_as("pa", fp_now(), KM_HANDOFF_PENDING, lfp_now());
	assert_true(leaving_read(3));

	/* a record of ours from before our leaving set changed says nothing */
	pb_says(fp_now(), 'p', 1001); /* an older kmagentd: no fourth field */
	round_as("pa", fp_now(), KM_HANDOFF_PENDING, lfp_now() ^ 1);
	assert_true(leaving_read(3));

	round_as("pa", fp_now(), KM_HANDOFF_PENDING, lfp_now());
	assert_false(leaving_read(3));

	/* pb restarted: same ring, nothing left (so it writes none there) */
	set_replicas(3);
	for (slot = 0; slot < KM_RING_SLOTS; slot++)
		joins += km_be_joining(3, slot);
	assert_true(joins > 0); /* back, but filled again first */
	km_daemon_fini();
}

/* The ring published before the hooks' one: where 3 may still be read. */
static unsigned int unjoined_early, left_joining;

static void check_joiner_unread(const struct km_ring *ring, void *ctx)
{
	const struct km_ring *old = km_d.ring;
	unsigned int slot;

	(void)ctx;
	for (slot = 0; slot < KM_RING_SLOTS; slot++) {
		if (!km_slot_has(&old->slots[slot], 3) ||
		    km_slot_has(&ring->slots[slot], 3))
			continue;
		left_joining++;
		unjoined_early += !km_be_joining(3, slot);
	}
}

/*
 * A backend removed before it was filled leaves its slots at once: a
 * request on the ring before (until the new one is out, and after) must
 * still take it as unfilled there.  Seed 7002 of the chaos test read a
 * removed joiner's old copies in that window.
 */
static void test_removed_joiner_unread_until_the_ring_is_out(void **state)
{
	(void)state;
	daemon_of_three(1);
	km_daemon_set_peers(fp_now(), true, true, true);
	km_daemon_rejoin(3); /* as after a restart that put it back */
	assert_true(km_d.be[3].has_joining);
	pthread_mutex_lock(&km_d.lock);
	assert_int_equal(km_daemon_add_ring_hook(check_joiner_unread, NULL), 0);
	pthread_mutex_unlock(&km_d.lock);
	unjoined_early = left_joining = 0;
	assert_int_equal(km_backend_remove(3), 0);
	assert_true(left_joining > 0);
	assert_int_equal(unjoined_early, 0);
	assert_false(in_ring(3));
	km_daemon_fini();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alone_then_a_peer),
		cmocka_unit_test(
			test_backend_restarted_empty_gets_our_record_again),
		cmocka_unit_test(test_forget_until_it_writes_again),
		cmocka_unit_test(test_agreement_change_is_a_ring_change),
		cmocka_unit_test(test_removed_backend_leaves_with_the_handoff),
		cmocka_unit_test(
			test_leaving_read_only_while_every_peer_leaves_it),
		cmocka_unit_test(
			test_removed_joiner_unread_until_the_ring_is_out),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
