#!/usr/bin/env bash
# Runs the config fuzzer for a bounded time from the seed corpus and prints
# "1 passed, 0 failed" when it found nothing, "0 passed, 1 failed" (with the
# crashing input's path) when it did.
set -u
bin=$1 seconds=${2:-30}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/epg-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus"
if "$bin" -max_total_time="$seconds" -max_len=65536 -dict="$here/corpus/config.dict" \
	-artifact_prefix="$work/" "$work/corpus" "$here/corpus/config" >"$work/log" 2>&1; then
	grep -E 'Done [0-9]+ runs' "$work/log" | tail -n 1
	echo "1 passed, 0 failed"
else
	tail -n 30 "$work/log"
	mkdir -p /tmp/epg-fuzz-crashes && cp "$work"/crash-* "$work"/leak-* "$work"/timeout-* /tmp/epg-fuzz-crashes/ 2>/dev/null
	echo "fuzzer found a failing input (copied to /tmp/epg-fuzz-crashes)"
	echo "0 passed, 1 failed"
	exit 1
fi
