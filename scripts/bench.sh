#!/bin/bash
# make bench: kmagent against memcached direct and nutcracker, same lab,
# same run, targets alternating, several repetitions each (medians).
#
#   scripts/bench.sh              full run (< 10 min on 2 cores)
#   BENCH_QUICK=1 scripts/bench.sh  one short repetition (< 2 min)
#
# Knobs (environment): BENCH_REPS, BENCH_SECS, BENCH_KEYS, BENCH_VALUE,
# KM_THREADS (kmagentd -t), BENCH_OUT (docs/benchmarks.md), BENCH_NOPLOT=1,
# BENCH_POLL_IDLE=0 (keep the idle governor's halt, see main), BENCH_PERF=1
# (perf profile of the userspace proxies), BENCH_TARGETS (a subset),
# BENCH_ZIPF_TARGETS (measured again with zipf keys, 16x1), BENCH_ARTICLE=0
# (no article-shape phase).
#
# The lab: one switch namespace holding a bridge, and one namespace per
# host on it, each with a veth "eth0" (198.18.0.0/24, no default route):
#   c  198.18.0.10  the client (build/tools/kmbench)
#   a  198.18.0.1   memcached -t 1, TCP+UDP 11211
#   b  198.18.0.2   memcached -t 1, TCP+UDP 11211
#   p  198.18.0.3   kmagentd TCP path (11210, -t $KM_THREADS), nutcracker 22121
#   k  198.18.0.4   kmagentd with the kernel path (-I eth0), 11211
#   r  198.18.0.5   a plain IP router to memcached a (198.18.1.1)
# The client has its own namespace so that XDP on k's eth0 sees the
# requests as real ingress.
#
# The article's shape, a phase of its own after the others: kmagentd -I
# eth0 (port 11210) on a and on b beside their memcached, each proxying
# both, the client's connections taking the two in turn (kmbench -s a -s
# b).  Only then, so that no XDP on a's and b's eth0 touches the other
# rows; detached again afterwards.  Everything is named after this script's PID
# and removed by the EXIT trap, as is the sysctl kernel.bpf_stats_enabled
# (restored to its value at start).
#
# The production shape: a proxy host has a core of its own.  kmagentd,
# nutcracker and the proxy hosts' (p, k, r) NAPI are on PROXY_CPU (1), the
# client and memcached on LOAD_CPU (0).  A proxy host's eth0 runs threaded
# NAPI, its kthread pinned to PROXY_CPU: what the host receives, the kernel
# path's XDP and tc programs included, runs there and not in the softirq of
# whichever CPU sent the frame.  The switch-side end of its veth has NAPI
# (GRO; XDP_TX into it needs one) polled in the softirq of whoever sent
# into it, on PROXY_CPU too (BENCH_SWITCH_NAPI=thread: a kthread of its
# own).  The load hosts' eth0 have RPS to LOAD_CPU, so that what a proxy
# sends them is received on their core.  A proxy's CPU per request is then
# its process plus its host's NAPI kthreads.
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)

QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
	REPS=${BENCH_REPS:-1}
	SECS=${BENCH_SECS:-1}
	KEYS=${BENCH_KEYS:-20000}
else
	REPS=${BENCH_REPS:-3}
	SECS=${BENCH_SECS:-3}
	KEYS=${BENCH_KEYS:-100000}
fi
VALUE=${BENCH_VALUE:-100}
# One worker: the proxy host has one core, and a second worker only adds
# wake-ups (measured when all shared 2 cores, 3 x 2 s, TCP 16x1: get
# 0.56 x direct with -t 1, 0.50 x with -t 2; set x2 0.62 x vs 0.51 x; 6.3
# vs 7.8 us of CPU per get).  nutcracker is single-threaded.
KM_THREADS=${KM_THREADS:-1}
# BENCH_LOAD_CPU, BENCH_PROXY_CPU: the two cores of the shape (see above)
LOAD_CPU=${BENCH_LOAD_CPU:-0}
PROXY_CPU=${BENCH_PROXY_CPU:-1}
# BENCH_SWITCH_NAPI=thread: the switch-side ends of the proxy hosts get
# NAPI kthreads of their own too
SWITCH_NAPI=${BENCH_SWITCH_NAPI:-softirq}
OUT_MD=${BENCH_OUT:-docs/benchmarks.md}
OUT_PNG=${OUT_MD%.md}.png

ID=$$
P=kb$ID
NET=198.18.0
declare -A ADDR=([c]=$NET.10 [a]=$NET.1 [b]=$NET.2 [p]=$NET.3 [k]=$NET.4
	[r]=$NET.5)
HOSTS=(c a b p k r)
PROXY_HOSTS=(p k r)
LOAD_HOSTS=(c a b)
declare -A HOST_CPU=([c]=$LOAD_CPU [a]=$LOAD_CPU [b]=$LOAD_CPU
	[p]=$PROXY_CPU [k]=$PROXY_CPU [r]=$PROXY_CPU)
# memcached a's second address, reached from c through router r only: the
# same extra hop as through a proxy host, with no proxy in it
HOP_ADDR=198.18.1.1
KMBENCH=$ROOT/build/tools/kmbench
KMAGENTD=$ROOT/build/kmagentd
KMAGENTCTL=$ROOT/build/kmagentctl
WORK=$ROOT/build/bench
PIN_ROOT=/sys/fs/bpf/kmbench$ID
CLK_TCK=$(getconf CLK_TCK)

POLL_IDLE=0
declare -A PID=()	# label -> pid
declare -A CMD=()	# label -> "ns command..." (to restart)
declare -A NAPI=()	# host -> "pid:rx|tx ..." its NAPI kthreads
NSES=()
STATS_OLD=
T0=$(date +%s)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)

log() { printf 'bench: %s\n' "$*" >&2; }

