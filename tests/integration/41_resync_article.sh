#!/bin/bash
# The article's step 6, finished: memcached on B restarts empty; kmagentd
# sees it come back (warming: writes only), resyncs it from A, marks it up,
# and from then on B serves its share of the reads by itself: no fallback
# (kmagentd's counters and B's own get_hits prove it).  Then B restarts
# again within one probe interval (no probe fails): memcached's pid and
# uptime reveal the restart, and B is resynced again before serving reads.
. "$(dirname "$0")/lib.sh"

N=2000
lab_init
. "$(dirname "$0")/ops_lib.sh"
lab_host a 198.18.0.1
lab_host b 198.18.0.2
lab_host p 198.18.0.4
lab_host c 198.18.0.10
A=198.18.0.1:11211 B=198.18.0.2:11211 P=198.18.0.4:11210
lab_memcached a 11211
lab_memcached b 11211
# probes every 500 ms, 3 failures to go down: a restart taking less than
# a probe interval fails at most one probe and cannot look like an outage
lab_kmagentd p -p 11210 -s $A -s $B --probe-interval 500 \
	--probe-timeout 200 --fall 3 --rise 1 -v

lab_eq "$N keys written through kmagentd" "stored $N" \
	"$(ops_py c fill $P $N k 7 3000)"
lab_eq "B holds all of them" $N "$(ops_py c count $B $N k)"

lab_log "step 4: B stops"
lab_kill mc-b TERM
lab_ok "kmagentd marks B down" ops_wait_state $B down . 10
lab_log "step 6: B starts again, empty"
lab_restart mc-b
lab_ok "B goes warming -> up after a resync" \
	ops_wait_state $B up "resync done" 15
log=${LAB_LOG[km-p]}
lab_ok "the log shows down -> warming" grep -q "$B: down -> warming" "$log"
lab_ok "the log shows warming -> up (resync done)" \
	grep -q "$B: warming -> up (resync done" "$log"
j=$(ctl -j backends)
lab_eq "the resync copied every key into B" $N \
	"$(jget "$j" '[b for b in d["backends"] if b["name"] == "'$B'"][0]["resync"]["copied"]')"
lab_eq "B holds every key again" $N "$(ops_py c count $B $N k)"
lab_eq "a copied key kept its flags and TTL" 1 \
	"$(ops_py c mg $B k5 | awk '$3 == "f7" && substr($4, 2) > 2900 && substr($4, 2) <= 3000 { print 1 }')"

lab_log "step 7: every key read through kmagentd"
s0=$(ctl -j stats -i 0)
# less kmagentd's reads of its own keys on B (every fence round)
hits_b0=$(ops_py c hits_but $B kmagent)
out=$(ops_py c getall $P $N k)
lab_eq "every read is a hit with the right value" "hits $N misses 0 wrong 0" "$out"
s1=$(ctl -j stats -i 0)
hits_b1=$(ops_py c hits_but $B kmagent)
d() { echo $(($(jget "$s1" "$1") - $(jget "$s0" "$1"))); }
lab_eq "no read needed a fallback (user.fallbacks)" 0 "$(d 'd["user"]["fallbacks"]')"
req_a=$(d 'd["backends"][0]["user"]["requests"]')
req_b=$(d 'd["backends"][1]["user"]["requests"]')
lab_log "reads sent: A $req_a, B $req_b; B's own get_hits +$((hits_b1 - hits_b0))"
lab_eq "each read went to exactly one backend" $N $((req_a + req_b))
lab_ok "B served its share of the reads ($req_b of $N)" \
	test "$req_b" -gt $((N / 4))
lab_eq "B answered each of its reads with a hit (its get_hits)" \
	"$req_b" $((hits_b1 - hits_b0))

lab_log "B restarts within one probe interval"
lab_restart mc-b
lab_ok "the restart is detected: up -> warming (restarted, pid changed)" \
	ops_wait_log "$log" "$B: up -> warming \(restarted" 1 10
lab_ok "B is resynced again and up" \
	ops_wait_log "$log" "$B: warming -> up \(resync done" 2 15
lab_not "no probe took B down in between" \
	grep -qE "$B: (up|warming) -> down" <(grep -A1000 "restarted" "$log")
lab_eq "B holds every key again" $N "$(ops_py c count $B $N k)"
lab_done
