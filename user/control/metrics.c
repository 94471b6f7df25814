// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Prometheus text format (version 0.0.4) over a minimal HTTP/1.0 server:
 * one thread, one request per connection, GET /metrics only.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "daemon.h"
#include "kbpf_daemon.h"
#include "log.h"
#include "journal.h"
#include "metrics.h"
#include "pinned.h"
#include "repair.h"
#include "resync_daemon.h"

static struct {
	int fd;
	pthread_t thread;
	bool up;
	volatile int stop;
} km_met = {.fd = -1};

/* The workers add to them without the lock: atomic loads, one by one. */
static void km_be_counters_load(struct km_be_counters *to,
				const struct km_be_counters *c)
{
	to->requests = KM_LOAD(c->requests);
	to->errors = KM_LOAD(c->errors);
	to->timeouts = KM_LOAD(c->timeouts);
	to->conn_errors = KM_LOAD(c->conn_errors);
	to->fallbacks = KM_LOAD(c->fallbacks);
	to->probes_ok = KM_LOAD(c->probes_ok);
	to->probes_failed = KM_LOAD(c->probes_failed);
	to->inflight = KM_LOAD(c->inflight);
}

/* A copy of the backend table (metrics.h), for metrics and ctl alike. */
int km_be_snapshot(struct km_be_view *v)
{
	unsigned int id;
	int n = 0;

	pthread_mutex_lock(&km_d.lock);
	for (id = 1; id < KM_MAX_BACKENDS; id++) {
		const struct km_backend_info *b = &km_d.be[id];

		if (!b->id)
			continue;
		v[n].id = id;
		memcpy(v[n].name, b->name, sizeof(v[n].name));
		v[n].addr = b->addr;
		v[n].kb = b->kb;
		v[n].since = b->since;
		memcpy(v[n].reason, b->reason, sizeof(v[n].reason));
		v[n].pid = b->pid;
		v[n].uptime = b->uptime;
		v[n].joining = b->has_joining;
		v[n].leaving = b->has_leaving;
		v[n].removed = b->removed;
		km_be_counters_load(&v[n].c, &b->c);
		n++;
	}
	pthread_mutex_unlock(&km_d.lock);
	return n;
}

static void km_help(FILE *out, const char *name, const char *type,
		    const char *help)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/*
 * A gauge of one value a backend: NAME{backend="..."} val[i].  Callers
 * zero val: gcc with the package's hardening flags cannot tell that n
 * are set, and -Werror=maybe-uninitialized fails the build.
 */
static void km_be_gauge(FILE *out, const char *name, const char *help,
			const struct km_be_view *v, int n, const long long *val)
{
	int i;

	km_help(out, name, "gauge", help);
	for (i = 0; i < n; i++)
		fprintf(out, "%s{backend=\"%s\"} %lld\n", name, v[i].name,
			val[i]);
}

#define KM_COUNTER(out, name, help, val)                                       \
	do {                                                                   \
		km_help(out, name, "counter", help);                           \
		fprintf(out, "%s %llu\n", name, (unsigned long long)(val));    \
	} while (0)

static void km_metrics_user(FILE *out)
{
	km_help(out, "kmagent_user_total", "counter",
		"Userspace path counters (TCP and UDP slow path), by counter.");
#define X(f)                                                                   \
	fprintf(out, "kmagent_user_total{counter=\"" #f "\"} %llu\n",          \
		(unsigned long long)KM_LOAD(km_d.c.f));
	KM_COUNTERS_FIELDS(X)
#undef X
	km_help(out, "kmagent_curr_connections", "gauge",
		"Client connections open now.");
	fprintf(out, "kmagent_curr_connections %llu\n",
		(unsigned long long)KM_LOAD(km_d.c.curr_connections));
}

static void km_metrics_kernel(FILE *out, const struct km_pinned *p)
{
	struct km_stats s;

	if (!p || km_pinned_stats(p, &s))
		return;
	km_help(out, "kmagent_kernel_total", "counter",
		"Kernel path counters (km_stats, summed over CPUs), by "
		"counter.");
#define X(f)                                                                   \
	fprintf(out, "kmagent_kernel_total{counter=\"" #f "\"} %llu\n",        \
		(unsigned long long)s.f);
	KM_STATS_FIELDS(X)
#undef X
}

