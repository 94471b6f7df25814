#!/bin/bash
# Write order (tests/tools/mcorder.py): one connection's writes reach every
# replica in the order sent, with real memcacheds read directly afterwards.
# A pipelined cas (and ms with C) then delete of the same key: the cas's
# copy to the other replica must not land after the delete; a get that
# falls back to the secondary, then a set of its key: the get must see the
# value from before the set, as a single memcached would answer.
. "$(dirname "$0")/lib.sh"

lab_init
lab_host m1 198.18.0.2
lab_host m2 198.18.0.3
lab_host p 198.18.0.4
lab_host c 198.18.0.10
lab_memcached m1 11211
lab_memcached m2 11211
# shellcheck disable=SC2086
lab_kmagentd p -p 11210 -s 198.18.0.2:11211 -s 198.18.0.3:11211 \
	${KM_EXTRA_ARGS:-}

lab_in c "$LAB_PY" "$LAB_ROOT/tests/tools/mcorder.py" --rounds 30 \
	198.18.0.4:11210 198.18.0.2:11211 198.18.0.3:11211
lab_eq "every round's replicas and replies as in client order (mcorder exit)" \
	0 $?
lab_ok "kmagentd still running" lab_alive km-p
lab_done
