#!/usr/bin/env bash
# shellcheck disable=SC2015 # A && B || fail: fail is meant to run when A or B fails
# Integration test: fragmented traffic to an endpoint through the router
# that runs epgate, with real packets through network namespaces.
#
#   cl1 (allowed) --\  MTU 1300
#                    gw (router; epgate on all 3 veths, native XDP) -- ep (the endpoint)
#   cl2 (denied) ---/  MTU 1300                                       MTU 1300
#
# Every link has MTU 1300 at both ends, so the hosts fragment what they
# send themselves (3500-byte UDP datagrams, 3000-byte pings: 3 fragments
# each, over IPv4 and over IPv6 with a Fragment header) and the router
# forwards the fragments as they are: XDP on the router judges every one.
# Policy: tests/integ/fixtures/*.json (as test_sg.sh): the endpoint allows
# udp 5353 from members of sg-clients (cl1's addresses), ICMP / ICMPv6 echo
# from cl1's subnets; nothing from cl2, nothing on udp 5354.
#
#  1. crafted fragments (python3, AF_PACKET on cl1): a later fragment before
#     its first is dropped (`fragment`); once the first has passed, the same
#     later fragment follows and the datagram arrives whole. IPv6 with a
#     destination options header in the fragmentable part (after the
#     Fragment header, in the first fragment only; checked first against
#     cl2, no endpoint): in order, the datagram arrives whole. A TCP
#     fragment at offset 8 and one ending past 65535 bytes:
#     `fragment_bad_offset`.
#  2. UDP, IPv4 and IPv6: 8 datagrams of 3500 bytes from cl1 to ep:5353
#     arrive whole (count and content); first fragments count as rule /
#     tracked, the later ones as fragment_follows; the client fragmented
#     (its FragCreates), ep reassembled (ReasmOKs), the router did not
#     reassemble. From cl2, and from cl1 to udp 5354: nothing arrives, first
#     fragments no_rule, later ones fragment_of_rejected.
#  3. UDP over IPv6 with more extension headers (python3 socket options
#     IPV6_HOPOPTS, IPV6_DSTOPTS): hop-by-hop options, destination options,
#     and both; Linux puts both in the unfragmentable part, so every
#     fragment carries the chain [hop-by-hop] [destination] Fragment.
#  4. ping -s 3000, IPv4 and IPv6: allowed from cl1 (requests and the
#     replies, fragmented by ep, all counted: rule / tracked /
#     fragment_follows both ways), denied from cl2 (fragment_of_rejected).
#  5. in all the in-order traffic above, no later fragment was dropped as
#     `fragment` (first unknown).
#
# Every check is counted; a check that cannot run is a failure. Last line:
# "N passed, N failed"; the exit status is 0 only when nothing failed.
#
# Usage (root, from the repo root): BUILD=build bash tests/integ/test_fragments.sh
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
: "${EPG_RUN_ID:=frag$$}"

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$ROOT/tests/integ/common.sh"

epg_test_begin

# ---- prerequisites --------------------------------------------------------

epg_require ip jq socat ping ss timeout mountpoint cmp awk python3 head stat
EP_ID=$(jq -er '.VpcEndpoints[0].VpcEndpointId' "$FIX/vpc-endpoints.json") ||
	abort "prerequisites: cannot read the endpoint id from $FIX/vpc-endpoints.json"

MTU=1300       # every link, both ends
SIZE=3500      # UDP payload of the real datagrams
N=8            # datagrams per exchange
PINGS=3        # echo requests per ping
PING_SIZE=3000
LONG=120       # the receivers' life bound; the whole test takes well under it

# Fragments per datagram of L4 length LEN (payload + 8) over IPv4 / IPv6 at
# $MTU: the data of every fragment but the last is a multiple of 8 bytes.
nfrags() { # 4|6 L4LEN
	local per
	if [ "$1" = 4 ]; then per=$(((MTU - 20) / 8 * 8)); else per=$(((MTU - 40 - 8) / 8 * 8)); fi
	echo $((($2 + per - 1) / per))
}

