#!/bin/bash
# Read-repair against a client delete that lands between its fetch and its
# copy.  kmagentd reads KEY from A after a miss on B (B restarted: it may
# be incomplete, so repair is allowed), fetches KEY from A and adds it to
# B.  tests/tools/mcrace.py in front of A deletes KEY there just before
# the repair asks A whether it still holds KEY, as a client delete would:
# kmagentd must take its copy back from B (repair.undone), or the deleted
# value would live on in B and come back through the next fallback.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ops_lib.sh"

lab_init
lab_host a 198.18.0.1
lab_host b 198.18.0.2
lab_host p 198.18.0.4
lab_host c 198.18.0.10
A=198.18.0.1:11211 B=198.18.0.2:11211 P=198.18.0.4:11210

# the key: B first, A second
KEY=$(ops_key_first race $B $A $B) ||
	lab_die "no key of race0..race200 hashes to B first"
lab_log "$KEY hashes to B first"

# A: memcached on its loopback, the race relay on its lab address
LAB_ADDR[a]=127.0.0.1
lab_memcached a 11211
LAB_ADDR[a]=198.18.0.1
racelog=$LAB_DIR/race.log
lab_spawn race-a a "$LAB_PY" "$LAB_ROOT/tests/tools/mcrace.py" $A \
	127.0.0.1:11211 --key "$KEY" --log "$racelog"
LAB_WAIT[race-a]=$A
lab_wait_ready race-a
lab_memcached b 11211
lab_kmagentd p -p 11210 -s $A -s $B --probe-interval 200 -v

mc() { lab_mc c --timeout 2 "$@"; }
adirect() { lab_mc a --timeout 2 127.0.0.1:11211 "$@"; }

lab_restart mc-b
lab_ok "B restarted and resynced (so repair may write to it)" \
	ops_wait_state $B up "resync done" 15
lab_eq "$KEY written to A only" STORED "$(adirect set "$KEY" doomed)"
lab_not "B lacks $KEY" mc $B get "$KEY"
s0=$(ctl -j stats -i 0)

kill -USR1 "$(lab_pid race-a)"
lab_ok "the relay is armed" ops_wait_log "$racelog" '^armed$' 1 5
lab_eq "get through kmagentd: the value, by fallback to A" doomed \
	"$(mc $P get "$KEY")"
undone() { s1=$(ctl -j stats -i 0)
	[ $(($(jget "$s1" 'd["repair"]["undone"]') -
		$(jget "$s0" 'd["repair"]["undone"]'))) -eq 1 ]; }
ok=0
for _ in $(seq 50); do undone && ok=1 && break; sleep 0.1; done
lab_eq "the repaired copy was taken back (repair.undone +1)" 1 $ok
lab_ok "the delete landed before the repair's check" \
	grep -q "^deleted $KEY: DELETED$" "$racelog"
lab_ok "then the check reached A" grep -q '^forwarded$' "$racelog"
lab_not "A lacks $KEY (deleted)" adirect get "$KEY"
lab_not "B lacks $KEY (copy taken back)" mc $B get "$KEY"
lab_not "get through kmagentd: a miss, not the deleted value" \
	mc $P get "$KEY"
lab_eq "no repair error" 0 $(($(jget "$s1" 'd["repair"]["errors"]') -
	$(jget "$s0" 'd["repair"]["errors"]')))
lab_done
