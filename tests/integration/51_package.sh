#!/bin/bash
# What an operator installs: the Debian package built from the tree
# (dpkg-buildpackage -us -uc -b, in a copy: the tree stays clean), its
# contents, lintian (errors fail, warnings are shown), `make install`
# with PREFIX and DESTDIR, the sample config (every directive in it is
# valid) and the systemd unit (systemd-analyze verify, and what it must
# say: unprivileged, the capabilities, a reload that reports failure, no
# restart loop on a config error).  No namespace: nothing here runs a
# proxy.
. "$(dirname "$0")/lib.sh"

TMP=$(mktemp -d /tmp/kmpkg.XXXXXX) || lab_die "mktemp"
trap 'rc=$?; rm -rf -- "$TMP"; exit $rc' EXIT
cd "$LAB_ROOT" || lab_die "no tree"
VERSION=$(dpkg-parsechangelog -l debian/changelog -S Version)
UPSTREAM=${VERSION%-*}

lab_log "the package, built from a copy of the tree"
status0=$(git status --porcelain --ignored 2>/dev/null)
mkdir -p "$TMP/src"
tar -c --exclude=./build --exclude=./build-san --exclude=./.git . |
	tar -x -C "$TMP/src" || lab_die "cannot copy the tree"
(cd "$TMP/src" && timeout 300 dpkg-buildpackage -us -uc -b) \
	>"$TMP/build.log" 2>&1
rc=$?
[ $rc -eq 0 ] || tail -n 30 "$TMP/build.log" | sed 's/^/# | /'
lab_eq "dpkg-buildpackage -us -uc -b" 0 $rc
DEB=$TMP/kmagent_${VERSION}_amd64.deb
lab_ok "kmagent_${VERSION}_amd64.deb made" test -s "$DEB"
lab_eq "the source tree is as it was" "$status0" \
	"$(git status --porcelain --ignored 2>/dev/null)"

contents=$(dpkg-deb -c "$DEB" | awk '{print $1, $6}')
for f in "-rwxr-xr-x ./usr/sbin/kmagentd" "-rwxr-xr-x ./usr/sbin/kmagentctl" \
	"-rw-r--r-- ./usr/share/man/man8/kmagentd.8.gz" \
	"-rw-r--r-- ./usr/share/man/man8/kmagentctl.8.gz" \
	"-rw-r--r-- ./lib/systemd/system/kmagentd.service" \
	"-rw-r--r-- ./etc/kmagent.conf" \
	"-rw-r--r-- ./usr/share/doc/kmagent/copyright"; do
	lab_ok "package holds ${f#* } (${f%% *})" grep -qxF -- "$f" <<<"$contents"
done
mkdir -p "$TMP/ctl" "$TMP/x"
dpkg-deb -e "$DEB" "$TMP/ctl" && dpkg-deb -x "$DEB" "$TMP/x" ||
	lab_die "cannot unpack $DEB"
lab_eq "/etc/kmagent.conf is a conffile" /etc/kmagent.conf \
	"$(cat "$TMP/ctl/conffiles")"
lab_ok "postinst creates the system user kmagent" grep -qE \
	'adduser --system --group .*kmagent$' "$TMP/ctl/postinst"
lab_ok "... and the package depends on adduser" grep -qE \
	'^Depends:.*adduser' "$TMP/ctl/control"
lab_ok "prerm detaches the kernel path on removal" grep -q \
	'kmagentctl detach' "$TMP/ctl/prerm"
lab_eq "the packaged kmagentd says its version" "kmagentd $UPSTREAM" \
	"$("$TMP/x/usr/sbin/kmagentd" --version)"
lab_eq "... and kmagentctl" "kmagentctl $UPSTREAM" \
	"$("$TMP/x/usr/sbin/kmagentctl" --version)"
lab_ok "the packaged unit runs /usr/sbin/kmagentd" grep -qx \
	'ExecStart=/usr/sbin/kmagentd -D -c /etc/kmagent.conf' \
	"$TMP/x/lib/systemd/system/kmagentd.service"

lintian "$TMP"/kmagent_"${VERSION}"_amd64.changes >"$TMP/lintian.log" 2>&1
grep -E '^[EWIX]:' "$TMP/lintian.log" | sed 's/^/# lintian: /'
lab_eq "lintian: no error" "" "$(grep -E '^E:' "$TMP/lintian.log")"
lab_eq "lintian: no warning" "" "$(grep -E '^W:' "$TMP/lintian.log")"

