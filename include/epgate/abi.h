/* SPDX-License-Identifier: MIT */
/*
 * Every definition shared by the BPF datapath and userspace: map keys and
 * values, verdict reasons, counter layout, limits. Map keys carry explicit
 * padding; sizes are checked at compile time on both sides. The ABI version
 * is stored in the pinned epg_meta map so a loader never misreads old pins.
 *
 * Byte order: addresses and ports in keys are in network byte order, as they
 * appear in the packet; everything else is host order.
 */
#ifndef EPGATE_ABI_H
#define EPGATE_ABI_H

#ifdef __bpf__
#include <linux/types.h>
#else
#include <linux/types.h>
#include <assert.h>
#define EPG_STATIC_ASSERT(c, m) _Static_assert(c, m)
#endif
#ifndef EPG_STATIC_ASSERT
#define EPG_STATIC_ASSERT(c, m) _Static_assert(c, m)
#endif

#define EPG_ABI_VERSION 2 /* 2: policy sets shared by generations (epg_sets) */

/* Limits. Map sizes follow from these; raising one is an ABI change. */
#define EPG_RULE_WORDS      16                     /* rule bitmap: 16 x 64 bits */
#define EPG_RULE_BITS       (EPG_RULE_WORDS * 64)  /* entries per ruleset and direction */
#define EPG_MAX_ENDPOINTS   16384                  /* endpoint counter slots */
#define EPG_MAX_ADDRS       65536                  /* endpoint addresses, both generations */
#define EPG_MAX_RULE_SLOTS  262144                 /* per-rule counter slots (old and new policy during an apply) */
#define EPG_MAX_PEER_PFX    2097152                /* peer prefixes per family, of every stored set */
#define EPG_MAX_SVC_PFX     2097152                /* service prefixes, of every stored set */
#define EPG_MAX_RULE_BITS   1048576                /* (set, bit) -> rule slot, of every stored set */
#define EPG_MAX_SETS        65536                  /* stored policy sets: ids 1 .. EPG_MAX_SETS - 1 */
#define EPG_VLAN_MAX        2                      /* 802.1Q / 802.1ad tags parsed */
#define EPG_IP6_EXT_MAX     8
#define EPG_ID_LEN          32                     /* "vpce-0123456789abcdef0" and alike, NUL included */
#define EPG_SERVICE_LEN     128
#define EPG_RULE_DESC_LEN   96
#define EPG_GENERATIONS     2
#define EPG_CT_MAX          262144                 /* tracked flows (the "allowance") */
#define EPG_CT_PROFILES     64                     /* distinct timeout sets per generation */
#define EPG_REJ_MAX         65536                  /* rejected flows per flow-log interval */
#define EPG_ENDED_RING      (4 << 20)              /* bytes: flows the datapath removed, per flow-log interval */
#define EPG_FRAG_MAX        16384                  /* datagrams whose first fragment was judged */
#define EPG_FRAG_TIMEOUT_S  30                     /* how long later fragments follow the first */

enum epg_dir {
	EPG_DIR_INGRESS = 0, /* toward an endpoint address */
	EPG_DIR_EGRESS  = 1, /* from an endpoint address */
	EPG_DIR_MAX
};

enum epg_verdict_kind {
	EPG_ACCEPT = 0,
	EPG_DROP   = 1,
};

enum epg_reason {
#define EPG_REASON(name, label, verdict) EPG_R_##name,
#include "reasons.def"
#undef EPG_REASON
	EPG_R_COUNT
};
#define EPG_REASON_SLOTS 16 /* counter slots reserved per direction */
EPG_STATIC_ASSERT(EPG_R_COUNT <= EPG_REASON_SLOTS, "reasons outgrow their counter slots");

/* Global counters, indexed by this enum (append only). */
enum epg_global {
	EPG_G_PASSTHROUGH = 0, /* not to or from an endpoint address: untouched */
	EPG_G_NOT_IP      = 1, /* subset of passthrough: not IPv4/IPv6 (ARP, ...) */
	EPG_G_CT_CREATED  = 2, /* flows created */
	EPG_G_CT_EXCEEDED = 3, /* new flows refused: table full (conntrack_allowance_exceeded) */
	EPG_G_CT_EXPIRED  = 4, /* flows removed by the datapath when found idle */
	EPG_G_FORWARDED   = 5, /* tc egress: forwarded, judged where it arrived */
	EPG_G_REJ_LOST    = 6, /* rejected packets not recorded for flow logs: table full */
	EPG_G_ENDED_LOST  = 7, /* flows the datapath removed whose last counts
				* could not be handed to the flow logs: ring full */
	EPG_G_MAX         = 8
};

