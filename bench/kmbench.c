// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * kmbench: memcached load generator that checks every reply.
 *
 * TCP (a pipelined window of requests per connection) or UDP (memcached's
 * 8-byte frame header, request ids, multi-datagram replies reassembled,
 * requests without a reply after --timeout counted as lost).  Gets, sets
 * or a mix, uniform or zipf keys.  Every value is derived from its key
 * (flags = key number, data = the key number in hex then a fixed
 * pseudo-random pattern at a key-dependent offset), so any get reply can
 * be checked without remembering what was set: a hit must carry exactly
 * the value of the key that was asked for.  A wrong value is an error and
 * makes the exit status 1.
 *
 * One epoll loop per thread, each thread owning its connections; no locks
 * on the request path.  Latencies go into a log-linear histogram
 * (bench/kmb_hist.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kmb_hist.h"

#define KMB_UDP_HDR	    8
#define KMB_UDP_MAX	    65536 /* receive buffer of one datagram */
#define KMB_UDP_BATCH	    16	  /* datagrams per recvmmsg */
#define KMB_UDP_MAX_DGRAMS  1024  /* reassembly limit: about 1.4 MB */
#define KMB_PATTERN_LEN	    4099  /* a prime: offsets spread well */
#define KMB_KEY_MAX	    250
#define KMB_LINE_MAX	    2048 /* a reply line longer than this is garbage */
#define KMB_MAX_WRONG_SHOWN 5

enum kmb_op { OP_GET, OP_SET };

enum kmb_mode {
	MODE_TIMED,	  /* random ops until the deadline */
	MODE_PRELOAD_SET, /* set every key once */
	MODE_PRELOAD_GET, /* get every key once and check it */
};

enum kmb_outcome {
	R_HIT,
	R_MISS,
	R_STORED,
	R_ERROR,     /* SERVER_ERROR, NOT_STORED, ...: a well-formed failure */
	R_WRONG,     /* a hit with a value that is not the key's */
	R_PROTO,     /* unparsable reply: the stream is out of sync */
	R_NEED_MORE, /* incomplete reply (TCP: wait for more bytes) */
};

/* -s given several times: the connections take the servers in turn, as a
 * client's pool of proxies does (the article's shape: one per host) */
#define KMB_MAX_SERVERS 4

struct kmb_opts {
	struct sockaddr_in srv[KMB_MAX_SERVERS];
	unsigned int nsrv;
	char server[KMB_MAX_SERVERS * 24]; /* as given, comma-separated */
	bool udp;
	unsigned int conns;
	unsigned int window;
	unsigned int threads;
	double duration;
	double warmup;
	uint32_t keys;
	const char *prefix;
	size_t prefix_len;
	unsigned int vmin, vmax;
	bool zipf;
	double theta;
	unsigned int rget, rset;
	bool preload;
	bool json;
	unsigned int timeout_ms;
	unsigned int interval_ms;
	uint64_t seed;
	const char *label;
};

struct kmb_counts {
	uint64_t ops; /* replies received (any outcome) */
	uint64_t gets, sets;
	uint64_t hits, misses, stored;
	uint64_t errors; /* error replies and failed requests */
	uint64_t wrong;	 /* wrong values */
	uint64_t lost;	 /* UDP requests without a reply in time */
	uint64_t late;	 /* UDP replies to no pending request */
	uint64_t conn_errors;
};

/* One request in flight. */
struct kmb_req {
	uint64_t t_sent;
	uint32_t key;
	uint8_t op;
	uint8_t busy;
	uint16_t reqid;
	uint16_t total, got; /* UDP reassembly */
	struct kmb_chunks *ch;
};

struct kmb_chunks {
	char *data[KMB_UDP_MAX_DGRAMS];
	uint32_t len[KMB_UDP_MAX_DGRAMS];
};

struct kmb_worker;

struct kmb_conn {
	int fd;
	bool udp;
	struct kmb_worker *w;
	const struct sockaddr_in *srv;
	unsigned int inflight;
	uint64_t retry_at; /* reconnect time when fd < 0 */
	bool want_out;
	/* TCP */
	char *in;
	size_t inlen, incap;
	char *out;
	size_t outlen, outoff, outcap;
	struct kmb_req *fifo; /* window entries, in send order */
	unsigned int head;
	/* UDP */
	struct kmb_req *slots; /* indexed by request id & mask */
	unsigned int mask;
	uint16_t next_id;
};

struct kmb_worker {
	pthread_t th;
	unsigned int idx;
	int ep;
	enum kmb_mode mode;
	struct kmb_conn *conns;
	unsigned int nconns;
	unsigned int window;
	uint64_t rng;
	struct kmb_hist *hist;
	struct kmb_counts c;	/* cumulative */
	struct kmb_counts base; /* snapshot at the end of the warmup */
	bool warm;
	struct kmb_counts pub; /* published copy for the interval reporter */
	char *vbuf;	       /* scratch: an expected value */
	size_t vcap;
	char *sbuf; /* scratch: one request */
	char *rbuf; /* scratch: KMB_UDP_BATCH datagrams */
	char *abuf; /* scratch: a reassembled reply */
	size_t acap;
};

static struct kmb_opts opt = {
	.conns = 16,
	.window = 1,
	.threads = 1,
	.duration = 5,
	.keys = 100000,
	.prefix = "kmb:",
	.vmin = 100,
	.vmax = 100,
	.theta = 0.99,
	.rget = 1,
	.rset = 0,
	.timeout_ms = 1000,
	.seed = 1,
};

static char *pattern;
static uint64_t t_start, t_warm, t_end; /* CLOCK_MONOTONIC ns */
static uint32_t seq_next;		/* preload: next key to do */
static volatile int stop_now;
static int wrong_shown;
static double zipf_zetan, zipf_eta, zipf_alpha, zipf_half_pow;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000ull + (uint64_t)ts.tv_nsec / 1000000;
}

/* xorshift64*: fast, and good enough to pick keys */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 2685821657736338717ull;
}

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

/* ---- keys and values: all derived from the key number ---- */

static size_t key_fmt(char *dst, uint32_t k)
{
	char tmp[12];
	size_t n = 0, i;

	memcpy(dst, opt.prefix, opt.prefix_len);
	do {
		tmp[n++] = (char)('0' + k % 10);
		k /= 10;
	} while (k);
	for (i = 0; i < n; i++)
		dst[opt.prefix_len + i] = tmp[n - 1 - i];
	return opt.prefix_len + n;
}

