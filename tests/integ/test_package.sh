#!/usr/bin/env bash
# The Debian package: `make deb` builds it, dpkg installs it on this machine
# (a throwaway CI machine: it really installs /usr/sbin/epgate), the
# installed files work (version, apply --check on the shipped examples, the
# man page, bash completion, systemd unit and logrotate), the unit is neither
# enabled nor started, and dpkg -r / --purge remove every file again.
# The package is purged on exit whatever happens. Root; about 15 s.
set -u
BUILD=${BUILD:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
T0=$SECONDS
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
ko() {
	fail=$((fail + 1))
	echo "FAIL $1"
	shift
	local l
	for l in "$@"; do printf '       %s\n' "$l"; done
}
check() { local name=$1; shift; if "$@"; then ok "$name"; else ko "$name"; fi; }
TMP=$(mktemp -d /tmp/epg-pkg.XXXXXX)
INSTALLED=0
finish() {
	local rc=$?
	trap - EXIT
	if [ "$INSTALLED" = 1 ]; then
		dpkg --purge epgate >"$TMP/purge-on-exit.log" 2>&1 ||
			ko "cleanup: dpkg --purge epgate" "$(tail -n 5 "$TMP/purge-on-exit.log")"
	fi
	rm -rf "$TMP"
	[ "$fail" -eq 0 ] && [ "$rc" -ne 0 ] && ko "the test script itself exited with status $rc"
	echo "# $((SECONDS - T0)) s"
	echo "$pass passed, $fail failed"
	[ "$fail" -eq 0 ]
	exit $?
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
abort() { ko "$@"; exit 1; }

# ---- prerequisites: a check that cannot run is a failure
[ "$(id -u)" -eq 0 ] || abort "prerequisites: root is needed to install a package"
for c in dpkg dpkg-deb dh dpkg-checkbuilddeps man groff logrotate systemd-analyze setpriv git; do
	command -v "$c" >/dev/null || abort "prerequisites: $c is missing (scripts/install-deps.sh installs it)"
done
pkg_state() { dpkg-query -W -f='${db:Status-Status}' epgate 2>/dev/null; }
if ! case $(pkg_state) in "" | not-installed) true ;; *) false ;; esac; then
	abort "prerequisites: an epgate package is already installed; this test would replace and remove it" \
		"(dpkg --purge epgate first)"
fi
[ -e /usr/sbin/epgate ] && abort "prerequisites: /usr/sbin/epgate exists and belongs to no package"
ok "prerequisites: root, dpkg, debhelper, man, groff, logrotate, systemd-analyze; no epgate installed"

# ---- build
t=$SECONDS
if make --no-print-directory BUILD="$BUILD" deb >"$TMP/make.log" 2>&1; then
	ok "make deb ($((SECONDS - t)) s)"
else
	abort "make deb" "$(tail -n 20 "$TMP/make.log")"
fi
ARCH=$(dpkg --print-architecture)
VERSION=$(scripts/deb-version.sh)
mapfile -t debs < <(ls "$BUILD"/deb/epgate_*.deb 2>/dev/null)
[ "${#debs[@]}" -eq 1 ] || abort "make deb: expected one $BUILD/deb/epgate_*.deb, found ${#debs[@]}: ${debs[*]}"
DEB=${debs[0]}
check "package file is $BUILD/deb/epgate_${VERSION}_$ARCH.deb" [ "$DEB" = "$BUILD/deb/epgate_${VERSION}_$ARCH.deb" ]
HASH=$(git rev-parse --short=7 HEAD)
if [[ $VERSION =~ ^[0-9][A-Za-z0-9.+~]*$ ]] && [[ $VERSION == *"$HASH"* ]]; then
	ok "version $VERSION: a Debian version naming commit $HASH"
else
	ko "version '$VERSION' is not a Debian version naming commit $HASH"
fi
check "control: Package epgate, Version $VERSION, Architecture $ARCH" \
	[ "$(dpkg-deb -f "$DEB" Package Version Architecture | tr '\n' ' ')" = \
	  "Package: epgate Version: $VERSION Architecture: $ARCH " ]
desc=$(dpkg-deb -f "$DEB" Description)
if grep -q 'BPF objects' <<<"$desc" && grep -q 'embedded' <<<"$desc"; then
	ok "description says the BPF objects are embedded in the binary"
else
	ko "description does not say the BPF objects are embedded" "$desc"
