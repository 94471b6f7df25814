#!/bin/bash
# Two kmagentd in front of the same two memcacheds (the article's shape:
# the client pool lists both proxies).  Proxy PA loses its route to
# memcached MB only; PB still reaches both.
#   1. keys deleted and overwritten through PA while partitioned: PA
#      journals them for MB and fences MB (a fence key on MA); PB sees the
#      fence and stops reading MB, so it serves no deleted or old value;
#      no read-repair writes a deleted key back.
#   2. the partition heals: PA replays what MB missed, the fence is lifted,
#      every read through either proxy is right, MB was never flushed.
#   3. PA partitioned again, writes, then killed -9 and started again while
#      MB is reachable: it finds its own name in MB's fence, so the keys MB
#      missed are unknown: MB is flushed (once) and resynced in full.
#   4. PA partitioned again, writes, killed -9 for good: MB stays fenced
#      until `kmagentctl forget PA` on PB, which adopts PA's unknown debt
#      once PA's ring record is 25 s stale (a live kmagentd refreshes it
#      every 20 s): PB flushes MB (again, within a minute of step 3's
#      flush: the flush-once lock must not swallow it) and resyncs it in
#      full.
#   5. forget run by mistake on a kmagentd that is alive: PA keeps its
#      ring record fresh, so PB adopts nothing and flushes nothing; MB
#      stays fenced until PA has replayed its writes.
. "$(dirname "$0")/lib.sh"

N=40
. "$(dirname "$0")/ops_lib.sh"
ops_two_proxies
fenced_on_pb() { [ "$(be_field ctlb $MB '["fenced"]')" == True ]; }
no_fence_on_pb() { ! ctlb -j backends | grep -q '"fenced":true'; }
mb_down_for_pa() { [ "$(be_field ctla $MB '["state"]')" == down ]; }
partition() { ip -n "$(lab_ns pa)" route add blackhole 198.18.0.2/32; }
heal() { ip -n "$(lab_ns pa)" route del blackhole 198.18.0.2/32; }

lab_eq "$N keys written through PA" "failed 0" \
	"$(ops_py c setv $PA k 0 $N old-)"
lab_eq "MB holds them" "hits $N misses 0 wrong 0" \
	"$(ops_py c getv $MB k 0 $N old-)"
lab_eq "no fence while all is well" False "$(be_field ctlb $MB '["fenced"]')"

lab_log "1. PA loses its route to MB"
partition
lab_ok "PA marks MB down" wait_for "MB down for PA" 10 mb_down_for_pa
t0=$(date +%s%N)
lab_ok "PB sees MB fenced" wait_for "fence on PB" 10 fenced_on_pb
lab_log "MB fenced on PB $((($(date +%s%N) - t0) / 1000000)) ms after PA saw it down (probe interval 200 ms)"
lab_eq "PB still sees MB up (only PA is cut off)" up \
	"$(be_field ctlb $MB '["state"]')"
lab_eq "PA holds the fence" True "$(be_field ctla $MB '["fence_held"]')"
lab_eq "20 keys deleted through PA" "failed 0" "$(ops_py c del $PA k 0 20)"
lab_eq "20 keys overwritten through PA" "failed 0" \
	"$(ops_py c setv $PA k 20 $N new-)"
lab_eq "MB still has the old values (it missed the writes)" \
	"hits 20 misses 0 wrong 0" "$(ops_py c getv $MB k 0 20 old-)"
s0=$(ctlb -j stats -i 0)
lab_eq "through PB: the deleted keys are gone (MB not read)" \
	"hits 0 misses 20 wrong 0" "$(ops_py c getv $PB k 0 20 old-)"
lab_eq "through PB: the new values, never the old" \
	"hits 20 misses 0 wrong 0" "$(ops_py c getv $PB k 20 $N new-)"
lab_eq "MA still lacks the deleted keys (no read-repair brought them back)" \
	"hits 0 misses 20 wrong 0" "$(ops_py c getv $MA k 0 20 old-)"
s1=$(ctlb -j stats -i 0)
lab_eq "PB did not repair from MB" 0 \
	$(($(jget "$s1" 'd["repair"]["repaired"]') - $(jget "$s0" 'd["repair"]["repaired"]')))

lab_log "2. the partition heals"
heal
lab_ok "PA replays what MB missed" \
	ops_wait_state $MB up "replayed $N missed keys" 10
lab_ok "the fence is lifted on PB" wait_for "no fence" 10 no_fence_on_pb
lab_eq "MB lost the deleted keys" "hits 0 misses 20 wrong 0" \
	"$(ops_py c getv $MB k 0 20 old-)"
lab_eq "MB holds the new values" "hits 20 misses 0 wrong 0" \
	"$(ops_py c getv $MB k 20 $N new-)"
lab_eq "MB was never flushed" 0 "$(ops_py c stat $MB cmd_flush)"
for p in PA PB; do
	lab_eq "through $p: deleted keys stay deleted" "hits 0 misses 20 wrong 0" \
		"$(ops_py c getv "${!p}" k 0 20 old-)"
	lab_eq "through $p: the new values" "hits 20 misses 0 wrong 0" \
		"$(ops_py c getv "${!p}" k 20 $N new-)"
done

lab_log "3. PA partitioned again, writes, kill -9, restart with MB reachable"
partition
lab_ok "PA marks MB down" wait_for "MB down for PA" 10 mb_down_for_pa
lab_eq "10 keys overwritten through PA" "failed 0" \
	"$(ops_py c setv $PA k 20 30 newest-)"