static unsigned int value_len(uint32_t k)
{
	if (opt.vmin == opt.vmax)
		return opt.vmin;
	return opt.vmin + (unsigned int)(mix64(k) % (opt.vmax - opt.vmin + 1));
}

/* The key number in hex, then the pattern from a key-dependent offset. */
static void value_fill(char *dst, uint32_t k, unsigned int len)
{
	static const char hex[] = "0123456789abcdef";
	unsigned int i,
		off = (unsigned int)(mix64(k ^ 0x5bd1e995) % KMB_PATTERN_LEN);

	for (i = 0; i < len && i < 8; i++)
		dst[i] = hex[(k >> (28 - 4 * i)) & 15];
	if (len > 8)
		memcpy(dst + 8, pattern + off, len - 8);
}

static int pattern_init(void)
{
	uint64_t s = 0x9e3779b97f4a7c15ull;
	size_t i, n = KMB_PATTERN_LEN + opt.vmax;

	pattern = malloc(n);
	if (!pattern)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		pattern[i] = (char)('!' + rng_next(&s) % 94);
	return 0;
}

/* ---- key distributions ---- */

/* Gray et al., "Quickly generating billion-record synthetic databases" */
static void zipf_init(void)
{
	double n = opt.keys, zeta2 = 1 + pow(0.5, opt.theta);
	uint32_t i;

	zipf_zetan = 0;
	for (i = 1; i <= opt.keys; i++)
		zipf_zetan += 1 / pow(i, opt.theta);
	zipf_alpha = 1 / (1 - opt.theta);
	zipf_eta = (1 - pow(2 / n, 1 - opt.theta)) / (1 - zeta2 / zipf_zetan);
	zipf_half_pow = zeta2;
}

static uint32_t key_pick(struct kmb_worker *w)
{
	uint64_t rank;
	double u, uz;

	if (!opt.zipf)
		return (uint32_t)(rng_next(&w->rng) % opt.keys);
	u = (double)(rng_next(&w->rng) >> 11) / (double)(1ull << 53);
	uz = u * zipf_zetan;
	if (uz < 1)
		rank = 0;
	else if (uz < zipf_half_pow)
		rank = 1;
	else
		rank = (uint64_t)(opt.keys *
				  pow(zipf_eta * u - zipf_eta + 1, zipf_alpha));
	if (rank >= opt.keys)
		rank = opt.keys - 1;
	/* scatter the hot ranks over the key space (and so the ring) */
	return (uint32_t)(mix64(rank) % opt.keys);
}

/* Next operation to send; false when there is none (deadline, done). */
static bool op_next(struct kmb_worker *w, uint8_t *op, uint32_t *key)
{
	uint32_t k;

	if (stop_now)
		return false;
	switch (w->mode) {
	case MODE_TIMED:
		if (!opt.rset)
			*op = OP_GET;
		else if (!opt.rget)
			*op = OP_SET;
		else
			*op = rng_next(&w->rng) % (opt.rget + opt.rset) <
					      opt.rget
				      ? OP_GET
				      : OP_SET;
		*key = key_pick(w);
		return true;
	case MODE_PRELOAD_SET:
	case MODE_PRELOAD_GET:
		k = __atomic_fetch_add(&seq_next, 1, __ATOMIC_RELAXED);
		if (k >= opt.keys)
			return false;
		*op = w->mode == MODE_PRELOAD_SET ? OP_SET : OP_GET;
		*key = k;
		return true;
	}
	return false;
}

/* ---- requests and replies ---- */

static size_t req_build(struct kmb_worker *w, char *dst, uint8_t op,
			uint32_t key)
{
	unsigned int vlen;
	char *p = dst;

	if (op == OP_GET) {
		memcpy(p, "get ", 4);
		p += 4;
		p += key_fmt(p, key);
		memcpy(p, "\r\n", 2);
		return (size_t)(p + 2 - dst);
	}
	(void)w;
	vlen = value_len(key);
	memcpy(p, "set ", 4);
	p += 4;
	p += key_fmt(p, key);
	p += sprintf(p, " %u 0 %u\r\n", key, vlen);
	value_fill(p, key, vlen);
	p += vlen;
	memcpy(p, "\r\n", 2);
	return (size_t)(p + 2 - dst);
}

static size_t req_max(void)
{
	return 64 + opt.prefix_len + 12 + opt.vmax;
}

static void report_wrong(uint32_t key, const char *why)
{
	if (__atomic_fetch_add(&wrong_shown, 1, __ATOMIC_RELAXED) <
	    KMB_MAX_WRONG_SHOWN)
		fprintf(stderr, "kmbench: WRONG value for key %s%u: %s\n",
			opt.prefix, key, why);
}

/* Is the data of a VALUE line the value of key? */
static bool value_ok(struct kmb_worker *w, uint32_t key, const char *line,
		     size_t line_len, const char *data)
{
	char kbuf[KMB_KEY_MAX + 16], *end;
	const char *p = line + 6, *sp;
	size_t klen = key_fmt(kbuf, key);
	unsigned long flags, bytes;
	unsigned int vlen = value_len(key);

	sp = memchr(p, ' ', line_len - 6);
	if (!sp || (size_t)(sp - p) != klen || memcmp(p, kbuf, klen)) {
		report_wrong(key, "reply is for another key");
		return false;
	}
	flags = strtoul(sp + 1, &end, 10);
	bytes = strtoul(end, NULL, 10);
	if (flags != key) {
		report_wrong(key, "flags differ");
		return false;
	}
	if (bytes != vlen) {
		report_wrong(key, "length differs");
		return false;
	}
	if (w->vcap < vlen) {
		report_wrong(key, "value longer than --value-size");
		return false;
	}
	value_fill(w->vbuf, key, vlen);
	if (memcmp(w->vbuf, data, vlen)) {
		report_wrong(key, "data differs");
		return false;
	}
	return true;
}

/*
 * Parse the reply to (op, key) at the start of p[0..len).  Sets *used to
 * the bytes it takes (or, with R_NEED_MORE, to the total it needs when
 * known, else 0).
 */
