#!/bin/bash
# A backend that comes back with the same memcached process is not flushed:
# only the writes it missed (kmagentd's journal) are replayed onto it.
#   1. m2 paused 3.5 s (SIGSTOP) while keys are overwritten, deleted and
#      added through kmagentd: on its return m2 holds every untouched key
#      still (no flush_all reached it), the new values, not the deleted
#      keys, and the new keys.
#   2. drain --writes, writes, undrain: m2 serves no read before the
#      writes it missed are replayed; then it holds them.
#   3. a journal too small for what m2 missed (--journal-max 5): m2 is
#      flushed and resynced in full, once.
. "$(dirname "$0")/lib.sh"

N=500
. "$(dirname "$0")/ops_lib.sh"
lab_two_backends
HEALTH=(--probe-interval 200 --probe-timeout 200 --fall 2 --rise 2
	--timeout 500 -v)
lab_kmagentd p -p 11210 -s $M1 -s $M2 "${HEALTH[@]}"

lab_eq "$N keys written through kmagentd" "stored $N" \
	"$(ops_py c fill $P $N keep-)"
lab_eq "m2 holds them" $N "$(ops_py c count $M2 $N keep-)"

lab_log "1. m2 pauses for 3.5 s"
kill -STOP "$(lab_pid mc-m2)"
lab_ok "m2 marked down" ops_wait_state $M2 down . 10
lab_eq "50 keys overwritten meanwhile" "failed 0" \
	"$(ops_py c setv $P keep- 0 50 newer-)"
lab_eq "20 keys deleted meanwhile" "failed 0" \
	"$(ops_py c del $P keep- 100 120)"
lab_eq "30 keys added meanwhile" "failed 0" \
	"$(ops_py c setv $P added- 0 30 added-)"
j=$(ctl -j backends)
lab_eq "m2's journal holds the 100 keys it missed" 100 \
	"$(jget "$j" '[b for b in d["backends"] if b["name"] == "'$M2'"][0]["journal"]["keys"]')"
sleep 2
kill -CONT "$(lab_pid mc-m2)"
lab_ok "m2 up again after a replay" \
	ops_wait_state $M2 up "replayed 100 missed keys" 10
lab_eq "m2 was never flushed (its own cmd_flush)" 0 \
	"$(ops_py c stat $M2 cmd_flush)"
lab_eq "m2 kept every key nobody touched" "hits 380 misses 0 wrong 0" \
	"$(ops_py c getv $M2 keep- 120 $N keep-)"
lab_eq "m2 holds the values written while it was away" \
	"hits 50 misses 0 wrong 0" "$(ops_py c getv $M2 keep- 0 50 newer-)"
lab_eq "m2 lost the keys deleted while it was away" \
	"hits 0 misses 20 wrong 0" "$(ops_py c getv $M2 keep- 100 120 keep-)"
lab_eq "m2 holds the keys added while it was away" \
	"hits 30 misses 0 wrong 0" "$(ops_py c getv $M2 added- 0 30 added-)"
j=$(ctl -j backends)
lab_eq "m2's journal is empty again" 0 \
	"$(jget "$j" '[b for b in d["backends"] if b["name"] == "'$M2'"][0]["journal"]["keys"]')"

lab_log "2. drain --writes, 40 writes, undrain"
lab_ok "drain m2 --writes" ctl drain $M2 --writes
lab_eq "40 keys overwritten while m2 is drained" "failed 0" \
	"$(ops_py c setv $P keep- 200 240 drained-)"
lab_ok "undrain m2" ctl undrain $M2
lab_eq "right after undrain every read has the new value" \
	"hits 40 misses 0 wrong 0" "$(ops_py c getv $P keep- 200 240 drained-)"
lab_ok "m2 up after replaying what it missed while drained" \
	ops_wait_state $M2 up "replayed 40 missed keys" 10
lab_ok "the log says why m2 went warming" \
	grep -q "$M2: up -> warming (undrain: replaying" "${LAB_LOG[km-p]}"
lab_eq "m2 holds the values written while drained" \
	"hits 40 misses 0 wrong 0" "$(ops_py c getv $M2 keep- 200 240 drained-)"
lab_eq "still no flush on m2" 0 "$(ops_py c stat $M2 cmd_flush)"

lab_log "3. a journal that overflows: flush and full resync"
lab_kill km-p TERM
lab_kmagentd p -p 11210 -s $M1 -s $M2 "${HEALTH[@]}" --journal-max 5
kill -STOP "$(lab_pid mc-m2)"
lab_ok "m2 marked down" ops_wait_state $M2 down . 10
lab_eq "10 keys overwritten meanwhile" "failed 0" \
	"$(ops_py c setv $P keep- 300 310 over-)"
j=$(ctl -j backends)
lab_eq "m2's journal is lost (full)" "True journal full" \
	"$(jget "$j" '[(b["journal"]["lost"], b["journal"]["why"]) for b in d["backends"] if b["name"] == "'$M2'"][0][0]') $(jget "$j" '[b for b in d["backends"] if b["name"] == "'$M2'"][0]["journal"]["why"]')"
kill -CONT "$(lab_pid mc-m2)"
lab_ok "m2 up again after a full resync" \
	ops_wait_state $M2 up "resync done, [0-9]+ keys copied" 10
lab_ok "the log says why it was flushed" \
	grep -q "$M2: journal full: flushed and resynced in full" \
	"${LAB_LOG[km-p]}"
lab_eq "m2 was flushed once" 1 "$(ops_py c stat $M2 cmd_flush)"
lab_eq "m2 holds the newest values" "hits 10 misses 0 wrong 0" \
	"$(ops_py c getv $M2 keep- 300 310 over-)"
lab_eq "m2 holds every other key again" "hits 50 misses 0 wrong 0" \
	"$(ops_py c getv $M2 keep- 0 50 newer-)"
lab_done
