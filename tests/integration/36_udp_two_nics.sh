#!/bin/bash
# The proxy host with two interfaces: clients on eth0 (the lab's bridge),
# the backend behind eth1 (a point-to-point veth to its own subnet).
# Requests and replies cross interfaces: XDP_REDIRECT both ways, and tc
# clones writes out of the other interface (bpf_clone_redirect).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/udp_lib.sh"

udp_lab_two_nics
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
