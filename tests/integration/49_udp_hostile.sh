#!/bin/bash
# Hostile UDP input on the kernel path (tests/tools/mcrawudp.py, frames made
# by hand on the client's interface): gets cut into IP fragments (both, the
# first alone, the second alone), gets in 802.1Q-tagged frames, and gets
# from a spoofed source inside the allowed network.  After each kind:
# legitimate UDP gets are still served by the kernel path (km_stats
# kernel_gets grows, `kmagentctl status` says kernel_bypassed false) and
# kmagentd still serves TCP.  Plain hand-made gets come first: they must
# be served in the kernel, which shows the frames are well made.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/udp_lib.sh"
. "$(dirname "$0")/ops_lib.sh"

udp_lab_pab
udp_kmagentd_pab --allow 198.18.0.0/24
P=198.18.0.1:11210 N=50
PMAC=$(ip -n "$(lab_ns p)" -o link show eth0 | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
lab_mc c $P set hk hostile-value >/dev/null
lab_eq "hk written through kmagentd (TCP)" hostile-value "$(lab_mc c $P get hk)"

raw() { lab_in c "$LAB_PY" "$LAB_ROOT/tests/tools/mcrawudp.py" eth0 "$PMAC" $P "$@"; }
bypassed() { jget "$(ctl -j status)" 'str(d["kernel_bypassed"]).lower()'; }
# served_in_kernel WHAT: 5 UDP gets from the client, answered, in the kernel
served_in_kernel()
{
	local g0 i ok=0
	g0=$(kstat "$PIN" kernel_gets)
	for i in 1 2 3 4 5; do
		[ "$(udp_mc c --timeout 1 $P get hk)" == hostile-value ] &&
			ok=$((ok + 1))
	done
	lab_eq "$1: 5 legitimate UDP gets answered" 5 $ok
	lab_ok "$1: ... by the kernel path (kernel_gets $g0 -> $(kstat "$PIN" kernel_gets))" \
		test "$(kstat "$PIN" kernel_gets)" -ge $((g0 + 5))
	lab_eq "$1: kernel path not bypassed (kmagentctl status)" false "$(bypassed)"
	lab_eq "$1: kmagentd serves TCP" hostile-value "$(lab_mc c $P get hk)"
}

served_in_kernel "before"
for kind in plain frag frag1 fragn vlan spoof; do
	lab_log "$N $kind gets"
	g0=$(kstat "$PIN" kernel_gets) u0=$(kstat "$PIN" passed_up)
	d0=$(kstat "$PIN" denied)
	src=()
	[ $kind == spoof ] && src=(--src 198.18.0.77)
	raw $kind hk --count $N "${src[@]}"
	sleep 0.3
	lab_log "$kind: kernel_gets +$(($(kstat "$PIN" kernel_gets) - g0)), passed_up +$(($(kstat "$PIN" passed_up) - u0)), denied +$(($(kstat "$PIN" denied) - d0))"
	[ $kind == plain ] && lab_ok "hand-made gets are served in the kernel" \
		test "$(kstat "$PIN" kernel_gets)" -ge $((g0 + N))
	served_in_kernel "after $kind"
done
lab_ok "kmagentd still running" lab_alive km-p
lab_done
