#!/usr/bin/env bash
# shellcheck disable=SC2015 # A && B || fail: fail is meant to run when A or B fails
# Integration test: network ACLs (stateless, ordered, before the security
# group inbound and after it outbound), with real traffic through network
# namespaces.
#
#   cl1 (198.18.1.2, fd00:1::2) --\
#                                  gw (router; epgate, native XDP) -- ep: ep1 198.18.3.2, fd00:3::2
#   cl2 (198.18.2.2, fd00:2::2) --/                                       ep2 198.18.3.3, fd00:3::3
#
# Policy (tests/integ/fixtures/acl/*.json, aws ec2 describe-* shapes): two
# endpoints whose group allows tcp 8080 and echo requests from both clients,
# no outbound rule. ep1's subnet has a network ACL: inbound #90/#91 deny
# everything from cl2, #100/#101 allow tcp 8080 and #110/#111 echo requests
# from cl1; outbound #100/#101 allow the ephemeral range 1024-65535 and
# #110/#111 echo replies to cl1. ep2's subnet has no ACL in the documents.
# Variants of the ACL are made with jq in $WORK.
#
# Verdicts are checked by what arrives (echo servers that log every line
# they receive, ping) and by epgate's counters and ACL entry hits (deltas
# around each exchange). Every check is counted; a check that cannot run is
# a failure. Last line: "N passed, N failed"; the exit status is 0 only when
# nothing failed.
#
# Usage (root, from the repo root): BUILD=build bash tests/integ/test_acl.sh
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
FIX=$ROOT/tests/integ/fixtures/acl

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$ROOT/tests/integ/common.sh"

epg_test_begin

# ---- prerequisites --------------------------------------------------------

epg_require ip jq socat ss ping timeout mountpoint mkfifo awk
for f in vpc-endpoints network-interfaces security-groups network-acls; do
	jq -e . "$FIX/$f.json" >/dev/null 2>&1 || abort "prerequisites: $FIX/$f.json is not JSON"
done
EP_ID=$(jq -er '.VpcEndpoints[0].VpcEndpointId' "$FIX/vpc-endpoints.json") &&
	EP2_ID=$(jq -er '.VpcEndpoints[1].VpcEndpointId' "$FIX/vpc-endpoints.json") &&
	ACL_ID=$(jq -er '.NetworkAcls[0].NetworkAclId' "$FIX/network-acls.json") ||
	abort "prerequisites: cannot read the endpoint and ACL ids from $FIX"
EP2_V4=198.18.3.3 EP2_V6=fd00:3::3

# ACL entries and group rules as `epgate stats --rules` describes them.
A_DENY_CL2_4="#90 deny all from 198.18.2.0/24"
A_DENY_CL2_6="#91 deny all from fd00:2::/64"
A_TCP4="#100 allow tcp 8080 from 198.18.1.0/24"
A_TCP6="#101 allow tcp 8080 from fd00:1::/64"
A_PING4="#110 allow icmp type 8 from 198.18.1.0/24"
A_PING6="#111 allow icmpv6 type 128 from fd00:1::/64"
A_EPH4="#100 allow tcp 1024-65535 to 198.18.1.0/24"
A_EPH6="#101 allow tcp 1024-65535 to fd00:1::/64"
A_PONG4="#110 allow icmp type 0 to 198.18.1.0/24"
A_PONG6="#111 allow icmpv6 type 129 to fd00:1::/64"
A_STAR_IN4="#* deny all from 0.0.0.0/0"
A_STAR_OUT4="#* deny all to 0.0.0.0/0"
A_STAR_OUT6="#* deny all to ::/0"
A_CUT4="#50 deny tcp 8080 from 198.18.1.0/24"
A_CUT6="#51 deny tcp 8080 from fd00:1::/64"
R_TCP4="tcp 8080 from 198.18.0.0/15"
R_TCP6="tcp 8080 from fd00::/8"

LONG=200

# ---- policy documents --------------------------------------------------------

