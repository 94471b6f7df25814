#!/bin/bash
# Health sees what clients see: a backend that answers the health probe
# (`stats`) and nothing else is taken down after a few failed requests,
# even at a low request rate where a good probe comes between any two
# request timeouts, and stays down while it still answers nothing else.
# memcached cannot produce this fault: a tap in front of m2's memcached
# (tests/tools/mctap.py, SIGHUP) forwards `stats` and swallows the rest.
#  1. both up; 40 keys written through kmagentd
#  2. m2 stalls: 2 gets a second for 30 s, every one must be answered with
#     its value; only the first few (before --fall failed requests) may
#     wait for the request timeout, none after the first 10 s
#  3. m2 answers again: it comes back through the rise path, serves reads
# Defaults of kmagentd (timeout 1000 ms, probes every 1000 ms, fall 2).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ops_lib.sh"

STALL_MS=500 # a get slower than this waited for the backend timeout
# m2: memcached on its loopback, the tap on its lab address
lab_two_backends --tap
# shellcheck disable=SC2086
lab_kmagentd p -p 11210 -s $M1 -s $M2 -v ${KM_EXTRA_ARGS:-}
lab_ok "m2 up" ops_wait_state $M2 up . 10

lab_log "1. both up: 40 keys"
seq_out=$(for i in $(seq 1 40); do echo "set st-$i v$i"; done |
	lab_mc c --timeout 5 $P seq)
lab_eq "40 keys written" "failed 0" "$(printf '%s\n' "$seq_out" | grep '^failed')"

lab_log "2. m2 answers probes only; 2 gets a second for 30 s"
kill -HUP "$(lab_pid tap-m2)"
seq_out=$(for i in $(seq 1 60); do echo "get st-$((i % 40 + 1)) v$((i % 40 + 1))"; done |
	lab_mc c --timeout 5 --pace-ms 500 $P seq)
# per line: ok|FAIL MS get KEY VALUE, one every 500 ms
stalled=$(printf '%s\n' "$seq_out" | awk -v s=$STALL_MS '$1 ~ /^(ok|FAIL)$/ && $2 > s' | wc -l)
late=$(printf '%s\n' "$seq_out" | awk -v s=$STALL_MS '$1 ~ /^(ok|FAIL)$/ && NR > 20 && $2 > s' | wc -l)
printf '%s\n' "$seq_out" | awk -v s=$STALL_MS '$1 ~ /^(ok|FAIL)$/ && ($2 > s || $1 == "FAIL") { print "# slow or failed (line " NR "): " $0 }'
lab_log "m2 stalled: $stalled of 60 gets over 30 s waited > $STALL_MS ms, $late of them after the first 10 s"
lab_eq "every get answered with its value" "failed 0" \
	"$(printf '%s\n' "$seq_out" | grep '^failed')"
lab_ok "at most 4 gets waited for the request timeout ($stalled)" \
	test "$stalled" -le 4
lab_eq "no get waited for it after the first 10 s" 0 "$late"
lab_ok "m2 is down on failed requests" ops_wait_state $M2 down "timeout" 1
lab_log "m2: $(jget "$(ctl -j backends)" '[b for b in d["backends"] if b["name"] == "'$M2'"][0]["reason"]')"
lab_ok "the tap forwarded probes meanwhile (stats lines)" \
	test "$(grep -c "b'stats'" "$taplog")" -gt 30

lab_log "3. m2 answers again: back through the rise path"
kill -USR2 "$(lab_pid tap-m2)"
lab_ok "m2 up again within 15 s" ops_wait_state $M2 up . 15
lab_mc m2 127.0.0.1:11211 set only-m2 here >/dev/null
readable=0
for ((i = 0; i < 50; i++)); do
	[ "$(lab_mc c $P get only-m2)" == here ] && readable=1 && break
	sleep 0.2
done
lab_eq "kmagentd reads from m2 again" 1 $readable
lab_ok "kmagentd still running" lab_alive km-p
lab_done
