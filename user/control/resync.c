// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The resync engine: see resync.h for what it guarantees.  One thread, two
 * connections to the source (the dump stream and the fetches) and one to
 * the target.  Every exchange is a whole batch written with one send and
 * read back in large reads, so the cost per key is parsing, not syscalls.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "buf.h"
#include "mcclient.h"
#include "resync.h"

#define KM_RS_BATCH	2048
#define KM_RS_TIMEOUT	3000
#define KM_RS_READ_MIN	(256 * 1024)
#define KM_RS_POLL_STEP 100 /* ms: how soon a cancel is noticed */
#define KM_NO_OWNER	0xff
#define KM_RS_SWEEPS	4 /* dumps of one source at most */
/* flush_all once across kmagentd: see km_flush_once */
#define KM_FLUSH_LOCK	   KM_INTERNAL_PREFIX "flushed"
#define KM_FLUSH_LOCK_SECS 60
#define KM_FLUSH_MARK	   KM_INTERNAL_PREFIX "flushwait:"
#define KM_FLUSH_MARK_SECS 600
#define KM_FLUSH_WAIT_MS   500

/* memcached reads an exptime above 30 days as an absolute unix time */
#define KM_REALTIME_MAXDELTA (60 * 60 * 24 * 30)

struct km_conn {
	int fd;
	struct km_buf in;
	size_t pos; /* parsed up to here */
	int timeout_ms;
	const int *cancel;
};

/* One key of a batch: offset into the batch's key arena, length. */
struct km_bkey {
	__u32 off;
	__u16 len;
	__u8 stored;   /* the target answered HD to our add */
	__u64 cas;     /* the CAS of the item we stored */
	__u64 src_cas; /* the source's, when we fetched it */
};

struct km_batch {
	struct km_bkey *keys;
	unsigned int n, cap;
	struct km_buf arena;
	unsigned int next; /* mg parsing: first key not yet answered */
	unsigned int nstore;
	unsigned int *store; /* indexes of keys sent to the target */
	unsigned int nparsed;
	struct km_buf out; /* the request to the target, being built */
	__u64 copied, existed, missing, undone, failed;
};

/*
 * The keys copied to the target whose delete check (resync.h) is still
 * to do, oldest first, each due verify_delay_ms after its copy.  A queue
 * rather than the previous batch: a step checks the keys that are due
 * and waits for none, so a replay of many batches waits for its delay
 * once, not once a batch.
 */
struct km_check {
	__u32 off; /* into km_checks.arena */
	__u16 len;
	__u64 cas;     /* the item we stored */
	__u64 src_cas; /* the source's when we fetched it */
	struct timespec at;
};

struct km_checks {
	struct km_check *q;
	unsigned int head, n, cap; /* q[head..n) wait */
	struct km_buf arena;
};

/*
 * The keys already handled, as 64-bit hashes: a key listed again (by a
 * later dump of the same source, or by the next source after a failure) is
 * not fetched again.  Open addressing, 0 = empty.
 */
struct km_keyset {
	__u64 *h;
	size_t n, cap;
};

struct km_resync {
	struct km_resync_opts o;
	struct km_keyset done;
	__u8 *owner; /* per slot: index into o.sources, or KM_NO_OWNER */
	bool dead[KM_MAX_BACKENDS];
	pthread_t thread;
	bool started, joined;
	int cancel;
	pthread_mutex_t lock;
	struct km_resync_progress p;
	struct timespec t0, t1; /* start, end */ /* unix time at the start of
						    the current batch */
};

const char *km_resync_state_name(enum km_resync_state st)
{
	switch (st) {
	case KM_RS_IDLE:
		return "idle";
	case KM_RS_RUNNING:
		return "running";
	case KM_RS_DONE:
		return "done";
	case KM_RS_FAILED:
		return "failed";
	case KM_RS_CANCELLED:
		return "cancelled";
	}
	return "?";
}

/* ---- buffers ---------------------------------------------------------- */

/* lib/buf.c's, with resync's error: -ENOMEM */
static int km_buf_add(struct km_buf *b, const void *d, size_t n)
{
	return km_buf_append(b, d, n) ? -ENOMEM : 0;
}

static int km_buf_printf(struct km_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (km_buf_reserve(b, 64))
		return -ENOMEM;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -EINVAL;
		if ((size_t)n < b->cap - b->len)
			break;
		if (km_buf_reserve(b, n + 1))
			return -ENOMEM;
	}
	b->len += n;
	return 0;
}

/* ---- helpers exposed for tests ------------------------------------------ */

static int km_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* metadump URI-encodes keys; returns the decoded length or -EINVAL. */
int km_uri_decode(const char *in, size_t len, char *out, size_t cap)
{
	size_t i, n = 0;

	for (i = 0; i < len; i++) {
		char c = in[i];

		if (c == '%') {
			int hi, lo;

			if (i + 2 >= len)
				return -EINVAL;
			hi = km_hexval(in[i + 1]);
			lo = km_hexval(in[i + 2]);
			if (hi < 0 || lo < 0)
				return -EINVAL;
			c = (char)(hi << 4 | lo);
			i += 2;
		}
		if (n >= cap)
			return -EINVAL;
		out[n++] = c;
	}
	return (int)n;
}

/*
 * The T token for `ms` from mg's remaining TTL: -1 (never expires) is 0;
 * 0 (expiring within the second) is 1; beyond 30 days memcached wants an
 * absolute time.
 */
long km_resync_ttl_for_ms(long remaining, long now)
{
	if (remaining < 0)
		return 0;
	if (remaining == 0)
		return 1;
	if (remaining > KM_REALTIME_MAXDELTA)
		return now + remaining;
	return remaining;
}

/* ---- the set of keys handled ------------------------------------------- */

static __u64 km_key_hash64(const char *key, size_t len)
{
	__u64 h = 14695981039346656037ull;
	size_t i;

	for (i = 0; i < len; i++)
		h = (h ^ (unsigned char)key[i]) * 1099511628211ull;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h ? h : 1;
}

static bool km_keyset_has(const struct km_keyset *ks, __u64 h)
{
	size_t i;

	if (!ks->cap)
		return false;
	for (i = h & (ks->cap - 1); ks->h[i]; i = (i + 1) & (ks->cap - 1))
		if (ks->h[i] == h)
			return true;
	return false;
}

static void km_keyset_put(struct km_keyset *ks, __u64 h)
{
	size_t i;

	for (i = h & (ks->cap - 1); ks->h[i]; i = (i + 1) & (ks->cap - 1))
		if (ks->h[i] == h)
			return;
	ks->h[i] = h;
	ks->n++;
}

static int km_keyset_add(struct km_keyset *ks, __u64 h)
{
	if ((ks->n + 1) * 2 > ks->cap) {
		struct km_keyset big = {.cap = ks->cap ? ks->cap * 2 : 65536};
		size_t i;

		big.h = calloc(big.cap, sizeof(*big.h));
		if (!big.h)
			return -ENOMEM;
		for (i = 0; i < ks->cap; i++)
			if (ks->h[i])
				km_keyset_put(&big, ks->h[i]);
		free(ks->h);
		*ks = big;
	}
	km_keyset_put(ks, h);
	return 0;
}

