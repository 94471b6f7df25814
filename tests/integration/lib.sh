# shellcheck shell=bash
# kmagent integration test library: a throwaway namespace lab.
#
# Source it from a test script (bash), then:
#
#   . "$(dirname "$0")/lib.sh"
#   lab_init                          # trap lab_cleanup EXIT, switch + bridge
#   lab_host a 198.18.0.1             # netns "km<pid>a", eth0 on the bridge
#   lab_host6 a 2001:2::1             # and an IPv6 address (RFC 5180 range)
#   lab_memcached a                   # memcached -u root -p 11211 -U 11211 -l ADDR
#   lab_memcached6 a                  # the same on its IPv6 address only
#   lab_kmagentd a -p 11210 -s 198.18.0.1:11211 -s 198.18.0.2:11211
#   lab_in a python3 tests/tools/mc.py 198.18.0.1:11210 get k
#   lab_eq "get through kmagent" "value" "$(lab_mc a 198.18.0.1:11210 get k)"
#   lab_kill mc-a 9; lab_restart mc-a
#   lab_done                          # summary; exit 1 if any check failed
#
# The judge lab of the TCP protocol tests, in one call: lab_judge_lab makes
# r (198.18.0.1, the reference memcached), m1 and m2 (.2, .3, kmagentd's
# backends), p (.4, for kmagentd on 11210) and c (.10, the driver), and starts
# the three memcacheds; lab_judge_kmagentd starts kmagentd on p.
#
# Everything the lab makes is named after the test's PID (LAB_ID), so two runs
# never collide: namespaces "km<id>sw" (the switch, holding bridge "br0") and
# "km<id><host>"; inside a host its end of the veth pair is "eth0", the
# switch's end is "k<id><host>" (<= 15 chars: host names are <= 4 chars).
# The root namespace is never touched: no link, address or route is added
# there.  Addresses come from 198.18.0.0/15 (one /24 LAN per lab), there is no
# default route.
#
# Knobs (environment): LAB_KMAGENTD=path (default build/kmagentd; e.g.
# build-san/kmagentd for a sanitizer run), LAB_KEEP_LOGS=DIR (copy every
# process's output there at cleanup), LAB_ID (name prefix, default $$);
# the TCP tests pass KM_EXTRA_ARGS to kmagentd (e.g. "--write-policy first").
#
# Processes are started by label ("mc-a", "km-a", or one given by the caller),
# their PID and command line remembered, so lab_kill/lab_restart act on that
# exact PID.  lab_cleanup (run once at EXIT, idempotent) kills every recorded
# PID, deletes every namespace it made (taking their veths and the bridge with
# them) and every pin directory registered with lab_pin_dir.

LAB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LAB_ID=${LAB_ID:-$$}
LAB_PFX=km$LAB_ID
LAB_SW=${LAB_PFX}sw
LAB_PREFIXLEN=${LAB_PREFIXLEN:-24}
LAB_KMAGENTD=${LAB_KMAGENTD:-$LAB_ROOT/build/kmagentd}
LAB_MEMCACHED=${LAB_MEMCACHED:-memcached}
# the pyenv shim works in a namespace but costs ~50 ms a call: prefer the
# system interpreter, the tools are stdlib only
if [ -z "${LAB_PY:-}" ]; then
	if [ -x /usr/bin/python3 ]; then LAB_PY=/usr/bin/python3; else LAB_PY=python3; fi
fi
LAB_MC=$LAB_ROOT/tests/tools/mc.py

LAB_DIR=
LAB_NSES=()		# namespaces made, in creation order
LAB_PINS=()		# pin directories to remove
declare -A LAB_PID=()	# label -> PID
declare -A LAB_CMD=()	# label -> the command (as a %q-quoted string)
declare -A LAB_PNS=()	# label -> host the process runs in
declare -A LAB_LOG=()	# label -> its log file
declare -A LAB_WAIT=()	# label -> "ADDR:PORT" that answers when it is ready
declare -A LAB_ADDR=()	# host -> address
declare -A LAB_ADDR6=()	# host -> IPv6 address (lab_host6)
declare -A LAB_CTL=()	# kmagentd label -> its control socket (--ctl)
LAB_LABELS=()		# labels in start order
LAB_OK=0
LAB_FAILS=0
LAB_CLEANED=0

