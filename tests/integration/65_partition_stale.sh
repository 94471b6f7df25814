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

lab_init
udp_bpffs
PIN=$UDP_BPFFS/pb
lab_pin_dir "$PIN"
lab_host ma 198.18.0.1
lab_host mb 198.18.0.2
lab_host pa 198.18.0.4
lab_host pb 198.18.0.5
lab_host c 198.18.0.10
udp_xdp_peer pb
MA=198.18.0.1:11211 MB=198.18.0.2:11211
PA=198.18.0.4:11210 PB=198.18.0.5:11210
lab_memcached ma 11211
lab_memcached mb 11211
HEALTH=(--probe-interval 200 --probe-timeout 200 --fall 2 --rise 2
	--timeout 300 -v)
LAB_LABEL=km-pa lab_kmagentd pa -l 198.18.0.4 -p 11210 -s $MA -s $MB "${HEALTH[@]}"
LAB_LABEL=km-pb lab_kmagentd pb -l 198.18.0.5 -p 11210 -s $MA -s $MB \
	-I eth0 --pin-root "$PIN" "${HEALTH[@]}"
ctl() { "$LAB_ROOT/build/kmagentctl" -s "${LAB_CTL[km-pa]}" "$@"; }
lab_ok "PB knows MA's and MB's MAC" udp_wait "neighbours" 10 \
	sh -c "ip -n $(lab_ns pb) neigh show 198.18.0.1 | grep -q lladdr &&
	       ip -n $(lab_ns pb) neigh show 198.18.0.2 | grep -q lladdr"
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
