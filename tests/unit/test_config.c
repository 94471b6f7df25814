// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* config: magent flags, long options, config file, error messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "config.h"

static char errbuf[4096];

/* Parse a NULL-terminated argument list; messages land in errbuf. */
static enum km_config_action parse(struct km_cfg *cfg, const char *const *args)
{
	char *argv[64];
	int argc = 0;
	FILE *err = fmemopen(errbuf, sizeof(errbuf), "w");
	enum km_config_action a;

	assert_non_null(err);
	argv[argc++] = "kmagentd";
	while (*args)
		argv[argc++] = (char *)*args++;
	argv[argc] = NULL;
	memset(errbuf, 0, sizeof(errbuf));
	a = km_config_parse_args(cfg, argc, argv, err);
	fclose(err);
	return a;
}

static char *write_file(const char *text)
{
	static char path[] = "/tmp/km_test_configXXXXXX";
	int fd;

	strcpy(path, "/tmp/km_test_configXXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (int)strlen(text));
	close(fd);
	return path;
}

static void test_magent_command_line(void **state)
{
	const char *args[] = {"-s", "198.18.0.1:11211",
			      "-b", "198.18.0.2:11212",
			      "-l", "127.0.0.1",
			      "-p", "11210",
			      "-n", "100",
			      "-i", "4",
			      "-D", "-k",
			      "-f", "/tmp/km.sock",
			      "-v", "-v",
			      "-u", "nobody",
			      "-g", "nogroup",
			      NULL};
	struct km_cfg cfg;

	(void)state;
	assert_int_equal(parse(&cfg, args), KM_CFG_RUN);
	assert_int_equal(cfg.nr_backends, 2);
	assert_string_equal(cfg.backends[0].name, "198.18.0.1:11211");
	assert_int_equal(ntohs(cfg.backends[1].addr.in.sin_port), 11212);
	assert_int_equal(cfg.backends[1].backup, 1);
	assert_int_equal(cfg.listen_addr.in.sin_addr.s_addr, htonl(0x7f000001));
	assert_int_equal(cfg.port, 11210);
	assert_int_equal(cfg.max_conns, 100);
	assert_int_equal(cfg.pool_size, 4);
	assert_true(cfg.foreground);
	assert_true(cfg.ketama);
	assert_string_equal(cfg.unix_path, "/tmp/km.sock");
	assert_int_equal(cfg.verbose, 2);
	assert_string_equal(cfg.user, "nobody");
	assert_string_equal(cfg.group, "nogroup");
}

static void test_defaults(void **state)
{
	const char *args[] = {"-s", "127.0.0.1", NULL};
	struct km_cfg cfg;

	(void)state;
	assert_int_equal(parse(&cfg, args), KM_CFG_RUN);
	assert_int_equal(cfg.port, 11211);
	assert_int_equal(ntohs(cfg.backends[0].addr.in.sin_port), 11211);
	assert_int_equal(cfg.write_policy, KM_WP_PRIMARY);
	assert_int_equal(cfg.timeout_ms, 1000);
	assert_int_equal(cfg.probe_interval_ms, 1000);
	assert_int_equal(cfg.probe_timeout_ms, 500);
	assert_int_equal(cfg.fall, 2);
	assert_int_equal(cfg.rise, 2);
	assert_int_equal(cfg.item_size_max, 1024 * 1024);
	assert_int_equal(cfg.replicas, 0);
	assert_int_equal(cfg.udp_retry_ms, 100);
	assert_int_equal(cfg.idle_timeout, 600);
	assert_int_equal(cfg.conn_buffer, 4 << 20);
	assert_int_equal(cfg.reply_memory, 256ul << 20);
	assert_string_equal(cfg.ctl_path, "/run/kmagent/kmagent.sock");
	assert_false(cfg.foreground);
	assert_int_equal(cfg.unix_mask, 0700); /* memcached's -a */
	assert_int_equal(km_cfg_udp_port(&cfg), 11211);
}

/* memcached's -U and -a, beside magent's flags */
static void test_udp_port_and_unix_mask(void **state)
{
	const char *same[] = {"-s", "127.0.0.1", "-p", "11210", NULL};
	const char *off[] = {"-s", "127.0.0.1", "-U", "0", NULL};
	const char *other[] = {"-s", "127.0.0.1", "-p", "1", "-U", "2", NULL};
	const char *mask[] = {"-s", "127.0.0.1", "-a", "0777", NULL};
	const char *mask2[] = {"-s", "127.0.0.1", "--unix-mask", "770", NULL};
	const char *badmask[] = {"-s", "127.0.0.1", "-a", "0800", NULL};
	const char *badport[] = {"-s", "127.0.0.1", "-U", "65536", NULL};
	const char *off_kernel[] = {"-s", "127.0.0.1", "-U", "0",
				    "-I", "lo",	       NULL};
	struct km_cfg cfg;

	(void)state;
	assert_int_equal(parse(&cfg, same), KM_CFG_RUN);
	assert_int_equal(km_cfg_udp_port(&cfg), 11210);
	assert_int_equal(parse(&cfg, off), KM_CFG_RUN);
	assert_int_equal(km_cfg_udp_port(&cfg), 0);
	assert_int_equal(cfg.port, 11211);
	assert_int_equal(parse(&cfg, other), KM_CFG_RUN);
	assert_int_equal(km_cfg_udp_port(&cfg), 2);
	assert_int_equal(cfg.port, 1);
	assert_int_equal(parse(&cfg, mask), KM_CFG_RUN);
	assert_int_equal(cfg.unix_mask, 0777);
	assert_int_equal(parse(&cfg, mask2), KM_CFG_RUN);
	assert_int_equal(cfg.unix_mask, 0770);
	assert_int_equal(parse(&cfg, badmask), KM_CFG_ERROR);
	assert_string_equal(errbuf, "kmagentd: -a: invalid value '0800'\n");
	assert_int_equal(parse(&cfg, badport), KM_CFG_ERROR);
	assert_string_equal(errbuf, "kmagentd: -U: invalid value '65536'\n");
	assert_int_equal(parse(&cfg, off_kernel), KM_CFG_ERROR);
	assert_string_equal(errbuf, "kmagentd: -I serves UDP: not with -U 0\n");
}

static void test_long_options(void **state)
{
	const char *args[] = {"--backend",
			      "198.18.0.1:1",
			      "--backend",
			      "198.18.0.2:2",
			      "--replicas",
			      "2",
			      "--write-policy",
			      "worst",
			      "--timeout",
			      "250",
			      "--probe-interval",
			      "300",
			      "--probe-timeout",
			      "100",
			      "--fall",
			      "3",
			      "--rise",
			      "4",
			      "--item-size-max",
			      "2m",
			      "--pid-file",
			      "/tmp/k.pid",
			      "-I",
			      "eth0",
			      "--iface",
			      "eth1",
			      "--allow",
			      "198.18.0.0/15",
			      "--ctl",
			      "/tmp/ctl.sock",
			      "--metrics",
			      "127.0.0.1:9100",
			      "--pin-root",
			      "/sys/fs/bpf/x",
			      "-t",
			      "3",
			      "--udp-retry",
			      "40",
			      NULL};
	struct km_cfg cfg;

	(void)state;
	assert_int_equal(parse(&cfg, args), KM_CFG_RUN);
	assert_int_equal(cfg.nr_backends, 2);
	assert_int_equal(cfg.replicas, 2);
	assert_int_equal(cfg.write_policy, KM_WP_WORST);
	assert_int_equal(cfg.timeout_ms, 250);
	assert_int_equal(cfg.probe_interval_ms, 300);
	assert_int_equal(cfg.probe_timeout_ms, 100);
	assert_int_equal(cfg.fall, 3);
	assert_int_equal(cfg.rise, 4);
	assert_int_equal(cfg.item_size_max, 2 * 1024 * 1024);
	assert_string_equal(cfg.pid_file, "/tmp/k.pid");
	assert_int_equal(cfg.nr_ifaces, 2);
	assert_string_equal(cfg.ifaces[1], "eth1");
	assert_int_equal(cfg.nr_allow, 1);
	assert_int_equal(cfg.allow[0].prefix, 15);
	assert_string_equal(cfg.ctl_path, "/tmp/ctl.sock");
	assert_int_equal(ntohs(cfg.metrics_addr.in.sin_port), 9100);
	assert_string_equal(cfg.pin_root, "/sys/fs/bpf/x");
	assert_int_equal(cfg.threads, 3);
	assert_int_equal(cfg.udp_retry_ms, 40);
}

struct bad_case {
	const char *args[8];
	const char *msg; /* must appear in the error output */
};

static const struct bad_case bad_cases[] = {
	{{"-s", "198.18.0.1:99999", NULL}, "-s: invalid backend address"},
	{{"-s", "198.18.0.1:x", NULL}, "invalid backend address"},
	{{"-s", "127.0.0.1:1", "-p", "0", NULL}, "-p: invalid value '0'"},
	{{"-s", "127.0.0.1:1", "-p", "http", NULL}, "-p: invalid value"},
	{{"-s", "127.0.0.1:1", "--write-policy", "all", NULL},
	 "--write-policy: invalid value 'all'"},
	{{"-s", "127.0.0.1:1", "--replicas", "8", NULL}, "--replicas"},
	{{"-s", "127.0.0.1:1", "--timeout", "-5", NULL}, "--timeout"},
	{{"-s", "127.0.0.1:1", "--udp-retry", "60001", NULL},
	 "--udp-retry: invalid value '60001'"},
	{{"-s", "127.0.0.1:1", "--udp-retry", "1s", NULL}, "--udp-retry"},
	{{"-s", "127.0.0.1:1", "-l", "nowhere", NULL}, "-l: invalid value"},
	{{"-s", "127.0.0.1:1", "--bogus", NULL}, "--bogus"},
	{{"-s", "127.0.0.1:1", "-Z", NULL}, "-Z"},
	{{"-s", "127.0.0.1:1", "-s", "127.0.0.1:1", NULL}, "duplicate backend"},
	{{"-p", "11211", NULL}, "no backend"},
	{{"-s", "127.0.0.1:1", "--item-size-max", "1x", NULL},
	 "--item-size-max"},
	{{"-s", "127.0.0.1:1", "extra", NULL}, "unexpected argument 'extra'"},
	{{"-s", "127.0.0.1:1", "--idle-timeout", "-1", NULL},
	 "--idle-timeout: invalid value '-1'"},
	{{"-s", "127.0.0.1:1", "--conn-buffer", "4k", NULL},
	 "--conn-buffer: invalid value '4k'"},
	{{"-s", "127.0.0.1:1", "--conn-buffer", "2g", NULL}, "--conn-buffer"},
	{{"-s", "127.0.0.1:1", "--reply-memory", "512k", NULL},
	 "--reply-memory: invalid value '512k'"},
	/* IPv6: each mistake named */
	{{"-s", "2001:db8::1:11211", NULL},
	 "invalid backend address '2001:db8::1:11211': an IPv6 address "
	 "takes brackets: [ADDR]:PORT"},
	{{"-s", "::1", NULL}, "an IPv6 address takes brackets"},
	{{"-s", "[::1]:99999", NULL}, "'[::1]:99999': bad port (1-65535)"},
	{{"-s", "[::1]:", NULL}, "bad port"},
	{{"-s", "[::1", NULL}, "'[::1': not HOST:PORT or [IPV6]:PORT"},
	{{"-s", "[::1]11211", NULL}, "not HOST:PORT or [IPV6]:PORT"},
	{{"-s", "[]:11211", NULL}, "not HOST:PORT"},
	{{"-s", "[198.18.0.1]:11211", NULL},
	 "not an IPv6 address between the brackets"},
	{{"-s", "[2001:db8::g]:11211", NULL},
	 "not an IPv6 address between the brackets"},
	{{"-s", "127.0.0.1:1", "-l", "::g", NULL},
	 "-l: invalid value '::g': not an IPv4 or IPv6 address"},
	{{"-s", "127.0.0.1:1", "-l", "[::1]:11211", NULL}, "-l: invalid value"},
	{{"-s", "127.0.0.1:1", "--allow", "2001:db8::/129", NULL},
	 "--allow: invalid value '2001:db8::/129': not ADDR/PREFIX"},
	{{"-s", "127.0.0.1:1", "--allow", "198.18.0.0/33", NULL},
	 "--allow: invalid value '198.18.0.0/33'"},
	{{"-s", "127.0.0.1:1", "--allow", "2001:db8::/x", NULL}, "--allow"},
	{{"-s", "127.0.0.1:1", "--metrics", "[::1]", NULL},
	 "--metrics: invalid value '[::1]': not HOST:PORT"},
	{{"-s", "127.0.0.1:1", "--metrics", "::1:9100", NULL},
	 "--metrics: invalid value '::1:9100': an IPv6 address takes brackets"},
	{{"-s", "[::1]:11211", "-s", "[::1]:11211", NULL},
	 "duplicate backend '[::1]:11211'"},
};

/* -I with IPv6 backends, alone or beside IPv4 ones; -l ::, -l ADDR6 */
static void test_kernel_ipv6(void **state)
{
	const char *v6[] = {"-s", "[2001:2::1]:11211", "-I", "lo", NULL};
	const char *only6[] = {
		"-s", "[2001:2::1]:11211", "-l", "2001:2::4", "-I", "lo", NULL};
	const char *mixed[] = {"-s", "[2001:2::1]:11211",
			       "-s", "198.18.0.2:11211",
			       "-l", "::",
			       "-I", "lo",
			       NULL};
	struct km_cfg cfg;

	(void)state;
	assert_int_equal(parse(&cfg, v6), KM_CFG_RUN);
	assert_int_equal(cfg.nr_ifaces, 1);
	assert_int_equal(parse(&cfg, mixed), KM_CFG_RUN);
	assert_int_equal(cfg.nr_backends, 2);
	assert_int_equal(parse(&cfg, only6), KM_CFG_RUN);
	assert_int_equal(cfg.listen_addr.sa.sa_family, AF_INET6);
}

/* The bounds on hostile clients: memcached's 0 = off, sizes as -I. */
static void test_client_bounds(void **state)
{
	const char *args[] = {"-s", "127.0.0.1:1",   "--idle-timeout",
			      "0",  "--conn-buffer", "16m",
			      NULL};
	const char *args2[] = {"-s",
			       "127.0.0.1:1",
			       "--conn-buffer",
			       "65536",
			       "--idle-timeout",
			       "30",
			       "--reply-memory",
			       "2g",
			       NULL};
	struct km_cfg cfg;

	(void)state;
	assert_int_equal(parse(&cfg, args), KM_CFG_RUN);
	assert_int_equal(cfg.idle_timeout, 0);
	assert_int_equal(cfg.conn_buffer, 16 << 20);
	assert_int_equal(parse(&cfg, args2), KM_CFG_RUN);
	assert_int_equal(cfg.idle_timeout, 30);
	assert_int_equal(cfg.conn_buffer, 65536);
	assert_int_equal(cfg.reply_memory, 2ul << 30);
}

static void test_bad_flags_are_named(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		struct km_cfg cfg;

		if (parse(&cfg, bad_cases[i].args) != KM_CFG_ERROR)
			fail_msg("case %zu (%s) accepted", i, bad_cases[i].msg);
		if (!strstr(errbuf, bad_cases[i].msg))
			fail_msg("case %zu: '%s' not in '%s'", i,
				 bad_cases[i].msg, errbuf);
	}
}

