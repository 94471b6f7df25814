// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The missed-write journal (journal.h): one chained hash set of keys per
 * backend.  Chaining keeps removal simple (a successful overwrite forgets
 * a key) and lets the table grow by rehashing without moving the keys.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "journal.h"
#include "km_hash.h"
#include "log.h"

struct km_jnode {
	struct km_jnode *next;
	__u32 hash;
	bool sticky; /* only a replay settles it (km_journal_note_sent) */
	unsigned int len;
	char key[];
};

struct km_jset {
	pthread_mutex_t lock;
	struct km_jnode **tab;
	size_t nbuckets;
	size_t n; /* written under lock, read without (km_journal_empty) */
	bool lost, flush;
	int whole; /* lost || flush: read without the lock (km_journal_owes) */
	char why[96];
	unsigned long long noted;
};

static struct km_jset km_js[KM_MAX_BACKENDS] = {
	[0 ... KM_MAX_BACKENDS - 1] = {.lock = PTHREAD_MUTEX_INITIALIZER},
};
/* reloadable (km_journal_set_max): read by the workers without a lock */
static size_t km_journal_max = KM_JOURNAL_MAX;
static void (*km_journal_owing_fn)(__u8 be); /* km_journal_on_owing */
/*
 * The keys of the replay under way, by backend, under km_js[be].lock:
 * taken from the journal, still owed (km_journal_owes) until the replay
 * ends (km_journal_snap_free), since its copy of them may be older.
 */
static struct km_jset km_jr[KM_MAX_BACKENDS];

/*
 * The file (journal.h, "Durable").  Lock order: a backend's km_js lock,
 * then km_jf.lock; a checkpoint takes every km_js lock, in id order.
 */
#define KM_JF_NAME KM_JOURNAL_NAME
static struct {
	pthread_mutex_t lock;
	FILE *f; /* NULL: in memory only */
	char path[4096];
	bool known_past;
	char names[KM_MAX_BACKENDS][KM_JF_NAME];
	unsigned int drain[KM_MAX_BACKENDS]; /* km_journal_set_drain */
	struct km_journal_ring ring;	     /* km_journal_set_ring */
	bool ring_known;
	/* keys of replays under way (taken, not settled): still owed */
	struct km_jset pending[KM_MAX_BACKENDS];
} km_jf = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void km_jf_append(__u8 be, char op, const char *arg, size_t len);
static void km_jf_pend_locked(__u8 be, const struct km_jset *js,
			      const struct km_jkey *keys, size_t n);

void km_journal_set_max(size_t max_keys)
{
	__atomic_store_n(&km_journal_max, max_keys ? max_keys : KM_JOURNAL_MAX,
			 __ATOMIC_RELAXED);
}

static struct km_jset *km_jset_of(__u8 be)
{
	return be && be < KM_MAX_BACKENDS ? &km_js[be] : NULL;
}

/* After lost or flush changed: what km_journal_owes reads unlocked. */
static void km_jset_whole_locked(struct km_jset *js)
{
	__atomic_store_n(&js->whole, js->lost || js->flush, __ATOMIC_RELAXED);
}

static void km_jset_lost_locked(struct km_jset *js, const char *why)
{
	if (!js->lost)
		snprintf(js->why, sizeof(js->why), "%s", why);
	js->lost = true;
	km_jset_whole_locked(js);
}

static void km_jset_free_keys_locked(struct km_jset *js)
{
	size_t i;

	for (i = 0; i < js->nbuckets; i++) {
		struct km_jnode *nd = js->tab[i], *next;

		for (; nd; nd = next) {
			next = nd->next;
			free(nd);
		}
	}
	free(js->tab);
	js->tab = NULL;
	js->nbuckets = 0;
	__atomic_store_n(&js->n, 0, __ATOMIC_RELAXED);
}

/* Keep the chains short: double the table at one key per bucket. */
static int km_jset_grow_locked(struct km_jset *js)
{
	size_t nb = js->nbuckets ? js->nbuckets * 2 : 1024, i;
	struct km_jnode **tab;

	if (js->n < js->nbuckets)
		return 0;
	tab = calloc(nb, sizeof(*tab));
	if (!tab)
		return -ENOMEM;
	for (i = 0; i < js->nbuckets; i++) {
		struct km_jnode *nd = js->tab[i], *next;

		for (; nd; nd = next) {
			next = nd->next;
			nd->next = tab[nd->hash & (nb - 1)];
			tab[nd->hash & (nb - 1)] = nd;
		}
	}
	free(js->tab);
	js->tab = tab;
	js->nbuckets = nb;
	return 0;
}

