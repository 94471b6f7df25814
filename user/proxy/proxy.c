// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Workers and client connections.  Each worker owns an epoll instance, its
 * own SO_REUSEPORT TCP and UDP sockets on the service port (the kernel
 * spreads clients over workers: no accept lock, no hand-off), its backend
 * connections and free lists.  One round: epoll_wait, read and parse
 * what arrived, dispatch, then flush every dirtied socket once (replies
 * to clients, pipelined requests to backends).
 *
 * A UDP datagram becomes a pseudo-connection that is fed the payload,
 * runs through the same parser and engine, and is sent back in 1400-byte
 * datagrams (memcached's frame header in front of each) once every
 * request it carried is answered.
 */
#include <errno.h>
#include <ifaddrs.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/time.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <limits.h>
#include <malloc.h>

#include "backend.h"
#include "conn.h"
#include "daemon.h"
#include "engine.h"
#include "log.h"
#include "mcclient.h"
#include "proxy.h"
#include "window.h"

#define KM_MAX_PIPELINE 1024	   /* queued requests per connection */
#define KM_OUT_HIGH	(4 << 20)  /* UDP: stop parsing above this output */
#define KM_IDLE_BUF	(64 << 10) /* larger buffers are freed once empty */
#define KM_GET_LINE_MAX (64 << 20) /* memcached: unbounded */
#define KM_UDP_MAX	1400	   /* memcached's UDP_MAX_PAYLOAD_SIZE */
#define KM_UDP_HDR	8
#define KM_UDP_BUF	65536

static struct km_worker *km_workers;
static unsigned int km_nworkers;
static int km_unix_fd = -1;

/* UDP clients the daemon answers: --allow, or km_allow_default's. */
static struct km_cfg_allow km_udp_allow[KM_MAX_ALLOW];
static unsigned int km_nudp_allow;

/* TCP clients in the order of their last activity, for --idle-timeout. */
static void km_lru_unlink(struct km_worker *w, struct km_conn *c)
{
	if (c->lru_prev)
		c->lru_prev->lru_next = c->lru_next;
	else if (w->lru_head == c)
		w->lru_head = c->lru_next;
	if (c->lru_next)
		c->lru_next->lru_prev = c->lru_prev;
	else if (w->lru_tail == c)
		w->lru_tail = c->lru_prev;
	c->lru_prev = c->lru_next = NULL;
}

static void km_lru_touch(struct km_worker *w, struct km_conn *c)
{
	c->active = w->now;
	if (w->lru_tail == c)
		return;
	km_lru_unlink(w, c);
	c->lru_prev = w->lru_tail;
	if (w->lru_tail)
		w->lru_tail->lru_next = c;
	else
		w->lru_head = c;
	w->lru_tail = c;
}

static void km_conn_process(struct km_worker *w, struct km_conn *c);

static void km_udp_unit_end(struct km_conn *c, size_t end)
{
	if (c->nunits == c->ucap) {
		unsigned int cap = c->ucap ? c->ucap * 2 : 8;
		size_t *p = realloc(c->units, cap * sizeof(*p));

		if (!p)
			return; /* merged into the next unit: still delivered */
		c->units = p;
		c->ucap = cap;
	}
	c->units[c->nunits++] = end;
}

/*
 * memcached frames each of its response objects as its own datagram
 * sequence (seq from 0): one a command, but one a key for get-like
 * commands, with END tagged onto the last key's object if it was a hit.
 */
static void km_udp_units(struct km_conn *c, const struct km_req *r)
{
	size_t end = km_buf_used(&c->out);
	size_t start = end - km_buf_used(&r->resp), off = start;
	struct km_value v;
	long n;

	if (start == end)
		return;
	if (r->type != KM_RT_READ && r->type != KM_RT_GAT) {
		km_udp_unit_end(c, end);
		return;
	}
	while ((n = km_parse_value(km_buf_data(&c->out) + off, end - off, &v)) >
	       0) {
		off += n;
		km_udp_unit_end(c, off);
	}
	if (off > start && r->nkeys && r->keys[r->nkeys - 1].hit_rank >= 0)
		c->nunits--; /* END joins the last hit */
	km_udp_unit_end(c, end);
}

/* Move the answered requests at the head of the queue to the output. */
static void km_conn_collect(struct km_worker *w, struct km_conn *c)
{
	struct km_req *r;

	while ((r = c->head)) {
		if (!r->answered) {
			if (c->udp)
				break;
			/* a long get goes out key by key, in key order */
			if (km_read_stream(w, r, &c->out,
					   km_buf_used(&c->out) <
						   KM_LIVE(conn_buffer)))
				c->closing = 1;
			if (!r->answered)
				break;
		}
		c->head = r->next;
		if (!c->head)
			c->tail = NULL;
		c->nreq--;
		if (!c->dead && km_buf_used(&r->resp) &&
		    km_buf_append(&c->out, km_buf_data(&r->resp),
				  km_buf_used(&r->resp)))
			c->closing = 1;
		if (c->udp && !c->dead)
			km_udp_units(c, r);
		if (r->close_after)
			c->closing = 1;
		if (r->stats && !c->dead) {
			km_stats_build(&c->out, r->stats == 2,
				       r->type == KM_RT_STATS ? &r->res : NULL);
			if (c->udp)
				km_udp_unit_end(c, km_buf_used(&c->out));
		}
		r->next = NULL;
		km_req_detach(w, r);
	}
}

static void km_conn_read(struct km_worker *w, struct km_conn *c);

/*
 * Input was left unparsed (too many requests queued, too much output
 * waiting, or a write held behind open requests): once that is over,
 * parse it, then read the socket, which edge-triggered epoll will not
 * report again.
 */
static void km_conn_resume(struct km_worker *w, struct km_conn *c)
{
	/* the client read enough for a long get's next keys */
	if (!c->udp && c->head && km_read_wants_more(c->head) &&
	    km_buf_used(&c->out) < KM_LIVE(conn_buffer))
		km_conn_mark_dirty(w, c);
	if (!c->paused || c->nreq >= KM_MAX_PIPELINE / 2 || c->closing ||
	    c->dead || (c->held && (c->nopen || c->nseq)) ||
	    (c->udp ? km_buf_used(&c->out) > KM_OUT_HIGH / 2
		    : km_conn_claim(c) > KM_LIVE(conn_buffer) / 2 ||
			      !km_conn_has_room(c)))
		return;
	c->paused = c->held = 0;
	km_conn_process(w, c);
	if (!c->udp && !c->paused && !c->dead && !c->closing && !c->rd_shut)
		km_conn_read(w, c);
}

/* The client shut its side and everything it sent is answered. */
static int km_conn_spent(const struct km_conn *c)
{
	return c->rd_shut && !c->nreq && !c->paused && !km_buf_used(&c->out);
}

static void km_conn_free(struct km_worker *w, struct km_conn *c)
{
	struct km_req *r, *next;

	for (r = c->head; r; r = next) {
		next = r->next;
		r->next = NULL;
		km_req_detach(w, r);
	}
	km_conn_account(c); /* dead: its part goes */
	if (c->udp && w->nfree_udp < 256 && c->in.cap <= 65536 &&
	    c->out.cap <= 65536) {
		c->dirty_next = w->free_udp;
		w->free_udp = c;
		w->nfree_udp++;
		return;
	}
	km_buf_free(&c->in);
	km_buf_free(&c->out);
	free(c->units);
	free(c);
}

static void km_conn_close(struct km_worker *w, struct km_conn *c)
{
	if (c->dead)
		return;
	c->dead = 1;
	if (c->ev.fd >= 0) {
		epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->ev.fd, NULL);
		close(c->ev.fd);
		c->ev.fd = -1;
	}
	if (c->counted)
		KM_DEC(km_d.c.curr_connections);
	c->counted = 0;
	if (!c->udp)
		km_lru_unlink(w, c);
	km_conn_mark_dirty(w, c); /* freed at the end of the round */
}

