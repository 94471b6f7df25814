// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Logging: stderr with a timestamp in the foreground, syslog once detached. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <bpf/libbpf.h>

#include "log.h"

int km_log_level = KM_LOG_INFO;
static int km_use_syslog;

void km_log_open_syslog(void)
{
	openlog("kmagentd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	km_use_syslog = 1;
}

void km_log(enum km_log_level lvl, const char *fmt, ...)
{
	static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG,
				   LOG_DEBUG};
	static const char *const tag[] = {"error: ", "warning: ", "", "", ""};
	char msg[1024];
	va_list ap;

	if ((int)lvl > km_log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (km_use_syslog) {
		syslog(prio[lvl], "%s%s", tag[lvl], msg);
	} else {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		fprintf(stderr, "%02d:%02d:%02d.%03ld kmagentd: %s%s",
			tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
			tag[lvl], msg);
	}
}

static int km_libbpf_verbosity;

static int km_libbpf_print(enum libbpf_print_level level, const char *fmt,
			   va_list ap)
{
	char *msg = NULL;

	if ((level == LIBBPF_DEBUG && km_libbpf_verbosity < 2) ||
	    (level == LIBBPF_INFO && km_libbpf_verbosity < 1))
		return 0;
	if (vasprintf(&msg, fmt, ap) < 0)
		return 0;
	/* the answers of a tc query on a device without our filter yet */
	if (km_libbpf_verbosity < 2 &&
	    (strstr(msg, "Parent Qdisc doesn't exist") ||
	     strstr(msg, "Cannot find specified filter chain") ||
	     strstr(msg, "Exclusivity flag on"))) {
		free(msg);
		return 0;
	}
	/* verifier logs come in one piece, too long for one log line */
	if (strlen(msg) > 400)
		fputs(msg, stderr);
	else
		km_log(level == LIBBPF_WARN ? KM_LOG_WARN : KM_LOG_DEBUG, "%s",
		       msg);
	free(msg);
	return 0;
}

void km_log_libbpf(int verbose)
{
	km_libbpf_verbosity = verbose;
	libbpf_set_print(km_libbpf_print);
}
