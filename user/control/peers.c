// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Ring handoffs across kmagentd (peers.h).  The records are read and
 * written by the health thread (fence rounds); km_peers_forget comes
 * from the control thread.  km_peers_lock guards the table.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "daemon.h"
#include "log.h"
#include "peers.h"

#define KM_PEERS_MAX	 16
#define KM_PEERS_DIR_MAX 1024 /* bytes of names in kmagent:proxies */
/*
 * Our keys live KM_PEERS_LIFE_SECS unless touched (every
 * KM_PEERS_REFRESH_SECS): a kmagentd gone for good leaves none behind.  A
 * touch stores nothing: `stats` total_items does not grow with it.
 */
#define KM_PEERS_LIFE_SECS    60
#define KM_PEERS_REFRESH_SECS 20
/* a record refreshed less long ago: its kmagentd may be alive */
#define KM_PEERS_ALIVE_SECS (KM_PEERS_REFRESH_SECS + 5)

struct km_peer {
	char name[KM_NAME_MAX]; /* "" = a free entry */
	bool fetched;		/* a record of it was read */
	__u32 fp;
	__u32 lfp;    /* the slots it leaves (km_daemon_leaving_fp_locked) */
	bool has_lfp; /* its record says them (not one of an older kmagentd) */
	char st;
	unsigned long long seq;
	time_t changed; /* monotonic: its record last seen (or we met it) */
	bool forgotten; /* kmagentctl forget, until its seq grows */
	bool silent;	/* past the TTL: logged */
	/*
	 * Forgotten: when its record was last refreshed (monotonic, from its
	 * TTL left on each backend; 0 none held it); the forget holds only
	 * once that is older than a live kmagentd lets it get.
	 */
	time_t refreshed;
	bool checked; /* a round read its TTLs since the forget */
	bool pending_logged;
};

static pthread_mutex_t km_peers_lock = PTHREAD_MUTEX_INITIALIZER;
static struct km_peer km_peers[KM_PEERS_MAX];
static struct {
	char name[KM_NAME_MAX];
	__u32 fp, lfp;
	char st;
	unsigned long long seq;
	time_t written; /* monotonic: our keys last written or touched */
	bool touch;	/* due this round */
} km_me;
static bool km_peers_read_once; /* a backend's records were read */
static char km_peers_why[256];	/* what we wait for, as last logged */

static time_t km_peers_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

void km_peers_round_start(const char *me, __u32 fp, enum km_handoff_state st,
			  __u32 lfp)
{
	time_t now = km_peers_now();

	pthread_mutex_lock(&km_peers_lock);
	snprintf(km_me.name, sizeof(km_me.name), "%s", me);
	if (!km_me.seq) {
		struct timespec rt;

		/* a restarted kmagentd's records are newer than its last */
		clock_gettime(CLOCK_REALTIME, &rt);
		km_me.seq = ((unsigned long long)rt.tv_sec * 1000 +
			     rt.tv_nsec / 1000000) *
			    1000;
	}
	km_me.touch = false;
	if (fp != km_me.fp || (char)st != km_me.st || lfp != km_me.lfp) {
		km_me.fp = fp;
		km_me.lfp = lfp;
		km_me.st = (char)st;
		km_me.seq++;
		km_me.written = now;
	} else if (now - km_me.written >= KM_PEERS_REFRESH_SECS) {
		km_me.touch = true;
		km_me.written = now;
	}
	pthread_mutex_unlock(&km_peers_lock);
}

static struct km_peer *km_peer_find(const char *name, bool add)
{
	struct km_peer *free_p = NULL;
	unsigned int i;

	for (i = 0; i < KM_PEERS_MAX; i++) {
		if (!strcmp(km_peers[i].name, name))
			return &km_peers[i];
		if (!km_peers[i].name[0] && !free_p)
			free_p = &km_peers[i];
	}
	if (!add || !free_p)
		return NULL;
	memset(free_p, 0, sizeof(*free_p));
	snprintf(free_p->name, sizeof(free_p->name), "%s", name);
	free_p->changed = km_peers_now();
	return free_p;
}