/* memcached's UDP replies: 8-byte header, then at most 1392 bytes. */
static void km_udp_send_unit(struct km_conn *c, size_t off, size_t end)
{
	const size_t chunk = KM_UDP_MAX - KM_UDP_HDR;
	unsigned int total = (end - off + chunk - 1) / chunk, seq;
	char pkt[KM_UDP_MAX];

	for (seq = 0; seq < total; seq++) {
		size_t n = end - off < chunk ? end - off : chunk;
		uint16_t h[4] = {htons(c->rid), htons(seq), htons(total), 0};

		memcpy(pkt, h, KM_UDP_HDR);
		memcpy(pkt + KM_UDP_HDR, km_buf_data(&c->out) + off, n);
		if (sendto(c->udp_fd, pkt, n + KM_UDP_HDR, MSG_DONTWAIT,
			   (struct sockaddr *)&c->peer, c->peerlen) < 0)
			km_debug("udp reply: %s\n", strerror(errno));
		else
			KM_ADD(km_d.c.bytes_written, n + KM_UDP_HDR);
		off += n;
	}
}

/*
 * Reflection: a spoofed source gets no more than what it asked for, each
 * reply object (one key's VALUE, one command's answer) at most the
 * datagrams of one item of --item-size-max.  Counted per object, so a
 * multi-get of many large items is refused nothing either.
 */
static int km_udp_capped(const struct km_conn *c)
{
	const size_t chunk = KM_UDP_MAX - KM_UDP_HDR;
	/* udp_reply_max is fixed at start; item_size_max reloads */
	size_t max = km_udp_reply_max(km_d.cfg.udp_reply_max,
				      KM_LIVE(item_size_max));
	size_t off = 0, n;
	size_t len = km_buf_used(&c->out);
	unsigned int i;

	if (!max)
		return 0;
	for (i = 0; i <= c->nunits; i++) {
		n = (i < c->nunits ? c->units[i] : len) - off;
		if ((n + chunk - 1) / chunk > max)
			return 1;
		off += n;
	}
	return 0;
}

static void km_udp_send(struct km_conn *c)
{
	size_t off = 0, len = km_buf_used(&c->out);
	unsigned int i;

	if (km_udp_capped(c)) {
		KM_INC(km_d.c.udp_capped);
		len = 0;
		c->nunits = 0;
	}
	for (i = 0; i < c->nunits; i++) {
		if (c->units[i] > off)
			km_udp_send_unit(c, off, c->units[i]);
		off = c->units[i];
	}
	if (len > off)
		km_udp_send_unit(c, off, len);
	c->out.off = c->out.len = 0;
	c->nunits = 0;
}

static int km_conn_flush(struct km_conn *c)
{
	while (km_buf_used(&c->out)) {
		ssize_t n = send(c->ev.fd, km_buf_data(&c->out),
				 km_buf_used(&c->out), MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0; /* EPOLLOUT (edge) brings us back */
			return -1;
		}
		KM_ADD(km_d.c.bytes_written, n);
		km_buf_consume(&c->out, n);
		km_lru_touch(c->w, c);
	}
	/* a big reply grew it: do not keep it for an idle client */
	if (c->out.cap > KM_IDLE_BUF)
		km_buf_free(&c->out);
	return 0;
}