static void test_help(void **state)
{
	const char *args[] = {"-h", NULL};
	const char *args2[] = {"-s", "127.0.0.1:1", "--help", NULL};
	struct km_cfg cfg;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	(void)state;
	assert_int_equal(parse(&cfg, args), KM_CFG_HELP);
	assert_int_equal(parse(&cfg, args2), KM_CFG_HELP);
	km_config_usage(f);
	fclose(f);
	assert_non_null(strstr(text, "EXAMPLES"));
	assert_non_null(strstr(text, "--write-policy"));
	free(text);
}

static void test_config_file(void **state)
{
	char *path = write_file("# kmagent\n"
				"backend 198.18.0.1:11211\n"
				"  backend 198.18.0.2:11211   # second\n"
				"\n"
				"port 11300\n"
				"write-policy first\n"
				"foreground\n"
				"timeout 200\n");
	const char *args[] = {"-c", path, NULL};
	struct km_cfg cfg;

	(void)state;
	assert_int_equal(parse(&cfg, args), KM_CFG_RUN);
	assert_int_equal(cfg.nr_backends, 2);
	assert_string_equal(cfg.backends[1].name, "198.18.0.2:11211");
	assert_int_equal(cfg.port, 11300);
	assert_int_equal(cfg.write_policy, KM_WP_FIRST);
	assert_true(cfg.foreground);
	assert_int_equal(cfg.timeout_ms, 200);
	unlink(path);
}

