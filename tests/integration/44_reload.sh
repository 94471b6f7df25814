#!/bin/bash
# Reload under load: a config file lists A and B (2 replicas of each key).
# While a client writes and reads through kmagentd without pause, the file
# gains X and `kmagentctl reload` adds it: X is warming (writes only), is
# resynced, then up; about 1/3 of the keys change primary (measured with
# `kmagentctl ring`).  A broken file is refused with its line number and
# the running configuration kept.  Then A is removed, and a SIGHUP applies
# one more change.  The client sees no error and no wrong or missing value.
. "$(dirname "$0")/lib.sh"

N=600
lab_init
. "$(dirname "$0")/ops_lib.sh"
lab_host a 198.18.0.1
lab_host b 198.18.0.2
lab_host x 198.18.0.3
lab_host p 198.18.0.4
lab_host c 198.18.0.10
A=198.18.0.1:11211 B=198.18.0.2:11211 X=198.18.0.3:11211 P=198.18.0.4:11210
lab_memcached a 11211
lab_memcached b 11211
lab_memcached x 11211
CONF=$LAB_DIR/kmagent.conf
printf '# kmagent test config\nbackend %s\nbackend %s\nreplicas 2\n' $A $B >"$CONF"
lab_kmagentd p -p 11210 -c "$CONF" --probe-interval 200 --probe-timeout 200 -v
log=${LAB_LOG[km-p]}

primaries() { # the first replica of keys m0..m(N-1), one a line
	"$LAB_PY" - "${LAB_CTL[km-p]}" "$N" <<'PYEOF'
import json, socket, sys
path, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(path)
    s.sendall(b"ring m%d\n" % i)
    buf = b""
    while not buf.endswith(b"\n"):
        r = s.recv(65536)
        if not r:
            break
        buf += r
    print(json.loads(buf)["replicas"][0]["name"])
PYEOF
}

lab_eq "$N keys written through kmagentd" "stored $N" "$(ops_py c fill $P $N m)"
before=$(primaries)
lab_eq "the ring placed all $N keys" $N "$(grep -c : <<<"$before")"

lab_log "load starts: pipelined writes and reads through kmagentd for 8 s"
lab_in c "$LAB_PY" "$LAB_ROOT/tests/tools/mcload.py" run $P --seconds 8 \
	--conns 4 --acked "$LAB_DIR/acked" >"$LAB_DIR/load.out" 2>&1 &
load=$!
sleep 1

lab_log "X added to the config file, kmagentctl reload"
echo "backend $X" >>"$CONF"
out=$(ctl reload); rc=$?
printf '%s\n' "$out" | sed 's/^/# | /'
lab_eq "reload exits 0" 0 $rc
lab_ok "reload reports X added" grep -q "^added: $X" <<<"$out"
lab_ok "X was warming before it served reads" \
	ops_wait_log "$log" "$X: up -> warming \(added by reload\)" 1 5
lab_ok "X is resynced, then up" ops_wait_state $X up "resync done" 15
after=$(primaries)
lab_eq "the new ring placed all $N keys" $N "$(grep -c : <<<"$after")"
moved=$(paste <(echo "$before") <(echo "$after") | awk '$1 != $2' | wc -l)
to_x=$(grep -c "^$X$" <<<"$after")
lab_log "primaries moved: $moved of $N, all of them to X: $to_x"
paste <(echo "$before") <(echo "$after") | awk '$1 != $2' | grep -v "$X\$" | head -5 | sed 's/^/# not to X: /'

lab_ok "about 1/3 of the keys moved (between 1/4 and 5/12)" \
	test $((moved * 12)) -ge $((N * 3)) -a $((moved * 12)) -le $((N * 5))
lab_eq "every moved key moved to X, no other" "$moved" "$to_x"

lab_log "a broken config file is refused"
cp "$CONF" "$CONF.good"
echo "frobnicate 1" >>"$CONF"
out=$(ctl reload 2>&1); rc=$?
printf '%s\n' "$out" | sed 's/^/# | /'
lab_eq "reload of a broken file exits 1" 1 $rc
lab_ok "the message names the line" grep -q "config:6: unknown directive 'frobnicate'" <<<"$out"
lab_eq "the running config is kept (3 backends up)" 3 \
	"$(jget "$(ctl -j status)" 'd["up"]')"
cp "$CONF.good" "$CONF"

lab_log "A removed from the config file, kmagentctl reload"
grep -v "$A" "$CONF.good" >"$CONF"
out=$(ctl reload); rc=$?
printf '%s\n' "$out" | sed 's/^/# | /'
lab_eq "reload exits 0" 0 $rc
lab_ok "reload reports A removed" grep -q "^removed: $A" <<<"$out"
lab_ok "the backends left are resynced: they gained A's slots" \
	ops_wait_log "$log" "resync of $X done" 2 15
# A gets its slots' writes until the handoff is over, then leaves
lab_ok "the ring handoff is over" ops_wait_handoff 15
lab_eq "2 backends left" 2 "$(jget "$(ctl -j status)" 'd["backends"]')"

lab_log "SIGHUP: the probe timeout changes"
echo "probe-timeout 300" >>"$CONF"
kill -HUP "$(lab_pid km-p)"
lab_ok "SIGHUP reloads" ops_wait_log "$log" "SIGHUP: reload: .*\"ok\":true" 1 5

wait $load
out=$(cat "$LAB_DIR/load.out")
printf '%s\n' "$out" | sed 's/^/# load: /'
st() { awk -v k="$1" '$1 == k { print $2 }' <<<"$out"; }
lab_ok "the load ran ($(st sets) sets, $(st gets) gets)" test "$(st sets)" -gt 1000
lab_eq "no write refused, no server error, no dropped connection" "0 0 0 0" \
	"$(st not_acked) $(st server_errors) $(st conn_drops) $(st timeouts)"
lab_eq "no wrong and no missing value during the reloads" "0 0" \
	"$(st wrong) $(st misses)"
out=$(lab_in c "$LAB_PY" "$LAB_ROOT/tests/tools/mcload.py" verify $P --acked "$LAB_DIR/acked")
lab_eq "every acknowledged write is readable afterwards" 0 \
	"$(awk '$1 == "missing" || $1 == "wrong" { n += $2 } END { print n + 0 }' <<<"$out")"
lab_eq "the first $N keys too" "hits $N misses 0 wrong 0" "$(ops_py c getall $P $N m)"
lab_done
