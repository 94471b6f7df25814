/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The userspace data path's entry: sockets, epoll workers and their
 * loop, client connections (TCP, unix and one pseudo-connection per UDP
 * datagram).  See proxy.c for the data flow, request.h for what the
 * engine (engine.h) makes of a request, backend.h for backend conns.
 */
#ifndef KM_PROXY_H
#define KM_PROXY_H

#include "buf.h"

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

/* The proxy's `stats` reply into b; extra: the backends' lines (stats.c),
 * before END; NULL for none. */
void km_stats_build(struct km_buf *b, int reset, const struct km_buf *extra);

#endif /* KM_PROXY_H */