/* epg_meta[0]. active_gen selects the generation of every policy map. */
struct epg_meta {
	__u32 abi_version;
	__u32 active_gen;     /* 0 or 1 */
	__u64 generation;     /* applies so far, monotonic */
	__u64 apply_time_ns;  /* CLOCK_REALTIME of the last apply */
	__u32 flags;          /* EPG_META_* */
	__u32 pad;
};
/* Rejected packets are recorded in epg_rej for flow logs: set by `serve
 * --flow-log` while it runs, so drops cost no hash update otherwise. */
#define EPG_META_FLOWLOG 1u
/* Generation g has exempt peers (epg_exempt): EPG_META_EXEMPT << g. */
#define EPG_META_EXEMPT 2u
/* Diagnostics (the benchmark): judge every denied packet in full, the deny
 * cache (epg_deny_cache) neither read nor written. */
#define EPG_META_NO_DENY_CACHE 8u

/* epg_filter[0]: a 1,048,576-bit (128 KiB) Bloom filter of endpoint
 * addresses (old and new while an apply runs), two bits per address, so
 * traffic to and from other addresses passes after one array lookup,
 * before any hash lookup or L4 parsing. Set bits only mean "maybe": the
 * address map decides. With 20,000 addresses about 0.15 % of other
 * addresses pass for maybe (one bit per address in 65,536: 26 %). */
#define EPG_FILTER_BITS 1048576
struct epg_filter {
	__u64 w[EPG_FILTER_BITS / 64];
};

/* Both bit indexes of an address come from one 64-bit mix. The address is
 * read as words, not bytes (the datapath does it for every packet): it is
 * 4-byte aligned in every struct that holds one, and in a packet's header
 * where the driver aligns it (elsewhere the JITs' loads do not need it). */
static inline __u64 epg_filter_hash(__u32 family, const void *addr_aligned)
{
	const __u8 *addr = (const __u8 *)__builtin_assume_aligned(addr_aligned, 4);
	__u32 w, x;
	__u64 h;

	/* IPv6: the four words folded into one first (the filter runs on
	 * every packet; a collision only costs a lookup) */
	__builtin_memcpy(&w, addr, 4);
	if (family != 2 /* AF_INET */) {
		for (int i = 1; i < 4; i++) {
			__builtin_memcpy(&x, addr + 4 * i, 4);
			w ^= (x << (8 * i)) | (x >> (32 - 8 * i));
		}
	}
	h = ((__u64)w << 32 | w) ^ 0x9e3779b97f4a7c15ULL;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 31;
	h *= 0x94d049bb133111ebULL;
	h ^= h >> 29;
	return h;
}

#define EPG_FILTER_BIT1(h) ((__u32)(h) & (EPG_FILTER_BITS - 1))
#define EPG_FILTER_BIT2(h) ((__u32)((h) >> 32) & (EPG_FILTER_BITS - 1))

/*
 * Policy sets. The rules of a ruleset (the security groups one endpoint has)
 * or of a network ACL are stored once, as a "set" under a numeric id, in the
 * rule maps (epg_peer4, epg_peer6, epg_svc, epg_rule_bits). Sets carry no
 * generation: an apply writes only the sets whose content changed (under new
 * ids) and the endpoint addresses of the next generation, which point at
 * set ids; the flip of epg_meta.active_gen switches every endpoint at once.
 * Sets no generation uses are deleted after the flip, or later (see
 * epg_sets). A set's selector is the fixed first 32 bits of every rule-lookup
 * key.
 */
/* TCP flags as struct epg_pkt, epg_ct_val and epg_rej_val keep them. */
#define EPG_TCP_FIN 0x01
#define EPG_TCP_SYN 0x02
#define EPG_TCP_RST 0x04
#define EPG_TCP_ACK 0x10

/* ICMPv6 link plumbing (neighbour discovery 133-137, multicast listener
 * messages 130-132 and 143): the hop limit it has on the link (255, 1),
 * never forwarded; 0 for other types. The datapath passes such a message
 * untouched only with it; explain builds them so. */
