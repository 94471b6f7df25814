// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Pooled backend connections.  Each worker keeps its own -i connections
 * to each backend, so no lock is taken on the data path.  Requests are
 * pipelined: an operation's bytes are appended to the connection's output
 * buffer (flushed once per epoll round) and the operation to its FIFO;
 * memcached answers in order, so each complete reply belongs to the FIFO's
 * head.  A timeout or a lost connection fails every queued operation (the
 * replies that might still come could no longer be matched) and counts as
 * a passive health failure.  An operation that fails while it is being
 * submitted is completed by the worker loop (km_backend_complete_failed),
 * never inside km_backend_submit: the engine that is still sending would
 * be re-entered (a read asking its next replica from inside the submit to
 * the one before).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "backend.h"
#include "daemon.h"
#include "health.h"
#include "log.h"

#define KM_RECONNECT_MS 100

/* engine.c's km_op_complete (km_backend_set_done) */
static km_op_done_fn km_op_done;

void km_backend_set_done(km_op_done_fn fn)
{
	km_op_done = fn;
}

static struct km_bconn *km_bconn_get(struct km_worker *w, __u8 be,
				     unsigned int pool_idx)
{
	unsigned int pool = km_d.cfg.pool_size, i = pool_idx % pool;
	struct km_bconn *bc;

	if (!w->bc[be]) {
		w->bc[be] = calloc(pool, sizeof(*w->bc[be]));
		if (!w->bc[be])
			return NULL;
	}
	if (!w->bc[be][i]) {
		bc = calloc(1, sizeof(*bc));
		if (!bc)
			return NULL;
		bc->ev.kind = KM_EV_BACKEND;
		bc->ev.fd = -1;
		bc->w = w;
		bc->be = be;
		w->bc[be][i] = bc;
	}
	return w->bc[be][i];
}

static void km_bconn_close(struct km_worker *w, struct km_bconn *bc)
{
	if (bc->ev.fd >= 0) {
		epoll_ctl(w->epfd, EPOLL_CTL_DEL, bc->ev.fd, NULL);
		close(bc->ev.fd);
	}
	bc->ev.fd = -1;
	bc->connecting = 0;
	bc->out.off = bc->out.len = 0;
	bc->in.off = bc->in.len = 0;
}

enum {
	KM_BF_TIMEOUT = 1, /* counted as a timeout */
	KM_BF_BUSY = 2,	   /* the backend was sending: not a health failure */
	KM_BF_LATER = 4,   /* inside km_backend_submit: completed by the loop */
};

/* Append op to a queue linked by next (a connection's, the failed ones) */
static void km_op_append(struct km_op **head, struct km_op **tail,
			 struct km_op *op)
{
	op->next = NULL;
	if (*tail)
		(*tail)->next = op;
	else
		*head = op;
	*tail = op;
}

void km_backend_fail_later(struct km_worker *w, struct km_op *op)
{
	km_op_append(&w->failed_head, &w->failed_tail, op);
}

void km_backend_complete_failed(struct km_worker *w)
{
	struct km_op *op;

	/* a completion may submit again, and that may fail: in order */
	while ((op = w->failed_head)) {
		w->failed_head = op->next;
		if (!w->failed_head)
			w->failed_tail = NULL;
		op->next = NULL;
		km_op_done(w, op, NULL, 0);
	}
}

/* Fail every queued operation; the callers fall back or give up. */
static void km_bconn_fail(struct km_worker *w, struct km_bconn *bc,
			  const char *why, int how)
{
	struct km_op *op;

	if (bc->ev.fd >= 0 || bc->nops)
		km_debug("backend %s: %s, %u requests failed\n",
			 km_d.be[bc->be].name, why, bc->nops);
	/*
	 * Reset, not FIN: a write we now count as missed must not reach the
	 * backend later (retransmitted after a partition heals, or read
	 * from its socket when a paused memcached resumes), after its replay
	 * or a newer write.  A reset drops both queues.
	 */
	if (bc->ev.fd >= 0 && bc->nops) {
		struct linger lg = {.l_onoff = 1, .l_linger = 0};

		if (setsockopt(bc->ev.fd, SOL_SOCKET, SO_LINGER, &lg,
			       sizeof(lg)))
			km_debug("backend %s: SO_LINGER: %s\n",
				 km_d.be[bc->be].name, strerror(errno));
	}
	km_bconn_close(w, bc);
	bc->retry_at = w->now + KM_RECONNECT_MS;
	if (how & KM_BF_TIMEOUT) {
		KM_INC(km_d.be[bc->be].c.timeouts);
		KM_INC(km_d.c.backend_timeouts);
	} else {
		KM_INC(km_d.be[bc->be].c.conn_errors);
	}
	if (!(how & KM_BF_BUSY))
		km_health_passive_failure(bc->be, why);
	while ((op = bc->head)) {
		bc->head = op->next;
		bc->nops--;
		KM_DEC(km_d.be[bc->be].c.inflight);
		op->next = NULL;
		if (how & KM_BF_LATER)
			km_backend_fail_later(w, op);
		else
			km_op_done(w, op, NULL, 0);
	}
	bc->tail = NULL;
	bc->nops = 0;
}

