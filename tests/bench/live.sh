#!/usr/bin/env bash
# live.sh: epgate on live traffic, side by side with the same policy in
# nftables and iptables and with an XDP_DROP floor, all in one run on this
# machine (shared and noisy: compare the ratios, which come from one run).
#
#   sender namespace                       receiver namespace
#   lg-tx 198.18.250.1/24  ── veth ──  lg-rx 198.18.250.2/24 = the endpoint
#   livegen (BPF_PROG_TEST_RUN,            one of: XDP_DROP | epgate (native XDP)
#   live frames, XDP_REDIRECT)             | nftables netdev | nftables inet + ct
#                                          | iptables + conntrack | nothing
#
# Traffic (UDP, 60-byte frames, one flow unless said):
#   denied        to a port no rule allows (epgate: no_rule)
#   denied-new    the same, the source port new for each packet (--flows):
#                 a new flow each time (netfilter: a conntrack lookup and
#                 miss each); epgate's deny cache ignores source ports, so
#                 it replays the verdict after the first packet
#   denied-ports  the same, the destination port new for each packet
#                 (--flows --vary-dport, ports 10000 on, none allowed): every
#                 packet a new identity, judged in full by epgate, the deny
#                 cache's lookup and write included (it backs off)
#   established   to the allowed port, on a flow made established first by a
#                 real exchange (a datagram and its reply): epgate `tracked`,
#                 netfilter `ct state established`
# Policy: one EC2 JSON config (written to $BUILD/bench/live-config.json):
# the endpoint's security group and its subnet's network ACL, which every
# packet meets first (the floods pass it and meet the group);
# epgate applies it, tests/bench/sg2rules.sh turns the same file into the
# nftables and iptables rules (copies in $BUILD/bench/live-rules.*).
#
# Measured: packets the receiving veth took in (rx_packets: what XDP, or the
# stack behind it, processed; a packet XDP dropped counts as handled) over
# the generator's run, per second of wall-clock time and per second of CPU
# time. veth polls its NAPI queue in softirq on the CPU that sends to it, in
# the generator's context, so the generator and the receive path share one
# CPU and every rate includes the generator's own cost ("generator alone" in
# the report). The CPU time (the generator's, receive path included, plus
# ksoftirqd's) leaves out what other tasks and the hypervisor take from the
# CPU: on this shared machine the ratios are computed from it. (Threaded NAPI
# would put the receiver on the other CPU, but with veth's 256-frame ring
# every wake-up of the NAPI thread dropped frames: 0.4 to 0.9 Mpps into a
# bare XDP_DROP, a measure of wake-up latency, not of the filters.)
#
# Outputs: $BUILD/bench/live.md (table), live.tsv (every measurement),
# live.png (gnuplot). Exit status 1 when a sanity check failed (the floor did
# not run, nothing was received, epgate's counters do not match what was
# received and sent, a ruleset did not drop or accept what it should), 2 on
# missing prerequisites.
#
# Environment: BUILD (build), EPGATE ($BUILD/epgate), LIVEGEN
# ($BUILD/bench/livegen, built here if missing or older than its source),
# BENCH_QUICK=1 (fewer packets, < 1 minute), LIVE_COUNT (frames per
# measurement; 2000000, quick 400000), LIVE_REPS (5, quick 3), LIVE_SECONDS
# (time bound per measurement; 4, quick 2), LIVE_FLOWS (source ports of
# denied-new, destination ports of denied-ports; 50000, at most 55536),
# LIVE_BUDGET (seconds after which no new repetition
# starts; 180, quick 45), LIVE_CPU (pin the generator, and so the receive
# path, to a CPU). About 2 minutes; BENCH_QUICK=1 about 30 s.
#
# Root only. Touches nothing outside its two namespaces, a private bpffs
# mount and a temporary directory, all removed on every exit path.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 2
BUILD=${BUILD:-build}
OUT=$BUILD/bench
EPGATE=${EPGATE:-$BUILD/epgate}
LIVEGEN=${LIVEGEN:-$BUILD/bench/livegen}
QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
	COUNT=${LIVE_COUNT:-400000} SECS=${LIVE_SECONDS:-2} BUDGET=${LIVE_BUDGET:-45}
else
	COUNT=${LIVE_COUNT:-2000000} SECS=${LIVE_SECONDS:-4} BUDGET=${LIVE_BUDGET:-180}
fi
REPS=${LIVE_REPS:-$([ "$QUICK" = 1 ] && echo 3 || echo 5)}
FLOWS=${LIVE_FLOWS:-50000}
LIVE_CPU=${LIVE_CPU:-}

RUN_ID=$$
NS_TX=epgbench-$RUN_ID-tx
NS_RX=epgbench-$RUN_ID-rx
IF_TX=lg-tx
IF_RX=lg-rx
TX_IP=198.18.250.1
RX_IP=198.18.250.2
NET=198.18.250.0/24
ALLOWED_PORT=5201
DENIED_PORT=9
EST_SPORT=40000
NEW_SPORT=2000
NEW_DPORT=10000 # denied-ports: 10000 .. 10000 + LIVE_FLOWS - 1, none of them allowed
EP_ID=vpce-0be0c0be0c0be0c01

