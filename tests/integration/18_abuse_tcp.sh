#!/bin/bash
# Misbehaving clients over TCP (tests/tools/mcabuse.py): 300 connections at
# once, a set cut short (nothing stored anywhere), clients that hang up or
# reset with megabytes of replies pending, a reader that reads late, a
# request in pieces, an idle connection.  kmagentd must answer correctly
# throughout, survive, and not leak: its open file count after a second
# round of the connection cases is what it was after the first.
. "$(dirname "$0")/lib.sh"

lab_two_backends
# shellcheck disable=SC2086
lab_kmagentd p -p 11210 -s $M1 -s $M2 ${KM_EXTRA_ARGS:-}

fds() { ls "/proc/$(lab_pid km-p)/fd" 2>/dev/null | wc -l; }
abuse() { lab_in c "$LAB_PY" "$LAB_ROOT/tests/tools/mcabuse.py" "$@" $P $M1 $M2; }

# backend connections are pooled: memcached's total_connections counts
# every connection it ever accepted
total_conns() {
	printf 'stats\r\n' | lab_mc c "$1" raw | tr -d '\r' |
		awk '$2 == "total_connections" { print $3 }'
}
t1=$(total_conns $M1)
lab_log "round 1"
abuse
lab_eq "round 1: every case right" 0 $?
sleep 1
n1=$(fds)
t2=$(total_conns $M1)
lab_ok "backend connections pooled: m1 accepted $((t2 - t1)) connections for the ~400 client connections of round 1" \
	test $((t2 - t1)) -le 20
lab_log "round 2 (the connection cases only)"
abuse --quick
lab_eq "round 2: every case right" 0 $?
# pooled backend connections come and go (workers x backends x -i, plus
# the probes'), and a loaded host may still be closing the hung-up
# clients' sockets: a leak of one per client connection would be
# hundreds, and would not go away
for ((i = 0; i < 100; i++)); do
	n2=$(fds)
	[ "$n2" -le "$((n1 + 8))" ] && break
	sleep 0.1
done
lab_ok "no file descriptor leak: $n1 open after round 1, $n2 after round 2" \
	test "$n2" -le "$((n1 + 8))"
lab_ok "kmagentd still running" lab_alive km-p
lab_eq "and answering" STORED "$(lab_mc c $P set after ok)"
lab_done
