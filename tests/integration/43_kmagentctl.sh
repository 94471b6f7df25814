#!/bin/bash
# kmagentctl against a running kmagentd with the kernel path attached
# (tables and --json of every command, exit codes), then against a killed
# one (kill -9: the pinned maps are read instead, with a warning, exit 3),
# then kmagentctl detach removes the kernel path.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/udp_lib.sh"

. "$(dirname "$0")/ops_lib.sh"
udp_lab_pab
udp_kmagentd_pab --probe-interval 200 --probe-timeout 200 \
	--metrics 198.18.0.1:9411
K=$LAB_ROOT/build/kmagentctl
CTL=${LAB_CTL[km-p]}
lab_eq "a value stored over TCP" "stored 50" "$(ops_py c fill $P 50 t)"
for i in $(seq 0 9); do udp_mc c $P get t$i >/dev/null; done

lab_log "---- daemon running"
lab_eq "control socket is mode 0600" 600 "$(stat -c %a "$CTL")"
out=$(ctl status); rc=$?
printf '%s\n' "$out" | sed 's/^/# | /'
lab_eq "status exits 0" 0 $rc
lab_ok "status counts 2 backends up" grep -q "backends: 2 (2 up, 0 warming, 0 down)" <<<"$out"
lab_ok "status sees the kernel path" grep -q "kernel path: attached" <<<"$out"
lab_ok "... names its interface and XDP mode" grep -qx \
	"kernel path: attached on eth0 (native XDP)" <<<"$out"
j=$(ctl -j status)
lab_eq "status --json: ifaces" "[('eth0', 'native')]" \
	"$(jget "$j" '[(i["name"], i["xdp"]) for i in d["ifaces"]]')"
# --kernel reads the pinned maps, in p: ifindexes are p's
kctl() { lab_in p "$K" -s "$CTL" --pin-root "$PIN" "$@"; }
out=$(kctl backends --kernel); rc=$?
printf '%s\n' "$out" | sed 's/^/# | /'
lab_eq "backends --kernel, daemon running: exit 0" 0 $rc
lab_eq "... km_backends decoded: both addresses, up" 2 \
	"$(grep -cE "^[12] +198\.18\.0\.[23]:11211 +up " <<<"$out")"
j=$(kctl -j backends --kernel)
lab_eq "... --json: the kernel's view" pinned-maps "$(jget "$j" 'd["source"]')"
lab_eq "... addr and port fields" "198.18.0.3 11211" \
	"$(jget "$j" '" ".join(str(b[k]) for b in d["backends"] if b["id"] == 2 for k in ("addr", "port"))')"
lab_ok "status --kernel: the maps' view, not 'not running'" grep -qx \
	"kernel path pinned in $PIN (--kernel: its maps only)" \
	<<<"$(kctl status --kernel)"
lab_eq "--kernel with another command: usage error" 2 \
	"$(kctl reload --kernel >/dev/null 2>&1; echo $?)"
out=$(ctl backends)
printf '%s\n' "$out" | sed 's/^/# | /'
lab_ok "backends table has its header" grep -q "^ID  *NAME  *STATE  *DRAIN  *SINCE  *LATENCY  *INFLIGHT" <<<"$out"
lab_eq "backends table: one row a backend, both up" 2 \
	"$(grep -cE "^[12] +198\.18\.0\.[23]:11211 +up " <<<"$out")"
j=$(ctl -j backends)
lab_eq "backends --json: names" "['$A', '$B']" "$(jget "$j" '[b["name"] for b in d["backends"]]')"
lab_eq "backends --json: nothing in flight when idle" 0 \
	"$(jget "$j" 'sum(b["inflight"] for b in d["backends"])')"
lab_ok "backends --json: a latency was measured" \
	test "$(jget "$j" 'min(b["latency_us"] for b in d["backends"])')" -ge 0
out=$(ctl ring lookup becd0000)
printf '%s\n' "$out" | sed 's/^/# | /'
lab_ok "ring lookup: slot and replicas" grep -qE "^key becd0000: hash [0-9]+ \(0x[0-9a-f]{8}\), slot [0-9]+" <<<"$out"
lab_ok "ring lookup: the kernel ring agrees" grep -q "(same as the daemon's)" <<<"$out"
j=$(ctl -j ring becd0000)
expect=$("$LAB_PY" "$LAB_ROOT/tests/integration/kmring.py" becd0000 $A $B)
lab_eq "ring --json: same order as an independent computation (kmring.py)" \
	"$expect" "$(jget "$j" '" ".join(r["name"] for r in d["replicas"])')"
lab_eq "ring --json: kernel_agrees" True "$(jget "$j" 'd["kernel_agrees"]')"
out=$(ctl stats -i 0.5)
printf '%s\n' "$out" | head -20 | sed 's/^/# | /'
lab_ok "stats: userspace counters" grep -qE "^user\.cmd_set +50 " <<<"$out"
lab_ok "stats: kernel counters" grep -qE "^kernel\.kernel_gets +[1-9]" <<<"$out"
lab_ok "stats: BPF programs listed" grep -q "^bpf.km_xdp_rx" <<<"$out"
j=$(ctl -j stats -i 0.2)
lab_ok "stats --json: rates and interval" test "$(jget "$j" '"rates" in d and d["interval"] > 0')" == True
lab_ok "stats --json: per-backend kernel counters" \
	test "$(jget "$j" 'sum(b["kernel"]["gets"] for b in d["backends"])')" -ge 10
