#!/bin/bash
# The article's seven steps over IPv6 UDP through the kernel fast path
# (issue 18): proxy host P (kmagentd -l :: -I eth0) in front of memcached
# on A and B, which listen on IPv6 only, and a client C, all with
# addresses from 2001:2::/48 (RFC 5180).  kmagentd is frozen (SIGSTOP)
# while the client talks to it: its UDP socket answers nothing then, so
# every answer comes from the BPF programs, and km_stats says which path
# each took.  The key hashes to B first (as the article's magent did):
# step 5 (B stopped) is answered through the ICMPv6 port unreachable B's
# host sends, step 7 (B back, empty) through the in-kernel null-fallback.
# Then, kmagentd running: an IPv4 client of IPv6 backends (passed up),
# and a silent B (SIGSTOP) whose read km_xdp_retry sends on to A.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/udp_lib.sh"

KEY=becd0000
VALUE=测试例子
P6=2001:2::1 C6=2001:2::a
NAME_2="[2001:2::2]:11211" NAME_3="[2001:2::3]:11211"

# which backend does the key hash to first?  Call that host B
first=$("$LAB_PY" "$LAB_ROOT/tests/integration/kmring.py" $KEY \
	"$NAME_2" "$NAME_3" | cut -d' ' -f1)
if [ "$first" == "$NAME_2" ]; then B6=2001:2::2 A6=2001:2::3 BID=1; else
	B6=2001:2::3 A6=2001:2::2 BID=2; fi
P=[$P6] A=[$A6] B=[$B6]

lab_init
udp_bpffs
PIN=$UDP_BPFFS/p
lab_pin_dir "$PIN"
lab_log "$KEY hashes to $B first: B=$B, A=$A"

lab_host p 198.18.0.1
lab_host6 p $P6
lab_host a 198.18.0.2
lab_host6 a "${A6}"
lab_host b 198.18.0.3
lab_host6 b "${B6}"
lab_host c 198.18.0.10
lab_host6 c $C6
udp_xdp_peer p
lab_memcached6 a 11211
lab_memcached6 b 11211
lab_kmagentd p -l :: -p 11210 -s "$NAME_2" -s "$NAME_3" -I eth0 \
	--pin-root "$PIN" --probe-interval 200 --probe-timeout 200 -v
# kmagentd's health probes resolve the backends' addresses (ND)
udp_kernel_ready "$A6" "$B6"
lab_ok "kmagentd turned IPv6 forwarding on for bpf_fib_lookup" \
	grep -q "eth0: enabled IPv6 forwarding" "${LAB_LOG[km-p]}"
lab_ok "the kernel holds B as an IPv6 backend" \
	test "$(kbe_field "$PIN" $BID family)" == 6

KMPID=$(lab_pid km-p)
freeze() { kill -STOP "$KMPID"; }
thaw() { kill -CONT "$KMPID"; }
# a stopped kmagentd must not outlive a failed check: lab_cleanup TERMs
trap 'udp_rc=$?; thaw 2>/dev/null; umount -l "$UDP_BPFFS" 2>/dev/null
	(exit $udp_rc); lab_cleanup' EXIT
mc() { udp_mc c --timeout 1 "$@"; }
k() { kstat "$PIN" "$1"; }

freeze
lab_log "kmagentd frozen: the kernel alone answers from here"
lab_log "step 1: set $KEY over IPv6 UDP (tc clones it to A and B)"
w0=$(k kernel_writes) c0=$(k write_clones) u0=$(k passed_up)
lab_eq "step 1: set $KEY \"$VALUE\" answers STORED" STORED \
	"$(mc "$P:11210" set $KEY "$VALUE")"
lab_eq "step 1: the write was cloned in the kernel" $((w0 + 1)) \
	"$(k kernel_writes)"
lab_eq "step 1: one clone per replica" $((c0 + 2)) "$(k write_clones)"
lab_eq "step 1: nothing went up to kmagentd" "$u0" "$(k passed_up)"

lab_log "step 2/3: get $KEY directly from memcached on A and on B"
lab_eq "step 2: memcached A holds the value" "$VALUE" "$(mc "$A:11211" get $KEY)"
lab_eq "step 3: memcached B holds the value" "$VALUE" "$(mc "$B:11211" get $KEY)"

lab_log "step 4: stop memcached on B"
lab_kill mc-b TERM
lab_not "step 4: memcached B no longer answers" lab_answers c "$B" 11211

lab_log "step 5: get $KEY through kmagent while B is down"
g0=$(k kernel_gets) r0=$(k refused) f0=$(k fallbacks) u0=$(k passed_up)
lab_eq "step 5: get via kmagent returns the value" "$VALUE" \
	"$(mc "$P:11210" get $KEY)"
lab_eq "step 5: routed in the kernel (to B first)" $((g0 + 1)) \
	"$(k kernel_gets)"
lab_eq "step 5: B's host's ICMPv6 port unreachable was seen" $((r0 + 1)) \
	"$(k refused)"
lab_eq "step 5: and the get asked A instead, in the kernel" $((f0 + 1)) \
	"$(k fallbacks)"
lab_eq "step 5: nothing went up to kmagentd" "$u0" "$(k passed_up)"
lab_eq "step 5: the kernel no longer reads from B (KM_BE_F_REFUSED)" 4 \
	$(($(kbe_field "$PIN" $BID flags) & 4))

lab_log "step 6: start memcached on B again: it comes back empty"
thaw
lab_restart mc-b
lab_ok "step 6: memcached B answers again" lab_answers c "$B" 11211
lab_ok "step 6: kmagent reads from B again (the kernel's view)" \
	udp_wait "B readable" 20 kbe_readable "$PIN" $BID
