#!/bin/bash
# The judges judged: the lab library and the test drivers against memcached
# alone, where the right answer is known.
#  - lib.sh: a failing check makes the script exit non-zero; the lab is
#    gone afterwards (namespaces, processes, temp dir), also when the
#    script is interrupted; kill/restart by PID gives a fresh, empty server.
#  - mcdiff.py: memcached against memcached gives no difference, and a
#    server that answers differently is caught.
#  - mcreplicas.py: a consistent "replica" passes, a stale one is caught.
#  - mcload.py: the load on memcached direct sees no wrong value and no
#    loss; a lost write is caught by verify.
. "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)

lab_init
lab_host a 198.18.0.1
lab_host b 198.18.0.2
lab_memcached a 11211
lab_memcached b 11211

# ---- lib.sh in a child script ----
child=$LAB_DIR/child.sh
cat >"$child" <<EOF
. "$here/lib.sh"
lab_init
lab_host x 198.18.0.1
lab_host y 198.18.0.2
lab_memcached x 11211
lab_eq "set" STORED "\$(lab_mc y 198.18.0.1:11211 set k v)"
old=\$(lab_pid mc-x)
echo "pids \$old"
lab_kill mc-x 9
lab_restart mc-x
echo "pids \$(lab_pid mc-x)"
lab_not "empty after restart" lab_mc y 198.18.0.1:11211 get k
[ -n "\${CHILD_SLEEP:-}" ] && { echo ready; sleep 30 & wait \$!; }
lab_eq "a check that fails" expected got
lab_done
EOF
cid=$$1
out=$(LAB_ID=$cid bash "$child" 2>&1)
rc=$?
lab_eq "a failing check makes the script exit 1" 1 $rc
lab_ok "the failure is printed as 'not ok - ... (expected X, got Y)'" \
	grep -q "^not ok - a check that fails (expected 'expected', got 'got')" <<<"$out"
lab_ok "the passing checks print 'ok - ...'" grep -q "^ok - empty after restart" <<<"$out"
pids=$(grep '^pids ' <<<"$out" | awk '{ print $2 }' | tr '\n' ' ')
lab_ok "restart gave a new PID ($pids)" test "$(echo $pids | wc -w)" -eq 2 -a \
	"$(echo $pids | cut -d' ' -f1)" != "$(echo $pids | cut -d' ' -f2)"
gone()
{
	local p
	for p in $pids; do kill -0 "$p" 2>/dev/null && return 1; done
	! ip netns list | grep -q "^km$1" && ! ls -d /tmp/kmlab."$1".* >/dev/null 2>&1
}
lab_ok "after exit: no process, namespace or temp dir left" gone $cid

# interrupted half-way
cid=$$2
CHILD_SLEEP=1 LAB_ID=$cid bash "$child" >"$LAB_DIR/child2.out" 2>&1 &
cpid=$!
for ((i = 0; i < 100; i++)); do
	grep -q '^ready' "$LAB_DIR/child2.out" && break
	sleep 0.1
done
pids=$(grep '^pids ' "$LAB_DIR/child2.out" | awk '{ print $2 }' | tr '\n' ' ')
lab_ok "the interrupted child had its lab up" ip netns pids "km${cid}x"
kill -TERM $cpid
wait $cpid
rc=$?
lab_ne "interrupted: non-zero exit" 0 $rc
lab_ok "interrupted: no process, namespace or temp dir left" gone $cid

# ---- mcdiff.py ----
lab_ok "mcdiff: memcached vs memcached, no difference" \
	lab_in a "$LAB_PY" "$here/../tools/mcdiff.py" 198.18.0.1:11211 198.18.0.2:11211
# a candidate with a different item size limit answers the oversize step
# and the steps after it differently: mcdiff must say so
LAB_LABEL=mc-small lab_memcached b 11212 -I 262144 -o slab_chunk_max=131072
dout=$(lab_in a "$LAB_PY" "$here/../tools/mcdiff.py" 198.18.0.1:11211 \
	198.18.0.2:11212 2>&1)
lab_eq "mcdiff: a server with -I 256k differs (exit 1)" 1 $?
lab_ok "mcdiff: the 512000-byte value step is named as differing" \
	grep -q '^not ok - [0-9]* set 512000-byte value' <<<"$dout"

# ---- mcreplicas.py ----
# memcached b as the "proxy" and its only replica: must match the reference;
# with mc-small (which receives nothing) as a second replica: must not
lab_ok "mcreplicas: one memcached as proxy and replica, consistent" \
	lab_in a "$LAB_PY" "$here/../tools/mcreplicas.py" 198.18.0.1:11211 \
	198.18.0.2:11211 198.18.0.2:11211
lab_not "mcreplicas: a replica that gets no writes is caught" \
	lab_in a "$LAB_PY" "$here/../tools/mcreplicas.py" --no-ttl 198.18.0.1:11211 \
	198.18.0.2:11211 198.18.0.2:11211 198.18.0.2:11212

# ---- mcload.py ----
acked=$LAB_DIR/acked
lout=$(lab_in a "$LAB_PY" "$here/../tools/mcload.py" run 198.18.0.2:11211 \
	--seconds 1 --acked "$acked" 2>&1)
lab_eq "mcload: on memcached, exit 0" 0 $?
lab_ok "mcload: writes acknowledged, reads hit, none wrong or missed" \
	awk '$1 == "acked" && $2 > 100 { a = 1 } $1 == "hits" && $2 > 100 { h = 1 }
	     ($1 == "wrong" || $1 == "misses") && $2 != 0 { bad = 1 }
	     END { exit !(a && h && !bad) }' <<<"$lout"
lab_ok "mcload verify: every acked key present" \
	lab_in a "$LAB_PY" "$here/../tools/mcload.py" verify 198.18.0.2:11211 \
	--acked "$acked"
lab_mc a 198.18.0.2:11211 delete "$(head -n 1 "$acked")" >/dev/null
vout=$(lab_in a "$LAB_PY" "$here/../tools/mcload.py" verify 198.18.0.2:11211 \
	--acked "$acked" 2>&1)
lab_eq "mcload verify: a deleted acked key is caught (exit 1)" 1 $?
lab_ok "mcload verify: ... and counted as missing 1" grep -qx "missing 1" <<<"$vout"

lab_done
