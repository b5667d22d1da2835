# shellcheck shell=bash disable=SC2034
# (SC2034: the variables are for the scripts that source this file)
# netns-lib.sh: the test topology of epgate's integration test and demo.
# Source it; it defines functions and variables only (no traps, no side
# effects). The caller installs `trap epg_topo_down EXIT`.
#
#   cl1 (allowed client)            gw (router, runs epgate)           ep (endpoint host)
#   to-gw 198.18.1.2/24  ------ gw-cl1 198.18.1.1/24
#         fd00:1::2/64                 fd00:1::1/64
#   cl2 (denied client)                                gw-ep 198.18.3.1/24 ------ to-gw 198.18.3.2/24
#   to-gw 198.18.2.2/24  ------ gw-cl2 198.18.2.1/24         fd00:3::1/64               fd00:3::2/64
#         fd00:2::2/64                 fd00:2::1/64
#
# Every host is a network namespace named epg-<run id>-<role>; every link is
# a veth pair created directly inside the namespaces (nothing is ever made
# in, or attached to, the root namespace). Addresses come only from
# 198.18.0.0/15 and fd00::/8. epgate's maps live on a private bpffs mounted
# on a temporary directory, because `ip netns exec` hides /sys/fs/bpf.
#
# Functions:
#   epg_topo_up            namespaces, links, addresses, routes, bpffs,
#                          a temporary directory $EPG_TMP
#   epg_topo_down          undo all of it (idempotent; safe on any exit path)
#   epg_in NS CMD...       run CMD in namespace NS, bounded by $EPG_CMD_TIMEOUT
#   epgate CMD...          run $EPGATE in the gw namespace with --pin-dir
#   epg_bg NS CMD...       start CMD in NS in the background; its PID is
#                          recorded (EPG_LAST_PID) and stopped by epg_topo_down
#   epg_stop PID           stop one process started by epg_bg
#   epg_wait_listen NS tcp|udp PORT   wait (bounded) until something listens
#   epg_log MSG...         a timestamped line on stderr
#
# Traffic helpers (for tests that keep connections open across policy
# changes); their files live in $EPG_TMP, removed by epg_topo_down:
#   epg_echo_server NS tcp|udp 4|6 ADDR PORT LOG
#                          a socat server in NS that sends every line back and
#                          appends it to LOG (what really arrived); waits until
#                          it listens; PID in EPG_LAST_PID
#   epg_stream_open NAME NS 4|6 ADDR PORT
#                          one long-lived TCP connection from NS, fed line by
#                          line from the test (a FIFO), what comes back in
#                          epg_stream_out NAME
#   epg_stream_send NAME LINE         write LINE on it
#   epg_stream_wait NAME LINE SECS    wait (bounded) until LINE came back
#   epg_stream_close NAME             close it, stop its socat
#   epg_flood_udp NS DST PORT SPAN COUNT SECS
#                          COUNT UDP datagrams from NS to DST, each from a new
#                          socket (a new source port: a new flow), to ports
#                          PORT..PORT+SPAN-1 in turn; never more than COUNT
#                          (<= 300000) nor longer than SECS (<= 20). Runs in
#                          the background (EPG_LAST_PID); exit status 124 when
#                          the time bound cut it short

: "${EPG_RUN_ID:=$$}"
: "${EPG_CMD_TIMEOUT:=30}"

EPG_NS_PREFIX="epg-${EPG_RUN_ID}"
NS_CL1="${EPG_NS_PREFIX}-cl1"
NS_CL2="${EPG_NS_PREFIX}-cl2"
NS_GW="${EPG_NS_PREFIX}-gw"
NS_EP="${EPG_NS_PREFIX}-ep"
EPG_ALL_NS=("$NS_CL1" "$NS_CL2" "$NS_GW" "$NS_EP")
# The gw ends of the three links: where epgate is attached.
GW_IFACES=(gw-cl1 gw-cl2 gw-ep)

CL1_V4=198.18.1.2 CL1_V6=fd00:1::2
CL2_V4=198.18.2.2 CL2_V6=fd00:2::2
EP_V4=198.18.3.2 EP_V6=fd00:3::2

