#!/usr/bin/env bash
# meta-flag.sh PIN_DIR FLAG set|clear: one flag of epgate's pinned epg_meta
# set or cleared with bpftool, every other byte written back as read (jq
# would round the 64-bit fields), then read back. For diagnostics and tests;
# epgate applies keep the flags they do not own. FLAG is one of the low
# byte's (the flags word starts at byte 24 of the value, little-endian):
# 8 is EPG_META_NO_DENY_CACHE. Exit 0, or 1 saying why.
set -u
if [ $# != 3 ] || ! [[ $2 =~ ^[0-9]+$ ]] || [ "$2" -lt 1 ] || [ "$2" -gt 255 ] ||
	{ [ "$3" != set ] && [ "$3" != clear ]; }; then
	echo "usage: meta-flag.sh PIN_DIR FLAG(1-255) set|clear" >&2
	exit 2
fi
map=$1/epg_meta flag=$2
mapfile -t v < <(bpftool -j map lookup pinned "$map" key 0 0 0 0 2>/dev/null | jq -r '.value[]' 2>/dev/null)
[ "${#v[@]}" = 32 ] || { echo "meta-flag.sh: $map: read ${#v[@]} bytes, not 32" >&2; exit 1; }
if [ "$3" = set ]; then f=$((v[24] | flag)); else f=$((v[24] & ~flag & 255)); fi
v[24]=$(printf '0x%02x' "$f")
bpftool map update pinned "$map" key 0 0 0 0 value "${v[@]}" ||
	{ echo "meta-flag.sh: $map: cannot write" >&2; exit 1; }
got=$(bpftool -j map lookup pinned "$map" key 0 0 0 0 2>/dev/null | jq -r '.value[24]' 2>/dev/null)
[ "$((got))" = "$f" ] || { echo "meta-flag.sh: $map: flags byte $got after writing $f" >&2; exit 1; }
