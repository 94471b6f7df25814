// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Command line and config file.  Both feed one table of options, so a
 * config file directive is spelled like the long option (`backend
 * 198.18.0.1:11211`).  Flags override the file; a list given on the
 * command line (backends, interfaces, allowed networks) replaces the
 * file's list.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <limits.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <net/if.h>

#include "config.h"
#include "journal.h"
#include "retry.h"

enum km_opt_id {
	O_BACKEND = 's',
	O_BACKUP = 'b',
	O_LISTEN = 'l',
	O_PORT = 'p',
	O_MAXCONN = 'n',
	O_POOL = 'i',
	O_USER = 'u',
	O_GROUP = 'g',
	O_FOREGROUND = 'D',
	O_KETAMA = 'k',
	O_UNIX = 'f',
	O_VERBOSE = 'v',
	O_HELP = 'h',
	O_CONFIG = 'c',
	O_THREADS = 't',
	O_IFACE = 'I',
	O_VERSION = 'V',
	O_UDPPORT = 'U',
	O_UNIXMASK = 'a',
	O_REPLICAS = 256,
	O_WPOLICY,
	O_TIMEOUT,
	O_PINTERVAL,
	O_PTIMEOUT,
	O_FALL,
	O_RISE,
	O_ITEMMAX,
	O_PIDFILE,
	O_PINROOT,
	O_ALLOW,
	O_CTL,
	O_METRICS,
	O_REPAIRRATE,
	O_JOURNALMAX,
	O_NAME,
	O_CHECK,
	O_UDPRETRY,
	O_UDPRETRYMODE,
	O_STATEDIR,
	O_BYPASSHOLD,
	O_UDPRATIO,
	O_UDPREPLYMAX,
	O_IDLETIMEOUT,
	O_CONNBUFFER,
	O_REPLYMEM,
};

static const struct option km_long_opts[] = {
	{"backend", required_argument, NULL, O_BACKEND},
	{"backup", required_argument, NULL, O_BACKUP},
	{"listen", required_argument, NULL, O_LISTEN},
	{"port", required_argument, NULL, O_PORT},
	{"max-conns", required_argument, NULL, O_MAXCONN},
	{"pool-size", required_argument, NULL, O_POOL},
	{"user", required_argument, NULL, O_USER},
	{"group", required_argument, NULL, O_GROUP},
	{"foreground", no_argument, NULL, O_FOREGROUND},
	{"ketama", no_argument, NULL, O_KETAMA},
	{"unix-socket", required_argument, NULL, O_UNIX},
	{"unix-mask", required_argument, NULL, O_UNIXMASK},
	{"udp-port", required_argument, NULL, O_UDPPORT},
	{"verbose", no_argument, NULL, O_VERBOSE},
	{"help", no_argument, NULL, O_HELP},
	{"config", required_argument, NULL, O_CONFIG},
	{"threads", required_argument, NULL, O_THREADS},
	{"iface", required_argument, NULL, O_IFACE},
	{"replicas", required_argument, NULL, O_REPLICAS},
	{"write-policy", required_argument, NULL, O_WPOLICY},
	{"timeout", required_argument, NULL, O_TIMEOUT},
	{"probe-interval", required_argument, NULL, O_PINTERVAL},
	{"probe-timeout", required_argument, NULL, O_PTIMEOUT},
	{"fall", required_argument, NULL, O_FALL},
	{"rise", required_argument, NULL, O_RISE},
	{"item-size-max", required_argument, NULL, O_ITEMMAX},
	{"pid-file", required_argument, NULL, O_PIDFILE},
	{"pin-root", required_argument, NULL, O_PINROOT},
	{"allow", required_argument, NULL, O_ALLOW},
	{"ctl", required_argument, NULL, O_CTL},
	{"metrics", required_argument, NULL, O_METRICS},
	{"repair-rate", required_argument, NULL, O_REPAIRRATE},
	{"journal-max", required_argument, NULL, O_JOURNALMAX},
	{"name", required_argument, NULL, O_NAME},
	{"version", no_argument, NULL, O_VERSION},
	{"check-config", no_argument, NULL, O_CHECK},
	{"udp-retry", required_argument, NULL, O_UDPRETRY},
	{"udp-retry-mode", required_argument, NULL, O_UDPRETRYMODE},
	{"bypass-hold", required_argument, NULL, O_BYPASSHOLD},
	{"state-dir", required_argument, NULL, O_STATEDIR},
	{"udp-reply-ratio", required_argument, NULL, O_UDPRATIO},
	{"udp-reply-max", required_argument, NULL, O_UDPREPLYMAX},
	{"idle-timeout", required_argument, NULL, O_IDLETIMEOUT},
	{"conn-buffer", required_argument, NULL, O_CONNBUFFER},
	{"reply-memory", required_argument, NULL, O_REPLYMEM},
	{NULL, 0, NULL, 0},
};