static void km_worker_flush(struct km_worker *w)
{
	struct km_bconn *bc;
	struct km_conn *c;

	/* answering may dirty more: loop until quiet */
	while (w->dirty_c || w->dirty_b || w->failed_head) {
		/* sending more (a read's next window) may have failed */
		km_backend_complete_failed(w);
		while ((c = w->dirty_c)) {
			w->dirty_c = c->dirty_next;
			c->dirty = 0;
			if (!c->dead)
				km_conn_collect(w, c);
			if (c->dead) {
				if (!c->dirty)
					km_conn_free(w, c);
				continue;
			}
			if (c->udp) {
				/* the rest of its requests, if held */
				km_conn_resume(w, c);
				if (c->nreq == 0 && !c->paused) {
					km_udp_send(c);
					c->dead = 1;
					km_conn_free(w, c);
				}
				continue;
			}
			if (km_conn_flush(c)) {
				km_conn_close(w, c);
				continue;
			}
			if (c->closing && !km_buf_used(&c->out)) {
				km_conn_close(w, c);
				continue;
			}
			km_conn_resume(w, c);
			if (km_conn_spent(c))
				km_conn_close(w, c);
			km_conn_account(c);
		}
		while ((bc = w->dirty_b)) {
			w->dirty_b = bc->dirty_next;
			km_backend_flush(w, bc);
		}
	}
}

/*
 * memcached's binary protocol (a connection whose first byte is 0x80):
 * not spoken here.  Rather than wait for a newline that never comes (what
 * memcached -B ascii does), answer each request with the binary error a
 * client library reports, "Not supported" (0x83), its opcode and opaque
 * echoed, and skip its body.  0: answered, 1: need more bytes.
 */
#define KM_BIN_HDR 24

static int km_conn_binary(struct km_worker *w, struct km_conn *c)
{
	static const char msg[] = "Not supported: kmagentd speaks memcached's "
				  "text protocol";
	const unsigned char *h = (const void *)km_buf_data(&c->in);
	unsigned char pkt[KM_BIN_HDR + sizeof(msg) - 1] = {0x81};
	uint32_t body, n = htonl(sizeof(msg) - 1);
	int close_after;

	if (km_buf_used(&c->in) < KM_BIN_HDR)
		return 1;
	memcpy(&body, h + 8, 4);
	body = ntohl(body);
	/* not a request (memcached closes too), or a body nobody sends */
	close_after = h[0] != 0x80 || body > KM_LIVE(item_size_max) + 4096;
	pkt[1] = h[1];		     /* opcode */
	pkt[7] = 0x83;		     /* status: not supported */
	memcpy(pkt + 8, &n, 4);	     /* total body */
	memcpy(pkt + 12, h + 12, 4); /* opaque */
	memcpy(pkt + KM_BIN_HDR, msg, sizeof(msg) - 1);
	KM_INC(km_d.c.protocol_errors);
	km_reply_local(w, c, (const char *)pkt, sizeof(pkt), close_after);
	km_buf_consume(&c->in, KM_BIN_HDR);
	if (close_after)
		c->eof = 1;
	else
		c->swallow = body;
	return 0;
}

/* Parse and dispatch what c has buffered. */
static void km_conn_process(struct km_worker *w, struct km_conn *c)
{
	const size_t item_max = KM_LIVE(item_size_max);

	/* draining (SIGTERM): what was parsed is answered, nothing more */
	while (!c->closing && !c->dead && !c->eof && !km_d.draining) {
		size_t avail = km_buf_used(&c->in), total;
		const char *p = km_buf_data(&c->in);
		struct km_request r;
		enum km_parse_res res;

		if (c->swallow) {
			size_t n = avail < c->swallow ? avail : c->swallow;

			km_buf_consume(&c->in, n);
			c->swallow -= n;
			if (c->swallow)
				break;
			continue;
		}
		if (!avail)
			break;
		if (!c->proto) /* memcached decides on the first byte too */
			c->proto = (unsigned char)p[0] == 0x80 ? KM_PROTO_BINARY
							       : KM_PROTO_TEXT;
		if (c->proto == KM_PROTO_BINARY) {
			if (km_conn_binary(w, c))
				break;
			continue;
		}
		if (c->nreq >= KM_MAX_PIPELINE ||
		    (c->udp ? km_buf_used(&c->out) > KM_OUT_HIGH
			    : !km_conn_has_room(c))) {
			c->paused = 1;
			break;
		}
		/* a long multiget arrives in many reads: look for its end
		 * in the new bytes only, not from the start every time */
		if (c->scanned && avail > c->scanned &&
		    !memchr(p + c->scanned, '\n', avail - c->scanned)) {
			c->scanned = avail;
			if (avail > KM_GET_LINE_MAX)
				km_conn_close(w, c);
			break;
		}
		res = km_parse_request(p, avail, &r);
		c->scanned =
			res == KM_P_MORE && avail > KM_LINE_MAX ? avail : 0;
		if (res == KM_P_MORE) {
			/* an unterminated multiget may be long, not endless */
			if (avail > KM_GET_LINE_MAX)
				km_conn_close(w, c);
			break;
		}
		if (res == KM_P_CLOSE) {
			/* as memcached: no reply; the ones before still go */
			c->eof = 1;
			km_reply_local(w, c, "", 0, 1);
			return;
		}
		if (res == KM_P_REPLY) {
			KM_INC(km_d.c.protocol_errors);
			if (!r.noreply) {
				char msg[128];
				int n = snprintf(msg, sizeof(msg), "%s\r\n",
						 r.reply);

				km_reply_local(w, c, msg, n, 0);
			}
			km_buf_consume(&c->in, r.consumed);
			continue;
		}
		if (km_dispatch_must_wait(c, &r)) {
			/* parsed again once the open requests are done */
			c->paused = c->held = 1;
			break;
		}
		if (r.vlen < 0) {
			km_dispatch(w, c, &r, NULL, 0);
			km_buf_consume(&c->in, r.consumed);
			if (r.cmd == KM_CMD_QUIT)
				c->eof = 1; /* nothing after it is read */
			continue;
		}
		total = r.consumed + r.vlen + 2;
		if ((size_t)r.vlen + 2 > item_max) {
			km_dispatch_too_large(w, c, &r);
			if (avail >= total) {
				km_buf_consume(&c->in, total);
			} else {
				c->swallow = total - avail;
				km_buf_consume(&c->in, avail);
			}
			continue;
		}
		if (avail < total) {
			if (km_buf_reserve(&c->in, total - avail))
				km_conn_close(w, c);
			break;
		}
		/* ms: memcached checks its flags first (and swallows the
		 * block on an error), the block's end after: its call */
		if (r.cmd != KM_CMD_MS &&
		    memcmp(p + r.consumed + r.vlen, "\r\n", 2)) {
			static const char msg[] =
				"CLIENT_ERROR bad data chunk\r\n";

			KM_INC(km_d.c.protocol_errors);
			if (!r.noreply)
				km_reply_local(w, c, msg, sizeof(msg) - 1, 0);
			km_buf_consume(&c->in, total);
			continue;
		}
		km_dispatch(w, c, &r, p + r.consumed, r.vlen + 2);
		km_buf_consume(&c->in, total);
	}
}

