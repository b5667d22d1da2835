#!/usr/bin/env bash
# shellcheck disable=SC2015 # A && B || fail: fail is meant to run when A or B fails
# Integration test: stateful security groups (connection tracking) with real
# traffic through network namespaces.
#
#   cl1 (client and server) --\
#                              gw (router; epgate on all 3 veths, native XDP) -- ep (the endpoint)
#   cl2 (unused) -------------/
#
# Policy (tests/integ/fixtures/{vpc-endpoints,network-interfaces}.json and
# fixtures/conntrack/security-groups.json): the endpoint's group allows
# inbound tcp 8080 and udp 5353 from cl1, outbound tcp 9090 and udp 9091 to
# cl1, and no rule in the other direction: every reply passes only because
# its flow is tracked. Variants of the group are made with jq in $WORK.
#
#  1. replies of inbound and of outbound flows (TCP and UDP, IPv4 and IPv6);
#     the same exchanges refused without the rule
#  2. open connections survive the removal of their rule (`epgate apply`),
#     new ones are refused, `epgate conntrack --json` lists them as
#     established; `epgate conntrack --flush` then cuts them (tcp_no_flow)
#  3. a flood of new flows (20,000 datagrams from as many sockets) while an
#     established connection carries data; then the flow table filled to its
#     262,144 entries with real packets (at most 300,000 datagrams, 20 s):
#     new flows dropped as conntrack_allowance_exceeded, the established
#     connection never evicted
#  4. bulk transfers: a busy flow, judged on both CPUs at once, is never
#     lost (no ACK dropped as tcp_no_flow, one rule hit per connection)
#  5. path MTU discovery through a 1300-byte link: the router's ICMP
#     fragmentation-needed / packet-too-big pass as `related`, IPv4 and IPv6
#  6. a packet faking the endpoint's source address, arriving from cl1, is
#     dropped as spoofed and opens no flow for cl1's traffic to come back in
#
# Verdicts are checked by what arrives (echo servers that log every line
# they receive) and by epgate's counters (deltas around each exchange).
# Every check is counted; a check that cannot run is a failure. Last line:
# "N passed, N failed"; the exit status is 0 only when nothing failed.
#
# Usage (root, from the repo root): BUILD=build bash tests/integ/test_conntrack.sh
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$ROOT/tests/integ/common.sh"

epg_test_begin

# ---- prerequisites --------------------------------------------------------

epg_require ip jq socat ss timeout mountpoint mkfifo cmp awk nproc
"$EPGATE" conntrack --help >/dev/null 2>&1 || abort "prerequisites: $EPGATE has no 'conntrack' command"
EP_ID=$(jq -er '.VpcEndpoints[0].VpcEndpointId' "$FIX/vpc-endpoints.json") ||
	abort "prerequisites: cannot read the endpoint id from $FIX/vpc-endpoints.json"
SG_BASE=$FIX/conntrack/security-groups.json
jq -e . "$SG_BASE" >/dev/null 2>&1 || abort "prerequisites: $SG_BASE is not JSON"

# Rules as `epgate stats --rules` describes them.
R_TCP_IN4="tcp 8080 from 198.18.1.0/24" R_TCP_IN6="tcp 8080 from fd00:1::/64"
R_UDP_IN4="udp 5353 from 198.18.1.0/24" R_UDP_IN6="udp 5353 from fd00:1::/64"
R_TCP_OUT4="tcp 9090 to 198.18.1.0/24" R_TCP_OUT6="tcp 9090 to fd00:1::/64"
R_UDP_OUT4="udp 9091 to 198.18.1.0/24" R_UDP_OUT6="udp 9091 to fd00:1::/64"
R_FLOOD="udp 6000 from 198.18.1.0/24"

# Servers and long-lived connections must outlive any one exchange; the
# whole test takes well under this.
LONG=240

# ---- policy documents --------------------------------------------------------

# sg_variant NAME JQ_FILTER: $WORK/sg-NAME.json, the fixture's group changed.
sg_variant() {
	jq "$2" "$SG_BASE" >"$WORK/sg-$1.json" || abort "jq: cannot make the '$1' variant of $SG_BASE"
}
sg_variant base '.'
# without any inbound rule / without any outbound rule of the endpoint's group
sg_variant no-inbound '(.SecurityGroups[] | select(.GroupId == "sg-0e0e0e0e0e0e0e0e3") | .IpPermissions) = []'
sg_variant no-outbound '(.SecurityGroups[] | select(.GroupId == "sg-0e0e0e0e0e0e0e0e3") | .IpPermissionsEgress) = []'
# the tcp rules (inbound 8080, outbound 9090) removed, the udp ones kept
sg_variant no-tcp '(.SecurityGroups[] | select(.GroupId == "sg-0e0e0e0e0e0e0e0e3")) |=
	(.IpPermissions |= map(select(.IpProtocol != "tcp")) | .IpPermissionsEgress |= map(select(.IpProtocol != "tcp")))'
# for the flood: udp 6000 (20,000 datagrams) and udp 10000-59999 (filling the table)
sg_variant flood '(.SecurityGroups[] | select(.GroupId == "sg-0e0e0e0e0e0e0e0e3") | .IpPermissions) += [
	{"IpProtocol": "udp", "FromPort": 6000, "ToPort": 6000, "IpRanges": [{"CidrIp": "198.18.1.0/24"}],
	 "Ipv6Ranges": [], "PrefixListIds": [], "UserIdGroupPairs": []},
	{"IpProtocol": "udp", "FromPort": 10000, "ToPort": 59999, "IpRanges": [{"CidrIp": "198.18.1.0/24"}],
	 "Ipv6Ranges": [], "PrefixListIds": [], "UserIdGroupPairs": []}]'

generation() { epgate status --json 2>/dev/null | jq -r '.generation' 2>/dev/null; }