CONFIGS=(floor epgate epgate-nocache nft-netdev nft-inet iptables none)
KINDS=(denied denied-new denied-ports established)
declare -A LABEL=(
	[floor]="XDP_DROP (floor)"
	[epgate]="epgate (native XDP)"
	[epgate-nocache]="epgate, deny cache off"
	[nft-netdev]="nftables netdev ingress, set (stateless)"
	[nft-inet]="nftables inet + ct state"
	[iptables]="iptables + conntrack"
	[none]="no filter (host stack only)"
	[generator]="generator alone (no frame sent)"
	[denied]="denied flood"
	[denied-new]="denied flood, new flows"
	[denied-ports]="denied flood, new port each packet"
	[established]="established flow"
)

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "live.sh: $*"; exit 2; }

WORK="" BPFFS="" PIN="" GEN_PID="" ATTACHED="" CREATED_NS=()
FAILS=()
T0=$SECONDS

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	local rc=$? ns i
	trap - EXIT INT TERM HUP
	if [ -n "$GEN_PID" ] && kill -0 "$GEN_PID" 2>/dev/null; then
		kill -TERM "$GEN_PID" 2>/dev/null
		wait "$GEN_PID" 2>/dev/null
	fi
	if [ -n "$ATTACHED" ]; then
		cfg_down "$ATTACHED" >/dev/null 2>&1
	fi
	for ns in "${CREATED_NS[@]}"; do
		# rules and programs die with the namespace and its veth
		ip netns exec "$ns" nft flush ruleset >/dev/null 2>&1
		ip netns delete "$ns" 2>/dev/null
	done
	if [ -n "$BPFFS" ]; then
		for i in 1 2 3 4 5; do
			mountpoint -q "$BPFFS" || break
			umount "$BPFFS" 2>/dev/null || sleep 0.2
		done
		mountpoint -q "$BPFFS" && umount -l "$BPFFS" 2>/dev/null
		rmdir "$BPFFS" 2>/dev/null
	fi
	[ -n "$WORK" ] && rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

in_tx() { timeout --kill-after=2 30 ip netns exec "$NS_TX" "$@"; }
in_rx() { timeout --kill-after=2 30 ip netns exec "$NS_RX" "$@"; }
epg() { in_rx "$EPGATE" --pin-dir "$PIN" "$@"; }

# ---- prerequisites and builds --------------------------------------------------

[ "$(id -u)" -eq 0 ] || die "run as root (namespaces, XDP, bpffs)"
for t in ip nft iptables iptables-restore ethtool jq gnuplot clang cc socat timeout awk mountpoint; do
	command -v "$t" >/dev/null || die "$t is missing (scripts/install-deps.sh installs it)"
done
[ -x "$EPGATE" ] || die "$EPGATE is missing: run make first"
mkdir -p "$OUT" || die "cannot create $OUT"

LIVEGEN_CMD=(cc -O2 -g -Wall -Wextra -Werror -std=c11 -D_GNU_SOURCE -o "$LIVEGEN" tests/bench/livegen.c -lbpf)
if [ ! -x "$LIVEGEN" ] || [ tests/bench/livegen.c -nt "$LIVEGEN" ]; then
	log "building livegen: ${LIVEGEN_CMD[*]}"
	mkdir -p "$(dirname "$LIVEGEN")" && "${LIVEGEN_CMD[@]}" || die "building livegen failed"
fi
DROP_OBJ=$OUT/xdp_drop.bpf.o
if [ ! -f "$DROP_OBJ" ] || [ tests/bench/xdp_drop.bpf.c -nt "$DROP_OBJ" ]; then
	clang -target bpf -O2 -g -Wall -Werror -I"/usr/include/$(cc -print-multiarch)" \
		-c tests/bench/xdp_drop.bpf.c -o "$DROP_OBJ" || die "building the XDP_DROP program failed"
fi
IPT_VARIANT=$(iptables --version 2>/dev/null | grep -o '(.*)' | tr -d '()')
IPT_VARIANT=${IPT_VARIANT:-legacy}
LABEL[iptables]="iptables ($IPT_VARIANT) + conntrack"

# ---- topology ----------------------------------------------------------------

WORK=$(mktemp -d /tmp/epg-live.XXXXXX) || die "mktemp failed"
BPFFS=$(mktemp -d /tmp/epg-live-bpffs.XXXXXX) || die "mktemp failed"
mount -t bpf bpf "$BPFFS" || { rmdir "$BPFFS"; BPFFS=""; die "cannot mount bpffs"; }
PIN=$BPFFS/epgate

for ns in "$NS_TX" "$NS_RX"; do
	ip netns add "$ns" || die "cannot create namespace $ns"
	CREATED_NS+=("$ns")
	# IPv4 only: no IPv6 link-local, router or listener chatter on the link,
	# so the receiver's counters hold the generator's frames and nothing else
	ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
		net.ipv6.conf.default.disable_ipv6=1 || die "sysctl in $ns failed"
	ip -n "$ns" link set lo up || die "lo up in $ns failed"
