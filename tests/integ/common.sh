# shellcheck shell=bash disable=SC2034
# common.sh: what the integration tests share: counting checks, the exit trap, reading epgate's counters, and
# one-shot request/response clients. Source it with ROOT set (the repo root;
# FIX, the fixtures, may be set first): it sets BUILD (absolute), EPGATE and
# FIX, sources scripts/netns-lib.sh, and installs nothing until
# epg_test_begin. Set EP_ID before using ctr.
#
#   epg_test_begin             exit trap (teardown, summary line), WORK dir;
#                              a test may define epg_test_cleanup for its own
#   pass MSG / fail MSG [DETAIL...] / abort MSG [DETAIL...]
#   skip MSG                   a check that does not apply here (never a pass)
#   epg_require TOOL...        abort unless root, every TOOL found and $EPGATE built
#   epg_attach_gw [OPTION...]  epgate attach every GW_IFACES interface (with
#                              the attach OPTIONs), abort on the first failure
#   snap                       all counters (stats --json --rules), "" on failure
#   ctr SNAP DIR ACTION REASON [packets|bytes]   a counter of $EP_ID ("*": any reason)
#   ctr_of EP SNAP DIR ACTION REASON [packets|bytes]   the same for endpoint EP
#   hits SNAP DESCRIPTION [hits|bytes]   a rule's or ACL entry's counter
#   rejected S0 S1             what $EP_ID rejected in between, for failure messages
#   d NEW OLD                  NEW - OLD, "?" unless both are numbers
#   cmp_n VALUE OP WANT        test VALUE OP WANT, false for "?"
#   tcp_rr NS 4|6 ADDR PORT LINE    one TCP connection: send LINE, read the
#                              answer into RR_OUT, socat's status in RR_RC
#   udp_rr NS 4|6 ADDR PORT LINE    one datagram and its answer, the same way
#
# Every check is counted; a check that cannot run is a failure. The last line
# is "N passed, N failed"; the exit status is 0 only when nothing failed.

BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
EPGATE=$BUILD/epgate
FIX=${FIX:-$ROOT/tests/integ/fixtures}
# shellcheck source-path=SCRIPTDIR source=../../scripts/netns-lib.sh
. "$ROOT/scripts/netns-lib.sh"

PASSED=0
FAILED=0
SKIPPED=0
WORK=""
T0=$SECONDS

pass() { PASSED=$((PASSED + 1)); printf 'ok   %2d - %s\n' $((PASSED + FAILED)) "$1"; }
fail() {
	FAILED=$((FAILED + 1))
	printf 'FAIL %2d - %s\n' $((PASSED + FAILED)) "$1"
	shift
	local l
	for l in "$@"; do printf '          %s\n' "$l"; done
}
skip() { SKIPPED=$((SKIPPED + 1)); printf 'skip %2d - %s\n' $((PASSED + FAILED + SKIPPED)) "$1"; }
# Stop here: what follows cannot run. Counted as a failure.
abort() {
	fail "$@"
	exit 1
}

epg_test_finish() {
	local rc=$?
	trap - EXIT INT TERM HUP
	epg_topo_down
	# a test's own cleanup, if it defines one
	declare -F epg_test_cleanup >/dev/null && epg_test_cleanup
	[ -n "$WORK" ] && rm -rf "$WORK"
	[ "$FAILED" -eq 0 ] && [ "$rc" -ne 0 ] && fail "the test script itself exited with status $rc"
	echo "# $((SECONDS - T0)) s"
	if [ "$SKIPPED" -gt 0 ]; then
		echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
	else
		echo "$PASSED passed, $FAILED failed"
	fi
	[ "$FAILED" -eq 0 ] && exit 0
	exit 1
}

epg_require() {
	local tool
	[ "$(id -u)" -eq 0 ] || abort "prerequisites: must run as root (network namespaces, XDP, bpffs)"
	for tool in "$@"; do
		command -v "$tool" >/dev/null || abort "prerequisites: '$tool' not found (scripts/install-deps.sh installs it)"
	done
	[ -x "$EPGATE" ] || abort "prerequisites: $EPGATE not built (make -C $ROOT)"
}