# acl_variant NAME JQ_FILTER: $WORK/acl-NAME.json, the fixture's ACL changed.
acl_variant() {
	jq "$2" "$FIX/network-acls.json" >"$WORK/acl-$1.json" || abort "jq: cannot make the '$1' variant of the ACL"
}
acl_variant base '.'
# stateless: no outbound entry for the replies' ephemeral ports
acl_variant no-ephemeral '.NetworkAcls[0].Entries |= map(select(.Egress == false or .Protocol != "6"))'
# deny entries numbered below the allow entries #100/#101
acl_variant cut '.NetworkAcls[0].Entries += [
	{"RuleNumber": 50, "Egress": false, "Protocol": "6", "RuleAction": "deny", "CidrBlock": "198.18.1.0/24", "PortRange": {"From": 8080, "To": 8080}},
	{"RuleNumber": 51, "Egress": false, "Protocol": "6", "RuleAction": "deny", "Ipv6CidrBlock": "fd00:1::/64", "PortRange": {"From": 8080, "To": 8080}}]'
# the VPC's default ACL: no association, it covers every subnet of the VPC
acl_variant default '.NetworkAcls[0].IsDefault = true | .NetworkAcls[0].Associations = []'

generation() { epgate status --json 2>/dev/null | jq -r '.generation' 2>/dev/null; }

# apply_acl NAME: apply the fixtures with ACL variant NAME ("none": no ACL
# document at all); one check.
apply_acl() {
	local g0 g1 out rc docs=("$FIX/vpc-endpoints.json" "$FIX/network-interfaces.json" "$FIX/security-groups.json")
	[ "$1" = none ] || docs+=("$WORK/acl-$1.json")
	g0=$(generation)
	out=$(epgate apply "${docs[@]}" 2>&1)
	rc=$?
	g1=$(generation)
	if [ "$rc" -eq 0 ] && cmp_n "$g0" -ge 0 && [ "$g1" = $((g0 + 1)) ]; then
		pass "apply with the ACL '$1': generation $g0 -> $g1"
	else
		fail "apply with the ACL '$1'" "exit $rc, generation $g0 -> $g1" "$out"
	fi
}

# ping_n NS 4|6 DST COUNT: how many echo replies came back (-W 1 each)
ping_n() {
	local out
	out=$(EPG_CMD_TIMEOUT=$(($4 + 5)) epg_in "$1" ping -"$2" -n -q -c "$4" -i 0.2 -W 1 "$3" 2>&1)
	grep -oE '[0-9]+ received' <<<"$out" | awk '{print $1}'
}

# delta S0 S1 WHAT...: the change of one counter of ep1; WHAT is
# "ctr DIR ACTION REASON" or "hits DESCRIPTION"
delta() {
	local s0=$1 s1=$2 kind=$3
	shift 3
	case $kind in
	ctr) d "$(ctr "$s1" "$@")" "$(ctr "$s0" "$@")" ;;
	hits) d "$(hits "$s1" "$1")" "$(hits "$s0" "$1")" ;;
	esac
}

# ---- topology, attach, policy ----------------------------------------------

epg_topo_up || abort "topology: namespaces, veths and addresses for run $EPG_RUN_ID"
epg_addr "$NS_EP" to-gw "$EP2_V4/24" "$EP2_V6/64" || abort "topology: ep2's addresses on ep"
pass "topology up: namespaces ${EPG_ALL_NS[*]}, ep1 and ep2 addresses on ep"
epg_attach_gw --mode native
pass "attached to ${GW_IFACES[*]} (native XDP, tc egress)"
apply_acl base

LOG=$WORK/ep-tcp.log
for a in "$EP_V4" "$EP2_V4"; do
	EPG_CMD_TIMEOUT=$LONG epg_echo_server "$NS_EP" tcp 4 "$a" 8080 "$LOG" || abort "echo server on $a:8080"