done
ip -n "$NS_TX" link add "$IF_TX" type veth peer name "$IF_RX" netns "$NS_RX" &&
	ip -n "$NS_TX" addr add "$TX_IP/24" dev "$IF_TX" &&
	ip -n "$NS_RX" addr add "$RX_IP/24" dev "$IF_RX" &&
	ip -n "$NS_TX" link set "$IF_TX" up &&
	ip -n "$NS_RX" link set "$IF_RX" up || die "cannot set up the veth pair"
# NAPI on the receiving veth whatever is attached (veth only takes
# XDP-redirected frames into a NAPI queue, which XDP or GRO enables); the
# same GRO setting in every configuration. UDP without a GRO socket is not
# coalesced, so every frame stays a packet.
in_rx ethtool -K "$IF_RX" gro on >/dev/null || die "ethtool -K $IF_RX gro on failed"
TX_MAC=$(in_tx cat "/sys/class/net/$IF_TX/address")
RX_MAC=$(in_rx cat "/sys/class/net/$IF_RX/address")
# static neighbours: no ARP on the link either
ip -n "$NS_TX" neigh replace "$RX_IP" lladdr "$RX_MAC" dev "$IF_TX" nud permanent &&
	ip -n "$NS_RX" neigh replace "$TX_IP" lladdr "$TX_MAC" dev "$IF_RX" nud permanent ||
	die "static neighbour entries failed"

# ---- the policy, once, and the same policy as netfilter rules ------------------

CONF=$OUT/live-config.json
cat >"$CONF" <<EOF
{
  "VpcEndpoints": [{
    "VpcEndpointId": "$EP_ID", "VpcEndpointType": "Interface",
    "ServiceName": "com.amazonaws.eu-west-1.bench", "OwnerId": "111122223333",
    "NetworkInterfaceIds": ["eni-0be0c0be0c0be0c01"],
    "Groups": [{"GroupId": "sg-0be0c0be0c0be0c01"}]}],
  "NetworkInterfaces": [{
    "NetworkInterfaceId": "eni-0be0c0be0c0be0c01", "OwnerId": "111122223333",
    "InterfaceType": "vpc_endpoint", "SubnetId": "subnet-0be0c0be0c0be0c01",
    "VpcId": "vpc-0be0c0be0c0be0c01",
    "PrivateIpAddress": "$RX_IP",
    "PrivateIpAddresses": [{"Primary": true, "PrivateIpAddress": "$RX_IP"}],
    "Groups": [{"GroupId": "sg-0be0c0be0c0be0c01"}]}],
  "SecurityGroups": [{
    "GroupId": "sg-0be0c0be0c0be0c01", "GroupName": "bench-endpoint", "OwnerId": "111122223333",
    "IpPermissions": [
      {"IpProtocol": "udp", "FromPort": $ALLOWED_PORT, "ToPort": $ALLOWED_PORT,
       "IpRanges": [{"CidrIp": "$NET"}]},
      {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
       "IpRanges": [{"CidrIp": "198.18.0.0/16"}]},
      {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8090,
       "IpRanges": [{"CidrIp": "198.19.0.0/16"}, {"CidrIp": "198.18.64.0/18"}]}
    ],
    "IpPermissionsEgress": [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "198.18.0.0/15"}]}]}],
  "NetworkAcls": [{
    "NetworkAclId": "acl-0be0c0be0c0be0c01", "IsDefault": false, "OwnerId": "111122223333",
    "VpcId": "vpc-0be0c0be0c0be0c01",
    "Associations": [{"NetworkAclAssociationId": "aclassoc-0be0c0be", "NetworkAclId": "acl-0be0c0be0c0be0c01",
                      "SubnetId": "subnet-0be0c0be0c0be0c01"}],
    "Entries": [
      {"RuleNumber": 90, "Egress": false, "Protocol": "-1", "RuleAction": "deny", "CidrBlock": "198.18.251.0/24"},
      {"RuleNumber": 100, "Egress": false, "Protocol": "6", "RuleAction": "allow", "CidrBlock": "198.18.0.0/15",
       "PortRange": {"From": 443, "To": 443}},
      {"RuleNumber": 110, "Egress": false, "Protocol": "17", "RuleAction": "allow", "CidrBlock": "$NET",
       "PortRange": {"From": 1, "To": 65535}},
      {"RuleNumber": 120, "Egress": false, "Protocol": "1", "RuleAction": "allow", "CidrBlock": "0.0.0.0/0",
       "IcmpTypeCode": {"Type": -1, "Code": -1}},
      {"RuleNumber": 32767, "Egress": false, "Protocol": "-1", "RuleAction": "deny", "CidrBlock": "0.0.0.0/0"},
      {"RuleNumber": 100, "Egress": true, "Protocol": "-1", "RuleAction": "allow", "CidrBlock": "198.18.0.0/15"},
      {"RuleNumber": 32767, "Egress": true, "Protocol": "-1", "RuleAction": "deny", "CidrBlock": "0.0.0.0/0"}
    ]}]
}
EOF
tests/bench/sg2rules.sh nft-netdev "$IF_RX" "$CONF" >"$OUT/live-rules.nft-netdev.nft" &&
	tests/bench/sg2rules.sh nft-inet "$CONF" >"$OUT/live-rules.nft-inet.nft" &&
	tests/bench/sg2rules.sh iptables "$CONF" >"$OUT/live-rules.iptables" ||
	die "sg2rules.sh could not translate $CONF"

