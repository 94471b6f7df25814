#!/bin/bash
# Missed writes the kernel could not report are not forgotten: with b
# down, kmagentd is killed (kill -9) and the kernel serves alone, skipping
# b for more UDP writes than its event ring buffer holds.  The events that
# fit are journaled by the next kmagentd; the others were counted per
# backend in the pinned km_write_gaps, so the next kmagentd knows b's
# journal is incomplete and refills b in full from a (complete) instead of
# replaying a part of what b missed: b ends with every value written.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/udp_lib.sh"
. "$(dirname "$0")/ops_lib.sh"

N=1500 # more events than km_events' 256 KiB hold (about 900)
udp_lab_pab
udp_kmagentd_pab --state-dir "$LAB_DIR/state" --probe-interval 200 \
	--probe-timeout 200 --fall 2 --rise 2 -v

lab_eq "$N keys written through kmagentd" "stored $N" \
	"$(ops_py c fill $P $N keep-)"
lab_log "b pauses; kmagentd is killed: the kernel serves alone"
kill -STOP "$(lab_pid mc-b)"
lab_ok "b marked down" ops_wait_state $B down . 10
lab_kill km-p KILL
lost0=$(kstat "$PIN" events_lost)
lab_eq "$N keys overwritten over UDP, b skipped" 0 \
	"$(for i in $(seq 0 $((N - 1))); do echo "set keep-$i new-$i"; done |
		udp_seq)"
lab_ok "some of those events found the ring buffer full" \
	test "$(kstat "$PIN" events_lost)" -gt "$lost0"

lab_log "kmagentd starts again; b comes back"
lab_restart km-p
lab_ok "it learns that b's journal lacks keys" ops_wait_log \
	"${LAB_LOG[km-p]}" "backend $B: [0-9]+ missed writes not reported" 1 10
kill -CONT "$(lab_pid mc-b)"
lab_ok "b up again, refilled in full" \
	ops_wait_state $B up "resync done" 20
lab_eq "b holds every value written while it was away" \
	"hits $N misses 0 wrong 0" "$(ops_py c getv $B keep- 0 $N new-)"
lab_eq "a holds them too" "hits $N misses 0 wrong 0" \
	"$(ops_py c getv $A keep- 0 $N new-)"
lab_done