static void km_conn_read(struct km_worker *w, struct km_conn *c)
{
	for (;;) {
		ssize_t n;

		if (km_buf_reserve(&c->in, 16384)) {
			km_conn_close(w, c);
			return;
		}
		n = recv(c->ev.fd, c->in.p + c->in.len, c->in.cap - c->in.len,
			 0);
		if (n == 0) {
			/* as memcached: what came before the FIN is answered,
			 * then the connection closes (km_conn_spent) */
			c->rd_shut = 1;
			km_conn_mark_dirty(w, c);
			return;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				km_conn_close(w, c);
			return;
		}
		c->in.len += n;
		KM_ADD(km_d.c.bytes_read, n);
		km_lru_touch(w, c);
		km_conn_process(w, c);
		if (c->dead || c->closing)
			return;
		if (!km_buf_used(&c->in) && c->in.cap > KM_IDLE_BUF)
			km_buf_free(&c->in);
		/* after a FIN (EPOLLRDHUP), read on to see it: edge-triggered
		 * epoll reports no more */
		if ((size_t)n < 16384 && !c->paused && !c->rdhup)
			return;
		if (c->paused)
			return; /* resumed by km_conn_resume */
	}
}

static void km_accept(struct km_worker *w, int lfd, int is_unix)
{
	for (;;) {
		struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT |
						   EPOLLRDHUP | EPOLLET};
		struct km_conn *c;
		int fd, one = 1;

		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    !km_d.draining)
				km_warn("accept: %s\n", strerror(errno));
			return;
		}
		if (KM_LOAD(km_d.c.curr_connections) >=
		    (uint64_t)KM_LIVE(max_conns)) {
			static const char msg[] =
				"ERROR Too many open connections\r\n";

			KM_INC(km_d.c.rejected_connections);
			if (send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL) < 0)
				km_debug("reject: %s\n", strerror(errno));
			close(fd);
			continue;
		}
		if (!is_unix)
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
				   sizeof(one));
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->ev.kind = KM_EV_CLIENT;
		c->ev.fd = fd;
		c->w = w;
		c->pool_idx = fd;
		c->est = km_window_est_initial(KM_LIVE(item_size_max));
		ev.data.ptr = &c->ev;
		if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev)) {
			close(fd);
			free(c);
			continue;
		}
		c->counted = 1;
		km_lru_touch(w, c);
		KM_INC(km_d.c.curr_connections);
		KM_INC(km_d.c.total_connections);
	}
}

/* memcached answers anyone: a reflector.  kmagentd only its clients. */
static int km_udp_allowed(const struct sockaddr_storage *peer)
{
	return km_allow_match(km_udp_allow, km_nudp_allow,
			      (const struct sockaddr *)peer);
}

static int km_iface_listed(const struct km_cfg *cfg, const char *name)
{
	unsigned int k;

	for (k = 0; k < cfg->nr_ifaces; k++)
		if (!strcmp(cfg->ifaces[k], name))
			return 1;
	return 0;
}

/* Is local address a one the daemon's sockets serve (-l)? */
static int km_listen_serves(const struct km_cfg *cfg, const struct sockaddr *a)
{
	const union km_addr *l = &cfg->listen_addr;

	if (km_addr_is_any(l))
		/* 0.0.0.0 serves IPv4, :: both (dual-stack) */
		return a->sa_family == AF_INET || l->sa.sa_family == AF_INET6;
	if (a->sa_family != l->sa.sa_family)
		return 0;
	if (a->sa_family == AF_INET)
		return ((const struct sockaddr_in *)(const void *)a)
			       ->sin_addr.s_addr == l->in.sin_addr.s_addr;
	return !memcmp(
		&((const struct sockaddr_in6 *)(const void *)a)->sin6_addr,
		&l->in6.sin6_addr, sizeof(l->in6.sin6_addr));
}

/* The network of interface address a (netmask m) into out. */
static void km_allow_net(const struct sockaddr *a, const struct sockaddr *m,
			 struct km_cfg_allow *out)
{
	const struct sockaddr_in6 *a6 = (const void *)a, *m6 = (const void *)m;
	unsigned int k;

	memset(out, 0, sizeof(*out));
	out->family = a->sa_family;
	if (a->sa_family == AF_INET) {
		__be32 ip = ((const struct sockaddr_in *)(const void *)a)
				    ->sin_addr.s_addr,
		       mask = ((const struct sockaddr_in *)(const void *)m)
				      ->sin_addr.s_addr;

		out->prefix = __builtin_popcount(mask);
		out->addr.s_addr = ip & mask;
		return;
	}
	for (k = 0; k < 16; k++) {
		out->addr6.s6_addr[k] =
			a6->sin6_addr.s6_addr[k] & m6->sin6_addr.s6_addr[k];
		out->prefix += __builtin_popcount(m6->sin6_addr.s6_addr[k]);
	}
}

