// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * kmagentctl: talk to kmagentd over its control socket (one request line,
 * one JSON reply; see user/control/ctl.h), print tables or the JSON itself.
 * With the daemon unreachable, status/backends/stats read the kernel
 * path's pinned maps instead (read-only) and say so.
 *
 * Exit status: 0 ok, 1 the daemon refused or failed, 2 usage,
 * 3 daemon unreachable (even when the pinned maps were shown).
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <net/if.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "config.h"
#include "json.h"
#include "detach.h"
#include "kmagent.h"
#include "pinned.h"

#define KM_EXIT_OK	    0
#define KM_EXIT_FAIL	    1
#define KM_EXIT_USAGE	    2
#define KM_EXIT_UNREACHABLE 3

struct km_opts {
	const char *socket;
	const char *pin_root;
	bool json;
	bool kernel; /* -k: the pinned maps, daemon or not */
	int verbose;
	bool writes;	 /* drain --writes */
	double interval; /* stats -i */
	const char *ifaces[KM_MAX_IFACES + 1];
	int nr_ifaces;
};

/*
 * A command: its arguments and --help line, how it runs.  main finds it
 * here, --help lists it from here.
 */
enum {
	KM_CF_READ = 1,	    /* read-only: the pinned maps answer when
			       kmagentd is down, and -k goes with it */
	KM_CF_WRITES = 2,   /* -w goes with it */
	KM_CF_ANY_ARGS = 4, /* its arguments are not checked */
	KM_CF_LOOKUP = 8,   /* "NAME lookup ARG" or "NAME ARG" */
};

struct km_cmd {
	const char *name;
	const char *args; /* its one argument as usage shows it; NULL: none */
	unsigned int flags;
	/* its own way, else one request line: name [arg] [writes] */
	int (*run)(struct km_opts *o, const struct km_cmd *c);
	/* the reply as a table (without --json) */
	void (*show)(const struct km_json *j, const char *arg);
	const char *help; /* lines after the first are indented too */
};

static const char km_usage_head[] =
	"Usage: kmagentctl [OPTIONS] COMMAND [ARGS]\n"
	"Control and observe kmagentd, the replicating memcached proxy.\n"
	"\n"
	"Commands:\n";

static const char km_usage_tail[] =
	"\n"
	"Options:\n"
	"  -s, --socket PATH      control socket (default " KM_DEFAULT_CTL ")\n"
	"      --pin-root DIR     pinned maps to read when the daemon is down\n"
	"                         (default " KM_PIN_ROOT ")\n"
	"  -k, --kernel           status, backends, stats: what the kernel "
	"path's\n"
	"                         pinned maps hold (addresses decoded), even "
	"with\n"
	"                         kmagentd running\n"
	"  -j, --json             print the JSON reply (for scripts)\n"
	"  -w, --writes           drain: stop writes too\n"
	"  -I, --iface IFACE      detach: fail unless IFACE exists (every\n"
	"                         interface is cleaned anyway)\n"
	"  -i, --interval SECS    stats: rates over SECS seconds (default 1, "
	"0: none)\n"
	"  -v, --verbose          more detail (stats: zero counters too)\n"
	"  -V, --version          print the version\n"
	"  -h, --help             this help\n"
	"\n"
	"Exit status: 0 ok, 1 refused or failed, 2 usage, 3 daemon "
	"unreachable\n"
	"(status, backends and stats then show the pinned maps, read-only).\n"
	"\n"
	"EXAMPLES\n"
	"  kmagentctl backends\n"
	"  kmagentctl backends --kernel\n"
	"  kmagentctl ring lookup becd0000\n"
	"  kmagentctl drain 198.18.0.2:11211 --writes\n"
	"  kmagentctl resync 2\n"
	"  kmagentctl -j stats -i 5 | python3 -m json.tool\n"
	"  kmagentctl -s /run/kmagent-b.sock reload\n";