# A kernel counter of namespace NS: IPv4 ones from /proc/net/snmp's "Ip:"
# lines (e.g. ReasmOKs), IPv6 ones from /proc/net/snmp6 (e.g. Ip6ReasmOKs).
# shellcheck disable=SC2016 # awk programs
snmp() { # NS NAME
	local v
	case $2 in
	Ip6*) v=$(epg_in "$1" awk -v f="$2" '$1 == f {print $2}' /proc/net/snmp6 2>/dev/null) ;;
	*) v=$(epg_in "$1" awk -v f="$2" '$1 == "Ip:" && !h {for (i = 2; i <= NF; i++) c[$i] = i; h = 1; next}
		$1 == "Ip:" && h && (f in c) {print $(c[f])}' /proc/net/snmp 2>/dev/null) ;;
	esac
	echo "${v:-?}"
}
# snmp_all NS4|6: "creates reasm_reqds reasm_oks" for the family
snmp_all() { # NS 4|6
	if [ "$2" = 4 ]; then
		echo "$(snmp "$1" FragCreates) $(snmp "$1" ReasmReqds) $(snmp "$1" ReasmOKs)"
	else
		echo "$(snmp "$1" Ip6FragCreates) $(snmp "$1" Ip6ReasmReqds) $(snmp "$1" Ip6ReasmOKs)"
	fi
}
# field I of two snmp_all strings, as a delta
sdelta() { # NEW OLD I
	local a b
	a=$(awk -v i="$3" '{print $i}' <<<"$1")
	b=$(awk -v i="$3" '{print $i}' <<<"$2")
	d "$a" "$b"
}

# ctr with action "*" (any): reasons name their action already
ctr_any() { # SNAP DIR REASON
	local v
	v=$(jq -r --arg ep "$EP_ID" --arg d "$2" --arg r "$3" \
		'[.endpoints[] | select(.endpoint_id == $ep) | .counters[]
		  | select(.direction == $d and .reason == $r) | .packets] | add // 0' <<<"$1" 2>/dev/null)
	echo "${v:-?}"
}
dd() { d "$(ctr_any "$s1" "$1" "$2")" "$(ctr_any "$s0" "$1" "$2")"; }

# ---- helpers in python3 (standard library only) --------------------------------

PY=$WORK/frag.py
cat >"$PY" <<'EOF' || abort "cannot write $PY"
"""Senders for test_fragments.sh.

udp FAM DST PORT SIZE FILE [hbh] [dst]
    FILE's bytes as datagrams of SIZE bytes from one UDP socket, the kernel
    fragmenting them; IPv6 with a hop-by-hop options header and/or a
    destination options header (sticky socket options) when asked.
frags FAM IFACE SMAC DMAC SRC DST PROTO SPORT DPORT IDENT TAG L4LEN OFF:LEN:MF...
    hand-made fragments of one datagram (UDP, or a TCP SYN) of L4LEN bytes,
    sent as Ethernet frames on IFACE (AF_PACKET); each OFF:LEN:MF is one
    fragment (bytes of the L4 datagram), sent in the order given. The data
    is TAG repeated, so the same arguments make the same datagram.
"""
import socket
import struct
import sys
import time


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def cmd_udp(fam, dst, port, size, path, *opts):
    af = socket.AF_INET if fam == "4" else socket.AF_INET6
    s = socket.socket(af, socket.SOCK_DGRAM)
    if "hbh" in opts:
        # next header, length 0 (8 bytes), PadN with 4 bytes (RFC 8200 4.2)
        s.setsockopt(socket.IPPROTO_IPV6, getattr(socket, "IPV6_HOPOPTS", 54),
                     bytes([0, 0, 1, 4, 0, 0, 0, 0]))
    if "dst" in opts:
        # 16 bytes: length 1, one option of 12 bytes that a receiver
        # skips (type 0x1e: RFC 4727's experiment, action bits 00). Not
        # padding: Linux refuses more than 7 bytes of it in a row.
        s.setsockopt(socket.IPPROTO_IPV6, getattr(socket, "IPV6_DSTOPTS", 59),
                     bytes([0, 1, 0x1E, 12] + [0x55] * 12))
    s.connect((dst, int(port)))
    size = int(size)
    n = 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(size)
            if not chunk:
                break
            s.send(chunk)
            n += 1
            time.sleep(0.01)
    print(n)