lab_ok "PB sees MB fenced" wait_for "fence on PB" 10 fenced_on_pb
lab_kill km-pa KILL
heal
lab_ok "PB keeps MB fenced while PA is away" fenced_on_pb
LAB_LABEL=km-pa lab_kmagentd pa -l 198.18.0.4 -p 11210 -s $MA -s $MB "${OPS_HEALTH[@]}"
lab_ok "the new PA resyncs MB in full" \
	ops_wait_state $MB up "resync done, [0-9]+ keys copied" 10
lab_ok "it says why" grep -q "fenced by this kmagentd ($PA) before it restarted" \
	"${LAB_LOG[km-pa]}"
lab_eq "MB was flushed once" 1 "$(ops_py c stat $MB cmd_flush)"
lab_eq "MB holds the newest values" "hits 10 misses 0 wrong 0" \
	"$(ops_py c getv $MB k 20 30 newest-)"
lab_eq "MB holds the others again" "hits 10 misses 0 wrong 0" \
	"$(ops_py c getv $MB k 30 $N new-)"
lab_ok "the fence is lifted on PB" wait_for "no fence" 10 no_fence_on_pb

lab_log "4. PA partitioned again, writes, killed -9 for good: PB forgets it"
partition
lab_ok "PA marks MB down" wait_for "MB down for PA" 10 mb_down_for_pa
lab_eq "10 keys overwritten through PA" "failed 0" \
	"$(ops_py c setv $PA k 30 $N final-)"
lab_ok "PB sees MB fenced" wait_for "fence on PB" 10 fenced_on_pb
lab_kill km-pa KILL
heal
sleep 1
lab_ok "PB keeps MB fenced: PA's debt is unknown" fenced_on_pb
lab_eq "MB still has the values PA's writes replaced" \
	"hits 10 misses 0 wrong 0" "$(ops_py c getv $MB k 30 $N new-)"
lab_not "forget: a name is needed (usage)" ctlb forget
lab_eq "forget: exit 2 on usage" 2 "$(ctlb forget >/dev/null 2>&1; echo $?)"
lab_eq "forget: PB's own name is refused (exit 1)" 1 \
	"$(ctlb forget $PB >/dev/null 2>&1; echo $?)"
lab_ok "forget: it says why" sh -c '"$0" -s "$1" forget "$2" 2>&1 |
	grep -q "own name"' "$LAB_ROOT/build/kmagentctl" "${LAB_CTL[km-pb]}" $PB
lab_ok "forget PA on PB" ctlb forget $PA
lab_ok "PB waits while PA's ring record is fresh" wait_for "forget waits" 10 \
	grep -q "forget $PA: its ring record was refreshed" "${LAB_LOG[km-pb]}"
pb_mb_resynced() { be_field ctlb $MB '["state"]' | grep -qx up &&
	be_field ctlb $MB '["reason"]' | grep -Eq "resync done"; }
lab_ok "PB resyncs MB in full" wait_for "MB resynced by PB" 40 pb_mb_resynced
lab_ok "PB says whose debt it took" grep -q \
	"adopting the debt of forgotten kmagentd $PA" "${LAB_LOG[km-pb]}"
lab_eq "MB was flushed again (twice in all)" 2 \
	"$(ops_py c stat $MB cmd_flush)"
lab_eq "MB holds PA's last writes" "hits 10 misses 0 wrong 0" \
	"$(ops_py c getv $MB k 30 $N final-)"
lab_eq "MB holds the others again" "hits 10 misses 0 wrong 0" \
	"$(ops_py c getv $MB k 20 30 newest-)"
lab_eq "MB lost the deleted keys" "hits 0 misses 20 wrong 0" \
	"$(ops_py c getv $MB k 0 20 old-)"
lab_ok "the fence is lifted on PB" wait_for "no fence" 10 no_fence_on_pb
lab_ok "PB forgets the name once no fence holds it" wait_for "forgotten" 10 \
	grep -q "kmagentd $PA forgotten" "${LAB_LOG[km-pb]}"

lab_log "5. forget by mistake: PA is alive"
LAB_LABEL=km-pa lab_kmagentd pa -l 198.18.0.4 -p 11210 -s $MA -s $MB "${OPS_HEALTH[@]}"
partition
lab_ok "PA marks MB down" wait_for "MB down for PA" 10 mb_down_for_pa
lab_ok "PB sees MB fenced" wait_for "fence on PB" 10 fenced_on_pb
lab_eq "10 keys overwritten through PA" "failed 0" \
	"$(ops_py c setv $PA k 30 $N again-)"
f0=$(ops_py c stat $MB cmd_flush)
# PB sees PA's record fresh, or newer (PA now owes MB writes)
alive_re="forget $PA: its ring record was refreshed|kmagentd $PA writes its ring record again"
n0=$(grep -Ec "$alive_re" "${LAB_LOG[km-pb]}")
lab_ok "forget PA on PB (a mistake)" ctlb forget $PA
pb_saw_pa_alive() { test "$(grep -Ec "$alive_re" "${LAB_LOG[km-pb]}")" -gt "$n0"; }
lab_ok "PB sees PA is alive" wait_for "forget waits" 10 pb_saw_pa_alive
sleep 30 # longer than a dead kmagentd's record could stay fresh
lab_eq "PB took no debt of PA's: MB not flushed" "$f0" \
	"$(ops_py c stat $MB cmd_flush)"
lab_ok "MB stays fenced on PB while PA owes it" fenced_on_pb
heal
lab_ok "PA replays what MB missed" \
	ops_wait_state $MB up "replayed $N missed keys|replayed [0-9]+ missed" 10
lab_ok "the fence is lifted on PB" wait_for "no fence" 10 no_fence_on_pb
lab_eq "MB holds PA's writes" "hits 10 misses 0 wrong 0" \
	"$(ops_py c getv $MB k 30 $N again-)"
lab_done
