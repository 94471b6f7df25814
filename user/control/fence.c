// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Fences between kmagentd (fence.h).  Runs in the health thread only: its
 * state needs no lock of its own; the backend table is read under
 * km_d.lock.  One connection per backend, kept open, with the probe
 * timeout as the deadline of each exchange.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <arpa/inet.h>

#include "daemon.h"
#include "fence.h"
#include "journal.h"
#include "log.h"
#include "mcclient.h"
#include "peers.h"

#define KM_FENCE_NAMES_MAX 512 /* bytes of names in one fence */

struct km_fence_entry {
	bool present;
	unsigned long long cas;
	char names[KM_FENCE_NAMES_MAX + 1];
};

struct km_fence_view {
	__u8 id;
	char name[KM_NAME_MAX];
	union km_addr addr;
	unsigned int gen;
	bool reachable; /* a peer to read and write fences on */
	bool owes;	/* we hold a debt to it: our name in its fences */
};

static char km_fence_me[KM_NAME_MAX] = "kmagentd";
static int km_fence_fd[KM_MAX_BACKENDS] = {[0 ... KM_MAX_BACKENDS - 1] = -1};
static unsigned int km_fence_gen[KM_MAX_BACKENDS];
/* [peer][x]: our name is in x's fence on peer (as last read or written) */
static bool km_fence_on[KM_MAX_BACKENDS][KM_MAX_BACKENDS];
/* peer read since we started: debts of an earlier life looked up */
static bool km_fence_checked[KM_MAX_BACKENDS];
/* [x]: CLOCK_MONOTONIC ms of the round that first found our fence of x
 * up (0: not up); read by km_fence_seen from the resync thread */
static long long km_fence_up_ms[KM_MAX_BACKENDS];
/*
 * Names an operator told us to forget (kmagentctl forget): kmagentd gone
 * for good whose debts we adopt.  Kept until KM_FORGET_ROUNDS rounds that
 * read every backend's fences found them in none.
 */
#define KM_FORGET_MAX	 8
#define KM_FORGET_ROUNDS 10
static pthread_mutex_t km_forget_lock = PTHREAD_MUTEX_INITIALIZER;
static struct km_forgotten {
	char name[KM_NAME_MAX]; /* "" = a free slot */
	bool seen;		/* in a fence this round */
	unsigned int unseen;	/* complete rounds since it was last seen */
	/* [peer][x]: we took the name out of x's fence on peer */
	bool out[KM_MAX_BACKENDS][KM_MAX_BACKENDS];
} km_forget[KM_FORGET_MAX];

void km_fence_set_name(const char *name)
{
	snprintf(km_fence_me, sizeof(km_fence_me), "%s", name);
}

const char *km_fence_name(void)
{
	return km_fence_me;
}

/*
 * Our name in fences: --name, else where clients reach us,
 * which tells two kmagentd apart even on one host.
 */
void km_fence_name_from(const struct km_cfg *cfg)
{
	char host[256] = "kmagentd", name[KM_NAME_MAX];

	if (cfg->name[0]) {
		km_fence_set_name(cfg->name);
		return;
	}
	if (cfg->listen_addr.sa.sa_family == AF_INET6 &&
	    !km_addr_is_any(&cfg->listen_addr)) {
		union km_addr a = cfg->listen_addr;

		/* "[2001:2::1]:11211": a word, and the port stays apart */
		a.in6.sin6_port = htons(cfg->port);
		km_fence_set_name(km_addr_str(&a, name, sizeof(name)));
		return;
	}
	if (cfg->listen[0] && cfg->listen_addr.sa.sa_family == AF_INET)
		snprintf(host, sizeof(host), "%s", cfg->listen);
	else if (gethostname(host, sizeof(host)))
		snprintf(host, sizeof(host), "kmagentd");
	host[sizeof(host) - 1] = 0;
	/* host names are at most 64 bytes: ours fits KM_NAME_MAX */
	snprintf(name, sizeof(name), "%.50s:%d", host, cfg->port);
	km_fence_set_name(name);
}

