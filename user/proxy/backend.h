/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Backend connections (backend.c): pooled per worker, pipelined, each
 * answering its operations in order.  What finished is handed back
 * through the callback set by km_backend_set_done (the engine's
 * km_op_complete), so that this layer never calls up.
 */
#ifndef KM_BACKEND_H
#define KM_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include "buf.h"
#include "mcproto.h"
#include "worker.h"

/* One operation sent to one backend; backends answer in order. */
struct km_op {
	struct km_op *next;
	struct km_req *req;
	enum km_cmd cmd; /* what the reply must answer (km_reply_fits) */
	__u8 be;
	__u8 rank; /* replica index of be for the request's key(s) */
	enum km_reply_kind kind;
	uint64_t deadline;  /* ms, monotonic */
	unsigned int *keys; /* request key indexes (multi-key reads) */
	unsigned int nkeys, kcap;
};

/* A pooled backend connection, owned by one worker. */
struct km_bconn {
	struct km_ev ev;
	struct km_worker *w;
	__u8 be;
	unsigned int gen; /* km_backend_gen when connected */
	int connecting;
	int dirty; /* on the worker's flush list */
	struct km_bconn *dirty_next;
	uint64_t retry_at; /* no reconnect before (after a failure) */
	uint64_t last_rx;  /* ms: connected, or last bytes received */
	struct km_buf out, in;
	struct km_op *head, *tail;
	unsigned int nops;
};

/*
 * A backend operation finished; reply NULL = it failed.  -1: the reply
 * does not answer the op (taken as a failure): the backend stream is out
 * of step, and the connection's other ops must fail too.
 */
typedef int (*km_op_done_fn)(struct km_worker *w, struct km_op *op,
			     const char *reply, size_t len);
/* Before any worker runs. */
void km_backend_set_done(km_op_done_fn fn);

/*
 * Queue op on a pooled connection; -1: it failed, and is completed
 * (reply NULL) by km_backend_complete_failed, never inside this call.
 */
int km_backend_submit(struct km_worker *w, struct km_op *op,
		      unsigned int pool_idx, const void *d1, size_t n1,
		      const void *d2, size_t n2);
/* op could not be sent: completed as failed by km_backend_complete_failed */
void km_backend_fail_later(struct km_worker *w, struct km_op *op);
/* The worker loop, after each dispatch: complete the ops that failed. */
void km_backend_complete_failed(struct km_worker *w);
void km_backend_event(struct km_worker *w, struct km_bconn *bc,
		      uint32_t events);
void km_backend_flush(struct km_worker *w, struct km_bconn *bc);
void km_backend_check_timeouts(struct km_worker *w);
int km_backend_pending(struct km_worker *w);
void km_backend_close_all(struct km_worker *w);

#endif /* KM_BACKEND_H */