/* A record read: newer than what we knew? */
static void km_peer_note(const char *name, const char *val)
{
	struct km_peer *p = km_peer_find(name, true);
	unsigned long long seq;
	unsigned int fp, lfp;
	char st;
	int n;

	if (!p)
		return;
	n = sscanf(val, "%x %c %llu %x", &fp, &st, &seq, &lfp);
	if (n < 3)
		return;
	p->changed = km_peers_now(); /* alive: its keys did not expire */
	p->silent = false;
	if (p->fetched && seq <= p->seq)
		return;
	if (p->forgotten && p->fetched)
		km_info("kmagentd %s writes its ring record again: handoffs "
			"wait for it again\n",
			name);
	p->forgotten = p->forgotten && !p->fetched;
	p->fetched = true;
	p->fp = fp;
	p->has_lfp = n == 4;
	p->lfp = p->has_lfp ? lfp : 0;
	p->st = st;
	p->seq = seq;
}

/* Every other name of kmagent:proxies into the table. */
static void km_peers_note_dir(const char *names)
{
	char copy[KM_PEERS_DIR_MAX + 1], *save, *w;

	snprintf(copy, sizeof(copy), "%s", names);
	for (w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save))
		if (strcmp(w, km_me.name))
			km_peer_find(w, true);
}

static int km_peers_end_done(const char *buf, size_t len)
{
	return len >= 5 && !memcmp(buf + len - 5, "END\r\n", 5);
}

static int km_peers_line_done(const char *buf, size_t len)
{
	return len >= 2 && !memcmp(buf + len - 2, "\r\n", 2);
}

struct km_peers_seen {
	unsigned int items; /* records and kmagent:proxies found */
	bool dir, mine;
	unsigned long long dir_cas, my_seq;
	char dir_names[KM_PEERS_DIR_MAX + 1];
};

/* Parse the reply to our gets (VALUE ... END) into the table and *s. */
static int km_peers_parse(char *p, struct km_peers_seen *s)
{
	size_t pre = strlen(KM_PEERS_RING);

	while (strncmp(p, "END\r\n", 5)) {
		char key[300], val[KM_PEERS_DIR_MAX + 1];
		unsigned long long cas;
		unsigned int flags;
		size_t bytes;
		int used = 0;

		if (sscanf(p, "VALUE %299s %u %zu %llu\r\n%n", key, &flags,
			   &bytes, &cas, &used) != 4 ||
		    !used || bytes > KM_PEERS_DIR_MAX ||
		    strlen(p + used) < bytes + 2)
			return -1;
		memcpy(val, p + used, bytes);
		val[bytes] = 0;
		p += used + bytes + 2;
		s->items++;
		if (!strcmp(key, KM_PEERS_KEY)) {
			s->dir = true;
			s->dir_cas = cas;
			memcpy(s->dir_names, val, bytes + 1);
		} else if (!strncmp(key, KM_PEERS_RING, pre) &&
			   !strcmp(key + pre, km_me.name)) {
			s->mine = sscanf(val, "%*x %*c %llu", &s->my_seq) == 1;
		} else if (!strncmp(key, KM_PEERS_RING, pre)) {
			km_peer_note(key + pre, val);
		}
	}
	return 0;
}

/*
 * kmagent:proxies as it should be: its names less those silent past the
 * TTL (gone: the list does not grow with every name ever used), ours in.
 */
static void km_peers_dir_wanted(const char *names, char *out, size_t cap)
{
	char copy[KM_PEERS_DIR_MAX + 1], *save, *w;
	bool me = false;
	size_t len = 0;

	out[0] = 0;
	snprintf(copy, sizeof(copy), "%s", names);
	for (w = strtok_r(copy, " ", &save); w;
	     w = strtok_r(NULL, " ", &save)) {
		const struct km_peer *p = km_peer_find(w, false);

		me |= !strcmp(w, km_me.name);
		if ((p && p->silent) || len + strlen(w) + 2 > cap)
			continue;
		len += snprintf(out + len, cap - len, "%s%s", len ? " " : "",
				w);
	}
	if (me)
		return;
	if (len + strlen(km_me.name) + 2 <= cap)
		snprintf(out + len, cap - len, "%s%s", len ? " " : "",
			 km_me.name);
	else
		km_warn("%s is full: handoffs of other kmagentd will not "
			"wait for this one\n",
			KM_PEERS_KEY);
}