static const char km_short_opts[] = "s:b:l:p:n:i:u:g:Dkf:vhc:t:I:VU:a:";

void km_config_defaults(struct km_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->port = KM_DEFAULT_PORT;
	cfg->listen_addr.in.sin_family = AF_INET; /* 0.0.0.0, as magent */
	cfg->udp_port = -1;
	cfg->unix_mask = KM_UNIX_MASK;
	cfg->max_conns = 4096;
	cfg->pool_size = 1;
	cfg->write_policy = KM_WP_PRIMARY;
	cfg->timeout_ms = 1000;
	cfg->repair_rate = 1000;
	cfg->journal_max = KM_JOURNAL_MAX;
	cfg->udp_retry_ms = KM_UDP_RETRY_DEFAULT_MS;
	cfg->bypass_hold_ms = 30000;
	cfg->udp_reply_max = KM_UDP_REPLY_AUTO;
	cfg->idle_timeout = KM_IDLE_TIMEOUT;
	cfg->conn_buffer = KM_CONN_BUFFER;
	cfg->reply_memory = KM_REPLY_MEMORY;
	cfg->probe_interval_ms = 1000;
	cfg->probe_timeout_ms = 500;
	cfg->fall = 2;
	cfg->rise = 2;
	cfg->item_size_max = KM_ITEM_SIZE_MAX;
	snprintf(cfg->ctl_path, sizeof(cfg->ctl_path), "%s", KM_DEFAULT_CTL);
	snprintf(cfg->pin_root, sizeof(cfg->pin_root), "%s", KM_PIN_ROOT);
}

const char *km_write_policy_name(enum km_write_policy p)
{
	switch (p) {
	case KM_WP_PRIMARY:
		return "primary";
	case KM_WP_FIRST:
		return "first";
	case KM_WP_WORST:
		return "worst";
	}
	return "?";
}

int km_addr_is_any(const union km_addr *a)
{
	if (a->sa.sa_family == AF_INET6)
		return IN6_IS_ADDR_UNSPECIFIED(&a->in6.sin6_addr);
	return a->in.sin_addr.s_addr == htonl(INADDR_ANY);
}

const char *km_addr_str(const union km_addr *a, char *buf, size_t size)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int v6 = a->sa.sa_family == AF_INET6;

	inet_ntop(a->sa.sa_family,
		  v6 ? (const void *)&a->in6.sin6_addr
		     : (const void *)&a->in.sin_addr,
		  host, sizeof(host));
	snprintf(buf, size, v6 ? "[%s]:%u" : "%s:%u", host,
		 ntohs(v6 ? a->in6.sin6_port : a->in.sin_port));
	return buf;
}

const char *km_hostport_error(int err)
{
	switch (err) {
	case -EDESTADDRREQ:
		return "an IPv6 address takes brackets: [ADDR]:PORT";
	case -ERANGE:
		return "bad port (1-65535)";
	case -ENOENT:
		return "unknown host";
	case -EAFNOSUPPORT:
		return "not an IPv6 address between the brackets";
	case -ENAMETOOLONG:
		return "host name too long";
	}
	return "not HOST:PORT or [IPV6]:PORT";
}

/* A numeric IPv6 address, with a %zone if any, into out (port kept). */
static int km_parse_in6(const char *host, union km_addr *out)
{
	struct addrinfo hints = {.ai_family = AF_INET6,
				 .ai_flags = AI_NUMERICHOST},
			*res;
	in_port_t port = out->in6.sin6_port;

	if (getaddrinfo(host, NULL, &hints, &res))
		return -EAFNOSUPPORT;
	memcpy(&out->in6, res->ai_addr, sizeof(out->in6));
	out->in6.sin6_port = port;
	freeaddrinfo(res);
	return 0;
}

/* A name: its first IPv4 address (as before IPv6), else its first IPv6. */
static int km_resolve(const char *host, union km_addr *out)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM},
			*res, *r, *pick = NULL;
	in_port_t port = out->in.sin_port;

	if (getaddrinfo(host, NULL, &hints, &res))
		return -ENOENT;
	for (r = res; r; r = r->ai_next) {
		if (r->ai_family == AF_INET) {
			pick = r;
			break;
		}
		if (r->ai_family == AF_INET6 && !pick)
			pick = r;
	}
	if (pick)
		memcpy(out, pick->ai_addr, pick->ai_addrlen);
	freeaddrinfo(res);
	if (!pick)
		return -ENOENT;
	/* sin_port and sin6_port lie at the same offset */
	out->in.sin_port = port;
	return 0;
}