static const struct option km_long_opts[] = {
	{"socket", required_argument, NULL, 's'},
	{"pin-root", required_argument, NULL, 'P'},
	{"json", no_argument, NULL, 'j'},
	{"kernel", no_argument, NULL, 'k'},
	{"writes", no_argument, NULL, 'w'},
	{"interval", required_argument, NULL, 'i'},
	{"verbose", no_argument, NULL, 'v'},
	{"version", no_argument, NULL, 'V'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

static int km_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("kmagentctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'kmagentctl --help' for more.\n", stderr);
	return KM_EXIT_USAGE;
}

/* ---- talking to the daemon --------------------------------------------- */

/* 0 and a malloc'd reply, or -errno when the daemon cannot be reached. */
static int km_request(const char *path, const char *line, char **reply)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct pollfd pfd;
	size_t len = 0, cap = 65536;
	char *buf;
	int fd, err = 0;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		err = -errno;
		close(fd);
		return err;
	}
	buf = malloc(cap);
	if (!buf || dprintf(fd, "%s\n", line) < 0) {
		err = buf ? -EIO : -ENOMEM;
		goto out;
	}
	pfd.fd = fd;
	pfd.events = POLLIN;
	for (;;) {
		ssize_t r;

		if (poll(&pfd, 1, 10000) != 1) {
			err = -ETIMEDOUT;
			goto out;
		}
		if (len + 1 >= cap) {
			char *b = realloc(buf, cap * 2);

			if (!b) {
				err = -ENOMEM;
				goto out;
			}
			buf = b;
			cap *= 2;
		}
		r = recv(fd, buf + len, cap - len - 1, 0);
		if (r < 0) {
			err = -errno;
			goto out;
		}
		if (r == 0)
			break;
		len += r;
	}
	buf[len] = '\0';
	if (!len)
		err = -ECONNRESET;
out:
	close(fd);
	if (err)
		free(buf);
	else
		*reply = buf;
	return err;
}

/* ---- the pinned maps, when the daemon is down -------------------------- */

static const char *km_state_name(__u8 st)
{
	switch (st) {
	case KM_BE_UP:
		return "up";
	case KM_BE_WARMING:
		return "warming";
	case KM_BE_DOWN:
		return "down";
	}
	return "?";
}

static void km_pin_backends(FILE *out, const struct km_pinned *p, bool counters,
			    int *st)
{
	struct km_backend b;
	char addr[INET6_ADDRSTRLEN], name[INET6_ADDRSTRLEN + 2];
	unsigned int id;
	bool first = true;

	fputc('[', out);
	for (id = 1; id < KM_MAX_BACKENDS; id++) {
		if (km_pinned_backend(p, id, &b) || !km_ip_set(&b.addr))
			continue;
		if (b.family == KM_FAM_V6) {
			inet_ntop(AF_INET6, b.addr.v6, addr, sizeof(addr));
			snprintf(name, sizeof(name), "[%s]", addr);
		} else {
			inet_ntop(AF_INET, &b.addr.v4, addr, sizeof(addr));
			snprintf(name, sizeof(name), "%s", addr);
		}
		if (b.state < 3)
			st[b.state]++;
		fprintf(out,
			"%s{\"id\":%u,\"name\":\"%s:%u\",\"addr\":\"%s\","
			"\"port\":%u,\"state\":\"%s\","
			"\"no_reads\":%s,\"no_writes\":%s,\"refused\":%s,"
			"\"silent\":%s,\"fenced\":%s",
			first ? "" : ",", id, name, ntohs(b.port), addr,
			ntohs(b.port), km_state_name(b.state),
			b.flags & KM_BE_F_NO_READS ? "true" : "false",
			b.flags & KM_BE_F_NO_WRITES ? "true" : "false",
			b.flags & KM_BE_F_REFUSED ? "true" : "false",
			b.flags & KM_BE_F_SILENT ? "true" : "false",
			b.flags & KM_BE_F_FENCED ? "true" : "false");
		if (counters) {
			fputs(",\"user\":null,\"kernel\":", out);
			km_pinned_json_be_stats(out, p, id);
		}
		fputc('}', out);
		first = false;
	}
	fputc(']', out);
}

static void km_pin_stats(FILE *out, const struct km_pinned *p)
{
	struct timespec now;
	int st[3] = {0};

	clock_gettime(CLOCK_REALTIME, &now);
	fprintf(out, ",\"time\":%.3f,\"user\":null,\"kernel\":",
		now.tv_sec + now.tv_nsec / 1e9);
	km_pinned_json_stats(out, p);
	fputs(",\"programs\":", out);
	km_pinned_json_progs(out, p);
	fputs(",\"backends\":", out);
	km_pin_backends(out, p, true, st);
}

/* ,"ifaces":[...]: the interfaces with an XDP link pinned under root */
static void km_pin_ifaces(FILE *out, const char *root)
{
	int ifx[KM_MAX_IFACES], n = km_pinned_ifaces(root, ifx, KM_MAX_IFACES);
	char name[IF_NAMESIZE];
	int i;

	fputs(",\"ifaces\":[", out);
	for (i = 0; i < n; i++) {
		if (!if_indextoname(ifx[i], name))
			snprintf(name, sizeof(name), "?");
		if (i)
			fputc(',', out);
		km_json_iface(out, name, ifx[i]);
	}
	fputc(']', out);
}

