#!/bin/bash
# Daemon restarts do not stop traffic (BRIEF section 2): with kmagentd -I,
# programs stay attached through a pinned bpf_link and maps stay pinned.
# After kill -9 of kmagentd, UDP gets are still answered in the kernel; a
# new kmagentd adopts the pinned maps (counters keep counting) and link.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/udp_lib.sh"

udp_lab_pab
udp_kmagentd_pab

mc() { udp_mc c --timeout 1 "$@"; }
lab_eq "set through kmagent" STORED "$(mc 198.18.0.1:11210 set rk v1)"
lab_eq "get through kmagent" v1 "$(mc 198.18.0.1:11210 get rk)"

lab_log "kill -9 kmagentd: the kernel path keeps serving"
lab_kill km-p KILL
lab_not "kmagentd is gone (TCP port closed)" lab_answers c 198.18.0.1 11210
lab_ok "XDP still attached" udp_xdp_on
g0=$(kstat "$PIN" kernel_gets)
lab_eq "UDP get answered without kmagentd" v1 "$(mc 198.18.0.1:11210 get rk)"
lab_eq "... by the kernel" $((g0 + 1)) "$(kstat "$PIN" kernel_gets)"
mc 198.18.0.2:11211 set onlya a-val >/dev/null
mc 198.18.0.3:11211 set onlyb b-val >/dev/null
lab_eq "a key on A only found without kmagentd" a-val \
	"$(mc 198.18.0.1:11210 get onlya)"
lab_eq "a key on B only found without kmagentd" b-val \
	"$(mc 198.18.0.1:11210 get onlyb)"

lab_log "restart kmagentd: it adopts the pinned link and maps"
g1=$(kstat "$PIN" kernel_gets)
lab_restart km-p
lab_ok "the new kmagentd adopted the pinned XDP link" \
	udp_wait "adoption" 10 grep -q "adopted pinned XDP link" "${LAB_LOG[km-p]}"
lab_ok "XDP attached" udp_wait "XDP on P" 10 udp_xdp_on
lab_eq "counters kept across the restart" "$g1" "$(kstat "$PIN" kernel_gets)"
lab_eq "get through the new kmagentd" v1 "$(mc 198.18.0.1:11210 get rk)"
lab_eq "... in the kernel" $((g1 + 1)) "$(kstat "$PIN" kernel_gets)"
lab_eq "set through the new kmagentd" STORED "$(mc 198.18.0.1:11210 set rk v2)"
lab_eq "both replicas hold the new value" v2v2 \
	"$(mc 198.18.0.2:11211 get rk)$(mc 198.18.0.3:11211 get rk)"
lab_done