/* "[v6]..." or "host...": the host into host[], the rest after it. */
static int km_split_host(const char *s, char *host, size_t size,
			 const char **rest, int *bracketed)
{
	const char *colon = strrchr(s, ':'), *close;
	size_t hlen;

	*bracketed = s[0] == '[';
	if (*bracketed) {
		close = strchr(s, ']');
		if (!close)
			return -EINVAL;
		s++;
		hlen = close - s;
		*rest = close + 1;
	} else {
		if (colon && strchr(s, ':') != colon)
			return -EDESTADDRREQ; /* two colons: a bare IPv6 */
		hlen = colon ? (size_t)(colon - s) : strlen(s);
		*rest = s + hlen;
	}
	if (hlen == 0)
		return -EINVAL;
	if (hlen >= size)
		return -ENAMETOOLONG;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	return 0;
}

int km_parse_hostport(const char *s, int default_port, union km_addr *out)
{
	char host[KM_NAME_MAX];
	const char *rest;
	long port = default_port;
	int bracketed, err;
	char *end;

	err = km_split_host(s, host, sizeof(host), &rest, &bracketed);
	if (err)
		return err;
	if (*rest == ':') {
		errno = 0;
		port = strtol(rest + 1, &end, 10);
		if (errno || *end || end == rest + 1 || port < 1 ||
		    port > 65535)
			return -ERANGE;
	} else if (*rest || !default_port) {
		return -EINVAL;
	}
	memset(out, 0, sizeof(*out));
	if (bracketed) {
		out->in6.sin6_family = AF_INET6;
		out->in6.sin6_port = htons(port);
		return km_parse_in6(host, out);
	}
	out->in.sin_family = AF_INET;
	out->in.sin_port = htons(port);
	if (inet_pton(AF_INET, host, &out->in.sin_addr) == 1)
		return 0;
	return km_resolve(host, out);
}

int km_parse_listen(const char *s, union km_addr *out)
{
	char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 1];
	size_t n = strlen(s);

	memset(out, 0, sizeof(*out));
	out->in.sin_family = AF_INET;
	if (inet_pton(AF_INET, s, &out->in.sin_addr) == 1)
		return 0;
	/* "::1" as memcached's -l takes it, or "[::1]" */
	if (s[0] == '[' && n > 2 && s[n - 1] == ']')
		s++, n -= 2;
	if (n >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, n);
	host[n] = '\0';
	out->in6.sin6_family = AF_INET6;
	return km_parse_in6(host, out) ? -EINVAL : 0;
}

