/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef KM_KBPF_DAEMON_H
#define KM_KBPF_DAEMON_H

#include "kbpf.h"

/*
 * kmagentd glue (kbpf_daemon.c): with interfaces configured (-I), load,
 * configure from cfg and the daemon's tables, attach, follow the daemon's
 * backend and ring hooks, and poll events on a thread.  0 without -I.
 * Stopping leaves programs attached and maps pinned (kmagentctl detach
 * or km_bpf_detach_all removes them).
 */
struct km_cfg;
int km_kbpf_start(const struct km_cfg *cfg);
void km_kbpf_stop(void);
/*
 * Write backend id's kernel entry again from the daemon's table (with
 * KM_BE_F_OWES as it stands), keeping the kernel-set flags in keep.
 */
void km_kbpf_repush(__u8 id, __u8 keep);
/* A failed start: stop, then km_bpf_undo. */
void km_kbpf_abort(void);
/*
 * 1 when the kernel path sends to backend id and no reply comes back
 * (replies through an interface without it), and when the kernel path
 * then passes every UDP request up to kmagentd (km_kbpf_bypassed).
 */
int km_kbpf_backend_noreply(__u8 id);
int km_kbpf_bypassed(void);

/* Why the kernel path passed UDP up to kmagentd for a while. */
enum km_bypass_reason {
	KM_BYPASS_LOST_REPLIES, /* sent, never answered, probes fine */
	KM_BYPASS_REASONS,
};

struct km_bypass_info {
	int active;
	long long left_ms; /* of the hold, when active */
	char why[160];
	const char *reason[KM_BYPASS_REASONS];
	unsigned long long count[KM_BYPASS_REASONS]; /* since start */
};
void km_kbpf_bypass_info(struct km_bypass_info *bi);
/* The daemon's handle (counters for stats/metrics), NULL without -I. */
struct km_bpf *km_kbpf_handle(void);

#endif /* KM_KBPF_DAEMON_H */
