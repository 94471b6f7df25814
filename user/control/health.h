/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef KM_HEALTH_H
#define KM_HEALTH_H

#include <stddef.h>
#include "kmagent.h"

/* Start/stop the probe thread (probes every backend with `stats`). */
int km_health_start(void);
void km_health_stop(void);

/* Passive health signal from the data path (connect error, timeout). */
void km_health_passive_failure(__u8 id, const char *what);

/* Parse "STAT pid N" and "STAT uptime N" out of a stats reply. */
void km_health_parse_stats(const char *buf, size_t len, long *pid,
			   long *uptime);

#endif /* KM_HEALTH_H */