static void km_metrics_progs(FILE *out, const struct km_pinned *p)
{
	struct km_prog_stats ps[16];
	int n = p ? km_pinned_progs(p, ps, 16) : 0, i;

	if (n <= 0)
		return;
	km_help(out, "kmagent_bpf_prog_run_count_total", "counter",
		"BPF program runs (needs sysctl kernel.bpf_stats_enabled=1).");
	for (i = 0; i < n; i++)
		fprintf(out,
			"kmagent_bpf_prog_run_count_total{prog=\"%s\","
			"id=\"%u\"} %llu\n",
			ps[i].name, ps[i].id,
			(unsigned long long)ps[i].run_cnt);
	km_help(out, "kmagent_bpf_prog_run_seconds_total", "counter",
		"BPF program run time.");
	for (i = 0; i < n; i++)
		fprintf(out,
			"kmagent_bpf_prog_run_seconds_total{prog=\"%s\","
			"id=\"%u\"} %.9f\n",
			ps[i].name, ps[i].id, ps[i].run_time_ns / 1e9);
}

/* The kernel path sends to a backend whose replies never come back. */
static void km_metrics_noreply(FILE *out, const struct km_be_view *v, int n)
{
	long long noreply[KM_MAX_BACKENDS] = {0};
	struct km_bypass_info bi;
	unsigned int r;
	int i;

	for (i = 0; i < n; i++)
		noreply[i] = km_kbpf_backend_noreply(v[i].id);
	km_be_gauge(out, "kmagent_backend_kernel_noreply",
		    "1 when the kernel path gets no reply from the backend "
		    "while it is up (replies by an interface without the "
		    "kernel path).",
		    v, n, noreply);
	km_help(out, "kmagent_kernel_bypassed", "gauge",
		"1 while the kernel path passes every UDP request up to "
		"kmagentd (after lost kernel replies, for --bypass-hold).");
	fprintf(out, "kmagent_kernel_bypassed %d\n", km_kbpf_bypassed());
	km_kbpf_bypass_info(&bi);
	km_help(out, "kmagent_kernel_bypasses_total", "counter",
		"Bypasses of the kernel path since start, by reason.");
	for (r = 0; r < KM_BYPASS_REASONS; r++)
		fprintf(out,
			"kmagent_kernel_bypasses_total{reason=\"%s\"} %llu\n",
			bi.reason[r], bi.count[r]);
}

static void km_metrics_backend_states(FILE *out, const struct km_be_view *v,
				      int n)
{
	static const enum km_backend_state sts[] = {KM_BE_UP, KM_BE_WARMING,
						    KM_BE_DOWN};
	unsigned int k;
	int i;

	km_help(out, "kmagent_backend_state", "gauge",
		"1 for the backend's current health state.");
	for (i = 0; i < n; i++)
		for (k = 0; k < 3; k++)
			fprintf(out,
				"kmagent_backend_state{backend=\"%s\","
				"id=\"%u\",state=\"%s\"} %d\n",
				v[i].name, v[i].id,
				km_backend_state_name(sts[k]),
				v[i].kb.state == sts[k]);
	km_help(out, "kmagent_backend_drained", "gauge",
		"Operator drain: reads, writes.");
	for (i = 0; i < n; i++)
		fprintf(out,
			"kmagent_backend_drained{backend=\"%s\",what=\"reads\"}"
			" %d\nkmagent_backend_drained{backend=\"%s\","
			"what=\"writes\"} %d\n",
			v[i].name, !!(v[i].kb.flags & KM_BE_F_NO_READS),
			v[i].name, !!(v[i].kb.flags & KM_BE_F_NO_WRITES));
}

