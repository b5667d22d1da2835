/* SPDX-License-Identifier: MIT */
/*
 * Packet parser, in two steps. Contract:
 *  - epg_locate() finds the IP header and reads its addresses only. It
 *    returns EPG_PARSE_NOT_IP when the frame cannot be classified (not
 *    IPv4/IPv6, VLAN stack deeper than EPG_VLAN_MAX, too short to hold both
 *    addresses): such frames are never endpoint traffic and pass untouched;
 *    EPG_PARSE_OTHER when neither address is in the endpoint filter: the
 *    frame passes untouched too; else EPG_PARSE_OK.
 *  - then epg_parse() fills struct epg_pkt and returns EPG_PARSE_OK, or a
 *    reason (enum epg_reason) when the rest is malformed: the caller drops
 *    it if it is endpoint traffic.
 *  - struct epg_pkt comes zeroed; what a packet does not have stays 0.
 *  - Addresses and port bytes are in network byte order, as in the packet.
 *  - Every read is preceded by a bounds check against data_end.
 */
#ifndef EPGATE_BPF_PARSE_H
#define EPGATE_BPF_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include "epgate/abi.h"
#include "maps.h"

#define EPG_PARSE_OK     (-1)
#define EPG_PARSE_NOT_IP (-2)
#define EPG_PARSE_OTHER  (-3) /* IP, but neither address can be an endpoint's */

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

enum epg_frag {
	EPG_FRAG_NONE  = 0,
	EPG_FRAG_FIRST = 1, /* offset 0, more fragments follow: has L4 header */
	EPG_FRAG_LATER = 2, /* offset > 0: no L4 header */
};

/* The first EPG_PKT_ID_WORDS 64-bit words (to frag_off) are what the deny
 * cache knows a packet by: every field a verdict on an unfragmented packet
 * without a flow depends on (frag and icmp_err are 0 for the packets it
 * takes). Aligned to 8 so that they are read as words. */
struct epg_pkt {
	__u32 family;
	__u8  proto;
	__u8  has_ports; /* port[] holds a TCP/UDP port or ICMP type, code */
	__u8  frag;      /* enum epg_frag */
	__u8  hop_limit; /* IPv6 */
	__u8  saddr[16];
	__u8  daddr[16];
	__u8  port[2];   /* destination port, or ICMP type, code */
	__u8  sport[2];  /* source port, or ICMP echo id (for tracking) */
	__u8  tcp_flags; /* FIN 1, SYN 2, RST 4, PSH 8, ACK 16, URG 32 */
	__u8  icmp_err;  /* an ICMP error whose quoted header was read into inner */
	__u16 frag_off;  /* fragment offset, 8-byte units */
	__u32 frag_id;   /* fragment identification (IPv4: 16 bits) */
	__u16 segs;      /* set by the caller: GSO segments (tc), 0 or 1 = one packet */
	__u16 hdr_len;   /* bytes before the payload: L2, L3 and the TCP/UDP header */
	__u32 wire_len;  /* set by the caller: the kernel's bytes on the wire (tc), or 0 */
	__u32 remember;  /* set by decide: a deny of this packet goes to the deny cache */
	__u32 frag_end;  /* offset in bytes + this fragment's payload */
	struct {         /* the quoted packet of an ICMP error, as it was sent */
		__u8 saddr[16];
		__u8 daddr[16];
		__u8 sport[2];
		__u8 dport[2];
		__u8 proto;
		__u8 pad[3];
	} inner;
} __attribute__((aligned(8)));
EPG_STATIC_ASSERT(__builtin_offsetof(struct epg_pkt, frag_id) == EPG_PKT_ID_WORDS * 8,
		  "the deny cache's identity of a packet ends before frag_id");
EPG_STATIC_ASSERT(__builtin_offsetof(struct epg_pkt, saddr) % 4 == 0 &&
		  __builtin_offsetof(struct epg_pkt, daddr) % 4 == 0 &&
		  __builtin_offsetof(struct epg_pkt, inner.saddr) % 4 == 0 &&
		  __builtin_offsetof(struct epg_pkt, inner.daddr) % 4 == 0,
		  "the packet's addresses are 4-byte aligned");

/* An address of struct epg_pkt, said to be 4-byte aligned (it is): copies
 * and hashes of it are word loads, where clang would otherwise load byte by
 * byte (16 loads and shifts for an IPv6 address). */
#define epg_a4(addr) ((const __u8 *)__builtin_assume_aligned((addr), 4))

static __always_inline int epg_icmp_is_echo(__u8 proto, __u8 type)
{
	return proto == IPPROTO_ICMP ? (type == 8 || type == 0) : (type == 128 || type == 129);
}

