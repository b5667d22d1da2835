#!/usr/bin/env bash
# sg2rules.sh: the inbound security-group policy of epgate's EC2 JSON config,
# expressed as nftables or iptables rules, so that tests/bench/live.sh
# compares epgate with the SAME policy in netfilter (never hand-written twice).
#
#   sg2rules.sh nft-netdev IFACE FILE...   nft script: a netdev-family ingress
#       chain on IFACE, stateless: per endpoint, sets of allowed
#       (saddr . dport) per protocol; the endpoint's other packets dropped
#   sg2rules.sh nft-inet FILE...           nft script: inet-family input and
#       forward chains; per endpoint `ct state established,related accept`,
#       then the same sets and the drop
#   sg2rules.sh iptables FILE...           iptables-restore input: INPUT and
#       FORWARD, per endpoint a chain: conntrack ESTABLISHED,RELATED accept,
#       then one rule per (protocol, CIDR, ports), and the drop
#
# Network ACLs come first, as epgate judges them: the inbound entries of the
# ACL of each interface's subnet (else its VPC's default ACL), one rule each
# in rule-number order, on every packet (tracked ones too): allow goes on to
# the endpoint's security-group chain, deny drops, and what no entry matches
# is dropped (the `*` entry).
#
# FILEs are EC2 API JSON documents, merged like `epgate apply` merges them
# (top-level arrays concatenated): VpcEndpoints, NetworkInterfaces,
# SecurityGroups, and PrefixLists (describe-managed-prefix-lists, with
# Entries). What it translates, as epgate reads it: Interface endpoints; an
# endpoint's addresses are those of its NetworkInterfaceIds; its rules are
# the union of the IpPermissions of its Groups (or, when absent or empty, its
# interfaces' groups); peers are IpRanges, UserIdGroupPairs (every address of
# every interface in the group) and PrefixListIds; protocols tcp, udp (port
# ranges), icmp (type, code), -1 and numbers; NetworkAcls' inbound IPv4
# entries. What it leaves out, with a warning on stderr: IPv6 (addresses,
# Ipv6Ranges, icmpv6, Ipv6CidrBlock entries) and egress rules and entries
# (the benchmark only judges inbound traffic to the endpoint).
# Everything goes into a table named epgbench; nft rejects overlapping
# (CIDR . port range) elements of one set, which a config may contain (a
# case this translation does not merge).
set -euo pipefail

usage() {
	sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
	exit 2
}

[ $# -ge 2 ] || usage
mode=$1
shift
iface=""
case $mode in
nft-netdev)
	[ $# -ge 2 ] || usage
	iface=$1
	shift
	[[ $iface =~ ^[A-Za-z0-9_.-]{1,15}$ ]] || { echo "sg2rules: bad interface name: $iface" >&2; exit 2; }
	;;
nft-inet | iptables) ;;
*) usage ;;
esac
for f in "$@"; do
	[ -r "$f" ] || { echo "sg2rules: cannot read $f" >&2; exit 2; }
done