# a request stuck on a frozen B shows in B's in-flight gauge
for i in $(seq 0 50); do
	[ "$("$LAB_PY" "$LAB_ROOT/tests/integration/kmring.py" t$i $A $B | cut -d' ' -f1)" == "$B" ] && break
done
kill -STOP "$(lab_pid mc-b)"
lab_mc c --timeout 3 $P get t$i >/dev/null 2>&1 &
getpid=$!
sleep 0.3
j=$(ctl -j backends)
kill -CONT "$(lab_pid mc-b)"
wait $getpid
lab_eq "a TCP get of t$i stuck on frozen B: B's inflight is 1" 1 \
	"$(jget "$j" '[b["inflight"] for b in d["backends"] if b["name"] == "'$B'"][0]')"
sleep 1
lab_ok "B is up again after the freeze" ops_wait_state $B up . 15
ctl drain $B --writes >/dev/null
j=$(ctl -j backends)
lab_eq "drain --writes: B drained both ways" "True True" \
	"$(jget "$j" '" ".join(str(b[k]) for b in d["backends"] if b["name"] == "'$B'" for k in ("no_reads", "no_writes"))')"
lab_eq "drain: the kernel sees B's flags (3)" "3" \
	"$(bpftool -j map lookup pinned "$PIN/km_backends" key 2 0 0 0 | "$LAB_PY" -c 'import json,sys; print(json.load(sys.stdin)["formatted"]["value"]["flags"])')"
lab_ok "backends --kernel shows them" grep -qE \
	"^2 +$B +up .* no_reads,no_writes" <<<"$(kctl backends --kernel)"
lab_eq "undrain" "backend 2 ($B): reads on, writes on" "$(ctl undrain 2)"
ctl resync nosuch:1 >/dev/null 2>&1
lab_eq "unknown backend: exit 1" 1 $?
ctl frobnicate >/dev/null 2>&1
lab_eq "unknown command: exit 2" 2 $?
"$K" -s "$LAB_DIR/nobody.sock" --pin-root "$LAB_DIR/nopins" status >/dev/null 2>&1
lab_eq "nothing to reach: exit 3" 3 $?
m=$(lab_in c curl -s http://198.18.0.1:9411/metrics 2>/dev/null ||
	lab_in c "$LAB_PY" -c 'import urllib.request; print(urllib.request.urlopen("http://198.18.0.1:9411/metrics").read().decode())')
lab_ok "metrics: backend state" grep -q "kmagent_backend_state{backend=\"$A\",id=\"1\",state=\"up\"} 1" <<<"$m"
lab_ok "metrics: kernel counters" grep -qE '^kmagent_kernel_total\{counter="kernel_gets"\} [1-9]' <<<"$m"
lab_ok "metrics: per backend and path" grep -qE "^kmagent_backend_requests_total\{backend=\"$A\",path=\"kernel\"\} [0-9]+" <<<"$m"

lab_log "---- daemon killed (-9): the kernel path stays, kmagentctl reads its maps"
lab_kill km-p KILL
out=$(ctl --pin-root "$PIN" backends 2>"$LAB_DIR/err"); rc=$?
printf '%s\n' "$out" | sed 's/^/# | /'
lab_eq "backends, daemon down: exit 3" 3 $rc
lab_ok "a clear warning on stderr" grep -q "WARNING: kmagentd unreachable.*pinned maps" "$LAB_DIR/err"
lab_eq "backends from km_backends, both up" 2 \
	"$(grep -cE "^[12] +198\.18\.0\.[23]:11211 +up " <<<"$out")"
j=$(ctl --pin-root "$PIN" -j stats -i 0 2>/dev/null)
lab_eq "stats --json, daemon down: source" pinned-maps "$(jget "$j" 'd["source"]')"
lab_ok "stats --json, daemon down: kernel counters" \
	test "$(jget "$j" 'd["kernel"]["kernel_gets"]')" -ge 10
lab_eq "status, daemon down" 3 "$(ctl --pin-root "$PIN" status >/dev/null 2>&1; echo $?)"
lab_ok "... names the pinned link's interface and mode" grep -qx \
	"kernel path: attached on eth0 (native XDP)" \
	<<<"$(kctl status 2>/dev/null)"
lab_eq "the kernel path still answers UDP gets" "t1" \
	"$(udp_mc c $P get t1 | head -1)"

lab_log "---- kmagentctl detach"
# it detaches with plain libbpf calls: no skeleton, no BPF object inside
lab_not "kmagentctl carries no BPF skeleton" \
	sh -c "nm '$K' | grep -q _skeleton"
out=$(ctl --pin-root "$PIN" detach); rc=$?
lab_eq "detach exits 0" 0 $rc
lab_not "the pin root is gone" test -e "$PIN"
lab_not "no XDP program left on P's eth0" \
	sh -c "ip -n $(lab_ns p) link show eth0 | grep -q xdp"
lab_done
