/* SPDX-License-Identifier: MIT */
/*
 * Security-group matching in O(1) of the number of rules: two LPM lookups
 * (peer address, service) each return the bitmap of the ruleset's entries
 * that match that dimension (userspace stores, for every prefix, the OR of
 * every prefix that covers it); their AND holds the entries that allow the
 * packet, and its lowest bit names the rule that is counted.
 */
#ifndef EPGATE_BPF_POLICY_H
#define EPGATE_BPF_POLICY_H

#include "maps.h"
#include "parse.h"
#include "stats.h"

static __always_inline __u32 epg_ctz64(__u64 w)
{
	__u32 n = 0;

	if (!(w & 0xffffffffULL)) { n += 32; w >>= 32; }
	if (!(w & 0xffffULL))     { n += 16; w >>= 16; }
	if (!(w & 0xffULL))       { n += 8;  w >>= 8; }
	if (!(w & 0xfULL))        { n += 4;  w >>= 4; }
	if (!(w & 0x3ULL))        { n += 2;  w >>= 2; }
	if (!(w & 0x1ULL))        { n += 1; }
	return n;
}

/* Lowest bit set in both bitmaps, or -1. A loop over words, not rules. */
static __always_inline int epg_first_common_bit(const struct epg_bitmap *a,
						const struct epg_bitmap *b)
{
	int i;

	for (i = 0; i < EPG_RULE_WORDS; i++) {
		__u64 w = a->w[i] & b->w[i];

		if (w)
			return i * 64 + epg_ctz64(w);
	}
	return -1;
}

static __always_inline const struct epg_bitmap *
epg_peer_lookup(__u32 sel, __u32 family, const __u8 *peer)
{
	if (family == AF_INET) {
		struct epg_peer4_key k = { .prefixlen = 32 + 32, .sel = sel };

		__builtin_memcpy(k.addr, epg_a4(peer), 4);
		return bpf_map_lookup_elem(&epg_peer4, &k);
	} else {
		struct epg_peer6_key k = { .prefixlen = 32 + 128, .sel = sel };

		__builtin_memcpy(k.addr, epg_a4(peer), 16);
		return bpf_map_lookup_elem(&epg_peer6, &k);
	}
}

/*
 * Returns the bit of the first entry of selector sel that matches the packet,
 * or -1. The peer is the remote address: the source for ingress, the
 * destination for egress. A packet without ports (non-first fragment,
 * protocol without ports) only matches entries that allow every port of its
 * protocol. A global function: the verifier checks it once, not at each of
 * its three call sites (security group, ACL in, ACL out).
 */
__noinline int epg_match(__u32 sel, const struct epg_pkt *p, int peer_is_src)
{
	const struct epg_bitmap *pb, *sb;
	struct epg_svc_key sk = { .sel = sel };

	if (!p)
		return -1;
	sk.prefixlen = p->has_ports ? EPG_SVC_PLEN_FULL : EPG_SVC_PLEN_PROTO;
	sk.proto = p->proto;
	if (p->has_ports) {
		sk.port[0] = p->port[0];
		sk.port[1] = p->port[1];
	}
	sb = bpf_map_lookup_elem(&epg_svc, &sk);
	if (!sb)
		return -1;
	pb = epg_peer_lookup(sel, p->family, peer_is_src ? p->saddr : p->daddr);
	if (!pb)
		return -1;
	return epg_first_common_bit(pb, sb);
}

static __always_inline const struct epg_rule_ref *epg_rule_ref(__u32 sel, int bit)
{
	struct epg_rule_bit_key k = { .sel = sel, .bit = (__u32)bit };

	return bpf_map_lookup_elem(&epg_rule_bits, &k);
}

static __always_inline __u32 epg_rule_slot(__u32 sel, int bit)
{
	const struct epg_rule_ref *r = epg_rule_ref(sel, bit);

	return r ? r->slot : EPG_NO_RULE_SLOT;
}

/*
 * Network ACL: the same two lookups over the ACL's entries, numbered in rule
 * order, so the lowest common bit is the first entry that matches, and its
 * action decides. Every packet matches at least the '*' entry of its family.
 * Returns 1 when the ACL denies (*slot: the deciding entry); an allowing
 * entry's hit is counted here.
 */
static __always_inline int epg_acl_denies(__u32 sel, const struct epg_pkt *p,
					  int peer_is_src, const struct epg_counter *n, __u32 *slot)
{
	const struct epg_rule_ref *r;
	int bit = epg_match(sel, p, peer_is_src);

	if (bit < 0) {
		*slot = EPG_NO_RULE_SLOT; /* no '*' entry: deny, as EC2 would */
		return 1;
	}
	r = epg_rule_ref(sel, bit);
	if (!r) {
		*slot = EPG_NO_RULE_SLOT;
		return 1;
	}
	*slot = r->slot;
	if (r->deny)
		return 1;
	epg_count_rule(r->slot, n);
	return 0;
}

/* Is the packet's peer (the source inbound, the destination outbound)
 * exempt in generation gen? No lookup when the generation has none (any). */
static __always_inline int epg_exempt_peer(int any, __u32 gen, const struct epg_pkt *p,
					   __u32 dir)
{
	struct epg_exempt_key k = { .space = EPG_EXEMPT_SPACE(gen, p->family) };
	const __u8 *peer = dir == EPG_DIR_INGRESS ? p->saddr : p->daddr;

	if (!any)
		return 0;

	if (p->family == AF_INET) {
		k.prefixlen = 32 + 32;
		__builtin_memcpy(k.addr, epg_a4(peer), 4);
	} else {
		k.prefixlen = 32 + 128;
		__builtin_memcpy(k.addr, epg_a4(peer), 16);
	}
	return bpf_map_lookup_elem(&epg_exempt, &k) != NULL;
}

#endif