static inline __u8 epg_icmp6_link_hop_limit(__u8 type)
{
	if (type >= 133 && type <= 137)
		return 255;
	if ((type >= 130 && type <= 132) || type == 143)
		return 1;
	return 0;
}

#define EPG_SET_NONE 0 /* no set: epg_addr_val.acl of an address without a network ACL */

static inline __u32 epg_sel(__u32 set, __u32 dir)
{
	return (set << 1) | (dir & 1);
}

/* epg_addr: endpoint address -> endpoint. Hash. */
struct epg_addr_key {
	__u32 gen;
	__u32 family;  /* AF_INET (2) or AF_INET6 (10) */
	__u8  addr[16]; /* IPv4 in addr[0..3], rest zero */
};

struct epg_addr_val {
	__u32 ep_slot;    /* index of epg_ep_stats / epg_ep_info */
	__u32 ruleset;    /* set of its security groups: epg_sel(ruleset, dir) */
	__u32 ct_profile; /* epg_ct_prof[gen * EPG_CT_PROFILES + ct_profile] */
	__u32 acl;        /* set of its network ACL, or EPG_SET_NONE */
};

/* epg_sets[id]: what a stored set is, for userspace only (the datapath
 * never reads it). An apply reuses a set whose digest matches, so an
 * unchanged ruleset is never rewritten. A set that no endpoint address of
 * either generation points at is garbage: its entries are deleted when
 * garbage grows large (a scan of the rule maps), or it is reused if the same
 * content returns. complete = 0 marks a set being written or deleted, never
 * reused. */
struct epg_set_info {
	__u64 digest[2];  /* of its compiled entries, rule counter slots included */
	__u32 kind;       /* enum epg_rule_kind */
	__u32 reserved;
	__u32 complete;
	__u32 n_bits[EPG_DIR_MAX];
	__u32 n_prefixes; /* its entries in the LPM maps, both directions */
};

/* Idle timeouts of tracked flows, in seconds, by state. Per interface from
 * ConnectionTrackingConfiguration; the rest from the config document. */
struct epg_ct_timeouts {
	__u32 tcp_syn;         /* handshake not completed */
	__u32 tcp_established; /* TcpEstablishedTimeout, 60..432000, default 432000 */
	__u32 tcp_closing;     /* FIN seen */
	__u32 tcp_closed;      /* RST seen */
	__u32 udp;             /* UdpTimeout, 30..60, default 30 */
	__u32 udp_stream;      /* UdpStreamTimeout, 60..180, default 180 */
	__u32 icmp;
	__u32 other;
};

/* Defaults, seconds: EC2's where it documents them, ours (README) elsewhere. */
#define EPG_CT_DEFAULT_TCP_SYN          60
#define EPG_CT_DEFAULT_TCP_ESTABLISHED  432000
#define EPG_CT_DEFAULT_TCP_CLOSING      120
#define EPG_CT_DEFAULT_TCP_CLOSED       10
#define EPG_CT_DEFAULT_UDP              30
#define EPG_CT_DEFAULT_UDP_STREAM       180
#define EPG_CT_DEFAULT_ICMP             30
#define EPG_CT_DEFAULT_OTHER            120

enum epg_ct_state {
	EPG_CT_TCP_SYN_SENT = 1,
	EPG_CT_TCP_SYN_RECV = 2,
	EPG_CT_TCP_ESTABLISHED = 3,
	EPG_CT_TCP_CLOSING = 4,
	EPG_CT_TCP_CLOSED = 5,
	EPG_CT_UDP = 6,        /* one direction, or one request and one response */
	EPG_CT_UDP_STREAM = 7, /* replies seen more than once */
	EPG_CT_ICMP = 8,
	EPG_CT_OTHER = 9,
};

/* A tracked flow, keyed so that both directions find one entry: the side
 * with the lower (address, port) is "lo". Ports: TCP/UDP ports, the ICMP
 * echo identifier on both sides, zero for other protocols. */
struct epg_ct_key {
	__u8  lo_addr[16];
	__u8  hi_addr[16];
	__be16 lo_port;
	__be16 hi_port;
	__u8  proto;
	__u8  family;
	__u16 pad;
} __attribute__((aligned(8))); /* read as words (epg_ct_tag) */

