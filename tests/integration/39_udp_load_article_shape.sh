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

out=$(lab_in c "$LAB_ROOT/build/tools/kmbench" -s 198.18.0.1:11210 --udp \
	--ratio 1:1 -k 2000 -c 16 -w 4 -d 3 --key-prefix ld: 2>&1)
rc=$?
printf '%s\n' "$out" | sed 's/^/# /'
lab_eq "kmbench saw no wrong value (exit status)" 0 $rc
lab_ne "gets were served in A's kernel" 0 "$(kstat "$PA" kernel_gets)"
lab_ne "sets were cloned in A's kernel" 0 "$(kstat "$PA" kernel_writes)"
lab_eq "no helper failed" 0 "$(kstat "$PA" helper_errors)"
diff=0 present=0
for ((i = 0; i < 50; i++)); do
	k=ld:$((i * 40))
	va=$(lab_mc c 198.18.0.1:11211 get "$k")
	vb=$(lab_mc c 198.18.0.2:11211 get "$k")
	[ -n "$va" ] && present=$((present + 1))
	[ "$va" == "$vb" ] || diff=$((diff + 1))
done
lab_log "$present of 50 sampled keys set; replicas differ on $diff"
lab_ne "the sampled keys were written" 0 $present
lab_eq "replicas agree on the sampled keys" 0 $diff
lab_done
