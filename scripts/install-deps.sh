#!/bin/bash
# Install what kmagent needs to build, test, demo and benchmark, from
# Debian's packages.  Idempotent: installs only what is missing.
set -euo pipefail

pkgs=(
	build-essential clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev
	pkg-config libcmocka-dev valgrind clang-format
	memcached nutcracker libmemcached-tools python3-pymemcache python3-pylibmc
	iproute2 ethtool procps psmisc python3 gnuplot-nox groff-base
	# the Debian package (dpkg-buildpackage, lintian), the unit check
	# (systemd-analyze), promtool for the alert rules (only in prometheus)
	debhelper dpkg-dev lintian systemd util-linux prometheus
	# the bench: perf (where the proxy host's CPU goes)
	linux-perf
)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
		grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages: ${missing[*]}; run as root" >&2
	exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# memcached's Debian package starts a system instance on 11211; the lab
# runs its own, so keep the system one out of the way.
# prometheus is installed for promtool only: no server either.
for svc in memcached prometheus; do
	if command -v systemctl >/dev/null && systemctl is-active -q "$svc" 2>/dev/null; then
		systemctl stop "$svc" || true
	fi
done