/* The daemon's reply shape, built from the maps; NULL if none pinned. */
static char *km_pinned_reply(const struct km_opts *o, const char *cmd)
{
	const char *root = o->pin_root ? o->pin_root : KM_PIN_ROOT;
	struct km_pinned p;
	char *buf = NULL;
	size_t len = 0;
	int st[3] = {0};
	FILE *out;

	if (km_pinned_open(&p, root))
		return NULL;
	out = open_memstream(&buf, &len);
	if (!out) {
		km_pinned_close(&p);
		return NULL;
	}
	fputs("{\"ok\":true,\"source\":\"pinned-maps\",\"pin_root\":", out);
	fprintf(out, "\"%s\",\"asked\":%s", root, o->kernel ? "true" : "false");
	if (!strcmp(cmd, "stats")) {
		km_pin_stats(out, &p);
	} else {
		fputs(",\"backends\":", out);
		if (!strcmp(cmd, "backends")) {
			km_pin_backends(out, &p, true, st);
		} else {
			FILE *devnull = fopen("/dev/null", "w");

			if (devnull) {
				km_pin_backends(devnull, &p, false, st);
				fclose(devnull);
			}
			fprintf(out,
				"%d,\"up\":%d,\"warming\":%d,\"down\":%d,"
				"\"kernel_path\":true",
				st[0] + st[1] + st[2], st[KM_BE_UP],
				st[KM_BE_WARMING], st[KM_BE_DOWN]);
			km_pin_ifaces(out, root);
		}
	}
	fputs("}", out);
	fclose(out);
	km_pinned_close(&p);
	return buf;
}

/* ---- output helpers ----------------------------------------------------- */

static void km_print_duration(char *buf, size_t cap, double secs)
{
	long s = (long)secs;

	if (secs < 0)
		snprintf(buf, cap, "-");
	else if (s < 120)
		snprintf(buf, cap, "%lds", s);
	else if (s < 7200)
		snprintf(buf, cap, "%ldm%02lds", s / 60, s % 60);
	else if (s < 172800)
		snprintf(buf, cap, "%ldh%02ldm", s / 3600, s % 3600 / 60);
	else
		snprintf(buf, cap, "%ldd%02ldh", s / 86400, s % 86400 / 3600);
}

static void km_resync_cell(char *buf, size_t cap, const struct km_json *rs)
{
	double total, done, rate, eta;
	const char *st;
	char e[32];

	if (!rs || rs->t != KM_J_OBJ) {
		snprintf(buf, cap, "-");
		return;
	}
	st = km_json_string(rs, "state", "?");
	done = km_json_num(rs, "matched", 0);
	total = km_json_num(rs, "total_est", 0);
	rate = km_json_num(rs, "rate", 0);
	eta = km_json_num(rs, "eta", -1);
	km_print_duration(e, sizeof(e), eta);
	if (!strcmp(st, "running"))
		snprintf(buf, cap, "%.0f/%.0f %.0fk/s eta %s", done, total,
			 rate / 1000, e);
	else
		snprintf(buf, cap, "%s %.0f copied", st,
			 km_json_num(rs, "copied", 0));
}

/* ---- commands ----------------------------------------------------------- */

static void km_show_bypass(const struct km_json *bp)
{
	const struct km_json *count = km_json_get(bp, "count"), *c;

	if (!bp)
		return;
	if (km_json_bool(bp, "active"))
		printf("warning: kernel path bypassed for %.0f s more: every "
		       "UDP request goes to kmagentd (%s; kmagentctl "
		       "backends)\n",
		       km_json_num(bp, "left_ms", 0) / 1000,
		       km_json_string(bp, "why", "?"));
	for (c = count ? count->child : NULL; c; c = c->next)
		if (c->num > 0)
			printf("kernel path bypasses (%s): %.0f\n", c->key,
			       c->num);
}

/* " on eth0 (native XDP), eth1 (generic XDP)" */
static void km_show_ifaces(const struct km_json *arr)
{
	const struct km_json *i;
	const char *mode;

	for (i = arr ? arr->child : NULL; i; i = i->next) {
		mode = km_json_string(i, "xdp", "?");
		printf("%s%s (%s%s)", i == arr->child ? " on " : ", ",
		       km_json_string(i, "name", "?"),
		       strcmp(mode, "none") ? mode : "NO XDP PROGRAM",
		       strcmp(mode, "none") ? " XDP" : "");
	}
	putchar('\n');
}