done
for a in "$EP_V6" "$EP2_V6"; do
	EPG_CMD_TIMEOUT=$LONG epg_echo_server "$NS_EP" tcp 6 "$a" 8080 "$LOG" || abort "echo server on [$a]:8080"
done
pass "echo servers on ep1 and ep2, tcp 8080, IPv4 and IPv6"

# ---- status: which endpoint has which ACL --------------------------------------

# acl_of STATUS_JSON EP: "network_acl_id network_acl_addresses"
acl_of() {
	jq -r --arg e "$2" '.endpoints[] | select(.endpoint_id == $e) | "\(.network_acl_id) \(.network_acl_addresses)"' <<<"$1" 2>/dev/null
}
st=$(epgate status --json 2>/dev/null)
a1=$(acl_of "$st" "$EP_ID")
a2=$(acl_of "$st" "$EP2_ID")
if [ "$a1" = "$ACL_ID 2" ] && [ "$a2" = "null 0" ]; then
	pass "status --json: $EP_ID network_acl_id $ACL_ID (2 addresses), $EP2_ID none (null)"
else
	fail "status --json: the ACL of each endpoint" "$EP_ID: '${a1:-?}' (want '$ACL_ID 2'), $EP2_ID: '${a2:-?}' (want 'null 0')"
fi
txt=$(epgate status 2>/dev/null)
if [ "$(grep -c "network ACL $ACL_ID" <<<"$txt")" = 1 ] &&
	[ "$(grep -c 'no network ACL in the documents' <<<"$txt")" = 1 ]; then
	pass "status: one endpoint with network ACL $ACL_ID, one judged by security groups alone"
else
	fail "status names the ACL of ep1 and says ep2 has none" "$txt"
fi

# ---- allowed by the group and the ACL: cl1 -----------------------------------

# Every packet is judged by the ACL: inbound ones by #100/#101 (tcp 8080),
# the replies by #100/#101 outbound (ephemeral ports), exactly as many hits
# as packets each way.
S_BEGIN=$(snap)
for fam in 4 6; do
	if [ "$fam" = 4 ]; then dst=$EP_V4 ain=$A_TCP4 aout=$A_EPH4 rule=$R_TCP4; else dst=$EP_V6 ain=$A_TCP6 aout=$A_EPH6 rule=$R_TCP6; fi
	tag "cl1-ep1-$fam"
	s0=$(snap)
	tcp_rr "$NS_CL1" "$fam" "$dst" 8080 "$TAG"
	s1=$(snap)
	in_acc=$(delta "$s0" "$s1" ctr ingress accept '*')
	out_acc=$(delta "$s0" "$s1" ctr egress accept '*')
	rej=$(d "$(($(ctr "$s1" ingress reject '*') + $(ctr "$s1" egress reject '*')))" \
		"$(($(ctr "$s0" ingress reject '*') + $(ctr "$s0" egress reject '*')))" 2>/dev/null)
	hin=$(delta "$s0" "$s1" hits "$ain")
	hout=$(delta "$s0" "$s1" hits "$aout")
	rh=$(delta "$s0" "$s1" hits "$rule")
	if [ "$RR_OUT" = "$TAG" ] && logged "$LOG" "$TAG"; then
		pass "cl1 -> ep1 tcp 8080 over IPv$fam: answered (the group and the ACL allow it)"
	else
		fail "cl1 -> ep1 tcp 8080 over IPv$fam: answered" "socat exit $RR_RC, answer '${RR_OUT:0:60}', ep logged it: $(logged "$LOG" "$TAG" && echo yes || echo no)" \
			"$(head -c 300 "$WORK/rr.err" 2>/dev/null)"
	fi
	if cmp_n "$in_acc" -ge 3 && [ "$hin" = "$in_acc" ] && cmp_n "$out_acc" -ge 3 && [ "$hout" = "$out_acc" ] &&
		[ "$rh" = 1 ] && [ "$rej" = 0 ]; then
		pass "  every packet judged: '$ain' +$hin = ingress accepted, '$aout' +$hout = egress accepted; '$rule' +1; none rejected"
	else
		fail "  every packet judged by the ACL entries, one group rule hit" \
			"ingress accepted +$in_acc, '$ain' +$hin; egress accepted +$out_acc, '$aout' +$hout; '$rule' +$rh (want 1); rejected +$rej (want 0); $(rejected "$s0" "$s1")"
	fi
