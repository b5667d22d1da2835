#!/usr/bin/env bash
# Integration test: security-group enforcement for a VPC endpoint address,
# with real traffic through network namespaces.
#
#   cl1 (allowed) --\
#                    gw (router; epgate attached, native XDP, to all 3 veths) -- ep (the endpoint)
#   cl2 (denied) ---/
#
# Policy (tests/integ/fixtures/*.json, aws ec2 describe-* shapes): the
# endpoint's group allows tcp 8080 from cl1's subnets (v4 and v6), udp 5353
# from members of sg-clients (cl1's ENI), ICMP/ICMPv6 echo from cl1's
# subnets; nothing for cl2.
#
# Verdicts are checked twice: by what arrives (socat listeners and ping in
# ep) and by epgate's counters (deltas measured around each exchange,
# exact where the packet count is known). Every check is counted; a check
# that cannot run is a failure. Last line: "N passed, N failed"; the exit
# status is 0 only when nothing failed.
#
# Usage (root, from the repo root): BUILD=build tests/integ/test_sg.sh
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$ROOT/tests/integ/common.sh"

epg_test_begin

# ---- prerequisites --------------------------------------------------------

epg_require ip tc jq socat ping ss timeout mountpoint cmp
# Which datapath: this test was written for the stateless one (egress from
# an endpoint passes as not_enforced, every allowed packet is a rule hit).
# A build with connection tracking (`epgate conntrack` exists) counts a
# flow's first packet as `rule` and the rest, both ways, as `tracked`; the
# checks below expect whichever applies.
if "$EPGATE" conntrack --help >/dev/null 2>&1; then
	STATEFUL=1
	echo "# datapath with connection tracking: a flow's later packets count as tracked"
else
	STATEFUL=0
	echo "# stateless datapath: egress from the endpoint counted as not_enforced"
fi
EP_ID=$(jq -er '.VpcEndpoints[0].VpcEndpointId' "$FIX/vpc-endpoints.json") ||
	abort "prerequisites: cannot read the endpoint id from $FIX/vpc-endpoints.json"

# Rules as `epgate stats --rules` describes them.
R_TCP4="tcp 8080 from 198.18.1.0/24"
R_TCP6="tcp 8080 from fd00:1::/64"
R_UDP="udp 5353 from sg-0c0c0c0c0c0c0c0c1"
R_ICMP4="icmp type 8 from 198.18.1.0/24"
R_ICMP6="icmpv6 type 128 from fd00:1::/64"

# ---- helpers ---------------------------------------------------------------

# A snapshot of every counter, as one JSON document ("" on failure).
snap() { epgate stats --json --rules 2>"$WORK/stats.err" || true; }

# ctr SNAPSHOT DIRECTION ACTION REASON [packets|bytes]: an endpoint counter
# (absent = 0); REASON "*" sums every reason of ACTION. Prints "?" when the
# snapshot is not usable.
ctr() {
	local v
	v=$(jq -r --arg ep "$EP_ID" --arg d "$2" --arg a "$3" --arg r "$4" --arg f "${5:-packets}" \
		'[.endpoints[] | select(.endpoint_id == $ep) | .counters[]
		  | select(.direction == $d and .action == $a and ($r == "*" or .reason == $r)) | .[$f]] | add // 0' \
		<<<"$1" 2>/dev/null)
	echo "${v:-?}"
}

# hits SNAPSHOT DESCRIPTION [hits|bytes]: a rule's counter; "?" when the rule
# is not listed (or the snapshot is not usable).
hits() {
	local v
	v=$(jq -r --arg d "$2" --arg f "${3:-hits}" \
		'[.rules[] | select(.description == $d) | .[$f]] | if length == 1 then .[0] else "?" end' \
		<<<"$1" 2>/dev/null)
	echo "${v:-?}"
}

passthrough() {
	local v
	v=$(jq -r '.passthrough_packets // "?"' <<<"$1" 2>/dev/null)
	echo "${v:-?}"
}

# d NEW OLD: NEW - OLD, or "?" when either is not a number.
d() {
	[[ $1 =~ ^[0-9]+$ && $2 =~ ^[0-9]+$ ]] || { echo "?"; return; }
	echo $(($1 - $2))
}