static struct km_jnode **km_jset_find_locked(struct km_jset *js, __u32 hash,
					     const char *key, size_t len)
{
	struct km_jnode **pp;

	if (!js->nbuckets)
		return NULL;
	for (pp = &js->tab[hash & (js->nbuckets - 1)]; *pp; pp = &(*pp)->next)
		if ((*pp)->hash == hash && (*pp)->len == len &&
		    !memcmp((*pp)->key, key, len))
			return pp;
	return NULL;
}

/* 0, or -errno with the journal marked lost: it no longer says it all. */
static int km_jset_add_locked(struct km_jset *js, const char *key, size_t len,
			      bool sticky)
{
	__u32 hash = km_hash_key(key, len);
	struct km_jnode *nd, **pp;

	if (js->lost)
		return 0; /* a full resync comes anyway */
	pp = km_jset_find_locked(js, hash, key, len);
	if (pp) {
		(*pp)->sticky |= sticky;
		return 0;
	}
	if (js->n >= __atomic_load_n(&km_journal_max, __ATOMIC_RELAXED)) {
		km_jset_lost_locked(js, "journal full");
		km_jset_free_keys_locked(js);
		return -ENOSPC;
	}
	nd = malloc(sizeof(*nd) + len);
	if (!nd || km_jset_grow_locked(js)) {
		free(nd);
		km_jset_lost_locked(js, "journal: out of memory");
		km_jset_free_keys_locked(js);
		return -ENOMEM;
	}
	nd->hash = hash;
	nd->sticky = sticky;
	nd->len = len;
	memcpy(nd->key, key, len);
	nd->next = js->tab[hash & (js->nbuckets - 1)];
	js->tab[hash & (js->nbuckets - 1)] = nd;
	__atomic_store_n(&js->n, js->n + 1, __ATOMIC_RELAXED);
	return 0;
}

void km_journal_on_owing(void (*fn)(__u8 be))
{
	__atomic_store_n(&km_journal_owing_fn, fn, __ATOMIC_RELEASE);
}

/* After a debt was added (no lock held): tell whoever listens. */
static void km_journal_owing(__u8 be)
{
	void (*fn)(__u8) =
		__atomic_load_n(&km_journal_owing_fn, __ATOMIC_ACQUIRE);

	if (fn)
		fn(be);
}

static void km_journal_add(__u8 be, const char *key, size_t len, bool sticky)
{
	struct km_jset *js = km_jset_of(be);

	if (!js)
		return;
	pthread_mutex_lock(&js->lock);
	js->noted++;
	if (!km_jset_add_locked(js, key, len, sticky) && !js->lost)
		km_jf_append(be, 'n', key, len);
	pthread_mutex_unlock(&js->lock);
	km_journal_owing(be);
}

bool km_journal_settled(__u8 be)
{
	struct km_jset *js = km_jset_of(be);

	return !js || (!__atomic_load_n(&js->n, __ATOMIC_RELAXED) &&
		       !__atomic_load_n(&js->whole, __ATOMIC_RELAXED) &&
		       !__atomic_load_n(&km_jr[be].n, __ATOMIC_RELAXED) &&
		       !__atomic_load_n(&km_jr[be].whole, __ATOMIC_RELAXED));
}

bool km_journal_empty(__u8 be)
{
	struct km_jset *js = km_jset_of(be);

	return !js || !__atomic_load_n(&js->n, __ATOMIC_RELAXED);
}

void km_journal_note(__u8 be, const char *key, size_t len)
{
	km_journal_add(be, key, len, false);
}

void km_journal_note_sent(__u8 be, const char *key, size_t len)
{
	km_journal_add(be, key, len, true);
}