done
for fam in 4 6; do
	if [ "$fam" = 4 ]; then dst=$EP_V4 ain=$A_PING4 aout=$A_PONG4; else dst=$EP_V6 ain=$A_PING6 aout=$A_PONG6; fi
	s0=$(snap)
	got=$(ping_n "$NS_CL1" "$fam" "$dst" 2)
	s1=$(snap)
	hin=$(delta "$s0" "$s1" hits "$ain")
	hout=$(delta "$s0" "$s1" hits "$aout")
	if [ "$got" = 2 ] && [ "$hin" = 2 ] && [ "$hout" = 2 ]; then
		pass "cl1 ping -$fam ep1: 2/2 replies; '$ain' +2, '$aout' +2"
	else
		fail "cl1 ping -$fam ep1: 2/2 replies, each packet an ACL hit" "replies ${got:-?}/2, '$ain' +$hin, '$aout' +$hout (want 2, 2)"
	fi
done

# ---- allowed by the group, denied by the ACL: cl2 -------------------------------

for fam in 4 6; do
	if [ "$fam" = 4 ]; then dst=$EP_V4 deny=$A_DENY_CL2_4 rule=$R_TCP4; else dst=$EP_V6 deny=$A_DENY_CL2_6 rule=$R_TCP6; fi
	tag "cl2-ep1-$fam"
	s0=$(snap)
	tcp_rr "$NS_CL2" "$fam" "$dst" 8080 "$TAG"
	s1=$(snap)
	acl=$(delta "$s0" "$s1" ctr ingress reject denied_by_acl)
	hd=$(delta "$s0" "$s1" hits "$deny")
	rh=$(delta "$s0" "$s1" hits "$rule")
	acc=$(d "$(($(ctr "$s1" ingress accept '*') + $(ctr "$s1" egress accept '*')))" \
		"$(($(ctr "$s0" ingress accept '*') + $(ctr "$s0" egress accept '*')))" 2>/dev/null)
	if [ -z "$RR_OUT" ] && [ "$RR_RC" -ne 0 ] && ! logged "$LOG" "$TAG" && cmp_n "$acl" -ge 1 &&
		[ "$hd" = "$acl" ] && [ "$rh" = 0 ] && [ "$acc" = 0 ]; then
		pass "cl2 -> ep1 tcp 8080 over IPv$fam: refused; denied_by_acl +$acl = '$deny' +$hd; the group's rule never reached (+0)"
	else
		fail "cl2 -> ep1 tcp 8080 over IPv$fam: refused by the ACL" \
			"socat exit $RR_RC, answer '${RR_OUT:0:40}', ep logged it: $(logged "$LOG" "$TAG" && echo yes || echo no)," \
			"denied_by_acl +$acl, '$deny' +$hd (want equal, >= 1), '$rule' +$rh (want 0), accepted +$acc (want 0)"
	fi
	s0=$(snap)
	got=$(ping_n "$NS_CL2" "$fam" "$dst" 2)
	s1=$(snap)
	acl=$(delta "$s0" "$s1" ctr ingress reject denied_by_acl)
	hd=$(delta "$s0" "$s1" hits "$deny")
	if [ "$got" = 0 ] && [ "$acl" = 2 ] && [ "$hd" = 2 ]; then
		pass "cl2 ping -$fam ep1: 0/2 replies; denied_by_acl +2, '$deny' +2"
	else
		fail "cl2 ping -$fam ep1: 0/2 replies, denied by the ACL" "replies ${got:-?}/2, denied_by_acl +$acl, '$deny' +$hd (want 0, 2, 2)"
	fi
done

