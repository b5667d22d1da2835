#!/usr/bin/env bash
# Attachments as pinned bpf_links (where libxdp's dispatcher is unavailable,
# as on kernels that refuse freplace programs): the XDP program and the tc
# egress program hang on links pinned under <pin dir>/links, root-only; a
# netlink "xdp off" cannot remove them; `attach --replace` swaps the program
# inside the same links atomically with traffic flowing; detach removes the
# links and their pins; a deleted interface's defunct links are unpinned by
# detach. Where the dispatcher works, epgate attaches through it and these
# checks are reported as skipped. Last line: "N passed, N failed[, N skipped]".
# Root; from the repo root.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$ROOT/tests/integ/common.sh"

epg_test_begin
epg_require ip jq ping timeout bpftool stat
EP_ID=$(jq -er '.VpcEndpoints[0].VpcEndpointId' "$FIX/vpc-endpoints.json") ||
	abort "prerequisites: no endpoint id in $FIX"

epg_topo_up || abort "cannot build the namespace topology"
epg_attach_gw
epgate apply "$FIX/vpc-endpoints.json" "$FIX/network-interfaces.json" "$FIX/security-groups.json" \
	>/dev/null 2>&1 || abort "apply the policy"

iface() { epgate status --json 2>/dev/null | jq -c --arg i "$1" '.interfaces[] | select(.interface == $i)'; }
ifindex() { ip -n "$NS_GW" -j link show "$1" | jq -r '.[0].ifindex'; }
xdp_prog() { ip -n "$NS_GW" -j link show "$1" | jq -r '.[0].xdp.prog.id // .[0].xdp.attached[0].prog.id // empty'; }
link_of() { epg_in "$NS_GW" bpftool -j link show pinned "$EPG_PIN/links/$1" 2>/dev/null; }
ping_ok() { epg_in "$1" ping -4 -n -q -c 3 -i 0.2 -W 1 "$EP_V4" >/dev/null 2>&1; }

IF=gw-ep
X=$(ifindex "$IF")
info=$(iface "$IF")
if [ "$(jq -r .attach <<<"$info")" != bpf-link ]; then
	skip "attached as $(jq -r .attach <<<"$info"), not through links: libxdp's dispatcher works here"
	exit 0
fi
pass "$IF attached through a pinned bpf_link (libxdp's dispatcher is unavailable here)"
[ "$(jq -r .tc_egress_attach <<<"$info")" = tcx-link ] && pass "tc egress through a pinned tcx link" ||
	fail "tc egress attached as $(jq -r .tc_egress_attach <<<"$info")"
prog=$(jq -r .program_id <<<"$info")
tcprog=$(jq -r .tc_egress_program_id <<<"$info")

# the pins: root-only, and they hold our programs on this interface
[ "$(stat -c %a "$EPG_PIN/links")" = 700 ] && pass "links/ is mode 700" || fail "links/ mode $(stat -c %a "$EPG_PIN/links")"
bad=$(find "$EPG_PIN/links" -type f ! -perm 600 | wc -l)
[ "$bad" -eq 0 ] && pass "link pins are mode 600" || fail "$bad link pins not mode 600"
xl=$(link_of "xdp-$X")
tl=$(link_of "tc-$X")
[ "$(jq -r .type <<<"$xl")" = xdp ] && [ "$(jq -r .prog_id <<<"$xl")" = "$prog" ] &&
	pass "links/xdp-$X is an XDP link of program $prog" || fail "links/xdp-$X: $xl"
[ "$(jq -r .prog_id <<<"$tl")" = "$tcprog" ] && pass "links/tc-$X holds tc program $tcprog" || fail "links/tc-$X: $tl"
[ "$(xdp_prog "$IF")" = "$prog" ] && pass "the interface runs program $prog" || fail "the interface runs '$(xdp_prog "$IF")'"

# enforced, and a netlink detach cannot take the program away
ping_ok "$NS_CL1" && pass "cl1 (allowed) reaches the endpoint" || fail "cl1 cannot reach the endpoint"
ping_ok "$NS_CL2" && fail "cl2 (denied) reaches the endpoint" || pass "cl2 (denied) does not"
ip -n "$NS_GW" link set dev "$IF" xdp off 2>/dev/null
[ "$(xdp_prog "$IF")" = "$prog" ] && pass "'ip link set xdp off' leaves the linked program in place" ||
	fail "the program is gone after xdp off: '$(xdp_prog "$IF")'"