lab_log "make install"
D=$TMP/dest
make -s install DESTDIR="$D" PREFIX=/usr >"$TMP/install.log" 2>&1
lab_eq "make install DESTDIR=... PREFIX=/usr" 0 $?
for f in "755 /usr/sbin/kmagentd" "755 /usr/sbin/kmagentctl" \
	"644 /usr/share/man/man8/kmagentd.8" \
	"644 /usr/share/man/man8/kmagentctl.8" \
	"644 /usr/lib/systemd/system/kmagentd.service" \
	"644 /etc/kmagent.conf"; do
	lab_eq "installed ${f#* }" "$f" \
		"$(stat -c '%a' "$D${f#* }" 2>/dev/null) ${f#* }"
done
lab_ok "the unit names the installed binaries" grep -qx \
	'ExecReload=/usr/sbin/kmagentctl reload' \
	"$D/usr/lib/systemd/system/kmagentd.service"
echo "backend 127.0.0.1:11211  # the operator's" >"$D/etc/kmagent.conf"
make -s install DESTDIR="$D" PREFIX=/usr >>"$TMP/install.log" 2>&1
lab_eq "a second install keeps the operator's kmagent.conf" \
	"backend 127.0.0.1:11211  # the operator's" "$(cat "$D/etc/kmagent.conf")"
make -s install DESTDIR="$TMP/local" >>"$TMP/install.log" 2>&1
lab_ok "default PREFIX /usr/local" test -x "$TMP/local/usr/local/sbin/kmagentd" \
	-a -f "$TMP/local/usr/local/etc/kmagent.conf" \
	-a -f "$TMP/local/usr/local/lib/systemd/system/kmagentd.service" \
	-a -f "$TMP/local/usr/local/share/man/man8/kmagentd.8"
lab_ok "... and its unit runs /usr/local/sbin/kmagentd" grep -q \
	'^ExecStart=/usr/local/sbin/kmagentd ' \
	"$TMP/local/usr/local/lib/systemd/system/kmagentd.service"
conf=$(sed -n 's/^ExecStart=.* -c //p' \
	"$TMP/local/usr/local/lib/systemd/system/kmagentd.service")
lab_eq "... which reads the config make install wrote" \
	/usr/local/etc/kmagent.conf "$conf"
lab_ok "... and it is there" test -f "$TMP/local$conf"
lab_not "no @VARIABLE@ left in the unit" grep -q @ \
	"$TMP/local/usr/local/lib/systemd/system/kmagentd.service"

lab_log "the sample config"
KMD=$D/usr/sbin/kmagentd
out=$("$KMD" --check-config -c packaging/kmagent.conf 2>&1)
lab_eq "as shipped (every line commented) it names no backend: exit 2" \
	2 "$("$KMD" --check-config -c packaging/kmagent.conf >/dev/null 2>&1; echo $?)"
lab_ok "... and says so" grep -q "no backend given" <<<"$out"
# every directive uncommented (the interface one on lo, which exists here)
sed -e 's/^#\([a-z]\)/\1/' -e 's/^iface .*/iface lo/' packaging/kmagent.conf \
	>"$TMP/all.conf"
lab_ok "the sample has directives" test "$(grep -c '^[a-z]' "$TMP/all.conf")" -gt 15
lab_eq "every directive of the sample is valid" \
	"config ok: 2 backends, port 11210, kernel path on lo" \
	"$("$KMD" --check-config -c "$TMP/all.conf" 2>&1)"

lab_log "the unit"
U=$D/usr/lib/systemd/system/kmagentd.service
mkdir -p "$TMP/unit"
# verify checks that the commands exist: point it at the staged ones
sed "s|/usr/sbin/|$D/usr/sbin/|g" "$U" >"$TMP/unit/kmagentd.service"
out=$(MANPATH=$D/usr/share/man systemd-analyze verify \
	"$TMP/unit/kmagentd.service" 2>&1)
lab_eq "systemd-analyze verify is silent" "" "$out"
unit_is() { grep -qx -- "$1" "$U"; }
lab_ok "runs as User=kmagent" unit_is User=kmagent
lab_ok "... Group=kmagent" unit_is Group=kmagent
lab_ok "ambient capabilities: BPF, NET_ADMIN, PERFMON, NET_RAW only" unit_is \
	"AmbientCapabilities=CAP_BPF CAP_NET_ADMIN CAP_PERFMON CAP_NET_RAW"
lab_ok "... and nothing more in the bounding set" unit_is \
	"CapabilityBoundingSet=CAP_BPF CAP_NET_ADMIN CAP_PERFMON CAP_NET_RAW"
lab_ok "NoNewPrivileges" unit_is NoNewPrivileges=yes
lab_ok "the socket directory /run/kmagent" unit_is RuntimeDirectory=kmagent
lab_ok "restarts on failure" unit_is Restart=on-failure
"$KMD" -c "$TMP/nonexistent.conf" >/dev/null 2>&1
cfg_rc=$?
lab_eq "a config error exits 2" 2 $cfg_rc
lab_ok "... which stops the restarts" unit_is "RestartPreventExitStatus=$cfg_rc"
lab_not "no bare SIGHUP reload" grep -q 'kill -HUP' "$U"
lab_done
