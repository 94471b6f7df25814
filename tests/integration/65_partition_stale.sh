#!/bin/bash
# Stale reads under a partition, measured: a client writes keys through
# PA and reads each one back through PB at once, while PA loses its route
# to MB for 4 s (the issue's shape: about 1 % of reads were stale before
# fences).  Reads through PB can be stale only until PB sees MB fenced
# (within two probe intervals of PA's first failed write); every read
# after that, and every read once the partition healed, is right.  Once
# with PB's TCP path, once over UDP through PB's kernel path.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/udp_lib.sh"
. "$(dirname "$0")/ops_lib.sh"

ops_two_proxies kernel
pb_fenced() {
	"$LAB_ROOT/build/kmagentctl" -s "${LAB_CTL[km-pb]}" -j backends |
		grep -q '"fenced":true'
}

# run PROTO: the client for 7 s, the partition from 1 s to 5 s
run()
{
	local proto=$1 out=$LAB_DIR/stale.$1 udp=() fenced_ms=0 i
	[ "$proto" == udp ] && udp=(--udp)
	lab_in c "$LAB_PY" "$LAB_ROOT/tests/tools/mcstale.py" "${udp[@]}" \
		--secs 7 $PA $PB >"$out" &
	local client=$!
	sleep 1
	ip -n "$(lab_ns pa)" route add blackhole 198.18.0.2/32
	local cut_ms=$(($(date +%s%N) / 1000000))
	for ((i = 0; i < 100; i++)); do
		pb_fenced && fenced_ms=$(($(date +%s%N) / 1000000)) && break
		sleep 0.05
	done
	sleep $((4 - (fenced_ms - cut_ms) / 1000))
	ip -n "$(lab_ns pa)" route del blackhole 198.18.0.2/32
	wait $client
	lab_log "$proto: $(tail -n 1 "$out"); MB fenced on PB $((fenced_ms - cut_ms)) ms after the cut"
	lab_ne "$proto: PB saw the fence" 0 $fenced_ms
	lab_eq "$proto: the client ran" 1 "$(grep -c '^rounds' "$out")"
	# one probe interval of slack: a read sent just before PB saw it
	lab_eq "$proto: no stale read once PB saw MB fenced" 0 \
		"$(awk -v t=$((fenced_ms + 200)) '$1 == "stale" && $2 > t' "$out" | wc -l)"
	lab_ok "$proto: PA replayed what MB missed" \
		ops_wait_state $MB up "replayed" 10
}

run tcp
run udp
lab_done
