/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The control socket (kmagentctl's other end) and the operations part of
 * kmagentd: resync manager, read-repair, metrics listener, reload.
 *
 * Protocol: a client connects to the unix socket (--ctl PATH, mode 0600),
 * sends one request line, gets one JSON object on one line, and the
 * connection is closed.  Requests:
 *   status | backends | stats | ring KEY | drain BACKEND [writes]
 *   undrain BACKEND | resync BACKEND | reload | repair-rate N
 * BACKEND is an id or a "host:port" name.  Replies carry "ok": true, or
 * "ok": false and "error".
 */
#ifndef KM_CTL_H
#define KM_CTL_H

#include <stdio.h>
#include "config.h"

/*
 * Start everything of ops (before dropping privileges: the socket lives
 * in /run).  argv is kept: a reload parses it again, config file included.
 */
int km_ops_start(const struct km_cfg *cfg, int argc, char **argv);
void km_ops_stop(void);

/*
 * Re-read the configuration (SIGHUP, kmagentctl reload).  Writes a JSON
 * object (without newline) to out; returns 0 or -1 when refused (the
 * running configuration is kept).
 */
int km_reload(FILE *out);

/* The same for SIGHUP: the outcome goes to the log. */
void km_reload_log(void);

/* Handle one request line; the JSON reply goes to out (for tests too). */
void km_ctl_handle(const char *line, FILE *out);

/* JSON helpers shared with metrics. */
void km_json_str(FILE *out, const char *s, size_t len);

#endif /* KM_CTL_H */