cleanup()
{
	local l ns
	for l in "${!PID[@]}"; do
		kill -9 "${PID[$l]}" 2>/dev/null
	done
	for l in "${!PID[@]}"; do
		wait "${PID[$l]}" 2>/dev/null
	done
	# anything else still running in the lab was started by this script
	for ns in "${NSES[@]}"; do
		for l in $(ip netns pids "$ns" 2>/dev/null); do
			kill -9 "$l" 2>/dev/null
		done
	done
	for ns in "${NSES[@]}"; do
		ip netns del "$ns" 2>/dev/null
	done
	rm -rf "$PIN_ROOT" "$PIN_ROOT-a" "$PIN_ROOT-b"
	[ -n "$STATS_OLD" ] && sysctl -q -w kernel.bpf_stats_enabled="$STATS_OLD"
	return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

in_ns() { local h=$1; shift; ip netns exec "$P$h" "$@"; }

# ---- the lab ----------------------------------------------------------------

lab_up()
{
	local h sw=${P}sw
	ip netns add "$sw" || return 1
	NSES+=("$sw")
	ip -n "$sw" link add br0 type bridge stp_state 0 || return 1
	ip -n "$sw" link set br0 up
	# a switch does not run iptables: keep br_netfilter (when some other
	# software loaded it) off this bridge, it costs every hop
	ip netns exec "$sw" sysctl -q -w net.bridge.bridge-nf-call-iptables=0 \
		net.bridge.bridge-nf-call-ip6tables=0 \
		net.bridge.bridge-nf-call-arptables=0 2>/dev/null
	for h in "${HOSTS[@]}"; do
		ip netns add "$P$h" || return 1
		NSES+=("$P$h")
		ip link add "kb$ID$h" netns "$sw" type veth peer name eth0 \
			netns "$P$h" || return 1
		ip -n "$sw" link set "kb$ID$h" master br0 up
		ip -n "$P$h" link set lo up
		ip -n "$P$h" addr add "${ADDR[$h]}/24" dev eth0
		ip -n "$P$h" link set eth0 up
		# a real wire never carries partial checksums (BRIEF §4)
		in_ns "$h" ethtool -K eth0 tx off >/dev/null 2>&1
		ip netns exec "$sw" ethtool -K "kb$ID$h" tx off >/dev/null 2>&1
	done
	for h in "${LOAD_HOSTS[@]}"; do
		rps_to "$h" || return 1
	done
	for h in "${PROXY_HOSTS[@]}"; do
		napi_thread "$h" "$P$h" eth0 rx || return 1
		if [ "$SWITCH_NAPI" = thread ]; then
			napi_thread "$h" "$sw" "kb$ID$h" tx || return 1
		else
			# NAPI (XDP_TX into it needs one) in the softirq of
			# the proxy's core: of the kthread or process that sent
			ip netns exec "$sw" ethtool -K "kb$ID$h" gro on \
				>/dev/null 2>&1
		fi
	done
	hop_up
}

# rps_to HOST: what reaches HOST's eth0 is received on HOST's core.  Its
# veth has no NAPI, so a frame is received in the softirq of the CPU that
# sent it (netif_rx), unless RPS sends it on: a frame from a proxy's core
# is then the load core's work, as on two machines.
rps_to()
{
	in_ns "$1" sh -c "printf %x $((1 << ${HOST_CPU[$1]})) \
		>/sys/class/net/eth0/queues/rx-0/rps_cpus" && return 0
	log "no RPS on eth0 of $1"
	return 1
}

# the PIDs of all NAPI kthreads, sorted as comm(1) wants them
napi_all()
{
	ps -e -o pid=,comm= | awk '$2 ~ /^napi\// { print $1 }' | sort
}

# napi_thread HOST NS DEV ROLE: threaded NAPI on DEV (in NS), its kthread
# pinned to HOST's core and counted as HOST's (ROLE rx: what HOST receives;
# tx: the switch-side end, what HOST sends into the bridge).  A veth has
# NAPI only with XDP or GRO on: GRO it is, before XDP comes and goes.
napi_thread()
{
	local h=$1 ns=$2 dev=$3 role=$4 before pid comm n=0
	ip netns exec "$ns" ethtool -K "$dev" gro on >/dev/null 2>&1
	before=$(napi_all)
	if ! ip netns exec "$ns" sh -c "echo 1 >/sys/class/net/$dev/threaded"
	then
		log "no threaded NAPI on $dev of $ns"
		return 1
	fi
	# the kthread is named napi/DEV-ID (15 characters at most)
	for pid in $(comm -13 <(echo "$before") <(napi_all)); do
		comm=$(cat "/proc/$pid/comm" 2>/dev/null)
		[[ "$comm" == "napi/${dev:0:10}"* ]] || continue
		taskset -p -c "${HOST_CPU[$h]}" "$pid" >/dev/null || return 1
		NAPI[$h]+="$pid:$role "
		n=$((n + 1))
	done
	[ $n -gt 0 ] || log "no NAPI kthread showed up for $dev of $ns"
	[ $n -gt 0 ]
}

# napi_pids HOST [ROLE]: HOST's NAPI kthreads (of one role)
napi_pids()
{
	local e
	for e in ${NAPI[$1]:-}; do
		[ -z "${2:-}" ] || [ "${e#*:}" = "$2" ] && echo "${e%%:*}"
	done
}

# run_ns PID...: CPU time of these tasks and of all their threads, in ns
# (sum_exec_runtime from schedstat: exact where utime+stime are 4 ms ticks;
# it includes the softirq work that interrupted them, as utime+stime do)
run_ns()
{
	local task
	for task in "$@"; do
		cat /proc/"$task"/task/*/schedstat 2>/dev/null
	done | awk '{ s += $1 } END { printf "%.0f\n", s }'
}

# run_count PID...: times these tasks were scheduled in (for a NAPI
# kthread: its wake-ups, each one or more polls)
run_count()
{
	local task
	for task in "$@"; do
		cat /proc/"$task"/task/*/schedstat 2>/dev/null
	done | awk '{ s += $3 } END { printf "%.0f\n", s }'
}

# core_ticks CPU: what ran on CPU (user nice system irq softirq), USER_HZ
core_ticks()
{
	awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8 }' /proc/stat
}

# c -> r -> a for HOP_ADDR, both ways (a answers from it through r): the
# "direct through one hop" targets.  No redirects, or c would learn to
# bypass r.
hop_up()
{
	in_ns r sysctl -q -w net.ipv4.ip_forward=1 \
		net.ipv4.conf.all.send_redirects=0 \
		net.ipv4.conf.eth0.send_redirects=0 || return 1
	in_ns r ip route add "$HOP_ADDR/32" via "${ADDR[a]}" || return 1
	in_ns c sysctl -q -w net.ipv4.conf.all.accept_redirects=0 \
		net.ipv4.conf.eth0.accept_redirects=0
	in_ns c ip route add "$HOP_ADDR/32" via "${ADDR[r]}" || return 1
	in_ns a ip addr add "$HOP_ADDR/32" dev lo || return 1
	in_ns a ip rule add from "$HOP_ADDR" lookup 100 || return 1
	in_ns a ip route add "$NET.0/24" via "${ADDR[r]}" table 100
}

