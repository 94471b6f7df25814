#!/bin/bash
# Replica consistency over TCP: after every kind of write through kmagentd
# (text and meta, noreply, cas with replicas whose cas counters differ,
# TTL changes by touch/gat/gats/mg T, flush_all), each backend holds what a
# single memcached given the same writes holds (tests/tools/mcreplicas.py).
# A replica left behind would serve a stale value after a failover.
. "$(dirname "$0")/lib.sh"

lab_init
lab_host r 198.18.0.1	# the reference: one memcached, direct
lab_host m1 198.18.0.2
lab_host m2 198.18.0.3
lab_host p 198.18.0.4
lab_host c 198.18.0.10
lab_memcached r 11211
lab_memcached m1 11211
lab_memcached m2 11211
# shellcheck disable=SC2086
lab_kmagentd p -p 11210 -s 198.18.0.2:11211 -s 198.18.0.3:11211 \
	${KM_EXTRA_ARGS:-}

lab_in c "$LAB_PY" "$LAB_ROOT/tests/tools/mcreplicas.py" 198.18.0.1:11211 \
	198.18.0.4:11210 198.18.0.2:11211 198.18.0.3:11211
lab_eq "every replica holds what a single memcached holds (mcreplicas exit)" 0 $?
lab_ok "kmagentd still running" lab_alive km-p
lab_done