# ep2's subnet has no ACL: the group alone decides, cl2 gets in.
for fam in 4 6; do
	if [ "$fam" = 4 ]; then dst=$EP2_V4; else dst=$EP2_V6; fi
	tag "cl2-ep2-$fam"
	s0=$(snap)
	tcp_rr "$NS_CL2" "$fam" "$dst" 8080 "$TAG"
	got=$(ping_n "$NS_CL2" "$fam" "$dst" 1)
	s1=$(snap)
	acl=$(d "$(($(ctr_of "$EP2_ID" "$s1" ingress reject denied_by_acl) + $(ctr_of "$EP2_ID" "$s1" egress reject denied_by_acl)))" \
		"$(($(ctr_of "$EP2_ID" "$s0" ingress reject denied_by_acl) + $(ctr_of "$EP2_ID" "$s0" egress reject denied_by_acl)))" 2>/dev/null)
	acc=$(d "$(ctr_of "$EP2_ID" "$s1" ingress accept rule)" "$(ctr_of "$EP2_ID" "$s0" ingress accept rule)")
	if [ "$RR_OUT" = "$TAG" ] && [ "$got" = 1 ] && [ "$acl" = 0 ] && [ "$acc" = 2 ]; then
		pass "cl2 -> ep2 (no ACL) over IPv$fam: tcp 8080 answered, ping answered; ep2 accept/rule +2, denied_by_acl +0"
	else
		fail "cl2 -> ep2 (no ACL) over IPv$fam: the group alone decides" \
			"answer '${RR_OUT:0:40}' (want $TAG), ping replies ${got:-?}/1, ep2 accept/rule +$acc (want 2), denied_by_acl +$acl (want 0)"
	fi
done

# Every packet toward ep1 was judged by exactly one ACL entry, and every
# packet from it that the group let out too: the entries' hits add up to
# ep1's counters (the policy did not change since S_BEGIN).
S_END=$(snap)
sum_hits() { jq -r --arg a "$ACL_ID" --arg d "$2" '[.rules[]? | select(.kind == "network_acl" and .network_acl_id == $a and .direction == $d) | .hits] | add // 0' <<<"$1" 2>/dev/null; }
hin=$(d "$(sum_hits "$S_END" ingress)" "$(sum_hits "$S_BEGIN" ingress)")
hout=$(d "$(sum_hits "$S_END" egress)" "$(sum_hits "$S_BEGIN" egress)")
pin=$(d "$(($(ctr "$S_END" ingress accept '*') + $(ctr "$S_END" ingress reject '*')))" \
	"$(($(ctr "$S_BEGIN" ingress accept '*') + $(ctr "$S_BEGIN" ingress reject '*')))" 2>/dev/null)
pout=$(d "$(($(ctr "$S_END" egress accept '*') + $(ctr "$S_END" egress reject denied_by_acl)))" \
	"$(($(ctr "$S_BEGIN" egress accept '*') + $(ctr "$S_BEGIN" egress reject denied_by_acl)))" 2>/dev/null)
if cmp_n "$hin" -gt 0 && [ "$hin" = "$pin" ] && cmp_n "$hout" -gt 0 && [ "$hout" = "$pout" ]; then
	pass "ACL hits add up: inbound entries +$hin = ep1's ingress packets, outbound entries +$hout = ep1's egress packets past the group"
else
	fail "ACL hits add up to ep1's packets" "inbound entries +$hin, ep1 ingress packets +$pin; outbound entries +$hout, ep1 egress accepted + denied_by_acl +$pout"
fi

# ---- explain names the deciding entry ---------------------------------------------

# explain_is NAME JQ WANT ARGS...: `explain --json ARGS` | jq -r JQ = WANT
explain_is() {
	local name=$1 q=$2 want=$3 j got
	shift 3
	j=$(epgate explain --json "$@" 2>&1)
	got=$(jq -r "$q" <<<"$j" 2>/dev/null)
	if [ "$got" = "$want" ]; then
		pass "explain $name: $got"
	else
		fail "explain $name" "want '$want', got '${got:-?}'" "explain --json $*: $j"
	fi
}
explain_is "cl2 -> ep1 tcp 8080" '.verdict + " " + .reason + " " + .network_acl.network_acl_id + " " + .network_acl.entry' \
	"reject denied_by_acl $ACL_ID $A_DENY_CL2_4" --src "$CL2_V4" --dst "$EP_V4" --proto tcp --dport 8080
