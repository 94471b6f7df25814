#!/bin/bash
# Run every test of kmagent: unit tests (plain and under ASan/UBSan), BPF
# program tests, namespace integration tests.  Each prints its own detail
# into build/test-logs/; this prints one line a test and a closing count.
#
#   tests/run.sh [PATTERN]   only the tests whose name contains PATTERN
set -u
cd "$(dirname "$0")/.."
pattern=${1:-}
logs=build/test-logs
mkdir -p "$logs"

tests=()
for t in build/tests/test_* build-san/tests/test_* build/tests/bpf_* \
	 tests/integration/[0-9]*.sh; do
	[ -x "$t" ] || [ -f "$t" ] || continue
	case "$t" in *.[ch]|*.log) continue ;; esac
	[ -n "$pattern" ] && [[ "$t" != *"$pattern"* ]] && continue
	tests+=("$t")
done

passed=0 failed=0 failures=()
for t in "${tests[@]}"; do
	log=$logs/$(echo "$t" | tr '/' '_').log
	start=$(date +%s)
	if [[ "$t" == *.sh ]]; then
		timeout 300 bash "$t" >"$log" 2>&1
	else
		timeout 300 "$t" >"$log" 2>&1
	fi
	rc=$?
	secs=$(($(date +%s) - start))
	if [ $rc -eq 0 ]; then
		passed=$((passed + 1))
		printf 'PASS %-50s %4ds\n' "$t" "$secs"
	else
		failed=$((failed + 1))
		failures+=("$t")
		printf 'FAIL %-50s %4ds (exit %d)\n' "$t" "$secs" "$rc"
		# the failed checks first, then the end of the log for context
		grep -E '^(not ok|FAIL|\[  FAILED|ASSERT)' "$log" | head -n 20 |
			sed 's/^/    ! /'
		sed 's/^/    | /' "$log" | tail -n 40
	fi
done

[ ${#failures[@]} -gt 0 ] && printf 'failed: %s\n' "${failures[*]}"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ] && [ $passed -gt 0 ]