# xdp_pass_on_peer [HOST]: XDP_TX out of HOST's (k's) eth0 lands on its
# peer: give the peer NAPI (BRIEF §4).
xdp_pass_on_peer()
{
	local obj=$WORK/xdp_pass.o h=${1:-k}
	[ -f "$obj" ] || printf '%s\n' '#include <linux/bpf.h>' \
		'__attribute__((section("xdp"), used)) int km_bench_pass(struct xdp_md *c) { return XDP_PASS; }' \
		'char _l[] __attribute__((section("license"), used)) = "GPL";' |
		clang -O2 -g -target bpf -I"/usr/include/$(gcc -dumpmachine)" \
			-c -x c - -o "$obj" || return 1
	ip -n "${P}sw" link set dev "kb${ID}$h" xdpdrv obj "$obj" sec xdp
}

# start LABEL HOST CMD...: run CMD in HOST's namespace on HOST's core,
# remember its PID
start()
{
	local label=$1 h=$2
	shift 2
	CMD[$label]="$h $(printf '%q ' taskset -c "${HOST_CPU[$h]}" "$@")"
	ip netns exec "$P$h" taskset -c "${HOST_CPU[$h]}" "$@" \
		>"$WORK/$label.log" 2>&1 &
	PID[$label]=$!
}

# client ARGS...: kmbench in the client's namespace, on the client's core
client()
{
	ip netns exec "${P}c" taskset -c "${HOST_CPU[c]}" "$KMBENCH" "$@"
}

restart()
{
	local label=$1 h cmd
	read -r h cmd <<<"${CMD[$label]}"
	eval "set -- $cmd"
	ip netns exec "$P$h" "$@" >>"$WORK/$label.log" 2>&1 &
	PID[$label]=$!
}

stop()
{
	local label=$1
	[ -n "${PID[$label]:-}" ] || return 0
	kill -9 "${PID[$label]}" 2>/dev/null
	wait "${PID[$label]}" 2>/dev/null
	unset "PID[$label]"
}