struct epg_ct_val {
	__u64 created_ns;   /* CLOCK_MONOTONIC (bpf_ktime_get_ns) */
	__u64 last_seen_ns;
	__u64 packets[EPG_DIR_MAX]; /* endpoint view: [ingress], [egress]; atomic adds */
	__u64 bytes[EPG_DIR_MAX];
	__u32 ep_slot;
	__u32 rule_slot;    /* the rule that allowed the first packet */
	__u32 timeout_s;    /* idle timeout of the current state */
	__u32 ifindex;      /* where the first packet was seen */
	__u8  state;        /* enum epg_ct_state */
	__u8  init_dir;     /* enum epg_dir of the first packet */
	__u8  init_lo;      /* 1: the initiator is the lo side of the key */
	__u8  replies;      /* packets from the responder, saturating at 255 */
	__u8  tcp_flags[EPG_DIR_MAX]; /* OR of TCP flags seen, per direction */
	__u8  pad[2];
	/* The network ACL's verdict is a function of the packet's addresses,
	 * ports, protocol and the policy generation: for TCP, UDP and other
	 * non-ICMP flows it is cached per orientation ([0] packets from the
	 * initiator, [1] from the responder; generation + 1, 0 = none) with
	 * the allowing entry, counted again on every packet. A new policy
	 * invalidates it at once. */
	__u32 acl_gen[2];
	__u32 acl_slot[2];
	/* How each orientation's packets were classified (which endpoint, its
	 * sets and timeouts, which direction) under policy generation
	 * cls_gen - 1 (0 = not yet): while the policy stays, a tracked packet
	 * skips the address lookups. */
	struct epg_addr_val cls[2];
	__u32 cls_gen[2];
	__u8  cls_dir[2];
	__u8  pad2[2];
	/* A digest of the key: caches are written only into the flow they
	 * belong to (an element deleted meanwhile may hold another flow). */
	__u32 key_tag;
};

/* A flow the datapath removed (idle when a packet met it, or a closed TCP
 * connection whose ports a new SYN reuses), as it last stood: written to the
 * epg_ct_ended ring while flow logs are on, so that the packets since its
 * last flow-log record are reported too. */
struct epg_flow {
	struct epg_ct_key key;
	struct epg_ct_val val;
};

/* epg_exempt: peers that groups and ACLs never block (EpgateSettings
 * .ExemptPeers: Amazon DNS, instance metadata, time sync, as EC2 exempts
 * them), per generation and family. LPM trie: prefixlen = 32 (the space
 * word) + address prefix; an IPv4 address in addr[0..3]. The families are
 * two spaces, so no IPv6 address (IPv4-mapped ones included) ever matches an
 * IPv4 entry. A packet to or from an endpoint address that groups or ACLs
 * would drop is accepted when its peer is exempt, counted as not_enforced. */
#define EPG_MAX_EXEMPT 256 /* per generation */
struct epg_exempt_key {
	__u32 prefixlen;
	__u32 space; /* EPG_EXEMPT_SPACE(gen, family) */
	__u8  addr[16];
};
#define EPG_EXEMPT_SPACE(gen, family) ((__u32)(gen) * 2 + ((family) == AF_INET6 ? 1 : 0))

/* The rule bitmap: bit i = entry i of a ruleset's direction. */
struct epg_bitmap {
	__u64 w[EPG_RULE_WORDS];
};

/* Peer dimension, LPM tries. prefixlen = 32 (selector) + address prefix. */
struct epg_peer4_key {
	__u32 prefixlen;
	__u32 sel;
	__u8  addr[4];
};

struct epg_peer6_key {
	__u32 prefixlen;
	__u32 sel;
	__u8  addr[16];
};

/* Service dimension, LPM trie. prefixlen = 32 (selector) + 8 (protocol) +
 * port prefix. port is the TCP/UDP destination port, or ICMP type, code. */
struct epg_svc_key {
	__u32 prefixlen;
	__u32 sel;
	__u8  proto;
	__u8  port[2];
	__u8  pad;
};
#define EPG_SVC_PLEN_PROTO 40 /* selector + protocol: every port of it */
#define EPG_SVC_PLEN_FULL  56

/* (selector, bit) -> what the entry is: its counter slot and, for network
 * ACL entries, whether it denies. Hash. */
struct epg_rule_bit_key {
	__u32 sel;
	__u32 bit;
};

struct epg_rule_ref {
	__u32 slot; /* epg_rule_stats / epg_rule_info index */
	__u32 deny; /* ACL entry with RuleAction deny */
};

struct epg_counter {
	__u64 packets;
	__u64 bytes;
};

