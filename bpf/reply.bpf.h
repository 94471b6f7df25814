/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Backend replies, for XDP and tc egress alike: whose they are, one
 * classifier (hit, miss or error, late, stray: km_reply_classify) and one
 * write-reply combiner (km_write_combine).  What a program then does with
 * a reply, it does in read.bpf.h, write.bpf.h and kmagent.bpf.c.
 */
#ifndef KM_REPLY_BPF_H
#define KM_REPLY_BPF_H

#include "parse.bpf.h"
#include "maps.bpf.h"
#include "pending.bpf.h"
#include "nat.bpf.h"

/* Did p come from backend id's address and port? */
static __always_inline int km_from_backend(__u8 id, const struct km_pkt *p)
{
	struct km_backend *be = km_backend_get(id);

	return be && be->port == p->udp->source &&
	       km_pkt_addr_is(p, 0, be->family, &be->addr);
}

/*
 * Was a request of e sent to the backend at addr:port (a read's tried
 * replicas, a write's replicas)?  A reply from one that is not awaited
 * any more is a late one.  Global: verified once.
 */
__attribute__((noinline)) int km_sent_to(struct km_pending *e,
					 union km_ip *addr, __u32 port)
{
	struct km_backend *be;
	int i;

	if (!e || !addr)
		return 0;
	for (i = 0; i < KM_MAX_REPLICAS; i++) {
		if (i >= e->nr_tried)
			break;
		be = km_backend_get(e->tried[i]);
		if (be && km_ip_eq(&be->addr, addr) && be->port == port)
			return 1;
	}
	for (i = 0; i < KM_MAX_REPLICAS; i++) {
		if (i >= e->nr_wr)
			break;
		be = km_backend_get(e->wr_be[i]);
		if (be && km_ip_eq(&be->addr, addr) && be->port == port)
			return 1;
	}
	return 0;
}

/* Did p come from a backend a request of e was sent to (km_sent_to)? */
static __always_inline int km_sent_to_pkt(struct km_pending *e,
					  const struct km_pkt *p)
{
	union km_ip a;

	if (p->family != e->family)
		return 0;
	km_pkt_saddr(p, &a);
	return km_sent_to(e, &a, p->udp->source);
}

/* The index of the write replica p came from in e's list, or -1. */
static __always_inline int km_write_replica(const struct km_pending *e,
					    const struct km_pkt *p)
{
	int j;

	for (j = 0; j < KM_MAX_REPLICAS; j++) {
		if (j >= e->nr_wr)
			break;
		if (km_from_backend(e->wr_be[j], p))
			return j;
	}
	return -1;
}

/*
 * A reply worth asking the next replica for: a miss ("END\r\n" for
 * get/gets, "EN\r\n" for mg) or a server error (out of memory, ...), as
 * the userspace path does.  The last replica's answer goes to the client.
 */
static __always_inline int km_is_miss(struct km_pkt *p, void *end, __u8 kind)
{
	char *b = (void *)(p->frame + 1);

	if (p->payload_len >= 14 && (void *)(b + 13) <= end && b[0] == 'S' &&
	    b[1] == 'E' && b[2] == 'R' && b[3] == 'V' && b[4] == 'E' &&
	    b[5] == 'R' && b[6] == '_' && b[7] == 'E' && b[8] == 'R' &&
	    b[9] == 'R' && b[10] == 'O' && b[11] == 'R' && b[12] == ' ')
		return 1;
	if (kind == KM_PK_GET) {
		if (p->payload_len != 5 || (void *)(b + 5) > end)
			return 0;
		return b[0] == 'E' && b[1] == 'N' && b[2] == 'D' &&
		       b[3] == '\r' && b[4] == '\n';
	}
	if (p->payload_len != 4 || (void *)(b + 4) > end)
		return 0;
	return b[0] == 'E' && b[1] == 'N' && b[2] == '\r' && b[3] == '\n';
}

/*
 * Reflection: a spoofed source gets no more than a get of one item could
 * bring (udp_reply_max datagrams, from --item-size-max by default), so a
 * legitimate reply is never refused.
 */
static __always_inline int km_reply_capped(const struct km_config *cfg,
					   __u16 total)
{
	return cfg->udp_reply_max && total > cfg->udp_reply_max;
}

/*
 * Drop a capped reply: its entry is kept out of use for one timeout (kind
 * FREE, as after an expiry, but no timeout is charged to the backend), so
 * that its other datagrams find no request to be taken for.  The backend
 * did answer: counted as such, not as a lost reply.
 */
