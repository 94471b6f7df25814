/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The request engine (engine.c) and the connection code (proxy.c). */
#ifndef KM_ENGINE_H
#define KM_ENGINE_H

#include "proxy.h"
#include "request.h"

/* engine.c */
void km_dispatch(struct km_worker *w, struct km_conn *c, struct km_request *pr,
		 const char *data, size_t dlen);
void km_dispatch_too_large(struct km_worker *w, struct km_conn *c,
			   const struct km_request *pr);
/* Must this write wait for c's open requests (engine.c: ordering)? */
int km_dispatch_must_wait(const struct km_conn *c, const struct km_request *pr);
void km_reply_local(struct km_worker *w, struct km_conn *c, const char *s,
		    size_t n, int close_after);
void km_req_detach(struct km_worker *w, struct km_req *r);
/* A write whose key's turn came (km_worker_wake): send it. */
void km_seq_run(struct km_worker *w, struct km_req *r);
/*
 * c's head request, a get not answered yet: append the values of its
 * finished keys, in key order, to out; once its window of keys is out and
 * room is set, ask for the next window.  -1: out of memory.
 */
int km_read_stream(struct km_worker *w, struct km_req *r, struct km_buf *out,
		   int room);
/* Is r a get whose window is out, waiting for room for the next one? */
int km_read_wants_more(const struct km_req *r);

/* proxy.c */
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
/* extra: the backends' lines (stats.c), before END; NULL for none */
void km_stats_build(struct km_buf *b, int reset, const struct km_buf *extra);

#endif /* KM_ENGINE_H */