bool km_journal_owes(__u8 be, const char *key, size_t len)
{
	struct km_jset *js = km_jset_of(be);
	bool owes;

	struct km_jset *jr = &km_jr[be];
	__u32 hash;

	if (!js || (!__atomic_load_n(&js->n, __ATOMIC_RELAXED) &&
		    !__atomic_load_n(&js->whole, __ATOMIC_RELAXED) &&
		    !__atomic_load_n(&jr->n, __ATOMIC_RELAXED) &&
		    !__atomic_load_n(&jr->whole, __ATOMIC_RELAXED)))
		return false;
	hash = km_hash_key(key, len);
	pthread_mutex_lock(&js->lock);
	owes = js->lost || js->flush || jr->lost ||
	       km_jset_find_locked(js, hash, key, len) ||
	       km_jset_find_locked(jr, hash, key, len);
	pthread_mutex_unlock(&js->lock);
	return owes;
}

void km_journal_forget(__u8 be, const char *key, size_t len)
{
	struct km_jset *js = km_jset_of(be);
	struct km_jnode **pp, *nd;

	if (km_journal_empty(be))
		return;
	pthread_mutex_lock(&js->lock);
	pp = km_jset_find_locked(js, km_hash_key(key, len), key, len);
	if (pp && !(*pp)->sticky) {
		nd = *pp;
		*pp = nd->next;
		free(nd);
		__atomic_store_n(&js->n, js->n - 1, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&js->lock);
}

void km_journal_note_flush(__u8 be)
{
	struct km_jset *js = km_jset_of(be);

	if (!js)
		return;
	/* what it missed before the flush is gone everywhere */
	pthread_mutex_lock(&js->lock);
	js->flush = true;
	km_jset_whole_locked(js);
	km_jset_free_keys_locked(js);
	km_jf_append(be, 'F', NULL, 0);
	pthread_mutex_unlock(&js->lock);
	km_journal_owing(be);
}

void km_journal_set_lost(__u8 be, const char *why)
{
	struct km_jset *js = km_jset_of(be);

	if (!js)
		return;
	pthread_mutex_lock(&js->lock);
	km_jset_lost_locked(js, why);
	km_jset_free_keys_locked(js);
	km_jf_append(be, 'L', why, strlen(why));
	pthread_mutex_unlock(&js->lock);
	km_journal_owing(be);
}

int km_journal_take(__u8 be, struct km_journal_snap *s)
{
	struct km_jset *js = km_jset_of(be);
	size_t i, k = 0;
	int err = 0;

	memset(s, 0, sizeof(*s));
	if (!js)
		return -EINVAL;
	pthread_mutex_lock(&js->lock);
	if (js->n) {
		s->keys = calloc(js->n, sizeof(*s->keys));
		if (!s->keys) {
			err = -ENOMEM;
			goto out;
		}
	}
	/* the nodes' memory moves to the snapshot: key points into it */
	for (i = 0; i < js->nbuckets; i++) {
		struct km_jnode *nd;

		for (nd = js->tab[i]; nd; nd = nd->next) {
			s->keys[k].len = nd->len;
			s->keys[k].key = nd->key;
			k++;
		}
	}
	km_jf_pend_locked(be, js, s->keys, k);
	km_jset_free_keys_locked(&km_jr[be]);
	if (js->lost || js->flush)
		km_jset_lost_locked(&km_jr[be], "replay of a lost journal");
	for (i = 0; i < k; i++)
		km_jset_add_locked(&km_jr[be], s->keys[i].key, s->keys[i].len,
				   false);
	s->be = be;
	s->n = k;
	s->lost = js->lost;
	s->flush = js->flush;
	snprintf(s->why, sizeof(s->why), "%s", js->why);
	/* unlink the nodes without freeing them: the snapshot owns them */
	free(js->tab);
	js->tab = NULL;
	js->nbuckets = 0;
	__atomic_store_n(&js->n, 0, __ATOMIC_RELAXED);
	js->lost = js->flush = false;
	km_jset_whole_locked(js);
	js->why[0] = 0;
out:
	pthread_mutex_unlock(&js->lock);
	return err;
}

static struct km_jnode *km_jnode_of(const struct km_jkey *k)
{
	return (struct km_jnode *)(k->key - offsetof(struct km_jnode, key));
}

/* js lock held: no replay under way. */
static void km_jr_clear_locked(__u8 be)
{
	km_jset_free_keys_locked(&km_jr[be]);
	km_jr[be].lost = false;
	km_jset_whole_locked(&km_jr[be]);
}

void km_journal_snap_free(struct km_journal_snap *s)
{
	struct km_jset *js = km_jset_of(s->be);
	size_t i;

	if (js) {
		pthread_mutex_lock(&js->lock);
		km_jr_clear_locked(s->be);
		pthread_mutex_unlock(&js->lock);
	}
	for (i = 0; i < s->n; i++)
		free(km_jnode_of(&s->keys[i]));
	free(s->keys);
	memset(s, 0, sizeof(*s));
}

void km_journal_put_back(__u8 be, struct km_journal_snap *s)
{
	struct km_jset *js = km_jset_of(be);
	size_t i;

	if (js) {
		pthread_mutex_lock(&js->lock);
		if (s->lost)
			km_jset_lost_locked(js, s->why);
		js->flush |= s->flush;
		km_jset_whole_locked(js);
		for (i = 0; i < s->n && !js->lost; i++)
			km_jset_add_locked(js, s->keys[i].key, s->keys[i].len,
					   false);
		pthread_mutex_unlock(&js->lock);
		km_journal_owing(be);
	}
	km_journal_snap_free(s);
}

void km_journal_clear(__u8 be)
{
	struct km_jset *js = km_jset_of(be);

	if (!js)
		return;
	pthread_mutex_lock(&js->lock);
	km_jset_free_keys_locked(js);
	js->lost = js->flush = false;
	km_jset_whole_locked(js);
	js->why[0] = 0;
	km_jr_clear_locked(be);
	pthread_mutex_unlock(&js->lock);
}

/* Collect from's debts (noted and under replay) that mine() keeps. */
static int km_jset_collect_locked(const struct km_jset *js,
				  bool (*mine)(const char *, size_t, void *),
				  void *ctx, struct km_jkey **out, size_t *n,
				  size_t *cap)
{
	size_t i;

	for (i = 0; i < js->nbuckets; i++) {
		const struct km_jnode *nd;

		for (nd = js->tab[i]; nd; nd = nd->next) {
			struct km_jkey *k;

			if (!mine(nd->key, nd->len, ctx))
				continue;
			if (*n == *cap) {
				size_t c = *cap ? *cap * 2 : 64;
				struct km_jkey *p =
					realloc(*out, c * sizeof(*p));

				if (!p)
					return -ENOMEM;
				*out = p;
				*cap = c;
			}
			k = &(*out)[(*n)++];
			k->len = nd->len;
			k->key = malloc(nd->len);
			if (!k->key) {
				(*n)--;
				return -ENOMEM;
			}
			memcpy(k->key, nd->key, nd->len);
		}
	}
	return 0;
}

void km_journal_inherit(__u8 to, __u8 from,
			bool (*mine)(const char *key, size_t len, void *ctx),
			void *ctx)
{
	struct km_jset *js = km_jset_of(from);
	struct km_jkey *keys = NULL;
	size_t n = 0, cap = 0, i;
	bool all;
	int err;

	if (!js || !km_jset_of(to) || to == from || km_journal_settled(from))
		return;
	pthread_mutex_lock(&js->lock);
	all = js->lost || js->flush || km_jr[from].lost;
	err = km_jset_collect_locked(js, mine, ctx, &keys, &n, &cap);
	if (!err)
		err = km_jset_collect_locked(&km_jr[from], mine, ctx, &keys, &n,
					     &cap);
	pthread_mutex_unlock(&js->lock);
	if (all || err)
		km_journal_set_lost(to, all ? "copied from a replica that "
					      "owed every write"
					    : "journal: out of memory");
	for (i = 0; i < n; i++) {
		if (!all && !err)
			km_journal_note(to, keys[i].key, keys[i].len);
		free(keys[i].key);
	}
	free(keys);
}

void km_journal_get_info(__u8 be, struct km_journal_info *info)
{
	struct km_jset *js = km_jset_of(be);

	memset(info, 0, sizeof(*info));
	if (!js)
		return;
	pthread_mutex_lock(&js->lock);
	info->keys = js->n;
	info->lost = js->lost;
	info->flush = js->flush;
	info->noted = js->noted;
	snprintf(info->why, sizeof(info->why), "%s", js->why);
	pthread_mutex_unlock(&js->lock);
}

void km_journal_fini(void)
{
	unsigned int i;

	for (i = 0; i < KM_MAX_BACKENDS; i++) {
		km_journal_clear(i);
		km_journal_name(i, NULL);
	}
	pthread_mutex_lock(&km_jf.lock);
	if (km_jf.f)
		fclose(km_jf.f);
	km_jf.f = NULL;
	km_jf.path[0] = 0;
	km_jf.known_past = false;
	km_jf.ring_known = false;
	pthread_mutex_unlock(&km_jf.lock);
}

/* ---- the file ----------------------------------------------------------- */

static bool km_jf_on(__u8 be)
{
	return km_jf.f && km_jf.names[be][0];
}

/* One record: op, the backend's name, then the key in hex or a reason. */
static void km_jf_write(FILE *f, __u8 be, char op, const char *arg, size_t len)
{
	size_t i;

	fprintf(f, "%c %s", op, km_jf.names[be]);
	if (op == 'n') {
		fputc(' ', f);
		for (i = 0; i < len; i++)
			fprintf(f, "%02x", (unsigned char)arg[i]);
	} else if (op == 'L') {
		fprintf(f, " %.*s", (int)len, arg);
	} else if (op == 'D') {
		fprintf(f, " %u", km_jf.drain[be]);
	}
	fputc('\n', f);
}

/*
 * Append a record, written through before the write it comes from is
 * answered: a kmagentd killed right after still finds it (the page cache
 * survives the process; a host crash restarts memcached too).
 */
static void km_jf_append(__u8 be, char op, const char *arg, size_t len)
{
	if (!km_jf_on(be))
		return;
	pthread_mutex_lock(&km_jf.lock);
	if (km_jf.f) {
		km_jf_write(km_jf.f, be, op, arg, len);
		if (fflush(km_jf.f)) {
			km_err("journal %s: %s: kept in memory only\n",
			       km_jf.path, strerror(errno));
			fclose(km_jf.f);
			km_jf.f = NULL;
		}
	}
	pthread_mutex_unlock(&km_jf.lock);
}

/* js lock held: the keys just taken stay owed until settled. */
static void km_jf_pend_locked(__u8 be, const struct km_jset *js,
			      const struct km_jkey *keys, size_t n)
{
	struct km_jset *p = &km_jf.pending[be];
	size_t i;

	if (!km_jf_on(be))
		return;
	pthread_mutex_lock(&km_jf.lock);
	if (js->lost)
		km_jset_lost_locked(p, js->why);
	p->flush |= js->flush;
	for (i = 0; i < n && !p->lost; i++)
		km_jset_add_locked(p, keys[i].key, keys[i].len, false);
	pthread_mutex_unlock(&km_jf.lock);
}

/* "R <replicas> <name> ...": the ring, one line (km_journal_set_ring). */
static void km_jf_write_ring(FILE *f)
{
	unsigned int i;

	fprintf(f, "R %u", km_jf.ring.replicas);
	for (i = 0; i < km_jf.ring.n; i++)
		fprintf(f, " %s%s", km_jf.ring.gone[i] ? "-" : "",
			km_jf.ring.names[i]);
	fputc('\n', f);
}

static void km_jf_dump_set(FILE *f, __u8 be, const struct km_jset *js)
{
	size_t i;

	if (js->lost) {
		km_jf_write(f, be, 'L', js->why, strlen(js->why));
		return;
	}
	if (js->flush)
		km_jf_write(f, be, 'F', NULL, 0);
	for (i = 0; i < js->nbuckets; i++) {
		const struct km_jnode *nd;

		for (nd = js->tab[i]; nd; nd = nd->next)
			km_jf_write(f, be, 'n', nd->key, nd->len);
	}
}

/*
 * Rewrite the file with the debts as they are (every js lock, then the
 * file's: nothing is appended meanwhile), then append to the new one.
 */
static int km_jf_checkpoint(void)
{
	char tmp[sizeof(km_jf.path) + 8];
	unsigned int be;
	FILE *f = NULL;
	int err = 0;

	if (!km_jf.path[0])
		return 0;
	for (be = 0; be < KM_MAX_BACKENDS; be++)
		pthread_mutex_lock(&km_js[be].lock);
	pthread_mutex_lock(&km_jf.lock);
	snprintf(tmp, sizeof(tmp), "%s.tmp", km_jf.path);
	f = fopen(tmp, "we");
	if (!f) {
		err = -errno;
		goto out;
	}
	if (km_jf.ring_known)
		km_jf_write_ring(f);
	for (be = 1; be < KM_MAX_BACKENDS; be++) {
		if (!km_jf.names[be][0])
			continue;
		km_jf_dump_set(f, be, &km_js[be]);
		km_jf_dump_set(f, be, &km_jf.pending[be]);
		if (km_jf.drain[be])
			km_jf_write(f, be, 'D', NULL, 0);
	}
	if (fflush(f) || fsync(fileno(f)) || rename(tmp, km_jf.path)) {
		err = -errno;
		fclose(f);
		unlink(tmp);
		goto out;
	}
	if (km_jf.f)
		fclose(km_jf.f);
	km_jf.f = f;
out:
	pthread_mutex_unlock(&km_jf.lock);
	for (be = KM_MAX_BACKENDS; be-- > 0;)
		pthread_mutex_unlock(&km_js[be].lock);
	return err;
}

void km_journal_name(__u8 be, const char *name)
{
	if (!be || be >= KM_MAX_BACKENDS)
		return;
	pthread_mutex_lock(&km_jf.lock);
	snprintf(km_jf.names[be], KM_JF_NAME, "%s", name ? name : "");
	km_jf.drain[be] = 0;
	km_jset_free_keys_locked(&km_jf.pending[be]);
	km_jf.pending[be].lost = km_jf.pending[be].flush = false;
	pthread_mutex_unlock(&km_jf.lock);
}

static int km_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* An "R" line's words: the last one in the file wins. */
static int km_jf_load_ring(char *words)
{
	struct km_journal_ring r = {0};
	char *w, *save = NULL, *end;

	w = strtok_r(words, " ", &save);
	if (!w)
		return -EINVAL;
	r.replicas = strtoul(w, &end, 10);
	if (*end)
		return -EINVAL;
	while ((w = strtok_r(NULL, " ", &save))) {
		if (r.n == KM_MAX_BACKENDS)
			return -EINVAL;
		r.gone[r.n] = *w == '-';
		w += r.gone[r.n];
		if (!*w || strlen(w) >= KM_JF_NAME)
			return -EINVAL;
		snprintf(r.names[r.n++], KM_JF_NAME, "%s", w);
	}
	pthread_mutex_lock(&km_jf.lock);
	km_jf.ring = r;
	km_jf.ring_known = true;
	pthread_mutex_unlock(&km_jf.lock);
	return 0;
}

/* One line of an earlier run's file into the journal: 0, or -EINVAL. */
static int km_jf_load_line(char *line)
{
	char *name, *arg, key[1024];
	size_t n = 0, i;
	int hi, lo;
	__u8 be;

	line[strcspn(line, "\n")] = 0;
	if (!line[0] || !line[1] || line[1] != ' ')
		return -EINVAL;
	if (line[0] == 'R')
		return km_jf_load_ring(line + 2);
	name = line + 2;
	arg = strchr(name, ' ');
	if (arg)
		*arg++ = 0;
	for (be = 1; be < KM_MAX_BACKENDS; be++)
		if (!strcmp(km_jf.names[be], name))
			break;
	if (be == KM_MAX_BACKENDS)
		return 0; /* removed since: its debts are moot */
	switch (line[0]) {
	case 'n':
		for (i = 0; arg && arg[i] && arg[i + 1] && n < sizeof(key);
		     i += 2) {
			hi = km_hexval(arg[i]);
			lo = km_hexval(arg[i + 1]);
			if (hi < 0 || lo < 0)
				return -EINVAL;
			key[n++] = hi << 4 | lo;
		}
		if (!n)
			return -EINVAL;
		pthread_mutex_lock(&km_js[be].lock);
		km_jset_add_locked(&km_js[be], key, n, false);
		pthread_mutex_unlock(&km_js[be].lock);
		return 0;
	case 'F':
		km_journal_note_flush(be);
		return 0;
	case 'L':
		km_journal_set_lost(be, arg ? arg : "lost");
		return 0;
	case 'D':
		km_jf.drain[be] = arg ? strtoul(arg, NULL, 10) : 0;
		return 0;
	}
	return -EINVAL;
}

int km_journal_open(const char *dir)
{
	char line[4096];
	unsigned int be;
	FILE *f;
	int err = 0, bad = 0;

	if (snprintf(km_jf.path, sizeof(km_jf.path), "%s/journal", dir) >=
	    (int)sizeof(km_jf.path))
		return -ENAMETOOLONG;
	f = fopen(km_jf.path, "re");
	if (f) {
		while (fgets(line, sizeof(line), f))
			if (km_jf_load_line(line))
				bad++;
		fclose(f);
		/* a torn last line (killed mid-write) is all it can be */
		km_jf.known_past = bad <= 1;
	} else if (errno != ENOENT) {
		err = -errno;
	}
	if (!err)
		err = km_jf_checkpoint();
	if (err)
		km_jf.path[0] = 0;
	for (be = 1; be < KM_MAX_BACKENDS; be++)
		if (!km_journal_settled(be))
			km_journal_owing(be);
	return err;
}

bool km_journal_known_past(void)
{
	return km_jf.known_past;
}

void km_journal_settle(__u8 be)
{
	int err;

	if (!be || be >= KM_MAX_BACKENDS || !km_jf.f)
		return;
	pthread_mutex_lock(&km_jf.lock);
	km_jset_free_keys_locked(&km_jf.pending[be]);
	km_jf.pending[be].lost = km_jf.pending[be].flush = false;
	pthread_mutex_unlock(&km_jf.lock);
	err = km_jf_checkpoint();

	if (err)
		km_err("journal %s: checkpoint: %s\n", km_jf.path,
		       strerror(-err));
}

void km_journal_set_drain(__u8 be, unsigned int flags)
{
	if (!be || be >= KM_MAX_BACKENDS)
		return;
	pthread_mutex_lock(&km_js[be].lock);
	km_jf.drain[be] = flags;
	km_jf_append(be, 'D', NULL, 0);
	pthread_mutex_unlock(&km_js[be].lock);
}

unsigned int km_journal_drain(__u8 be)
{
	return be && be < KM_MAX_BACKENDS ? km_jf.drain[be] : 0;
}

static bool km_jf_same_ring(const struct km_journal_ring *a,
			    const struct km_journal_ring *b)
{
	unsigned int i;

	if (a->replicas != b->replicas || a->n != b->n)
		return false;
	for (i = 0; i < a->n; i++)
		if (strcmp(a->names[i], b->names[i]) ||
		    a->gone[i] != b->gone[i])
			return false;
	return true;
}

/* Lock held: the ring recorded changed, into the file with it. */
static void km_jf_ring_changed_locked(void)
{
	if (!km_jf.f)
		return;
	km_jf_write_ring(km_jf.f);
	if (fflush(km_jf.f))
		km_err("journal %s: %s\n", km_jf.path, strerror(errno));
}

void km_journal_ring_gone(const char *name)
{
	unsigned int i;

	pthread_mutex_lock(&km_jf.lock);
	for (i = 0; km_jf.ring_known && i < km_jf.ring.n; i++) {
		if (strcmp(km_jf.ring.names[i], name) || km_jf.ring.gone[i])
			continue;
		km_jf.ring.gone[i] = true;
		km_jf_ring_changed_locked();
	}
	pthread_mutex_unlock(&km_jf.lock);
}

void km_journal_set_ring(const struct km_journal_ring *r)
{
	pthread_mutex_lock(&km_jf.lock);
	if (!km_jf.ring_known || !km_jf_same_ring(&km_jf.ring, r)) {
		km_jf.ring = *r;
		km_jf.ring_known = true;
		km_jf_ring_changed_locked();
	}
	pthread_mutex_unlock(&km_jf.lock);
}

bool km_journal_ring(struct km_journal_ring *r)
{
	bool known;

	pthread_mutex_lock(&km_jf.lock);
	known = km_jf.ring_known;
	if (known)
		*r = km_jf.ring;
	pthread_mutex_unlock(&km_jf.lock);
	return known;
}