# cmp_n VALUE OP WANT: numeric comparison that is false for "?".
cmp_n() { [[ $1 =~ ^-?[0-9]+$ ]] && test "$1" "$2" "$3"; }

# Neighbour state on both sides of the gw-ep link, for failure messages:
# an IPv6 failure with a FAILED/INCOMPLETE entry points at neighbour
# discovery packets being judged (and dropped) like endpoint traffic.
neigh_diag() {
	echo "neighbours: ep sees fd00:3::1 $(ip -n "$NS_EP" -6 neigh show fd00:3::1 dev to-gw 2>/dev/null | awk '{print $NF}' | head -1),"\
		"gw sees fd00:3::2 $(ip -n "$NS_GW" -6 neigh show fd00:3::2 dev gw-ep 2>/dev/null | awk '{print $NF}' | head -1)"
}

status_json() { epgate status --json 2>/dev/null; }

# Random payload, so that an intact transfer is not a coincidence. 64 KiB:
# several full-size segments (GSO on the client side) through XDP.
head -c 65536 /dev/urandom >"$WORK/payload" || abort "prerequisites: cannot write $WORK/payload"

n_listen=0
# tcp_try CLIENT_NS 4|6 PORT: a socat listener in ep on PORT, the payload
# sent from CLIENT_NS. Sets CLIENT_RC (socat's status) and GOT (the file
# the listener wrote; absent if no connection was accepted).
tcp_try() {
	local ns=$1 fam=$2 port=$3 listen connect lpid i
	n_listen=$((n_listen + 1))
	GOT=$WORK/tcp.$n_listen
	if [ "$fam" = 4 ]; then
		listen="TCP4-LISTEN:$port,bind=$EP_V4,reuseaddr"
		connect="TCP4:$EP_V4:$port,connect-timeout=2"
	else
		listen="TCP6-LISTEN:$port,bind=[$EP_V6],reuseaddr"
		connect="TCP6:[$EP_V6]:$port,connect-timeout=2"
	fi
	# -u: one way, listener -> file. The file is created only once a
	# connection has been accepted.
	epg_bg "$NS_EP" socat -u "$listen" "CREATE:$GOT"
	lpid=$EPG_LAST_PID
	if ! epg_wait_listen "$NS_EP" tcp "$port"; then
		CLIENT_RC=255
		epg_stop "$lpid"
		return
	fi
	EPG_CMD_TIMEOUT=10 epg_in "$ns" socat -u "OPEN:$WORK/payload" "$connect" 2>"$WORK/tcp.$n_listen.err"
	CLIENT_RC=$?
	if [ "$CLIENT_RC" -eq 0 ]; then
		# the listener exits on EOF, after writing everything: 5 s at most
		for i in $(seq 1 50); do
			kill -0 "$lpid" 2>/dev/null || break
			sleep 0.1
		done
	fi
	epg_stop "$lpid"
}

# udp_try CLIENT_NS 4|6: 3 datagrams to ep's udp 5353, one every 0.1 s.
# Sets GOT (what the listener received) and SENT_OK (all 3 sends succeeded).
udp_try() {
	local ns=$1 fam=$2 recv send i lpid tag
	n_listen=$((n_listen + 1))
	GOT=$WORK/udp.$n_listen
	tag="epgate-udp-$n_listen-$RANDOM"
	UDP_TAG=$tag
	if [ "$fam" = 4 ]; then
		recv="UDP4-RECV:5353,bind=$EP_V4,reuseaddr"
		send="UDP4-SENDTO:$EP_V4:5353"
	else
		recv="UDP6-RECV:5353,bind=[$EP_V6],reuseaddr"
		send="UDP6-SENDTO:[$EP_V6]:5353"
	fi
	epg_bg "$NS_EP" socat -u "$recv" "CREATE:$GOT"
	lpid=$EPG_LAST_PID
	SENT_OK=1
	if ! epg_wait_listen "$NS_EP" udp 5353; then
		SENT_OK=0
		epg_stop "$lpid"
		return
	fi
	for i in 1 2 3; do
		printf '%s-%s\n' "$tag" "$i" | EPG_CMD_TIMEOUT=5 epg_in "$ns" socat -u - "$send" || SENT_OK=0
		sleep 0.1
	done
	sleep 0.5
	epg_stop "$lpid"
}

