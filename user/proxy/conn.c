// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * What the engine asks of a client connection (conn.h): flush marks,
 * backpressure, and the inbox of another worker.  Apart from proxy.c's
 * loop so that the engine and the loop do not call each other.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "daemon.h"
#include "log.h"
#include "window.h"

void km_conn_mark_dirty(struct km_worker *w, struct km_conn *c)
{
	if (c->dirty)
		return;
	c->dirty = 1;
	c->dirty_next = w->dirty_c;
	w->dirty_c = c;
}

void km_conn_req_ready(struct km_worker *w, struct km_conn *c)
{
	km_conn_mark_dirty(w, c);
}

/*
 * Backpressure.  What a client makes kmagentd hold is bounded by
 * --conn-buffer: its unsent output, the replies assembled for its queued
 * requests (asm_bytes), and those it has asked for, at est bytes a key
 * (ukeys).  Above it, its input is not parsed and a long get asks for no
 * more keys; est is the size of its recent replies (a large one raises it
 * at once, small ones lower it by an eighth each), first item-size-max/8,
 * so that a client of 1 MB values has a few keys out at a time, one of
 * small values up to KM_WIN_MAX.
 */
static size_t km_conn_held(const struct km_conn *c)
{
	return km_buf_used(&c->out) + c->asm_bytes;
}

size_t km_conn_claim(const struct km_conn *c)
{
	return km_conn_held(c) + (size_t)c->ukeys * c->est;
}

/*
 * The clients' claims together, bounded by --reply-memory: over it, a
 * client that holds anything waits, and one that holds nothing asks one
 * key at a time, so that those who read their replies are still served
 * while those who do not have taken the memory.  Each worker brings its
 * clients' parts up to date as it handles them (km_conn_account).
 */
static size_t km_claimed;

void km_conn_account(struct km_conn *c)
{
	size_t now = c->dead ? 0 : km_conn_claim(c);

	if (now == c->claimed)
		return;
	__atomic_add_fetch(&km_claimed, now - c->claimed, __ATOMIC_RELAXED);
	c->claimed = now;
}

static int km_total_over(const struct km_conn *c)
{
	size_t total = __atomic_load_n(&km_claimed, __ATOMIC_RELAXED);

	return total - c->claimed + km_conn_claim(c) >= KM_LIVE(reply_memory);
}

int km_conn_has_room(const struct km_conn *c)
{
	size_t claim = km_conn_claim(c);

	return claim < KM_LIVE(conn_buffer) &&
	       (claim == 0 || !km_total_over(c));
}

unsigned int km_conn_key_room(const struct km_conn *c, int head)
{
	if (c->udp)
		return UINT_MAX; /* one datagram's worth of request */
	if (km_total_over(c))
		return 1;
	/* the head's window waits for the client only, not for the
	 * replies of the requests queued behind it */
	return km_window_keys(KM_LIVE(conn_buffer),
			      head ? km_buf_used(&c->out)
				   : km_conn_held(c) +
					      (size_t)c->ukeys * c->est,
			      c->est);
}

void km_conn_note_reply(struct km_conn *c, size_t bytes)
{
	c->est = km_window_est(c->est, bytes);
}

void km_worker_wake(struct km_worker *w, struct km_req *r)
{
	uint64_t one = 1;

	pthread_mutex_lock(&w->seq_lock);
	km_req_seq_append(&w->seq_head, &w->seq_tail, r);
	pthread_mutex_unlock(&w->seq_lock);
	/* a full counter still wakes it: nothing to retry */
	if (write(w->seq_ev.fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		km_warn("worker %u: wake: %s\n", w->id, strerror(errno));
}