bool km_fence_holds(__u8 id)
{
	unsigned int p;

	for (p = 1; p < KM_MAX_BACKENDS; p++)
		if (__atomic_load_n(&km_fence_on[p][id], __ATOMIC_RELAXED))
			return true;
	return false;
}

/*
 * Every other kmagentd reads the fences once a probe interval: two of
 * them after ours went up, each has seen it (fence.h).  The wait is ours
 * alone when nobody else is there.
 */
bool km_fence_seen(__u8 id)
{
	long long up = __atomic_load_n(&km_fence_up_ms[id], __ATOMIC_RELAXED);

	if (km_daemon_alone())
		return true;
	return up && km_now_ms() - up >= 2LL * KM_LIVE(probe_interval_ms);
}

/* Note when our fence of each backend went up (or came down). */
static void km_fence_note_up(const struct km_fence_view *v, unsigned int nv)
{
	long long now = km_now_ms();
	unsigned int i;

	for (i = 0; i < nv; i++) {
		long long *up = &km_fence_up_ms[v[i].id];

		if (!km_fence_holds(v[i].id))
			__atomic_store_n(up, 0, __ATOMIC_RELAXED);
		else if (!__atomic_load_n(up, __ATOMIC_RELAXED))
			__atomic_store_n(up, now, __ATOMIC_RELAXED);
	}
}

static void km_fence_close(__u8 peer)
{
	if (km_fence_fd[peer] >= 0)
		close(km_fence_fd[peer]);
	km_fence_fd[peer] = -1;
}

/*
 * Send req, read the reply until done() says it is complete.  Returns its
 * length, or -errno (the connection is then closed).
 */
static int km_fence_io(__u8 peer, const char *req, size_t len, char *buf,
		       size_t cap, int (*done)(const char *, size_t))
{
	struct timespec deadline;
	size_t got = 0;
	int err;

	km_deadline_in(&deadline, KM_LIVE(probe_timeout_ms));
	if (send(km_fence_fd[peer], req, len, MSG_NOSIGNAL) != (ssize_t)len) {
		err = -EIO;
		goto fail;
	}
	while (!done(buf, got)) {
		ssize_t n;

		err = km_mc_wait(km_fence_fd[peer], POLLIN, &deadline);
		if (err)
			goto fail;
		n = recv(km_fence_fd[peer], buf + got, cap - 1 - got, 0);
		if (n == 0 || (n < 0 && errno != EAGAIN)) {
			err = n ? -errno : -ECONNRESET;
			goto fail;
		}
		if (n > 0)
			got += n;
		if (got >= cap - 1) {
			err = -EMSGSIZE;
			goto fail;
		}
	}
	buf[got] = 0;
	return (int)got;
fail:
	km_fence_close(peer);
	return err;
}

static int km_fence_line_done(const char *buf, size_t len)
{
	return len >= 2 && !memcmp(buf + len - 2, "\r\n", 2);
}

static int km_fence_end_done(const char *buf, size_t len)
{
	return len >= 5 && !memcmp(buf + len - 5, "END\r\n", 5);
}

/* Is name a space-separated word of names? */
static bool km_fence_has(const char *names, const char *name)
{
	size_t n = strlen(name);
	const char *p = names;

	while ((p = strstr(p, name))) {
		if ((p == names || p[-1] == ' ') && (p[n] == ' ' || !p[n]))
			return true;
		p += n;
	}
	return false;
}

/* Does names hold a name other than ours? */
static bool km_fence_has_other(const char *names)
{
	char copy[KM_FENCE_NAMES_MAX + 1], *save, *w;

	snprintf(copy, sizeof(copy), "%s", names);
	for (w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save))
		if (strcmp(w, km_fence_me))
			return true;
	return false;
}

