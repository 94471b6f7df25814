#!/bin/bash
# kmagent demo (`make demo`): the article's scenario in a namespace lab,
# narrated step by step, with what the article's magent answered next to
# what kmagent answers.  Over TCP; and over UDP through the kernel path too
# when build/kmagentd supports -I.
#
#   scripts/demo.sh [--pause]     --pause: wait for Enter between steps
#
# The lab (network namespaces A, B and a client C on a bridge, addresses in
# 198.18.0.0/24, no default route) is removed at the end and on Ctrl-C.
set -u
cd "$(dirname "$0")/.." || exit 2
. tests/integration/lib.sh

PAUSE=0
[ "${1:-}" == --pause ] && PAUSE=1
KEY=becd0000
VALUE=测试例子
# magent hashed the key to B; name the hosts so that kmagent's ring puts B
# first too (kmring.py mirrors user/lib/ring.c): step 7 then asks B first
A=198.18.0.1 B=198.18.0.2
if [ -f tests/integration/kmring.py ]; then
	first=$(python3 tests/integration/kmring.py $KEY 198.18.0.1:11211 \
		198.18.0.2:11211 | cut -d' ' -f1)
	[ "$first" == 198.18.0.1:11211 ] && A=198.18.0.2 B=198.18.0.1
fi
WRONG=0

if [ -t 1 ]; then
	B1=$'\e[1m' G=$'\e[32m' R=$'\e[31m' D=$'\e[2m' N=$'\e[0m'
else
	B1='' G='' R='' D='' N=''
fi

say() { printf '%s\n' "$*"; }
title() { printf '\n%s%s%s\n' "$B1" "$*" "$N"; }
cmd() { printf '  %s$ %s%s\n' "$D" "$*" "$N"; }
pause() { [ $PAUSE -eq 1 ] && read -r -p "  (Enter)" _ </dev/tty; }

# article TEXT: what the article's magent setup answered at this step
article() { printf '  article (magent): %s\n' "$1"; }

# ours WHAT EXPECTED GOT: what kmagent's lab answers, marked by whether it is
# what this step needs
ours()
{
	local what=$1 want=$2 got=$3
	if [ "$got" == "$want" ]; then
		printf '  here (%s): %s%s%s\n' "$what" "$G" "${got:-(miss)}" "$N"
	else
		printf '  here (%s): %s%s%s   expected %s\n' "$what" "$R" \
			"${got:-(miss)}" "$N" "${want:-(miss)}"
		WRONG=$((WRONG + 1))
	fi
}

# kernel_stats HOST: a few km_stats counters, summed over CPUs
kernel_stats()
{
	local pin=$BPFFS/$1/km_stats
	bpftool -j map dump pinned "$pin" 2>/dev/null | "$LAB_PY" -c '
import json, sys
try:
    entry = json.load(sys.stdin)[0]
    cpus = entry.get("formatted", entry)["values"]
    assert isinstance(cpus[0]["value"], dict)
except Exception:
    print("(no counters readable)")
    sys.exit()
names = ("kernel_gets", "hits", "misses", "fallbacks", "fallback_hits",
         "kernel_writes", "write_clones", "passed_up")
tot = {n: sum(c["value"].get(n, 0) for c in cpus) for n in names}
print(", ".join("%s %d" % (n, tot[n]) for n in names))
if tot["kernel_gets"] == 0:
    print("  (no get was served in the kernel: kmagentd'"'"'s UDP socket answered)")
'
}

# get [--udp] HOST:PORT: the key's value, empty on a miss, "(no reply: ...)"
# when the server did not answer
# Over UDP a request can be lost (here: sent to B's memcached in the second
# before kmagent marks it down); memcached UDP clients time out and retry,
# and so does this one: up to 3 tries of 1 s, said on stderr when it took more.
get()
{
	local out rc try tries=1 timeout=3
	[ "$1" == --udp ] && tries=3 timeout=1
	for ((try = 1; try <= tries; try++)); do
		out=$(lab_mc c --timeout $timeout "$@" get "$KEY" 2>&1)
		rc=$?
		[ $rc -ne 2 ] && break
	done
	[ $rc -eq 2 ] && out="(no reply: ${out##*: })"
	[ $try -gt 1 ] && [ $rc -ne 2 ] &&
		printf '  (next answer: at the UDP client'"'"'s try %d, the first was lost)\n' $try >&2
	printf '%s' "$out"
}