# apply_sg NAME: apply the fixtures with group variant NAME; one check.
apply_sg() {
	local g0 g1 out rc
	g0=$(generation)
	out=$(epgate apply "$FIX/vpc-endpoints.json" "$FIX/network-interfaces.json" "$WORK/sg-$1.json" 2>&1)
	rc=$?
	g1=$(generation)
	if [ "$rc" -eq 0 ] && cmp_n "$g0" -ge 0 && [ "$g1" = $((g0 + 1)) ]; then
		pass "apply the group '$1': generation $g0 -> $g1 ($out)"
	else
		fail "apply the group '$1'" "exit $rc, generation $g0 -> $g1" "$out"
	fi
}

# ct_json: the flow table as JSON ("" on failure)
ct_json() { epgate conntrack --json 2>>"$WORK/ct.err" || true; }

# ct_flow CT_JSON ENDPOINT PEER: the flow between these two sides, compact
# JSON, or "" when there is none (sides as conntrack prints them, e.g.
# 198.18.3.2:8080 and [fd00:1::2]:9090).
ct_flow() {
	jq -c --arg e "$2" --arg p "$3" '[.flows[]? | select(.endpoint == $e and .peer == $p)] | .[0] // empty' \
		<<<"$1" 2>/dev/null
}

# The local side of the established TCP connection in NS to PORT, as
# conntrack prints sides ("198.18.1.2:41234", "[fd00:1::2]:41234").
local_side() { # NS PORT
	epg_in "$1" ss -tnH state established "( dport = :$2 )" 2>/dev/null | awk 'NR == 1 {print $3}'
}

# ---- topology, attach, policy ----------------------------------------------

epg_topo_up || abort "topology: namespaces, veths and addresses for run $EPG_RUN_ID"
pass "topology up: namespaces ${EPG_ALL_NS[*]}, bpffs on $EPG_BPFFS"
epg_attach_gw --mode native
pass "attached to ${GW_IFACES[*]} (native XDP, tc egress)"
apply_sg base

# Echo servers: ep answers on tcp 8080 and udp 5353, cl1 on tcp 9090 and
# udp 9091; each logs what it received.
LOG_EP_TCP=$WORK/ep-tcp.log LOG_EP_UDP=$WORK/ep-udp.log
LOG_CL_TCP=$WORK/cl1-tcp.log LOG_CL_UDP=$WORK/cl1-udp.log
CL_TCP_PIDS=()
for fam in 4 6; do
	if [ "$fam" = 4 ]; then ep=$EP_V4 cl=$CL1_V4; else ep=$EP_V6 cl=$CL1_V6; fi
	EPG_CMD_TIMEOUT=$LONG epg_echo_server "$NS_EP" tcp "$fam" "$ep" 8080 "$LOG_EP_TCP" &&
		EPG_CMD_TIMEOUT=$LONG epg_echo_server "$NS_EP" udp "$fam" "$ep" 5353 "$LOG_EP_UDP" &&
		EPG_CMD_TIMEOUT=$LONG epg_echo_server "$NS_CL1" tcp "$fam" "$cl" 9090 "$LOG_CL_TCP" &&
		CL_TCP_PIDS+=("$EPG_LAST_PID") &&
		EPG_CMD_TIMEOUT=$LONG epg_echo_server "$NS_CL1" udp "$fam" "$cl" 9091 "$LOG_CL_UDP" ||
		abort "echo servers over IPv$fam did not start"
done
pass "echo servers: ep tcp 8080 and udp 5353, cl1 tcp 9090 and udp 9091 (IPv4 and IPv6)"

# ---- 1. replies need no rule; without the initiating rule, nothing -----------

