#!/bin/bash
# A cas whose primary goes silent mid-request.  kmagentd sends a cas to
# the key's primary only (its cas unique is that replica's), and copies
# the value to the others once the primary said STORED.  When the primary
# never answers, the cas reached no other replica: they still hold the
# last acknowledged value and missed nothing.  Before, they were
# journaled as missing the write, and the replay then deleted their value
# (no replica up to copy it from): the last acknowledged write was lost.
. "$(dirname "$0")/lib.sh"

. "$(dirname "$0")/ops_lib.sh"
lab_two_backends
lab_kmagentd p -p 11210 -s 198.18.0.1:11211 -s 198.18.0.2:11211 \
	--timeout 300 --probe-interval 60000 --probe-timeout 200 -v

lab_eq "set k" STORED "$(lab_mc c $P set caskey v1)"
PRI=$(jget "$(ctl -j ring caskey)" 'd["replicas"][0]["name"]')
SEC=$(jget "$(ctl -j ring caskey)" 'd["replicas"][1]["name"]')
lab_log "primary $PRI, other replica $SEC"
PRI_MC=mc-m${PRI:9:1}
unique=$(printf 'gets caskey\r\n' | lab_mc c $P raw | awk '/^VALUE/ { print $5 }' | tr -d '\r')
lab_ok "gets gave a cas unique" test -n "$unique"
kill -STOP "$(lab_pid "$PRI_MC")"
out=$(printf 'cas caskey 0 0 2 %s\r\nv2\r\n' "$unique" |
	lab_mc c --quiet-ms 1500 $P raw | tr -d '\r')
lab_log "cas while the primary is silent: $out"
lab_ok "the cas is not acknowledged" test "$out" != STORED
journal() { jget "$(ctl -j backends)" \
	'[b for b in d["backends"] if b["name"] == "'$1'"][0]["journal"]["keys"]'; }
lab_eq "the other replica missed nothing" 0 "$(journal $SEC)"
lab_eq "... and holds the last acknowledged value" v1 \
	"$(lab_mc c $SEC get caskey)"
kill -CONT "$(lab_pid "$PRI_MC")"
sleep 0.5
lab_eq "the other replica still holds it" v1 "$(lab_mc c $SEC get caskey)"
got=$(lab_mc c $P get caskey)
lab_ok "read through kmagentd: the last acknowledged value or the cas's ($got)" \
	test "$got" == v1 -o "$got" == v2
lab_done