# ---- messages and assertions -------------------------------------------

lab_log() { printf '# %s\n' "$*"; }

lab_pass()
{
	LAB_OK=$((LAB_OK + 1))
	printf 'ok - %s\n' "$1"
}

lab_fail()
{
	LAB_FAILS=$((LAB_FAILS + 1))
	printf 'not ok - %s\n' "$1"
}

# lab_eq WHAT EXPECTED GOT
lab_eq()
{
	if [ "$2" == "$3" ]; then
		lab_pass "$1"
	else
		lab_fail "$1 (expected '$2', got '$3')"
	fi
}

# lab_ne WHAT UNWANTED GOT
lab_ne()
{
	if [ "$2" != "$3" ]; then
		lab_pass "$1"
	else
		lab_fail "$1 (expected anything but '$2', got it)"
	fi
}

# lab_ok WHAT CMD...: the command must succeed
lab_ok()
{
	local what=$1 out rc
	shift
	out=$("$@" 2>&1)
	rc=$?
	if [ $rc -eq 0 ]; then
		lab_pass "$what"
	else
		lab_fail "$what (expected exit 0, got $rc: $(printf '%s' "$out" | tail -n 5 | tr '\n' '|'))"
	fi
}

# lab_not WHAT CMD...: the command must fail
lab_not()
{
	local what=$1 rc
	shift
	"$@" >/dev/null 2>&1
	rc=$?
	if [ $rc -ne 0 ]; then
		lab_pass "$what"
	else
		lab_fail "$what (expected a failure, got exit 0)"
	fi
}

# lab_die MESSAGE: a setup step failed, no point going on
lab_die()
{
	lab_fail "$*"
	exit 1
}

# ---- the lab -------------------------------------------------------------

lab_need_root()
{
	if [ "$(id -u)" != 0 ]; then
		echo "1..0 # SKIP needs root (network namespaces)"
		exit 77
	fi
}

# lab_init: the switch namespace with its bridge, the EXIT trap, a temp dir
lab_init()
{
	lab_need_root
	command -v "$LAB_MEMCACHED" >/dev/null ||
		lab_die "memcached not found (scripts/install-deps.sh installs it)"
	LAB_DIR=$(mktemp -d "/tmp/kmlab.$LAB_ID.XXXXXX") ||
		lab_die "mktemp failed"
	trap lab_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	lab_netns_add "$LAB_SW" || lab_die "cannot create namespace $LAB_SW"
	ip -n "$LAB_SW" link add br0 type bridge || lab_die "cannot create bridge"
	# no STP: ports forward at once
	ip -n "$LAB_SW" link set br0 type bridge stp_state 0 forward_delay 0 \
		2>/dev/null
	ip -n "$LAB_SW" link set br0 up || lab_die "cannot bring br0 up"
}

lab_netns_add()
{
	ip netns add "$1" || return 1
	LAB_NSES+=("$1")
	ip -n "$1" link set lo up
}

# lab_ns HOST: the namespace name of a host
lab_ns() { printf '%s%s' "$LAB_PFX" "$1"; }

# lab_brport HOST: the switch side of the host's veth (in namespace $LAB_SW)
lab_brport() { printf 'k%s%s' "$LAB_ID" "$1"; }

