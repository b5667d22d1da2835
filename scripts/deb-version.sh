#!/usr/bin/env bash
# The Debian version of this tree, from git describe, printed on stdout:
#   at a tag v1.2.0                     1.2.0
#   5 commits after v1.2.0              1.2.0+git5.abc1234
#   no tag                              <debian/changelog>+git<commits>.<hash>, e.g. 0.1.0+git20.45cc37b
#   uncommitted changes                 the above + .dirty
# The commit count keeps versions of one branch increasing (apt upgrades
# them); the hash says which commit it is. Outside git: debian/changelog's.
set -euo pipefail
cd "$(dirname "$0")/.."

base=$(dpkg-parsechangelog -l debian/changelog -S Version 2>/dev/null || echo 0.1.0)
if ! git rev-parse --git-dir >/dev/null 2>&1; then
	echo "$base"
	exit 0
fi
dirty=
git diff --quiet HEAD -- 2>/dev/null || dirty=.dirty
hash=$(git rev-parse --short=7 HEAD)
if desc=$(git describe --tags --match 'v[0-9]*' --long 2>/dev/null); then
	# v1.2.0-5-gabc1234
	tag=${desc%-*-g*}
	n=${desc%-g*}
	n=${n##*-}
	v=${tag#v}
	[ "$n" -gt 0 ] && v="$v+git$n.$hash"
else
	v="$base+git$(git rev-list --count HEAD).$hash"
fi
v="$v$dirty"
# Only what a Debian upstream version may hold: digits first, then
# alphanumerics and . + ~ (no hyphen: this is a native package).
v=$(printf '%s' "$v" | sed -e 's/-/./g' -e 's/[^A-Za-z0-9.+~]//g')
case $v in [0-9]*) ;; *) v="0~$v" ;; esac
echo "$v"