# wait_tcp HOST ADDR PORT: until something accepts there (5 s)
wait_tcp()
{
	local i
	for i in $(seq 50); do
		in_ns c bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# mc_stat ADDR NAME: one figure of memcached's "stats" at ADDR:11211
mc_stat()
{
	in_ns c python3 -c '
import socket, sys
s = socket.create_connection((sys.argv[1], 11211), timeout=2)
s.sendall(b"stats\r\n")
d = b""
while not d.endswith(b"END\r\n"):
    c = s.recv(65536)
    if not c:
        break
    d += c
for l in d.decode().split("\r\n"):
    f = l.split()
    if len(f) == 3 and f[1] == sys.argv[2]:
        print(f[2])' "$1" "$2" 2>/dev/null
}

alive() { [ -n "${PID[$1]:-}" ] && kill -0 "${PID[$1]}" 2>/dev/null; }

start_memcached()
{
	local h=$1
	local l=${ADDR[$h]}
	[ "$h" = a ] && l+=,$HOP_ADDR
	start "mc-$h" "$h" memcached -u root -l "$l" -p 11211 \
		-U 11211 -t 1 -m 1024 -c 4096
	wait_tcp c "${ADDR[$h]}" 11211
}

nutcracker_conf()
{
	cat <<EOF
# kmbench lab: nutcracker in front of both backends, ketama, no replication
kmb:
  listen: ${ADDR[p]}:22121
  hash: fnv1a_64
  distribution: ketama
  timeout: 400
  backlog: 1024
  preconnect: true
  auto_eject_hosts: true
  server_retry_timeout: 30000
  server_failure_limit: 1
  servers:
   - ${ADDR[a]}:11211:1 a
   - ${ADDR[b]}:11211:1 b
EOF
}

# kmagentd's optional flags, when this build has them
km_extra_flags()
{
	local inst=$1 help
	help=$("$KMAGENTD" --help 2>&1)
	if grep -q -- '--ctl' <<<"$help"; then
		printf -- '--ctl %s ' "$WORK/km-$inst.sock"
	fi
	if [ "$inst" = k ] && grep -q -- '--pin-root' <<<"$help"; then
		printf -- '--pin-root %s ' "$PIN_ROOT"
	fi
}

# ---- targets ----------------------------------------------------------------
# name -> "proto addr:port process-label host" (host: whose NAPI kthreads
# count); n/a targets get a reason instead
declare -A TGT=() NA=()
TARGETS=(direct-tcp direct-udp hop-tcp hop-udp nutcracker kmagent-tcp kmagent-udp
	kmagent-kernel kmagent-first)
# BENCH_TARGETS="direct-udp kmagent-kernel": measure only those (development)
if [ -n "${BENCH_TARGETS:-}" ]; then
	read -r -a TARGETS <<<"$BENCH_TARGETS"
fi
# measured with zipf keys too (16x1), those of TARGETS only
read -r -a ZIPF_TARGETS <<<"${BENCH_ZIPF_TARGETS:-direct-tcp direct-udp kmagent-tcp kmagent-kernel}"

setup_targets()
{
	# the direct rows count memcached a and its NAPI kthread, the router
	# rows the router's kthreads (no process of its own)
	TGT[direct-tcp]="tcp ${ADDR[a]}:11211 mc-a a"
	TGT[direct-udp]="udp ${ADDR[a]}:11211 mc-a a"
	TGT[hop-tcp]="tcp $HOP_ADDR:11211 - r"
	TGT[hop-udp]="udp $HOP_ADDR:11211 - r"

	nutcracker_conf >"$WORK/nutcracker.yml"
	start nutcracker p nutcracker -c "$WORK/nutcracker.yml" \
		-s 22222 -a "${ADDR[p]}" -p "$WORK/nutcracker.pid" \
		-o "$WORK/nutcracker.out"
	if wait_tcp c "${ADDR[p]}" 22121; then
		TGT[nutcracker]="tcp ${ADDR[p]}:22121 nutcracker p"
	else
		NA[nutcracker]="n/a (nutcracker did not start)"
	fi

	if [ ! -x "$KMAGENTD" ]; then
		NA[kmagent-tcp]="n/a (not built)"
		NA[kmagent-udp]="n/a (not built)"
		NA[kmagent-kernel]="n/a (not built)"
		return 0
	fi
	# shellcheck disable=SC2046
	start km-p p "$KMAGENTD" -D -l "${ADDR[p]}" -p 11210 \
		-s "${ADDR[a]}:11211" -s "${ADDR[b]}:11211" -t "$KM_THREADS" \
		$(km_extra_flags p)
	if wait_tcp c "${ADDR[p]}" 11210 && alive km-p; then
		TGT[kmagent-tcp]="tcp ${ADDR[p]}:11210 km-p p"
		TGT[kmagent-udp]="udp ${ADDR[p]}:11210 km-p p"
	else
		NA[kmagent-tcp]="n/a (kmagentd did not start, see $WORK/km-p.log)"
		NA[kmagent-udp]=${NA[kmagent-tcp]}
	fi

	first_target

	if ! grep -q -- '--iface' <<<"$("$KMAGENTD" --help 2>&1)" ||
		[ ! -e "$ROOT/build/kmagent.bpf.o" ]; then
		NA[kmagent-kernel]="n/a (not built)"
		return 0
	fi
	if ! xdp_pass_on_peer; then
		NA[kmagent-kernel]="n/a (could not attach XDP_PASS to the peer)"
		return 0
	fi
	# shellcheck disable=SC2046
	start km-k k "$KMAGENTD" -D -l "${ADDR[k]}" -p 11211 \
		-s "${ADDR[a]}:11211" -s "${ADDR[b]}:11211" -t "$KM_THREADS" \
		-I eth0 $(km_extra_flags k)
	wait_tcp c "${ADDR[k]}" 11211
	# the listener comes up before the programs are attached
	for _ in $(seq 100); do
		alive km-k || break
		[ -n "$(bpf_prog_ids)" ] && break
		sleep 0.1
	done
	if alive km-k && [ -n "$(bpf_prog_ids)" ]; then
		TGT[kmagent-kernel]="udp ${ADDR[k]}:11211 km-k k"
	else
		NA[kmagent-kernel]="n/a (kmagentd -I failed, see $WORK/km-k.log)"
	fi
}

# The journal's cost (issue 16): b drained for writes on two more
# kmagentd of p, so that every set leaves b a debt.  kmagent-owing keeps
# its journal in memory, kmagent-journal appends it to --state-dir's file
# too (one write(2) a new key); sets 16x1 only (journal_phase).
journal_targets()
{
	local t label port dir
	for t in owing:km-o:11212 journal:km-j:11213; do
		IFS=: read -r t label port <<<"$t"
		dir=()
		[ "$t" = journal ] && mkdir -p "$WORK/state" &&
			dir=(--state-dir "$WORK/state")
		start "$label" p "$KMAGENTD" -D -l "${ADDR[p]}" -p "$port" \
			-s "${ADDR[a]}:11211" -s "${ADDR[b]}:11211" \
			-t "$KM_THREADS" --ctl "$WORK/$label.sock" "${dir[@]}"
		if wait_tcp c "${ADDR[p]}" "$port" && alive "$label" &&
			in_ns p "$KMAGENTCTL" -s "$WORK/$label.sock" -w drain \
				"${ADDR[b]}:11211" >/dev/null; then
			TGT[kmagent-$t]="tcp ${ADDR[p]}:$port $label p"
		else
			NA[kmagent-$t]="n/a (kmagentd did not start, see $WORK/$label.log)"
		fi
	done
}

# Where a replicated set's added latency goes (issue 20): the same kmagentd
# answering on the first replica's reply (--write-policy first) instead of
# waiting for every replica, sets 1x1 only (main).  A reference: the
# default waits, 74_two_proxies_write_order.sh shows why.
first_target()
{
	start km-f p "$KMAGENTD" -D -l "${ADDR[p]}" -p 11214 \
		-s "${ADDR[a]}:11211" -s "${ADDR[b]}:11211" -t "$KM_THREADS" \
		--ctl "$WORK/km-f.sock" --write-policy first
	if wait_tcp c "${ADDR[p]}" 11214 && alive km-f; then
		TGT[kmagent-first]="tcp ${ADDR[p]}:11214 km-f p"
	else
		NA[kmagent-first]="n/a (kmagentd did not start, see $WORK/km-f.log)"
	fi
}

# fence_held LABEL: kmagentd LABEL (of p) fences a backend
fence_held()
{
	in_ns p "$KMAGENTCTL" -s "$WORK/$1.sock" -j backends 2>/dev/null |
		python3 -c '
import json, sys
sys.exit(not any(b["fence_held"] for b in json.load(sys.stdin)["backends"]))'
}

# journal_phase: 16x1 sets through kmagent-owing and kmagent-journal,
# alternating, REPS repetitions.  Their kmagentd run during this phase
# only: the fence each puts on b (drained for writes) stops every other
# kmagentd in front of b from reading it (user/control/fence.h), and
# would make the other rows' reads all go to a.  So b is undrained after,
# and each stops once it owes b nothing (its fence lifted), up to 60 s.
journal_phase()
{
	local rep t label
	journal_targets
	for rep in $(seq "$REPS"); do
		for t in kmagent-owing kmagent-journal; do
			[ -n "${TGT[$t]:-}" ] && run_one "$t" 16x1 set "$rep"
		done
	done
	for label in km-o km-j; do
		alive "$label" || continue
		in_ns p "$KMAGENTCTL" -s "$WORK/$label.sock" undrain \
			"${ADDR[b]}:11211" >/dev/null
		for _ in $(seq 600); do
			fence_held "$label" || break
			sleep 0.1
		done
		fence_held "$label" && log "$label: b still fenced after 60 s"
		kill -TERM "${PID[$label]}" 2>/dev/null
		wait "${PID[$label]}" 2>/dev/null
		unset "PID[$label]"
	done
	log "journal phase done ($(($(date +%s) - T0)) s)"
}

# ids of the BPF programs attached to HOST's (k's) eth0 (XDP and tc)
bpf_prog_ids()
{
	in_ns "${1:-k}" bpftool -j net show dev eth0 2>/dev/null |
		python3 -c '
import json, sys
ids = set()
def walk(o):
    if isinstance(o, dict):
        for k, v in o.items():
            if k in ("id", "prog_id") and isinstance(v, int):
                ids.add(v)
            else:
                walk(v)
    elif isinstance(o, list):
        for v in o:
            walk(v)
try:
    walk(json.load(sys.stdin))
except Exception:
    pass
print(" ".join(str(i) for i in sorted(ids)))'
}

# bpf_stats [HOST...]: "id name run_time_ns run_cnt" per program attached
# to their (k's) eth0.  Their ids are looked up once per host (BPF_IDS),
# the figures with one bpftool call: two per cell, not two per program and
# host (seconds a cell on a busy machine).
declare -A BPF_IDS=()
bpf_stats()
{
	local h ids=''
	for h in "${@:-k}"; do
		[ -n "${BPF_IDS[$h]:-}" ] || BPF_IDS[$h]=$(bpf_prog_ids "$h")
		ids+=" ${BPF_IDS[$h]}"
	done
	# shellcheck disable=SC2086
	bpftool -j prog show 2>/dev/null | python3 -c '
import json, sys
ids = set(int(i) for i in sys.argv[1:])
for p in json.load(sys.stdin):
    if p["id"] in ids:
        print(p["id"], p.get("name", "?"), p.get("run_time_ns", 0),
              p.get("run_cnt", 0))' $ids
}

# ---- the shape, checked -----------------------------------------------------
# napi_table: "host role pid comm allowed-cpus" per NAPI kthread (napi.txt)
napi_table()
{
	local h e pid
	for h in "${HOSTS[@]}"; do
		for e in ${NAPI[$h]:-}; do
			pid=${e%%:*}
			printf '%s %s %s %s %s\n' "$h" "${e#*:}" "$pid" \
				"$(cat "/proc/$pid/comm" 2>/dev/null || echo gone)" \
				"$(awk '/Cpus_allowed_list/ { print $2 }' \
					"/proc/$pid/status" 2>/dev/null)"
		done
	done
}

# net_rx CPU: NET_RX softirqs run so far on CPU
net_rx()
{
	awk -v c="$(($1 + 2))" '$1 == "NET_RX:" { print $c }' /proc/softirqs
}

# perf_pct PATTERN: share of shape_check's perf samples in matching symbols
perf_pct()
{
	awk -v p="$1" 'index($0, p) { sub("%", "", $1); s += $1 }
		END { printf "%.1f\n", s }' "$WORK/shape-perf.txt"
}

# shape_check: one second of kernel-path gets, to see that XDP runs in k's
# NAPI kthread on the proxies' core (perf samples of that kthread land in
# km_xdp_rx) and that packets flow; "key value" lines in shape.txt
shape_check()
{
	local rx pid0 json r0 r1 k0 k1 n0 n1 l0 l1 b0 b1 pct
	napi_table >"$WORK/napi.txt"
	[ -n "${TGT[kmagent-kernel]:-}" ] || return 0
	rx=$(napi_pids k rx)
	pid0=${rx%% *}
	b0=$(bpf_stats)
	r0=$(run_ns "$pid0")
	k0=$(run_ns "${PID[km-k]}")
	n0=$(net_rx "$PROXY_CPU")
	l0=$(net_rx "$LOAD_CPU")
	client -s "${ADDR[k]}:11211" --udp -c 16 -w 1 -d 1 -k "$KEYS" \
		-V "$VALUE" --op get --timeout 200 --json \
		>"$WORK/shape-load.json" 2>>"$WORK/kmbench.log" &
	local bpid=$!
	sleep 0.2
	perf record -q -e cpu-clock -t "$pid0" -o "$WORK/shape.perf" \
		-- sleep 0.5 >/dev/null 2>&1
	wait $bpid
	r1=$(run_ns "$pid0")
	k1=$(run_ns "${PID[km-k]}")
	n1=$(net_rx "$PROXY_CPU")
	l1=$(net_rx "$LOAD_CPU")
	b1=$(bpf_stats)
	json=$(cat "$WORK/shape-load.json")
	perf report -q --stdio --sort sym -i "$WORK/shape.perf" \
		>"$WORK/shape-perf.txt" 2>/dev/null
	pct=$(perf_pct km_xdp_rx)
	{
		echo "napi_thread $(cat "/proc/$pid0/comm" 2>/dev/null) $pid0"
		echo "napi_ns $((r1 - r0))"
		echo "daemon_ns $((k1 - k0))"
		echo "net_rx_softirqs_proxy_cpu $((n1 - n0))"
		echo "net_rx_softirqs_load_cpu $((l1 - l0))"
		echo "xdp_rx_runs $(join <(sort <<<"$b0") <(sort <<<"$b1") |
			awk '$2 == "km_xdp_rx" { print $7 - $4 }')"
		echo "perf_pct_km_xdp_rx ${pct:-0}"
		echo "perf_pct_bridge $(perf_pct ' br_')"
		echo "load $json"
	} >"$WORK/shape.txt"
	if [ "${pct%.*}" -lt 1 ] 2>/dev/null; then
		log "WARNING: no perf sample of $pid0 in km_xdp_rx: is XDP running in the NAPI kthread?"
	fi
	log "shape: $(tr '\n' ' ' <"$WORK/shape.txt" | cut -c1-300)"
}

