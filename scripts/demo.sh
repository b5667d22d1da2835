#!/usr/bin/env bash
# epgate demo: a Secrets Manager interface endpoint whose security group
# admits HTTPS from the app tier only, enforced by XDP on a router.
#
#   app-1 (cl1, 198.18.1.2) --\
#                              gw (epgate, native XDP) -- endpoint (ep, 198.18.3.2, fd00:3::2)
#   batch-1 (cl2, 198.18.2.2) /
#
# Everything lives in network namespaces made for this run and a private
# bpffs; all of it is removed on exit, however the script ends.
# Run as root from the repo root (`make demo` does): BUILD=build scripts/demo.sh
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
EPGATE=$BUILD/epgate
CONFIG=$ROOT/scripts/demo-config

# shellcheck source-path=SCRIPTDIR source=netns-lib.sh
. "$ROOT/scripts/netns-lib.sh"

cleanup() {
	local rc=$?
	trap - EXIT INT TERM HUP
	epg_topo_down
	echo
	echo "== cleaned up: namespaces, XDP programs, bpffs and listeners are gone"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT; trap 'exit 143' TERM; trap 'exit 129' HUP

die() { echo "demo: $*" >&2; exit 1; }
say() { printf '\n== %s\n' "$*"; }
run() { printf '   $ %s\n' "$*"; }

[ "$(id -u)" -eq 0 ] || die "run as root (namespaces, XDP, bpffs)"
for tool in ip socat ping ss timeout; do
	command -v "$tool" >/dev/null || die "'$tool' not found (scripts/install-deps.sh installs it)"
done
[ -x "$EPGATE" ] || die "$EPGATE not built (make)"
# A build with connection tracking has `epgate conntrack`.
STATEFUL=0
"$EPGATE" conntrack --help >/dev/null 2>&1 && STATEFUL=1

say "Building the topology: app-1, batch-1, a router (gw) and the endpoint host, as namespaces"
epg_topo_up || die "cannot build the topology"
echo "   namespaces: ${EPG_ALL_NS[*]}"

say "Attaching epgate to the router's interfaces (native XDP) and applying the EC2 documents"
for ifc in "${GW_IFACES[@]}"; do
	epgate attach --mode native "$ifc" | sed 's/^/   /' || die "attach $ifc failed"
done
run "epgate apply $(cd "$ROOT" && echo scripts/demo-config/*.json)"
epgate apply "$CONFIG"/*.json | sed 's/^/   /' || die "apply failed"
echo "   sg secretsmanager-endpoint: tcp 443 from members of app-servers (app-1),"
echo "   echo requests from 198.18.1.0/24 and fd00:1::/64; nothing for batch-workers (batch-1)"

# A pretend Secrets Manager on the endpoint: answers one line per connection.
ANSWER="SYSTEM:echo secret db-password is hunter2"
epg_bg "$NS_EP" socat "TCP4-LISTEN:443,bind=$EP_V4,reuseaddr,fork" "$ANSWER"
epg_bg "$NS_EP" socat "TCP6-LISTEN:443,bind=[$EP_V6],reuseaddr,fork" "$ANSWER"
epg_wait_listen "$NS_EP" tcp 443 || die "the endpoint's listener did not start"

# https CLIENT_NS ADDR: one request; prints the answer or why there was none.
https() {
	local ns=$1 addr=$2 out
	if out=$(EPG_CMD_TIMEOUT=5 epg_in "$ns" socat -T 2 - "TCP:$addr:443,connect-timeout=2" </dev/null 2>&1); then
		echo "   answer: $out"
	else
		echo "   no answer: ${out##*E }"
	fi
}

say "app-1 asks the endpoint for a secret over IPv4, then IPv6: allowed by the group rule"
https "$NS_CL1" "$EP_V4"
https "$NS_CL1" "[$EP_V6]"

say "batch-1 tries the same: its SYNs are dropped in XDP on the router (no rule), so it times out"
https "$NS_CL2" "$EP_V4"

say "ping from app-1 is allowed (icmp echo from its subnet); from batch-1 it is dropped"
epg_in "$NS_CL1" ping -n -q -c 2 -W 1 "$EP_V4" | sed -n 's/^/   app-1:   /; /transmitted/p'
epg_in "$NS_CL2" ping -n -q -c 2 -W 1 "$EP_V4" | sed -n 's/^/   batch-1: /; /transmitted/p'

if [ "$STATEFUL" = 1 ]; then
	echo "   (the endpoint's replies leave as part of tracked flows, whatever its outbound rules say)"
else
	echo "   (the endpoint's replies leave unhindered: egress is counted, not yet judged, in this version)"
fi

say "Traffic that has nothing to do with the endpoint passes untouched: app-1 pings batch-1"
epg_in "$NS_CL1" ping -n -q -c 1 -W 1 "$CL2_V4" | sed -n 's/^/   app-1:   /; /transmitted/p'

say "epgate status"
epgate status | sed 's/^/   /'

say "epgate stats --rules: what was accepted, by which rule, and what was dropped"
epgate stats --rules | sed 's/^/   /'
if [ "$STATEFUL" = 1 ]; then
	say "epgate conntrack: the flows the allowed traffic created"
	epgate conntrack | sed 's/^/   /'
fi
exit 0
