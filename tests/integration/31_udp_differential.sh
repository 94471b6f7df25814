#!/bin/bash
# Differential test over UDP: one request sequence (tests/integration/
# udpdiff.py: storage, arithmetic, meta, noreply, multi-datagram values,
# multi-key and unknown commands) sent directly to a fresh memcached and
# through kmagentd -I eth0 in front of two fresh memcacheds must give the
# same reply datagrams, request ids and frame headers included (cas values
# masked).  Single-key reads and writes take the kernel path, the rest
# kmagentd's UDP socket; km_stats shows both were exercised.  With the
# default reply bound (22_security_defaults tests it), as memcached does.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/udp_lib.sh"

udp_lab_ref # r: the reference, one memcached, direct
lab_kmagentd p -l 198.18.0.4 -p 11210 -s 198.18.0.2:11211 \
	-s 198.18.0.3:11211 -I eth0 --pin-root "$PIN"
udp_kernel_ready 198.18.0.2 198.18.0.3

out=$(lab_in c "$LAB_PY" "$LAB_ROOT/tests/integration/udpdiff.py" \
	198.18.0.1:11211 198.18.0.4:11210)
rc=$?
printf '%s\n' "$out" | sed 's/^/# /'
lab_eq "every UDP reply through kmagent equals memcached's" 0 $rc
lab_ne "reads were served in the kernel" 0 "$(kstat "$PIN" kernel_gets)"
lab_ne "writes were cloned in the kernel" 0 "$(kstat "$PIN" kernel_writes)"
lab_ne "the rest went up to kmagentd" 0 "$(kstat "$PIN" passed_up)"
lab_eq "no helper failed" 0 "$(kstat "$PIN" helper_errors)"
lab_done
