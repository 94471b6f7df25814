#!/bin/bash
# Concurrency: kmbench (checks every value it reads back) runs mixed UDP
# sets and gets through the kernel path, 16 sockets x 4 in flight, for 3 s;
# then the replicas must hold the same values.  No wrong value may be
# seen; UDP losses are reported, not failed.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/udp_lib.sh"

udp_lab_pab
udp_kmagentd_pab

udp_load "$P" "$PIN" the "$A" "$B"
lab_done
