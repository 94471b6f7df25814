#!/bin/bash
# magent's command line works unchanged (issue 3): every magent 0.6 flag
# keeps its meaning (-s, -b as one more replica, -l, -p, -n, -i, -u, -g, -k,
# -D, -f unix socket, -v), kmagent's own (-c config file, -t, long options)
# add to them; without -D the daemon goes to the background; a bad flag,
# address or config line gets a message naming it and exit status 2.
. "$(dirname "$0")/lib.sh"

lab_two_backends
mc() { lab_mc c --timeout 3 "$@"; }

lab_log "a magent command line: -u -n -l -p -s -b -k -i -v -f, plus -t"
sock=$LAB_DIR/km.sock
lab_kmagentd p -u root -n 1024 -l 198.18.0.4 -p 11210 -s $M1 -b $M2 -k -i 2 \
	-v -f "$sock" -t 1
lab_eq "set through it" STORED "$(mc 198.18.0.4:11210 set cli1 one)"
lab_eq "-s backend holds it" one "$(mc $M1 get cli1)"
lab_eq "-b backend holds it too (a replica like the others)" one "$(mc $M2 get cli1)"
lab_eq "-f: the unix socket serves the same data" one \
	"$(lab_mc p --timeout 3 "$sock" get cli1)"
lab_not "-l 198.18.0.4: not listening on other addresses (127.0.0.1)" \
	lab_mc p --timeout 1 127.0.0.1:11210 version

