// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* veth checks at start: see netdev.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/ethtool.h>
#include <linux/if_link.h>
#include <linux/net_namespace.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sockios.h>
#include <bpf/libbpf.h>

#include "log.h"
#include "netdev.h"
#include "pinned.h"

#define KM_NETNS_DIR "/run/netns"

void km_veth_peer_fix(const struct km_veth_peer *p, char *buf, size_t len)
{
	int gro = p->needs_napi && !p->xdp && p->gro != 1;
	int tx = p->tx_csum != 0;

	buf[0] = '\0';
	if (!gro && !tx)
		return;
	snprintf(buf, len, "%s%s%sethtool -K %s%s%s",
		 p->netns[0] && !p->same_netns ? "ip netns exec " : "",
		 p->same_netns ? "" : p->netns,
		 p->netns[0] && !p->same_netns ? " " : "",
		 p->name[0] ? p->name : "PEER", gro ? " gro on" : "",
		 tx ? " tx off" : "");
}

/* ---- ethtool ioctls ----------------------------------------------------- */

static int km_ethtool(int sock, const char *ifname, void *data)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	ifr.ifr_data = data;
	return ioctl(sock, SIOCETHTOOL, &ifr) ? -errno : 0;
}

/* A legacy on/off feature (ETHTOOL_GGRO, ETHTOOL_GTXCSUM): 1, 0 or -1. */
static int km_eth_get(int sock, const char *ifname, __u32 cmd)
{
	struct ethtool_value v = {.cmd = cmd};

	return km_ethtool(sock, ifname, &v) ? -1 : !!v.data;
}

static int km_eth_set(int sock, const char *ifname, __u32 cmd, __u32 on)
{
	struct ethtool_value v = {.cmd = cmd, .data = on};

	return km_ethtool(sock, ifname, &v);
}

static int km_is_veth(int sock, const char *ifname)
{
	struct ethtool_drvinfo di = {.cmd = ETHTOOL_GDRVINFO};

	return !km_ethtool(sock, ifname, &di) && !strcmp(di.driver, "veth");
}

/* ---- rtnetlink ---------------------------------------------------------- */

struct km_nlreq {
	struct nlmsghdr nh;
	union {
		struct ifinfomsg ifi;
		struct rtgenmsg gen;
	};
	char attrs[64];
};

static void km_nl_put(struct km_nlreq *r, unsigned short type, const void *v,
		      size_t n)
{
	struct rtattr *a = (void *)((char *)r + NLMSG_ALIGN(r->nh.nlmsg_len));

	a->rta_type = type;
	a->rta_len = RTA_LENGTH(n);
	memcpy(RTA_DATA(a), v, n);
	r->nh.nlmsg_len = NLMSG_ALIGN(r->nh.nlmsg_len) + RTA_ALIGN(a->rta_len);
}

/* One request, its one reply into buf: the reply's length or -errno. */
static int km_nl_call(struct km_nlreq *r, char *buf, size_t len)
{
	struct nlmsghdr *nh = (void *)buf;
	int fd, n, err = 0;

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return -errno;
	r->nh.nlmsg_flags = NLM_F_REQUEST;
	r->nh.nlmsg_seq = 1;
	if (send(fd, r, r->nh.nlmsg_len, 0) < 0)
		err = -errno;
	n = err ? -1 : recv(fd, buf, len, 0);
	if (!err && n < 0)
		err = -errno;
	close(fd);
	if (err)
		return err;
	if (n < (int)sizeof(*nh) || !NLMSG_OK(nh, (unsigned int)n))
		return -EIO;
	if (nh->nlmsg_type == NLMSG_ERROR) {
		struct nlmsgerr *e = NLMSG_DATA(nh);

		return e->error ? e->error : -EIO;
	}
	return n;
}

struct km_link {
	char name[IF_NAMESIZE];
	int link; /* IFLA_LINK: a veth's peer ifindex, 0 none */
	int nsid; /* IFLA_LINK_NETNSID: the peer's namespace, -1 ours */
	int xdp;  /* an XDP program attached */
};