# exchange tcp|udp in|out 4|6 ok|refused [RULE]: one request/response.
#   in:  cl1 -> ep (tcp 8080, udp 5353), judged by inbound rules
#   out: ep -> cl1 (tcp 9090, udp 9091), judged by outbound rules
# ok: the answer comes back, the server logged the request, the first packet
# counted as accepted by RULE (exactly 1 hit), replies as tracked in the
# other direction, nothing rejected, and the flow is in the table.
# refused: no answer, the server got nothing, the first packet dropped as
# no_rule in the initiating direction, nothing accepted.
exchange() {
	local proto=$1 way=$2 fam=$3 want=$4 rule=${5:-} ns dst port log idir rdir s0 s1 ct
	local acc_rule acc_rrule trk rej_i rej_r acc_all nr rh epside
	if [ "$way" = in ]; then
		ns=$NS_CL1 idir=ingress rdir=egress
		if [ "$fam" = 4 ]; then dst=$EP_V4; else dst=$EP_V6; fi
		if [ "$proto" = tcp ]; then port=8080 log=$LOG_EP_TCP; else port=5353 log=$LOG_EP_UDP; fi
	else
		ns=$NS_EP idir=egress rdir=ingress
		if [ "$fam" = 4 ]; then dst=$CL1_V4; else dst=$CL1_V6; fi
		if [ "$proto" = tcp ]; then port=9090 log=$LOG_CL_TCP; else port=9091 log=$LOG_CL_UDP; fi
	fi
	local what="${ns##*-} -> $dst $proto $port (IPv$fam, $way""bound)" nfl0 nfl1
	if [ "$fam" = 4 ]; then epside=$EP_V4; else epside="[$EP_V6]"; fi
	tag "$proto-$way$fam"
	nfl0=$(flows_of "$(ct_json)" "$proto" "$way" "$epside" "$port")
	s0=$(snap)
	"${proto}_rr" "$ns" "$fam" "$dst" "$port" "$TAG"
	s1=$(snap)
	acc_rule=$(d "$(ctr "$s1" "$idir" accept rule)" "$(ctr "$s0" "$idir" accept rule)")
	acc_rrule=$(d "$(ctr "$s1" "$rdir" accept rule)" "$(ctr "$s0" "$rdir" accept rule)")
	trk=$(d "$(ctr "$s1" "$rdir" accept tracked)" "$(ctr "$s0" "$rdir" accept tracked)")
	rej_i=$(d "$(ctr "$s1" "$idir" reject '*')" "$(ctr "$s0" "$idir" reject '*')")
	rej_r=$(d "$(ctr "$s1" "$rdir" reject '*')" "$(ctr "$s0" "$rdir" reject '*')")
	nr=$(d "$(ctr "$s1" "$idir" reject no_rule)" "$(ctr "$s0" "$idir" reject no_rule)")
	# new flows: accepted by a rule, either direction (a late ACK of an
	# earlier connection may pass as tracked meanwhile)
	acc_all=$(d "$(($(ctr "$s1" ingress accept rule) + $(ctr "$s1" egress accept rule)))" \
		"$(($(ctr "$s0" ingress accept rule) + $(ctr "$s0" egress accept rule)))" 2>/dev/null)
	if [ "$want" = ok ]; then
		rh=$(d "$(hits "$s1" "$rule")" "$(hits "$s0" "$rule")")
		if [ "$RR_RC" -eq 0 ] && [ "$RR_OUT" = "$TAG" ] && logged "$log" "$TAG"; then
			pass "$what: answered"
		else
			fail "$what: answered" "socat exit $RR_RC, answer '${RR_OUT:0:60}' (want $TAG), server logged it: $(logged "$log" "$TAG" && echo yes || echo no)" \
				"$(head -c 300 "$WORK/rr.err" 2>/dev/null)"
		fi
		if [ "$acc_rule" = 1 ] && [ "$rh" = 1 ] && [ "$acc_rrule" = 0 ] && cmp_n "$trk" -ge 1 &&
			[ "$rej_i" = 0 ] && [ "$rej_r" = 0 ]; then
			pass "  counted: $idir accept/rule +1 ('$rule' +1), replies $rdir accept/tracked +$trk, nothing rejected"
		else
			fail "  counted: $idir accept/rule +1 ('$rule' +1), replies $rdir tracked, none rejected" \
				"$idir accept/rule +$acc_rule, '$rule' +$rh, $rdir accept/rule +$acc_rrule, $rdir accept/tracked +$trk," \
				"rejected $idir +$rej_i, $rdir +$rej_r (want 1, 1, 0, >= 1, 0, 0); $(rejected "$s0" "$s1")"
		fi
		nfl1=$(flows_of "$(ct_json)" "$proto" "$way" "$epside" "$port")
		if cmp_n "$nfl0" -ge 0 && [ "$nfl1" = $((nfl0 + 1)) ]; then
			pass "  conntrack --json: one more $proto flow initiated $idir on port $port ($nfl0 -> $nfl1)"
		else
			fail "  conntrack --json lists one more $proto flow initiated $idir on port $port" \
				"flows $nfl0 -> $nfl1 ($(head -c 200 "$WORK/ct.err" 2>/dev/null))"
		fi
	else
		if [ -z "$RR_OUT" ] && ! logged "$log" "$TAG" && cmp_n "$nr" -ge 1 && [ "$acc_all" = 0 ]; then
			pass "$what: refused (no answer, server got nothing, $idir no_rule +$nr, no flow accepted)"
		else
			fail "$what: refused" "answer '${RR_OUT:0:60}', server logged it: $(logged "$log" "$TAG" && echo yes || echo no)," \
				"$idir no_rule +$nr (want >= 1), accepted by a rule in either direction +$acc_all (want 0)"
		fi
	fi
}

# flows_of CT tcp|udp in|out EP_ADDR PORT: how many flows of this kind the
# table holds (in: to EP_ADDR:PORT, initiated ingress; out: from EP_ADDR to
# a peer's PORT, initiated egress)
flows_of() {
	local v
	v=$(jq -r --arg p "$2" --arg way "$3" --arg e "$4" --arg port "$5" \
		'[.flows[]? | select(.protocol == $p and
		  (if $way == "in" then .initiated == "ingress" and .endpoint == ($e + ":" + $port)
		   else .initiated == "egress" and (.endpoint | startswith($e + ":")) and (.peer | endswith(":" + $port)) end))]
		 | length' <<<"$1" 2>/dev/null)
	echo "${v:-?}"
}

for fam in 4 6; do
	exchange tcp in "$fam" ok "$([ "$fam" = 4 ] && echo "$R_TCP_IN4" || echo "$R_TCP_IN6")"
	exchange udp in "$fam" ok "$([ "$fam" = 4 ] && echo "$R_UDP_IN4" || echo "$R_UDP_IN6")"
	exchange tcp out "$fam" ok "$([ "$fam" = 4 ] && echo "$R_TCP_OUT4" || echo "$R_TCP_OUT6")"
	exchange udp out "$fam" ok "$([ "$fam" = 4 ] && echo "$R_UDP_OUT4" || echo "$R_UDP_OUT6")"
done

# UDP: `udp` while the responder answered once, `udp_stream` (180 s) once it
# answered more than once: two requests from one socket, 0.3 s apart.
out=$( (printf 'stream-1\n'; sleep 0.3; printf 'stream-2\n'; sleep 0.6) |
	EPG_CMD_TIMEOUT=8 epg_in "$NS_CL1" socat -T 1 - "UDP4:$EP_V4:5353" 2>/dev/null)
ct=$(ct_json)
st=$(jq -r --arg e "$EP_V4:5353" '[.flows[]? | select(.endpoint == $e and .packets_in == 2)
	| "\(.state) \(.timeout_seconds) \(.packets_out)"] | .[0] // "none"' <<<"$ct" 2>/dev/null)
if [ "$out" = $'stream-1\nstream-2' ] && [ "$st" = "udp_stream 180 2" ]; then
	pass "udp flow answered twice: state udp_stream, timeout 180 s"
else
	fail "udp flow answered twice: state udp_stream, timeout 180 s" "answers '$(printf '%s' "$out" | tr '\n' ' ')', flow: ${st:-unreadable} (want 'udp_stream 180 2')"
fi

