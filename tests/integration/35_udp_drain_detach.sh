#!/bin/bash
# The kernel path follows the daemon's backend table: a drained backend
# (kmagentctl drain) gets no kernel reads, and the fallback through it
# comes back with undrain.  After kmagentd stops, the programs stay until
# `kmagentctl detach` removes them and their pins.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/udp_lib.sh"

CTL=$LAB_ROOT/build/kmagentctl
KEY=drainkey

lab_init
udp_bpffs
PIN=$UDP_BPFFS/p
lab_pin_dir "$PIN"
first=$("$LAB_PY" "$LAB_ROOT/tests/integration/kmring.py" $KEY \
	198.18.0.2:11211 198.18.0.3:11211 | cut -d' ' -f1)
FIRST=${first%:*}
OTHER=198.18.0.2
[ "$FIRST" == 198.18.0.2 ] && OTHER=198.18.0.3
lab_log "$KEY hashes to $FIRST first"
lab_host p 198.18.0.1
lab_host a 198.18.0.2
lab_host b 198.18.0.3
lab_host c 198.18.0.10
udp_xdp_peer p
lab_memcached a 11211
lab_memcached b 11211
lab_kmagentd p -l 198.18.0.1 -p 11210 -s 198.18.0.2:11211 \
	-s 198.18.0.3:11211 -I eth0 --pin-root "$PIN"
xdp_on() { ip -n "$(lab_ns p)" link show eth0 | grep -q prog/xdp; }
lab_ok "XDP attached on P" udp_wait "XDP on P" 10 xdp_on
lab_ok "P knows both backends' MACs" udp_wait "neighbours" 10 \
	sh -c "ip -n $(lab_ns p) neigh show 198.18.0.2 | grep -q lladdr &&
	       ip -n $(lab_ns p) neigh show 198.18.0.3 | grep -q lladdr"
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
lab_ok "programs stay attached after kmagentd exits" xdp_on
lab_ok "kmagentctl detach --pin-root $PIN -I eth0" \
	lab_in p "$CTL" -s "${LAB_CTL[km-p]}" detach --pin-root "$PIN" -I eth0
lab_not "no XDP program left on eth0" xdp_on
lab_not "no tc filter left on eth0" sh -c \
	"tc -n $(lab_ns p) filter show dev eth0 ingress | grep -q bpf"
lab_not "pin root removed" test -e "$PIN"
lab_done