static __always_inline void km_reply_drop(struct km_pending *e,
					  struct km_be_stats *bst,
					  struct km_stats *st)
{
	st->reply_capped++;
	if (bst)
		bst->capped++;
	e->kind = KM_PK_FREE;
}

/* The first datagram of a reply that is no miss. */
static __always_inline void
km_count_hit(struct km_pending *e, struct km_be_stats *bst, struct km_stats *st)
{
	__u32 missed;

	if (bst)
		bst->hits++;
	st->hits++;
	missed = e->nr_tried > 1 ? km_missed(e) : 0;
	if (missed) {
		st->fallback_hits++;
		km_event_hit(e, missed, st);
	}
}

/* Send this (header-rewritten) reply datagram back to the client. */
static __always_inline int km_reply_to_client(struct xdp_md *ctx,
					      struct km_pkt *p,
					      struct km_pending *e, __u64 ts,
					      int release, struct km_stats *st)
{
	struct km_hdrvals v;

	km_to_client(e, &v);
	km_nat(p, &v);
	if (release)
		km_finish(e, ts);
	st->replies++;
	return km_xdp_out(ctx, v.ifindex);
}

/* Pick the reply the client gets, per policy, among those received. */
__attribute__((noinline)) int km_write_choose(struct km_pending *e,
					      struct km_stats *st)
{
	int j, c = -1, rank, best = 0, divergent = 0;
	__u64 a, b;

	if (!e || !st)
		return -1;
	for (j = 0; j < KM_MAX_REPLICAS; j++) {
		if (j >= e->nr_wr)
			break;
		if (!e->wr_len[j])
			continue;
		if (c < 0) {
			c = j;
			best = km_reply_rank(e->wr_reply[j], e->wr_len[j]);
			continue;
		}
		__builtin_memcpy(&a, e->wr_reply[j], sizeof(a));
		__builtin_memcpy(&b, e->wr_reply[c], sizeof(b));
		if (e->wr_len[j] != e->wr_len[c] || a != b)
			divergent = 1;
		if (e->policy != KM_WP_WORST)
			continue;
		rank = km_reply_rank(e->wr_reply[j], e->wr_len[j]);
		if (rank > best) {
			best = rank;
			c = j;
		}
	}
	if (divergent)
		st->write_divergent++;
	return c;
}

/*
 * What a backend's reply to a request of entry e is, for the programs
 * that see replies (km_xdp_reply, km_tc_local_reply).
 */
enum km_reply_class {
	KM_RC_STRAY,  /* awaited by no request: not ours, or timed out */
	KM_RC_LATE,   /* from a backend the request was retried away from */
	KM_RC_WRITE,  /* to a cloned write: km_write_combine */
	KM_RC_CAPPED, /* dropped: more datagrams than a get can bring */
	KM_RC_MISS,   /* a miss or a server error: ask the next replica */
	KM_RC_HIT,    /* the answer, or one more datagram of it */
};

/*
 * Classify p, a reply to request idx (entry e, whose ts was ts), and
 * count it (hits, misses, capped).  A read's reply takes the entry
 * (km_take), against a retry answering at the same time.  local_only (a
 * constant): only a local backend's replies count, as at tc egress, which
 * sees every datagram this host sends.
 */
static __always_inline enum km_reply_class
km_reply_classify(struct km_pending *e, __u32 idx, __u64 ts, struct km_pkt *p,
		  void *end, const struct km_config *cfg, struct km_stats *st,
		  const int local_only)
{
	struct km_be_stats *bst;
	__u16 total;
	__u8 cur;

	if (!ts)
		return KM_RC_STRAY;
	if (e->kind == KM_PK_WRITE)
		return KM_RC_WRITE;
	if (e->kind == KM_PK_DONE && km_sent_to_pkt(e, p))
		return KM_RC_LATE; /* quarantined after a retry */
	if (e->kind != KM_PK_GET && e->kind != KM_PK_MG)
		return KM_RC_STRAY; /* quarantined after a timeout */
	cur = e->cur_be;
	if (!km_from_backend(cur, p)) {
		/* e.g. the local backend, after a retry sent the read on */
		if (e->retried && km_sent_to_pkt(e, p))
			return KM_RC_LATE;
		return KM_RC_STRAY;
	}
	if (local_only && !e->local)
		return KM_RC_STRAY;
	if (km_take(e, idx, cur))
		return KM_RC_LATE;
	bst = km_be_stats_get(cur);
	total = bpf_ntohs(p->frame->total);
	if (km_reply_capped(cfg, total)) {
		km_reply_drop(e, bst, st);
		return KM_RC_CAPPED;
	}
	if (total == 1 && km_is_miss(p, end, e->kind)) {
		if (bst)
			bst->misses++;
		return KM_RC_MISS;
	}
	if (!p->frame->seq)
		km_count_hit(e, bst, st);
	return KM_RC_HIT;
}