/* epg_ep_stats[ep_slot], per CPU. */
struct epg_ep_counters {
	struct epg_counter c[EPG_DIR_MAX][EPG_REASON_SLOTS];
};

/* epg_ep_info[ep_slot]: names for counters, written by userspace only. */
struct epg_ep_info {
	char  endpoint_id[EPG_ID_LEN];
	char  service_name[EPG_SERVICE_LEN];
	__u32 in_use;
	__u32 n_addrs;
	__u32 n_rules[EPG_DIR_MAX];
	char  acl_id[EPG_ID_LEN]; /* the network ACL of its first address under one, or "" */
	__u32 n_acl_addrs;        /* addresses judged by a network ACL too */
	__u32 n_acls;             /* distinct network ACLs over its addresses */
};

/* epg_rule_info[rule_slot]: what a rule counter counts. Hash, userspace only. */
enum epg_rule_kind {
	EPG_RULE_SG  = 0, /* a security-group rule; group_id is the group */
	EPG_RULE_ACL = 1, /* a network ACL entry; group_id is the ACL */
};

struct epg_rule_info {
	char  group_id[EPG_ID_LEN];
	char  rule_id[16];             /* stable: content hash, "r-0123abcd" */
	char  desc[EPG_RULE_DESC_LEN]; /* "tcp 443 from 10.0.0.0/8", "#100 deny tcp 22 from ..." */
	__u32 dir;
	__u32 kind;                    /* enum epg_rule_kind */
};

/* epg_rule_keys[rule_slot]: the identity of the rule a counter slot counts,
 * a 64-bit digest of its struct epg_rule_info (0: the slot is free).
 * Userspace only: an apply matches its rules to their slots from this 2 MiB
 * array instead of reading every rule's name back. */

/* epg_ifaces[ifindex]: where the datapath is attached. Userspace only. */
/* Fragmented datagrams: the verdict on the first fragment (which carries the
 * ports), followed by the later ones for EPG_FRAG_TIMEOUT_S. */
struct epg_frag_key {
	__u8  src[16];
	__u8  dst[16];
	__u32 id;      /* IPv4 identification, or IPv6 fragment header identification */
	__u8  proto;
	__u8  family;
	__u16 pad;
};

struct epg_frag_val {
	__u64 created_ns; /* CLOCK_MONOTONIC */
	__u32 ep_slot;
	__u8  verdict;    /* enum epg_verdict_kind of the first fragment */
	__u8  dir;
	__u8  reason;     /* the first fragment's */
	__u8  pad;
};

/* Rejected flows, for flow logs: one entry per flow and direction as the
 * packets travelled (not normalised), drained by the flow-log writer every
 * interval. When the table is full the packet is still dropped, and counted
 * in EPG_G_REJ_LOST (reported as SKIPDATA). */
struct epg_rej_key {
	__u8  src[16];
	__u8  dst[16];
	__be16 sport;  /* TCP/UDP ports; ICMP type, code in dport; else 0 */
	__be16 dport;
	__u8  proto;
	__u8  family;
	__u8  dir;     /* enum epg_dir */
	__u8  pad;
};

struct epg_rej_val {
	__u64 first_ns; /* CLOCK_MONOTONIC */
	__u64 last_ns;
	__u64 packets;
	__u64 bytes;
	__u32 ep_slot;
	__u8  tcp_flags;
	__u8  reason;   /* the first packet's */
	__u8  pad[2];
};

/*
 * epg_deny_cache (per CPU, not pinned: each loaded program has its own): the
 * verdicts on recently denied packets that no tracked flow covered, by the
 * packet's identity (the first EPG_PKT_ID_WORDS words of the datapath's
 * parsed packet: family, protocol, hop limit, addresses, destination port or
 * ICMP type and code, TCP flags; the source port is stored as 0: no verdict
 * depends on it), direct-mapped. A remembered verdict is replayed,
 * and counted as judging counted it, only while its policy stamp is the
 * active one and only after the flow table found no flow for the packet.
 */
#define EPG_DENY_SLOT_BITS 9
#define EPG_DENY_SLOTS   (1u << EPG_DENY_SLOT_BITS)
/* No rule (ACL entry) slot: nothing counted per rule. */
#define EPG_NO_RULE_SLOT 0xffffffffu
#define EPG_PKT_ID_WORDS 6
/* The identity's word 5 without the source port (its bytes 2-3). */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define EPG_DENY_W5_MASK 0xffffffff0000ffffULL
#else
#define EPG_DENY_W5_MASK 0xffff0000ffffffffULL
#endif

