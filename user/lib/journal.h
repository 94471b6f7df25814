/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The missed-write journal: per backend, the keys of the writes it did
 * not take (it was down or drained for writes, or its reply failed or
 * timed out) while another replica may have.  When the backend comes
 * back, only those keys are replayed from a replica that took the writes
 * (resync.h, replay mode), instead of emptying the whole backend: the
 * rest of what it holds is still right.
 *
 * A successful overwrite (set, delete, ...) of a key on the backend
 * removes the key: the backend holds the latest value again.  A journal
 * that would outgrow --journal-max keys, or that cannot know what was
 * missed (a write it could not name, a restart of kmagentd while the
 * backend was away), is "lost": the backend is then flushed and resynced
 * in full.  A flush_all the backend missed is remembered too: it is
 * flushed first, then the keys written since are replayed.
 *
 * Durable (km_journal_open, --state-dir): every change that adds to a
 * debt is appended to a file before the write it comes from is answered,
 * so that a kmagentd restarted after SIGTERM or SIGKILL replays what
 * each backend missed instead of counting it lost.  The file only grows
 * between checkpoints (a forget or a replay appends nothing), so what it
 * says is always a superset of the debts: replaying a key twice is
 * harmless, forgetting one is not.  A checkpoint rewrites it with the
 * debts as they are, including the keys of a replay under way
 * (km_journal_settle ends that).
 *
 * Thread-safe: the data path notes keys from every worker; one lock per
 * backend, taken only when a write misses a replica or the journal of
 * that backend is not empty.
 */
#ifndef KM_JOURNAL_H
#define KM_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include "kmagent.h"

#define KM_JOURNAL_MAX 1000000 /* keys per backend, default */

struct km_jkey {
	unsigned int len;
	char *key; /* not NUL-terminated */
};

/* What km_journal_take hands over: the caller owns keys[]. */
struct km_journal_snap {
	struct km_jkey *keys;
	size_t n;
	bool lost;  /* the keys do not say everything it missed */
	bool flush; /* it missed a flush_all */
	__u8 be;    /* whose: its keys stay owed until this is freed */
	char why[96];
};

struct km_journal_info {
	size_t keys;
	bool lost, flush;
	char why[96];
	unsigned long long noted; /* keys noted in all, since the start */
};

void km_journal_set_max(size_t max_keys);
/* The backend missed a write of key (raw bytes, as memcached stores it). */
void km_journal_note(__u8 be, const char *key, size_t len);
/*
 * It was sent a write of key and gave no answer (timeout, connection
 * lost): the write may still land, after newer ones, so no overwrite
 * settles the debt, only a replay (which deletes the key first).
 */
void km_journal_note_sent(__u8 be, const char *key, size_t len);
/* It took an overwrite of key: it is up to date for it. */
void km_journal_forget(__u8 be, const char *key, size_t len);
void km_journal_note_flush(__u8 be);
void km_journal_set_lost(__u8 be, const char *why);
/*
 * Does it owe a write of key (noted, or its journal lost or a flush
 * missed)?  Lock-free while it owes nothing: for the data path, which
 * neither reads key from it nor takes its answer for key meanwhile.
 */
bool km_journal_owes(__u8 be, const char *key, size_t len);
/*
 * fn(be) after every change that may have made be owe (a key noted, lost,
 * a flush missed, a replay put back), from the thread that made it, no
 * lock held: the kernel path must stop serving be's slots before the
 * write that made the debt is answered (kbpf_daemon.c).
 */
void km_journal_on_owing(void (*fn)(__u8 be));
/* It owes nothing: no key noted, none under replay, not lost. */
bool km_journal_settled(__u8 be);
/* Keys noted and not forgotten: lock-free, for the data path. */
bool km_journal_empty(__u8 be);
/*
 * A copy from `from` into `to` took from's values of the keys it owes
 * (maybe stale): `to` owes those of them that mine() says are its own
 * too; all of them when from's journal is lost.
 */
void km_journal_inherit(__u8 to, __u8 from,
			bool (*mine)(const char *key, size_t len, void *ctx),
			void *ctx);
/* Hand over and clear the journal (replay starts). */
int km_journal_take(__u8 be, struct km_journal_snap *s);
/* A replay did not finish: its keys (and flags) go back in. */
void km_journal_put_back(__u8 be, struct km_journal_snap *s);
void km_journal_snap_free(struct km_journal_snap *s);
/* Forget everything: it restarted empty, or was removed. */
void km_journal_clear(__u8 be);
void km_journal_get_info(__u8 be, struct km_journal_info *info);
void km_journal_fini(void);

/* The backend's name in the file (NULL: removed; its debts are moot). */
void km_journal_name(__u8 be, const char *name);
/*
 * Keep the journal in dir/journal: load what an earlier kmagentd left for
 * the backends named so far, then append.  0 or -errno (the file could
 * not be read or written: the journal stays in memory only).
 */
int km_journal_open(const char *dir);
/* A file from an earlier run was loaded: what it says is all they owe. */
bool km_journal_known_past(void);
/* The backend's replay or refill is done: the file forgets its keys. */
void km_journal_settle(__u8 be);
/*
 * Drains (KM_BE_F_NO_READS, KM_BE_F_NO_WRITES) outlive a restart too:
 * kept in the same file, read back by km_journal_drain after the open.
 */
void km_journal_set_drain(__u8 be, unsigned int flags);
unsigned int km_journal_drain(__u8 be);

/*
 * The last ring every member was filled for (daemon.c, the handoff): its
 * replicas and its members' names.  Kept in the same file, so that a
 * kmagentd started with another configuration (a backend added, removed
 * or replicas changed while it was stopped) hands the ring off from it
 * instead of taking every configured backend as filled.
 */
#define KM_JOURNAL_NAME 64
struct km_journal_ring {
	unsigned int replicas, n;
	char names[KM_MAX_BACKENDS][KM_JOURNAL_NAME];
	/*
	 * Removed since the ring was recorded: it took no write since, so
	 * it is filled for none of its slots if it comes back ("-NAME").
	 */
	bool gone[KM_MAX_BACKENDS];
};

/* Record r, unless it is the one recorded already. */
void km_journal_set_ring(const struct km_journal_ring *r);
/* Backend name was removed: mark it gone in the ring recorded. */
void km_journal_ring_gone(const char *name);
/* The one recorded last (loaded from the file, or set): false if none. */
bool km_journal_ring(struct km_journal_ring *r);

#endif /* KM_JOURNAL_H */