/* A write replica's reply chosen to answer the client with. */
struct km_write_pick {
	const char *reply; /* e->wr_reply[c] */
	__u32 len;
	__u32 sum; /* its one's complement sum, as km_xdp_emit wants it */
};

/*
 * Reply c of e (km_write_choose's) into pick: -1 when there is none or
 * it was not kept (longer than KM_WREPLY_MAX), -2 when its sum failed.
 */
static __always_inline int km_write_pick(struct km_pending *e, int c,
					 struct km_write_pick *pick)
{
	__u32 cu = c, wl;
	long sum;

	km_barrier_var(cu); /* the verifier must see the bound */
	if (cu >= KM_MAX_REPLICAS)
		return -1;
	wl = e->wr_len[cu];
	km_barrier_var(wl);
	if (wl < 1 || wl > KM_WREPLY_MAX)
		return -1;
	sum = bpf_csum_diff(NULL, 0, (void *)e->wr_reply[cu], KM_WREPLY_MAX, 0);
	if (sum < 0)
		return -2;
	pick->reply = e->wr_reply[cu];
	pick->len = wl;
	pick->sum = sum;
	return 0;
}

/* km_write_slot: p is from none of e's write replicas, or is not whole. */
#define KM_WS_STRAY (-1)
/* km_write_slot: that replica has answered already. */
#define KM_WS_DUP (-2)

/*
 * The index of p's sender among e's write replicas, its reply buffer
 * (*buf) cleared for p's payload; or KM_WS_STRAY, KM_WS_DUP.
 */
static __always_inline int km_write_slot(struct km_pending *e,
					 const struct km_pkt *p, char **buf)
{
	int me = km_write_replica(e, p);

	if (me < 0 || p->frame->total != bpf_htons(1))
		return KM_WS_STRAY;
	if (e->wr_len[me])
		return KM_WS_DUP;
	*buf = e->wr_reply[me];
	__builtin_memset(*buf, 0, KM_WREPLY_MAX);
	return me;
}

/* What the program that saw a write replica's reply sends on. */
enum km_write_verdict {
	KM_WV_DROP,	    /* kept, or too late: another reply answers */
	KM_WV_FORWARD,	    /* this reply, to the client; the entry stays */
	KM_WV_FORWARD_LAST, /* this reply; then the caller releases e */
	KM_WV_CHOSEN,	    /* pick's reply instead; then the caller releases */
};

/*
 * The write-reply combiner, for XDP (remote replicas) and tc egress (a
 * local one): count reply me of e (n bytes kept in e->wr_reply[me], 0 if
 * not kept) and, per e->policy, decide what the client gets: the first
 * reply (first), or once every replica has answered the one the policy
 * picks (primary, worst: km_write_choose), into pick.
 */
static __always_inline enum km_write_verdict
km_write_combine(struct km_pending *e, int me, __u32 n, __u32 idx, __u64 ts,
		 struct km_stats *st, struct km_write_pick *pick)
{
	struct km_be_stats *bst;
	__u32 got;
	int c;

	/* 0xff: not kept, forwarded only if it is the chosen one */
	e->wr_len[me] = n ? n : 0xff;
	st->write_replies++;
	bst = km_be_stats_get(e->wr_be[me]);
	if (bst)
		bst->write_replies++;
	got = __sync_fetch_and_add(&e->wr_got, 1) + 1;
	if (got & KM_WR_CLOSED) {
		st->retry_late++; /* the retry answered without it */
		return KM_WV_DROP;
	}
	if (e->policy == KM_WP_FIRST) {
		if (got >= e->nr_wr) {
			km_write_choose(e, st); /* counts divergent replies */
			km_disarm(idx);
			km_release(e, ts);
		}
		return got == 1 ? KM_WV_FORWARD : KM_WV_DROP;
	}
	if (got < e->nr_wr)
		return KM_WV_DROP; /* kept; the last reply answers */
	km_disarm(idx);
	c = km_write_choose(e, st);
	if (c == me)
		return KM_WV_FORWARD_LAST;
	switch (km_write_pick(e, c, pick)) {
	case 0:
		return KM_WV_CHOSEN;
	case -2:
		st->helper_errors++;
		return KM_WV_FORWARD_LAST;
	default:
		return KM_WV_FORWARD_LAST; /* not kept: forward ours instead */
	}
}

#endif /* KM_REPLY_BPF_H */