static __always_inline int epg_icmp_is_error(__u8 proto, __u8 type)
{
	if (proto == IPPROTO_ICMP)
		return type == 3 || type == 11 || type == 12;
	return type >= 1 && type <= 4;
}

/* ICMPv6 neighbour discovery (133-137) and multicast listener messages
 * (130-132, 143): link plumbing that EC2 never filters, like ARP. Only as
 * they are valid: never forwarded by a router, so neighbour discovery
 * arrives with hop limit 255 (RFC 4861) and MLD with 1 (RFC 2710, 3810);
 * anything else of these types is judged like other ICMPv6. */
static __always_inline int epg_is_link_control(const struct epg_pkt *p)
{
	__u8 hl;

	if (p->proto != IPPROTO_ICMPV6 || !p->has_ports)
		return 0;
	hl = epg_icmp6_link_hop_limit(p->port[0]);
	return hl && p->hop_limit == hl;
}

/* For a packet of protocol 1 or 58: is it ICMP of its own family (1 in
 * IPv4, 58 in IPv6)? The other family's number is a protocol like any
 * other (no type, no error quoting a flow). */
static __always_inline int epg_is_icmp(const struct epg_pkt *p)
{
	return (p->proto == IPPROTO_ICMP) == (p->family == AF_INET);
}

struct epg_ip6_ext {
	__u8 nexthdr;
	__u8 hdrlen;
	__be16 frag_off; /* fragment header only */
	__be32 ident;
};

/* Offsets into a frame are below 64 KiB; masking keeps the verifier's view
 * of an offset to one range. */
#define EPG_OFF_MASK 0xffff

static __always_inline int epg_ip6_is_ext(__u8 next)
{
	return next == IPPROTO_HOPOPTS || next == IPPROTO_ROUTING ||
	       next == IPPROTO_DSTOPTS || next == IPPROTO_FRAGMENT || next == IPPROTO_AH;
}

/* An extension header's length in bytes (AH counts 4-byte words). */
static __always_inline __u32 epg_ip6_ext_len(__u8 next, const struct epg_ip6_ext *ext)
{
	if (next == IPPROTO_FRAGMENT)
		return 8;
	if (next == IPPROTO_AH)
		return (ext->hdrlen + 2) * 4;
	return (ext->hdrlen + 1) * 8;
}

/* Extension headers walked in an ICMPv6 error's quote: a quoted fragment
 * header and one more (the verifier's budget does not allow the packet's
 * own 8 here; a longer quote is related to nothing). */
#define EPG_QUOTE_EXT_MAX 2

/* The quoted header of an ICMP error: IP header, then 8 bytes of L4. A quote
 * that is cut short is simply not related to anything. */
static __always_inline void epg_parse_icmp_inner(struct epg_pkt *p, void *q, void *end,
						  void *data_end)
{
	__u8 *l4;

	if (p->proto == IPPROTO_ICMP) {
		struct iphdr *ip = q;

		if ((void *)(ip + 1) > data_end || (void *)(ip + 1) > end || ip->ihl < 5)
			return;
		if (ip->frag_off & bpf_htons(0x1fff))
			return; /* a later fragment quoted: data where the ports would be */
		__builtin_memcpy(p->inner.saddr, &ip->saddr, 4);
		__builtin_memcpy(p->inner.daddr, &ip->daddr, 4);
		p->inner.proto = ip->protocol;
		l4 = q + (ip->ihl & 0xf) * 4;
	} else {
		struct ipv6hdr *ip6 = q;
		__u32 off = sizeof(*ip6);
		__u8 next;

		if ((void *)(ip6 + 1) > data_end || (void *)(ip6 + 1) > end)
			return;
		__builtin_memcpy(p->inner.saddr, &ip6->saddr, 16);
		__builtin_memcpy(p->inner.daddr, &ip6->daddr, 16);
		/* the quoted packet's extension headers (a fragmented datagram's
		 * first fragment: path MTU discovery, reassembly time exceeded),
		 * walked as the packet's own are */
		next = ip6->nexthdr;
		for (int i = 0; i < EPG_QUOTE_EXT_MAX; i++) {
			struct epg_ip6_ext *ext;
			__u32 len;

			if (!epg_ip6_is_ext(next))
				break;
			off &= EPG_OFF_MASK;
			ext = q + off;
			if ((void *)(ext + 1) > data_end || (void *)(ext + 1) > end)
				return;
			len = epg_ip6_ext_len(next, ext);
			if (next == IPPROTO_FRAGMENT && (ext->frag_off & bpf_htons(0xfff8)))
				return; /* a later fragment quoted */
			next = ext->nexthdr;
			off += len;
		}
		if (epg_ip6_is_ext(next))
			return;
		p->inner.proto = next;
		off &= EPG_OFF_MASK;
		l4 = q + off;
	}
	/* the quote must hold 8 bytes of L4 within the IP packet, not padding */
	if ((void *)(l4 + 8) > data_end || (void *)(l4 + 8) > end)
		return;
	if (p->inner.proto == IPPROTO_ICMP || p->inner.proto == IPPROTO_ICMPV6) {
		/* only an echo is tracked: its identifier stands for both ports */
		if (!epg_icmp_is_echo(p->inner.proto, l4[0]))
			return;
		p->inner.sport[0] = p->inner.dport[0] = l4[4];
		p->inner.sport[1] = p->inner.dport[1] = l4[5];
	} else if (p->inner.proto == IPPROTO_TCP || p->inner.proto == IPPROTO_UDP) {
		p->inner.sport[0] = l4[0];
		p->inner.sport[1] = l4[1];
		p->inner.dport[0] = l4[2];
		p->inner.dport[1] = l4[3];
	} /* other protocols are tracked without ports: leave them zero */
	p->icmp_err = 1;
}