static int reply_parse(struct kmb_worker *w, uint8_t op, uint32_t key,
		       const char *p, size_t len, size_t *used)
{
	const char *eol =
		memchr(p, '\n', len < KMB_LINE_MAX ? len : KMB_LINE_MAX);
	unsigned long bytes;
	const char *sp;
	size_t ll, need;

	*used = 0;
	if (!eol)
		return len >= KMB_LINE_MAX ? R_PROTO : R_NEED_MORE;
	ll = (size_t)(eol - p) + 1;
	if (op == OP_SET) {
		*used = ll;
		if (ll == 8 && !memcmp(p, "STORED\r\n", 8))
			return R_STORED;
		return R_ERROR;
	}
	if (ll == 5 && !memcmp(p, "END\r\n", 5)) {
		*used = 5;
		return R_MISS;
	}
	if (ll < 12 || memcmp(p, "VALUE ", 6)) {
		*used = ll;
		return R_ERROR; /* SERVER_ERROR, ERROR, CLIENT_ERROR */
	}
	/* VALUE <key> <flags> <bytes> [<cas>]\r\n: bytes is the 3rd field */
	sp = memchr(p + 6, ' ', ll - 6);
	sp = sp ? memchr(sp + 1, ' ', (size_t)(eol - sp)) : NULL;
	if (!sp)
		return R_PROTO;
	bytes = strtoul(sp + 1, NULL, 10);
	need = ll + bytes + 2 + 5;
	if (len < need) {
		*used = need;
		return R_NEED_MORE;
	}
	*used = need;
	if (memcmp(p + ll + bytes, "\r\nEND\r\n", 7))
		return R_PROTO;
	return value_ok(w, key, p, ll, p + ll) ? R_HIT : R_WRONG;
}

static void account(struct kmb_worker *w, uint8_t op, int outcome,
		    uint64_t t_sent, uint64_t now)
{
	struct kmb_counts *c = &w->c;

	c->ops++;
	if (op == OP_GET)
		c->gets++;
	else
		c->sets++;
	switch (outcome) {
	case R_HIT:
		c->hits++;
		break;
	case R_MISS:
		c->misses++;
		break;
	case R_STORED:
		c->stored++;
		break;
	case R_WRONG:
		c->wrong++;
		break;
	default:
		c->errors++;
		break;
	}
	kmb_hist_record(w->hist, now - t_sent);
}

/* ---- connections ---- */

static int conn_open(struct kmb_conn *c)
{
	int one = 1, buf = 4 << 20, fd, flags;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};

	fd = socket(AF_INET, c->udp ? SOCK_DGRAM : SOCK_STREAM, 0);
	if (fd < 0)
		return -errno;
	if (c->udp)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	else
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (const struct sockaddr *)c->srv, sizeof(*c->srv)) < 0)
		goto fail;
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		goto fail;
	if (epoll_ctl(c->w->ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		goto fail;
	c->fd = fd;
	c->want_out = false;
	return 0;
fail:
	flags = -errno;
	close(fd);
	return flags;
}

static void udp_slot_free(struct kmb_conn *c, struct kmb_req *r)
{
	unsigned int i;

	if (r->ch) {
		for (i = 0; i < KMB_UDP_MAX_DGRAMS; i++)
			free(r->ch->data[i]);
		free(r->ch);
		r->ch = NULL;
	}
	r->busy = 0;
	c->inflight--;
}

/* A TCP connection broke: its requests failed; reconnect soon. */
static void conn_fail(struct kmb_conn *c, const char *why)
{
	struct kmb_worker *w = c->w;

	if (w->c.conn_errors < 3)
		fprintf(stderr, "kmbench: connection error: %s\n", why);
	w->c.conn_errors++;
	w->c.errors += c->inflight;
	epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	c->inflight = 0;
	c->head = 0;
	c->inlen = c->outlen = c->outoff = 0;
	c->retry_at = now_ns() + 50000000ull;
}

static void tcp_set_out(struct kmb_conn *c, bool on)
{
	struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0),
				 .data.ptr = c};

	if (c->want_out == on)
		return;
	c->want_out = on;
	epoll_ctl(c->w->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void tcp_flush(struct kmb_conn *c)
{
	ssize_t n;

	while (c->outoff < c->outlen) {
		n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff,
			 MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				tcp_set_out(c, true);
				return;
			}
			conn_fail(c, strerror(errno));
			return;
		}
		c->outoff += (size_t)n;
	}
	c->outoff = c->outlen = 0;
	tcp_set_out(c, false);
}

static void tcp_fill(struct kmb_conn *c)
{
	struct kmb_worker *w = c->w;
	struct kmb_req *r;
	uint64_t now = 0;
	uint32_t key;
	uint8_t op;

	while (c->fd >= 0 && c->inflight < w->window) {
		if (c->outcap - c->outlen < req_max())
			break; /* the window is bounded, so this is rare */
		if (!op_next(w, &op, &key))
			break;
		if (!now)
			now = now_ns();
		r = &c->fifo[(c->head + c->inflight) % w->window];
		r->op = op;
		r->key = key;
		r->t_sent = now;
		c->inflight++;
		c->outlen += req_build(w, c->out + c->outlen, op, key);
	}
	if (c->fd >= 0 && c->outlen > c->outoff && !c->want_out)
		tcp_flush(c);
}

/* Consume every complete reply in the input buffer. */
static void tcp_parse(struct kmb_conn *c)
{
	struct kmb_worker *w = c->w;
	uint64_t now = now_ns();
	size_t off = 0, used;
	struct kmb_req *r;
	char *nb;
	int res;

	while (c->inflight) {
		r = &c->fifo[c->head];
		res = reply_parse(w, r->op, r->key, c->in + off, c->inlen - off,
				  &used);
		if (res == R_NEED_MORE) {
			if (used + 16 > c->incap) {
				nb = realloc(c->in, used + 16);
				if (!nb) {
					conn_fail(c, "out of memory");
					return;
				}
				c->in = nb;
				c->incap = used + 16;
			}
			break;
		}
		if (res == R_PROTO) {
			conn_fail(c, "unparsable reply");
			return;
		}
		account(w, r->op, res, r->t_sent, now);
		off += used;
		c->head = (c->head + 1) % w->window;
		c->inflight--;
	}
	if (!c->inflight && off < c->inlen) {
		conn_fail(c, "reply to no request");
		return;
	}
	if (off) {
		memmove(c->in, c->in + off, c->inlen - off);
		c->inlen -= off;
	}
}

