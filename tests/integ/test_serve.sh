#!/usr/bin/env bash
# Integration test of `epgate serve`: the daemon in the router namespace,
# scraped by promtool and by a real Prometheus server, its flow logs, its
# signals (SIGHUP reload, SIGUSR1 reopen), its single-instance lock, and
# what survives a SIGKILL (the pinned datapath and its counters).
#
#   cl1 (allowed) --\
#                    gw: epgate serve (XDP + tc on gw-cl1, gw-cl2, gw-ep),  -- ep (the endpoint)
#   cl2 (denied) ---/    /metrics on 127.0.0.1:PORT, Prometheus on 127.0.0.1:PORT2,
#                        both on gw's own loopback (nothing listens outside the namespaces)
#
# Policy: tests/integ/fixtures (the endpoint's group allows tcp 8080 and ICMP
# echo from cl1's subnets, nothing for cl2), copied to a temporary directory
# so that the SIGHUP checks can edit it.
#
# Every check is counted; a check that cannot run is a failure. Last line:
# "N passed, N failed"; the exit status is 0 only when nothing failed.
#
# Usage (root, from the repo root): bash tests/integ/test_serve.sh  (BUILD=dir)
#
# Checks are `check 'CONDITION' MESSAGE...`: the condition is eval'd, so its
# single-quoted $ are meant (SC2016), and functions called only through
# wait_for or eval look unreachable to shellcheck (SC2317, SC2034).
# shellcheck disable=SC2015,SC2016,SC2317,SC2034
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

LOCK_FILE=""
# Long-running processes (serve, prometheus) are bounded by this many
# seconds of life; the whole test takes well under it.
LONG=240

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$ROOT/tests/integ/common.sh"

# check COND MSG [DETAIL...]: pass if `eval COND` holds.
check() {
	local cond=$1
	shift
	if eval "$cond"; then pass "$1"; else fail "$@"; fi
}

# serve's single-instance lock file (/run/lock/epgate-serve-HASH.lock, named
# after our private pin directory): removed at exit unless held.
epg_test_cleanup() {
	if [ -n "$LOCK_FILE" ] && [ -f "$LOCK_FILE" ] && flock -n "$LOCK_FILE" true 2>/dev/null; then
		rm -f "$LOCK_FILE"
	fi
}

epg_test_begin

# ---- prerequisites --------------------------------------------------------

[ "$(id -u)" -eq 0 ] || abort "prerequisites: must run as root (network namespaces, XDP, bpffs)"
for tool in ip jq socat ping ss timeout mountpoint curl promtool prometheus flock awk cmp ps; do
	command -v "$tool" >/dev/null || abort "prerequisites: '$tool' not found (scripts/install-deps.sh installs it; promtool and prometheus: Debian's prometheus package)"
done
[ -x "$EPGATE" ] || abort "prerequisites: $EPGATE not built (make -C $ROOT)"
EP_ID=$(jq -er '.VpcEndpoints[0].VpcEndpointId' "$FIX/vpc-endpoints.json") &&
	ENI_ID=$(jq -er '.VpcEndpoints[0].NetworkInterfaceIds[0]' "$FIX/vpc-endpoints.json") &&
	OWNER=$(jq -er --arg e "$ENI_ID" '.NetworkInterfaces[] | select(.NetworkInterfaceId == $e) | .OwnerId' \
		"$FIX/network-interfaces.json") ||
	abort "prerequisites: cannot read the endpoint, its interface and owner from $FIX"
CONF=$WORK/conf
mkdir "$CONF" && cp "$FIX"/vpc-endpoints.json "$FIX"/network-interfaces.json "$FIX"/security-groups.json "$CONF/" ||
	abort "prerequisites: cannot copy the fixtures to $CONF"