/* The link ifindex, in namespace nsid (-1: ours). */
static int km_getlink(int ifindex, int nsid, struct km_link *out)
{
	struct km_nlreq r = {.nh = {.nlmsg_len = NLMSG_LENGTH(sizeof(r.ifi)),
				    .nlmsg_type = RTM_GETLINK}};
	char buf[16384];
	struct ifinfomsg *ifi;
	struct rtattr *a, *x;
	int n, len, xl;

	r.ifi.ifi_family = AF_UNSPEC;
	r.ifi.ifi_index = ifindex;
	if (nsid >= 0)
		km_nl_put(&r, IFLA_TARGET_NETNSID, &nsid, sizeof(nsid));
	n = km_nl_call(&r, buf, sizeof(buf));
	if (n < 0)
		return n;
	memset(out, 0, sizeof(*out));
	out->nsid = -1;
	ifi = NLMSG_DATA((struct nlmsghdr *)buf);
	len = IFLA_PAYLOAD((struct nlmsghdr *)buf);
	for (a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		if (a->rta_type == IFLA_IFNAME)
			snprintf(out->name, sizeof(out->name), "%s",
				 (char *)RTA_DATA(a));
		else if (a->rta_type == IFLA_LINK)
			out->link = *(int *)RTA_DATA(a);
		else if (a->rta_type == IFLA_LINK_NETNSID)
			out->nsid = *(int *)RTA_DATA(a);
		else if (a->rta_type == IFLA_XDP) {
			xl = RTA_PAYLOAD(a);
			for (x = RTA_DATA(a); RTA_OK(x, xl);
			     x = RTA_NEXT(x, xl))
				if (x->rta_type == IFLA_XDP_ATTACHED)
					out->xdp = *(__u8 *)RTA_DATA(x) !=
						   XDP_ATTACHED_NONE;
		}
	}
	return 0;
}

/* The id our namespace gives the namespace of file fd, or -errno. */
static int km_nsid_of(int fd)
{
	struct km_nlreq r = {.nh = {.nlmsg_len = NLMSG_LENGTH(sizeof(r.gen)),
				    .nlmsg_type = RTM_GETNSID}};
	char buf[1024];
	struct rtattr *a;
	int n, len;

	r.gen.rtgen_family = AF_UNSPEC;
	km_nl_put(&r, NETNSA_FD, &fd, sizeof(fd));
	n = km_nl_call(&r, buf, sizeof(buf));
	if (n < 0)
		return n;
	len = NLMSG_PAYLOAD((struct nlmsghdr *)buf, sizeof(struct rtgenmsg));
	a = (void *)((char *)NLMSG_DATA((struct nlmsghdr *)buf) +
		     NLMSG_ALIGN(sizeof(struct rtgenmsg)));
	for (; RTA_OK(a, len); a = RTA_NEXT(a, len))
		if (a->rta_type == NETNSA_NSID)
			return *(int *)RTA_DATA(a);
	return -ENOENT;
}

/* The /run/netns name of namespace nsid, and an fd of it (or -1). */
static int km_netns_name(int nsid, char *name, size_t len)
{
	struct dirent *de;
	char path[512];
	DIR *d;
	int fd;

	d = opendir(KM_NETNS_DIR);
	if (!d)
		return -1;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", KM_NETNS_DIR, de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (km_nsid_of(fd) == nsid) {
			snprintf(name, len, "%s", de->d_name);
			closedir(d);
			return fd;
		}
		close(fd);
	}
	closedir(d);
	return -1;
}

/* ---- the peer's settings, in its namespace ------------------------------ */

struct km_peer_read {
	int nsfd;
	struct km_veth_peer *p;
};

/*
 * A thread of its own enters the peer's namespace (setns changes only the
 * calling thread's, and this one ends there): needs CAP_SYS_ADMIN, which
 * the packaged unit does not give, so the settings stay unknown (-1).
 */
static void *km_peer_read_fn(void *arg)
{
	struct km_peer_read *r = arg;
	int sock;

	if (setns(r->nsfd, CLONE_NEWNET))
		return NULL;
	sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0)
		return NULL;
	r->p->gro = km_eth_get(sock, r->p->name, ETHTOOL_GGRO);
	r->p->tx_csum = km_eth_get(sock, r->p->name, ETHTOOL_GTXCSUM);
	close(sock);
	return NULL;
}