static void tcp_readable(struct kmb_conn *c)
{
	ssize_t n;
	size_t room;

	for (;;) {
		room = c->incap - c->inlen;
		n = recv(c->fd, c->in + c->inlen, room, 0);
		if (n == 0) {
			conn_fail(c, "closed by server");
			return;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			conn_fail(c, strerror(errno));
			return;
		}
		c->inlen += (size_t)n;
		tcp_parse(c);
		if (c->fd < 0)
			return;
		if ((size_t)n < room)
			break; /* drained: save the EAGAIN round trip */
	}
	tcp_fill(c);
}

static void udp_fill(struct kmb_conn *c)
{
	struct kmb_worker *w = c->w;
	struct kmb_req *r;
	uint64_t now = 0;
	uint32_t key;
	uint16_t id;
	uint8_t op;
	size_t len;

	while (c->inflight < w->window) {
		if (!op_next(w, &op, &key))
			break;
		do {
			id = c->next_id++;
			r = &c->slots[id & c->mask];
		} while (r->busy); /* mask + 1 >= 4 * window: terminates */
		w->sbuf[0] = (char)(id >> 8);
		w->sbuf[1] = (char)id;
		memset(w->sbuf + 2, 0, 6);
		w->sbuf[5] = 1; /* datagram count: 1 */
		len = KMB_UDP_HDR +
		      req_build(w, w->sbuf + KMB_UDP_HDR, op, key);
		if (!now)
			now = now_ns();
		if (send(c->fd, w->sbuf, len, 0) < 0) {
			/* ICMP errors of earlier datagrams surface here too */
			w->c.errors++;
			break; /* retried on the next tick */
		}
		r->busy = 1;
		r->reqid = id;
		r->op = op;
		r->key = key;
		r->t_sent = now;
		r->total = r->got = 0;
		c->inflight++;
	}
}

static void udp_finish(struct kmb_conn *c, struct kmb_req *r, const char *p,
		       size_t len, uint64_t now)
{
	size_t used;
	int res = reply_parse(c->w, r->op, r->key, p, len, &used);

	if (res == R_NEED_MORE || res == R_PROTO || used != len)
		res = R_PROTO;
	account(c->w, r->op, res, r->t_sent, now);
	udp_slot_free(c, r);
}

/* A datagram of a multi-datagram reply: keep it until all are in. */
static void udp_chunk(struct kmb_conn *c, struct kmb_req *r, uint16_t seq,
		      uint16_t total, const char *p, size_t len, uint64_t now)
{
	struct kmb_worker *w = c->w;
	size_t sum = 0, i;
	char *nb;

	if (total > KMB_UDP_MAX_DGRAMS || seq >= total ||
	    (r->total && r->total != total))
		goto bad;
	if (!r->ch) {
		r->ch = calloc(1, sizeof(*r->ch));
		if (!r->ch)
			goto bad;
		r->total = total;
	}
	if (r->ch->data[seq])
		return; /* duplicate */
	r->ch->data[seq] = malloc(len ? len : 1);
	if (!r->ch->data[seq])
		goto bad;
	memcpy(r->ch->data[seq], p, len);
	r->ch->len[seq] = (uint32_t)len;
	if (++r->got < total)
		return;
	for (i = 0; i < total; i++)
		sum += r->ch->len[i];
	if (sum > w->acap) {
		nb = realloc(w->abuf, sum);
		if (!nb)
			goto bad;
		w->abuf = nb;
		w->acap = sum;
	}
	for (sum = 0, i = 0; i < total; i++) {
		memcpy(w->abuf + sum, r->ch->data[i], r->ch->len[i]);
		sum += r->ch->len[i];
	}
	udp_finish(c, r, w->abuf, sum, now);
	return;
bad:
	account(w, r->op, R_PROTO, r->t_sent, now);
	udp_slot_free(c, r);
}

static void udp_datagram(struct kmb_conn *c, const char *buf, size_t n,
			 uint64_t now)
{
	const unsigned char *h = (const unsigned char *)buf;
	uint16_t id, seq, total;
	struct kmb_req *r;

	if (n < KMB_UDP_HDR) {
		c->w->c.late++;
		return;
	}
	id = (uint16_t)(h[0] << 8 | h[1]);
	seq = (uint16_t)(h[2] << 8 | h[3]);
	total = (uint16_t)(h[4] << 8 | h[5]);
	r = &c->slots[id & c->mask];
	if (!r->busy || r->reqid != id) {
		c->w->c.late++;
		return;
	}
	if (total == 1 && seq == 0)
		udp_finish(c, r, buf + KMB_UDP_HDR, n - KMB_UDP_HDR, now);
	else
		udp_chunk(c, r, seq, total, buf + KMB_UDP_HDR, n - KMB_UDP_HDR,
			  now);
}

/*
 * Take every waiting datagram, KMB_UDP_BATCH per system call; a short
 * batch means the socket is drained, which saves the EAGAIN round trip.
 */
static void udp_readable(struct kmb_conn *c)
{
	struct mmsghdr msg[KMB_UDP_BATCH];
	struct iovec iov[KMB_UDP_BATCH];
	struct kmb_worker *w = c->w;
	uint64_t now;
	int n, i;

	for (i = 0; i < KMB_UDP_BATCH; i++) {
		iov[i].iov_base = w->rbuf + (size_t)i * KMB_UDP_MAX;
		iov[i].iov_len = KMB_UDP_MAX;
		memset(&msg[i].msg_hdr, 0, sizeof(msg[i].msg_hdr));
		msg[i].msg_hdr.msg_iov = &iov[i];
		msg[i].msg_hdr.msg_iovlen = 1;
	}
	for (;;) {
		n = recvmmsg(c->fd, msg, KMB_UDP_BATCH, MSG_DONTWAIT, NULL);
		if (n < 0) {
			if (errno == EINTR || errno == ECONNREFUSED)
				continue;
			break;
		}
		now = now_ns();
		for (i = 0; i < n; i++)
			udp_datagram(c, iov[i].iov_base, msg[i].msg_len, now);
		if (n < KMB_UDP_BATCH)
			break;
	}
	udp_fill(c);
}

/* UDP requests older than --timeout are lost: free their slots. */
static void udp_expire(struct kmb_conn *c, uint64_t now)
{
	uint64_t tmo = (uint64_t)opt.timeout_ms * 1000000ull;
	unsigned int i;

	for (i = 0; i <= c->mask && c->inflight; i++) {
		if (c->slots[i].busy && now - c->slots[i].t_sent > tmo) {
			c->w->c.lost++;
			udp_slot_free(c, &c->slots[i]);
		}
	}
	udp_fill(c);
}

