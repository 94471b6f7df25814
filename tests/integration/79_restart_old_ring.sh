#!/bin/bash
# A kmagentd that starts with a ring other than the one its journal
# recorded purges nothing another kmagentd reads (issue 16; seed 9012 of
# the chaos test: pa, restarted in the middle of a handoff, purged the
# copies of the slots it saw its backends join, keys pb had written there
# since, and pb answered NOT_FOUND to deletes and incrs of them).
#   1. PA runs {MA, MB} with --state-dir, and stops: its journal records
#      that ring.
#   2. PB runs {MA, MB, MC}; keys written through it, MC holds its share.
#   3. PA starts with {MA, MB, MC}: MC joins slots for PA, which purges
#      its copies there and fills them again.  Meanwhile incrs through PB
#      all find their key: PA fenced MC first, and purged only once PB saw
#      the fence.  Then the fence goes, and MC holds its share again.
#   4. PA restarts on {MA, MB} while PB still runs {MA, MB, MC}: MA and MB
#      join slots for PA, which PB does not read them in.  PA fences
#      neither (PB would lose them for every slot), and PB's incrs all
#      find their key.
. "$(dirname "$0")/lib.sh"

N=60
lab_init
. "$(dirname "$0")/ops_lib.sh"
ops_hosts mc
for h in ma mb mc; do lab_memcached $h 11211; done
CA=$LAB_DIR/pa.conf CB=$LAB_DIR/pb.conf
STATE=$LAB_DIR/state-pa
mkdir -p "$STATE"
ops_conf "$CA" "$MA" "$MB"
ops_conf "$CB" "$MA" "$MB" "$MC"
OPTS=(--probe-interval 200 --probe-timeout 200 --timeout 300 -v)
# MC's keys of the full ring: what PA's purge would take from it
mc_share() { ops_py c count "$MC" $N k; }

lab_log "1. PA on {MA, MB} records its ring, and stops"
LAB_LABEL=km-pa lab_kmagentd pa -l 198.18.0.4 -p 11210 -c "$CA" \
	--state-dir "$STATE" "${OPTS[@]}"
lab_ok "PA's journal records {MA, MB}" wait_for "ring recorded" 10 \
	grep -q "^R 2 $MA $MB\$" "$STATE/journal"
lab_kill km-pa

lab_log "2. PB on {MA, MB, MC}, keys written through it"
LAB_LABEL=km-pb lab_kmagentd pb -l 198.18.0.5 -p 11210 -c "$CB" \
	"${OPTS[@]}"
lab_eq "$N keys written through PB" "failed 0" "$(ops_py c setv $PB k 0 $N "")"
share=$(mc_share)
lab_ok "MC holds its share of them ($share)" test "$share" -gt 0

lab_log "3. PA starts on {MA, MB, MC}: MC joins its slots for PA"
ops_py c incrs $PB k 0 $N 6 >"$LAB_DIR/incrs" &
incrs=$!
sleep 0.5
ops_conf "$CA" "$MA" "$MB" "$MC"
LAB_LABEL=km-pa lab_kmagentd pa -l 198.18.0.4 -p 11210 -c "$CA" \
	--state-dir "$STATE" "${OPTS[@]}"
wait $incrs
out=$(cat "$LAB_DIR/incrs")
lab_log "incrs through PB meanwhile: $out"
lab_ok "PA saw MC join slots" grep -q "ring changed since the last run" \
	"${LAB_LOG[km-pa]}"
lab_ok "PA fenced MC for PB" grep -q \
	"$MC: flags 0x10 (fenced: another kmagentd" "${LAB_LOG[km-pb]}"
lab_eq "every incr through PB found its key" "notfound 0 other 0" \
	"$(echo "$out" | cut -d' ' -f3-)"
lab_ok "PA's handoff ends" wait_for "PA settled" 20 \
	grep -q "^R 2 $MA $MB $MC\$" "$STATE/journal"
lab_ok "PB reads MC again" wait_for "fence lifted" 10 \
	test "$(be_field ctlb "$MC" '["fenced"]')" == False
lab_eq "MC holds its share again" "$share" "$(mc_share)"
lab_eq "through PA, no key missed" "misses 0" \
	"$(ops_py c getall $PA $N k | cut -d' ' -f3-4)"

lab_log "4. PA restarts on {MA, MB} while PB still runs {MA, MB, MC}"
# MA and MB join MC's slots for PA only: PB never read them there, so PA
# fences neither (PB would lose them, with MC, for every slot) and
# purges their old copies at once
lab_kill km-pa
ops_conf "$CA" "$MA" "$MB"
seen=$(wc -l <"${LAB_LOG[km-pb]}")
ops_py c incrs $PB k 0 $N 3 >"$LAB_DIR/incrs" &
incrs=$!
LAB_LABEL=km-pa lab_kmagentd pa -l 198.18.0.4 -p 11210 -c "$CA" \
	--state-dir "$STATE" "${OPTS[@]}"
wait $incrs
out=$(cat "$LAB_DIR/incrs")
lab_log "incrs through PB meanwhile: $out"
lab_ok "PA saw MA and MB join slots" test \
	"$(grep -c "ring changed since the last run" "${LAB_LOG[km-pa]}")" -ge 2
lab_eq "PB saw no backend fenced" 0 \
	"$(tail -n +$((seen + 1)) "${LAB_LOG[km-pb]}" | grep -c "flags 0x10")"
lab_eq "every incr through PB found its key" "notfound 0 other 0" \
	"$(echo "$out" | cut -d' ' -f3-)"
lab_done
