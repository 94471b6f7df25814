#!/bin/bash
# kmagentd restarted while clients write, as systemd does on every upgrade
# (SIGTERM) or after a crash (SIGKILL), loses nothing:
#   1. with --state-dir: 1000 keys set and never touched again, a pipelined
#      load of new keys (tests/tools/mcload.py) running throughout, and
#      kmagentd stopped and started six times (four SIGTERM, two SIGKILL).
#      Both memcached end with all 1000 keys and every acknowledged write,
#      neither was ever flushed.  (Before: in 3 of 4 tries both backends
#      were flushed, 0 of 1000 keys left.)
#   2. without --state-dir, killed while it owed m1 writes and with m2
#      paused too: the new kmagentd cannot know what m1 missed, and no
#      replica is known complete to refill it from, so m1 is kept and
#      served, not flushed (before: flushed with 0 replicas to refill it,
#      then m2 flushed and refilled from the empty m1).
. "$(dirname "$0")/lib.sh"

N=1000
. "$(dirname "$0")/ops_lib.sh"
lab_two_backends
STATE=$LAB_DIR/state
HEALTH=(--probe-interval 200 --probe-timeout 200 --fall 2 --rise 2
	--timeout 500 -v)
lab_kmagentd p -p 11210 -s $M1 -s $M2 --state-dir "$STATE" "${HEALTH[@]}"
LOG=${LAB_LOG[km-p]}

lab_eq "$N keys written through kmagentd" "stored $N" \
	"$(ops_py c fill $P $N keep-)"

udp_wait_ok() # SECS CMD...: until CMD succeeds
{
	local i n=$(($1 * 10))
	shift
	for ((i = 0; i < n; i++)); do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}
both_up() { ops_wait_state $M1 up . 10 && ops_wait_state $M2 up . 10; }

lab_log "1. six restarts under a write load"
ACKED=$LAB_DIR/acked
lab_in c "$LAB_PY" "$LAB_ROOT/tests/tools/mcload.py" run $P --seconds 14 \
	--acked "$ACKED" --conns 4 --depth 4 >"$LAB_DIR/load.out" 2>&1 &
LOAD=$!
for sig in TERM KILL TERM TERM KILL TERM; do
	sleep 1.2
	lab_kill km-p $sig
	lab_restart km-p
	lab_ok "restarted after SIG$sig: both backends up" both_up
done
wait $LOAD
sed 's/^/# load: /' "$LAB_DIR/load.out"
lab_eq "the load saw no wrong value" 0 \
	"$(sed -n 's/^wrong //p' "$LAB_DIR/load.out")"
lab_ok "it wrote a good many keys" test "$(wc -l <"$ACKED")" -gt 200
sleep 1
for m in $M1 $M2; do
	lab_eq "$m holds every untouched key" $N "$(ops_py c count $m $N keep-)"
	lab_eq "$m was never flushed" 0 "$(ops_py c stat $m cmd_flush)"
	out=$(lab_in c "$LAB_PY" "$LAB_ROOT/tests/tools/mcload.py" verify $m \
		--acked "$ACKED")
	lab_eq "$m holds every acknowledged write" 0 \
		"$(sed -n 's/^missing //p' <<<"$out")"
done
lab_not "no journal was ever lost" grep -q "flushed and resynced in full" "$LOG"
lab_ok "each restart found its journal" grep -q \
	"journal in $STATE/journal, loaded from the last run" "$LOG"

lab_log "drain --writes m2, writes, SIGKILL: the drain and m2's debt survive"
lab_ok "drain --writes m2" ctl drain $M2 --writes
lab_eq "20 keys rewritten while m2 is drained" "failed 0" \
	"$(ops_py c setv $P keep- 0 20 drained-)"
lab_kill km-p KILL
lab_restart km-p
nowrites() { jget "$(ctl -j backends)" \
	'[b for b in d["backends"] if b["name"] == "'$M2'"][0]["no_writes"]'; }
lab_eq "m2 is still drained after the restart" True "$(nowrites)"
lab_eq "m2 still owes the 20 keys" 20 "$(jget "$(ctl -j backends)" \
	'[b for b in d["backends"] if b["name"] == "'$M2'"][0]["journal"]["keys"]')"
lab_eq "reads never see m2's old values" "hits 20 misses 0 wrong 0" \
	"$(ops_py c getv $P keep- 0 20 drained-)"
lab_ok "undrain" ctl undrain $M2
lab_ok "m2 up after its replay" ops_wait_state $M2 up "replayed 20" 10
lab_eq "m2 holds the values written while drained" "hits 20 misses 0 wrong 0" \
	"$(ops_py c getv $M2 keep- 0 20 drained-)"

lab_log "2. no journal, killed while owing m1 writes, m2 paused too"
lab_kill km-p TERM
lab_kmagentd p -p 11210 -s $M1 -s $M2 "${HEALTH[@]}"
LOG=${LAB_LOG[km-p]}
lab_ok "both up" ops_wait_state $M1 up . 10
kill -STOP "$(lab_pid mc-m1)"
lab_ok "m1 down" ops_wait_state $M1 down . 10
lab_eq "50 keys written while m1 is away" "failed 0" \
	"$(ops_py c setv $P late- 0 50 late-)"
kill -STOP "$(lab_pid mc-m2)"
lab_ok "m2 down too" ops_wait_state $M2 down . 10
lab_kill km-p KILL
lines=$(wc -l <"$LOG")
# not lab_restart: with both backends away it cannot answer "version"
eval "lab_spawn km-p p ${LAB_CMD[km-p]}"
ctl_up() { ctl status >/dev/null 2>&1; }
lab_ok "kmagentd restarted" udp_wait_ok 10 ctl_up
lab_ok "it sees m1 down" ops_wait_state $M1 down . 10
lab_ok "it sees m2 down" ops_wait_state $M2 down . 10
kill -CONT "$(lab_pid mc-m1)"
lab_ok "m1 back" ops_wait_state $M1 up . 15
kill -CONT "$(lab_pid mc-m2)"
lab_ok "m2 back" ops_wait_state $M2 up . 15
sleep 1
tail -n +$((lines + 1)) "$LOG" | sed 's/^/# | /' | grep -iE "flush|journal|resync" | head -20
lab_ok "m1 was not flushed: no replica known complete" grep -q \
	"backend $M1: not flushed" "$LOG"
for m in $M1 $M2; do
	lab_eq "$m was never flushed" 0 "$(ops_py c stat $m cmd_flush)"
	lab_eq "$m holds every untouched key" $N "$(ops_py c count $m $N keep-)"
done
lab_eq "the 50 late writes read back through kmagentd" \
	"hits 50 misses 0 wrong 0" "$(ops_py c getv $P late- 0 50 late-)"
avoided=$(jget "$(ctl -j stats)" 'd["user"]["flushes_avoided"]')
lab_ok "counted: kmagentctl stats, flushes_avoided ($avoided)" test "$avoided" -ge 2
lab_done
