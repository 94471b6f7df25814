#!/bin/bash
# Two kmagentd end a ring handoff together (docs/operations.md, "With
# several kmagentd, a handoff ends when every kmagentd's does").  Three
# memcached, replicas 2, both kmagentd from their own config file; MC is
# removed from PA's file and PA alone is reloaded, as an operator does one
# host after the other.
#   1. PA keeps MC while PB runs the old ring: keys overwritten through PA
#      read new through PB, also those PB reads from MC (a removed backend
#      used to leave PA at once, and PB served MC's old copies).
#   2. keys deleted through PB, which writes the old replicas only: PA
#      reads none of them back (it fills no joiner before PB reloads).
#   3. PB reloaded: both handoffs end, MC leaves both; every key reads
#      right through either kmagentd, with MA, then MB, drained on both.
. "$(dirname "$0")/lib.sh"

N=120
lab_init
. "$(dirname "$0")/ops_lib.sh"
ops_hosts mc
for h in ma mb mc; do lab_memcached $h 11211; done
M=("$MA" "$MB" "$MC")
CA=$LAB_DIR/pa.conf CB=$LAB_DIR/pb.conf
ops_conf "$CA" "${M[@]}"
ops_conf "$CB" "${M[@]}"
OPTS=(--probe-interval 200 --probe-timeout 200 --timeout 300 -v)
LAB_LABEL=km-pa lab_kmagentd pa -l 198.18.0.4 -p 11210 -c "$CA" "${OPTS[@]}"
LAB_LABEL=km-pb lab_kmagentd pb -l 198.18.0.5 -p 11210 -c "$CB" "${OPTS[@]}"
nbe() { jget "$($1 -j status)" 'd["backends"]'; }
log_has() { grep -q "$2" "${LAB_LOG[$1]}"; }
mc_gone() { [ "$(nbe ctla)" == 2 ] && [ "$(nbe ctlb)" == 2 ]; }

lab_eq "$N keys written through PA" "failed 0" \
	"$(ops_py c setv $PA k 0 $N old-)"

lab_log "1. MC removed from PA's config, PA reloaded, PB not yet"
ops_conf "$CA" "${M[0]}" "${M[1]}"
lab_ok "PA reloads" ctla reload
lab_ok "PA's handoff waits for PB" wait_for "PA waits" 10 \
	log_has km-pa "ring handoff waits for kmagentd $PB runs another ring"
lab_eq "MC stays on PA, removed" True \
	"$(jget "$(ctla -j backends)" '[b for b in d["backends"] if b["name"] == "'"$MC"'"][0]["removed"]')"
lab_eq "keys overwritten through PA" "failed 0" \
	"$(ops_py c setv $PA k 0 $N new-)"
lab_eq "through PB (old ring, reads MC too): every key new" \
	"hits $N misses 0 wrong 0" "$(ops_py c getv $PB k 0 $N new-)"

lab_log "2. keys deleted through PB, before it reloads"
lab_eq "half the keys deleted through PB" "failed 0" \
	"$(ops_py c del $PB k 0 $((N / 2)))"
lab_eq "through PA: the deleted keys stay deleted" \
	"hits 0 misses $((N / 2)) wrong 0" \
	"$(ops_py c getv $PA k 0 $((N / 2)) new-)"
lab_eq "still two rings: PA has not ended its handoff" 3 "$(nbe ctla)"

lab_log "3. PB reloaded"
ops_conf "$CB" "${M[0]}" "${M[1]}"
lab_ok "PB reloads" ctlb reload
lab_ok "both handoffs end: MC leaves PA and PB" wait_for "MC gone" 20 mc_gone
for i in 0 1; do
	ctla drain "${M[$i]}" >/dev/null
	ctlb drain "${M[$i]}" >/dev/null
	for p in $PA $PB; do
		lab_eq "${M[$i]} drained, through $p: deleted keys stay deleted" \
			"hits 0 misses $((N / 2)) wrong 0" \
			"$(ops_py c getv $p k 0 $((N / 2)) new-)"
		lab_eq "${M[$i]} drained, through $p: the others new" \
			"hits $((N / 2)) misses 0 wrong 0" \
			"$(ops_py c getv $p k $((N / 2)) $N new-)"
	done
	ctla undrain "${M[$i]}" >/dev/null
	ctlb undrain "${M[$i]}" >/dev/null
done
lab_done
