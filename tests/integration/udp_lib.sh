# shellcheck shell=bash
# Helpers for the UDP (kernel path) integration tests, on top of lib.sh.
#
#   udp_bpffs                  bpffs at $LAB_DIR/bpf, shared with every
#                              namespace (ip netns exec remounts /sys, so
#                              /sys/fs/bpf would be private to kmagentd);
#                              unmounted at exit before lab_cleanup runs
#   udp_xdp_peer HOST          XDP_PASS on HOST's switch-side veth (NAPI
#                              for frames the host's XDP sends: BRIEF 4)
#   kstat PIN FIELD            km_stats FIELD summed over CPUs
#   kbe_stat PIN ID FIELD      km_be_stats[ID].FIELD summed over CPUs
#   udp_bench_bg OUT ARGS...   kmbench --udp --json ARGS on c, in the
#                              background, output to file OUT
#   udp_bench_wait             wait for it; its exit status
#   jfield OUT FIELD           FIELD of the JSON result in file OUT
#   udp_bench_check OUT RC US  its run (exit status RC) saw no wrong
#                              value, lost nothing, answered nothing
#                              twice, and no read took US or more
#   kbe_state PIN ID           km_backends[ID].state as the kernel sees it
#   kbe_readable PIN ID        the kernel reads from backend ID
#   kbe_owes_nothing PIN ID    ... and in slot order (no write owed)
#   kcfg_field PIN FIELD       a field of km_config
#   udp_mc HOST ARGS...        mc.py --udp run in HOST
#   udp_lab_pab                the usual lab: proxy host p (198.18.0.1, pin
#                              root $PIN), memcached on a (.2) and b (.3),
#                              client c (.10)
#   udp_kernel_ready ADDR...   assert XDP is on p's eth0 and p has resolved
#                              the MAC of each backend ADDR

UDP_TOOLS=$LAB_ROOT/build/tools

udp_bpffs()
{
	UDP_BPFFS=$LAB_DIR/bpf
	mkdir -p "$UDP_BPFFS" && mount -t bpf bpf "$UDP_BPFFS" ||
		lab_die "cannot mount bpffs at $UDP_BPFFS"
	# lab_cleanup removes LAB_DIR: the mount must go first
	trap 'udp_rc=$?; umount -l "$UDP_BPFFS" 2>/dev/null; (exit $udp_rc); lab_cleanup' EXIT
}

udp_xdp_peer()
{
	ip netns exec "$LAB_SW" "$UDP_TOOLS/km_xdp_pass" "$(lab_brport "$1")" ||
		lab_die "cannot attach XDP_PASS to $(lab_brport "$1")"
}

kstat()
{
	bpftool -j map dump pinned "$1/km_stats" 2>/dev/null | "$LAB_PY" -c '
import json, sys
field = sys.argv[1]
d = json.load(sys.stdin)
print(sum(v["value"][field] for v in d[0]["formatted"]["values"]))' "$2"
}

kbe_stat()
{
	bpftool -j map lookup pinned "$1/km_be_stats" key "$2" 0 0 0 \
		2>/dev/null | "$LAB_PY" -c '
import json, sys
field = sys.argv[1]
d = json.load(sys.stdin)
print(sum(v["value"][field] for v in d["formatted"]["values"]))' "$3"
}

udp_bench_bg()
{
	local out=$1
	shift
	lab_in c "$UDP_TOOLS/kmbench" --udp --json "$@" >"$out" 2>&1 &
	UDP_BENCH_PID=$!
}

udp_bench_wait() { wait "$UDP_BENCH_PID"; }

jfield()
{
	grep '^{' "$1" | "$LAB_PY" -c '
import json, sys
print(json.loads(sys.stdin.readline())[sys.argv[1]])' "$2"
}

udp_bench_check()
{
	local out=$1 rc=$2 max
	sed 's/^/# /' "$out"
	lab_eq "kmbench saw no wrong value (exit status)" 0 "$rc"
	lab_eq "no wrong value" 0 "$(jfield "$out" wrong)"
	lab_eq "no read lost" 0 "$(jfield "$out" lost)"
	lab_eq "no request answered twice" 0 "$(jfield "$out" late)"
	lab_ne "reads were made" 0 "$(jfield "$out" hits)"
	max=$(jfield "$out" max_us)
	lab_ok "slowest read $max us, under $3 us" \
		"$LAB_PY" -c "import sys; sys.exit(float('$max') >= $3)"
}