struct epg_deny_entry {
	__u64 id[EPG_PKT_ID_WORDS];
	__u32 stamp;    /* the policy it was judged under; 0: empty */
	__u32 ep_slot;
	__u32 slot;     /* the ACL entry counted: the one that denied the packet,
			 * or the one that let it in before the group denied it;
			 * EPG_NO_RULE_SLOT: none */
	__u8  reason;
	__u8  dir;
	__u8  pad[2];
};
EPG_STATIC_ASSERT(sizeof(struct epg_deny_entry) == 64, "epg_deny_entry: one cache line");

enum epg_attach_mode {
	EPG_MODE_NATIVE = 1, /* XDP in the driver */
	EPG_MODE_SKB    = 2, /* generic XDP */
};

/* How the XDP program is attached. */
enum epg_xdp_method {
	EPG_XDP_NETLINK    = 0, /* by libxdp, as the interface's only program (netlink) */
	EPG_XDP_DISPATCHER = 1, /* by libxdp, through its dispatcher: shares the interface */
	EPG_XDP_LINK       = 2, /* a bpf_link pinned at <pin dir>/links/xdp-<ifindex> */
};

/* How the tc egress program is attached. */
enum epg_tc_method {
	EPG_TC_CLSACT = 0, /* a clsact egress filter at epgate's handle and priority */
	EPG_TC_TCX    = 1, /* a tcx bpf_link pinned at <pin dir>/links/tc-<ifindex> */
};

struct epg_iface_info {
	char  name[16];
	__u32 mode;        /* enum epg_attach_mode */
	__u32 xdp_method;  /* enum epg_xdp_method */
	__u32 prog_id;     /* our XDP program */
	__u32 tc_prog_id;  /* our tc egress program, 0 if none */
	__u64 attach_time_ns;
	__u32 tc_method;   /* enum epg_tc_method */
	__u32 pad;
};
#define EPG_MAX_IFACES 256

EPG_STATIC_ASSERT(sizeof(struct epg_frag_key) == 40, "epg_frag_key layout");
EPG_STATIC_ASSERT(sizeof(struct epg_frag_val) == 16, "epg_frag_val layout");
EPG_STATIC_ASSERT(sizeof(struct epg_rej_key) == 40, "epg_rej_key layout");
EPG_STATIC_ASSERT(sizeof(struct epg_rej_val) == 40, "epg_rej_val layout");
EPG_STATIC_ASSERT(sizeof(struct epg_ct_key) == 40, "epg_ct_key layout");
EPG_STATIC_ASSERT(sizeof(struct epg_exempt_key) == 24, "epg_exempt_key layout");
EPG_STATIC_ASSERT(sizeof(struct epg_ct_val) == 136, "epg_ct_val layout");
EPG_STATIC_ASSERT(sizeof(struct epg_ct_timeouts) == 32, "epg_ct_timeouts layout");
EPG_STATIC_ASSERT(sizeof(struct epg_iface_info) == 48, "epg_iface_info layout");
EPG_STATIC_ASSERT(sizeof(struct epg_meta) == 32, "epg_meta layout");
EPG_STATIC_ASSERT(sizeof(struct epg_addr_key) == 24, "epg_addr_key layout");
EPG_STATIC_ASSERT(sizeof(struct epg_addr_val) == 16, "epg_addr_val layout");
EPG_STATIC_ASSERT(sizeof(struct epg_peer4_key) == 12, "epg_peer4_key layout");
EPG_STATIC_ASSERT(sizeof(struct epg_peer6_key) == 24, "epg_peer6_key layout");
EPG_STATIC_ASSERT(sizeof(struct epg_svc_key) == 12, "epg_svc_key layout");
EPG_STATIC_ASSERT(sizeof(struct epg_rule_bit_key) == 8, "epg_rule_bit_key layout");
EPG_STATIC_ASSERT(sizeof(struct epg_ep_info) == 216, "epg_ep_info layout");
EPG_STATIC_ASSERT(sizeof(struct epg_rule_ref) == 8, "epg_rule_ref layout");
EPG_STATIC_ASSERT(sizeof(struct epg_set_info) == 40, "epg_set_info layout");
EPG_STATIC_ASSERT(sizeof(struct epg_rule_info) == 152, "epg_rule_info layout");

#endif