/* names without name, into out */
static void km_fence_without(const char *names, const char *name, char *out,
			     size_t cap)
{
	char copy[KM_FENCE_NAMES_MAX + 1], *save, *w;
	size_t len = 0;

	snprintf(copy, sizeof(copy), "%s", names);
	out[0] = 0;
	for (w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save))
		if (strcmp(w, name) && len + strlen(w) + 2 < cap)
			len += snprintf(out + len, cap - len, "%s%s",
					len ? " " : "", w);
}

/*
 * Parse "VALUE kmagent:fence:<name> 0 <bytes> <cas>\r\n<names>\r\n"...
 * "END\r\n" into e[], by backend id.
 */
static int km_fence_parse(char *buf, const struct km_fence_view *v,
			  unsigned int nv, struct km_fence_entry *e)
{
	char *p = buf;

	while (strncmp(p, "END\r\n", 5)) {
		char key[300];
		unsigned long long cas;
		unsigned int flags, i;
		size_t bytes;
		int used = 0;

		if (sscanf(p, "VALUE %299s %u %zu %llu\r\n%n", key, &flags,
			   &bytes, &cas, &used) != 4 ||
		    !used || bytes > KM_FENCE_NAMES_MAX ||
		    strlen(p + used) < bytes + 2)
			return -EPROTO;
		for (i = 0; i < nv; i++) {
			if (strcmp(key + strlen(KM_FENCE_PREFIX), v[i].name))
				continue;
			e[v[i].id].present = true;
			e[v[i].id].cas = cas;
			memcpy(e[v[i].id].names, p + used, bytes);
			e[v[i].id].names[bytes] = 0;
		}
		p += used + bytes + 2;
	}
	return 0;
}

/* Write names as x's fence on peer: add, cas, or (empty) a cas'd md. */
static int km_fence_write(__u8 peer, const struct km_fence_view *x,
			  const struct km_fence_entry *e, const char *names)
{
	char req[1024], rep[64];
	int n;

	if (!names[0])
		n = snprintf(req, sizeof(req), "md %s%s C%llu\r\n",
			     KM_FENCE_PREFIX, x->name, e->cas);
	else if (!e->present)
		n = snprintf(req, sizeof(req), "add %s%s 0 0 %zu\r\n%s\r\n",
			     KM_FENCE_PREFIX, x->name, strlen(names), names);
	else
		n = snprintf(req, sizeof(req),
			     "cas %s%s 0 0 %zu %llu\r\n%s\r\n", KM_FENCE_PREFIX,
			     x->name, strlen(names), e->cas, names);
	if (n <= 0 || (size_t)n >= sizeof(req))
		return -EMSGSIZE;
	n = km_fence_io(peer, req, n, rep, sizeof(rep), km_fence_line_done);
	if (n < 0)
		return n;
	/* raced with another kmagentd: the next round tries again */
	return !strncmp(rep, "STORED", 6) || !strncmp(rep, "HD", 2) ? 0
								    : -EAGAIN;
}

/*
 * Bring our name in x's fence on peer in line with what we owe it;
 * changed: e->names was edited (a forgotten name taken out), write it.
 * Returns whether the fence was written.
 */
static bool km_fence_update(__u8 peer, const struct km_fence_view *x,
			    const struct km_fence_entry *e, bool changed)
{
	bool mine = e->present && km_fence_has(e->names, km_fence_me);
	char names[KM_FENCE_NAMES_MAX + KM_NAME_MAX + 2];

	/* read by km_fence_holds from the control thread */
	__atomic_store_n(&km_fence_on[peer][x->id], mine, __ATOMIC_RELAXED);
	if (x->owes == mine && !changed)
		return false;
	if (x->owes && mine) {
		snprintf(names, sizeof(names), "%s", e->names);
	} else if (x->owes) {
		if (strlen(e->names) + strlen(km_fence_me) + 1 >
		    KM_FENCE_NAMES_MAX)
			return false; /* too many names: the others fence it */
		snprintf(names, sizeof(names), "%s%s%s",
			 e->present ? e->names : "",
			 e->present && e->names[0] ? " " : "", km_fence_me);
	} else {
		km_fence_without(e->names, km_fence_me, names, sizeof(names));
	}
	if (km_fence_write(peer, x, e, names))
		return false;
	__atomic_store_n(&km_fence_on[peer][x->id], x->owes, __ATOMIC_RELAXED);
	return true;
}

