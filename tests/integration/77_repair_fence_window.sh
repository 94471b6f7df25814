#!/bin/bash
# Read-repair with two kmagentd must not undo the other's delete.  MA was
# restarted (so both kmagentd may repair it) and is KEY's first replica.
# PB is cut off from MB and deletes KEY: MA takes the delete, MB misses
# it, and PB fences MB, which PA sees within two probe intervals.  PA
# reads KEY at once: a miss on MA, a hit on MB (an older state inside the
# fence window, allowed).  Its repair must wait out that window, and then
# find MB fenced: no source, no copy.  Copied at once (seed 8614 of the
# chaos test), the deleted value lands on MA and is read through PB.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ops_lib.sh"
ops_two_proxies
# both saw MA's new memcached (not its old pid), up, and fence it no more
# (each fences MA until the other saw it back)
ma_up_for() { [ "$(be_field $1 $MA '["pid"]')" != "$MA_PID0" ] &&
	[ "$(be_field $1 $MA '["state"]')" == up ] &&
	[ "$(be_field $1 $MA '["fenced"]')" == False ]; }
ma_up() { ma_up_for ctla && ma_up_for ctlb; }
mb_up_for_pb() { [ "$(be_field ctlb $MB '["state"]')" == up ]; }
no_fence_on_pa() { [ "$(be_field ctla $MB '["fenced"]')" == False ]; }

KEY=$(ops_key_first fw $MA $MA $MB) ||
	lab_die "no key of fw0..fw200 hashes to MA first"

MA_PID0=$(be_field ctla $MA '["pid"]')
lab_restart mc-ma
lab_ok "MA restarted, resynced by both" wait_for "MA up" 20 ma_up
lab_eq "$KEY written through PA" STORED "$(lab_mc c $PA set "$KEY" doomed)"
lab_eq "MB holds it" doomed "$(lab_mc c $MB get "$KEY")"

lab_log "PB is cut off from MB, deletes $KEY; PA reads it at once"
ip -n "$(lab_ns pb)" route add blackhole 198.18.0.2/32
lab_ok "delete through PB" lab_mc c --timeout 2 $PB delete "$KEY"
lab_mc c --timeout 2 $PA get "$KEY" >/dev/null
lab_not "MA took the delete" lab_mc c $MA get "$KEY"
sleep 1.5 # the repair's wait, its copy, and a probe round or two
lab_not "MA still lacks $KEY: no repair brought it back" \
	lab_mc c $MA get "$KEY"
lab_not "through PB: $KEY stays deleted" lab_mc c --timeout 2 $PB get "$KEY"

ip -n "$(lab_ns pb)" route del blackhole 198.18.0.2/32
lab_ok "PB sees MB again" wait_for "MB up for PB" 15 mb_up_for_pb
lab_ok "PB replays the delete, the fence goes" \
	wait_for "no fence on PA" 15 no_fence_on_pa
lab_not "through PA: $KEY deleted" lab_mc c --timeout 2 $PA get "$KEY"
lab_done