# ---- one measurement --------------------------------------------------------
# run_one TARGET SHAPE OP REP [zipf]: append one line to results.tsv (zipf:
# keys drawn zipf 0.99, the shape recorded as e.g. 16x1z).  A target's
# servers are comma-separated (the article's shape: both kmagents).
run_one()
{
	local t=$1 shape=$2 op=$3 rep=$4 dist=${5:-uniform} proto server label
	local host conns window pid json rc b0 b1 p0 p1 r0 r1 x0 x1 k0 k1 w0 w1
	local rx tx srv bhosts='' sargs=() dargs=()
	read -r proto server label host <<<"${TGT[$t]}"
	conns=${shape%x*}
	window=${shape#*x}
	pid=${PID[$label]:-}
	rx=$(napi_pids "$host" rx)
	tx=$(napi_pids "$host" tx)
	for srv in ${server//,/ }; do
		sargs+=(-s "$srv")
	done
	if [ "$dist" = zipf ]; then
		dargs=(--zipf)
		shape+=z
	fi
	[ "$t" = kmagent-kernel ] && bhosts=k
	[ "$t" = article-kernel ] && bhosts="a b"
	# shellcheck disable=SC2086
	[ -n "$bhosts" ] && b0=$(bpf_stats $bhosts)
	# shellcheck disable=SC2086
	{
		p0=$(run_ns $pid)
		r0=$(run_ns $rx)
		x0=$(run_ns $tx)
		k0=$(core_ticks "$PROXY_CPU")
		w0=$(run_count $rx)
	}
	json=$(timeout $((SECS + 20)) ip netns exec "${P}c" \
		taskset -c "${HOST_CPU[c]}" "$KMBENCH" \
		"${sargs[@]}" "--$proto" -c "$conns" -w "$window" -d "$SECS" \
		-k "$KEYS" -V "$VALUE" --op "$op" --timeout 200 --json \
		"${dargs[@]}" --seed "$rep" --label "$t" 2>>"$WORK/kmbench.log")
	rc=$?
	# shellcheck disable=SC2086
	{
		p1=$(run_ns $pid)
		r1=$(run_ns $rx)
		x1=$(run_ns $tx)
		k1=$(core_ticks "$PROXY_CPU")
		w1=$(run_count $rx)
	}
	if [ -n "$bhosts" ]; then
		# shellcheck disable=SC2086
		b1=$(bpf_stats $bhosts)
		# bpf.txt: the proxy host's; bpf-article.txt: both hosts',
		# per repetition (ratios of one repetition's cells)
		join <(sort <<<"$b0") <(sort <<<"$b1") |
			awk -v s="$shape" -v o="$op" -v r="$rep" -v a="$t" \
				'{ if (a == "article-kernel") printf "%s ", r;
				   print s, o, $2, $6 - $3, $7 - $4 }' \
				>>"$WORK/$([ "$t" = article-kernel ] &&
					echo bpf-article.txt || echo bpf.txt)"
	fi
	[ $rc -eq 1 ] && log "WRONG values from $t $shape $op (see $WORK/kmbench.log)"
	[ -z "$json" ] && json='{}'
	# CPU: the process, its host's NAPI kthreads (rx, tx) in ns,
	# everything that ran on the proxies' core in USER_HZ ticks, and the
	# wake-ups of the host's eth0 kthread
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" \
		"$shape" "$op" "$rep" "$((p1 - p0))" "$((r1 - r0))" \
		"$((x1 - x0))" "$((k1 - k0))" "$((w1 - w0))" "$rc" "$json" \
		>>"$WORK/results.tsv"
}

