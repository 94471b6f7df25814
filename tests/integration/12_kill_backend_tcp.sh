#!/bin/bash
# kill -9 of one backend during a pipelined write+read load through
# kmagentd (TCP).  Afterwards every acknowledged write (STORED) must be on
# the surviving backend with its value, and no read may have returned a
# wrong value (tests/tools/mcload.py: each key is written once, with a value
# only that key can have).  Also: no read of an acknowledged key missed
# (null-fallback covers the dead replica), no client connection dropped,
# no request left hanging.  Phase 2: m1 starts again empty and must be
# refilled with every acknowledged write; then m2 is killed -9 under a new
# load, and every write acknowledged in either phase must be on m1.
#
#   MCLOAD_SELF=1 ...   checks the script itself: load on memcached direct
. "$(dirname "$0")/lib.sh"

SECONDS_LOAD=${SECONDS_LOAD:-3}
KILL_AFTER=${KILL_AFTER:-1}

lab_init
lab_host m1 198.18.0.1
lab_host m2 198.18.0.2
lab_host p 198.18.0.4
lab_host c 198.18.0.10
lab_memcached m1 11211
lab_memcached m2 11211
if [ -n "${MCLOAD_SELF:-}" ]; then
	target=198.18.0.2:11211
else
	# shellcheck disable=SC2086
	lab_kmagentd p -p 11210 -s 198.18.0.1:11211 -s 198.18.0.2:11211 \
		--timeout 1000 ${KM_EXTRA_ARGS:-}
	target=198.18.0.4:11210
fi

acked=$LAB_DIR/acked.keys
out=$LAB_DIR/load.out
load() { lab_in c "$LAB_PY" "$LAB_ROOT/tests/tools/mcload.py" "$@"; }

lab_log "load: 4 connections x 16 pipelined requests for ${SECONDS_LOAD} s through $target; kill -9 memcached m1 after ${KILL_AFTER} s"
load run "$target" --seconds "$SECONDS_LOAD" --acked "$acked" \
	--mark-file "$LAB_DIR/killed" >"$out" 2>&1 &
loadpid=$!
sleep "$KILL_AFTER"
lab_kill mc-m1 9
touch "$LAB_DIR/killed"
lab_log "killed memcached m1 (kill -9)"
wait $loadpid
rc=$?
sed 's/^/# load: /' "$out"
stat() { awk -v k="$1" '$1 == k { print $2 }' "$out"; }

lab_eq "load generator finished (exit 0: no wrong value)" 0 $rc
lab_eq "no read returned a wrong value" 0 "$(stat wrong)"
lab_eq "no read of an acknowledged key missed" 0 "$(stat misses)"
lab_eq "no unexpected reply" 0 "$(stat other)"
lab_eq "no client connection dropped" 0 "$(stat conn_drops)"
lab_eq "no request timed out (5 s)" 0 "$(stat timeouts)"
lab_ok "writes were acknowledged after the kill ($(stat acked_after_mark) of $(stat acked))" \
	test "$(stat acked_after_mark)" -gt 0
lab_ok "reads hit after the kill ($(stat hits_after_mark) of $(stat hits))" \
	test "$(stat hits_after_mark)" -gt 0
lab_log "SERVER_ERROR replies (allowed while a backend fails): $(stat server_errors)"

lab_log "verify: every acknowledged key on the surviving memcached m2"
vout=$(lab_in c "$LAB_PY" "$LAB_ROOT/tests/tools/mcload.py" verify \
	198.18.0.2:11211 --acked "$acked" 2>&1)
vrc=$?
printf '%s\n' "$vout" | sed 's/^/# verify: /'
vstat() { printf '%s\n' "$vout" | awk -v k="$1" '$1 == k { print $2 }'; }
lab_eq "acknowledged writes checked on m2" "$(wc -l <"$acked")" "$(vstat checked)"
lab_eq "no acknowledged write missing on the surviving backend" 0 "$(vstat missing)"
lab_eq "no acknowledged write with a wrong value on the surviving backend" 0 "$(vstat wrong)"
lab_eq "verify exit" 0 $vrc

if [ -z "${MCLOAD_SELF:-}" ]; then
	lab_log "and through kmagentd, with m1 still dead"
	pout=$(lab_in c "$LAB_PY" "$LAB_ROOT/tests/tools/mcload.py" verify \
		"$target" --acked "$acked" 2>&1)
	printf '%s\n' "$pout" | sed 's/^/# via kmagentd: /'
	lab_eq "every acknowledged write readable through kmagentd" 0 \
		"$(printf '%s\n' "$pout" | awk '$1 == "missing" || $1 == "wrong" { s += $2 } END { print s + 0 }')"
	lab_ok "kmagentd still running" lab_alive km-p

	lab_log "phase 2: m1 starts again (empty) and is refilled; then m2 is killed -9 under load"
	lab_restart mc-m1
	t0=$(date +%s)
	until load verify 198.18.0.1:11211 --acked "$acked" >/dev/null 2>&1; do
		[ $(($(date +%s) - t0)) -ge 15 ] && break
		sleep 0.5
	done
	vout=$(load verify 198.18.0.1:11211 --acked "$acked" 2>&1)
	printf '%s\n' "$vout" | sed 's/^/# m1 refilled: /'
	lab_eq "within 15 s the restarted m1 holds every acknowledged write" "0 0" \
		"$(vstat missing) $(vstat wrong)"
	acked2=$LAB_DIR/acked2.keys
	rm -f "$LAB_DIR/killed"
	load run "$target" --seconds 3 --prefix lb --acked "$acked2" \
		--mark-file "$LAB_DIR/killed" >"$out" 2>&1 &
	loadpid=$!
	sleep 1
	lab_kill mc-m2 9
	touch "$LAB_DIR/killed"
	lab_log "killed memcached m2 (kill -9)"
	wait $loadpid
	rc=$?
	sed 's/^/# load 2: /' "$out"
	lab_eq "phase 2: no wrong value, miss, unexpected reply, drop or timeout" \
		"0 0 0 0 0 0" "$rc $(stat wrong) $(stat misses) $(stat other) $(stat conn_drops) $(stat timeouts)"
	lab_ok "phase 2: writes acknowledged after the kill ($(stat acked_after_mark))" \
		test "$(stat acked_after_mark)" -gt 0
	cat "$acked2" >>"$acked"
	vout=$(load verify 198.18.0.1:11211 --acked "$acked" 2>&1)
	printf '%s\n' "$vout" | sed 's/^/# m1 at the end: /'
	lab_eq "every write acknowledged in both phases is on m1, the survivor" \
		"0 0" "$(vstat missing) $(vstat wrong)"
	pout=$(load verify "$target" --acked "$acked" 2>&1)
	lab_eq "and readable through kmagentd" "0 0" \
		"$(printf '%s\n' "$pout" | awk '$1 == "missing" || $1 == "wrong" { printf "%s ", $2 }' | sed 's/ $//')"
	lab_ok "kmagentd still running" lab_alive km-p
fi
lab_done
