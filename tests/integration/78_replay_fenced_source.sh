#!/bin/bash
# A replay must not copy from a replica another kmagentd fenced while an
# unfenced one holds the key.  Three memcached, replicas 3, two kmagentd.
#   1. PB is cut off from MC and overwrites the keys: MC owes them (PB's
#      journal); MA and MB take them.
#   2. PA is cut off from MA and overwrites them again: MA misses that
#      (PA fences it); MB and MC take it.
#   3. PB sees MC again and replays the keys onto MC.  MA (fenced, but
#      owing PB nothing) came first among the sources before, by id: the
#      replay deleted PA's newer values from MC and copied PB's older ones
#      (seed 8802 of the chaos test: 452 stale reads).  MB must be used.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ops_lib.sh"

N=20
lab_init
ops_hosts mc
for h in ma mb mc; do lab_memcached $h 11211; done
LAB_LABEL=km-pa lab_kmagentd pa -l 198.18.0.4 -p 11210 -s $MA -s $MB -s $MC \
	--replicas 3 "${OPS_HEALTH[@]}"
LAB_LABEL=km-pb lab_kmagentd pb -l 198.18.0.5 -p 11210 -s $MA -s $MB -s $MC \
	--replicas 3 "${OPS_HEALTH[@]}"
state_of() { be_field "$1" "$2" '["state"]'; }
fenced_on_pb() { [ "$(be_field ctlb $MA '["fenced"]')" == True ]; }
mc_down_for_pb() { [ "$(state_of ctlb $MC)" == down ]; }
ma_down_for_pa() { [ "$(state_of ctla $MA)" == down ]; }
mc_up_for_pb() { [ "$(state_of ctlb $MC)" == up ]; }

lab_eq "$N keys written through PA" "failed 0" \
	"$(ops_py c setv $PA k 0 $N one-)"

lab_log "1. PB is cut off from MC, overwrites the keys"
ip -n "$(lab_ns pb)" route add blackhole 198.18.0.3/32
lab_ok "PB marks MC down" wait_for "MC down for PB" 10 mc_down_for_pb
lab_eq "$N keys overwritten through PB" "failed 0" \
	"$(ops_py c setv $PB k 0 $N two-)"

lab_log "2. PA is cut off from MA, overwrites them again"
ip -n "$(lab_ns pa)" route add blackhole 198.18.0.1/32
lab_ok "PA marks MA down" wait_for "MA down for PA" 10 ma_down_for_pa
lab_ok "PB sees MA fenced" wait_for "MA fenced on PB" 10 fenced_on_pb
lab_eq "$N keys overwritten through PA" "failed 0" \
	"$(ops_py c setv $PA k 0 $N three-)"
lab_eq "MA has PB's values (it missed PA's)" "hits $N misses 0 wrong 0" \
	"$(ops_py c getv $MA k 0 $N two-)"
lab_eq "MC has PA's" "hits $N misses 0 wrong 0" \
	"$(ops_py c getv $MC k 0 $N three-)"

lab_log "3. PB sees MC again and replays what it owes it"
ip -n "$(lab_ns pb)" route del blackhole 198.18.0.3/32
lab_ok "PB replays onto MC" wait_for "MC up for PB" 15 mc_up_for_pb
sleep 1 # the replay's end
lab_eq "MC still has PA's values, not MA's older ones" \
	"hits $N misses 0 wrong 0" "$(ops_py c getv $MC k 0 $N three-)"
lab_eq "MB too" "hits $N misses 0 wrong 0" \
	"$(ops_py c getv $MB k 0 $N three-)"
lab_eq "through PB: PA's values" "hits $N misses 0 wrong 0" \
	"$(ops_py c getv $PB k 0 $N three-)"
ip -n "$(lab_ns pa)" route del blackhole 198.18.0.1/32
lab_done
