#!/bin/bash
# Writes of the same keys from many connections, no fault at all: eight
# clients set, add, append and delete ten keys as fast as they are
# answered, through a kmagentd with two workers and two connections per
# backend per worker (so that their writes take different backend
# connections).  Afterwards both replicas must hold the same value and
# flags for every key: a key's writes reach every replica in one order
# (engine.c, "one order a key").  Before, a few seconds of this left
# keys different on the two replicas, and an add answered NOT_STORED could
# be read later.  Then a pipeline on one connection, behind a write that
# waits for its key's turn, is still answered in order.
. "$(dirname "$0")/lib.sh"

. "$(dirname "$0")/ops_lib.sh"
lab_two_backends
lab_kmagentd p -p 11210 -s $M1 -s $M2 -t 2 -i 2
SK=$LAB_ROOT/tests/tools/mcsamekey.py

for round in 1 2 3; do
	out=$(lab_in c "$LAB_PY" "$SK" run $P --keys 10 --clients 8 \
		--seconds 3 --seed $round)
	lab_log "round $round: $out"
	lab_eq "round $round: no write failed" 0 "${out##*errors }"
	cmp=$(lab_in c "$LAB_PY" "$SK" compare --keys 10 $M1 $M2)
	lab_eq "round $round: both replicas hold the same value for every key" \
		"keys 10 same 10 divergent 0" "$(head -1 <<<"$cmp")"
	tail -n +2 <<<"$cmp" | sed 's/^/# /'
done

lab_log "a pipeline behind a write that waits for its turn"
got=$(printf 'set same0 0 0 1\r\na\r\nappend same0 0 0 1\r\nb\r\nget same0\r\ndelete same0\r\nget same0\r\n' |
	lab_mc c --quiet-ms 500 $P raw | tr -d '\r' | tr '\n' '|')
lab_eq "answered in order, each seeing the one before" \
	"STORED|STORED|VALUE same0 0 2|ab|END|DELETED|END|" "$got"
lab_done