static void test_flags_override_the_file(void **state)
{
	char *path = write_file("backend 198.18.0.1:11211\n"
				"backend 198.18.0.2:11211\n"
				"port 11300\n");
	const char *args[] = {"-p", "11400",	    "-c", path,
			      "-s", "198.18.0.9:1", NULL};
	const char *args2[] = {"-c", path, "-p", "11500", NULL};
	struct km_cfg cfg;

	(void)state;
	/* -c anywhere: the file first, then the flags */
	assert_int_equal(parse(&cfg, args), KM_CFG_RUN);
	assert_int_equal(cfg.port, 11400);
	/* a list on the command line replaces the file's */
	assert_int_equal(cfg.nr_backends, 1);
	assert_string_equal(cfg.backends[0].name, "198.18.0.9:1");
	assert_int_equal(parse(&cfg, args2), KM_CFG_RUN);
	assert_int_equal(cfg.port, 11500);
	assert_int_equal(cfg.nr_backends, 2);
	unlink(path);
}

static void test_config_errors_name_the_line(void **state)
{
	char *path = write_file("backend 198.18.0.1:11211\n"
				"# fine\n"
				"foo bar\n");
	const char *args[] = {"-c", path, NULL};
	struct km_cfg cfg;

	(void)state;
	assert_int_equal(parse(&cfg, args), KM_CFG_ERROR);
	assert_non_null(strstr(errbuf, "kmagentd: config:3: unknown "
				       "directive 'foo'"));
	unlink(path);

	path = write_file("backend 198.18.0.1:11211\nport\n");
	args[1] = path;
	assert_int_equal(parse(&cfg, args), KM_CFG_ERROR);
	assert_non_null(strstr(errbuf, "config:2: 'port' needs a value"));
	unlink(path);

	path = write_file("timeout soon\n");
	args[1] = path;
	assert_int_equal(parse(&cfg, args), KM_CFG_ERROR);
	assert_non_null(strstr(errbuf, "config:1: invalid value 'soon'"));
	unlink(path);

	args[1] = "/nonexistent/kmagent.conf";
	assert_int_equal(parse(&cfg, args), KM_CFG_ERROR);
	assert_non_null(strstr(errbuf, "cannot open"));
}