struct epg_vlan_hdr {
	__be16 tci;
	__be16 proto;
};

static __always_inline int epg_parse_l4(struct epg_pkt *p, void *l4, void *l4_end,
					void *data_end, __u32 l4_off)
{
	p->hdr_len = (__u16)l4_off;
	if (p->frag == EPG_FRAG_LATER)
		return EPG_PARSE_OK;

	switch (p->proto) {
	case IPPROTO_TCP: {
		struct tcphdr *th = l4;

		if ((void *)(th + 1) > data_end || (void *)(th + 1) > l4_end)
			return EPG_R_TRUNCATED_L4;
		if (th->doff < 5 || l4 + th->doff * 4 > l4_end)
			return EPG_R_TRUNCATED_L4;
		__builtin_memcpy(p->port, &th->dest, 2);
		__builtin_memcpy(p->sport, &th->source, 2);
		p->tcp_flags = ((__u8 *)th)[13] & 0x3f;
		p->hdr_len = (__u16)(l4_off + th->doff * 4);
		p->has_ports = 1;
		break;
	}
	case IPPROTO_UDP: {
		struct udphdr *uh = l4;

		if ((void *)(uh + 1) > data_end || (void *)(uh + 1) > l4_end)
			return EPG_R_TRUNCATED_L4;
		__builtin_memcpy(p->port, &uh->dest, 2);
		__builtin_memcpy(p->sport, &uh->source, 2);
		p->hdr_len = (__u16)(l4_off + sizeof(*uh));
		p->has_ports = 1;
		break;
	}
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6: {
		/* type, code, checksum, then the echo identifier */
		__u8 *ic = l4;

		if (!epg_is_icmp(p))
			break;
		if ((void *)(ic + 4) > data_end || (void *)(ic + 4) > l4_end)
			return EPG_R_TRUNCATED_L4;
		p->port[0] = ic[0];
		p->port[1] = ic[1];
		if ((void *)(ic + 6) <= data_end && (void *)(ic + 6) <= l4_end) {
			p->sport[0] = ic[4];
			p->sport[1] = ic[5];
		}
		p->has_ports = 1;
		if (epg_icmp_is_error(p->proto, ic[0]))
			epg_parse_icmp_inner(p, ic + 8, l4_end, data_end);
		break;
	}
	default:
		break;
	}
	return EPG_PARSE_OK;
}

static __always_inline __u64 epg_filter_test(const struct epg_filter *f, __u32 bit)
{
	return f->w[bit / 64] >> (bit % 64);
}

/* Could either address (in the packet's header) be an endpoint's? One array
 * lookup (inlined by the verifier), two bit tests per address. */
static __always_inline int epg_maybe_endpoint(__u32 family, const void *saddr, const void *daddr)
{
	const struct epg_filter *f;
	__u64 hs, hd;
	__u32 zero = 0;

	f = bpf_map_lookup_elem(&epg_filter, &zero);
	if (!f)
		return 1;
	hs = epg_filter_hash(family, saddr);
	hd = epg_filter_hash(family, daddr);
	return ((epg_filter_test(f, EPG_FILTER_BIT1(hs)) & epg_filter_test(f, EPG_FILTER_BIT2(hs))) |
		(epg_filter_test(f, EPG_FILTER_BIT1(hd)) & epg_filter_test(f, EPG_FILTER_BIT2(hd)))) & 1;
}

