#!/bin/bash
# Null-fallback over TCP for every read form: with each key stored on one
# replica only (some on m1, some on m2, some on both, some on none), reads
# through kmagentd (get one key and many, gets, gat, gats, mg, quiet and
# pipelined) answer what one memcached holding all of them answers
# (tests/tools/mcfallback.py): a miss on the first replica is never the
# final answer while another replica has the key, and multi-key replies
# stay in request order.
. "$(dirname "$0")/lib.sh"

lab_judge_lab
lab_judge_kmagentd

lab_in c "$LAB_PY" "$LAB_ROOT/tests/tools/mcfallback.py" 198.18.0.1:11211 \
	198.18.0.4:11210 198.18.0.2:11211 198.18.0.3:11211
lab_eq "reads through kmagentd answer what one memcached with every key answers" 0 $?
lab_ok "kmagentd still running" lab_alive km-p
lab_done
