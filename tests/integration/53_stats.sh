#!/bin/bash
# `stats` on the proxy port answers what collectd and memcached exporters
# read: kmagentd's own figures (connections, commands, its traffic) and
# the backends' data set (curr_items, bytes, limit_maxbytes, evictions...)
# counted once however many replicas hold it, over TCP and UDP, and with
# a backend down.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ops_lib.sh"

N=300
lab_init
lab_host a 198.18.0.2
lab_host b 198.18.0.3
lab_host x 198.18.0.4
lab_host p 198.18.0.1
lab_host c 198.18.0.10
lab_memcached a 11211
lab_memcached b 11211
lab_memcached x 11211
# stats_of HOST:PORT [--udp]: the reply to `stats`, one "name value" a line
stats_of()
{
	printf 'stats\r\n' | lab_mc c $2 "$1" raw | tr -d '\r' |
		sed -n 's/^STAT \([^ ]*\) \(.*\)$/\1 \2/p'
}
field() { sed -n "s/^$1 //p" <<<"$2"; }

lab_log "two backends, every key on both"
# the stats reply is many times its request: the default UDP bound (one
# item of --item-size-max) sends it all the same
lab_kmagentd p -l 198.18.0.1 -p 11210 -s 198.18.0.2:11211 -s 198.18.0.3:11211
lab_eq "fill $N keys through kmagent" "stored $N" \
	"$(ops_py c fill 198.18.0.1:11210 $N st)"
lab_eq "... and read them back" "hits $N misses 0 wrong 0" \
	"$(ops_py c getall 198.18.0.1:11210 $N st)"
A=$(stats_of 198.18.0.2:11211)
S=$(stats_of 198.18.0.1:11210)
lab_eq "curr_items: the data set once, not twice" $N "$(field curr_items "$S")"
lab_eq "total_items" $N "$(field total_items "$S")"
lab_eq "bytes: what one replica holds" "$(field bytes "$A")" \
	"$(field bytes "$S")"
lab_eq "limit_maxbytes: the capacity for one copy" \
	"$(field limit_maxbytes "$A")" "$(field limit_maxbytes "$S")"
lab_eq "evictions" 0 "$(field evictions "$S")"
lab_eq "both backends answered" 2/2 "$(field kmagent_stats_backends "$S")"
lab_eq "cmd_get: kmagentd's own (keys asked through it)" $N \
	"$(field cmd_get "$S")"
lab_eq "get_hits: kmagentd's own" $N "$(field get_hits "$S")"
lab_eq "cmd_set: kmagentd's own" $N "$(field cmd_set "$S")"
lab_eq "pid: kmagentd's" "$(lab_pid km-p)" "$(field pid "$S")"
lab_ok "bytes_read: kmagentd's client traffic (> the sets' size)" \
	test "$(field bytes_read "$S")" -gt $((N * 20))
lab_ok "bytes_written: its replies (> the gets' values)" \
	test "$(field bytes_written "$S")" -gt $((N * 20))
lab_eq "each field once" "" "$(cut -d' ' -f1 <<<"$S" | sort | uniq -d)"
U=$(stats_of 198.18.0.1:11210 --udp)
lab_eq "over UDP too: curr_items" $N "$(field curr_items "$U")"
lab_eq "... with kmagentd's pid" "$(lab_pid km-p)" "$(field pid "$U")"
lab_eq "stats reset is still kmagentd's own" RESET \
	"$(printf 'stats reset\r\n' | lab_mc c 198.18.0.1:11210 raw | tr -d '\r')"
lab_eq "... and resets only its counters" "0 $N" \
	"$(S=$(stats_of 198.18.0.1:11210); echo "$(field cmd_get "$S") $(field curr_items "$S")")"
lab_kill km-p TERM
lab_kmagentd p -l 198.18.0.1 -p 11210 -s 198.18.0.2:11211 -s 198.18.0.3:11211 \
	--udp-reply-max 1
lab_eq "with --udp-reply-max 1, no UDP stats: over one datagram" "" \
	"$(stats_of 198.18.0.1:11210 --udp)"
lab_kill km-p TERM

lab_log "three backends, two replicas, then one down"
lab_in c "$LAB_PY" "$LAB_MC" 198.18.0.2:11211 raw <<<"flush_all" >/dev/null
lab_in c "$LAB_PY" "$LAB_MC" 198.18.0.3:11211 raw <<<"flush_all" >/dev/null
lab_kmagentd p -l 198.18.0.1 -p 11210 -s 198.18.0.2:11211 -s 198.18.0.3:11211 \
	-s 198.18.0.4:11211 --replicas 2 --probe-interval 100 --fall 1
ops_py c fill 198.18.0.1:11210 $N r3 >/dev/null
sum=0
for h in 2 3 4; do
	n=$(field curr_items "$(stats_of 198.18.0.$h:11211)")
	sum=$((sum + n))
done
# kmagentd's own keys (docs/operations.md, peers) are not the data set
own=0
for h in 2 3 4; do
	for k in kmagent:proxies kmagent:ring:198.18.0.1:11210; do
		[ "$(ops_py c mg 198.18.0.$h:11211 $k)" != EN ] && own=$((own + 1))
	done
done
lab_eq "the backends hold two copies (and $own keys of kmagentd's own)" \
	$((2 * N + own)) $sum
S=$(stats_of 198.18.0.1:11210)
lab_eq "curr_items: one copy" $N "$(field curr_items "$S")"
lab_kill mc-x KILL
lab_ok "x goes down" ops_wait_state 198.18.0.4:11211 down . 10
S=$(stats_of 198.18.0.1:11210)
lab_eq "two of three answered" 2/3 "$(field kmagent_stats_backends "$S")"
est=$(field curr_items "$S")
lab_ok "curr_items still estimates the data set ($est of $N, +-20%)" \
	test "$est" -ge $((N * 8 / 10)) -a "$est" -le $((N * 12 / 10))
lab_done
