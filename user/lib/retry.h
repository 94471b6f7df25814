/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The daemon's half of the kernel path's retry (bpf/retry.bpf.h), the part
 * that needs neither root nor libbpf: which requests are overdue, how
 * often to look, when a silent backend's flag is due to be cleared.
 * kbpf_retry.c runs it against the mmap'ed km_deadline map.
 */
#ifndef KM_RETRY_H
#define KM_RETRY_H

#include "kmagent.h"

/* Default --udp-retry: well under a client's usual 1 s UDP timeout. */
#define KM_UDP_RETRY_DEFAULT_MS 100
/* How long a backend stays KM_BE_F_SILENT before reads try it again. */
#define KM_SILENT_HOLD_MS 1000

/*
 * Scan the n deadline words of dl, from *cursor on and at most once round,
 * for requests sent delay_ns or more before now (nanoseconds of the coarse
 * monotonic clock, as the words hold): up to max of them into out (state
 * KM_RQ_TODO).  *cursor is left after the last one taken, so that a scan
 * cut short by max goes on from there.  Returns how many were taken.
 */
unsigned int km_retry_scan(const volatile __u64 *dl, __u32 n, __u64 now,
			   __u64 delay_ns, __u32 *cursor,
			   struct km_retry_d *out, unsigned int max);

/*
 * How often to scan for a retry delay of retry_ms: a fifth of it (a retry
 * then leaves at most 20 % late), between 1 and 20 ms.
 */
unsigned int km_retry_period_ms(unsigned int retry_ms);

#endif /* KM_RETRY_H */
