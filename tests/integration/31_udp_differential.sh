#!/bin/bash
# Differential test over UDP: one request sequence (tests/integration/
# udpdiff.py: storage, arithmetic, meta, noreply, multi-datagram values,
# multi-key and unknown commands) sent directly to a fresh memcached and
# through kmagentd -I eth0 in front of two fresh memcacheds must give the
# same reply datagrams, request ids and frame headers included (cas values
# masked).  Single-key reads and writes take the kernel path, the rest
# kmagentd's UDP socket; km_stats shows both were exercised.  With the
# default reply bound (22_security_defaults tests it), as memcached does.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/udp_lib.sh"

lab_init
udp_bpffs
PIN=$UDP_BPFFS/p
lab_pin_dir "$PIN"
lab_host r 198.18.0.1	# the reference: one memcached, direct
lab_host m1 198.18.0.2	# kmagentd's backends
lab_host m2 198.18.0.3
lab_host p 198.18.0.4	# kmagentd with the kernel path
lab_host c 198.18.0.10	# the client running the driver
udp_xdp_peer p
lab_memcached r 11211
lab_memcached m1 11211
lab_memcached m2 11211
lab_kmagentd p -l 198.18.0.4 -p 11210 -s 198.18.0.2:11211 \
	-s 198.18.0.3:11211 -I eth0 --pin-root "$PIN"
xdp_on() { ip -n "$(lab_ns p)" link show eth0 | grep -q prog/xdp; }
neigh_known() { ip -n "$(lab_ns p)" neigh show "$1" | grep -q lladdr; }
lab_ok "XDP attached on P" udp_wait "XDP on P" 10 xdp_on
lab_ok "P knows both backends' MACs" udp_wait "neighbours" 10 \
	sh -c "ip -n $(lab_ns p) neigh show 198.18.0.2 | grep -q lladdr &&
	       ip -n $(lab_ns p) neigh show 198.18.0.3 | grep -q lladdr"

out=$(lab_in c "$LAB_PY" "$LAB_ROOT/tests/integration/udpdiff.py" \
	198.18.0.1:11211 198.18.0.4:11210)
rc=$?
printf '%s\n' "$out" | sed 's/^/# /'
lab_eq "every UDP reply through kmagent equals memcached's" 0 $rc
lab_ne "reads were served in the kernel" 0 "$(kstat "$PIN" kernel_gets)"
lab_ne "writes were cloned in the kernel" 0 "$(kstat "$PIN" kernel_writes)"
lab_ne "the rest went up to kmagentd" 0 "$(kstat "$PIN" passed_up)"
lab_eq "no helper failed" 0 "$(kstat "$PIN" helper_errors)"
lab_done
