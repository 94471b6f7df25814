#!/bin/bash
# The randomized sequence tester (docs/operations.md, "What the chaos test
# checks") on a fixed set of seeds, each in a lab of its own
# (tests/integration/chaos.sh): four memcached, two kmagentd with the kernel
# path, clients over TCP and UDP.  Only what today's kmagentd survives
# runs here (CHAOS_CLASSES, CHAOS_OPS): one writer a key (--owners), no
# cas, no nemesis.  Failing today (issue 16): every nemesis class, at once
# for mc-kill, mc-pause, km-term, reload-add, reload-remove,
# reload-replicas, drain-writes, partition and loss, in some runs for
# drain, resync, forget and km-kill (2 of 14); cas now and then with no
# fault (its token is one replica's), always with one; concurrent writers
# of a key.  Add a class here once its fix lands (CHAOS_CLASSES=km-kill
# tries one).  Then the checker is checked: a run with a planted bug
# (every backend flushed behind kmagentd's back) must fail and report
# lost writes.
#
#   CHAOS_SECS=N    seconds a seed (default 20)
. "$(dirname "$0")/lib.sh"
lab_need_root
here=$(cd "$(dirname "$0")" && pwd)
secs=${CHAOS_SECS:-20}
ops=${CHAOS_OPS:-get,set,delete,add,incr}
classes=${CHAOS_CLASSES:-none}

# chaos WHAT ARGS...: one run; its output as comments, $out its summary
chaos()
{
	local what=$1 t0
	shift
	t0=$(date +%s)
	out=$(bash "$here/chaos.sh" "$@" 2>&1)
	rc=$?
	# the first failing histories, then the summary
	sed -n '/^VIOLATION/,$p' <<<"$out" | grep -v '^# ' | head -n 80 |
		sed 's/^/# | /'
	grep -E '^# (seed|[0-9]+ indet|violations|CRASH)' <<<"$out" |
		sed 's/^/# | /'
	lab_log "$what: exit $rc in $(($(date +%s) - t0)) s"
}

for seed in 1 2 3; do
	chaos "seed $seed" --seed $seed --duration "$secs" --owners \
		--ops "$ops" --nemesis "$classes"
	lab_eq "seed $seed: no violation, no crash ($classes)" 0 $rc
	lab_ok "seed $seed: operations were made" \
		grep -qE '^# seed [0-9]+: [1-9][0-9]* operations' <<<"$out"
done

chaos "planted bug" --seed 4 --duration 8 --owners --ops "$ops" \
	--nemesis none --plant flush
lab_eq "a planted flush of every backend fails the run" 1 $rc
lab_ok "... as lost acknowledged writes" \
	grep -qE '^# violations: .*lost [1-9]' <<<"$out"
lab_done
