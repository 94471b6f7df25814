// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * kmagentd: a replicating memcached proxy, drop-in for magent.
 *
 * main: parse flags and config, go to the background (the parent waits
 * until the child is listening, so that startup errors still reach the
 * terminal and the exit status), drop privileges, start the health thread
 * and the workers, then wait for signals.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "daemon.h"
#include "fence.h"
#include "health.h"
#include "journal.h"
#include "ctl.h"
#include "kbpf_daemon.h"
#include "log.h"
#include "proxy.h"
#include "resync_daemon.h"

static int km_ready_fd = -1;

/* Fork; the parent exits with the status the child reports. */
static int km_daemonize(void)
{
	int pfd[2], fd;
	pid_t pid;
	char st;

	if (pipe(pfd))
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		close(pfd[1]);
		if (read(pfd[0], &st, 1) != 1)
			_exit(1);
		_exit(st);
	}
	close(pfd[0]);
	km_ready_fd = pfd[1];
	if (setsid() < 0)
		return -errno;
	if (chdir("/"))
		return -errno;
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	return 0;
}

static void km_report_ready(int status)
{
	char st = status;

	if (km_ready_fd < 0)
		return;
	if (write(km_ready_fd, &st, 1) != 1)
		km_warn("cannot report startup to the parent\n");
	close(km_ready_fd);
	km_ready_fd = -1;
	if (status == 0) {
		/* from now on nobody reads our stderr */
		int fd = open("/dev/null", O_RDWR);

		if (fd >= 0) {
			dup2(fd, STDERR_FILENO);
			close(fd);
		}
		km_log_open_syslog();
	}
}

static int km_drop_privileges(const struct km_cfg *cfg)
{
	if (cfg->group[0]) {
		struct group *g = getgrnam(cfg->group);
		gid_t gid = g ? g->gr_gid : (gid_t)atoi(cfg->group);

		if (!g && !isdigit((unsigned char)cfg->group[0])) {
			km_err("-g: unknown group '%s'\n", cfg->group);
			return -1;
		}
		if (setgroups(0, NULL) && errno != EPERM)
			return -1;
		if (setgid(gid)) {
			km_err("setgid %s: %s\n", cfg->group, strerror(errno));
			return -1;
		}
	}
	if (cfg->user[0]) {
		struct passwd *p = getpwnam(cfg->user);
		uid_t uid = p ? p->pw_uid : (uid_t)atoi(cfg->user);

		if (!p && !isdigit((unsigned char)cfg->user[0])) {
			km_err("-u: unknown user '%s'\n", cfg->user);
			return -1;
		}
		if (!cfg->group[0] && p && setgid(p->pw_gid)) {
			km_err("setgid: %s\n", strerror(errno));
			return -1;
		}
		if (setuid(uid)) {
			km_err("setuid %s: %s\n", cfg->user, strerror(errno));
			return -1;
		}
	}
	return 0;
}

static int km_write_pid_file(const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f) {
		km_err("pid file %s: %s\n", path, strerror(errno));
		return -1;
	}
	fprintf(f, "%d\n", (int)getpid());
	return fclose(f) ? -1 : 0;
}

