#!/bin/bash
# The chaos lab: four memcached (m1..m4, 198.18.0.1-4), kmagentd hosts pa
# (.11) and pb (.12) with the kernel path on their eth0, the client host c
# (.20), all on one bridge.  tests/tools/mcchaos.py runs in c: it starts
# memcached and kmagentd itself, runs the workload and the nemesis, and
# checks the history.  lab_cleanup (trap) ends every process left in the
# lab's namespaces and removes the namespaces and the pins.
#
#   tests/integration/chaos.sh [mcchaos.py options]   e.g. --seed 7 --duration 60
#
# Exit status: mcchaos.py's (0 clean, 1 violations, 2 lab error).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/udp_lib.sh"

lab_init
udp_bpffs
lab_pin_dir "$UDP_BPFFS/pa"
lab_pin_dir "$UDP_BPFFS/pb"
for h in m1:1 m2:2 m3:3 m4:4 pa:11 pb:12 c:20; do
	lab_host "${h%:*}" "198.18.0.${h#*:}"
done
# NAPI for the frames the proxies' XDP sends (BRIEF section 4)
udp_xdp_peer pa
udp_xdp_peer pb
lab_in c "$LAB_PY" "$LAB_ROOT/tests/tools/mcchaos.py" --lab-id "$LAB_ID" \
	--lab-dir "$LAB_DIR" --bpffs "$UDP_BPFFS" "$@"
rc=$?
# the processes' logs, for a failed run
if [ $rc -ne 0 ] && [ -n "${CHAOS_LOGS:-}" ]; then
	mkdir -p "$CHAOS_LOGS" && cp "$LAB_DIR"/chaos-*.log "$CHAOS_LOGS"/ 2>/dev/null
fi
exit $rc