static void km_peer_read(int nsfd, struct km_veth_peer *p)
{
	struct km_peer_read r = {.nsfd = nsfd, .p = p};
	pthread_t t;

	if (!pthread_create(&t, NULL, km_peer_read_fn, &r))
		pthread_join(t, NULL);
}

/* ---- the check ---------------------------------------------------------- */

/* A peer in our namespace is ours too: set it (GRO for NAPI, tx off). */
static void km_fix_local_peer(int sock, const char *ifname,
			      struct km_veth_peer *p)
{
	if (p->needs_napi && !p->xdp && p->gro == 0 &&
	    !km_eth_set(sock, p->name, ETHTOOL_SGRO, 1)) {
		km_info("%s: veth peer %s: GRO turned on (NAPI: frames our "
			"XDP sends it are received, not dropped)\n",
			ifname, p->name);
		p->gro = 1;
	}
	if (p->tx_csum == 1 && !km_eth_set(sock, p->name, ETHTOOL_STXCSUM, 0)) {
		km_info("%s: veth peer %s: transmit checksum offload turned "
			"off (its frames reach our XDP with full checksums)\n",
			ifname, p->name);
		p->tx_csum = 0;
	}
}

static void km_check_peer(int sock, const char *ifname, int native)
{
	struct km_veth_peer p = {
		.gro = -1, .tx_csum = -1, .needs_napi = native};
	struct km_link me, peer;
	char fix[512];
	int nsfd = -1;

	if (km_getlink((int)if_nametoindex(ifname), -1, &me) || !me.link) {
		km_warn("%s: veth without a visible peer: check that it has "
			"GRO on and tx checksum offload off\n",
			ifname);
		return;
	}
	p.same_netns = me.nsid < 0;
	if (!km_getlink(me.link, me.nsid, &peer)) {
		snprintf(p.name, sizeof(p.name), "%s", peer.name);
		p.xdp = peer.xdp;
	}
	if (p.same_netns) {
		p.gro = km_eth_get(sock, p.name, ETHTOOL_GGRO);
		p.tx_csum = km_eth_get(sock, p.name, ETHTOOL_GTXCSUM);
		km_fix_local_peer(sock, ifname, &p);
	} else {
		nsfd = km_netns_name(me.nsid, p.netns, sizeof(p.netns));
		if (nsfd >= 0 && p.name[0])
			km_peer_read(nsfd, &p);
		if (nsfd >= 0)
			close(nsfd);
	}
	km_veth_peer_fix(&p, fix, sizeof(fix));
	if (!fix[0])
		return;
	km_warn("%s: veth peer %s%s%s%s: %s%s%s; run: %s%s%s\n", ifname,
		p.name[0] ? p.name : "(unnamed)",
		p.same_netns ? "" : " in namespace ",
		p.same_netns ? ""
			     : (p.netns[0] ? p.netns : "(not in /run/netns)"),
		p.gro < 0 || p.tx_csum < 0 ? " (settings unreadable here)" : "",
		native && !p.xdp && p.gro != 1
			? "without GRO or XDP it drops what our XDP sends it"
			: "",
		native && !p.xdp && p.gro != 1 && p.tx_csum != 0 ? "; " : "",
		p.tx_csum != 0 ? "with tx checksum offload its frames reach "
				 "our XDP with partial checksums"
			       : "",
		fix,
		p.same_netns || p.netns[0] ? "" : " in the peer's namespace",
		p.gro < 0 || p.tx_csum < 0 ? " (unless already done)" : "");
}

void km_netdev_check(const char *ifname)
{
	int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int native =
		!strcmp(km_xdp_mode((int)if_nametoindex(ifname)), "native");

	if (sock < 0)
		return;
	if (!km_is_veth(sock, ifname))
		goto out;
	/* our frames to the peer's side: full checksums, as on a wire */
	if (km_eth_get(sock, ifname, ETHTOOL_GTXCSUM) == 1) {
		if (km_eth_set(sock, ifname, ETHTOOL_STXCSUM, 0))
			km_warn("%s: veth: cannot turn transmit checksum "
				"offload off (%s): run ethtool -K %s tx off\n",
				ifname, strerror(errno), ifname);
		else
			km_info("%s: veth: transmit checksum offload turned "
				"off (ethtool -K %s tx off)\n",
				ifname, ifname);
	}
	km_check_peer(sock, ifname, native);
out:
	close(sock);
}
