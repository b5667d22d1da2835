#!/usr/bin/env bash
# Install every build, test and demo dependency of epgate from Debian 12
# packages. Idempotent: packages already present are not reinstalled, and
# bpffs is mounted on /sys/fs/bpf only if nothing is mounted there.
set -euo pipefail

PKGS=(
	build-essential pkg-config clang llvm
	libbpf-dev libxdp-dev libelf-dev zlib1g-dev libjansson-dev libmicrohttpd-dev
	bpftool xdp-tools linux-libc-dev
	libclang-rt-14-dev  # libFuzzer and sanitizer runtimes for clang
	iproute2 iputils-ping socat procps jq curl  # curl: tests/integ/test_serve.sh scrapes /metrics
	prometheus  # promtool and a server the tests start on loopback themselves
	nftables iptables gnuplot-nox ethtool  # tests/bench/live.sh: rulesets compared, plot, veth GRO and XDP counters
	debhelper dpkg-dev man-db groff-base logrotate systemd  # make deb, tests/integ/test_package.sh (systemd: systemd-analyze verify)
	python3-yaml  # tests/integ/test_manifests.sh: the DaemonSet and Prometheus files
)

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps.sh: run as root (it installs Debian packages and mounts bpffs)" >&2
	exit 1
fi

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "install-deps.sh: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	# Debian starts the packaged Prometheus server where systemd runs; the
	# tests start their own on loopback and need no system-wide one.
	if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null &&
		systemctl is-system-running >/dev/null 2>&1; then
		systemctl disable --now prometheus >/dev/null 2>&1 || true
	fi
fi

if ! mountpoint -q /sys/fs/bpf; then
	mount -t bpf bpf /sys/fs/bpf
fi
