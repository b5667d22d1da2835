/* SPDX-License-Identifier: MIT */
/*
 * The deny cache. A flood of one denied flow (the same addresses, ports and
 * flags again and again) would be judged in full every time: the endpoint
 * lookup, the ACL's and the group's trie lookups. Instead its verdict is
 * remembered per CPU and replayed, counted exactly as judging counted it.
 *
 * Why a replayed deny is the verdict judging would give:
 *  - only verdicts that depend on nothing but the packet, the policy and
 *    there being no flow for it are remembered: an ACL's deny, no rule, TCP
 *    without a flow. Never a full table, a malformed packet, or a packet
 *    whose peer is exempt (that one passes);
 *  - a remembered deny carries the policy stamp (the generation): an apply
 *    makes it stale;
 *  - it is looked up only after the flow table found no flow for the packet
 *    (a flow created since, by the endpoint's own connection to that peer
 *    say, is found first), and only for an unfragmented packet that is not
 *    an ICMP error (which a flow can make related);
 *  - the packet's identity is the first EPG_PKT_ID_WORDS words of struct
 *    epg_pkt (parse.h): every field such a verdict depends on, less the
 *    source port (or ICMP echo id), which no rule reads (groups and ACL
 *    entries name the destination port, in both directions). So a flood
 *    from changing source ports to one port (a SYN flood, a scan of one
 *    service) is replayed after its first packet; the flow table is still
 *    asked first with the packet's own ports.
 */
#ifndef EPGATE_BPF_DENY_H
#define EPGATE_BPF_DENY_H

#include "maps.h"
#include "parse.h"
#include "stats.h"

EPG_STATIC_ASSERT(__builtin_offsetof(struct epg_pkt, sport) == 5 * 8 + 2,
		  "the source port is bytes 2-3 of the identity's word 5 (EPG_DENY_W5_MASK)");

/* Which slot a packet's identity maps to: the words folded, one multiply. */
static __always_inline __u32 epg_deny_index(const __u64 *id)
{
	__u64 w5 = id[5] & EPG_DENY_W5_MASK;
	__u64 h = id[0] ^ id[1] ^ (id[2] << 7 | id[2] >> 57) ^ (id[3] << 19 | id[3] >> 45) ^
		  (id[4] << 29 | id[4] >> 35) ^ (w5 << 41 | w5 >> 23);

	/* the top bits of the product: the ones every bit of h reaches */
	return (__u32)(h * 0x9e3779b97f4a7c15ULL >> (64 - EPG_DENY_SLOT_BITS));
}

/* struct epg_pkt.remember: EPG_DENY_ON when the cache is on for this packet;
 * EPG_DENY_MISSED | slot once the lookup found nothing there: a deny of the
 * packet is remembered in that slot. */
#define EPG_DENY_ON     (1u << 31)
#define EPG_DENY_BACKOFF 16u /* a power of 2 */
#define EPG_DENY_MISSED (1u << 30)

/* After EPG_DENY_BACKOFF lookups in a row found nothing (a flood whose
 * packets differ in more than their source port, new peers or destination
 * ports, which the cache cannot help), only one packet in
 * EPG_DENY_BACKOFF is looked up, and remembered, until one is found: is
 * the next one, after this run of misses (skipped ones count in it)? */
static __always_inline int epg_deny_worth_it(__u32 misses)
{
	return misses < EPG_DENY_BACKOFF || !(misses & (EPG_DENY_BACKOFF - 1));
}

static __always_inline int epg_deny_pending(const struct epg_pkt *p)
{
	return (p->remember & EPG_DENY_MISSED) != 0;
}

/* The remembered verdict on this packet under policy stamp, or NULL (and
 * the slot noted in the packet for its deny). */
static __always_inline const struct epg_deny_entry *epg_deny_find(struct epg_pkt *p, __u32 stamp)
{
	const __u64 *id = (const __u64 *)p;
	const struct epg_deny_entry *e;
	__u32 idx = epg_deny_index(id);

	e = bpf_map_lookup_elem(&epg_deny_cache, &idx);
	if (e && e->stamp == stamp &&
	    !((e->id[0] ^ id[0]) | (e->id[1] ^ id[1]) | (e->id[2] ^ id[2]) |
	      (e->id[3] ^ id[3]) | (e->id[4] ^ id[4]) | (e->id[5] ^ (id[5] & EPG_DENY_W5_MASK))))
		return e;
	p->remember = EPG_DENY_MISSED | idx;
	return NULL;
}

/* Remember a deny, in the slot the lookup noted. what: the reason and the
 * direction << 8; slot: the ACL entry counted (the one that denied the
 * packet, or that let it in before the group denied it). A global function:
 * its locals stay off decide's stack. */
__noinline int epg_deny_remember(const struct epg_pkt *p, __u32 stamp, __u32 ep_slot,
				 __u32 what, __u32 slot)
{
	const __u64 *id = (const __u64 *)p;
	struct epg_deny_entry *e;
	__u32 idx;
	int i;

	if (!p) /* the callers checked epg_deny_pending */
		return 0;
	idx = p->remember & (EPG_DENY_SLOTS - 1);
	e = bpf_map_lookup_elem(&epg_deny_cache, &idx);
	if (!e)
		return 0;
	for (i = 0; i < EPG_PKT_ID_WORDS; i++)
		e->id[i] = id[i];
	e->id[5] &= EPG_DENY_W5_MASK; /* as it is compared */
	e->stamp = stamp;
	e->ep_slot = ep_slot;
	e->slot = slot;
	e->reason = (__u8)what;
	e->dir = (__u8)(what >> 8) & 1;
	return 1;
}

#endif
