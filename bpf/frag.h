/* SPDX-License-Identifier: MIT */
/*
 * Fragments: the first fragment carries the ports and is judged like any
 * packet; its verdict is remembered for EPG_FRAG_TIMEOUT_S under (family,
 * addresses, protocol, identification), and the later fragments of the same
 * datagram follow it. No reassembly: a later fragment that arrives before
 * its first is dropped (fragment), as is one that overlaps a TCP header
 * (offset 8 bytes, RFC 1858) or ends past 65535 bytes (fragment_bad_offset).
 */
#ifndef EPGATE_BPF_FRAG_H
#define EPGATE_BPF_FRAG_H

#include "maps.h"
#include "parse.h"
#include "stats.h"

#define EPG_FRAG_TIMEOUT_NS ((__u64)EPG_FRAG_TIMEOUT_S * 1000000000ULL)

static __always_inline void epg_frag_key_of(struct epg_frag_key *k, const struct epg_pkt *p)
{
	__builtin_memcpy(k->src, epg_a4(p->saddr), 16);
	__builtin_memcpy(k->dst, epg_a4(p->daddr), 16);
	k->id = p->frag_id;
	/* IPv4 datagrams are (addresses, protocol, id); IPv6 ones (addresses,
	 * id) only (RFC 8200): a later fragment's header chain is data, so the
	 * protocol after extension headers is not known in it */
	k->proto = p->family == AF_INET ? p->proto : 0;
	k->family = (__u8)p->family;
	k->pad = 0;
}

/* Remember a first fragment's verdict. Returns -1 when the table is full. */
static __always_inline int epg_frag_remember(const struct epg_pkt *p, __u32 ep_slot,
					     __u32 dir, __u32 reason)
{
	struct epg_scratch *scr = epg_scratch_get();
	long rc;

	if (!scr)
		return 0;
	epg_frag_key_of(&scr->frag_key, p);
	scr->frag_val.created_ns = epg_now();
	scr->frag_val.ep_slot = ep_slot;
	scr->frag_val.verdict = (__u8)epg_reason_verdict(reason);
	scr->frag_val.dir = (__u8)dir;
	scr->frag_val.reason = (__u8)reason;
	scr->frag_val.pad = 0;
	rc = bpf_map_update_elem(&epg_frag, &scr->frag_key, &scr->frag_val, BPF_ANY);
	return rc == -7 /* E2BIG */ || rc == -12 /* ENOMEM */ ? -1 : 0;
}

/* epg_frag_val.reason of a first fragment dropped as spoofed (no reason of
 * reasons.def: its later fragments are no endpoint's traffic either). */
#define EPG_FRAG_SPOOFED 0xff

/* What the first fragment's later ones follow: verdict, and reason. */
static __always_inline void epg_frag_set(const struct epg_pkt *p, __u8 verdict, __u8 reason)
{
	struct epg_scratch *scr = epg_scratch_get();
	struct epg_frag_val *v;

	if (!scr)
		return;
	epg_frag_key_of(&scr->frag_key, p);
	v = bpf_map_lookup_elem(&epg_frag, &scr->frag_key);
	if (v) {
		v->verdict = verdict;
		v->reason = reason;
	}
}

/* The first fragment has been judged: its remembered verdict becomes that. */
static __always_inline void epg_frag_settle(const struct epg_pkt *p, __u32 reason)
{
	epg_frag_set(p, (__u8)epg_reason_verdict(reason), (__u8)reason);
}

/* The reason for a later fragment, or EPG_FRAG_SPOOFED. */
static __always_inline __u32 epg_frag_follow(const struct epg_pkt *p)
{
	struct epg_frag_key k;
	struct epg_frag_val *v;
	__u64 now;

	if ((p->proto == IPPROTO_TCP && p->frag_off == 1) || p->frag_end > 65535)
		return EPG_R_FRAG_BAD;
	epg_frag_key_of(&k, p);
	v = bpf_map_lookup_elem(&epg_frag, &k);
	if (!v)
		return EPG_R_FRAGMENT;
	now = epg_now();
	if (now > v->created_ns && now - v->created_ns > EPG_FRAG_TIMEOUT_NS) {
		bpf_map_delete_elem(&epg_frag, &k);
		return EPG_R_FRAGMENT;
	}
	if (v->reason == EPG_FRAG_SPOOFED)
		return EPG_FRAG_SPOOFED;
	return v->verdict == EPG_ACCEPT ? EPG_R_FRAG_FOLLOWS : EPG_R_FRAG_REJECTED;
}

#endif
