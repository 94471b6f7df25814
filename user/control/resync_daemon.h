/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef KM_RESYNC_DAEMON_H
#define KM_RESYNC_DAEMON_H

#include "resync.h"

/*
 * kmagentd glue (resync_daemon.c): a manager thread resyncs every WARMING
 * backend from the UP ones and marks it UP when done (again if the ring
 * changed meanwhile); a backend that leaves WARMING cancels its resync.
 */
int km_resyncd_start(void);
/*
 * Nothing starts before this: the journal and the drains it records are
 * loaded (kmagentd.c), or a replay would take a drained backend's keys.
 */
void km_resyncd_open(void);
void km_resyncd_stop(void);
/* On demand (kmagentctl resync): copy again, the state is left alone. */
int km_resyncd_request(__u8 id);
/* The running resync's progress, else the last one's; -ENOENT if none. */
int km_resyncd_progress(__u8 id, struct km_resync_progress *p);

#endif /* KM_RESYNC_DAEMON_H */
