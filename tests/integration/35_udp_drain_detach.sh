#!/bin/bash
# The kernel path follows the daemon's backend table: a drained backend
# (kmagentctl drain) gets no kernel reads, and the fallback through it
# comes back with undrain.  After kmagentd stops, the programs stay until
# `kmagentctl detach` removes them and their pins.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/udp_lib.sh"

CTL=$LAB_ROOT/build/kmagentctl
KEY=drainkey

udp_lab_pab
first=$("$LAB_PY" "$LAB_ROOT/tests/integration/kmring.py" $KEY \
	198.18.0.2:11211 198.18.0.3:11211 | cut -d' ' -f1)
FIRST=${first%:*}
OTHER=198.18.0.2
[ "$FIRST" == 198.18.0.2 ] && OTHER=198.18.0.3
lab_log "$KEY hashes to $FIRST first"
lab_kmagentd p -l 198.18.0.1 -p 11210 -s 198.18.0.2:11211 \
	-s 198.18.0.3:11211 -I eth0 --pin-root "$PIN"
udp_kernel_ready 198.18.0.2 198.18.0.3
ctl() { "$CTL" -s "${LAB_CTL[km-p]}" "$@"; }
mc() { udp_mc c --timeout 1 "$@"; }

mc $OTHER:11211 set $KEY only-on-other >/dev/null
f0=$(kstat "$PIN" fallbacks)
lab_eq "get: the first replica misses, the other answers" only-on-other \
	"$(mc 198.18.0.1:11210 get $KEY)"
lab_eq "... by in-kernel fallback" $((f0 + 1)) "$(kstat "$PIN" fallbacks)"

lab_ok "kmagentctl drain $FIRST:11211" ctl drain $FIRST:11211
f0=$(kstat "$PIN" fallbacks) g0=$(kstat "$PIN" kernel_gets)
lab_eq "drained: the get goes straight to the other replica" only-on-other \
	"$(mc 198.18.0.1:11210 get $KEY)"
lab_eq "... in the kernel" $((g0 + 1)) "$(kstat "$PIN" kernel_gets)"
lab_eq "... without a fallback" "$f0" "$(kstat "$PIN" fallbacks)"

lab_ok "kmagentctl undrain $FIRST:11211" ctl undrain $FIRST:11211
# read-repair may have copied the value to the first replica meanwhile
mc $FIRST:11211 delete $KEY >/dev/null
f0=$(kstat "$PIN" fallbacks)
lab_eq "undrained: the first replica is asked again" only-on-other \
	"$(mc 198.18.0.1:11210 get $KEY)"
lab_eq "... and misses: fallback" $((f0 + 1)) "$(kstat "$PIN" fallbacks)"

lab_log "stop kmagentd, then kmagentctl detach"
lab_kill km-p TERM
lab_ok "programs stay attached after kmagentd exits" udp_xdp_on
lab_ok "kmagentctl detach --pin-root $PIN -I eth0" \
	lab_in p "$CTL" -s "${LAB_CTL[km-p]}" detach --pin-root "$PIN" -I eth0
lab_not "no XDP program left on eth0" udp_xdp_on
lab_not "no tc filter left on eth0" sh -c \
	"tc -n $(lab_ns p) filter show dev eth0 ingress | grep -q bpf"
lab_not "pin root removed" test -e "$PIN"
lab_done
