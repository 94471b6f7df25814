#!/bin/bash
# make chaos: the randomized sequence tester for DURATION seconds in all,
# as runs of at most RUN seconds with seeds SEED, SEED+1, ... (a run's
# history is held in memory: keep runs short and replayable).  Prints each
# run's summary and the violations by class over all runs; exit 1 if a
# run found a violation or crashed, 2 if a lab could not be built.
#
#   scripts/chaos.sh SEED DURATION [mcchaos.py options]   (RUN=120 by default)
set -u
cd "$(dirname "$0")/.."
seed=${1:?seed} total=${2:?duration}
shift 2
run=${RUN:-120}
left=$total rc=0 runs=0 failed=()
declare -A classes=()
while [ "$left" -gt 0 ]; do
	d=$((left < run ? left : run))
	[ "$d" -lt 5 ] && d=5
	out=$(mktemp /tmp/kmchaos.XXXXXX)
	bash tests/integration/chaos.sh --seed "$seed" --duration "$d" "$@" 2>&1 |
		tee "$out" | grep -v '^#   '
	r=${PIPESTATUS[0]}
	runs=$((runs + 1))
	[ "$r" -ne 0 ] && failed+=("$seed") && [ "$rc" -lt "$r" ] && rc=$r
	for kv in $(sed -n 's/^# violations: //p' "$out" | tr -d ' ' | tr ',' ' '); do
		[ "$kv" == none ] && continue
		c=${kv%%[0-9]*} n=${kv##*[a-z-]}
		classes[$c]=$((${classes[$c]:-0} + n))
	done
	rm -f "$out"
	left=$((left - d))
	seed=$((seed + 1))
done
printf '# chaos: %d runs, %d s; failing seeds: %s\n' "$runs" "$total" \
	"${failed[*]:-none}"
for c in "${!classes[@]}"; do printf '#   %s %d\n' "$c" "${classes[$c]}"; done
exit "$rc"
