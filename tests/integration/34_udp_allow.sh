#!/bin/bash
# UDP amplification guard: the kernel path answers only clients in the
# allowed networks (--allow, an LPM trie); others' datagrams are dropped
# in XDP and counted, and reach neither the backends nor kmagentd.  TCP is
# not affected.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/udp_lib.sh"

lab_init
udp_bpffs
PIN=$UDP_BPFFS/p
lab_pin_dir "$PIN"
lab_host p 198.18.0.1
lab_host a 198.18.0.2
lab_host c 198.18.0.10	# allowed
lab_host d 198.18.0.11	# not allowed
udp_xdp_peer p
lab_memcached a 11211
lab_kmagentd p -l 198.18.0.1 -p 11210 -s 198.18.0.2:11211 -I eth0 \
	--pin-root "$PIN" --allow 198.18.0.10/32
xdp_on() { ip -n "$(lab_ns p)" link show eth0 | grep -q prog/xdp; }
lab_ok "XDP attached on P" udp_wait "XDP on P" 10 xdp_on

lab_mc c 198.18.0.2:11211 set ak allowed-value >/dev/null
lab_eq "allowed client: UDP get answered" allowed-value \
	"$(udp_mc c --timeout 1 198.18.0.1:11210 get ak)"
d0=$(kstat "$PIN" denied) u0=$(kstat "$PIN" passed_up)
lab_not "other client: UDP get gets no answer" \
	udp_mc d --timeout 1 198.18.0.1:11210 get ak
lab_not "other client: UDP version (slow path) gets no answer" \
	udp_mc d --timeout 1 198.18.0.1:11210 version
lab_eq "both datagrams dropped and counted" $((d0 + 2)) "$(kstat "$PIN" denied)"
lab_eq "none reached kmagentd" "$u0" "$(kstat "$PIN" passed_up)"
lab_eq "other client: TCP still served" allowed-value \
	"$(lab_mc d --timeout 2 198.18.0.1:11210 get ak)"
lab_ok "km_stats dump shows named fields" \
	sh -c "bpftool map dump pinned '$PIN/km_stats' | grep -q '\"denied\": '"
lab_done