explain_is "cl2 -> ep1 icmpv6 echo" '.verdict + " " + .reason + " " + .network_acl.entry' \
	"reject denied_by_acl $A_DENY_CL2_6" --src "$CL2_V6" --dst "$EP_V6" --proto icmpv6 --icmp-type 128 --icmp-code 0
explain_is "cl1 -> ep1 tcp 8080" '.verdict + " " + .reason + " " + .network_acl.entry + " / " + .security_group.description' \
	"accept rule $A_TCP4 / $R_TCP4" --src "$CL1_V4" --dst "$EP_V4" --proto tcp --dport 8080
explain_is "cl1 -> ep1 tcp 8081 (no entry: the * entry)" '.verdict + " " + .reason + " " + .network_acl.entry' \
	"reject denied_by_acl $A_STAR_IN4" --src "$CL1_V4" --dst "$EP_V4" --proto tcp --dport 8081
explain_is "cl2 -> ep2 tcp 8080 (no ACL)" '.verdict + " " + .reason + " " + (.network_acl | tostring) + " / " + .security_group.description' \
	"accept rule null / $R_TCP4" --src "$CL2_V4" --dst "$EP2_V4" --proto tcp --dport 8080

# ---- stateless: without the outbound ephemeral entries, replies are dropped ------

apply_acl no-ephemeral
for fam in 4 6; do
	if [ "$fam" = 4 ]; then dst=$EP_V4 star=$A_STAR_OUT4; else dst=$EP_V6 star=$A_STAR_OUT6; fi
	tag "stateless-$fam"
	s0=$(snap)
	tcp_rr "$NS_CL1" "$fam" "$dst" 8080 "$TAG"
	s1=$(snap)
	accr=$(delta "$s0" "$s1" ctr ingress accept rule)
	acl_out=$(delta "$s0" "$s1" ctr egress reject denied_by_acl)
	acl_in=$(delta "$s0" "$s1" ctr ingress reject denied_by_acl)
	hs=$(delta "$s0" "$s1" hits "$star")
	# (ep1 goes on retransmitting the IPv4 SYN-ACK, half-open, while the
	# IPv6 exchange runs: every egress denial is one of the two * entries')
	hall=$(d "$(($(delta "$s0" "$s1" hits "$A_STAR_OUT4") + $(delta "$s0" "$s1" hits "$A_STAR_OUT6")))" 0 2>/dev/null)
	if [ -z "$RR_OUT" ] && [ "$RR_RC" -ne 0 ] && ! logged "$LOG" "$TAG" && [ "$accr" = 1 ] &&
		cmp_n "$hs" -ge 1 && [ "$hall" = "$acl_out" ] && [ "$acl_in" = 0 ]; then
		pass "IPv$fam: cl1's SYN allowed (accept/rule +1), ep1's SYN-ACKs dropped outbound by '$star' (+$hs; egress denied_by_acl +$acl_out)"
	else
		fail "IPv$fam: without the outbound ephemeral entry the replies are dropped" \
			"answer '${RR_OUT:0:40}', socat exit $RR_RC, ep logged it: $(logged "$LOG" "$TAG" && echo yes || echo no)," \
			"ingress accept/rule +$accr (want 1), '$star' +$hs (want >= 1), egress denied_by_acl +$acl_out (want = hits of both * entries, +$hall), ingress denied_by_acl +$acl_in (want 0); $(rejected "$s0" "$s1")"
	fi
done
got=$(ping_n "$NS_CL1" 4 "$EP_V4" 1)
if [ "$got" = 1 ]; then
	pass "  ping still works: the echo-reply entry is there"