# ---- configurations ------------------------------------------------------------

rx_clean() { # nothing attached, no rules: what every configuration starts from
	local xdp rules
	xdp=$(ip -n "$NS_RX" -d link show "$IF_RX" | grep -c 'prog/xdp')
	rules=$(in_rx nft list ruleset 2>/dev/null | grep -c .)
	[ "$xdp" = 0 ] && [ "$rules" = 0 ]
}

cfg_up() {
	local cfg=$1
	rx_clean || { FAILS+=("before $cfg: the receiver is not clean (XDP program or rules left)"); return 1; }
	ATTACHED=$cfg
	case $cfg in
	floor) ip -n "$NS_RX" link set dev "$IF_RX" xdpdrv obj "$DROP_OBJ" sec xdp ;;
	epgate | epgate-nocache)
		epg attach "$IF_RX" --mode native >/dev/null && epg apply "$CONF" >/dev/null &&
			# the deny cache on or off (EPG_META_NO_DENY_CACHE, 8): set
			# either way, as the pins and the flag outlive a configuration
			bash scripts/meta-flag.sh "$PIN" 8 "$([ "$cfg" = epgate ] && echo clear || echo set)" ;;
	nft-netdev) in_rx nft -f "$OUT/live-rules.nft-netdev.nft" ;;
	nft-inet) in_rx nft -f "$OUT/live-rules.nft-inet.nft" ;;
	iptables) in_rx iptables-restore -w 5 "$OUT/live-rules.iptables" ;;
	none) true ;;
	esac
}

cfg_down() {
	local cfg=$1
	case $cfg in
	floor) ip -n "$NS_RX" link set dev "$IF_RX" xdpdrv off ;;
	epgate | epgate-nocache) epg detach "$IF_RX" >/dev/null ;;
	nft-netdev | nft-inet) in_rx nft flush ruleset ;;
	iptables)
		in_rx iptables -w 5 -F && in_rx iptables -w 5 -X
		in_rx nft flush ruleset # iptables-nft's tables, base chains included
		;;
	esac
	ATTACHED=""
	return 0
}

# ---- counters ------------------------------------------------------------------

# "rx_packets rx_dropped xdp_drops udp_delivered" of the receiving veth and
# namespace: rx_dropped holds the frames its full NAPI ring refused, xdp_drops
# what its XDP program dropped (ethtool -S), udp_delivered what reached UDP
# (InDatagrams + NoPorts + InErrors of /proc/net/snmp)
counters() {
	local d=/sys/class/net/$IF_RX/statistics rx rxd x u
	rx=$(in_rx cat "$d/rx_packets")
	rxd=$(in_rx cat "$d/rx_dropped")
	x=$(in_rx ethtool -S "$IF_RX" | awk '/rx_queue_[0-9]+_xdp_drops:/ { s += $2 } END { print s + 0 }')
	u=$(in_rx cat /proc/net/snmp | awk '/^Udp:/ { n++; if (n == 1) for (i = 2; i <= NF; i++) h[$i] = i;
		else print $h["InDatagrams"] + $h["NoPorts"] + $h["InErrors"] }')
	echo "${rx:-0} ${rxd:-0} ${x:-0} ${u:-0}"
}

# expected-reason and all ingress packets of the endpoint: "N M"
epg_counts() {
	local reason=$1 snap
	snap=$(epg stats --json 2>/dev/null) || { echo "? ?"; return; }
	jq -r --arg ep "$EP_ID" --arg r "$reason" '
		[.endpoints[] | select(.endpoint_id == $ep) | .counters[] | select(.direction == "ingress")] as $c
		| "\([$c[] | select(.reason == $r) | .packets] | add // 0) \([$c[].packets] | add // 0)"
	' <<<"$snap" 2>/dev/null || echo "? ?"
}

# A real exchange makes the flow established: a datagram to the allowed port
# from EST_SPORT, and the endpoint's reply. Then netfilter's entry must be
# replied (not [UNREPLIED]).
establish() {
	local cfg=$1 i entry
	in_tx socat -u - "UDP4-DATAGRAM:$RX_IP:$ALLOWED_PORT,bind=$TX_IP:$EST_SPORT" <<<"hello" || return 1
	sleep 0.05
	in_rx socat -u - "UDP4-DATAGRAM:$TX_IP:$EST_SPORT,bind=$RX_IP:$ALLOWED_PORT" <<<"hello" || return 1
	case $cfg in
	nft-inet | iptables)
		for i in $(seq 1 20); do
			entry=$(in_rx grep -F "src=$TX_IP dst=$RX_IP sport=$EST_SPORT dport=$ALLOWED_PORT" \
				/proc/net/nf_conntrack 2>/dev/null)
			if [ -n "$entry" ] && ! grep -q UNREPLIED <<<"$entry"; then
				return 0
			fi
			sleep 0.05
		done
		FAILS+=("$cfg: the exchange did not make the flow established in conntrack: ${entry:-no entry}")
		return 1
		;;
	esac
	sleep 0.05
	return 0
}

