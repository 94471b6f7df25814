// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* A blocking memcached client with a deadline (mcclient.h). */
#include <errno.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "config.h"
#include "mcclient.h"

void km_deadline_in(struct timespec *deadline, int ms)
{
	clock_gettime(CLOCK_MONOTONIC, deadline);
	deadline->tv_sec += ms / 1000;
	deadline->tv_nsec += (ms % 1000) * 1000000L;
	if (deadline->tv_nsec >= 1000000000L) {
		deadline->tv_sec++;
		deadline->tv_nsec -= 1000000000L;
	}
}

long long km_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

long km_ms_left(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (deadline->tv_sec - now.tv_sec) * 1000 +
	       (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

int km_mc_wait(int fd, short events, const struct timespec *deadline)
{
	struct pollfd p = {.fd = fd, .events = events};
	long left = km_ms_left(deadline);
	int n;

	if (left <= 0)
		return -ETIMEDOUT;
	n = poll(&p, 1, left);
	if (n < 0)
		return -errno;
	return n == 0 ? -ETIMEDOUT : 0;
}

int km_mc_connect(const union km_addr *sa, const struct timespec *deadline)
{
	int fd, err = 0, one = 1;
	socklen_t sl = sizeof(err);

	fd = socket(sa->sa.sa_family,
		    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, &sa->sa, km_addr_len(sa)) && errno != EINPROGRESS) {
		err = -errno;
		goto fail;
	}
	err = km_mc_wait(fd, POLLOUT, deadline);
	if (err)
		goto fail;
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl);
	if (err) {
		err = -err;
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return err;
}

int km_mc_send(int fd, const void *d, size_t n, const struct timespec *deadline)
{
	const char *p = d;
	ssize_t r;
	int err;

	while (n) {
		r = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (r > 0) {
			p += r;
			n -= r;
			continue;
		}
		if (r < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		err = km_mc_wait(fd, POLLOUT, deadline);
		if (err)
			return err;
	}
	return 0;
}

long km_mc_read(int fd, char *buf, size_t cap, size_t *len,
		enum km_reply_kind kind, const struct timespec *deadline)
{
	long done;
	ssize_t r;
	int err;

	for (;;) {
		done = *len ? km_reply_len(buf, *len, kind) : 0;
		if (done)
			return done < 0 ? -EPROTO : done;
		if (*len >= cap)
			return -EMSGSIZE;
		err = km_mc_wait(fd, POLLIN, deadline);
		if (err)
			return err;
		r = recv(fd, buf + *len, cap - *len, MSG_DONTWAIT);
		if (r == 0)
			return -ECONNRESET;
		if (r < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if (r > 0)
			*len += r;
	}
}