unsigned int km_allow_default(const struct km_cfg *cfg,
			      struct km_cfg_allow *out, unsigned int max)
{
	/* an IPv4 socket meets no IPv6 client: its list stays as it was */
	int v6 = cfg->listen_addr.sa.sa_family == AF_INET6;
	struct ifaddrs *ifa, *i;
	unsigned int n = 0;

	memset(out, 0, 2 * sizeof(*out));
	out[n].family = AF_INET;
	out[n].addr.s_addr = htonl(INADDR_LOOPBACK & 0xff000000);
	out[n++].prefix = 8;
	if (v6) {
		out[n].family = AF_INET6;
		out[n].addr6 = in6addr_loopback;
		out[n++].prefix = 128;
	}
	if (getifaddrs(&ifa))
		return n;
	for (i = ifa; i && n < max; i = i->ifa_next) {
		const struct sockaddr *a = i->ifa_addr, *m = i->ifa_netmask;

		if (!a || !m || (i->ifa_flags & IFF_LOOPBACK) ||
		    (a->sa_family != AF_INET &&
		     (a->sa_family != AF_INET6 || !v6)))
			continue;
		/* the interfaces served: the one of -l (all without), -I's */
		if (!km_listen_serves(cfg, a) &&
		    !km_iface_listed(cfg, i->ifa_name))
			continue;
		km_allow_net(a, m, &out[n++]);
	}
	freeifaddrs(ifa);
	return n;
}

/* A pseudo-connection for one datagram, from the free list if any. */
static struct km_conn *km_udp_conn_get(struct km_worker *w)
{
	struct km_conn *c = w->free_udp;
	struct km_buf in, out;
	size_t *units;
	unsigned int ucap;

	if (!c)
		return calloc(1, sizeof(*c));
	w->free_udp = c->dirty_next;
	w->nfree_udp--;
	in = c->in;
	out = c->out;
	units = c->units;
	ucap = c->ucap;
	memset(c, 0, sizeof(*c));
	c->in = in;
	c->in.off = c->in.len = 0;
	c->out = out;
	c->out.off = c->out.len = 0;
	c->units = units;
	c->ucap = ucap;
	return c;
}

static void km_udp_read(struct km_worker *w)
{
	int i;

	for (i = 0; i < 64; i++) {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		struct km_conn *c;
		ssize_t n;
		uint16_t h[4];

		n = recvfrom(w->udp_ev.fd, w->udp_buf, KM_UDP_BUF, 0,
			     (struct sockaddr *)&peer, &plen);
		if (n < 0)
			return;
		if (n < KM_UDP_HDR)
			continue;
		if (!km_udp_allowed(&peer)) {
			KM_INC(km_d.c.udp_denied);
			continue;
		}
		KM_INC(km_d.c.udp_requests);
		KM_ADD(km_d.c.bytes_read, n);
		memcpy(h, w->udp_buf, KM_UDP_HDR);
		c = km_udp_conn_get(w);
		if (!c)
			continue;
		c->ev.fd = -1;
		c->udp = 1;
		c->udp_fd = w->udp_ev.fd;
		c->peer = peer;
		c->peerlen = plen;
		c->rid = ntohs(h[0]);
		c->w = w;
		c->pool_idx = c->rid;
		if (ntohs(h[1]) != 0 || ntohs(h[2]) != 1) {
			/* memcached drops multi-datagram requests silently */
		} else if (km_buf_append(&c->in, w->udp_buf + KM_UDP_HDR,
					 n - KM_UDP_HDR) == 0) {
			km_conn_process(w, c);
		}
		km_conn_mark_dirty(w, c);
	}
}

