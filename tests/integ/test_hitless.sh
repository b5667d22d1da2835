#!/usr/bin/env bash
# Hitless policy updates with real traffic: while cl1 (allowed) and cl2
# (denied) ping the endpoint steadily, epgate apply alternates hundreds of
# times between two policies that agree on those flows (the second adds an
# unrelated rule and changes every generation-keyed map entry). No allowed
# packet may be lost to epgate and no denied one may pass; two epgate
# processes applying at once are serialised by the pin directory's lock.
# Then applies that change much at once: a policy shrinking from 1,507
# rules to 7, 30,000 addresses replaced by 30,000 others, and one that
# fails after naming its rules (status must not show them).
# Last line: "N passed, N failed". Root; from the repo root.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$ROOT/tests/integ/common.sh"

epg_test_begin
epg_require ip jq ping timeout
EP_ID=$(jq -er '.VpcEndpoints[0].VpcEndpointId' "$FIX/vpc-endpoints.json") ||
	abort "prerequisites: no endpoint id in $FIX"

epg_topo_up || abort "cannot build the namespace topology"
epg_attach_gw
A=("$FIX/vpc-endpoints.json" "$FIX/network-interfaces.json" "$FIX/security-groups.json")
jq '.SecurityGroups[0].IpPermissions += [{"IpProtocol": "tcp", "FromPort": 9, "ToPort": 9,
	"IpRanges": [{"CidrIp": "198.19.99.0/24"}]}]' "$FIX/security-groups.json" >"$WORK/sg-b.json" ||
	abort "cannot write the second policy"
B=("$FIX/vpc-endpoints.json" "$FIX/network-interfaces.json" "$WORK/sg-b.json")
epgate apply "${A[@]}" >/dev/null 2>&1 || abort "apply the first policy"
gen() { epgate status --json 2>/dev/null | jq -r .generation; }

N=${EPG_HITLESS_APPLIES:-200}
COUNT=600
s0=$(snap)
g0=$(gen)
# 600 echo requests each, 10 ms apart (about 6 s), while the applies run
EPG_CMD_TIMEOUT=40 epg_bg "$NS_CL1" ping -4 -n -q -c "$COUNT" -i 0.01 -W 2 "$EP_V4"
P1=$EPG_LAST_PID
EPG_CMD_TIMEOUT=40 epg_bg "$NS_CL2" ping -4 -n -q -c "$COUNT" -i 0.01 -W 1 "$EP_V4"
P2=$EPG_LAST_PID
t0=$SECONDS
fails=0
for i in $(seq 1 "$N"); do
	if [ $((i % 2)) -eq 1 ]; then
		epgate apply "${B[@]}" >/dev/null 2>&1 || fails=$((fails + 1))
	else
		epgate apply "${A[@]}" >/dev/null 2>&1 || fails=$((fails + 1))
	fi
	[ $((SECONDS - t0)) -lt 60 ] || break
done
applied=$i
wait "$P1"; rc1=$?
wait "$P2"; rc2=$?
s1=$(snap)
g1=$(gen)
[ "$fails" -eq 0 ] && [ "$applied" -eq "$N" ] && pass "$N applies alternating two policies, in $((SECONDS - t0)) s" ||
	fail "$applied of $N applies ran, $fails failed"
st=$(epgate status --json 2>/dev/null)
stored=$(jq -r '.rule_sets_stored // "?"' <<<"$st")
inuse=$(jq -r '.rule_sets_in_use // "?"' <<<"$st")
cmp_n "$inuse" -ge 1 && cmp_n "$stored" -le $((2 * ${inuse/\?/0} + 2)) &&
	pass "after $N applies, $stored rule sets stored for $inuse in use: replaced ones are collected or reused" ||
	fail "after $N applies: $stored rule sets stored, $inuse in use"
[ "$(d "$g1" "$g0")" = "$N" ] && pass "the generation advanced once per apply ($g0 -> $g1)" ||
	fail "generation $g0 -> $g1, expected +$N"
acc=$(d "$(ctr "$s1" ingress accept '*')" "$(ctr "$s0" ingress accept '*')")
rej=$(d "$(ctr "$s1" ingress reject '*')" "$(ctr "$s0" ingress reject '*')")
rej_rule=$(d "$(ctr "$s1" ingress reject no_rule)" "$(ctr "$s0" ingress reject no_rule)")
[ "$acc" = "$COUNT" ] && pass "every one of cl1's $COUNT echo requests accepted during the swaps (rule or tracked)" ||
	fail "cl1: $acc of $COUNT accepted" "$(rejected "$s0" "$s1")"
[ "$rej" = "$COUNT" ] && [ "$rej_rule" = "$COUNT" ] &&
	pass "every one of cl2's $COUNT echo requests rejected (no_rule), none passed" ||
	fail "cl2: $rej rejected ($rej_rule no_rule) of $COUNT" "$(rejected "$s0" "$s1")"
pt=$(d "$(jq -r .passthrough_packets <<<"$s1")" "$(jq -r .passthrough_packets <<<"$s0")")
cmp_n "$pt" -lt 100 && pass "no endpoint packet slipped through as pass-through during the swaps ($pt link-level packets)" ||
	fail "pass-through grew by $pt"
