#!/usr/bin/env bash
# Bad input changes nothing: each case exits 2 with a message that names
# what is wrong and where, and the installed policy generation stays. Needs
# root: a private bpffs, and one namespace with a veth pair for the attach
# cases (nothing outside it is touched).
set -u
BUILD=${BUILD:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
EPG="$ROOT/$BUILD/epgate"
EX="$ROOT/examples"
NS="epg-bad-$$"
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
ko() { fail=$((fail + 1)); echo "FAIL $*"; }
TMP=$(mktemp -d /tmp/epg-bad.XXXXXX)
cleanup() {
	ip netns delete "$NS" 2>/dev/null
	umount "$TMP/bpf" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
mkdir "$TMP/bpf" && mount -t bpf bpf "$TMP/bpf" || { echo "cannot mount bpffs"; echo "0 passed, 1 failed"; exit 1; }
ip netns add "$NS" && ip -n "$NS" link add va type veth peer name vb &&
	ip -n "$NS" link set va up && ip -n "$NS" link set vb up ||
	{ echo "cannot create the namespace"; echo "0 passed, 1 failed"; exit 1; }
E() { timeout 30 ip netns exec "$NS" "$EPG" --pin-dir "$TMP/bpf/epgate" "$@"; }
gen() { E status --json | jq .generation; }

E apply "$EX"/*.json >/dev/null && ok "apply the examples" || ko "apply the examples"
G=$(gen)

# expect NAME EXPECTED_MESSAGE_PART CMD...: exit 2, the message, generation kept
expect() {
	local name=$1 want=$2 out rc
	shift 2
	out=$("$@" 2>&1 >/dev/null)
	rc=$?
	if [ "$rc" -ne 2 ]; then
		ko "$name: exit $rc, expected 2 ($out)"
	elif ! grep -qF -- "$want" <<<"$out"; then
		ko "$name: message lacks '$want': $out"
	elif [ "$(gen)" != "$G" ]; then
		ko "$name: generation moved from $G to $(gen)"
	else
		ok "$name: $out"
	fi
}

# variants of the examples' security groups, one defect each
sg() { jq "$1" "$EX/security-groups.json" >"$TMP/$2.json"; }
sg '.' ok
printf '{"SecurityGroups": [\n  {"GroupId": "sg-1",\n   "IpPermissions": [}\n' >"$TMP/syntax.json"
sg '.SecurityGroups[0].IpPermissions[0].FromPort = "443"' type
sg '.SecurityGroups[0].IpPermissions[0].ToPort = 70000' port
sg '.SecurityGroups[0].IpPermissions[0].IpRanges[0].CidrIp = "10.20.0.0/33"' cidr
sg '.SecurityGroups[0].IpPermissions[0].UserIdGroupPairs[0].GroupId = "sg-0ffffffffffffffff"' unknown
sg '.SecurityGroups[1].GroupId = .SecurityGroups[0].GroupId' dup
jq '.NetworkAcls[0].Entries[1].RuleNumber = .NetworkAcls[0].Entries[0].RuleNumber' "$EX/network-acls.json" >"$TMP/aclnum.json"
truncate -s 65M "$TMP/huge.json"
rest=("$EX/vpc-endpoints.json" "$EX/network-interfaces.json" "$EX/prefix-lists.json")

expect "invalid JSON, with line and column" "syntax.json:3:22: invalid JSON" E apply "$TMP/syntax.json"
expect "wrong type" "SecurityGroups[0].IpPermissions[0].FromPort" E apply "$TMP/type.json" "${rest[@]}"
expect "port out of range" "SecurityGroups[0].IpPermissions[0].ToPort: 70000" E apply "$TMP/port.json" "${rest[@]}"
expect "bad CIDR" "10.20.0.0/33" E apply "$TMP/cidr.json" "${rest[@]}"
expect "unknown id" "sg-0ffffffffffffffff is not in the documents" E apply "$TMP/unknown.json" "${rest[@]}"
expect "duplicate id" "duplicate" E apply "$TMP/dup.json" "${rest[@]}"
expect "ACL rule number reused" "RuleNumber" E apply "$TMP/ok.json" "${rest[@]}" "$TMP/aclnum.json"
expect "document far too large" "huge.json" E apply "$TMP/huge.json"
expect "missing file" "nonexistent.json" E apply "$TMP/nonexistent.json"
expect "apply --check of a bad document" "70000" E apply --check "$TMP/port.json" "${rest[@]}"
expect "unknown command" "unknown command" E frobnicate
expect "unknown option" "unknown option" E apply --frob "$TMP/ok.json"
expect "attach: no such interface" "nosuch0 does not exist" E attach nosuch0
F() { timeout 30 ip netns exec "$NS" "$EPG" --pin-dir "$TMP/bpf/fresh" "$@"; }
expect "attach: no such interface, fresh pin directory" "nosuch0 does not exist" F attach nosuch0
[ ! -e "$TMP/bpf/fresh" ] && ok "the failed attach left no pins behind" || ko "pins left: $(ls "$TMP/bpf/fresh")"
mkdir -p "$TMP/plain"
expect "apply: pin directory not on bpffs" "is not on a bpffs" \
	timeout 30 "$EPG" --pin-dir "$TMP/plain/epgate" apply "$EX"/*.json
expect "serve: a --listen that is no address" "--listen bogus" \
	E serve --listen bogus --interface vb --config "$EX"/*.json
expect "serve: an interface that does not exist" "nosuch0 does not exist" \
	E serve --interface vb --interface nosuch0 --config "$EX"/*.json
expect "serve: a flow log it cannot open" "--flow-log $TMP/nodir/flows.log" \
	E serve --flow-log "$TMP/nodir/flows.log" --interface vb --config "$EX"/*.json
[ "$(ip -n "$NS" -j link show vb | jq '.[0].xdp // empty | length')" = "" ] &&
	ok "serve with a bad option attached nothing to vb" || ko "serve attached to vb: $(ip -n "$NS" link show vb)"
v=$(E status --version) && [ "$v" = "$("$EPG" --version)" ] && ok "status --version: $v" ||
	ko "status --version: '$v', expected '$("$EPG" --version)'"
expect "detach: not attached" "not attached" E detach va
E attach va >/dev/null 2>&1 && ok "attach va" || ko "attach va"
expect "attach twice" "already attached" E attach va
expect "attach: bad mode" "--mode takes native or skb" E attach vb --mode turbo
expect "replace where nothing is attached" "not attached here" E attach vb --replace
# upgrade in place: new programs, same maps (policy, counters, flows)
old_prog=$(E status --json | jq '.interfaces[0].program_id')
old_ct=$(bpftool -j map show pinned "$TMP/bpf/epgate/epg_ct" | jq .id)
if E attach va --replace >/dev/null 2>&1; then ok "attach --replace"; else ko "attach --replace"; fi
new_prog=$(E status --json | jq '.interfaces[0].program_id')
live=$(ip -n "$NS" -j link show va | jq '.[0].xdp.prog.id // .[0].xdp.attached[0].prog.id')
[ "$new_prog" != "$old_prog" ] && [ "$live" = "$new_prog" ] &&
	ok "the interface runs the new program ($old_prog -> $new_prog)" || ko "program $old_prog -> $new_prog, live $live"
[ "$(bpftool -j map show pinned "$TMP/bpf/epgate/epg_ct" | jq .id)" = "$old_ct" ] &&
	ok "the flow table is the same map" || ko "the flow table changed"
[ "$(gen)" = "$G" ] && ok "the policy generation is kept" || ko "generation moved"
E detach va >/dev/null 2>&1 && ok "detach va" || ko "detach va"
expect "detach twice" "not attached" E detach va
# counter sizes: chosen when the pins are created, kept after, checked when asked
S() { timeout 30 ip netns exec "$NS" "$EPG" --pin-dir "$TMP/bpf/small" "$@"; }
if S --max-endpoints 4 --max-rules 30 apply "$EX"/*.json >/dev/null 2>&1; then
	ok "pins created with 4 endpoint and 30 rule counter slots take the examples"
else
	ko "apply with --max-endpoints 4 --max-rules 30"
fi
sizes=$(S status --json | jq -c '.counter_slots | [.endpoints, .rules, .bytes_per_cpu]')
ent() { bpftool -j map show pinned "$TMP/bpf/small/$1" | jq .max_entries; }
[ "$sizes" = "[4,30,$((4 * 512 + 30 * 16))]" ] && [ "$(ent epg_ep_stats)" = 4 ] && [ "$(ent epg_ep_info)" = 4 ] &&
	[ "$(ent epg_rule_stats)" = 30 ] && [ "$(ent epg_rule_keys)" = 30 ] && [ "$(ent epg_rule_info)" = 30 ] &&
	ok "status and the maps show the sizes: $sizes" || ko "sizes: status $sizes, epg_ep_stats $(ent epg_ep_stats), epg_rule_stats $(ent epg_rule_stats)"
S status | grep -q "counter slots: 4 for endpoints, 30 for rules" && ok "status text shows the counter slots" ||
	ko "status text: $(S status | grep counter)"
if S attach va >/dev/null 2>&1 && [ "$(S explain --json --src 10.20.1.100 --dst 10.20.1.37 --proto tcp --dport 443 | jq -r .verdict)" != null ]; then
	ok "attach and explain load the programs against the small pins"
else
	ko "attach or explain against the small pins: $(S attach va 2>&1 | tail -1)"
fi
S detach va >/dev/null 2>&1
S --max-rules 30 apply "$EX"/*.json >/dev/null 2>&1 && ok "the same sizes, asked again: accepted" || ko "--max-rules 30 again refused"
# an upgrade that adds a map to pins of other sizes than this host's defaults
rm -f "$TMP/bpf/small/epg_ct_ended"
out=$(S apply "$EX"/*.json 2>&1)
[ $? -eq 0 ] && [ -e "$TMP/bpf/small/epg_ct_ended" ] && [ "$(ent epg_ep_stats)" = 4 ] &&
	ok "a missing map is added to pins of other sizes, which keep theirs" || ko "adding a map to small pins: $out"
expect "other sizes than the pins'" "was created with 4 endpoint and 30 rule counter slots" S --max-endpoints 8 apply "$EX"/*.json
S --max-endpoints 8 status >/dev/null 2>&1 && ok "read-only commands ignore sizes asked for" ||
	ko "status --max-endpoints 8 on 4-slot pins: $(S --max-endpoints 8 status 2>&1)"
expect "--max-rules out of range" "--max-rules (EPGATE_MAX_RULES) takes 1..262144" S --max-rules 0 status
expect "EPGATE_MAX_ENDPOINTS not a number" "takes 1..16384, not 'x'" \
	env EPGATE_MAX_ENDPOINTS=x timeout 30 ip netns exec "$NS" "$EPG" --pin-dir "$TMP/bpf/small" status
expect "more rules than counter slots" "do not fit the 16384 endpoint and 10 rule counter slots" \
	timeout 30 ip netns exec "$NS" "$EPG" --pin-dir "$TMP/bpf/tiny" --max-rules 10 apply "$EX"/*.json
g=$(timeout 30 ip netns exec "$NS" "$EPG" --pin-dir "$TMP/bpf/tiny" status --json | jq .generation)
[ "$g" = 0 ] && ok "nothing installed where the rules did not fit (generation 0)" || ko "generation $g after a refused apply"


# output that cannot be written is a failure, not a success with half an answer
for cmd in "status --json" "stats" "--help"; do
	# shellcheck disable=SC2086 # the words of cmd are meant
	out=$(E $cmd 2>&1 >/dev/full); rc=$?
	if [ "$rc" -eq 1 ] && grep -q "cannot write the output: No space left on device" <<<"$out"; then
		ok "epgate $cmd > /dev/full: exit 1, $out"
	else
		ko "epgate $cmd > /dev/full: exit $rc (want 1): $out"
	fi
done

# a pin directory of another ABI version is refused, never misread
abi=$(E status --json | jq .abi_version)
bpftool map update pinned "$TMP/bpf/epgate/epg_meta" key hex 00 00 00 00 value hex 63 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 >/dev/null 2>&1
out=$(E status 2>&1); rc=$?
if [ "$rc" -eq 2 ] && grep -q "ABI version 99" <<<"$out"; then ok "other ABI refused: $out"; else ko "other ABI: exit $rc: $out"; fi
want_abi=$(sed -n 's/^#define EPG_ABI_VERSION \([0-9]*\).*/\1/p' "$ROOT/include/epgate/abi.h")
[ -n "$want_abi" ] && [ "$abi" = "$want_abi" ] && ok "ABI version $want_abi (this build's) before" ||
	ko "ABI version was $abi, this build's is '$want_abi'"
# the pin directory and its objects are root-only
mode=$(stat -c %a "$TMP/bpf/epgate")
[ "$mode" = 700 ] && ok "pin directory mode 700" || ko "pin directory mode $mode"
bad=$(find "$TMP/bpf/epgate" -type f ! -perm 600 | wc -l)
[ "$bad" -eq 0 ] && ok "pinned maps and links mode 600" || ko "$bad pinned objects not mode 600"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