/* ---- connections -------------------------------------------------------- */

static int km_conn_open(struct km_conn *c, const union km_addr *a,
			int timeout_ms, const int *cancel)
{
	struct timespec deadline;
	int fd;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->timeout_ms = timeout_ms;
	c->cancel = cancel;
	km_deadline_in(&deadline, timeout_ms);
	fd = km_mc_connect(a, &deadline);
	if (fd < 0)
		return fd;
	c->fd = fd;
	return 0;
}

static void km_conn_close(struct km_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	km_buf_free(&c->in);
	c->pos = 0;
}

/* Drop what has been parsed, keep room for a large read. */
static int km_conn_make_room(struct km_conn *c)
{
	if (c->pos && c->pos == c->in.len) {
		c->in.len = c->pos = 0;
	} else if (c->pos > c->in.cap / 2) {
		memmove(c->in.p, c->in.p + c->pos, c->in.len - c->pos);
		c->in.len -= c->pos;
		c->pos = 0;
	}
	return km_buf_reserve(&c->in, KM_RS_READ_MIN);
}

/*
 * Wait until fd is ready for `events`, in short steps so that a cancel is
 * seen; -ETIMEDOUT after timeout_ms of silence.
 */
static int km_conn_wait(struct km_conn *c, short events, short *revents)
{
	struct pollfd pfd = {.fd = c->fd, .events = events};
	int waited = 0, n;

	for (;;) {
		if (__atomic_load_n(c->cancel, __ATOMIC_RELAXED))
			return -ECANCELED;
		n = poll(&pfd, 1, KM_RS_POLL_STEP);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n > 0) {
			*revents = pfd.revents;
			return 0;
		}
		waited += KM_RS_POLL_STEP;
		if (waited >= c->timeout_ms)
			return -ETIMEDOUT;
	}
}

/* One read of whatever is there; 0 on EOF is an error for us. */
static int km_conn_read_some(struct km_conn *c)
{
	ssize_t n;

	if (km_conn_make_room(c))
		return -ENOMEM;
	n = read(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len);
	if (n == 0)
		return -ECONNRESET;
	if (n < 0)
		return (errno == EAGAIN || errno == EINTR) ? 0 : -errno;
	c->in.len += n;
	return 1;
}

/*
 * Parser of an exchange: consumes complete records from c->in at c->pos;
 * returns 1 when the exchange is complete, 0 to wait for more, <0 error.
 */
typedef int (*km_parse_fn)(struct km_conn *c, void *ctx);

/*
 * Send `out` whole while reading the replies, so that neither side blocks
 * on a full socket buffer however big the batch.
 */
static int km_conn_exchange(struct km_conn *c, const struct km_buf *out,
			    km_parse_fn parse, void *ctx)
{
	size_t sent = 0;
	short rev;
	int err;

	for (;;) {
		short ev = POLLIN | (sent < out->len ? POLLOUT : 0);

		err = km_conn_wait(c, ev, &rev);
		if (err)
			return err;
		if (rev & (POLLERR | POLLNVAL))
			return -ECONNRESET;
		if (sent < out->len && (rev & POLLOUT)) {
			ssize_t n = send(c->fd, out->p + sent, out->len - sent,
					 MSG_NOSIGNAL);

			if (n < 0 && errno != EAGAIN && errno != EINTR)
				return -errno;
			if (n > 0)
				sent += n;
		}
		if (rev & (POLLIN | POLLHUP)) {
			err = km_conn_read_some(c);
			if (err < 0)
				return err;
			err = parse(c, ctx);
			if (err)
				return err < 0 ? err
					       : (sent == out->len ? 0
								   : -EPROTO);
		}
	}
}

/* A complete line at c->pos, without its "\r\n" (or "\n"), or NULL. */
static char *km_conn_line(struct km_conn *c, size_t *len, size_t *total)
{
	char *s = c->in.p + c->pos, *nl;

	if (c->pos >= c->in.len)
		return NULL;
	nl = memchr(s, '\n', c->in.len - c->pos);
	if (!nl)
		return NULL;
	*total = nl - s + 1;
	*len = nl - s;
	if (*len && s[*len - 1] == '\r')
		(*len)--;
	return s;
}

static bool km_line_is(const char *s, size_t len, const char *word)
{
	size_t n = strlen(word);

	return len >= n && !memcmp(s, word, n) && (len == n || s[n] == ' ');
}

/* ---- batches ------------------------------------------------------------ */

static void km_batch_reset(struct km_batch *b)
{
	b->n = b->next = b->nstore = b->nparsed = 0;
	b->arena.len = b->out.len = 0;
}

static int km_batch_add(struct km_batch *b, const char *key, size_t len)
{
	if (b->n == b->cap) {
		unsigned int cap = b->cap ? b->cap * 2 : 1024;
		struct km_bkey *k = realloc(b->keys, cap * sizeof(*k));
		unsigned int *s;

		if (!k)
			return -ENOMEM;
		b->keys = k;
		s = realloc(b->store, cap * sizeof(*s));
		if (!s)
			return -ENOMEM;
		b->store = s;
		b->cap = cap;
	}
	b->keys[b->n].off = b->arena.len;
	b->keys[b->n].len = len;
	b->keys[b->n].stored = 0;
	b->keys[b->n].cas = 0;
	if (km_buf_add(&b->arena, key, len))
		return -ENOMEM;
	b->n++;
	return 0;
}

static const char *km_batch_key(const struct km_batch *b, unsigned int i)
{
	return b->arena.p + b->keys[i].off;
}

static void km_batch_free(struct km_batch *b)
{
	free(b->keys);
	free(b->store);
	km_buf_free(&b->arena);
	km_buf_free(&b->out);
}

/* ---- a batch's two exchanges -------------------------------------------- */

/*
 * One request to the source a batch: a plain `mg KEY c` for each copied
 * key whose delete check is due (still there as we copied it?  see
 * resync.h), then `mg KEY v f t k q` for each key of this batch, then
 * `mn`.  Its replies build, in b->out, the request to the target: a quiet
 * `md KEY C<cas>` for each checked key that the source lost or changed,
 * then an `ms` for each hit of this batch.  Two round trips a batch.
 */
struct km_step {
	const struct km_resync_opts *o;
	struct km_batch *b;
	struct km_checks *chk;
	unsigned int vnext; /* chk->q index of the next key to check */
	unsigned int vend;  /* and the end of those sent */
	unsigned int vleft; /* check replies still expected */
	unsigned int nmd;   /* md lines still to be answered EX or NF */
	long now;
};

/* "VA <len> f<flags> t<ttl> k<key> c<cas>"; returns 0 or -EPROTO. */
static int km_parse_va(const char *s, size_t len, size_t *vlen,
		       unsigned long *flags, long *ttl, const char **key,
		       size_t *klen, unsigned long long *cas)
{
	const char *end = s + len, *p = s + 3;
	char *e;

	*vlen = strtoul(p, &e, 10);
	if (e == p)
		return -EPROTO;
	*key = NULL;
	*flags = 0;
	*ttl = -1;
	*cas = 0;
	p = e;
	while (p < end) {
		const char *tok;

		while (p < end && *p == ' ')
			p++;
		if (p >= end)
			break;
		tok = p;
		while (p < end && *p != ' ')
			p++;
		switch (*tok) {
		case 'f':
			*flags = strtoul(tok + 1, NULL, 10);
			break;
		case 't':
			*ttl = strtol(tok + 1, NULL, 10);
			break;
		case 'k':
			*key = tok + 1;
			*klen = p - tok - 1;
			break;
		case 'c':
			*cas = strtoull(tok + 1, NULL, 10);
			break;
		}
	}
	return *key ? 0 : -EPROTO;
}