# The same exchanges without the rule that allowed their first packet; the
# other direction's rules alone do not let anything start.
apply_sg no-inbound
for fam in 4 6; do
	exchange tcp in "$fam" refused
	exchange udp in "$fam" refused
done
# outbound rules still work without any inbound rule (replies are tracked)
exchange tcp out 4 ok "$R_TCP_OUT4"
apply_sg no-outbound
for fam in 4 6; do
	exchange tcp out "$fam" refused
	exchange udp out "$fam" refused
done
# and inbound ones without any outbound rule
exchange tcp in 6 ok "$R_TCP_IN6"
apply_sg base

# ---- 2. open connections outlive their rule; --flush cuts them ---------------

# S1: cl1 -> ep tcp 8080 over IPv4 (inbound rule); S2: ep -> cl1 tcp 9090
# over IPv6 (outbound rule). Long-lived; fed line by line.
EPG_CMD_TIMEOUT=$LONG epg_stream_open s1 "$NS_CL1" 4 "$EP_V4" 8080 || abort "stream s1: cannot start socat"
EPG_CMD_TIMEOUT=$LONG epg_stream_open s2 "$NS_EP" 6 "$CL1_V6" 9090 || abort "stream s2: cannot start socat"
ok=1
for s in s1 s2; do
	tag "$s-first"
	epg_stream_send "$s" "$TAG" && epg_stream_wait "$s" "$TAG" 5 || ok=0
done
if [ "$ok" = 1 ]; then
	pass "two long-lived connections open: cl1 -> ep:8080 (IPv4), ep -> [cl1]:9090 (IPv6), echoing"
else
	abort "two long-lived connections open and echo" "s1: $(cat "$(epg_stream_out s1).err" 2>/dev/null)" "s2: $(cat "$(epg_stream_out s2).err" 2>/dev/null)"
fi
S1_PEER=$(local_side "$NS_CL1" 8080)
S2_EP=$(local_side "$NS_EP" 9090)
S1_EP="$EP_V4:8080" S2_PEER="[$CL1_V6]:9090"
[ -n "$S1_PEER" ] && [ -n "$S2_EP" ] || fail "ss shows both connections established" "s1 local side '${S1_PEER}', s2 local side '${S2_EP}'"

# flow_is CT EP_SIDE PEER_SIDE STATE INITIATED: prints "" when it matches,
# else what was found
flow_is() {
	local f
	f=$(ct_flow "$1" "$2" "$3")
	[ -n "$f" ] || { echo "no flow $2 <-> $3"; return; }
	[ "$(jq -r '.state + " " + .initiated' <<<"$f")" = "$4 $5" ] || echo "$f"
}
ct=$(ct_json)
bad="$(flow_is "$ct" "$S1_EP" "$S1_PEER" established ingress)$(flow_is "$ct" "$S2_EP" "$S2_PEER" established egress)"
if [ -z "$bad" ]; then
	pass "conntrack --json: $S1_PEER -> $S1_EP established (ingress), $S2_EP -> $S2_PEER established (egress)"
else
	fail "conntrack --json lists both connections as established" "$bad"
fi
pk0=$(ct_flow "$ct" "$S1_EP" "$S1_PEER" | jq -r '.packets_in' 2>/dev/null)

apply_sg no-tcp
s0=$(snap)
ok=1
for s in s1 s2; do
	tag "$s-after-removal"
	epg_stream_send "$s" "$TAG" && epg_stream_wait "$s" "$TAG" 5 || { ok=0; fail "$s: a line sent after the rule's removal comes back" \
		"not echoed within 5 s; server logged it: $(logged "$([ $s = s1 ] && echo "$LOG_EP_TCP" || echo "$LOG_CL_TCP")" "$TAG" && echo yes || echo no)"; }
done
s1=$(snap)
trk=$(d "$(($(ctr "$s1" ingress accept tracked) + $(ctr "$s1" egress accept tracked)))" \
	"$(($(ctr "$s0" ingress accept tracked) + $(ctr "$s0" egress accept tracked)))" 2>/dev/null)
rej=$(d "$(($(ctr "$s1" ingress reject '*') + $(ctr "$s1" egress reject '*')))" \
	"$(($(ctr "$s0" ingress reject '*') + $(ctr "$s0" egress reject '*')))" 2>/dev/null)
if [ "$ok" = 1 ] && cmp_n "$trk" -ge 4 && [ "$rej" = 0 ]; then
	pass "rules removed: both open connections still carry data both ways (tracked +$trk, rejected +0)"
elif [ "$ok" = 1 ]; then
	fail "rules removed: the connections' packets count as tracked, none rejected" "tracked +$trk (want >= 4), $(rejected "$s0" "$s1")"
fi
exchange tcp in 4 refused
exchange tcp out 6 refused
ct=$(ct_json)
bad="$(flow_is "$ct" "$S1_EP" "$S1_PEER" established ingress)$(flow_is "$ct" "$S2_EP" "$S2_PEER" established egress)"
pk1=$(ct_flow "$ct" "$S1_EP" "$S1_PEER" | jq -r '.packets_in' 2>/dev/null)
if [ -z "$bad" ] && cmp_n "$pk1" -gt "${pk0:-0}"; then
	pass "conntrack --json: both flows still established after the rule's removal (s1 packets in $pk0 -> $pk1)"
else
	fail "conntrack --json: both flows still established, s1's packet count grew" "${bad:-states ok}; s1 packets in $pk0 -> $pk1"
fi

# --flush: the flows go; with no rule, the connections' next packets are
# dropped: data from cl1 (ingress) and from ep (egress) carry no SYN.
out=$(epgate conntrack --flush 2>&1)
rc=$?
n=$(grep -oE '^removed [0-9]+' <<<"$out" | awk '{print $2}')
ct=$(ct_json)
left=$(jq -r '.entries' <<<"$ct" 2>/dev/null)
if [ "$rc" -eq 0 ] && cmp_n "$n" -ge 2 && [ "$left" = 0 ]; then
	pass "conntrack --flush: $out; the table is empty"
