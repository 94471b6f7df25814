#!/bin/bash
# Read-repair from the kernel path: keys held by A only are read over UDP
# through kmagent's XDP program.  For the keys whose first replica is B,
# B's miss is turned into a get to A inside the kernel, A hits, and the
# kernel reports the fallback hit through km_events; kmagentd must then
# fetch the value from A and write it to B.  km_stats shows the reads
# never went up to kmagentd; B ends up holding exactly those keys.  While
# B owes the keys under repair, the kernel reads its keys from A.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/udp_lib.sh"

N=60
. "$(dirname "$0")/ops_lib.sh"
udp_lab_pab
udp_kmagentd_pab --probe-interval 200 --probe-timeout 200
# read-repair writes only to a replica kmagentd has reason to think
# incomplete: B restarts (empty) and is resynced, then the keys below are
# written to A alone, as if the resync had missed them
lab_restart mc-b
lab_ok "B restarted and resynced" ops_wait_state $B up "resync done" 15

lab_eq "$N keys written to A only (flags 5, TTL 1500 s)" "stored $N" \
	"$(ops_py c fill $A $N u 5 1500)"
b_first=0
for ((i = 0; i < N; i++)); do
	first=$("$LAB_PY" "$LAB_ROOT/tests/integration/kmring.py" u$i $A $B | cut -d' ' -f1)
	[ "$first" == "$B" ] && b_first=$((b_first + 1))
done
lab_log "$b_first of $N keys hash to B first"
lab_ok "both kinds of keys are there" test $b_first -gt 5 -a $b_first -lt $((N - 5))

# While B owes the keys under repair (KM_BE_F_OWES), the kernel reads
# B's keys from A without asking B: the others are found missing on a
# later read, once B owes nothing.  So rounds of reads, until B is whole.
f0=$(kstat "$PIN" fallback_hits) u0=$(kstat "$PIN" passed_up)
ok=0 rounds=0
repaired() {
	"$LAB_ROOT/build/kmagentctl" -s "${LAB_CTL[km-p]}" -j stats -i 0 |
		"$LAB_PY" -c 'import json,sys; print(json.load(sys.stdin)["repair"]["repaired"])'
}
while [ $rounds -lt 40 ] && [ "$(repaired)" -lt $b_first ]; do
	for ((i = 0; i < N; i++)); do
		[ "$(udp_mc c --timeout 1 $P get u$i)" == "u$i" ] &&
			ok=$((ok + 1))
	done
	rounds=$((rounds + 1))
	sleep 0.5 # the repairs under way end, and B owes nothing again
done
lab_log "$rounds rounds of $N gets"
lab_eq "every UDP get through the kernel path returns the value" \
	$((rounds * N)) $ok
lab_eq "the kernel fell back to A once per key that B missed" \
	$((f0 + b_first)) "$(kstat "$PIN" fallback_hits)"
lab_eq "no get went up to kmagentd" "$u0" "$(kstat "$PIN" passed_up)"
lab_eq "kmagentd repaired them all" $b_first "$(repaired)"
lab_eq "B now holds exactly the keys it missed" $b_first "$(ops_py c count $B $N u)"
key=$(for ((i = 0; i < N; i++)); do
	[ "$(ops_py c mg $B u$i)" != EN ] && echo u$i && break; done)
line=$(ops_py c mg $B "$key")
lab_log "B: $key: $line"
lab_ok "the repaired $key kept flags 5 and its TTL" \
	awk -v l="$line" 'BEGIN { split(l, f, " "); t = substr(f[4], 2);
		exit !(f[3] == "f5" && t > 1400 && t <= 1500) }'
lab_done