static int conn_init(struct kmb_worker *w, struct kmb_conn *c, bool udp)
{
	static unsigned int next_srv; /* set up before the threads start */
	unsigned int n = 4;

	memset(c, 0, sizeof(*c));
	c->w = w;
	c->srv = &opt.srv[next_srv++ % opt.nsrv];
	c->udp = udp;
	c->fd = -1;
	if (udp) {
		while (n < 4 * w->window)
			n <<= 1;
		c->slots = calloc(n, sizeof(*c->slots));
		c->mask = n - 1;
		c->next_id = (uint16_t)rng_next(&w->rng);
		return c->slots ? 0 : -ENOMEM;
	}
	c->incap = 65536;
	c->outcap = (size_t)w->window * req_max() + req_max();
	c->in = malloc(c->incap);
	c->out = malloc(c->outcap);
	c->fifo = calloc(w->window, sizeof(*c->fifo));
	return c->in && c->out && c->fifo ? 0 : -ENOMEM;
}

static void conn_free(struct kmb_conn *c)
{
	unsigned int i;

	if (c->slots)
		for (i = 0; i <= c->mask; i++)
			if (c->slots[i].busy)
				udp_slot_free(c, &c->slots[i]);
	if (c->fd >= 0)
		close(c->fd);
	free(c->in);
	free(c->out);
	free(c->fifo);
	free(c->slots);
}

static void conn_kick(struct kmb_conn *c)
{
	if (c->udp)
		udp_fill(c);
	else
		tcp_fill(c);
}

/* ---- worker threads ---- */

static void worker_publish(struct kmb_worker *w)
{
	__atomic_store_n(&w->pub.ops, w->c.ops, __ATOMIC_RELAXED);
	__atomic_store_n(&w->pub.errors, w->c.errors, __ATOMIC_RELAXED);
	__atomic_store_n(&w->pub.lost, w->c.lost, __ATOMIC_RELAXED);
	__atomic_store_n(&w->pub.wrong, w->c.wrong, __ATOMIC_RELAXED);
	__atomic_store_n(&w->pub.misses, w->c.misses, __ATOMIC_RELAXED);
}

static bool worker_idle(struct kmb_worker *w)
{
	unsigned int i;

	for (i = 0; i < w->nconns; i++)
		if (w->conns[i].inflight)
			return false;
	return true;
}

static void *worker_run(void *arg)
{
	struct kmb_worker *w = arg;
	struct epoll_event ev[64];
	uint64_t now, next_expire = 0;
	struct kmb_conn *c;
	int i, n, err;

	for (i = 0; i < (int)w->nconns; i++) {
		c = &w->conns[i];
		err = conn_open(c);
		if (err) {
			fprintf(stderr, "kmbench: connect %s: %s\n", opt.server,
				strerror(-err));
			w->c.conn_errors++;
			c->retry_at = now_ns() + 50000000ull;
		}
	}
	for (i = 0; i < (int)w->nconns; i++)
		if (w->conns[i].fd >= 0)
			conn_kick(&w->conns[i]);
	for (;;) {
		n = epoll_wait(w->ep, ev, 64, 5);
		now = now_ns();
		if (!w->warm && now >= t_warm) {
			/* before this round's replies: they count */
			w->warm = true;
			w->base = w->c;
			kmb_hist_reset(w->hist);
		}
		for (i = 0; i < n; i++) {
			c = ev[i].data.ptr;
			if (c->fd < 0)
				continue;
			if (c->udp) {
				udp_readable(c);
				continue;
			}
			if (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
				tcp_readable(c);
			if (c->fd >= 0 && (ev[i].events & EPOLLOUT))
				tcp_flush(c);
		}
		now = now_ns();
		worker_publish(w);
		if (w->mode == MODE_TIMED && now >= t_end)
			break;
		if (stop_now ||
		    (w->mode != MODE_TIMED &&
		     __atomic_load_n(&seq_next, __ATOMIC_RELAXED) >= opt.keys &&
		     worker_idle(w)))
			break;
		if (now < next_expire)
			continue;
		next_expire = now + 2000000ull;
		for (i = 0; i < (int)w->nconns; i++) {
			c = &w->conns[i];
			if (c->fd < 0 && now >= c->retry_at) {
				if (conn_open(c) == 0)
					conn_kick(c);
				else
					c->retry_at = now + 50000000ull;
			} else if (c->fd >= 0 && c->udp) {
				udp_expire(c, now);
			} else if (c->fd >= 0 && !c->inflight) {
				tcp_fill(c);
			}
		}
	}
	return NULL;
}

struct kmb_result {
	struct kmb_counts c;
	struct kmb_hist *hist;
	double secs;
	double cpu_s; /* this process's user + system time in the phase */
};

static double cpu_secs(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru))
		return 0;
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void counts_add(struct kmb_counts *dst, const struct kmb_counts *a,
		       const struct kmb_counts *b)
{
	const uint64_t *pa = (const uint64_t *)a, *pb = (const uint64_t *)b;
	uint64_t *pd = (uint64_t *)dst;
	size_t i;

	/* dst += a - b, field by field (the struct holds only uint64_t) */
	for (i = 0; i < sizeof(*dst) / sizeof(uint64_t); i++)
		pd[i] += pa[i] - pb[i];
}

static void report_interval(struct kmb_worker *ws, unsigned int nw,
			    struct kmb_counts *last)
{
	struct kmb_counts now = {0};
	unsigned int i;

	for (i = 0; i < nw; i++) {
		now.ops += __atomic_load_n(&ws[i].pub.ops, __ATOMIC_RELAXED);
		now.errors +=
			__atomic_load_n(&ws[i].pub.errors, __ATOMIC_RELAXED);
		now.lost += __atomic_load_n(&ws[i].pub.lost, __ATOMIC_RELAXED);
		now.wrong +=
			__atomic_load_n(&ws[i].pub.wrong, __ATOMIC_RELAXED);
		now.misses +=
			__atomic_load_n(&ws[i].pub.misses, __ATOMIC_RELAXED);
	}
	fprintf(stderr,
		"interval %llu ops %llu errors %llu lost %llu wrong %llu "
		"misses %llu\n",
		(unsigned long long)wall_ms(),
		(unsigned long long)(now.ops - last->ops),
		(unsigned long long)(now.errors - last->errors),
		(unsigned long long)(now.lost - last->lost),
		(unsigned long long)(now.wrong - last->wrong),
		(unsigned long long)(now.misses - last->misses));
	*last = now;
}

