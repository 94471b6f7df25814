/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The XDP side: single-key reads from clients are routed to the key's
 * first readable replica; backend replies (to the NAT port) go back to the
 * client, a miss turning into a request to the next replica on the way.
 * Cloned writes' replies are aggregated here too (tc cannot see them
 * before XDP does).
 */
#ifndef KM_XDP_RX_BPF_H
#define KM_XDP_RX_BPF_H

#include "parse.bpf.h"
#include "mcproto.bpf.h"
#include "maps.bpf.h"
#include "pending.bpf.h"
#include "nat.bpf.h"

/*
 * The first replica in slot's order that is readable, owes no write
 * (KM_BE_F_OWES: its copy of the key may be older) and is not in tried's
 * list (tried may be NULL); KM_BACKEND_NONE if none, and kmagentd serves
 * the read.  Global functions,
 * this one and km_write_choose: verified once instead of on every path of
 * their callers, which keeps the programs well under the verifier's limit.
 */
__attribute__((noinline)) int km_next_readable(struct km_slot *slot,
					       struct km_pending *tried)
{
	const struct km_config *cfg;
	struct km_backend *be;
	__u8 id;
	int i;

	if (!slot)
		return KM_BACKEND_NONE;
	cfg = km_config_get();
	for (i = 0; i < KM_MAX_REPLICAS; i++) {
		if (i >= slot->nr)
			break;
		id = slot->be[i];
		if (tried && km_tried(tried, id))
			continue;
		be = km_backend_get(id);
		if (be && km_backend_readable(be) && !km_backend_owes(cfg, be))
			return id;
	}
	return KM_BACKEND_NONE;
}

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

/* km_next_readable, with the backend's entry. */
static __always_inline __u8 km_first_readable(struct km_slot *slot,
					      struct km_pending *tried,
					      struct km_backend **out)
{
	__u8 id = km_next_readable(slot, tried);

	*out = km_backend_get(id);
	return *out ? id : KM_BACKEND_NONE;
}

/* A claimed entry for p's request r: who gets the reply, about what key. */
static __always_inline void
km_pending_open(struct km_pending *e, const struct km_pkt *p,
		const union km_ip *proxy, __u32 ifindex, const struct km_req *r)
{
	km_pkt_saddr(p, &e->client_addr);
	e->proxy_addr = *proxy;
	e->family = p->family;
	e->client_port = p->udp->source;
	e->client_rid = p->frame->rid;
	km_mac_copy(e->client_mac, p->eth->h_source);
	km_mac_copy(e->proxy_mac, p->eth->h_dest);
	e->vlan_tci = p->vlan_tci;
	e->ifindex = ifindex;
	e->slot = km_hash_slot(r->hash);
	e->key_off = r->key_off;
	e->key_len = r->key_len;
	e->rx_dgrams = 0;
	e->wr_got = 0;
}

/* The address the proxy answers from: cfg's, else the one p was sent to. */
static __always_inline void km_proxy_addr(const struct km_config *cfg,
					  const struct km_pkt *p,
					  union km_ip *a)
{
	if (p->family == KM_FAM_V6) {
		__builtin_memcpy(a->v6, &p->ip6->daddr, 16);
		return;
	}
	__builtin_memset(a, 0, sizeof(*a));
	a->v4 = cfg->proxy_addr ?: p->ip->daddr;
}

static __always_inline int km_xdp_request(struct xdp_md *ctx, struct km_pkt *p,
					  const struct km_config *cfg,
					  struct km_stats *st)
{
	struct km_backend *be = NULL;
	struct km_hdrvals v = {};
	struct km_be_stats *bst;
	struct km_req r = {};
	struct km_scratch *sc;
	struct km_pending *e;
	struct km_slot *slot;
	__u32 n = p->payload_len, idx;
	union km_ip proxy, src;
	const char *verb;
	int local;
	__u8 be_id;
	__u64 now;