/* Find the key among those not yet answered; the skipped ones missed. */
static int km_batch_match(struct km_batch *b, const char *key, size_t klen)
{
	unsigned int i;

	for (i = b->next; i < b->n; i++) {
		if (b->keys[i].len == klen &&
		    !memcmp(km_batch_key(b, i), key, klen)) {
			b->missing += i - b->next;
			b->next = i + 1;
			return (int)i;
		}
	}
	return -EPROTO;
}

static int km_append_ms(struct km_batch *b, const char *key, size_t klen,
			const char *val, size_t vlen, unsigned long flags,
			long ttl, long now)
{
	if (km_buf_add(&b->out, "ms ", 3) || km_buf_add(&b->out, key, klen) ||
	    km_buf_printf(&b->out, " %zu F%lu T%ld ME c\r\n", vlen, flags,
			  km_resync_ttl_for_ms(ttl, now)) ||
	    km_buf_add(&b->out, val, vlen + 2))
		return -ENOMEM;
	return 0;
}

static int km_add_key_line(struct km_buf *out, const char *pre, const char *key,
			   size_t klen, const char *post)
{
	if (km_buf_add(out, pre, strlen(pre)) || km_buf_add(out, key, klen) ||
	    km_buf_add(out, post, strlen(post)))
		return -ENOMEM;
	return 0;
}

static int km_build_src(struct km_buf *req, struct km_step *st, bool verify)
{
	const struct km_batch *b = st->b;
	const struct km_checks *chk = st->chk;
	unsigned int i;

	req->len = 0;
	st->vnext = st->vend = chk->head;
	for (i = chk->head; verify && i < chk->n && st->vleft < st->o->batch &&
			    km_ms_left(&chk->q[i].at) <= 0;
	     i++) {
		const struct km_check *k = &chk->q[i];

		if (km_add_key_line(req, "mg ", chk->arena.p + k->off, k->len,
				    " c\r\n"))
			return -ENOMEM;
		st->vleft++;
		st->vend = i + 1;
	}
	for (i = 0; i < b->n; i++)
		if (km_add_key_line(req, "mg ", km_batch_key(b, i),
				    b->keys[i].len, " v f t k c q\r\n"))
			return -ENOMEM;
	if (!req->len)
		return 0;
	return km_buf_add(req, "mn\r\n", 4);
}

/*
 * A reply to the delete check: HD c<cas> = still there as we copied it;
 * EN = deleted meanwhile, or another cas = written again meanwhile.
 * Either way our copy may be older than what a client wrote since (a
 * replay of another kmagentd may even have deleted the newer value from
 * the target just before our add): our very item goes, and the key is
 * found by the null-fallback until it is written or repaired.
 */
static int km_parse_check(struct km_step *st, const char *s, size_t len)
{
	const struct km_check *k;
	const char *key;

	if (st->vnext >= st->vend)
		return -EPROTO;
	k = &st->chk->q[st->vnext++];
	key = st->chk->arena.p + k->off;
	st->vleft--;
	if (km_line_is(s, len, "HD")) {
		const char *cp = memchr(s, 'c', len);

		if (!cp || strtoull(cp + 1, NULL, 10) == k->src_cas)
			return 0;
	} else if (!km_line_is(s, len, "EN")) {
		return -EPROTO;
	}
	st->b->undone++;
	st->nmd++;
	if (st->o->on_owed)
		st->o->on_owed(st->o->target_id, key, k->len);
	if (km_add_key_line(&st->b->out, "md ", key, k->len, "") ||
	    km_buf_printf(&st->b->out, " C%llu q\r\n",
			  (unsigned long long)k->cas))
		return -ENOMEM;
	return 0;
}

static int km_parse_src(struct km_conn *c, void *ctx)
{
	struct km_step *st = ctx;
	struct km_batch *b = st->b;
	size_t len, total, vlen, klen = 0;
	unsigned long long cas;
	unsigned long flags;
	const char *key;
	char *s;
	long ttl;
	int i;

	while ((s = km_conn_line(c, &len, &total))) {
		if (st->vleft) {
			i = km_parse_check(st, s, len);
			if (i)
				return i;
			c->pos += total;
			continue;
		}
		if (km_line_is(s, len, "MN")) {
			c->pos += total;
			b->missing += b->n - b->next;
			b->next = b->n;
			return 1;
		}
		if (!km_line_is(s, len, "VA") ||
		    km_parse_va(s, len, &vlen, &flags, &ttl, &key, &klen, &cas))
			return -EPROTO;
		if (c->in.len - c->pos < total + vlen + 2)
			return 0; /* value not all here yet */
		if (memcmp(s + total + vlen, "\r\n", 2))
			return -EPROTO;
		i = km_batch_match(b, key, klen);
		if (i < 0)
			return i;
		b->store[b->nstore++] = i;
		b->keys[i].src_cas = cas;
		if (km_append_ms(b, key, klen, s + total, vlen, flags, ttl,
				 st->now))
			return -ENOMEM;
		c->pos += total + vlen + 2;
	}
	return 0;
}

/*
 * The target's replies: EX or NF for a quiet md that did not delete (a
 * newer write, or gone already), then HD c<cas> / NS / SERVER_ERROR for
 * each ms in order.
 */
static int km_parse_dst(struct km_conn *c, void *ctx)
{
	struct km_step *st = ctx;
	struct km_batch *b = st->b;
	size_t len, total;
	char *s;

	while ((s = km_conn_line(c, &len, &total))) {
		if (km_line_is(s, len, "MN")) {
			c->pos += total;
			return b->nparsed == b->nstore ? 1 : -EPROTO;
		}
		if (km_line_is(s, len, "EX") || km_line_is(s, len, "NF")) {
			if (!st->nmd)
				return -EPROTO;
			st->nmd--;
			b->undone--;
			c->pos += total;
			continue;
		}
		if (b->nparsed >= b->nstore)
			return -EPROTO;
		if (km_line_is(s, len, "HD")) {
			struct km_bkey *k = &b->keys[b->store[b->nparsed]];
			const char *cp = memchr(s, 'c', len);

			k->stored = 1;
			k->cas = cp ? strtoull(cp + 1, NULL, 10) : 0;
			b->copied++;
		} else if (km_line_is(s, len, "NS")) {
			b->existed++;
		} else if (km_line_is(s, len, "SERVER_ERROR")) {
			b->failed++; /* e.g. out of memory: keep going */
		} else {
			return -EPROTO;
		}
		b->nparsed++;
		c->pos += total;
	}
	return 0;
}

/* ---- one batch ---------------------------------------------------------- */