static void km_show_status(const struct km_json *j, const char *arg)
{
	const char *src = km_json_string(j, "source", "daemon");
	char up[32];

	(void)arg; /* its reply says it all */
	if (!strcmp(src, "pinned-maps") && km_json_bool(j, "asked")) {
		printf("kernel path pinned in %s (--kernel: its maps only)\n",
		       km_json_string(j, "pin_root", "?"));
	} else if (!strcmp(src, "pinned-maps")) {
		printf("kmagentd: not running; kernel path pinned in %s\n",
		       km_json_string(j, "pin_root", "?"));
	} else {
		km_print_duration(up, sizeof(up), km_json_num(j, "uptime", 0));
		printf("kmagentd %s, pid %.0f, up %s, port %.0f, replicas "
		       "%.0f (0 = all), write policy %s\n",
		       km_json_string(j, "version", "?"),
		       km_json_num(j, "pid", 0), up, km_json_num(j, "port", 0),
		       km_json_num(j, "replicas", 0),
		       km_json_string(j, "write_policy", "?"));
	}
	printf("backends: %.0f (%.0f up, %.0f warming, %.0f down)",
	       km_json_num(j, "backends", 0), km_json_num(j, "up", 0),
	       km_json_num(j, "warming", 0), km_json_num(j, "down", 0));
	if (km_json_get(j, "resyncs_running"))
		printf(", resyncs running: %.0f",
		       km_json_num(j, "resyncs_running", 0));
	printf("\nkernel path: %s",
	       km_json_bool(j, "kernel_path") ? "attached" : "off");
	km_show_ifaces(km_json_get(j, "ifaces"));
	km_show_bypass(km_json_get(j, "kernel_bypass"));
}

/* The pinned map's flags (no daemon reason to show): "silent,fenced" */
static void km_kernel_flags(char *buf, size_t cap, const struct km_json *b)
{
	static const char *const names[] = {"no_reads", "no_writes", "refused",
					    "silent", "fenced"};
	size_t i, n = 0;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (km_json_bool(b, names[i]) && n < cap)
			n += snprintf(buf + n, cap - n, "%s%s", n ? "," : "",
				      names[i]);
}

static void km_show_backends(const struct km_json *j, const char *arg)
{
	const struct km_json *arr = km_json_get(j, "backends"), *b;
	time_t now = time(NULL);

	(void)arg; /* its reply says it all */
	printf("%-3s %-22s %-8s %-6s %-8s %-8s %-8s %-9s %-7s %-8s %-30s "
	       "%s\n",
	       "ID", "NAME", "STATE", "DRAIN", "SINCE", "LATENCY", "INFLIGHT",
	       "REQUESTS", "ERRORS", "TIMEOUTS", "RESYNC", "REASON");
	for (b = arr ? arr->child : NULL; b; b = b->next) {
		char since[32] = "-", lat[32] = "-", rs[64], req[32] = "-",
		     errs[32] = "-", tmo[32] = "-", inflight[32] = "-",
		     reason[64] = "-";
		const char *drain = "-";
		const struct km_json *kernel = km_json_get(b, "kernel");

		if (km_json_get(b, "since"))
			km_print_duration(since, sizeof(since),
					  now - km_json_num(b, "since", now));
		if (km_json_num(b, "latency_us", -1) >= 0)
			snprintf(lat, sizeof(lat), "%.0fus",
				 km_json_num(b, "latency_us", 0));
		if (km_json_bool(b, "no_writes"))
			drain = "rw";
		else if (km_json_bool(b, "no_reads"))
			drain = "r";
		if (km_json_get(b, "requests")) {
			snprintf(req, sizeof(req), "%.0f",
				 km_json_num(b, "requests", 0));
			snprintf(errs, sizeof(errs), "%.0f",
				 km_json_num(b, "errors", 0) +
					 km_json_num(b, "conn_errors", 0));
			snprintf(tmo, sizeof(tmo), "%.0f",
				 km_json_num(b, "timeouts", 0));
		} else if (kernel && kernel->t == KM_J_OBJ) {
			snprintf(req, sizeof(req), "%.0f",
				 km_json_num(kernel, "gets", 0) +
					 km_json_num(kernel, "writes", 0));
			snprintf(tmo, sizeof(tmo), "%.0f",
				 km_json_num(kernel, "timeouts", 0));
		}
		if (km_json_get(b, "inflight"))
			snprintf(inflight, sizeof(inflight), "%.0f",
				 km_json_num(b, "inflight", 0));
		km_resync_cell(rs, sizeof(rs), km_json_get(b, "resync"));
		if (!km_json_get(b, "reason"))
			km_kernel_flags(reason, sizeof(reason), b);
		printf("%-3.0f %-22s %-8s %-6s %-8s %-8s %-8s %-9s %-7s %-8s "
		       "%-30s %s%s\n",
		       km_json_num(b, "id", 0), km_json_string(b, "name", "?"),
		       km_json_string(b, "state", "?"), drain, since, lat,
		       inflight, req, errs, tmo, rs,
		       km_json_string(b, "reason", reason),
		       km_json_bool(b, "kernel_noreply")
			       ? " [kernel path: no replies]"
			       : "");
	}
}