static int km_parse_int(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/* bytes, or with a k/m/g suffix as memcached's -I takes it, up to max */
static int km_parse_size(const char *s, unsigned long max, unsigned long *out)
{
	unsigned long v, mul = 1;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -1;
	if (*end == 'k' || *end == 'K')
		mul = 1024, end++;
	else if (*end == 'm' || *end == 'M')
		mul = 1024 * 1024, end++;
	else if (*end == 'g' || *end == 'G')
		mul = 1024 * 1024 * 1024, end++;
	if (*end || v == 0 || v > max / mul)
		return -1;
	*out = v * mul;
	return 0;
}

/*
 * An IPv4-mapped IPv6 network (::ffff:10.0.0.0/104) is kept as the IPv4
 * one: a dual-stack socket reports IPv4 clients in that form, and they
 * are checked against the IPv4 networks.
 */
int km_parse_cidr(const char *s, struct km_cfg_allow *a)
{
	char buf[INET6_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	long prefix;

	memset(a, 0, sizeof(*a));
	if (n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (inet_pton(AF_INET, buf, &a->addr) == 1)
		a->family = AF_INET;
	else if (inet_pton(AF_INET6, buf, &a->addr6) == 1)
		a->family = AF_INET6;
	else
		return -1;
	prefix = a->family == AF_INET ? 32 : 128;
	if (slash && km_parse_int(slash + 1, 0, prefix, &prefix))
		return -1;
	a->prefix = prefix;
	if (a->family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&a->addr6) &&
	    prefix >= 96) {
		memcpy(&a->addr, &a->addr6.s6_addr[12], sizeof(a->addr));
		memset(&a->addr6, 0, sizeof(a->addr6));
		a->family = AF_INET;
		a->prefix = prefix - 96;
	}
	return 0;
}

static int km_in_net4(struct in_addr addr, const struct km_cfg_allow *a)
{
	__be32 mask = a->prefix ? htonl(~0u << (32 - a->prefix)) : 0;

	return (addr.s_addr & mask) == (a->addr.s_addr & mask);
}

static int km_in_net6(const struct in6_addr *addr, const struct km_cfg_allow *a)
{
	unsigned int i, bits = a->prefix;
	unsigned char mask;

	for (i = 0; i < 16 && bits; i++) {
		mask = bits >= 8 ? 0xff : (unsigned char)(0xff << (8 - bits));
		if ((addr->s6_addr[i] ^ a->addr6.s6_addr[i]) & mask)
			return 0;
		bits -= bits >= 8 ? 8 : bits;
	}
	return 1;
}

int km_allow_match(const struct km_cfg_allow *list, unsigned int n,
		   const struct sockaddr *peer)
{
	const struct sockaddr_in6 *in6 = (const void *)peer;
	sa_family_t family = peer->sa_family;
	struct in_addr v4;
	unsigned int i;

	if (family == AF_INET) {
		v4 = ((const struct sockaddr_in *)(const void *)peer)->sin_addr;
	} else if (family == AF_INET6 &&
		   IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
		/* an IPv4 client of a dual-stack socket */
		memcpy(&v4, &in6->sin6_addr.s6_addr[12], sizeof(v4));
		family = AF_INET;
	} else if (family != AF_INET6) {
		return 0;
	}
	for (i = 0; i < n; i++) {
		if (list[i].family != family)
			continue;
		if (family == AF_INET ? km_in_net4(v4, &list[i])
				      : km_in_net6(&in6->sin6_addr, &list[i]))
			return 1;
	}
	return 0;
}

static int km_copy(char *dst, size_t size, const char *src)
{
	if (strlen(src) >= size)
		return -1;
	memcpy(dst, src, strlen(src) + 1);
	return 0;
}

int km_config_add_backend(struct km_cfg *cfg, const char *hostport, int backup,
			  FILE *err, const char *where)
{
	struct km_cfg_backend *b;
	unsigned int i;
	int e;

	if (cfg->nr_backends >= KM_MAX_BACKENDS - 1) {
		fprintf(err, "kmagentd: %s: too many backends (max %d)\n",
			where, KM_MAX_BACKENDS - 1);
		return -1;
	}
	b = &cfg->backends[cfg->nr_backends];
	if (km_copy(b->name, sizeof(b->name), hostport))
		e = -ENAMETOOLONG;
	else
		e = km_parse_hostport(hostport, KM_DEFAULT_PORT, &b->addr);
	if (e) {
		fprintf(err, "kmagentd: %s: invalid backend address '%s': %s\n",
			where, hostport, km_hostport_error(e));
		return -1;
	}
	for (i = 0; i < cfg->nr_backends; i++) {
		if (!strcmp(cfg->backends[i].name, hostport)) {
			fprintf(err, "kmagentd: %s: duplicate backend '%s'\n",
				where, hostport);
			return -1;
		}
	}
	b->backup = backup;
	cfg->nr_backends++;
	return 0;
}

/* Lists already replaced by the command line (flags override the file). */
struct km_list_reset {
	int backends, ifaces, allow;
};

/*
 * Apply one option (from argv or a config line).  where names it in
 * messages: "-p", "--timeout" or "config:12".
 */
static int km_config_apply(struct km_cfg *cfg, int id, const char *arg,
			   FILE *err, const char *where,
			   struct km_list_reset *reset)
{
	const char *why = NULL;
	unsigned long size;
	char *end;
	long v;
	int e;

	switch (id) {
	case O_BACKEND:
	case O_BACKUP:
		if (reset && !reset->backends) {
			cfg->nr_backends = 0;
			reset->backends = 1;
		}
		return km_config_add_backend(cfg, arg, id == O_BACKUP, err,
					     where);
	case O_LISTEN:
		why = "not an IPv4 or IPv6 address (0.0.0.0, ::, ::1)";
		if (km_copy(cfg->listen, sizeof(cfg->listen), arg) ||
		    km_parse_listen(arg, &cfg->listen_addr))
			goto bad;
		return 0;
	case O_PORT:
		if (km_parse_int(arg, 1, 65535, &v))
			goto bad;
		cfg->port = v;
		return 0;
	case O_UDPPORT:
		if (km_parse_int(arg, 0, 65535, &v))
			goto bad;
		cfg->udp_port = v;
		return 0;
	case O_MAXCONN:
		if (km_parse_int(arg, 1, 1 << 24, &v))
			goto bad;
		cfg->max_conns = v;
		return 0;
	case O_POOL:
		if (km_parse_int(arg, 1, 64, &v))
			goto bad;
		cfg->pool_size = v;
		return 0;
	case O_USER:
		if (km_copy(cfg->user, sizeof(cfg->user), arg))
			goto bad;
		return 0;
	case O_GROUP:
		if (km_copy(cfg->group, sizeof(cfg->group), arg))
			goto bad;
		return 0;
	case O_FOREGROUND:
		cfg->foreground = 1;
		return 0;
	case O_KETAMA:
		cfg->ketama = 1;
		return 0;
	case O_UNIX:
		if (km_copy(cfg->unix_path, 108, arg))
			goto bad;
		return 0;
	case O_UNIXMASK:
		/* octal, as memcached's -a */
		errno = 0;
		v = strtol(arg, &end, 8);
		if (errno || end == arg || *end || v < 0 || v > 0777)
			goto bad;
		cfg->unix_mask = v;
		return 0;
	case O_VERBOSE:
		cfg->verbose++;
		return 0;
	case O_CONFIG:
		if (km_copy(cfg->config_file, sizeof(cfg->config_file), arg))
			goto bad;
		return 0;
	case O_THREADS:
		if (km_parse_int(arg, 1, 256, &v))
			goto bad;
		cfg->threads = v;
		return 0;
	case O_IFACE:
		if (reset && !reset->ifaces) {
			cfg->nr_ifaces = 0;
			reset->ifaces = 1;
		}
		if (cfg->nr_ifaces >= KM_MAX_IFACES ||
		    km_copy(cfg->ifaces[cfg->nr_ifaces], IF_NAMESIZE, arg))
			goto bad;
		cfg->nr_ifaces++;
		return 0;
	case O_REPLICAS:
		if (km_parse_int(arg, 1, KM_MAX_REPLICAS, &v))
			goto bad;
		cfg->replicas = v;
		return 0;
	case O_WPOLICY:
		if (!strcmp(arg, "primary"))
			cfg->write_policy = KM_WP_PRIMARY;
		else if (!strcmp(arg, "first"))
			cfg->write_policy = KM_WP_FIRST;
		else if (!strcmp(arg, "worst"))
			cfg->write_policy = KM_WP_WORST;
		else
			goto bad;
		return 0;
	case O_TIMEOUT:
		if (km_parse_int(arg, 1, 3600000, &v))
			goto bad;
		cfg->timeout_ms = v;
		return 0;
	case O_PINTERVAL:
		if (km_parse_int(arg, 10, 3600000, &v))
			goto bad;
		cfg->probe_interval_ms = v;
		return 0;
	case O_PTIMEOUT:
		if (km_parse_int(arg, 1, 3600000, &v))
			goto bad;
		cfg->probe_timeout_ms = v;
		return 0;
	case O_FALL:
		if (km_parse_int(arg, 1, 1000, &v))
			goto bad;
		cfg->fall = v;
		return 0;
	case O_RISE:
		if (km_parse_int(arg, 1, 1000, &v))
			goto bad;
		cfg->rise = v;
		return 0;
	case O_ITEMMAX:
		if (km_parse_size(arg, 1ul << 30, &size) || size < 1024)
			goto bad;
		cfg->item_size_max = size;
		return 0;
	case O_PIDFILE:
		if (km_copy(cfg->pid_file, sizeof(cfg->pid_file), arg))
			goto bad;
		return 0;
	case O_PINROOT:
		if (km_copy(cfg->pin_root, sizeof(cfg->pin_root), arg))
			goto bad;
		return 0;
	case O_ALLOW:
		if (reset && !reset->allow) {
			cfg->nr_allow = 0;
			reset->allow = 1;
		}
		if (cfg->nr_allow >= KM_MAX_ALLOW)
			goto bad;
		why = "not ADDR/PREFIX (10.0.0.0/8, 2001:db8::/32)";
		if (km_parse_cidr(arg, &cfg->allow[cfg->nr_allow]))
			goto bad;
		cfg->nr_allow++;
		return 0;
	case O_CTL:
		if (km_copy(cfg->ctl_path, 108, arg))
			goto bad;
		return 0;
	case O_METRICS:
		e = km_copy(cfg->metrics, sizeof(cfg->metrics), arg)
			    ? -ENAMETOOLONG
			    : km_parse_hostport(arg, 0, &cfg->metrics_addr);
		if (e) {
			why = km_hostport_error(e);
			goto bad;
		}
		return 0;
	case O_REPAIRRATE:
		if (km_parse_int(arg, 0, 10000000, &v))
			goto bad;
		cfg->repair_rate = v;
		return 0;
	case O_JOURNALMAX:
		if (km_parse_int(arg, 1, 100000000, &v))
			goto bad;
		cfg->journal_max = v;
		return 0;
	case O_NAME:
		/* a word of the fences' space-separated lists */
		if (!*arg || strpbrk(arg, " \t\r\n") ||
		    km_copy(cfg->name, sizeof(cfg->name), arg))
			goto bad;
		return 0;
	case O_CHECK:
		cfg->check_only = 1;
		return 0;
	case O_UDPRETRY:
		if (km_parse_int(arg, 0, 60000, &v))
			goto bad;
		cfg->udp_retry_ms = v;
		return 0;
	case O_UDPRETRYMODE:
		if (!strcmp(arg, "auto"))
			cfg->udp_retry_mode = KM_RETRY_AUTO;
		else if (!strcmp(arg, "live"))
			cfg->udp_retry_mode = KM_RETRY_LIVE;
		else if (!strcmp(arg, "copy"))
			cfg->udp_retry_mode = KM_RETRY_COPY;
		else
			goto bad;
		return 0;
	case O_STATEDIR:
		if (!arg[0] || strlen(arg) >= sizeof(cfg->state_dir))
			goto bad;
		snprintf(cfg->state_dir, sizeof(cfg->state_dir), "%s", arg);
		return 0;
	case O_BYPASSHOLD:
		if (km_parse_int(arg, 1, 86400, &v))
			goto bad;
		cfg->bypass_hold_ms = v * 1000;
		return 0;
	case O_UDPRATIO:
		/* an older config's: bytes times the request refused 2-datagram
		 * values; only its "no bound" still has a meaning */
		if (km_parse_int(arg, 0, 1000000, &v))
			goto bad;
		fprintf(err,
			"kmagentd: %s: replaced by --udp-reply-max "
			"(datagrams per reply object)%s\n",
			where, v ? ": ignored" : ": 0 means --udp-reply-max 0");
		if (!v)
			cfg->udp_reply_max = 0;
		return 0;
	case O_UDPREPLYMAX:
		if (km_parse_int(arg, 0, 65535, &v))
			goto bad;
		cfg->udp_reply_max = v;
		return 0;
	case O_IDLETIMEOUT:
		if (km_parse_int(arg, 0, 31536000, &v))
			goto bad;
		cfg->idle_timeout = v;
		return 0;
	case O_CONNBUFFER:
		/* below one 64k read's replies, a client could stall itself */
		if (km_parse_size(arg, 1ul << 30, &size) || size < 65536)
			goto bad;
		cfg->conn_buffer = size;
		return 0;
	case O_REPLYMEM:
		if (km_parse_size(arg, 1ul << 40, &size) || size < (1ul << 20))
			goto bad;
		cfg->reply_memory = size;
		return 0;
	}
	fprintf(err, "kmagentd: %s: unknown option\n", where);
	return -1;
bad:
	fprintf(err, "kmagentd: %s: invalid value '%s'%s%s\n", where, arg,
		why ? ": " : "", why ? why : "");
	return -1;
}

static const struct option *km_opt_by_name(const char *name)
{
	const struct option *o;

	for (o = km_long_opts; o->name; o++)
		if (!strcmp(o->name, name))
			return o;
	return NULL;
}

static char *km_trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

int km_config_load_file(struct km_cfg *cfg, const char *path, FILE *err)
{
	char line[1024], where[32];
	const struct option *o;
	unsigned int lineno = 0;
	int ret = 0;
	FILE *f;

	f = fopen(path, "r");
	if (!f) {
		fprintf(err, "kmagentd: config: cannot open '%s': %s\n", path,
			strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		char *s, *name, *arg, *hash;

		lineno++;
		snprintf(where, sizeof(where), "config:%u", lineno);
		hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		s = km_trim(line);
		if (!*s)
			continue;
		name = s;
		while (*s && !isspace((unsigned char)*s))
			s++;
		if (*s)
			*s++ = '\0';
		arg = km_trim(s);
		o = km_opt_by_name(name);
		if (!o || o->val == O_CONFIG || o->val == O_HELP ||
		    o->val == O_VERSION || o->val == O_CHECK) {
			fprintf(err, "kmagentd: %s: unknown directive '%s'\n",
				where, name);
			ret = -1;
			break;
		}
		if (o->has_arg == no_argument) {
			/* "foreground" or "foreground yes" */
			if (*arg && strcmp(arg, "yes") && strcmp(arg, "1")) {
				if (strcmp(arg, "no") && strcmp(arg, "0")) {
					fprintf(err,
						"kmagentd: %s: invalid value "
						"'%s'\n",
						where, arg);
					ret = -1;
					break;
				}
				continue;
			}
		} else if (!*arg) {
			fprintf(err, "kmagentd: %s: '%s' needs a value\n",
				where, name);
			ret = -1;
			break;
		}
		if (km_config_apply(cfg, o->val, arg, err, where, NULL)) {
			ret = -1;
			break;
		}
	}
	fclose(f);
	return ret;
}

static void km_opt_where(int id, char *buf, size_t size)
{
	const struct option *o;

	if (id < 256) {
		snprintf(buf, size, "-%c", id);
		return;
	}
	for (o = km_long_opts; o->name; o++) {
		if (o->val == id) {
			snprintf(buf, size, "--%s", o->name);
			return;
		}
	}
	snprintf(buf, size, "option");
}

enum km_config_action km_config_parse_args(struct km_cfg *cfg, int argc,
					   char **argv, FILE *err)
{
	struct km_list_reset reset = {0};
	char where[32];
	int c;

	km_config_defaults(cfg);
	/* pass 1: the config file, so that flags can override it */
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, km_short_opts, km_long_opts,
				NULL)) != -1) {
		if (c == O_HELP)
			return KM_CFG_HELP;
		if (c == O_VERSION)
			return KM_CFG_VERSION;
		if (c == O_CONFIG) {
			if (km_config_apply(cfg, c, optarg, err, "-c", NULL) ||
			    km_config_load_file(cfg, optarg, err))
				return KM_CFG_ERROR;
		}
	}
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, km_short_opts, km_long_opts,
				NULL)) != -1) {
		if (c == '?' || c == ':') {
			if (optopt && optopt < 256)
				fprintf(err,
					"kmagentd: -%c: unknown option or "
					"missing value\n",
					optopt);
			else
				fprintf(err,
					"kmagentd: %s: unknown option or "
					"missing value\n",
					argv[optind - 1]);
			return KM_CFG_ERROR;
		}
		if (c == O_CONFIG)
			continue;
		km_opt_where(c, where, sizeof(where));
		if (km_config_apply(cfg, c, optarg, err, where, &reset))
			return KM_CFG_ERROR;
	}
	if (optind < argc) {
		fprintf(err, "kmagentd: unexpected argument '%s'\n",
			argv[optind]);
		return KM_CFG_ERROR;
	}
	if (cfg->nr_backends == 0) {
		fprintf(err, "kmagentd: no backend given (-s host:port)\n");
		return KM_CFG_ERROR;
	}
	if (cfg->nr_ifaces && !km_cfg_udp_port(cfg)) {
		fprintf(err, "kmagentd: -I serves UDP: not with -U 0\n");
		return KM_CFG_ERROR;
	}
	return KM_CFG_RUN;
}

