#!/bin/bash
# kmagentd as the packaged unit runs it, on a stock systemd host: bpffs
# mounted with mode 0700 (systemd's), in a mount namespace of kmagentd's
# own (as the unit gets), with the unit's ExecStartPre= run as root and
# its TemporaryFileSystem= and BindPaths= done by hand, then an
# unprivileged user holding only the unit's AmbientCapabilities (setpriv
# does what systemd does).  It attaches at the default pin root, serves
# UDP gets in the kernel, answers kmagentctl and a reload (refusing a
# broken file with exit 1, as ExecReload needs), adopts its pins after a
# restart, and fails to start, leaving nothing attached, without any one
# of those capabilities.
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
# a bpffs as systemd mounts it on /sys/fs/bpf: root's, mode 0700
umount "$UDP_BPFFS" && mount -t bpf -o mode=0700 bpf "$UDP_BPFFS" ||
	lab_die "cannot mount a 0700 bpffs"
lab_eq "the lab's /sys/fs/bpf is a stock one" "1700 0" \
	"$(stat -c '%a %u' "$UDP_BPFFS")"
PIN=$UDP_BPFFS/kmagent # the unit's /sys/fs/bpf/kmagent
lab_pin_dir "$PIN"
# the unprivileged user reads its config in the lab's 0700 directory
chmod 0711 "$LAB_DIR"
mkdir -p "$RUN" "$LAB_DIR/hold" && chown "$KUID:$KUID" "$RUN"
CONF=$RUN/kmagent.conf
cat >"$CONF" <<CONF
backend 198.18.0.2:11211
backend 198.18.0.3:11211
listen 198.18.0.1
port 11210
iface eth0
ctl $RUN/kmagent.sock
CONF

# The unit's sandbox, as a script run in p (ip netns exec: a mount
# namespace of its own): the stock bpffs on /sys/fs/bpf, the unit's
# ExecStartPre=+ (as root, user kmagent being KUID here), then every
# TemporaryFileSystem= and BindPaths= of the unit, then CMD with CAPS.
SANDBOX=$LAB_DIR/sandbox.sh
{
	echo 'set -e'
	echo "mount --bind $UDP_BPFFS /sys/fs/bpf"
	sed -n 's/^ExecStartPre=+//p' "$UNIT" | sed "s/kmagent:kmagent/$KUID:$KUID/g; s/-o kmagent -g kmagent/-o $KUID -g $KUID/g"
	n=0
	for b in $(sed -n 's/^BindPaths=//p' "$UNIT"); do
		mkdir -p "$LAB_DIR/hold/$n"
		echo "mount --bind $b $LAB_DIR/hold/$n"
		n=$((n + 1))
	done
	for t in $(sed -n 's/^TemporaryFileSystem=//p' "$UNIT"); do
		echo "mount -t tmpfs -o ${t#*:} tmpfs ${t%%:*}"
	done
	n=0
	for b in $(sed -n 's/^BindPaths=//p' "$UNIT"); do
		echo "mkdir -p $b && mount --bind $LAB_DIR/hold/$n $b"
		n=$((n + 1))
	done
	echo 'caps=$1; shift'
	echo "exec setpriv --reuid=$KUID --regid=$KUID --clear-groups" \
		'--inh-caps=-all${caps:+,$caps} --ambient-caps=-all${caps:+,$caps}' \
		'--bounding-set=-all${caps:+,$caps} "$@"'
} >"$SANDBOX"
sed 's/^/# sandbox: /' "$SANDBOX"
lab_ok "the unit mounts a tmpfs on /sys/fs/bpf" grep -q "tmpfs /sys/fs/bpf$" "$SANDBOX"

# as_user CAPS CMD...: CMD as KUID with exactly CAPS (ambient, inherited,
# bounding), in p, in the unit's sandbox
as_user()
{
	local caps
	caps=$(setpriv_caps "$1")
	shift
	timeout 20 ip netns exec "$NSP" bash "$SANDBOX" "$caps" "$@"
}
ctl_user() { as_user "" "$CTL" -s "$RUN/kmagent.sock" "$@"; }
start_user()
{
	LAB_CMD[km-p]= # lab_spawn records it
	lab_spawn km-p p bash "$SANDBOX" "$(setpriv_caps "$1")" \
		"$LAB_KMAGENTD" -D -c "$CONF"
	LAB_WAIT[km-p]=198.18.0.1:11210
}
mc() { udp_mc c --timeout 1 "$@"; }

start_user "$CAPS"
lab_wait_ready km-p
lab_ok "pinned under the stock bpffs" test -e "$PIN/km_ring"
lab_eq "... bpffs still 0700" 1700 "$(stat -c '%a' "$UDP_BPFFS")"
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
lab_ok "... naming the line" grep -q "config:7: unknown directive" <<<"$out"
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
