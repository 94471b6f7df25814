#!/bin/bash
# 31_udp_differential.sh over IPv6 (issue 18): udpdiff.py's request
# sequence sent directly to a fresh memcached and through kmagentd -l
# ADDR6 -I eth0 in front of two fresh memcacheds, every memcached on IPv6
# only (2001:2::/48, RFC 5180), must give the same reply datagrams,
# request ids and frame headers included.  Single-key reads and writes
# take the kernel path's IPv6 programs, the rest kmagentd's UDP socket;
# km_stats shows both were exercised.  kmagentd listens on one IPv6
# address: the kernel leaves IPv4 datagrams to its port alone.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/udp_lib.sh"

lab_init
udp_bpffs
PIN=$UDP_BPFFS/p
lab_pin_dir "$PIN"
lab_host r 198.18.0.1	# the reference: one memcached, direct
lab_host6 r 2001:2::1
lab_host m1 198.18.0.2	# kmagentd's backends
lab_host6 m1 2001:2::2
lab_host m2 198.18.0.3
lab_host6 m2 2001:2::3
lab_host p 198.18.0.4	# kmagentd with the kernel path
lab_host6 p 2001:2::4
lab_host c 198.18.0.10	# the client running the driver
lab_host6 c 2001:2::a
udp_xdp_peer p
lab_memcached6 r 11211
lab_memcached6 m1 11211
lab_memcached6 m2 11211
lab_kmagentd p -l 2001:2::4 -p 11210 -s "[2001:2::2]:11211" \
	-s "[2001:2::3]:11211" -I eth0 --pin-root "$PIN"
udp_kernel_ready 2001:2::2 2001:2::3

out=$(lab_in c "$LAB_PY" "$LAB_ROOT/tests/integration/udpdiff.py" \
	"[2001:2::1]:11211" "[2001:2::4]:11210")
rc=$?
printf '%s\n' "$out" | sed 's/^/# /'
lab_eq "every IPv6 UDP reply through kmagent equals memcached's" 0 $rc
lab_ne "reads were served in the kernel" 0 "$(kstat "$PIN" kernel_gets)"
lab_ne "writes were cloned in the kernel" 0 "$(kstat "$PIN" kernel_writes)"
lab_ne "the rest went up to kmagentd" 0 "$(kstat "$PIN" passed_up)"
lab_eq "no helper failed" 0 "$(kstat "$PIN" helper_errors)"
lab_eq "nothing lacked a route (both backends IPv6)" 0 \
	"$(kstat "$PIN" no_route)"

r0=$(kstat "$PIN" rx_service)
lab_not "IPv4 to P's port: nobody listens (-l 2001:2::4)" \
	lab_mc c --udp --timeout 0.5 198.18.0.4:11210 get k1
lab_eq "... and the kernel left it alone" "$r0" "$(kstat "$PIN" rx_service)"
lab_done
