/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What the kernel path needs of a veth that it cannot see from XDP: a
 * frame sent by XDP_TX or XDP_REDIRECT into a veth is received by its
 * peer only when the peer has NAPI (an XDP program, or GRO on), else it
 * is dropped; and a frame the peer sends with transmit checksum offload
 * on reaches our XDP with a partial checksum, which the NAT rewrite then
 * gets wrong.  kmagentd changes what is its own (its end; a peer in its
 * own network namespace) and says exactly what to run for a peer
 * elsewhere.
 */
#ifndef KM_NETDEV_H
#define KM_NETDEV_H

#include <stddef.h>
#include <net/if.h>

/* A veth's peer, as far as kmagentd could see it. */
struct km_veth_peer {
	char name[IF_NAMESIZE]; /* "" unknown */
	char netns[256];	/* its namespace in /run/netns, "" unknown */
	int same_netns;		/* in kmagentd's own namespace */
	int xdp;		/* an XDP program attached: NAPI */
	int gro, tx_csum;	/* 1 on, 0 off, -1 unknown */
	int needs_napi;		/* our end runs native XDP */
};

/*
 * The command that fixes the peer ("" when nothing needs fixing), for the
 * operator to run where the peer lives: "ip netns exec NS ethtool -K PEER
 * gro on tx off".  Unknown settings are named too (they may be wrong).
 */
void km_veth_peer_fix(const struct km_veth_peer *p, char *buf, size_t len);

/*
 * At start, for each -I interface: nothing unless it is a veth; else turn
 * its transmit checksum offload off, fix a peer in our namespace, and
 * warn with km_veth_peer_fix's command for one elsewhere.  The peer's
 * NAPI matters when our XDP runs in native mode (generic XDP_TX goes
 * through the peer's usual receive path).
 */
void km_netdev_check(const char *ifname);

#endif /* KM_NETDEV_H */
