// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Aggregating the backends' `stats`.  Summing replicas double counts: with
 * R copies of each key, R backends hold every item.  So, per field:
 *
 * - COPIES: what the data set is and what writes did to it (curr_items,
 *   bytes, limit_maxbytes, evictions, delete_hits...).  Every replica holds
 *   and receives the same, so the backends' sum divided by R is the data
 *   set once; scaled by configured/answered, so that a down backend does
 *   not make the cache look half empty (its keys still exist on the other
 *   replicas).  bytes / limit_maxbytes stays the backends' mean fill.
 * - SUM: what reads did (get_expired, get_flushed).  A read asks one
 *   replica (and the next on a miss): each backend's count is its own
 *   share, the sum is the total.
 *
 * kmagentd's own figures (connections, cmd_get, get_hits, bytes_read...)
 * are what clients did through it: proxy.c answers those itself.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"

enum km_agg_kind {
	KM_AGG_COPIES,
	KM_AGG_SUM,
};

static const struct {
	const char *name;
	enum km_agg_kind kind;
} km_agg_fields[KM_AGG_NR] = {
	{"curr_items", KM_AGG_COPIES},
	{"total_items", KM_AGG_COPIES},
	{"bytes", KM_AGG_COPIES},
	{"limit_maxbytes", KM_AGG_COPIES},
	{"evictions", KM_AGG_COPIES},
	{"reclaimed", KM_AGG_COPIES},
	{"expired_unfetched", KM_AGG_COPIES},
	{"evicted_unfetched", KM_AGG_COPIES},
	{"evicted_active", KM_AGG_COPIES},
	{"delete_hits", KM_AGG_COPIES},
	{"delete_misses", KM_AGG_COPIES},
	{"incr_hits", KM_AGG_COPIES},
	{"incr_misses", KM_AGG_COPIES},
	{"decr_hits", KM_AGG_COPIES},
	{"decr_misses", KM_AGG_COPIES},
	{"cas_hits", KM_AGG_COPIES},
	{"cas_misses", KM_AGG_COPIES},
	{"cas_badval", KM_AGG_COPIES},
	{"touch_hits", KM_AGG_COPIES},
	{"touch_misses", KM_AGG_COPIES},
	{"crawler_reclaimed", KM_AGG_COPIES},
	{"get_expired", KM_AGG_SUM},
	{"get_flushed", KM_AGG_SUM},
};

static int km_agg_index(const char *name, size_t len)
{
	int i;

	for (i = 0; i < KM_AGG_NR; i++)
		if (strlen(km_agg_fields[i].name) == len &&
		    !memcmp(km_agg_fields[i].name, name, len))
			return i;
	return -1;
}

/* "STAT name value\r\n": the value of a field we take, else ignored. */
static void km_agg_line(struct km_agg *a, const char *s, size_t len)
{
	const char *name = s + 5, *sp, *end = s + len;
	char num[24];
	size_t n;
	int i;

	if (len < 5 || memcmp(s, "STAT ", 5))
		return;
	sp = memchr(name, ' ', end - name);
	if (!sp)
		return;
	i = km_agg_index(name, sp - name);
	n = end - (sp + 1);
	if (i < 0 || n == 0 || n >= sizeof(num))
		return;
	memcpy(num, sp + 1, n);
	num[n] = '\0';
	if (num[0] < '0' || num[0] > '9')
		return;
	a->sum[i] += strtoull(num, NULL, 10);
	a->seen[i]++;
}

void km_agg_add(struct km_agg *a, const char *reply, size_t len)
{
	const char *p = reply, *end = reply + len, *nl;
	size_t n;

	if (len < 5 || memcmp(reply + len - 5, "END\r\n", 5))
		return; /* an error line, or cut short: not a stats reply */
	while (p < end && (nl = memchr(p, '\n', end - p))) {
		n = nl - p;
		if (n && p[n - 1] == '\r')
			n--;
		km_agg_line(a, p, n);
		p = nl + 1;
	}
	a->answered++;
}

void km_agg_add_less(struct km_agg *a, const char *reply, size_t len,
		     uint64_t n)
{
	struct km_agg one = {0};
	int i;

	km_agg_add(&one, reply, len);
	if (!one.answered)
		return;
	for (i = 0; i < KM_AGG_NR; i++) {
		if (!strcmp(km_agg_fields[i].name, "curr_items") ||
		    !strcmp(km_agg_fields[i].name, "total_items"))
			one.sum[i] -= one.sum[i] < n ? one.sum[i] : n;
		a->sum[i] += one.sum[i];
		a->seen[i] += one.seen[i];
	}
	a->answered++;
}

int km_agg_emit(const struct km_agg *a, unsigned int nr_backends,
		unsigned int copies, struct km_buf *out)
{
	char line[96];
	unsigned __int128 v;
	int i, n;

	if (copies == 0 || copies > nr_backends)
		copies = nr_backends;
	for (i = 0; a->answered && copies && i < KM_AGG_NR; i++) {
		if (!a->seen[i])
			continue; /* no backend has it (an older memcached) */
		v = a->sum[i];
		if (km_agg_fields[i].kind == KM_AGG_COPIES)
			v = v * nr_backends /
			    ((unsigned __int128)a->answered * copies);
		n = snprintf(line, sizeof(line), "STAT %s %llu\r\n",
			     km_agg_fields[i].name, (unsigned long long)v);
		if (km_buf_append(out, line, n))
			return -1;
	}
	n = snprintf(line, sizeof(line),
		     "STAT kmagent_stats_backends %u/%u\r\n", a->answered,
		     nr_backends);
	return km_buf_append(out, line, n) ? -1 : 0;
}