/*
 * Our name in a fence we did not write in this life: we restarted owing x
 * writes whose keys are gone with our memory.  Flush and resync it in
 * full before it serves reads again.
 */
static void km_fence_debt_lost(__u8 id, const char *why)
{
	km_journal_set_lost(id, why);
	km_backend_warm_for_replay(id, why);
}

/*
 * Our own name in a fence at start: we owed the backend writes when we
 * stopped.  The journal's file says which (--state-dir): they are
 * replayed before it serves reads again; without it they are unknown.
 */
static void km_fence_owed_before(__u8 id, const char *name)
{
	if (km_journal_known_past()) {
		/* settled: no key, and not lost (a lost one has no key) */
		if (km_journal_settled(id)) {
			km_info("backend %s: fenced by this kmagentd (%s) "
				"before it restarted, and the journal says it "
				"owes nothing: fence lifted\n",
				name, km_fence_me);
			return;
		}
		km_info("backend %s: fenced by this kmagentd (%s) before it "
			"restarted: replaying the writes its journal says it "
			"missed\n",
			name, km_fence_me);
		/* drained for writes: replayed at undrain, not into it now */
		if (!(__atomic_load_n(&km_d.be[id].kb.flags, __ATOMIC_RELAXED) &
		      KM_BE_F_NO_WRITES))
			km_backend_warm_for_replay(
				id, "journaled writes to replay");
		return;
	}
	km_warn("backend %s: fenced by this kmagentd (%s) before it "
		"restarted: its missed writes are unknown (no journal from "
		"the last run: --state-dir)\n",
		name, km_fence_me);
	km_fence_debt_lost(id, "owed writes before a restart");
}

/*
 * Take forgotten names out of fence e of backend x on peer: their debts,
 * unknown, become ours, paid by a flush and a full resync; our name
 * replaces theirs until then.  A name that is back where we took it out
 * was written again: that kmagentd is alive, and is no longer forgotten.
 * Returns the slots whose name was taken out of e->names (a bit each).
 */
static unsigned int km_fence_adopt(__u8 peer, struct km_fence_view *x,
				   struct km_fence_entry *e)
{
	char out[KM_FENCE_NAMES_MAX + 1];
	unsigned int i, taken = 0;

	pthread_mutex_lock(&km_forget_lock);
	for (i = 0; i < KM_FORGET_MAX; i++) {
		struct km_forgotten *f = &km_forget[i];

		if (!f->name[0] || !km_fence_has(e->names, f->name))
			continue;
		f->seen = true;
		/* its ring record is fresh: alive, its debts stay its own */
		if (!km_peers_forgotten(f->name))
			continue;
		if (f->out[peer][x->id]) {
			km_warn("kmagentd %s fenced backend %s again after it "
				"was forgotten: it is alive; forget it only "
				"once it is gone for good\n",
				f->name, x->name);
			memset(f, 0, sizeof(*f));
			continue;
		}
		km_warn("backend %s: adopting the debt of forgotten kmagentd "
			"%s: its missed writes are unknown\n",
			x->name, f->name);
		km_fence_without(e->names, f->name, out, sizeof(out));
		memcpy(e->names, out, sizeof(out));
		taken |= 1u << i;
	}
	pthread_mutex_unlock(&km_forget_lock);
	if (taken) {
		km_fence_debt_lost(x->id,
				   "adopted a forgotten kmagentd's debt");
		x->owes = true;
	}
	return taken;
}