else
	fail "conntrack --flush empties the table" "exit $rc: $out; entries left: ${left:-?}"
fi
s0=$(snap)
tag "s1-after-flush"
T_S1=$TAG
epg_stream_send s1 "$T_S1"
tag "s2-after-flush"
T_S2=$TAG
epg_stream_send s2 "$T_S2"
# TCP retransmits the unanswered data (after ~0.2, 0.6, 1.4 s): all dropped
sleep 3
s1=$(snap)
nf_in=$(d "$(ctr "$s1" ingress reject tcp_no_flow)" "$(ctr "$s0" ingress reject tcp_no_flow)")
nf_out=$(d "$(ctr "$s1" egress reject tcp_no_flow)" "$(ctr "$s0" egress reject tcp_no_flow)")
acc=$(d "$(($(ctr "$s1" ingress accept '*') + $(ctr "$s1" egress accept '*')))" \
	"$(($(ctr "$s0" ingress accept '*') + $(ctr "$s0" egress accept '*')))" 2>/dev/null)
if ! epg_stream_wait s1 "$T_S1" 0 && ! logged "$LOG_EP_TCP" "$T_S1" && cmp_n "$nf_in" -ge 1; then
	pass "after --flush, s1's data (cl1 -> ep) is dropped: ingress tcp_no_flow +$nf_in, nothing reached ep"
else
	fail "after --flush, s1's data is dropped as tcp_no_flow" "echoed: $(epg_stream_wait s1 "$T_S1" 0 && echo yes || echo no), ep logged it: $(logged "$LOG_EP_TCP" "$T_S1" && echo yes || echo no), ingress tcp_no_flow +$nf_in"
fi
if ! epg_stream_wait s2 "$T_S2" 0 && ! logged "$LOG_CL_TCP" "$T_S2" && cmp_n "$nf_out" -ge 1; then
	pass "after --flush, s2's data (ep -> cl1) is dropped: egress tcp_no_flow +$nf_out, nothing reached cl1"
else
	fail "after --flush, s2's data is dropped as tcp_no_flow" "echoed: $(epg_stream_wait s2 "$T_S2" 0 && echo yes || echo no), cl1 logged it: $(logged "$LOG_CL_TCP" "$T_S2" && echo yes || echo no), egress tcp_no_flow +$nf_out"
fi
if [ "$acc" = 0 ] && [ "$(ct_json | jq -r '.entries' 2>/dev/null)" = 0 ]; then
	pass "after --flush nothing of theirs is accepted and no flow comes back"
else
	fail "after --flush nothing of theirs is accepted and no flow comes back" "accepted +$acc, flows: $(ct_json | jq -c '[.flows[]? | .endpoint + " " + .peer + " " + .state]' 2>/dev/null)"
fi
# The rules back: the held-back data is retransmitted (next try within a
# few seconds), allowed by its rule though it carries no SYN, and picked up
# as an established flow. (This also lets both connections close cleanly
# instead of leaving orphaned sockets retransmitting into later checks.)
apply_sg base
st1=$(epg_stream_wait s1 "$T_S1" 12 && echo yes || echo no)
st2=$(epg_stream_wait s2 "$T_S2" 12 && echo yes || echo no)
ct=$(ct_json)
f1=$(ct_flow "$ct" "$S1_EP" "$S1_PEER" | jq -r '.state + " " + .initiated' 2>/dev/null)
f2=$(ct_flow "$ct" "$S2_EP" "$S2_PEER" | jq -r '.state + " " + .initiated' 2>/dev/null)
if [ "$st1" = yes ] && [ "$st2" = yes ] && [ "$f1" = "established ingress" ] && [ "$f2" = "established egress" ]; then
	pass "rules back: the flushed connections resume, picked up mid-stream as established flows"
else
	fail "rules back: the flushed connections resume, picked up mid-stream" \
		"held-back lines echoed: s1 $st1, s2 $st2; flows: s1 '${f1:-none}', s2 '${f2:-none}' (want 'established ingress', 'established egress')"
fi
epg_stream_close s1
epg_stream_close s2

# ---- 3. a flood of new flows; then a full table ---------------------------------

apply_sg flood
epg_bg "$NS_EP" socat -u "UDP4-RECV:6000,bind=$EP_V4" OPEN:/dev/null
SINK_PID=$EPG_LAST_PID
epg_wait_listen "$NS_EP" udp 6000 || fail "udp sink on ep:6000 listens"
EPG_CMD_TIMEOUT=$LONG epg_stream_open s3 "$NS_CL1" 4 "$EP_V4" 8080 || abort "stream s3: cannot start socat"
tag "s3-first"
epg_stream_send s3 "$TAG" && epg_stream_wait s3 "$TAG" 5 || abort "stream s3 (cl1 -> ep:8080) echoes" "$(cat "$(epg_stream_out s3).err" 2>/dev/null)"
S3_SENT=("$TAG")

# flood_with_stream PORT SPAN COUNT SECS: the flood in the background, and
# a line on s3 every 0.05 s while it runs (at most 400). FLOOD_RC: the
# flood's exit status (124: cut by its time bound).
flood_with_stream() {
	local fpid i
	epg_flood_udp "$NS_CL1" "$EP_V4" "$1" "$2" "$3" "$4" || { FLOOD_RC=255; return; }
	fpid=$EPG_LAST_PID
	for ((i = 0; i < 400; i++)); do
		kill -0 "$fpid" 2>/dev/null || break
		tag "s3-during-flood"
		epg_stream_send s3 "$TAG" && S3_SENT+=("$TAG")
		sleep 0.05
	done
	wait "$fpid"
	FLOOD_RC=$?
	tag "s3-after-flood"
	epg_stream_send s3 "$TAG" && S3_SENT+=("$TAG")
}
# every line sent on s3 came back, in order
s3_all_back() {
	local want got
	epg_stream_wait s3 "${S3_SENT[-1]}" 10 || return 1
	want=$(printf '%s\n' "${S3_SENT[@]}")
	got=$(cat "$(epg_stream_out s3)")
	[ "$want" = "$got" ]
}