if [ ! -x "$LAB_KMAGENTD" ]; then
	echo "demo: $LAB_KMAGENTD is not built: run make" >&2
	exit 2
fi
KERNEL=0
"$LAB_KMAGENTD" --help 2>&1 | grep -q -- '-I, --iface' && KERNEL=1

title "kmagent demo: memcached HA, the article's seven steps"
say "The article (seed/memcached-ha-magent.txt): servers A and B each run"
say "memcached (11211) and magent (11210); each magent proxies BOTH memcacheds;"
say "the application uses the two magents as its pool.  magent fails step 7:"
say "after B's memcached restarts empty, a read of a key that hashes to B"
say "answers null although A still holds the value.  kmagent replaces magent"
say "with the same command line and passes all seven steps."

lab_init
lab_host a $A
lab_host b $B
lab_host c 198.18.0.10
title "The lab"
say "  host A $A: memcached :11211, kmagentd :11210"
say "  host B $B: memcached :11211, kmagentd :11210"
say "  client C 198.18.0.10 (network namespaces on a bridge, no route out)"
lab_memcached a 11211 >/dev/null
lab_memcached b 11211 >/dev/null
KMARGS=(-p 11210 -s 198.18.0.1:11211 -s 198.18.0.2:11211 --probe-interval 300
	--fall 2 --rise 2)
cmd "kmagentd ${KMARGS[*]}     (magent's flags: -p, -s)"
lab_kmagentd a "${KMARGS[@]}" >/dev/null
lab_kmagentd b "${KMARGS[@]}" >/dev/null
say "  memcached and kmagentd answer on A and B"
pause

# run_steps PROTO [--udp]: the seven steps over one transport
run_steps()
{
	local proto=$1 udp=${2:-}

	title "Step 1 ($proto): set $KEY \"$VALUE\" through the pool (kmagent on A)"
	cmd "mc.py ${udp:+$udp }$A:11210 set $KEY $VALUE"
	got=$(lab_mc c --timeout 3 $udp $A:11210 set $KEY "$VALUE" 2>&1)
	article STORED
	ours "kmagent A, $proto" STORED "$got"
	pause

	title "Step 2 ($proto): get $KEY directly from memcached on A"
	cmd "mc.py ${udp:+$udp }$A:11211 get $KEY"
	article "$VALUE"
	ours "memcached A" "$VALUE" "$(get $udp $A:11211)"
	title "Step 3 ($proto): get $KEY directly from memcached on B"
	cmd "mc.py ${udp:+$udp }$B:11211 get $KEY"
	article "$VALUE (magent wrote it to every backend)"
	ours "memcached B" "$VALUE" "$(get $udp $B:11211)"
	pause

	title "Step 4 ($proto): stop memcached on B"
	cmd "kill $(lab_pid mc-b)"
	lab_kill mc-b TERM
	say "  memcached on B is gone"
	title "Step 5 ($proto): get $KEY through the pool"
	cmd "mc.py ${udp:+$udp }$A:11210 get $KEY; mc.py ${udp:+$udp }$B:11210 get $KEY"
	article "$VALUE"
	ours "kmagent A, $proto" "$VALUE" "$(get $udp $A:11210)"
	ours "kmagent B, $proto" "$VALUE" "$(get $udp $B:11210)"
	pause

	title "Step 6 ($proto): start memcached on B again: it is empty"
	lab_restart mc-b
	cmd "memcached -u root -p 11211 -U 11211 -l $B   (pid $(lab_pid mc-b))"
	got=$(get $udp $B:11211)
	say "  memcached B holds $KEY: ${got:-no (memory only, as the article says)}"
	say "  kmagent sees B come back: writes first (warming), a copy of B's keys"
	say "  from A (the article's fix 1: resync), then reads again."
	local i up=0
	lab_mc c $A:11211 delete probe-b >/dev/null
	for ((i = 0; i < 100; i++)); do
		# a key on B only is found through a kmagent once it reads B;
		# stored each round: kmagent empties B before B takes writes
		lab_mc c $B:11211 set probe-b on-b >/dev/null
		[ "$(lab_mc c $udp $A:11210 get probe-b 2>/dev/null)" == on-b ] &&
			[ "$(lab_mc c $udp $B:11210 get probe-b 2>/dev/null)" == on-b ] &&
			up=1 && break
		sleep 0.1
	done
	if [ $up -eq 1 ]; then
		say "  both kmagents read from B again after $((i / 10)).$((i % 10)) s"
	else
		say "  ${R}B is not read from again after 10 s$N"
		WRONG=$((WRONG + 1))
	fi
	got=$(get $udp $B:11211)
	if [ -n "$got" ]; then
		say "  memcached B holds $KEY again: $G$got$N (copied by the resync)"
		say "  to replay the article's step 7, delete it from B once more:"
		cmd "mc.py ${udp:+$udp }$B:11211 delete $KEY"
		lab_mc c $udp $B:11211 delete $KEY >/dev/null
	fi
	pause

	title "Step 7 ($proto): get $KEY through the pool"
	say "  magent hashes the key, asks B, B answers miss, magent passes it on."
	say "  kmagent asks the next replica on a miss (null-fallback)."
	cmd "mc.py ${udp:+$udp }$A:11210 get $KEY; mc.py ${udp:+$udp }$B:11210 get $KEY"
	article "null"
	ours "kmagent A, $proto" "$VALUE" "$(get $udp $A:11210)"
	ours "kmagent B, $proto" "$VALUE" "$(get $udp $B:11210)"

	title "Read-repair: B had missed, A had the value"
	local got=
	for ((i = 0; i < 30; i++)); do
		got=$(get $udp $B:11211)
		[ -n "$got" ] && break
		sleep 0.1
	done
	if [ -n "$got" ]; then
		say "  memcached B holds $KEY again after $((i / 10)).$((i % 10)) s: $G$got$N"
		say "  (the hit after B's miss made kmagent write it back to B)"
	else
		say "  memcached B does not hold $KEY after 3 s (no read-repair seen)"
	fi
	pause
}

