#!/bin/bash
# The randomized sequence tester (docs/operations.md, "What the chaos test
# checks") on a fixed set of seeds, each in a lab of its own
# (tests/integration/chaos.sh): four memcached, kmagentd (with
# --state-dir) with the kernel path, clients over TCP and UDP.
#  - one kmagentd, TCP clients writing the same keys concurrently (every
#    operation, cas included), under the nemesis classes it survives
#    reliably today (CHAOS_CLASSES): kmagentd SIGTERM and SIGKILL,
#    memcached killed and restarted empty, forget, resync, drain and
#    drain --writes;
#  - seed 501, a regression: kmagentd killed and restarted among
#    memcached restarts flushed replicas and lost their journal;
#  - seed 7002, a regression: one kmagentd, TCP and UDP through the
#    kernel path, one writer a key, every nemesis class (reloads,
#    partitions, pauses and packet loss included);
#  - two kmagentd, TCP and UDP through the kernel path, one writer a key,
#    no fault;
#  - the checker checked: a run with a planted bug (every backend flushed
#    behind kmagentd's back) must fail and report lost writes.
# Not clean yet, so only in `make chaos`: two kmagentd under faults, and
# two kmagentd or the kernel path with concurrent writers of a key (not
# ordered across them).
#
#   CHAOS_SECS=N    seconds a seed (default 20)
. "$(dirname "$0")/lib.sh"
lab_need_root
here=$(cd "$(dirname "$0")" && pwd)
secs=${CHAOS_SECS:-20}
ops=${CHAOS_OPS:-get,set,delete,add,cas,incr}
classes=${CHAOS_CLASSES:-km-term,km-kill,mc-kill,forget,resync,drain,drain-writes}

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

for seed in 1 2; do
	chaos "seed $seed" --seed $seed --duration "$secs" --proxies 1 \
		--udp-frac 0 --ops "$ops" --nemesis "$classes"
	lab_eq "seed $seed: no violation, no crash ($classes)" 0 $rc
	lab_ok "seed $seed: operations were made" \
		grep -qE '^# seed [0-9]+: [1-9][0-9]* operations' <<<"$out"
done
chaos "seed 501 (regression)" --seed 501 --duration "$secs" --proxies 1 \
	--udp-frac 0 --ops "$ops" --nemesis mc-kill,km-term,km-kill
lab_eq "seed 501: no violation, no crash (mc-kill,km-term,km-kill)" 0 $rc
# a regression: a stale read at a handoff's end (the kernel fell back to a
# replica the workers no longer wrote), two replays deleting each other's
# only copy; one kmagentd, TCP and UDP, every nemesis class
chaos "seed 7002 (regression)" --seed 7002 --duration "$secs" --proxies 1 \
	--udp-frac 0.4 --owners --ops "$ops" --nemesis all
lab_eq "seed 7002, TCP and UDP, every nemesis class: no violation" 0 $rc
chaos "seed 3, two kmagentd" --seed 3 --duration "$secs" --owners \
	--ops get,set,delete,add,incr --nemesis none
lab_eq "seed 3, two kmagentd, TCP and UDP: no violation" 0 $rc

chaos "planted bug" --seed 4 --duration 8 --owners --ops get,set,delete,add,incr \
	--nemesis none --plant flush
lab_eq "a planted flush of every backend fails the run" 1 $rc
lab_ok "... as lost acknowledged writes" \
	grep -qE '^# violations: .*lost [1-9]' <<<"$out"
lab_done