/* kmagent:proxies on backend id, if it is not as wanted (add, or cas). */
static void km_peers_write_dir(__u8 id, km_peers_io_fn io,
			       const struct km_peers_seen *s)
{
	char want[KM_PEERS_DIR_MAX + 1], req[KM_PEERS_DIR_MAX + 256], rep[64];
	int n;

	km_peers_dir_wanted(s->dir ? s->dir_names : "", want, sizeof(want));
	if (s->dir && !strcmp(want, s->dir_names))
		return;
	if (s->dir)
		n = snprintf(req, sizeof(req), "cas %s 0 %d %zu %llu\r\n%s\r\n",
			     KM_PEERS_KEY, KM_PEERS_LIFE_SECS, strlen(want),
			     s->dir_cas, want);
	else
		n = snprintf(req, sizeof(req), "add %s 0 %d %zu\r\n%s\r\n",
			     KM_PEERS_KEY, KM_PEERS_LIFE_SECS, strlen(want),
			     want);
	/* raced with another kmagentd: the next round tries again */
	if (n > 0 && (size_t)n < sizeof(req))
		io(id, req, n, rep, sizeof(rep), km_peers_line_done);
}

static void km_peers_write_mine(__u8 id, km_peers_io_fn io)
{
	char req[256], val[64], rep[64];
	int n, vlen;

	vlen = snprintf(val, sizeof(val), "%08x %c %llu %08x", km_me.fp,
			km_me.st, km_me.seq, km_me.lfp);
	n = snprintf(req, sizeof(req), "set %s%s 0 %d %d\r\n%s\r\n",
		     KM_PEERS_RING, km_me.name, KM_PEERS_LIFE_SECS, vlen, val);
	if (n > 0 && (size_t)n < sizeof(req))
		io(id, req, n, rep, sizeof(rep), km_peers_line_done);
}

/* Our key's life extended; the reply does not matter (next round). */
static void km_peers_touch(__u8 id, km_peers_io_fn io, const char *key,
			   const char *suffix)
{
	char req[256], rep[64];
	int n;

	n = snprintf(req, sizeof(req), "touch %s%s %d\r\n", key, suffix,
		     KM_PEERS_LIFE_SECS);
	if (n > 0 && (size_t)n < sizeof(req))
		io(id, req, n, rep, sizeof(rep), km_peers_line_done);
}

/*
 * When did forgotten p's kmagentd last refresh its record on backend id
 * (mg's TTL left, against the life it writes)?  The latest counts.
 */
static void km_peers_check_forgotten(__u8 id, km_peers_io_fn io,
				     struct km_peer *p)
{
	char req[KM_NAME_MAX + 64], rep[64];
	time_t at;
	int n, ttl;

	n = snprintf(req, sizeof(req), "mg %s%s t\r\n", KM_PEERS_RING, p->name);
	if (n <= 0 || (size_t)n >= sizeof(req) ||
	    io(id, req, n, rep, sizeof(rep), km_peers_line_done) < 0)
		return;
	if (sscanf(rep, "HD t%d", &ttl) != 1 || ttl < 0 ||
	    ttl > KM_PEERS_LIFE_SECS)
		return; /* EN: none here */
	at = km_peers_now() - (KM_PEERS_LIFE_SECS - ttl);
	if (at > p->refreshed)
		p->refreshed = at;
}

bool km_peers_sync(__u8 id, km_peers_io_fn io, unsigned int *items)
{
	static char req[KM_PEERS_MAX * (KM_NAME_MAX + 16) + 256];
	static char rep[16384];
	static struct km_peers_seen s;
	size_t len;
	unsigned int i;
	bool ok = false;

	pthread_mutex_lock(&km_peers_lock);
	len = snprintf(req, sizeof(req), "gets %s %s%s", KM_PEERS_KEY,
		       KM_PEERS_RING, km_me.name);
	for (i = 0; i < KM_PEERS_MAX; i++)
		if (km_peers[i].name[0])
			len += snprintf(req + len, sizeof(req) - len, " %s%s",
					KM_PEERS_RING, km_peers[i].name);
	len += snprintf(req + len, sizeof(req) - len, "\r\n");
	memset(&s, 0, sizeof(s));
	if (len >= sizeof(req) ||
	    io(id, req, len, rep, sizeof(rep), km_peers_end_done) < 0 ||
	    km_peers_parse(rep, &s))
		goto out;
	km_peers_note_dir(s.dir_names);
	km_peers_write_dir(id, io, &s);
	if (!s.mine || s.my_seq != km_me.seq)
		km_peers_write_mine(id, io);
	else if (km_me.touch)
		km_peers_touch(id, io, KM_PEERS_RING, km_me.name);
	if (s.dir && km_me.touch)
		km_peers_touch(id, io, KM_PEERS_KEY, "");
	for (i = 0; i < KM_PEERS_MAX; i++)
		if (km_peers[i].name[0] && km_peers[i].forgotten)
			km_peers_check_forgotten(id, io, &km_peers[i]);
	*items = s.items + !s.dir + !s.mine; /* what we just wrote counts */
	km_peers_read_once = true;
	ok = true;
out:
	pthread_mutex_unlock(&km_peers_lock);
	return ok;
}

