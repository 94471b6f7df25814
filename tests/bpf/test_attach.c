// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The loader's life cycle on a veth in a private namespace: attach (XDP
 * link pinned, tc ingress and egress filters, maps pinned), close the
 * handle (everything stays), open again (maps and the XDP link adopted,
 * the new program swapped in, state kept), detach-all (nothing left);
 * a failed start's undo (what it attached goes, what it adopted stays);
 * detach of filters whose pins are gone.
 */
#include <linux/if_link.h>
#include <sys/stat.h>

#include "km_test.h"

static int xdp_prog_id(int ifindex)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);

	if (bpf_xdp_query(ifindex, 0, &q))
		return -1;
	return q.prog_id;
}

static int tc_prog_id(int ifindex, enum bpf_tc_attach_point where)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
		    .attach_point = where);
	LIBBPF_OPTS(bpf_tc_opts, o, .handle = 0x4b4d, .priority = 0x4b4d);

	if (bpf_tc_query(&hook, &o))
		return 0;
	return o.prog_id;
}

static int prog_id(int fd)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return -1;
	return info.id;
}

static int exists(const char *dir, const char *name)
{
	char path[256];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return stat(path, &st) == 0;
}

int main(void)
{
	struct km_bpf_opts o = {.service_port = 11210, .nat_port = 11299};
	struct km_bpf *kb = NULL;
	char root[64], link[32];
	struct km_config cfg;
	int ifindex, id1, id2, rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (unshare(CLONE_NEWNET)) {
		perror("unshare(CLONE_NEWNET) (needs root)");
		return 1;
	}
	if (km_t_sh("ip link add kv0 type veth peer name kv1") ||
	    km_t_sh("ip link set kv0 up && ip link set kv1 up"))
		return 1;
	ifindex = if_nametoindex("kv0");
	snprintf(root, sizeof(root), "/sys/fs/bpf/kma%d", getpid());
	snprintf(link, sizeof(link), KM_LINK_XDP_FMT, ifindex);
	o.pin_root = root;

	printf("attach\n");
	if (!CHECK(!km_bpf_open(&kb, &o), "open"))
		goto out;
	CHECK(!km_bpf_attach(kb, "kv0"), "attach to kv0");
	CHECK(!km_bpf_is_generic(kb, "kv0"), "veth takes native XDP");
	id1 = prog_id(km_bpf_xdp_fd(kb));
	CHECK(xdp_prog_id(ifindex) == id1, "XDP program attached");
	CHECK(tc_prog_id(ifindex, BPF_TC_INGRESS) == prog_id(km_bpf_tc_fd(kb)),
	      "tc ingress filter attached");
	CHECK(tc_prog_id(ifindex, BPF_TC_EGRESS) ==
		      prog_id(km_bpf_prog_fd(kb, "km_tc_egress")),
	      "tc egress filter attached");
	CHECK(exists(root, link) && exists(root, KM_MAP_STATS) &&
		      exists(root, KM_MAP_PENDING) && exists(root, KM_MAP_RING),
	      "link and maps pinned");
	km_bpf_get_config(kb, &cfg);
	cfg.write_policy = KM_WP_WORST; /* state that must survive */
	km_bpf_set_config(kb, &cfg);

	printf("close: everything stays\n");
	km_bpf_close(kb);
	kb = NULL;
	CHECK(xdp_prog_id(ifindex) == id1, "XDP still attached after close");
	CHECK(tc_prog_id(ifindex, BPF_TC_INGRESS) > 0,
	      "tc still attached after close");

	printf("open again: adopt\n");
	if (!CHECK(!km_bpf_open(&kb, &o), "reopen"))
		goto out;
	CHECK(!km_bpf_attach(kb, "kv0"), "attach again");
	id2 = prog_id(km_bpf_xdp_fd(kb));
	CHECK(id2 != id1 && xdp_prog_id(ifindex) == id2,
	      "the new program swapped into the pinned link");
	CHECK(tc_prog_id(ifindex, BPF_TC_INGRESS) == prog_id(km_bpf_tc_fd(kb)),
	      "tc filter replaced in place");
	CHECK(!km_bpf_get_config(kb, &cfg) && cfg.write_policy == KM_WP_WORST,
	      "pinned config adopted, not re-created");
	km_bpf_close(kb);
	kb = NULL;

	printf("detach-all\n");
	rc = km_bpf_detach_all(root, NULL);
	CHECK(rc == 0, "detach-all returns 0 (%d)", rc);
	CHECK(xdp_prog_id(ifindex) == 0, "no XDP program left");
	CHECK(tc_prog_id(ifindex, BPF_TC_INGRESS) == 0 &&
		      tc_prog_id(ifindex, BPF_TC_EGRESS) == 0,
	      "no tc filter left");
	CHECK(access(root, F_OK) != 0, "pin root removed");

	printf("undo: a fresh attach is taken back\n");
	if (CHECK(!km_bpf_open(&kb, &o), "open fresh")) {
		CHECK(!km_bpf_attach(kb, "kv0"), "attach");
		km_bpf_undo(kb);
		CHECK(xdp_prog_id(ifindex) == 0, "undo: no XDP program left");
		CHECK(tc_prog_id(ifindex, BPF_TC_INGRESS) == 0 &&
			      tc_prog_id(ifindex, BPF_TC_EGRESS) == 0,
		      "undo: no tc filter left");
		CHECK(access(root, F_OK) != 0,
		      "undo: the pins it made removed");
		km_bpf_close(kb);
		kb = NULL;
	}

	printf("undo: what was adopted stays\n");
	if (CHECK(!km_bpf_open(&kb, &o), "open") &&
	    CHECK(!km_bpf_attach(kb, "kv0"), "attach")) {
		km_bpf_close(kb);
		kb = NULL;
		CHECK(!km_bpf_open(&kb, &o) && !km_bpf_attach(kb, "kv0"),
		      "open again and adopt");
		id2 = kb ? prog_id(km_bpf_xdp_fd(kb)) : -1;
		km_bpf_undo(kb);
		CHECK(xdp_prog_id(ifindex) == id2,
		      "undo after adopting: XDP stays");
		CHECK(tc_prog_id(ifindex, BPF_TC_INGRESS) > 0,
		      "undo after adopting: tc stays");
		CHECK(exists(root, KM_MAP_RING),
		      "undo after adopting: pins stay");
		km_bpf_close(kb);
		kb = NULL;
	}

	printf("detach-netns: filters whose pins are gone\n");
	{
		struct km_bpf_detached d;
		const char *bad[] = {"nosuchif0", NULL};

		/* the XDP link goes with its pin, tc filters stay */
		km_t_sh("rm -rf %s", root);
		CHECK(tc_prog_id(ifindex, BPF_TC_INGRESS) > 0,
		      "tc filter outlives the pins");
		CHECK(km_bpf_detach_netns(root, bad, &d) == -ENODEV &&
			      d.bad_iface && !strcmp(d.bad_iface, "nosuchif0"),
		      "an unknown interface is refused");
		CHECK(tc_prog_id(ifindex, BPF_TC_INGRESS) > 0,
		      "... before anything is removed");
		rc = km_bpf_detach_netns(root, NULL, &d);
		CHECK(rc == 0 && d.tc == 2 && d.xdp == 0,
		      "detach-netns found the 2 filters (rc %d, tc %d, xdp %d)",
		      rc, d.tc, d.xdp);
		CHECK(tc_prog_id(ifindex, BPF_TC_INGRESS) == 0 &&
			      tc_prog_id(ifindex, BPF_TC_EGRESS) == 0,
		      "no tc filter left");
	}

	printf("a device without native XDP (bridge): generic mode\n");
	if (!km_t_sh("ip link add kd0 type bridge && ip link set kd0 up") &&
	    CHECK(!km_bpf_open(&kb, &o), "open for kd0")) {
		CHECK(!km_bpf_attach(kb, "kd0"), "attach to a bridge device");
		CHECK(km_bpf_is_generic(kb, "kd0"), "fell back to generic XDP");
		CHECK(xdp_prog_id(if_nametoindex("kd0")) ==
			      prog_id(km_bpf_xdp_fd(kb)),
		      "generic XDP program attached");
		km_bpf_close(kb);
		kb = NULL;
		CHECK(!km_bpf_detach_all(root, NULL) &&
			      xdp_prog_id(if_nametoindex("kd0")) == 0,
		      "detached from kd0");
	}
out:
	km_bpf_close(kb);
	km_bpf_detach_all(root, NULL);
	printf("%d checks passed, %d failed\n", km_t_passed, km_t_failed);
	return km_t_failed ? 1 : 0;
}
