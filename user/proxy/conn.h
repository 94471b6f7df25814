/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * A client connection's part that the engine drives (conn.c): marking it
 * for the worker's flush, its backpressure (how many keys it may have
 * out, --conn-buffer and --reply-memory), and waking another worker's
 * loop for a write whose turn came.
 */
#ifndef KM_CONN_H
#define KM_CONN_H

#include <stddef.h>
#include "request.h"

/* Hand r to worker w's loop (from any thread); it runs km_seq_run. */
void km_worker_wake(struct km_worker *w, struct km_req *r);
void km_conn_req_ready(struct km_worker *w, struct km_conn *c);
void km_conn_mark_dirty(struct km_worker *w, struct km_conn *c);
/*
 * How many more keys c may have asked of backends (>= 1), by its
 * --conn-buffer and the size its replies take (km_conn_note_reply).  head:
 * for the head of its queue, which only the unsent output holds back.
 */
unsigned int km_conn_key_room(const struct km_conn *c, int head);
/* A key's reply took bytes (0: a miss). */
void km_conn_note_reply(struct km_conn *c, size_t bytes);
/* Bring c's part of the clients' total claim up to date. */
void km_conn_account(struct km_conn *c);
/* What c holds (output, replies in assembly) and has asked for, bytes. */
size_t km_conn_claim(const struct km_conn *c);
/* May c's input be parsed (its claim under both bounds)? */
int km_conn_has_room(const struct km_conn *c);

#endif /* KM_CONN_H */