struct km_pass {
	struct km_resync *rs;
	struct km_conn dump, src, dst;
	struct km_batch cur;  /* being filled */
	struct km_checks chk; /* copied, delete check still to do */
	struct km_buf req;    /* the request to the source */
	bool src_failed;      /* else the target failed */
	__u64 found;	      /* keys to copy listed by the current dump */
};

/* A new source: what was not checked of the last one is not checked. */
static void km_pass_reset(struct km_pass *ps)
{
	km_batch_reset(&ps->cur);
	ps->chk.head = ps->chk.n = 0;
	ps->chk.arena.len = 0;
}

static void km_pass_free(struct km_pass *ps)
{
	km_batch_free(&ps->cur);
	free(ps->chk.q);
	km_buf_free(&ps->chk.arena);
	km_buf_free(&ps->req);
}

/* Drop the checked keys once they are half the queue (amortised O(1)). */
static void km_checks_compact(struct km_checks *c)
{
	unsigned int i, base;

	if (c->head == c->n) {
		c->head = c->n = 0;
		c->arena.len = 0;
		return;
	}
	if (c->head < 1024 || c->head * 2 < c->n)
		return;
	base = c->q[c->head].off;
	memmove(c->arena.p, c->arena.p + base, c->arena.len - base);
	c->arena.len -= base;
	memmove(c->q, c->q + c->head, (c->n - c->head) * sizeof(*c->q));
	c->n -= c->head;
	c->head = 0;
	for (i = 0; i < c->n; i++)
		c->q[i].off -= base;
}

/* The keys b stored on the target, their checks due delay_ms from now. */
static int km_checks_push(struct km_checks *c, const struct km_batch *b,
			  int delay_ms)
{
	struct timespec at;
	unsigned int i;

	km_deadline_in(&at, delay_ms);
	for (i = 0; i < b->nstore; i++) {
		const struct km_bkey *k = &b->keys[b->store[i]];

		if (!k->stored)
			continue;
		if (c->n == c->cap) {
			unsigned int cap = c->cap ? c->cap * 2 : 1024;
			struct km_check *q = realloc(c->q, cap * sizeof(*q));

			if (!q)
				return -ENOMEM;
			c->q = q;
			c->cap = cap;
		}
		c->q[c->n] = (struct km_check){.off = c->arena.len,
					       .len = k->len,
					       .cas = k->cas,
					       .src_cas = k->src_cas,
					       .at = at};
		if (km_buf_add(&c->arena, b->arena.p + k->off, k->len))
			return -ENOMEM;
		c->n++;
	}
	return 0;
}

/* Counters to the progress; with keys, the batch's keys are done. */
static int km_resync_publish(struct km_resync *rs, struct km_batch *b,
			     bool keys)
{
	unsigned int i;

	for (i = 0; keys && i < b->n; i++)
		if (km_keyset_add(&rs->done, km_key_hash64(km_batch_key(b, i),
							   b->keys[i].len)))
			return -ENOMEM;
	pthread_mutex_lock(&rs->lock);
	if (keys)
		rs->p.matched += b->n;
	rs->p.copied += b->copied;
	rs->p.existed += b->existed;
	rs->p.missing += b->missing;
	rs->p.undone += b->undone;
	rs->p.failed += b->failed;
	pthread_mutex_unlock(&rs->lock);
	b->copied = b->existed = b->missing = b->undone = b->failed = 0;
	return 0;
}

/* Until the oldest delete check is due (verify_delay_ms), or cancelled. */
static int km_verify_wait(const struct km_resync *rs,
			  const struct km_checks *chk)
{
	long left;

	if (chk->head == chk->n)
		return 0;
	while ((left = km_ms_left(&chk->q[chk->head].at)) > 0) {
		if (__atomic_load_n(&rs->cancel, __ATOMIC_RELAXED))
			return -ECANCELED;
		usleep((left < KM_RS_POLL_STEP ? left : KM_RS_POLL_STEP) *
		       1000);
	}
	return 0;
}

/* The two exchanges of one step (see struct km_step). */
static int km_step_exchange(struct km_pass *ps, struct km_step *st)
{
	struct km_resync *rs = ps->rs;
	int err;

	if (km_build_src(&ps->req, st, !rs->o.no_verify))
		return -ENOMEM;
	if (!ps->req.len)
		return 0;
	ps->src_failed = true;
	err = km_conn_exchange(&ps->src, &ps->req, km_parse_src, st);
	if (err)
		return err;
	ps->chk.head = st->vend; /* checked: their md, if any, in b->out */
	if (st->b->n && rs->o.on_fetched)
		rs->o.on_fetched(rs, rs->o.arg);
	if (!st->b->out.len)
		return 0;
	if (km_buf_add(&st->b->out, "mn\r\n", 4))
		return -ENOMEM;
	ps->src_failed = false;
	err = km_conn_exchange(&ps->dst, &st->b->out, km_parse_dst, st);
	if (!err && !rs->o.no_verify &&
	    km_checks_push(&ps->chk, st->b, rs->o.verify_delay_ms))
		return -ENOMEM;
	return err;
}

/* Copy the batch being filled, and do the delete checks that are due. */
static int km_batch_run(struct km_pass *ps)
{
	struct km_resync *rs = ps->rs;
	struct km_batch *b = &ps->cur;
	struct km_step st = {
		.o = &rs->o, .b = b, .chk = &ps->chk, .now = time(NULL)};
	int err;

	b->out.len = 0;
	b->nstore = b->nparsed = b->next = 0;
	err = km_step_exchange(ps, &st);
	if (err)
		return err;
	ps->src_failed = false;
	if (km_resync_publish(rs, b, true))
		return -ENOMEM;
	if (b->n && rs->o.on_batch)
		rs->o.on_batch(rs, rs->o.arg);
	km_batch_reset(b);
	km_checks_compact(&ps->chk);
	return 0;
}

/* The last keys of a dump, then every delete check left, once due. */
static int km_batch_flush(struct km_pass *ps)
{
	int err = km_batch_run(ps);

	while (!err && ps->chk.head < ps->chk.n) {
		err = km_verify_wait(ps->rs, &ps->chk);
		if (!err)
			err = km_batch_run(ps);
	}
	return err;
}

/* ---- one pass over one source ------------------------------------------- */

/* "key=<uri-encoded> exp=..." -> decoded key, or <0 */
static int km_dump_key(const char *s, size_t len, char *key)
{
	const char *e;

	if (len < 4 || memcmp(s, "key=", 4))
		return -EPROTO;
	e = memchr(s, ' ', len);
	if (!e)
		e = s + len;
	return km_uri_decode(s + 4, e - s - 4, key, KM_KEY_MAX);
}

static int km_dump_start(struct km_pass *ps)
{
	static const struct km_buf req = {
		.p = "lru_crawler metadump all\r\n",
		.len = 26,
	};
	ssize_t n;

	n = send(ps->dump.fd, req.p, req.len, MSG_NOSIGNAL);
	return n == (ssize_t)req.len ? 0 : -EIO;
}

/*
 * Feed the keys of one dump line batch by batch.  Returns 1 at END, 0 to
 * read more, <0 on error.
 */
