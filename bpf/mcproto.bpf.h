/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The memcached text protocol as far as the kernel path needs it: which
 * datagrams are single-key reads or single-datagram writes, where their key
 * is, and what a miss or an error reply looks like.  The payload has been
 * copied into the per-CPU scratch buffer; offsets are masked into it.
 * Anything not recognised returns -1 and goes up to kmagentd unchanged.
 */
#ifndef KM_MCPROTO_BPF_H
#define KM_MCPROTO_BPF_H

#include "kmagent.h"
#include "km_hash.h"
#include "maps.bpf.h"

#define KM_IDX(i) ((i) & (KM_SCRATCH_SIZE - 1))

/*
 * A request's key_off, masked so that the verifier sees it bounded: it is
 * the verb's length plus one, under 16 for every verb parsed here (under
 * 8 for the reads', stored in km_pending.req).  The key is copied from
 * that offset, whole, out of the scratch buffer or the stored request.
 */
#define KM_KEY_OFF_MASK	     15
#define KM_KEY_OFF(off)	     ((off)&KM_KEY_OFF_MASK)
#define KM_READ_KEY_OFF_MASK 7
#define KM_READ_KEY_OFF(off) ((off)&KM_READ_KEY_OFF_MASK)
_Static_assert(KM_KEY_OFF_MASK + sizeof(((struct km_event *)0)->key) <=
			       sizeof(((struct km_scratch *)0)->buf) &&
		       KM_KEY_OFF_MASK + KM_WKEY_MAX <=
			       sizeof(((struct km_scratch *)0)->buf),
	       "km_scratch: room for a key at KM_KEY_OFF");
_Static_assert(KM_READ_KEY_OFF_MASK + sizeof(((struct km_event *)0)->key) <=
		       sizeof(((struct km_pending *)0)->req),
	       "km_pending.req: room for a key at KM_READ_KEY_OFF");

struct km_parsed_req {
	__u32 hash;
	__u8 kind; /* enum km_pending_kind */
	__u8 key_off;
	__u8 key_len;
	__u8 noreply;
	/* writes (km_tok_scan): tokens after the key; the vtok-th (1-based,
	 * 0 none) holds the data length, at vpos */
	__u8 ntok;
	__u8 vtok;
	__u16 vpos;
};

/*
 * The functions below marked noinline are global functions: the verifier
 * checks each once, on its own, instead of once per path of the caller
 * (their loops would multiply the caller's states past the limit).
 */

/* Hash the key at off: 1..KM_KEY_MAX printable bytes ended by ' ' or '\r'. */
__attribute__((noinline)) int km_hash_key_at(struct km_scratch *sc, __u32 n,
					     __u32 off, struct km_parsed_req *r)
{
	__u32 h = KM_HASH_INIT;
	__u32 i, pos;
	unsigned char c;
	const char *b;

	if (!sc || !r)
		return -1;
	b = sc->buf;

	for (i = 0; i < KM_KEY_MAX; i++) {
		pos = off + i;
		if (pos >= n)
			return -1;
		c = b[KM_IDX(pos)];
		if (c == ' ' || c == '\r')
			break;
		if (c < 0x21 || c == 0x7f)
			return -1;
		h = km_hash_step(h, c);
	}
	if (i == 0)
		return -1;
	if (i == KM_KEY_MAX) {
		pos = off + i;
		if (pos >= n)
			return -1;
		c = b[KM_IDX(pos)];
		if (c != ' ' && c != '\r')
			return -1; /* longer than memcached allows */
	}
	r->key_off = off;
	r->key_len = i;
	r->hash = km_hash_final(h);
	return 0;
}

#define KM_IS2(b, o, s) ((b)[(o)] == (s)[0] && (b)[(o) + 1] == (s)[1])
#define KM_IS4(b, o, s) (KM_IS2(b, o, s) && KM_IS2(b, (o) + 2, (s) + 2))
#define KM_IS8(b, o, s) (KM_IS4(b, o, s) && KM_IS4(b, (o) + 4, (s) + 4))

/*
 * Meta flags after the key: a token starting with 'q' (quiet: a miss or a
 * success is silent) or 'b' (base64 key: the hash is of the decoded key)
 * is left to the daemon.  Also rejects a second line break.
 */