lab_log "-u/-g: the daemon drops to that user and group"
LAB_LABEL=km-u lab_kmagentd p -p 11218 -s $M1 -s $M2 -u nobody -g nogroup
want="$(id -u nobody) $(getent group nogroup | cut -d: -f3)"
got=$(awk '/^Uid:/ { u = $2 " " $3 " " $4 } /^Gid:/ { g = $2 " " $3 " " $4 }
	END { print u "/" g }' "/proc/$(lab_pid km-u)/status")
lab_eq "-u nobody -g nogroup: real, effective, saved ids" \
	"$(echo $want | awk '{ print $1 " " $1 " " $1 "/" $2 " " $2 " " $2 }')" "$got"
lab_eq "and it serves" STORED "$(mc 198.18.0.4:11218 set cli5 five)"

lab_log "long options"
LAB_LABEL=km-long lab_kmagentd p --port 11211 --backend $M1 --backup $M2 \
	--threads 1 --replicas 2 --write-policy primary
lab_eq "--port/--backend/--backup: set through it" STORED \
	"$(mc 198.18.0.4:11211 set cli2 two)"
lab_eq "both replicas hold it" "two two" "$(mc $M1 get cli2) $(mc $M2 get cli2)"

lab_log "-c config file, flags override it"
cfg=$LAB_DIR/kmagent.conf
printf '# kmagent test config\nbackend %s\nbackend %s\nport 11213\n' \
	$M1 $M2 >"$cfg"
LAB_LABEL=km-cfg lab_kmagentd p -c "$cfg" -p 11214
lab_eq "-c: backends from the file, -p 11214 from the flag: set" STORED \
	"$(mc 198.18.0.4:11214 set cli3 three)"
lab_eq "both replicas hold it" "three three" "$(mc $M1 get cli3) $(mc $M2 get cli3)"
lab_not "-p on the command line overrides the file's port 11213" \
	mc --timeout 1 198.18.0.4:11213 version

lab_log "without -D: to the background, as magent"
pidf=$LAB_DIR/bg.pid
lab_in p timeout 10 "$LAB_KMAGENTD" -p 11215 -s $M1 -s $M2 \
	--pid-file "$pidf" --ctl "$LAB_DIR/bg.ctl" >"$LAB_DIR/bg.out" 2>&1
lab_eq "the command returns at once with status 0" 0 $?
bgpid=$(cat "$pidf" 2>/dev/null)
if [ -n "$bgpid" ]; then
	# record it so that lab_cleanup kills it by PID
	LAB_PID[km-bg]=$bgpid LAB_LABELS+=(km-bg) LAB_LOG[km-bg]=$LAB_DIR/bg.out
fi
lab_ok "--pid-file names a running daemon ($bgpid)" kill -0 "${bgpid:-0}"
lab_ok "the daemon answers" lab_wait_answer c 198.18.0.4 11215
lab_eq "set through it" STORED "$(mc 198.18.0.4:11215 set cli4 four)"
kill -TERM "${bgpid:-0}" 2>/dev/null
for ((i = 0; i < 50; i++)); do kill -0 "${bgpid:-0}" 2>/dev/null || break; sleep 0.1; done
lab_not "SIGTERM stops it" kill -0 "${bgpid:-0}"

lab_log "-n: at most N client connections, as magent and memcached"
LAB_LABEL=km-n lab_kmagentd p -p 11217 -s $M1 -s $M2 -n 5
nconns() {
	lab_in c "$LAB_PY" - "$@" <<-'PY'
	import sys
	sys.path.insert(0, sys.argv[1])
	from mc import Client
	cs, out = [], []
	for i in range(int(sys.argv[2])):
	    try:
	        c = Client("198.18.0.4:11217", timeout=2)
	        cs.append(c)
	        out.append(c.simple(b"version").split()[0].decode())
	    except Exception as e:
	        out.append("error")
	print(" ".join(out))
	PY
}
got=$(nconns "$LAB_ROOT/tests/tools" 7)
lab_eq "-n 5: five connections served, the 6th and 7th refused (memcached's ERROR Too many open connections)" \
	"VERSION VERSION VERSION VERSION VERSION ERROR ERROR" "$got"
sleep 0.3
got=$(nconns "$LAB_ROOT/tests/tools" 5)
lab_eq "-n 5: once they are closed, five new connections are served" \
	"VERSION VERSION VERSION VERSION VERSION" "$got"

lab_log "memcached's -a (unix socket mode) and -U (UDP port, 0: off)"
lab_eq "-f without -a: memcached's 0700, the daemon's" "700 0" \
	"$(stat -c '%a %u' "$sock")"
chmod 0711 "$LAB_DIR" # others reach the sockets by name, nothing more
OTHER=64213           # neither root nor nobody
# as UID CMD...: CMD in p as that uid, no privilege
as() { local u=$1; shift; lab_in p setpriv --reuid="$u" --regid="$u" --clear-groups "$@"; }
umc() { as "$1" "$LAB_PY" "$LAB_ROOT/tests/tools/mc.py" --timeout 2 "$2" get cli1; }
lab_not "... so another user cannot connect" umc $OTHER "$sock"
sock2=$LAB_DIR/km2.sock
LAB_LABEL=km-a lab_kmagentd p -p 11219 -s $M1 -s $M2 -u nobody -f "$sock2"
lab_eq "-u nobody: the socket is nobody's, 0700" "700 $(id -u nobody)" \
	"$(stat -c '%a %u' "$sock2")"
lab_eq "... nobody connects" one "$(umc "$(id -u nobody)" "$sock2")"
lab_not "... another user cannot" umc $OTHER "$sock2"
sock3=$LAB_DIR/km3.sock
LAB_LABEL=km-a2 lab_kmagentd p -p 11220 -s $M1 -s $M2 -f "$sock3" -a 0777
lab_eq "-a 0777: mode 0777" 777 "$(stat -c '%a' "$sock3")"
lab_eq "... another user connects" one "$(umc $OTHER "$sock3")"
LAB_LABEL=km-u0 lab_kmagentd p -p 11221 -s $M1 -s $M2 -U 0
lab_eq "-U 0: TCP served" one "$(mc 198.18.0.4:11221 get cli1)"
lab_not "... UDP not" lab_mc c --udp --timeout 1 198.18.0.4:11221 get cli1
LAB_LABEL=km-u2 lab_kmagentd p -p 11222 -s $M1 -s $M2 -U 11223
lab_eq "-U 11223: UDP there" one \
	"$(lab_mc c --udp --timeout 2 198.18.0.4:11223 get cli1)"
lab_not "... not on -p's port" lab_mc c --udp --timeout 1 198.18.0.4:11222 get cli1
lab_eq "... TCP on -p's" one "$(mc 198.18.0.4:11222 get cli1)"

lab_log "bad input: a message naming it, exit status 2"
# bad ARGS... MUST-MENTION: run kmagentd, expect status 2 and the text
bad()
{
	local want=$1 out rc
	shift
	out=$(lab_in p timeout 5 "$LAB_KMAGENTD" "$@" 2>&1)
	rc=$?
	lab_eq "kmagentd $*: exit status" 2 $rc
	lab_ok "kmagentd $*: the message names '$want'" grep -qF -- "$want" <<<"$out"
}
bad "-Z" -D -Z -s $M1
bad "198.18.0.2:notaport" -D -s 198.18.0.2:notaport
bad "70000" -D -p 70000 -s $M1
bad "abc" -D -t abc -s $M1
bad "-a: invalid value '8'" -D -a 8 -s $M1
bad "not with -U 0" -D -U 0 -I lo -s $M1
bad "-s" -D -p 11216
printf 'backend %s\n\nbogus 1\n' $M1 >"$LAB_DIR/bad.conf"
bad "config:3" -D -c "$LAB_DIR/bad.conf"
out=$(lab_in p timeout 5 "$LAB_KMAGENTD" -h 2>&1)
lab_eq "-h: exit status 0" 0 $?
lab_ok "-h: the usage lists -s and -b" grep -q -e '-s' -e '-b' <<<"$out"
lab_ok "the daemons of this test still run" lab_alive km-p
lab_done
