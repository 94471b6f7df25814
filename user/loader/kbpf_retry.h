/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * kmagentd's retry thread for the kernel path (kbpf_retry.c): requests
 * whose backend stays silent past --udp-retry go to the next replica.
 * Started and stopped by kbpf_daemon.c, which owns the handle.
 */
#ifndef KM_KBPF_RETRY_H
#define KM_KBPF_RETRY_H

#include "config.h"
#include "kbpf.h"

/*
 * Copy mode's sockets: what a run of km_xdp_retry made of its frame is
 * sent as the kernel would (verdict XDP_TX: out of ingress_if; XDP_REDIRECT:
 * out of redirect_if; XDP_PASS: into the stack; others: nothing).
 */
struct km_retry_tx {
	int pkt_fd;  /* AF_PACKET: frames out of an interface */
	int raw_fd;  /* raw IPv4: packets into the stack */
	int raw6_fd; /* raw IPv6: the same (-1: no IPv6 on this host) */
};
int km_retry_tx_open(struct km_retry_tx *tx);
void km_retry_tx_close(struct km_retry_tx *tx);
int km_retry_tx_send(const struct km_retry_tx *tx, int verdict,
		     const void *frame, size_t len, int ingress_if,
		     int redirect_if);

/* Write backend id's kernel entry again, keeping the flags in keep. */
typedef void (*km_kretry_repush_fn)(__u8 id, __u8 keep);
/*
 * mmap the deadlines and the queue, start the thread: 0 or -errno.
 * repush: the daemon glue's (km_kbpf_repush), for a backend that may be
 * read again.
 */
int km_kretry_start(struct km_bpf *kb, const struct km_cfg *cfg,
		    km_kretry_repush_fn repush);
/* Join the thread, unmap; the kernel side stays as it is. */
void km_kretry_stop(void);
/* A KM_EV_SILENT event: clear the backend's flag KM_SILENT_HOLD_MS on. */
void km_kretry_silent(__u8 id);

#endif /* KM_KBPF_RETRY_H */