# 3a. 20,000 datagrams to udp 6000, each from a new socket (a new source
# port, so mostly new flows), in at most 10 s.
s0=$(snap)
ct0=$(ct_json | jq -r '.entries' 2>/dev/null)
n0=${#S3_SENT[@]}
flood_with_stream 6000 1 20000 10
s1=$(snap)
ct=$(ct_json)
nflows=$(jq -r --arg e "$EP_V4:6000" '[.flows[]? | select(.endpoint == $e)] | length' <<<"$ct" 2>/dev/null)
rh=$(d "$(hits "$s1" "$R_FLOOD")" "$(hits "$s0" "$R_FLOOD")")
acc=$(d "$(ctr "$s1" ingress accept '*')" "$(ctr "$s0" ingress accept '*')")
rej=$(d "$(ctr "$s1" ingress reject '*')" "$(ctr "$s0" ingress reject '*')")
if [ "$FLOOD_RC" = 0 ]; then
	pass "flood: 20,000 datagrams sent to ep udp 6000 from new sockets ($((${#S3_SENT[@]} - n0)) lines on s3 meanwhile)"
else
	fail "flood: 20,000 datagrams sent within 10 s" "exit status $FLOOD_RC (124: cut by the time bound)"
fi
if s3_all_back; then
	pass "the established connection carried all ${#S3_SENT[@]} lines through the flood, in order"
else
	fail "the established connection carried all its lines through the flood" \
		"sent ${#S3_SENT[@]}, came back $(wc -l <"$(epg_stream_out s3)")"
fi
if cmp_n "$nflows" -ge 1000 && cmp_n "$nflows" -le 20000 && [ "$rh" = "$nflows" ] &&
	cmp_n "$acc" -ge 20000 && [ "$rej" = 0 ]; then
	pass "flood counted: $nflows new flows = '$R_FLOOD' +$rh, ingress accepted +$acc (>= 20,000), none rejected (table: ${ct0:-?} -> $(jq -r '.entries' <<<"$ct" 2>/dev/null) flows)"
else
	fail "flood counted: one rule hit per new flow, every datagram accepted" \
		"flows to ep:6000 $nflows (want 1000..20000), '$R_FLOOD' +$rh (want = flows), ingress accepted +$acc (want >= 20000), rejected +$rej (want 0); $(rejected "$s0" "$s1")"
fi
epg_stop "$SINK_PID"

# 3b. Fill the table: new flows to udp 10000-59999 (each datagram a new
# source port and the next destination port), at most 300,000 datagrams in
# at most 20 s, from cl1 to ep only. The datagrams find no socket on ep;
# its port-unreachable errors (rate limited) pass as related.
s0=$(snap)
n0=${#S3_SENT[@]}
flood_with_stream 10000 50000 300000 20
s1=$(snap)
sum=$(epgate conntrack 2>/dev/null | tail -n 1)
entries=$(awk '{print $1}' <<<"$sum")
avail=$(grep -oE '[0-9]+ more allowed' <<<"$sum" | awk '{print $1}')
full=$(d "$(ctr "$s1" ingress reject conntrack_allowance_exceeded)" "$(ctr "$s0" ingress reject conntrack_allowance_exceeded)")
if [ "$entries" = 262144 ] && [ "$avail" = 0 ] && cmp_n "$full" -ge 1; then
	pass "table full: $sum; new flows dropped as conntrack_allowance_exceeded (+$full) (flood exit $FLOOD_RC)"
else
	fail "the flood fills the table (262144 flows, 0 more allowed) and further new flows are dropped" \
		"conntrack: '$sum'; conntrack_allowance_exceeded +$full; flood exit $FLOOD_RC (124: cut by its 20 s bound)"
fi
if s3_all_back; then
	pass "the established connection was not evicted: all $((${#S3_SENT[@]} - n0)) lines sent while filling came back"
else
	fail "the established connection survives a full table" "sent ${#S3_SENT[@]}, came back $(wc -l <"$(epg_stream_out s3)")"
fi
# a new connection, allowed by its rule, finds no room
s0=$(snap)
tag "new-when-full"
tcp_rr "$NS_CL1" 4 "$EP_V4" 8080 "$TAG"
s1=$(snap)
full=$(d "$(ctr "$s1" ingress reject conntrack_allowance_exceeded)" "$(ctr "$s0" ingress reject conntrack_allowance_exceeded)")
if [ -z "$RR_OUT" ] && ! logged "$LOG_EP_TCP" "$TAG" && cmp_n "$full" -ge 1; then
	pass "with the table full a new TCP connection is refused: conntrack_allowance_exceeded +$full"
else
	fail "with the table full a new TCP connection is refused as conntrack_allowance_exceeded" \
		"answer '${RR_OUT:0:40}', ep logged it: $(logged "$LOG_EP_TCP" "$TAG" && echo yes || echo no), conntrack_allowance_exceeded +$full"
fi
# flush: room again; s3's rule still exists, so its next packet (no SYN) is
# allowed by the rule and picked up as established
out=$(epgate conntrack --flush 2>&1)
n=$(grep -oE '^removed [0-9]+' <<<"$out" | awk '{print $2}')
tag "s3-after-flush"
epg_stream_send s3 "$TAG"
S3_SENT+=("$TAG")
tag "new-after-flush"
tcp_rr "$NS_CL1" 4 "$EP_V4" 8080 "$TAG"
if cmp_n "$n" -ge 262144 && s3_all_back && [ "$RR_OUT" = "$TAG" ]; then
	pass "conntrack --flush ($out): s3 goes on (its rule allows it), new connections work again"
else
	fail "after --flush of the full table: s3 goes on, new connections work" "flush: $out; s3 all back: $(s3_all_back && echo yes || echo no); new connection answer '${RR_OUT:0:40}'"
fi
st=$(ct_flow "$(ct_json)" "$EP_V4:8080" "$(local_side "$NS_CL1" 8080)" | jq -r '.state + " " + .initiated' 2>/dev/null)
if [ "$st" = "established ingress" ]; then
	pass "s3 picked up again mid-stream: established, ingress"
else
	fail "s3 picked up again mid-stream as an established ingress flow" "flow: ${st:-none}"
fi
epg_stream_close s3

# ---- 4. bulk transfers: a busy tracked flow is never lost ---------------------

# 100 connections ep -> cl1:9090 (outbound rule), 1 MiB each at full speed,
# the sender pinned to CPU 0 and the receiver to CPU 1: ep's data and cl1's
# ACKs are judged at the same time on both CPUs. Every ACK must find its
# flow (no inbound rule would allow it), and each connection is one flow:
# exactly one rule hit, none re-created mid-stream.
for pid in "${CL_TCP_PIDS[@]}"; do epg_stop "$pid"; done
apply_sg base
PIN_TX=() PIN_RX=()
if [ "$(nproc 2>/dev/null || echo 1)" -ge 2 ] && command -v taskset >/dev/null; then
	PIN_TX=(taskset -c 0) PIN_RX=(taskset -c 1)
fi
EPG_CMD_TIMEOUT=60 epg_bg "$NS_CL1" "${PIN_RX[@]}" socat -u "TCP4-LISTEN:9090,bind=$CL1_V4,reuseaddr,fork" OPEN:/dev/null
SINK_PID=$EPG_LAST_PID
if epg_wait_listen "$NS_CL1" tcp 9090; then
	s0=$(snap)
	nok=0
	for ((i = 0; i < 100; i++)); do
		EPG_CMD_TIMEOUT=10 epg_in "$NS_EP" "${PIN_TX[@]}" socat -u OPEN:/dev/zero,readbytes=1048576 \
			"TCP4:$CL1_V4:9090,connect-timeout=2" 2>/dev/null && nok=$((nok + 1))
	done
	sleep 0.5
	s1=$(snap)
	nf=$(d "$(ctr "$s1" ingress reject tcp_no_flow)" "$(ctr "$s0" ingress reject tcp_no_flow)")
	rh=$(d "$(hits "$s1" "$R_TCP_OUT4")" "$(hits "$s0" "$R_TCP_OUT4")")
	trk=$(d "$(ctr "$s1" ingress accept tracked)" "$(ctr "$s0" ingress accept tracked)")
	if [ "$nok" = 100 ] && [ "$nf" = 0 ] && [ "$rh" = 100 ]; then
		pass "100 x 1 MiB ep -> cl1 (${PIN_TX[*]:-unpinned} / ${PIN_RX[*]:-unpinned}): every ACK found its flow (ingress tracked +$trk, tcp_no_flow +0), one rule hit per connection"
	else
		fail "100 x 1 MiB ep -> cl1: no packet of a tracked flow dropped, one flow per connection" \
			"transfers ok $nok/100; ingress tcp_no_flow +$nf (want 0); '$R_TCP_OUT4' +$rh (want 100: more means flows were deleted and re-created mid-stream)" \
			"(a live flow deleted as idle: e.g. now - last_seen wrapping when another CPU stored a later last_seen)"
	fi
else
	fail "bulk transfers: the sink on cl1:9090 listens"
fi
epg_stop "$SINK_PID"

# ---- 5. path MTU discovery: ICMP errors of tracked flows are related ---------

# The router's link to cl1 gets MTU 1300; cl1's end keeps 1500, so cl1
# advertises MSS 1460 and ep sends 1500-byte packets with DF. gw cannot
# forward them: it answers ep with fragmentation-needed (IPv4) / packet too
# big (IPv6), which epgate's tc egress hook on gw-ep judges: toward the
# endpoint, no rule allows ICMP, only `related` can let them through. ep
# then resends smaller segments.
ip -n "$NS_GW" link set dev gw-cl1 mtu 1300 || abort "set MTU 1300 on gw-cl1"
head -c $((1024 * 1024)) /dev/urandom >"$WORK/big" || abort "cannot write $WORK/big"
for fam in 4 6; do
	if [ "$fam" = 4 ]; then cl=$CL1_V4 b=$CL1_V4; else cl=$CL1_V6 b="[$CL1_V6]"; fi
	got=$WORK/pmtu$fam
	EPG_CMD_TIMEOUT=30 epg_bg "$NS_CL1" socat -u "TCP$fam-LISTEN:9090,bind=$b,reuseaddr" "CREATE:$got"
	lpid=$EPG_LAST_PID
	if ! epg_wait_listen "$NS_CL1" tcp 9090; then
		fail "IPv$fam path MTU: the receiver on cl1 listens"
		epg_stop "$lpid"
		continue
	fi
	s0=$(snap)
	EPG_CMD_TIMEOUT=25 epg_in "$NS_EP" socat -u "OPEN:$WORK/big" "TCP$fam:$b:9090,connect-timeout=2" 2>"$WORK/pmtu.err"
	rc=$?
	# the receiver exits at EOF, after writing everything: 20 s at most
	for ((i = 0; i < 200; i++)); do
		kill -0 "$lpid" 2>/dev/null || break
		sleep 0.1
	done
	epg_stop "$lpid"
	s1=$(snap)
	rel=$(d "$(ctr "$s1" ingress accept related)" "$(ctr "$s0" ingress accept related)")
	# an ICMP error that is not related finds no rule: no_rule (lost ACKs
	# of the transfer are the bulk check's business above)
	rej=$(d "$(ctr "$s1" ingress reject no_rule)" "$(ctr "$s0" ingress reject no_rule)")
	mtu=$(ip -n "$NS_EP" -"$fam" route get "$cl" 2>/dev/null | grep -oE 'mtu [0-9]+' | head -1)
	if [ "$rc" -eq 0 ] && cmp -s "$WORK/big" "$got"; then
		pass "IPv$fam: 1 MiB from ep to cl1 through the 1300-byte link arrived intact (ep's route to cl1: ${mtu:-no mtu})"
	else
		fail "IPv$fam: 1 MiB from ep to cl1 through the 1300-byte link arrives intact" \
			"sender exit $rc ($(head -c 200 "$WORK/pmtu.err")), received $(stat -c %s "$got" 2>/dev/null || echo no file) bytes; ep's route: ${mtu:-no mtu}"
	fi
	if cmp_n "$rel" -ge 1 && [ "$rej" = 0 ] && [ "$mtu" = "mtu 1300" ]; then
		pass "  IPv$fam: the router's ICMP errors accepted as related (+$rel), no_rule +0; ep learnt mtu 1300"
	else
		fail "  IPv$fam: the router's ICMP errors accepted as related" "ingress accept/related +$rel, ingress no_rule +$rej (want 0), ep's route: ${mtu:-no mtu}; $(rejected "$s0" "$s1")"
	fi
done

# ---- 6. a packet faking the endpoint's address opens no flow -----------------
# cl1 sends UDP from the endpoint's address (put on its own interface for the
# moment) to 198.18.1.99:9091, what the endpoint's outbound rule allows, with
# gw's MAC as that neighbour's: it arrives on gw-cl1, but the route back to
# the endpoint leaves through gw-ep. It must be dropped as spoofed (not the
# endpoint's traffic: counted apart), and open no flow through which
# 198.18.1.99:9091 -> the endpoint's udp 5999 (no inbound rule) would pass.
SPOOF_PEER=198.18.1.99
ip -n "$NS_GW" link set dev gw-cl1 mtu 1500 || fail "restore gw-cl1's MTU after section 5"
gwmac=$(ip -n "$NS_GW" -j link show gw-cl1 2>/dev/null | jq -r '.[0].address' 2>/dev/null)
s0=$(snap)
sp0=$(jq -r '.spoofed_packets // "?"' <<<"$s0" 2>/dev/null)
if ip -n "$NS_CL1" addr add "$EP_V4/32" dev to-gw 2>/dev/null &&
	ip -n "$NS_CL1" neigh replace "$SPOOF_PEER" lladdr "$gwmac" dev to-gw nud permanent 2>/dev/null; then
	printf 'spoof\n' | EPG_CMD_TIMEOUT=8 epg_in "$NS_CL1" socat -u - "UDP4-SENDTO:$SPOOF_PEER:9091,bind=$EP_V4:5999" 2>"$WORK/spoof.err"
	src_rc=$?
	# and one of 3000 bytes: three fragments, the later two no endpoint's either
	head -c 3000 /dev/zero | tr '\0' x | EPG_CMD_TIMEOUT=8 epg_in "$NS_CL1" \
		socat -u -b 4000 - "UDP4-SENDTO:$SPOOF_PEER:9091,bind=$EP_V4:5998" 2>>"$WORK/spoof.err" || src_rc=$?
else
	src_rc=99
fi
ip -n "$NS_CL1" addr del "$EP_V4/32" dev to-gw 2>/dev/null
s1=$(snap)
sp1=$(jq -r '.spoofed_packets // "?"' <<<"$s1" 2>/dev/null)
fl=$(ct_flow "$(ct_json)" "$EP_V4:5999" "$SPOOF_PEER:9091")
eg=$(d "$(($(ctr "$s1" egress accept '*') + $(ctr "$s1" egress reject '*')))" \
	"$(($(ctr "$s0" egress accept '*') + $(ctr "$s0" egress reject '*')))" 2>/dev/null)
if [ "$src_rc" -eq 0 ] && [ "$(d "$sp1" "$sp0")" = 4 ] && [ -z "$fl" ] && [ "$eg" = 0 ]; then
	pass "cl1 -> $SPOOF_PEER udp 9091 from the endpoint's address, in on gw-cl1 (a datagram, and one of three fragments): dropped as spoofed (stats spoofed_packets +4), no flow, nothing counted under the endpoint"
else
	fail "packets from the endpoint's address arriving on gw-cl1 are dropped as spoofed, fragments included, no flow made" \
		"socat exit $src_rc ($(head -c 200 "$WORK/spoof.err")), spoofed_packets $sp0 -> $sp1 (want +4), flow: ${fl:-none} (want none), egress counted +$eg (want 0)"
fi
s0=$(snap)
if ip -n "$NS_CL1" addr add "$SPOOF_PEER/32" dev to-gw 2>/dev/null; then
	printf 'in\n' | EPG_CMD_TIMEOUT=8 epg_in "$NS_CL1" socat -u - "UDP4-SENDTO:$EP_V4:5999,bind=$SPOOF_PEER:9091" 2>>"$WORK/spoof.err"
	src_rc=$?
else
	src_rc=99
fi
ip -n "$NS_CL1" addr del "$SPOOF_PEER/32" dev to-gw 2>/dev/null
ip -n "$NS_CL1" neigh del "$SPOOF_PEER" dev to-gw 2>/dev/null
s1=$(snap)
nr=$(d "$(ctr "$s1" ingress reject no_rule)" "$(ctr "$s0" ingress reject no_rule)")
trk=$(d "$(ctr "$s1" ingress accept '*')" "$(ctr "$s0" ingress accept '*')")
if [ "$src_rc" -eq 0 ] && [ "$nr" = 1 ] && [ "$trk" = 0 ]; then
	pass "then $SPOOF_PEER:9091 -> the endpoint's udp 5999: denied (ingress no_rule +1), not passed as tracked"
else
	fail "then $SPOOF_PEER:9091 -> the endpoint's udp 5999 is denied, not tracked" \
		"socat exit $src_rc, ingress reject/no_rule +$nr (want 1), ingress accepted +$trk (want 0); $(rejected "$s0" "$s1")"
fi

exit 0
