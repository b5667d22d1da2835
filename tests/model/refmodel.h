/* SPDX-License-Identifier: MIT */
/*
 * A reference model of what epgate must do with a packet: security groups
 * (stateful), network ACLs (stateless), connection tracking with its
 * timeouts, related ICMP errors and fragments, written from
 * ../shared/SEMANTICS.md and the datapath's documented rules (README:
 * "How the datapath decides", "Connection tracking", "Network ACLs"), in
 * plain C and in the most direct way: loops over rules, a flow table, a
 * fragment table. It shares nothing with bpf/ but the loader's output
 * (struct epg_config), so a test can run the same packets through both and
 * compare (tests/unit/test_differential.c).
 *
 * The model does not parse frames: the caller describes a packet by its
 * fields and, when the frame is malformed, by the kind of defect (the frame
 * builder of the test knows what it broke). Which defect leads to which
 * verdict is the model's business.
 *
 * Time is the caller's: every packet carries "now" in milliseconds.
 */
#ifndef EPGATE_REFMODEL_H
#define EPGATE_REFMODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "model.h"

/* What is wrong with a frame, as its parser would find it. */
enum rm_defect {
	RM_OK = 0,
	RM_NOT_IP,          /* ARP or another ethertype */
	RM_SHORT_ADDRS,     /* the frame ends before both IP addresses */
	RM_VLAN_DEEP,       /* more than two VLAN tags */
	RM_IHL_SMALL,       /* IPv4 ihl < 5 */
	RM_IHL_BEYOND,      /* IPv4 header runs past the frame */
	RM_TOTLEN_SHORT,    /* IPv4 total length shorter than the header */
	RM_TOTLEN_LONG,     /* IPv4 total length longer than the frame */
	RM_V6_PLEN_ZERO,    /* IPv6 payload length 0 (a jumbogram) */
	RM_V6_PLEN_LONG,    /* IPv6 payload length past the frame */
	RM_V6_EXT_PAST,     /* an IPv6 extension header runs past the packet */
	RM_TCP_SHORT,       /* fewer than 20 bytes of TCP in the IP payload */
	RM_TCP_DOFF_SMALL,  /* TCP data offset < 5 */
	RM_TCP_DOFF_BEYOND, /* TCP data offset past the IP payload */
	RM_UDP_SHORT,       /* fewer than 8 bytes of UDP */
	RM_ICMP_SHORT,      /* fewer than 4 bytes of ICMP / ICMPv6 */
	RM_DEFECT_MAX
};

/* The packet an ICMP error quotes: its IP header and first 8 bytes of L4,
 * as the flow's side sent it. */
struct rm_quote {
	uint8_t src[16], dst[16];
	uint8_t proto;
	uint16_t sport, dport;  /* TCP/UDP */
	uint8_t icmp_type;      /* ICMP / ICMPv6 */
	uint16_t echo_id;
	uint8_t l4_len;         /* bytes of its L4 header in the error (8: all there should be) */
};

struct rm_packet {
	int family;              /* AF_INET or AF_INET6 (unused with RM_NOT_IP) */
	enum rm_defect defect;
	uint8_t src[16], dst[16]; /* IPv4 in [0..3], network order */
	uint8_t proto;           /* the upper-layer protocol */
	uint16_t sport, dport;   /* TCP/UDP, host order */
	uint8_t icmp_type, icmp_code;
	uint16_t echo_id;        /* ICMP/ICMPv6 bytes 4-5, host order */
	uint8_t tcp_flags;       /* FIN 1 SYN 2 RST 4 PSH 8 ACK 16 URG 32 ... */
	uint8_t n_ext;           /* IPv6 extension headers before L4, Fragment header included */
	uint8_t hop_limit;       /* IPv6 */
	/* Fragments: IPv4 with MF or a non-zero offset, IPv6 with a Fragment
	 * header. frag_off in 8-byte units; frag_len the bytes of the fragment
	 * (what follows the IPv4 header, or the IPv6 Fragment header). */
	bool is_frag;
	uint32_t frag_id;
	uint16_t frag_off;
	bool frag_mf;
	uint32_t frag_len;
	/* ICMP errors: the quoted packet (has_quote false: nothing quoted). */
	bool has_quote;
	struct rm_quote quote;
};

/* The model's answer. dir is -1 and endpoint NULL for pass-through. */
struct rm_verdict {
	bool accept;
	const char *reason; /* a label of include/epgate/reasons.def, or "passthrough" */
	int dir;            /* EPG_DIR_INGRESS / EPG_DIR_EGRESS */
	const char *endpoint; /* VpcEndpointId */
};

#define RM_PASSTHROUGH "passthrough"

/* Timeouts the datapath documents that SEMANTICS.md leaves to it. */
#define RM_FRAG_TIMEOUT_S 30
#define RM_FRAG_MAX 16384
#define RM_CT_MAX 262144

struct refmodel;

/* A model judging with cfg's policy. cfg must outlive the model (or be
 * replaced with refmodel_set_config). NULL when memory runs out. */
struct refmodel *refmodel_new(const struct epg_config *cfg);
void refmodel_free(struct refmodel *m);

/* A new policy: flows and remembered fragments stay, as they do in the
 * datapath across applies. */
int refmodel_set_config(struct refmodel *m, const struct epg_config *cfg);

/* Table sizes (default RM_CT_MAX, RM_FRAG_MAX). */
void refmodel_set_limits(struct refmodel *m, size_t ct_max, size_t frag_max);

/* Judge one packet at time now_ms (never decreasing). */
struct rm_verdict refmodel_packet(struct refmodel *m, const struct rm_packet *p,
				  uint64_t now_ms);

/* Forget every flow and fragment. */
void refmodel_flush(struct refmodel *m);

/* Live entries (flows + fragments; expired ones not yet met count). */
size_t refmodel_flow_count(const struct refmodel *m);
size_t refmodel_frag_count(const struct refmodel *m);

/* Whether some flow or fragment entry changes from live to gone at a time
 * in [lo_ms, hi_ms]: a test whose other clock is a little imprecise keeps
 * away from these instants. */
bool refmodel_deadline_within(const struct refmodel *m, uint64_t lo_ms, uint64_t hi_ms);

/* A one-line description of the flow a packet would find (or "none"),
 * for reproducers. */
void refmodel_describe_flow(const struct refmodel *m, const struct rm_packet *p,
			    uint64_t now_ms, char *buf, size_t len);

#endif