# ---- topology and attach ---------------------------------------------------

epg_topo_up || abort "topology: namespaces, veths and addresses for run $EPG_RUN_ID"
pass "topology up: namespaces ${EPG_ALL_NS[*]}, bpffs on $EPG_BPFFS"

# Native XDP on veth: supported since Linux 4.19 (NAPI on the receiving
# veth); no skb-mode fallback is needed.
# The documented form is `attach IFACE --mode native`. Should the CLI refuse
# options after IFACE, that is one failure, and the test goes on with the
# options first so that the datapath is still tested.
opts_last=1
for ifc in "${GW_IFACES[@]}"; do
	if [ "$opts_last" = 1 ]; then
		out=$(epgate attach "$ifc" --mode native 2>&1)
		rc=$?
		if [ "$rc" -eq 0 ]; then
			pass "attach $ifc --mode native"
			continue
		fi
		opts_last=0
		if out2=$(epgate attach --mode native "$ifc" 2>&1); then
			fail "attach $ifc --mode native: exit $rc, yet 'attach --mode native $ifc' works (options after IFACE are not parsed)" "$out"
			continue
		fi
		abort "attach $ifc in native mode" "$out" "$out2"
	fi
	out=$(epgate attach --mode native "$ifc" 2>&1) || abort "attach --mode native $ifc" "$out"
	pass "attach --mode native $ifc"
done