else
	fail "  ping still works without the tcp ephemeral entries" "replies ${got:-?}/1"
fi
apply_acl base

# ---- a deny entry below the allow cuts an established connection ---------------

EPG_CMD_TIMEOUT=$LONG epg_stream_open c4 "$NS_CL1" 4 "$EP_V4" 8080 || abort "stream c4: cannot start socat"
EPG_CMD_TIMEOUT=$LONG epg_stream_open c6 "$NS_CL1" 6 "$EP_V6" 8080 || abort "stream c6: cannot start socat"
ok=1
for c in c4 c6; do
	tag "$c-before"
	epg_stream_send "$c" "$TAG" && epg_stream_wait "$c" "$TAG" 5 || ok=0
done
[ "$ok" = 1 ] && pass "two connections cl1 -> ep1:8080 (IPv4, IPv6) open and echoing" ||
	abort "two connections cl1 -> ep1:8080 open and echo" "c4: $(cat "$(epg_stream_out c4).err" 2>/dev/null)" "c6: $(cat "$(epg_stream_out c6).err" 2>/dev/null)"

apply_acl cut
s0=$(snap)
tag "c4-denied"
T4=$TAG
epg_stream_send c4 "$T4"
tag "c6-denied"
T6=$TAG
epg_stream_send c6 "$T6"
sleep 2.5
s1=$(snap)
acl=$(delta "$s0" "$s1" ctr ingress reject denied_by_acl)
h4=$(delta "$s0" "$s1" hits "$A_CUT4")
h6=$(delta "$s0" "$s1" hits "$A_CUT6")
acc_in=$(delta "$s0" "$s1" ctr ingress accept '*')
if ! epg_stream_wait c4 "$T4" 0 && ! epg_stream_wait c6 "$T6" 0 && ! logged "$LOG" "$T4" && ! logged "$LOG" "$T6" &&
	cmp_n "$h4" -ge 1 && cmp_n "$h6" -ge 1 && [ "$acl" = $((h4 + h6)) ] && [ "$acc_in" = 0 ]; then
	pass "deny #50/#51 added: the open connections' data stops (denied_by_acl +$acl: '$A_CUT4' +$h4, '$A_CUT6' +$h6)"
else
	fail "a deny entry below the allow cuts the open connections at once" \
		"echoed: c4 $(epg_stream_wait c4 "$T4" 0 && echo yes || echo no), c6 $(epg_stream_wait c6 "$T6" 0 && echo yes || echo no); ep logged: $(logged "$LOG" "$T4" && echo c4) $(logged "$LOG" "$T6" && echo c6)" \
		"denied_by_acl +$acl, '$A_CUT4' +$h4, '$A_CUT6' +$h6 (want >= 1 each, sum = denied_by_acl), ingress accepted +$acc_in (want 0); $(rejected "$s0" "$s1")"
fi
nf=$(epgate conntrack --json 2>/dev/null | jq -r --arg e "$EP_V4:8080" --arg e6 "[$EP_V6]:8080" \
	'[.flows[]? | select((.endpoint == $e or .endpoint == $e6) and .state == "established")] | length' 2>/dev/null)
if cmp_n "$nf" -ge 2; then
	pass "  the ACL does not touch tracking: both flows still listed as established"
else
	fail "  both flows still tracked as established while the ACL denies them" "established flows to ep1:8080: ${nf:-?}"
fi
tag "new-while-denied"
s0=$(snap)
tcp_rr "$NS_CL1" 4 "$EP_V4" 8080 "$TAG"
s1=$(snap)
h4=$(delta "$s0" "$s1" hits "$A_CUT4")
if [ -z "$RR_OUT" ] && ! logged "$LOG" "$TAG" && cmp_n "$h4" -ge 1; then
	pass "  a new connection from cl1 is refused too ('$A_CUT4' +$h4)"
else
	fail "  a new connection from cl1 is refused by #50" "answer '${RR_OUT:0:40}', '$A_CUT4' +$h4"