/* One family per counter, labelled by backend and path. */
static void km_metrics_backend_counters(FILE *out, const struct km_be_view *v,
					int n, const struct km_pinned *p)
{
	struct km_be_stats ks[KM_MAX_BACKENDS];
	bool have[KM_MAX_BACKENDS];
	int i;

	for (i = 0; i < n; i++)
		have[i] = p && !km_pinned_be_stats(p, v[i].id, &ks[i]);
#define KM_FAMILY(fam, help, user_expr, kernel_expr)                           \
	do {                                                                   \
		km_help(out, "kmagent_backend_" fam "_total", "counter",       \
			help);                                                 \
		for (i = 0; i < n; i++) {                                      \
			long long u = (user_expr), k = (kernel_expr);          \
			if (u >= 0)                                            \
				fprintf(out,                                   \
					"kmagent_backend_" fam                 \
					"_total{backend=\"%s\",path=\"user\"}" \
					" %lld\n",                             \
					v[i].name, u);                         \
			if (have[i] && k >= 0)                                 \
				fprintf(out,                                   \
					"kmagent_backend_" fam                 \
					"_total{backend=\"%s\","               \
					"path=\"kernel\"} %lld\n",             \
					v[i].name, k);                         \
		}                                                              \
	} while (0)
	KM_FAMILY("requests", "Requests sent to the backend.",
		  (long long)v[i].c.requests,
		  (long long)(ks[i].gets + ks[i].writes));
	KM_FAMILY("hits", "Read hits served by the backend.", -1LL,
		  (long long)ks[i].hits);
	KM_FAMILY("misses", "Read misses from the backend.", -1LL,
		  (long long)ks[i].misses);
	KM_FAMILY("fallbacks", "Reads that moved on from the backend.",
		  (long long)v[i].c.fallbacks, -1LL);
	KM_FAMILY("errors", "Error replies and connection errors.",
		  (long long)(v[i].c.errors + v[i].c.conn_errors), -1LL);
	KM_FAMILY("timeouts", "Requests the backend did not answer in time.",
		  (long long)v[i].c.timeouts, (long long)ks[i].timeouts);
	KM_FAMILY("retried",
		  "Requests it left unanswered past --udp-retry, sent on or "
		  "answered without it.",
		  -1LL, (long long)ks[i].retried);
#undef KM_FAMILY
}

static void km_metrics_inflight(FILE *out, const struct km_be_view *v, int n)
{
	long long inflight[KM_MAX_BACKENDS] = {0};
	int i;

	for (i = 0; i < n; i++)
		inflight[i] = v[i].c.inflight > 0 ? v[i].c.inflight : 0;
	km_be_gauge(out, "kmagent_backend_inflight",
		    "Requests sent to the backend and not answered yet (user "
		    "path).",
		    v, n, inflight);
}

static void km_metrics_journal(FILE *out, const struct km_be_view *v, int n)
{
	long long keys[KM_MAX_BACKENDS] = {0}, lost[KM_MAX_BACKENDS] = {0};
	struct km_journal_info j;
	int i;

	for (i = 0; i < n; i++) {
		km_journal_get_info(v[i].id, &j);
		keys[i] = (long long)j.keys;
		lost[i] = j.lost;
	}
	km_be_gauge(out, "kmagent_backend_journal_keys",
		    "Keys of writes the backend missed, to replay when it is "
		    "back.",
		    v, n, keys);
	km_be_gauge(out, "kmagent_backend_journal_lost",
		    "1 when the journal cannot say what the backend missed: it "
		    "will be flushed and resynced in full.",
		    v, n, lost);
}

static void km_metrics_resync(FILE *out, const struct km_be_view *v, int n)
{
	long long running[KM_MAX_BACKENDS] = {0};
	struct km_resync_progress p;
	int i;

	for (i = 0; i < n; i++)
		running[i] = !km_resyncd_progress(v[i].id, &p) &&
			     p.state == KM_RS_RUNNING;
	km_be_gauge(out, "kmagent_resync_running",
		    "1 while the backend is being resynced.", v, n, running);
#define KM_RS(fam, type, help, expr)                                           \
	do {                                                                   \
		km_help(out, "kmagent_resync_" fam, type, help);               \
		for (i = 0; i < n; i++)                                        \
			if (!km_resyncd_progress(v[i].id, &p))                 \
				fprintf(out,                                   \
					"kmagent_resync_" fam                  \
					"{backend=\"%s\"} %.0f\n",             \
					v[i].name, (double)(expr));            \
	} while (0)
	KM_RS("keys_done", "gauge", "Keys handled by the current/last resync.",
	      p.matched);
	KM_RS("keys_copied", "gauge",
	      "Keys written by the current/last resync.", p.copied);
	KM_RS("keys_estimate", "gauge", "Estimated keys of the resync.",
	      p.total_est);
	KM_RS("rate", "gauge", "Keys per second.", p.rate);
	KM_RS("eta_seconds", "gauge", "Seconds left, -1 unknown.", p.eta);
#undef KM_RS
}

