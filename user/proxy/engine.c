// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The request engine, shared by TCP and UDP.  Data flow:
 *
 *   client bytes -> km_parse_request -> km_dispatch -> struct km_req
 *     -> one km_op per backend asked (km_backend_submit: pipelined on the
 *        worker's pooled connection) -> backend reply -> km_op_complete
 *     -> the request decides: fall back to the next replica (reads), wait
 *        for the other replicas (writes), or answer -> km_req_answered
 *     -> replies leave in request order (the connection's queue).
 *
 * Reads ask the key's first readable replica; a miss, an error or a
 * timeout moves that key on to the next readable replica.  Writes go to
 * every writable replica and the write policy picks the one reply.  A
 * request whose every replica failed gets SERVER_ERROR.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "km_hash.h"
#include "log.h"
#include "backend.h"
#include "conn.h"
#include "health.h"
#include "request.h"
#include "engine.h"
#include "journal.h"
#include "stats.h"

#define KM_ERR_UNAVAILABLE "SERVER_ERROR backend unavailable\r\n"
#define KM_ORPHAN_WIN	   16 /* keys a window when the client left */

/* ---- allocation: per-worker free lists keep buffers warm ------------ */

static struct km_req *km_req_new(struct km_worker *w, struct km_conn *c,
				 enum km_cmd cmd, enum km_req_type type)
{
	struct km_req *r = w->free_reqs;

	if (r) {
		w->free_reqs = r->next;
		w->nfree_reqs--;
	} else {
		r = calloc(1, sizeof(*r));
		if (!r)
			return NULL;
	}
	r->next = NULL;
	r->c = c;
	r->cmd = cmd;
	r->type = type;
	r->noreply = r->quiet = r->answered = r->close_after = r->open = 0;
	r->stats = 0;
	r->bad_key = 0;
	r->pending = 0;
	r->dispatching = 1;
	r->seq = 0;
	r->seq_waiting = 0;
	r->seq_next = NULL;
	r->w = w;
	r->pool_idx = c ? c->pool_idx : 0;
	r->line.off = r->line.len = 0;
	r->data.off = r->data.len = 0;
	r->res.off = r->res.len = 0;
	r->resp.off = r->resp.len = 0;
	r->nkeys = 0;
	r->nreps = 0;
	r->gat_exp_len = 0;
	r->kend = r->emitted = r->ukeys = 0;
	r->charged = 0;
	return r;
}

static void km_req_destroy(struct km_req *r)
{
	unsigned int i;

	km_buf_free(&r->line);
	km_buf_free(&r->data);
	km_buf_free(&r->res);
	km_buf_free(&r->resp);
	for (i = 0; i < r->rcap; i++)
		km_buf_free(&r->reps[i].reply);
	free(r->reps);
	free(r->keys);
	free(r);
}

static void km_req_free(struct km_worker *w, struct km_req *r)
{
	if (w->nfree_reqs >= 1024 || r->resp.cap > 65536 ||
	    r->res.cap > 65536 || r->data.cap > 65536) {
		km_req_destroy(r);
		return;
	}
	r->next = w->free_reqs;
	w->free_reqs = r;
	w->nfree_reqs++;
}

static struct km_op *km_op_new(struct km_worker *w, struct km_req *r, __u8 be,
			       enum km_reply_kind kind)
{
	struct km_op *op = w->free_ops;

	if (op) {
		w->free_ops = op->next;
		w->nfree_ops--;
	} else {
		op = calloc(1, sizeof(*op));
		if (!op)
			return NULL;
	}
	op->next = NULL;
	op->req = r;
	op->cmd = r->cmd;
	op->be = be;
	op->rank = 0;
	/* a quiet meta command may say nothing: "mn" closes it */
	op->kind = r->quiet ? KM_RK_QUIET : kind;
	op->nkeys = 0;
	return op;
}

void km_op_free(struct km_worker *w, struct km_op *op)
{
	if (w->nfree_ops >= 4096) {
		free(op->keys);
		free(op);
		return;
	}
	op->next = w->free_ops;
	w->free_ops = op;
	w->nfree_ops++;
}

void km_worker_free_lists(struct km_worker *w)
{
	struct km_req *r;
	struct km_op *op;

	while ((r = w->free_reqs)) {
		w->free_reqs = r->next;
		km_req_destroy(r);
	}
	w->nfree_reqs = 0;
	while ((op = w->free_ops)) {
		w->free_ops = op->next;
		free(op->keys);
		free(op);
	}
	w->nfree_ops = 0;
}

static int km_op_add_key(struct km_op *op, unsigned int k)
{
	if (op->nkeys == op->kcap) {
		unsigned int cap = op->kcap ? op->kcap * 2 : 8;
		unsigned int *p = realloc(op->keys, cap * sizeof(*p));

		if (!p)
			return -1;
		op->keys = p;
		op->kcap = cap;
	}
	op->keys[op->nkeys++] = k;
	return 0;
}

static struct km_key *km_req_add_key(struct km_req *r, unsigned int off,
				     unsigned int len)
{
	struct km_key *k;

	if (r->nkeys == r->kcap) {
		unsigned int cap = r->kcap ? r->kcap * 2 : 4;
		struct km_key *p = realloc(r->keys, cap * sizeof(*p));

		if (!p)
			return NULL;
		r->keys = p;
		r->kcap = cap;
	}
	k = &r->keys[r->nkeys++];
	k->off = off;
	k->len = len;
	k->nr = k->next = k->inflight = k->done = k->answered = 0;
	k->asked = 0;
	k->nmissed = 0;
	k->hit_rank = -1;
	k->res_off = k->res_len = 0;
	return k;
}

static struct km_wrep *km_req_add_rep(struct km_req *r, __u8 be)
{
	struct km_wrep *wr;

	if (r->nreps == r->rcap) {
		unsigned int cap = r->rcap ? r->rcap * 2 : 4;
		struct km_wrep *p = realloc(r->reps, cap * sizeof(*p));

		if (!p)
			return NULL;
		memset(p + r->rcap, 0, (cap - r->rcap) * sizeof(*p));
		r->reps = p;
		r->rcap = cap;
	}
	wr = &r->reps[r->nreps++];
	wr->be = be;
	wr->done = 0;
	wr->cls = KM_RC_FAILED;
	wr->reply.off = wr->reply.len = 0;
	return wr;
}

/* ---- answering, in order -------------------------------------------- */

/* What r holds for its client counts towards the client's bound. */
static void km_req_charge(struct km_req *r)
{
	size_t now = km_buf_used(&r->res) + km_buf_used(&r->resp);

	if (!r->c)
		return;
	r->c->asm_bytes -= r->charged;
	r->c->asm_bytes += now;
	r->charged = now;
}

/* r's keys are answered: they leave the client's window. */
static void km_req_unwindow(struct km_req *r)
{
	if (r->c)
		r->c->ukeys -= r->ukeys;
	r->ukeys = 0;
}

static void km_req_release(struct km_worker *w, struct km_req *r)
{
	if (--r->pending == 0 && !r->c && !r->dispatching)
		km_req_free(w, r);
}

static void km_req_dispatched(struct km_worker *w, struct km_req *r)
{
	if (r->seq_waiting)
		return; /* still to be sent: km_seq_run */
	r->dispatching = 0;
	if (r->pending == 0 && !r->c)
		km_req_free(w, r);
}

/*
 * Ordering.  A connection's requests reach each backend in the order sent:
 * one pooled connection a backend, its ops queued as they are made.  But a
 * read may ask another replica later (a miss), and a cas copies its value
 * to the other replicas once the primary said yes: such a request is
 * "open" until it can send nothing more, and a later write of the same
 * connection waits for that (km_dispatch_must_wait), so that it never
 * overtakes the fallback or the copy on any replica.
 */
static void km_req_open(struct km_req *r)
{
	if (r->open || !r->c)
		return;
	r->open = 1;
	r->c->nopen++;
}

static void km_req_close(struct km_worker *w, struct km_req *r)
{
	if (!r->open)
		return;
	r->open = 0;
	if (r->c && --r->c->nopen == 0)
		km_conn_mark_dirty(w, r->c); /* a held write may go now */
}

static void km_req_answered(struct km_worker *w, struct km_req *r)
{
	km_req_close(w, r);
	km_req_unwindow(r);
	km_req_charge(r);
	if (r->answered)
		return;
	/* reads tell the size of each key's reply (km_values_match) */
	if (r->c && r->type != KM_RT_READ && r->type != KM_RT_GAT &&
	    r->type != KM_RT_LOCAL)
		km_conn_note_reply(r->c, km_buf_used(&r->resp));
	r->answered = 1;
	if (r->c)
		km_conn_req_ready(w, r->c);
}

/* The head of c's queue left: called by the connection code. */
void km_req_detach(struct km_worker *w, struct km_req *r)
{
	km_req_unwindow(r);
	if (r->c)
		r->c->asm_bytes -= r->charged;
	r->charged = 0;
	r->c = NULL;
	if (r->pending == 0 && !r->dispatching)
		km_req_free(w, r);
}

static void km_req_set_resp(struct km_req *r, const char *s, size_t n)
{
	r->resp.off = r->resp.len = 0;
	if (km_buf_append(&r->resp, s, n))
		r->resp.off = r->resp.len = 0;
}

/* ---- reads: get / gets ---------------------------------------------- */

static void km_read_finish(struct km_worker *w, struct km_req *r)
{
	unsigned int i, hits = 0;
	int unavailable = 0;

	r->resp.off = r->resp.len = 0;
	if (r->bad_key) {
		static const char msg[] = "CLIENT_ERROR bad command line "
					  "format\r\n";

		KM_INC(km_d.c.protocol_errors);
		km_req_set_resp(r, msg, sizeof(msg) - 1);
		km_req_answered(w, r);
		return;
	}
	for (i = 0; i < r->nkeys; i++) {
		struct km_key *k = &r->keys[i];

		if (k->hit_rank >= 0) {
			hits++;
			/* the ones before emitted were streamed already */
			if (i >= r->emitted)
				km_buf_append(&r->resp, r->res.p + k->res_off,
					      k->res_len);
		} else if (!k->answered) {
			unavailable = 1;
		}
	}
	KM_ADD(km_d.c.get_hits, hits);
	KM_ADD(km_d.c.get_misses, r->nkeys - hits);
	if (unavailable && !hits)
		km_req_set_resp(r, KM_ERR_UNAVAILABLE,
				sizeof(KM_ERR_UNAVAILABLE) - 1);
	else if (km_buf_append(&r->resp, "END\r\n", 5))
		km_req_set_resp(r, KM_ERR_UNAVAILABLE,
				sizeof(KM_ERR_UNAVAILABLE) - 1);
	km_buf_shrink(&r->res); /* copied: one copy is enough */
	km_req_answered(w, r);
}

/* The bytes of k as memcached stores them (base64 decoded); 0 or -1. */
static int km_key_bytes(const struct km_req *r, const struct km_key *k,
			char *dec, const char **key, size_t *len)
{
	int n;

	*key = r->line.p + k->off;
	*len = k->len;
	if (!r->base64)
		return 0;
	n = km_base64_decode(*key, *len, dec, KM_KEY_MAX);
	if (n <= 0)
		return -1;
	*key = dec;
	*len = n;
	return 0;
}

/*
 * A request of no key (version, stats ARGS) reads no item: any backend
 * that answers will do, fenced, owing or drained.  With every replica
 * fenced (a restarted kmagentd, the other one owing them writes) a
 * client's health check by `version` must not take the proxy for dead.
 */
static int km_be_answers(__u8 be)
{
	struct km_backend kb = km_be_kb(be);

	return km_ip_set(&kb.addr) &&
	       (kb.state == KM_BE_UP || kb.state == KM_BE_WARMING) &&
	       !(kb.flags & KM_BE_F_REFUSED);
}

/*
 * Can it answer for k (a read, a write's reply)?  Readable, and
 * it took every write of k: one it missed is in its journal until
 * replayed.  Another replica answers meanwhile (docs/operations.md, "Who
 * answers for a key").
 */
static int km_be_current(const struct km_req *r, const struct km_key *k,
			 __u8 be)
{
	const struct km_ring *ring;
	char dec[KM_KEY_MAX];
	const char *key;
	size_t len;

	if (!be)
		return 0;
	if (!k->len)
		return km_be_answers(be);
	if (!km_be_readable(be))
		return 0;
	if (km_be_joining(be, k->slot))
		return 0; /* not filled yet (daemon.c, the ring handoff) */
	ring = km_daemon_ring();
	if (ring && !km_slot_has(&ring->slots[k->slot], be))
		return 0; /* r took an older ring: be left the slot since */
	if (km_be_leaving_unread(be, k->slot))
		return 0; /* another kmagentd may no longer write it there */
	if (km_key_bytes(r, k, dec, &key, &len))
		return 1;
	return !km_journal_owes(be, key, len);
}

/*
 * Next candidate of k to read from, or 0.  A replica that owes k a write
 * is skipped: its copy may be older than an acknowledged write.
 */
static __u8 km_key_next_readable(const struct km_req *r, struct km_key *k)
{
	while (k->next < k->nr) {
		__u8 be = k->be[k->next++];

		if (km_be_current(r, k, be))
			return be;
	}
	return 0;
}

/*
 * Every key of the window is done.  The last window answers the request;
 * an earlier one waits for the connection code to stream it to the client
 * (km_read_stream), which then opens the next one.
 */
static void km_read_window(struct km_worker *w, struct km_req *r);
static void km_gat_window_done(struct km_worker *w, struct km_req *r);

static void km_read_batch_done(struct km_worker *w, struct km_req *r)
{
	unsigned int i;

	if (r->kend == r->nkeys) {
		km_read_finish(w, r);
		return;
	}
	km_req_unwindow(r);
	if (r->c) {
		km_conn_req_ready(w, r->c);
		return;
	}
	if (r->type == KM_RT_GAT) {
		/* nobody reads it, but every key must be touched */
		r->emitted = r->kend;
		km_buf_shrink(&r->res);
		km_read_window(w, r);
		return;
	}
	/* nobody waits for the rest */
	for (i = r->kend; i < r->nkeys; i++)
		r->keys[i].done = 1;
	r->kend = r->nkeys;
	km_read_finish(w, r);
}

static void km_read_round(struct km_worker *w, struct km_req *r);
static void km_gat_send(struct km_worker *w, struct km_req *r,
			unsigned int from);

/* Open the next window of keys: as many as the client has room for. */
static void km_read_window(struct km_worker *w, struct km_req *r)
{
	unsigned int from = r->kend, n = KM_ORPHAN_WIN;
	int dispatching = r->dispatching;

	if (r->c)
		n = km_conn_key_room(r->c, r->kend > 0);
	n = r->nkeys - r->kend < n ? r->nkeys - r->kend : n;
	r->kend += n;
	r->ukeys += n;
	if (r->c)
		r->c->ukeys += n;
	if (r->type != KM_RT_GAT) {
		km_read_round(w, r);
		return;
	}
	/* its last op out decides, once all are out (km_gat_op_done) */
	r->dispatching = 1;
	km_gat_send(w, r, from);
	r->dispatching = dispatching;
	if (r->pending == 0 && !r->answered)
		km_gat_window_done(w, r);
}

int km_read_stream(struct km_worker *w, struct km_req *r, struct km_buf *out,
		   int room)
{
	int err = 0;

	if ((r->type != KM_RT_READ && r->type != KM_RT_GAT) || r->answered)
		return 0;
	while (r->emitted < r->kend && r->keys[r->emitted].done) {
		const struct km_key *k = &r->keys[r->emitted];

		/* a bad key makes the whole reply an error: none go out */
		if (k->hit_rank >= 0 && !r->bad_key &&
		    km_buf_append(out, r->res.p + k->res_off, k->res_len))
			err = -1;
		r->emitted++;
	}
	if (err || r->emitted < r->kend || r->kend == r->nkeys || !room) {
		km_req_charge(r);
		return err;
	}
	/* the window went out: its values are no longer needed */
	km_buf_shrink(&r->res);
	km_req_charge(r);
	km_read_window(w, r);
	return 0;
}

int km_read_wants_more(const struct km_req *r)
{
	return (r->type == KM_RT_READ || r->type == KM_RT_GAT) &&
	       !r->answered && r->emitted == r->kend && r->kend < r->nkeys;
}

/*
 * Send every key of the window that needs a backend to its next readable
 * replica, one op per backend ("get k1 k2 ...").  Keys with no replica
 * left are done.
 */
static void km_read_round(struct km_worker *w, struct km_req *r)
{
	struct km_op *ops[KM_MAX_BACKENDS] = {0};
	const char *verb = r->cmd == KM_CMD_GETS ? "gets" : "get";
	unsigned int i, b, all_done = 1;
	char scratch[4096];

	for (i = 0; i < r->kend; i++) {
		struct km_key *k = &r->keys[i];
		__u8 be;

		if (k->done || k->inflight) {
			all_done &= k->done;
			continue;
		}
		be = km_key_next_readable(r, k);
		if (!be) {
			k->done = 1;
			continue;
		}
		if (k->asked++) /* skipping one that owes it is no fallback */
			KM_INC(km_d.c.fallbacks);
		all_done = 0;
		if (!ops[be]) {
			ops[be] = km_op_new(w, r, be, KM_RK_VALUES);
			if (!ops[be]) {
				k->done = 1;
				continue;
			}
		}
		if (km_op_add_key(ops[be], i)) {
			k->done = 1;
			continue;
		}
		ops[be]->rank = k->next - 1;
		k->inflight = 1;
	}
	for (b = 1; b < KM_MAX_BACKENDS; b++) {
		struct km_op *op = ops[b];
		struct km_buf *req;
		struct km_buf tmp = {0};
		size_t n;

		if (!op)
			continue;
		/* most gets fit the stack; big multigets use the heap */
		n = strlen(verb);
		for (i = 0; i < op->nkeys; i++)
			n += 1 + r->keys[op->keys[i]].len;
		n += 2;
		r->pending++;
		if (n <= sizeof(scratch)) {
			char *p = scratch;

			memcpy(p, verb, strlen(verb));
			p += strlen(verb);
			for (i = 0; i < op->nkeys; i++) {
				struct km_key *k = &r->keys[op->keys[i]];

				*p++ = ' ';
				memcpy(p, r->line.p + k->off, k->len);
				p += k->len;
			}
			*p++ = '\r';
			*p++ = '\n';
			km_backend_submit(w, op, r->pool_idx, scratch, n, NULL,
					  0);
			continue;
		}
		req = &tmp;
		km_buf_append(req, verb, strlen(verb));
		for (i = 0; i < op->nkeys; i++) {
			struct km_key *k = &r->keys[op->keys[i]];

			km_buf_append(req, " ", 1);
			km_buf_append(req, r->line.p + k->off, k->len);
		}
		if (km_buf_append(req, "\r\n", 2)) {
			km_buf_free(req);
			km_backend_fail_later(w, op);
			continue;
		}
		km_backend_submit(w, op, r->pool_idx, km_buf_data(req),
				  km_buf_used(req), NULL, 0);
		km_buf_free(req);
	}
	if (all_done && !r->answered) {
		for (i = 0; i < r->kend && r->keys[i].done; i++)
			;
		if (i == r->kend)
			km_read_batch_done(w, r);
	}
}

static void km_key_store_hit(struct km_req *r, struct km_key *k, int rank,
			     const struct km_value *v)
{
	if (k->hit_rank >= 0 && k->hit_rank <= rank)
		return;
	k->res_off = r->res.len;
	if (km_buf_append(&r->res, v->data - (v->block - v->ndata - 2),
			  v->block))
		return;
	k->res_len = v->block;
	k->hit_rank = rank;
	km_req_charge(r);
}

/*
 * Match a VALUES reply to the op's keys: memcached answers hits in request
 * order and leaves misses out, so walk both lists together.  A VALUE block
 * left over is for a key this op did not ask: -1, the reply is another
 * request's and the backend stream is out of step.
 */
static int km_values_match(struct km_req *r, struct km_op *op,
			   const char *reply, size_t len, int is_gat)
{
	size_t off = 0;
	unsigned int i;
	struct km_value v;
	long n = km_parse_value(reply, len, &v);

	for (i = 0; i < op->nkeys; i++) {
		struct km_key *k = &r->keys[op->keys[i]];
		int rank = op->rank;

		k->inflight = 0;
		k->answered = 1;
		if (is_gat) {
			unsigned int j;

			for (j = 0; j < k->nr && k->be[j] != op->be; j++)
				;
			/* hits from readable replicas win */
			rank = j +
			       (km_be_readable(op->be) ? 0 : KM_MAX_BACKENDS);
		}
		if (n > 0 && v.nkey == k->len &&
		    !memcmp(v.key, r->line.p + k->off, k->len)) {
			if (r->c)
				km_conn_note_reply(r->c, v.block);
			km_key_store_hit(r, k, rank, &v);
			if (!is_gat) {
				k->done = 1;
				if (k->nmissed) {
					KM_INC(km_d.c.fallback_hits);
					km_repair_note(r->line.p + k->off,
						       k->len, v.data, v.ndata,
						       v.flags, k->missed,
						       k->nmissed);
				}
			}
			off += n;
			n = km_parse_value(reply + off, len - off, &v);
		} else if (!is_gat) {
			if (r->c)
				km_conn_note_reply(r->c, 0);
			if (k->nmissed < KM_MAX_REPLICAS)
				k->missed[k->nmissed++] = op->be;
			KM_INC(km_d.be[op->be].c.fallbacks);
		}
	}
	return n > 0 ? -1 : 0;
}

/* The op's keys, as if their backend had failed: they fall back. */
static void km_keys_failed(struct km_req *r, struct km_op *op)
{
	unsigned int i;

	for (i = 0; i < op->nkeys; i++)
		r->keys[op->keys[i]].inflight = 0;
}

static int km_read_op_done(struct km_worker *w, struct km_op *op,
			   const char *reply, size_t len)
{
	struct km_req *r = op->req;
	int err = 0;

	if (!reply || km_reply_classify(reply, len) >= KM_RC_CLIENT) {
		if (reply)
			KM_INC(km_d.be[op->be].c.errors);
		km_keys_failed(r, op);
	} else if (km_values_match(r, op, reply, len, 0)) {
		km_keys_failed(r, op);
		err = -1;
	}
	if (!r->answered)
		km_read_round(w, r);
	if (r->c && !r->answered)
		km_conn_req_ready(w, r->c); /* its done keys may stream */
	return err;
}

/* ---- gat / gats: a touch on every writable replica, best hit -------- */

/* Every op of the window answered: its keys are done. */
static void km_gat_window_done(struct km_worker *w, struct km_req *r)
{
	unsigned int i;

	for (i = 0; i < r->kend; i++)
		r->keys[i].done = 1;
	km_read_batch_done(w, r);
}

static int km_gat_op_done(struct km_worker *w, struct km_op *op,
			  const char *reply, size_t len)
{
	struct km_req *r = op->req;
	int err = 0;

	if (reply && km_reply_classify(reply, len) < KM_RC_CLIENT)
		err = km_values_match(r, op, reply, len, 1);
	/* the last op out, once dispatch is over */
	if (r->pending == 1 && !r->dispatching && !r->answered)
		km_gat_window_done(w, r);
	return err;
}

/* The window's keys [from, kend) to every writable replica of each. */
static void km_gat_send(struct km_worker *w, struct km_req *r,
			unsigned int from)
{
	struct km_buf reqs[KM_MAX_BACKENDS];
	struct km_op *ops[KM_MAX_BACKENDS] = {0};
	const char *verb = r->cmd == KM_CMD_GATS ? "gats " : "gat ";
	unsigned int i, j, b;

	memset(reqs, 0, sizeof(reqs));
	for (i = from; i < r->kend; i++) {
		struct km_key *k = &r->keys[i];

		for (j = 0; j < k->nr; j++) {
			b = k->be[j];
			if (!km_be_writable(b))
				continue;
			if (!ops[b]) {
				ops[b] = km_op_new(w, r, b, KM_RK_VALUES);
				if (!ops[b])
					continue;
				km_buf_append(&reqs[b], verb, strlen(verb));
				km_buf_append(&reqs[b], r->line.p + 0,
					      r->gat_exp_len);
			}
			km_op_add_key(ops[b], i);
			km_buf_append(&reqs[b], " ", 1);
			km_buf_append(&reqs[b], r->line.p + k->off, k->len);
		}
	}
	for (b = 1; b < KM_MAX_BACKENDS; b++) {
		if (!ops[b])
			continue;
		r->pending++;
		if (km_buf_append(&reqs[b], "\r\n", 2))
			km_backend_fail_later(w, ops[b]);
		else
			km_backend_submit(w, ops[b], r->pool_idx,
					  km_buf_data(&reqs[b]),
					  km_buf_used(&reqs[b]), NULL, 0);
		km_buf_free(&reqs[b]);
	}
}

/* ---- one backend answers: mg, me, version, stats ARGS --------------- */

static void km_one_send(struct km_worker *w, struct km_req *r);

static void km_one_finish(struct km_worker *w, struct km_req *r)
{
	struct km_key *k = &r->keys[0];

	if (!k->answered) {
		km_req_set_resp(r, KM_ERR_UNAVAILABLE,
				sizeof(KM_ERR_UNAVAILABLE) - 1);
	} else {
		/* empty: a quiet miss, which the backend kept silent */
		km_req_set_resp(r, km_buf_data(&r->res), km_buf_used(&r->res));
	}
	km_req_answered(w, r);
}

static void km_one_op_done(struct km_worker *w, struct km_op *op,
			   const char *reply, size_t len)
{
	struct km_req *r = op->req;
	struct km_key *k = &r->keys[0];
	enum km_reply_class cls;

	k->inflight = 0;
	if (!reply) {
		km_one_send(w, r);
		return;
	}
	cls = len ? km_reply_classify(reply, len) : KM_RC_NEGATIVE;
	if (cls == KM_RC_SERVER) {
		KM_INC(km_d.be[op->be].c.errors);
		km_one_send(w, r);
		return;
	}
	k->answered = 1;
	r->res.off = r->res.len = 0;
	km_buf_append(&r->res, reply, len);
	if (r->cmd == KM_CMD_MG || r->cmd == KM_CMD_ME) {
		/* len 0: a quiet mg's miss */
		int miss = len == 0 || (len >= 2 && !memcmp(reply, "EN", 2));

		if (r->cmd == KM_CMD_MG) {
			if (miss)
				KM_INC(km_d.c.get_misses);
			else
				KM_INC(km_d.c.get_hits);
		}
		if (miss) {
			if (k->nmissed < KM_MAX_REPLICAS)
				k->missed[k->nmissed++] = op->be;
			KM_INC(km_d.be[op->be].c.fallbacks);
			km_one_send(w, r);
			return;
		}
		if (k->nmissed && r->cmd == KM_CMD_MG) {
			const char *nl = memchr(reply, '\n', len);
			size_t hl = nl ? (size_t)(nl - reply + 1) : len;

			KM_INC(km_d.c.fallback_hits);
			km_repair_note(r->line.p + k->off, k->len,
				       len > hl + 2 ? reply + hl : NULL,
				       len > hl + 2 ? len - hl - 2 : 0, 0,
				       k->missed, k->nmissed);
		}
	}
	km_one_finish(w, r);
}

static void km_one_send(struct km_worker *w, struct km_req *r)
{
	struct km_key *k = &r->keys[0];
	enum km_reply_kind kind = KM_RK_LINE;
	struct km_op *op;
	__u8 be;

	if (r->answered)
		return;
	be = km_key_next_readable(r, k);
	if (!be) {
		km_one_finish(w, r);
		return;
	}
	if (k->asked++ && r->cmd == KM_CMD_MG)
		KM_INC(km_d.c.fallbacks);
	if (r->cmd == KM_CMD_MG)
		kind = KM_RK_META;
	else if (r->cmd == KM_CMD_STATS)
		kind = KM_RK_STATS;
	op = km_op_new(w, r, be, kind);
	if (!op) {
		km_one_finish(w, r);
		return;
	}
	k->inflight = 1;
	r->pending++;
	km_backend_submit(w, op, r->pool_idx, km_buf_data(&r->line),
			  km_buf_used(&r->line), NULL, 0);
}

/* ---- one order a key ------------------------------------------------ */

/*
 * Writes of one key from different connections (or workers) would reach
 * the replicas in different orders, each over its own backend
 * connection, and leave them holding different values with no fault at
 * all.  So a key's writes take turns: a write holds its key's stripe
 * (a hash of the key; two keys sharing one only wait for each other) from
 * its sending until every replica answered, and the next write of the
 * stripe waits in a queue.  Each replica thus sees the key's writes in
 * the same order, one at a time.  Its connection parses nothing meanwhile
 * (km_dispatch_must_wait), as memcached answers a pipeline in order.  A
 * waiting write is handed to its own worker through that worker's inbox
 * (km_worker_wake), never run inside another request's completion.
 */
#define KM_SEQ_STRIPES 4096

static struct km_seq {
	pthread_mutex_t lock;
	int busy;
	struct km_req *head, *tail;
} km_seq[KM_SEQ_STRIPES] = {
	[0 ... KM_SEQ_STRIPES - 1] = {.lock = PTHREAD_MUTEX_INITIALIZER},
};

/* The stripe of the key of write r (by its ring slot, base64 decoded), + 1. */
static unsigned int km_seq_of(const struct km_req *r)
{
	return r->keys[0].slot % KM_SEQ_STRIPES + 1;
}

/* 1: r holds its stripe now; 0: it waits (queued) for its turn. */
static int km_seq_take(struct km_req *r)
{
	struct km_seq *s = &km_seq[r->seq - 1];
	int mine;

	pthread_mutex_lock(&s->lock);
	mine = !s->busy;
	if (mine) {
		s->busy = 1;
	} else {
		km_req_seq_append(&s->head, &s->tail, r);
		r->seq_waiting = 1;
	}
	pthread_mutex_unlock(&s->lock);
	return mine;
}

/* r's writes are all answered: the stripe's next write goes. */
static void km_seq_give(struct km_req *r)
{
	struct km_seq *s;
	struct km_req *next;

	if (!r->seq)
		return;
	s = &km_seq[r->seq - 1];
	r->seq = 0;
	pthread_mutex_lock(&s->lock);
	next = s->head;
	if (next) {
		s->head = next->seq_next;
		if (!s->head)
			s->tail = NULL;
	} else {
		s->busy = 0;
	}
	pthread_mutex_unlock(&s->lock);
	if (next)
		km_worker_wake(next->w, next); /* it holds the stripe now */
}

static void km_write_go(struct km_worker *w, struct km_req *r);

/* From the worker's loop: writes whose turn came. */
void km_seq_run(struct km_worker *w, struct km_req *r)
{
	r->seq_waiting = 0;
	if (r->c) {
		r->c->nseq--;
		km_conn_mark_dirty(w, r->c); /* its input may be parsed again */
	}
	km_write_go(w, r);
	km_req_dispatched(w, r);
}

/* ---- writes: every writable replica, one reply ---------------------- */

static int km_wrep_usable(const struct km_wrep *wr)
{
	return wr->done && wr->cls < KM_RC_SERVER;
}

static int km_wrep_usable_of(const struct km_wrep *wr)
{
	return wr && km_wrep_usable(wr);
}

static void km_write_answer(struct km_worker *w, struct km_req *r,
			    const struct km_wrep *pick)
{
	if (!pick) {
		unsigned int i;

		KM_INC(km_d.c.write_failures);
		/* the backends' own SERVER_ERROR if there was one */
		for (i = 0; i < r->nreps; i++) {
			if (r->reps[i].done && r->reps[i].cls == KM_RC_SERVER) {
				pick = &r->reps[i];
				break;
			}
		}
		if (!pick) {
			km_req_set_resp(r, KM_ERR_UNAVAILABLE,
					sizeof(KM_ERR_UNAVAILABLE) - 1);
			goto out;
		}
	}
	/* empty: what a quiet meta command's backend kept silent */
	km_req_set_resp(r, km_buf_data(&pick->reply),
			km_buf_used(&pick->reply));
out:
	if (r->noreply)
		r->resp.off = r->resp.len = 0;
	km_req_answered(w, r);
}

static int km_wrep_is_miss(const struct km_wrep *wr)
{
	/* empty: a quiet mg's miss */
	return km_buf_used(&wr->reply) == 0 ||
	       (km_buf_used(&wr->reply) >= 2 &&
		!memcmp(km_buf_data(&wr->reply), "EN", 2));
}

/*
 * The class of a backend's reply; len 0 is a quiet meta command's silence:
 * a miss for mg, the nominal success (HD) for ms, md and ma.
 */
static enum km_reply_class km_wrep_class(const struct km_req *r,
					 const char *reply, size_t len)
{
	if (len == 0)
		return r->cmd == KM_CMD_MG ? KM_RC_NEGATIVE : KM_RC_OK;
	return km_reply_classify(reply, len);
}

/*
 * mg that touches (T) or vivifies (N) went to every writable replica:
 * answer the first readable replica's hit, else any hit, else a miss.
 */
static const struct km_wrep *km_mg_touch_pick(struct km_req *r,
					      const struct km_wrep *first_ok)
{
	const struct km_wrep *any_hit = NULL;
	unsigned int i;

	for (i = 0; i < r->nreps; i++) {
		const struct km_wrep *wr = &r->reps[i];

		if (!km_wrep_usable(wr) || km_wrep_is_miss(wr))
			continue;
		if (km_be_readable(wr->be))
			return wr;
		if (!any_hit)
			any_hit = wr;
	}
	return any_hit ? any_hit : first_ok;
}

/* ---- the missed-write journal (journal.h) ---------------------------- */

/* ms in append or prepend mode (MA, MP) leaves older bytes in place. */
static int km_ms_appends(const struct km_req *r)
{
	size_t pos = 0;
	struct km_tok t;
	unsigned int i = 0;

	while (km_next_token(r->line.p, r->line.len - 2, &pos, &t))
		if (i++ >= 3 && t.len == 2 && t.p[0] == 'M' &&
		    strchr("AaPp", t.p[1]))
			return 1;
	return 0;
}

/* Did this reply leave the backend with the key's latest state? */
static int km_wrep_overwrote(const struct km_req *r, const struct km_wrep *wr)
{
	switch (r->cmd) {
	case KM_CMD_SET:
	case KM_CMD_ADD:
	case KM_CMD_REPLACE:
	case KM_CMD_CAS:
		return wr->cls == KM_RC_OK;
	case KM_CMD_MS:
		return wr->cls == KM_RC_OK && !km_ms_appends(r);
	case KM_CMD_DELETE:
	case KM_CMD_MD:
		/* deleted, or not there: absent either way */
		return wr->cls == KM_RC_OK ||
		       (km_buf_used(&wr->reply) >= 2 &&
			(!memcmp(km_buf_data(&wr->reply), "NF", 2) ||
			 !memcmp(km_buf_data(&wr->reply), "NOT_FOUND", 2)));
	default:
		return 0;
	}
}

static const struct km_wrep *km_req_rep_of(const struct km_req *r, __u8 be)
{
	unsigned int i;

	for (i = 0; i < r->nreps; i++)
		if (r->reps[i].be == be)
			return &r->reps[i];
	return NULL;
}

/* A replay names keys in the text protocol: no space, no control byte. */
static int km_key_is_text(const char *key, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if ((unsigned char)key[i] <= ' ' || key[i] == 0x7f)
			return 0;
	return 1;
}

/*
 * The first key it misses makes it owe writes: fence it now (fence.h).
 * wr: the write sent to it, NULL if none was.
 */
static void km_write_missed(__u8 be, const struct km_wrep *wr, const char *key,
			    size_t len)
{
	if (km_journal_empty(be))
		__atomic_store_n(&km_d.fence_kick, 1, __ATOMIC_RELAXED);
	if (wr && wr->cls == KM_RC_FAILED)
		km_journal_note_sent(be, key, len);
	else
		km_journal_note(be, key, len);
}

/* Could the write have changed a replica?  Not when all refused it. */
static int km_write_may_have_changed(const struct km_req *r)
{
	unsigned int i;

	for (i = 0; i < r->nreps; i++)
		if (r->reps[i].cls == KM_RC_OK ||
		    r->reps[i].cls >= KM_RC_SERVER)
			return 1;
	return 0;
}

/* The value block of a meta reply after its "VA n flags" line, or NULL. */
static const char *km_meta_value(const struct km_wrep *wr, size_t *n)
{
	const char *p = km_buf_data(&wr->reply);
	size_t len = km_buf_used(&wr->reply);
	const char *nl = len > 2 ? memchr(p, '\n', len) : NULL;

	if (!nl || memcmp(p, "VA", 2))
		return NULL;
	*n = len - (nl + 1 - p);
	return nl + 1;
}

/*
 * Did two replicas answer alike?  Text replies byte for byte; a meta
 * reply by its status and value, not by the flags it returns (a cas
 * unique, a TTL left), which are each replica's own.
 */
static int km_wrep_same(const struct km_req *r, const struct km_wrep *a,
			const struct km_wrep *b)
{
	size_t na = km_buf_used(&a->reply), nb = km_buf_used(&b->reply);
	const char *va, *vb;

	if (r->cmd != KM_CMD_MS && r->cmd != KM_CMD_MD && r->cmd != KM_CMD_MA &&
	    r->cmd != KM_CMD_MG)
		return na == nb && (!na || !memcmp(km_buf_data(&a->reply),
						   km_buf_data(&b->reply), na));
	if (!na || !nb) /* quiet: silent on success */
		return na == nb;
	if (na < 2 || nb < 2 ||
	    memcmp(km_buf_data(&a->reply), km_buf_data(&b->reply), 2))
		return 0;
	va = km_meta_value(a, &na);
	vb = km_meta_value(b, &nb);
	return !va || !vb || (na == nb && !memcmp(va, vb, na));
}

/*
 * Did replica wr end the write as the authority did?  A delete leaves the
 * key absent whatever it answered; any other reply that differs (an add
 * one refused, an incr from another value, a touch of a key one lacks)
 * says they now hold different things.
 */
static int km_wrep_agrees(const struct km_req *r, const struct km_wrep *wr,
			  const struct km_wrep *auth)
{
	if (!auth || wr == auth)
		return 1;
	if (r->cmd == KM_CMD_DELETE || r->cmd == KM_CMD_MD)
		return km_wrep_overwrote(r, wr) && km_wrep_overwrote(r, auth);
	return km_wrep_same(r, wr, auth);
}

/*
 * The write is over on every replica: the replicas of its key that did
 * not take it (not writable, failed, timed out) or that ended it unlike
 * the authority (the replica that answers for the key, km_write_auth)
 * owe it and are journaled; those that overwrote it as the authority did
 * are up to date for it again.
 */
static void km_write_journal(const struct km_req *r, const struct km_wrep *auth)
{
	const struct km_key *k = &r->keys[0];
	char dec[KM_KEY_MAX];
	const char *key;
	size_t len;
	unsigned int i;

	if (!r->nkeys || !km_write_may_have_changed(r))
		return;
	if (r->cmd == KM_CMD_FLUSH_ALL) {
		for (i = 0; i < k->nr; i++)
			if (!km_wrep_usable_of(km_req_rep_of(r, k->be[i])))
				km_journal_note_flush(k->be[i]);
		return;
	}
	if (r->type == KM_RT_BCAST || !k->len ||
	    km_key_bytes(r, k, dec, &key, &len))
		return;
	for (i = 0; i < k->nr; i++) {
		const struct km_wrep *wr = km_req_rep_of(r, k->be[i]);

		/*
		 * A cas whose primary failed went nowhere else: the others
		 * hold the last acknowledged value, missed nothing, and are
		 * what the primary is replayed from.
		 */
		if (r->type == KM_RT_CAS && r->cas_phase == 1 && r->nreps &&
		    k->be[i] != r->reps[0].be)
			continue;
		if (!km_wrep_usable_of(wr) && !km_key_is_text(key, len))
			km_journal_set_lost(k->be[i], "missed a binary key");
		else if (!km_wrep_usable_of(wr))
			km_write_missed(k->be[i], wr, key, len);
		else if (!km_wrep_agrees(r, wr, auth)) {
			km_debug("%.*s: %s answered unlike %s: owes it now\n",
				 (int)len, key, km_d.be[k->be[i]].name,
				 km_d.be[auth->be].name);
			km_write_missed(k->be[i], wr, key, len);
		} else if (km_wrep_overwrote(r, wr))
			km_journal_forget(k->be[i], key, len);
	}
}

/*
 * The authority: the reply of the replica the next read of the key goes
 * to (the first that took every write of it, km_be_current), so that what
 * the client is told (an add's STORED or NOT_STORED, an incr's value) is
 * what it reads back.  NULL when no such replica answered.
 */
static const struct km_wrep *km_write_auth(const struct km_req *r)
{
	const struct km_key *k = &r->keys[0];
	unsigned int i;

	for (i = 0; i < r->nreps; i++)
		if (km_wrep_usable(&r->reps[i]) &&
		    km_be_current(r, k, r->reps[i].be))
			return &r->reps[i];
	return NULL;
}

/*
 * Does the write's outcome not depend on what a replica holds (set, ms
 * without a mode, cas or invalidation flag)?  Its STORED is true of every
 * replica that took it, authority or not.
 */
static int km_write_blind(const struct km_req *r)
{
	size_t pos = 0;
	struct km_tok t;
	unsigned int i = 0;

	if (r->cmd == KM_CMD_SET)
		return 1;
	if (r->cmd != KM_CMD_MS)
		return 0;
	while (km_next_token(r->line.p, r->line.len - 2, &pos, &t))
		if (i++ >= 3 && (t.p[0] == 'C' || t.p[0] == 'I' ||
				 (t.p[0] == 'M' && t.len == 2 &&
				  t.p[1] != 'S' && t.p[1] != 's')))
			return 0;
	return 1;
}

/* Some replica it goes to took every write of its key (km_be_current). */
static int km_write_has_current(const struct km_req *r)
{
	unsigned int i;

	for (i = 0; i < r->nreps; i++)
		if (km_be_current(r, &r->keys[0], r->reps[i].be))
			return 1;
	return 0;
}

static void km_write_all_done(struct km_worker *w, struct km_req *r)
{
	const struct km_wrep *pick = NULL, *first_ok = NULL;
	const struct km_wrep *auth = km_write_auth(r);
	unsigned int i;

	km_write_journal(r, auth);

	for (i = 0; i < r->nreps; i++) {
		const struct km_wrep *wr = &r->reps[i];

		if (!km_wrep_usable(wr))
			continue;
		if (!first_ok) {
			first_ok = wr;
		} else if (km_buf_used(&wr->reply) !=
				   km_buf_used(&first_ok->reply) ||
			   (km_buf_used(&wr->reply) && /* quiet: empty */
			    memcmp(km_buf_data(&wr->reply),
				   km_buf_data(&first_ok->reply),
				   km_buf_used(&wr->reply)))) {
			if (r->cmd != KM_CMD_MG)
				KM_INC(km_d.c.divergent);
			break;
		}
	}
	km_seq_give(r);
	if (r->answered)
		return;
	if (r->cmd == KM_CMD_MG) {
		km_write_answer(w, r,
				auth ? auth : km_mg_touch_pick(r, first_ok));
		return;
	}
	switch (KM_LIVE(write_policy)) {
	case KM_WP_WORST:
		for (i = 0; i < r->nreps; i++)
			if (!pick || r->reps[i].cls > pick->cls)
				pick = &r->reps[i];
		if (pick && pick->cls >= KM_RC_SERVER)
			pick = NULL; /* failed replica: SERVER_ERROR */
		if (pick && !pick->done)
			pick = NULL;
		break;
	case KM_WP_FIRST:
		pick = first_ok;
		break;
	case KM_WP_PRIMARY:
		pick = auth ? auth : km_write_blind(r) ? first_ok : NULL;
		break;
	}
	km_write_answer(w, r, pick);
}

static void km_write_op_done(struct km_worker *w, struct km_op *op,
			     const char *reply, size_t len)
{
	struct km_req *r = op->req;
	struct km_wrep *wr = &r->reps[op->rank];

	wr->done = 1;
	if (reply) {
		wr->cls = km_wrep_class(r, reply, len);
		km_buf_append(&wr->reply, reply, len);
		if (wr->cls == KM_RC_SERVER)
			KM_INC(km_d.be[op->be].c.errors);
	}
	if (!r->answered && KM_LIVE(write_policy) == KM_WP_FIRST &&
	    km_wrep_usable(wr) && r->cmd != KM_CMD_MG)
		km_write_answer(w, r, wr);
	/* the last op out, once dispatch is over */
	if (r->pending == 1 && !r->dispatching)
		km_write_all_done(w, r);
}

static void km_write_send_range(struct km_worker *w, struct km_req *r,
				unsigned int from, unsigned int to)
{
	enum km_reply_kind kind = KM_RK_LINE;
	unsigned int i;

	if (r->cmd == KM_CMD_MA || r->cmd == KM_CMD_MG)
		kind = KM_RK_META;
	for (i = from; i < to; i++) {
		struct km_op *op = km_op_new(w, r, r->reps[i].be, kind);

		if (!op) {
			r->reps[i].done = 1;
			continue;
		}
		op->rank = i;
		r->pending++;
		km_backend_submit(w, op, r->pool_idx, km_buf_data(&r->line),
				  km_buf_used(&r->line), km_buf_data(&r->data),
				  km_buf_used(&r->data));
	}
}

static void km_write_send(struct km_worker *w, struct km_req *r)
{
	km_write_send_range(w, r, 0, r->nreps);
	if (r->pending == 0)
		km_write_all_done(w, r);
}

/* ---- cas: compare on the primary, then copy to the other replicas --- */

/*
 * A cas unique is one replica's own counter: the same compare on the
 * other replicas would fail.  The primary (the replica gets read it
 * from) decides; on success the other replicas get the value as a plain
 * set (ms without C), so that they hold what the primary holds.
 *
 * ms C I (invalidation) succeeds two ways, both answered HD: the cas
 * matched (a plain set), or it was older than the item's (the value is
 * replaced, the item marked stale, its TTL kept).  A plain set on the
 * others after the second way leaves them unlike the primary (with T-1,
 * the key on the primary and gone from the others).  So the primary's
 * cas is read first (me: changes nothing, unlike mg); after the second
 * way the others get C1, older than any item's cas but a fresh
 * memcached's very first (memcached refuses C0): the same way.
 */
static int km_cas_went_stale(const struct km_req *r, const struct km_tok *c)
{
	return r->cas_peeked && strtoull(c->p + 1, NULL, 10) != r->cas_before;
}

static int km_cas_rewrite(struct km_req *r)
{
	struct km_buf nl = {0};
	size_t pos = 0;
	struct km_tok t;
	unsigned int i = 0;
	int ret = 0;

	while (km_next_token(r->line.p, r->line.len - 2, &pos, &t)) {
		if (r->cmd == KM_CMD_CAS) {
			if (i == 0) {
				t.p = "set";
				t.len = 3;
			} else if (i == 5) {
				break; /* the cas unique */
			}
		} else if (i >= (r->cmd == KM_CMD_MS ? 3u : 2u) &&
			   t.p[0] == 'C') {
			if (km_cas_went_stale(r, &t) &&
			    km_buf_append(&nl, " C1", 3))
				ret = -1;
			i++;
			continue;
		}
		if ((i && km_buf_append(&nl, " ", 1)) ||
		    km_buf_append(&nl, t.p, t.len))
			ret = -1;
		i++;
	}
	if (km_buf_append(&nl, "\r\n", 2))
		ret = -1;
	if (!ret) {
		r->line.off = r->line.len = 0;
		ret = km_buf_append(&r->line, km_buf_data(&nl),
				    km_buf_used(&nl));
	}
	km_buf_free(&nl);
	return ret;
}

static int km_starts_me(const char *s, size_t len)
{
	return len > 3 && !memcmp(s, "ME ", 3);
}

/* "ME key exp=.. la=.. cas=N ...": the primary's cas before the ms */
static void km_cas_peeked(struct km_req *r, const char *reply, size_t len)
{
	const char *p = reply ? memmem(reply, len, " cas=", 5) : NULL;

	if (!p || !km_starts_me(reply, len))
		return;
	r->cas_before = strtoull(p + 5, NULL, 10);
	r->cas_peeked = 1;
}

static void km_cas_op_done(struct km_worker *w, struct km_op *op,
			   const char *reply, size_t len)
{
	struct km_req *r = op->req;
	struct km_wrep *wr = &r->reps[op->rank];

	if (op->cmd == KM_CMD_ME) {
		km_cas_peeked(r, reply, len);
		return;
	}
	wr->done = 1;
	if (reply) {
		wr->cls = km_wrep_class(r, reply, len);
		km_buf_append(&wr->reply, reply, len);
	}
	if (op->rank == 0) {
		if (km_wrep_usable(wr) && wr->cls == KM_RC_OK && r->nreps > 1 &&
		    !km_cas_rewrite(r)) {
			r->cas_phase = 2;
			km_write_send_range(w, r, 1, r->nreps);
			km_req_close(w, r); /* the copies are queued */
			if (r->pending > 1)
				return; /* answered when the copies are done */
			/* no copy could be sent (out of memory): done now */
			km_write_journal(r, NULL);
			km_seq_give(r);
			km_write_answer(w, r, wr);
			return;
		}
		/* refused (EXISTS, NOT_FOUND): nothing changed anywhere */
		if (!km_wrep_usable(wr) || wr->cls == KM_RC_OK)
			km_write_journal(r, NULL);
		km_seq_give(r);
		km_write_answer(w, r, km_wrep_usable(wr) ? wr : NULL);
		return;
	}
	if (reply && wr->cls != KM_RC_OK)
		KM_INC(km_d.c.divergent);
	if (r->pending == 1) {
		km_write_journal(r, NULL);
		km_seq_give(r);
		km_write_answer(w, r, &r->reps[0]);
	}
}

/* Has the forwarded meta line the flag f (tokens from first on)? */
static int km_line_flag(const struct km_req *r, unsigned int first, char f)
{
	size_t pos = 0;
	struct km_tok t;
	unsigned int i = 0;

	while (km_next_token(r->line.p, r->line.len - 2, &pos, &t))
		if (i++ >= first && t.p[0] == f)
			return 1;
	return 0;
}

/* me KEY to the primary, on the connection the ms then takes */
static void km_cas_peek(struct km_worker *w, struct km_req *r)
{
	char line[KM_KEY_MAX + 16];
	size_t pos = 0;
	struct km_tok t;
	struct km_op *op;
	int n;

	if (!km_next_token(r->line.p, r->line.len - 2, &pos, &t) ||
	    !km_next_token(r->line.p, r->line.len - 2, &pos, &t) ||
	    t.len > KM_KEY_MAX)
		return;
	n = snprintf(line, sizeof(line), "me %.*s%s\r\n", (int)t.len, t.p,
		     r->base64 ? " b" : "");
	op = km_op_new(w, r, r->reps[0].be, KM_RK_LINE);
	if (!op)
		return;
	op->cmd = KM_CMD_ME;
	op->kind = KM_RK_LINE;
	r->pending++;
	km_backend_submit(w, op, r->pool_idx, line, n, NULL, 0);
}

static void km_cas_send(struct km_worker *w, struct km_req *r)
{
	unsigned int i;

	/* the primary: where gets read (km_key_next_readable) */
	for (i = 0;
	     i < r->nreps && !km_be_current(r, &r->keys[0], r->reps[i].be); i++)
		;
	if (i > 0 && i < r->nreps) {
		__u8 be = r->reps[i].be;

		r->reps[i].be = r->reps[0].be;
		r->reps[0].be = be;
	}
	if (r->nreps == 0) {
		km_seq_give(r);
		km_write_answer(w, r, NULL);
		return;
	}
	r->cas_phase = 1;
	km_req_open(r); /* until its copies are queued */
	if (r->cmd == KM_CMD_MS && r->nreps > 1 && km_line_flag(r, 3, 'I'))
		km_cas_peek(w, r);
	km_write_send_range(w, r, 0, 1);
}

/* ---- stats: every up backend, for the figures only memcached has ---- */

/*
 * The aggregate goes to r->res; kmagentd's own figures are added when the
 * reply leaves (proxy.c km_stats_build), as of its turn in the queue.
 */
static void km_stats_finish(struct km_worker *w, struct km_req *r)
{
	struct km_agg agg = {0};
	unsigned int i, nr = 0;

	for (i = 1; i < KM_MAX_BACKENDS; i++)
		nr += km_d.be[i].id != 0;
	for (i = 0; i < r->nreps; i++)
		if (r->reps[i].done) /* km_agg_add takes stats replies only */
			km_agg_add_less(
				&agg, km_buf_data(&r->reps[i].reply),
				km_buf_used(&r->reps[i].reply),
				__atomic_load_n(
					&km_d.be[r->reps[i].be].internal_items,
					__ATOMIC_RELAXED));
	r->res.off = r->res.len = 0;
	if (km_agg_emit(&agg, nr, KM_LIVE(replicas), &r->res))
		r->res.off = r->res.len = 0;
	km_req_answered(w, r);
}

static void km_stats_op_done(struct km_worker *w, struct km_op *op,
			     const char *reply, size_t len)
{
	struct km_req *r = op->req;
	struct km_wrep *wr = &r->reps[op->rank];

	wr->done = 1;
	if (reply) {
		wr->cls = km_reply_classify(reply, len);
		km_buf_append(&wr->reply, reply, len);
	}
	if (r->pending == 1 && !r->dispatching)
		km_stats_finish(w, r);
}

/* Ask every up backend (a drained one holds its data all the same). */
static int km_stats_send(struct km_worker *w, struct km_req *r)
{
	static const char line[] = "stats\r\n";
	unsigned int id, i;

	for (id = 1; id < KM_MAX_BACKENDS; id++)
		if (km_d.be[id].id &&
		    __atomic_load_n(&km_d.be[id].kb.state, __ATOMIC_RELAXED) ==
			    KM_BE_UP &&
		    !km_req_add_rep(r, id))
			return -1;
	for (i = 0; i < r->nreps; i++) {
		struct km_op *op = km_op_new(w, r, r->reps[i].be, KM_RK_STATS);

		if (!op) {
			r->reps[i].done = 1;
			continue;
		}
		op->rank = i;
		r->pending++;
		km_backend_submit(w, op, r->pool_idx, line, sizeof(line) - 1,
				  NULL, 0);
	}
	if (r->pending == 0)
		km_stats_finish(w, r);
	return 0;
}

int km_op_complete(struct km_worker *w, struct km_op *op, const char *reply,
		   size_t len)
{
	struct km_req *r = op->req;
	int err = 0;

	/* a quiet command's reply: without the "MN" closing it */
	if (reply && op->kind == KM_RK_QUIET)
		len -= 4;
	if (reply && !km_reply_fits(op->cmd, reply, len)) {
		reply = NULL; /* another request's: as if the backend failed */
		err = -1;
	}
	if (reply && km_reply_unwell(reply, len))
		km_health_passive_failure(op->be, "SERVER_ERROR");
	switch (r->type) {
	case KM_RT_READ:
		err |= km_read_op_done(w, op, reply, len);
		break;
	case KM_RT_GAT:
		err |= km_gat_op_done(w, op, reply, len);
		break;
	case KM_RT_ONE:
		km_one_op_done(w, op, reply, len);
		break;
	case KM_RT_WRITE:
	case KM_RT_BCAST:
		km_write_op_done(w, op, reply, len);
		break;
	case KM_RT_CAS:
		km_cas_op_done(w, op, reply, len);
		break;
	case KM_RT_STATS:
		km_stats_op_done(w, op, reply, len);
		break;
	case KM_RT_LOCAL:
		break;
	}
	km_op_free(w, op);
	km_req_release(w, r);
	return err;
}

/* ---- dispatch ------------------------------------------------------- */

static void km_req_enqueue(struct km_conn *c, struct km_req *r)
{
	if (!c)
		return;
	if (c->tail)
		c->tail->next = r;
	else
		c->head = r;
	c->tail = r;
	c->nreq++;
}

/* A reply the proxy makes itself, in its place in the queue. */
void km_reply_local(struct km_worker *w, struct km_conn *c, const char *s,
		    size_t n, int close_after)
{
	struct km_req *r;

	if (!c->head && !close_after && !c->udp) {
		km_buf_append(&c->out, s, n);
		km_conn_mark_dirty(w, c);
		return;
	}
	r = km_req_new(w, c, KM_CMD_NONE, KM_RT_LOCAL);
	if (!r) {
		c->closing = 1;
		return;
	}
	km_req_set_resp(r, s, n);
	r->close_after = close_after;
	r->dispatching = 0;
	km_req_enqueue(c, r);
	km_req_answered(w, r);
}

static void km_key_set_replicas(struct km_key *k, const struct km_ring *ring,
				const char *key, size_t len, int base64)
{
	const struct km_slot *s;
	char dec[KM_KEY_MAX];
	int n;

	if (base64) {
		n = km_base64_decode(key, len, dec, sizeof(dec));
		if (n > 0) {
			key = dec;
			len = n;
		}
	}
	s = km_ring_lookup(ring, key, len);
	k->slot = s - ring->slots;
	k->nr = s->nr;
	memcpy(k->be, s->be, s->nr);
}

/* Every configured backend, by id: version, stats, flush_all... */
static void km_key_all_backends(struct km_key *k)
{
	unsigned int id;

	k->nr = 0;
	for (id = 1; id < KM_MAX_BACKENDS; id++)
		if (km_d.be[id].id)
			k->be[k->nr++] = id;
}

/*
 * The line to forward: as the client sent it (a meta command's "q" too:
 * km_backend_submit closes it with "mn"), without the text protocol's
 * "noreply", so that the backend answers every request it is sent.
 */
static int km_req_copy_line(struct km_req *r, const struct km_request *pr)
{
	size_t n = pr->len;

	if (pr->noreply) {
		const struct km_tok *t = &pr->tok[pr->ntok - 1];

		n = t->p - pr->line;
		while (n > 0 && pr->line[n - 1] == ' ')
			n--;
	}
	if (km_buf_append(&r->line, pr->line, n))
		return -1;
	return km_buf_append(&r->line, "\r\n", 2);
}

static int km_dispatch_read(struct km_worker *w, struct km_conn *c,
			    struct km_request *pr, struct km_req *r)
{
	const struct km_ring *ring = km_daemon_ring();
	size_t pos = 0, keys_from;
	struct km_tok t;
	int gat = pr->cmd == KM_CMD_GAT || pr->cmd == KM_CMD_GATS;

	(void)c;
	if (km_buf_append(&r->line, pr->line, pr->len))
		return -1;
	km_next_token(r->line.p, r->line.len, &pos, &t); /* the verb */
	keys_from = pos;
	if (gat) {
		km_next_token(r->line.p, r->line.len, &pos, &t);
		r->gat_exp_len = t.len;
		/* the exptime token, moved to the front for km_gat_send */
		memmove(r->line.p, t.p, t.len);
		keys_from = pos;
	}
	pos = keys_from;
	while (km_next_token(r->line.p, r->line.len, &pos, &t)) {
		struct km_key *k;

		if (t.len > KM_KEY_MAX) {
			/* as memcached: the keys before it are read (a gat
			 * touches them), then the whole reply is an error */
			r->bad_key = 1;
			break;
		}
		k = km_req_add_key(r, t.p - r->line.p, t.len);
		if (!k)
			return -1;
		km_key_set_replicas(k, ring, t.p, t.len, 0);
	}
	KM_ADD(km_d.c.cmd_get, r->nkeys);
	/* a miss asks the next replica later; a long request's next window
	 * goes out later too, and must not be overtaken by a later write */
	km_req_open(r);
	if (gat) {
		KM_ADD(km_d.c.cmd_touch, r->nkeys);
		km_read_window(w, r);
	} else if (r->nkeys == 0) {
		km_read_finish(w, r);
	} else {
		km_read_window(w, r);
	}
	return 0;
}

static int km_dispatch_write(struct km_worker *w, struct km_request *pr,
			     struct km_req *r, const char *data, size_t dlen)
{
	const struct km_ring *ring = km_daemon_ring();
	struct km_key *k;
	unsigned int i;

	if (km_req_copy_line(r, pr) ||
	    (dlen && km_buf_append(&r->data, data, dlen)))
		return -1;
	r->base64 = pr->base64;
	k = km_req_add_key(r, 0, 0);
	if (!k)
		return -1;
	if (r->type == KM_RT_BCAST) {
		km_key_all_backends(k);
	} else {
		k->off = pr->tok[1].p - pr->line;
		k->len = pr->tok[1].len;
		km_key_set_replicas(k, ring, pr->tok[1].p, pr->tok[1].len,
				    pr->base64);
	}
	for (i = 0; i < k->nr; i++)
		if (km_be_writable(k->be[i]) && !km_req_add_rep(r, k->be[i]))
			return -1;
	/*
	 * noreply: answered (with nothing) once done like any other, so that
	 * a later "mn" means what it means to memcached: all before it is done
	 */
	if (r->type != KM_RT_BCAST) {
		r->w = w;
		r->seq = km_seq_of(r);
		if (!km_seq_take(r)) {
			if (r->c)
				r->c->nseq++;
			return 0; /* km_seq_run sends it in its turn */
		}
	}
	km_write_go(w, r);
	return 0;
}

static void km_write_go(struct km_worker *w, struct km_req *r)
{
	/*
	 * An add, incr, delete... answered by a replica that missed writes
	 * of the key would say what that replica holds, not what was
	 * acknowledged: with no replica up to date, none is sent.
	 */
	if (r->type != KM_RT_BCAST && r->nreps && !km_write_blind(r) &&
	    !km_write_has_current(r)) {
		km_seq_give(r);
		km_write_answer(w, r, NULL);
		return;
	}
	if (r->type == KM_RT_CAS)
		km_cas_send(w, r);
	else
		km_write_send(w, r);
}

static int km_dispatch_one(struct km_worker *w, struct km_request *pr,
			   struct km_req *r)
{
	struct km_key *k;

	if (km_req_copy_line(r, pr))
		return -1;
	k = km_req_add_key(r, 0, 0);
	if (!k)
		return -1;
	if (pr->cmd == KM_CMD_MG || pr->cmd == KM_CMD_ME) {
		km_req_open(r); /* a miss asks the next replica later */
		r->base64 = pr->base64;
		k->off = pr->tok[1].p - pr->line;
		k->len = pr->tok[1].len;
		km_key_set_replicas(k, km_daemon_ring(), pr->tok[1].p,
				    pr->tok[1].len, pr->base64);
		if (pr->cmd == KM_CMD_MG)
			KM_INC(km_d.c.cmd_get);
	} else {
		km_key_all_backends(k);
	}
	km_one_send(w, r);
	return 0;
}

/* A refused oversized set: memcached drops the old value too. */
static void km_dispatch_unlink(struct km_worker *w, struct km_conn *c,
			       const struct km_tok *key)
{
	struct km_request pr = {0};
	struct km_req *r;
	char line[KM_KEY_MAX + 16];

	if (key->len > KM_KEY_MAX)
		return;
	r = km_req_new(w, c, KM_CMD_DELETE, KM_RT_WRITE);
	if (!r)
		return;
	r->noreply = 1;
	pr.cmd = KM_CMD_DELETE;
	pr.len = snprintf(line, sizeof(line), "delete %.*s", (int)key->len,
			  key->p);
	pr.line = line;
	pr.ntok = 2;
	pr.tok[1].p = line + 7;
	pr.tok[1].len = key->len;
	km_req_enqueue(c, r);
	if (km_dispatch_write(w, &pr, r, NULL, 0))
		km_req_answered(w, r);
	km_req_dispatched(w, r);
}

void km_dispatch_too_large(struct km_worker *w, struct km_conn *c,
			   const struct km_request *pr)
{
	static const char msg[] = "SERVER_ERROR object too large for cache\r\n";

	if (!pr->noreply)
		km_reply_local(w, c, msg, sizeof(msg) - 1, 0);
	if (pr->cmd == KM_CMD_SET || pr->cmd == KM_CMD_MS)
		km_dispatch_unlink(w, c, &pr->tok[1]);
}

/* Has a meta command the flag f (tokens from first on)? */
static int km_meta_flag(const struct km_request *pr, unsigned int first, char f)
{
	unsigned int i;

	for (i = first; i < pr->ntok && i < KM_TOK_MAX; i++)
		if (pr->tok[i].p[0] == f)
			return 1;
	return 0;
}

/* Has a meta command the flag f (tokens from first on)? */
static int km_meta_flag(const struct km_request *pr, unsigned int first,
			char f);

int km_dispatch_must_wait(const struct km_conn *c, const struct km_request *pr)
{
	/* a write waits for its key's turn: nothing after it overtakes it */
	if (c->nseq)
		return 1;
	if (!c->nopen)
		return 0;
	switch (pr->cmd) {
	case KM_CMD_GAT:
	case KM_CMD_GATS:
	case KM_CMD_FLUSH_ALL:
	case KM_CMD_VERBOSITY:
		return 1;
	case KM_CMD_MG:
		return km_meta_flag(pr, 2, 'T') || km_meta_flag(pr, 2, 'N');
	default:
		return km_cmd_is_write(pr->cmd);
	}
}

void km_dispatch(struct km_worker *w, struct km_conn *c, struct km_request *pr,
		 const char *data, size_t dlen)
{
	enum km_req_type type;
	struct km_req *r;
	int err;

	switch (pr->cmd) {
	case KM_CMD_GET:
	case KM_CMD_GETS:
		type = KM_RT_READ;
		break;
	case KM_CMD_GAT:
	case KM_CMD_GATS:
		type = KM_RT_GAT;
		break;
	case KM_CMD_MG:
		/* a touching or vivifying mg changes every replica */
		type = km_meta_flag(pr, 2, 'T') || km_meta_flag(pr, 2, 'N')
			       ? KM_RT_WRITE
			       : KM_RT_ONE;
		break;
	case KM_CMD_ME:
	case KM_CMD_VERSION:
		type = KM_RT_ONE;
		break;
	case KM_CMD_STATS:
		if (pr->ntok == 1) {
			type = KM_RT_STATS;
			break;
		}
		if (pr->ntok == 2 && pr->tok[1].len == 5 &&
		    !memcmp(pr->tok[1].p, "reset", 5)) {
			/* figures as of its turn: after the requests before */
			r = km_req_new(w, c, KM_CMD_STATS, KM_RT_LOCAL);
			if (!r)
				return;
			r->stats = 2;
			r->dispatching = 0;
			km_req_enqueue(c, r);
			km_req_answered(w, r);
			return;
		}
		type = KM_RT_ONE;
		break;
	case KM_CMD_FLUSH_ALL:
	case KM_CMD_VERBOSITY:
		type = KM_RT_BCAST;
		if (pr->cmd == KM_CMD_FLUSH_ALL)
			KM_INC(km_d.c.cmd_flush);
		break;
	case KM_CMD_MN:
		km_reply_local(w, c, "MN\r\n", 4, 0);
		return;
	case KM_CMD_QUIT:
		km_reply_local(w, c, "", 0, 1);
		return;
	default:
		if (!km_cmd_is_write(pr->cmd)) {
			km_reply_local(w, c, "ERROR\r\n", 7, 0);
			return;
		}
		type = KM_RT_WRITE;
		if (pr->cmd == KM_CMD_CAS ||
		    (pr->cmd == KM_CMD_MS && km_meta_flag(pr, 3, 'C')) ||
		    ((pr->cmd == KM_CMD_MD || pr->cmd == KM_CMD_MA) &&
		     km_meta_flag(pr, 2, 'C')))
			type = KM_RT_CAS;
		if (pr->vlen >= 0)
			KM_INC(km_d.c.cmd_set);
		else if (pr->cmd == KM_CMD_TOUCH)
			KM_INC(km_d.c.cmd_touch);
		break;
	}
	r = km_req_new(w, c, pr->cmd, type);
	if (!r) {
		km_reply_local(w, c, "SERVER_ERROR out of memory\r\n", 28, 0);
		return;
	}
	r->noreply = pr->noreply;
	r->quiet = pr->quiet;
	km_req_enqueue(c, r);
	if (type != KM_RT_READ && type != KM_RT_GAT) {
		r->ukeys = 1;
		c->ukeys++;
	}
	switch (type) {
	case KM_RT_READ:
	case KM_RT_GAT:
		err = km_dispatch_read(w, c, pr, r);
		break;
	case KM_RT_ONE:
		err = km_dispatch_one(w, pr, r);
		break;
	case KM_RT_STATS:
		r->stats = 1;
		err = km_stats_send(w, r);
		break;
	default:
		err = km_dispatch_write(w, pr, r, data, dlen);
		break;
	}
	if (err && !r->answered) {
		km_req_set_resp(r, "SERVER_ERROR out of memory\r\n", 28);
		km_req_answered(w, r);
	}
	km_req_dispatched(w, r);
}
