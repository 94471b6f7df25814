/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The userspace engine: epoll workers, client connections (TCP, unix and
 * one pseudo-connection per UDP datagram), requests and their backend
 * operations.  See proxy.c for the data flow.
 */
#ifndef KM_PROXY_H
#define KM_PROXY_H

#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <netinet/in.h>
#include "kmagent.h"
#include "mcproto.h"

struct km_buf {
	char *p;
	size_t off; /* consumed from the front */
	size_t len; /* filled up to */
	size_t cap;
};

int km_buf_reserve(struct km_buf *b, size_t n);
int km_buf_append(struct km_buf *b, const void *d, size_t n);
void km_buf_consume(struct km_buf *b, size_t n);
void km_buf_free(struct km_buf *b);
/* Empty b; give a big one's memory back rather than keep it at peak. */
void km_buf_shrink(struct km_buf *b);

static inline size_t km_buf_used(const struct km_buf *b)
{
	return b->len - b->off;
}

static inline char *km_buf_data(const struct km_buf *b)
{
	return b->p + b->off;
}

enum km_ev_kind {
	KM_EV_LISTEN = 1,
	KM_EV_CLIENT,
	KM_EV_BACKEND,
	KM_EV_UDP,
	KM_EV_SEQ, /* the worker's inbox (engine.c, one order a key) */
};

struct km_ev {
	enum km_ev_kind kind;
	int fd;
};

struct km_worker;
struct km_req;

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
	unsigned int gen; /* km_backend_info.gen when connected */
	int connecting;
	int dirty; /* on the worker's flush list */
	struct km_bconn *dirty_next;
	uint64_t retry_at; /* no reconnect before (after a failure) */
	uint64_t last_rx;  /* ms: connected, or last bytes received */
	struct km_buf out, in;
	struct km_op *head, *tail;
	unsigned int nops;
};

struct km_conn;

struct km_worker {
	unsigned int id;
	pthread_t thread;
	int epfd;
	struct km_ev listen_ev;
	struct km_ev unix_ev;
	struct km_ev udp_ev;
	uint64_t now; /* ms, monotonic, cached per loop round */
	struct km_bconn **bc[KM_MAX_BACKENDS]; /* [id][pool] */
	unsigned int rr[KM_MAX_BACKENDS];
	struct km_bconn *dirty_b;
	struct km_conn *dirty_c;
	struct km_req *free_reqs;
	struct km_op *free_ops;
	unsigned int nfree_reqs, nfree_ops;
	struct km_conn *free_udp; /* UDP pseudo-connections, buffers kept */
	unsigned int nfree_udp;
	char *udp_buf;
	/* writes whose key's turn came, from any worker (eventfd) */
	struct km_ev seq_ev;
	pthread_mutex_t seq_lock;
	struct km_req *seq_head, *seq_tail;
	struct km_conn *lru_head, *lru_tail; /* TCP clients, idlest first */
	uint64_t idle_check;
};

struct km_cfg;
struct km_cfg_allow;

/*
 * The UDP clients allowed when no --allow is given, into out (at most max):
 * loopback and the subnets of the interfaces served (the one holding the
 * -l address, every one without -l, and the -I ones).  Returns how many.
 */
unsigned int km_allow_default(const struct km_cfg *cfg,
			      struct km_cfg_allow *out, unsigned int max);

/* Sockets and workers set up (as root); km_proxy_run starts serving. */
int km_proxy_start(void);
int km_proxy_run(void);
/*
 * SIGTERM: accept no more connections, and wait (at most timeout_ms) for
 * the requests in flight to the backends to be answered, so that what a
 * client was told is what the replicas hold before kmagentd goes.
 */
void km_proxy_quiesce(unsigned int timeout_ms);
void km_proxy_stop(void);

/* backend.c */
int km_backend_submit(struct km_worker *w, struct km_op *op,
		      unsigned int pool_idx, const void *d1, size_t n1,
		      const void *d2, size_t n2);
void km_backend_event(struct km_worker *w, struct km_bconn *bc,
		      uint32_t events);
void km_backend_flush(struct km_worker *w, struct km_bconn *bc);
void km_backend_check_timeouts(struct km_worker *w);
int km_backend_pending(struct km_worker *w);
void km_backend_close_all(struct km_worker *w);

/*
 * engine.c: a backend operation finished; reply NULL = it failed.  -1: the
 * reply does not answer the op (taken as a failure): the backend stream is
 * out of step, and the connection's other ops must fail too.
 */
int km_op_complete(struct km_worker *w, struct km_op *op, const char *reply,
		   size_t len);
void km_op_free(struct km_worker *w, struct km_op *op);

#endif /* KM_PROXY_H */