static const char *addr_str(const union km_addr *a)
{
	static char buf[KM_ADDR_STRLEN];

	return km_addr_str(a, buf, sizeof(buf));
}

/* -l and -s as operators write them, IPv4 and IPv6 */
static void test_ipv6_addresses(void **state)
{
	const char *args[] = {"-l", "::",
			      "-s", "[::1]:11211",
			      "-s", "[2001:db8::1]:11212",
			      "-s", "198.18.0.1:11211",
			      "-s", "[2001:db8::2]",
			      "-s", "localhost:11213",
			      NULL};
	const char *v6only[] = {"-l", "::1", "-s", "127.0.0.1:1", NULL};
	const char *brackets[] = {"-l", "[2001:2::1]", "-s", "127.0.0.1:1",
				  NULL};
	const char *v4[] = {"-l", "198.18.0.1", "-s", "127.0.0.1:1", NULL};
	struct km_cfg cfg;

	(void)state;
	assert_int_equal(parse(&cfg, args), KM_CFG_RUN);
	assert_int_equal(cfg.listen_addr.sa.sa_family, AF_INET6);
	assert_true(km_addr_is_any(&cfg.listen_addr));
	assert_int_equal(cfg.nr_backends, 5);
	assert_string_equal(cfg.backends[0].name, "[::1]:11211");
	assert_int_equal(cfg.backends[0].addr.sa.sa_family, AF_INET6);
	assert_int_equal(km_addr_len(&cfg.backends[0].addr),
			 sizeof(struct sockaddr_in6));
	assert_string_equal(addr_str(&cfg.backends[0].addr), "[::1]:11211");
	assert_string_equal(addr_str(&cfg.backends[1].addr),
			    "[2001:db8::1]:11212");
	assert_int_equal(cfg.backends[2].addr.sa.sa_family, AF_INET);
	assert_int_equal(km_addr_len(&cfg.backends[2].addr),
			 sizeof(struct sockaddr_in));
	assert_string_equal(addr_str(&cfg.backends[2].addr),
			    "198.18.0.1:11211");
	/* no port: memcached's, as for IPv4 */
	assert_string_equal(addr_str(&cfg.backends[3].addr),
			    "[2001:db8::2]:11211");
	/* a name resolves to its IPv4 address first, as before IPv6 */
	assert_string_equal(addr_str(&cfg.backends[4].addr), "127.0.0.1:11213");

	assert_int_equal(parse(&cfg, v6only), KM_CFG_RUN);
	assert_int_equal(cfg.listen_addr.sa.sa_family, AF_INET6);
	assert_false(km_addr_is_any(&cfg.listen_addr));
	assert_true(IN6_IS_ADDR_LOOPBACK(&cfg.listen_addr.in6.sin6_addr));
	assert_int_equal(parse(&cfg, brackets), KM_CFG_RUN);
	assert_string_equal(addr_str(&cfg.listen_addr), "[2001:2::1]:0");
	assert_int_equal(parse(&cfg, v4), KM_CFG_RUN);
	assert_int_equal(cfg.listen_addr.sa.sa_family, AF_INET);
	assert_string_equal(addr_str(&cfg.listen_addr), "198.18.0.1:0");
	/* the default stays IPv4's 0.0.0.0, as magent's */
	km_config_defaults(&cfg);
	assert_int_equal(cfg.listen_addr.sa.sa_family, AF_INET);
	assert_true(km_addr_is_any(&cfg.listen_addr));
}