	st->rx_service++;
	km_pkt_saddr(p, &src);
	if (!km_client_allowed(p->family, &src)) {
		st->denied++;
		return XDP_DROP;
	}
	if (p->frame->total != bpf_htons(1) || p->frame->seq)
		return XDP_PASS;
	if (km_bypassed(cfg) || n < 6 || n > KM_REQ_MAX)
		return XDP_PASS;
	/* no read (get, gets, mg) starts otherwise: a write goes on to tc
	 * without being copied and parsed here first */
	verb = (const char *)(p->frame + 1);
	if ((void *)(verb + 1) > (void *)(long)ctx->data_end ||
	    (*verb != 'g' && *verb != 'm'))
		return XDP_PASS;
	sc = km_scratch_get();
	if (!sc)
		return XDP_PASS;
	if (bpf_xdp_load_bytes(ctx, p->payload_off, sc->buf, n))
		return XDP_PASS;
	if (km_parse_read(sc, n, &r))
		return XDP_PASS; /* writes go on to tc, the rest to kmagentd */
	slot = km_ring_get(cfg, km_hash_slot(r.hash));
	if (!slot)
		return XDP_PASS;
	be_id = km_first_readable(slot, NULL, &be);
	if (!be_id || !be) {
		st->no_backend++;
		return XDP_PASS;
	}
	km_proxy_addr(cfg, p, &proxy);
	km_nat_src(be_id, &proxy, &src);
	now = bpf_ktime_get_coarse_ns();
	local = km_fib_cached(ctx, p->family, &src, be_id, be,
			      ctx->ingress_ifindex, now, &v);
	if (local < 0) {
		st->no_route++;
		return XDP_PASS;
	}
	e = km_claim(cfg, st, now, &idx);
	if (!e)
		return XDP_PASS;
	if (bpf_xdp_load_bytes(ctx, p->payload_off, e->req, n)) {
		km_release(e, now);
		st->helper_errors++;
		return XDP_PASS;
	}
	km_pending_open(e, p, &proxy, ctx->ingress_ifindex, &r);
	e->kind = r.kind;
	e->cur_be = be_id;
	e->nr_tried = 1;
	e->tried[0] = be_id;
	e->nr_wr = 0;
	e->req_len = n;
	km_req_pad(e, n);
	e->local = local == KM_FIB_LOCAL;
	e->retried = 0;
	km_arm(idx, now, be_id); /* last: the entry is complete */

	st->kernel_gets++;
	bst = km_be_stats_get(be_id);
	if (bst)
		bst->gets++;
	if (e->local) {
		km_to_local(e, be, idx, &v);
		km_nat(p, &v);
		return XDP_PASS; /* up the stack to the local memcached */
	}
	km_to_remote(be, idx, &v);
	km_nat(p, &v);
	return km_xdp_out(ctx, v.ifindex);
}

/* The entry's client as the destination of a reply. */
static __always_inline void km_to_client(const struct km_pending *e,
					 struct km_hdrvals *v)
{
	km_mac_copy(v->dmac, e->client_mac);
	km_mac_copy(v->smac, e->proxy_mac);
	v->saddr = e->proxy_addr;
	v->daddr = e->client_addr;
	v->sport = bpf_htons(km_service_port);
	v->dport = e->client_port;
	v->rid = e->client_rid;
	v->ifindex = e->ifindex;
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
 * The headers of e's request (id idx) to replica next (nb), routed from
 * ifindex.  Returns km_fib's answer, or -1 when the kernel cannot reach it
 * (or it is local and no_local is set): v then holds the client's own
 * request to the service port, for kmagentd to serve.
 */
static __always_inline int km_next_hop(void *ctx, const struct km_pending *e,
				       const struct km_backend *nb, __u8 next,
				       __u32 idx, __u32 ifindex, int no_local,
				       struct km_hdrvals *v,
				       struct km_stats *st)
{
	union km_ip src;
	int local;

	km_nat_src(next, &e->proxy_addr, &src);
	local = km_fib(ctx, e->family, &src, nb, ifindex, v);

