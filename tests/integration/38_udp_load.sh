#!/bin/bash
# Concurrency: kmbench (checks every value it reads back) runs mixed UDP
# sets and gets through the kernel path, 16 sockets x 4 in flight, for 3 s;
# then the replicas must hold the same values.  No wrong value may be
# seen; UDP losses are reported, not failed.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/udp_lib.sh"

udp_lab_pab
lab_kmagentd p -l 198.18.0.1 -p 11210 -s 198.18.0.2:11211 \
	-s 198.18.0.3:11211 -I eth0 --pin-root "$PIN"
udp_kernel_ready 198.18.0.2 198.18.0.3

out=$(lab_in c "$LAB_ROOT/build/tools/kmbench" -s 198.18.0.1:11210 --udp \
	--ratio 1:1 -k 2000 -c 16 -w 4 -d 3 --key-prefix ld: 2>&1)
rc=$?
printf '%s\n' "$out" | sed 's/^/# /'
lab_eq "kmbench saw no wrong value (exit status)" 0 $rc
lab_ne "gets were served in the kernel" 0 "$(kstat "$PIN" kernel_gets)"
lab_ne "sets were cloned in the kernel" 0 "$(kstat "$PIN" kernel_writes)"
lab_eq "no helper failed" 0 "$(kstat "$PIN" helper_errors)"

# the two replicas agree on every key (a lost reply does not matter: the
# write itself reached both or neither... or one, when a clone was lost)
diff=0 present=0
for ((i = 0; i < 50; i++)); do
	k=ld:$((i * 40))
	va=$(lab_mc c 198.18.0.2:11211 get "$k")
	vb=$(lab_mc c 198.18.0.3:11211 get "$k")
	[ -n "$va" ] && present=$((present + 1))
	[ "$va" == "$vb" ] || diff=$((diff + 1))
done
lab_log "$present of 50 sampled keys set; replicas differ on $diff"
lab_ne "the sampled keys were written" 0 $present
lab_eq "replicas agree on the sampled keys" 0 $diff
lab_done