# lab_host HOST ADDR: a namespace joined to the bridge, eth0 = ADDR/24
lab_host()
{
	local h=$1 addr=$2 ns port
	ns=$(lab_ns "$h")
	port=$(lab_brport "$h")
	[ ${#port} -le 15 ] || lab_die "interface name $port longer than 15"
	case $addr in
	198.18.* | 198.19.*) ;;
	*) lab_die "lab address $addr outside 198.18.0.0/15" ;;
	esac
	lab_netns_add "$ns" || lab_die "cannot create namespace $ns"
	ip -n "$LAB_SW" link add "$port" type veth peer name eth0 netns "$ns" ||
		lab_die "cannot create veth $port"
	ip -n "$LAB_SW" link set "$port" master br0 up ||
		lab_die "cannot attach $port to br0"
	# a real wire never carries a partial checksum: see BRIEF section 4
	ip netns exec "$LAB_SW" ethtool -K "$port" tx off >/dev/null 2>&1
	ip netns exec "$ns" ethtool -K eth0 tx off >/dev/null 2>&1
	ip -n "$ns" addr add "$addr/$LAB_PREFIXLEN" dev eth0 ||
		lab_die "cannot set $addr on $ns"
	ip -n "$ns" link set eth0 up || lab_die "cannot bring eth0 up in $ns"
	LAB_ADDR[$h]=$addr
}

# lab_xdp_pass HOST: attach a trivial XDP_PASS program to the switch side of
# HOST's veth.  A frame sent by XDP_TX/XDP_REDIRECT into a veth is only
# received promptly when the peer has NAPI enabled, which an XDP program
# does (BRIEF section 4); use it on every host whose eth0 runs the kernel
# path.  The object is built once per lab with clang; native mode, generic
# as a fallback (with a warning).
lab_xdp_pass()
{
	local port obj=$LAB_DIR/xdp_pass.o
	port=$(lab_brport "$1")
	if [ ! -f "$obj" ]; then
		printf '%s\n' '#include <linux/bpf.h>' \
			'__attribute__((section("xdp"), used))' \
			'int xdp_pass(struct xdp_md *ctx) { return XDP_PASS; }' \
			'char _license[] __attribute__((section("license"), used)) = "GPL";' \
			>"$LAB_DIR/xdp_pass.c"
		clang -O2 -target bpf -I"/usr/include/$(uname -m)-linux-gnu" \
			-c "$LAB_DIR/xdp_pass.c" -o "$obj" ||
			lab_die "cannot build the XDP_PASS program"
	fi
	if ! ip -n "$LAB_SW" link set dev "$port" xdpdrv obj "$obj" sec xdp \
		2>/dev/null; then
		lab_log "warning: native XDP on $port failed, using generic mode"
		ip -n "$LAB_SW" link set dev "$port" xdpgeneric obj "$obj" sec xdp ||
			lab_die "cannot attach XDP_PASS to $port"
	fi
}

# lab_host6 HOST ADDR6: an IPv6 address too on HOST's eth0 (after lab_host),
# from 2001:2::/48 (RFC 5180, IPv6's benchmarking range), /64, usable at
# once (nodad: no duplicate address detection to wait for)
lab_host6()
{
	local h=$1 addr=$2
	case $addr in
	2001:2::* | 2001:2:0:*) ;;
	*) lab_die "lab address $addr outside 2001:2::/48" ;;
	esac
	ip -n "$(lab_ns "$h")" addr add "$addr/64" dev eth0 nodad ||
		lab_die "cannot set $addr on $(lab_ns "$h")"
	LAB_ADDR6[$h]=$addr
}

# lab_addr HOST: the address given to lab_host
lab_addr() { printf '%s' "${LAB_ADDR[$1]}"; }

# lab_in HOST CMD...: run a command inside a host
lab_in()
{
	local h=$1
	shift
	ip netns exec "$(lab_ns "$h")" "$@"
}

# lab_mc HOST MC.PY-ARGS...: tests/tools/mc.py run inside a host
lab_mc()
{
	local h=$1
	shift
	ip netns exec "$(lab_ns "$h")" "$LAB_PY" "$LAB_MC" "$@"
}

