// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * kmagentd's control socket: one request line in, one JSON line out (see
 * ctl.h), served by one thread; plus the start/stop of the ops threads
 * and the reload.  Lock order: the ops locks (resync, repair) are never
 * taken while km_d.lock is held here, so every handler first copies what
 * it needs out of the daemon's table, then asks the others.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <net/if.h>
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <stdarg.h>

#include "ctl.h"
#include "daemon.h"
#include "fence.h"
#include "journal.h"
#include "km_hash.h"
#include "kbpf_daemon.h"
#include "log.h"
#include "mcclient.h"
#include "metrics.h"
#include "pinned.h"
#include "repair.h"
#include "resync_daemon.h"

#define KM_CTL_LINE_MAX 1024
#define KM_CTL_IO_MS	2000

static struct {
	int fd;
	char path[KM_PATH_MAX];
	pthread_t thread;
	bool up;
	_Atomic int stop; /* set by km_ops_stop, read by the thread */
	int argc;
	char **argv;
	pthread_mutex_t reload_lock;
} km_ctl = {
	.fd = -1,
	.reload_lock = PTHREAD_MUTEX_INITIALIZER,
};

/* ---- JSON --------------------------------------------------------------- */

void km_json_str(FILE *out, const char *s, size_t len)
{
	size_t i;

	fputc('"', out);
	for (i = 0; i < len; i++) {
		unsigned char c = s[i];

		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

static void km_json_cstr(FILE *out, const char *s)
{
	km_json_str(out, s, strlen(s));
}

static void km_json_error(FILE *out, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fputs("{\"ok\":false,\"error\":", out);
	km_json_cstr(out, msg);
	fputc('}', out);
}

#define KM_ONE(f) +1
_Static_assert((0 KM_COUNTERS_FIELDS(KM_ONE)) * sizeof(uint64_t) ==
		       sizeof(struct km_counters),
	       "KM_COUNTERS_FIELDS out of date");
/* + the inflight gauge, shown on its own */
_Static_assert((1 KM_BE_COUNTERS_FIELDS(KM_ONE)) * sizeof(uint64_t) ==
		       sizeof(struct km_be_counters),
	       "KM_BE_COUNTERS_FIELDS out of date");

/* ---- backends ----------------------------------------------------------- */

/* An id, or a "host:port" name; 0 when unknown. */
static __u8 km_be_lookup(const char *arg)
{
	struct km_backend_info *b;
	char *end;
	long id = strtol(arg, &end, 10);
	__u8 ret = 0;

	if (*arg && !*end)
		return id > 0 && id < KM_MAX_BACKENDS && km_d.be[id].id ? id
									: 0;
	pthread_mutex_lock(&km_d.lock);
	b = km_backend_by_name(arg);
	if (b)
		ret = b->id;
	pthread_mutex_unlock(&km_d.lock);
	return ret;
}

/* One `mn` round trip: the backend's latency as seen from here. */
static long km_be_latency_us(const union km_addr *sa)
{
	struct timespec deadline, t0, t1;
	char buf[16];
	size_t len = 0;
	long us = -1;
	int fd;

	/* bounds connect() too: a dead host must not stall the socket */
	km_deadline_in(&deadline, 200);
	fd = km_mc_connect(sa, &deadline);
	if (fd < 0)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	km_deadline_in(&deadline, 200);
	if (!km_mc_send(fd, "mn\r\n", 4, &deadline) &&
	    km_mc_read(fd, buf, sizeof(buf), &len, KM_RK_LINE, &deadline) > 0) {
		clock_gettime(CLOCK_MONOTONIC, &t1);
		us = (t1.tv_sec - t0.tv_sec) * 1000000L +
		     (t1.tv_nsec - t0.tv_nsec) / 1000;
	}
	close(fd);
	return us;
}

/* ,"listen":"0.0.0.0:11211" or "[::]:11211": -l and -p, as written */
static void km_json_listen(FILE *out)
{
	union km_addr a = km_d.cfg.listen_addr;
	char buf[KM_ADDR_STRLEN];

	a.in.sin_port = htons(km_d.cfg.port); /* = sin6_port */
	fputs(",\"listen\":", out);
	km_json_cstr(out, km_addr_str(&a, buf, sizeof(buf)));
}

static void km_json_resync(FILE *out, __u8 id)
{
	struct km_resync_progress p;

	if (km_resyncd_progress(id, &p)) {
		fputs("null", out);
		return;
	}
	fprintf(out,
		"{\"state\":\"%s\",\"source\":%u,\"matched\":%llu,"
		"\"copied\":%llu,\"existed\":%llu,\"missing\":%llu,"
		"\"undone\":%llu,\"failed\":%llu,\"total_est\":%llu,"
		"\"source_errors\":%llu,\"elapsed\":%.3f,\"rate\":%.0f,"
		"\"eta\":%.1f,\"error\":",
		km_resync_state_name(p.state), p.source_id,
		(unsigned long long)p.matched, (unsigned long long)p.copied,
		(unsigned long long)p.existed, (unsigned long long)p.missing,
		(unsigned long long)p.undone, (unsigned long long)p.failed,
		(unsigned long long)p.total_est,
		(unsigned long long)p.source_errors, p.elapsed, p.rate, p.eta);
	km_json_cstr(out, p.error);
	fputc('}', out);
}

/* What the backend missed and must get back (journal.h). */
static void km_json_journal(FILE *out, __u8 id)
{
	struct km_journal_info j;

	km_journal_get_info(id, &j);
	fprintf(out,
		",\"journal\":{\"keys\":%zu,\"lost\":%s,\"flush\":%s,"
		"\"noted\":%llu,\"why\":",
		j.keys, j.lost ? "true" : "false", j.flush ? "true" : "false",
		j.noted);
	km_json_cstr(out, j.why);
	fputc('}', out);
}

static void km_json_be_row(FILE *out, const struct km_be_view *v, bool latency)
{
	fprintf(out, "{\"id\":%u,\"name\":", v->id);
	km_json_cstr(out, v->name);
	fprintf(out,
		",\"state\":\"%s\",\"no_reads\":%s,\"no_writes\":%s,"
		"\"since\":%lld,\"reason\":",
		km_backend_state_name(v->kb.state),
		v->kb.flags & KM_BE_F_NO_READS ? "true" : "false",
		v->kb.flags & KM_BE_F_NO_WRITES ? "true" : "false",
		(long long)v->since);
	km_json_cstr(out, v->reason);
	fprintf(out, ",\"pid\":%ld,\"uptime\":%ld,\"kernel_noreply\":%s",
		v->pid, v->uptime,
		km_kbpf_backend_noreply(v->id) ? "true" : "false");
	if (latency)
		fprintf(out, ",\"latency_us\":%ld", km_be_latency_us(&v->addr));
	/* a gauge: a request failed after its backend id was reused can
	 * take it below 0 for a moment */
	fprintf(out, ",\"inflight\":%lld",
		v->c.inflight > 0 ? (long long)v->c.inflight : 0LL);
#define X(f) fprintf(out, ",\"" #f "\":%llu", (unsigned long long)v->c.f);
	KM_BE_COUNTERS_FIELDS(X)
#undef X
	fprintf(out, ",\"fenced\":%s,\"fence_held\":%s",
		v->kb.flags & KM_BE_F_FENCED ? "true" : "false",
		km_fence_holds(v->id) ? "true" : "false");
	/* the ring handoff: slots not filled yet / left, still written */
	fprintf(out, ",\"joining\":%s,\"leaving\":%s,\"removed\":%s",
		v->joining ? "true" : "false", v->leaving ? "true" : "false",
		v->removed ? "true" : "false");
	fputs(",\"resync\":", out);
	km_json_resync(out, v->id);
	km_json_journal(out, v->id);
	fputc('}', out);
}

static void km_cmd_backends(FILE *out)
{
	struct km_be_view v[KM_MAX_BACKENDS];
	int n = km_be_snapshot(v), i;

	fputs("{\"ok\":true,\"source\":\"daemon\",\"backends\":[", out);
	for (i = 0; i < n; i++) {
		if (i)
			fputc(',', out);
		km_json_be_row(out, &v[i], true);
	}
	fputs("]}", out);
}

/* ---- status ------------------------------------------------------------- */

static bool km_kernel_path(struct km_pinned *p)
{
	return km_d.cfg.nr_ifaces && !km_pinned_open(p, km_d.cfg.pin_root);
}

/* The kernel path's bypasses: the one in force, and how many of each. */
static void km_status_bypass(FILE *out)
{
	struct km_bypass_info bi;
	unsigned int r;

	km_kbpf_bypass_info(&bi);
	fprintf(out,
		",\"kernel_bypass\":{\"active\":%s,\"left_ms\":%lld,"
		"\"why\":",
		bi.active ? "true" : "false", bi.left_ms);
	km_json_cstr(out, bi.why);
	fputs(",\"count\":{", out);
	for (r = 0; r < KM_BYPASS_REASONS; r++)
		fprintf(out, "%s\"%s\":%llu", r ? "," : "", bi.reason[r],
			bi.count[r]);
	fputs("}}", out);
}

static void km_cmd_status(FILE *out)
{
	struct km_be_view v[KM_MAX_BACKENDS];
	int n = km_be_snapshot(v), i, st[3] = {0}, rs = 0;
	struct km_resync_progress p;
	struct km_pinned pin;
	bool kernel = km_kernel_path(&pin);

	if (kernel)
		km_pinned_close(&pin);
	for (i = 0; i < n; i++) {
		if (v[i].kb.state < 3)
			st[v[i].kb.state]++;
		if (!km_resyncd_progress(v[i].id, &p) &&
		    p.state == KM_RS_RUNNING)
			rs++;
	}
	fprintf(out,
		"{\"ok\":true,\"source\":\"daemon\",\"version\":\"%s\","
		"\"pid\":%d,\"uptime\":%lld,\"port\":%d,\"replicas\":%u,"
		"\"write_policy\":\"%s\",\"backends\":%d,\"up\":%d,"
		"\"warming\":%d,\"down\":%d,\"resyncs_running\":%d,"
		"\"kernel_path\":%s,\"kernel_bypassed\":%s,\"pin_root\":",
		KM_VERSION, (int)km_d.pid,
		(long long)(time(NULL) - km_d.started), km_d.cfg.port,
		KM_LIVE(replicas), km_write_policy_name(KM_LIVE(write_policy)),
		n, st[KM_BE_UP], st[KM_BE_WARMING], st[KM_BE_DOWN], rs,
		kernel ? "true" : "false",
		km_kbpf_bypassed() ? "true" : "false");
	km_json_cstr(out,
		     km_d.cfg.pin_root[0] ? km_d.cfg.pin_root : KM_PIN_ROOT);
	km_status_bypass(out);
	fputs(",\"config_file\":", out);
	km_json_cstr(out, km_d.cfg.config_file);
	km_json_listen(out);
	fputs(",\"ifaces\":[", out);
	for (i = 0; i < (int)km_d.cfg.nr_ifaces; i++) {
		if (i)
			fputc(',', out);
		km_json_iface(out, km_d.cfg.ifaces[i],
			      (int)if_nametoindex(km_d.cfg.ifaces[i]));
	}
	fputs("]}", out);
}

/* ---- stats -------------------------------------------------------------- */

static void km_cmd_stats(FILE *out)
{
	struct km_be_view v[KM_MAX_BACKENDS];
	int n = km_be_snapshot(v), i;
	struct km_repair_stats rp;
	struct km_pinned pin;
	bool kernel = km_kernel_path(&pin);
	struct timespec now;
	const char *sep = "";

	clock_gettime(CLOCK_REALTIME, &now);
	fprintf(out,
		"{\"ok\":true,\"source\":\"daemon\",\"time\":%.3f,"
		"\"uptime\":%lld,\"user\":{",
		now.tv_sec + now.tv_nsec / 1e9,
		(long long)(time(NULL) - km_d.started));
#define X(f)                                                                   \
	fprintf(out, "%s\"" #f "\":%llu", sep,                                 \
		(unsigned long long)KM_LOAD(km_d.c.f));                        \
	sep = ",";
	KM_COUNTERS_FIELDS(X)
#undef X
	fputs("},\"repair\":{", out);
	km_repair_get_stats(&rp);
#define X(f) fprintf(out, "\"" #f "\":%llu,", (unsigned long long)rp.f);
	KM_REPAIR_FIELDS(X)
#undef X
	fprintf(out, "\"rate_limit\":%u},\"kernel\":", km_repair_get_rate());
	km_pinned_json_stats(out, kernel ? &pin : NULL);
	fputs(",\"programs\":", out);
	km_pinned_json_progs(out, kernel ? &pin : NULL);
	fputs(",\"backends\":[", out);
	for (i = 0; i < n; i++) {
		fprintf(out, "%s{\"id\":%u,\"name\":", i ? "," : "", v[i].id);
		km_json_cstr(out, v[i].name);
		fprintf(out, ",\"state\":\"%s\",\"user\":{",
			km_backend_state_name(v[i].kb.state));
		sep = "";
#define X(f)                                                                   \
	fprintf(out, "%s\"" #f "\":%llu", sep, (unsigned long long)v[i].c.f);  \
	sep = ",";
		KM_BE_COUNTERS_FIELDS(X)
#undef X
		fputs("},\"kernel\":", out);
		km_pinned_json_be_stats(out, kernel ? &pin : NULL, v[i].id);
		fputs(",\"resync\":", out);
		km_json_resync(out, v[i].id);
		fputc('}', out);
	}
	fputs("]}", out);
	if (kernel)
		km_pinned_close(&pin);
}

/* ---- ring --------------------------------------------------------------- */

static void km_cmd_ring(FILE *out, const char *key)
{
	const struct km_ring *ring = km_daemon_ring();
	size_t len = strlen(key);
	__u32 hash = km_hash_key(key, len), slot = km_hash_slot(hash);
	const struct km_slot *s = &ring->slots[slot];
	struct km_slot ks;
	struct km_pinned pin;
	bool kernel = km_kernel_path(&pin);
	int read_from = 0;
	unsigned int i;

	if (!len || len > KM_KEY_MAX) {
		km_json_error(out, "a key is 1 to %d bytes", KM_KEY_MAX);
		goto out;
	}
	fputs("{\"ok\":true,\"key\":", out);
	km_json_cstr(out, key);
	fprintf(out, ",\"hash\":%u,\"slot\":%u,\"replicas\":[", hash, slot);
	for (i = 0; i < s->nr; i++) {
		__u8 id = s->be[i];
		char name[KM_NAME_MAX];
		int readable = km_be_readable(id);
		bool leaving;

		pthread_mutex_lock(&km_d.lock);
		snprintf(name, sizeof(name), "%s", km_d.be[id].name);
		/* in the slot until the handoff ends, then purged */
		leaving = km_slot_bit(km_d.be[id].leaving, slot);
		pthread_mutex_unlock(&km_d.lock);
		if (readable && !read_from)
			read_from = id;
		fprintf(out, "%s{\"id\":%u,\"name\":", i ? "," : "", id);
		km_json_cstr(out, name);
		fprintf(out,
			",\"state\":\"%s\",\"readable\":%s,\"leaving\":%s}",
			km_backend_state_name(km_d.be[id].kb.state),
			readable ? "true" : "false",
			leaving ? "true" : "false");
	}
	fprintf(out, "],\"read_from\":%d,\"kernel\":", read_from);
	if (kernel && !km_pinned_slot(&pin, slot, &ks)) {
		fputc('[', out);
		for (i = 0; i < ks.nr && i < KM_MAX_REPLICAS; i++)
			fprintf(out, "%s%u", i ? "," : "", ks.be[i]);
		fprintf(out, "],\"kernel_agrees\":%s",
			ks.nr == s->nr && !memcmp(ks.be, s->be, s->nr)
				? "true"
				: "false");
	} else {
		fputs("null", out);
	}
	fputc('}', out);
out:
	if (kernel)
		km_pinned_close(&pin);
}

/* ---- drain, undrain, resync ------------------------------------------- */

static void km_cmd_drain(FILE *out, const char *arg, const char *mode,
			 bool drain)
{
	__u8 id = arg ? km_be_lookup(arg) : 0, flags;
	char why[64], name[KM_NAME_MAX];

	if (!id) {
		km_json_error(out, "no such backend: %s", arg ? arg : "");
		return;
	}
	if (mode && strcmp(mode, "writes")) {
		km_json_error(out, "drain: unknown mode '%s'", mode);
		return;
	}
	flags = drain ? KM_BE_F_NO_READS : 0;
	if (drain && mode)
		flags |= KM_BE_F_NO_WRITES;
	snprintf(why, sizeof(why), "kmagentctl %s%s",
		 drain ? "drain" : "undrain", mode ? " --writes" : "");
	/* it missed writes while drained: no reads before a replay */
	if (!drain && !km_journal_empty(id))
		km_backend_warm_for_replay(
			id, "undrain: replaying the writes it missed");
	km_backend_set_flags(id, KM_BE_F_NO_READS | KM_BE_F_NO_WRITES, flags,
			     why);
	km_journal_set_drain(id, flags); /* a restart keeps it (--state-dir) */
	pthread_mutex_lock(&km_d.lock);
	snprintf(name, sizeof(name), "%s", km_d.be[id].name);
	pthread_mutex_unlock(&km_d.lock);
	fprintf(out, "{\"ok\":true,\"id\":%u,\"name\":", id);
	km_json_cstr(out, name);
	fprintf(out, ",\"no_reads\":%s,\"no_writes\":%s}",
		flags & KM_BE_F_NO_READS ? "true" : "false",
		flags & KM_BE_F_NO_WRITES ? "true" : "false");
}

static void km_cmd_resync(FILE *out, const char *arg)
{
	__u8 id = arg ? km_be_lookup(arg) : 0;

	if (!id) {
		km_json_error(out, "no such backend: %s", arg ? arg : "");
		return;
	}
	if (km_resyncd_request(id)) {
		km_json_error(out, "resync of %s refused", arg);
		return;
	}
	fprintf(out, "{\"ok\":true,\"id\":%u,\"resync\":\"requested\"}", id);
}

static void km_cmd_forget(FILE *out, const char *name)
{
	int err = name ? km_fence_forget(name) : -EINVAL;

	if (err == -EPERM)
		km_json_error(out, "forget: %s is this kmagentd's own name",
			      name);
	else if (err == -ENOSPC)
		km_json_error(out, "forget: too many names being forgotten");
	else if (err)
		km_json_error(out, "forget: not a kmagentd name: '%s'",
			      name ? name : "");
	if (err)
		return;
	__atomic_store_n(&km_d.fence_kick, 1, __ATOMIC_RELAXED);
	fputs("{\"ok\":true,\"forget\":", out);
	km_json_cstr(out, name);
	fputc('}', out);
}

static void km_cmd_repair_rate(FILE *out, const char *arg)
{
	char *end;
	long rate = arg ? strtol(arg, &end, 10) : -1;

	if (!arg || *end || rate < 0 || rate > 10000000) {
		km_json_error(out, "repair-rate: a number of repairs a second");
		return;
	}
	km_repair_set_rate(rate);
	fprintf(out, "{\"ok\":true,\"rate_limit\":%ld}", rate);
}

void km_ctl_handle(const char *line, FILE *out)
{
	char buf[KM_CTL_LINE_MAX], *argv[4] = {0}, *save = NULL;
	int argc = 0;

	snprintf(buf, sizeof(buf), "%s", line);
	for (char *t = strtok_r(buf, " \t\r\n", &save); t && argc < 4;
	     t = strtok_r(NULL, " \t\r\n", &save))
		argv[argc++] = t;
	if (!argc)
		km_json_error(out, "empty request");
	else if (!strcmp(argv[0], "status"))
		km_cmd_status(out);
	else if (!strcmp(argv[0], "backends"))
		km_cmd_backends(out);
	else if (!strcmp(argv[0], "stats"))
		km_cmd_stats(out);
	else if (!strcmp(argv[0], "ring") && argc == 2)
		km_cmd_ring(out, argv[1]);
	else if (!strcmp(argv[0], "drain"))
		km_cmd_drain(out, argv[1], argc > 2 ? argv[2] : NULL, true);
	else if (!strcmp(argv[0], "undrain"))
		km_cmd_drain(out, argv[1], NULL, false);
	else if (!strcmp(argv[0], "resync"))
		km_cmd_resync(out, argv[1]);
	else if (!strcmp(argv[0], "reload"))
		km_reload(out);
	else if (!strcmp(argv[0], "repair-rate"))
		km_cmd_repair_rate(out, argv[1]);
	else if (!strcmp(argv[0], "forget"))
		km_cmd_forget(out, argv[1]);
	else
		km_json_error(out, "unknown request '%s'", argv[0]);
}

/* ---- reload ------------------------------------------------------------- */

static bool km_cfg_has_backend(const struct km_cfg *c, const char *name)
{
	unsigned int i;

	for (i = 0; i < c->nr_backends; i++)
		if (!strcmp(c->backends[i].name, name))
			return true;
	return false;
}

/* What a reload cannot change in a running daemon. */
static void km_reload_restart_only(FILE *out, const struct km_cfg *o,
				   const struct km_cfg *n)
{
	bool first = true;

#define KM_DIFF(cond, name)                                                    \
	do {                                                                   \
		if (cond) {                                                    \
			fprintf(out, "%s\"%s\"", first ? "" : ",", name);      \
			first = false;                                         \
		}                                                              \
	} while (0)
	KM_DIFF(o->port != n->port, "port");
	KM_DIFF(km_cfg_udp_port(o) != km_cfg_udp_port(n), "udp-port");
	KM_DIFF(o->unix_mask != n->unix_mask, "unix-mask");
	KM_DIFF(strcmp(o->listen, n->listen), "listen");
	KM_DIFF(o->threads != n->threads, "threads");
	KM_DIFF(o->pool_size != n->pool_size, "pool");
	KM_DIFF(strcmp(o->unix_path, n->unix_path), "unix-socket");
	KM_DIFF(strcmp(o->ctl_path, n->ctl_path), "ctl");
	KM_DIFF(strcmp(o->metrics, n->metrics), "metrics");
	KM_DIFF(strcmp(o->pin_root, n->pin_root), "pin-root");
	KM_DIFF(strcmp(o->state_dir, n->state_dir), "state-dir");
	KM_DIFF(o->nr_ifaces != n->nr_ifaces ||
			memcmp(o->ifaces, n->ifaces, sizeof(o->ifaces)),
		"iface");
	KM_DIFF(o->nr_allow != n->nr_allow ||
			memcmp(o->allow, n->allow, sizeof(o->allow)),
		"allow");
	KM_DIFF(o->udp_reply_max != n->udp_reply_max, "udp-reply-max");
#undef KM_DIFF
}

/*
 * Settings the data path and health thread read live from km_d.cfg, with
 * KM_LIVE and no lock: each is stored atomically (daemon.h).
 */
static void km_reload_live(const struct km_cfg *n, bool *replicas_changed)
{
	pthread_mutex_lock(&km_d.lock);
	*replicas_changed = KM_LIVE(replicas) != n->replicas;
	KM_LIVE_SET(write_policy, n->write_policy);
	KM_LIVE_SET(timeout_ms, n->timeout_ms);
	KM_LIVE_SET(probe_interval_ms, n->probe_interval_ms);
	KM_LIVE_SET(probe_timeout_ms, n->probe_timeout_ms);
	KM_LIVE_SET(fall, n->fall);
	KM_LIVE_SET(rise, n->rise);
	KM_LIVE_SET(item_size_max, n->item_size_max);
	KM_LIVE_SET(max_conns, n->max_conns);
	KM_LIVE_SET(idle_timeout, n->idle_timeout);
	KM_LIVE_SET(conn_buffer, n->conn_buffer);
	KM_LIVE_SET(reply_memory, n->reply_memory);
	KM_LIVE_SET(verbose, n->verbose);
	KM_LIVE_SET(replicas, n->replicas);
	KM_LIVE_SET(repair_rate, n->repair_rate);
	KM_LIVE_SET(udp_retry_ms, n->udp_retry_ms);
	km_repair_set_rate(n->repair_rate);
	KM_LIVE_SET(journal_max, n->journal_max);
	km_journal_set_max(n->journal_max);
	if (*replicas_changed)
		km_daemon_rebuild_ring_locked();
	pthread_mutex_unlock(&km_d.lock);
}

/*
 * Backends: new ones first (so that no key ever has fewer replicas than
 * before), each made WARMING at once so that it serves no read before its
 * resync; then the removed ones.
 */
static void km_reload_backends(FILE *out, const struct km_cfg *n)
{
	struct km_be_view v[KM_MAX_BACKENDS];
	int nv = km_be_snapshot(v), i, id;
	unsigned int k;
	bool first = true;

	fputs(",\"added\":[", out);
	for (k = 0; k < n->nr_backends; k++) {
		const char *name = n->backends[k].name;

		for (i = 0; i < nv && strcmp(v[i].name, name); i++)
			;
		if (i < nv && v[i].removed) /* not gone yet: added as new */
			km_backend_drop_removed(v[i].id);
		else if (i < nv)
			continue;
		id = km_backend_add(name);
		if (id < 0) {
			km_warn("reload: add %s: %s\n", name, strerror(-id));
			continue;
		}
		km_backend_set_state(id, KM_BE_WARMING, "added by reload");
		fprintf(out, "%s", first ? "" : ",");
		km_json_cstr(out, name);
		first = false;
	}
	fputs("],\"removed\":[", out);
	first = true;
	for (i = 0; i < nv; i++) {
		if (km_cfg_has_backend(n, v[i].name) || v[i].removed)
			continue;
		if (km_backend_remove(v[i].id))
			continue;
		fprintf(out, "%s", first ? "" : ",");
		km_json_cstr(out, v[i].name);
		first = false;
	}
	fputc(']', out);
	/* the backends that gained slots are filled by the ring handoff */
}

int km_reload(FILE *out)
{
	struct km_cfg *n = malloc(sizeof(*n)), old;
	char *msg = NULL;
	size_t msglen = 0;
	FILE *err;
	bool repl;
	int ret = -1;

	err = open_memstream(&msg, &msglen);
	if (!n || !err) {
		km_json_error(out, "reload: out of memory");
		goto out;
	}
	pthread_mutex_lock(&km_ctl.reload_lock);
	if (km_config_parse_args(n, km_ctl.argc, km_ctl.argv, err) !=
	    KM_CFG_RUN) {
		fclose(err);
		err = NULL;
		while (msglen && msg[msglen - 1] == '\n')
			msg[--msglen] = '\0';
		km_warn("reload refused, configuration kept: %s\n", msg);
		km_json_error(out, "%s", msglen ? msg : "invalid config");
		goto unlock;
	}
	pthread_mutex_lock(&km_d.lock);
	old = km_d.cfg;
	pthread_mutex_unlock(&km_d.lock);
	fputs("{\"ok\":true", out);
	km_reload_backends(out, n);
	km_reload_live(n, &repl);
	fprintf(out, ",\"replicas_changed\":%s,\"restart_needed\":[",
		repl ? "true" : "false");
	km_reload_restart_only(out, &old, n);
	fputs("]}", out);
	km_info("configuration reloaded\n");
	ret = 0;
unlock:
	pthread_mutex_unlock(&km_ctl.reload_lock);
out:
	if (err)
		fclose(err);
	free(msg);
	free(n);
	return ret;
}

void km_reload_log(void)
{
	char *msg = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&msg, &len);
	int err;

	if (!out)
		return;
	err = km_reload(out);
	fclose(out);
	if (err)
		km_err("SIGHUP: reload refused: %s\n", msg);
	else
		km_info("SIGHUP: reload: %s\n", msg);
	free(msg);
}

/* ---- the socket --------------------------------------------------------- */

static int km_ctl_read_line(int fd, char *buf, size_t cap)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	size_t len = 0;

	while (len + 1 < cap) {
		ssize_t r;

		if (poll(&pfd, 1, KM_CTL_IO_MS) != 1)
			return -ETIMEDOUT;
		r = recv(fd, buf + len, cap - len - 1, 0);
		if (r <= 0)
			break;
		len += r;
		if (memchr(buf, '\n', len))
			break;
	}
	buf[len] = '\0';
	return len ? 0 : -EIO;
}

static void km_ctl_serve(int fd)
{
	char line[KM_CTL_LINE_MAX], *reply = NULL;
	size_t len = 0, off = 0;
	FILE *out;

	if (km_ctl_read_line(fd, line, sizeof(line)))
		return;
	out = open_memstream(&reply, &len);
	if (!out)
		return;
	km_ctl_handle(line, out);
	fputc('\n', out);
	fclose(out);
	while (off < len) {
		ssize_t w = send(fd, reply + off, len - off, MSG_NOSIGNAL);

		if (w <= 0)
			break;
		off += w;
	}
	free(reply);
}

static void *km_ctl_main(void *arg)
{
	struct pollfd pfd = {.fd = km_ctl.fd, .events = POLLIN};

	(void)arg;
	while (!km_ctl.stop && !km_d.stop) {
		int fd;

		if (poll(&pfd, 1, 250) != 1)
			continue;
		fd = accept4(km_ctl.fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		km_ctl_serve(fd);
		close(fd);
	}
	return NULL;
}

/*
 * The socket's directory (/run/kmagent): systemd makes it for the unit
 * (RuntimeDirectory), a daemon started by hand makes it itself.
 */
static void km_ctl_mkdir(const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return;
	*slash = '\0';
	if (mkdir(dir, 0755) && errno != EEXIST)
		km_warn("control socket directory %s: %s\n", dir,
			strerror(errno));
}

/* Refuse to steal the socket of a running daemon; remove a stale one. */
static int km_ctl_listen(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	mode_t old;
	int fd, err;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	km_ctl_mkdir(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (!connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(fd);
		return -EADDRINUSE;
	}
	close(fd);
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	old = umask(0177); /* 0600: root-only by default */
	err = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ? -errno : 0;
	umask(old);
	if (!err && listen(fd, 16))
		err = -errno;
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

int km_ops_start(const struct km_cfg *cfg, int argc, char **argv)
{
	const char *path = cfg->ctl_path[0] ? cfg->ctl_path : KM_DEFAULT_CTL;
	int err;

	km_ctl.argc = argc;
	km_ctl.argv = argv;
	km_journal_set_max(cfg->journal_max);
	err = km_resyncd_start();
	if (!err)
		err = km_repair_start(cfg->repair_rate);
	if (err) {
		km_err("ops threads: %s\n", strerror(-err));
		return err;
	}
	if (cfg->metrics[0]) {
		err = km_metrics_start(&cfg->metrics_addr);
		if (err) {
			km_err("metrics on %s: %s\n", cfg->metrics,
			       strerror(-err));
			return err;
		}
	}
	km_ctl.fd = km_ctl_listen(path);
	if (km_ctl.fd < 0) {
		/* serving clients matters more than being controllable */
		km_warn("control socket %s: %s; running without it\n", path,
			strerror(-km_ctl.fd));
		km_ctl.fd = -1;
		return 0;
	}
	snprintf(km_ctl.path, sizeof(km_ctl.path), "%s", path);
	err = pthread_create(&km_ctl.thread, NULL, km_ctl_main, NULL);
	if (err)
		return -err;
	km_ctl.up = true;
	return 0;
}

void km_ops_stop(void)
{
	km_ctl.stop = 1;
	if (km_ctl.up)
		pthread_join(km_ctl.thread, NULL);
	km_ctl.up = false;
	if (km_ctl.fd >= 0) {
		close(km_ctl.fd);
		unlink(km_ctl.path);
		km_ctl.fd = -1;
	}
	km_metrics_stop();
	km_repair_stop();
	km_resyncd_stop();
}