# ---- the article's shape ----------------------------------------------------
# article_up: kmagentd -I eth0 beside memcached on a and on b
article_up()
{
	local h
	for h in a b; do
		if ! xdp_pass_on_peer "$h"; then
			NA[article-kernel]="n/a (could not attach XDP_PASS to $h's peer)"
			return 1
		fi
		# shellcheck disable=SC2046
		start "km-$h" "$h" "$KMAGENTD" -D -l "${ADDR[$h]}" -p 11210 \
			-s "${ADDR[a]}:11211" -s "${ADDR[b]}:11211" \
			-t "$KM_THREADS" -I eth0 --ctl "$WORK/km-$h.sock" \
			--pin-root "$PIN_ROOT-$h"
	done
	for h in a b; do
		wait_tcp c "${ADDR[$h]}" 11210
		for _ in $(seq 100); do
			alive "km-$h" || break
			[ -n "$(bpf_prog_ids "$h")" ] && break
			sleep 0.1
		done
		if ! alive "km-$h" || [ -z "$(bpf_prog_ids "$h")" ]; then
			NA[article-kernel]="n/a (kmagentd -I on $h failed, see $WORK/km-$h.log)"
			return 1
		fi
	done
	TGT[article-kernel]="udp ${ADDR[a]}:11210,${ADDR[b]}:11210 - -"
}

# article_down: the daemons gone, their programs detached, so that what
# follows (availability, resync) sees a and b as before
article_down()
{
	local h
	for h in a b; do
		stop "km-$h"
		unset "BPF_IDS[$h]"
		rm -rf "$PIN_ROOT-$h"
		in_ns "$h" ip link set dev eth0 xdp off 2>/dev/null
		in_ns "$h" tc qdisc del dev eth0 clsact 2>/dev/null
		ip -n "${P}sw" link set dev "kb$ID$h" xdp off 2>/dev/null
	done
}

# article_phase: its cells, REPS repetitions, uniform and zipf keys
article_phase()
{
	local rep op dist
	article_up || { article_down; return 0; }
	for rep in $(seq "$REPS"); do
		for dist in uniform zipf; do
			for op in get set; do
				run_one article-kernel 16x1 "$op" "$rep" "$dist"
			done
		done
	done
	log "article's shape done ($(($(date +%s) - T0)) s)"
	article_down
}

# ---- availability: kill -9 a backend under load ---------------------------
# avail TARGET: prints the gap in ms between the kill and the last error
avail_one()
{
	local t=$1 proto server label kill_ms out=$WORK/avail-$1.log
	read -r proto server label _ <<<"${TGT[$t]}"
	# a fresh userspace proxy: an earlier kill of b must not have
	# ejected it already (nutcracker keeps a host out 30 s)
	if [ "$label" != km-k ]; then
		stop "$label"
		restart "$label"
		wait_tcp c "${server%:*}" "${server#*:}" || return 0
		sleep 0.5
	fi
	timeout 30 ip netns exec "${P}c" taskset -c "${HOST_CPU[c]}" \
		"$KMBENCH" -s "$server" "--$proto" \
		-c 16 -w 1 -d 5 -k "$KEYS" -V "$VALUE" --op get --timeout 100 \
		--interval 10 --json >/dev/null 2>"$out" &
	local bpid=$!
	sleep 1.5
	kill_ms=$(date +%s%3N)
	stop mc-b
	wait $bpid
	printf '%s %s\n' "$t" "$kill_ms" >>"$WORK/avail.txt"
	# restart b (empty, as after a crash) and refill it for the next target
	restart mc-b
	wait_tcp c "${ADDR[b]}" 11211
	client -s "${ADDR[b]}:11211" --preload -d 0 \
		-k "$KEYS" -V "$VALUE" >>"$WORK/kmbench.log" 2>&1
}

