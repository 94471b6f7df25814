#!/bin/bash
# Nothing of the kernel path outlives what the operator asked for:
# `kmagentctl detach` removes our XDP programs and tc filters from every
# interface even when their pins are gone (tc filters have no link: they
# stayed, and cloned a later UDP set into a reply nobody caught), refuses
# an unknown interface, and a start that fails after attaching (metrics
# port in use, missing interface) leaves no program, filter or pin, while
# a failed restart keeps what it adopted from the run before.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/udp_lib.sh"

CTL=$LAB_ROOT/build/kmagentctl
udp_lab_pab
NSP=$(lab_ns p)
BACKENDS=(-s 198.18.0.2:11211 -s 198.18.0.3:11211)
tc_on() { tc -n "$NSP" filter show dev eth0 "$1" | grep -q bpf; }
nothing_left()
{
	lab_not "$1: no XDP program on eth0" udp_xdp_on
	lab_not "$1: no tc ingress filter on eth0" tc_on ingress
	lab_not "$1: no tc egress filter on eth0" tc_on egress
	lab_not "$1: no pin root" test -e "$PIN"
}
# start_fails WHAT ARGS...: kmagentd -D ARGS in p exits non-zero
start_fails()
{
	local what=$1 rc
	shift
	timeout 20 ip netns exec "$NSP" "$LAB_KMAGENTD" -D -l 198.18.0.1 \
		-p 11210 "${BACKENDS[@]}" --pin-root "$PIN" \
		--ctl "$LAB_DIR/fail.ctl" "$@" >"$LAB_DIR/fail.log" 2>&1
	rc=$?
	sed 's/^/# | /' "$LAB_DIR/fail.log" | tail -n 5
	lab_ok "$what: kmagentd exits with an error ($rc)" \
		test "$rc" -ne 0 -a "$rc" -ne 124
}

lab_log "pins lost while the programs stay attached"
lab_kmagentd p -l 198.18.0.1 -p 11210 "${BACKENDS[@]}" -I eth0 \
	--pin-root "$PIN"
udp_kernel_ready 198.18.0.2 198.18.0.3
lab_kill km-p TERM
lab_ok "tc filters attached after kmagentd exits" tc_on ingress
# a lost bpffs or a removed pin root: the XDP link goes with its pin,
# the tc filters stay
rm -rf "$PIN"
lab_ok "the tc filter outlives its pins" tc_on ingress
out=$(lab_in p "$CTL" -s "$LAB_DIR/none.ctl" detach --pin-root "$PIN")
lab_eq "kmagentctl detach reports the filters it found" \
	"kernel path detached: 0 XDP programs, 2 tc filters, 0 pins ($PIN removed)" \
	"$out"
nothing_left "after detach"
lab_kmagentd p -l 198.18.0.1 -p 11210 "${BACKENDS[@]}"
lab_eq "a later UDP set is answered by the userspace proxy" STORED \
	"$(udp_mc c --timeout 1 198.18.0.1:11210 set afterdetach v)"
lab_kill km-p TERM

lab_log "detach names the interfaces it is given"
lab_in p "$CTL" -s "$LAB_DIR/none.ctl" detach -I nosuchif0 \
	>"$LAB_DIR/d.out" 2>&1
rc=$?
lab_eq "detach -I nosuchif0 fails" 1 "$rc"
lab_eq "... and says why" "kmagentctl: detach: no interface 'nosuchif0'" \
	"$(cat "$LAB_DIR/d.out")"

lab_log "failed starts undo what they attached"
LAB_LABEL=squat lab_spawn squat p "$LAB_PY" -c '
import socket, time
s = socket.socket(); s.bind(("198.18.0.1", 9411)); s.listen(1); time.sleep(600)'
lab_ok "something holds the metrics port" udp_wait "squatter" 10 \
	lab_in p "$LAB_PY" -c '
import socket; socket.create_connection(("198.18.0.1", 9411), timeout=1)'
start_fails "metrics port in use" -I eth0 --metrics 198.18.0.1:9411
lab_ok "... it had attached first" grep -q "kernel path attached to eth0" \
	"$LAB_DIR/fail.log"
nothing_left "metrics port in use"
start_fails "missing interface" -I eth0 -I nosuchif0
nothing_left "missing interface"

lab_log "a failed restart keeps what it adopted"
lab_kmagentd p -l 198.18.0.1 -p 11210 "${BACKENDS[@]}" -I eth0 \
	--pin-root "$PIN"
udp_kernel_ready 198.18.0.2 198.18.0.3
lab_kill km-p TERM
start_fails "restart with the metrics port in use" -I eth0 \
	--metrics 198.18.0.1:9411
lab_ok "XDP still attached (adopted, serving before)" udp_xdp_on
lab_ok "tc still attached" tc_on ingress
lab_ok "pins kept" test -e "$PIN/km_ring"

lab_log "an upgrade over pins of another layout"
# an older kmagentd's km_stats: same name, another value size
rm "$PIN/km_stats"
bpftool map create "$PIN/km_stats" type percpu_array key 4 value 8 \
	entries 1 name km_stats
vsize() { bpftool -j map show pinned "$PIN/km_stats" | "$LAB_PY" -c '
import json, sys; print(json.load(sys.stdin)["bytes_value"])'; }
lab_eq "the stale km_stats has 8-byte values" 8 "$(vsize)"
lab_kmagentd p -l 198.18.0.1 -p 11210 "${BACKENDS[@]}" -I eth0 \
	--pin-root "$PIN"
udp_kernel_ready 198.18.0.2 198.18.0.3
lab_ok "kmagentd says it replaced the pin" grep -q \
	"pinned map $PIN/km_stats has another layout" "${LAB_LOG[km-p]}"
lab_ne "km_stats has this build's layout" 8 "$(vsize)"
lab_eq "a UDP set is answered" STORED \
	"$(udp_mc c --timeout 1 198.18.0.1:11210 set upgraded v)"
lab_ne "and counted in the new km_stats" 0 "$(kstat "$PIN" kernel_writes)"
lab_kill km-p TERM
lab_ok "kmagentctl detach" lab_in p "$CTL" -s "$LAB_DIR/none.ctl" detach \
	--pin-root "$PIN" -I eth0
nothing_left "after the last detach"
lab_done
