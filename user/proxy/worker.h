/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * A worker of the data path (proxy.c runs its loop): its epoll events,
 * backend connection pools, free lists and inbox, which every module of
 * the data path reaches through the worker it is handed.
 */
#ifndef KM_WORKER_H
#define KM_WORKER_H

#include <stdint.h>
#include <pthread.h>
#include "kmagent.h"

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

struct km_bconn;
struct km_conn;
struct km_op;
struct km_req;

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
	/* ops that failed inside km_backend_submit, completed by the loop */
	struct km_op *failed_head, *failed_tail;
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

#endif /* KM_WORKER_H */
