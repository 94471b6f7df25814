/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * kmagentd's configuration: command line (magent 0.6 flags plus long
 * options) and config file.  Root-free and socket-free so that it can be
 * unit-tested; a reload builds a fresh struct km_cfg and swaps it in.
 */
#ifndef KM_CONFIG_H
#define KM_CONFIG_H

#include <limits.h>
#include <stdio.h>
#include <sys/types.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <net/if.h>
#include "kmagent.h"

#define KM_VERSION	  "0.1.0" /* kmagentd, kmagentctl, debian/changelog */
#define KM_NAME_MAX	  64	  /* "host:port" of a backend */
#define KM_MAX_IFACES	  16
#define KM_MAX_ALLOW	  64
#define KM_PATH_MAX	  256
#define KM_DEFAULT_PORT	  11211
#define KM_DEFAULT_CTL	  "/run/kmagent/kmagent.sock"
#define KM_ITEM_SIZE_MAX  (1024 * 1024)
#define KM_UDP_REPLY_AUTO UINT_MAX  /* --udp-reply-max: from item_size_max */
#define KM_IDLE_TIMEOUT	  600	    /* --idle-timeout, seconds */
#define KM_CONN_BUFFER	  (4 << 20) /* --conn-buffer, bytes */
#define KM_REPLY_MEMORY	  (256ul << 20) /* --reply-memory, bytes */
#define KM_UNIX_MASK	  0700		/* -a: memcached's default */

/* An IPv4 or IPv6 address and port; sa.sa_family says which. */
union km_addr {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
};

/* The length bind/connect take for a. */
static inline socklen_t km_addr_len(const union km_addr *a)
{
	return a->sa.sa_family == AF_INET6 ? sizeof(a->in6) : sizeof(a->in);
}

/* The wildcard address (0.0.0.0 or ::)? */
int km_addr_is_any(const union km_addr *a);
/* "198.18.0.1:11211" or "[2001:2::1]:11211", as operators write them */
const char *km_addr_str(const union km_addr *a, char *buf, size_t size);
#define KM_ADDR_STRLEN (INET6_ADDRSTRLEN + 8)

struct km_cfg_backend {
	char name[KM_NAME_MAX]; /* as given: "host:port", "[v6]:port" */
	union km_addr addr;
	int backup; /* given with -b (a replica like the others) */
};

/* An --allow network; an IPv4-mapped IPv6 one is kept as IPv4. */
struct km_cfg_allow {
	sa_family_t family; /* AF_INET or AF_INET6 */
	unsigned int prefix;
	struct in_addr addr;   /* AF_INET */
	struct in6_addr addr6; /* AF_INET6 */
};

struct km_cfg {
	struct km_cfg_backend backends[KM_MAX_BACKENDS - 1];
	unsigned int nr_backends;

	char listen[KM_NAME_MAX];    /* -l, "" = INADDR_ANY */
	union km_addr listen_addr;   /* port 0; "::" is dual-stack */
	int port;		     /* -p, TCP and UDP */
	char unix_path[KM_PATH_MAX]; /* -f */
	unsigned int unix_mask;	     /* -a: its mode */
	int udp_port;		     /* -U: -1 = -p's, 0 = no UDP */
	int max_conns;		     /* -n */
	int pool_size;	       /* -i: connections per backend per worker */
	char user[64];	       /* -u */
	char group[64];	       /* -g */
	int foreground;	       /* -D */
	int ketama;	       /* -k, accepted, always consistent */
	int verbose;	       /* -v, repeatable */
	int threads;	       /* -t, 0 = online CPUs */
	unsigned int replicas; /* --replicas, 0 = all */
	enum km_write_policy write_policy;
	int timeout_ms;
	int probe_interval_ms;
	int probe_timeout_ms;
	int fall;
	int rise;
	unsigned int item_size_max;
	char pid_file[KM_PATH_MAX];
	char config_file[KM_PATH_MAX]; /* -c */
	int check_only; /* --check-config: check, touch nothing */