EPG_BPFFS=""   # temporary directory with a bpffs mounted on it
EPG_PIN=""     # $EPG_BPFFS/epgate, passed as --pin-dir to every epgate call
EPG_PIDS=()    # background processes started by epg_bg
EPG_LAST_PID=""
EPG_CREATED_NS=()
EPG_TMP=""     # temporary directory for the traffic helpers' files
declare -gA EPG_STREAM_FD=() EPG_STREAM_PID=()

epg_log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

epg_in() {
	local ns=$1
	shift
	timeout --kill-after=2 "$EPG_CMD_TIMEOUT" ip netns exec "$ns" "$@"
}

# epgate in the gw namespace, always on the private pin directory.
epgate() {
	[ -n "$EPG_PIN" ] || { echo "netns-lib: epgate called before epg_topo_up" >&2; return 1; }
	epg_in "$NS_GW" "$EPGATE" --pin-dir "$EPG_PIN" "$@"
}

epg_bg() {
	local ns=$1
	shift
	# `ip netns exec` execs its command in place, so $! is timeout's PID;
	# timeout passes our TERM on to its child and bounds its life anyway.
	timeout --kill-after=2 "$EPG_CMD_TIMEOUT" ip netns exec "$ns" "$@" &
	EPG_LAST_PID=$!
	EPG_PIDS+=("$EPG_LAST_PID")
}

epg_stop() {
	local pid=$1 i
	[ -n "$pid" ] || return 0
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null
		for i in $(seq 1 30); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	return 0
}

# Wait until a socket listens (tcp) or is bound (udp) on PORT in NS:
# at most 5 s, 50 polls.
epg_wait_listen() {
	local ns=$1 proto=$2 port=$3 i opt=-ltnH
	[ "$proto" = udp ] && opt=-lunH
	for i in $(seq 1 50); do
		if epg_in "$ns" ss "$opt" "sport = :$port" 2>/dev/null | grep -q .; then
			return 0
		fi
		sleep 0.1
	done
	epg_log "nothing listens on $proto port $port in $ns after 5 s"
	return 1
}

epg_ns_exists() { ip netns list | awk '{print $1}' | grep -qxF -- "$1"; }

# A new namespace with IPv6 DAD off (so addresses are usable at once) and
# loopback up. Recorded before anything else, so teardown finds it.
epg_ns_add() {
	local ns=$1
	ip netns add "$ns" || return 1
	EPG_CREATED_NS+=("$ns")
	epg_in "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
		net.ipv6.conf.default.accept_ra=0 &&
		ip -n "$ns" link set lo up
}

# epg_link NS_A IF_A NS_B IF_B: a veth pair between two namespaces, both up.
epg_link() {
	ip -n "$1" link add "$2" type veth peer name "$4" netns "$3" &&
		ip -n "$1" link set "$2" up &&
		ip -n "$3" link set "$4" up
}

epg_addr() { # NS IFACE V4/LEN V6/LEN
	ip -n "$1" addr add "$3" dev "$2" &&
		ip -n "$1" -6 addr add "$4" dev "$2" nodad
}

# Wait (bounded: 5 s) until no address in NS is tentative, link-locals
# included, so neighbour discovery works from the first packet.
epg_wait_no_tentative() {
	local ns=$1 i
	for i in $(seq 1 50); do
		[ -z "$(ip -n "$ns" -6 addr show tentative)" ] && return 0
		sleep 0.1
	done
	epg_log "IPv6 addresses still tentative in $ns after 5 s"
	return 1
}