fi
deps=$(dpkg-deb -f "$DEB" Depends)
if grep -q 'libbpf1' <<<"$deps" && grep -q 'libxdp1' <<<"$deps"; then
	ok "depends on the shared libraries: $deps"
else
	ko "Depends lacks libbpf1 or libxdp1: $deps"
fi
dpkg-deb -c "$DEB" | awk '{ print $6 }' | sed 's|^\./|/|' >"$TMP/contents"
missing=()
for f in /usr/sbin/epgate /lib/systemd/system/epgate.service /etc/logrotate.d/epgate \
	/etc/default/epgate /usr/share/man/man8/epgate.8.gz \
	/usr/share/bash-completion/completions/epgate /usr/share/doc/epgate/copyright; do
	grep -qx -- "$f" "$TMP/contents" || missing+=("$f")
done
for f in examples/*.json; do
	grep -qx -- "/usr/share/doc/epgate/$f" "$TMP/contents" || missing+=("/usr/share/doc/epgate/$f")
done
check "package holds binary, unit, logrotate, defaults, man page, completion, examples" \
	[ "${#missing[@]}" -eq 0 ]
[ "${#missing[@]}" -eq 0 ] || printf '       missing: %s\n' "${missing[@]}"
check "self-contained: no BPF object files beside the binary" \
	bash -c "! grep -E '\\.(o|bpf)\$' '$TMP/contents'"

# ---- install
if dpkg -i "$DEB" >"$TMP/install.log" 2>&1; then
	INSTALLED=1
	ok "dpkg -i $(basename "$DEB")"
else
	INSTALLED=1
	abort "dpkg -i" "$(tail -n 20 "$TMP/install.log")"
fi
check "dpkg: install ok installed" \
	[ "$(dpkg-query -W -f='${Status} ${Version}' epgate 2>/dev/null)" = "install ok installed $VERSION" ]
if grep -qi 'warning\|error' "$TMP/install.log"; then
	ko "dpkg -i printed warnings or errors" "$(grep -i 'warning\|error' "$TMP/install.log")"
else
	ok "dpkg -i printed no warning or error"
fi
check "/usr/sbin/epgate is installed and executable" [ -x /usr/sbin/epgate ]

out=$(/usr/sbin/epgate --version 2>&1)
rc=$?
if [ "$rc" -eq 0 ] && [[ $out =~ ^epgate\ [^\ ]+\ \(ABI\ [0-9]+\)$ ]] && [[ $out == *"$HASH"* ]]; then
	ok "/usr/sbin/epgate --version: $out"
else
	ko "/usr/sbin/epgate --version: exit $rc, '$out' (expected 'epgate <version with $HASH> (ABI N)')"
fi

# apply --check validates and compiles only: as nobody, with a pin directory
# that does not exist, and touching nothing.
out=$(EPGATE_PIN_DIR="$TMP/no-such-bpffs" setpriv --reuid=65534 --regid=65534 --clear-groups \
	/usr/sbin/epgate apply --check /usr/share/doc/epgate/examples/*.json 2>&1)
rc=$?
if [ "$rc" -eq 0 ] && [ ! -e "$TMP/no-such-bpffs" ]; then
	ok "epgate apply --check /usr/share/doc/epgate/examples/*.json (as nobody, touches nothing)"
else
	ko "epgate apply --check on the shipped examples: exit $rc" "$out"
fi
identical=1
for f in examples/*.json; do
	cmp -s "$f" "/usr/share/doc/epgate/$f" || identical=0
done
check "the shipped examples are the repository's examples/*.json" [ "$identical" = 1 ]

# ---- systemd unit: installed with the package's path, not enabled, not started
UNIT=/lib/systemd/system/epgate.service
if grep -q '^ExecStart=.*exec /usr/sbin/epgate serve ' "$UNIT" && ! grep -q /usr/local "$UNIT"; then
	ok "unit: ExecStart runs /usr/sbin/epgate serve"
else
	ko "unit: ExecStart is not /usr/sbin/epgate serve" "$(grep '^ExecStart' "$UNIT")"
fi
check "unit: ExecStartPre mounts bpffs outside the unit's mount namespace (+)" \
	grep -q '^ExecStartPre=+.*mount -t bpf bpf /sys/fs/bpf' "$UNIT"
check "unit: reload sends SIGHUP" grep -q '^ExecReload=/bin/kill -HUP \$MAINPID' "$UNIT"
if out=$(systemd-analyze verify "$UNIT" 2>&1); then
	ok "unit: systemd-analyze verify"
else
	# verify also loads the units this one names; only complaints about
	# epgate.service itself count
	bad=$(grep 'epgate\.service' <<<"$out")
	if [ -z "$bad" ]; then ok "unit: systemd-analyze verify (nothing about epgate.service)"; else ko "unit: systemd-analyze verify" "$bad"; fi
fi
enabled=$(find /etc/systemd/system -name epgate.service 2>/dev/null)
check "unit: not enabled (no symlink under /etc/systemd/system)" [ -z "$enabled" ]
[ -z "$enabled" ] || echo "       $enabled"
running=()
for p in /proc/[0-9]*; do
	[ "$(readlink "$p/exe" 2>/dev/null)" = /usr/sbin/epgate ] && running+=("${p#/proc/}")
done
check "unit: not started (no process runs /usr/sbin/epgate)" [ "${#running[@]}" -eq 0 ]
if [ -d /run/systemd/system ]; then
	check "systemctl: epgate.service is disabled" [ "$(systemctl is-enabled epgate.service 2>&1)" = disabled ]
	check "systemctl: epgate.service is inactive" bash -c '! systemctl --quiet is-active epgate.service'
fi

# ---- logrotate and defaults: conffiles that parse
conff=$(dpkg-query -W -f='${Conffiles}' epgate | awk '{ print $1 }' | sort | tr '\n' ' ')
check "conffiles: /etc/default/epgate /etc/logrotate.d/epgate" \
	[ "$conff" = "/etc/default/epgate /etc/logrotate.d/epgate " ]
if out=$(logrotate -d -s "$TMP/logrotate.state" /etc/logrotate.d/epgate 2>&1) &&
	grep -q 'considering log /var/log/epgate/flows.log' <<<"$out" && ! grep -qi 'error' <<<"$out"; then
	ok "logrotate -d /etc/logrotate.d/epgate: rotates /var/log/epgate/flows.log"
else
	ko "logrotate -d /etc/logrotate.d/epgate" "$out"
fi
check "/etc/default/epgate is a shell fragment setting EPGATE_OPTS" \
	bash -c 'set -e; . /etc/default/epgate; [ "${EPGATE_OPTS+set}" = set ]'

# ---- man page: found by man, renders cleanly, has the sections operators need
check "man -w epgate finds /usr/share/man/man8/epgate.8.gz" \
	[ "$(man -w epgate 2>/dev/null)" = /usr/share/man/man8/epgate.8.gz ]
warn=$(zcat /usr/share/man/man8/epgate.8.gz | groff -man -Tutf8 -ww -z 2>&1)
check "groff -man -ww renders epgate.8 without a warning" [ -z "$warn" ]
[ -z "$warn" ] || echo "       $warn" | head -n 5
MAN=$(MANWIDTH=250 LC_ALL=C.UTF-8 man -l /usr/share/man/man8/epgate.8.gz 2>"$TMP/man.err")
if [ -n "$MAN" ] && [ ! -s "$TMP/man.err" ]; then
	ok "man -l renders it"
else
	ko "man -l /usr/share/man/man8/epgate.8.gz" "$(head -n 5 "$TMP/man.err")"
fi
missing=()
for s in NAME SYNOPSIS DESCRIPTION COMMANDS OPTIONS 'EXIT STATUS' FILES ENVIRONMENT SIGNALS; do
	grep -qx "$s" <<<"$MAN" || missing+=("section $s")
done
for w in EPGATE_PIN_DIR LIBXDP_BPFFS /sys/fs/bpf/epgate /run/lock/epgate-serve- /etc/epgate/ \
	SIGHUP SIGUSR1 SIGTERM '0 success, 1 failure, 2 usage or invalid input'; do
	grep -qF -- "$w" <<<"$MAN" || missing+=("$w")
done
check "man page: exit status, files, environment, signals (${missing[*]:-all there})" [ "${#missing[@]}" -eq 0 ]

# The man page says what --help says: every line of 'epgate --help' and of
# every 'epgate COMMAND --help' is in the rendered page (whitespace aside).
norm() { tr -s ' \n\t' '   ' | sed 's/^ //; s/ $//'; }
MANN=$(norm <<<"$MAN")
COMMANDS=$(/usr/sbin/epgate --help | awk '/^Commands:/ { on = 1; next } on && /^$/ { exit } on && /^  [a-z]/ { print $1 }')
check "--help lists the commands: $(tr '\n' ' ' <<<"$COMMANDS")" [ "$(wc -w <<<"$COMMANDS")" -ge 8 ]
absent=()
for c in "" $COMMANDS; do
	# shellcheck disable=SC2086
	while IFS= read -r line; do
		line=$(sed -e 's/^Usage: //' -e 's/^Exit status: //' <<<"$line" | norm)
		case $line in "" | *:) continue ;; esac
		grep -qF -- "$line" <<<"$MANN" || absent+=("${c:-epgate}: $line")
	done < <(/usr/sbin/epgate $c --help)
done
if [ "${#absent[@]}" -eq 0 ]; then
	ok "man page holds every line of every --help"
else
	ko "man page lacks ${#absent[@]} line(s) of --help" "${absent[@]:0:10}"
fi

# ---- bash completion: commands, and every option each command's --help names
COMP=/usr/share/bash-completion/completions/epgate
complete_words() { # words... -> what completing the last one offers
	bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _epgate; printf "%s\n" "${COMPREPLY[@]}"' \
		_ "$COMP" "$@" 2>/dev/null | sort -u
}
if bash -c ". '$COMP' && complete -p epgate" 2>/dev/null | grep -q -- '-F _epgate epgate'; then
	ok "completion: $COMP registers _epgate for epgate"
else
	ko "completion: $COMP does not register a completion for epgate"
fi
got=$(complete_words epgate '' | tr '\n' ' ')
want=$(sort -u <<<"$COMMANDS" | tr '\n' ' ')
check "completion: 'epgate <TAB>' offers exactly the commands of --help ($got)" [ "$got" = "$want" ]
check "completion: 'epgate st<TAB>' offers status stats" [ "$(complete_words epgate st | tr '\n' ' ')" = "stats status " ]
absent=()
for c in $COMMANDS; do
	offered=$(complete_words epgate "$c" --)
	for o in $(/usr/sbin/epgate "$c" --help | grep -oE -- '--[a-z][a-z-]*' | sort -u); do
		grep -qx -- "$o" <<<"$offered" || absent+=("$c $o")
	done
done
check "completion: every option of every 'epgate COMMAND --help' (${absent[*]:-all offered})" [ "${#absent[@]}" -eq 0 ]
check "completion: 'epgate attach x --mode <TAB>' offers native skb" \
	[ "$(complete_words epgate attach x --mode '' | tr '\n' ' ')" = "native skb " ]

# ---- installing the same version again (postinst's upgrade path) works
if dpkg -i "$DEB" >"$TMP/reinstall.log" 2>&1; then
	ok "dpkg -i again (the upgrade path of the maintainer scripts)"
else
	ko "dpkg -i again" "$(tail -n 10 "$TMP/reinstall.log")"
fi
check "unit: still not enabled after the upgrade" [ -z "$(find /etc/systemd/system -name epgate.service 2>/dev/null)" ]

# ---- remove, then purge
if dpkg -r epgate >"$TMP/remove.log" 2>&1; then
	ok "dpkg -r epgate"
else
	ko "dpkg -r epgate" "$(tail -n 10 "$TMP/remove.log")"
fi
check "/usr/sbin/epgate is gone" [ ! -e /usr/sbin/epgate ]
left=()
for f in /lib/systemd/system/epgate.service /usr/share/man/man8/epgate.8.gz "$COMP" /usr/share/doc/epgate; do
	[ -e "$f" ] && left+=("$f")
done
check "dpkg -r removed the unit, man page, completion and docs (${left[*]:-none left})" [ "${#left[@]}" -eq 0 ]
check "dpkg -r kept the conffiles (config-files)" \
	[ "$(dpkg-query -W -f='${Status}' epgate 2>/dev/null)" = "deinstall ok config-files" ]
if dpkg --purge epgate >"$TMP/purge.log" 2>&1; then
	INSTALLED=0
	ok "dpkg --purge epgate"
else
	ko "dpkg --purge epgate" "$(tail -n 10 "$TMP/purge.log")"
fi
left=()
for f in /etc/default/epgate /etc/logrotate.d/epgate /etc/epgate /usr/sbin/epgate; do
	[ -e "$f" ] && left+=("$f")
done
check "purge removed the conffiles and /etc/epgate (${left[*]:-none left})" [ "${#left[@]}" -eq 0 ]
state=$(pkg_state)
check "dpkg: epgate is not installed any more (${state:-unknown})" [ "${state:-not-installed}" = not-installed ]
check "the whole test took under 60 s ($((SECONDS - T0)) s)" [ $((SECONDS - T0)) -lt 60 ]