fi

apply_acl base
# The data sent meanwhile is retransmitted (back-off: the next try within
# a few seconds) and then gets through; then a new line.
ok=1
for c in c4 c6; do
	if [ "$c" = c4 ]; then t=$T4; else t=$T6; fi
	if epg_stream_wait "$c" "$t" 12; then
		tag "$c-after"
		epg_stream_send "$c" "$TAG" && epg_stream_wait "$c" "$TAG" 5 || { ok=0; fail "$c: a new line after the deny's removal comes back"; }
	else
		ok=0
		fail "$c: the line held back by the deny gets through once the deny is removed" "not echoed within 12 s; ep logged it: $(logged "$LOG" "$t" && echo yes || echo no)"
	fi
done
[ "$ok" = 1 ] && pass "deny removed: both connections go on (the held-back lines and new ones come back)"
tag "new-after-cut"
tcp_rr "$NS_CL1" 4 "$EP_V4" 8080 "$TAG"
if [ "$RR_OUT" = "$TAG" ]; then
	pass "deny removed: cl1 gets in again with a new connection"
else
	fail "deny removed: cl1 gets in again with a new connection" "answer '${RR_OUT:0:40}', socat exit $RR_RC"
fi
epg_stream_close c4
epg_stream_close c6
sr=$(snap)
hc=$(hits "$sr" "$A_CUT4")
ht=$(hits "$sr" "$A_TCP4")
if [ "$hc" = "?" ] && cmp_n "$ht" -gt 0; then
	pass "stats --rules --json: '#50' is gone with its entry, '$A_TCP4' has $ht hits"
else
	fail "stats --rules --json lists the entries in force" "'$A_CUT4': $hc (want not listed), '$A_TCP4': $ht"
fi

# ---- the VPC's default ACL; no ACL at all ------------------------------------

apply_acl default
st=$(epgate status --json 2>/dev/null)
a1=$(acl_of "$st" "$EP_ID")
a2=$(acl_of "$st" "$EP2_ID")
s0=$(snap)
got=$(ping_n "$NS_CL2" 4 "$EP2_V4" 1)
s1=$(snap)
acl=$(d "$(ctr_of "$EP2_ID" "$s1" ingress reject denied_by_acl)" "$(ctr_of "$EP2_ID" "$s0" ingress reject denied_by_acl)")
if [ "$a1" = "$ACL_ID 2" ] && [ "$a2" = "$ACL_ID 2" ] && [ "$got" = 0 ] && [ "$acl" = 1 ]; then
	pass "IsDefault ACL without associations covers both endpoints of the VPC: cl2's ping to ep2 denied_by_acl +1"
else
	fail "IsDefault ACL covers every subnet of its VPC" "status: $EP_ID '$a1', $EP2_ID '$a2' (want '$ACL_ID 2' both); cl2 ping ep2 replies ${got:-?}/1, ep2 denied_by_acl +$acl (want 0, 1)"
fi

apply_acl none
st=$(epgate status --json 2>/dev/null)
a1=$(acl_of "$st" "$EP_ID")
a2=$(acl_of "$st" "$EP2_ID")
nacl=$(snap | jq -r '[.rules[]? | select(.kind == "network_acl")] | length' 2>/dev/null)
tag "cl2-ep1-no-acl"
tcp_rr "$NS_CL2" 4 "$EP_V4" 8080 "$TAG"
if [ "$a1" = "null 0" ] && [ "$a2" = "null 0" ] && [ "$nacl" = 0 ] && [ "$RR_OUT" = "$TAG" ]; then
	pass "no ACL document: status shows none for both, no ACL entry listed, cl2 reaches ep1 (group alone)"
else
	fail "no ACL document: no ACL anywhere" "status: $EP_ID '$a1', $EP2_ID '$a2' (want 'null 0'), ACL entries listed: ${nacl:-?}, cl2 -> ep1 answer '${RR_OUT:0:40}'"
fi

exit 0
