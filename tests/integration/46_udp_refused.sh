#!/bin/bash
# kill -9 of memcached on B: its host answers the next request with ICMP
# port unreachable.  The kernel path takes that as B gone at once -- the
# read that bounced is asked of A in the kernel, later reads and writes
# skip B -- without waiting for the daemon's health probes (set to a
# minute here, so that only the ICMP path can notice).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/udp_lib.sh"

udp_lab_pab
udp_kmagentd_pab --probe-interval 60000 -v

# keys whose first replica is B (198.18.0.3, backend id 2)
keys=()
for ((i = 0; ${#keys[@]} < 3 && i < 100; i++)); do
	first=$("$LAB_PY" "$LAB_ROOT/tests/integration/kmring.py" "rf$i" \
		198.18.0.2:11211 198.18.0.3:11211 | cut -d' ' -f1)
	[ "$first" == 198.18.0.3:11211 ] && keys+=("rf$i")
done
lab_eq "three keys that hash to B first" 3 ${#keys[@]}

mc() { udp_mc c --timeout 1 "$@"; }
for k in "${keys[@]}"; do
	lab_eq "set $k through the kernel path" STORED \
		"$(mc 198.18.0.1:11210 set "$k" "v-$k")"
done
lab_eq "B holds ${keys[0]}" "v-${keys[0]}" "$(mc 198.18.0.3:11211 get "${keys[0]}")"

lab_log "kill -9 memcached on B"
lab_kill mc-b KILL
f0=$(kstat "$PIN" fallbacks)
lab_eq "get ${keys[0]}: B refuses, A answers, in the kernel" "v-${keys[0]}" \
	"$(mc 198.18.0.1:11210 get "${keys[0]}")"
lab_eq "one ICMP port unreachable taken" 1 "$(kstat "$PIN" refused)"
lab_eq "the bounced read was asked of A" $((f0 + 1)) "$(kstat "$PIN" fallbacks)"
lab_eq "B marked refused for the kernel (KM_BE_F_REFUSED)" 4 \
	"$(kbe_field "$PIN" 2 flags)"
lab_eq "the daemon has not taken B down yet (1 failure of 2)" 1 \
	"$(kbe_state "$PIN" 2)"

lab_eq "get ${keys[1]}: straight to A" "v-${keys[1]}" \
	"$(mc 198.18.0.1:11210 get "${keys[1]}")"
lab_eq "no further bounce: B is skipped up front" $((f0 + 1)) \
	"$(kstat "$PIN" fallbacks)"
lab_eq "set ${keys[2]}: answered by A alone" STORED \
	"$(mc 198.18.0.1:11210 set "${keys[2]}" new)"
lab_eq "A holds the new value" new "$(mc 198.18.0.2:11211 get "${keys[2]}")"
lab_eq "the kernel never went up to the daemon" 0 "$(kstat "$PIN" passed_up)"
lab_ok "the daemon heard of it" grep -q "ICMP port unreachable" \
	"${LAB_LOG[km-p]}"

lab_log "kmagentd killed: kmagentctl shows the kernel's view"
lab_kill km-p KILL
j=$("$LAB_ROOT/build/kmagentctl" --pin-root "$PIN" -j backends 2>/dev/null)
lab_eq "B is refused in the kernel's view" True "$("$LAB_PY" -c '
import json, sys
print([b["refused"] for b in json.loads(sys.argv[1])["backends"] if b["id"] == 2][0])' "$j")"
lab_done
