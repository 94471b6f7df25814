#!/bin/bash
# A sequential double failure must not lose the writes that the last
# survivor acknowledged (issue 13).  Two backends A and B, one kmagentd
# with the kernel path on P's eth0:
#   1. B dies; A takes writes alone.
#   2. A dies.
#   3. B restarts empty, comes back, and takes writes alone ("late" keys).
#   4. A restarts empty and comes back.
# A restarted empty: it holds none of the late writes, so it must be
# refilled from B, and B must keep them.  The sequence runs twice, once
# with TCP clients (kmagentd's userspace path) and once with UDP clients
# (writes cloned and reads routed by the kernel path).  The writes of step
# 1 are lost in any case (A held them alone and restarted empty).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/udp_lib.sh"
. "$(dirname "$0")/ops_lib.sh"

N=200
udp_lab_pab
udp_kmagentd_pab --probe-interval 200 --probe-timeout 200 --fall 2 --rise 2 -v

# writes PROTO PREFIX / reads PROTO PREFIX: N sets / N checked gets
# through kmagentd; print the number that failed
seq_lines() { for ((i = 0; i < N; i++)); do echo "$1 $2$i v$2$i"; done; }
through()
{
	local proto=$1 op=$2 pfx=$3 udp=()
	[ "$proto" == udp ] && udp=(--udp)
	seq_lines "$op" "$pfx" | lab_mc c "${udp[@]}" --timeout 2 $P seq |
		awk '$1 == "failed" { print $2 }'
}

double_failure()
{
	local proto=$1 pfx=$1-late- stale0
	lab_log "$proto: B dies, A takes writes alone"
	lab_kill mc-b TERM
	lab_ok "$proto: B down" ops_wait_state $B down . 10
	lab_eq "$proto: $N writes with only A up" 0 \
		"$(through "$proto" set "$proto-alone-a-")"
	lab_log "$proto: A dies too"
	lab_kill mc-a TERM
	lab_ok "$proto: A down" ops_wait_state $A down . 10
	lab_log "$proto: B restarts empty and takes writes alone"
	lab_restart mc-b
	lab_ok "$proto: B up" ops_wait_state $B up . 10
	lab_eq "$proto: $N writes with only B up" 0 \
		"$(through "$proto" set "$pfx")"
	lab_eq "$proto: B holds them" $N "$(ops_py c count $B $N "$pfx")"
	lab_log "$proto: A restarts empty"
	stale0=$(grep -c "$B: up -> down (stale" "${LAB_LOG[km-p]}")
	lab_restart mc-a
	lab_ok "$proto: A up again after a resync" \
		ops_wait_state $A up "resync done" 15
	lab_eq "$proto: B was never taken down for A's sake" "$stale0" \
		"$(grep -c "$B: up -> down (stale" "${LAB_LOG[km-p]}")"
	lab_eq "$proto: B still holds every late write" $N \
		"$(ops_py c count $B $N "$pfx")"
	lab_eq "$proto: A was refilled with every late write" $N \
		"$(ops_py c count $A $N "$pfx")"
	lab_eq "$proto: every late write reads back through kmagentd" 0 \
		"$(through "$proto" get "$pfx")"
}

double_failure tcp
double_failure udp
lab_done
