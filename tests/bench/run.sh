#!/usr/bin/env bash
# make bench: per-packet cost (BPF_PROG_TEST_RUN, ratios to a trivial
# XDP_PASS measured in the same run), control-plane cost, and live traffic
# against nftables and iptables when tests/bench/live.sh is present. Root;
# about 10 minutes, BENCH_QUICK=1 for about 1. Results in $BUILD/bench/.
set -u
BUILD=${BUILD:-build}
cd "$(dirname "$0")/../.." || exit 1
out=$BUILD/bench
mkdir -p "$out"
rc=0

echo "== per-packet cost and control plane"
"$BUILD/bench/bench_micro" "$out" "$BUILD/epgate" || rc=1

# a plot of the IPv4 ratios: one row per policy size, one column per scenario
awk -F'\t' 'NR > 1 && $3 == "IPv4" && $4 == "-" {
	if (!($1 in row)) { order[++n] = $1; row[$1] = 1 }
	v[$1, $2] = $7; if (!($2 in col)) { cols[++m] = $2; col[$2] = 1 }
} END {
	printf "size"; for (j = 1; j <= m; j++) printf "\t%s", cols[j]; printf "\n"
	for (i = 1; i <= n; i++) { printf "%s", order[i]; for (j = 1; j <= m; j++) printf "\t%s", v[order[i], cols[j]]; printf "\n" }
}' "$out/micro.tsv" >"$out/micro-ipv4.tsv"
if command -v gnuplot >/dev/null; then
	gnuplot <<GP || rc=1
set terminal pngcairo size 1100,600 noenhanced
set output "$out/micro.png"
set title "epgate per-packet cost, IPv4, as a multiple of a trivial XDP_PASS (same run)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set ylabel "x floor"
set datafile separator "\t"
set key outside right autotitle columnheader
set xtics rotate by -15
plot for [c=2:8] "$out/micro-ipv4.tsv" using c:xtic(1)
GP
else
	echo "gnuplot missing: scripts/install-deps.sh installs gnuplot-nox" >&2
	rc=1
fi

if [ -x tests/bench/live.sh ] || [ -f tests/bench/live.sh ]; then
	echo "== live traffic"
	BUILD=$BUILD bash tests/bench/live.sh || rc=1
fi

{
	echo "# epgate benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(uname -r), $(nproc) CPUs"
	echo
	echo "## Per packet (BPF_PROG_TEST_RUN, median of batches; x floor = ratio to a trivial XDP_PASS in the same run)"
	echo
	cat "$out/micro.md"
	echo
	echo "## What the targets leave room for: the kernel primitives alone (same run)"
	echo
	cat "$out/prims.md"
	echo
	echo "## Control plane"
	echo
	cat "$out/control.md"
	if [ -f "$out/live.md" ]; then
		echo
		echo "## Live traffic"
		echo
		cat "$out/live.md"
	fi
} >"$out/results.md"
echo "results: $out/results.md, plots: $out/*.png"
exit $rc