# upgrade in place while cl1 pings: same links, new programs, nothing lost
xid=$(jq -r .id <<<"$xl")
tid=$(jq -r .id <<<"$tl")
s0=$(snap)
EPG_CMD_TIMEOUT=20 epg_bg "$NS_CL1" ping -4 -n -q -c 200 -i 0.01 -W 2 "$EP_V4" >/dev/null
P1=$EPG_LAST_PID
sleep 0.5
epgate attach "$IF" --replace >/dev/null 2>&1 && pass "attach --replace" || fail "attach --replace failed"
wait "$P1"; rc1=$?
s1=$(snap)
info=$(iface "$IF")
xl=$(link_of "xdp-$X")
tl=$(link_of "tc-$X")
nprog=$(jq -r .program_id <<<"$info")
[ "$nprog" != "$prog" ] && [ "$(jq -r .prog_id <<<"$xl")" = "$nprog" ] && [ "$(jq -r .id <<<"$xl")" = "$xid" ] &&
	pass "the same XDP link ($xid) now holds the new program ($prog -> $nprog)" ||
	fail "after the replace: program $prog -> $nprog, link $xid -> $(jq -r .id <<<"$xl") holding $(jq -r .prog_id <<<"$xl")"
[ "$(jq -r .id <<<"$tl")" = "$tid" ] && [ "$(jq -r .prog_id <<<"$tl")" = "$(jq -r .tc_egress_program_id <<<"$info")" ] &&
	[ "$(jq -r .prog_id <<<"$tl")" != "$tcprog" ] &&
	pass "the same tcx link ($tid) holds the new tc program" || fail "tc link after the replace: $tl"
acc=$(d "$(ctr "$s1" ingress accept '*')" "$(ctr "$s0" ingress accept '*')")
[ "$rc1" -eq 0 ] && [ "$acc" = 200 ] && pass "all 200 echo requests of cl1 answered and accepted across the replace" ||
	fail "cl1 across the replace: ping status $rc1, $acc of 200 accepted"
ping_ok "$NS_CL2" && fail "cl2 (denied) reaches the endpoint after the replace" || pass "cl2 still denied after the replace"

# detach: links and pins gone, the interface free, the others still enforcing
epgate detach "$IF" >/dev/null 2>&1 && pass "detach $IF" || fail "detach $IF"
[ ! -e "$EPG_PIN/links/xdp-$X" ] && [ ! -e "$EPG_PIN/links/tc-$X" ] && pass "its link pins are removed" ||
	fail "pins left: $(ls "$EPG_PIN/links")"
[ -z "$(xdp_prog "$IF")" ] && pass "no XDP program on $IF" || fail "$IF still runs '$(xdp_prog "$IF")'"
ping_ok "$NS_CL2" && fail "cl2 reaches the endpoint: detaching $IF lifted gw-cl2's enforcement too" ||
	pass "cl2 still denied where it enters (gw-cl2 keeps its own links)"

# an interface deleted under us: its links go defunct; detach unpins them
ip -n "$NS_GW" link add epg-lx type veth peer name epg-ly && ip -n "$NS_GW" link set epg-lx up &&
	ip -n "$NS_GW" link set epg-ly up || abort "cannot create a veth pair in $NS_GW"
LX=$(ifindex epg-lx)
epgate attach epg-lx >/dev/null 2>&1 && [ -e "$EPG_PIN/links/xdp-$LX" ] && pass "attach epg-lx: links/xdp-$LX pinned" ||
	fail "attach epg-lx"
ip -n "$NS_GW" link del epg-lx
epgate detach epg-lx >/dev/null 2>&1 && pass "detach of the deleted epg-lx succeeds" || fail "detach of the deleted epg-lx"
[ ! -e "$EPG_PIN/links/xdp-$LX" ] && [ ! -e "$EPG_PIN/links/tc-$LX" ] && pass "its defunct links are unpinned" ||
	fail "pins left: $(ls "$EPG_PIN/links")"
[ -z "$(iface epg-lx)" ] && pass "and forgotten by status" || fail "status still lists epg-lx"

# deleted and made again under the same name (a new ifindex): detach by name
# still finds the old entry and unpins its defunct links
ip -n "$NS_GW" link add epg-lx type veth peer name epg-ly && ip -n "$NS_GW" link set epg-lx up ||
	abort "cannot create the veth pair again"
