#!/bin/bash
# Reply framing: no client input can shift the replies of the pipelined
# backend connection that clients share (kmagentd -t 1 -i 1: one per
# backend).  tests/tools/mcframing.py: an attacker sends inputs whose reply
# shape is odd (quiet meta commands, repeated q flags, a noreply after a NUL,
# an ms whose data memcached reads as a command...) while a victim reads its
# values: the victim gets exactly its own, the attacker exactly what a
# reference memcached answers.  No backend times out or is marked down.
# Then a backend goes out of step (a relay in front of m2 sends another
# key's VALUE block before one reply): only the requests on that connection
# fail, they fall back to m1, and no client ever gets another's value.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ops_lib.sh"

lab_judge_lab
FRAMING=$LAB_ROOT/tests/tools/mcframing.py
M2R=198.18.0.3:11212 # the relay in front of m2's memcached
lab_spawn garble m2 "$LAB_PY" "$FRAMING" garble $M2R 198.18.0.3:11211
LAB_WAIT[garble]=$M2R
lab_wait_ready garble
lab_kmagentd p -p 11210 -t 1 -i 1 -s 198.18.0.2:11211 -s $M2R
lab_ok "both backends up" ops_wait_state $M2R up . 10

stat() {
	printf 'stats\r\n' | lab_mc c 198.18.0.4:11210 raw | tr -d '\r' |
		awk -v n="$1" '$2 == n { print $3 }'
}
be_field() { # be_field ID FIELD: from "STAT kmagent_backend_ID ... FIELD=N"
	printf 'stats\r\n' | lab_mc c 198.18.0.4:11210 raw | tr -d '\r' |
		grep "^STAT kmagent_backend_$1 " | tr ' ' '\n' |
		sed -n "s/^$2=//p"
}

lab_log "hostile inputs, a victim in between"
lab_in c "$LAB_PY" "$FRAMING" hostile 198.18.0.1:11211 198.18.0.4:11210
lab_eq "every victim reply its own, every attacker reply memcached's" 0 $?
lab_eq "no backend request timed out" 0 "$(stat kmagent_backend_timeouts)"
lab_eq "m1: no reply out of step" 0 "$(be_field 1 errors)"
lab_eq "m2: no reply out of step" 0 "$(be_field 2 errors)"
lab_eq "m1 still up" up "$(jget "$(ctl -j backends)" 'd["backends"][0]["state"]')"
lab_eq "m2 still up" up "$(jget "$(ctl -j backends)" 'd["backends"][1]["state"]')"

lab_log "m2's stream goes out of step once"
lab_in c "$LAB_PY" "$FRAMING" garbled 198.18.0.4:11210
lab_eq "victims only ever got their own values" 0 $?
lab_ok "the block out of place was caught (m2 errors counted)" \
	test "$(be_field 2 errors)" -ge 1
lab_eq "m1 saw nothing wrong" 0 "$(be_field 1 errors)"
lab_ok "kmagentd still running" lab_alive km-p
lab_eq "and answering" STORED "$(lab_mc c 198.18.0.4:11210 set after ok)"
lab_done
