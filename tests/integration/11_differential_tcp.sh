#!/bin/bash
# Differential protocol test over TCP: one long command sequence
# (tests/tools/mcdiff.py: every text and meta command, noreply, pipelined
# and not, odd and broken inputs) sent directly to a fresh memcached and
# through kmagentd in front of two fresh memcacheds must give byte-identical
# replies (stats and version aside; cas values compared structurally).
#
#   MCDIFF_SELF=1 tests/integration/11_differential_tcp.sh
# checks the driver itself: memcached against memcached, must always pass.
. "$(dirname "$0")/lib.sh"

lab_judge_lab
if [ -n "${MCDIFF_SELF:-}" ]; then
	LAB_LABEL=mc-p lab_memcached p 11210
else
	lab_judge_kmagentd
fi

# real replicas never share cas counters: push m2's ahead of m1's
for i in 1 2 3 4 5; do
	lab_mc c 198.18.0.3:11211 set "junk$i" x >/dev/null
	lab_mc c 198.18.0.3:11211 delete "junk$i" >/dev/null
done

transcript=$LAB_DIR/mcdiff.transcript
lab_log "driver: tests/tools/mcdiff.py 198.18.0.1:11211 198.18.0.4:11210"
lab_in c "$LAB_PY" "$LAB_ROOT/tests/tools/mcdiff.py" \
	--transcript "$transcript" 198.18.0.1:11211 198.18.0.4:11210
rc=$?
lab_eq "every reply through kmagentd equals memcached's (mcdiff exit)" 0 $rc
lab_ok "kmagentd survived the whole sequence" lab_alive "$([ -n "${MCDIFF_SELF:-}" ] && echo mc-p || echo km-p)"
# a third-party judge: libmemcached's protocol checker, ascii tests ("ascii
# stat" aside, as stats are not compared)
if command -v memccapable >/dev/null; then
	capable() { lab_in c timeout 60 memccapable -a -h "$1" -p "$2" 2>&1; }
	ref=$(capable 198.18.0.1 11211)
	npass=$(printf '%s\n' "$ref" | grep -c '\[pass\]')
	lab_ok "memccapable -a: all $npass tests pass on memcached" \
		test "$npass" -ge 20 -a "$(printf '%s\n' "$ref" | grep -c '\[fail\]')" -eq 0
	got=$(capable 198.18.0.4 11210)
	passes() { printf '%s\n' "$1" | grep '\[pass\]' | grep -v '^ascii stat ' |
		awk '{ $NF = ""; print }' | tr '\n' ','; }
	printf '%s\n' "$got" | grep -v '\[pass\]' | sed 's/^/# memccapable: /'
	lab_eq "memccapable -a: kmagentd passes every test memcached passes (stat aside)" \
		"$(passes "$ref")" "$(passes "$got")"
fi
if [ $rc -ne 0 ] && [ -n "${MCDIFF_KEEP:-}" ]; then
	cp "$transcript" "$MCDIFF_KEEP" && lab_log "transcript kept in $MCDIFF_KEEP"
fi
lab_done
