#!/bin/bash
# TCP half-close and idle clients (issue 17).  A client that sends its
# requests and shuts its side (shutdown(SHUT_WR)) is answered as memcached
# answers it, every request before the FIN (a set whose data came with the
# FIN too), then closed; 500 such clients that never close do not hold
# kmagentd's -n slots; --idle-timeout closes a silent client, not a busy one.
. "$(dirname "$0")/lib.sh"

lab_judge_lab
R=198.18.0.1:11211 M1=198.18.0.2:11211 M2=198.18.0.3:11211
P=198.18.0.4:11210 Q=198.18.0.4:11212
# -n 200 and no idle timeout: half-closed clients must go by themselves
# shellcheck disable=SC2086
lab_kmagentd p -p 11210 -s $M1 -s $M2 -n 200 --idle-timeout 0 \
	${KM_EXTRA_ARGS:-}
# shellcheck disable=SC2086
LAB_LABEL=km-q lab_kmagentd p -p 11212 -s $M1 -s $M2 --idle-timeout 2 \
	${KM_EXTRA_ARGS:-}

hc() { lab_in c "$LAB_PY" "$LAB_ROOT/tests/tools/mchalfclose.py" "$@"; }
fds() { ls "/proc/$(lab_pid km-p)/fd" 2>/dev/null | wc -l; }
curr() {
	printf 'stats\r\n' | lab_mc c "$1" raw | tr -d '\r' |
		awk -v k="$2" '$2 == k { print $3 }'
}

hc pipeline $P $R $M1 $M2
lab_eq "pipelined requests + FIN" 0 $?
hc window $P $R
lab_eq "long get and gat, a delete after them" 0 $?
hc setfin $P $M1 $M2 -n 50
lab_eq "set + FIN in one segment" 0 $?
hc empty $P
lab_eq "FIN alone" 0 $?

fd0=$(fds)
hc flood $P -n 250 -r 2
lab_eq "500 half-closed clients with -n 200" 0 $?
# the stats connection itself is the one left
for ((i = 0; i < 50; i++)); do
	[ "$(curr $P curr_connections)" == 1 ] && break
	sleep 0.1
done
lab_eq "no client connection left open" 1 "$(curr $P curr_connections)"
fd1=$(fds)
lab_ok "descriptors back: $fd0 before the flood, $fd1 after" \
	test "$fd1" -le "$((fd0 + 4))"

hc idle $Q 2
lab_eq "idle timeout" 0 $?
lab_ok "kmagent_idle_kicks counts it" \
	test "$(curr $Q kmagent_idle_kicks)" -ge 1
lab_ok "kmagentd still running" lab_alive km-p
lab_done
