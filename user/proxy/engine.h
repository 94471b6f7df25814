/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The request engine (engine.c): what a parsed request becomes, its
 * backend operations, and how their replies decide the client's.
 */
#ifndef KM_ENGINE_H
#define KM_ENGINE_H

#include "backend.h"
#include "request.h"

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

/*
 * A backend operation finished; reply NULL = it failed.  -1: the reply
 * does not answer the op (taken as a failure): the backend stream is out
 * of step, and the connection's other ops must fail too.  Handed to
 * backend.c as its km_op_done_fn.
 */
int km_op_complete(struct km_worker *w, struct km_op *op, const char *reply,
		   size_t len);
void km_op_free(struct km_worker *w, struct km_op *op);
/* Free the requests and ops w keeps for reuse (its thread has ended). */
void km_worker_free_lists(struct km_worker *w);

#endif /* KM_ENGINE_H */
