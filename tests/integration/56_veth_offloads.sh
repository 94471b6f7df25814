#!/bin/bash
# veth and container hosts (issue 18): a plain veth pair, as `ip link add`
# makes it, drops what XDP_TX sends into it unless its peer has NAPI (GRO
# on or an XDP program), and its peer's transmit checksum offload hands
# our XDP partial checksums.  kmagentd -I on a veth turns its own end's
# offload off, fixes a peer in its own namespace (v0/v1 here), and for a
# peer elsewhere (the switch's port) logs the exact command; run as
# logged, it makes UDP gets served in the kernel, and a restart is then
# silent.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/udp_lib.sh"

lab_init
udp_bpffs
PIN=$UDP_BPFFS/p
lab_pin_dir "$PIN"
lab_host p 198.18.0.1
lab_host a 198.18.0.2
lab_host b 198.18.0.3
lab_host c 198.18.0.10
lab_memcached a 11211
lab_memcached b 11211
NSP=$(lab_ns p)
PORT=$(lab_brport p)
# undo the lab's care (lab_host turned tx off on both ends)
ip netns exec "$LAB_SW" ethtool -K "$PORT" tx on gro off >/dev/null 2>&1
ip netns exec "$NSP" ethtool -K eth0 tx on >/dev/null 2>&1
# a veth pair with both ends in p: a peer kmagentd can reach itself
ip -n "$NSP" link add v0 type veth peer name v1 &&
	ip -n "$NSP" addr add 198.19.1.1/24 dev v0 &&
	ip -n "$NSP" link set v0 up && ip -n "$NSP" link set v1 up ||
	lab_die "cannot make v0/v1"
ip netns exec "$NSP" ethtool -K v1 tx on gro off >/dev/null 2>&1
feature() { ip netns exec "$1" ethtool -k "$2" | sed -n "s/^$3: \([a-z]*\).*/\1/p"; }
lab_eq "the switch port: tx on, GRO off, as made" "on off" \
	"$(feature "$LAB_SW" "$PORT" tx-checksumming) $(feature "$LAB_SW" "$PORT" generic-receive-offload)"

A=198.18.0.2:11211 B=198.18.0.3:11211 P=198.18.0.1:11210
lab_kmagentd p -l 198.18.0.1 -p 11210 -s $A -s $B -I eth0 -I v0 \
	--pin-root "$PIN"
LOG=${LAB_LOG[km-p]}
grep "veth" "$LOG" | sed 's/^/# | /'
lab_ok "eth0: its own offload turned off, and said" grep -q \
	"eth0: veth: transmit checksum offload turned off" "$LOG"
lab_eq "... and off" off "$(feature "$NSP" eth0 tx-checksumming)"
lab_ok "v0's peer v1 (in p): GRO turned on, and said" grep -q \
	"v0: veth peer v1: GRO turned on" "$LOG"
lab_ok "... tx offload turned off, and said" grep -q \
	"v0: veth peer v1: transmit checksum offload turned off" "$LOG"
lab_eq "... v1: GRO on, tx off" "on off" \
	"$(feature "$NSP" v1 generic-receive-offload) $(feature "$NSP" v1 tx-checksumming)"
want="ip netns exec $LAB_SW ethtool -K $PORT gro on tx off"
lab_ok "eth0's peer, in another namespace: the warning names it" grep -q \
	"warning: eth0: veth peer $PORT in namespace $LAB_SW: without GRO or XDP it drops" "$LOG"
cmd=$(sed -n 's/.*eth0: veth peer .*; run: \(.*\)$/\1/p' "$LOG" | head -1)
lab_eq "... and the command to run" "$want" "$cmd"
lab_eq "kmagentd left the other namespace's port alone" "on off" \
	"$(feature "$LAB_SW" "$PORT" tx-checksumming) $(feature "$LAB_SW" "$PORT" generic-receive-offload)"

udp_kernel_ready 198.18.0.2 198.18.0.3
lab_eq "set over TCP" STORED "$(lab_mc c --timeout 3 $P set vk vv)"
lab_not "before: a UDP get times out (XDP_TX into a peer without NAPI)" \
	udp_mc c --timeout 1 $P get vk

lab_log "the logged command, run as logged"
eval "$cmd" >/dev/null 2>&1
lab_eq "the port now: tx off, GRO on" "off on" \
	"$(feature "$LAB_SW" "$PORT" tx-checksumming) $(feature "$LAB_SW" "$PORT" generic-receive-offload)"
g0=$(kstat "$PIN" kernel_gets)
lab_eq "UDP get" vv "$(udp_mc c --timeout 2 $P get vk)"
lab_eq "... served in the kernel" $((g0 + 1)) "$(kstat "$PIN" kernel_gets)"
lab_kill km-p TERM
: >"$LOG"
lab_kmagentd p -l 198.18.0.1 -p 11210 -s $A -s $B -I eth0 -I v0 \
	--pin-root "$PIN"
lab_not "a restart says nothing more about veths" grep -q "veth" "$LOG"
lab_eq "UDP get after the restart" vv "$(udp_mc c --timeout 2 $P get vk)"
lab_done