/* The names of slots `taken` are out of x's fence on peer, for good. */
static void km_fence_adopted(unsigned int taken, __u8 peer, __u8 x)
{
	unsigned int i;

	pthread_mutex_lock(&km_forget_lock);
	for (i = 0; i < KM_FORGET_MAX; i++)
		if (taken & (1u << i))
			km_forget[i].out[peer][x] = true;
	pthread_mutex_unlock(&km_forget_lock);
}

int km_fence_forget(const char *name)
{
	unsigned int i, free_slot = KM_FORGET_MAX;

	if (!name[0] || strlen(name) >= KM_NAME_MAX || strchr(name, ' '))
		return -EINVAL;
	if (!strcmp(name, km_fence_me))
		return -EPERM;
	km_peers_forget(name);
	pthread_mutex_lock(&km_forget_lock);
	for (i = 0; i < KM_FORGET_MAX; i++) {
		if (!strcmp(km_forget[i].name, name))
			break;
		if (!km_forget[i].name[0] && free_slot == KM_FORGET_MAX)
			free_slot = i;
	}
	if (i == KM_FORGET_MAX && free_slot < KM_FORGET_MAX) {
		memset(&km_forget[free_slot], 0, sizeof(km_forget[0]));
		snprintf(km_forget[free_slot].name, KM_NAME_MAX, "%s", name);
		i = free_slot;
	}
	pthread_mutex_unlock(&km_forget_lock);
	return i < KM_FORGET_MAX ? 0 : -ENOSPC;
}

/*
 * After a round: drop names that KM_FORGET_ROUNDS rounds which read every
 * fence found in none; until then, one written back is a live kmagentd.
 */
static void km_fence_forget_done(bool complete)
{
	unsigned int i;

	pthread_mutex_lock(&km_forget_lock);
	for (i = 0; i < KM_FORGET_MAX; i++) {
		struct km_forgotten *f = &km_forget[i];

		if (f->seen)
			f->unseen = 0;
		else if (complete && f->name[0])
			f->unseen++;
		if (f->unseen >= KM_FORGET_ROUNDS) {
			km_info("kmagentd %s forgotten: no fence names it "
				"any more\n",
				f->name);
			memset(f, 0, sizeof(*f));
		}
		f->seen = false;
	}
	pthread_mutex_unlock(&km_forget_lock);
}

/*
 * Read every fence on peer, fix ours, note who is fenced by others (and
 * whose fences were read: known).  Returns whether peer's fences and ring
 * records were read.
 */
static bool km_fence_sync(const struct km_fence_view *peer,
			  struct km_fence_view *v, unsigned int nv,
			  bool *fenced, bool *known)
{
	static struct km_fence_entry e[KM_MAX_BACKENDS];
	char req[2048], rep[8192];
	struct timespec deadline;
	size_t len;
	unsigned int i, fences = 0, records = 0;
	int fd;

	if (km_fence_gen[peer->id] != peer->gen)
		km_fence_close(peer->id);
	km_fence_gen[peer->id] = peer->gen;
	if (km_fence_fd[peer->id] < 0) {
		km_deadline_in(&deadline, KM_LIVE(probe_timeout_ms));
		fd = km_mc_connect(&peer->addr, &deadline);
		if (fd < 0)
			return false;
		km_fence_fd[peer->id] = fd;
	}
	len = snprintf(req, sizeof(req), "gets");
	for (i = 0; i < nv; i++)
		if (v[i].id != peer->id)
			len += snprintf(req + len, sizeof(req) - len, " %s%s",
					KM_FENCE_PREFIX, v[i].name);
	len += snprintf(req + len, sizeof(req) - len, "\r\n");
	if (len >= sizeof(req) ||
	    km_fence_io(peer->id, req, len, rep, sizeof(rep),
			km_fence_end_done) < 0)
		return false;
	memset(e, 0, sizeof(e));
	if (km_fence_parse(rep, v, nv, e)) {
		km_fence_close(peer->id);
		return false;
	}
	for (i = 0; i < nv; i++) {
		struct km_fence_entry *x = &e[v[i].id];
		unsigned int taken;

		if (v[i].id == peer->id)
			continue;
		known[v[i].id] = true;
		taken = x->present ? km_fence_adopt(peer->id, &v[i], x) : 0;
		/* the first read of this peer: nothing of ours is there yet */
		if (!km_fence_checked[peer->id] && x->present &&
		    km_fence_has(x->names, km_fence_me)) {
			km_fence_owed_before(v[i].id, v[i].name);
			v[i].owes = true;
		}
		if (x->present && km_fence_has_other(x->names))
			fenced[v[i].id] = true;
		if (km_fence_update(peer->id, &v[i], x, taken != 0) && taken)
			km_fence_adopted(taken, peer->id, v[i].id);
		fences += x->present;
	}
	km_fence_checked[peer->id] = true;
	if (!km_peers_sync(peer->id, km_fence_io, &records))
		return false;
	__atomic_store_n(&km_d.be[peer->id].internal_items, fences + records,
			 __ATOMIC_RELAXED);
	return true;
}