run_steps TCP

if [ $KERNEL -eq 1 ] && [ -z "${DEMO_NO_UDP:-}" ]; then
	title "Now over UDP, through the kernel path (kmagentd -I eth0)"
	say "  single-key gets are answered by XDP on A and B; writes are cloned"
	say "  to both memcacheds by tc; a miss goes to the next replica in the kernel"
	lab_kill km-a
	lab_kill km-b
	lab_mc c $A:11211 delete $KEY >/dev/null
	lab_mc c $B:11211 delete $KEY >/dev/null
	# one bpffs for the lab, visible from every namespace (ip netns exec
	# gives each command its own /sys, so /sys/fs/bpf would be private)
	BPFFS=$LAB_DIR/bpf
	mkdir -p "$BPFFS" && mount -t bpf bpf "$BPFFS" || lab_die "cannot mount bpffs"
	trap 'demo_rc=$?; umount -l "$BPFFS" 2>/dev/null; (exit $demo_rc); lab_cleanup' EXIT
	for h in a b; do
		# XDP_TX into a veth needs NAPI on the peer: XDP_PASS there
		lab_xdp_pass $h
		LAB_LABEL=km-$h lab_kmagentd $h "${KMARGS[@]}" -l "$(lab_addr $h)" \
			-I eth0 --pin-root "$BPFFS/$h" >/dev/null
	done
	# bpf_fib_lookup needs resolved neighbours: the health probes do that
	for ((i = 0; i < 50; i++)); do
		ip -n "$(lab_ns a)" neigh show $B | grep -q lladdr &&
			ip -n "$(lab_ns b)" neigh show $A | grep -q lladdr && break
		sleep 0.1
	done
	cmd "kmagentd ${KMARGS[*]} -l ADDR -I eth0 --pin-root PIN"
	run_steps UDP --udp
	title "Who answered over UDP: the kernel path's counters (km_stats)"
	for h in a b; do
		say "  kmagent ${h^^}: $(kernel_stats $h)"
	done
fi

title "Summary"
if [ $WRONG -eq 0 ]; then
	say "  ${G}kmagent gave the expected answer at every step$N, step 7 included:"
	say "  the value, where the article's magent answered null."
else
	say "  ${R}$WRONG answer(s) differ from what kmagent should give$N (see above)."
fi
say "  The lab is removed now."
exit $((WRONG > 0))
