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

#include "journal.h"
#include "km_hash.h"

struct km_jnode {
	struct km_jnode *next;
	__u32 hash;
	unsigned int len;
	char key[];
};

struct km_jset {
	pthread_mutex_t lock;
	struct km_jnode **tab;
	size_t nbuckets;
	size_t n; /* written under lock, read without (km_journal_empty) */
	bool lost, flush;
	char why[96];
	unsigned long long noted;
};

static struct km_jset km_js[KM_MAX_BACKENDS] = {
	[0 ... KM_MAX_BACKENDS - 1] = {.lock = PTHREAD_MUTEX_INITIALIZER},
};
static size_t km_journal_max = KM_JOURNAL_MAX;

void km_journal_set_max(size_t max_keys)
{
	km_journal_max = max_keys ? max_keys : KM_JOURNAL_MAX;
}

static struct km_jset *km_jset_of(__u8 be)
{
	return be && be < KM_MAX_BACKENDS ? &km_js[be] : NULL;
}

static void km_jset_lost_locked(struct km_jset *js, const char *why)
{
	if (!js->lost)
		snprintf(js->why, sizeof(js->why), "%s", why);
	js->lost = true;
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
static int km_jset_add_locked(struct km_jset *js, const char *key, size_t len)
{
	__u32 hash = km_hash_key(key, len);
	struct km_jnode *nd;

	if (js->lost)
		return 0; /* a full resync comes anyway */
	if (km_jset_find_locked(js, hash, key, len))
		return 0;
	if (js->n >= km_journal_max) {
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
	nd->len = len;
	memcpy(nd->key, key, len);
	nd->next = js->tab[hash & (js->nbuckets - 1)];
	js->tab[hash & (js->nbuckets - 1)] = nd;
	__atomic_store_n(&js->n, js->n + 1, __ATOMIC_RELAXED);
	return 0;
}

void km_journal_note(__u8 be, const char *key, size_t len)
{
	struct km_jset *js = km_jset_of(be);

	if (!js)
		return;
	pthread_mutex_lock(&js->lock);
	js->noted++;
	km_jset_add_locked(js, key, len);
	pthread_mutex_unlock(&js->lock);
}

bool km_journal_empty(__u8 be)
{
	struct km_jset *js = km_jset_of(be);

	return !js || !__atomic_load_n(&js->n, __ATOMIC_RELAXED);
}

void km_journal_forget(__u8 be, const char *key, size_t len)
{
	struct km_jset *js = km_jset_of(be);
	struct km_jnode **pp, *nd;

	if (km_journal_empty(be))
		return;
	pthread_mutex_lock(&js->lock);
	pp = km_jset_find_locked(js, km_hash_key(key, len), key, len);
	if (pp) {
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
	km_jset_free_keys_locked(js);
	pthread_mutex_unlock(&js->lock);
}

void km_journal_set_lost(__u8 be, const char *why)
{
	struct km_jset *js = km_jset_of(be);

	if (!js)
		return;
	pthread_mutex_lock(&js->lock);
	km_jset_lost_locked(js, why);
	km_jset_free_keys_locked(js);
	pthread_mutex_unlock(&js->lock);
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
	js->why[0] = 0;
out:
	pthread_mutex_unlock(&js->lock);
	return err;
}

static struct km_jnode *km_jnode_of(const struct km_jkey *k)
{
	return (struct km_jnode *)(k->key - offsetof(struct km_jnode, key));
}

void km_journal_snap_free(struct km_journal_snap *s)
{
	size_t i;

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
		for (i = 0; i < s->n && !js->lost; i++)
			km_jset_add_locked(js, s->keys[i].key, s->keys[i].len);
		pthread_mutex_unlock(&js->lock);
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
	js->why[0] = 0;
	pthread_mutex_unlock(&js->lock);
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

	for (i = 0; i < KM_MAX_BACKENDS; i++)
		km_journal_clear(i);
}