# ---- BENCH_PERF=1: where a proxy's CPU goes, TCP get 16x1 ---------------
# profile TARGET: perf stat (syscalls, context switches per request) and
# perf record -g of the target's process under load
profile()
{
	local t=$1 proto server label pid ops
	[ -n "${TGT[$t]:-}" ] || return 0
	read -r proto server label _ <<<"${TGT[$t]}"
	pid=${PID[$label]:-}
	[ -n "$pid" ] || return 0
	client -s "$server" "--$proto" -c 16 -w 1 \
		-d $((SECS + 6)) -k "$KEYS" -V "$VALUE" --op get --interval 1000 \
		>/dev/null 2>"$WORK/perf-$t-load.txt" &
	local bpid=$!
	sleep 1
	if [ "$t" = kmagent-kernel ]; then
		# softirq work belongs to no process: the whole machine
		: >"$WORK/perf-$t-stat.txt"
		perf record -q -a -g -o "$WORK/perf-$t.data" \
			-- sleep 1 >/dev/null 2>&1

	else
		perf stat -x, -e raw_syscalls:sys_enter,context-switches,task-clock \
			-p "$pid" -o "$WORK/perf-$t-stat.txt" -- sleep 1 >/dev/null 2>&1
		perf record -q -g -p "$pid" -o "$WORK/perf-$t.data" \
			-- sleep 1 >/dev/null 2>&1
	fi
	wait $bpid
	# requests during the perf stat second: the interval line that follows
	ops=$(awk '/^interval/ { n++; if (n == 2) print $4 }' \
		"$WORK/perf-$t-load.txt")
	{
		echo "requests/s $ops"
		awk -F, -v ops="$ops" 'ops > 0 && $1 ~ /^[0-9.]+$/ {
			if ($2 == "msec")
				printf "CPU us per request %.2f\n", $1 * 1000 / ops
			else
				printf "%s per request %.2f\n", $3, $1 / ops }' \
			"$WORK/perf-$t-stat.txt"
		if [ "$t" = kmagent-kernel ]; then
			echo "machine-wide samples by command (softirq work is"
			echo "charged to whatever command was interrupted):"
			perf report -q --stdio --no-children --sort comm -g none \
				-i "$WORK/perf-$t.data" --percent-limit 2 2>/dev/null
			# (Debian's bpftool lacks "prog profile")
			echo "BPF programs and what they call, veth and bridge:"
			perf report -q --stdio --no-children --sort sym -g none \
				-i "$WORK/perf-$t.data" 2>/dev/null |
				grep -E 'bpf_|htab|fib|veth|br_' | head -16
			echo "top symbols:"
		fi
		perf report -q --stdio --no-children -i "$WORK/perf-$t.data" \
			--percent-limit 1.5 -g none 2>/dev/null | head -40
	} >"$WORK/perf-$t.txt"
	log "profile of $t: $WORK/perf-$t.txt"
}

# ---- resync speed ----------------------------------------------------------
# kill -9 b and start it empty: kmagentd (TCP instance) must notice, mark it
# warming, copy its keys from a, and mark it up.  Timed from its log lines
# ("-> warming", "warming -> up"), keys counted on b afterwards, with a
# foreground get load running meanwhile (its rate during and after) when
# LOADED is 1; without it, what the copy does when the backends' core is
# its own.
resync_speed()
{
	local loaded=$1 log=$WORK/km-p.log b=${ADDR[b]}:11211 n0 i line
	local keys server t_warm t_up bpid='' fg=$WORK/resync-load.txt
	alive km-p || { echo "n/a (kmagentd not running)"; return; }
	read -r _ server _ <<<"${TGT[kmagent-tcp]}"
	# the kernel path's daemon would resync b too, at the same time
	stop km-k
	# let kmagentd finish with b's previous restart (availability run)
	for i in $(seq 200); do
		line=$(grep -E "backend $b: [a-z]+ -> [a-z]+" "$log" | tail -n 1)
		[ -z "$line" ] || [[ "$line" == *"-> up"* ]] && break
		sleep 0.1
	done
	n0=$(wc -l <"$log")
	: >"$fg"
	if [ "$loaded" = 1 ]; then
		client -s "$server" -c 16 -w 1 -d 15 \
			-k "$KEYS" -V "$VALUE" --op get --interval 50 \
			>/dev/null 2>"$fg" &
		bpid=$!
		sleep 1
	fi
	stop mc-b
	restart mc-b
	wait_tcp c "${ADDR[b]}" 11211
	line=
	for i in $(seq 130); do
		line=$(tail -n +"$((n0 + 1))" "$log" |
			grep -m1 "backend $b: warming -> up")
		[ -n "$line" ] && break
		sleep 0.1
	done
	[ -z "$bpid" ] || wait "$bpid"
	if [ -z "$line" ]; then
		echo "n/a (b not back up within 13 s, see $log)"
		return
	fi
	if grep -q 'no resync' <<<"$line"; then
		echo "n/a (this kmagentd brings a restarted backend up without a resync)"
		return
	fi
	t_up=$(awk '{ print $1 }' <<<"$line")
	# from the start of the copy that finished (else "-> warming") to "-> up"
	t_warm=$(tail -n +"$((n0 + 1))" "$log" | sed "/$t_up/q" |
		grep 'resync .*start' | tail -n 1 | awk '{ print $1 }')
	[ -n "$t_warm" ] || t_warm=$(tail -n +"$((n0 + 1))" "$log" |
		grep -m1 -- "$b: .* -> warming" | awk '{ print $1 }')
	keys=$(mc_stat "${ADDR[b]}" curr_items)
	python3 - "$t_warm" "$t_up" "${keys:-0}" "$fg" <<'PY'
import sys
def secs(t):
    h, m, s = t.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)
import datetime
t0, t1, keys = secs(sys.argv[1]), secs(sys.argv[2]), int(sys.argv[3])
d = t1 - t0
if d <= 0 or keys == 0:
    print("n/a (could not time it: %s .. %s, %d keys)" % (sys.argv[1], sys.argv[2], keys))
    sys.exit()
# foreground load: 50 ms intervals, wall-clock ms; the log is local time
during, after = [], []
base = datetime.datetime.now().replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
for l in open(sys.argv[4]):
    f = l.split()
    if not f or f[0] != "interval":
        continue
    t = int(f[1]) / 1000 - base
    rate = int(f[3]) * 20
    if t0 + 0.05 <= t <= t1:
        during.append(rate)
    elif t > t1 + 0.1:
        after.append(rate)
fg = ""
if during and after:
    a, b = sum(during) / len(during), sum(after) / len(after)
    fg = "; foreground gets %.0f/s during it, %.0f/s after (%.2f x)" % (a, b, a / b)
print("%.0f keys/s (%d keys in %.2f s)%s" % (keys / d, keys, d, fg))
PY
}