static void km_show_ring(const struct km_json *j, const char *arg)
{
	const struct km_json *r = km_json_get(j, "replicas"), *b,
			     *k = km_json_get(j, "kernel"), *e;
	int n = 1;
	int read_from = (int)km_json_num(j, "read_from", 0);

	(void)arg; /* its reply says it all */
	printf("key %s: hash %.0f (0x%08lx), slot %.0f\n",
	       km_json_string(j, "key", "?"), km_json_num(j, "hash", 0),
	       (unsigned long)km_json_num(j, "hash", 0),
	       km_json_num(j, "slot", 0));
	for (b = r ? r->child : NULL; b; b = b->next, n++)
		printf("  %d. id %-3.0f %-22s %-8s%s\n", n,
		       km_json_num(b, "id", 0), km_json_string(b, "name", "?"),
		       km_json_string(b, "state", "?"),
		       (int)km_json_num(b, "id", 0) == read_from
			       ? "  <- reads go here"
			       : "");
	if (!read_from)
		printf("  no readable replica: reads fail\n");
	if (k && k->t == KM_J_ARR) {
		printf("kernel ring:");
		for (e = k->child; e; e = e->next)
			printf(" %.0f", e->num);
		printf(" (%s)\n", km_json_bool(j, "kernel_agrees")
					  ? "same as the daemon's"
					  : "DIFFERENT from the daemon's");
	}
}

/* ---- stats with rates --------------------------------------------------- */

static const struct km_json *km_find_be(const struct km_json *stats, double id)
{
	const struct km_json *arr = km_json_get(stats, "backends"), *b;

	for (b = arr ? arr->child : NULL; b; b = b->next)
		if (km_json_num(b, "id", -1) == id)
			return b;
	return NULL;
}

/* Rates of every counter of group `key` in b (second sample) vs a. */
static void km_rates_json(FILE *out, const struct km_json *a,
			  const struct km_json *b, const char *key, double dt)
{
	const struct km_json *ga = km_json_get(a, key),
			     *gb = km_json_get(b, key), *c;
	const char *sep = "";

	if (!gb || gb->t != KM_J_OBJ) {
		fputs("null", out);
		return;
	}
	fputc('{', out);
	for (c = gb->child; c; c = c->next) {
		if (c->t != KM_J_NUM)
			continue;
		fprintf(out, "%s\"%s\":%.1f", sep, c->key,
			(c->num - km_json_num(ga, c->key, c->num)) / dt);
		sep = ",";
	}
	fputc('}', out);
}

static void km_print_group(const char *prefix, const struct km_json *a,
			   const struct km_json *b, const char *key, double dt,
			   int verbose)
{
	const struct km_json *ga = km_json_get(a, key),
			     *gb = km_json_get(b, key), *c;

	if (!gb || gb->t != KM_J_OBJ)
		return;
	for (c = gb->child; c; c = c->next) {
		char name[96];

		if (c->t != KM_J_NUM || (!c->num && !verbose))
			continue;
		snprintf(name, sizeof(name), "%s%s.%s", prefix, key, c->key);
		if (dt > 0)
			printf("%-40s %16.0f %12.1f\n", name, c->num,
			       (c->num - km_json_num(ga, c->key, c->num)) / dt);
		else
			printf("%-40s %16.0f\n", name, c->num);
	}
}

static void km_show_stats(const struct km_json *a, const struct km_json *b,
			  double dt, int verbose)
{
	const struct km_json *arr = km_json_get(b, "backends"), *be, *p;
	const char *groups[] = {"user", "kernel", "repair"};
	unsigned int i;

	printf("%-40s %16s %12s\n", "COUNTER", "TOTAL", dt > 0 ? "RATE/s" : "");
	for (i = 0; i < 3; i++)
		km_print_group("", a, b, groups[i], dt, verbose);
	p = km_json_get(b, "programs");
	for (p = p ? p->child : NULL; p; p = p->next)
		printf("bpf.%s (id %.0f): %.0f runs, %.0f ns/run\n",
		       km_json_string(p, "name", "?"), km_json_num(p, "id", 0),
		       km_json_num(p, "run_cnt", 0),
		       km_json_num(p, "run_cnt", 0)
			       ? km_json_num(p, "run_time_ns", 0) /
					 km_json_num(p, "run_cnt", 1)
			       : 0);
	for (be = arr ? arr->child : NULL; be; be = be->next) {
		const struct km_json *bea =
			km_find_be(a, km_json_num(be, "id", 0));
		char rs[64];

		km_resync_cell(rs, sizeof(rs), km_json_get(be, "resync"));
		printf("backend %.0f %s (%s), resync: %s\n",
		       km_json_num(be, "id", 0),
		       km_json_string(be, "name", "?"),
		       km_json_string(be, "state", "?"), rs);
		km_print_group("  ", bea, be, "user", dt, verbose);
		km_print_group("  ", bea, be, "kernel", dt, verbose);
	}
}