# kmap_field PIN MAP KEY FIELD: MAP[KEY].FIELD of the pinned maps (BTF)
kmap_field()
{
	bpftool -j map lookup pinned "$1/$2" key "$3" 0 0 0 2>/dev/null |
		"$LAB_PY" -c '
import json, sys
print(json.load(sys.stdin)["formatted"]["value"][sys.argv[1]])' "$4"
}

# kbe_field PIN ID FIELD: km_backends[ID].FIELD, as the kernel sees it
kbe_field() { kmap_field "$1" km_backends "$2" "$3"; }

kbe_state() { kbe_field "$1" "$2" state; }

# kcfg_field PIN FIELD: a field of the kernel path's km_config
kcfg_field() { kmap_field "$1" km_config 0 "$2"; }

# kbe_readable PIN ID: the kernel reads from backend ID (km_backend_readable:
# up, and not drained, refused, silent or fenced by another kmagentd)
kbe_readable()
{
	[ "$(kbe_state "$1" "$2")" == 1 ] &&
		((($(kbe_field "$1" "$2" flags) & (1 | 4 | 8 | 16)) == 0))
}

# kbe_owes_nothing PIN ID: KM_BE_F_OWES (32) is clear on backend ID: the
# kernel reads it in its slot order again.  A read-repair leaves its target
# owing the key until the replay's delete check, --timeout after the copy.
kbe_owes_nothing() { ((($(kbe_field "$1" "$2" flags) & 32) == 0)); }

udp_mc() { local h=$1; shift; lab_mc "$h" --udp "$@"; }

