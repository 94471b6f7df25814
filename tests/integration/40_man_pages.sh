#!/bin/bash
# Every long option that kmagentd --help and kmagentctl --help print has
# an entry in its man page, every kmagentctl command too, and both pages
# are groff-clean (groff -man -ww -z prints nothing).
set -u
cd "$(dirname "$0")/../.."
fail=0

check_page() { # program page
	local prog=$1 page=$2 opt n=0 out
	[ -x "build/$prog" ] || { echo "FAIL: build/$prog missing"; fail=1; return; }
	out=$(groff -man -ww -z "$page" 2>&1)
	if [ -n "$out" ]; then
		echo "FAIL: $page: groff warnings:"; echo "$out"; fail=1
	else
		echo "ok: $page is groff-clean"
	fi
	for opt in $("build/$prog" --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
		n=$((n + 1))
		# roff spells a dash \-
		if ! grep -qF -- "$(echo "$opt" | sed 's/-/\\-/g')" "$page"; then
			echo "FAIL: $prog $opt is not in $page"
			fail=1
		fi
	done
	echo "ok: $prog: $n long options looked up in $page"
	[ "$n" -gt 5 ] || { echo "FAIL: too few options found in $prog --help"; fail=1; }
}

check_page kmagentd docs/man/kmagentd.8
check_page kmagentctl docs/man/kmagentctl.8

for cmd in status backends ring drain undrain resync stats reload repair-rate forget detach; do
	build/kmagentctl --help | grep -qE "^  $cmd" ||
		{ echo "FAIL: kmagentctl --help lacks $cmd"; fail=1; }
	grep -qE "^\.B[I]? \"?$(echo $cmd | sed 's/-/\\\\-/g')" docs/man/kmagentctl.8 ||
		{ echo "FAIL: kmagentctl.8 lacks command $cmd"; fail=1; }
done
build/kmagentctl --help | grep -q '^EXAMPLES' ||
	{ echo "FAIL: kmagentctl --help has no EXAMPLES"; fail=1; }
[ $fail -eq 0 ] && echo "PASS: man pages cover every option and command"
exit $fail
