#!/bin/bash
# The proxy host with two interfaces: clients on eth0 (the lab's bridge),
# the backend behind eth1 (a point-to-point veth to its own subnet).
# Requests and replies cross interfaces: XDP_REDIRECT both ways, and tc
# clones writes out of the other interface (bpf_clone_redirect).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/udp_lib.sh"

lab_init
udp_bpffs
PIN=$UDP_BPFFS/p
lab_pin_dir "$PIN"
lab_host p 198.18.0.1
lab_host c 198.18.0.10
udp_xdp_peer p
# host a, on P's second interface only
NSP=$(lab_ns p) NSA=$(lab_ns a)
lab_netns_add "$NSA" || lab_die "cannot create $NSA"
ip -n "$NSP" link add eth1 type veth peer name eth0 netns "$NSA" ||
	lab_die "cannot create the P-A veth"
for ns in "$NSP:eth1:198.19.0.1" "$NSA:eth0:198.19.0.2"; do
	IFS=: read -r n i a <<<"$ns"
	ip netns exec "$n" ethtool -K "$i" tx off >/dev/null 2>&1
	ip -n "$n" addr add "$a/24" dev "$i" && ip -n "$n" link set "$i" up ||
		lab_die "cannot configure $i in $n"
done
LAB_ADDR[a]=198.19.0.2
# NAPI for the frames P redirects to A
ip netns exec "$NSA" "$UDP_TOOLS/km_xdp_pass" eth0 ||
	lab_die "cannot attach XDP_PASS in A"
lab_memcached a 11211
lab_kmagentd p -l 198.18.0.1 -p 11210 -s 198.19.0.2:11211 -I eth0 -I eth1 \
	--pin-root "$PIN" --allow 198.18.0.0/24
xdp_on() { ip -n "$NSP" link show "$1" | grep -q prog/xdp; }
lab_ok "XDP attached to eth0 and eth1" udp_wait "XDP" 10 \
	sh -c "ip -n $NSP link show eth0 | grep -q prog/xdp &&
	       ip -n $NSP link show eth1 | grep -q prog/xdp"
lab_ok "P knows A's MAC" udp_wait "neighbour" 10 \
	sh -c "ip -n $NSP neigh show 198.19.0.2 | grep -q lladdr"

mc() { udp_mc c --timeout 1 "$@"; }
w0=$(kstat "$PIN" kernel_writes) g0=$(kstat "$PIN" kernel_gets)
r0=$(kstat "$PIN" replies)
lab_eq "set through kmagent (cloned out of eth1)" STORED \
	"$(mc 198.18.0.1:11210 set twonic value-behind-eth1)"
lab_eq "... in the kernel" $((w0 + 1)) "$(kstat "$PIN" kernel_writes)"
lab_eq "get through kmagent (redirected both ways)" value-behind-eth1 \
	"$(mc 198.18.0.1:11210 get twonic)"
lab_eq "... in the kernel" $((g0 + 1)) "$(kstat "$PIN" kernel_gets)"
lab_eq "both replies went back to the client by the kernel" $((r0 + 2)) \
	"$(kstat "$PIN" replies)"
lab_eq "a miss is a miss" "" "$(mc 198.18.0.1:11210 get nothing-here)"
lab_eq "no helper failed" 0 "$(kstat "$PIN" helper_errors)"
lab_done