__attribute__((noinline)) int km_meta_flags_ok(struct km_scratch *sc,
					       __u32 from, __u32 to)
{
	__u32 i, pos;
	const char *b;
	char c;

	if (!sc)
		return -1;
	b = sc->buf;

	for (i = 0; i < KM_REQ_MAX; i++) {
		pos = from + i;
		if (pos >= to)
			break;
		c = b[KM_IDX(pos)];
		if (c == '\r' || c == '\n' || !c)
			return -1; /* memcached would stop at a NUL */
		if ((c == 'q' || c == 'b') && b[KM_IDX(pos - 1)] == ' ')
			return -1;
	}
	return 0;
}

/* get KEY, gets KEY, mg KEY [flags]: one key, one line, nothing after. */
__attribute__((noinline)) int km_parse_read(struct km_scratch *sc, __u32 n,
					    struct km_parsed_req *r)
{
	const char *b;
	__u32 off, end;

	if (!sc || !r || n < 6 || n > KM_REQ_MAX)
		return -1;
	b = sc->buf;
	if (KM_IS4(b, 0, "get ")) {
		r->kind = KM_PK_GET;
		off = 4;
	} else if (KM_IS4(b, 0, "gets") && b[4] == ' ') {
		r->kind = KM_PK_GET;
		off = 5;
	} else if (KM_IS2(b, 0, "mg") && b[2] == ' ') {
		r->kind = KM_PK_MG;
		off = 3;
	} else {
		return -1;
	}
	if (km_hash_key_at(sc, n, off, r))
		return -1;
	if (b[KM_IDX(n - 2)] != '\r' || b[KM_IDX(n - 1)] != '\n')
		return -1;
	end = off + r->key_len;
	if (r->kind == KM_PK_GET)
		return end + 2 == n ? 0 : -1; /* "get a b": several keys */
	return km_meta_flags_ok(sc, end, n - 2);
}

/*
 * 1 when the line ending at le (its '\r') ends with " noreply".  Global:
 * inlined, the compiler folds it into the caller's loop, whose states the
 * verifier then multiplies.
 */
__attribute__((noinline)) int km_ends_noreply(struct km_scratch *sc, __u32 le)
{
	const char *b;

	if (!sc || le < 8 || le > KM_REQ_MAX)
		return 0;
	b = sc->buf;
	return b[KM_IDX(le - 8)] == ' ' && KM_IS4(b, KM_IDX(le - 7), "nore") &&
	       KM_IS2(b, KM_IDX(le - 3), "pl") && b[KM_IDX(le - 1)] == 'y';
}

/*
 * Offset of the first "\r\n" at or after from, below n; -1 if none, and
 * for a line memcached reads otherwise than the kernel: with a NUL (it
 * stops there: a "noreply" after it would silence the reply an entry
 * waits for) or a space before the "\r\n" (memcached's "noreply " is one).
 * Such lines go to kmagentd, whose parser reads them as memcached does.
 */
__attribute__((noinline)) int km_line_end(struct km_scratch *sc, __u32 from,
					  __u32 n)
{
	__u32 i, pos;
	char c;

	if (!sc)
		return -1;
	for (i = 0; i < KM_REQ_MAX; i++) {
		pos = from + i;
		if (pos + 1 >= n)
			return -1;
		c = sc->buf[KM_IDX(pos)];
		if (!c)
			return -1;
		if (c == '\r') {
			if (sc->buf[KM_IDX(pos + 1)] != '\n' ||
			    sc->buf[KM_IDX(pos - 1)] == ' ')
				return -1;
			return pos;
		}
	}
	return -1;
}

/* More tokens than any write the kernel takes has. */
#define KM_TOK_MANY 7

struct km_tok_ctx {
	const char *buf; /* the scratch buffer */
	__u32 from, le, cnt, vtok, vpos;
};

static long km_tok_step(__u32 i, void *arg)
{
	struct km_tok_ctx *t = arg;
	__u32 pos = t->from + i;

	if (pos >= t->le)
		return 1;
	if (t->buf[KM_IDX(pos)] == ' ' || t->buf[KM_IDX(pos - 1)] != ' ')
		return 0;
	if (t->cnt < KM_TOK_MANY)
		t->cnt++;
	if (t->cnt == t->vtok)
		t->vpos = pos;
	return 0;
}