# ---- one measurement -------------------------------------------------------------

TSV=$OUT/live.tsv
# columns: see the header line; mpps is wall-clock, cpu_mpps per CPU-second
# (rx over the generator's CPU time plus what ksoftirqd ran meanwhile)
printf 'rep\tconfig\ttraffic\tsent\telapsed_ns\tcpu_ns\tksoftirqd_ns\tgen_mpps\trx\trx_dropped\tmpps\tcpu_mpps\txdp_drops\tudp_delivered\tepgate_expected\tepgate_ingress\n' >"$TSV"

gen_args() {
	case $1 in
	denied) echo "--dport $DENIED_PORT --sport $EST_SPORT" ;;
	denied-new) echo "--dport $DENIED_PORT --sport $NEW_SPORT --flows $FLOWS" ;;
	denied-ports) echo "--dport $NEW_DPORT --sport $EST_SPORT --flows $FLOWS --vary-dport" ;;
	established) echo "--dport $ALLOWED_PORT --sport $EST_SPORT" ;;
	esac
}

# CPU time (ns) of every ksoftirqd thread: softirq work the kernel deferred
# from the generator's context runs there, and belongs to the measurement
mapfile -t KSOFTIRQD < <(pgrep '^ksoftirqd/')
ksoftirqd_ns() {
	local pid sum=0 v
	for pid in "${KSOFTIRQD[@]}"; do
		{ read -r v _ <"/proc/$pid/schedstat"; } 2>/dev/null || continue
		sum=$((sum + v))
	done
	echo "$sum"
}

run_gen() { # extra livegen args...; sets GEN_OUT
	local pin=() rc
	[ -n "$LIVE_CPU" ] && pin=(taskset -c "$LIVE_CPU")
	timeout --kill-after=2 $((SECS + 15)) ip netns exec "$NS_TX" "${pin[@]}" "$LIVEGEN" -q \
		-i "$IF_TX" --dst-mac "$RX_MAC" --src "$TX_IP" --dst "$RX_IP" \
		-n "$COUNT" -t "$SECS" "$@" >"$WORK/gen.out" 2>"$WORK/gen.err" &
	GEN_PID=$!
	wait "$GEN_PID"
	rc=$?
	GEN_PID=""
	GEN_OUT=$(cat "$WORK/gen.out")
	if [ "$rc" -ne 0 ] || [[ $GEN_OUT != sent=* ]]; then
		log "livegen failed (exit $rc): $(head -n 1 "$WORK/gen.err")"
		return 1
	fi
}

field() { sed -n "s/.*\\b$1=\\([0-9.]*\\).*/\\1/p" <<<"$2"; }
per_us() { awk -v n="$1" -v t="$2" 'BEGIN { printf "%.4f", (t > 0 ? n * 1000 / t : 0) }'; }

# tolerance for counter comparisons: a few stray frames, never more than 0.01 %
tol() { local t=$(($1 / 10000)); echo $((t < 8 ? 8 : t)); }