static void peer4(struct sockaddr_storage *ss, const char *ip)
{
	struct sockaddr_in *in = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	in->sin_family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, ip, &in->sin_addr), 1);
}

static void peer6(struct sockaddr_storage *ss, const char *ip)
{
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	in6->sin6_family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1);
}

static int allowed(const struct km_cfg *cfg, const struct sockaddr_storage *p)
{
	return km_allow_match(cfg->allow, cfg->nr_allow,
			      (const struct sockaddr *)p);
}

/* --allow: IPv6 networks; an IPv4 client of -l :: meets the IPv4 ones */
static void test_allow_ipv6(void **state)
{
	const char *args[] = {"-s",	 "127.0.0.1:1",
			      "--allow", "2001:db8::/32",
			      "--allow", "::1",
			      "--allow", "198.18.0.0/15",
			      "--allow", "::ffff:10.0.0.0/104",
			      NULL};
	struct sockaddr_storage p;
	struct km_cfg cfg;

	(void)state;
	assert_int_equal(parse(&cfg, args), KM_CFG_RUN);
	assert_int_equal(cfg.nr_allow, 4);
	assert_int_equal(cfg.allow[0].family, AF_INET6);
	assert_int_equal(cfg.allow[0].prefix, 32);
	assert_int_equal(cfg.allow[1].prefix, 128);
	/* a mapped network is kept as the IPv4 one */
	assert_int_equal(cfg.allow[3].family, AF_INET);
	assert_int_equal(cfg.allow[3].prefix, 8);
	assert_int_equal(cfg.allow[3].addr.s_addr, htonl(0x0a000000));

	peer6(&p, "2001:db8:ffff::7");
	assert_true(allowed(&cfg, &p));
	peer6(&p, "2001:db9::7");
	assert_false(allowed(&cfg, &p));
	peer6(&p, "::1");
	assert_true(allowed(&cfg, &p));
	peer6(&p, "::2");
	assert_false(allowed(&cfg, &p));
	peer4(&p, "198.19.1.2");
	assert_true(allowed(&cfg, &p));
	peer4(&p, "198.20.1.2");
	assert_false(allowed(&cfg, &p));
	peer4(&p, "10.1.2.3");
	assert_true(allowed(&cfg, &p));
	/* IPv4 clients of a dual-stack socket */
	peer6(&p, "::ffff:198.18.0.9");
	assert_true(allowed(&cfg, &p));
	peer6(&p, "::ffff:10.9.9.9");
	assert_true(allowed(&cfg, &p));
	peer6(&p, "::ffff:192.0.2.1");
	assert_false(allowed(&cfg, &p));
}