LX=$(ifindex epg-lx)
epgate attach epg-lx >/dev/null 2>&1 || fail "attach epg-lx again"
ip -n "$NS_GW" link del epg-lx
ip -n "$NS_GW" link add epg-lx type veth peer name epg-ly && ip -n "$NS_GW" link set epg-lx up ||
	abort "cannot create the veth pair a third time"
LX2=$(ifindex epg-lx)
[ "$LX2" != "$LX" ] || fail "the kernel gave the new epg-lx the old ifindex $LX (cannot test)"
out=$(epgate detach epg-lx 2>&1) && pass "detach epg-lx (made again, ifindex $LX -> $LX2) succeeds: $out" ||
	fail "detach epg-lx made again: $out"
[ ! -e "$EPG_PIN/links/xdp-$LX" ] && [ ! -e "$EPG_PIN/links/tc-$LX" ] &&
	pass "the old interface's defunct links are unpinned" || fail "pins left: $(ls "$EPG_PIN/links")"
[ -z "$(iface epg-lx)" ] && pass "status lists no epg-lx" || fail "status still lists epg-lx: $(iface epg-lx)"
ip -n "$NS_GW" link del epg-lx

# a replace whose tc half fails (its tcx link gone) leaves the new XDP
# program recorded: status names the program that runs, and says the
# interface is not fully attached (no tc egress program); detach removes it
X1=$(ifindex gw-cl1)
rm -f "$EPG_PIN/links/tc-$X1"
out=$(epgate attach --replace gw-cl1 2>&1)
rc=$?
rec=$(iface gw-cl1 | jq -r .program_id)
cur=$(xdp_prog gw-cl1)
if [ "$rc" -ne 0 ] && grep -q "the XDP program was replaced, the tc egress program was not" <<<"$out" &&
	[ -n "$cur" ] && [ "$rec" = "$cur" ] && [ "$(iface gw-cl1 | jq -r .attached)" = false ]; then
	pass "replace with the tc link gone: fails saying so; status records the XDP program now running ($cur) and says not attached (no tc egress program)"
else
	fail "a half-done replace records the XDP program that runs" "exit $rc: $out" "recorded $rec, running $cur"
fi
out=$(epgate detach gw-cl1 2>&1) && [ -z "$(xdp_prog gw-cl1)" ] &&
	pass "and detach removes it: $out" || fail "detach after a half-done replace: $out; XDP still $(xdp_prog gw-cl1)"
epgate attach gw-cl1 >/dev/null 2>&1 || fail "attach gw-cl1 again"

# renamed after the attach: still enforcing (status says attached, by its
# index), and detach --all finds it by index, not by the name it had
ip -n "$NS_GW" link add epg-rn type veth peer name epg-rp && ip -n "$NS_GW" link set epg-rn up &&
	ip -n "$NS_GW" link set epg-rp up || abort "cannot create the veth pair epg-rn"
epgate attach epg-rn >/dev/null 2>&1 || fail "attach epg-rn"
ip -n "$NS_GW" link set epg-rn down && ip -n "$NS_GW" link set epg-rn name epg-rn2 &&
	ip -n "$NS_GW" link set epg-rn2 up || abort "cannot rename epg-rn"
att=$(iface epg-rn | jq -r .attached)
[ "$att" = true ] && [ -n "$(xdp_prog epg-rn2)" ] &&
	pass "epg-rn renamed epg-rn2: its program stays, status --json says attached" ||
	fail "renamed interface: status attached $att (want true), XDP program on epg-rn2: $(xdp_prog epg-rn2)"
out=$(epgate detach --all 2>&1)
rc=$?
if [ "$rc" -eq 0 ] && grep -q "detached from epg-rn2 (attached as epg-rn)" <<<"$out" && [ -z "$(xdp_prog epg-rn2)" ] &&
	[ "$(epgate status --json 2>/dev/null | jq '.interfaces | length')" = 0 ]; then
	pass "detach --all detaches the renamed epg-rn2 too, and every other interface: $(tr '\n' ';' <<<"$out")"
else
	fail "detach --all detaches a renamed interface" "exit $rc: $out" "XDP on epg-rn2: $(xdp_prog epg-rn2)"
fi
ip -n "$NS_GW" link del epg-rn2