/*
 * A VALUE line (key of 250 bytes, flags, length, cas) and END around an
 * item of item_size_max, in memcached's datagrams (1400 bytes, 8 of
 * header): a get of any storable item is never refused.
 */
unsigned int km_udp_reply_max(unsigned int udp_reply_max,
			      unsigned int item_size_max)
{
	const unsigned long chunk = 1400 - 8, framing = 512;

	if (udp_reply_max != KM_UDP_REPLY_AUTO)
		return udp_reply_max;
	return (item_size_max + framing + chunk - 1) / chunk;
}

unsigned int km_cfg_udp_reply_max(const struct km_cfg *cfg)
{
	return km_udp_reply_max(cfg->udp_reply_max, cfg->item_size_max);
}

int km_config_check(const struct km_cfg *cfg, FILE *err)
{
	unsigned int i;
	int ret = 0;

	for (i = 0; i < cfg->nr_ifaces; i++) {
		if (!if_nametoindex(cfg->ifaces[i])) {
			fprintf(err, "kmagentd: iface %s: no such interface\n",
				cfg->ifaces[i]);
			ret = -1;
		}
	}
	/* as km_drop_privileges resolves them: a name, else a number */
	if (cfg->user[0] && !getpwnam(cfg->user) &&
	    !isdigit((unsigned char)cfg->user[0])) {
		fprintf(err, "kmagentd: user: unknown user '%s'\n", cfg->user);
		ret = -1;
	}
	if (cfg->group[0] && !getgrnam(cfg->group) &&
	    !isdigit((unsigned char)cfg->group[0])) {
		fprintf(err, "kmagentd: group: unknown group '%s'\n",
			cfg->group);
		ret = -1;
	}
	return ret;
}