measure() { # rep config kind
	local rep=$1 cfg=$2 kind=$3 b a sent ns cpu ks0 ks1 ks rx rxd xdp udp mpps cmpps gmpps t reason
	local e0=("?" "?") e1=("?" "?") ee="-" ei="-"
	case $kind in established) reason=tracked ;; *) reason=no_rule ;; esac
	if [ "$kind" = established ] && [ "$cfg" != floor ]; then
		establish "$cfg" || FAILS+=("rep $rep $cfg $kind: the exchange before the flood failed")
	fi
	[ "${cfg%-nocache}" = epgate ] && read -ra e0 <<<"$(epg_counts "$reason")"
	read -ra b <<<"$(counters)"
	ks0=$(ksoftirqd_ns)
	# shellcheck disable=SC2046 # word splitting wanted
	if ! run_gen $(gen_args "$kind"); then
		FAILS+=("rep $rep $cfg $kind: the generator failed")
		return 1
	fi
	ks1=$(ksoftirqd_ns)
	read -ra a <<<"$(counters)"
	[ "${cfg%-nocache}" = epgate ] && read -ra e1 <<<"$(epg_counts "$reason")"
	sent=$(field sent "$GEN_OUT")
	ns=$(field elapsed_ns "$GEN_OUT")
	cpu=$(field cpu_ns "$GEN_OUT")
	ks=$((ks1 - ks0))
	rx=$((a[0] - b[0])) rxd=$((a[1] - b[1])) xdp=$((a[2] - b[2])) udp=$((a[3] - b[3]))
	mpps=$(per_us "$rx" "$ns")
	cmpps=$(per_us "$rx" "$(awk -v c="$cpu" -v k="$ks" 'BEGIN { printf "%.0f", c + k }')")
	gmpps=$(per_us "$sent" "$ns")
	if [ "${cfg%-nocache}" = epgate ]; then
		if [[ ${e0[0]} =~ ^[0-9]+$ && ${e1[0]} =~ ^[0-9]+$ && ${e0[1]} =~ ^[0-9]+$ && ${e1[1]} =~ ^[0-9]+$ ]]; then
			ee=$((e1[0] - e0[0])) ei=$((e1[1] - e0[1]))
		else
			ee="?" ei="?"
		fi
	fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$cfg" "$kind" "$sent" \
		"$ns" "$cpu" "$ks" "$gmpps" "$rx" "$rxd" "$mpps" "$cmpps" "$xdp" "$udp" "$ee" "$ei" >>"$TSV"
	log "rep $rep  $(printf '%-11s %-12s' "$cfg" "$kind") $mpps Mpps received, $cmpps per CPU-second  (sent $sent, rx $rx, ring drops $rxd, ksoftirqd $((ks / 1000000)) ms)"

	# sanity: the generator sent, the receiver received, and the books balance
	t=$(tol "$sent")
	local id="rep $rep $cfg $kind"
	[ "$sent" -gt 0 ] || FAILS+=("$id: the generator sent nothing")
	[ "$rx" -gt 0 ] || FAILS+=("$id: nothing was received")
	[ $((rx + rxd - sent)) -le "$t" ] && [ $((sent - rx - rxd)) -le "$t" ] ||
		FAILS+=("$id: received $rx + ring drops $rxd != sent $sent")
	case $cfg in
	floor)
		[ "$xdp" -gt 0 ] && [ $((rx - xdp)) -le "$t" ] && [ $((xdp - rx)) -le "$t" ] ||
			FAILS+=("$id: the XDP_DROP program did not drop what was received (xdp_drops $xdp, rx $rx)")
		;;
	epgate | epgate-nocache)
		if [[ $ee =~ ^-?[0-9]+$ ]]; then
			[ $((ee - rx)) -le "$t" ] && [ $((rx - ee)) -le "$t" ] ||
				FAILS+=("$id: epgate counted $ee packets as $reason, the veth received $rx")
			[ "$ei" -le $((sent + t)) ] ||
				FAILS+=("$id: epgate counted $ei ingress packets, more than the $sent sent")
		else
			FAILS+=("$id: epgate stats --json could not be read")
		fi
		;;
	esac
	# the ruleset did what the policy says: drops reach no UDP socket layer,
	# accepted packets all do
	local should=accept
	if [ "$cfg" = floor ] || { [ "$cfg" != none ] && [ "$kind" != established ]; }; then
		should=drop
	fi
	if [ "$should" = drop ]; then
		[ "$udp" -le "$t" ] || FAILS+=("$id: $udp packets reached UDP, the policy drops them")
	else
		[ $((rx - udp)) -le "$t" ] || FAILS+=("$id: only $udp of $rx packets reached UDP, the policy accepts them")
	fi
}

# ---- the run ----------------------------------------------------------------------

log "live benchmark: $COUNT frames (at most ${SECS} s) per measurement, $REPS repetitions$([ "$QUICK" = 1 ] && echo ", quick")"
log "kernel $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); iptables: $IPT_VARIANT"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# The generator must work here before anything is measured.
if ! run_gen --action drop -n 1000; then
	cat "$WORK/gen.err" >&2
	die "livegen cannot send live frames here (BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES)"
fi