if out=$(epgate apply --check "$FIX"/*.json 2>&1); then
	pass "apply --check of the fixtures: $out"
else
	fail "apply --check of the fixtures (exit $?)" "$out"
fi
if out=$(epgate apply "$FIX"/*.json 2>&1); then
	pass "apply the fixtures: $out"
else
	abort "apply the fixtures (exit $?)" "$out"
fi

st=$(status_json)
want=$(printf '%s\n' "${GW_IFACES[@]}" | sort | jq -Rsc 'split("\n") | map(select(. != ""))')
got=$(jq -c '[.interfaces[] | select(.mode == "native" and .hook == "xdp") | .interface] | sort' <<<"$st" 2>/dev/null)
if [ -n "$got" ] && [ "$got" = "$want" ]; then
	pass "status --json lists ${GW_IFACES[*]} as attached (native, xdp)"
else
	fail "status --json lists the attached interfaces" "want $want, got ${got:-unparsable status}"
fi
# What status says against what the kernel says.
bad=""
for ifc in "${GW_IFACES[@]}"; do
	id=$(jq -r --arg i "$ifc" '.interfaces[] | select(.interface == $i) | .program_id' <<<"$st" 2>/dev/null)
	link=$(ip -n "$NS_GW" -d link show dev "$ifc" 2>&1)
	grep -Eq "prog/xdp id ${id:-none} " <<<"$link" || bad+="$ifc: status program ${id:-?}, kernel: $(grep -o 'prog/xdp.*' <<<"$link" | head -1); "
done
if [ -z "$bad" ]; then
	pass "the kernel runs, on each gw interface, the XDP program status reports"
else
	fail "status agrees with ip -d link show" "$bad"
fi
# The deny cache: on unless its diagnostics flag (8) is set, which status shows.
meta_flags() { bash scripts/meta-flag.sh "$EPG_PIN" 8 "$1"; }
dc_on=$(jq -r '.deny_cache' <<<"$st" 2>/dev/null)
meta_flags set && dc_off=$(status_json | jq -r '.deny_cache' 2>/dev/null) &&
	dc_text=$(epgate status 2>/dev/null | grep -c '^deny cache: off')
meta_flags clear && dc_back=$(status_json | jq -r '.deny_cache' 2>/dev/null)
if [ "$dc_on" = on ] && [ "$dc_off" = off ] && [ "$dc_text" = 1 ] && [ "$dc_back" = on ]; then
	pass "status: deny_cache on; off while its diagnostics flag is set (and said in the text form); on again"
else
	fail "status shows the deny cache's flag" "on: ${dc_on:-?}, flag set: ${dc_off:-?} (text lines: ${dc_text:-?}), cleared: ${dc_back:-?}"
fi
addrs=$(jq -c --arg ep "$EP_ID" '[.endpoints[] | select(.endpoint_id == $ep) | .addresses[]] | sort' <<<"$st" 2>/dev/null)
if [ "$addrs" = '["198.18.3.2","fd00:3::2"]' ]; then
	pass "status --json: $EP_ID has 198.18.3.2 and fd00:3::2"
else
	fail "status --json: endpoint addresses" "want [\"198.18.3.2\",\"fd00:3::2\"], got ${addrs:-nothing}"
fi

# ---- TCP --------------------------------------------------------------------

# tcp_allowed NS FAM PORT RULE: transfer arrives intact; the rule's hits
# grew by exactly what the endpoint counted as accepted by a rule.
tcp_allowed() {
	local ns=$1 fam=$2 port=$3 rule=$4 s0 s1 acc rh
	s0=$(snap)
	tcp_try "$ns" "$fam" "$port"
	s1=$(snap)
	acc=$(d "$(ctr "$s1" ingress accept rule)" "$(ctr "$s0" ingress accept rule)")
	rh=$(d "$(hits "$s1" "$rule")" "$(hits "$s0" "$rule")")
	if [ "$CLIENT_RC" -eq 0 ] && [ -f "$GOT" ] && cmp -s "$WORK/payload" "$GOT"; then
		pass "${ns##*-} -> ep tcp $port over IPv$fam: 64 KiB arrived intact"
	else
		fail "${ns##*-} -> ep tcp $port over IPv$fam: 64 KiB arrived intact" \
			"client exit $CLIENT_RC ($(tr '\n' ' ' <"$WORK/tcp.$n_listen.err" 2>/dev/null))," \
			"received $(stat -c %s "$GOT" 2>/dev/null || echo no file) bytes; $(neigh_diag)"
	fi
	if cmp_n "$acc" -gt 0 && [ "$acc" = "$rh" ]; then
		pass "  counted: ingress accept/rule +$acc packets = hits of '$rule' +$rh"
	else
		fail "  counted: ingress accept/rule delta > 0 and equal to the hits of '$rule'" \
			"accept/rule +$acc, rule hits +$rh"
	fi
}

# tcp_denied NS FAM PORT: the connection fails, nothing reaches the
# listener, and the drops are counted as no_rule.
tcp_denied() {
	local ns=$1 fam=$2 port=$3 s0 s1 drop acc
	s0=$(snap)
	tcp_try "$ns" "$fam" "$port"
	s1=$(snap)
	drop=$(d "$(ctr "$s1" ingress reject no_rule)" "$(ctr "$s0" ingress reject no_rule)")
	acc=$(d "$(ctr "$s1" ingress accept '*')" "$(ctr "$s0" ingress accept '*')")
	if [ "$CLIENT_RC" -ne 0 ] && [ "$CLIENT_RC" -ne 255 ] && [ ! -s "$GOT" ] &&
		cmp_n "$drop" -gt 0 && [ "$acc" = 0 ]; then
		pass "${ns##*-} -> ep tcp $port over IPv$fam is dropped ($drop SYNs counted no_rule, listener got nothing)"
	else
		fail "${ns##*-} -> ep tcp $port over IPv$fam is dropped" \
			"client exit $CLIENT_RC (255: listener never came up), listener got $(stat -c %s "$GOT" 2>/dev/null || echo 0) bytes," \
			"no_rule +$drop, ingress accepted +$acc"
	fi
}

tcp_allowed "$NS_CL1" 4 8080 "$R_TCP4"
tcp_allowed "$NS_CL1" 6 8080 "$R_TCP6"
tcp_denied "$NS_CL2" 4 8080
tcp_denied "$NS_CL2" 6 8080
tcp_denied "$NS_CL1" 4 8081

# ---- UDP (the rule's peer is a security group: members' addresses) --------

# 3 datagrams from 3 socat processes (3 source ports): 3 flows, so 3 rule
# hits with or without connection tracking.
udp_case() {
	local ns=$1 fam=$2 want=$3 s0 s1 acc accr drop rh n
	s0=$(snap)
	udp_try "$ns" "$fam"
	s1=$(snap)
	acc=$(d "$(ctr "$s1" ingress accept '*')" "$(ctr "$s0" ingress accept '*')")
	accr=$(d "$(ctr "$s1" ingress accept rule)" "$(ctr "$s0" ingress accept rule)")
	drop=$(d "$(ctr "$s1" ingress reject '*')" "$(ctr "$s0" ingress reject '*')")
	rh=$(d "$(hits "$s1" "$R_UDP")" "$(hits "$s0" "$R_UDP")")
	n=$(grep -c "^$UDP_TAG-" "$GOT" 2>/dev/null)
	if [ "$want" = allowed ]; then
		if [ "$SENT_OK" = 1 ] && [ "${n:-0}" -eq 3 ] && [ "$acc" = 3 ] && [ "$accr" = 3 ] &&
			[ "$rh" = 3 ] && [ "$drop" = 0 ]; then
			pass "${ns##*-} -> ep udp 5353 over IPv$fam: 3/3 datagrams arrived; accept/rule +3, '$R_UDP' +3"
		else
			fail "${ns##*-} -> ep udp 5353 over IPv$fam arrives" \
				"sent ok: $SENT_OK, received ${n:-0}/3, ingress accepted +$acc (by a rule +$accr), rule hits +$rh, rejected +$drop (want 3, 3, 3, 0)"
		fi
	else
		drop=$(d "$(ctr "$s1" ingress reject no_rule)" "$(ctr "$s0" ingress reject no_rule)")
		if [ "$SENT_OK" = 1 ] && [ "${n:-0}" -eq 0 ] && [ "$drop" = 3 ] && [ "$acc" = 0 ]; then
			pass "${ns##*-} -> ep udp 5353 over IPv$fam: 0/3 arrived; no_rule +3 exactly"
		else
			fail "${ns##*-} -> ep udp 5353 over IPv$fam is dropped" \
				"sent ok: $SENT_OK, received ${n:-0}/3, no_rule +$drop, ingress accepted +$acc (want 0, 3, 0)"
		fi
	fi
}

udp_case "$NS_CL1" 4 allowed
udp_case "$NS_CL1" 6 allowed
udp_case "$NS_CL2" 4 denied
udp_case "$NS_CL2" 6 denied

# ---- ICMP echo: exact deltas (3 requests of known size) --------------------

# ping_case NS FAM allowed|denied RULE: ping -c 3 -W 1 (56 data bytes:
# 98-byte IPv4 frames, 118-byte IPv6 frames as XDP sees them). Allowed: 3
# requests accepted, 3 rule hits (stateless) or 1 rule hit and 2 tracked (one
# echo id: one flow); the replies all leave. Denied: exactly 3 no_rule drops.
ping_case() {
	local ns=$1 fam=$2 want=$3 rule=${4:-} s0 s1 rc acc accb accr drop dropb egr egd rh frame dst nr
	if [ "$fam" = 4 ]; then frame=98 dst=$EP_V4; else frame=118 dst=$EP_V6; fi
	nr=3
	[ "$STATEFUL" = 1 ] && nr=1
	s0=$(snap)
	EPG_CMD_TIMEOUT=10 epg_in "$ns" ping -"$fam" -n -q -c 3 -W 1 "$dst" >"$WORK/ping.out" 2>&1
	rc=$?
	s1=$(snap)
	acc=$(d "$(ctr "$s1" ingress accept '*')" "$(ctr "$s0" ingress accept '*')")
	accb=$(d "$(ctr "$s1" ingress accept '*' bytes)" "$(ctr "$s0" ingress accept '*' bytes)")
	accr=$(d "$(ctr "$s1" ingress accept rule)" "$(ctr "$s0" ingress accept rule)")
	drop=$(d "$(ctr "$s1" ingress reject '*')" "$(ctr "$s0" ingress reject '*')")
	dropb=$(d "$(ctr "$s1" ingress reject no_rule bytes)" "$(ctr "$s0" ingress reject no_rule bytes)")
	egr=$(d "$(ctr "$s1" egress accept '*')" "$(ctr "$s0" egress accept '*')")
	egd=$(d "$(ctr "$s1" egress reject '*')" "$(ctr "$s0" egress reject '*')")
	if [ "$want" = allowed ]; then
		rh=$(d "$(hits "$s1" "$rule")" "$(hits "$s0" "$rule")")
		if [ "$rc" -eq 0 ] && [ "$acc" = 3 ] && [ "$accb" = $((3 * frame)) ] && [ "$accr" = "$nr" ] &&
			[ "$rh" = "$nr" ] && [ "$drop" = 0 ] && cmp_n "$egr" -ge 3 && [ "$egd" = 0 ]; then
			pass "${ns##*-} ping -$fam ep: 3/3 replies; ingress accepted +3 (+$accb bytes), '$rule' +$nr, egress accepted +$egr"
		else
			fail "${ns##*-} ping -$fam ep works, counted exactly" \
				"ping exit $rc: $(tail -2 "$WORK/ping.out" | head -1)" \
				"ingress accepted +$acc (+$accb bytes), by a rule +$accr, rule hits +$rh, rejected +$drop; egress accepted +$egr, rejected +$egd" \
				"want 3 (+$((3 * frame))), $nr, $nr, 0; >= 3, 0" "$(neigh_diag)"
		fi
	else
		if [ "$rc" -ne 0 ] && grep -q ' 0 received' "$WORK/ping.out" && [ "$drop" = 3 ] &&
			[ "$dropb" = $((3 * frame)) ] && [ "$acc" = 0 ] && [ "$egr" = 0 ]; then
			pass "${ns##*-} ping -$fam ep: 0/3 replies; no_rule +3 exactly (+$dropb bytes)"
		else
			fail "${ns##*-} ping -$fam ep fails, counted exactly" \
				"ping exit $rc: $(tail -2 "$WORK/ping.out" | head -1)" \
				"ingress rejected +$drop (no_rule +$dropb bytes), accepted +$acc, egress accepted +$egr (want 3 (+$((3 * frame))), 0, 0)"
		fi
	fi
}

ping_case "$NS_CL1" 4 allowed "$R_ICMP4"
ping_case "$NS_CL1" 6 allowed "$R_ICMP6"
ping_case "$NS_CL2" 4 denied
ping_case "$NS_CL2" 6 denied

# Traffic neither to nor from the endpoint passes and is counted only as
# pass-through: cl1 <-> cl2 through the gw.
s0=$(snap)
EPG_CMD_TIMEOUT=10 epg_in "$NS_CL1" ping -4 -n -q -c 3 -W 1 "$CL2_V4" >"$WORK/ping.out" 2>&1
rc=$?
s1=$(snap)
pt=$(d "$(passthrough "$s1")" "$(passthrough "$s0")")
e0=$(jq -c '[.endpoints[].counters]' <<<"$s0" 2>/dev/null)
e1=$(jq -c '[.endpoints[].counters]' <<<"$s1" 2>/dev/null)
if [ "$rc" -eq 0 ] && cmp_n "$pt" -ge 6 && [ -n "$e0" ] && [ "$e0" = "$e1" ]; then
	pass "cl1 ping cl2 (not endpoint traffic) passes: passthrough +$pt, endpoint counters unchanged"
else
	fail "cl1 ping cl2 passes, counted only as pass-through" \
		"ping exit $rc, passthrough +$pt (want >= 6), endpoint counters $([ "$e0" = "$e1" ] && echo unchanged || echo changed)"
fi

# ---- totals after all the traffic -------------------------------------------

s=$(snap)
a=$(ctr "$s" ingress accept rule)
r=$(ctr "$s" ingress reject no_rule)
if cmp_n "$a" -gt 0 && cmp_n "$r" -gt 0; then
	pass "stats --json: $EP_ID ingress accept/rule $a packets, ingress reject/no_rule $r packets"
else
	fail "stats --json: ingress accept/rule > 0 and reject/no_rule > 0" "accept/rule $a, no_rule $r" \
		"stats stderr: $(cat "$WORK/stats.err" 2>/dev/null)"
fi
h4=$(hits "$s" "$R_TCP4")
h6=$(hits "$s" "$R_TCP6")
if cmp_n "$h4" -gt 0 && cmp_n "$h6" -gt 0; then
	pass "stats --rules --json: '$R_TCP4' $h4 hits, '$R_TCP6' $h6 hits"
else
	fail "stats --rules --json: the tcp 8080 rules have hits" "'$R_TCP4': $h4, '$R_TCP6': $h6" \
		"rules listed: $(jq -c '[.rules[]?.description]' <<<"$s" 2>/dev/null)"
fi
# One endpoint: its accepted-by-rule packets and bytes are the sum of its
# inbound rules' hits and bytes.
sh=$(jq -r '[.rules[] | select(.direction == "ingress") | .hits] | add // 0' <<<"$s" 2>/dev/null)
sb=$(jq -r '[.rules[] | select(.direction == "ingress") | .bytes] | add // 0' <<<"$s" 2>/dev/null)
ab=$(ctr "$s" ingress accept rule bytes)
if cmp_n "$a" -gt 0 && [ "$sh" = "$a" ] && [ "$sb" = "$ab" ]; then
	pass "per-rule totals match the endpoint's: $sh hits = $a packets, $sb bytes = $ab bytes"
else
	fail "per-rule totals match the endpoint's accept/rule counter" \
		"rules: ${sh:-?} hits, ${sb:-?} bytes; endpoint: $a packets, $ab bytes"
fi
# Egress: the endpoint's replies all left. Stateless: as not_enforced only;
# with tracking: as tracked (replies of inbound flows), never not_enforced.
egd=$(ctr "$s" egress reject '*')
eg=$(ctr "$s" egress accept '*')
ne=$(ctr "$s" egress accept not_enforced)
tr=$(ctr "$s" egress accept tracked)
if [ "$STATEFUL" = 0 ]; then
	want_desc="egress accepted only as not_enforced, none rejected"
	egress_ok() { cmp_n "$eg" -gt 0 && [ "$ne" = "$eg" ] && [ "$egd" = 0 ]; }
else
	want_desc="egress replies accepted as tracked, none rejected, none not_enforced"
	egress_ok() { cmp_n "$tr" -gt 0 && [ "$ne" = 0 ] && [ "$egd" = 0 ]; }
fi
if egress_ok; then
	pass "$want_desc: $eg packets (not_enforced $ne, tracked $tr)"
else
	fail "$want_desc" "accepted $eg (not_enforced $ne, tracked $tr), rejected $egd"
fi

# ---- apply: invalid input changes nothing -----------------------------------

gen0=$(status_json | jq -r '.generation' 2>/dev/null)
jq '.SecurityGroups[0].IpPermissions[0].IpRanges[0].CidrIp = "198.18.1.0/33"' \
	"$FIX/security-groups.json" >"$WORK/bad-cidr.json"
jq '.SecurityGroups[0].IpPermissions[1].UserIdGroupPairs[0].GroupId = "sg-0ffffffffffffffff"' \
	"$FIX/security-groups.json" >"$WORK/bad-ref.json"
for bad in bad-cidr bad-ref; do
	cp "$FIX/vpc-endpoints.json" "$FIX/network-interfaces.json" "$WORK/" 2>/dev/null
	out=$(epgate apply --check "$WORK/vpc-endpoints.json" "$WORK/network-interfaces.json" "$WORK/$bad.json" 2>&1)
	rc_check=$?
	out2=$(epgate apply "$WORK/vpc-endpoints.json" "$WORK/network-interfaces.json" "$WORK/$bad.json" 2>&1)
	rc=$?
	gen1=$(status_json | jq -r '.generation' 2>/dev/null)
	if [ "$rc_check" -eq 2 ] && [ "$rc" -eq 2 ] && cmp_n "$gen0" -ge 1 && [ "$gen1" = "$gen0" ]; then
		pass "apply ($bad) exits 2, generation stays $gen0: ${out2%%$'\n'*}"
	else
		fail "apply of an invalid document ($bad) exits 2 and changes nothing" \
			"apply --check exit $rc_check, apply exit $rc (want 2, 2); generation $gen0 -> $gen1" "$out2"
	fi
done
# The policy in force is still the fixtures': cl1 allowed, cl2 denied.
s0=$(snap)
EPG_CMD_TIMEOUT=5 epg_in "$NS_CL1" ping -4 -n -q -c 1 -W 1 "$EP_V4" >/dev/null 2>&1
rc1=$?
EPG_CMD_TIMEOUT=5 epg_in "$NS_CL2" ping -4 -n -q -c 1 -W 1 "$EP_V4" >/dev/null 2>&1
rc2=$?
s1=$(snap)
drop=$(d "$(ctr "$s1" ingress reject no_rule)" "$(ctr "$s0" ingress reject no_rule)")
if [ "$rc1" -eq 0 ] && [ "$rc2" -ne 0 ] && [ "$drop" = 1 ]; then
	pass "after the rejected applies the policy still holds (cl1 ping ok, cl2 dropped)"
else
	fail "after the rejected applies the policy still holds" "cl1 ping exit $rc1, cl2 ping exit $rc2, no_rule +$drop"
fi

# Re-applying the same documents: a new generation, the same rule ids.
ids0=$(snap | jq -c '[.rules[] | .rule + " " + .description] | sort' 2>/dev/null)
out=$(epgate apply "$FIX"/*.json 2>&1)
rc=$?
gen2=$(status_json | jq -r '.generation' 2>/dev/null)
ids1=$(snap | jq -c '[.rules[] | .rule + " " + .description] | sort' 2>/dev/null)
if [ "$rc" -eq 0 ] && cmp_n "$gen0" -ge 1 && [ "$gen2" = $((gen0 + 1)) ] && [ -n "$ids0" ] && [ "$ids0" = "$ids1" ]; then
	pass "re-apply: generation $gen0 -> $gen2, rule ids unchanged"
else
	fail "re-apply: generation + 1, rule ids unchanged" "exit $rc, generation $gen0 -> $gen2" "$ids0" "$ids1"
fi

# ---- detach --all -------------------------------------------------------------

out=$(epgate detach --all 2>&1)
rc=$?
left=""
for ifc in "${GW_IFACES[@]}"; do
	link=$(ip -n "$NS_GW" -d link show dev "$ifc" 2>&1) || { left+="$ifc: $link; "; continue; }
	grep -Eq 'prog/xdp|[ <]xdp(generic|drv|offload)?[ >]' <<<"$link" && left+="$ifc: $(grep -o 'prog/xdp.*' <<<"$link"); "
	# a build with a tc egress hook must remove that too
	tcf=$(tc -n "$NS_GW" filter show dev "$ifc" egress 2>&1)
	grep -q 'epg_' <<<"$tcf" && left+="$ifc: tc egress $(grep -o 'epg_[a-z_]*:\[[0-9]*\]' <<<"$tcf" | head -1); "
done
nif=$(status_json | jq -r '.interfaces | length' 2>/dev/null)
if [ "$rc" -eq 0 ] && [ -z "$left" ] && [ "$nif" = 0 ]; then
	pass "detach --all: no XDP (or tc) program left on ${GW_IFACES[*]}, status lists no interface"
else
	fail "detach --all leaves no XDP program" "exit $rc: $out" "still attached: ${left:-none}; status interfaces: ${nif:-?}"
fi
# Nothing enforces any more: cl2 reaches the endpoint.
EPG_CMD_TIMEOUT=5 epg_in "$NS_CL2" ping -4 -n -q -c 1 -W 1 "$EP_V4" >/dev/null 2>&1
rc=$?
if [ "$rc" -eq 0 ]; then
	pass "after detach, cl2 ping ep goes through (nothing filters)"
else
	fail "after detach, cl2 ping ep goes through" "ping exit $rc"
fi

exit 0
