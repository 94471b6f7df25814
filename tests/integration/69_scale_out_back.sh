#!/bin/bash
# Ring changes are a handoff: scaling out and back resurrects nothing.
# Three memcached, replicas 2, 300 keys; a fourth backend added by reload;
# every odd key deleted and every even key overwritten; the fourth removed
# again by reload.  A backend that stopped being a replica of a key kept
# its old copy: when the key's replica set came back to it, that copy used
# to be served (74 of 150 deleted keys came back) and copied around.  Now
# a ring change is a handoff (docs/operations.md): a backend that leaves
# slots keeps their writes until every joiner is filled, then its copies
# are purged (md C<cas>); one that joins serves them only once filled.
# Checked
# through kmagentd with every backend in turn drained for reads, so that
# each replica's copy is the one read.  Then replicas 2 -> 3 -> 2 -> 3
# with writes in between: the same.  And the same when the configuration
# changes while kmagentd is stopped (a backend put back, replicas raised):
# a restarted kmagentd used to take every configured backend as filled, and
# served the copies a removed backend kept (the journal now keeps the ring
# every member was last filled for, and a start hands off from it).
. "$(dirname "$0")/lib.sh"

N=300
lab_init
. "$(dirname "$0")/ops_lib.sh"
for i in 1 2 3 4; do
	lab_host m$i 198.18.0.$i
	lab_memcached m$i 11211
done
lab_host p 198.18.0.10
lab_host c 198.18.0.20
M=(x 198.18.0.1:11211 198.18.0.2:11211 198.18.0.3:11211 198.18.0.4:11211)
P=198.18.0.10:11210
CONF=$LAB_DIR/kmagent.conf
conf() { # conf REPLICAS BACKEND-NUMBERS...
	local r=$1 i
	shift
	{
		echo "replicas $r"
		for i in "$@"; do echo "backend ${M[$i]}"; done
	} >"$CONF"
}
conf 2 1 2 3
lab_kmagentd p -p 11210 -c "$CONF" --probe-interval 200 --probe-timeout 200 -v \
	--state-dir "$LAB_DIR/state"
LOG=${LAB_LOG[km-p]}
all_up() {
	local i
	for i in "$@"; do ops_wait_state "${M[$i]}" up . 20 || return 1; done
}
# every key read with each backend drained in turn: no stale value, no
# deleted key, whichever replica answers
check_all() { # check_all WHAT VALUE-PREFIX BACKEND-NUMBERS...
	local what=$1 v=$2 i
	shift 2
	# each copy read in turn: the joined slots must be filled first
	lab_ok "$what: the ring handoff is over" ops_wait_handoff 20
	for i in "$@"; do
		ctl drain "${M[$i]}" >/dev/null
		lab_eq "$what, ${M[$i]} drained: deleted keys stay deleted" \
			"hits 0 misses $((N / 2)) wrong 0" \
			"$(ops_py c getv $P odd- 0 $((N / 2)) v0-)"
		lab_eq "$what, ${M[$i]} drained: overwritten keys read new" \
			"hits $((N / 2)) misses 0 wrong 0" \
			"$(ops_py c getv $P even- 0 $((N / 2)) $v)"
		ctl undrain "${M[$i]}" >/dev/null
	done
}

lab_eq "$((N / 2)) keys to delete later" "failed 0" \
	"$(ops_py c setv $P odd- 0 $((N / 2)) v0-)"
lab_eq "$((N / 2)) keys to overwrite later" "failed 0" \
	"$(ops_py c setv $P even- 0 $((N / 2)) v0-)"

lab_log "scale out: m4 added"
conf 2 1 2 3 4
lab_ok "reload adds m4" ctl reload
lab_ok "all up after the handoff" all_up 1 2 3 4
lab_eq "odd keys deleted" "failed 0" "$(ops_py c del $P odd- 0 $((N / 2)))"
lab_eq "even keys overwritten" "failed 0" \
	"$(ops_py c setv $P even- 0 $((N / 2)) v1-)"
lab_log "scale back: m4 removed"
conf 2 1 2 3
lab_ok "reload removes m4" ctl reload
lab_ok "all up after the handoff" all_up 1 2 3
lab_ok "backends that left slots had their copies purged" grep -q \
	"purging its copies of the ring slots it left" "$LOG"
sleep 1 # the joined slots' copy in add mode, in the background
check_all "after out and back" v1- 1 2 3

lab_log "replicas 2 -> 3 -> 2 -> 3, writes in between"
lab_eq "odd keys written again" "failed 0" \
	"$(ops_py c setv $P odd- 0 $((N / 2)) v2-)"
conf 3 1 2 3
lab_ok "replicas 3" ctl reload
lab_ok "all up" all_up 1 2 3
conf 2 1 2 3
lab_ok "replicas 2" ctl reload
lab_ok "all up" all_up 1 2 3
lab_eq "odd keys deleted" "failed 0" "$(ops_py c del $P odd- 0 $((N / 2)))"
lab_eq "even keys overwritten" "failed 0" \
	"$(ops_py c setv $P even- 0 $((N / 2)) v3-)"
conf 3 1 2 3
lab_ok "replicas 3 again" ctl reload
lab_ok "all up" all_up 1 2 3
check_all "after 2 -> 3 -> 2 -> 3" v3- 1 2 3

lab_log "m3 removed by reload, then put back while kmagentd is stopped"
conf 2 1 2
lab_ok "reload removes m3" ctl reload
lab_ok "the ring handoff is over" ops_wait_handoff 20
lab_eq "odd keys written again" "failed 0" \
	"$(ops_py c setv $P odd- 0 $((N / 2)) v4-)"
lab_eq "odd keys deleted" "failed 0" "$(ops_py c del $P odd- 0 $((N / 2)))"
lab_eq "even keys overwritten" "failed 0" \
	"$(ops_py c setv $P even- 0 $((N / 2)) v5-)"
lab_kill km-p TERM
conf 2 1 2 3
lab_restart km-p
lab_ok "the start saw the ring change" grep -q \
	"ring changed since the last run (2 backends, 2 replicas then)" "$LOG"
lab_ok "all up" all_up 1 2 3
check_all "m3 back after a restart" v5- 1 2 3

lab_log "replicas 2 -> 3 while kmagentd is stopped"
lab_eq "odd keys deleted" "failed 0" "$(ops_py c del $P odd- 0 $((N / 2)))"
lab_eq "even keys overwritten" "failed 0" \
	"$(ops_py c setv $P even- 0 $((N / 2)) v6-)"
lab_kill km-p TERM
conf 3 1 2 3
lab_restart km-p
lab_ok "all up" all_up 1 2 3
check_all "replicas 3 after a restart" v6- 1 2 3
lab_done