/* The second sample's JSON with ,"interval":..,"rates":{..} added. */
static void km_print_stats_json(const char *raw, const struct km_json *a,
				const struct km_json *b, double dt)
{
	const struct km_json *arr = km_json_get(b, "backends"), *be;
	size_t len = strlen(raw);

	while (len && (raw[len - 1] == '\n' || raw[len - 1] == '}'))
		len--;
	if (dt <= 0) {
		printf("%.*s}\n", (int)len, raw);
		return;
	}
	printf("%.*s,\"interval\":%.3f,\"rates\":{\"user\":", (int)len, raw,
	       dt);
	km_rates_json(stdout, a, b, "user", dt);
	fputs(",\"kernel\":", stdout);
	km_rates_json(stdout, a, b, "kernel", dt);
	fputs(",\"repair\":", stdout);
	km_rates_json(stdout, a, b, "repair", dt);
	fputs(",\"backends\":[", stdout);
	for (be = arr ? arr->child : NULL; be; be = be->next) {
		const struct km_json *bea =
			km_find_be(a, km_json_num(be, "id", 0));

		printf("%s{\"id\":%.0f,\"user\":", be == arr->child ? "" : ",",
		       km_json_num(be, "id", 0));
		km_rates_json(stdout, bea, be, "user", dt);
		fputs(",\"kernel\":", stdout);
		km_rates_json(stdout, bea, be, "kernel", dt);
		fputc('}', stdout);
	}
	fputs("]}}\n", stdout);
}

/* ---- main --------------------------------------------------------------- */

/* One reply: the daemon's, else (read commands) the pinned maps'. */
static int km_fetch(const struct km_opts *o, const struct km_cmd *c,
		    const char *line, char **raw, struct km_json **j)
{
	const char *cmd = c->name;
	bool readonly = c->flags & KM_CF_READ;
	int err, rc = KM_EXIT_OK;

	if (o->kernel) {
		*raw = km_pinned_reply(o, cmd);
		if (!*raw) {
			fprintf(stderr, "kmagentctl: nothing pinned under %s\n",
				o->pin_root ? o->pin_root : KM_PIN_ROOT);
			return KM_EXIT_FAIL;
		}
		err = 0;
	} else {
		err = km_request(o->socket, line, raw);
	}
	if (err) {
		*raw = readonly ? km_pinned_reply(o, cmd) : NULL;
		if (!*raw) {
			fprintf(stderr,
				"kmagentctl: kmagentd unreachable at %s: %s\n",
				o->socket, strerror(-err));
			return KM_EXIT_UNREACHABLE;
		}
		static bool warned;

		if (!warned)
			fprintf(stderr,
				"kmagentctl: WARNING: kmagentd unreachable at "
				"%s (%s); "
				"showing the kernel path's pinned maps under "
				"%s, "
				"read-only, without the userspace figures\n",
				o->socket, strerror(-err),
				o->pin_root ? o->pin_root : KM_PIN_ROOT);
		warned = true;
		rc = KM_EXIT_UNREACHABLE;
	}
	*j = km_json_parse(*raw);
	if (!*j) {
		fprintf(stderr, "kmagentctl: unreadable reply: %s\n", *raw);
		return KM_EXIT_FAIL;
	}
	if (!km_json_bool(*j, "ok")) {
		if (o->json)
			fputs(*raw, stdout);
		fprintf(stderr, "kmagentctl: %s: %s\n", cmd,
			km_json_string(*j, "error", "failed"));
		return KM_EXIT_FAIL;
	}
	return rc;
}

static void km_show_drain(const struct km_json *j, const char *arg)
{
	printf("backend %.0f (%s): reads %s, writes %s\n",
	       km_json_num(j, "id", 0), km_json_string(j, "name", arg),
	       km_json_bool(j, "no_reads") ? "drained" : "on",
	       km_json_bool(j, "no_writes") ? "drained" : "on");
}

static void km_show_resync(const struct km_json *j, const char *arg)
{
	printf("backend %.0f (%s): resync requested; follow it with "
	       "'kmagentctl backends'\n",
	       km_json_num(j, "id", 0), arg);
}

static void km_show_repair_rate(const struct km_json *j, const char *arg)
{
	(void)arg;
	printf("read-repair limited to %.0f a second\n",
	       km_json_num(j, "rate_limit", 0));
}

static void km_show_forget(const struct km_json *j, const char *arg)
{
	printf("kmagentd %s forgotten: the backends it fenced are "
	       "flushed and resynced in full; follow it with "
	       "'kmagentctl backends'\n",
	       km_json_string(j, "forget", arg));
}