# lab_pin_dir PATH: remove PATH (a bpffs pin directory) at cleanup
lab_pin_dir() { LAB_PINS+=("$1"); }

# ---- processes -----------------------------------------------------------

# lab_answers HOST ADDR PORT: does a memcached-speaking server answer there?
lab_answers()
{
	lab_in "$1" "$LAB_PY" "$LAB_MC" --timeout 0.3 "$2:$3" version \
		>/dev/null 2>&1
}

# lab_wait_answer HOST ADDR PORT [TRIES]: poll every 0.1 s (default 5 s)
lab_wait_answer()
{
	local i tries=${4:-50}
	for ((i = 0; i < tries; i++)); do
		lab_answers "$1" "$2" "$3" && return 0
		sleep 0.1
	done
	return 1
}

# lab_alive LABEL: is the recorded PID still running?
lab_alive()
{
	local pid=${LAB_PID[$1]:-}
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# lab_spawn LABEL HOST CMD...: start CMD in HOST in the background, record
# its PID (ip netns exec execs the command, so $! is the command itself)
lab_spawn()
{
	local label=$1 h=$2
	shift 2
	local log=$LAB_DIR/$label.log
	LAB_CMD[$label]=$(printf '%q ' "$@")
	LAB_PNS[$label]=$h
	LAB_LOG[$label]=$log
	ip netns exec "$(lab_ns "$h")" "$@" </dev/null >>"$log" 2>&1 &
	LAB_PID[$label]=$!
	# no "Killed" job notices when a test kills it on purpose
	disown "$!"
	local l known=0
	for l in "${LAB_LABELS[@]}"; do [ "$l" == "$label" ] && known=1; done
	[ $known -eq 1 ] || LAB_LABELS+=("$label")
}

# lab_pid LABEL
lab_pid() { printf '%s' "${LAB_PID[$1]:-}"; }

# lab_wait_ready LABEL: wait until the process answers, or fail the test
lab_wait_ready()
{
	local label=$1 where=${LAB_WAIT[$1]}
	if lab_wait_answer "${LAB_PNS[$label]}" "${where%:*}" "${where##*:}"; then
		return 0
	fi
	lab_show_log "$label"
	if lab_alive "$label"; then
		lab_die "$label (pid ${LAB_PID[$label]}) does not answer on $where"
	fi
	lab_die "$label exited before answering on $where"
}

# lab_memcached HOST [PORT] [EXTRA-ARGS...]: memcached on the host's address,
# TCP and UDP on PORT (default 11211), label "mc-HOST" (or $LAB_LABEL)
lab_memcached()
{
	local h=$1 port=${2:-11211}
	shift
	[ $# -gt 0 ] && shift
	local label=${LAB_LABEL:-mc-$h} addr=${LAB_ADDR[$h]}
	lab_spawn "$label" "$h" "$LAB_MEMCACHED" -u root -p "$port" \
		-U "$port" -l "$addr" "$@"
	LAB_WAIT[$label]=$addr:$port
	lab_wait_ready "$label"
}

# lab_memcached6 HOST [PORT [LABEL]]: memcached on HOST's IPv6 address
# only (lab_host6), -l [ADDR] (memcached's RFC 3986 form), label "mc-HOST"
lab_memcached6()
{
	local h=$1 port=${2:-11211} label=${3:-mc-$1}
	lab_spawn "$label" "$h" "$LAB_MEMCACHED" -u root -p "$port" \
		-U "$port" -l "[${LAB_ADDR6[$h]}]"
	LAB_WAIT[$label]=[${LAB_ADDR6[$h]}]:$port
	lab_wait_ready "$label"
}

# lab_kmagentd HOST ARGS...: build/kmagentd -D ARGS in HOST, label "km-HOST"
# (or $LAB_LABEL); waits until it answers on its -p port (default 11211) at
# the host's address (or its -l address).  Adds --ctl LAB_DIR/LABEL.ctl
# unless the caller gives --ctl: ${LAB_CTL[LABEL]} is the path.
lab_kmagentd()
{
	local h=$1
	shift
	local label=${LAB_LABEL:-km-$h} port=11211 addr=${LAB_ADDR[$h]}
	local args=("$@") i ctl_given=0
	[ -x "$LAB_KMAGENTD" ] || lab_die "$LAB_KMAGENTD not built (run make)"
	for ((i = 0; i < ${#args[@]}; i++)); do
		case ${args[i]} in
		-p | --port) port=${args[i + 1]} ;;
		--port=*) port=${args[i]#--port=} ;;
		-l | --listen)
			case ${args[i + 1]} in
			0.0.0.0 | ::) ;; # every address: the host's answers
			\[*) addr=${args[i + 1]} ;;
			*:*) addr="[${args[i + 1]}]" ;;
			*) addr=${args[i + 1]} ;;
			esac
			;;
		--ctl) LAB_CTL[$label]=${args[i + 1]} ctl_given=1 ;;
		esac
	done
	# one control socket per instance: the default path (/run) is shared
	# by every namespace and every concurrent test run
	if [ $ctl_given -eq 0 ] &&
		"$LAB_KMAGENTD" --help 2>&1 | grep -q -- --ctl; then
		LAB_CTL[$label]=$LAB_DIR/$label.ctl
		args+=(--ctl "${LAB_CTL[$label]}")
	fi
	lab_spawn "$label" "$h" "$LAB_KMAGENTD" -D "${args[@]}"
	LAB_WAIT[$label]=$addr:$port
	lab_wait_ready "$label"
}

