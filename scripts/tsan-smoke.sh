#!/bin/bash
# make test-tsan: a smoke subset of the integration tests against
# build-tsan/kmagentd (make TSAN=1), failing on any ThreadSanitizer report.
#
#   scripts/tsan-smoke.sh [NN...]   those tests instead of the default set
#
# Each test's kmagentd writes its reports to log_path under this run's
# directory (one file a process, NAME.PID); the files are checked after
# each test, whose pass or fail alone would miss a race.
set -u
cd "$(dirname "$0")/.."
root=$PWD
bin=$root/build-tsan/kmagentd
[ -x "$bin" ] || { echo "$bin missing (make TSAN=1 build-tsan/kmagentd)"; exit 1; }
[ $# -gt 0 ] || set -- 10 16 17 42 44 61

failed=0
dir=$(mktemp -d /tmp/kmtsan.XXXXXX) || exit 1
# kept after a failure: the test's output, every process's log, TSan's
trap '[ $failed -eq 0 ] && rm -rf -- "$dir"' EXIT
# TSan maps its shadow at fixed addresses; with many random mmap bits
# (Linux 6.x) it dies with "unexpected memory mapping": no randomization.
# setarch execs, so the PID the lab records is kmagentd's own.
wrap=$dir/kmagentd
printf '#!/bin/sh\nexec setarch %s -R %q "$@"\n' "$(uname -m)" "$bin" >"$wrap"
chmod 755 "$wrap"

start=$(date +%s)
for n in "$@"; do
	t=$(ls tests/integration/"$n"_*.sh 2>/dev/null | head -n 1)
	[ -n "$t" ] || { echo "FAIL $n: no such test"; failed=1; continue; }
	logs=$dir/$(basename "$t" .sh)
	mkdir -p "$logs"
	t0=$(date +%s)
	LAB_KMAGENTD=$wrap LAB_KEEP_LOGS=$logs \
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 log_path=$logs/tsan" \
		timeout 300 bash "$t" >"$logs/test.log" 2>&1
	rc=$?
	secs=$(($(date +%s) - t0))
	reports=$(cat "$logs"/tsan.* 2>/dev/null | grep -c 'WARNING: ThreadSanitizer')
	if [ $rc -eq 0 ] && [ "$reports" -eq 0 ]; then
		printf 'PASS %-28s %4ds\n' "$t" "$secs"
		continue
	fi
	failed=1
	printf 'FAIL %-28s %4ds (exit %d, %d TSan reports)\n' "$t" "$secs" \
		"$rc" "$reports"
	grep -E '^not ok' "$logs/test.log" | head -n 10
	for f in "$logs"/tsan.*; do
		[ -f "$f" ] && head -n 60 "$f"
	done
done
printf '# %ds in all\n' $(($(date +%s) - start))
[ $failed -eq 0 ] || echo "# logs kept in $dir"
exit $failed