static int km_bconn_connect(struct km_worker *w, struct km_bconn *bc)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET,
				 .data.ptr = &bc->ev};
	union km_addr sa;
	unsigned int gen;
	int fd, one = 1;

	/* a reload may fill the slot again meanwhile (km_backend_add) */
	pthread_mutex_lock(&km_d.lock);
	sa = km_d.be[bc->be].addr;
	gen = km_backend_gen(bc->be);
	pthread_mutex_unlock(&km_d.lock);
	fd = socket(sa.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, &sa.sa, km_addr_len(&sa)) && errno != EINPROGRESS) {
		int err = -errno;

		close(fd);
		return err;
	}
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev)) {
		int err = -errno;

		close(fd);
		return err;
	}
	bc->ev.fd = fd;
	bc->connecting = 1;
	bc->gen = gen;
	bc->last_rx = w->now;
	return 0;
}

static void km_bconn_mark_dirty(struct km_worker *w, struct km_bconn *bc)
{
	if (bc->dirty)
		return;
	bc->dirty = 1;
	bc->dirty_next = w->dirty_b;
	w->dirty_b = bc;
}

int km_backend_submit(struct km_worker *w, struct km_op *op,
		      unsigned int pool_idx, const void *d1, size_t n1,
		      const void *d2, size_t n2)
{
	struct km_bconn *bc = km_bconn_get(w, op->be, pool_idx);
	int err;

	if (!bc)
		goto fail;
	if (bc->ev.fd >= 0 && bc->gen != km_backend_gen(op->be))
		km_bconn_fail(w, bc, "backend replaced", KM_BF_LATER);
	if (bc->ev.fd < 0) {
		if (w->now < bc->retry_at)
			goto fail;
		err = km_bconn_connect(w, bc);
		if (err) {
			km_bconn_fail(w, bc, "connect failed", KM_BF_LATER);
			goto fail;
		}
	}
	/* a quiet meta command may have no reply: "mn" always has one */
	if (km_buf_append(&bc->out, d1, n1) ||
	    (n2 && km_buf_append(&bc->out, d2, n2)) ||
	    (op->kind == KM_RK_QUIET && km_buf_append(&bc->out, "mn\r\n", 4)))
		goto fail;
	op->deadline = w->now + KM_LIVE(timeout_ms);
	km_op_append(&bc->head, &bc->tail, op);
	bc->nops++;
	KM_INC(km_d.be[op->be].c.inflight);
	KM_INC(km_d.be[op->be].c.requests);
	km_bconn_mark_dirty(w, bc);
	return 0;
fail:
	/* the caller sees the failure through the op, as for a timeout,
	 * once its dispatch is over */
	km_backend_fail_later(w, op);
	return -1;
}

void km_backend_flush(struct km_worker *w, struct km_bconn *bc)
{
	ssize_t n;

	bc->dirty = 0;
	if (bc->ev.fd < 0 || bc->connecting)
		return;
	while (km_buf_used(&bc->out)) {
		n = send(bc->ev.fd, km_buf_data(&bc->out),
			 km_buf_used(&bc->out), MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return; /* EPOLLOUT (edge) calls us again */
			if (errno == EINTR)
				continue;
			km_bconn_fail(w, bc, "send failed", 0);
			return;
		}
		km_buf_consume(&bc->out, n);
	}
	km_buf_shrink(&bc->out);
}