/* Do we owe backend b writes?  Lock held. */
static bool km_fence_owes_locked(const struct km_backend_info *b)
{
	struct km_journal_info j;

	if (b->kb.state != KM_BE_UP || (b->kb.flags & KM_BE_F_NO_WRITES) ||
	    !km_journal_empty(b->id) || km_daemon_join_fence_locked(b) > 0)
		return true;
	km_journal_get_info(b->id, &j);
	return j.lost || j.flush;
}

void km_fence_round(void)
{
	struct km_fence_view v[KM_MAX_BACKENDS];
	bool fenced[KM_MAX_BACKENDS] = {0}, known[KM_MAX_BACKENDS] = {0};
	bool complete = true;
	unsigned int id, nv = 0, i;

	pthread_mutex_lock(&km_d.lock);
	km_peers_round_start(km_fence_me, km_daemon_ring_fp_locked(),
			     km_daemon_handoff_state_locked(),
			     km_daemon_leaving_fp_locked());
	for (id = 1; id < KM_MAX_BACKENDS; id++) {
		const struct km_backend_info *b = &km_d.be[id];

		if (!b->id)
			continue;
		v[nv].id = id;
		snprintf(v[nv].name, sizeof(v[nv].name), "%s", b->name);
		v[nv].addr = b->addr;
		v[nv].gen = km_backend_gen(id);
		v[nv].reachable = b->kb.state != KM_BE_DOWN;
		v[nv].owes = km_fence_owes_locked(b);
		nv++;
	}
	pthread_mutex_unlock(&km_d.lock);
	if (nv < 2) {
		km_peers_alone();
		return; /* no peer to hold a fence */
	}
	for (i = 0; i < nv; i++)
		if (!v[i].reachable ||
		    !km_fence_sync(&v[i], v, nv, fenced, known))
			complete = false;
	km_fence_forget_done(complete);
	km_fence_note_up(v, nv);
	km_peers_round_end();
	/*
	 * A backend's fences live on the others only: with none of them
	 * read, nothing is known of them, and the flag stays as it was.
	 * Seed 8612 of the chaos test: pb, restarted with two backends, one
	 * cut off from it, lifted the fence pa had put on the other (drained
	 * for writes) and read values pa had overwritten since.
	 */
	for (i = 0; i < nv; i++)
		if (known[v[i].id])
			km_backend_set_flags(
				v[i].id, KM_BE_F_FENCED,
				fenced[v[i].id] ? KM_BE_F_FENCED : 0,
				fenced[v[i].id] ? "fenced: another kmagentd "
						  "knows it missed writes"
						: "fence lifted");
}

void km_fence_stop(void)
{
	unsigned int i;

	for (i = 0; i < KM_MAX_BACKENDS; i++)
		km_fence_close(i);
}