REPS_DONE=0
for ((rep = 1; rep <= REPS; rep++)); do
	if [ $((SECONDS - T0)) -ge "$BUDGET" ]; then
		log "time budget of $BUDGET s reached: $REPS_DONE repetitions"
		break
	fi
	# the generator's own cost: frames made and dropped by its own program
	if run_gen --action drop; then
		ns=$(field elapsed_ns "$GEN_OUT") cpu=$(field cpu_ns "$GEN_OUT") sent=$(field sent "$GEN_OUT")
		printf '%s\tgenerator\t-\t%s\t%s\t%s\t0\t%s\t0\t0\t%s\t%s\t0\t0\t-\t-\n' "$rep" "$sent" "$ns" "$cpu" \
			"$(per_us "$sent" "$ns")" "$(per_us "$sent" "$ns")" "$(per_us "$sent" "$cpu")" >>"$TSV"
		log "rep $rep  generator alone         $(per_us "$sent" "$ns") Mpps, $(per_us "$sent" "$cpu") per CPU-second"
	else
		FAILS+=("rep $rep: the generator alone failed")
	fi
	# every other repetition in reverse order, so a drift of the machine's
	# load does not always favour the same configuration
	order=("${CONFIGS[@]}")
	if ((rep % 2 == 0)); then
		order=()
		for ((i = ${#CONFIGS[@]} - 1; i >= 0; i--)); do order+=("${CONFIGS[i]}"); done
	fi
	for cfg in "${order[@]}"; do
		if ! cfg_up "$cfg"; then
			FAILS+=("rep $rep: setting up $cfg failed")
			cfg_down "$cfg"
			continue
		fi
		for kind in "${KINDS[@]}"; do
			measure "$rep" "$cfg" "$kind"
		done
		cfg_down "$cfg"
	done
	REPS_DONE=$rep
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the report ---------------------------------------------------------------------

# median and range of a (config, kind) column of the TSV: "median min max n"
# (column 11: Mpps wall-clock, 12: Mpps per CPU-second)
stat_of() {
	awk -F'\t' -v c="$1" -v k="$2" -v col="${3:-12}" 'NR > 1 && $2 == c && $3 == k { v[n++] = $col + 0 }
		END {
			if (!n) { print "- - - 0"; exit }
			for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
			m = n % 2 ? v[(n - 1) / 2] : (v[n / 2 - 1] + v[n / 2]) / 2
			printf "%.3f %.3f %.3f %d\n", m, v[0], v[n - 1], n
		}' "$TSV"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }
ns_of() { awk -v m="$1" 'BEGIN { if (m == "-" || m == 0) print "-"; else printf "%.0f", 1000 / m }'; }
minus() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-") print "-"; else printf "%.0f", a - b }'; }
verdict() { awk -v r="$1" -v w="$2" 'BEGIN { if (r != "-" && r + 0 >= w + 0) print "met"; else print "NOT met" }'; }
# receive-side cost ratio: (ns(b) - gen) / (ns(a) - gen), how many times
# cheaper a's receive path is than b's once the generator's own cost is out
rx_ratio() { awk -v a="$1" -v b="$2" -v g="$3" 'BEGIN { if (a == "-" || b == "-" || g == "-" || a - g <= 0) print "-"; else printf "%.2f", (b - g) / (a - g) }'; }

read -r GEN_W _ _ _ <<<"$(stat_of generator - 11)"
read -r GEN_C _ _ _ <<<"$(stat_of generator - 12)"
GEN_NS=$(ns_of "$GEN_C")

MD=$OUT/live.md
DAT=$WORK/live.dat
{
	echo "# epgate live benchmark"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'), epgate $(git describe --always --dirty 2>/dev/null || echo '?'), kernel $(uname -r), $(nproc) CPUs, shared"
	echo "(load $LOAD_START at the start, $LOAD_END at the end)."
	echo "Each measurement: livegen sends up to $COUNT UDP frames of 60 bytes (at most $SECS s) out of a veth by"
	echo "BPF_PROG_TEST_RUN with live frames; counted is what the receiving veth took in (rx_packets; a packet XDP"
	echo "dropped counts). Median of $REPS_DONE repetitions, configurations interleaved (every other repetition reversed)."
	echo
	echo "The receiving veth polls its queue in softirq on the sending CPU, in the generator's context: generator and"
	echo "receive path share one CPU and every rate includes the generator's own cost (generator alone, frames made"
	echo "and dropped by its own program: ${GEN_C} Mpps per CPU-second = ${GEN_NS} ns/pkt)."
	echo "**Mpps** is wall-clock: what other tasks took from the CPU is in it, and so are two RCU grace periods the"
	echo "kernel waits for in every BPF_PROG_TEST_RUN call of an XDP program (livegen makes one call per 2^20 frames)."
	echo "**per CPU-s** divides by the CPU time the generator's process used (its softirq work, the receive path,"
	echo "included; waits, other tasks and the hypervisor excluded) plus what ksoftirqd ran meanwhile: on this shared"
	echo "machine it is the stable measure, and the ratios are computed from it. **ns/pkt** = 1e3 / per CPU-s."
	echo "**× nftables**: against the netdev set for the denied floods, against inet + ct state for the established flow."
	echo
	echo "| traffic | ruleset | Mpps | per CPU-s | range (per CPU-s) | × XDP_DROP floor | × nftables | ns/pkt | ns/pkt above floor |"
	echo "|---|---|---:|---:|---|---:|---:|---:|---:|"
	for kind in "${KINDS[@]}"; do
		read -r floor _ _ _ <<<"$(stat_of floor "$kind")"
		if [ "$kind" = established ]; then ref="nft-inet"; else ref="nft-netdev"; fi
		read -r nft _ _ _ <<<"$(stat_of "$ref" "$kind")"
		for cfg in "${CONFIGS[@]}"; do
			read -r med lo hi n <<<"$(stat_of "$cfg" "$kind")"
			read -r wmed _ _ _ <<<"$(stat_of "$cfg" "$kind" 11)"
			echo "| ${LABEL[$kind]} | ${LABEL[$cfg]} | $wmed | $med | $lo–$hi (n=$n) | $(ratio "$med" "$floor") |" \
				"$(ratio "$med" "$nft") | $(ns_of "$med") | $(minus "$(ns_of "$med")" "$(ns_of "$floor")") |"
		done
	done
	echo
	echo "## Targets (issue \"Benchmarks\")"
	echo
	echo "Judged on the per-CPU-second ratios; the wall-clock ratio follows in brackets. \"Receive path\" compares"
	echo "ns/pkt minus the generator's own ${GEN_NS} ns/pkt: what the receiving side costs."
	echo
	for kind in denied denied-new; do
		read -r e _ _ _ <<<"$(stat_of epgate "$kind")"
		read -r f _ _ _ <<<"$(stat_of floor "$kind")"
		read -r n _ _ _ <<<"$(stat_of nft-netdev "$kind")"
		read -r ew _ _ _ <<<"$(stat_of epgate "$kind" 11)"
		read -r fw _ _ _ <<<"$(stat_of floor "$kind" 11)"
		read -r nw _ _ _ <<<"$(stat_of nft-netdev "$kind" 11)"
		r1=$(ratio "$e" "$f") r2=$(ratio "$e" "$n")
		echo "- ${LABEL[$kind]}: epgate ≥ 0.5 × XDP_DROP floor: **$r1 ×** ($(ratio "$ew" "$fw") ×) — $(verdict "$r1" 0.5)."
		echo "  ≥ 2 × nftables netdev set: **$r2 ×** ($(ratio "$ew" "$nw") ×) — $(verdict "$r2" 2);" \
			"the floor itself is $(ratio "$f" "$n") × nftables here; receive path (ns/pkt above the generator), nftables / epgate: $(rx_ratio "$(ns_of "$e")" "$(ns_of "$n")" "$GEN_NS")."
	done
	read -r e _ _ _ <<<"$(stat_of epgate established)"
	read -r n _ _ _ <<<"$(stat_of nft-inet established)"
	read -r z _ _ _ <<<"$(stat_of none established)"
	read -r ew _ _ _ <<<"$(stat_of epgate established 11)"
	read -r nw _ _ _ <<<"$(stat_of nft-inet established 11)"
	r3=$(ratio "$e" "$n")
	echo "- ${LABEL[established]}: epgate ≥ 1.3 × nftables inet + ct state: **$r3 ×** ($(ratio "$ew" "$nw") ×) — $(verdict "$r3" 1.3);" \
		"no filter at all reaches $(ratio "$z" "$n") × (accepted packets go through the same host stack);" \
		"receive path, nftables / epgate: $(rx_ratio "$(ns_of "$e")" "$(ns_of "$n")" "$GEN_NS")."
	echo
	echo "Policy: \`$(basename "$CONF")\`; the netfilter rules generated from it by tests/bench/sg2rules.sh:"
	echo "\`live-rules.nft-netdev.nft\`, \`live-rules.nft-inet.nft\`, \`live-rules.iptables\`. Every measurement: \`live.tsv\`."
	if [ ${#FAILS[@]} -gt 0 ]; then
		echo
		echo "## Sanity checks FAILED"
		echo
		for f in "${FAILS[@]}"; do echo "- $f"; done
	fi
} >"$MD"

# gnuplot: median Mpps per ruleset, grouped by traffic; wall-clock and per CPU-second
{
	printf 'ruleset'
	for kind in "${KINDS[@]}"; do printf '\t"%s"' "${LABEL[$kind]}"; done
	for kind in "${KINDS[@]}"; do printf '\t"%s"' "${LABEL[$kind]}"; done
	echo
	for cfg in "${CONFIGS[@]}"; do
		printf '"%s"' "${LABEL[$cfg]}"
		for col in 11 12; do
			for kind in "${KINDS[@]}"; do
				read -r med _ _ _ <<<"$(stat_of "$cfg" "$kind" "$col")"
				[ "$med" = - ] && med=0
				printf '\t%s' "$med"
			done
		done
		echo
	done
} >"$DAT"
gnuplot <<EOF 2>"$WORK/gnuplot.err" || FAILS+=("gnuplot failed: $(head -c 300 "$WORK/gnuplot.err")")
set terminal pngcairo size 1100,900 font "sans,10"
set output "$OUT/live.png"
set datafile separator "\t"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set key top right
set grid ytics
set yrange [0:*]
set xtics rotate by -15 scale 0 noenhanced
set multiplot layout 2,1 title "epgate live traffic: median of $REPS_DONE, $COUNT frames each (generator and receive path share one CPU)"
set title "wall-clock (generator alone: ${GEN_W} Mpps)"
set ylabel "Mpps received"
plot "$DAT" using 2:xtic(1) title columnheader(2), '' using 3 title columnheader(3), '' using 4 title columnheader(4)
set title "per CPU-second (generator alone: ${GEN_C} Mpps)"
set ylabel "Mpps per CPU-second"
plot "$DAT" using 5:xtic(1) title columnheader(5), '' using 6 title columnheader(6), '' using 7 title columnheader(7)
unset multiplot
EOF

cat "$MD"
log "wrote $MD, $TSV, $OUT/live.png in $((SECONDS - T0)) s"
if [ ${#FAILS[@]} -gt 0 ]; then
	log "${#FAILS[@]} sanity check(s) failed:"
	for f in "${FAILS[@]}"; do log "  $f"; done
	exit 1
fi
exit 0