/*
 * BIG TCP: a GSO packet longer than 64 KiB (one the host sends, at tc
 * egress; one GRO built, in generic XDP) carries IP length 0, which the
 * kernel reads as "the rest of the packet" (IPv4 tot_len; IPv6 payload_len,
 * with or without a jumbo option). Only an unfragmented TCP packet in a
 * frame that long can be one, as the kernel reads it: a length of 0 in
 * anything else stays malformed. The length is capped to
 * keep the verifier's view of packet offsets bounded (BIG TCP stops at 512
 * KiB).
 */
#define EPG_BIG_MAX ((1u << 20) - 1)

static __always_inline __u32 epg_big_len(__u64 avail)
{
	return avail > EPG_BIG_MAX ? EPG_BIG_MAX : (__u32)avail;
}

static __always_inline int epg_parse_ipv4(struct epg_pkt *p, void *nh, void *data_end,
					  __u64 avail, __u32 l2)
{
	struct iphdr *ip = nh;
	__u32 hlen, tot;

	if ((void *)(ip + 1) > data_end)
		return EPG_PARSE_NOT_IP;
	p->family = AF_INET;
	__builtin_memcpy(p->saddr, &ip->saddr, 4);
	__builtin_memcpy(p->daddr, &ip->daddr, 4);
	p->proto = ip->protocol;

	hlen = ip->ihl * 4;
	tot = bpf_ntohs(ip->tot_len);
	if (tot == 0 && avail > 0xffff && ip->protocol == IPPROTO_TCP &&
	    !(ip->frag_off & bpf_htons(0x3fff)))
		tot = epg_big_len(avail);
	if (ip->version != 4 || hlen < sizeof(*ip) || tot < hlen)
		return EPG_R_MALFORMED_IP;
	/* the whole packet, not only what is linear (tc pulls the headers;
	 * a multi-buffer XDP frame has its payload in fragments) */
	if (tot > avail)
		return EPG_R_MALFORMED_IP;

	if (ip->frag_off & bpf_htons(0x1fff))
		p->frag = EPG_FRAG_LATER;
	else if (ip->frag_off & bpf_htons(0x2000))
		p->frag = EPG_FRAG_FIRST;
	if (p->frag) {
		p->frag_id = bpf_ntohs(ip->id);
		p->frag_off = bpf_ntohs(ip->frag_off) & 0x1fff;
		p->frag_end = p->frag_off * 8 + (tot - hlen);
	}

	return epg_parse_l4(p, nh + hlen, nh + tot, data_end, l2 + hlen);
}

static __always_inline int epg_parse_ipv6(struct epg_pkt *p, void *nh, void *data_end,
					  __u64 avail, __u32 l2)
{
	struct ipv6hdr *ip6 = nh;
	__u32 off, plen, frag_hdr_end = 0;
	int later = 0, big = 0;
	__be16 frag_off = 0;
	void *cur, *end;
	__u8 next;
	int i;

	if ((void *)(ip6 + 1) > data_end)
		return EPG_PARSE_NOT_IP;
	p->family = AF_INET6;
	p->hop_limit = ip6->hop_limit;
	__builtin_memcpy(p->saddr, &ip6->saddr, 16);
	__builtin_memcpy(p->daddr, &ip6->daddr, 16);

	plen = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
	big = ip6->payload_len == 0 && avail > sizeof(*ip6) + 0xffff;
	if (big)
		plen = epg_big_len(avail);
	else if (ip6->payload_len == 0)
		return EPG_R_MALFORMED_IP;
	end = nh + plen;
	if (ip6->version != 6 || plen > avail)
		return EPG_R_MALFORMED_IP;

	/*
	 * Walk the extension headers by a scalar offset clamped to the packet
	 * size limit, so the verifier sees one shape of state per iteration
	 * instead of one per path ("BPF program is too large. Processed 1000001
	 * insn" with a pointer walk at EPG_IP6_EXT_MAX 8).
	 */
	off = sizeof(*ip6);
	next = ip6->nexthdr;
	for (i = 0; i < EPG_IP6_EXT_MAX; i++) {
		struct epg_ip6_ext *ext;
		__u32 len;

		if (!epg_ip6_is_ext(next))
			break;
		off &= EPG_OFF_MASK;
		ext = nh + off;
		if ((void *)(ext + 1) > data_end || off + sizeof(*ext) > plen)
			return EPG_R_IPV6_EXT;
		len = epg_ip6_ext_len(next, ext);
		if (next == IPPROTO_FRAGMENT) {
			frag_off |= ext->frag_off;
			p->frag_id = bpf_ntohl(ext->ident);
			frag_hdr_end = off + 8;
			if (ext->frag_off & bpf_htons(0xfff8)) {
				/* a later fragment: what follows is data, not headers */
				next = ext->nexthdr;
				off += len;
				later = 1;
				break;
			}
		}
		next = ext->nexthdr;
		off += len;
		if (off > plen)
			return EPG_R_IPV6_EXT;
	}
	if (!later && epg_ip6_is_ext(next))
		return EPG_R_IPV6_EXT;
	if (frag_off & bpf_htons(0xfff8))
		p->frag = EPG_FRAG_LATER;
	else if (frag_off & bpf_htons(1))
		p->frag = EPG_FRAG_FIRST;
	if (p->frag) {
		p->frag_off = bpf_ntohs(frag_off) >> 3;
		p->frag_end = p->frag_off * 8 + (plen - (frag_hdr_end & EPG_OFF_MASK));
	}
	if (big && (p->frag || next != IPPROTO_TCP))
		return EPG_R_MALFORMED_IP; /* not a BIG TCP packet */
	off &= EPG_OFF_MASK;
	cur = nh + off;
	p->proto = next;
	return epg_parse_l4(p, cur, end, data_end, l2 + off);
}