CONFIGS=("$CONF"/*.json)

# ---- helpers ---------------------------------------------------------------

# epg_bg runs `timeout ... ip netns exec NS CMD`, and ip execs CMD in place:
# the command's own PID is timeout's child. Signals other than TERM must go
# to it directly (timeout does not relay SIGUSR1, and relays SIGHUP only to
# SIGKILL its child 2 s later). Prints it; waits at most 2 s.
bg_child() {
	local tpid=$1 i c
	for i in $(seq 1 40); do
		c=$(ps -o pid= --ppid "$tpid" 2>/dev/null | head -1 | tr -d ' ')
		[ -n "$c" ] && { echo "$c"; return 0; }
		kill -0 "$tpid" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

# A TCP port nobody listens on in NS (the namespace is new: the first try
# normally does it). At most 20 tries.
free_port() {
	local ns=$1 i p
	for i in $(seq 1 20); do
		p=$((20000 + RANDOM % 20000))
		if ! epg_in "$ns" ss -ltnH "sport = :$p" 2>/dev/null | grep -q .; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# gw_curl ARGS...: curl inside the gw namespace, 3 s at most.
gw_curl() { EPG_CMD_TIMEOUT=5 epg_in "$NS_GW" curl -sS --max-time 3 "$@"; }

# scrape FILE: GET /metrics into FILE; 0 on HTTP 200.
scrape() {
	local code
	code=$(gw_curl -o "$1" -w '%{http_code}' "http://127.0.0.1:$SPORT/metrics" 2>/dev/null)
	[ "$code" = 200 ]
}

# msum FILE NAME [label="value"]...: the sum of NAME's samples in a scrape
# whose labels include all of those given; "?" if none.
msum() {
	local f=$1 name=$2
	shift 2
	awk -v name="$name" -v want="$*" '
		BEGIN { n = split(want, w, " ") }
		/^#/ { next }
		index($0, name "{") == 1 || $1 == name {
			ok = 1
			for (i = 1; i <= n; i++) if (index($0, w[i]) == 0) ok = 0
			if (ok) { s += $NF; found = 1 }
		}
		END { if (found) printf "%.0f\n", s; else print "?" }' "$f" 2>/dev/null || echo "?"
}
# The endpoint's packets (or bytes) in a scrape, summed over reasons:
# ep_m FILE packets|bytes DIRECTION ACTION [REASON]
ep_m() {
	local f=$1 what=$2 dir=$3 act=$4 reason=${5:-}
	msum "$f" "epgate_endpoint_${what}_total" "endpoint_id=\"$EP_ID\"" "direction=\"$dir\"" \
		"action=\"$act\"" ${reason:+"reason=\"$reason\""}
}

d() {
	[[ $1 =~ ^[0-9]+$ && $2 =~ ^[0-9]+$ ]] || { echo "?"; return; }
	echo $(($1 - $2))
}
cmp_n() { [[ $1 =~ ^-?[0-9]+$ ]] && test "$1" "$2" "$3"; }

# fl_sum FILE AWK_CONDITION: "PACKETS BYTES RECORDS" over the flow-log
# records (default format) that match.
fl_sum() {
	awk "$2 { p += \$9; b += \$10; n++ } END { printf \"%d %d %d\\n\", p, b, n }" "$1" 2>/dev/null || echo "? ? ?"
}

# wait_for SECONDS COMMAND...: poll COMMAND every 0.2 s until it succeeds.
wait_for() {
	local secs=$1 i
	shift
	for ((i = 0; i < secs * 5; i++)); do
		"$@" && return 0
		sleep 0.2
	done
	"$@"
}

# The pin directory's lock file, as serve names it: FNV-1a of the path.
lock_file_of() {
	local s=$1 h=2166136261 i c
	for ((i = 0; i < ${#s}; i++)); do
		printf -v c '%d' "'${s:i:1}"
		h=$((((h ^ c) * 16777619) & 0xffffffff))
	done
	printf '/run/lock/epgate-serve-%08x.lock' "$h"
}

# start_serve NAME [serve options...]: epgate serve in gw with the usual
# options plus those given, stderr in $WORK/NAME.err. Sets SERVE_T (the
# timeout wrapper, recorded for teardown) and SERVE_PID (epgate itself).
start_serve() {
	local name=$1
	shift
	EPG_CMD_TIMEOUT=$LONG epg_bg "$NS_GW" "$EPGATE" --pin-dir "$EPG_PIN" serve \
		--interface gw-cl1 --interface gw-cl2 --interface gw-ep \
		--listen "127.0.0.1:$SPORT" --flow-log-interval 2 "$@" --config "${CONFIGS[@]}" \
		2>"$WORK/$name.err"
	SERVE_T=$EPG_LAST_PID
	SERVE_PID=$(bg_child "$SERVE_T") || SERVE_PID=""
}

healthz_ok() { [ "$(gw_curl "http://127.0.0.1:$SPORT/healthz" 2>/dev/null)" = ok ]; }

# ---- topology and serve ------------------------------------------------------

epg_topo_up || abort "topology: cannot build the namespaces, links, addresses and bpffs"
pass "topology up: ${EPG_ALL_NS[*]}; bpffs on $EPG_BPFFS"
LOCK_FILE=$(lock_file_of "$EPG_PIN")

SPORT=$(free_port "$NS_GW") || abort "no free port for serve in $NS_GW"
PPORT=$(free_port "$NS_GW") || abort "no free port for prometheus in $NS_GW"
while [ "$PPORT" = "$SPORT" ]; do PPORT=$((SPORT + 1)); done

FL1=$WORK/flow1.log
TSTART=$(date +%s)
start_serve serve1 --flow-log "$FL1"
[ -n "$SERVE_PID" ] || abort "serve: no process after start" "$(cat "$WORK/serve1.err" 2>/dev/null)"
if wait_for 10 healthz_ok; then
	pass "serve (pid $SERVE_PID) runs in $NS_GW, listening on 127.0.0.1:$SPORT"
else
	abort "serve listens on 127.0.0.1:$SPORT within 10 s" "$(cat "$WORK/serve1.err" 2>/dev/null)"
fi
att=$(epg_in "$NS_GW" "$EPGATE" --pin-dir "$EPG_PIN" status --json 2>/dev/null |
	jq -c '[.interfaces[] | .interface] | sort' 2>/dev/null)
check '[ "$att" = "[\"gw-cl1\",\"gw-cl2\",\"gw-ep\"]" ]' \
	"serve attached to gw-cl1, gw-cl2, gw-ep (status --json)" "interfaces: ${att:-?}"

# ---- HTTP: promtool, /healthz, 405, 404 ----------------------------------------

if scrape "$WORK/m0"; then
	out=$(timeout 20 promtool check metrics <"$WORK/m0" 2>&1)
	rc=$?
	check '[ "$rc" -eq 0 ] && [ -z "$out" ]' \
		"promtool check metrics: a live scrape of /metrics is clean ($(grep -vc '^#' "$WORK/m0") samples)" \
		"promtool exit $rc:" "$out"
else
	fail "GET /metrics returns 200" "$(head -3 "$WORK/m0" 2>/dev/null)"
fi
ctype=$(gw_curl -o /dev/null -w '%{content_type}' "http://127.0.0.1:$SPORT/metrics" 2>&1)
check '[[ $ctype == "text/plain; version=0.0.4"* ]]' "/metrics Content-Type: $ctype" "got: $ctype"
hz=$(gw_curl -w ' %{http_code}' "http://127.0.0.1:$SPORT/healthz" 2>&1)
check '[ "$hz" = "ok
 200" ] || [ "$hz" = "ok 200" ]' "GET /healthz: 200 \"ok\"" "got: $hz"
code=$(gw_curl -o /dev/null -w '%{http_code}' -X POST --data x "http://127.0.0.1:$SPORT/metrics" 2>&1)
check '[ "$code" = 405 ]' "POST /metrics: 405" "got: $code"
code=$(gw_curl -o /dev/null -w '%{http_code}' -X DELETE "http://127.0.0.1:$SPORT/healthz" 2>&1)
check '[ "$code" = 405 ]' "DELETE /healthz: 405" "got: $code"
code=$(gw_curl -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SPORT/nonexistent" 2>&1)
check '[ "$code" = 404 ]' "GET /nonexistent: 404" "got: $code"
gen_start=$(msum "$WORK/m0" epgate_policy_generation)
check '[ "$gen_start" = 1 ]' "epgate_policy_generation is 1 after serve's first apply" "got: $gen_start"

# ---- Prometheus scraping serve --------------------------------------------------

PROM=$WORK/prom
mkdir -p "$PROM/data"
cat >"$PROM/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: epgate
    static_configs:
      - targets: ['127.0.0.1:$SPORT']
EOF
EPG_CMD_TIMEOUT=$LONG epg_bg "$NS_GW" prometheus --config.file="$PROM/prometheus.yml" \
	--storage.tsdb.path="$PROM/data" --web.listen-address="127.0.0.1:$PPORT" \
	--log.level=warn >"$WORK/prometheus.log" 2>&1

# pq EXPR: the value of a one-element instant vector, "none" if empty,
# "?" if the query failed.
pq() {
	local j
	j=$(gw_curl -G --data-urlencode "query=$1" "http://127.0.0.1:$PPORT/api/v1/query" 2>/dev/null) || { echo "?"; return; }
	jq -r 'if .status != "success" then "?" elif (.data.result | length) == 0 then "none"
		else .data.result[0].value[1] end' <<<"$j" 2>/dev/null || echo "?"
}
prom_ready() { [ "$(gw_curl -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PPORT/-/ready" 2>/dev/null)" = 200 ]; }
SEL="endpoint_id=\"$EP_ID\""
Q_IN_ACC="sum(epgate_endpoint_packets_total{$SEL,direction=\"ingress\",action=\"accept\"})"
Q_IN_REJ="sum(epgate_endpoint_packets_total{$SEL,direction=\"ingress\",action=\"reject\"})"
prom_sees() { [ "$(pq "$Q_IN_ACC")" = "$1" ] && [ "$(pq "$Q_IN_REJ")" = "$2" ]; }

if wait_for 20 prom_ready && wait_for 15 eval '[ "$(pq "up{job=\"epgate\"}")" = 1 ]'; then
	pass "Prometheus (own instance, 127.0.0.1:$PPORT in $NS_GW) is ready and scrapes serve: up == 1"
else
	abort "Prometheus ready and scraping serve within 35 s" "$(tail -5 "$WORK/prometheus.log")" \
		"up: $(pq 'up')"
fi
if wait_for 10 prom_sees 0 0; then
	pass "Prometheus: before any traffic, ingress accepted 0, rejected 0"
else
	fail "Prometheus: before any traffic, ingress accepted 0, rejected 0" \
		"accepted $(pq "$Q_IN_ACC"), rejected $(pq "$Q_IN_REJ")"
fi

# Known traffic: 5 echo requests from cl1 (one ping run: one echo id, one
# flow: 1 by the rule, 4 tracked), 7 from cl2 (no rule).
EPG_CMD_TIMEOUT=15 epg_in "$NS_CL1" ping -4 -n -q -c 5 -i 0.2 -W 1 "$EP_V4" >"$WORK/ping1.out" 2>&1
rc1=$?
EPG_CMD_TIMEOUT=15 epg_in "$NS_CL2" ping -4 -n -q -c 7 -i 0.2 -W 1 "$EP_V4" >"$WORK/ping2.out" 2>&1
rc2=$?
check '[ "$rc1" -eq 0 ] && grep -q "5 received" "$WORK/ping1.out"' "cl1 ping ep: 5/5 replies" "$(cat "$WORK/ping1.out")"
check '[ "$rc2" -ne 0 ] && grep -q " 0 received" "$WORK/ping2.out"' "cl2 ping ep: 0/7 replies" "$(cat "$WORK/ping2.out")"

if wait_for 15 prom_sees 5 7; then
	pass "Prometheus saw the traffic within 15 s"
else
	fail "Prometheus saw the traffic within 15 s" "accepted $(pq "$Q_IN_ACC"), rejected $(pq "$Q_IN_REJ") (want 5, 7)"
fi
# one more scrape interval: nothing else moves them
sleep 1.2
ICMP_RULE=$(epg_in "$NS_GW" "$EPGATE" --pin-dir "$EPG_PIN" stats --json --rules 2>/dev/null |
	jq -r '.rules[] | select(.description == "icmp type 8 from 198.18.1.0/24") | .rule' 2>/dev/null)
for qw in \
	"$Q_IN_ACC=5" \
	"epgate_endpoint_packets_total{$SEL,direction=\"ingress\",action=\"accept\",reason=\"rule\"}=1" \
	"epgate_endpoint_packets_total{$SEL,direction=\"ingress\",action=\"accept\",reason=\"tracked\"}=4" \
	"sum(epgate_endpoint_bytes_total{$SEL,direction=\"ingress\",action=\"accept\"})=490" \
	"$Q_IN_REJ=7" \
	"epgate_endpoint_packets_total{$SEL,direction=\"ingress\",action=\"reject\",reason=\"no_rule\"}=7" \
	"sum(epgate_endpoint_bytes_total{$SEL,direction=\"ingress\",action=\"reject\"})=686" \
	"sum(epgate_endpoint_packets_total{$SEL,direction=\"egress\",action=\"accept\"})=5" \
	"sum(epgate_endpoint_packets_total{$SEL,direction=\"egress\",action=\"reject\"})=0" \
	"epgate_rule_hits_total{group_id=\"sg-0e0e0e0e0e0e0e0e3\",direction=\"ingress\",rule=\"${ICMP_RULE:-unknown}\"}=1"; do
	q=${qw%=*} want=${qw##*=}
	got=$(pq "$q")
	check '[ "$got" = "$want" ]' "PromQL $q = $want" "got: $got"
done

# ---- flow logs: pings, a TCP connection of known size, NODATA ----------------

# Default format: 1 version 2 account-id 3 interface-id 4 srcaddr 5 dstaddr
# 6 srcport 7 dstport 8 protocol 9 packets 10 bytes 11 start 12 end 13 action
# 14 log-status.
C1_IN="\$4==\"$CL1_V4\" && \$5==\"$EP_V4\" && \$8==1 && \$13==\"ACCEPT\" && \$14==\"OK\""
C1_OUT="\$4==\"$EP_V4\" && \$5==\"$CL1_V4\" && \$8==1 && \$13==\"ACCEPT\" && \$14==\"OK\""
C2_IN="\$4==\"$CL2_V4\" && \$5==\"$EP_V4\" && \$8==1 && \$13==\"REJECT\" && \$14==\"OK\""
pings_logged() {
	[[ $(fl_sum "$FL1" "$C1_IN") == "5 490 "* && $(fl_sum "$FL1" "$C1_OUT") == "5 490 "* &&
		$(fl_sum "$FL1" "$C2_IN") == "7 686 "* ]]
}
wait_for 8 pings_logged
r=$(fl_sum "$FL1" "$C1_IN")
check '[[ $r == "5 490 "* ]]' "flow log: ACCEPT $CL1_V4 -> $EP_V4 icmp: 5 packets, 490 bytes (in ${r##* } record(s))" "got packets bytes records: $r"
r=$(fl_sum "$FL1" "$C1_OUT")
check '[[ $r == "5 490 "* ]]' "flow log: ACCEPT $EP_V4 -> $CL1_V4 icmp (the replies): 5 packets, 490 bytes" "got: $r"
r=$(fl_sum "$FL1" "$C2_IN")
check '[[ $r == "7 686 "* ]]' "flow log: REJECT $CL2_V4 -> $EP_V4 icmp: 7 packets, 686 bytes" "got: $r"
r=$(fl_sum "$FL1" "\$4==\"$CL2_V4\" && \$13==\"ACCEPT\"")
check '[[ $r == "0 0 0" ]]' "flow log: nothing from cl2 accepted" "got: $r"
# icmp records carry no ports
r=$(awk '$8 == 1 && ($6 != "-" || $7 != "-")' "$FL1" | head -2)
check '[ -z "$r" ] && [ -s "$FL1" ]' "flow log: icmp records have srcport/dstport \"-\"" "$r"

# TCP: 1000 bytes from a known source port, counted by serve's /metrics
# around it (nothing else runs meanwhile), so the flow log must match exactly.
head -c 1000 /dev/urandom >"$WORK/payload"
CPORT=$((40000 + RANDOM % 10000))
scrape "$WORK/t0" || fail "scrape before the TCP transfer"
epg_bg "$NS_EP" socat -u "TCP4-LISTEN:8080,bind=$EP_V4,reuseaddr" "CREATE:$WORK/got"
LPID=$EPG_LAST_PID
if epg_wait_listen "$NS_EP" tcp 8080; then
	EPG_CMD_TIMEOUT=10 epg_in "$NS_CL1" socat -u "OPEN:$WORK/payload" \
		"TCP4:$EP_V4:8080,sourceport=$CPORT,connect-timeout=2" 2>"$WORK/tcp.err"
	rc=$?
	wait_for 5 eval '! kill -0 "$LPID" 2>/dev/null'
else
	rc=255
fi
epg_stop "$LPID"
check '[ "$rc" -eq 0 ] && cmp -s "$WORK/payload" "$WORK/got"' \
	"cl1:$CPORT -> ep:8080 tcp: 1000 bytes arrived intact" "client exit $rc: $(cat "$WORK/tcp.err" 2>/dev/null)"
# and a denied one: cl2 -> ep:8080, from a known port
CPORT2=$((50000 + RANDOM % 10000))
EPG_CMD_TIMEOUT=10 epg_in "$NS_CL2" socat -u "OPEN:$WORK/payload" \
	"TCP4:$EP_V4:8080,sourceport=$CPORT2,connect-timeout=1.5" 2>/dev/null
rc=$?
check '[ "$rc" -ne 0 ]' "cl2:$CPORT2 -> ep:8080 tcp is refused (socat exit $rc)"
sleep 0.3
scrape "$WORK/t1" || fail "scrape after the TCP transfer"
in_p=$(d "$(ep_m "$WORK/t1" packets ingress accept)" "$(ep_m "$WORK/t0" packets ingress accept)")
in_b=$(d "$(ep_m "$WORK/t1" bytes ingress accept)" "$(ep_m "$WORK/t0" bytes ingress accept)")
eg_p=$(d "$(ep_m "$WORK/t1" packets egress accept)" "$(ep_m "$WORK/t0" packets egress accept)")
eg_b=$(d "$(ep_m "$WORK/t1" bytes egress accept)" "$(ep_m "$WORK/t0" bytes egress accept)")
rj_p=$(d "$(ep_m "$WORK/t1" packets ingress reject)" "$(ep_m "$WORK/t0" packets ingress reject)")
rj_b=$(d "$(ep_m "$WORK/t1" bytes ingress reject)" "$(ep_m "$WORK/t0" bytes ingress reject)")
T_IN="\$4==\"$CL1_V4\" && \$5==\"$EP_V4\" && \$6==$CPORT && \$7==8080 && \$8==6 && \$13==\"ACCEPT\" && \$14==\"OK\""
T_OUT="\$4==\"$EP_V4\" && \$5==\"$CL1_V4\" && \$6==8080 && \$7==$CPORT && \$8==6 && \$13==\"ACCEPT\" && \$14==\"OK\""
T_RJ="\$4==\"$CL2_V4\" && \$5==\"$EP_V4\" && \$6==$CPORT2 && \$7==8080 && \$8==6 && \$13==\"REJECT\" && \$14==\"OK\""
tcp_logged() {
	[[ $(fl_sum "$FL1" "$T_IN") == "$in_p $in_b "* && $(fl_sum "$FL1" "$T_OUT") == "$eg_p $eg_b "* &&
		$(fl_sum "$FL1" "$T_RJ") == "$rj_p $rj_b "* ]]
}
wait_for 8 tcp_logged
r=$(fl_sum "$FL1" "$T_IN")
read -r fp fb _ <<<"$r"
# every frame has 14 + 20 + 20..60 bytes of headers; the payload went this way
check 'cmp_n "$in_p" -ge 4 && [[ $r == "$in_p $in_b "* ]] && cmp_n "$fb" -ge $((1000 + 54 * fp)) && cmp_n "$fb" -le $((1000 + 94 * fp))' \
	"flow log: ACCEPT $CL1_V4:$CPORT -> $EP_V4:8080 tcp: $fp packets, $fb bytes = serve's ingress counters (+$in_p, +$in_b)" \
	"flow log packets bytes records: $r; /metrics ingress accept +$in_p packets, +$in_b bytes (want equal, bytes in [1000+54p, 1000+94p])"
r=$(fl_sum "$FL1" "$T_OUT")
read -r fp fb _ <<<"$r"
check 'cmp_n "$eg_p" -ge 2 && [[ $r == "$eg_p $eg_b "* ]] && cmp_n "$fb" -ge $((54 * fp)) && cmp_n "$fb" -le $((94 * fp))' \
	"flow log: ACCEPT $EP_V4:8080 -> $CL1_V4:$CPORT tcp: $fp packets, $fb bytes = serve's egress counters" \
	"flow log: $r; /metrics egress accept +$eg_p packets, +$eg_b bytes"
r=$(fl_sum "$FL1" "$T_RJ")
check 'cmp_n "$rj_p" -ge 1 && [[ $r == "$rj_p $rj_b "* ]]' \
	"flow log: REJECT $CL2_V4:$CPORT2 -> $EP_V4:8080 tcp: $rj_p SYN(s), $rj_b bytes = serve's ingress reject counters" \
	"flow log: $r; /metrics ingress reject +$rj_p packets, +$rj_b bytes"
# every OK record: 14 fields, version 2, the endpoint's interface and owner,
# start <= end within the test's time
now=$(date +%s)
bad=$(awk -v acct="$OWNER" -v eni="$ENI_ID" -v t0="$TSTART" -v t1="$now" '
	NF != 14 || $1 != 2 || $2 != acct || $3 != eni || $11 > $12 || $11 < t0 - 1 || $12 > t1 + 1 ||
	($14 == "OK" && $13 != "ACCEPT" && $13 != "REJECT") || ($14 != "OK" && $14 != "NODATA") { print; n++ }
	n >= 3 { exit }' "$FL1")
nrec=$(wc -l <"$FL1")
check '[ -z "$bad" ] && [ "$nrec" -gt 0 ]' \
	"flow log: all $nrec records: 14 fields, version 2, account-id $OWNER, interface-id $ENI_ID, start <= end in the test's time" \
	"$bad"

# NODATA: an interval with no traffic at all (the next one starting now)
tidle=$(date +%s)
nodata_after() { awk -v t="$1" '$14 == "NODATA" && $11 >= t { f = 1 } END { exit !f }' "$FL1"; }
if wait_for 8 nodata_after "$tidle"; then
	line=$(awk -v t="$tidle" '$14 == "NODATA" && $11 >= t' "$FL1" | head -1)
	check '[[ $line =~ ^2\ $OWNER\ $ENI_ID(\ -){7}\ [0-9]+\ [0-9]+\ -\ NODATA$ ]]' \
		"flow log: an idle interval gives NODATA: $line" "got: $line"
else
	fail "flow log: an idle interval gives a NODATA record within 8 s" "$(tail -3 "$FL1")"
fi

# SIGUSR1: move the file away, serve reopens FL1 and writes there
mv "$FL1" "$FL1.1"
kill -USR1 "$SERVE_PID"
if wait_for 5 test -e "$FL1"; then
	pass "SIGUSR1 after moving the flow log: serve created $FL1 again"
else
	fail "SIGUSR1 after moving the flow log: serve creates $FL1 again within 5 s"
fi
sleep 0.3
old_size=$(stat -c %s "$FL1.1" 2>/dev/null)
EPG_CMD_TIMEOUT=10 epg_in "$NS_CL1" ping -4 -n -q -c 2 -i 0.2 -W 1 "$EP_V4" >/dev/null 2>&1
wait_for 8 eval '[[ $(fl_sum "$FL1" "$C1_IN") == "2 196 "* ]]'
r=$(fl_sum "$FL1" "$C1_IN")
check '[[ $r == "2 196 "* ]] && [ "$(stat -c %s "$FL1.1" 2>/dev/null)" = "$old_size" ] && kill -0 "$SERVE_PID"' \
	"after the reopen: new records go to the new file (cl1's 2 pings: $r), the moved file stays at $old_size bytes" \
	"new file ACCEPT cl1 icmp: $r; moved file $old_size -> $(stat -c %s "$FL1.1" 2>/dev/null) bytes"

# ---- SIGHUP: reload, a broken config ------------------------------------------

scrape "$WORK/h0"
gen0=$(msum "$WORK/h0" epgate_policy_generation)
err0=$(msum "$WORK/h0" epgate_policy_apply_errors_total)
cp "$CONF/security-groups.json" "$WORK/sg.orig"
jq '.SecurityGroups[0].IpPermissions |= map(select(.IpProtocol != "icmp" and .IpProtocol != "icmpv6"))' \
	"$WORK/sg.orig" >"$CONF/security-groups.json.new" && mv "$CONF/security-groups.json.new" "$CONF/security-groups.json"
kill -HUP "$SERVE_PID"
gen_is() { scrape "$WORK/h1" && [ "$(msum "$WORK/h1" epgate_policy_generation)" = "$1" ]; }
if cmp_n "$gen0" -ge 1 && wait_for 5 gen_is $((gen0 + 1)); then
	pass "SIGHUP with the ping rules removed: epgate_policy_generation $gen0 -> $((gen0 + 1))"
else
	fail "SIGHUP: epgate_policy_generation increments" "before $gen0, now $(msum "$WORK/h1" epgate_policy_generation)" \
		"$(tail -3 "$WORK/serve1.err")"
fi
EPG_CMD_TIMEOUT=10 epg_in "$NS_CL1" ping -4 -n -q -c 3 -i 0.2 -W 1 "$EP_V4" >"$WORK/ping3.out" 2>&1
rc=$?
scrape "$WORK/h2"
dr=$(d "$(ep_m "$WORK/h2" packets ingress reject no_rule)" "$(ep_m "$WORK/h1" packets ingress reject no_rule)")
da=$(d "$(ep_m "$WORK/h2" packets ingress accept)" "$(ep_m "$WORK/h1" packets ingress accept)")
check '[ "$rc" -ne 0 ] && [ "$dr" = 3 ] && [ "$da" = 0 ]' \
	"after the reload cl1's ping is denied: ingress reject/no_rule +3, accepted +0 (/metrics)" \
	"ping exit $rc, no_rule +$dr, accepted +$da (want 3, 0)"
check 'grep -q "reloaded" "$WORK/serve1.err"' "serve logged the reload" "$(tail -3 "$WORK/serve1.err")"

# a broken document: the generation stays, the error counter grows
printf '{"SecurityGroups": [{"GroupId": "sg-0e0e0e0e0e0e0e0e3", ' >"$CONF/security-groups.json"
kill -HUP "$SERVE_PID"
err_is() { scrape "$WORK/h3" && [ "$(msum "$WORK/h3" epgate_policy_apply_errors_total)" = "$1" ]; }
if cmp_n "$err0" -ge 0 && wait_for 5 err_is $((err0 + 1)); then
	g=$(msum "$WORK/h3" epgate_policy_generation)
	check '[ "$g" = $((gen0 + 1)) ] && kill -0 "$SERVE_PID"' \
		"SIGHUP with a broken document: epgate_policy_apply_errors_total $err0 -> $((err0 + 1)), generation stays $g, serve runs on" \
		"generation $g (want $((gen0 + 1))), serve $(kill -0 "$SERVE_PID" 2>/dev/null && echo alive || echo gone)"
else
	fail "SIGHUP with a broken document: epgate_policy_apply_errors_total increments" \
		"before $err0, now $(msum "$WORK/h3" epgate_policy_apply_errors_total)" "$(tail -3 "$WORK/serve1.err")"
fi
check 'grep -q "reload failed, the running policy stays" "$WORK/serve1.err"' \
	"serve logged the failed reload: $(grep -m1 'reload failed' "$WORK/serve1.err" | cut -c1-120)" "$(tail -3 "$WORK/serve1.err")"
EPG_CMD_TIMEOUT=10 epg_in "$NS_CL1" ping -4 -n -q -c 1 -W 1 "$EP_V4" >/dev/null 2>&1
rc=$?
check '[ "$rc" -ne 0 ]' "the policy in force is still the reloaded one (cl1 ping denied)" "ping exit $rc"

# the original policy back
cp "$WORK/sg.orig" "$CONF/security-groups.json"
kill -HUP "$SERVE_PID"
if wait_for 5 gen_is $((gen0 + 2)); then
	EPG_CMD_TIMEOUT=10 epg_in "$NS_CL1" ping -4 -n -q -c 2 -i 0.2 -W 1 "$EP_V4" >/dev/null 2>&1
	rc=$?
	check '[ "$rc" -eq 0 ]' "SIGHUP with the original documents: generation $((gen0 + 2)), cl1 ping allowed again" "ping exit $rc"
else
	fail "SIGHUP with the original documents: generation $((gen0 + 2))" "now $(msum "$WORK/h1" epgate_policy_generation)"
fi

# ---- one serve per pin directory ------------------------------------------------

OTHER=$(free_port "$NS_GW") || OTHER=$((SPORT + 2))
out=$(EPG_CMD_TIMEOUT=10 epg_in "$NS_GW" "$EPGATE" --pin-dir "$EPG_PIN" serve --config "${CONFIGS[@]}" \
	--listen "127.0.0.1:$OTHER" 2>&1 </dev/null)
rc=$?
check '[ "$rc" -eq 2 ] && grep -q "pid $SERVE_PID\\b" <<<"$out" && kill -0 "$SERVE_PID" && healthz_ok' \
	"a second serve on the same pin directory exits 2 naming pid $SERVE_PID: $out" \
	"exit $rc (want 2): $out" "first serve $(kill -0 "$SERVE_PID" 2>/dev/null && echo alive || echo gone)"
# the same directory spelled another way (a trailing slash) is the same one
out=$(EPG_CMD_TIMEOUT=10 epg_in "$NS_GW" "$EPGATE" --pin-dir "$EPG_PIN//" serve --config "${CONFIGS[@]}" \
	--listen "127.0.0.1:$OTHER" 2>&1 </dev/null)
rc=$?
check '[ "$rc" -eq 2 ] && grep -q "pid $SERVE_PID\\b" <<<"$out" && kill -0 "$SERVE_PID"' \
	"--pin-dir $EPG_PIN// is the same pin directory: exit 2 naming pid $SERVE_PID" \
	"exit $rc (want 2): $out"

# ---- SIGKILL while pings run; a new serve adopts the pins ------------------------

EPG_CMD_TIMEOUT=30 epg_bg "$NS_CL1" ping -4 -n -c 40 -i 0.2 -W 1 "$EP_V4" >"$WORK/pingk1.out" 2>&1
PK1=$EPG_LAST_PID
EPG_CMD_TIMEOUT=30 epg_bg "$NS_CL2" ping -4 -n -c 40 -i 0.2 -W 1 "$EP_V4" >"$WORK/pingk2.out" 2>&1
PK2=$EPG_LAST_PID
sleep 1.5
scrape "$WORK/k0"
a0=$(ep_m "$WORK/k0" packets ingress accept)
j0=$(ep_m "$WORK/k0" packets ingress reject)
g0=$(msum "$WORK/k0" epgate_policy_generation)
OLD_PID=$SERVE_PID
# timeout re-raises its child's SIGKILL on itself; disowned, bash does not
# report it ("Killed") at exit, after the summary line
disown "$SERVE_T" 2>/dev/null
kill -KILL "$SERVE_PID"
wait_for 5 eval '! kill -0 "$OLD_PID" 2>/dev/null'
check '! kill -0 "$OLD_PID" 2>/dev/null && ! healthz_ok' "serve (pid $OLD_PID) SIGKILLed while cl1 and cl2 ping: gone, /healthz unreachable"
sleep 1.5
# no daemon: the pinned datapath goes on enforcing and counting
s1=$(epg_in "$NS_GW" "$EPGATE" --pin-dir "$EPG_PIN" stats --json 2>/dev/null)
sa=$(jq -r --arg ep "$EP_ID" '[.endpoints[] | select(.endpoint_id == $ep) | .counters[]
	| select(.direction == "ingress" and .action == "accept") | .packets] | add // 0' <<<"$s1" 2>/dev/null)
sj=$(jq -r --arg ep "$EP_ID" '[.endpoints[] | select(.endpoint_id == $ep) | .counters[]
	| select(.direction == "ingress" and .action == "reject") | .packets] | add // 0' <<<"$s1" 2>/dev/null)
check 'cmp_n "$sa" -gt "$a0" && cmp_n "$sj" -gt "$j0"' \
	"without serve the datapath still counts: ingress accepted $a0 -> $sa, rejected $j0 -> $sj (stats)" \
	"accepted $a0 -> $sa, rejected $j0 -> $sj"

FL2=$WORK/flow2.log
FMT='${version} ${interface-id} ${srcaddr} ${dstaddr} ${action} ${flow-direction} ${type}'
start_serve serve2 --flow-log "$FL2" --flow-log-format "$FMT"
if [ -n "$SERVE_PID" ] && wait_for 10 healthz_ok; then
	pass "a new serve (pid $SERVE_PID) runs on the same pin directory and port"
else
	fail "a new serve runs on the same pin directory and port" "$(cat "$WORK/serve2.err" 2>/dev/null)"
fi
miss=""
for ifc in "${GW_IFACES[@]}"; do
	grep -q "$ifc: already attached, adopted" "$WORK/serve2.err" || miss+=" $ifc"
done
check '[ -z "$miss" ]' "the new serve adopted the pins: \"already attached, adopted\" for ${GW_IFACES[*]}" \
	"not adopted:$miss" "$(cat "$WORK/serve2.err")"
scrape "$WORK/k1"
a1=$(ep_m "$WORK/k1" packets ingress accept)
j1=$(ep_m "$WORK/k1" packets ingress reject)
g1=$(msum "$WORK/k1" epgate_policy_generation)
check 'cmp_n "$a1" -ge "$sa" && cmp_n "$j1" -ge "$sj" && [ "$g1" = $((g0 + 1)) ]' \
	"/metrics continues, not reset: ingress accepted $a0 -> $sa -> $a1, rejected $j0 -> $sj -> $j1; generation $g0 -> $g1" \
	"accepted $a0 (old serve) -> $sa (stats) -> $a1 (new serve), rejected $j0 -> $sj -> $j1; generation $g0 -> $g1 (want +1)"

# the pings end by themselves (40 x 0.2 s): cl1 lost nothing, cl2 got nothing
wait_for 15 eval '! kill -0 "$PK1" 2>/dev/null && ! kill -0 "$PK2" 2>/dev/null'
check 'grep -q "40 packets transmitted, 40 received" "$WORK/pingk1.out"' \
	"cl1's ping across the SIGKILL and the restart: 40/40 replies" "$(tail -2 "$WORK/pingk1.out" | head -1)"
check 'grep -q "40 packets transmitted, 0 received" "$WORK/pingk2.out"' \
	"cl2's ping across the SIGKILL and the restart: 0/40 replies" "$(tail -2 "$WORK/pingk2.out" | head -1)"

# the custom format: version 5 (flow-direction), 7 fields
v5_logged() {
	grep -qxF "5 $ENI_ID $CL1_V4 $EP_V4 ACCEPT ingress IPv4" "$FL2" &&
		grep -qxF "5 $ENI_ID $EP_V4 $CL1_V4 ACCEPT egress IPv4" "$FL2" &&
		grep -qxF "5 $ENI_ID $CL2_V4 $EP_V4 REJECT ingress IPv4" "$FL2"
}
wait_for 6 v5_logged
check 'v5_logged' "--flow-log-format: \"5 $ENI_ID $CL1_V4 $EP_V4 ACCEPT ingress IPv4\", its egress twin and cl2's REJECT" \
	"$(head -5 "$FL2" 2>/dev/null)"
bad=$(awk 'NF != 7 || $1 != 5' "$FL2" | head -3)
check '[ -z "$bad" ] && [ -s "$FL2" ]' "--flow-log-format: every record ($(wc -l <"$FL2") lines) has the 7 fields, version 5" "$bad"

# Prometheus scraped both serves: the counters show no reset
q="sum(resets(epgate_endpoint_packets_total{$SEL}[5m]))"
wait_for 10 eval 'v=$(pq "$Q_IN_ACC"); cmp_n "${v%.*}" -ge "$a1" 2>/dev/null'
got=$(pq "$q")
check '[ "$got" = 0 ]' "Prometheus across the restart: $q = 0 (ingress accepted now $(pq "$Q_IN_ACC"))" "got: $got"

# ---- /healthz follows the attachments serve was asked for ------------------------
epg_in "$NS_GW" "$EPGATE" --pin-dir "$EPG_PIN" detach gw-cl2 >/dev/null 2>&1
code=$(epg_in "$NS_GW" curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SPORT/healthz" 2>/dev/null)
epg_in "$NS_GW" "$EPGATE" --pin-dir "$EPG_PIN" attach gw-cl2 >/dev/null 2>&1
check '[ "$code" = 503 ] && healthz_ok' "/healthz: 503 while gw-cl2 (given with --interface) is detached, ok again once attached" \
	"HTTP $code while detached; after re-attach: $(gw_curl "http://127.0.0.1:$SPORT/healthz" 2>/dev/null)"

# ---- the end: serve stops on SIGTERM, the datapath stays ------------------------

epg_stop "$SERVE_T"
check '! kill -0 "$SERVE_PID" 2>/dev/null && grep -q "stopping; the datapath stays attached" "$WORK/serve2.err"' \
	"SIGTERM: serve stops, saying the datapath stays" "$(tail -2 "$WORK/serve2.err")"
EPG_CMD_TIMEOUT=10 epg_in "$NS_CL2" ping -4 -n -q -c 1 -W 1 "$EP_V4" >/dev/null 2>&1
rc2=$?
EPG_CMD_TIMEOUT=10 epg_in "$NS_CL1" ping -4 -n -q -c 1 -W 1 "$EP_V4" >/dev/null 2>&1
rc1=$?
check '[ "$rc1" -eq 0 ] && [ "$rc2" -ne 0 ]' "after serve stopped: cl1 ping allowed, cl2 ping denied" \
	"cl1 exit $rc1, cl2 exit $rc2"

# ---- flows removed between two flow-log intervals are logged to the end ----------
# ICMP flows idle for 1 s are over (EpgateSettings); serve logs every 4 s, so
# a flow can end, and be removed, between two intervals: by the datapath when
# a ping of the same identifier meets it idle (serve3, the sweeper idle), or
# by the sweeper (serve4, sweeping every second). Each ping starts right
# after an interval was written, so its flow is removed before the next one.
echo '{"EpgateSettings": {"ConnectionTracking": {"IcmpTimeout": 1}}}' >"$CONF/settings.json"
CONFIGS=("$CONF"/*.json)
T_PING_IN="\$4==\"$CL1_V4\" && \$5==\"$EP_V4\" && \$8==1 && \$13==\"ACCEPT\""
T_PING_OUT="\$4==\"$EP_V4\" && \$5==\"$CL1_V4\" && \$8==1 && \$13==\"ACCEPT\""
# wait_interval FILE: until serve writes its next interval into FILE
lines_of() { wc -l <"$1" 2>/dev/null || echo 0; }
wait_interval() {
	local n
	n=$(lines_of "$1")
	wait_for 8 eval "[ \"\$(lines_of '$1')\" -gt $n ]"
}
ping_id() { # ping_id ID COUNT: cl1 -> ep, ICMP identifier ID
	EPG_CMD_TIMEOUT=10 epg_in "$NS_CL1" ping -4 -n -q -e "$1" -c "$2" -i 0.2 -W 1 "$EP_V4" >/dev/null 2>&1
}
for run in datapath sweeper; do
	FL=$WORK/flow-$run.log
	if [ "$run" = datapath ]; then
		start_serve "serve-$run" --flow-log "$FL" --flow-log-interval 4 --sweep-interval 3600
	else
		start_serve "serve-$run" --flow-log "$FL" --flow-log-interval 4 --sweep-interval 1
	fi
	if [ -z "$SERVE_PID" ] || ! wait_for 10 healthz_ok || ! wait_interval "$FL"; then
		fail "$run: serve runs and writes its first interval" "$(cat "$WORK/serve-$run.err" 2>/dev/null)"
		epg_stop "$SERVE_T"
		continue
	fi
	id=$((4000 + RANDOM % 1000))
	ping_id "$id" 3
	rc=$?
	if [ "$run" = datapath ]; then
		sleep 1.5 # idle: the next echo request meets the flow over, removes it and starts anew
		ping_id "$id" 1 || rc=$?
		want=4
	else
		want=3
	fi
	wait_for 10 eval '[[ $(fl_sum "$FL" "$T_PING_IN") == "$want "* && $(fl_sum "$FL" "$T_PING_OUT") == "$want "* ]]'
	check '[ "$rc" -eq 0 ] && [[ $(fl_sum "$FL" "$T_PING_IN") == "$want "* && $(fl_sum "$FL" "$T_PING_OUT") == "$want "* ]]' \
		"flow log: a flow the $run removed between two intervals is logged to its last packet ($want echo requests, $want replies)" \
		"ping exit $rc; requests: $(fl_sum "$FL" "$T_PING_IN"), replies: $(fl_sum "$FL" "$T_PING_OUT") (packets bytes records); $(tail -4 "$FL")"
	epg_stop "$SERVE_T"
done
rm -f "$CONF/settings.json"
CONFIGS=("$CONF"/*.json)

# ---- --listen and --flow-log are checked before anything changes -----------------

gen_of() { epg_in "$NS_GW" "$EPGATE" --pin-dir "$EPG_PIN" status --json 2>/dev/null | jq -r .generation; }
BUSY=$(free_port "$NS_GW") || BUSY=$((SPORT + 3))
EPG_CMD_TIMEOUT=20 epg_bg "$NS_GW" socat "TCP-LISTEN:$BUSY,bind=127.0.0.1,reuseaddr,fork" SYSTEM:true 2>/dev/null
SOCAT_T=$EPG_LAST_PID
busy_listening() { epg_in "$NS_GW" ss -ltnH "sport = :$BUSY" 2>/dev/null | grep -q .; }
wait_for 5 busy_listening
g0=$(gen_of)
out=$(EPG_CMD_TIMEOUT=20 epg_in "$NS_GW" "$EPGATE" --pin-dir "$EPG_PIN" serve --config "${CONFIGS[@]}" \
	--listen "127.0.0.1:$BUSY" 2>&1 </dev/null)
rc=$?
g1=$(gen_of)
check 'busy_listening && [ "$rc" -eq 2 ] && grep -q "another process has the port" <<<"$out" && [ -n "$g0" ] && [ "$g0" = "$g1" ]' \
	"--listen on a port another process holds: exit 2 before any apply (generation stays $g0): $out" \
	"exit $rc (want 2), generation $g0 -> $g1: $out"
epg_stop "$SOCAT_T"
out=$(EPG_CMD_TIMEOUT=20 epg_in "$NS_GW" "$EPGATE" --pin-dir "$EPG_PIN" serve --config "${CONFIGS[@]}" \
	--listen "127.0.0.1:$SPORT" --flow-log /proc/sys/kernel/ostype 2>&1 </dev/null)
rc=$?
g1=$(gen_of)
check '[ "$rc" -eq 2 ] && grep -q "flow-log /proc/sys/kernel/ostype" <<<"$out" && [ "$g0" = "$g1" ]' \
	"--flow-log a file that cannot be written: exit 2, nothing applied: $out" \
	"exit $rc (want 2), generation $g0 -> $g1: $out"

# ---- flow-log records that cannot be written are reported and counted ------------
start_serve serve-full --flow-log /dev/full
EPG_CMD_TIMEOUT=10 epg_in "$NS_CL1" ping -4 -n -q -c 2 -i 0.2 -W 1 "$EP_V4" >/dev/null 2>&1
werr() { scrape "$WORK/full" && cmp_n "$(msum "$WORK/full" epgate_flowlog_write_errors_total)" -ge 1; }
wait_for 8 werr
check 'werr && grep -q "flow logs: cannot write to /dev/full: No space left on device" "$WORK/serve-full.err" && kill -0 "$SERVE_PID"' \
	"--flow-log /dev/full: the failed interval is logged and counted (epgate_flowlog_write_errors_total $(msum "$WORK/full" epgate_flowlog_write_errors_total)), serve runs on" \
	"$(tail -3 "$WORK/serve-full.err" 2>/dev/null)"
epg_stop "$SERVE_T"

# ---- adopting an interface keeps its mode, and says so when asked another --------
EPG_CMD_TIMEOUT=$LONG epg_bg "$NS_GW" "$EPGATE" --pin-dir "$EPG_PIN" serve --interface gw-cl1:skb \
	--listen "127.0.0.1:$SPORT" --config "${CONFIGS[@]}" 2>"$WORK/serve-mode.err"
SERVE_T=$EPG_LAST_PID
SERVE_PID=$(bg_child "$SERVE_T") || SERVE_PID=""
wait_for 10 healthz_ok
mode=$(epg_in "$NS_GW" "$EPGATE" --pin-dir "$EPG_PIN" status --json 2>/dev/null |
	jq -r '.interfaces[] | select(.interface == "gw-cl1") | .mode')
check 'healthz_ok && [ "$mode" = native ] && grep -q "warning: gw-cl1 runs in native mode, not the skb mode --interface asks for" "$WORK/serve-mode.err"' \
	"--interface gw-cl1:skb on a natively attached gw-cl1: adopted in native mode, with a warning saying how to change it" \
	"mode $mode; $(tail -3 "$WORK/serve-mode.err" 2>/dev/null)"
epg_stop "$SERVE_T"

# ---- a reload asked for while serve starts waits for it ------------------------
# serve's first apply waits for the pin directory's lock, held here for 2 s:
# a SIGHUP meanwhile must neither kill serve nor be lost.
EPG_CMD_TIMEOUT=10 epg_bg "$NS_GW" flock -x "$EPG_PIN" sleep 2
FLOCK_T=$EPG_LAST_PID
sleep 0.3
start_serve serve-hup
sleep 0.3
hup_sent=no
[ -n "$SERVE_PID" ] && kill -0 "$FLOCK_T" 2>/dev/null && kill -HUP "$SERVE_PID" 2>/dev/null && hup_sent=yes
reloaded() { grep -q "reloaded" "$WORK/serve-hup.err"; }
wait_for 10 reloaded
check '[ "$hup_sent" = yes ] && kill -0 "$SERVE_PID" 2>/dev/null && healthz_ok && reloaded' \
	"SIGHUP while serve's first apply waits for the pin lock: serve survives, then reloads" \
	"HUP sent while starting: $hup_sent; serve $(kill -0 "$SERVE_PID" 2>/dev/null && echo alive || echo gone)" \
	"$(tail -3 "$WORK/serve-hup.err" 2>/dev/null)"
epg_stop "$FLOCK_T"

# ---- /healthz and epgate_attached follow the interface, not its record -----------
# gw-cl2 deleted and made again under its name (a new ifindex, no program):
# the record of the old one is no attachment.
ip -n "$NS_GW" link del gw-cl2 2>/dev/null
ip -n "$NS_GW" link add gw-cl2 type dummy 2>/dev/null
ip -n "$NS_GW" link set gw-cl2 up 2>/dev/null
code=$(epg_in "$NS_GW" curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SPORT/healthz" 2>/dev/null)
scrape "$WORK/gone"
n_att=$(msum "$WORK/gone" epgate_attached 'interface="gw-cl2"')
st=$(epg_in "$NS_GW" "$EPGATE" --pin-dir "$EPG_PIN" status --json 2>/dev/null |
	jq -r '.interfaces[] | select(.interface == "gw-cl2") | .attached')
check '[ "$code" = 503 ] && [ "$n_att" = "?" ] && [ "$st" = false ]' \
	"gw-cl2 deleted and made again: /healthz 503, no epgate_attached series for it, status --json attached false" \
	"HTTP $code (want 503), epgate_attached{gw-cl2} $n_att (want none), status attached: $st (want false)"
epg_stop "$SERVE_T"

exit 0