machine_info()
{
	echo "kernel	$(uname -r)"
	echo "cpu	$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo) x $(nproc)"
	echo "memory	$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
	echo "memcached	$(memcached -V 2>&1)"
	echo "nutcracker	$(nutcracker -V 2>&1 | head -1)"
	echo "compiler	$(gcc --version | head -1); $(clang --version | head -1)"
	echo "commit	$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD -- user bpf include 2>/dev/null || echo ' (+ uncommitted changes)')"
	echo "date	$(date -u '+%Y-%m-%d %H:%M UTC')"
	# other work on the machine skews every figure: say how busy it was
	echo "load average	at start $LOAD0; at end $(cut -d' ' -f1-3 /proc/loadavg)"
}

# ---- main -------------------------------------------------------------------

main()
{
	local rep shape op t
	[ "$(id -u)" -eq 0 ] || { log "needs root (namespaces)"; exit 1; }
	[ -x "$KMBENCH" ] || { log "build first: make"; exit 1; }
	rm -rf "$WORK"
	mkdir -p "$WORK"
	: >"$WORK/results.tsv"
	: >"$WORK/bpf.txt"
	: >"$WORK/avail.txt"

	STATS_OLD=$(sysctl -n kernel.bpf_stats_enabled)
	# the programs per packet, away from the lab (own namespace and pins),
	# before bpf_stats_enabled adds two clock reads to every run
	sysctl -q -w kernel.bpf_stats_enabled=0
	if [ -x "$ROOT/build/tools/kmbpfcost" ]; then
		"$ROOT/build/tools/kmbpfcost" --json >"$WORK/bpfcost.json" \
			2>>"$WORK/kmbench.log" || rm -f "$WORK/bpfcost.json"
	fi
	sysctl -q -w kernel.bpf_stats_enabled=1
	# Idle vCPUs poll instead of halting while this script runs (the
	# request lasts as long as fd 9 is open).  With halt, a hop whose
	# receiver sits on the idle vCPU waits ~50 us for it to wake, and 1x1
	# latencies came out bimodal, 7 or 60 us, depending on placement.
	if [ "${BENCH_POLL_IDLE:-1}" = 1 ] && exec 9>/dev/cpu_dma_latency; then
		printf 0 >&9
		POLL_IDLE=1
	fi

	lab_up || { log "lab setup failed"; exit 1; }
	start_memcached a || { log "memcached a did not start"; exit 1; }
	start_memcached b || { log "memcached b did not start"; exit 1; }
	# every key on both backends: direct, nutcracker and kmagent gets hit
	for h in a b; do
		client -s "${ADDR[$h]}:11211" \
			--preload -d 0 -k "$KEYS" -V "$VALUE" 2>&1 |
			sed 's/^/bench: /' >&2
	done
	setup_targets
	shape_check
	for t in "${TARGETS[@]}"; do
		if [ -n "${NA[$t]:-}" ]; then
			log "$t: ${NA[$t]}"
		else
			log "$t: ${TGT[$t]}"
		fi
	done

	for rep in $(seq "$REPS"); do
		for shape in 16x1 2x16 1x1; do
			for op in get set; do
				for t in "${TARGETS[@]}"; do
					[ -n "${TGT[$t]:-}" ] || continue
					[ "$t" != kmagent-first ] ||
						[ "$shape $op" = "1x1 set" ] || continue
					run_one "$t" "$shape" "$op" "$rep"
				done
			done
		done
		# skewed keys: the hot keys' slots, pending entries and
		# memcached items stay in cache, and one backend gets more
		for op in get set; do
			for t in "${ZIPF_TARGETS[@]}"; do
				[ -n "${TGT[$t]:-}" ] || continue
				[[ " ${TARGETS[*]} " == *" $t "* ]] || continue
				run_one "$t" 16x1 "$op" "$rep" zipf
			done
		done
		log "repetition $rep/$REPS done ($(($(date +%s) - T0)) s)"
	done
	[ "${BENCH_JOURNAL:-1}" = 1 ] && journal_phase
	[ "${BENCH_ARTICLE:-1}" = 1 ] && [ -n "${TGT[kmagent-kernel]:-}" ] &&
		article_phase

	# peak RSS now: the availability runs restart the userspace proxies
	for l in nutcracker km-p km-k; do
		alive "$l" || continue
		echo "$l $(awk '/VmHWM/ { print $2 }' "/proc/${PID[$l]}/status")"
	done >"$WORK/rss.txt"
	if [ "${BENCH_PERF:-0}" = 1 ]; then
		profile kmagent-tcp
		profile nutcracker
		profile kmagent-kernel
	fi
	# the kernel path first: its daemon is not restarted (pinned state)
	for t in kmagent-kernel nutcracker kmagent-tcp; do
		[ -n "${TGT[$t]:-}" ] || continue
		[[ " ${TARGETS[*]} " == *" $t "* ]] || continue
		avail_one "$t"
	done
	# not in $(...): a subshell's restarted memcached would escape cleanup
	resync_speed 1 >"$WORK/resync.txt"
	resync_speed 0 >>"$WORK/resync.txt"

	for t in "${TARGETS[@]}" article-kernel; do
		[ -n "${NA[$t]:-}" ] && printf '%s\t%s\n' "$t" "${NA[$t]}"
	done >"$WORK/na.txt"
	machine_info >"$WORK/machine.txt"

	python3 "$ROOT/bench/report.py" --work "$WORK" --out "$OUT_MD" \
		--reps "$REPS" --secs "$SECS" --keys "$KEYS" --value "$VALUE" \
		--km-threads "$KM_THREADS" --quick "$QUICK" --clk-tck "$CLK_TCK" \
		--poll-idle "$POLL_IDLE" --load-cpu "$LOAD_CPU" \
		--proxy-cpu "$PROXY_CPU" --switch-napi "$SWITCH_NAPI" \
		--elapsed $(($(date +%s) - T0)) || exit 1
	if [ "${BENCH_NOPLOT:-0}" != 1 ]; then
		# columns of targets not measured are empty: not worth a warning
		gnuplot -e "datafile='$WORK/plot.dat'; outfile='$OUT_PNG'" \
			"$ROOT/bench/benchmarks.gnuplot" 2>&1 |
			grep -v 'no valid points' >&2
		[ -s "$OUT_PNG" ] || log "gnuplot failed: no $OUT_PNG"
	fi
	log "done in $(($(date +%s) - T0)) s: $OUT_MD"
}

main "$@"
