#!/bin/bash
# The kernel path journals too: UDP writes that km_tc_clone sends around a
# replica that is not writable are reported to kmagentd (KM_EV_WRITE_MISSED,
# with the key), so when memcached b returns from a pause only those keys
# are replayed onto it: b is not flushed, keeps what nobody touched, and
# holds the values written and lacks the keys deleted while it was away.
# Writes cloned to b while it is paused but not yet down (it never
# answers: the kernel answers the client from a, and reports the key for
# b) are replayed as well.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/udp_lib.sh"
. "$(dirname "$0")/ops_lib.sh"

N=100
udp_lab_pab
udp_kmagentd_pab --probe-interval 200 --probe-timeout 200 --fall 2 --rise 2 -v

lab_eq "$N keys written through kmagentd" "stored $N" \
	"$(ops_py c fill 198.18.0.1:11210 $N keep-)"
lab_log "b pauses"
kill -STOP "$(lab_pid mc-b)"
lab_ok "b marked down" ops_wait_state $B down . 10
w0=$(kstat "$PIN" kernel_writes)
lab_eq "20 keys overwritten over UDP while b is away" 0 \
	"$(for i in $(seq 0 19); do echo "set keep-$i udp-$i"; done | udp_seq)"
lab_eq "the writes went through the kernel path" $((w0 + 20)) \
	"$(kstat "$PIN" kernel_writes)"
ndel=0
for i in $(seq 20 29); do
	[ "$(udp_mc c --timeout 2 $P delete keep-$i)" == DELETED ] &&
		ndel=$((ndel + 1))
done
lab_eq "10 keys deleted over UDP while b is away" 10 $ndel
lab_ok "b's journal holds the 30 keys" udp_wait "journal" 5 sh -c \
	"'$LAB_ROOT/build/kmagentctl' -s '${LAB_CTL[km-p]}' -j backends |
	 grep -q '\"journal\":{\"keys\":30,'"
kill -CONT "$(lab_pid mc-b)"
lab_ok "b up again after replaying 30 keys" \
	ops_wait_state $B up "replayed 30 missed keys" 10
lab_eq "b was never flushed" 0 "$(ops_py c stat $B cmd_flush)"
lab_eq "b holds the values written over UDP" "hits 20 misses 0 wrong 0" \
	"$(ops_py c getv $B keep- 0 20 udp-)"
lab_eq "b lost the keys deleted over UDP" "hits 0 misses 10 wrong 0" \
	"$(ops_py c getv $B keep- 20 30 keep-)"
lab_eq "b kept every other key" "hits 70 misses 0 wrong 0" \
	"$(ops_py c getv $B keep- 30 $N keep-)"

lab_log "b pauses again; UDP sets at once, before kmagentd sees it down"
kill -STOP "$(lab_pid mc-b)"
lab_eq "20 keys overwritten over UDP right after the pause" 0 \
	"$(for i in $(seq 40 59); do echo "set keep-$i fresh-$i"; done | udp_seq)"
lab_ok "b marked down" ops_wait_state $B down . 10
kill -CONT "$(lab_pid mc-b)"
lab_ok "b up again after a replay" ops_wait_state $B up "replayed" 10
lab_eq "b holds every value written while it was silent or down" \
	"hits 20 misses 0 wrong 0" "$(ops_py c getv $B keep- 40 60 fresh-)"
lab_eq "still never flushed" 0 "$(ops_py c stat $B cmd_flush)"
lab_done
