#!/usr/bin/env bash
# epgate explain against the pinned policy of the example VPC: verdicts,
# reasons, the deciding ACL entry and group rule, and no change to live
# counters or flows. Needs root (bpffs, BPF_PROG_TEST_RUN); no network.
set -u
BUILD=${BUILD:-build}
EPG="$(cd "$(dirname "$0")/../.." && pwd)/$BUILD/epgate"
EX="$(cd "$(dirname "$0")/../.." && pwd)/examples"
pass=0 fail=0
check() { # check NAME COND...
	local name=$1; shift
	if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $name"; fi
}
TMP=$(mktemp -d /tmp/epg-explain.XXXXXX)
cleanup() { umount "$TMP/bpf" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
mkdir "$TMP/bpf" && mount -t bpf bpf "$TMP/bpf" || { echo "cannot mount bpffs"; echo "0 passed, 1 failed"; exit 1; }
E() { "$EPG" --pin-dir "$TMP/bpf/epgate" "$@"; }

check "apply the examples" E apply "$EX"/*.json
x() { E explain --json "$@"; }
j=$(x --src 10.20.1.100 --dst 10.20.1.37 --proto tcp --dport 443)
check "member of the VPC range: accept" test "$(jq -r .verdict <<<"$j")" = accept
check "reason rule" test "$(jq -r .reason <<<"$j")" = rule
check "ACL entry #100 decided" test "$(jq -r .network_acl.entry <<<"$j")" = "#100 allow tcp 443 from 10.20.0.0/16"
check "group rule named" test "$(jq -r .security_group.description <<<"$j")" = "tcp 443 from 10.20.0.0/16"
check "direction ingress" test "$(jq -r .direction <<<"$j")" = ingress
j=$(x --src 10.20.99.5 --dst 10.20.1.37 --proto tcp --dport 443)
check "deny entry #90 below the allow" test "$(jq -r '.verdict + " " + .reason + " " + .network_acl.entry' <<<"$j")" = "reject denied_by_acl #90 deny all from 10.20.99.0/24"
j=$(x --src 192.0.2.7 --dst 10.20.1.37 --proto tcp --dport 443)
check "prefix-list source: the ACL has no entry for it" test "$(jq -r .reason <<<"$j")" = denied_by_acl
j=$(x --src 10.20.1.100 --dst 10.20.2.41 --proto tcp --dport 443)
check "second interface: default ACL allows, group allows" test "$(jq -r '.verdict + " " + .security_group.description' <<<"$j")" = "accept tcp 443 from 10.20.0.0/16"
j=$(x --src 10.20.1.100 --dst 10.20.2.41 --proto tcp --dport 80)
check "no rule for port 80" test "$(jq -r '.verdict + " " + .reason' <<<"$j")" = "reject no_rule"
j=$(x --src 2001:db8:20:1::37 --dst 2001:db8:20:5::1 --proto tcp --sport 443 --dport 50000 --tcp-flags 18)
check "IPv6 egress reply port: accept" test "$(jq -r '.verdict + " " + .direction' <<<"$j")" = "accept egress"
j=$(x --src 10.9.9.9 --dst 10.8.8.8 --proto udp --dport 53)
check "not endpoint traffic" test "$(jq -r '.endpoint_traffic' <<<"$j")" = false
check "no counter moved" test "$(E stats --json | jq '[.endpoints[].counters[]] | length')" = 0
check "no flow created" test "$(E conntrack --json | jq .entries)" = 0
# exempt peers: what the ACL or the groups would drop passes, as not_enforced
echo '{"EpgateSettings": {"ExemptPeers": [{"Cidr": "10.20.99.5/32", "Description": "a resolver"}]}}' >"$TMP/exempt.json"
check "apply the examples with an exempt peer" E apply "$EX"/*.json "$TMP/exempt.json"
check "status shows the exempt peer" test "$(E status --json | jq .exempt_peers)" = 1
check "status text says so" bash -c "'$EPG' --pin-dir '$TMP/bpf/epgate' status | grep -q '^exempt peers: 1 '"
j=$(x --src 10.20.99.5 --dst 10.20.1.37 --proto tcp --dport 443)
check "exempt peer the ACL denies: accept not_enforced" test "$(jq -r '.verdict + " " + .reason' <<<"$j")" = "accept not_enforced"
j=$(x --src 10.20.99.6 --dst 10.20.1.37 --proto tcp --dport 443)
check "its neighbour is still denied" test "$(jq -r .reason <<<"$j")" = denied_by_acl
check "apply the examples again, no exempt peer" E apply "$EX"/*.json
j=$(x --src 10.20.99.5 --dst 10.20.1.37 --proto tcp --dport 443)
check "the ACL denies it again" test "$(jq -r .reason <<<"$j")" = denied_by_acl
check "status: no exempt peer" test "$(E status --json | jq .exempt_peers)" = 0
# neighbour discovery to an endpoint address: link plumbing, as the datapath
# passes it (hop limit 255), not judged by the group
j=$(x --src fe80::1 --dst 2001:db8:20:1::37 --proto icmpv6 --icmp-type 135)
check "neighbour solicitation: passes untouched, no reason" \
	test "$(jq -r '.verdict + " " + (.passes_untouched | tostring) + " " + (.reason | tostring)' <<<"$j")" = "accept true null"
j=$(x --src 2001:db8:99::1 --dst 2001:db8:20:1::37 --proto icmpv6 --icmp-type 200)
check "other ICMPv6 is judged" test "$(jq -r '.passes_untouched' <<<"$j")" = false
E conntrack --json --expire >"$TMP/ct.json" 2>&1
check "conntrack --json --expire answers in JSON" test "$(jq -r '"\(.removed) \(.which)"' "$TMP/ct.json" 2>&1)" = "0 idle"
out=$(E attach epg-no-such-if --replace --mode skb 2>&1)
rc=$?
check "attach --replace --mode: usage error 2, before the interface is looked at (replace keeps the mode)" \
	eval '[ "$rc" -eq 2 ] && grep -q "replace keeps the mode" <<<"$out"'
E explain --src 10.20.1.100 --dst 10.20.1.37 --proto tcp >/dev/null 2>&1
check "tcp without --dport: usage error 2" test $? -eq 2
E explain --src 10.20.1.100 --dst 2001:db8::1 --proto tcp --dport 1 >/dev/null 2>&1
check "mixed families: usage error 2" test $? -eq 2
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