	/* for the kernel path (H2) and ops (H5): stored, used by them */
	char ifaces[KM_MAX_IFACES][IF_NAMESIZE];
	unsigned int nr_ifaces;
	char pin_root[KM_PATH_MAX];
	struct km_cfg_allow allow[KM_MAX_ALLOW];
	unsigned int nr_allow;
	char ctl_path[KM_PATH_MAX];
	char metrics[KM_NAME_MAX]; /* "addr:port", "" = off */
	union km_addr metrics_addr;
	unsigned int repair_rate;    /* read-repairs a second (ops) */
	unsigned int udp_retry_ms;   /* kernel path: retry after, 0 = never */
	unsigned int udp_retry_mode; /* enum km_retry_mode */
	unsigned int bypass_hold_ms; /* kernel path: a bypass lasts this */
	unsigned int journal_max;    /* missed-write keys per backend */
	char state_dir[KM_PATH_MAX]; /* --state-dir: the journal's file */
	char name[KM_NAME_MAX];	     /* --name: ours in fences (fence.h) */
	/*
	 * A UDP reply object (one key's VALUE, or one command's answer) of
	 * more datagrams than this is dropped (reflection attacks); 0 = any,
	 * KM_UDP_REPLY_AUTO = what one item of item_size_max needs.
	 */
	unsigned int udp_reply_max;
	/* a TCP client silent this long (no byte in or out) is closed */
	unsigned int idle_timeout; /* seconds, 0 = never */
	/* a client's replies held (unsent or in assembly): not read above */
	size_t conn_buffer;
	size_t reply_memory; /* ... and all clients' together */
};

/* The datagrams bound in force: --udp-reply-max, or its default. */
unsigned int km_cfg_udp_reply_max(const struct km_cfg *cfg);
/* The same from the two settings it depends on (item_size_max reloads) */
unsigned int km_udp_reply_max(unsigned int udp_reply_max,
			      unsigned int item_size_max);

/*
 * How kmagentd sends what the kernel path's retry program makes of an
 * overdue request (user/loader/kbpf_retry.c).
 */
enum km_retry_mode {
	KM_RETRY_AUTO = 0, /* live frames where the host allows, else copy */
	KM_RETRY_LIVE = 1, /* BPF_PROG_RUN with live frames only */
	KM_RETRY_COPY = 2, /* BPF_PROG_RUN, then kmagentd sends the frame */
};

/* What km_config_parse_args asks the caller to do. */
enum km_config_action {
	KM_CFG_RUN = 0,
	KM_CFG_HELP = 1,
	KM_CFG_ERROR = 2, /* message printed; exit status 2 */
	KM_CFG_VERSION = 3,
};

/* Exit status of a configuration error (systemd: RestartPreventExitStatus) */
#define KM_EXIT_CONFIG 2

void km_config_defaults(struct km_cfg *cfg);
/* argv as main() gets it; messages go to err. */
enum km_config_action km_config_parse_args(struct km_cfg *cfg, int argc,
					   char **argv, FILE *err);
/* One config file into cfg; 0 or -1 with a "config:LINE:" message. */
int km_config_load_file(struct km_cfg *cfg, const char *path, FILE *err);
/*
 * "host:port" (host a name or dotted quad) or "[IPv6]:port" to an address;
 * the port may be left out when default_port is not 0.  A name resolves
 * to its IPv4 address if it has one (as before IPv6), else its IPv6 one.
 * 0 or a negative errno that km_hostport_error explains.
 */
int km_parse_hostport(const char *s, int default_port, union km_addr *out);
const char *km_hostport_error(int err);
/* An -l address: "198.18.0.1", "::", "::1" or "[::1]"; 0 or -EINVAL. */
int km_parse_listen(const char *s, union km_addr *out);
/* A --allow network: "10.0.0.0/8", "2001:db8::/32"; 0 or -1. */
int km_parse_cidr(const char *s, struct km_cfg_allow *a);
/*
 * Is peer (sockaddr_in or sockaddr_in6) in one of the n networks?  An
 * IPv4-mapped IPv6 peer (an IPv4 client of `-l ::`) is checked against
 * the IPv4 ones.
 */
int km_allow_match(const struct km_cfg_allow *list, unsigned int n,
		   const struct sockaddr *peer);
int km_config_add_backend(struct km_cfg *cfg, const char *hostport, int backup,
			  FILE *err, const char *where);
const char *km_write_policy_name(enum km_write_policy p);
/*
 * --check-config: what parsing cannot see but the start needs (interfaces,
 * user, group), without binding, attaching or writing anything.  0, or -1
 * with messages on err.
 */
int km_config_check(const struct km_cfg *cfg, FILE *err);
void km_config_usage(FILE *out);
/* -u and -g as ids ((uid_t)-1 and (gid_t)-1 when not given), -ENOENT. */
int km_cfg_owner(const struct km_cfg *cfg, uid_t *uid, gid_t *gid);

/* The UDP port served (slow path and kernel path); 0: none. */
static inline int km_cfg_udp_port(const struct km_cfg *cfg)
{
	return cfg->udp_port < 0 ? cfg->port : cfg->udp_port;
}

#endif /* KM_CONFIG_H */