epg_topo_up() {
	local ns
	[ -x "$EPGATE" ] || { echo "netns-lib: EPGATE=$EPGATE is not an executable" >&2; return 1; }
	for ns in "${EPG_ALL_NS[@]}"; do
		if epg_ns_exists "$ns"; then
			echo "netns-lib: namespace $ns already exists (set EPG_RUN_ID)" >&2
			return 1
		fi
	done

	EPG_TMP=$(mktemp -d /tmp/epg-tmp.XXXXXX) || return 1
	EPG_BPFFS=$(mktemp -d /tmp/epg-bpffs.XXXXXX) || return 1
	mount -t bpf bpf "$EPG_BPFFS" || { rmdir "$EPG_BPFFS"; EPG_BPFFS=""; return 1; }
	EPG_PIN=$EPG_BPFFS/epgate

	for ns in "${EPG_ALL_NS[@]}"; do
		epg_ns_add "$ns" || return 1
	done
	epg_in "$NS_GW" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 || return 1

	epg_link "$NS_GW" gw-cl1 "$NS_CL1" to-gw || return 1
	epg_link "$NS_GW" gw-cl2 "$NS_CL2" to-gw || return 1
	epg_link "$NS_GW" gw-ep "$NS_EP" to-gw || return 1

	epg_addr "$NS_GW" gw-cl1 198.18.1.1/24 fd00:1::1/64 || return 1
	epg_addr "$NS_GW" gw-cl2 198.18.2.1/24 fd00:2::1/64 || return 1
	epg_addr "$NS_GW" gw-ep 198.18.3.1/24 fd00:3::1/64 || return 1
	epg_addr "$NS_CL1" to-gw "$CL1_V4/24" "$CL1_V6/64" || return 1
	epg_addr "$NS_CL2" to-gw "$CL2_V4/24" "$CL2_V6/64" || return 1
	epg_addr "$NS_EP" to-gw "$EP_V4/24" "$EP_V6/64" || return 1

	ip -n "$NS_CL1" route add default via 198.18.1.1 &&
		ip -n "$NS_CL1" -6 route add default via fd00:1::1 &&
		ip -n "$NS_CL2" route add default via 198.18.2.1 &&
		ip -n "$NS_CL2" -6 route add default via fd00:2::1 &&
		ip -n "$NS_EP" route add default via 198.18.3.1 &&
		ip -n "$NS_EP" -6 route add default via fd00:3::1 || return 1

	for ns in "${EPG_ALL_NS[@]}"; do
		epg_wait_no_tentative "$ns" || return 1
	done
	return 0
}

# Undo everything epg_topo_up and epg_bg did, whatever state they got to.
# Never fails; safe to call twice.
epg_topo_down() {
	local pid ns i name fd
	for name in "${!EPG_STREAM_FD[@]}"; do
		fd=${EPG_STREAM_FD[$name]}
		exec {fd}>&-
	done
	EPG_STREAM_FD=() EPG_STREAM_PID=()
	for pid in "${EPG_PIDS[@]}"; do
		epg_stop "$pid"
	done
	EPG_PIDS=()
	# Detach first so libxdp's dispatcher pins go away cleanly; deleting the
	# namespaces (and with them the veths) would detach the programs anyway.
	if [ -n "$EPG_PIN" ] && [ -d "$EPG_PIN" ] && epg_ns_exists "$NS_GW"; then
		epgate detach --all >/dev/null 2>&1
	fi
	for ns in "${EPG_CREATED_NS[@]}"; do
		ip netns delete "$ns" 2>/dev/null
	done
	EPG_CREATED_NS=()
	if [ -n "$EPG_BPFFS" ]; then
		for i in 1 2 3 4 5; do
			mountpoint -q "$EPG_BPFFS" || break
			umount "$EPG_BPFFS" 2>/dev/null || sleep 0.2
		done
		mountpoint -q "$EPG_BPFFS" && umount -l "$EPG_BPFFS" 2>/dev/null
		rmdir "$EPG_BPFFS" 2>/dev/null
		EPG_BPFFS=""
		EPG_PIN=""
	fi
	if [ -n "$EPG_TMP" ]; then
		rm -rf "$EPG_TMP"
		EPG_TMP=""
	fi
	return 0
}

# ---- traffic helpers ---------------------------------------------------------

