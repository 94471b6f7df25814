#!/bin/bash
# kmagentd as the packaged unit runs it: an unprivileged user holding only
# the unit's AmbientCapabilities (setpriv does what systemd does), the pin
# root and socket directory handed to that user (the unit's ExecStartPre
# and RuntimeDirectory).  It attaches, serves UDP gets in the kernel,
# answers kmagentctl and a reload (refusing a broken file with exit 1, as
# ExecReload needs), adopts its pins after a restart, and fails to start,
# leaving nothing attached, without any one of those capabilities.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/udp_lib.sh"

UNIT=$LAB_ROOT/packaging/kmagentd.service.in
KUID=64211 # no passwd entry needed: setpriv takes numbers
CTL=$LAB_ROOT/build/kmagentctl
CAPS=$(sed -n 's/^AmbientCapabilities=//p' "$UNIT")
lab_eq "the unit's capabilities" "CAP_BPF CAP_NET_ADMIN CAP_PERFMON CAP_NET_RAW" \
	"$CAPS"
# "CAP_BPF CAP_NET_ADMIN" -> "+bpf,+net_admin"
setpriv_caps() { echo "$*" | tr 'A-Z ' 'a-z\n' | sed -n 's/^cap_/+/p' | paste -sd,; }

udp_lab_pab
NSP=$(lab_ns p)
RUN=$LAB_DIR/run
# the unprivileged user must reach its files under the lab's 0700 dirs
chmod 0711 "$LAB_DIR" "$UDP_BPFFS"
mkdir -p "$RUN" && chown "$KUID:$KUID" "$RUN"
CONF=$RUN/kmagent.conf
cat >"$CONF" <<CONF
backend 198.18.0.2:11211
backend 198.18.0.3:11211
listen 198.18.0.1
port 11210
iface eth0
pin-root $PIN
ctl $RUN/kmagent.sock
CONF
prepare_pins() { install -d -m 0700 -o $KUID -g $KUID "$PIN"; }
# as_user CAPS CMD...: CMD as KUID with exactly CAPS (ambient, inherited,
# bounding), in p
as_user()
{
	local caps
	caps=$(setpriv_caps "$1")
	shift
	timeout 20 ip netns exec "$NSP" setpriv --reuid=$KUID --regid=$KUID --clear-groups \
		--inh-caps=-all${caps:+,$caps} --ambient-caps=-all${caps:+,$caps} \
		--bounding-set=-all${caps:+,$caps} "$@"
}
ctl_user() { as_user "" "$CTL" -s "$RUN/kmagent.sock" "$@"; }
start_user()
{
	LAB_CMD[km-p]= # lab_spawn records it
	lab_spawn km-p p setpriv --reuid=$KUID --regid=$KUID --clear-groups \
		--inh-caps=-all,"$(setpriv_caps "$1")" \
		--ambient-caps=-all,"$(setpriv_caps "$1")" \
		--bounding-set=-all,"$(setpriv_caps "$1")" \
		"$LAB_KMAGENTD" -D -c "$CONF"
	LAB_WAIT[km-p]=198.18.0.1:11210
}
mc() { udp_mc c --timeout 1 "$@"; }

prepare_pins
start_user "$CAPS"
lab_wait_ready km-p
pid=$(lab_pid km-p)
lab_eq "kmagentd runs as uid $KUID" $KUID "$(ps -o uid= -p "$pid" | tr -d ' ')"
# CAP_NET_ADMIN 12, CAP_NET_RAW 13, CAP_PERFMON 38, CAP_BPF 39
lab_eq "... with only the unit's capabilities" 000000c000003000 \
	"$(sed -n 's/^CapEff:\t//p' "/proc/$pid/status")"
udp_kernel_ready 198.18.0.2 198.18.0.3
lab_eq "UDP set" STORED "$(mc 198.18.0.1:11210 set unpriv value-unpriv)"
g0=$(kstat "$PIN" kernel_gets)
lab_eq "UDP get" value-unpriv "$(mc 198.18.0.1:11210 get unpriv)"
lab_eq "... served in the kernel" $((g0 + 1)) "$(kstat "$PIN" kernel_gets)"
lab_ok "kmagentctl status as the same user" ctl_user status
cp "$CONF" "$LAB_DIR/good.conf"
echo "frobnicate 1" >>"$CONF"
out=$(ctl_user reload 2>&1)
lab_eq "reload of a broken file exits 1 (ExecReload fails)" 1 $?
lab_ok "... naming the line" grep -q "config:8: unknown directive" <<<"$out"
cp "$LAB_DIR/good.conf" "$CONF"
lab_ok "reload of the good file" ctl_user reload

lab_log "restart: the unprivileged daemon adopts its pins"
lab_kill km-p TERM
start_user "$CAPS"
lab_wait_ready km-p
lab_ok "adopted the pinned XDP link" grep -q "adopted pinned XDP link" \
	"${LAB_LOG[km-p]}"
udp_kernel_ready 198.18.0.2 198.18.0.3
g0=$(kstat "$PIN" kernel_gets)
lab_eq "UDP get after the restart" value-unpriv \
	"$(mc 198.18.0.1:11210 get unpriv)"
lab_eq "... in the kernel" $((g0 + 1)) "$(kstat "$PIN" kernel_gets)"
lab_kill km-p TERM
lab_ok "kmagentctl detach (root)" lab_in p "$CTL" -s "$RUN/kmagent.sock" \
	detach --pin-root "$PIN"

lab_log "each capability is needed"
cp "$CONF" "$LAB_DIR/good.conf"
for drop in $CAPS; do
	caps=$(echo " $CAPS " | sed "s/ $drop / /" | xargs)
	cp "$LAB_DIR/good.conf" "$CONF"
	# CAP_NET_RAW: for the retry's copy mode, which hosts that refuse live
	# frames use (elsewhere auto picks live frames and does not need it)
	[ "$drop" == CAP_NET_RAW ] && echo "udp-retry-mode copy" >>"$CONF"
	prepare_pins
	: >"$LAB_DIR/drop.log"
	as_user "$caps" "$LAB_KMAGENTD" -D -c "$CONF" \
		>"$LAB_DIR/drop.log" 2>&1
	rc=$?
	sed 's/^/# | /' "$LAB_DIR/drop.log" | tail -n 3
	lab_eq "without $drop: kmagentd fails to start" 1 $rc
	lab_ok "... for want of a privilege" grep -qE \
		"(Permission denied|Operation not permitted)" "$LAB_DIR/drop.log"
	lab_not "... and leaves no XDP program" udp_xdp_on
	lab_not "... and no pin" test -e "$PIN/km_ring"
	lab_in p "$CTL" -s "$RUN/kmagent.sock" detach --pin-root "$PIN" \
		>/dev/null 2>&1
done
lab_done