def cmd_frags(fam, iface, smac, dmac, src, dst, proto, sport, dport, ident, tag, l4len, *specs):
    sport, dport, ident, l4len = int(sport), int(dport), int(ident), int(l4len)
    v4 = fam == "4"
    af = socket.AF_INET if v4 else socket.AF_INET6
    sa, da = socket.inet_pton(af, src), socket.inet_pton(af, dst)
    # udp+dst (IPv6): a destination options header in the fragmentable
    # part, so after the Fragment header of the first fragment only
    # (RFC 8200 4.5); OFF:LEN then count from the start of that header
    dstopts = proto.endswith("+dst")
    proto = proto.split("+")[0]
    pnum = 6 if proto == "tcp" else 17
    if proto == "tcp":
        hdr = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 0x02, 65535, 0, 0)
    else:
        hdr = struct.pack("!HHHH", sport, dport, min(l4len, 65535), 0)
    data = (tag.encode() * (l4len // max(1, len(tag)) + 1))[: l4len - len(hdr)]
    if v4:
        pseudo = sa + da + struct.pack("!BBH", 0, pnum, min(l4len, 65535))
    else:
        pseudo = sa + da + struct.pack("!I3xB", l4len, pnum)
    c = csum(pseudo + hdr + data) or 0xFFFF
    if proto == "tcp":
        hdr = hdr[:16] + struct.pack("!H", c) + hdr[18:]
    else:
        hdr = hdr[:6] + struct.pack("!H", c)
    l4 = hdr + data
    l4 += b"\0" * max(0, l4len - len(l4))
    fnh = pnum
    if dstopts:
        l4 = bytes([pnum, 0, 0x1E, 4, 0x55, 0x55, 0x55, 0x55]) + l4
        fnh = 60
    eth = bytes.fromhex(dmac.replace(":", "")) + bytes.fromhex(smac.replace(":", ""))
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    for spec in specs:
        off, ln, mf = (int(x) for x in spec.split(":"))
        part = l4[off:off + ln]
        if v4:
            h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(part), ident & 0xFFFF,
                            (0x2000 if mf else 0) | (off // 8), 64, pnum, 0, sa, da)
            h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
            s.send(eth + b"\x08\x00" + h + part)
        else:
            fh = struct.pack("!BBHI", fnh, 0, (off // 8) << 3 | (1 if mf else 0), ident)
            h = struct.pack("!IHBB16s16s", 0x60000000, 8 + len(part), 44, 64, sa, da)
            s.send(eth + b"\x86\xdd" + h + fh + part)
        time.sleep(0.02)


if __name__ == "__main__":
    {"udp": cmd_udp, "frags": cmd_frags}[sys.argv[1]](*sys.argv[2:])
EOF
python3 -c "import ast, sys; ast.parse(open(sys.argv[1]).read())" "$PY" ||
	abort "prerequisites: python3 cannot parse $PY"

# ---- topology, attach, policy ----------------------------------------------

epg_topo_up || abort "topology: namespaces, veths and addresses for run $EPG_RUN_ID"
ok=1
for l in "$NS_GW gw-cl1" "$NS_GW gw-cl2" "$NS_GW gw-ep" "$NS_CL1 to-gw" "$NS_CL2 to-gw" "$NS_EP to-gw"; do
	read -r ns ifc <<<"$l"
	ip -n "$ns" link set dev "$ifc" mtu "$MTU" || ok=0
done
[ "$ok" = 1 ] || abort "set MTU $MTU on both ends of every link"
pass "topology up: namespaces ${EPG_ALL_NS[*]}, every link MTU $MTU"
epg_attach_gw --mode native
out=$(epgate apply "$FIX"/*.json 2>&1) || abort "apply the fixtures" "$out"
pass "attached to ${GW_IFACES[*]} (native XDP), fixtures applied ($out)"

# Receivers on ep: every datagram's bytes appended to a file (what really
# arrived, whole: the kernel delivers only reassembled datagrams).
declare -A RX=()
for fam in 4 6; do
	if [ "$fam" = 4 ]; then b=$EP_V4; else b="[$EP_V6]"; fi
	for port in 5353 5354; do
		RX[$fam.$port]=$WORK/rx$fam-$port
		: >"${RX[$fam.$port]}"
		EPG_CMD_TIMEOUT=$LONG epg_bg "$NS_EP" socat -u -b 65536 "UDP$fam-RECV:$port,bind=$b" \
			"OPEN:${RX[$fam.$port]},wronly,append" 2>>"$WORK/rx.err"
		epg_wait_listen "$NS_EP" udp "$port" || abort "receiver on ep udp $port (IPv$fam)" "$(cat "$WORK/rx.err")"
	done
done
# and one on cl2 (not an endpoint) for a control of hand-made fragments
RX_CL2=$WORK/rx6-cl2
: >"$RX_CL2"
EPG_CMD_TIMEOUT=$LONG epg_bg "$NS_CL2" socat -u -b 65536 "UDP6-RECV:5353,bind=[$CL2_V6]" \
	"OPEN:$RX_CL2,wronly,append" 2>>"$WORK/rx.err"
epg_wait_listen "$NS_CL2" udp 5353 || abort "receiver on cl2 udp 5353 (IPv6)" "$(cat "$WORK/rx.err")"
pass "receivers on ep: udp 5353 and 5354, IPv4 and IPv6; on cl2: udp 5353, IPv6"
fsize() { stat -c %s "$1" 2>/dev/null || echo 0; }
# wait_size FILE SIZE: until FILE holds SIZE bytes (bounded: 3 s)
wait_size() {
	local i
	for ((i = 0; i < 30; i++)); do
		[ "$(fsize "$1")" -ge "$2" ] && return 0
		sleep 0.1
	done
	[ "$(fsize "$1")" -ge "$2" ]
}

MAC_CL1=$(ip -n "$NS_CL1" -j link show to-gw | jq -r '.[0].address')
MAC_GW1=$(ip -n "$NS_GW" -j link show gw-cl1 | jq -r '.[0].address')
[[ $MAC_CL1 =~ ^[0-9a-f:]{17}$ && $MAC_GW1 =~ ^[0-9a-f:]{17}$ ]] ||
	abort "MAC addresses of cl1's to-gw and gw's gw-cl1" "'$MAC_CL1' '$MAC_GW1'"
# gw must know cl1's link-layer address to forward anything back (and ep's)
epg_in "$NS_CL1" ping -c 1 -W 1 198.18.1.1 >/dev/null 2>&1
epg_in "$NS_CL1" ping -6 -c 1 -W 1 fd00:1::1 >/dev/null 2>&1
epg_in "$NS_EP" ping -c 1 -W 1 198.18.3.1 >/dev/null 2>&1
epg_in "$NS_EP" ping -6 -c 1 -W 1 fd00:3::1 >/dev/null 2>&1

# ---- 1. crafted fragments: out of order, bad offsets ---------------------------
# (first, before any real UDP from cl1 to ep: its identifications cannot
# collide with one the kernel already used)

for fam in 4 6; do
	if [ "$fam" = 4 ]; then src=$CL1_V4 dst=$EP_V4; else src=$CL1_V6 dst=$EP_V6; fi
	rx=${RX[$fam.5353]}
	tag "ooo$fam"
	id=$((1000 + RANDOM % 1000 + fam))
	L4=1608 # 8 + 1600: a first fragment of 1000 bytes, a later one of 608
	frag() { EPG_CMD_TIMEOUT=10 epg_in "$NS_CL1" python3 "$PY" frags "$fam" to-gw "$MAC_CL1" "$MAC_GW1" \
		"$src" "$dst" udp 40000 5353 "$id" "$TAG" "$L4" "$@" 2>>"$WORK/py.err"; }
	sz0=$(fsize "$rx")
	# the later fragment alone: no first known
	s0=$(snap)
	frag 1000:608:0
	sleep 0.3
	s1=$(snap)
	fr=$(dd ingress fragment) fo=$(dd ingress fragment_follows) acc=$(d "$(ctr "$s1" ingress accept '*')" "$(ctr "$s0" ingress accept '*')")
	if [ "$fr" = 1 ] && [ "$fo" = 0 ] && [ "$acc" = 0 ]; then
		pass "IPv$fam: a later fragment before its first is dropped: ingress fragment +1"
	else
		fail "IPv$fam: a later fragment before its first is dropped as 'fragment'" \
			"ingress fragment +$fr (want 1), fragment_follows +$fo (want 0), accepted +$acc (want 0); $(rejected "$s0" "$s1")" \
			"$(tail -n 3 "$WORK/py.err" 2>/dev/null)"
	fi
	# then the first (passes, judged by its rule), then the later one again
	s0=$(snap)
	frag 0:1000:1
	sleep 0.2
	frag 1000:608:0
	got=no
	wait_size "$rx" $((sz0 + 1600)) && got=yes
	s1=$(snap)
	fr=$(dd ingress fragment) fo=$(dd ingress fragment_follows) ru=$(dd ingress rule) rj=$(d "$(ctr "$s1" ingress reject '*')" "$(ctr "$s0" ingress reject '*')")
	want=$(python3 -c 'import sys; t = sys.argv[1]; print((t * (1600 // len(t) + 1))[:1600])' "$TAG" 2>/dev/null)
	gotdata=$(tail -c +$((sz0 + 1)) "$rx" 2>/dev/null)
	if [ "$got" = yes ] && [ "$gotdata" = "$want" ] && [ "$(fsize "$rx")" = $((sz0 + 1600)) ]; then
		pass "IPv$fam: first fragment, then the later one again: the datagram arrives whole (1600 bytes)"
	else
		fail "IPv$fam: first fragment, then the later one again: the datagram arrives whole" \
			"ep received $(($(fsize "$rx") - sz0)) bytes (want 1600), content $([ "$gotdata" = "$want" ] && echo matches || echo differs)"
	fi
	if [ "$ru" = 1 ] && [ "$fo" = 1 ] && [ "$fr" = 0 ] && [ "$rj" = 0 ]; then
		pass "  counted: the first ingress rule +1, the later one fragment_follows +1, nothing rejected"
	else
		fail "  counted: the first as rule, the later one as fragment_follows" \
			"ingress rule +$ru (want 1), fragment_follows +$fo (want 1), fragment +$fr (want 0), rejected +$rj (want 0); $(rejected "$s0" "$s1")"
	fi
	unset -f frag
done

# IPv6: a destination options header in the fragmentable part (RFC 8200
# 4.5: after the Fragment header, in the first fragment only; Linux puts
# destination options before it, so this one is made by hand). In order:
# the first fragment, then the later one, whose Fragment header names
# destination options (60) as its next header though its data is not one.
# Control: the same kind of datagram to cl2, which is no endpoint (epgate
# lets it by without parsing it): the hand-made fragments are well formed.
tag "dst-after-frag-control"
EPG_CMD_TIMEOUT=10 epg_in "$NS_CL1" python3 "$PY" frags 6 to-gw "$MAC_CL1" "$MAC_GW1" \
	"$CL1_V6" "$CL2_V6" udp+dst 40003 5353 $((6000 + RANDOM % 1000)) "$TAG" 1608 0:1008:1 1008:608:0 2>>"$WORK/py.err"
want=$(python3 -c 'import sys; t = sys.argv[1]; print((t * (1600 // len(t) + 1))[:1600])' "$TAG" 2>/dev/null)
if wait_size "$RX_CL2" 1600 && [ "$(cat "$RX_CL2")" = "$want" ]; then
	pass "control: hand-made IPv6 fragments with destination options after the Fragment header, to cl2 (no endpoint): arrive whole"
else
	fail "control: hand-made IPv6 fragments with destination options after the Fragment header reach cl2 (no endpoint) whole" \
		"cl2 received $(fsize "$RX_CL2") bytes (want 1600)" "$(tail -n 3 "$WORK/py.err" 2>/dev/null)"
fi
rx=${RX[6.5353]}
tag "dst-after-frag"
sz0=$(fsize "$rx")
s0=$(snap)
# fragmentable part: 8 bytes of options + 1608 of UDP = 1616
EPG_CMD_TIMEOUT=10 epg_in "$NS_CL1" python3 "$PY" frags 6 to-gw "$MAC_CL1" "$MAC_GW1" \
	"$CL1_V6" "$EP_V6" udp+dst 40003 5353 $((5000 + RANDOM % 1000)) "$TAG" 1608 0:1008:1 1008:608:0 2>>"$WORK/py.err"
got=no
wait_size "$rx" $((sz0 + 1600)) && got=yes
s1=$(snap)
fr=$(dd ingress fragment) fo=$(dd ingress fragment_follows) ru=$(dd ingress rule)
rj=$(d "$(ctr "$s1" ingress reject '*')" "$(ctr "$s0" ingress reject '*')")
want=$(python3 -c 'import sys; t = sys.argv[1]; print((t * (1600 // len(t) + 1))[:1600])' "$TAG" 2>/dev/null)
gotdata=$(tail -c +$((sz0 + 1)) "$rx" 2>/dev/null)
if [ "$got" = yes ] && [ "$gotdata" = "$want" ] && [ "$ru" = 1 ] && [ "$fo" = 1 ] && [ "$rj" = 0 ]; then
	pass "IPv6, destination options after the Fragment header: the datagram arrives whole; rule +1, fragment_follows +1"
else
	fail "IPv6, destination options after the Fragment header (in order): the datagram arrives whole, the later fragment follows" \
		"ep received $(($(fsize "$rx") - sz0)) bytes (want 1600); ingress rule +$ru (want 1), fragment_follows +$fo (want 1), fragment +$fr (want 0); $(rejected "$s0" "$s1")" \
		"(if the later fragment's data is walked as the extension header its Fragment header names (60): dropped as ipv6_ext_headers, or given a bogus protocol, so its key matches no first fragment: fragment)" \
		"$(tail -n 3 "$WORK/py.err" 2>/dev/null)"
fi

# RFC 1858: a TCP fragment at offset 8 bytes (it would overwrite the
# flags of an allowed first fragment), and a UDP fragment ending past 65535
for fam in 4 6; do
	if [ "$fam" = 4 ]; then src=$CL1_V4 dst=$EP_V4; else src=$CL1_V6 dst=$EP_V6; fi
	tag "bad$fam"
	s0=$(snap)
	EPG_CMD_TIMEOUT=10 epg_in "$NS_CL1" python3 "$PY" frags "$fam" to-gw "$MAC_CL1" "$MAC_GW1" \
		"$src" "$dst" tcp 40001 8080 $((3000 + fam)) "$TAG" 48 0:24:1 8:8:1 2>>"$WORK/py.err"
	EPG_CMD_TIMEOUT=10 epg_in "$NS_CL1" python3 "$PY" frags "$fam" to-gw "$MAC_CL1" "$MAC_GW1" \
		"$src" "$dst" udp 40002 5353 $((4000 + fam)) "$TAG" 65552 65512:40:0 2>>"$WORK/py.err"
	sleep 0.3
	s1=$(snap)
	bo=$(dd ingress fragment_bad_offset) ru=$(dd ingress rule) fo=$(dd ingress fragment_follows)
	if [ "$bo" = 2 ] && [ "$ru" = 1 ] && [ "$fo" = 0 ]; then
		pass "IPv$fam: TCP fragment at offset 8 and a fragment ending at 65552: fragment_bad_offset +2 (the TCP first fragment: rule +1)"
	else
		fail "IPv$fam: TCP fragment at offset 8 and one ending past 65535 dropped as fragment_bad_offset" \
			"ingress fragment_bad_offset +$bo (want 2), rule +$ru (want 1: the TCP first fragment), fragment_follows +$fo (want 0); $(rejected "$s0" "$s1")" \
			"$(tail -n 3 "$WORK/py.err" 2>/dev/null)"
	fi
done

# From here on every fragment is sent in order by a kernel.
S_START=$(snap)

# ---- 2. real UDP datagrams, fragmented by the client ---------------------------

# udp_case NAME NS 4|6 PORT ok|refused [python OPTS...]
udp_case() {
	local name=$1 ns=$2 fam=$3 port=$4 want=$5 dst data rx sz0 sz1 k follows
	shift 5
	local py_opts=("$@") sender what st_c0 st_c1 st_e0 st_e1 st_g0 st_g1 rc
	if [ "$fam" = 4 ]; then dst=$EP_V4; else dst=$EP_V6; fi
	rx=${RX[$fam.$port]}
	data=$WORK/data-$name
	head -c $((N * SIZE)) /dev/urandom >"$data" || { fail "$name: cannot write $data"; return; }
	k=$(nfrags "$fam" $((SIZE + 8)))
	follows=$((N * (k - 1)))
	what="$name: $N x $SIZE bytes ${ns##*-} -> ep udp $port (IPv$fam${py_opts[*]:+, ${py_opts[*]}})"
	sz0=$(fsize "$rx")
	st_c0=$(snap_all_ns "$ns" "$fam") st_e0=$(snap_all_ns "$NS_EP" "$fam") st_g0=$(snap_all_ns "$NS_GW" "$fam")
	s0=$(snap)
	if [ ${#py_opts[@]} -gt 0 ]; then
		sender="python3 (${py_opts[*]})"
		EPG_CMD_TIMEOUT=10 epg_in "$ns" python3 "$PY" udp "$fam" "$dst" "$port" "$SIZE" "$data" "${py_opts[@]}" \
			>/dev/null 2>"$WORK/send.err"
	else
		sender=socat
		if [ "$fam" = 6 ]; then dst="[$dst]"; fi
		EPG_CMD_TIMEOUT=10 epg_in "$ns" socat -u -b "$SIZE" "OPEN:$data" "UDP$fam:$dst:$port" 2>"$WORK/send.err"
	fi
	rc=$?
	if [ "$want" = ok ]; then
		wait_size "$rx" $((sz0 + N * SIZE))
	else
		sleep 0.5
	fi
	s1=$(snap)
	st_c1=$(snap_all_ns "$ns" "$fam") st_e1=$(snap_all_ns "$NS_EP" "$fam") st_g1=$(snap_all_ns "$NS_GW" "$fam")
	sz1=$(fsize "$rx")
	local creates reasm_ep reasm_gw_req rule trk fol rej nr forj fr acc
	creates=$(sdelta "$st_c1" "$st_c0" 1)
	reasm_ep=$(sdelta "$st_e1" "$st_e0" 3)
	reasm_gw_req=$(sdelta "$st_g1" "$st_g0" 2)
	rule=$(dd ingress rule) trk=$(dd ingress tracked) fol=$(dd ingress fragment_follows)
	nr=$(dd ingress no_rule) forj=$(dd ingress fragment_of_rejected) fr=$(dd ingress fragment)
	rej=$(d "$(ctr "$s1" ingress reject '*')" "$(ctr "$s0" ingress reject '*')")
	acc=$(d "$(ctr "$s1" ingress accept '*')" "$(ctr "$s0" ingress accept '*')")
	if [ "$rc" -ne 0 ]; then
		fail "$what: the sender ($sender) ran" "exit $rc: $(head -c 300 "$WORK/send.err")"
		return
	fi
	if [ "$creates" = $((N * k)) ]; then
		pass "$what: the client fragmented them ($k fragments each: FragCreates +$creates)"
	else
		fail "$what: the client fragments each datagram into $k" "client's FragCreates +$creates (want $((N * k)))"
	fi
	if [ "$want" = ok ]; then
		if [ "$sz1" = $((sz0 + N * SIZE)) ] && tail -c +$((sz0 + 1)) "$rx" | cmp -s - "$data" &&
			[ "$reasm_ep" = "$N" ] && [ "$reasm_gw_req" = 0 ]; then
			pass "  all $N arrived whole, content identical; ep reassembled $reasm_ep, the router none"
		else
			fail "  all $N datagrams arrive whole, in order, content identical" \
				"ep received $((sz1 - sz0)) bytes (want $((N * SIZE))), content $(tail -c +$((sz0 + 1)) "$rx" | cmp -s - "$data" && echo identical || echo differs)," \
				"ep ReasmOKs +$reasm_ep (want $N), the router's ReasmReqds +$reasm_gw_req (want 0)"
		fi
		if [ "$((rule + trk))" = "$N" ] && [ "$rule" = 1 ] && [ "$fol" = "$follows" ] && [ "$rej" = 0 ]; then
			pass "  counted: first fragments ingress rule +$rule, tracked +$trk; later ones fragment_follows +$fol; nothing rejected"
		else
			fail "  counted: first fragments rule +1 / tracked +$((N - 1)), later ones fragment_follows +$follows, nothing rejected" \
				"ingress rule +$rule, tracked +$trk, fragment_follows +$fol, fragment +$fr; $(rejected "$s0" "$s1")"
		fi
	else
		if [ "$sz1" = "$sz0" ] && [ "$reasm_ep" = 0 ]; then
			pass "  nothing arrived (ep received 0 bytes, reassembled nothing)"
		else
			fail "  nothing arrives" "ep received $((sz1 - sz0)) bytes, ReasmOKs +$reasm_ep"
		fi
		if [ "$nr" = "$N" ] && [ "$forj" = "$follows" ] && [ "$acc" = 0 ] && [ "$fr" = 0 ]; then
			pass "  counted: first fragments ingress no_rule +$nr, later ones fragment_of_rejected +$forj, nothing accepted"
		else
			fail "  counted: first fragments no_rule +$N, later ones fragment_of_rejected +$follows, nothing accepted" \
				"ingress no_rule +$nr, fragment_of_rejected +$forj, fragment +$fr, accepted +$acc; $(rejected "$s0" "$s1")"
		fi
	fi
}
snap_all_ns() { snmp_all "$1" "$2"; }

for fam in 4 6; do
	udp_case "udp$fam-allowed" "$NS_CL1" "$fam" 5353 ok
	udp_case "udp$fam-denied-client" "$NS_CL2" "$fam" 5353 refused
	udp_case "udp$fam-denied-port" "$NS_CL1" "$fam" 5354 refused
done

# ---- 3. IPv6: more extension headers ---------------------------------------------

udp_case "udp6-hbh" "$NS_CL1" 6 5353 ok hbh
udp_case "udp6-dstopts" "$NS_CL1" 6 5353 ok dst
udp_case "udp6-hbh-dstopts" "$NS_CL1" 6 5353 ok hbh dst
udp_case "udp6-hbh-denied" "$NS_CL2" 6 5353 refused hbh

# ---- 4. large pings ------------------------------------------------------------------

ping_case() { # NS 4|6 ok|refused
	local ns=$1 fam=$2 want=$3 dst out rcv k follows what
	if [ "$fam" = 4 ]; then dst=$EP_V4; else dst=$EP_V6; fi
	k=$(nfrags "$fam" $((PING_SIZE + 8)))
	follows=$((PINGS * (k - 1)))
	what="ping -$fam -s $PING_SIZE ${ns##*-} -> ep"
	s0=$(snap)
	out=$(EPG_CMD_TIMEOUT=10 epg_in "$ns" ping -"$fam" -M want -c "$PINGS" -i 0.2 -W 1 -s "$PING_SIZE" "$dst" 2>&1)
	sleep 0.2
	s1=$(snap)
	rcv=$(grep -oE '[0-9]+ (packets )?received' <<<"$out" | awk '{print $1}')
	local irule itrk ifol etrk efol rej nr forj
	irule=$(dd ingress rule) itrk=$(dd ingress tracked) ifol=$(dd ingress fragment_follows)
	etrk=$(dd egress tracked) efol=$(dd egress fragment_follows)
	nr=$(dd ingress no_rule) forj=$(dd ingress fragment_of_rejected)
	rej=$(($(ctr "$s1" ingress reject '*') + $(ctr "$s1" egress reject '*') - $(ctr "$s0" ingress reject '*') - $(ctr "$s0" egress reject '*')))
	if [ "$want" = ok ]; then
		if [ "$rcv" = "$PINGS" ] && [ "$irule" = 1 ] && [ "$itrk" = $((PINGS - 1)) ] && [ "$ifol" = "$follows" ] &&
			[ "$etrk" = "$PINGS" ] && [ "$efol" = "$follows" ] && [ "$rej" = 0 ]; then
			pass "$what: $rcv/$PINGS answered; requests ingress rule +1 tracked +$itrk fragment_follows +$ifol, replies egress tracked +$etrk fragment_follows +$efol"
		else
			fail "$what: every request answered, both ways counted ($k fragments each way)" \
				"received ${rcv:-?}/$PINGS; ingress rule +$irule (want 1), tracked +$itrk (want $((PINGS - 1))), fragment_follows +$ifol (want $follows);" \
				"egress tracked +$etrk (want $PINGS), fragment_follows +$efol (want $follows); rejected +$rej; $(rejected "$s0" "$s1")" \
				"$(tail -n 2 <<<"$out")"
		fi
	else
		if [ "${rcv:-0}" = 0 ] && [ "$nr" = "$PINGS" ] && [ "$forj" = "$follows" ] &&
			[ "$(dd ingress rule)" = 0 ] && [ "$(dd ingress tracked)" = 0 ] && [ "$etrk" = 0 ]; then
			pass "$what: no answer; requests ingress no_rule +$nr, later fragments fragment_of_rejected +$forj"
		else
			fail "$what: refused, later fragments fragment_of_rejected" \
				"received ${rcv:-?}; ingress no_rule +$nr (want $PINGS), fragment_of_rejected +$forj (want $follows), egress tracked +$etrk (want 0)" \
				"$(tail -n 2 <<<"$out")"
		fi
	fi
}
for fam in 4 6; do
	ping_case "$NS_CL1" "$fam" ok
	ping_case "$NS_CL2" "$fam" refused
done

# ---- 5. totals over all the in-order traffic -------------------------------------------

s0=$S_START
s1=$(snap)
fol=$(($(dd ingress fragment_follows) + $(dd egress fragment_follows)))
forj=$(($(dd ingress fragment_of_rejected) + $(dd egress fragment_of_rejected)))
fr=$(($(dd ingress fragment) + $(dd egress fragment)))
bad=$(($(dd ingress fragment_bad_offset) + $(dd egress fragment_bad_offset) + $(dd ingress fragment_table_full) + $(dd egress fragment_table_full)))
ext=$(($(dd ingress ipv6_ext_headers) + $(dd egress ipv6_ext_headers) + $(dd ingress malformed_ip) + $(dd ingress truncated_l4)))
if cmp_n "$fol" -gt 0 && cmp_n "$forj" -gt 0 && [ "$fr" = 0 ] && [ "$bad" = 0 ] && [ "$ext" = 0 ]; then
	pass "in-order traffic in all: fragment_follows +$fol, fragment_of_rejected +$forj, fragment (first unknown) +0, bad offset / table full +0, ext headers / malformed +0"
else
	fail "in-order traffic: fragment_follows > 0, fragment_of_rejected > 0, no 'fragment' drops" \
		"fragment_follows +$fol, fragment_of_rejected +$forj, fragment +$fr (want 0), bad offset / table full +$bad (want 0), ipv6_ext_headers / malformed / truncated +$ext (want 0)"
fi

exit 0
