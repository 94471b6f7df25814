#!/bin/bash
# The kernel path and hostile UDP clients (kmagentd -I eth0, defaults):
#  - datagrams of an odd reply shape (two commands in one, a data block of
#    another length, "noreply" after a NUL or before a space, a noreply
#    memcached answers ERROR to: tests/tools/mcudpframe.py) are answered as
#    a reference memcached answers them, frame headers included: the kernel
#    leaves them to kmagentd and no pending entry waits for a reply that
#    never comes (no timeout, the backends stay up);
#  - noreply clones carry a request id no entry has: their stray replies
#    reach no client;
#  - a multi-datagram read reply (a 20,000-byte value: memcached's udp.t)
#    is answered from the kernel, datagram by datagram; the reply bound
#    (--udp-reply-max, one item of --item-size-max by default) refuses no
#    legitimate reply (bpf_test_xdp_rx tests a reply over it);
#  - by default only the served subnets are answered: a client of another
#    subnet is dropped by XDP (denied) and served over TCP.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/udp_lib.sh"

udp_lab_ref
lab_host x 198.19.0.10 # another subnet, on the same LAN
lab_in x ip route add 198.18.0.0/24 dev eth0 || lab_die "route on x"
lab_in p ip route add 198.19.0.0/24 dev eth0 || lab_die "route on p"
lab_kmagentd p -l 198.18.0.4 -p 11210 -s 198.18.0.2:11211 \
	-s 198.18.0.3:11211 -I eth0 --pin-root "$PIN"
udp_kernel_ready 198.18.0.2 198.18.0.3
P=198.18.0.4:11210

lab_log "datagrams of an odd reply shape"
w0=$(kstat "$PIN" kernel_writes) g0=$(kstat "$PIN" kernel_gets)
lab_in c "$LAB_PY" "$LAB_ROOT/tests/tools/mcudpframe.py" 198.18.0.1:11211 $P
lab_eq "every reply as memcached's (mcudpframe exit)" 0 $?
lab_ok "the plain set and delete were cloned in the kernel" \
	test "$(kstat "$PIN" kernel_writes)" -ge $((w0 + 2))
lab_ok "the plain gets were served in the kernel" \
	test "$(kstat "$PIN" kernel_gets)" -ge $((g0 + 4))
sleep 1.2 # past the pending timeout: an entry left waiting would expire
lab_mc c --udp --timeout 1 $P get uk >/dev/null # reclaims stale entries
lab_eq "no pending entry timed out" 0 "$(kstat "$PIN" timeouts)"
lab_eq "m1 up in the kernel's view" 1 "$(kbe_state "$PIN" 1)"
lab_eq "m2 up in the kernel's view" 1 "$(kbe_state "$PIN" 2)"

lab_log "multi-datagram replies"
big=$(head -c 20000 /dev/zero | tr '\0' b)
lab_mc c $P set bigk "$big" >/dev/null
c0=$(kstat "$PIN" reply_capped) g0=$(kstat "$PIN" kernel_gets)
lab_eq "a 20,000-byte value (15 datagrams) over UDP" 20000 \
	"$(udp_mc c --timeout 1 $P get bigk | wc -c)"
lab_eq "the get was the kernel's" $((g0 + 1)) "$(kstat "$PIN" kernel_gets)"
lab_eq "no reply dropped by the bound" "$c0" "$(kstat "$PIN" reply_capped)"
lab_mc c $P set small tiny >/dev/null
lab_eq "a one-datagram reply goes too" tiny \
	"$(udp_mc c --timeout 1 $P get small)"
sleep 1.2
lab_mc c --udp --timeout 1 $P get small >/dev/null
lab_eq "no timeout charged" 0 "$(kstat "$PIN" timeouts)"

lab_log "the allow-list by default"
d0=$(kstat "$PIN" denied)
lab_not "a client of another subnet: no UDP answer" \
	udp_mc x --timeout 1 $P get small
lab_eq "dropped in XDP, counted" $((d0 + 1)) "$(kstat "$PIN" denied)"
lab_eq "... TCP serves it" tiny "$(lab_mc x --timeout 2 $P get small)"
lab_done
