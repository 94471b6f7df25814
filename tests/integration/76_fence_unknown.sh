#!/bin/bash
# A fence lives on the other backends only: a kmagentd that reads none of
# them knows nothing of it, and must keep it as it was.  Two kmagentd in
# front of MA and MB; PA drains MB for writes, so fences it (a fence key
# on MA) and overwrites keys MB then misses.  PB sees MB fenced.  Then PB
# loses its route to MA, the only backend holding MB's fence: PB must
# keep MB fenced, and never serve MB's old values.  (Seed 8612 of the
# chaos test: the fence was lifted, and the old values read.)  It still
# answers `version`, which reads no item.
. "$(dirname "$0")/lib.sh"

N=20
. "$(dirname "$0")/ops_lib.sh"
ops_two_proxies
fenced_on_pb() { [ "$(be_field ctlb $MB '["fenced"]')" == True ]; }
no_fence_on_pb() { [ "$(be_field ctlb $MB '["fenced"]')" == False ]; }
ma_down_for_pb() { [ "$(be_field ctlb $MA '["state"]')" == down ]; }
ma_up_for_pb() { [ "$(be_field ctlb $MA '["state"]')" == up ]; }

lab_eq "$N keys written through PA" "failed 0" \
	"$(ops_py c setv $PA k 0 $N old-)"
lab_eq "PA drains MB for writes" 0 \
	"$(ctla drain $MB --writes >/dev/null; echo $?)"
lab_ok "PB sees MB fenced" wait_for "fence on PB" 10 fenced_on_pb
lab_eq "$N keys overwritten through PA (MB misses them)" "failed 0" \
	"$(ops_py c setv $PA k 0 $N new-)"
lab_eq "MB still holds the old values" "hits $N misses 0 wrong 0" \
	"$(ops_py c getv $MB k 0 $N old-)"

lab_log "PB loses its route to MA, where MB's fence is"
ip -n "$(lab_ns pb)" route add blackhole 198.18.0.1/32
lab_ok "PB marks MA down" wait_for "MA down for PB" 10 ma_down_for_pb
sleep 2 # ten probe intervals: rounds that read no fence of MB
lab_ok "PB keeps MB fenced" fenced_on_pb
old=0
for k in $(seq 0 $((N - 1))); do
	lab_mc c --timeout 2 $PB get "k$k" 2>/dev/null | grep -q "old-$k" &&
		old=$((old + 1))
done
lab_eq "no old value of MB through PB" 0 $old
# no item is read: a fenced backend answers it (a client's health check)
lab_ok "PB answers version (MA down, MB fenced)" \
	lab_mc c --timeout 2 $PB version

lab_log "the route comes back, PA undrains MB"
ip -n "$(lab_ns pb)" route del blackhole 198.18.0.1/32
lab_ok "PB marks MA up" wait_for "MA up for PB" 10 ma_up_for_pb
ctla undrain $MB >/dev/null
lab_ok "PA replays, the fence is lifted on PB" \
	wait_for "no fence on PB" 15 no_fence_on_pb
lab_eq "through PB: the new values" "hits $N misses 0 wrong 0" \
	"$(ops_py c getv $PB k 0 $N new-)"
lab_done