static int km_dump_consume(struct km_pass *ps, unsigned int src_idx)
{
	struct km_resync *rs = ps->rs;
	unsigned int batch = rs->o.batch;
	char key[KM_KEY_MAX + 1];
	size_t len, total;
	__u64 scanned = 0;
	char *s;
	int err = 0, klen;

	while ((s = km_conn_line(&ps->dump, &len, &total))) {
		ps->dump.pos += total;
		if (km_line_is(s, len, "END")) {
			err = 1;
			break;
		}
		ps->src_failed = true;
		if (km_line_is(s, len, "BUSY")) {
			err = -EBUSY;
			break;
		}
		klen = km_dump_key(s, len, key);
		if (klen <= 0) {
			err = -EPROTO;
			break;
		}
		scanned++;
		/* kmagentd's own keys (fences) belong to their backend */
		if (klen >= (int)sizeof(KM_INTERNAL_PREFIX) - 1 &&
		    !memcmp(key, KM_INTERNAL_PREFIX,
			    sizeof(KM_INTERNAL_PREFIX) - 1))
			continue;
		if (rs->owner[km_ring_slot_of(key, klen)] != src_idx ||
		    km_keyset_has(&rs->done, km_key_hash64(key, klen)))
			continue;
		ps->found++;
		err = km_batch_add(&ps->cur, key, klen);
		if (!err && ps->cur.n >= batch)
			err = km_batch_run(ps);
		if (err)
			break;
	}
	pthread_mutex_lock(&rs->lock);
	rs->p.scanned += scanned;
	pthread_mutex_unlock(&rs->lock);
	return err;
}

static int km_dump_read(struct km_pass *ps)
{
	short rev;
	int err;

	ps->src_failed = true;
	err = km_conn_wait(&ps->dump, POLLIN, &rev);

	if (err)
		return err;
	return km_conn_read_some(&ps->dump) < 0 ? -ECONNRESET : 0;
}

/* One whole dump, the keys to copy fed into batches. */
static int km_dump_once(struct km_pass *ps, unsigned int src_idx)
{
	int err, tries = 0;

	for (;;) {
		ps->src_failed = true;
		ps->dump.pos = ps->dump.in.len = 0;
		err = km_dump_start(ps);
		while (!err) {
			err = km_dump_consume(ps, src_idx);
			if (!err)
				err = km_dump_read(ps);
		}
		/* another crawl is running on the source: wait for it */
		if (err != -EBUSY || ++tries > 50)
			break;
		usleep(100 * 1000);
	}
	return err == 1 ? 0 : err;
}

/* ---- replay: a list of keys instead of a dump ------------------------- */

/*
 * The source of k's slot owes k itself: its copy may be older than what
 * the target missed.  Not copied now: the target keeps owing k (reads
 * avoid it), and a later replay copies it once a source is settled.
 */
static bool km_replay_source_owes(struct km_resync *rs, unsigned int src_idx,
				  const struct km_jkey *k)
{
	if (!rs->o.source_owes ||
	    !rs->o.source_owes(rs->o.sources[src_idx].id, k->key, k->len))
		return false;
	if (km_keyset_add(&rs->done, km_key_hash64(k->key, k->len)))
		return false; /* no memory: copied as before */
	pthread_mutex_lock(&rs->lock);
	rs->p.deferred++;
	pthread_mutex_unlock(&rs->lock);
	if (rs->o.on_owed)
		rs->o.on_owed(rs->o.target_id, k->key, k->len);
	return true;
}

/* The replay keys this source holds (their slot is its), in batches. */
static int km_replay_feed(struct km_pass *ps, unsigned int src_idx)
{
	struct km_resync *rs = ps->rs;
	size_t i;
	int err = 0;

	for (i = 0; i < rs->o.nr_keys && !err; i++) {
		const struct km_jkey *k = &rs->o.keys[i];

		if (rs->owner[km_ring_slot_of(k->key, k->len)] != src_idx ||
		    km_keyset_has(&rs->done, km_key_hash64(k->key, k->len)))
			continue;
		if (km_replay_source_owes(rs, src_idx, k))
			continue;
		err = km_batch_add(&ps->cur, k->key, k->len);
		if (!err && ps->cur.n >= rs->o.batch)
			err = km_batch_run(ps);
	}
	return err ? err : km_batch_flush(ps);
}

/* Replies to quiet deletes or a flush_all, up to the closing MN. */
static int km_parse_quiet(struct km_conn *c, void *ctx)
{
	size_t len, total;
	char *s;

	(void)ctx;
	while ((s = km_conn_line(c, &len, &total))) {
		c->pos += total;
		if (km_line_is(s, len, "MN"))
			return 1;
		/* EX: a quiet md C<cas> that a newer write beat, as meant */
		if (!km_line_is(s, len, "NF") && !km_line_is(s, len, "HD") &&
		    !km_line_is(s, len, "EX") && !km_line_is(s, len, "OK"))
			return -EPROTO;
	}
	return 0;
}

/* A one-line answer: yes sets *out, no leaves it; anything else -EPROTO. */
static int km_parse_yes_no(struct km_conn *c, const char *yes, const char *no,
			   int *out)
{
	size_t len, total;
	char *s = km_conn_line(c, &len, &total);

	if (!s)
		return 0;
	c->pos += total;
	if (km_line_is(s, len, yes))
		*out = 1;
	else if (!km_line_is(s, len, no))
		return -EPROTO;
	return 1;
}

/* STORED or NOT_STORED, into *(int *)ctx */
static int km_parse_stored(struct km_conn *c, void *ctx)
{
	return km_parse_yes_no(c, "STORED", "NOT_STORED", ctx);
}

/* HD = the key is there, EN = it is not, into *(int *)ctx */
static int km_parse_present(struct km_conn *c, void *ctx)
{
	return km_parse_yes_no(c, "HD", "EN", ctx);
}

/* flush_all, then the lock again (flush_all removed it) */
static int km_flush_now(struct km_conn *dst, const char *owner)
{
	struct km_buf out = {0};
	int err;

	err = km_buf_printf(&out,
			    "flush_all\r\nset %s 0 %d %zu noreply\r\n%s\r\n"
			    "mn\r\n",
			    KM_FLUSH_LOCK, KM_FLUSH_LOCK_SECS, strlen(owner),
			    owner);
	if (!err)
		err = km_conn_exchange(dst, &out, km_parse_quiet, NULL);
	km_buf_free(&out);
	return err;
}

/*
 * flush_all the target once across kmagentd that lost their journals of
 * it.  Each first leaves a mark (KM_FLUSH_MARK<name>) on the target, then
 * tries the lock (`add KM_FLUSH_LOCK`).  The one that takes it flushes.
 * The others wait for their mark to vanish: a flush after the mark came
 * after every write they missed (they write to the target again by the
 * time they resync it), so it covers them.  A mark still there after
 * KM_FLUSH_WAIT_MS means the lock is from an earlier flush: flush again.
 */