int km_cfg_owner(const struct km_cfg *cfg, uid_t *uid, gid_t *gid)
{
	struct passwd *p = NULL;
	struct group *g;

	*uid = (uid_t)-1;
	*gid = (gid_t)-1;
	if (cfg->user[0]) {
		p = getpwnam(cfg->user);
		if (!p && !isdigit((unsigned char)cfg->user[0]))
			return -ENOENT;
		*uid = p ? p->pw_uid : (uid_t)atoi(cfg->user);
		if (p)
			*gid = p->pw_gid;
	}
	if (cfg->group[0]) {
		g = getgrnam(cfg->group);
		if (!g && !isdigit((unsigned char)cfg->group[0]))
			return -ENOENT;
		*gid = g ? g->gr_gid : (gid_t)atoi(cfg->group);
	}
	return 0;
}

void km_config_usage(FILE *out)
{
	fputs("Usage: kmagentd [options] -s HOST:PORT [-s HOST:PORT ...]\n"
	      "A replicating memcached proxy (magent compatible).\n"
	      "\n"
	      "magent options:\n"
	      "  -s, --backend HOST:PORT   a memcached backend (repeatable;\n"
	      "                            IPv6: [2001:db8::1]:11211)\n"
	      "  -b, --backup HOST:PORT    magent's backup: another replica\n"
	      "  -l, --listen ADDR         listen address (default all IPv4;\n"
	      "                            :: all IPv6 and IPv4, ::1 IPv6 "
	      "only)\n"
	      "  -p, --port PORT           TCP and UDP port (default 11211)\n"
	      "  -n, --max-conns N         max client connections (4096)\n"
	      "  -i, --pool-size N         connections per backend per thread "
	      "(1)\n"
	      "  -u, --user USER           run as USER\n"
	      "  -g, --group GROUP         run as GROUP\n"
	      "  -D, --foreground          do not go to the background\n"
	      "  -k, --ketama              accepted: the ring is always "
	      "consistent\n"
	      "  -f, --unix-socket PATH    also listen on a unix socket\n"
	      "  -v, --verbose             more logging (repeat for more)\n"
	      "  -h, --help                this help\n"
	      "  -V, --version             print the version\n"
	      "\n"
	      "kmagent options:\n"
	      "  -c, --config FILE         config file: 'name value' lines, "
	      "names\n"
	      "                            as the long options; flags override "
	      "it\n"
	      "  -t, --threads N           worker threads (default: online "
	      "CPUs)\n"
	      "  -a, --unix-mask MODE      -f's mode, octal, as memcached -a "
	      "(0700)\n"
	      "  -U, --udp-port PORT       UDP port, as memcached -U (default "
	      "-p's;\n"
	      "                            0: no UDP)\n"
	      "      --replicas R          replicas of each key (default all, "
	      "max 7)\n"
	      "      --write-policy P      primary (default) | first | worst\n"
	      "      --timeout MS          backend request timeout (1000)\n"
	      "      --probe-interval MS   health probe interval (1000)\n"
	      "      --probe-timeout MS    health probe timeout (500)\n"
	      "      --fall N              failures before down (2)\n"
	      "      --rise N              successes before up (2)\n"
	      "      --item-size-max SIZE  largest value, as memcached -I "
	      "(1m)\n"
	      "      --pid-file FILE       write the daemon's pid there\n"
	      "  -I, --iface IFACE         attach the kernel path "
	      "(repeatable)\n"
	      "      --pin-root DIR        BPF pin root (/sys/fs/bpf/kmagent)\n"
	      "      --allow CIDR          UDP clients allowed, IPv4 or IPv6\n"
	      "                            (repeatable;\n"
	      "                            default: the subnets served, lo)\n"
	      "      --udp-reply-max N     UDP reply objects of more "
	      "datagrams\n"
	      "                            are dropped (default: one item of\n"
	      "                            --item-size-max; 0: any)\n"
	      "      --idle-timeout SECS   close a TCP client silent this "
	      "long\n"
	      "                            (600; 0: never)\n"
	      "      --conn-buffer SIZE    replies held for one client before "
	      "its\n"
	      "                            requests wait (4m)\n"
	      "      --reply-memory SIZE   replies held for all clients "
	      "together\n"
	      "                            before theirs wait (256m)\n"
	      "      --ctl PATH            control socket\n"
	      "                            (/run/kmagent/kmagent.sock)\n"
	      "      --metrics ADDR:PORT   Prometheus metrics listener\n"
	      "      --repair-rate N       read-repairs a second (1000)\n"
	      "      --journal-max N       missed writes remembered per "
	      "backend (1000000)\n"
	      "      --name NAME           this kmagentd in fences shared with "
	      "others\n"
	      "                            (default: LISTEN-ADDR:PORT or "
	      "HOSTNAME:PORT)\n"
	      "      --check-config        check the options and config file "
	      "(backends\n"
	      "                            resolved, interfaces and user "
	      "exist), print\n"
	      "                            'config ok' or the error, exit 0 / "
	      "2; starts\n"
	      "                            nothing\n"
	      "      --udp-retry MS        kernel path: a UDP request whose "
	      "backend\n"
	      "                            is silent this long goes to the "
	      "next\n"
	      "                            replica (100, 0 = never)\n"
	      "      --udp-retry-mode M    how the retry is sent: auto (live\n"
	      "                            frames where the host allows, else\n"
	      "                            copy), live, copy (kmagentd sends)\n"
	      "      --state-dir DIR       keep the missed-write journal in\n"
	      "                            DIR/journal: a restart replays it\n"
	      "                            (default: memory only)\n"
	      "      --bypass-hold S       kernel path: a bypass (replies "
	      "lost)\n"
	      "                            lasts S seconds, then is judged\n"
	      "                            again (30)\n"
	      "\n"
	      "Write policy: every write goes to every live replica; the "
	      "client\n"
	      "gets one reply.  primary waits for all and answers the first\n"
	      "replica's (the one later reads go to); first answers the first\n"
	      "reply to arrive; worst waits for all and answers an error if "
	      "any.\n"
	      "\n"
	      "EXAMPLES:\n"
	      "  kmagentd -s 10.0.0.1:11211 -s 10.0.0.2:11211 -p 11210\n"
	      "      magent's command line: replicate to both, listen on "
	      "11210\n"
	      "  kmagentd -D -c /etc/kmagent.conf -v\n"
	      "      in the foreground, backends from the config file\n"
	      "  kmagentd --check-config -c /etc/kmagent.conf\n"
	      "      check a changed file before a reload\n"
	      "  kmagentd -s a:11211 -s b:11211 -s c:11211 --replicas 2 -I "
	      "eth0\n"
	      "      two replicas of each key, kernel fast path on eth0\n",
	      out);
}