	if (local < 0 || (local == KM_FIB_LOCAL && no_local)) {
		st->no_route++;
		km_to_service(e, v);
		return -1;
	}
	if (local == KM_FIB_LOCAL)
		km_to_local(e, nb, idx, v);
	else
		km_to_remote(nb, idx, v);
	return local;
}

/* The request of e now goes to replica next (km_fib's answer: local). */
static __always_inline void km_note_next(struct km_pending *e, __u8 next,
					 int local)
{
	struct km_be_stats *bst;

	if (e->nr_tried < KM_MAX_REPLICAS)
		e->tried[e->nr_tried] = next;
	e->nr_tried++;
	e->cur_be = next;
	e->rx_dgrams = 0;
	e->local = local == KM_FIB_LOCAL;
	bst = km_be_stats_get(next);
	if (bst)
		bst->gets++;
}

/* After a miss: the request (id idx) went to next, with a fresh deadline. */
static __always_inline void km_note_fallback(struct km_pending *e, __u32 idx,
					     __u8 next, int local,
					     struct km_stats *st)
{
	km_note_next(e, next, local);
	st->fallbacks++;
	km_arm(idx, bpf_ktime_get_coarse_ns(), next);
}

/*
 * Null-fallback: turn this miss into the stored request, sent to the next
 * untried readable replica.  Returns a verdict, or -1 (nothing changed)
 * when no replica is left or it cannot be reached from here.
 */
static __always_inline int km_xdp_fallback(struct xdp_md *ctx, struct km_pkt *p,
					   struct km_pending *e, __u32 idx,
					   const struct km_config *cfg,
					   struct km_stats *st)
{
	struct km_backend *nb = NULL;
	struct km_hdrvals v = {};
	struct km_slot *slot;
	union km_ip src;
	int rc, local;
	__u32 sum;
	__u8 next;