static void km_show_reload(const struct km_json *j, const char *arg)
{
	const char *keys[] = {"added", "removed", "restart_needed"};
	unsigned int i;

	(void)arg; /* its reply says it all */
	printf("configuration reloaded%s\n",
	       km_json_bool(j, "replicas_changed") ? ", replicas changed" : "");
	for (i = 0; i < 3; i++) {
		const struct km_json *a = km_json_get(j, keys[i]), *e;

		if (!a || !a->child)
			continue;
		printf("%s:", keys[i]);
		for (e = a->child; e; e = e->next)
			printf(" %s", e->str ? e->str : "?");
		putchar('\n');
	}
}

static int km_run_stats(struct km_opts *o, const struct km_cmd *c)
{
	char *raw1 = NULL, *raw2 = NULL;
	struct km_json *a = NULL, *b = NULL;
	double dt = 0;
	int rc;

	rc = km_fetch(o, c, c->name, &raw1, &a);
	if (!a || (rc != KM_EXIT_OK && rc != KM_EXIT_UNREACHABLE))
		goto out;
	if (o->interval > 0) {
		usleep((useconds_t)(o->interval * 1e6));
		rc = km_fetch(o, c, c->name, &raw2, &b);
		if (!b || (rc != KM_EXIT_OK && rc != KM_EXIT_UNREACHABLE))
			goto out;
		dt = km_json_num(b, "time", 0) - km_json_num(a, "time", 0);
	}
	if (o->json)
		km_print_stats_json(b ? raw2 : raw1, a, b ? b : a, dt);
	else
		km_show_stats(a, b ? b : a, dt, o->verbose);
out:
	km_json_free(a);
	km_json_free(b);
	free(raw1);
	free(raw2);
	return rc;
}

/*
 * Remove what kmagentd attached and pinned: the pins, and our programs on
 * every interface of this network namespace (tc filters outlive a lost
 * pin root).  -I names interfaces that must exist.
 */
static int km_run_detach(struct km_opts *o, const struct km_cmd *c)
{
	const char *root = o->pin_root ? o->pin_root : KM_PIN_ROOT;
	struct km_bpf_detached d;
	char *reply = NULL;
	int err;

	(void)c;
	if (!km_request(o->socket, "status", &reply)) {
		free(reply);
		fprintf(stderr,
			"kmagentctl: kmagentd is running (%s): stop it "
			"first\n",
			o->socket);
		return KM_EXIT_FAIL;
	}
	o->ifaces[o->nr_ifaces] = NULL;
	err = km_bpf_detach_netns(root, o->ifaces, &d);
	if (err == -ENODEV && d.bad_iface) {
		fprintf(stderr, "kmagentctl: detach: no interface '%s'\n",
			d.bad_iface);
		return KM_EXIT_FAIL;
	}
	if (err) {
		fprintf(stderr, "kmagentctl: detach %s: %s\n", root,
			strerror(-err));
		return KM_EXIT_FAIL;
	}
	printf("kernel path detached: %d XDP program%s, %d tc filter%s, "
	       "%d pin%s (%s removed)\n",
	       d.xdp, d.xdp == 1 ? "" : "s", d.tc, d.tc == 1 ? "" : "s", d.pins,
	       d.pins == 1 ? "" : "s", root);
	return KM_EXIT_OK;
}

static const struct km_cmd km_cmds[] = {
	{.name = "status",
	 .flags = KM_CF_READ,
	 .show = km_show_status,
	 .help = "the daemon, its backends in short, the kernel path"},
	{.name = "backends",
	 .flags = KM_CF_READ,
	 .show = km_show_backends,
	 .help = "one row a backend: state, reason, since, latency,\n"
		 "counters, resync progress"},
	{.name = "ring",
	 .args = "lookup KEY",
	 .flags = KM_CF_LOOKUP,
	 .show = km_show_ring,
	 .help = "the key's hash, slot and ordered replicas (also: ring "
		 "KEY),\n"
		 "and the kernel ring's slot when attached"},
	{.name = "drain",
	 .args = "BACKEND",
	 .flags = KM_CF_WRITES,
	 .show = km_show_drain,
	 .help = "stop reads to BACKEND (id or host:port)"},
	{.name = "undrain",
	 .args = "BACKEND",
	 .show = km_show_drain,
	 .help = "reads and writes to BACKEND again"},
	{.name = "resync",
	 .args = "BACKEND",
	 .show = km_show_resync,
	 .help = "copy BACKEND's keys again from its replicas"},
	{.name = "stats",
	 .flags = KM_CF_READ | KM_CF_ANY_ARGS,
	 .run = km_run_stats,
	 .help = "counters of both paths with rates"},
	{.name = "reload",
	 .show = km_show_reload,
	 .help = "re-read the configuration (like SIGHUP)"},
	{.name = "repair-rate",
	 .args = "N",
	 .show = km_show_repair_rate,
	 .help = "read-repairs allowed a second"},
	{.name = "forget",
	 .args = "NAME",
	 .show = km_show_forget,
	 .help = "kmagentd NAME (its --name) is gone for good: take it\n"
		 "out of every fence, flush and resync in full the\n"
		 "backends it fenced"},
	{.name = "detach",
	 .run = km_run_detach,
	 .help = "with kmagentd stopped: detach the kernel path from\n"
		 "its interfaces and remove its pins"},
};

