/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef KM_HEALTH_H
#define KM_HEALTH_H

/* Start/stop the probe thread (probes every backend with `stats`). */
int km_health_start(void);
void km_health_stop(void);

/* Parse "STAT pid N" and "STAT uptime N" out of a stats reply. */
void km_health_parse_stats(const char *buf, size_t len, long *pid,
			   long *uptime);

/* Blocking I/O with a deadline, for the probe thread (health, fence). */
union km_addr;
struct timespec;
void km_deadline_in(struct timespec *deadline, int ms);
int km_health_wait(int fd, short events, const struct timespec *deadline);
/* A connected TCP socket (non-blocking), or -errno. */
int km_health_connect(const union km_addr *sa, const struct timespec *deadline);

#endif /* KM_HEALTH_H */
