// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Detaching and unpinning the kernel path (detach.h), from kbpf.c. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/if_link.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "kmagent.h"
#include "detach.h"
#include "log.h"

/* Is program id one of ours (by name)?  The program may be gone. */
static int km_prog_is(__u32 id, const char *name)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);
	int fd, ret = 0;

	fd = bpf_prog_get_fd_by_id(id);
	if (fd < 0)
		return 0;
	if (!bpf_obj_get_info_by_fd(fd, &info, &len))
		ret = !strncmp(info.name, name, sizeof(info.name));
	close(fd);
	return ret;
}

/* Our filter (handle, priority, program name) on one tc hook: 1 removed. */
static int km_detach_tc_one(int ifindex, enum bpf_tc_attach_point ap,
			    const char *prog, __u32 handle)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = ap);
	LIBBPF_OPTS(bpf_tc_opts, to, .handle = handle, .priority = handle);
	int err;

	/* no clsact (-EINVAL) or no such filter (-ENOENT): nothing to do */
	if (bpf_tc_query(&hook, &to) || !km_prog_is(to.prog_id, prog))
		return 0;
	to.prog_id = 0;
	to.prog_fd = 0;
	to.flags = 0;
	err = bpf_tc_detach(&hook, &to);
	if (err) {
		km_warn("ifindex %d: detach tc filter %s: %s\n", ifindex, prog,
			strerror(-err));
		return err;
	}
	return 1;
}

/*
 * tc has no link to pin: the filters stay attached when every pin is gone
 * (pin root removed, bpffs unmounted), so they are found by handle.  The
 * clsact qdisc stays: other tools may have filters on it.
 */
int km_detach_tc(int ifindex)
{
	int n = 0, r;

	r = km_detach_tc_one(ifindex, BPF_TC_INGRESS, "km_tc_clone",
			     KM_TC_HANDLE);
	n += r > 0;
	r = km_detach_tc_one(ifindex, BPF_TC_EGRESS, "km_tc_egress",
			     KM_TC_HANDLE);
	n += r > 0;
	/* not counted: one filter each way, for either family */
	km_detach_tc_one(ifindex, BPF_TC_INGRESS, "km_tc_clone6",
			 KM_TC_HANDLE6);
	km_detach_tc_one(ifindex, BPF_TC_EGRESS, "km_tc_egress6",
			 KM_TC_HANDLE6);
	return n;
}

/* The bpf_link holding prog_id on ifindex, detached: 0, or -errno. */
static int km_detach_xdp_link_of(int ifindex, __u32 prog_id)
{
	struct bpf_link_info info;
	__u32 id = 0, len;
	int fd, err = -ENOENT;

	while (err == -ENOENT && !bpf_link_get_next_id(id, &id)) {
		fd = bpf_link_get_fd_by_id(id);
		if (fd < 0)
			continue;
		memset(&info, 0, sizeof(info));
		len = sizeof(info);
		if (!bpf_obj_get_info_by_fd(fd, &info, &len) &&
		    info.type == BPF_LINK_TYPE_XDP && info.prog_id == prog_id &&
		    (int)info.xdp.ifindex == ifindex)
			err = bpf_link_detach(fd) ? -errno : 0;
		close(fd);
	}
	return err;
}

/* km_xdp_rx on ifindex (native or generic), however attached: 1 removed. */
static int km_detach_xdp(int ifindex)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	__u32 ids[2];
	int i, n = 0, err;

	if (bpf_xdp_query(ifindex, 0, &q))
		return 0;
	ids[0] = q.drv_prog_id;
	ids[1] = q.skb_prog_id;
	for (i = 0; i < 2; i++) {
		if (!ids[i] || !km_prog_is(ids[i], "km_xdp_rx"))
			continue;
		err = km_detach_xdp_link_of(ifindex, ids[i]);
		if (err == -ENOENT) /* attached without a link */
			err = bpf_xdp_detach(ifindex,
					     i ? XDP_FLAGS_SKB_MODE
					       : XDP_FLAGS_DRV_MODE,
					     NULL);
		if (err)
			km_warn("ifindex %d: detach XDP: %s\n", ifindex,
				strerror(-err));
		else
			n++;
	}
	return n;
}

/* A pinned XDP link: detach it from its interface, with tc alongside. */
static void km_detach_link(const char *path, int ifindex,
			   struct km_bpf_detached *out)
{
	int fd = bpf_obj_get(path);

	if (fd >= 0) {
		if (bpf_link_detach(fd))
			km_warn("detach %s: %s\n", path, strerror(errno));
		else if (out)
			out->xdp++;
		close(fd);
	}
	if (out)
		out->tc += km_detach_tc(ifindex);
	else
		km_detach_tc(ifindex);
}

/* Every pin under root (detaching pinned XDP links), then root itself. */
int km_unpin_all(const char *root, struct km_bpf_detached *out)
{
	char path[PATH_MAX];
	struct dirent *de;
	int ifindex, err = 0;
	DIR *d;

	d = opendir(root);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", root, de->d_name);
		if (sscanf(de->d_name, KM_LINK_XDP_FMT, &ifindex) == 1)
			km_detach_link(path, ifindex, out);
		if (!unlink(path)) {
			if (out)
				out->pins++;
		} else if (!err) {
			err = -errno;
		}
	}
	closedir(d);
	if (rmdir(root) && !err)
		err = -errno;
	return err;
}

int km_bpf_detach_all(const char *pin_root, const char *const *ifnames)
{
	int ifindex;

	for (; ifnames && *ifnames; ifnames++) {
		ifindex = if_nametoindex(*ifnames);
		if (ifindex)
			km_detach_tc(ifindex);
	}
	return km_unpin_all(pin_root ? pin_root : KM_PIN_ROOT, NULL);
}

int km_bpf_detach_netns(const char *pin_root, const char *const *ifnames,
			struct km_bpf_detached *out)
{
	struct if_nameindex *ifs, *i;
	const char *const *n;
	int err;

	memset(out, 0, sizeof(*out));
	for (n = ifnames; n && *n; n++) {
		if (!if_nametoindex(*n)) {
			out->bad_iface = *n;
			return -ENODEV;
		}
	}
	km_log_libbpf(0);
	err = km_unpin_all(pin_root ? pin_root : KM_PIN_ROOT, out);
	/* what no pin names: a lost pin root, a crash before pinning */
	ifs = if_nameindex();
	if (!ifs)
		return err ? err : -errno;
	for (i = ifs; i->if_index; i++) {
		out->xdp += km_detach_xdp(i->if_index);
		out->tc += km_detach_tc(i->if_index);
	}
	if_freenameindex(ifs);
	return err;
}