static int km_flush_once(struct km_resync *rs, struct km_conn *dst)
{
	const char *owner = rs->o.lock_owner ? rs->o.lock_owner : "kmagentd";
	struct km_buf out = {0};
	int stored = 0, present = 1, err, waited;

	err = km_buf_printf(&out,
			    "set %s%s 0 %d 1 noreply\r\n1\r\n"
			    "add %s 0 %d %zu\r\n%s\r\n",
			    KM_FLUSH_MARK, owner, KM_FLUSH_MARK_SECS,
			    KM_FLUSH_LOCK, KM_FLUSH_LOCK_SECS, strlen(owner),
			    owner);
	if (!err)
		err = km_conn_exchange(dst, &out, km_parse_stored, &stored);
	for (waited = 0;
	     !err && !stored && present && waited < KM_FLUSH_WAIT_MS;
	     waited += 50) {
		usleep(50 * 1000);
		out.len = 0;
		present = 0;
		err = km_buf_printf(&out, "mg %s%s\r\n", KM_FLUSH_MARK, owner);
		if (!err)
			err = km_conn_exchange(dst, &out, km_parse_present,
					       &present);
	}
	km_buf_free(&out);
	if (err)
		return err;
	if (!stored && !present) {
		pthread_mutex_lock(&rs->lock);
		rs->p.flush_skipped = true;
		pthread_mutex_unlock(&rs->lock);
		return 0;
	}
	return km_flush_now(dst, owner);
}

/* The cas= field of a metadump line; 0 when it has none. */
static unsigned long long km_dump_cas(const char *s, size_t len)
{
	unsigned long long cas = 0;
	size_t i;

	for (i = 0; i + 4 < len; i++) {
		if ((i && s[i - 1] != ' ') || memcmp(s + i, "cas=", 4))
			continue;
		for (i += 4; i < len && s[i] >= '0' && s[i] <= '9'; i++)
			cas = cas * 10 + (s[i] - '0');
		return cas;
	}
	return 0;
}

/* Delete what buffered md lines ask, quietly, and start a new batch. */
static int km_purge_flush(struct km_conn *dst, struct km_buf *out)
{
	int err;

	if (!out->len)
		return 0;
	err = km_buf_add(out, "mn\r\n", 4);
	if (!err)
		err = km_conn_exchange(dst, out, km_parse_quiet, NULL);
	out->len = 0;
	return err;
}

/* The target's own dump: its keys of joined slots, deleted by cas. */
static int km_purge_dump(struct km_resync *rs, struct km_conn *dump,
			 struct km_conn *dst, struct km_buf *out)
{
	char key[KM_KEY_MAX + 1], cas[32];
	size_t len, total;
	int err = 0, klen;
	short rev;
	char *s;

	if (send(dump->fd, "lru_crawler metadump all\r\n", 26, MSG_NOSIGNAL) !=
	    26)
		return -EIO;
	for (;;) {
		while ((s = km_conn_line(dump, &len, &total))) {
			dump->pos += total;
			if (km_line_is(s, len, "END"))
				return km_purge_flush(dst, out);
			if (km_line_is(s, len, "BUSY"))
				return -EBUSY;
			klen = km_dump_key(s, len, key);
			if (klen <= 0)
				return -EPROTO;
			if ((klen >= (int)sizeof(KM_INTERNAL_PREFIX) - 1 &&
			     !memcmp(key, KM_INTERNAL_PREFIX,
				     sizeof(KM_INTERNAL_PREFIX) - 1)) ||
			    !km_slot_bit(rs->o.purge,
					 km_ring_slot_of(key, klen)))
				continue;
			snprintf(cas, sizeof(cas), " C%llu q\r\n",
				 km_dump_cas(s, len));
			err = km_add_key_line(out, "md ", key, klen, cas);
			if (!err && out->len >= 64 * 1024)
				err = km_purge_flush(dst, out);
			if (err)
				return err;
			pthread_mutex_lock(&rs->lock);
			rs->p.purged++;
			pthread_mutex_unlock(&rs->lock);
		}
		err = km_conn_wait(dump, POLLIN, &rev);
		if (!err && km_conn_read_some(dump) < 0)
			err = -ECONNRESET;
		if (err)
			return err;
	}
}

/*
 * A backend that joins slots (a reload, a replicas change) may hold old
 * copies of their keys from when it was last their replica: values
 * deleted or overwritten since, which an add-mode copy would keep and a
 * read would serve.  They go before anything is copied.
 */
static int km_purge_target(struct km_resync *rs, struct km_conn *dst)
{
	struct km_buf out = {0};
	struct km_conn dump;
	int err, tries = 0;

	do {
		err = km_conn_open(&dump, &rs->o.target, rs->o.timeout_ms,
				   &rs->cancel);
		if (!err)
			err = km_purge_dump(rs, &dump, dst, &out);
		km_conn_close(&dump);
		out.len = 0;
		/* another crawl is running on it: wait for that one */
		if (err == -EBUSY)
			usleep(100 * 1000);
	} while (err == -EBUSY && ++tries < 50);
	km_buf_free(&out);
	return err;
}

/* Is backend id a live source of this resync? */
static bool km_live_source(const struct km_resync *rs, __u8 id)
{
	unsigned int i;

	for (i = 0; i < rs->o.nr_sources; i++)
		if (rs->o.sources[i].id == id)
			return !rs->dead[i];
	return false;
}

/*
 * May a replay key be replaced on the target: some live replica of its
 * slot holds it without owing it?
 */
static bool km_replay_has_clean_source(const struct km_resync *rs,
				       const struct km_slot *slot,
				       const struct km_jkey *k)
{
	unsigned int i;

	if (!rs->o.source_owes)
		return true;
	for (i = 0; i < slot->nr && i < KM_MAX_REPLICAS; i++)
		if (slot->be[i] != rs->o.target_id &&
		    km_live_source(rs, slot->be[i]) &&
		    !rs->o.source_owes(slot->be[i], k->key, k->len))
			return true;
	return false;
}

/*
 * Every live replica of its slot owes the key: no copy is known good, and
 * none is deleted.  The first of them in the slot keeps its copy and is
 * taken as right (counted: ambiguous); the others keep owing the key, so
 * that reads avoid them, and copy it from the first once it is settled.
 */
static bool km_replay_first_of_owing(const struct km_resync *rs,
				     const struct km_slot *slot)
{
	unsigned int i;

	for (i = 0; i < slot->nr && i < KM_MAX_REPLICAS; i++) {
		if (slot->be[i] == rs->o.target_id)
			return true;
		if (km_live_source(rs, slot->be[i]))
			return false;
	}
	return true;
}

/* The keys no clean source holds: done before anything starts. */
static int km_replay_keep_ambiguous(struct km_resync *rs)
{
	const struct km_slot *slot;
	size_t i;
	bool first;
	int err = 0;

	for (i = 0; i < rs->o.nr_keys && !err; i++) {
		const struct km_jkey *k = &rs->o.keys[i];

		slot = &rs->o.ring->slots[km_ring_slot_of(k->key, k->len)];
		if (km_replay_has_clean_source(rs, slot, k))
			continue;
		err = km_keyset_add(&rs->done, km_key_hash64(k->key, k->len));
		if (err)
			break;
		first = km_replay_first_of_owing(rs, slot);
		pthread_mutex_lock(&rs->lock);
		if (first)
			rs->p.ambiguous++;
		else
			rs->p.deferred++;
		pthread_mutex_unlock(&rs->lock);
		if (!first && rs->o.on_owed)
			rs->o.on_owed(rs->o.target_id, k->key, k->len);
	}
	return err;
}

