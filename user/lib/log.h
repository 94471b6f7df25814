/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef KM_LOG_H
#define KM_LOG_H

enum km_log_level {
	KM_LOG_ERR = 0,
	KM_LOG_WARN = 1,
	KM_LOG_INFO = 2,
	KM_LOG_DEBUG = 3, /* -v */
	KM_LOG_TRACE = 4, /* -vv */
};

extern int km_log_level;

void km_log_open_syslog(void); /* after daemonizing: stderr is gone */
/*
 * libbpf's output through km_log: warnings always, info at verbose 1,
 * debug (verifier logs) at 2.
 */
void km_log_libbpf(int verbose);
void km_log(enum km_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define km_err(...)  km_log(KM_LOG_ERR, __VA_ARGS__)
#define km_warn(...) km_log(KM_LOG_WARN, __VA_ARGS__)
#define km_info(...) km_log(KM_LOG_INFO, __VA_ARGS__)
#define km_debug(...)                                                          \
	do {                                                                   \
		if (km_log_level >= KM_LOG_DEBUG)                              \
			km_log(KM_LOG_DEBUG, __VA_ARGS__);                     \
	} while (0)

#endif /* KM_LOG_H */