/* The same forms in the config file (and so in kmagentctl reload). */
static void test_config_file_ipv6(void **state)
{
	char *path = write_file("listen ::\n"
				"backend [2001:2::1]:11211\n"
				"backend [2001:2::2]:11211 # two\n"
				"backend 198.18.0.1:11211\n"
				"allow 2001:2::/48\n"
				"metrics [::1]:9100\n");
	const char *args[] = {"-c", path, NULL};
	struct km_cfg cfg;

	(void)state;
	assert_int_equal(parse(&cfg, args), KM_CFG_RUN);
	assert_int_equal(cfg.listen_addr.sa.sa_family, AF_INET6);
	assert_int_equal(cfg.nr_backends, 3);
	assert_string_equal(cfg.backends[1].name, "[2001:2::2]:11211");
	assert_string_equal(addr_str(&cfg.backends[1].addr),
			    "[2001:2::2]:11211");
	assert_int_equal(cfg.allow[0].prefix, 48);
	assert_string_equal(addr_str(&cfg.metrics_addr), "[::1]:9100");
	unlink(path);

	path = write_file("backend [2001:2::1]:11211\n"
			  "backend 2001:2::2:11211\n");
	args[1] = path;
	assert_int_equal(parse(&cfg, args), KM_CFG_ERROR);
	assert_non_null(strstr(errbuf, "config:2: invalid backend address "
				       "'2001:2::2:11211': an IPv6 address "
				       "takes brackets"));
	unlink(path);
}

