/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Taking the kernel path down with plain libbpf calls on what is pinned
 * and attached: no skeleton, so kmagentctl detach carries no BPF object.
 * Our programs are known by name, our tc filters by handle and priority.
 */
#ifndef KM_DETACH_H
#define KM_DETACH_H

#define KM_TC_HANDLE 0x4b4d /* "KM" */
#define KM_TC_PRIO   0x4b4d
/* the IPv6 filters, run after the IPv4 ones (kmagent.bpf.c) */
#define KM_TC_HANDLE6 0x4b4e
#define KM_TC_PRIO6   0x4b4e

/*
 * Detach from ifnames (NULL-terminated, may be NULL) and remove every pin
 * under pin_root (NULL = KM_PIN_ROOT), the root included.  Works without
 * an open handle: a crashed daemon's leftovers are removed the same way.
 */
int km_bpf_detach_all(const char *pin_root, const char *const *ifnames);

/* What km_bpf_detach_netns removed. */
struct km_bpf_detached {
	int xdp;	       /* XDP programs */
	int tc;		       /* tc filters */
	int pins;	       /* files under the pin root */
	const char *bad_iface; /* -ENODEV: this name is no interface */
};

/*
 * kmagentctl detach: km_bpf_detach_all, and our programs on every
 * interface of the network namespace, pinned or not (tc filters outlive
 * their pins).  Every ifname must exist (-ENODEV, out->bad_iface).
 */
int km_bpf_detach_netns(const char *pin_root, const char *const *ifnames,
			struct km_bpf_detached *out);

/* Our tc filters on ifindex (ingress, egress) removed: how many. */
int km_detach_tc(int ifindex);
/*
 * Remove every pin under root (detaching pinned XDP links, counted in out
 * when not NULL), then root itself: 0 or -errno.
 */
int km_unpin_all(const char *root, struct km_bpf_detached *out);

#endif /* KM_DETACH_H */
