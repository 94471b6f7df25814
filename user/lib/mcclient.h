/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * A blocking memcached client with a deadline, for the threads that talk
 * to backends outside the data path (health probes, fences).
 */
#ifndef KM_MCCLIENT_H
#define KM_MCCLIENT_H

#include <time.h>

union km_addr;

/* deadline: now + ms, on CLOCK_MONOTONIC. */
void km_deadline_in(struct timespec *deadline, int ms);
/* ms left until deadline (<= 0: past). */
long km_ms_left(const struct timespec *deadline);
/* Wait for events on fd until deadline: 0, -ETIMEDOUT or -errno. */
int km_mc_wait(int fd, short events, const struct timespec *deadline);
/* A connected TCP socket (non-blocking), or -errno. */
int km_mc_connect(const union km_addr *sa, const struct timespec *deadline);

#endif /* KM_MCCLIENT_H */