# udp_wait WHAT SECONDS CMD...: retry CMD every 0.1 s until it succeeds
udp_wait()
{
	local what=$1 tries=$(($2 * 10)) i
	shift 2
	for ((i = 0; i < tries; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	lab_log "timed out waiting for: $what"
	return 1
}

# udp_lab_pab: proxy host p (198.18.0.1, pin root $PIN), memcached a (.2)
# and b (.3), client c (.10); sets P (p, port 11210), A and B (port 11211)
udp_lab_pab()
{
	lab_init
	udp_bpffs
	PIN=$UDP_BPFFS/p
	lab_pin_dir "$PIN"
	lab_host p 198.18.0.1
	lab_host a 198.18.0.2
	lab_host b 198.18.0.3
	lab_host c 198.18.0.10
	P=198.18.0.1:11210 A=198.18.0.2:11211 B=198.18.0.3:11211
	udp_xdp_peer p
	lab_memcached a 11211
	lab_memcached b 11211
}

# udp_load PROXY PIN WHOSE A B: kmbench (which checks every value it reads
# back) runs mixed UDP sets and gets through PROXY, 16 sockets x 4 in
# flight, for 3 s, served by the kernel path pinned at PIN (WHOSE: "the",
# "A's"); then replicas A and B must hold the same values
udp_load()
{
	local proxy=$1 pin=$2 whose=$3 a=$4 b=$5 out rc i k va vb
	local diff=0 present=0

	out=$(lab_in c "$LAB_ROOT/build/tools/kmbench" -s "$proxy" --udp \
		--ratio 1:1 -k 2000 -c 16 -w 4 -d 3 --key-prefix ld: 2>&1)
	rc=$?
	printf '%s\n' "$out" | sed 's/^/# /'
	lab_eq "kmbench saw no wrong value (exit status)" 0 $rc
	lab_ne "gets were served in $whose kernel" 0 \
		"$(kstat "$pin" kernel_gets)"
	lab_ne "sets were cloned in $whose kernel" 0 \
		"$(kstat "$pin" kernel_writes)"
	lab_eq "no helper failed" 0 "$(kstat "$pin" helper_errors)"
	# a lost reply does not matter: the write itself reached both or
	# neither... or one, when a clone was lost
	for ((i = 0; i < 50; i++)); do
		k=ld:$((i * 40))
		va=$(lab_mc c "$a" get "$k")
		vb=$(lab_mc c "$b" get "$k")
		[ -n "$va" ] && present=$((present + 1))
		[ "$va" == "$vb" ] || diff=$((diff + 1))
	done
	lab_log "$present of 50 sampled keys set; replicas differ on $diff"
	lab_ne "the sampled keys were written" 0 $present
	lab_eq "replicas agree on the sampled keys" 0 $diff
}

# udp_lab_ref: the differential tests' lab: reference memcached r
# (198.18.0.1), kmagentd's backends m1 (.2) and m2 (.3), proxy host p (.4,
# pin root $PIN), client c (.10)
udp_lab_ref()
{
	lab_init
	udp_bpffs
	PIN=$UDP_BPFFS/p
	lab_pin_dir "$PIN"
	lab_host r 198.18.0.1
	lab_host m1 198.18.0.2
	lab_host m2 198.18.0.3
	lab_host p 198.18.0.4
	lab_host c 198.18.0.10
	udp_xdp_peer p
	lab_memcached r 11211
	lab_memcached m1 11211
	lab_memcached m2 11211
}

# udp_kmagentd_pab [ARGS...]: in udp_lab_pab, kmagentd on P in front of A
# and B with the kernel path on eth0 and ARGS; returns once that is ready
# udp_seq < REQUESTS: each line a request over UDP to kmagentd on p ($P),
# its reply checked (mc.py seq); prints how many failed
udp_seq()
{
	lab_mc c --udp --timeout 2 "$P" seq | awk '$1 == "failed" { print $2 }'
}

udp_kmagentd_pab()
{
	lab_kmagentd p -l 198.18.0.1 -p 11210 -s "$A" -s "$B" -I eth0 \
		--pin-root "$PIN" "$@"
	udp_kernel_ready 198.18.0.2 198.18.0.3
}

# bpf_fib_lookup routes only once the next hop is resolved: until then
# the kernel path passes gets up, and a test would not see it at work.
udp_neigh_known() { udp_neigh_known_in p "$@"; }

# udp_neigh_known_in HOST ADDR...: HOST has resolved every ADDR
udp_neigh_known_in()
{
	local h=$1 addr
	shift
	for addr in "$@"; do
		ip -n "$(lab_ns "$h")" neigh show "$addr" | grep -q lladdr || return 1
	done
}

udp_xdp_on()
{
	ip -n "$(lab_ns p)" link show eth0 | grep -q prog/xdp
}

udp_kernel_ready()
{
	lab_ok "XDP attached on P" udp_wait "XDP on P" 10 udp_xdp_on
	lab_ok "P knows the backends' MACs" udp_wait "neighbours" 10 \
		udp_neigh_known "$@"
}

# udp_lab_two_nics: proxy host p (198.18.0.1, pin root $PIN) and client c
# (.10) on the lab's LAN, memcached a on a LAN of its own behind p's second
# interface eth1 (198.19.0.0/24): the two-NIC host of 36 and 54
udp_lab_two_nics()
{
	lab_init
	udp_bpffs
	PIN=$UDP_BPFFS/p
	lab_pin_dir "$PIN"
	lab_host p 198.18.0.1
	lab_host c 198.18.0.10
	udp_xdp_peer p
	# host a, on P's second interface only
	NSP=$(lab_ns p) NSA=$(lab_ns a)
	lab_netns_add "$NSA" || lab_die "cannot create $NSA"
	ip -n "$NSP" link add eth1 type veth peer name eth0 netns "$NSA" ||
		lab_die "cannot create the P-A veth"
	for ns in "$NSP:eth1:198.19.0.1" "$NSA:eth0:198.19.0.2"; do
		IFS=: read -r n i a <<<"$ns"
		ip netns exec "$n" ethtool -K "$i" tx off >/dev/null 2>&1
		ip -n "$n" addr add "$a/24" dev "$i" && ip -n "$n" link set "$i" up ||
			lab_die "cannot configure $i in $n"
	done
	LAB_ADDR[a]=198.19.0.2
	# NAPI for the frames P redirects to A
	ip netns exec "$NSA" "$UDP_TOOLS/km_xdp_pass" eth0 ||
		lab_die "cannot attach XDP_PASS in A"
	lab_memcached a 11211
}
