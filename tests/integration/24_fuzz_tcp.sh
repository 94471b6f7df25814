#!/bin/bash
# Differential protocol fuzzing (tests/tools/mcfuzz.py): random streams of
# valid, nearly valid and broken text and meta requests, pipelined or cut at
# random byte boundaries, sent to a fresh memcached and to kmagentd built
# with ASan/UBSan (build-san/kmagentd) in front of two fresh memcacheds: every
# reply byte for byte equal (cas values compared structurally), some steps
# read late, the two replicas equal after every step (each key the step
# names read from both), and no sanitizer report from kmagentd, leaks at
# exit included.  Half-closed streams: 25_hostile_tcp.sh.
#
#   FUZZ_SECS=N   how long (default 40, seed 1; `make fuzz`: 600, a new seed)
#   FUZZ_SEED=N   replay one run (the seed is printed first)
. "$(dirname "$0")/lib.sh"

lab_san_kmagentd
lab_judge_lab
lab_judge_kmagentd
lab_log "kmagentd: $LAB_KMAGENTD (sanitizers)"

# make test: one fixed seed, the same requests every run; make fuzz (which
# sets FUZZ_SECS): a new seed each time
seed=${FUZZ_SEED:-}
[ -z "$seed" ] && [ -z "${FUZZ_SECS:-}" ] && seed=1
args=(--secs "${FUZZ_SECS:-40}")
[ -n "$seed" ] && args+=(--seed "$seed")
lab_in c "$LAB_PY" "$LAB_ROOT/tests/tools/mcfuzz.py" "${args[@]}" \
	--replicas 198.18.0.2:11211,198.18.0.3:11211 \
	198.18.0.1:11211 198.18.0.4:11210
lab_eq "every reply through kmagentd equals memcached's (mcfuzz exit)" 0 $?
lab_ok "kmagentd survived the run" lab_alive km-p
lab_eq "and still answers" STORED "$(lab_mc c 198.18.0.4:11210 set after ok)"

# a clean exit, so that LeakSanitizer looks at what is left
log=${LAB_LOG[km-p]}
lab_kill km-p TERM
reports=$(grep -E -c 'ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: .*Sanitizer' "$log")
lab_eq "no sanitizer report in kmagentd's output" 0 "$reports"
[ "$reports" -eq 0 ] || grep -E -A12 'Sanitizer|runtime error:' "$log" | head -n 60 |
	sed 's/^/# | /'
lab_done