static const struct km_cmd *km_cmd_find(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(km_cmds) / sizeof(km_cmds[0]); i++)
		if (!strcmp(km_cmds[i].name, name))
			return &km_cmds[i];
	return NULL;
}

/* --help: each command with its arguments, its help in a column */
static void km_usage(FILE *out)
{
	size_t i;

	fputs(km_usage_head, out);
	for (i = 0; i < sizeof(km_cmds) / sizeof(km_cmds[0]); i++) {
		const struct km_cmd *c = &km_cmds[i];
		char left[64];
		const char *h;

		snprintf(left, sizeof(left), "%s%s%s", c->name,
			 c->args ? " " : "", c->args ? c->args : "");
		fprintf(out, "  %-22s ", left);
		for (h = c->help; *h; h++) {
			fputc(*h, out);
			if (*h == '\n')
				fprintf(out, "%25s", "");
		}
		fputc('\n', out);
	}
	fputs(km_usage_tail, out);
}

static int km_run(struct km_opts *o, const struct km_cmd *c, int argc,
		  char **argv)
{
	char line[512], *raw = NULL;
	struct km_json *j = NULL;
	const char *arg = argc > 0 ? argv[0] : NULL;
	int rc;

	if (!(c->flags & KM_CF_ANY_ARGS)) {
		if ((c->flags & KM_CF_LOOKUP) && argc == 2 &&
		    !strcmp(argv[0], "lookup"))
			arg = argv[1];
		else if (!c->args && argc)
			return km_usage_error("%s takes no argument", c->name);
		else if (c->args && argc != 1)
			return km_usage_error("usage: %s %s", c->name, c->args);
	}
	if (c->run)
		return c->run(o, c);
	snprintf(line, sizeof(line), "%s%s%s%s", c->name, arg ? " " : "",
		 arg ? arg : "", o->writes ? " writes" : "");
	rc = km_fetch(o, c, line, &raw, &j);
	if (j && (rc == KM_EXIT_OK || rc == KM_EXIT_UNREACHABLE)) {
		if (o->json)
			printf("%s%s", raw,
			       raw[0] && raw[strlen(raw) - 1] == '\n' ? ""
								      : "\n");
		else
			c->show(j, arg);
	}
	km_json_free(j);
	free(raw);
	return rc;
}

int main(int argc, char **argv)
{
	struct km_opts o = {.socket = KM_DEFAULT_CTL, .interval = 1};
	const struct km_cmd *kc;
	const char *cmd = NULL;
	char *rest[8];
	int nrest = 0, c;

	/* options may come before or after the command */
	opterr = 0;
	while (optind < argc) {
		c = getopt_long(argc, argv, "+s:jki:wI:vVh", km_long_opts,
				NULL);
		if (c == -1) {
			if (!cmd)
				cmd = argv[optind];
			else if (nrest < 8)
				rest[nrest++] = argv[optind];
			else
				return km_usage_error("too many arguments");
			optind++;
			continue;
		}
		switch (c) {
		case 's':
			o.socket = optarg;
			break;
		case 'P':
			o.pin_root = optarg;
			break;
		case 'j':
			o.json = true;
			break;
		case 'k':
			o.kernel = true;
			break;
		case 'w':
			o.writes = true;
			break;
		case 'I':
			if (o.nr_ifaces == KM_MAX_IFACES)
				return km_usage_error("too many -I");
			o.ifaces[o.nr_ifaces++] = optarg;
			break;
		case 'i':
			o.interval = atof(optarg);
			if (o.interval < 0 || o.interval > 3600)
				return km_usage_error("bad interval '%s'",
						      optarg);
			break;
		case 'v':
			o.verbose++;
			break;
		case 'V':
			printf("kmagentctl %s\n", KM_VERSION);
			return KM_EXIT_OK;
		case 'h':
			km_usage(stdout);
			return KM_EXIT_OK;
		default:
			return km_usage_error("unknown option or missing value "
					      "'%s'",
					      argv[optind - 1]);
		}
	}
	if (!cmd)
		return km_usage_error("no command given");
	kc = km_cmd_find(cmd);
	if (o.writes && !(kc && (kc->flags & KM_CF_WRITES)))
		return km_usage_error("--writes goes with drain");
	if (o.kernel && !(kc && (kc->flags & KM_CF_READ)))
		return km_usage_error("--kernel goes with status, backends, "
				      "stats");
	if (!kc)
		return km_usage_error("unknown command '%s'", cmd);
	return km_run(&o, kc, nrest, rest);
}