static void km_metrics_repair(FILE *out)
{
	struct km_repair_stats r;

	km_repair_get_stats(&r);
	km_help(out, "kmagent_repairs_total", "counter",
		"Read-repairs by result.");
#define X(f)                                                                   \
	fprintf(out, "kmagent_repairs_total{result=\"" #f "\"} %llu\n",        \
		(unsigned long long)r.f);
	KM_REPAIR_FIELDS(X)
#undef X
}

void km_metrics_render(FILE *out)
{
	struct km_be_view v[KM_MAX_BACKENDS];
	int n = km_be_snapshot(v);
	struct km_pinned pin;
	bool kernel =
		km_d.cfg.nr_ifaces && !km_pinned_open(&pin, km_d.cfg.pin_root);

	km_help(out, "kmagent_uptime_seconds", "gauge",
		"Seconds since kmagentd started.");
	fprintf(out, "kmagent_uptime_seconds %lld\n",
		(long long)(time(NULL) - km_d.started));
	km_metrics_user(out);
	km_metrics_kernel(out, kernel ? &pin : NULL);
	km_metrics_progs(out, kernel ? &pin : NULL);
	km_metrics_backend_states(out, v, n);
	km_metrics_noreply(out, v, n);
	km_metrics_backend_counters(out, v, n, kernel ? &pin : NULL);
	km_metrics_inflight(out, v, n);
	km_metrics_journal(out, v, n);
	km_metrics_resync(out, v, n);
	km_metrics_repair(out);
	if (kernel)
		km_pinned_close(&pin);
}

/* ---- HTTP --------------------------------------------------------------- */

static void km_http_reply(int fd, const char *status, const char *type,
			  const char *body, size_t len)
{
	char hdr[256];
	int n = snprintf(hdr, sizeof(hdr),
			 "HTTP/1.0 %s\r\nContent-Type: %s\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
			 status, type, len);

	if (send(fd, hdr, n, MSG_NOSIGNAL) == n)
		while (len) {
			ssize_t w = send(fd, body, len, MSG_NOSIGNAL);

			if (w <= 0)
				break;
			body += w;
			len -= w;
		}
}

static void km_http_serve(int fd)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	char req[2048], *body = NULL;
	size_t len = 0, blen = 0;
	FILE *out;

	while (len + 1 < sizeof(req) && poll(&pfd, 1, 1000) == 1) {
		ssize_t r = recv(fd, req + len, sizeof(req) - len - 1, 0);

		if (r <= 0)
			break;
		len += r;
		req[len] = '\0';
		if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
			break;
	}
	req[len] = '\0';
	if (strncmp(req, "GET /metrics ", 13) && strncmp(req, "GET / ", 6)) {
		km_http_reply(fd, "404 Not Found", "text/plain",
			      "try /metrics\n", 13);
		return;
	}
	out = open_memstream(&body, &blen);
	if (!out)
		return;
	km_metrics_render(out);
	fclose(out);
	km_http_reply(fd, "200 OK", "text/plain; version=0.0.4", body, blen);
	free(body);
}

static void *km_metrics_main(void *arg)
{
	struct pollfd pfd = {.fd = km_met.fd, .events = POLLIN};

	(void)arg;
	while (!km_met.stop && !km_d.stop) {
		int fd;

		if (poll(&pfd, 1, 250) != 1)
			continue;
		fd = accept4(km_met.fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		km_http_serve(fd);
		close(fd);
	}
	return NULL;
}

int km_metrics_start(const union km_addr *addr)
{
	int one = 1, err;

	km_met.fd = socket(addr->sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (km_met.fd < 0)
		return -errno;
	setsockopt(km_met.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(km_met.fd, &addr->sa, km_addr_len(addr)) ||
	    listen(km_met.fd, 16)) {
		err = -errno;
		close(km_met.fd);
		km_met.fd = -1;
		return err;
	}
	err = pthread_create(&km_met.thread, NULL, km_metrics_main, NULL);
	if (err)
		return -err;
	km_met.up = true;
	return 0;
}

void km_metrics_stop(void)
{
	km_met.stop = 1;
	if (km_met.up)
		pthread_join(km_met.thread, NULL);
	km_met.up = false;
	if (km_met.fd >= 0)
		close(km_met.fd);
	km_met.fd = -1;
}
