#!/bin/bash
# Install what kmagent needs to build, test, demo and benchmark, from
# Debian's packages.  Idempotent: installs only what is missing.
set -euo pipefail

pkgs=(
	build-essential clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev
	pkg-config libcmocka-dev valgrind clang-format
	memcached nutcracker libmemcached-tools python3-pymemcache python3-pylibmc
	iproute2 ethtool procps psmisc python3 gnuplot-nox groff-base
	linux-perf util-linux
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
if command -v systemctl >/dev/null && systemctl is-active -q memcached 2>/dev/null; then
	systemctl stop memcached || true
fi