# a resync may have refilled B already; the article's B is empty
mc "$B:11211" delete $KEY >/dev/null
lab_not "step 6: B does not hold $KEY" mc "$B:11211" get $KEY
freeze

lab_log "step 7: get $KEY through kmagent (magent answers null here)"
f0=$(k fallbacks) h0=$(k fallback_hits) g0=$(k kernel_gets)
u0=$(k passed_up)
lab_eq "step 7: get via kmagent returns the value" "$VALUE" \
	"$(mc "$P:11210" get $KEY)"
lab_eq "step 7: routed in the kernel" $((g0 + 1)) "$(k kernel_gets)"
lab_eq "step 7: B's miss turned into a get to A in the kernel" $((f0 + 1)) \
	"$(k fallbacks)"
lab_eq "step 7: counted as a hit after fallback" $((h0 + 1)) \
	"$(k fallback_hits)"
lab_eq "step 7: nothing went up to kmagentd" "$u0" "$(k passed_up)"

lab_log "more keys held by A only: every one found, in the kernel"
n=20 ok=0
for ((i = 0; i < n; i++)); do mc "$A:11211" set "only-a-$i" "v$i" >/dev/null; done
f0=$(k fallbacks) g0=$(k kernel_gets) u0=$(k passed_up)
for ((i = 0; i < n; i++)); do
	[ "$(mc "$P:11210" get "only-a-$i")" == "v$i" ] && ok=$((ok + 1))
done
lab_eq "$n gets of keys on A only all hit" $n $ok
lab_eq "$n gets routed in the kernel" $((g0 + n)) "$(k kernel_gets)"
lab_eq "none went up to kmagentd" "$u0" "$(k passed_up)"
lab_ne "some of them needed a fallback (B first)" 0 $(($(k fallbacks) - f0))

lab_log "a miss on every replica is memcached's miss, from the kernel"
m0=$(k misses)
lab_not "a key held by no replica is a miss" mc "$P:11210" get never-set-key
lab_eq "the miss was answered by the kernel" $((m0 + 1)) "$(k misses)"

lab_log "writes of every kind, answered by the kernel from both replicas"
# an add is kmagentd's while its heartbeat lasts (2 s), even frozen: the
# kernel takes it alone once the deadline in km_config has passed
daemon_gone()
{
	"$LAB_PY" -c 'import sys, time
sys.exit(time.clock_gettime_ns(time.CLOCK_MONOTONIC) <= int(sys.argv[1]))' \
		"$(kcfg_field "$PIN" daemon_until_ns)"
}
lab_ok "the frozen kmagentd's heartbeat lapsed" udp_wait "deadline" 5 daemon_gone
w0=$(k kernel_writes)
lab_eq "delete answers DELETED" DELETED "$(mc "$P:11210" delete only-a-0)"
lab_not "... on A too" mc "$A:11211" get only-a-0
u0=$(k passed_up) n0=$(k no_route) pf0=$(k pending_full)
lab_eq "add answers STORED" STORED "$(mc "$P:11210" add fresh-v6 x)"
# why, should the kernel not take it (seen once in CI, not here)
lab_log "add: passed up +$(($(k passed_up) - u0)), no route +$(($(k no_route) - n0)), pending full +$(($(k pending_full) - pf0))"
lab_eq "... and B holds it" x "$(mc "$B:11211" get fresh-v6)"
lab_eq "2 writes cloned in the kernel" $((w0 + 2)) "$(k kernel_writes)"

thaw
lab_log "kmagentd thawed: a multi-key get goes up to its UDP socket"
u0=$(k passed_up)
want=$(printf 'get %s only-a-1\r\n' $KEY | mc "$A:11211" raw | od -An -c)
got=$(printf 'get %s only-a-1\r\n' $KEY | mc "$P:11210" raw | od -An -c)
lab_eq "multi-key get: kmagentd answers as memcached A does" "$want" "$got"
lab_eq "the multi-key get was passed up" $((u0 + 1)) "$(k passed_up)"

lab_log "an IPv4 client: its get goes up to kmagentd (no NAT across families)"
n0=$(k no_route) g0=$(k kernel_gets)
lab_eq "an IPv4 client's get through kmagentd returns the value" "$VALUE" \
	"$(mc 198.18.0.1:11210 get $KEY)"
lab_eq "the kernel found no IPv4 route to the IPv6 backend" $((n0 + 1)) \
	"$(k no_route)"
lab_eq "... and routed nothing" "$g0" "$(k kernel_gets)"

lab_log "a silent IPv6 backend (memcached B stopped): the read is retried"
# and owing nothing: the kernel reads a backend that owes writes only after
# the others, and the repairs above leave B owing for a while
b_first_read() { kbe_readable "$PIN" $BID && kbe_owes_nothing "$PIN" $BID; }
lab_ok "B readable in the kernel" udp_wait "B readable" 20 b_first_read
r0=$(k retries) g0=$(k kernel_gets)
kill -STOP "$(lab_pid mc-b)"
lab_eq "get via kmagent returns the value from A" "$VALUE" \
	"$(mc "$P:11210" get $KEY)"
kill -CONT "$(lab_pid mc-b)"
lab_eq "routed in the kernel" $((g0 + 1)) "$(k kernel_gets)"
lab_eq "sent again to A by km_xdp_retry (--udp-retry)" $((r0 + 1)) \
	"$(k retries)"
lab_eq "no helper failed" 0 "$(k helper_errors)"

bpftool map dump pinned "$PIN/km_stats" | grep -v ': 0,\?$' | sed 's/^/# /'
lab_done
