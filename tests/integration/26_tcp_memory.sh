#!/bin/bash
# Bounded memory (issue 17): clients that pipeline gets of a 1 MB value and
# never read, one get naming that key 500 times and a gat naming it 200
# times (not read) make kmagentd grow by less than 256 MB (VmHWM against
# VmRSS before, from /proc/PID/status), while another client is served;
# the memory goes back once they leave.  Before: 4.0-4.5 GB, and +1.9 GB
# for the multi-get.  Many clients together are held to --reply-memory.
. "$(dirname "$0")/lib.sh"

lab_two_backends
Q=198.18.0.4:11212
# shellcheck disable=SC2086
lab_kmagentd p -p 11210 -s $M1 -s $M2 ${KM_EXTRA_ARGS:-}
# a small total bound, for the many-clients run
# shellcheck disable=SC2086
LAB_LABEL=km-q lab_kmagentd p -p 11212 -s $M1 -s $M2 --reply-memory 32m \
	${KM_EXTRA_ARGS:-}

mem() {
	lab_in c "$LAB_PY" "$LAB_ROOT/tests/tools/mcmemory.py" "$1" $P \
		"$(lab_pid km-p)" "${@:2}"
}

mem pipeline --conns 2 --gets 1100
lab_eq "two connections pipelining 1,100 gets of 1 MB, never read" 0 $?
mem multiget --keys 500
lab_eq "one get of 500 x a 1 MB key, read" 0 $?
# to both replicas: 400 MB of replies if it were not windowed
mem multiget --keys 200 --gat --noread
lab_eq "one gat of 200 x a 1 MB key, never read" 0 $?
# 40 clients that each hold --conn-buffer (4 MB) would hold 160 MB
lab_in c "$LAB_PY" "$LAB_ROOT/tests/tools/mcmemory.py" pipeline $Q \
	"$(lab_pid km-q)" --conns 40 --gets 100 --warm --bound 100
lab_eq "40 connections, 4 MB each, held to --reply-memory 32m" 0 $?
lab_ok "kmagentd still running" lab_alive km-p
lab_eq "and answering" STORED "$(lab_mc c $P set after ok)"
lab_done
