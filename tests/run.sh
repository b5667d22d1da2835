#!/usr/bin/env bash
# Runs every test: unit test programs under $BUILD/tests, then the
# integration scripts under tests/integ. Each prints "N passed, N failed"
# last; this script adds them up, prints the total the same way and exits
# non-zero when anything failed or a test program died.
set -u
BUILD=${BUILD:-build}
export BUILD
cd "$(dirname "$0")/.." || exit 1

total_pass=0 total_fail=0 total_skip=0 broken=()

run_one() {
	local name=$1; shift
	local log rc last p f s
	log=$(mktemp)
	echo "== $name"
	"$@" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	last=$(grep -E '^([A-Za-z]+: )?[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
	rm -f "$log"
	if [ -z "$last" ]; then
		echo "!! $name printed no summary line (exit $rc)"
		broken+=("$name")
		return
	fi
	p=$(grep -oE '[0-9]+ passed' <<<"$last" | cut -d' ' -f1)
	f=$(grep -oE '[0-9]+ failed' <<<"$last" | cut -d' ' -f1)
	s=$(grep -oE '[0-9]+ skipped' <<<"$last" | cut -d' ' -f1)
	total_pass=$((total_pass + p)) total_fail=$((total_fail + f)) total_skip=$((total_skip + ${s:-0}))
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "!! $name exited $rc with no failed check"
		broken+=("$name")
	fi
}

for t in "$BUILD"/tests/test_*; do
	[ -x "$t" ] || continue
	run_one "$(basename "$t")" "$t"
done
# the same unit tests built with ASan and UBSan
for t in "$BUILD"/asan/tests/test_*; do
	[ -x "$t" ] || continue
	run_one "asan/$(basename "$t")" env ASAN_OPTIONS=detect_leaks=1 "$t"
done
# the config loader and compiler under libFuzzer, for a bounded time
if [ -x "$BUILD/fuzz/fuzz_config" ]; then
	run_one "fuzz_config (${FUZZ_SECONDS:-30} s)" tests/fuzz/run.sh "$BUILD/fuzz/fuzz_config" "${FUZZ_SECONDS:-30}"
fi
for t in tests/integ/test_*.sh; do
	[ -f "$t" ] || continue
	run_one "$(basename "$t")" bash "$t"
done

echo "== total"
if [ ${#broken[@]} -gt 0 ]; then
	echo "broken test programs: ${broken[*]}"
	total_fail=$((total_fail + ${#broken[@]}))
fi
echo "$total_pass passed, $total_fail failed, $total_skip skipped"
[ "$total_fail" -eq 0 ]