/* Run one phase with its own threads and connections; 0 or -errno. */
static int phase_run(enum kmb_mode mode, bool udp, unsigned int conns,
		     unsigned int window, unsigned int threads, double secs,
		     double warmup, struct kmb_result *res)
{
	struct kmb_worker *ws = calloc(threads, sizeof(*ws));
	struct kmb_counts last = {0};
	unsigned int i, j, started = 0;
	int err = 0;

	if (!ws)
		return -ENOMEM;
	if (threads > conns)
		threads = conns;
	for (i = 0; i < threads; i++) {
		struct kmb_worker *w = &ws[i];

		w->idx = i;
		w->mode = mode;
		w->window = window;
		w->rng = mix64(opt.seed * 1000003 + i + 1) | 1;
		w->nconns = conns / threads + (i < conns % threads);
		w->conns = calloc(w->nconns, sizeof(*w->conns));
		w->hist = malloc(sizeof(*w->hist));
		w->vcap = opt.vmax + 16;
		w->vbuf = malloc(w->vcap);
		w->sbuf = malloc(req_max() + KMB_UDP_HDR);
		w->rbuf = malloc((size_t)KMB_UDP_BATCH * KMB_UDP_MAX);
		w->ep = epoll_create1(0);
		if (!w->conns || !w->hist || !w->vbuf || !w->sbuf || !w->rbuf ||
		    w->ep < 0) {
			err = -ENOMEM;
			goto out;
		}
		kmb_hist_reset(w->hist);
		for (j = 0; j < w->nconns; j++) {
			err = conn_init(w, &w->conns[j], udp);
			if (err)
				goto out;
		}
	}
	seq_next = 0;
	res->cpu_s = cpu_secs();
	t_start = now_ns();
	t_warm = t_start + (uint64_t)(warmup * 1e9);
	t_end = t_warm + (uint64_t)(secs * 1e9);
	for (i = 0; i < threads; i++) {
		err = -pthread_create(&ws[i].th, NULL, worker_run, &ws[i]);
		if (err)
			goto join;
		started++;
	}
	if (opt.interval_ms && mode == MODE_TIMED) {
		while (now_ns() < t_end && !stop_now) {
			usleep(opt.interval_ms * 1000);
			report_interval(ws, threads, &last);
		}
	}
join:
	if (err)
		stop_now = 1;
	for (i = 0; i < started; i++)
		pthread_join(ws[i].th, NULL);
	res->cpu_s = cpu_secs() - res->cpu_s;
	res->secs = (double)(now_ns() - t_warm) / 1e9;
	if (mode == MODE_TIMED)
		res->secs = secs;
	memset(&res->c, 0, sizeof(res->c));
	kmb_hist_reset(res->hist);
	for (i = 0; i < threads; i++) {
		counts_add(&res->c, &ws[i].c, &ws[i].base);
		kmb_hist_merge(res->hist, ws[i].hist);
	}
out:
	for (i = 0; i < threads; i++) {
		for (j = 0; ws[i].conns && j < ws[i].nconns; j++)
			conn_free(&ws[i].conns[j]);
		if (ws[i].ep > 0)
			close(ws[i].ep);
		free(ws[i].conns);
		free(ws[i].hist);
		free(ws[i].vbuf);
		free(ws[i].sbuf);
		free(ws[i].rbuf);
		free(ws[i].abuf);
	}
	free(ws);
	return err;
}

/* ---- output ---- */

static double us(uint64_t ns)
{
	return (double)ns / 1000.0;
}

static void print_result(const struct kmb_result *r)
{
	const struct kmb_counts *c = &r->c;
	const struct kmb_hist *h = r->hist;
	uint64_t ok = c->hits + c->misses + c->stored;
	double tput = r->secs > 0 ? (double)ok / r->secs : 0;
	double mean = h->count ? (double)h->sum / (double)h->count : 0;

	if (opt.json) {
		printf("{\"label\":\"%s\",\"server\":\"%s\",\"proto\":\"%s\","
		       "\"conns\":%u,\"window\":%u,\"threads\":%u,"
		       "\"secs\":%.3f,\"ops_per_sec\":%.1f,\"ops\":%llu,"
		       "\"gets\":%llu,\"sets\":%llu,\"hits\":%llu,"
		       "\"misses\":%llu,\"stored\":%llu,\"errors\":%llu,"
		       "\"wrong\":%llu,\"lost\":%llu,\"late\":%llu,"
		       "\"conn_errors\":%llu,\"mean_us\":%.2f,"
		       "\"p50_us\":%.2f,\"p99_us\":%.2f,\"p999_us\":%.2f,"
		       "\"max_us\":%.2f,\"client_cpu_us_per_op\":%.2f}\n",
		       opt.label ? opt.label : "", opt.server,
		       opt.udp ? "udp" : "tcp", opt.conns, opt.window,
		       opt.threads, r->secs, tput, (unsigned long long)c->ops,
		       (unsigned long long)c->gets, (unsigned long long)c->sets,
		       (unsigned long long)c->hits,
		       (unsigned long long)c->misses,
		       (unsigned long long)c->stored,
		       (unsigned long long)c->errors,
		       (unsigned long long)c->wrong,
		       (unsigned long long)c->lost, (unsigned long long)c->late,
		       (unsigned long long)c->conn_errors, mean / 1000.0,
		       us(kmb_hist_quantile(h, 0.5)),
		       us(kmb_hist_quantile(h, 0.99)),
		       us(kmb_hist_quantile(h, 0.999)), us(h->max),
		       c->ops ? r->cpu_s * 1e6 / (double)c->ops : 0);
		return;
	}
	printf("kmbench: %s %s, %u conns x %u in flight, %u threads, %.1f s\n",
	       opt.udp ? "udp" : "tcp", opt.server, opt.conns, opt.window,
	       opt.threads, r->secs);
	printf("  throughput %.0f ops/s (%llu gets, %llu sets)\n", tput,
	       (unsigned long long)c->gets, (unsigned long long)c->sets);
	printf("  hits %llu misses %llu stored %llu errors %llu wrong %llu "
	       "lost %llu late %llu conn_errors %llu\n",
	       (unsigned long long)c->hits, (unsigned long long)c->misses,
	       (unsigned long long)c->stored, (unsigned long long)c->errors,
	       (unsigned long long)c->wrong, (unsigned long long)c->lost,
	       (unsigned long long)c->late, (unsigned long long)c->conn_errors);
	printf("  latency us: mean %.1f p50 %.1f p99 %.1f p99.9 %.1f max "
	       "%.1f\n",
	       mean / 1000.0, us(kmb_hist_quantile(h, 0.5)),
	       us(kmb_hist_quantile(h, 0.99)), us(kmb_hist_quantile(h, 0.999)),
	       us(h->max));
}

