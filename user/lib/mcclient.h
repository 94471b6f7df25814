/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * A blocking memcached client with a deadline, for the threads that talk
 * to backends outside the data path (health probes, fences).
 */
#ifndef KM_MCCLIENT_H
#define KM_MCCLIENT_H

#include <stddef.h>
#include <time.h>
#include "mcproto.h"

union km_addr;

/* deadline: now + ms, on CLOCK_MONOTONIC. */
void km_deadline_in(struct timespec *deadline, int ms);
/* ms left until deadline (<= 0: past). */
long km_ms_left(const struct timespec *deadline);
/* Now, in ms on CLOCK_MONOTONIC. */
long long km_now_ms(void);
/* Wait for events on fd until deadline: 0, -ETIMEDOUT or -errno. */
int km_mc_wait(int fd, short events, const struct timespec *deadline);
/* A connected TCP socket (non-blocking), or -errno. */
int km_mc_connect(const union km_addr *sa, const struct timespec *deadline);
/* All n bytes of d sent before deadline: 0, or -errno (-ETIMEDOUT). */
int km_mc_send(int fd, const void *d, size_t n,
	       const struct timespec *deadline);
/*
 * Read into buf (cap bytes, *len of them already read) until it starts
 * with one complete reply of kind (km_reply_len, mcproto.h), before
 * deadline.  Returns that reply's length, *len the bytes in buf (what
 * follows the reply: the next one's start); or -ETIMEDOUT, -ECONNRESET
 * (the peer closed), -EPROTO (not a reply), -EMSGSIZE (over cap), -errno.
 */
long km_mc_read(int fd, char *buf, size_t cap, size_t *len,
		enum km_reply_kind kind, const struct timespec *deadline);

#endif /* KM_MCCLIENT_H */
