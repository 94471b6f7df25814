/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Requests as the engine handles them, shared by the TCP and UDP paths:
 * a client connection (or a UDP datagram's pseudo-connection) owns an
 * ordered queue of requests; each request fans out into backend
 * operations and is answered once they have decided its reply.
 */
#ifndef KM_REQUEST_H
#define KM_REQUEST_H

#include <stdint.h>
#include <sys/socket.h>
#include "buf.h"
#include "mcproto.h"
#include "worker.h"

enum km_req_type {
	KM_RT_LOCAL = 0, /* answered by the proxy itself */
	KM_RT_READ,	 /* get/gets: first readable replica, fallback */
	KM_RT_GAT,	 /* gat/gats: every writable replica, best hit */
	KM_RT_ONE,	 /* mg/me/version/stats ARGS: candidates in order */
	KM_RT_WRITE,	 /* every writable replica, one reply by policy */
	KM_RT_BCAST,	 /* flush_all/verbosity: every writable backend */
	KM_RT_CAS,	 /* cas, ms C: the primary, then a set to the others */
	KM_RT_STATS,	 /* stats: every up backend, aggregated (stats.c) */
};

struct km_key {
	unsigned int off, len; /* in req->line */
	__u8 nr;	       /* candidates in be[] */
	__u32 slot;	       /* its ring slot (writes: its turn, engine.c) */
	__u8 be[KM_MAX_BACKENDS - 1];
	__u8 next;     /* next candidate to try */
	__u8 asked;    /* candidates sent the key so far */
	__u8 inflight; /* an op for this key is out */
	__u8 done;
	__u8 answered; /* some backend gave a real answer (hit or miss) */
	__u8 nmissed;
	__u8 missed[KM_MAX_REPLICAS];
	int hit_rank;		 /* -1: no hit */
	size_t res_off, res_len; /* the hit's reply in req->res */
};

struct km_wrep {
	__u8 be;
	__u8 done;
	enum km_reply_class cls;
	struct km_buf reply;
};

struct km_conn;

struct km_req {
	struct km_req *next;
	struct km_conn *c; /* NULL once the client no longer waits */
	enum km_cmd cmd;
	enum km_req_type type;
	int noreply, quiet, answered, close_after;
	int open;	 /* may still send ops: later writes wait */
	int pending;	 /* ops out */
	int dispatching; /* ops may still be added */
	unsigned int pool_idx;
	struct km_buf line; /* the line as forwarded, "\r\n" included */
	struct km_buf data; /* storage data block, "\r\n" included */
	struct km_buf res;  /* reads: hit blocks; one: last reply */
	struct km_buf resp; /* the reply to the client */
	struct km_key *keys;
	unsigned int nkeys, kcap;
	struct km_wrep *reps;
	unsigned int nreps, rcap;
	unsigned int gat_exp_len; /* "gat <exp> ": bytes before the keys */
	int stats;     /* 1: stats, 2: stats reset, when at head; STATS: the
			* backends' lines are in res */
	int bad_key;   /* reads: a key over 250 bytes, the reply an error */
	int cas_phase; /* KM_RT_CAS: 1 = primary, 2 = the others */
	/* ms C I: the primary's cas before it (me), to tell its two ways */
	int cas_peeked;
	unsigned long long cas_before;
	int base64; /* writes: the key is base64 (meta b) */
	/* writes: the key's turn (engine.c, "One order a key") */
	struct km_worker *w;	 /* the worker it belongs to */
	unsigned int seq;	 /* its stripe + 1 while it holds or waits */
	int seq_waiting;	 /* queued behind another write */
	struct km_req *seq_next; /* in the stripe's queue, the inbox */
	/*
	 * Memory bounds (proxy.c, "Backpressure"): a read asks for keys
	 * [0, kend) only, streams the finished ones from emitted on; ukeys
	 * are the keys counted in c->ukeys, charged the bytes in c->asm.
	 */
	unsigned int kend, emitted, ukeys;
	size_t charged;
};

/* Append r to a queue linked by seq_next (a stripe's, a worker's inbox) */
static inline void km_req_seq_append(struct km_req **head, struct km_req **tail,
				     struct km_req *r)
{
	r->seq_next = NULL;
	if (*tail)
		(*tail)->seq_next = r;
	else
		*head = r;
	*tail = r;
}

struct km_conn {
	struct km_ev ev; /* fd -1 for a UDP pseudo-connection */
	struct km_worker *w;
	int udp;
	int udp_fd;
	struct sockaddr_storage peer;
	socklen_t peerlen;
	uint16_t rid;
	size_t *units; /* UDP: end offsets in out of each reply unit */
	unsigned int nunits, ucap;
	struct km_buf in, out;
	struct km_req *head, *tail;
	unsigned int nreq;
	size_t swallow; /* data bytes of a refused item still to skip */
	size_t scanned; /* bytes of a long line known to hold no newline */
	int closing;	/* close once out is flushed */
	int eof;	/* quit, or what memcached closes on: parse no more */
	enum { KM_PROTO_UNKNOWN = 0, KM_PROTO_TEXT, KM_PROTO_BINARY } proto;
	int dead;
	int paused; /* too many requests queued: input left unparsed */
	int held;   /* a write waits for the open requests: input unparsed */
	unsigned int nopen; /* requests still open (engine.c: ordering) */
	unsigned int nseq;  /* writes waiting for their key's turn */
	int dirty;
	struct km_conn *dirty_next;
	unsigned int pool_idx;
	int counted; /* in curr_connections */
	int rdhup;   /* the peer shut its side: read to the end */
	int rd_shut; /* ... and it came: answer what was read, then close */
	size_t asm_bytes;   /* replies in assembly, in its requests' buffers */
	unsigned int ukeys; /* keys asked of backends, not answered yet */
	size_t est;	    /* bytes a key's reply is expected to take */
	size_t claimed;	    /* its part of the total (--reply-memory) */
	uint64_t active;    /* ms of the last byte in or out (idle timeout) */
	struct km_conn *lru_prev, *lru_next; /* the worker's, oldest first */
};

#endif /* KM_REQUEST_H */