/*
 * A forget holds once the record is older than a live kmagentd lets it
 * get (or held nowhere): kmagentctl forget of a live kmagentd would end
 * handoffs under it, and it would read backends no longer written.
 */
static bool km_peer_forgotten(struct km_peer *p, time_t now)
{
	time_t ago = now - p->refreshed;

	if (!p->forgotten || !p->checked)
		return false;
	if (!p->refreshed || ago > KM_PEERS_ALIVE_SECS)
		return true;
	if (!p->pending_logged)
		km_warn("forget %s: its ring record was refreshed %lld s ago "
			"(every %d s while it runs): handoffs wait for it "
			"until that is %d s old\n",
			p->name, (long long)ago, KM_PEERS_REFRESH_SECS,
			KM_PEERS_ALIVE_SECS);
	p->pending_logged = true;
	return false;
}

bool km_peers_forgotten(const char *name)
{
	struct km_peer *p;
	bool gone;

	pthread_mutex_lock(&km_peers_lock);
	p = km_peer_find(name, false);
	/* no record ever read: nothing says it is alive */
	gone = !p || !p->fetched || km_peer_forgotten(p, km_peers_now());
	pthread_mutex_unlock(&km_peers_lock);
	return gone;
}

void km_peers_round_end(void)
{
	time_t now = km_peers_now();
	bool agree, ready, none, shared = true;
	__u32 fp, lfp;
	char why[sizeof(km_peers_why)] = "";
	size_t len = 0;
	unsigned int i;

	pthread_mutex_lock(&km_peers_lock);
	agree = ready = none = km_peers_read_once;
	for (i = 0; i < KM_PEERS_MAX; i++) {
		struct km_peer *p = &km_peers[i];
		const char *wait = NULL;

		if (p->forgotten)
			p->checked = true;
		if (!p->name[0] || km_peer_forgotten(p, now))
			continue;
		none = false;
		if (now - p->changed > KM_PEERS_TTL_SECS) {
			if (!p->silent)
				km_info("kmagentd %s: no ring record for %d s: "
					"handoffs no longer wait for it\n",
					p->name, KM_PEERS_TTL_SECS);
			p->silent = true;
			continue;
		}
		/* else it may not write our leaving backends there */
		if (!p->fetched || !p->has_lfp || p->lfp != km_me.lfp)
			shared = false;
		if (!p->fetched || p->fp != km_me.fp) {
			agree = ready = false;
			wait = p->fetched ? "runs another ring"
					  : "not read yet";
		} else if (p->st == KM_HANDOFF_PENDING) {
			ready = false;
			wait = "has its handoff pending";
		}
		if (wait && len < sizeof(why))
			len += snprintf(why + len, sizeof(why) - len, "%s%s %s",
					len ? ", " : "", p->name, wait);
	}
	if (km_me.st != KM_HANDOFF_SETTLED && strcmp(why, km_peers_why) &&
	    why[0])
		km_info("ring handoff waits for kmagentd %s\n", why);
	snprintf(km_peers_why, sizeof(km_peers_why), "%s", why);
	fp = km_me.fp;
	lfp = km_me.lfp;
	pthread_mutex_unlock(&km_peers_lock);
	km_daemon_set_peers(fp, agree, ready, none);
	/* no record read yet: nobody is known to write them either */
	km_daemon_set_leaving_shared(lfp, shared && km_peers_read_once);
}

void km_peers_alone(void)
{
	km_daemon_set_peers(0, true, true, true);
}

void km_peers_forget(const char *name)
{
	struct km_peer *p;

	pthread_mutex_lock(&km_peers_lock);
	p = km_peer_find(name, false);
	if (p) {
		p->forgotten = true;
		p->refreshed = 0;
		p->checked = p->pending_logged = false;
	}
	pthread_mutex_unlock(&km_peers_lock);
}
