#!/usr/bin/env bash
# Render the manual page epgate(8) from the CLI's own --help output and the
# hand-written sections in man/epgate.8.in, so that the two never disagree:
#
#   scripts/mkman.sh build/epgate man/epgate.8.in > build/man/epgate.8
#
# The template's lines are copied as they are, except these, which are
# replaced by what the binary prints:
#   @VERSION@       epgate --version (the version only)
#   @DATE@          date of the last commit (SOURCE_DATE_EPOCH if set)
#   @SYNOPSIS@      the usage line of 'epgate --help' and every command's
#   @SUMMARY@       the one-line description of 'epgate --help'
#   @COMMANDS@      one subsection per command: 'epgate COMMAND --help'
#   @OPTIONS@       the global options of 'epgate --help'
#   @EXIT_STATUS@   the 'Exit status:' line of 'epgate --help'
set -euo pipefail

bin=${1:?usage: mkman.sh EPGATE_BINARY TEMPLATE}
tmpl=${2:?usage: mkman.sh EPGATE_BINARY TEMPLATE}

help=$("$bin" --help)
version=$("$bin" --version | awk '{ print $2 }')
if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
	date=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)
else
	date=$(git -C "$(dirname "$tmpl")" log -1 --format=%cs 2>/dev/null || date -u +%Y-%m-%d)
fi

# The commands, in the order 'epgate --help' lists them.
commands=$(awk '/^Commands:/ { on = 1; next } on && /^$/ { exit }
	on && /^  [a-z]/ { print $1 }' <<<"$help")
[ -n "$commands" ] || { echo "mkman.sh: no commands in '$bin --help'" >&2; exit 1; }

# roff-escape one line of text: backslashes, hyphens (so options render as
# ASCII dashes), and a leading dot or quote.
esc() {
	sed -e 's/\\/\\e/g' -e 's/-/\\-/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"
}

# Usage text (after "Usage: ") with its continuation lines joined.
usage_of() {
	awk 'NR == 1 { sub(/^Usage: /, ""); u = $0; next }
	     /^ +\[/ { sub(/^ +/, " "); u = u $0; next }
	     { exit } END { print u }'
}

# The body of a help text as roff: paragraphs are refilled, "  --option ARG
# description" lines become tagged paragraphs (.TP), deeper-indented lines
# continue the description above them.
body_of() {
	awk '
	function esc(s) {
		gsub(/\\/, "\\e", s); gsub(/-/, "\\-", s)
		if (s ~ /^[.\047]/) s = "\\&" s
		return s
	}
	function flush_opt() {
		if (opt != "") { print ".TP"; print ".B " esc(opt); print esc(desc); opt = "" }
	}
	/^$/ { flush_opt(); if (started) para = 1; next }
	/^  -/ {
		line = $0; sub(/^  /, "", line)
		if (match(line, /  +/)) {
			o = substr(line, 1, RSTART - 1); d = substr(line, RSTART + RLENGTH)
		} else { o = line; d = "" }
		flush_opt(); opt = o; desc = d; started = 1; inopts = 1; next
	}
	/^   +[^ ]/ && opt != "" { l = $0; sub(/^ +/, "", l); desc = desc "\n" l; next }
	{
		flush_opt()
		if (para || inopts) { print ".PP"; para = 0; inopts = 0 }
		print esc($0); started = 1
	}
	END { flush_opt() }'
}

synopsis() {
	local c u
	for c in "" $commands; do
		if [ -z "$c" ]; then
			u=$(usage_of <<<"$help")
		else
			u=$("$bin" "$c" --help | usage_of)
		fi
		# "epgate attach IFACE ..." -> .SY "epgate attach" / IFACE ... / .YS
		printf '.SY "epgate%s"\n%s\n.YS\n' "${c:+ $c}" "$(sed "s/^epgate${c:+ $c} *//" <<<"$u" | esc)"
	done
}

summary() {
	awk 'NR > 1 && /^[^ ]/ && !/^Usage:/ { print; exit }' <<<"$help" | esc
}

commands_section() {
	local c h
	for c in $commands; do
		h=$("$bin" "$c" --help)
		printf '.SS "%s"\n' "$(usage_of <<<"$h" | esc | sed 's/"/""/g')"
		# everything after the usage line(s) and the blank line that ends them
		awk 'started { print; next } /^$/ { started = 1 }' <<<"$h" | body_of
	done
}

options_section() {
	awk '/^Options/ { on = 1; next } on && /^$/ { exit } on { print }' <<<"$help" | body_of
}

exit_status() {
	grep '^Exit status:' <<<"$help" | sed 's/^Exit status: *//' | esc
}

# Replace each placeholder line of the template by its section.
while IFS= read -r line || [ -n "$line" ]; do
	case $line in
	@SYNOPSIS@) synopsis ;;
	@SUMMARY@) summary ;;
	@COMMANDS@) commands_section ;;
	@OPTIONS@) options_section ;;
	@EXIT_STATUS@) exit_status ;;
	*)
		line=${line//@VERSION@/$version}
		printf '%s\n' "${line//@DATE@/$date}"
		;;
	esac
done <"$tmpl"
