#!/bin/bash
# Concurrency in the article's shape: kmbench runs mixed UDP sets and gets
# through kmagent A (one backend local, reached through the stack and
# caught at tc egress; one remote), 16 sockets x 4 in flight, 3 s.  No
# wrong value may be seen and the replicas must agree afterwards.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/udp_lib.sh"

lab_init
udp_bpffs
lab_host a 198.18.0.1
lab_host b 198.18.0.2
lab_host c 198.18.0.10
udp_xdp_peer a
udp_xdp_peer b
lab_memcached a 11211
lab_memcached b 11211
for h in a b; do
	lab_pin_dir "$UDP_BPFFS/$h"
	lab_kmagentd $h -l "$(lab_addr $h)" -p 11210 -s 198.18.0.1:11211 \
		-s 198.18.0.2:11211 -I eth0 --pin-root "$UDP_BPFFS/$h"
done
PA=$UDP_BPFFS/a
lab_ok "XDP attached on A" udp_wait "XDP on A" 10 \
	sh -c "ip -n $(lab_ns a) link show eth0 | grep -q prog/xdp"
lab_ok "A knows B's MAC" udp_wait "neighbour" 10 \
	sh -c "ip -n $(lab_ns a) neigh show 198.18.0.2 | grep -q lladdr"

udp_load 198.18.0.1:11210 "$PA" "A's" 198.18.0.1:11211 198.18.0.2:11211
lab_done
