#!/bin/bash
# A slow backend: memcached on B stopped (SIGSTOP) for 0.6 s under UDP
# gets through the kernel path, then let go.  The reads it holds are
# retried on A after 50 ms; when B wakes up, its late replies must be
# dropped in the kernel (counted) and never reach a client as a second
# answer.  Reads skip B meanwhile (KM_BE_F_SILENT), so that a slow backend
# does not have every read retried, and go back to it a second later.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/udp_lib.sh"

udp_lab_pab
udp_kmagentd_pab --probe-interval 60000 --udp-retry 50 -v
# live frames where the host allows them, else copies: never silent
lab_ok "the retry says how it is sent" grep -Eq \
	"kernel path: retry by (live frames|copies sent by kmagentd: this host refuses)" \
	"${LAB_LOG[km-p]}"
KMB=(-s 198.18.0.1:11210 -k 400 --key-prefix sl:)

lab_ok "400 keys set on both replicas" lab_in c "$UDP_TOOLS/kmbench" \
	"${KMB[@]}" --preload -d 0
g0=$(kbe_stat "$PIN" 2 gets)

out=$LAB_DIR/kmbench.json
udp_bench_bg "$out" "${KMB[@]}" -c 8 -w 1 -d 3 --timeout 1000
sleep 0.7
lab_log "memcached on B stopped for 0.6 s"
kill -STOP "$(lab_pid mc-b)" || lab_die "cannot stop memcached on B"
sleep 0.3
lab_eq "reads skip B while it is silent (KM_BE_F_SILENT)" 8 \
	"$(kbe_field "$PIN" 2 flags)"
sleep 0.3
kill -CONT "$(lab_pid mc-b)"
udp_bench_wait
# 400 ms: the retry delay, not B's pause (nor the client's 1 s timeout)
udp_bench_check "$out" $? 400000

retries=$(kstat "$PIN" retries)
gets=$(kstat "$PIN" kernel_gets)
lab_log "kernel gets $gets, retried $retries, late replies" \
	"$(kstat "$PIN" retry_late)"
lab_ne "reads retried" 0 "$retries"
lab_ok "only the reads B held were retried, not all of B's share" \
	test $((retries * 20)) -lt "$gets"
lab_ne "B's late replies dropped in the kernel" 0 "$(kstat "$PIN" retry_late)"
lab_eq "B is readable again after the hold (flag cleared)" 0 \
	"$(kbe_field "$PIN" 2 flags)"
lab_ok "B took reads again after waking up" \
	test "$(kbe_stat "$PIN" 2 hits)" -gt 0 -a \
	"$(kbe_stat "$PIN" 2 gets)" -gt "$g0"
lab_eq "B stays up: one silence is one failure of two" 1 \
	"$(kbe_state "$PIN" 2)"
lab_done
