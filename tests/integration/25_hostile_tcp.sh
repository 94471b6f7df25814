#!/bin/bash
# Hostile TCP clients, kmagentd against memcached (tests/tools/mchostile.py,
# tests/tools/mcfuzz.py):
#  1. half-closed connections: a pipeline, then shutdown(SHUT_WR): kmagentd
#     answers what memcached answers, then closes (fixed pipelines, then
#     10 s of fuzzed streams each half-closed, replicas compared after each)
#  2. an unread pipeline: a client pipelines 400 gets of 64 kB and reads
#     nothing for 3 s: another client is served meanwhile, and the late
#     reader gets memcached's whole reply
# kmagentd built with ASan/UBSan: no sanitizer report, leaks included.
. "$(dirname "$0")/lib.sh"

lab_san_kmagentd
lab_judge_lab
lab_judge_kmagentd
REF=198.18.0.1:11211 P=198.18.0.4:11210
HOSTILE=$LAB_ROOT/tests/tools/mchostile.py

lab_log "1. half-closed connections"
lab_in c "$LAB_PY" "$HOSTILE" halfclose $REF $P
lab_eq "every half-closed pipeline answered as memcached answers it, then closed" 0 $?
lab_in c "$LAB_PY" "$LAB_ROOT/tests/tools/mcfuzz.py" --seed 25 --secs 10 \
	--modes halfclose --replicas 198.18.0.2:11211,198.18.0.3:11211 $REF $P
lab_eq "fuzzed streams, some half-closed: replies and replicas equal (mcfuzz exit)" 0 $?

lab_log "2. a pipeline left unread"
lab_in c "$LAB_PY" "$HOSTILE" unread $REF $P --gets 400 --secs 3
lab_eq "unread pipeline: others served, the late reader gets it all" 0 $?

lab_ok "kmagentd survived" lab_alive km-p
log=${LAB_LOG[km-p]}
lab_kill km-p TERM
reports=$(grep -E -c 'ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: .*Sanitizer' "$log")
lab_eq "no sanitizer report in kmagentd's output" 0 "$reports"
[ "$reports" -eq 0 ] || grep -E -A12 'Sanitizer|runtime error:' "$log" | head -n 40 |
	sed 's/^/# | /'
lab_done