/* The Ethernet header and up to EPG_VLAN_MAX tags cost at most this much. */
#define EPG_L2_MAX (14 + 4 * EPG_VLAN_MAX)

/* An IP header of hdr bytes at nh, its source address at saddr, of alen
 * bytes, the destination right after it. */
static __always_inline int epg_locate_ip(__u32 family, void *nh, void *data_end, __u32 hdr,
					 __u32 saddr, __u32 alen)
{
	if (nh + hdr > data_end)
		return EPG_PARSE_NOT_IP;
	return epg_maybe_endpoint(family, nh + saddr, nh + saddr + alen) ?
	       EPG_PARSE_OK : EPG_PARSE_OTHER;
}

/*
 * Step one, for every packet: where the IP header starts (*l2, its
 * EtherType in *proto), and whether either address could be an endpoint's.
 * Returns EPG_PARSE_OK when the packet is to be parsed (epg_parse), else
 * EPG_PARSE_NOT_IP or EPG_PARSE_OTHER: it passes untouched, and nothing was
 * written anywhere (the entry points zero struct epg_pkt only after this).
 */
static __always_inline int epg_locate(void *data, void *data_end, __u32 *l2, __be16 *proto)
{
	struct ethhdr *eth = data;
	void *nh = eth + 1;
	__u32 off = sizeof(*eth);
	__be16 type;
	int i;

	if (nh > data_end)
		return EPG_PARSE_NOT_IP;
	type = eth->h_proto;

	for (i = 0; i < EPG_VLAN_MAX; i++) {
		struct epg_vlan_hdr *vh = nh;

		if (type != bpf_htons(ETH_P_8021Q) && type != bpf_htons(ETH_P_8021AD))
			break;
		if ((void *)(vh + 1) > data_end)
			return EPG_PARSE_NOT_IP;
		type = vh->proto;
		nh = vh + 1;
		off += sizeof(*vh);
	}
	*l2 = off;
	*proto = type;
	if (type == bpf_htons(ETH_P_IP))
		return epg_locate_ip(AF_INET, nh, data_end, sizeof(struct iphdr),
				     __builtin_offsetof(struct iphdr, saddr), 4);
	if (type == bpf_htons(ETH_P_IPV6))
		return epg_locate_ip(AF_INET6, nh, data_end, sizeof(struct ipv6hdr),
				     __builtin_offsetof(struct ipv6hdr, saddr), 16);
	return EPG_PARSE_NOT_IP;
}

/* Step two, for a packet epg_locate found (l2, proto: what it found). len:
 * the whole frame's length, of which data .. data_end is the part that can
 * be read (at least the headers). */
static __always_inline int epg_parse(struct epg_pkt *p, void *data, void *data_end, __u64 len,
				     __u32 l2, __be16 proto)
{
	if (l2 > EPG_L2_MAX) /* as it was found: said again for the verifier */
		return EPG_PARSE_NOT_IP;
	len = len > l2 ? len - l2 : 0;
	if (proto == bpf_htons(ETH_P_IP))
		return epg_parse_ipv4(p, data + l2, data_end, len, l2);
	if (proto == bpf_htons(ETH_P_IPV6))
		return epg_parse_ipv6(p, data + l2, data_end, len, l2);
	return EPG_PARSE_NOT_IP;
}

#endif