epg_echo_server() { # NS tcp|udp 4|6 ADDR PORT LOG
	local ns=$1 proto=$2 fam=$3 addr=$4 port=$5 log=$6 listen
	[ "$fam" = 6 ] && addr="[$addr]"
	local opts=()
	if [ "$proto" = tcp ]; then
		listen="TCP$fam-LISTEN:$port,bind=$addr,reuseaddr,fork"
	else
		# one child per datagram; it answers from the bound port and
		# exits after 2 s without traffic
		listen="UDP$fam-RECVFROM:$port,bind=$addr,reuseaddr,fork"
		opts=(-T 2)
	fi
	: >>"$log" || return 1
	# tee writes each line as it reads it: into LOG and back to the peer
	epg_bg "$ns" socat "${opts[@]}" "$listen" "SYSTEM:exec tee -a $log" 2>>"$log.err"
	epg_wait_listen "$ns" "$proto" "$port"
}

epg_stream_out() { echo "$EPG_TMP/stream.$1.out"; }

epg_stream_open() { # NAME NS 4|6 ADDR PORT
	local name=$1 ns=$2 fam=$3 addr=$4 port=$5 fifo out fd
	[ -n "$EPG_TMP" ] || { echo "netns-lib: epg_stream_open before epg_topo_up" >&2; return 1; }
	[ -z "${EPG_STREAM_FD[$name]:-}" ] || { echo "netns-lib: stream $name is open" >&2; return 1; }
	[ "$fam" = 6 ] && addr="[$addr]"
	fifo=$EPG_TMP/stream.$name.in
	out=$(epg_stream_out "$name")
	rm -f "$fifo" "$out"
	mkfifo "$fifo" && : >"$out" || return 1
	# Read-write: the open does not wait for a reader, and writes never
	# raise SIGPIPE even if socat is gone.
	exec {fd}<>"$fifo" || return 1
	EPG_STREAM_FD[$name]=$fd
	# no inactivity timeout: the connection stays open however long the test
	# pauses; the epg_bg bound ($EPG_CMD_TIMEOUT) still applies
	# (socat opens the files itself: a background job's stdin would be
	# /dev/null whatever the caller redirects)
	epg_bg "$ns" socat "OPEN:$fifo,rdonly!!OPEN:$out,wronly,append" \
		"TCP$fam:$addr:$port,connect-timeout=2" 2>>"$out.err"
	EPG_STREAM_PID[$name]=$EPG_LAST_PID
}

epg_stream_send() { # NAME LINE
	local fd=${EPG_STREAM_FD[$1]:-}
	[ -n "$fd" ] || return 1
	printf '%s\n' "$2" >&"$fd"
}

epg_stream_wait() { # NAME LINE SECONDS: 0 once LINE came back
	local out i n
	out=$(epg_stream_out "$1")
	n=$((${3:-5} * 20))
	for ((i = 0; i < n; i++)); do
		grep -qxF -- "$2" "$out" 2>/dev/null && return 0
		sleep 0.05
	done
	grep -qxF -- "$2" "$out" 2>/dev/null
}

epg_stream_close() { # NAME
	local name=$1 fd=${EPG_STREAM_FD[$1]:-}
	[ -n "$fd" ] && exec {fd}>&-
	epg_stop "${EPG_STREAM_PID[$name]:-}"
	unset "EPG_STREAM_FD[$name]" "EPG_STREAM_PID[$name]"
	return 0
}

epg_flood_udp() { # NS DST PORT SPAN COUNT SECONDS
	local ns=$1 dst=$2 port=$3 span=$4 count=$5 secs=$6
	((count >= 1 && count <= 300000 && secs >= 1 && secs <= 20 && span >= 1)) || {
		echo "netns-lib: epg_flood_udp: COUNT 1..300000, SECS 1..20, SPAN >= 1" >&2
		return 1
	}
	# bash's /dev/udp: socket, connect, send, close, all in one process
	# (no fork per datagram); a new socket has a new ephemeral port.
	# shellcheck disable=SC2016 # expanded by the inner bash
	EPG_CMD_TIMEOUT=$secs epg_bg "$ns" bash -c \
		'for ((i = 0; i < $2; i++)); do printf x 2>/dev/null >"/dev/udp/$1/$(($3 + i % $4))"; done' \
		flood "$dst" "$count" "$port" "$span"
}
