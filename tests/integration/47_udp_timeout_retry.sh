#!/bin/bash
# B's host goes dark (its switch port down: no reply, no ICMP) under UDP
# gets through the kernel path.  Before --udp-retry a read sent to B waited
# for the client's timeout (1.7-2 s of errors until health took B down);
# now kmagentd re-sends it to A from the kernel path after 50 ms.  kmbench
# (1 s timeout, every value checked) must see no lost request, no wrong
# value, no second answer, and no read slower than the retry delay plus
# scheduling slack; sets made meanwhile are answered from A alone.  B is
# reported as a passive failure and taken down without any probe (the
# probe interval is a minute here).  The retry is sent in copy mode here
# (kmagentd sends the frames the retry program makes), the mode of hosts
# that refuse live frames; 48 runs the default (live where allowed).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/udp_lib.sh"

udp_lab_pab
udp_kmagentd_pab --probe-interval 60000 --udp-retry 50 -v \
	--metrics 198.18.0.1:9412 --udp-retry-mode copy
lab_ok "the retry says how it is sent" grep -q \
	"kernel path: retry by copies sent by kmagentd" "${LAB_LOG[km-p]}"
KMB=(-s 198.18.0.1:11210 -k 400 --key-prefix rt:)

lab_ok "400 keys set on both replicas" lab_in c "$UDP_TOOLS/kmbench" \
	"${KMB[@]}" --preload -d 0

out=$LAB_DIR/kmbench.json
udp_bench_bg "$out" "${KMB[@]}" -c 8 -w 1 -d 3 --timeout 1000
sleep 0.7
lab_log "B's switch port down: B's host is silent"
ip -n "$LAB_SW" link set "$(lab_brport b)" down ||
	lab_die "cannot take B's port down"
lab_not "B itself does not answer" udp_mc c --timeout 0.3 198.18.0.3:11211 \
	get rt:1
for i in 1 2 3; do
	lab_eq "set w$i while B is silent: answered from A" STORED \
		"$(udp_mc c --timeout 1 198.18.0.1:11210 set "rt:w$i" "v$i")"
done
udp_bench_wait
# 400 ms: the retry delay, not the client's 1 s timeout
udp_bench_check "$out" $? 400000
lab_eq "no error" 0 "$(jfield "$out" errors)"

lab_ne "reads retried in the kernel path" 0 "$(kstat "$PIN" retries)"
lab_ne "writes answered from the replica that replied" 0 \
	"$(kstat "$PIN" retry_writes)"
lab_ne "B's requests counted as retried" 0 "$(kbe_stat "$PIN" 2 retried)"
lab_eq "nothing left to retry for want of a replica" 0 \
	"$(kstat "$PIN" retry_exhausted)"
lab_eq "no helper failed" 0 "$(kstat "$PIN" helper_errors)"
for i in 1 2 3; do
	lab_eq "A holds w$i" "v$i" "$(lab_mc c 198.18.0.2:11211 get "rt:w$i")"
done
lab_ok "kmagentd heard of it" grep -q \
	"backend 198.18.0.3:11211: no reply within 50 ms" "${LAB_LOG[km-p]}"
# the second failure: another silence once reads go to B again, or the
# replay of w1..w3 to B timing out (B owes them: reads skip it meanwhile)
lab_ok "B taken down by passive failures alone" udp_wait "B down" 8 \
	grep -qE "backend 198.18.0.3:11211: up -> down \((no UDP reply in time|resync: no answer)" \
	"${LAB_LOG[km-p]}"
lab_eq "the kernel sees B down" 0 "$(kbe_state "$PIN" 2)"

# the counters, for operators: kmagentctl stats and the metrics
j=$("$LAB_ROOT/build/kmagentctl" -s "${LAB_CTL[km-p]}" -j stats)
lab_ok "kmagentctl stats: kernel retries" "$LAB_PY" -c '
import json, sys
k = json.loads(sys.argv[1])["kernel"]
sys.exit(not (k["retries"] > 0 and k["retry_writes"] > 0))' "$j"
m=$(lab_in c "$LAB_PY" -c 'import urllib.request; print(urllib.request.urlopen("http://198.18.0.1:9412/metrics").read().decode())')
lab_ok "metrics: kernel retries" grep -qE \
	'^kmagent_kernel_total\{counter="retries"\} [1-9]' <<<"$m"
lab_ok "metrics: B's retried requests" grep -qE \
	'^kmagent_backend_retried_total\{backend="198.18.0.3:11211",path="kernel"\} [1-9]' \
	<<<"$m"
ip -n "$LAB_SW" link set "$(lab_brport b)" up
lab_done