static void km_bconn_read(struct km_worker *w, struct km_bconn *bc)
{
	for (;;) {
		size_t space;
		int short_read, err;
		ssize_t n;
		long len;

		if (km_buf_reserve(&bc->in, 16384)) {
			km_bconn_fail(w, bc, "out of memory", 0);
			return;
		}
		space = bc->in.cap - bc->in.len;
		n = recv(bc->ev.fd, bc->in.p + bc->in.len, space, 0);
		if (n == 0) {
			km_bconn_fail(w, bc, "connection closed", 0);
			return;
		}
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EINTR)
				continue;
			km_bconn_fail(w, bc, "recv failed", 0);
			return;
		}
		bc->in.len += n;
		bc->last_rx = w->now;
		short_read = (size_t)n < space;
		while (bc->head && km_buf_used(&bc->in)) {
			struct km_op *op = bc->head;

			len = km_reply_len(km_buf_data(&bc->in),
					   km_buf_used(&bc->in), op->kind);
			if (len == 0)
				break;
			if (len < 0) {
				KM_INC(km_d.be[bc->be].c.errors);
				km_bconn_fail(w, bc, "garbled reply", 0);
				return;
			}
			bc->head = op->next;
			if (!bc->head)
				bc->tail = NULL;
			bc->nops--;
			KM_DEC(km_d.be[bc->be].c.inflight);
			op->next = NULL;
			err = km_op_done(w, op, km_buf_data(&bc->in), len);
			km_buf_consume(&bc->in, len);
			if (err) {
				/* not this op's reply: none after it can be
				 * trusted to be its op's either */
				KM_INC(km_d.be[bc->be].c.errors);
				km_bconn_fail(w, bc, "reply out of step", 0);
				return;
			}
		}
		if (!bc->head && km_buf_used(&bc->in)) {
			KM_INC(km_d.be[bc->be].c.errors);
			km_bconn_fail(w, bc, "unexpected data", 0);
			return;
		}
		if (bc->ev.fd < 0)
			return;
		/* a big reply grew it: not kept at that size */
		if (!km_buf_used(&bc->in))
			km_buf_shrink(&bc->in);
		/* a short read emptied the socket; edge-triggered epoll
		 * reports the next data: no recv just to see EAGAIN */
		if (short_read)
			return;
	}
}

void km_backend_event(struct km_worker *w, struct km_bconn *bc, uint32_t events)
{
	if (bc->connecting && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
		int err = 0;
		socklen_t sl = sizeof(err);

		getsockopt(bc->ev.fd, SOL_SOCKET, SO_ERROR, &err, &sl);
		if (err) {
			km_bconn_fail(w, bc, "connect failed", 0);
			return;
		}
		bc->connecting = 0;
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		km_bconn_read(w, bc);
	if (bc->ev.fd >= 0 && (events & EPOLLOUT) && km_buf_used(&bc->out))
		km_bconn_mark_dirty(w, bc);
}

/*
 * The oldest request timed out.  Its reply may be in the socket, unread
 * while this worker was busy; and a backend that sent bytes within the
 * timeout is answering, only behind a long queue (another client's
 * pipeline of big values on this pooled connection): its requests still
 * fail over, but that is not a health failure, or a client could take
 * healthy backends down.
 */
static void km_bconn_timeout(struct km_worker *w, struct km_bconn *bc)
{
	if (bc->ev.fd >= 0 && !bc->connecting)
		km_bconn_read(w, bc);
	if (!bc->head || bc->head->deadline > w->now)
		return;
	if (w->now - bc->last_rx < (uint64_t)KM_LIVE(timeout_ms))
		km_bconn_fail(w, bc, "timeout while sending",
			      KM_BF_TIMEOUT | KM_BF_BUSY);
	else
		km_bconn_fail(w, bc, "timeout", KM_BF_TIMEOUT);
}

typedef int (*km_bconn_fn)(struct km_worker *w, struct km_bconn *bc);

/* fn on each of w's connections to backend id: its first non-zero return */
static int km_bconn_each_of(struct km_worker *w, unsigned int id,
			    km_bconn_fn fn)
{
	unsigned int i;
	int ret;

	for (i = 0; w->bc[id] && i < (unsigned int)km_d.cfg.pool_size; i++) {
		if (!w->bc[id][i])
			continue;
		ret = fn(w, w->bc[id][i]);
		if (ret)
			return ret;
	}
	return 0;
}

/* ... and on each of its connections to any backend */
static int km_bconn_each(struct km_worker *w, km_bconn_fn fn)
{
	unsigned int id;
	int ret = 0;

	for (id = 1; !ret && id < KM_MAX_BACKENDS; id++)
		ret = km_bconn_each_of(w, id, fn);
	return ret;
}

static int km_bconn_check_timeout(struct km_worker *w, struct km_bconn *bc)
{
	if (bc->head && bc->head->deadline <= w->now)
		km_bconn_timeout(w, bc);
	return 0;
}

void km_backend_check_timeouts(struct km_worker *w)
{
	km_bconn_each(w, km_bconn_check_timeout);
}

static int km_bconn_busy(struct km_worker *w, struct km_bconn *bc)
{
	(void)w;
	return bc->head != NULL;
}

int km_backend_pending(struct km_worker *w)
{
	return km_bconn_each(w, km_bconn_busy);
}

static int km_bconn_free(struct km_worker *w, struct km_bconn *bc)
{
	km_bconn_fail(w, bc, "shutdown", 0);
	km_buf_free(&bc->in);
	km_buf_free(&bc->out);
	free(bc);
	return 0;
}

void km_backend_close_all(struct km_worker *w)
{
	unsigned int id;

	/* one backend at a time: an op failed over finds no freed pool */
	for (id = 1; id < KM_MAX_BACKENDS; id++) {
		km_bconn_each_of(w, id, km_bconn_free);
		free(w->bc[id]);
		w->bc[id] = NULL;
	}
}