# One normalised model: [{id, addrs: [v4], rules: [{proto, from, to, cidrs: [v4]}],
#   parts: [{addrs: [v4], acl: null | [{proto, from, to, cidr, deny}]}]}]
# proto: "tcp" | "udp" | "icmp" | "all" | a protocol number as a string.
# tcp/udp: from..to is the port range (0..65535 for all ports);
# icmp: from = type, to = code (-1: any). parts: the endpoint's addresses
# grouped by the network ACL that judges them first (null: none).
# shellcheck disable=SC2016 # jq program
model=$(jq -s '
	def v4: map(select(type == "string" and (test(":") | not))) | unique;
	def eni_addrs: [.PrivateIpAddress, ((.PrivateIpAddresses // [])[] | .PrivateIpAddress)] | v4;
	def proto_of(p): (p | tostring | ascii_downcase) as $p
		| if $p == "tcp" or $p == "6" then "tcp"
		  elif $p == "udp" or $p == "17" then "udp"
		  elif $p == "icmp" or $p == "1" then "icmp"
		  elif $p == "-1" or $p == "all" then "all"
		  elif $p == "icmpv6" or $p == "58" then "icmpv6"
		  else $p end;
	def ports(p; a; b): if p == "tcp" or p == "udp" then
		{ from: (if (a // -1) < 0 then 0 else a end), to: (if (b // -1) < 0 then 65535 else b end) }
		else { from: (a // -1), to: (b // -1) } end;
	(reduce .[] as $d ({}; . as $acc | reduce ($d | keys[]) as $k ($acc; .[$k] += $d[$k]))) as $doc
	| ($doc.NetworkAcls // []) as $acls
	| def acl_of($eni): first(($acls[] | select([(.Associations // [])[] | .SubnetId] | index($eni.SubnetId))),
	                          ($acls[] | select(.IsDefault and (.VpcId == null or .VpcId == $eni.VpcId)))) // null;
	  def inbound($acl): [ ($acl.Entries // [])[] | select((.Egress | not) and (.CidrBlock // null) != null)
	    | proto_of(.Protocol) as $proto
	    | { num: .RuleNumber, proto: $proto, cidr: .CidrBlock, deny: (.RuleAction == "deny") }
	      + (if $proto == "icmp" then ports($proto; .IcmpTypeCode.Type; .IcmpTypeCode.Code)
	         else ports($proto; .PortRange.From; .PortRange.To) end) ] | sort_by(.num);
	($doc.NetworkInterfaces // []) as $enis
	| ($doc.SecurityGroups // []) as $sgs
	| ($doc.PrefixLists // []) as $pls
	| [ ($doc.VpcEndpoints // [])[] | select(.VpcEndpointType == "Interface") | . as $ep
	    | [ $enis[] | select(.NetworkInterfaceId as $id | ($ep.NetworkInterfaceIds // []) | index($id)) ] as $mine
	    | (if (($ep.Groups // []) | length) > 0 then [$ep.Groups[].GroupId]
	       else [$mine[] | (.Groups // [])[] | .GroupId] end | unique) as $groups
	    | { id: $ep.VpcEndpointId,
	        addrs: ([$mine[] | eni_addrs[]] | unique),
	        parts: ([$mine[] | { acl: (acl_of(.) | if . == null then null else inbound(.) end),
	                            addrs: eni_addrs }]
	                | group_by(.acl) | map({ acl: .[0].acl, addrs: ([.[].addrs[]] | unique) })
	                | map(select((.addrs | length) > 0))),
	        skipped_v6: ([$mine[] | (.Ipv6Addresses // [])[]] | length),
	        rules: [ $groups[] as $g | $sgs[] | select(.GroupId == $g) | (.IpPermissions // [])[]
	          | proto_of(.IpProtocol) as $proto
	          | ports($proto; .FromPort; .ToPort) + { proto: $proto,
	              v6: (((.Ipv6Ranges // []) | length) > 0),
	              cidrs: ([ ((.IpRanges // [])[] | .CidrIp),
	                        ((.UserIdGroupPairs // [])[] | .GroupId as $pg
	                          | $enis[] | select([(.Groups // [])[] | .GroupId] | index($pg))
	                          | eni_addrs[] | . + "/32"),
	                        ((.PrefixListIds // [])[] | .PrefixListId as $pl
	                          | $pls[] | select(.PrefixListId == $pl) | (.Entries // [])[] | .Cidr) ]
	                      | v4) } ] } ]
' "$@") || { echo "sg2rules: could not read the config" >&2; exit 2; }

# Warnings for what is left out (stderr: the rules on stdout stay clean).
jq -r '
	.[] | .id as $id
	| (if (.addrs | length) == 0 then "\($id): no IPv4 address, nothing to translate" else empty end),
	  (if .skipped_v6 > 0 then "\($id): IPv6 addresses left out" else empty end),
	  (.rules[] | select(.proto == "icmpv6" or .v6) | "\($id): IPv6 rules left out (\(.proto))")
' <<<"$model" | sed 's/^/sg2rules: warning: /' >&2
jq -e 'length > 0' <<<"$model" >/dev/null || { echo "sg2rules: no Interface endpoint in the config" >&2; exit 2; }

# ---- nft ---------------------------------------------------------------------

# The sets and the per-endpoint chains, shared by both nft modes ($1: "ct"
# when the endpoint's chain accepts tracked packets first), then the ACL
# chains that go to them (nft wants a chain defined before a rule names it).
# shellcheck disable=SC2016
nft_body() {
	jq -r --arg ct "${1:-}" '
		def port_el: if .from == .to then "\(.from)" else "\(.from)-\(.to)" end;
		def l4(p; from; to): if p == "all" then ""
			elif p == "tcp" or p == "udp" then
			  (if from == 0 and to == 65535 then "meta l4proto \(p) "
			   else "\(p) dport \({from, to} | port_el) " end)
			elif p == "icmp" then
			  (if from < 0 then "meta l4proto icmp " elif to < 0 then "icmp type \(from) "
			   else "icmp type \(from) icmp code \(to) " end)
			else "meta l4proto \(p) " end;
		(to_entries[] | .key as $i | .value as $ep
		| ([$ep.rules[] | select(.proto == "tcp") | port_el as $p | .cidrs[] | "\(.) . \($p)"] | unique) as $tcp
		| ([$ep.rules[] | select(.proto == "udp") | port_el as $p | .cidrs[] | "\(.) . \($p)"] | unique) as $udp
		| ([$ep.rules[] | select(.proto == "all") | .cidrs[]] | unique) as $all
		| "\t# \($ep.id)",
		  (if ($tcp | length) > 0 then
		     "\tset ep\($i)_tcp { type ipv4_addr . inet_service; flags interval; elements = { \($tcp | join(", ")) } }"
		   else empty end),
		  (if ($udp | length) > 0 then
		     "\tset ep\($i)_udp { type ipv4_addr . inet_service; flags interval; elements = { \($udp | join(", ")) } }"
		   else empty end),
		  (if ($all | length) > 0 then
		     "\tset ep\($i)_all { type ipv4_addr; flags interval; elements = { \($all | join(", ")) } }"
		   else empty end),
		  "\tchain ep\($i) {",
		  (if $ct == "ct" then "\t\tct state established,related accept" else empty end),
		  (if ($all | length) > 0 then "\t\tip saddr @ep\($i)_all accept" else empty end),
		  (if ($tcp | length) > 0 then "\t\tmeta l4proto tcp ip saddr . tcp dport @ep\($i)_tcp accept" else empty end),
		  (if ($udp | length) > 0 then "\t\tmeta l4proto udp ip saddr . udp dport @ep\($i)_udp accept" else empty end),
		  ($ep.rules[] | select((.proto == "icmp" or (.proto | test("^[0-9]+$"))) and (.cidrs | length) > 0)
		   | "\t\tip saddr { \(.cidrs | join(", ")) } " + l4(.proto; .from; .to) + "accept"),
		  "\t\tdrop",
		  "\t}"),
		(to_entries[] | .key as $i | .value.parts | to_entries[] | select(.value.acl != null)
		 | "\tchain acl\($i)_\(.key) {",
		   (.value.acl[] | "\t\tip saddr \(.cidr) " + l4(.proto; .from; .to)
		    + (if .deny then "drop" else "goto ep\($i)" end)),
		   "\t\tdrop",
		   "\t}")
	' <<<"$model"
}

# ip daddr { endpoint addresses } goto aclN_K (or epN without an ACL), for
# each endpoint's addresses
nft_dispatch() {
	jq -r 'to_entries[] | .key as $i | .value.parts | to_entries[]
		| "\t\tip daddr { \(.value.addrs | join(", ")) } goto "
		  + (if .value.acl == null then "ep\($i)" else "acl\($i)_\(.key)" end)' <<<"$model"
}

case $mode in
nft-netdev)
	echo "# generated by tests/bench/sg2rules.sh nft-netdev from: $*"
	echo "table netdev epgbench {"
	nft_body
	echo "	chain ingress {"
	echo "		type filter hook ingress device \"$iface\" priority -500; policy accept;"
	nft_dispatch
	echo "	}"
	echo "}"
	;;
nft-inet)
	echo "# generated by tests/bench/sg2rules.sh nft-inet from: $*"
	echo "table inet epgbench {"
	nft_body ct
	for hook in input forward; do
		echo "	chain $hook {"
		echo "		type filter hook $hook priority filter; policy accept;"
		nft_dispatch
		echo "	}"
	done
	echo "}"
	;;
iptables)
	echo "# generated by tests/bench/sg2rules.sh iptables from: $*"
	echo "*filter"
	echo ":INPUT ACCEPT [0:0]"
	echo ":FORWARD ACCEPT [0:0]"
	echo ":OUTPUT ACCEPT [0:0]"
	# shellcheck disable=SC2016
	jq -r '
		def ipt(p; from; to): if p == "all" then ""
			elif p == "tcp" or p == "udp" then " -p \(p)"
			  + (if from == 0 and to == 65535 then "" elif from == to then " -m \(p) --dport \(from)"
			     else " -m \(p) --dport \(from):\(to)" end)
			elif p == "icmp" then " -p icmp"
			  + (if from < 0 then "" elif to < 0 then " -m icmp --icmp-type \(from)"
			     else " -m icmp --icmp-type \(from)/\(to)" end)
			elif p == "icmpv6" then null
			else " -p \(p)" end;
		def acl_chain($i; $k): "EPGBENCH-ACL\($i)-\($k)";
		(to_entries[] | .key as $i | ":EPGBENCH-EP\($i) - [0:0]",
		 (.value.parts | to_entries[] | select(.value.acl != null) | ":\(acl_chain($i; .key)) - [0:0]")),
		(("INPUT", "FORWARD") as $h | to_entries[] | .key as $i | .value.parts | to_entries[]
		 | (if .value.acl == null then "EPGBENCH-EP\($i)" else acl_chain($i; .key) end) as $to
		 | .value.addrs[] | "-A \($h) -d \(.)/32 -j \($to)"),
		(to_entries[] | .key as $i | .value.parts | to_entries[] | select(.value.acl != null)
		 | acl_chain($i; .key) as $c
		 | (.value.acl[] | "-A \($c) -s \(.cidr)" + ipt(.proto; .from; .to)
		    + (if .deny then " -j DROP" else " -j EPGBENCH-EP\($i)" end)),
		   "-A \($c) -j DROP"),
		(to_entries[] | .key as $i | .value as $ep | "EPGBENCH-EP\($i)" as $c
		 | "-A \($c) -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
		   ($ep.rules[] | . as $r | ipt($r.proto; $r.from; $r.to) | select(. != null) as $m
		    | $r.cidrs[] | "-A \($c) -s \(.)\($m) -j ACCEPT"),
		   "-A \($c) -j DROP")
	' <<<"$model"
	echo "COMMIT"
	;;
esac