/* Set every key over TCP, then get every key back and check it. */
static int preload(struct kmb_result *r)
{
	unsigned int conns = opt.conns < 4    ? 4
			     : opt.conns > 16 ? 16
					      : opt.conns;
	uint64_t t0 = now_ns();
	int err;

	err = phase_run(MODE_PRELOAD_SET, false, conns, 32, 1, 0, 0, r);
	if (err)
		return err;
	if (r->c.stored != opt.keys) {
		fprintf(stderr,
			"kmbench: preload: %llu of %u sets stored, %llu "
			"errors\n",
			(unsigned long long)r->c.stored, opt.keys,
			(unsigned long long)r->c.errors);
		return -EIO;
	}
	err = phase_run(MODE_PRELOAD_GET, false, conns, 32, 1, 0, 0, r);
	if (err)
		return err;
	fprintf(stderr,
		"kmbench: preload: %u keys set and read back in %.2f s: "
		"%llu hits %llu misses %llu errors %llu wrong\n",
		opt.keys, (double)(now_ns() - t0) / 1e9,
		(unsigned long long)r->c.hits, (unsigned long long)r->c.misses,
		(unsigned long long)r->c.errors,
		(unsigned long long)r->c.wrong);
	if (r->c.wrong)
		return -EBADMSG;
	return r->c.hits == opt.keys ? 0 : -EIO;
}

/* ---- command line ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: kmbench --server HOST:PORT [options]\n"
		"\n"
		"memcached load generator; checks every reply.\n"
		"\n"
		"  -s, --server HOST:PORT   target (required); up to 4 -s: "
		"the\n"
		"                           connections take them in turn\n"
		"  -u, --udp                memcached UDP protocol\n"
		"      --tcp                TCP (default)\n"
		"  -c, --conns N            connections or UDP sockets (16)\n"
		"  -w, --window N           requests in flight per connection "
		"(1)\n"
		"  -T, --threads N          threads (1)\n"
		"  -d, --duration S         seconds to measure, 0 = none (5)\n"
		"      --warmup S           seconds run before measuring (0)\n"
		"  -k, --keys N             key space (100000)\n"
		"      --key-prefix STR     key prefix (kmb:)\n"
		"  -V, --value-size N|MIN-MAX  value bytes (100)\n"
		"      --dist uniform|zipf[:THETA]  key popularity (uniform; "
		"zipf theta 0.99)\n"
		"      --zipf               --dist zipf:0.99\n"
		"  -r, --ratio GET:SET      operation mix (1:0 = gets only)\n"
		"      --op get|set         shorthand for --ratio 1:0 / 0:1\n"
		"  -p, --preload            set every key over TCP and read it "
		"back first\n"
		"      --timeout MS         UDP request counted lost after MS "
		"(1000)\n"
		"      --interval MS        print per-interval counts to "
		"stderr\n"
		"      --seed N             random seed (1)\n"
		"      --label STR          label copied into the JSON result\n"
		"  -j, --json               one JSON object on stdout\n"
		"  -h, --help               this help\n"
		"\n"
		"Exit status: 0 ok, 1 wrong values seen (or preload failed),\n"
		"2 usage, 3 no successful reply.\n"
		"\n"
		"EXAMPLES\n"
		"  kmbench -s 198.18.0.2:11211 --preload -c 16 -w 1 -d 5\n"
		"  kmbench -s 198.18.0.2:11211 --udp --op set -c 2 -w 16 "
		"--json\n"
		"  kmbench -s 198.18.0.2:11211 --ratio 9:1 --dist zipf:0.9 "
		"-V 10-1000\n");
}

static int parse_server(const char *s)
{
	struct addrinfo hints = {.ai_family = AF_INET}, *ai;
	char host[256];
	const char *colon = strrchr(s, ':');
	unsigned long port;
	char *end;

	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = 0;
	port = strtoul(colon + 1, &end, 10);
	if (*end || !port || port > 65535)
		return -EINVAL;
	if (opt.nsrv == KMB_MAX_SERVERS ||
	    strlen(opt.server) + strlen(s) + 2 > sizeof(opt.server))
		return -EINVAL;
	if (getaddrinfo(host, NULL, &hints, &ai))
		return -EINVAL;
	memcpy(&opt.srv[opt.nsrv], ai->ai_addr, sizeof(opt.srv[0]));
	opt.srv[opt.nsrv++].sin_port = htons((uint16_t)port);
	freeaddrinfo(ai);
	if (opt.server[0])
		strcat(opt.server, ",");
	strcat(opt.server, s);
	return 0;
}

static bool parse_uint(const char *s, unsigned long max, unsigned long *v)
{
	char *end;

	errno = 0;
	*v = strtoul(s, &end, 10);
	return !errno && end != s && !*end && *v <= max;
}

static bool parse_ratio(const char *s)
{
	unsigned int g, st;
	char tail;

	if (sscanf(s, "%u:%u%c", &g, &st, &tail) != 2 || g + st == 0 ||
	    g > 1000000 || st > 1000000)
		return false;
	opt.rget = g;
	opt.rset = st;
	return true;
}

static bool parse_sizes(const char *s)
{
	unsigned int a, b;
	char tail;

	if (sscanf(s, "%u-%u%c", &a, &b, &tail) == 2) {
		opt.vmin = a;
		opt.vmax = b;
	} else if (sscanf(s, "%u%c", &a, &tail) == 1) {
		opt.vmin = opt.vmax = a;
	} else {
		return false;
	}
	return opt.vmin <= opt.vmax && opt.vmax <= (64u << 20);
}

static bool parse_dist(const char *s)
{
	char *end;

	if (!strcmp(s, "uniform")) {
		opt.zipf = false;
		return true;
	}
	if (strncmp(s, "zipf", 4))
		return false;
	opt.zipf = true;
	if (s[4] == ':') {
		opt.theta = strtod(s + 5, &end);
		if (*end || opt.theta <= 0 || opt.theta >= 1)
			return false; /* the generator needs 0 < theta < 1 */
	} else if (s[4]) {
		return false;
	}
	return true;
}