static void km_worker_inbox(struct km_worker *w)
{
	struct km_req *r, *next;
	uint64_t n;

	if (read(w->seq_ev.fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		km_warn("worker %u: inbox: %s\n", w->id, strerror(errno));
	pthread_mutex_lock(&w->seq_lock);
	r = w->seq_head;
	w->seq_head = w->seq_tail = NULL;
	pthread_mutex_unlock(&w->seq_lock);
	for (; r; r = next) {
		next = r->seq_next;
		km_seq_run(w, r);
	}
}

static void km_worker_round(struct km_worker *w, struct epoll_event *evs, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		struct km_ev *e = evs[i].data.ptr;

		switch (e->kind) {
		case KM_EV_LISTEN:
			km_accept(w, e->fd, e == &w->unix_ev);
			break;
		case KM_EV_UDP:
			km_udp_read(w);
			break;
		case KM_EV_CLIENT: {
			struct km_conn *c = (struct km_conn *)e;

			if (c->dead)
				break;
			if (evs[i].events & EPOLLRDHUP)
				c->rdhup = 1;
			/* reset after its FIN: no reply can reach it now */
			if (c->rd_shut &&
			    (evs[i].events & (EPOLLHUP | EPOLLERR))) {
				km_conn_close(w, c);
				break;
			}
			if (!c->rd_shut &&
			    (evs[i].events &
			     (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
				km_conn_read(w, c);
			if (!c->dead && (evs[i].events & EPOLLOUT) &&
			    km_buf_used(&c->out))
				km_conn_mark_dirty(w, c);
			break;
		}
		case KM_EV_BACKEND:
			km_backend_event(w, (struct km_bconn *)e,
					 evs[i].events);
			break;
		case KM_EV_SEQ:
			km_worker_inbox(w);
			break;
		}
		/* what failed while it was being sent, its dispatch over */
		km_backend_complete_failed(w);
	}
}

/*
 * --idle-timeout: a client with no byte in or out for that long is closed,
 * as memcached's -o idle_timeout does, unless it waits for backends (their
 * own timeout answers it).  One that does not read its replies counts as
 * idle too: it holds a slot and its replies for nothing.
 */
static void km_conn_idle_check(struct km_worker *w)
{
	uint64_t limit = KM_LIVE(idle_timeout) * 1000ull;
	struct km_conn *c;

	if (w->now - w->idle_check < 1000)
		return;
	w->idle_check = w->now;
	while (limit && (c = w->lru_head) && c->active + limit <= w->now) {
		if (c->head && c->head->pending) {
			km_lru_touch(w, c);
			continue;
		}
		KM_INC(km_d.c.idle_kicks);
		km_conn_close(w, c);
	}
	/* freed buffers go back to the system, not kept at their peak (one
	 * worker trims every thread's arena) */
	if (w->id == 0)
		malloc_trim(0);
}

static void *km_worker_main(void *arg)
{
	struct km_worker *w = arg;
	struct epoll_event evs[256];
	uint64_t last_check = 0;

	while (!km_d.stop) {
		int timeout = km_backend_pending(w) ? 5 : 200;
		int n = epoll_wait(w->epfd, evs, 256, timeout);

		w->now = km_now_ms();
		if (n < 0 && errno != EINTR) {
			km_err("epoll_wait: %s\n", strerror(errno));
			break;
		}
		if (n > 0)
			km_worker_round(w, evs, n);
		if (w->now - last_check >= 5) {
			km_backend_check_timeouts(w);
			last_check = w->now;
		}
		km_conn_idle_check(w);
		km_worker_flush(w);
	}
	km_backend_close_all(w);
	km_worker_flush(w);
	return NULL;
}

/* -p for TCP, -U for UDP (0: none) */
static int km_port_of(const struct km_cfg *cfg, int type)
{
	return type == SOCK_DGRAM ? km_cfg_udp_port(cfg) : cfg->port;
}

/* -l as messages print it before ":port": "0.0.0.0", "[::1]" */
static const char *km_listen_host(const struct km_cfg *cfg)
{
	static __thread char buf[KM_NAME_MAX + 2];

	if (!cfg->listen[0])
		return "0.0.0.0";
	if (cfg->listen_addr.sa.sa_family != AF_INET6 || cfg->listen[0] == '[')
		return cfg->listen;
	snprintf(buf, sizeof(buf), "[%s]", cfg->listen);
	return buf;
}

/*
 * A socket for -l's address sa (not bound yet).  "::" is dual-stack (IPv4
 * clients arrive as ::ffff:a.b.c.d) whatever net.ipv6.bindv6only says; an
 * explicit IPv6 address serves IPv6 only.
 */
static int km_listen_fd(int type, const union km_addr *sa)
{
	int fd, v6only = !km_addr_is_any(sa), err;

	fd = socket(sa->sa.sa_family, type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (sa->sa.sa_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only,
		       sizeof(v6only))) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

static int km_listen_socket(int type, const struct km_cfg *cfg)
{
	union km_addr sa = cfg->listen_addr;
	int fd, one = 1;

	sa.in.sin_port = htons(km_port_of(cfg, type)); /* = sin6_port */
	fd = km_listen_fd(type | SOCK_NONBLOCK, &sa);
	if (fd < 0)
		return fd;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (bind(fd, &sa.sa, km_addr_len(&sa)) ||
	    (type == SOCK_STREAM && listen(fd, 1024))) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

/*
 * Mode -a (umask around bind: no moment with a looser mode), owned by the
 * -u user as memcached's is: it is created before kmagentd drops root.
 */
static int km_unix_socket(const char *path, const struct km_cfg *cfg)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	uid_t uid;
	gid_t gid;
	mode_t old;
	int fd, err;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		close(fd);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	unlink(path);
	old = umask(~cfg->unix_mask & 0777);
	err = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (!err && !km_cfg_owner(cfg, &uid, &gid) &&
	    (uid != (uid_t)-1 || gid != (gid_t)-1))
		err = chown(path, uid, gid);
	if (err || listen(fd, 1024)) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

static int km_epoll_add(int epfd, struct km_ev *e)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = e};

	return epoll_ctl(epfd, EPOLL_CTL_ADD, e->fd, &ev) ? -errno : 0;
}

static int km_worker_udp(struct km_worker *w, const struct km_cfg *cfg);

static int km_worker_setup(struct km_worker *w, unsigned int id)
{
	const struct km_cfg *cfg = &km_d.cfg;
	int fd, err;

	w->id = id;
	w->listen_ev.fd = w->udp_ev.fd = w->unix_ev.fd = -1;
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (w->epfd < 0)
		return -errno;
	pthread_mutex_init(&w->seq_lock, NULL);
	w->seq_ev.kind = KM_EV_SEQ;
	w->seq_ev.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->seq_ev.fd < 0 || km_epoll_add(w->epfd, &w->seq_ev))
		return -errno;
	w->udp_buf = malloc(KM_UDP_BUF);
	if (!w->udp_buf)
		return -ENOMEM;
	fd = km_listen_socket(SOCK_STREAM, cfg);
	if (fd < 0) {
		km_err("listen on %s:%d (tcp): %s\n", km_listen_host(cfg),
		       cfg->port, strerror(-fd));
		return fd;
	}
	w->listen_ev.kind = KM_EV_LISTEN;
	w->listen_ev.fd = fd;
	if (km_epoll_add(w->epfd, &w->listen_ev))
		return -errno;
	if (km_cfg_udp_port(cfg) && (err = km_worker_udp(w, cfg)))
		return err;
	if (id == 0 && km_unix_fd >= 0) {
		w->unix_ev.kind = KM_EV_LISTEN;
		w->unix_ev.fd = km_unix_fd;
		if (km_epoll_add(w->epfd, &w->unix_ev))
			return -errno;
	}
	return 0;
}

static int km_worker_udp(struct km_worker *w, const struct km_cfg *cfg)
{
	int fd;

	fd = km_listen_socket(SOCK_DGRAM, cfg);
	if (fd < 0) {
		km_err("listen on %s:%d (udp): %s\n", km_listen_host(cfg),
		       km_cfg_udp_port(cfg), strerror(-fd));
		return fd;
	}
	w->udp_ev.kind = KM_EV_UDP;
	w->udp_ev.fd = fd;
	return km_epoll_add(w->epfd, &w->udp_ev) ? -errno : 0;
}

/*
 * The workers' sockets share the port through SO_REUSEPORT, which would
 * let a second kmagentd share it too (and take half the clients, with its
 * own view of the backends): bind it once without first.  TCP keeps
 * SO_REUSEADDR (a restarted daemon finds the port's connections in
 * TIME_WAIT), UDP has neither; the probe is closed before the real ones.
 */
static int km_port_free(const struct km_cfg *cfg, int type)
{
	union km_addr sa = cfg->listen_addr;
	int fd, one = 1, err = 0;

	sa.in.sin_port = htons(km_port_of(cfg, type)); /* = sin6_port */
	fd = km_listen_fd(type, &sa);
	if (fd < 0)
		return fd;
	if (type == SOCK_STREAM)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, &sa.sa, km_addr_len(&sa)))
		err = -errno;
	close(fd);
	if (err == -EADDRINUSE)
		km_err("port %d (%s) on %s is in use: another kmagentd or a "
		       "memcached listens there\n",
		       km_port_of(cfg, type),
		       type == SOCK_STREAM ? "tcp" : "udp",
		       km_listen_host(cfg));
	else if (err)
		km_err("port %d (%s): %s\n", km_port_of(cfg, type),
		       type == SOCK_STREAM ? "tcp" : "udp", strerror(-err));
	return err;
}

int km_proxy_start(void)
{
	const struct km_cfg *cfg = &km_d.cfg;
	unsigned int i;
	long ncpu;
	int err;

	err = km_port_free(cfg, SOCK_STREAM);
	if (!err && km_cfg_udp_port(cfg))
		err = km_port_free(cfg, SOCK_DGRAM);
	if (err)
		return err;
	km_backend_set_done(km_op_complete);
	if (cfg->nr_allow) {
		memcpy(km_udp_allow, cfg->allow,
		       cfg->nr_allow * sizeof(cfg->allow[0]));
		km_nudp_allow = cfg->nr_allow;
	} else {
		km_nudp_allow =
			km_allow_default(cfg, km_udp_allow, KM_MAX_ALLOW);
	}

	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	km_nworkers = cfg->threads ? cfg->threads : (ncpu > 0 ? ncpu : 1);
	km_workers = calloc(km_nworkers, sizeof(*km_workers));
	if (!km_workers)
		return -ENOMEM;
	if (cfg->unix_path[0]) {
		km_unix_fd = km_unix_socket(cfg->unix_path, cfg);
		if (km_unix_fd < 0) {
			km_err("unix socket %s: %s\n", cfg->unix_path,
			       strerror(-km_unix_fd));
			return km_unix_fd;
		}
	}
	for (i = 0; i < km_nworkers; i++) {
		err = km_worker_setup(&km_workers[i], i);
		if (err)
			return err;
	}
	return 0;
}

int km_proxy_run(void)
{
	const struct km_cfg *cfg = &km_d.cfg;
	unsigned int i;
	int err;

	for (i = 0; i < km_nworkers; i++) {
		err = pthread_create(&km_workers[i].thread, NULL,
				     km_worker_main, &km_workers[i]);
		if (err) {
			km_err("worker thread: %s\n", strerror(err));
			return -err;
		}
	}
	if (km_cfg_udp_port(cfg) == cfg->port)
		km_info("listening on %s:%d (tcp, udp), %u workers, %u "
			"backends\n",
			km_listen_host(cfg), cfg->port, km_nworkers,
			cfg->nr_backends);
	else
		km_info("listening on %s:%d (tcp), udp %d (0: none), %u "
			"workers, %u backends\n",
			km_listen_host(cfg), cfg->port, km_cfg_udp_port(cfg),
			km_nworkers, cfg->nr_backends);
	return 0;
}

static long long km_inflight(void)
{
	long long n = 0;
	unsigned int id;

	for (id = 1; id < KM_MAX_BACKENDS; id++)
		if (km_d.be[id].id)
			n += (long long)KM_LOAD(km_d.be[id].c.inflight);
	return n;
}

void km_proxy_quiesce(unsigned int timeout_ms)
{
	struct timespec tick = {0, 10 * 1000000L};
	unsigned int i, waited = 0;

	km_d.draining = 1;
	/* a listening socket shut down refuses new connections at once */
	for (i = 0; i < km_nworkers; i++) {
		if (km_workers[i].listen_ev.fd >= 0)
			shutdown(km_workers[i].listen_ev.fd, SHUT_RDWR);
		if (km_workers[i].unix_ev.fd >= 0)
			shutdown(km_workers[i].unix_ev.fd, SHUT_RDWR);
	}
	while (km_inflight() > 0 && waited < timeout_ms) {
		nanosleep(&tick, NULL);
		waited += 10;
	}
	if (km_inflight() > 0)
		km_warn("exiting with %lld requests in flight to the backends "
			"after %u ms\n",
			km_inflight(), waited);
}

void km_proxy_stop(void)
{
	unsigned int i;

	km_d.stop = 1;
	for (i = 0; i < km_nworkers; i++) {
		struct km_worker *w = &km_workers[i];

		if (w->thread)
			pthread_join(w->thread, NULL);
		if (w->listen_ev.fd >= 0)
			close(w->listen_ev.fd);
		if (w->udp_ev.fd >= 0)
			close(w->udp_ev.fd);
		if (w->seq_ev.fd > 0)
			close(w->seq_ev.fd);
		if (w->epfd > 0)
			close(w->epfd);
		km_worker_free_lists(w);
		while (w->free_udp) {
			struct km_conn *c = w->free_udp;

			w->free_udp = c->dirty_next;
			km_buf_free(&c->in);
			km_buf_free(&c->out);
			free(c->units);
			free(c);
		}
		free(w->udp_buf);
	}
	if (km_unix_fd >= 0) {
		close(km_unix_fd);
		unlink(km_d.cfg.unix_path);
	}
	free(km_workers);
	km_workers = NULL;
}

/* ---- stats: kmagent's own figures, memcached's format --------------- */

/*
 * daemon.h's counters as `stats` shows them, in the order clients have
 * seen: memcached's own names first, then "threads", then kmagent's, each
 * named kmagent_NAME.  Every counter is shown (checked below).
 */
/* clang-format off */
#define KM_STATS_MEMCACHED(X)                                                  \
	X(curr_connections) X(total_connections) X(rejected_connections)       \
	X(cmd_get) X(cmd_set) X(cmd_flush) X(cmd_touch) X(get_hits)            \
	X(get_misses) X(bytes_read) X(bytes_written)
#define KM_STATS_KMAGENT(X)                                                    \
	X(fallbacks, fallbacks)                                                \
	X(fallback_hits, fallback_hits)                                        \
	X(divergent_writes, divergent)                                         \
	X(failed_writes, write_failures)                                       \
	X(backend_timeouts, backend_timeouts)                                  \
	X(udp_requests, udp_requests)                                          \
	X(udp_denied, udp_denied)                                              \
	X(udp_reply_capped, udp_capped)                                        \
	X(protocol_errors, protocol_errors)                                    \
	X(flushes_avoided, flushes_avoided)                                    \
	X(idle_kicks, idle_kicks)
#define KM_ONE_FIELD(f) +1
#define KM_ONE_NAMED(name, f) +1
_Static_assert((0 KM_STATS_MEMCACHED(KM_ONE_FIELD)
		  KM_STATS_KMAGENT(KM_ONE_NAMED)) * sizeof(uint64_t) ==
	       sizeof(struct km_counters),
	       "a counter missing from stats (KM_STATS_KMAGENT)");
/* clang-format on */

static void km_stat(struct km_buf *b, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void km_stat(struct km_buf *b, const char *name, const char *fmt, ...)
{
	char val[256], line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	vsnprintf(val, sizeof(val), fmt, ap);
	va_end(ap);
	n = snprintf(line, sizeof(line), "STAT %s %s\r\n", name, val);
	km_buf_append(b, line, n);
}

void km_stats_build(struct km_buf *out, int reset, const struct km_buf *extra)
{
	struct km_counters *k = &km_d.c;
	struct km_buf *b = out;
	struct rusage ru;
	struct timeval tv;
	unsigned int id;

	if (reset) {
		uint64_t curr = KM_LOAD(k->curr_connections);

		memset(k, 0, sizeof(*k));
		k->curr_connections = curr;
		km_buf_append(out, "RESET\r\n", 7);
		return;
	}
	gettimeofday(&tv, NULL);
	getrusage(RUSAGE_SELF, &ru);
	km_stat(b, "pid", "%d", (int)km_d.pid);
	km_stat(b, "uptime", "%ld", (long)(time(NULL) - km_d.started));
	km_stat(b, "time", "%ld", (long)tv.tv_sec);
	km_stat(b, "version", "%s", KM_VERSION);
	km_stat(b, "pointer_size", "%d", (int)(8 * sizeof(void *)));
	km_stat(b, "rusage_user", "%ld.%06ld", (long)ru.ru_utime.tv_sec,
		(long)ru.ru_utime.tv_usec);
	km_stat(b, "rusage_system", "%ld.%06ld", (long)ru.ru_stime.tv_sec,
		(long)ru.ru_stime.tv_usec);
#define X(f) km_stat(b, #f, "%lu", (unsigned long)KM_LOAD(k->f));
	KM_STATS_MEMCACHED(X)
#undef X
	km_stat(b, "threads", "%u", km_nworkers);
#define X(name, f)                                                             \
	km_stat(b, "kmagent_" #name, "%lu", (unsigned long)KM_LOAD(k->f));
	KM_STATS_KMAGENT(X)
#undef X
	km_stat(b, "kmagent_write_policy", "%s",
		km_write_policy_name(KM_LIVE(write_policy)));
	for (id = 1; id < KM_MAX_BACKENDS; id++) {
		const struct km_backend_info *be = &km_d.be[id];
		char name[32];

		if (!be->id)
			continue;
		snprintf(name, sizeof(name), "kmagent_backend_%u", id);
		km_stat(b, name,
			"%s %s requests=%lu errors=%lu timeouts=%lu "
			"conn_errors=%lu",
			be->name,
			km_backend_state_name(__atomic_load_n(
				&be->kb.state, __ATOMIC_RELAXED)),
			(unsigned long)KM_LOAD(be->c.requests),
			(unsigned long)KM_LOAD(be->c.errors),
			(unsigned long)KM_LOAD(be->c.timeouts),
			(unsigned long)KM_LOAD(be->c.conn_errors));
	}
	if (extra && km_buf_used(extra))
		km_buf_append(b, km_buf_data(extra), km_buf_used(extra));
	km_buf_append(b, "END\r\n", 5);
}