[ "$rc1" -eq 0 ] && pass "cl1's ping: no echo lost (exit 0)" || fail "cl1's ping exited $rc1"
[ "$rc2" -ne 0 ] && pass "cl2's ping got no answer (exit $rc2)" || fail "cl2's ping was answered"

# two processes applying at once: serialised, both succeed
g2=$(gen)
( for i in $(seq 1 20); do epgate apply "${A[@]}" >/dev/null 2>&1 || echo fail; done ) >"$WORK/c1" &
c1=$!
( for i in $(seq 1 20); do epgate apply "${B[@]}" >/dev/null 2>&1 || echo fail; done ) >"$WORK/c2" &
c2=$!
wait "$c1" "$c2"
g3=$(gen)
[ ! -s "$WORK/c1" ] && [ ! -s "$WORK/c2" ] && [ "$(d "$g3" "$g2")" = 40 ] &&
	pass "two processes applying 20 times each at once: all 40 applied, one generation each ($g2 -> $g3)" ||
	fail "concurrent applies: generation $g2 -> $g3, failures: $(cat "$WORK/c1" "$WORK/c2" | wc -l)"
st=$(epgate status --json 2>/dev/null)
[ "$(jq '.endpoints | length' <<<"$st")" = 1 ] && [ "$(jq '.rules' <<<"$st")" -ge 1 ] &&
	pass "the policy is whole after the concurrent applies" || fail "status after concurrent applies: $st"

# A policy that shrinks: 1,500 rules stored, then the small policy again.
# apply looked the stored rules up in a table sized for the new policy's,
# which filled up: it spun for ever, holding the pin directory's lock.
# (1,000 inbound and 500 outbound: a ruleset holds 1,024 a direction)
jq 'def hosts(n): [range(n) | {"CidrIp": "198.19.\(. / 256 | floor).\(. % 256)/32"}];
	.SecurityGroups[0].IpPermissions += [{"IpProtocol": "tcp", "FromPort": 7, "ToPort": 7,
	"IpRanges": hosts(1000)}] |
	.SecurityGroups[0].IpPermissionsEgress += [{"IpProtocol": "tcp", "FromPort": 7, "ToPort": 7,
	"IpRanges": hosts(500)}]' \
	"$FIX/security-groups.json" >"$WORK/sg-big.json" || abort "cannot write the large policy"
BIG=("$FIX/vpc-endpoints.json" "$FIX/network-interfaces.json" "$WORK/sg-big.json")
r_big=$(epgate apply "${BIG[@]}" >/dev/null 2>&1 && epgate status --json 2>/dev/null | jq .rules)
cmp_n "${r_big:-0}" -gt 1500 && pass "a policy of $r_big rules applied" || fail "the large policy: '$r_big' rules"
r_small=$(EPG_CMD_TIMEOUT=30 epgate apply "${A[@]}" >/dev/null 2>&1 && epgate status --json 2>/dev/null | jq .rules)
cmp_n "${r_small:-0}" -ge 1 && cmp_n "$r_small" -lt 100 &&
	pass "then the small policy: applied within 30 s, $r_small rules" ||
	fail "shrinking from $r_big rules: '$r_small' rules (apply hung or failed)"

# Every address replaced: 30,000 by 30,000 others. epg_addr holds both
# generations (65,536 entries); writing the new addresses before deleting
# the stale ones needed room for 90,000 and failed as "map is full".
many() { # PREFIX N: the interface with N more addresses under it
	jq --arg p "$1" --argjson n "$2" '.NetworkInterfaces[0].PrivateIpAddresses += [range($n)
		| {"PrivateIpAddress": "\($p).\(. / 250 | floor + 40).\(. % 250 + 1)"}]' \
		"$FIX/network-interfaces.json"
}
many 198.18 30000 >"$WORK/eni-many-a.json" && many 198.19 30000 >"$WORK/eni-many-b.json" &&
	many 198.19 40000 >"$WORK/eni-many-c.json" ||
	abort "cannot write the address-heavy interfaces"
n_ok=0
for f in a b a; do
	epgate apply "$FIX/vpc-endpoints.json" "$WORK/eni-many-$f.json" "$FIX/security-groups.json" \
		>/dev/null 2>"$WORK/many.err" && n_ok=$((n_ok + 1))
done
[ "$n_ok" = 3 ] && pass "30,000 addresses replaced by 30,000 others, and back: all 3 applies succeeded" ||
	fail "$n_ok of 3 address-heavy applies succeeded" "$(cat "$WORK/many.err")"

# An apply that fails after naming its endpoints and rules (40,000 new
# addresses do not fit beside the active 30,000) takes the names back:
# status still describes the policy in force, and the 1,500 rule slots it
# claimed are free again.
before=$(epgate status --json 2>/dev/null | jq -c '[.generation, .rules, [.endpoints[] | .addresses | length]]')
out=$(epgate apply "$FIX/vpc-endpoints.json" "$WORK/eni-many-c.json" "$WORK/sg-big.json" 2>&1 >/dev/null)
rc=$?
after=$(epgate status --json 2>/dev/null | jq -c '[.generation, .rules, [.endpoints[] | .addresses | length]]')
[ "$rc" = 2 ] && grep -q "epg_addr" <<<"$out" && [ -n "$before" ] && [ "$after" = "$before" ] &&
	pass "a failed apply (exit 2: $out) leaves status as it was: $after" ||
	fail "failed apply: exit $rc ($out); status $before -> $after"