/*
 * The tokens of [from, le) (r->ntok, KM_TOK_MANY for more) and where the
 * r->vtok-th of them starts (r->vpos, 0: none).  bpf_loop: its callback is
 * verified once, not once a position and token count.
 */
static __always_inline int km_tok_scan(struct km_scratch *sc, __u32 from,
				       __u32 le, struct km_parsed_req *r)
{
	struct km_tok_ctx t = {
		.buf = sc->buf, .from = from, .le = le, .vtok = r->vtok};

	if (bpf_loop(KM_REQ_MAX, km_tok_step, &t, 0) < 0)
		return -1;
	r->ntok = t.cnt;
	r->vpos = t.vpos;
	return 0;
}

/* The data length at r->vpos: digits up to le or a space; -1 if none. */
static __always_inline int km_data_len(struct km_scratch *sc, __u32 le,
				       const struct km_parsed_req *r)
{
	__u32 i, pos;
	int v = 0;
	char c;

	if (!r->vpos)
		return -1;
	for (i = 0; i < 5; i++) { /* one datagram's worth: 4 digits */
		pos = r->vpos + i;
		c = sc->buf[KM_IDX(pos)];
		if (pos == le || c == ' ')
			return i ? v : -1;
		if (c < '0' || c > '9')
			return -1;
		v = v * 10 + (c - '0');
	}
	return -1;
}

/*
 * The write commands the kernel takes, by the tokens memcached wants after
 * the key with "noreply" last (0: noreply is not its way to be quiet).
 */
enum km_wcmd {
	KM_WC_STORE = 4,  /* set add replace append prepend: flags exp bytes */
	KM_WC_CAS = 5,	  /* cas: flags exptime bytes unique */
	KM_WC_DELETE = 1, /* delete [0]: checked apart */
	KM_WC_ARITH = 2,  /* incr decr touch: a number */
	KM_WC_META = 0,	  /* ms md ma: "q" is theirs (left to kmagentd) */
};

/*
 * Length of the write command at the start of b (with its space), or 0;
 * what it is in *wc.
 */
static __always_inline __u32 km_write_cmd_len(const char *b, int *wc)
{
	*wc = KM_WC_STORE;
	switch (b[0]) {
	case 's':
		return KM_IS4(b, 0, "set ") ? 4 : 0;
	case 'a':
		if (KM_IS4(b, 0, "add "))
			return 4;
		return KM_IS4(b, 0, "appe") && KM_IS2(b, 4, "nd") && b[6] == ' '
			       ? 7
			       : 0;
	case 'r':
		return KM_IS8(b, 0, "replace ") ? 8 : 0;
	case 'p':
		return KM_IS8(b, 0, "prepend ") ? 8 : 0;
	case 'c':
		*wc = KM_WC_CAS;
		return KM_IS4(b, 0, "cas ") ? 4 : 0;
	case 'd':
		*wc = KM_WC_ARITH;
		if (KM_IS4(b, 0, "decr") && b[4] == ' ')
			return 5;
		*wc = KM_WC_DELETE;
		return KM_IS4(b, 0, "dele") && KM_IS2(b, 4, "te") && b[6] == ' '
			       ? 7
			       : 0;
	case 'i':
		*wc = KM_WC_ARITH;
		return KM_IS4(b, 0, "incr") && b[4] == ' ' ? 5 : 0;
	case 't':
		*wc = KM_WC_ARITH;
		return KM_IS4(b, 0, "touc") && KM_IS2(b, 4, "h ") ? 6 : 0;
	case 'm':
		*wc = KM_WC_META;
		if (b[2] != ' ' || (b[1] != 's' && b[1] != 'd' && b[1] != 'a'))
			return 0;
		return 3;
	}
	return 0;
}