epg_attach_gw() {
	local ifc out
	for ifc in "${GW_IFACES[@]}"; do
		out=$(epgate attach "$ifc" "$@" 2>&1) || abort "attach $ifc $*" "$out"
	done
}

epg_test_begin() {
	trap epg_test_finish EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'exit 129' HUP
	WORK=$(mktemp -d /tmp/epg-integ.XXXXXX) || abort "prerequisites: mktemp failed"
}

snap() { epgate stats --json --rules 2>>"$WORK/stats.err" || true; }

ctr_of() {
	local v
	v=$(jq -r --arg ep "$1" --arg d "$3" --arg a "$4" --arg r "$5" --arg f "${6:-packets}" \
		'[.endpoints[] | select(.endpoint_id == $ep) | .counters[]
		  | select(.direction == $d and .action == $a and ($r == "*" or .reason == $r)) | .[$f]] | add // 0' \
		<<<"$2" 2>/dev/null)
	echo "${v:-?}"
}
ctr() { ctr_of "$EP_ID" "$@"; }

hits() {
	local v
	v=$(jq -r --arg d "$2" --arg f "${3:-hits}" \
		'[.rules[] | select(.description == $d) | .[$f]] | if length == 1 then .[0] else "?" end' \
		<<<"$1" 2>/dev/null)
	echo "${v:-?}"
}

# rejected S0 S1: what was rejected between two snapshots, per direction
# and reason, for failure messages
rejected() {
	local dir r v out=""
	for dir in ingress egress; do
		for r in $(jq -r '[.endpoints[].counters[] | select(.action == "reject") | .reason] | unique | .[]' <<<"$2" 2>/dev/null); do
			v=$(d "$(ctr "$2" "$dir" reject "$r")" "$(ctr "$1" "$dir" reject "$r")")
			[ "$v" = 0 ] || out+="$dir $r +$v; "
		done
	done
	echo "rejected: ${out:-nothing}"
}

d() {
	[[ $1 =~ ^[0-9]+$ && $2 =~ ^[0-9]+$ ]] || { echo "?"; return; }
	echo $(($1 - $2))
}

cmp_n() { [[ $1 =~ ^-?[0-9]+$ ]] && test "$1" "$2" "$3"; }

tcp_rr() { # NS 4|6 ADDR PORT LINE
	local ns=$1 fam=$2 addr=$3 port=$4
	[ "$fam" = 6 ] && addr="[$addr]"
	# -t 2: after our EOF, wait up to 2 s for the answer; connect: 1.5 s
	# (the SYN and one retransmission)
	RR_OUT=$(printf '%s\n' "$5" | EPG_CMD_TIMEOUT=8 epg_in "$ns" \
		socat -t 2 -T 4 - "TCP$fam:$addr:$port,connect-timeout=1.5" 2>"$WORK/rr.err")
	RR_RC=$?
}

udp_rr() { # NS 4|6 ADDR PORT LINE
	local ns=$1 fam=$2 addr=$3 port=$4
	[ "$fam" = 6 ] && addr="[$addr]"
	# -T 1.5: the answer comes within 1.5 s or not at all
	RR_OUT=$(printf '%s\n' "$5" | EPG_CMD_TIMEOUT=8 epg_in "$ns" \
		socat -T 1.5 - "UDP$fam:$addr:$port" 2>"$WORK/rr.err")
	RR_RC=$?
}

# A line that appears once: tag-<n>-<random>, so that a file holding it proves
# that this exchange, not an earlier one, got through.
n_tag=0
tag() { n_tag=$((n_tag + 1)); TAG="$1-$n_tag-$RANDOM"; }

# logged FILE LINE: LINE is in FILE (what a server received)
logged() { grep -qxF -- "$2" "$1" 2>/dev/null; }