# lab_kill LABEL [SIGNAL]: signal the recorded PID (default TERM), reap it
lab_kill()
{
	local label=$1 sig=${2:-TERM} pid=${LAB_PID[$1]:-} i
	[ -n "$pid" ] || return 0
	kill -"$sig" "$pid" 2>/dev/null
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -9 "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	LAB_PID[$label]=
}

# lab_restart LABEL: start the same command again, in the same host, and wait
# until it answers
lab_restart()
{
	local label=$1
	lab_alive "$label" && lab_kill "$label"
	eval "lab_spawn \"\$label\" \"\${LAB_PNS[\$label]}\" ${LAB_CMD[$label]}"
	lab_wait_ready "$label"
}

# lab_show_log LABEL: print a process's output (stderr and stdout)
lab_show_log()
{
	local log=${LAB_LOG[$1]:-}
	[ -n "$log" ] && [ -s "$log" ] || return 0
	printf '# ---- %s output (%s) ----\n' "$1" "${LAB_CMD[$1]}"
	tail -n "${LAB_LOG_LINES:-60}" "$log" | sed 's/^/# | /'
}

# ---- the end -------------------------------------------------------------

# lab_done: summary line; exit status 1 when any check failed
lab_done()
{
	printf '# %d passed, %d failed\n' "$LAB_OK" "$LAB_FAILS"
	[ "$LAB_FAILS" -eq 0 ] && [ "$LAB_OK" -gt 0 ] && exit 0
	exit 1
}

