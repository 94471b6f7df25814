#!/bin/bash
# A fence holds in the kernel path too.  Two kmagentd in front of
# memcached MA and MB; PB serves UDP gets in the kernel (-I eth0).  PA
# loses its route to MB and deletes and overwrites keys: PB's kernel path
# must stop reading MB (KM_BE_F_FENCED in km_backends) and answer no
# deleted or old value over UDP, in the kernel (nothing passed up).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/udp_lib.sh"
. "$(dirname "$0")/ops_lib.sh"

N=40
ops_two_proxies kernel
# MB is backend 2 (second -s)
mb_fenced_in_kernel() { [ $(($(kbe_field "$PIN" 2 flags) & 16)) -ne 0 ]; }
mb_unfenced_in_kernel() { ! mb_fenced_in_kernel; }
udp_gets() { # PREFIX LO HI VPFX: "hits H misses M wrong W" over UDP via PB
	local hits=0 misses=0 wrong=0 i v
	for ((i = $2; i < $3; i++)); do
		if v=$(udp_mc c --timeout 1 $PB get "$1$i"); then
			[ "$v" == "$4$i" ] && hits=$((hits + 1)) || wrong=$((wrong + 1))
		else
			misses=$((misses + 1))
		fi
	done
	echo "hits $hits misses $misses wrong $wrong"
}

lab_eq "$N keys written through PA" "failed 0" \
	"$(ops_py c setv $PA k 0 $N old-)"
lab_eq "over UDP through PB's kernel path they are all there" \
	"hits $N misses 0 wrong 0" "$(udp_gets k 0 $N old-)"
lab_not "MB not fenced in PB's kernel" mb_fenced_in_kernel

ip -n "$(lab_ns pa)" route add blackhole 198.18.0.2/32
lab_ok "PA marks MB down" ops_wait_state $MB down . 10
lab_ok "PB's kernel path sees MB fenced" udp_wait "fence" 10 \
	mb_fenced_in_kernel
lab_eq "20 keys deleted through PA" "failed 0" "$(ops_py c del $PA k 0 20)"
lab_eq "20 keys overwritten through PA" "failed 0" \
	"$(ops_py c setv $PA k 20 $N new-)"
g0=$(kstat "$PIN" kernel_gets) u0=$(kstat "$PIN" passed_up)
lab_eq "UDP via PB: the deleted keys are gone" "hits 0 misses 20 wrong 0" \
	"$(udp_gets k 0 20 old-)"
lab_eq "UDP via PB: the new values only" "hits 20 misses 0 wrong 0" \
	"$(udp_gets k 20 $N new-)"
lab_eq "all $N gets answered in the kernel" $((g0 + N)) \
	"$(kstat "$PIN" kernel_gets)"
lab_eq "none went up to kmagentd" "$u0" "$(kstat "$PIN" passed_up)"

ip -n "$(lab_ns pa)" route del blackhole 198.18.0.2/32
lab_ok "PA replays what MB missed" \
	ops_wait_state $MB up "replayed $N missed keys" 10
lab_ok "the fence is lifted in PB's kernel" udp_wait "no fence" 10 \
	mb_unfenced_in_kernel
lab_eq "UDP via PB after the heal: still no deleted key" \
	"hits 0 misses 20 wrong 0" "$(udp_gets k 0 20 old-)"
lab_done
