// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * km_xdp_pass IFACE...: attach a two-instruction XDP_PASS program in
 * native mode to each interface.  The peer of a veth that receives
 * XDP_TX/XDP_REDIRECT frames needs an XDP program of its own, or frames
 * wait for NAPI (BRIEF section 4).  Stays attached after exit (netlink
 * attachment); removed with the interface or `ip link set IFACE xdp off`.
 */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <linux/if_link.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

int main(int argc, char **argv)
{
	const struct bpf_insn prog[] = {
		{.code = BPF_ALU64 | BPF_MOV | BPF_K,
		 .dst_reg = BPF_REG_0,
		 .imm = XDP_PASS},
		{.code = BPF_JMP | BPF_EXIT},
	};
	int fd, i, ifindex;

	if (argc < 2) {
		fprintf(stderr, "usage: km_xdp_pass IFACE...\n");
		return 2;
	}
	fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "km_xdp_pass", "GPL", prog, 2,
			   NULL);
	if (fd < 0) {
		fprintf(stderr, "load XDP_PASS program: %s\n", strerror(errno));
		return 1;
	}
	for (i = 1; i < argc; i++) {
		ifindex = if_nametoindex(argv[i]);
		if (!ifindex ||
		    bpf_xdp_attach(ifindex, fd, XDP_FLAGS_DRV_MODE, NULL)) {
			fprintf(stderr, "attach to %s: %s\n", argv[i],
				strerror(errno));
			return 1;
		}
	}
	return 0;
}