# lab_cleanup: runs at EXIT; kills, deletes, removes; safe to call twice
lab_cleanup()
{
	local rc=$? label pid i ns
	[ "$LAB_CLEANED" -eq 1 ] && return 0
	LAB_CLEANED=1
	trap - INT TERM
	[ "$LAB_FAILS" -gt 0 ] && [ $rc -eq 0 ] && rc=1
	if [ $rc -ne 0 ] && [ -n "$LAB_DIR" ]; then
		for label in "${LAB_LABELS[@]}"; do
			case $label in mc-*) continue ;; esac
			lab_show_log "$label"
		done
	fi
	for label in "${LAB_LABELS[@]}"; do
		pid=${LAB_PID[$label]:-}
		[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
	done
	for label in "${LAB_LABELS[@]}"; do
		pid=${LAB_PID[$label]:-}
		[ -n "$pid" ] || continue
		for ((i = 0; i < 20; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		LAB_PID[$label]=
	done
	# LAB_KEEP_LOGS=DIR: keep every process's output (exit-time reports of
	# sanitizers included: the processes are gone by now)
	if [ -n "${LAB_KEEP_LOGS:-}" ] && [ -n "$LAB_DIR" ]; then
		mkdir -p "$LAB_KEEP_LOGS" &&
			for label in "${LAB_LABELS[@]}"; do
				[ -f "$LAB_DIR/$label.log" ] &&
					cp "$LAB_DIR/$label.log" \
						"$LAB_KEEP_LOGS/$(basename "$0" .sh).$label.log"
			done
	fi
	# hosts first, the switch last; deleting a namespace deletes its veths
	for ((i = ${#LAB_NSES[@]} - 1; i >= 0; i--)); do
		ns=${LAB_NSES[i]}
		ip netns pids "$ns" 2>/dev/null | while read -r pid; do
			# a process the test started indirectly (a client left
			# behind by a killed shell): it lives in our namespace
			kill -9 "$pid" 2>/dev/null
		done
		ip netns del "$ns" 2>/dev/null
	done
	LAB_NSES=()
	for i in "${LAB_PINS[@]}"; do
		[ -n "$i" ] && [ "$i" != / ] && rm -rf -- "$i"
	done
	LAB_PINS=()
	[ -n "$LAB_DIR" ] && rm -rf -- "$LAB_DIR"
	exit $rc
}

# lab_san_kmagentd: the test's kmagentd is build-san/kmagentd (ASan,
# UBSan; make SAN=1 build-san/kmagentd), which halts on the first report,
# leaks included
lab_san_kmagentd()
{
	LAB_KMAGENTD=$LAB_ROOT/build-san/kmagentd
	[ -x "$LAB_KMAGENTD" ] || {
		echo "not ok - $LAB_KMAGENTD missing (make SAN=1 build-san/kmagentd)"
		exit 1
	}
	export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
}

# lab_two_backends [--tap]: memcached m1 (198.18.0.1) and m2 (.2), host p
# (.4) for kmagentd, client c (.10); sets M1 M2 (port 11211) and P (p, port
# 11210).  --tap: m2's memcached listens on its loopback, behind
# tests/tools/mctap.py on its lab address (label tap-m2, log $taplog).
lab_two_backends()
{
	lab_init
	lab_host m1 198.18.0.1
	lab_host m2 198.18.0.2
	lab_host p 198.18.0.4
	lab_host c 198.18.0.10
	M1=198.18.0.1:11211 M2=198.18.0.2:11211 P=198.18.0.4:11210
	lab_memcached m1 11211
	if [ "${1:-}" != --tap ]; then
		lab_memcached m2 11211
		return
	fi
	LAB_ADDR[m2]=127.0.0.1
	lab_memcached m2 11211
	LAB_ADDR[m2]=198.18.0.2
	taplog=$LAB_DIR/m2.tap
	lab_spawn tap-m2 m2 "$LAB_PY" "$LAB_ROOT/tests/tools/mctap.py" \
		"$M2" 127.0.0.1:11211 --log "$taplog"
	LAB_WAIT[tap-m2]=$M2
	lab_wait_ready tap-m2
}

lab_judge_lab()
{
	lab_init
	lab_host r 198.18.0.1
	lab_host m1 198.18.0.2
	lab_host m2 198.18.0.3
	lab_host p 198.18.0.4
	lab_host c 198.18.0.10
	lab_memcached r 11211
	lab_memcached m1 11211
	lab_memcached m2 11211
}

lab_judge_kmagentd()
{
	# shellcheck disable=SC2086
	lab_kmagentd p -p 11210 -s 198.18.0.2:11211 -s 198.18.0.3:11211 \
		${KM_EXTRA_ARGS:-}
}