	slot = km_ring_get(cfg, e->slot);
	if (!slot)
		return -1;
	next = km_first_readable(slot, e, &nb);
	if (!next || !nb)
		return -1;
	if (km_req_sum(e, &sum)) {
		st->helper_errors++;
		return -1;
	}
	km_nat_src(next, &e->proxy_addr, &src);
	local = km_fib(ctx, e->family, &src, nb, ctx->ingress_ifindex, &v);
	if (local < 0) {
		/*
		 * A replica is left but the kernel cannot reach it (next hop
		 * unknown, loopback): the original request goes up to
		 * kmagentd, which asks every replica itself.
		 */
		st->no_route++;
		km_to_service(e, &v);
		rc = km_xdp_emit(ctx, p, &v, e->req, e->req_len, sum);
		if (rc == KM_EMIT_NOROOM)
			return XDP_PASS; /* km_tc_fallback does it */
		if (rc) {
			st->helper_errors++;
			return XDP_DROP;
		}
		km_finish(e, e->ts);
		return XDP_PASS;
	}
	if (local == KM_FIB_LOCAL)
		km_to_local(e, nb, idx, &v);
	else
		km_to_remote(nb, idx, &v);
	rc = km_xdp_emit(ctx, p, &v, e->req, e->req_len, sum);
	if (rc == KM_EMIT_NOROOM)
		return XDP_PASS; /* km_tc_fallback grows the skb instead */
	if (rc) {
		st->helper_errors++;
		return XDP_DROP; /* the client retries; never a bad frame */
	}
	km_note_fallback(e, idx, next, local, st);
	if (local == KM_FIB_LOCAL)
		return XDP_PASS;
	return km_xdp_out(ctx, v.ifindex);
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

static __always_inline int km_xdp_write_reply(struct xdp_md *ctx,
					      struct km_pkt *p,
					      struct km_pending *e, __u32 idx,
					      __u64 ts, struct km_stats *st)
{
	struct km_be_stats *bst;
	struct km_hdrvals v;
	__u32 n = p->payload_len, got, sum, wl;
	int me, c;
	char *buf;
	long rc;

	me = km_write_replica(e, p);
	if (me < 0 || p->frame->total != bpf_htons(1)) {
		st->stray_replies++;
		return XDP_PASS;
	}
	if (e->wr_len[me])
		return XDP_DROP; /* duplicate */
	buf = e->wr_reply[me];
	__builtin_memset(buf, 0, KM_WREPLY_MAX);
	if (n < 1 || n > KM_WREPLY_MAX ||
	    bpf_xdp_load_bytes(ctx, p->payload_off, buf, n))
		e->wr_len[me] =
			0xff; /* not kept: forwarded only if it is ours */
	else
		e->wr_len[me] = n;
	st->write_replies++;
	bst = km_be_stats_get(e->wr_be[me]);
	if (bst)
		bst->write_replies++;
	got = __sync_fetch_and_add(&e->wr_got, 1) + 1;
	if (got & KM_WR_CLOSED) {
		st->retry_late++; /* the retry answered without it */
		return XDP_DROP;
	}
	if (e->policy == KM_WP_FIRST) {
		if (got >= e->nr_wr) {
			km_write_choose(e, st); /* counts divergent replies */
			km_disarm(idx);
			km_release(e, ts);
		}
		if (got == 1)
			return km_reply_to_client(ctx, p, e, ts, 0, st);
		return XDP_DROP;
	}
	if (got < e->nr_wr)
		return XDP_DROP; /* kept; the last reply answers */
	km_disarm(idx);
	c = km_write_choose(e, st);
	if (c < 0 || c >= KM_MAX_REPLICAS || c == me)
		return km_reply_to_client(ctx, p, e, ts, 1, st);
	wl = e->wr_len[c];
	km_barrier_var(wl);
	if (wl < 1 || wl > KM_WREPLY_MAX) /* not kept: forward ours instead */
		return km_reply_to_client(ctx, p, e, ts, 1, st);
	rc = bpf_csum_diff(NULL, 0, (void *)e->wr_reply[c], KM_WREPLY_MAX, 0);
	if (rc < 0) {
		st->helper_errors++;
		return km_reply_to_client(ctx, p, e, ts, 1, st);
	}
	sum = rc;
	km_to_client(e, &v);
	rc = km_xdp_emit(ctx, p, &v, e->wr_reply[c], wl, sum);
	if (rc == KM_EMIT_NOROOM) {
		/* no room for the chosen reply: answer with this one */
		st->helper_errors++;
		if (km_parse((void *)(long)ctx->data,
			     (void *)(long)ctx->data_end, p))
			return XDP_DROP;
		return km_reply_to_client(ctx, p, e, ts, 1, st);
	}
	if (rc) {
		km_release(e, ts);
		st->helper_errors++;
		return XDP_DROP;
	}
	km_release(e, ts);
	st->replies++;
	return km_xdp_out(ctx, v.ifindex);
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

static __always_inline int km_xdp_reply(struct xdp_md *ctx, struct km_pkt *p,
					const struct km_config *cfg,
					struct km_stats *st)
{
	void *end = (void *)(long)ctx->data_end;
	__u32 idx = bpf_ntohs(p->frame->rid);
	struct km_be_stats *bst;
	struct km_pending *e;
	__u16 total;
	__u64 ts;
	__u8 cur;
	int rc;

	e = bpf_map_lookup_elem(&km_pending, &idx);
	if (!e)
		return XDP_PASS;
	ts = e->ts;
	if (!ts) {
		st->stray_replies++;
		return XDP_PASS;
	}
	if (e->kind == KM_PK_WRITE)
		return km_xdp_write_reply(ctx, p, e, idx, ts, st);
	if (e->kind == KM_PK_DONE && km_sent_to_pkt(e, p))
		goto late; /* quarantined after a retry */
	if (e->kind != KM_PK_GET && e->kind != KM_PK_MG) {
		st->stray_replies++; /* quarantined after a timeout */
		return XDP_PASS;
	}
	cur = e->cur_be;
	if (!km_from_backend(cur, p)) {
		if (e->retried && km_sent_to_pkt(e, p))
			goto late;
		st->stray_replies++;
		return XDP_PASS;
	}
	if (km_take(e, idx, cur))
		goto late;
	bst = km_be_stats_get(cur);
	total = bpf_ntohs(p->frame->total);
	if (km_reply_capped(cfg, total)) {
		km_reply_drop(e, bst, st);
		return XDP_DROP;
	}
	if (total == 1 && km_is_miss(p, end, e->kind)) {
		if (bst)
			bst->misses++;
		rc = km_xdp_fallback(ctx, p, e, idx, cfg, st);
		if (rc >= 0)
			return rc;
		st->misses++;
	} else if (!p->frame->seq) {
		km_count_hit(e, bst, st);
	}
	/* one more datagram of the reply; the entry goes with the last */
	if (__sync_fetch_and_add(&e->rx_dgrams, 1) + 1 >= total)
		return km_reply_to_client(ctx, p, e, ts, 1, st);
	return km_reply_to_client(ctx, p, e, ts, 0, st);
late:
	/* from a backend the request was retried away from: the client has
	 * (or will have) its answer from the next replica */
	st->retry_late++;
	return XDP_DROP;
}

#endif /* KM_XDP_RX_BPF_H */