/*
 * Before any copy: flush the target if asked, and delete every replay key
 * from it, so that a stale copy cannot survive (a copy is an add).  A
 * client write that lands meanwhile is newer than anything we copy: the
 * add then leaves it alone.
 */
static int km_replay_prepare(struct km_resync *rs, struct km_conn *dst)
{
	struct km_buf out = {0};
	size_t i = 0;
	int err = 0;

	if (rs->o.flush_first)
		err = km_flush_once(rs, dst);
	else
		err = km_replay_keep_ambiguous(rs);
	while (!err && i < rs->o.nr_keys) {
		out.len = 0;
		for (; i < rs->o.nr_keys && out.len < 64 * 1024 && !err; i++) {
			const struct km_jkey *k = &rs->o.keys[i];

			if (km_keyset_has(&rs->done,
					  km_key_hash64(k->key, k->len)))
				continue; /* kept: km_replay_keep_ambiguous */
			err = km_add_key_line(&out, "md ", k->key, k->len,
					      " q\r\n");
		}
		if (!err)
			err = km_buf_add(&out, "mn\r\n", 4);
		if (!err)
			err = km_conn_exchange(dst, &out, km_parse_quiet, NULL);
	}
	km_buf_free(&out);
	return err;
}

/* Replay keys whose slot no live source holds: they stay deleted. */
static void km_replay_count_dropped(struct km_resync *rs)
{
	size_t i;
	__u64 n = 0;

	for (i = 0; i < rs->o.nr_keys; i++)
		n += rs->owner[km_ring_slot_of(rs->o.keys[i].key,
					       rs->o.keys[i].len)] ==
		     KM_NO_OWNER;
	pthread_mutex_lock(&rs->lock);
	rs->p.dropped = n;
	rs->p.total_est = rs->o.nr_keys;
	pthread_mutex_unlock(&rs->lock);
}

/* Returns 0, -ECANCELED, or an error with ps->src_failed telling whose. */
static int km_pass_run(struct km_pass *ps, unsigned int src_idx)
{
	struct km_resync *rs = ps->rs;
	const union km_addr *sa = &rs->o.sources[src_idx].addr;
	int err, sweeps = 0;
	__u64 first = 0;

	ps->src_failed = true;
	err = km_conn_open(&ps->dump, sa, rs->o.timeout_ms, &rs->cancel);
	if (!err)
		err = km_conn_open(&ps->src, sa, rs->o.timeout_ms, &rs->cancel);
	if (err)
		return err;
	if (rs->o.replay)
		return km_replay_feed(ps, src_idx);
	/*
	 * The crawler can miss items that the LRU maintainer moves between
	 * the HOT/WARM/COLD queues while it walks them (seen here: 57 of
	 * 200k keys in one dump).  So dump again and copy what is new.  A
	 * dump costs about as much as the copy itself (0.22 s for 200k keys
	 * here), and an item moves once after its store, so a third dump is
	 * made only when the second still found more than 1/1000 of the
	 * first's keys (churn), up to KM_RS_SWEEPS.  What is left is covered
	 * by null-fallback and read-repair.  Not `metadump hash`, which
	 * lists every key: its crawler holds an item lock while it waits for
	 * us to read the dump, and the source's clients wait with it (seen:
	 * gets of other keys stalled until our timeout).
	 */
	do {
		ps->found = 0;
		err = km_dump_once(ps, src_idx);
		if (!err)
			err = km_batch_flush(ps);
		if (!sweeps)
			first = ps->found;
	} while (!err && ps->found && ++sweeps < KM_RS_SWEEPS &&
		 (sweeps < 2 || ps->found * 1000 > first));
	return err;
}

/* ---- ownership of slots ------------------------------------------------- */

/*
 * Give each of the target's slots (still to do) to the first live source
 * that is one of its replicas.  Returns the slots nobody can serve.
 */
static __u32 km_assign_owners(struct km_resync *rs, const struct km_ring *r,
			      bool only_todo)
{
	__u32 s, lost = 0;
	unsigned int i;

	for (s = 0; s < KM_RING_SLOTS; s++) {
		const struct km_slot *sl = &r->slots[s];

		if (only_todo && rs->owner[s] == KM_NO_OWNER)
			continue;
		rs->owner[s] = KM_NO_OWNER;
		if (!km_slot_has(sl, rs->o.target_id) ||
		    (rs->o.only && !km_slot_bit(rs->o.only, s)))
			continue;
		for (i = 0; i < rs->o.nr_sources; i++) {
			if (!rs->dead[i] &&
			    km_slot_has(sl, rs->o.sources[i].id)) {
				rs->owner[s] = i;
				break;
			}
		}
		if (rs->owner[s] == KM_NO_OWNER)
			lost++;
	}
	return lost;
}

static void km_forget_source(struct km_resync *rs, unsigned int idx)
{
	__u32 s;

	for (s = 0; s < KM_RING_SLOTS; s++)
		if (rs->owner[s] == idx)
			rs->owner[s] = KM_NO_OWNER;
}

static __u32 km_slots_of(const struct km_resync *rs, unsigned int idx)
{
	__u32 s, n = 0;

	for (s = 0; s < KM_RING_SLOTS; s++)
		n += rs->owner[s] == idx;
	return n;
}

/* ---- estimate ----------------------------------------------------------- */

static long km_source_items(struct km_resync *rs, unsigned int idx)
{
	static const struct km_buf req = {.p = "stats\r\n", .len = 7};
	struct km_conn c;
	long items = -1;
	char *p;

	if (km_conn_open(&c, &rs->o.sources[idx].addr, rs->o.timeout_ms,
			 &rs->cancel))
		return -1;
	if (send(c.fd, req.p, req.len, MSG_NOSIGNAL) == (ssize_t)req.len) {
		short rev;

		while (!km_conn_wait(&c, POLLIN, &rev) &&
		       km_conn_read_some(&c) >= 0) {
			if (c.in.len >= 5 &&
			    !memcmp(c.in.p + c.in.len - 5, "END\r\n", 5))
				break;
		}
		if (km_buf_add(&c.in, "", 1) == 0) {
			p = strstr(c.in.p, "STAT curr_items ");
			if (p)
				items = strtol(p + 16, NULL, 10);
		}
	}
	km_conn_close(&c);
	return items;
}

static void km_estimate(struct km_resync *rs)
{
	unsigned int i;
	double total = 0;

	for (i = 0; i < rs->o.nr_sources; i++) {
		__u32 slots = km_slots_of(rs, i), held = 0, s;
		long items;

		if (!slots)
			continue;
		for (s = 0; s < KM_RING_SLOTS; s++)
			held += km_slot_has(&rs->o.ring->slots[s],
					    rs->o.sources[i].id);
		items = km_source_items(rs, i);
		/* its keys spread evenly over the slots it holds */
		if (items > 0 && held)
			total += (double)items * slots / held;
	}
	pthread_mutex_lock(&rs->lock);
	rs->p.total_est = (__u64)total;
	pthread_mutex_unlock(&rs->lock);
}

/* ---- the thread --------------------------------------------------------- */