static void test_version_and_check_config(void **state)
{
	const char *version[] = {"--version", NULL};
	const char *check[] = {
		"--check-config", "-s", "127.0.0.1:11211", "-I", "lo", NULL};
	const char *bad[] = {"-s", "127.0.0.1:11211", "-I", "nosuchif0",
			     "-u", "nosuchuser-km",   NULL};
	struct km_cfg cfg;
	FILE *err;
	char *path;

	(void)state;
	assert_int_equal(parse(&cfg, version), KM_CFG_VERSION);
	assert_int_equal(parse(&cfg, check), KM_CFG_RUN);
	assert_true(cfg.check_only);
	err = fmemopen(errbuf, sizeof(errbuf), "w");
	assert_non_null(err);
	assert_int_equal(km_config_check(&cfg, err), 0);
	fclose(err);

	assert_int_equal(parse(&cfg, bad), KM_CFG_RUN);
	assert_false(cfg.check_only);
	memset(errbuf, 0, sizeof(errbuf));
	err = fmemopen(errbuf, sizeof(errbuf), "w");
	assert_non_null(err);
	assert_int_equal(km_config_check(&cfg, err), -1);
	fclose(err);
	assert_string_equal(errbuf,
			    "kmagentd: iface nosuchif0: no such interface\n"
			    "kmagentd: user: unknown user 'nosuchuser-km'\n");

	/* the mode is a command line flag, not a directive */
	path = write_file("backend 127.0.0.1:11211\ncheck-config\n");
	{
		const char *args[] = {"-c", path, NULL};

		assert_int_equal(parse(&cfg, args), KM_CFG_ERROR);
		assert_string_equal(errbuf,
				    "kmagentd: config:2: unknown directive "
				    "'check-config'\n");
	}
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_magent_command_line),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_udp_port_and_unix_mask),
		cmocka_unit_test(test_long_options),
		cmocka_unit_test(test_client_bounds),
		cmocka_unit_test(test_kernel_ipv6),
		cmocka_unit_test(test_bad_flags_are_named),
		cmocka_unit_test(test_help),
		cmocka_unit_test(test_config_file),
		cmocka_unit_test(test_flags_override_the_file),
		cmocka_unit_test(test_config_errors_name_the_line),
		cmocka_unit_test(test_version_and_check_config),
		cmocka_unit_test(test_ipv6_addresses),
		cmocka_unit_test(test_allow_ipv6),
		cmocka_unit_test(test_config_file_ipv6),
	};

	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