static void km_raise_nofile(int conns)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	if (rl.rlim_cur < (rlim_t)conns + 256) {
		rl.rlim_cur = (rlim_t)conns + 256;
		if (rl.rlim_cur > rl.rlim_max)
			rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* Drains made before a restart stay (kmagentctl undrain lifts them). */
static void km_restore_drains(void)
{
	unsigned int id, flags;

	for (id = 1; id < KM_MAX_BACKENDS; id++) {
		flags = km_journal_drain(id);
		if (!flags)
			continue;
		km_backend_set_flags(id, KM_BE_F_NO_READS | KM_BE_F_NO_WRITES,
				     flags, "drained before the restart");
	}
}

/*
 * --state-dir: the journal of missed writes lives in a file, as the user
 * kmagentd runs as (so that its checkpoints can replace it), loaded
 * before the first probe decides anything about a backend.
 */
static void km_open_journal(const struct km_cfg *cfg)
{
	int err;

	if (!cfg->state_dir[0]) {
		km_info("journal in memory only (no --state-dir): a restart "
			"cannot know what the backends missed before it\n");
		return;
	}
	if (mkdir(cfg->state_dir, 0700) && errno != EEXIST)
		km_warn("state dir %s: %s\n", cfg->state_dir, strerror(errno));
	err = km_journal_open(cfg->state_dir);
	if (err)
		km_err("journal %s/journal: %s: kept in memory only\n",
		       cfg->state_dir, strerror(-err));
	else
		km_info("journal in %s/journal%s\n", cfg->state_dir,
			km_journal_known_past() ? ", loaded from the last run"
						: "");
	km_restore_drains();
	err = km_daemon_restore_ring();
	if (err)
		km_err("ring of the last run: %s: every configured backend is "
		       "taken as filled for its slots\n",
		       strerror(-err));
}

/* --check-config: one line on stdout when good, the errors when not. */
static int km_check_config(const struct km_cfg *cfg)
{
	unsigned int i;

	if (km_config_check(cfg, stderr))
		return KM_EXIT_CONFIG;
	printf("config ok: %u backend%s, port %d", cfg->nr_backends,
	       cfg->nr_backends == 1 ? "" : "s", cfg->port);
	for (i = 0; i < cfg->nr_ifaces; i++)
		printf("%s%s", i ? ", " : ", kernel path on ", cfg->ifaces[i]);
	printf("\n");
	return 0;
}

int main(int argc, char **argv)
{
	struct km_cfg cfg;
	sigset_t sigs;
	int sig, err, ret = 1;

	switch (km_config_parse_args(&cfg, argc, argv, stderr)) {
	case KM_CFG_HELP:
		km_config_usage(stdout);
		return 0;
	case KM_CFG_VERSION:
		printf("kmagentd %s\n", KM_VERSION);
		return 0;
	case KM_CFG_ERROR:
		fprintf(stderr, "Try 'kmagentd --help' for more.\n");
		return KM_EXIT_CONFIG;
	case KM_CFG_RUN:
		break;
	}
	if (cfg.check_only)
		return km_check_config(&cfg);
	km_log_level = KM_LOG_INFO + cfg.verbose;
	if (!cfg.foreground) {
		err = km_daemonize();
		if (err) {
			km_err("daemonize: %s\n", strerror(-err));
			return 1;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	/* every thread inherits the mask: only main's sigwait sees them */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	km_raise_nofile(cfg.max_conns);

	err = km_daemon_init(&cfg);
	if (err) {
		km_err("ring: %s\n", strerror(-err));
		goto out;
	}
	km_fence_name_from(&cfg);
	/* kernel path (kbpf), control socket and metrics plug in here */
	if (km_proxy_start())
		goto out_proxy;
	err = km_kbpf_start(&cfg); /* with -I: needs root, before dropping it */
	if (err) {
		km_err("kernel path: %s\n", strerror(-err));
		goto out_proxy;
	}
	/* control socket (in /run), resync, read-repair, metrics */
	if (km_ops_start(&cfg, argc, argv))
		goto out_proxy;
	if (km_drop_privileges(&cfg))
		goto out_proxy;
	km_open_journal(&cfg);
	km_resyncd_open();
	if (cfg.pid_file[0] && km_write_pid_file(cfg.pid_file))
		goto out_proxy;
	/*
	 * The fences first: until they are read, a backend another kmagentd
	 * knows to have missed writes (drained, cut off) looks readable.
	 * Seed 8612 of the chaos test read one 6 ms after a restart.
	 */
	km_fence_round();
	/* serve only now: a client never meets the daemon still root */
	if (km_proxy_run())
		goto out_proxy;
	if (km_health_start()) {
		km_err("health thread: %s\n", strerror(errno));
		goto out_proxy;
	}
	km_report_ready(0);
	for (;;) {
		if (sigwait(&sigs, &sig))
			continue;
		if (sig == SIGHUP) {
			km_reload_log();
			continue;
		}
		km_info("signal %d: exiting\n", sig);
		break;
	}
	ret = 0;
	km_proxy_quiesce(cfg.timeout_ms > 0 ? cfg.timeout_ms : 1000);
	km_health_stop();
out_proxy:
	km_ops_stop();
	if (ret)
		km_kbpf_abort(); /* a failed start leaves nothing attached */
	else
		km_kbpf_stop();
	km_proxy_stop();
	/*
	 * Every write is done (or failed and journaled) now: lift our fences
	 * on backends owed nothing, keep the others for the next start.
	 */
	if (ret == 0)
		km_fence_round();
	if (cfg.pid_file[0] && ret == 0)
		unlink(cfg.pid_file);
out:
	km_report_ready(ret);
	km_daemon_fini();
	return ret;
}