/*
 * A write whose outcome does not depend on what a replica holds: set, and
 * delete (whatever each answers, none holds the key after it).  The rest
 * (add, cas, incr, append, meta commands, ...) goes to kmagentd, which
 * orders them per key with its other writes and answers with the reply of
 * the replica that is up to date for the key (docs/operations.md, "Who
 * answers for a key").  Cloned, each replica would decide on its own;
 * they are, when kmagentd is frozen or gone and the kernel serves alone,
 * but for cas: its unique is one replica's own counter, so a clone is
 * refused by the others or, worse, taken by one the client did not read.
 */
enum km_blind {
	KM_BLIND_NOT = 0,
	KM_BLIND_SET = 1,
	KM_BLIND_DELETE =
		2,	    /* its answer is the replica's: not one that owes */
	KM_BLIND_NEVER = 3, /* cas: kmagentd's only */
};

static __always_inline enum km_blind km_write_blind(const struct km_scratch *sc)
{
	const char *b = sc->buf;

	if (KM_IS4(b, 0, "set "))
		return KM_BLIND_SET;
	if (KM_IS4(b, 0, "dele") && KM_IS2(b, 4, "te") && b[6] == ' ')
		return KM_BLIND_DELETE;
	if (KM_IS4(b, 0, "cas "))
		return KM_BLIND_NEVER;
	return KM_BLIND_NOT;
}

/*
 * A write: command, key, rest of the line, and for a storage command its
 * data; n may be cut short of the datagram (only its start is copied): the
 * command line must fit in it, and total is the datagram's payload.  The
 * datagram must be exactly one request, the reply to which is certain: one
 * reply, or none for a "noreply" that memcached takes as one (the right
 * token count).  Anything else is kmagentd's, which sends the backend only
 * requests it knows the replies of (two commands in a datagram would make
 * two replies, the second taken for another request's).
 */
__attribute__((noinline)) int km_parse_write(struct km_scratch *sc, __u32 n,
					     __u32 total,
					     struct km_parsed_req *r)
{
	__u32 off, end, want;
	int wc, le, vlen = 0;
	const char *b;

	if (!sc || !r || n < 8 || n > KM_REQ_MAX)
		return -1;
	b = sc->buf;
	off = km_write_cmd_len(b, &wc);
	if (!off)
		return -1;
	if (km_hash_key_at(sc, n, off, r))
		return -1;
	end = off + r->key_len;
	/* the data length: 3rd token after the key, 1st for ms */
	r->vtok = wc >= KM_WC_STORE ? 3 : 0;
	if (wc == KM_WC_META && b[1] == 's')
		r->vtok = 1;
	le = km_line_end(sc, end, n);
	if (le < 0 || km_tok_scan(sc, end, le, r))
		return -1;
	if (r->vtok) {
		vlen = km_data_len(sc, le, r);
		if (vlen < 0)
			return -1;
	}
	want = le + 2 + (r->vtok ? vlen + 2 : 0);
	if (total != want)
		return -1;
	r->kind = KM_PK_WRITE;
	r->noreply = 0;
	if (wc == KM_WC_META)
		return km_meta_flags_ok(sc, end, le);
	if ((__u32)le >= end + 8)
		r->noreply = km_ends_noreply(sc, le) == 1;
	if (!r->noreply)
		return 0;
	/* memcached answers ERROR before it looks for noreply otherwise */
	if (wc == KM_WC_DELETE)
		return r->ntok == 1 || r->ntok == 2 ? 0 : -1;
	return r->ntok == wc ? 0 : -1;
}

/*
 * Severity of a write reply for KM_WP_WORST: 3 error, 2 refused (not
 * stored, not found, exists), 1 success.
 */
static __always_inline int km_reply_rank(const char *b, __u8 len)
{
	if (len == 0xff || len < 2)
		return 3;
	if ((b[0] == 'S' && b[1] == 'E') || (b[0] == 'E' && b[1] == 'R') ||
	    (b[0] == 'C' && b[1] == 'L'))
		return 3; /* SERVER_ERROR, ERROR, CLIENT_ERROR */
	if (b[0] == 'N' || (b[0] == 'E' && b[1] == 'X'))
		return 2; /* NOT_STORED, NOT_FOUND, NS, NF, EXISTS, EX */
	return 1;
}

#endif /* KM_MCPROTO_BPF_H */