static void km_resync_fail(struct km_resync *rs, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&rs->lock);
	va_start(ap, fmt);
	vsnprintf(rs->p.error, sizeof(rs->p.error), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&rs->lock);
}

static void km_resync_fail_target(struct km_resync *rs, int err)
{
	km_resync_fail(rs, "target: %s", strerror(-err));
	pthread_mutex_lock(&rs->lock);
	rs->p.target_err = err;
	pthread_mutex_unlock(&rs->lock);
}

static void km_set_source(struct km_resync *rs, __u8 id)
{
	pthread_mutex_lock(&rs->lock);
	rs->p.source_id = id;
	pthread_mutex_unlock(&rs->lock);
}

static int km_next_source(struct km_resync *rs)
{
	unsigned int i;

	for (i = 0; i < rs->o.nr_sources; i++)
		if (!rs->dead[i] && km_slots_of(rs, i))
			return (int)i;
	return -1;
}

static enum km_resync_state km_resync_loop(struct km_resync *rs,
					   const struct km_ring *ring)
{
	struct km_pass ps = {.rs = rs};
	enum km_resync_state st = KM_RS_DONE;
	int idx, err;

	ps.dump.fd = ps.src.fd = ps.dst.fd = -1;
	km_pass_reset(&ps);
	err = km_conn_open(&ps.dst, &rs->o.target, rs->o.timeout_ms,
			   &rs->cancel);
	if (!err && rs->o.purge && !rs->o.flush_first)
		err = km_purge_target(rs, &ps.dst);
	if (!err && (rs->o.flush_first || rs->o.nr_keys))
		err = km_replay_prepare(rs, &ps.dst);
	if (err) {
		km_resync_fail_target(rs, err);
		km_conn_close(&ps.dst);
		return err == -ECANCELED ? KM_RS_CANCELLED : KM_RS_FAILED;
	}
	while ((idx = km_next_source(rs)) >= 0) {
		km_set_source(rs, rs->o.sources[idx].id);
		err = km_pass_run(&ps, idx);
		km_conn_close(&ps.dump);
		km_conn_close(&ps.src);
		km_pass_reset(&ps);
		if (err == -ECANCELED) {
			st = KM_RS_CANCELLED;
			break;
		}
		if (err && !ps.src_failed) {
			km_resync_fail_target(rs, err);
			st = KM_RS_FAILED;
			break;
		}
		if (err) {
			/* hand its remaining slots to the next replica */
			rs->dead[idx] = true;
			pthread_mutex_lock(&rs->lock);
			rs->p.source_errors++;
			rs->p.slots_unsourced +=
				km_assign_owners(rs, ring, true);
			pthread_mutex_unlock(&rs->lock);
			km_resync_fail(rs, "source %u: %s",
				       rs->o.sources[idx].id, strerror(-err));
			continue;
		}
		km_forget_source(rs, idx);
	}
	km_set_source(rs, 0);
	if (st == KM_RS_DONE && rs->p.source_errors && rs->p.slots_unsourced) {
		km_resync_fail(rs, "no live replica left for %u slots",
			       rs->p.slots_unsourced);
		st = KM_RS_FAILED;
	} else if (st == KM_RS_DONE) {
		km_resync_fail(rs, "%s", ""); /* a failed source was replaced */
	}
	km_conn_close(&ps.dst);
	km_conn_close(&ps.dump);
	km_conn_close(&ps.src);
	km_pass_free(&ps);
	return st;
}

static void *km_resync_main(void *arg)
{
	struct km_resync *rs = arg;
	enum km_resync_state st;

	if (rs->o.replay)
		km_replay_count_dropped(rs);
	else
		km_estimate(rs);
	st = km_resync_loop(rs, rs->o.ring);
	pthread_mutex_lock(&rs->lock);
	clock_gettime(CLOCK_MONOTONIC, &rs->t1);
	rs->p.state = st;
	pthread_mutex_unlock(&rs->lock);
	if (rs->o.on_done)
		rs->o.on_done(rs, st, rs->o.arg);
	return NULL;
}

int km_resync_start(struct km_resync **out, const struct km_resync_opts *o)
{
	struct km_resync *rs;
	struct km_ring *ring;
	int err;

	if (!o->ring || o->target_id == KM_BACKEND_NONE ||
	    o->nr_sources > KM_MAX_BACKENDS)
		return -EINVAL;
	rs = calloc(1, sizeof(*rs));
	ring = malloc(sizeof(*ring));
	if (!rs || !ring) {
		free(rs);
		free(ring);
		return -ENOMEM;
	}
	rs->owner = malloc(KM_RING_SLOTS);
	if (!rs->owner) {
		free(rs);
		free(ring);
		return -ENOMEM;
	}
	memcpy(ring, o->ring, sizeof(*ring));
	rs->o = *o;
	rs->o.ring = ring;
	if (!rs->o.batch)
		rs->o.batch = KM_RS_BATCH;
	if (!rs->o.timeout_ms)
		rs->o.timeout_ms = KM_RS_TIMEOUT;
	pthread_mutex_init(&rs->lock, NULL);
	rs->p.state = KM_RS_RUNNING;
	rs->p.target_id = o->target_id;
	rs->p.slots_unsourced = km_assign_owners(rs, ring, false);
	clock_gettime(CLOCK_MONOTONIC, &rs->t0);
	err = pthread_create(&rs->thread, NULL, km_resync_main, rs);
	if (err) {
		km_resync_free(rs);
		return -err;
	}
	rs->started = true;
	*out = rs;
	return 0;
}

void km_resync_cancel(struct km_resync *rs)
{
	__atomic_store_n(&rs->cancel, 1, __ATOMIC_RELAXED);
}

enum km_resync_state km_resync_wait(struct km_resync *rs)
{
	if (rs->started && !rs->joined) {
		pthread_join(rs->thread, NULL);
		rs->joined = true;
	}
	return rs->p.state;
}

void km_resync_get_progress(struct km_resync *rs, struct km_resync_progress *p)
{
	struct timespec now;
	double done;

	pthread_mutex_lock(&rs->lock);
	*p = rs->p;
	pthread_mutex_unlock(&rs->lock);
	if (p->state == KM_RS_RUNNING)
		clock_gettime(CLOCK_MONOTONIC, &now);
	else
		now = rs->t1;
	p->elapsed = (now.tv_sec - rs->t0.tv_sec) +
		     (now.tv_nsec - rs->t0.tv_nsec) / 1e9;
	done = (double)p->matched;
	p->rate = p->elapsed > 0 ? done / p->elapsed : 0;
	p->eta = -1;
	if (p->state != KM_RS_RUNNING)
		p->eta = 0;
	else if (p->rate > 0 && p->total_est > done)
		p->eta = (p->total_est - done) / p->rate;
	else if (p->rate > 0)
		p->eta = 0;
}

void km_resync_free(struct km_resync *rs)
{
	if (!rs)
		return;
	if (rs->started && !rs->joined) {
		km_resync_cancel(rs);
		km_resync_wait(rs);
	}
	pthread_mutex_destroy(&rs->lock);
	free((void *)rs->o.ring);
	free(rs->owner);
	free(rs->done.h);
	free(rs);
}