static int parse_args(int argc, char **argv)
{
	enum {
		O_TCP = 256,
		O_WARMUP,
		O_PREFIX,
		O_DIST,
		O_ZIPF,
		O_OP,
		O_TIMEOUT,
		O_INTERVAL,
		O_SEED,
		O_LABEL
	};
	static const struct option lo[] = {
		{"server", required_argument, NULL, 's'},
		{"udp", no_argument, NULL, 'u'},
		{"tcp", no_argument, NULL, O_TCP},
		{"conns", required_argument, NULL, 'c'},
		{"window", required_argument, NULL, 'w'},
		{"threads", required_argument, NULL, 'T'},
		{"duration", required_argument, NULL, 'd'},
		{"warmup", required_argument, NULL, O_WARMUP},
		{"keys", required_argument, NULL, 'k'},
		{"key-prefix", required_argument, NULL, O_PREFIX},
		{"value-size", required_argument, NULL, 'V'},
		{"dist", required_argument, NULL, O_DIST},
		{"zipf", no_argument, NULL, O_ZIPF},
		{"ratio", required_argument, NULL, 'r'},
		{"op", required_argument, NULL, O_OP},
		{"preload", no_argument, NULL, 'p'},
		{"timeout", required_argument, NULL, O_TIMEOUT},
		{"interval", required_argument, NULL, O_INTERVAL},
		{"seed", required_argument, NULL, O_SEED},
		{"label", required_argument, NULL, O_LABEL},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	unsigned long v;
	char *end;
	int ch;

	while ((ch = getopt_long(argc, argv, "s:uc:w:T:d:k:V:r:pjh", lo,
				 NULL)) != -1) {
		switch (ch) {
		case 's':
			if (parse_server(optarg)) {
				fprintf(stderr, "kmbench: bad server %s\n",
					optarg);
				return -1;
			}
			break;
		case 'u':
			opt.udp = true;
			break;
		case O_TCP:
			opt.udp = false;
			break;
		case 'c':
			if (!parse_uint(optarg, 65536, &v) || !v)
				goto bad;
			opt.conns = (unsigned int)v;
			break;
		case 'w':
			if (!parse_uint(optarg, 16384, &v) || !v)
				goto bad;
			opt.window = (unsigned int)v;
			break;
		case 'T':
			if (!parse_uint(optarg, 256, &v) || !v)
				goto bad;
			opt.threads = (unsigned int)v;
			break;
		case 'd':
		case O_WARMUP:
			errno = 0;
			if (ch == 'd')
				opt.duration = strtod(optarg, &end);
			else
				opt.warmup = strtod(optarg, &end);
			if (errno || *end || end == optarg ||
			    opt.duration < 0 || opt.warmup < 0)
				goto bad;
			break;
		case 'k':
			if (!parse_uint(optarg, UINT32_MAX, &v) || !v)
				goto bad;
			opt.keys = (uint32_t)v;
			break;
		case O_PREFIX:
			opt.prefix = optarg;
			if (strlen(optarg) > KMB_KEY_MAX - 10 ||
			    strpbrk(optarg, " \r\n\t"))
				goto bad;
			break;
		case 'V':
			if (!parse_sizes(optarg))
				goto bad;
			break;
		case O_DIST:
			if (!parse_dist(optarg))
				goto bad;
			break;
		case O_ZIPF:
			opt.zipf = true;
			opt.theta = 0.99;
			break;
		case 'r':
			if (!parse_ratio(optarg))
				goto bad;
			break;
		case O_OP:
			if (!strcmp(optarg, "get"))
				opt.rget = 1, opt.rset = 0;
			else if (!strcmp(optarg, "set"))
				opt.rget = 0, opt.rset = 1;
			else
				goto bad;
			break;
		case 'p':
			opt.preload = true;
			break;
		case O_TIMEOUT:
			if (!parse_uint(optarg, 3600000, &v) || !v)
				goto bad;
			opt.timeout_ms = (unsigned int)v;
			break;
		case O_INTERVAL:
			if (!parse_uint(optarg, 3600000, &v))
				goto bad;
			opt.interval_ms = (unsigned int)v;
			break;
		case O_SEED:
			if (!parse_uint(optarg, UINT32_MAX, &v))
				goto bad;
			opt.seed = v;
			break;
		case O_LABEL:
			opt.label = optarg;
			break;
		case 'j':
			opt.json = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (!opt.nsrv || optind != argc) {
		usage(stderr);
		return -1;
	}
	opt.prefix_len = strlen(opt.prefix);
	return 0;
bad:
	fprintf(stderr, "kmbench: bad value for option: %s\n", optarg);
	return -1;
}

static void on_signal(int sig)
{
	(void)sig;
	stop_now = 1;
}

static int run(struct kmb_result *res)
{
	int err;

	if (opt.zipf)
		zipf_init();
	if (opt.preload) {
		err = preload(res);
		if (err == -EBADMSG || (err && err != -EIO)) {
			fprintf(stderr, "kmbench: preload failed: %s\n",
				strerror(-err));
			return 1;
		}
		if (err)
			fprintf(stderr, "kmbench: preload incomplete\n");
	}
	if (opt.duration > 0) {
		err = phase_run(MODE_TIMED, opt.udp, opt.conns, opt.window,
				opt.threads, opt.duration, opt.warmup, res);
		if (err) {
			fprintf(stderr, "kmbench: %s\n", strerror(-err));
			return 1;
		}
		print_result(res);
		fflush(stdout);
	}
	if (res->c.wrong) {
		fprintf(stderr, "kmbench: %llu WRONG values\n",
			(unsigned long long)res->c.wrong);
		return 1;
	}
	if (res->c.hits + res->c.misses + res->c.stored == 0) {
		fprintf(stderr, "kmbench: no successful reply\n");
		return 3;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct kmb_result res = {0};
	int rc = 1;

	if (parse_args(argc, argv))
		return 2;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	res.hist = malloc(sizeof(*res.hist));
	if (res.hist && !pattern_init())
		rc = run(&res);
	else
		fprintf(stderr, "kmbench: out of memory\n");
	free(res.hist);
	free(pattern);
	return rc;
}
