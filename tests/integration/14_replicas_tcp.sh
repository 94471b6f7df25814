#!/bin/bash
# Replica consistency over TCP: after every kind of write through kmagentd
# (text and meta, noreply, cas with replicas whose cas counters differ,
# TTL changes by touch/gat/gats/mg T, flush_all), each backend holds what a
# single memcached given the same writes holds (tests/tools/mcreplicas.py).
# A replica left behind would serve a stale value after a failover.
. "$(dirname "$0")/lib.sh"

lab_judge_lab
lab_judge_kmagentd

lab_in c "$LAB_PY" "$LAB_ROOT/tests/tools/mcreplicas.py" 198.18.0.1:11211 \
	198.18.0.4:11210 198.18.0.2:11211 198.18.0.3:11211
lab_eq "every replica holds what a single memcached holds (mcreplicas exit)" 0 $?
lab_ok "kmagentd still running" lab_alive km-p
lab_done
